//! Whole-file recognition: long-form Whisper ([`whisper`]) and the chunk and window plans
//! of waveform models ([`chunking`]). Live streams reuse the same pieces through
//! [`crate::stream`].

pub mod chunking;
pub mod whisper;
