//! hearken-export: the tooling half of hearken.
//!
//! It loads speech checkpoints (with candle), and writes ONNX models that carry hearken's
//! model contract in their metadata. It depends on the runtime crate, never the reverse,
//! so that exports can be verified by the very engines that will run them, while an edge
//! build of `hearken` compiles none of this.
//!
//! - [`onnx`]: an ONNX graph builder and writer, the layer every exporter emits through.
//! - [`wav2vec2`]: Wav2Vec2 / HuBERT checkpoints, a trainable candle model, ONNX export.
//! - [`nn`]: differentiable layers the trainable models share (no fused op without a
//!   backward; a convolution whose gradients are right).
//! - [`train`]: a generic training loop (optimizers, schedules, checkpoints that resume
//!   exactly, metrics, curves) over a task trait, training data ([`train::data`]) and
//!   losses ([`train::loss`]).
#![warn(missing_docs, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ct2;
pub mod error;
pub mod nn;
pub mod onnx;
pub mod train;
pub mod wav2vec2;
pub mod whisper;

pub use error::{Error, Result};
