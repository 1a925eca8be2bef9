//! Whole-file recognition over any [`Model`]: long-form Whisper ([`whisper`]), chunked
//! CTC and windowed classification, behind [`Model::transcribe`] and [`Model::classify`].
//! Live streams reuse the same pieces through [`crate::stream`].

pub mod whisper;

use crate::model::Model;
use crate::model::classify::ClassifyOptions;
use crate::model::ctc::CtcOptions;
use crate::result::{Labels, Transcript};
use crate::{Error, Result};

/// Options of a transcription, per family; each model reads its own part.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// Whisper's decoding options.
    pub whisper: whisper::WhisperOptions,
    /// A CTC model's search options.
    pub ctc: CtcOptions,
}

// The whole-file entry points of a model live with the whole-file algorithms, so that
// `model` (which opens and drives graphs) does not depend on them.
impl Model {
    /// Transcribes mono 16 kHz `samples` with a Whisper or CTC model. `progress` gets the
    /// fraction done after each piece (Whisper windows).
    ///
    /// Fails with [`Error::InvalidInput`] for a classifier (use [`Model::classify`]).
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Transcript> {
        if let Some(m) = self.as_whisper() {
            return whisper::transcribe(m, samples, &opts.whisper, progress);
        }
        match self.as_ctc() {
            Some(m) => {
                let decoder = m.decoder(&opts.ctc)?;
                let t = m.transcribe(samples, &decoder, &opts.ctc.chunks)?;
                progress(1.0);
                Ok(t)
            }
            None => Err(wrong_family(self, "transcribe", "classify")),
        }
    }

    /// Classifies mono 16 kHz `samples` with an audio classifier.
    ///
    /// Fails with [`Error::InvalidInput`] for the other families.
    pub fn classify(&self, samples: &[f32], opts: &ClassifyOptions) -> Result<Labels> {
        match self.as_classifier() {
            Some(m) => m.classify(samples, opts),
            None => Err(wrong_family(self, "classify", "transcribe")),
        }
    }
}

fn wrong_family(model: &Model, asked: &str, instead: &str) -> Error {
    Error::invalid(
        format!("model for {asked}"),
        format!(
            "a model that can {asked}; {} is a {} model (use {instead})",
            model.dir().display(),
            model.family().name()
        ),
        model.family().name(),
    )
}
