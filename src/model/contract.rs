//! The model contract: what a hearken ONNX model says about itself.
//!
//! Exporters (`hearken-export`) write these keys into ONNX `metadata_props`; the runtime
//! reads them back here and refuses a model whose metadata is missing or inconsistent,
//! instead of running it with guessed parameters and producing quietly wrong text. The
//! keys and their meaning are documented once, in `export/CONTRACT.md`; this module is
//! the validator. (The same idea as sherpa-onnx's `add_meta_data` /
//! `SHERPA_ONNX_READ_META_DATA`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, Result};

/// The contract version this runtime reads and writes.
pub const CONTRACT_VERSION: u32 = 1;

/// Metadata keys, as written into ONNX `metadata_props`.
pub mod keys {
    /// Contract version (`"1"`).
    pub const VERSION: &str = "hearken.contract_version";
    /// What the graph is: see [`super::ModelType`].
    pub const MODEL_TYPE: &str = "hearken.model_type";
    /// Upstream architecture name (`whisper`, `wav2vec2`, `hubert`), informative.
    pub const ARCHITECTURE: &str = "hearken.architecture";
    /// Input features: `log-mel` or `waveform`.
    pub const FEATURE_KIND: &str = "hearken.feature.kind";
    /// Sample rate the model was trained at, in Hz.
    pub const SAMPLE_RATE_HZ: &str = "hearken.feature.sample_rate_hz";
    /// Number of mel bins (log-mel only).
    pub const N_MELS: &str = "hearken.feature.n_mels";
    /// FFT size in samples (log-mel only).
    pub const N_FFT: &str = "hearken.feature.n_fft";
    /// Hop between STFT frames in samples (log-mel only).
    pub const HOP_LENGTH: &str = "hearken.feature.hop_length";
    /// Window the model sees at once, in seconds (log-mel only; 30 for Whisper).
    pub const CHUNK_LENGTH_S: &str = "hearken.feature.chunk_length_s";
    /// Whether the waveform is normalized to zero mean, unit variance (waveform only).
    pub const NORMALIZE: &str = "hearken.feature.normalize";
    /// Input samples per output frame (CTC only; 320 for Wav2Vec2/HuBERT).
    pub const FRAME_STRIDE_SAMPLES: &str = "hearken.ctc.frame_stride_samples";
    /// Token strings by id, as a JSON array (CTC only).
    pub const CTC_VOCAB: &str = "hearken.ctc.vocab";
    /// Id of the CTC blank (CTC only).
    pub const CTC_BLANK_ID: &str = "hearken.ctc.blank_id";
    /// Token that separates words, usually `|` (CTC only).
    pub const CTC_WORD_DELIMITER: &str = "hearken.ctc.word_delimiter";
    /// Label names by class id, as a JSON array (classifiers only).
    pub const LABELS: &str = "hearken.classifier.labels";
    /// Whisper parameters, as a JSON object (Whisper encoder and decoder).
    pub const WHISPER: &str = "hearken.whisper";
}

/// What kind of graph a model file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelType {
    /// Whisper encoder: mel → cross-attention keys and values.
    WhisperEncoder,
    /// Whisper decoder step: tokens, caches → logits, caches.
    WhisperDecoder,
    /// Frame-level CTC model: waveform → per-frame log-probabilities.
    Ctc,
    /// Utterance classifier: waveform → class logits.
    AudioClassification,
}

impl ModelType {
    /// The string written under [`keys::MODEL_TYPE`].
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::WhisperEncoder => "whisper-encoder",
            ModelType::WhisperDecoder => "whisper-decoder",
            ModelType::Ctc => "ctc",
            ModelType::AudioClassification => "audio-classification",
        }
    }
}

impl FromStr for ModelType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "whisper-encoder" => ModelType::WhisperEncoder,
            "whisper-decoder" => ModelType::WhisperDecoder,
            "ctc" => ModelType::Ctc,
            "audio-classification" => ModelType::AudioClassification,
            _ => {
                return Err(format!(
                    "unknown model type `{s}` (expected whisper-encoder, whisper-decoder, ctc or audio-classification)"
                ));
            }
        })
    }
}

