//! hearken: speech models on devices.
//!
//! The runtime half of hearken: audio decoding and resampling ([`audio`]), Whisper
//! log-mel and Wav2Vec2 waveform features ([`features`]), one inference API over ONNX
//! Runtime and tract ([`engine`]), and the model contract that exported models carry
//! ([`model`]). Data flows one way: bytes → [`audio::Pcm`] → features → graph runs →
//! logits → decoders → text or labels.
//!
//! The training/export half lives in the separate `hearken-export` crate so that an edge
//! build of this crate compiles no candle.
#![warn(missing_docs, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audio;
pub mod bench;
pub mod decode;
pub mod engine;
mod error;
pub mod features;
pub mod model;
pub mod npy;
pub mod offline;
pub mod output;
pub mod result;
pub mod stream;
pub mod text;

pub use error::{Error, Result};
