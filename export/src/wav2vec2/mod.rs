//! Wav2Vec2 and HuBERT on the export side: Hugging Face checkpoints (CTC and sequence
//! classification heads), a candle model, and ONNX export.
//!
//! Both families share one architecture here: a 7-layer convolutional feature encoder,
//! a feature projection, a convolutional positional embedding and a transformer encoder
//! (post-LN, or pre-LN when `do_stable_layer_norm`). They differ only in small flags
//! (HuBERT may drop the feature-projection LayerNorm), so one [`Wav2Vec2Config`] and one
//! tensor naming serve both.
//!
//! Reference: `transformers/models/wav2vec2/modeling_wav2vec2.py` and
//! `transformers/models/hubert/modeling_hubert.py`,
//! <https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/wav2vec2/modeling_wav2vec2.py>.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

pub mod model;
pub mod onnx;

/// `Result` with this module's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while importing or running a Wav2Vec2 / HuBERT checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A JSON file is not valid JSON or has a field of the wrong type.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },

    /// candle failed (reading weights, building or running a tensor op).
    #[error("{what}: {source}")]
    Candle {
        /// What was being done.
        what: String,
        /// candle's error.
        source: candle_core::Error,
    },

    /// The checkpoint is readable but describes something this importer cannot take.
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A tensor the architecture needs is missing.
    #[error("tensor `{name}` is missing from the checkpoint")]
    MissingTensor {
        /// Its name, without the `wav2vec2.` / `hubert.` prefix.
        name: String,
    },

    /// A tensor has the wrong shape for the configuration.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Its name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },

    /// An input has the wrong size or values.
    #[error("invalid {what}: expected {expected}, got {got}")]
    InvalidInput {
        /// What was checked.
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },
}

pub(crate) fn candle_err(what: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Error {
    let what = what.into();
    move |source| Error::Candle { what, source }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Upstream family, from `config.json`'s `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `wav2vec2`.
    Wav2Vec2,
    /// `hubert`.
    Hubert,
}

impl Family {
    /// The `model_type` string (`wav2vec2`, `hubert`), also hearken's `architecture`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Wav2Vec2 => "wav2vec2",
            Family::Hubert => "hubert",
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu".into()
}

/// The fields of a Hugging Face `Wav2Vec2Config` / `HubertConfig` that define inference,
/// with their `config.json` names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Wav2Vec2Config {
    /// `wav2vec2` or `hubert`.
    pub model_type: String,
    /// Model width.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Transformer activation (`gelu`: exact, erf-based).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Feature-encoder activation.
    #[serde(default = "default_act")]
    pub feat_extract_activation: String,
    /// LayerNorm epsilon (transformer and feature projection).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Output channels of each feature-encoder convolution (7 in every released model).
    pub conv_dim: Vec<usize>,
    /// Stride of each convolution; their product is the frame stride (320).
    pub conv_stride: Vec<usize>,
    /// Kernel width of each convolution.
    pub conv_kernel: Vec<usize>,
    /// Whether the feature-encoder convolutions have biases.
    #[serde(default)]
    pub conv_bias: bool,
    /// `group`: GroupNorm (one group per channel) after the first convolution only (base
    /// models); `layer`: LayerNorm over channels after every convolution (large models).
    pub feat_extract_norm: String,
    /// `false`: post-LN encoder (LayerNorm before the layers, after each block);
    /// `true`: pre-LN encoder ("stable layer norm", final LayerNorm after the layers).
    #[serde(default)]
    pub do_stable_layer_norm: bool,
    /// Whether the feature projection starts with a LayerNorm (always for Wav2Vec2;
    /// HuBERT's `feat_proj_layer_norm`, default true).
    #[serde(default = "default_true")]
    pub feat_proj_layer_norm: bool,
    /// Kernel width of the positional convolution (128).
    pub num_conv_pos_embeddings: usize,
    /// Groups of the positional convolution (16).
    pub num_conv_pos_embedding_groups: usize,
    /// Output vocabulary of a CTC head.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// CTC blank id (the pad token).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Width of the classification projector.
    #[serde(default)]
    pub classifier_proj_size: Option<usize>,
    /// Classification: mix all hidden states (embedding output and every layer) with
    /// softmaxed `layer_weights` instead of using the last one.
    #[serde(default)]
    pub use_weighted_layer_sum: bool,
    /// Class names by id (keys are decimal strings in `config.json`).
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    /// `Wav2Vec2ForCTC`, `HubertForSequenceClassification`, ...
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// Wav2Vec2 adapter layers (not supported).
    #[serde(default)]
    pub add_adapter: bool,
}

