//! Training tasks: what is specific to one job (its data, its model, its loss and its
//! metrics), bound to the generic [`Trainer`](super::Trainer) through the
//! [`Task`](super::Task) trait.
//!
//! - [`classify`]: audio classification (keyword spotting, digits, emotions, ...) with a
//!   Wav2Vec2 / HuBERT `*ForSequenceClassification`, fine-tuned from a Hugging Face
//!   checkpoint or trained from scratch; what `hearken-export train classify` runs.

pub mod classify;