/// The features a model takes, with their parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FeatureSpec {
    /// Whisper-style log-mel spectrogram, `(n_mels, n_frames)`.
    LogMel {
        /// Sample rate in Hz.
        sample_rate_hz: u32,
        /// Mel bins.
        n_mels: usize,
        /// FFT size in samples.
        n_fft: usize,
        /// STFT hop in samples.
        hop_length: usize,
        /// Window length in seconds.
        chunk_length_s: u32,
    },
    /// Raw waveform, `(n_samples,)` per item.
    Waveform {
        /// Sample rate in Hz.
        sample_rate_hz: u32,
        /// Zero-mean, unit-variance normalization before the model.
        normalize: bool,
    },
}

impl FeatureSpec {
    /// The sample rate the model expects audio at.
    pub fn sample_rate_hz(&self) -> u32 {
        match self {
            FeatureSpec::LogMel { sample_rate_hz, .. }
            | FeatureSpec::Waveform { sample_rate_hz, .. } => *sample_rate_hz,
        }
    }
}

/// The task-specific part of a contract.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Head {
    /// Whisper encoder or decoder; `params` is the JSON object under [`keys::WHISPER`],
    /// interpreted by the Whisper model code.
    Whisper {
        /// Parsed `hearken.whisper` object.
        params: serde_json::Value,
    },
    /// CTC output layer.
    Ctc {
        /// Token strings by id; `vocab.len()` is the logits' last dimension.
        vocab: Vec<String>,
        /// Blank id, `< vocab.len()`.
        blank_id: u32,
        /// Word delimiter token (`|`), if the vocabulary has one.
        word_delimiter: Option<String>,
        /// Input samples per output frame.
        frame_stride_samples: u32,
    },
    /// Classification head.
    Classifier {
        /// Label names by class id.
        labels: Vec<String>,
    },
}

/// A validated model contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// What the graph is.
    pub model_type: ModelType,
    /// Upstream architecture (`whisper`, `wav2vec2`, `hubert`), if given.
    pub architecture: Option<String>,
    /// The features it takes.
    pub features: FeatureSpec,
    /// Task-specific parameters.
    pub head: Head,
}

