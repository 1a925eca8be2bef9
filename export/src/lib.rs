//! hearken-export: the tooling half of hearken.
//!
//! It loads speech checkpoints (with candle), and writes ONNX models that carry hearken's
//! model contract in their metadata. It depends on the runtime crate, never the reverse,
//! so that exports can be verified by the very engines that will run them, while an edge
//! build of `hearken` compiles none of this.
//!
//! - [`error`]: the crate's one [`Error`], which every module returns.
//! - [`hf`]: Hugging Face checkpoint directories (weights in every `save_pretrained`
//!   layout).
//! - [`ct2`]: CTranslate2's `model.bin` (faster-whisper's format).
//! - [`whisper`]: Whisper import (Hugging Face, CTranslate2), the candle reference, and
//!   ONNX export in hearken's encoder/decoder layout.
//! - [`wav2vec2`]: Wav2Vec2 and HuBERT (CTC and classification heads): import, a
//!   trainable candle model, and ONNX export.
//! - [`nn`]: differentiable layers the trainable models share (no fused op without a
//!   backward; a convolution whose gradients are right).
//! - [`onnx`]: an ONNX graph builder and writer, the layer every exporter emits through,
//!   with the weight storage (f32, f16, int8) all exporters share.
//! - [`verify`]: the gates an export must pass (parity with the candle model and between
//!   engines, int8 decisions, int8 WER), used by `convert` and after training.
//! - [`train`]: a generic training loop (optimizers, schedules, checkpoints that resume
//!   exactly, metrics, curves) over a task trait, training data ([`train::data`]) and
//!   losses ([`train::loss`]).
#![warn(missing_docs, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ct2;
pub mod error;
pub mod hf;
pub mod nn;
pub mod onnx;
pub mod train;
pub mod verify;
pub mod wav2vec2;
pub mod whisper;

pub use error::{Error, Result};
