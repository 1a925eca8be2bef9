//! Live recognition: a shared [`Recognizer`] (model, VAD, options; built once) and a
//! [`Session`] per stream (`push_audio` / `flush` / `reset`, events out).
//!
//! This is the split whisper.cpp makes between `whisper_context` and `whisper_state`, and
//! sherpa-onnx between its recognizer and its streams: weights are shared behind an `Arc`,
//! everything that belongs to one stream (audio buffers, VAD state, decoder state,
//! committed text) lives in its session. A server or a C API opens one recognizer and a
//! session per connection.
//!
//! Inside a session audio flows one way: resample to 16 kHz → 512-sample frames → VAD
//! ([`vad`]) → endpointing ([`endpoint`]) → the model family's stage: Whisper re-decodes
//! the speech buffer and commits with LocalAgreement-2 ([`whisper`], [`agreement`]); CTC
//! models decode in chunks with context ([`ctc`]); classifiers slide windows and smooth
//! ([`classify`]). The core ([`pipeline`]) is synchronous and a function of the audio
//! only; the session runs it on a worker thread so capture is never blocked by compute.
//!
//! ```no_run
//! use hearken::stream::{Event, Recognizer, VadChoice};
//!
//! # fn main() -> hearken::Result<()> {
//! let recognizer = Recognizer::builder()
//!     .model_dir("models/whisper-base")
//!     .vad(VadChoice::Silero("models/silero-vad/silero_vad.onnx".into()))
//!     .build()?;
//! let mut session = recognizer.session()?;
//! # let chunks: Vec<Vec<f32>> = Vec::new();
//! for chunk in chunks {
//!     // Any rate; here 48 kHz from a sound card.
//!     session.push_audio(&chunk, 48_000)?;
//!     for e in session.events() {
//!         if let Event::Final { text, .. } = &e.event {
//!             println!("{text}");
//!         }
//!     }
//! }
//! session.flush()?;
//! # Ok(())
//! # }
//! ```

pub mod agreement;
mod budget;
pub mod classify;
pub mod ctc;
pub mod endpoint;
mod event;
mod options;
pub(crate) mod pipeline;
mod recognizer;
mod session;
pub mod vad;
pub mod whisper;

pub use classify::ClassifyStreamOptions;
pub use ctc::CtcStreamOptions;
pub use endpoint::EndpointConfig;
pub use event::{Emitted, Event};
pub use options::{Pacing, StreamOptions};
pub use recognizer::{Recognizer, RecognizerBuilder};
pub use session::{Session, SessionStats};
pub use vad::{Vad, VadChoice};
pub use whisper::WhisperStreamOptions;
