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
