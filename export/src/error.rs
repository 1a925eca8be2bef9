//! The crate's one error type.
//!
//! Every module of `hearken-export` (import, export, verification, training) returns
//! [`Error`], so a caller matches on one enum and every message carries its context: the
//! file, the tensor, the manifest line, or what was being done.

use std::path::{Path, PathBuf};

/// `Result` with the crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `hearken-export`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A JSON file is not valid JSON or has a field of the wrong type.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },

    /// candle failed (reading weights, building or running a tensor op).
    #[error("{what}: {source}")]
    Candle {
        /// What was being done.
        what: String,
        /// candle's error.
        source: candle_core::Error,
    },

    /// A hearken tensor could not be built, audio could not be decoded, or an engine
    /// failed to load or run a graph.
    #[error("{what}: {source}")]
    Runtime {
        /// What was being done.
        what: String,
        /// hearken's error.
        source: hearken::Error,
    },

    /// A file is readable but describes something this crate cannot take (another
    /// architecture, inconsistent dimensions, an option the checkpoint does not support).
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A tensor the architecture needs is missing.
    #[error("tensor `{name}` is missing from the checkpoint")]
    MissingTensor {
        /// Its name.
        name: String,
    },

    /// A tensor has the wrong shape for the configuration.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Its name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },

    /// An input has the wrong size or values.
    #[error("invalid {what}: expected {expected}, got {got}")]
    InvalidInput {
        /// What was checked.
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },

    /// An ONNX graph asks for an opset outside what the writer (and hearken's engines)
    /// support.
    #[error("graph `{graph}`: opset {opset} is not supported (expected {min}..={max})")]
    UnsupportedOpset {
        /// The graph's name.
        graph: String,
        /// The requested opset.
        opset: i64,
        /// Lowest supported opset.
        min: i64,
        /// Highest supported opset.
        max: i64,
    },

    /// Two things in an ONNX graph were given the same name: graph inputs, initializers
    /// and node outputs share one namespace (each value is defined exactly once), and
    /// graph outputs must be distinct.
    #[error("graph `{graph}`: name `{name}` is defined twice: first as {first}, then as {second}")]
    DuplicateName {
        /// The graph's name.
        graph: String,
        /// The clashing name.
        name: String,
        /// What defined it first (`"graph input"`, `"initializer"`, `"output 0 of node
        /// `Add_3`"`).
        first: String,
        /// What defined it again.
        second: String,
    },

    /// An ONNX node reads a value that no graph input, initializer or node defines.
    #[error(
        "graph `{graph}`: input {index} of node `{node}` is `{value}`, which is not a graph \
         input, an initializer, or the output of any node"
    )]
    UndefinedValue {
        /// The graph's name.
        graph: String,
        /// The reading node's name (generated names start with the operator, `Mul_3`).
        node: String,
        /// Position of the input in the node's input list.
        index: usize,
        /// The undefined value's name.
        value: String,
    },

    /// An ONNX node reads a value that is only produced by a later node: ONNX requires
    /// nodes in topological order.
    #[error(
        "graph `{graph}`: input {index} of node `{node}` is `{value}`, which is only produced \
         later by node `{producer}`: nodes must be added in topological order"
    )]
    NotTopological {
        /// The graph's name.
        graph: String,
        /// The reading node's name (generated names start with the operator, `Mul_3`).
        node: String,
        /// Position of the input in the node's input list.
        index: usize,
        /// The value read too early.
        value: String,
        /// The node that produces it.
        producer: String,
    },

    /// A declared ONNX graph output is not produced by any node, input or initializer.
    #[error("graph `{graph}`: output `{output}` is declared but nothing produces it")]
    OutputNotProduced {
        /// The graph's name.
        graph: String,
        /// The output's name.
        output: String,
    },

    /// An ONNX graph declares no outputs, so every node would be dead.
    #[error("graph `{graph}` declares no outputs")]
    NoOutputs {
        /// The graph's name.
        graph: String,
    },

    /// An ONNX initializer is stored but no node reads it and no graph output returns
    /// it: dead weights usually mean an exporter wired the wrong name.
    #[error("graph `{graph}`: initializer `{name}` is never used")]
    UnusedInitializer {
        /// The graph's name.
        graph: String,
        /// The initializer's name.
        name: String,
    },

    /// A tensor's element type cannot be written to ONNX.
    #[error("{what}: element type {dtype} cannot be written to ONNX")]
    UnsupportedDType {
        /// Which tensor (`"initializer `w`"`).
        what: String,
        /// Its element type.
        dtype: hearken::engine::DType,
    },

    /// An ONNX `TensorProto` could not be read back into a hearken tensor, or a weight
    /// cannot be quantized (wrong size, NaN or infinity).
    #[error("tensor `{name}`: {reason}")]
    InvalidTensor {
        /// The tensor's name (may be empty).
        name: String,
        /// What is wrong (unknown data type, wrong byte count, negative dimension).
        reason: String,
    },

    /// A serialized ONNX model would exceed protobuf's 2 GiB message limit, which ONNX
    /// Runtime and tract both enforce when parsing.
    #[error(
        "graph `{graph}`: serialized model is {n_bytes} bytes, over protobuf's 2 GiB limit; \
         weights this large need ONNX external data, which the writer does not support yet"
    )]
    TooLarge {
        /// The graph's name.
        graph: String,
        /// Size the encoded model would have.
        n_bytes: usize,
    },

    /// A CTranslate2 `model.bin` ends before a field it announces (a partial download,
    /// or a split model whose parts were not all concatenated).
    #[error(
        "{}: truncated CTranslate2 model: {what} needs {needed} bytes at byte {offset}, \
         but the file has {len} bytes",
        path.display()
    )]
    Ct2Truncated {
        /// The file (`<memory>` for a buffer).
        path: PathBuf,
        /// What was being read (`"dims of `encoder/conv1/weight`"`).
        what: String,
        /// Where it starts.
        offset: usize,
        /// Its size in bytes.
        needed: usize,
        /// The file's size.
        len: usize,
    },

    /// A CTranslate2 `model.bin` has a binary version whose layout the reader does not
    /// know.
    #[error(
        "{}: CTranslate2 binary version {version} is not supported (expected {}..={}); \
         {hint}",
        path.display(), crate::ct2::SUPPORTED_VERSIONS.start(),
        crate::ct2::SUPPORTED_VERSIONS.end()
    )]
    Ct2UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
        /// What to do about it.
        hint: &'static str,
    },

    /// A CTranslate2 variable's dtype id is not one of CTranslate2's six.
    #[error("{}: variable `{name}` has unknown dtype id {dtype_id} (expected 0..=5)", path.display())]
    Ct2UnknownDType {
        /// The file.
        path: PathBuf,
        /// The variable.
        name: String,
        /// The id found.
        dtype_id: u8,
    },

    /// A CTranslate2 variable's byte count does not match its shape and dtype.
    #[error(
        "{}: variable `{name}` of shape {shape:?} and dtype {dtype} needs {expected} bytes, \
         but the file stores {got}",
        path.display()
    )]
    Ct2SizeMismatch {
        /// The file.
        path: PathBuf,
        /// The variable.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Its dtype.
        dtype: crate::ct2::DType,
        /// Bytes implied by shape and dtype (saturated at `usize::MAX` on overflow).
        expected: usize,
        /// Bytes stored.
        got: usize,
    },

    /// Any other structural problem of a CTranslate2 `model.bin`: a string without its
    /// NUL or not UTF-8, a name defined twice, an alias to a missing variable, bytes after
    /// the alias table.
    #[error("{}: malformed CTranslate2 model at byte {offset}: {reason}", path.display())]
    Ct2Malformed {
        /// The file.
        path: PathBuf,
        /// Where the problem was found.
        offset: usize,
        /// What is wrong.
        reason: String,
    },

    /// A variable asked for is not in the CTranslate2 model (nor an alias).
    #[error("CTranslate2 model has no variable `{name}`")]
    Ct2MissingVariable {
        /// The name asked for.
        name: String,
    },

    /// A CTranslate2 variable cannot be converted as asked (an integer weight without its
    /// scale, a non-scalar read as a scalar, a name too long to write, ...).
    #[error("CTranslate2 variable `{name}`: {reason}")]
    Ct2Conversion {
        /// The variable.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// A directory holds no checkpoint this crate recognizes.
    #[error("{}: no {what} found (expected {expected}){hint}", dir.display())]
    UnknownLayout {
        /// The directory.
        dir: PathBuf,
        /// What was looked for (`"Whisper checkpoint"`).
        what: String,
        /// The files that would have been recognized.
        expected: String,
        /// A hint about what was found instead (may be empty, else starts with `; `).
        hint: String,
    },

    /// A tensor the architecture does not have is present (a different architecture, or
    /// more layers than `config.json` says).
    #[error("tensor `{name}` is not part of a {architecture} checkpoint with these dimensions")]
    UnexpectedTensor {
        /// Its name.
        name: String,
        /// The architecture expected (`"Whisper"`).
        architecture: String,
    },

    /// A special token could not be found in any vocabulary of the directory, or its id is
    /// outside the vocabulary.
    #[error("{}: {token}: {reason}", dir.display())]
    SpecialToken {
        /// The directory.
        dir: PathBuf,
        /// The token (`<|startoftranscript|>`) or list (`suppress_tokens`).
        token: String,
        /// What is wrong.
        reason: String,
    },

    /// A checkpoint is readable, but the exported ONNX layout cannot express it.
    #[error("cannot export this {architecture} checkpoint: {reason}")]
    CannotExport {
        /// The architecture (`"Whisper"`, `"Wav2Vec2"`).
        architecture: String,
        /// What is wrong.
        reason: String,
    },

    /// A line of a JSON-lines manifest cannot be read.
    #[error("{}:{line}: {reason}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// A verification gate measured an export and found it wanting: logits too far from
    /// the reference, greedy tokens or labels changed, or the WER raised too much.
    #[error(
        "{gate} gate failed{}: {reason}",
        engine.as_ref().map(|e| format!(" on {e}")).unwrap_or_default()
    )]
    GateFailed {
        /// The gate (`"parity"`, `"int8 parity"`, `"int8 WER"`).
        gate: String,
        /// The engine the export failed on, when the gate runs each engine on its own.
        engine: Option<String>,
        /// What was measured against what was allowed.
        reason: String,
    },

    /// A chart could not be drawn or its image encoded.
    #[error("{}: {reason}", path.display())]
    Plot {
        /// The image being written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Training data is unusable: a manifest line that is not JSON or lacks a required
    /// column, an audio file that is missing or cannot be decoded, an empty split, a label
    /// seen only in evaluation data. The message reads `file:line: reason` (or
    /// `file: reason` when no line applies, e.g. for a folder or an audio file found by
    /// listing a directory).
    #[error("{}{}: {reason}", path.display(), line.map(|n| format!(":{n}")).unwrap_or_default())]
    Data {
        /// The manifest, table, metadata file, folder or audio file at fault.
        path: PathBuf,
        /// The 1-based line in `path`, where the problem is one row.
        line: Option<usize>,
        /// What is wrong, naming the audio file involved if any.
        reason: String,
    },
}

/// Wraps a candle error with what was being done: `.map_err(candle_err("reading x"))`.
pub(crate) fn candle_err(what: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Error {
    let what = what.into();
    move |source| Error::Candle { what, source }
}

/// Wraps a hearken error with what was being done.
pub(crate) fn runtime_err(what: impl Into<String>) -> impl FnOnce(hearken::Error) -> Error {
    let what = what.into();
    move |source| Error::Runtime { what, source }
}

/// Wraps an I/O error with its path.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and parses a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
