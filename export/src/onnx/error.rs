//! What can go wrong while building or writing an ONNX model.
//!
//! Graph construction is infallible call by call (so that exporters can chain hundreds
//! of ops without a `?` on each), and everything is checked once in
//! [`GraphBuilder::build`](super::GraphBuilder::build). Each variant therefore names the
//! node, value or file involved, so that a broken exporter can be fixed from the message
//! alone.

use std::path::PathBuf;

use hearken::engine::DType;

/// `Result` with the ONNX writer's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, validating or writing an ONNX model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested opset is outside what the writer (and hearken's engines) support.
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

    /// Two things in the graph were given the same name: graph inputs, initializers and
    /// node outputs share one namespace (each value is defined exactly once), and graph
    /// outputs must be distinct.
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

    /// A node reads a value that no graph input, initializer or node defines.
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

    /// A node reads a value that is only produced by a later node: ONNX requires nodes in
    /// topological order.
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

    /// A declared graph output is not produced by any node, input or initializer.
    #[error("graph `{graph}`: output `{output}` is declared but nothing produces it")]
    OutputNotProduced {
        /// The graph's name.
        graph: String,
        /// The output's name.
        output: String,
    },

    /// The graph declares no outputs, so every node would be dead.
    #[error("graph `{graph}` declares no outputs")]
    NoOutputs {
        /// The graph's name.
        graph: String,
    },

    /// An initializer is stored but no node reads it and no graph output returns it: dead
    /// weights usually mean an exporter wired the wrong name.
    #[error("graph `{graph}`: initializer `{name}` is never used")]
    UnusedInitializer {
        /// The graph's name.
        graph: String,
        /// The initializer's name.
        name: String,
    },

    /// A tensor's element type cannot be written.
    #[error("{what}: element type {dtype} cannot be written to ONNX")]
    UnsupportedDType {
        /// Which tensor (`"initializer `w`"`).
        what: String,
        /// Its element type.
        dtype: DType,
    },

    /// A `TensorProto` could not be read back into a hearken tensor.
    #[error("tensor `{name}`: {reason}")]
    InvalidTensor {
        /// The tensor's name (may be empty).
        name: String,
        /// What is wrong (unknown data type, wrong byte count, negative dimension).
        reason: String,
    },

    /// The serialized model would exceed protobuf's 2 GiB message limit, which ONNX
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

    /// Writing the model file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}
