//! Models: hearken ONNX files with their contract, and the code that drives them.
//!
//! A model here is a graph plus the metadata that says how to feed it and read its
//! output ([`contract`]). Driving code (feature extraction → graph runs) lives in this
//! module; search and decoding logic does not, so it can be tested without a model.
//!
//! [`open`] is the one way to open a model directory and the only code that looks at file
//! names: it finds the layout (hearken's Whisper export, a Hugging Face optimum Whisper
//! export, or a waveform model's `model.onnx`), reads the contract once, and returns a
//! [`Model`], which every command, live session, server and C API call goes through.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{Engine, EngineOptions, ExecutionProvider, Graph};
use crate::{Error, Result};

pub mod chunking;
pub mod classify;
pub mod contract;
pub mod ctc;
pub mod vad;
mod waveform;
pub mod whisper;
pub use contract::{Contract, FeatureSpec, Head, ModelType};

use classify::AudioClassifier;
use ctc::CtcModel;
use whisper::WhisperModel;

/// Loads a hearken model file and validates its contract.
///
/// Fails with [`crate::Error::Contract`] when the metadata is missing or inconsistent,
/// before any audio is processed.
pub fn load(engine: &dyn Engine, path: &Path) -> Result<(Arc<dyn Graph>, Contract)> {
    let graph = engine.load(path)?;
    let contract = Contract::from_metadata(path, graph.metadata())?;
    Ok((graph, contract))
}

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// Whisper: log-mel features, encoder and autoregressive decoder.
    Whisper,
    /// A CTC acoustic model (Wav2Vec2, HuBERT `*ForCTC`).
    Ctc,
    /// An audio classifier (Wav2Vec2, HuBERT `*ForSequenceClassification`).
    Classifier,
}

impl Family {
    /// `whisper`, `ctc` or `classifier`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Whisper => "whisper",
            Family::Ctc => "ctc",
            Family::Classifier => "classifier",
        }
    }
}

/// The files that mark a directory's layout.
const HEARKEN_WHISPER: [&str; 2] = ["encoder.onnx", "decoder.onnx"];
const WAVEFORM_MODEL: &str = "model.onnx";

/// A loaded model of any family: the shared, immutable half (graphs, vocabulary,
/// parameters), `Send + Sync` and cheap to clone.
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    dir: PathBuf,
    engine: &'static str,
    load_ms: f64,
}

enum Kind {
    Whisper(Box<WhisperModel>),
    Ctc(CtcModel),
    Classifier(AudioClassifier),
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("family", &self.family())
            .field("dir", &self.inner.dir)
            .field("engine", &self.inner.engine)
            .finish_non_exhaustive()
    }
}

/// Opens the model directory `dir` (or a waveform model's `model.onnx` file) on the
/// engine `options` describe.
///
/// Fails with [`Error::Contract`] when the directory holds no model hearken knows or its
/// metadata is wrong, and as [`EngineOptions::build`] when the engine cannot be built.
pub fn open(dir: &Path, options: &EngineOptions) -> Result<Model> {
    let engine = options.build()?;
    open_with(dir, engine.as_ref())
}

/// [`open`] on an engine that is already built (tests and benchmarks wrap engines).
pub fn open_with(dir: &Path, engine: &dyn Engine) -> Result<Model> {
    let t0 = Instant::now();
    let has = |f: &str| dir.join(f).is_file();
    let kind = if dir.is_file() || has(WAVEFORM_MODEL) {
        let path = if dir.is_file() {
            dir.to_path_buf()
        } else {
            dir.join(WAVEFORM_MODEL)
        };
        let (graph, contract) = load(engine, &path)?;
        match contract.model_type {
            ModelType::Ctc => Kind::Ctc(CtcModel::from_graph(graph, contract, path)?),
            ModelType::AudioClassification => {
                Kind::Classifier(AudioClassifier::from_graph(graph, contract, path)?)
            }
            other => {
                return Err(Error::Contract {
                    path,
                    reason: format!(
                        "a model.onnx must be a ctc or audio-classification model, not {}",
                        other.as_str()
                    ),
                });
            }
        }
    } else if HEARKEN_WHISPER.iter().any(|f| has(f)) {
        Kind::Whisper(Box::new(WhisperModel::load_hearken(engine, dir)?))
    } else if has(whisper::OPTIMUM_ENCODER) {
        Kind::Whisper(Box::new(WhisperModel::load_optimum(engine, dir)?))
    } else {
        return Err(Error::Contract {
            path: dir.to_path_buf(),
            reason: if dir.exists() {
                format!(
                    "no model here: expected a hearken Whisper export ({}), {}, or a \
                     waveform model ({WAVEFORM_MODEL}); export one with `hearken-export \
                     convert`",
                    HEARKEN_WHISPER.join(" + "),
                    whisper::OPTIMUM_EXPECTED
                )
            } else {
                "no such directory (run `bash models/setup.sh` for the project's models)".into()
            },
        });
    };
    Ok(Model {
        inner: Arc::new(Inner {
            kind,
            dir: dir.to_path_buf(),
            engine: engine.name(),
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
        }),
    })
}

impl Model {
    /// What the model does.
    pub fn family(&self) -> Family {
        match self.inner.kind {
            Kind::Whisper(_) => Family::Whisper,
            Kind::Ctc(_) => Family::Ctc,
            Kind::Classifier(_) => Family::Classifier,
        }
    }

    /// The directory (or file) it was opened from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The engine running it: `ort` or `tract`.
    pub fn engine_name(&self) -> &'static str {
        self.inner.engine
    }

    /// How long [`open`] took, milliseconds (engine construction excluded).
    pub fn load_ms(&self) -> f64 {
        self.inner.load_ms
    }

    /// The execution providers its graphs really run on.
    pub fn providers(&self) -> Vec<ExecutionProvider> {
        match &self.inner.kind {
            Kind::Whisper(m) => m.providers(),
            Kind::Ctc(m) => m.providers(),
            Kind::Classifier(m) => m.providers(),
        }
    }

    /// The Whisper model, if it is one.
    pub fn as_whisper(&self) -> Option<&WhisperModel> {
        match &self.inner.kind {
            Kind::Whisper(m) => Some(m),
            _ => None,
        }
    }

    /// The CTC model, if it is one.
    pub fn as_ctc(&self) -> Option<&CtcModel> {
        match &self.inner.kind {
            Kind::Ctc(m) => Some(m),
            _ => None,
        }
    }

    /// The classifier, if it is one.
    pub fn as_classifier(&self) -> Option<&AudioClassifier> {
        match &self.inner.kind {
            Kind::Classifier(m) => Some(m),
            _ => None,
        }
    }

    /// The class names of a classifier; empty for the other families.
    pub fn labels(&self) -> &[String] {
        match &self.inner.kind {
            Kind::Classifier(m) => m.labels(),
            _ => &[],
        }
    }
}
