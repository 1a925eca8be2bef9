//! The shared half of live recognition: a loaded model, a loaded VAD and the options,
//! built once and shared by every stream (`Send + Sync`, cheap to clone), like
//! whisper.cpp's `whisper_context` or sherpa-onnx's recognizer.

use std::path::PathBuf;
use std::sync::Arc;

use super::classify::ClassifyStreamOptions;
use super::ctc::CtcStreamOptions;
use super::endpoint::EndpointConfig;
use super::pipeline::Pipeline;
use super::session::Session;
use super::vad::{Vad, VadChoice};
use super::whisper::WhisperStreamOptions;
use crate::engine::EngineOptions;
use crate::model::{Model, TranscribeOptions};
use crate::{Error, Result};

/// How audio reaches a session, which decides what happens when compute falls behind.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Pacing {
    /// Audio is read as fast as it can be (files, tests, benchmarks): `push_audio` waits
    /// for room in the queue, nothing is skipped or dropped, and the events are the same
    /// on every run.
    AsFastAsPossible {
        /// Queue bound, seconds of audio.
        max_queue_s: f32,
    },
    /// Audio arrives in real time (a microphone): `push_audio` never waits. When compute
    /// falls behind, partial decodes are skipped (fewer partials, larger steps); when the
    /// queue holds more than `max_queue_s`, new audio is dropped, counted in
    /// [`super::SessionStats::dropped_s`], and the stream restarts after the gap (open
    /// speech is finalized first), so event times stay true to the audio clock.
    RealTime {
        /// Queue bound, seconds of audio.
        max_queue_s: f32,
    },
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::RealTime { max_queue_s: 10.0 }
    }
}

impl Pacing {
    /// The queue bound, seconds.
    pub fn max_queue_s(&self) -> f32 {
        match self {
            Pacing::AsFastAsPossible { max_queue_s } | Pacing::RealTime { max_queue_s } => {
                *max_queue_s
            }
        }
    }
}

/// Everything about how a live session behaves. Plain data.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Decoding options, as for files (Whisper's language, search, thresholds; CTC search).
    pub transcribe: TranscribeOptions,
    /// Live Whisper: partial step, buffer bound, prompt.
    pub whisper: WhisperStreamOptions,
    /// Live CTC: chunk, context, look-ahead, endpoint rules.
    pub ctc: CtcStreamOptions,
    /// Live classification: windows, smoothing.
    pub classify: ClassifyStreamOptions,
    /// VAD endpointing: thresholds, minimum speech and silence, pre-roll, longest segment.
    pub endpoint: EndpointConfig,
    /// How audio arrives.
    pub pacing: Pacing,
}

pub(crate) struct Shared {
    pub(crate) model: Model,
    pub(crate) vad: Vad,
    pub(crate) options: StreamOptions,
}

/// A model, a VAD and options, ready to open sessions. Clones share everything.
#[derive(Clone)]
pub struct Recognizer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer")
            .field("model", &self.shared.model)
            .field("vad", &self.shared.vad)
            .finish_non_exhaustive()
    }
}

impl Recognizer {
    /// A builder: `Recognizer::builder().model_dir(p).engine(e).build()?`.
    pub fn builder() -> RecognizerBuilder {
        RecognizerBuilder::default()
    }

    /// A recognizer over a model already opened. Fails with [`Error::InvalidInput`] when
    /// the options do not fit the model (they are checked by building one session's
    /// state).
    pub fn new(model: Model, vad: Vad, options: StreamOptions) -> Result<Self> {
        if !(options.pacing.max_queue_s() > 0.0 && options.pacing.max_queue_s().is_finite()) {
            return Err(Error::invalid(
                "max_queue_s",
                "a positive number of seconds",
                options.pacing.max_queue_s(),
            ));
        }
        options.endpoint.validate()?;
        Pipeline::new(&model, &vad, &options)?;
        Ok(Recognizer {
            shared: Arc::new(Shared {
                model,
                vad,
                options,
            }),
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.shared.model
    }

    /// The voice-activity detector.
    pub fn vad(&self) -> &Vad {
        &self.shared.vad
    }

    /// The options sessions run with.
    pub fn options(&self) -> &StreamOptions {
        &self.shared.options
    }

    /// A new stream, with its own worker thread.
    pub fn session(&self) -> Result<Session> {
        Session::start(self.clone())
    }
}

/// Builds a [`Recognizer`].
#[derive(Debug, Default)]
pub struct RecognizerBuilder {
    model_dir: Option<PathBuf>,
    model: Option<Model>,
    engine: EngineOptions,
    vad: VadChoice,
    options: StreamOptions,
}

impl RecognizerBuilder {
    /// The model directory to open with [`crate::model::open`].
    pub fn model_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.model_dir = Some(dir.into());
        self
    }

    /// A model already opened (instead of [`RecognizerBuilder::model_dir`]).
    pub fn model(mut self, model: Model) -> Self {
        self.model = Some(model);
        self
    }

    /// The engine to open the model and Silero VAD with.
    pub fn engine(mut self, engine: EngineOptions) -> Self {
        self.engine = engine;
        self
    }

    /// The voice-activity detector (default: energy).
    pub fn vad(mut self, vad: VadChoice) -> Self {
        self.vad = vad;
        self
    }

    /// Session options.
    pub fn options(mut self, options: StreamOptions) -> Self {
        self.options = options;
        self
    }

    /// Opens the model and the VAD and checks the options.
    pub fn build(self) -> Result<Recognizer> {
        let model = match (self.model, &self.model_dir) {
            (Some(m), _) => m,
            (None, Some(dir)) => crate::model::open(dir, &self.engine)?,
            (None, None) => {
                return Err(Error::invalid(
                    "recognizer",
                    "a model directory or an opened model",
                    "neither",
                ));
            }
        };
        let vad = Vad::load(&self.vad, &self.engine)?;
        Recognizer::new(model, vad, self.options)
    }
}
