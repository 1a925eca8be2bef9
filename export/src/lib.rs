//! hearken-export: the tooling half of hearken.
//!
//! It loads speech checkpoints (with candle), and writes ONNX models that carry hearken's
//! model contract in their metadata. It depends on the runtime crate, never the reverse,
//! so that exports can be verified by the very engines that will run them, while an edge
//! build of `hearken` compiles none of this.
//!
//! - [`onnx`]: an ONNX graph builder and writer, the layer every exporter emits through.
#![warn(missing_docs, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ct2;
pub mod error;
pub mod hf;
pub mod onnx;
pub mod wav2vec2;
pub mod whisper;

pub use error::{Error, Result};