impl Wav2Vec2Config {
    /// Input samples per output frame: the product of the convolution strides.
    pub fn frame_stride(&self) -> usize {
        self.conv_stride.iter().product()
    }

    /// Output frames for `n_samples` input samples (the conv arithmetic,
    /// `_get_feat_extract_output_lengths`): `floor((n - k) / s) + 1` per layer, 0 when the
    /// input is shorter than a kernel.
    pub fn output_frames(&self, n_samples: usize) -> usize {
        self.conv_kernel
            .iter()
            .zip(&self.conv_stride)
            .fold(
                n_samples,
                |n, (&k, &s)| if n < k { 0 } else { (n - k) / s + 1 },
            )
    }

    /// Class names by id, from `id2label`.
    pub fn labels(&self) -> Option<Vec<String>> {
        let map = self.id2label.as_ref()?;
        let mut labels: Vec<(usize, String)> = map
            .iter()
            .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v.clone())))
            .collect();
        labels.sort();
        (labels.len() == map.len() && labels.iter().enumerate().all(|(i, (k, _))| i == *k))
            .then(|| labels.into_iter().map(|(_, v)| v).collect())
    }
}

/// What the checkpoint's head computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// `*ForCTC`: `lm_head` over every frame.
    Ctc {
        /// Tokens by id, from `vocab.json`.
        vocab: Vec<String>,
        /// Blank id (`pad_token_id`).
        blank_id: u32,
        /// Word delimiter (`|`), when the vocabulary has one.
        word_delimiter: Option<String>,
    },
    /// `*ForSequenceClassification`: `projector`, mean pooling over valid frames,
    /// `classifier`.
    Classifier {
        /// Class names by id.
        labels: Vec<String>,
    },
}

/// A Wav2Vec2 / HuBERT checkpoint in Hugging Face layout.
///
/// `tensors` holds f32 tensors under the Hugging Face names with the base-model prefix
/// (`wav2vec2.` / `hubert.`) removed, so that both families share names:
/// `feature_extractor.conv_layers.{i}.conv.{weight,bias}`,
/// `feature_extractor.conv_layers.{i}.layer_norm.{weight,bias}`,
/// `feature_projection.{layer_norm,projection}.*`, `encoder.pos_conv_embed.conv.weight`
/// (weight normalization already applied: `g * v / ||v||`), `encoder.pos_conv_embed.conv.bias`,
/// `encoder.layer_norm.*`, `encoder.layers.{i}.{attention.{q,k,v,out}_proj, layer_norm,
/// feed_forward.{intermediate,output}_dense, final_layer_norm}.*`, and the head's
/// `lm_head.*`, or `projector.*`, `classifier.*` and (weighted layer sum) `layer_weights`.
#[derive(Debug, Clone)]
pub struct Wav2Vec2Checkpoint {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// Architecture configuration.
    pub config: Wav2Vec2Config,
    /// Wav2Vec2 or HuBERT.
    pub family: Family,
    /// CTC or classification.
    pub head: Head,
    /// Whether the processor normalizes waveforms (`preprocessor_config.json`'s
    /// `do_normalize`; true when absent).
    pub normalize: bool,
    /// Weights by name (see above), f32 on the CPU.
    pub tensors: BTreeMap<String, Tensor>,
}

