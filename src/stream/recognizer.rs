//! The shared half of live recognition: a loaded model, a loaded VAD and the options,
//! built once and shared by every stream (`Send + Sync`, cheap to clone), like
//! whisper.cpp's `whisper_context` or sherpa-onnx's recognizer.

use std::path::PathBuf;
use std::sync::Arc;

use super::options::StreamOptions;
use super::pipeline::Pipeline;
use super::session::Session;
use super::vad::{Vad, VadChoice};
use crate::engine::EngineOptions;
use crate::model::Model;
use crate::{Error, Result};

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
        Session::start(
            self.shared.model.clone(),
            &self.shared.vad,
            &self.shared.options,
        )
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