/// Reads typed values out of a metadata map, with errors that name the key.
struct Reader<'a> {
    path: &'a Path,
    meta: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    fn err(&self, reason: String) -> Error {
        Error::Contract {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn opt_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    fn str(&self, key: &str) -> Result<&str> {
        self.opt_str(key)
            .ok_or_else(|| self.err(format!("missing metadata key `{key}`")))
    }

    fn parse<T: FromStr>(&self, key: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.str(key)?;
        raw.trim()
            .parse()
            .map_err(|e| self.err(format!("`{key}` = `{raw}` is invalid: {e}")))
    }

    fn positive(&self, key: &str) -> Result<usize> {
        match self.parse::<usize>(key)? {
            0 => Err(self.err(format!("`{key}` must be positive, got 0"))),
            n => Ok(n),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        let raw = self.str(key)?;
        serde_json::from_str(raw).map_err(|e| {
            self.err(format!(
                "`{key}` is not valid JSON of the expected form: {e}"
            ))
        })
    }
}

impl Contract {
    /// Validates a model's metadata.
    ///
    /// `path` only labels errors. Fails with [`Error::Contract`] naming the first key
    /// that is missing or wrong.
    pub fn from_metadata(
        path: impl Into<PathBuf>,
        meta: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let path = path.into();
        let r = Reader { path: &path, meta };
        if meta.keys().all(|k| !k.starts_with("hearken.")) {
            return Err(r.err(
                "the model carries no hearken metadata: export it with `hearken-export convert`, \
                 which writes the contract described in export/CONTRACT.md"
                    .into(),
            ));
        }
        let version: u32 = r.parse(keys::VERSION)?;
        if version != CONTRACT_VERSION {
            return Err(r.err(format!(
                "contract version {version} is not supported (this runtime reads version {CONTRACT_VERSION})"
            )));
        }
        let model_type: ModelType = r.str(keys::MODEL_TYPE)?.parse().map_err(|e| r.err(e))?;
        let sample_rate_hz: u32 = r.parse(keys::SAMPLE_RATE_HZ)?;
        if !(1_000..=192_000).contains(&sample_rate_hz) {
            return Err(r.err(format!(
                "`{}` = {sample_rate_hz} is outside 1000..=192000 Hz",
                keys::SAMPLE_RATE_HZ
            )));
        }
        let features = match r.str(keys::FEATURE_KIND)? {
            "log-mel" => FeatureSpec::LogMel {
                sample_rate_hz,
                n_mels: r.positive(keys::N_MELS)?,
                n_fft: r.positive(keys::N_FFT)?,
                hop_length: r.positive(keys::HOP_LENGTH)?,
                chunk_length_s: r.positive(keys::CHUNK_LENGTH_S)? as u32,
            },
            "waveform" => FeatureSpec::Waveform {
                sample_rate_hz,
                normalize: r.parse(keys::NORMALIZE)?,
            },
            other => {
                return Err(r.err(format!(
                    "`{}` = `{other}` is unknown (expected log-mel or waveform)",
                    keys::FEATURE_KIND
                )));
            }
        };
        let head = match model_type {
            ModelType::WhisperEncoder | ModelType::WhisperDecoder => {
                let params: serde_json::Value = r.json(keys::WHISPER)?;
                if !params.is_object() {
                    return Err(r.err(format!("`{}` must be a JSON object", keys::WHISPER)));
                }
                if !matches!(features, FeatureSpec::LogMel { .. }) {
                    return Err(r.err("Whisper models take log-mel features".into()));
                }
                Head::Whisper { params }
            }
            ModelType::Ctc => {
                let vocab: Vec<String> = r.json(keys::CTC_VOCAB)?;
                let blank_id: u32 = r.parse(keys::CTC_BLANK_ID)?;
                if vocab.is_empty() || blank_id as usize >= vocab.len() {
                    return Err(r.err(format!(
                        "`{}` = {blank_id} is not an id of the {}-token vocabulary",
                        keys::CTC_BLANK_ID,
                        vocab.len()
                    )));
                }
                let word_delimiter = r.opt_str(keys::CTC_WORD_DELIMITER).map(str::to_string);
                if let Some(d) = &word_delimiter
                    && !vocab.contains(d)
                {
                    return Err(r.err(format!("word delimiter `{d}` is not in the vocabulary")));
                }
                Head::Ctc {
                    vocab,
                    blank_id,
                    word_delimiter,
                    frame_stride_samples: r.positive(keys::FRAME_STRIDE_SAMPLES)? as u32,
                }
            }
            ModelType::AudioClassification => {
                let labels: Vec<String> = r.json(keys::LABELS)?;
                if labels.is_empty() {
                    return Err(r.err(format!("`{}` is empty", keys::LABELS)));
                }
                Head::Classifier { labels }
            }
        };
        Ok(Contract {
            model_type,
            architecture: r.opt_str(keys::ARCHITECTURE).map(str::to_string),
            features,
            head,
        })
    }

    /// The metadata entries that describe this contract, as an exporter writes them.
    /// `from_metadata(to_metadata(c)) == c`.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(keys::VERSION, CONTRACT_VERSION.to_string());
        put(keys::MODEL_TYPE, self.model_type.as_str().to_string());
        if let Some(a) = &self.architecture {
            put(keys::ARCHITECTURE, a.clone());
        }
        match &self.features {
            FeatureSpec::LogMel {
                sample_rate_hz,
                n_mels,
                n_fft,
                hop_length,
                chunk_length_s,
            } => {
                put(keys::FEATURE_KIND, "log-mel".into());
                put(keys::SAMPLE_RATE_HZ, sample_rate_hz.to_string());
                put(keys::N_MELS, n_mels.to_string());
                put(keys::N_FFT, n_fft.to_string());
                put(keys::HOP_LENGTH, hop_length.to_string());
                put(keys::CHUNK_LENGTH_S, chunk_length_s.to_string());
            }
            FeatureSpec::Waveform {
                sample_rate_hz,
                normalize,
            } => {
                put(keys::FEATURE_KIND, "waveform".into());
                put(keys::SAMPLE_RATE_HZ, sample_rate_hz.to_string());
                put(keys::NORMALIZE, normalize.to_string());
            }
        }
        match &self.head {
            Head::Whisper { params } => put(keys::WHISPER, params.to_string()),
            Head::Ctc {
                vocab,
                blank_id,
                word_delimiter,
                frame_stride_samples,
            } => {
                put(
                    keys::CTC_VOCAB,
                    serde_json::Value::from(vocab.clone()).to_string(),
                );
                put(keys::CTC_BLANK_ID, blank_id.to_string());
                if let Some(d) = word_delimiter {
                    put(keys::CTC_WORD_DELIMITER, d.clone());
                }
                put(keys::FRAME_STRIDE_SAMPLES, frame_stride_samples.to_string());
            }
            Head::Classifier { labels } => {
                put(
                    keys::LABELS,
                    serde_json::Value::from(labels.clone()).to_string(),
                );
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctc() -> Contract {
        Contract {
            model_type: ModelType::Ctc,
            architecture: Some("wav2vec2".into()),
            features: FeatureSpec::Waveform {
                sample_rate_hz: 16_000,
                normalize: true,
            },
            head: Head::Ctc {
                vocab: vec!["<pad>".into(), "|".into(), "a".into()],
                blank_id: 0,
                word_delimiter: Some("|".into()),
                frame_stride_samples: 320,
            },
        }
    }

    fn whisper() -> Contract {
        Contract {
            model_type: ModelType::WhisperEncoder,
            architecture: Some("whisper".into()),
            features: FeatureSpec::LogMel {
                sample_rate_hz: 16_000,
                n_mels: 80,
                n_fft: 400,
                hop_length: 160,
                chunk_length_s: 30,
            },
            head: Head::Whisper {
                params: serde_json::json!({"n_audio_layer": 4}),
            },
        }
    }

    #[test]
    fn round_trips() {
        for c in [ctc(), whisper()] {
            assert_eq!(
                Contract::from_metadata("m.onnx", &c.to_metadata()).unwrap(),
                c
            );
        }
        let labels = Contract {
            model_type: ModelType::AudioClassification,
            architecture: None,
            features: FeatureSpec::Waveform {
                sample_rate_hz: 16_000,
                normalize: false,
            },
            head: Head::Classifier {
                labels: vec!["angry".into(), "happy".into()],
            },
        };
        assert_eq!(
            Contract::from_metadata("m", &labels.to_metadata()).unwrap(),
            labels
        );
    }

    fn error_of(meta: &BTreeMap<String, String>) -> String {
        Contract::from_metadata("dir/model.onnx", meta)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn foreign_model_is_told_how_to_export() {
        let e = error_of(&BTreeMap::new());
        assert!(e.starts_with("dir/model.onnx: model contract"), "{e}");
        assert!(e.contains("hearken-export convert"), "{e}");
    }

    #[test]
    fn each_missing_key_is_named() {
        let full = ctc().to_metadata();
        for key in full.keys().filter(|k| {
            // Optional keys.
            *k != keys::ARCHITECTURE && *k != keys::CTC_WORD_DELIMITER
        }) {
            let mut m = full.clone();
            m.remove(key);
            let e = error_of(&m);
            assert!(e.contains(key.as_str()), "removing {key}: {e}");
        }
    }

    #[test]
    fn wrong_values_are_rejected() {
        let cases: &[(&str, &str, &str)] = &[
            (keys::VERSION, "2", "version 2"),
            (keys::MODEL_TYPE, "tts", "unknown model type"),
            (keys::SAMPLE_RATE_HZ, "16k", "invalid"),
            (keys::SAMPLE_RATE_HZ, "0", "outside"),
            (keys::CTC_BLANK_ID, "3", "not an id"),
            (keys::CTC_VOCAB, "{\"a\": 1}", "JSON"),
            (keys::CTC_WORD_DELIMITER, "_", "not in the vocabulary"),
            (keys::FRAME_STRIDE_SAMPLES, "0", "positive"),
            (keys::FEATURE_KIND, "mfcc", "unknown"),
        ];
        for (key, value, expect) in cases {
            let mut m = ctc().to_metadata();
            m.insert(key.to_string(), value.to_string());
            let e = error_of(&m);
            assert!(e.contains(expect), "{key}={value}: {e}");
        }
        let mut m = whisper().to_metadata();
        m.insert(keys::N_MELS.into(), "0".into());
        assert!(error_of(&m).contains("positive"));
        m.insert(keys::N_MELS.into(), "80".into());
        m.insert(keys::WHISPER.into(), "[1,2]".into());
        assert!(error_of(&m).contains("JSON object"));
    }
}