impl Wav2Vec2Checkpoint {
    /// The tensor `name`, or [`Error::MissingTensor`].
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `dir` looks like a Wav2Vec2 / HuBERT checkpoint (`config.json` with
/// `model_type` `wav2vec2` or `hubert`).
pub fn is_wav2vec2_dir(dir: impl AsRef<Path>) -> bool {
    #[derive(Deserialize)]
    struct ModelType {
        model_type: Option<String>,
    }
    read_json::<ModelType>(&dir.as_ref().join("config.json"))
        .ok()
        .and_then(|m| m.model_type)
        .is_some_and(|t| t == "wav2vec2" || t == "hubert")
}

/// Loads a Hugging Face Wav2Vec2 / HuBERT directory: `config.json`, `model.safetensors`
/// (or PyTorch `pytorch_model.bin`), `vocab.json` for CTC heads and, optionally,
/// `preprocessor_config.json`.
///
/// The head comes from `architectures` (`*ForCTC`, `*ForSequenceClassification`), or from
/// the tensors present when that field is absent. Weight-normalized positional
/// convolutions are accepted under both `weight_g`/`weight_v` and
/// `parametrizations.weight.original0/1` names.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Wav2Vec2Checkpoint> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config: Wav2Vec2Config = read_json(&config_path)?;
    let unsupported = |reason: String| Error::Unsupported {
        path: config_path.clone(),
        reason,
    };
    let family = match config.model_type.as_str() {
        "wav2vec2" => Family::Wav2Vec2,
        "hubert" => Family::Hubert,
        other => {
            return Err(unsupported(format!(
                "model_type `{other}` is not wav2vec2 or hubert"
            )));
        }
    };
    if config.add_adapter {
        return Err(unsupported(
            "adapter layers (`add_adapter`) are not supported".into(),
        ));
    }
    let n = config.conv_dim.len();
    if n == 0 || config.conv_stride.len() != n || config.conv_kernel.len() != n {
        return Err(unsupported(format!(
            "conv_dim, conv_stride and conv_kernel must have the same non-zero length, got {}, {}, {}",
            n,
            config.conv_stride.len(),
            config.conv_kernel.len()
        )));
    }
    if !matches!(config.feat_extract_norm.as_str(), "group" | "layer") {
        return Err(unsupported(format!(
            "feat_extract_norm `{}` is not group or layer",
            config.feat_extract_norm
        )));
    }
    for (what, act) in [
        ("hidden_act", &config.hidden_act),
        ("feat_extract_activation", &config.feat_extract_activation),
    ] {
        if act != "gelu" {
            return Err(unsupported(format!(
                "{what} `{act}` is not supported (only gelu)"
            )));
        }
    }
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(unsupported(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size, config.num_attention_heads
        )));
    }
    let mut config = config;
    if family == Family::Wav2Vec2 {
        // Wav2Vec2's feature projection always has its LayerNorm; the flag is HuBERT's.
        config.feat_proj_layer_norm = true;
    }
    finish(dir, config, family)
}

fn finish(dir: &Path, config: Wav2Vec2Config, family: Family) -> Result<Wav2Vec2Checkpoint> {
    let raw = read_weights(dir)?;
    let prefix = format!("{}.", family.as_str());
    let mut tensors = BTreeMap::new();
    for (name, t) in raw {
        let name = name.strip_prefix(&prefix).unwrap_or(&name).to_string();
        let t = t
            .to_dtype(DType::F32)
            .map_err(candle_err(format!("converting `{name}` to f32")))?;
        tensors.insert(name, t);
    }
    resolve_weight_norm(&mut tensors)?;

    let arch = config
        .architectures
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    let is_ctc =
        arch.ends_with("ForCTC") || (arch.is_empty() && tensors.contains_key("lm_head.weight"));
    let is_cls = arch.ends_with("ForSequenceClassification")
        || (arch.is_empty() && tensors.contains_key("classifier.weight"));
    let head = if is_ctc {
        let vocab_path = dir.join("vocab.json");
        let json = std::fs::read_to_string(&vocab_path).map_err(io_err(&vocab_path))?;
        let vocab = hearken::decode::ctc::CtcVocab::tokens_from_vocab_json(&json).map_err(|e| {
            Error::Unsupported {
                path: vocab_path.clone(),
                reason: e.to_string(),
            }
        })?;
        let blank_id = match config.pad_token_id {
            Some(id) => id,
            None => vocab
                .iter()
                .position(|t| t == "<pad>" || t == "[PAD]")
                .map(|i| i as u32)
                .ok_or_else(|| Error::Unsupported {
                    path: vocab_path.clone(),
                    reason: "no pad_token_id in config.json and no <pad> token".into(),
                })?,
        };
        if blank_id as usize >= vocab.len() {
            return Err(Error::Unsupported {
                path: vocab_path,
                reason: format!(
                    "pad_token_id {blank_id} is outside the {}-token vocabulary",
                    vocab.len()
                ),
            });
        }
        let word_delimiter = vocab.iter().any(|t| t == "|").then(|| "|".to_string());
        Head::Ctc {
            vocab,
            blank_id,
            word_delimiter,
        }
    } else if is_cls {
        let labels = match config.labels() {
            Some(l) => l,
            None => {
                let n = tensors
                    .get("classifier.weight")
                    .map(|t| t.dims()[0])
                    .ok_or_else(|| Error::MissingTensor {
                        name: "classifier.weight".into(),
                    })?;
                (0..n).map(|i| format!("LABEL_{i}")).collect()
            }
        };
        Head::Classifier { labels }
    } else {
        return Err(Error::Unsupported {
            path: dir.join("config.json"),
            reason: format!(
                "architecture `{arch}` has no supported head (expected *ForCTC or \
                 *ForSequenceClassification)"
            ),
        });
    };
    let normalize = {
        #[derive(Deserialize)]
        struct Pre {
            do_normalize: Option<bool>,
        }
        let p = dir.join("preprocessor_config.json");
        if p.is_file() {
            read_json::<Pre>(&p)?.do_normalize.unwrap_or(true)
        } else {
            true
        }
    };
    Ok(Wav2Vec2Checkpoint {
        dir: dir.to_path_buf(),
        config,
        family,
        head,
        normalize,
        tensors,
    })
}

/// All tensors of `model.safetensors` (or `pytorch_model.bin`), by their file names.
fn read_weights(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let st = dir.join("model.safetensors");
    let pt = dir.join("pytorch_model.bin");
    if st.is_file() {
        let map = candle_core::safetensors::load(&st, &Device::Cpu)
            .map_err(candle_err(format!("reading {}", st.display())))?;
        Ok(map.into_iter().collect())
    } else if pt.is_file() {
        candle_core::pickle::read_all(&pt).map_err(candle_err(format!("reading {}", pt.display())))
    } else {
        Err(Error::Unsupported {
            path: dir.to_path_buf(),
            reason: "no model.safetensors or pytorch_model.bin".into(),
        })
    }
}

/// Replaces the weight-normalized positional convolution's `g` and `v` by its weight,
/// `w = g * v / ||v||`, the norm taken over every axis but the last (PyTorch's
/// `weight_norm(conv, dim=2)` as Wav2Vec2 uses it; `g` has shape `(1, 1, kernel)`).
fn resolve_weight_norm(tensors: &mut BTreeMap<String, Tensor>) -> Result<()> {
    const BASE: &str = "encoder.pos_conv_embed.conv.";
    let pairs = [
        ("weight_g", "weight_v"),
        (
            "parametrizations.weight.original0",
            "parametrizations.weight.original1",
        ),
    ];
    for (g_name, v_name) in pairs {
        let (g_key, v_key) = (format!("{BASE}{g_name}"), format!("{BASE}{v_name}"));
        let (Some(g), Some(v)) = (tensors.remove(&g_key), tensors.remove(&v_key)) else {
            continue;
        };
        let err = candle_err("applying the positional convolution's weight norm");
        let norm = v
            .sqr()
            .and_then(|s| s.sum_keepdim(0))
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .map_err(err)?;
        let w = v
            .broadcast_div(&norm)
            .and_then(|w| w.broadcast_mul(&g))
            .map_err(candle_err(
                "applying the positional convolution's weight norm",
            ))?;
        tensors.insert(format!("{BASE}weight"), w);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wav2vec2")
            .join(name)
    }

    #[test]
    fn loads_every_fixture_with_its_head() {
        for (name, family, ctc) in [
            ("wav2vec2-ctc", Family::Wav2Vec2, true),
            ("wav2vec2-ctc-stable", Family::Wav2Vec2, true),
            ("wav2vec2-cls", Family::Wav2Vec2, false),
            ("hubert-ctc", Family::Hubert, true),
            ("hubert-cls-weighted", Family::Hubert, false),
            ("hubert-cls-stable", Family::Hubert, false),
        ] {
            let c = load_dir(fixture(name)).unwrap();
            assert_eq!(c.family, family, "{name}");
            assert_eq!(matches!(c.head, Head::Ctc { .. }), ctc, "{name}");
            assert!(
                c.tensors.contains_key("encoder.pos_conv_embed.conv.weight"),
                "{name}"
            );
            assert!(
                !c.tensors
                    .keys()
                    .any(|k| k.contains("weight_g") || k.contains("original"))
            );
            assert_eq!(c.config.frame_stride(), 320);
            assert_eq!(c.config.output_frames(16_000), 49);
            assert!(c.normalize);
        }
        let c = load_dir(fixture("hubert-cls-weighted")).unwrap();
        assert_eq!(
            c.head,
            Head::Classifier {
                labels: vec![
                    "neutral".into(),
                    "happy".into(),
                    "angry".into(),
                    "sad".into()
                ]
            }
        );
    }

    #[test]
    fn output_frames_follow_the_conv_arithmetic() {
        let c = load_dir(fixture("wav2vec2-ctc")).unwrap().config;
        assert_eq!(c.output_frames(0), 0);
        assert_eq!(c.output_frames(399), 0);
        assert_eq!(c.output_frames(400), 1);
        assert_eq!(c.output_frames(11_200), 34);
    }

    #[test]
    fn refuses_other_model_types() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "whisper", "hidden_size": 4, "num_hidden_layers": 1,
                "num_attention_heads": 1, "intermediate_size": 4, "conv_dim": [1],
                "conv_stride": [1], "conv_kernel": [1], "feat_extract_norm": "group",
                "num_conv_pos_embeddings": 2, "num_conv_pos_embedding_groups": 1}"#,
        )
        .unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("model_type `whisper`"), "{e}");
        assert!(!is_wav2vec2_dir(dir.path()));
        assert!(is_wav2vec2_dir(fixture("hubert-ctc")));
    }
}
