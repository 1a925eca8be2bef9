//! Wav2Vec2 and HuBERT on the export side: Hugging Face checkpoints (CTC and sequence
//! classification heads, or a base model given a new head), a trainable candle model,
//! and ONNX export.
//!
//! Both families share one architecture here: a 7-layer convolutional feature encoder,
//! a feature projection, a convolutional positional embedding and a transformer encoder
//! (post-LN, or pre-LN when `do_stable_layer_norm`). They differ only in small flags
//! (HuBERT may drop the feature-projection LayerNorm, or use a BatchNorm instead of weight
//! norm before its positional convolution) and in initialization, so one
//! [`Wav2Vec2Config`] and one tensor naming serve both.
//!
//! - this file: the configuration (`config.json`, upstream names) and checkpoint loading;
//! - [`model`]: the candle model, evaluation (the parity reference) and training modes;
//! - [`init`]: where parameters come from (checkpoint, variables, seeded initialization
//!   as transformers'), and the `tiny` / `base` presets;
//! - [`mask`]: SpecAugment span masks;
//! - [`save`]: writing a model back as a Hugging Face checkpoint;
//! - [`onnx`]: ONNX export.
//!
//! Reference: `transformers/models/wav2vec2/modeling_wav2vec2.py` and
//! `transformers/models/hubert/modeling_hubert.py`,
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py>.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, candle_err, io_err, read_json};

pub mod init;
pub mod mask;
pub mod model;
pub mod onnx;
pub mod save;

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
fn default_dropout() -> f64 {
    0.1
}
fn default_mask_time_prob() -> f64 {
    0.05
}
fn default_mask_length() -> usize {
    10
}
fn default_mask_time_min_masks() -> usize {
    2
}
fn default_initializer_range() -> f64 {
    0.02
}

/// A Hugging Face `Wav2Vec2Config` / `HubertConfig`: the fields that define the forward
/// pass, training-time regularization and initialization, under their `config.json` names
/// and with transformers' defaults; every other field is kept in [`Wav2Vec2Config::extra`]
/// so that a saved `config.json` carries it unchanged.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// HuBERT only: a BatchNorm before the positional convolution, which then has no
    /// weight normalization.
    #[serde(default)]
    pub conv_pos_batch_norm: bool,
    /// Output vocabulary of a CTC head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    /// CTC blank id (the pad token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// Width of the classification projector (transformers' default is 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_proj_size: Option<usize>,
    /// Classification: mix all hidden states (embedding output and every layer) with
    /// softmaxed `layer_weights` instead of using the last one.
    #[serde(default)]
    pub use_weighted_layer_sum: bool,
    /// Class names by id (keys are decimal strings in `config.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// `Wav2Vec2ForCTC`, `HubertForSequenceClassification`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Wav2Vec2 adapter layers (not supported).
    #[serde(default)]
    pub add_adapter: bool,

    // Training only: regularization (see `model::Mode::Train`) and initialization.
    /// Dropout on the attention output, the feed-forward output and the encoder input.
    #[serde(default = "default_dropout")]
    pub hidden_dropout: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "default_dropout")]
    pub attention_dropout: f64,
    /// Dropout after the feed-forward activation.
    #[serde(default = "default_dropout")]
    pub activation_dropout: f64,
    /// Dropout after the feature projection.
    #[serde(default)]
    pub feat_proj_dropout: f64,
    /// Dropout before the CTC head (`*ForSequenceClassification` applies none).
    #[serde(default = "default_dropout")]
    pub final_dropout: f64,
    /// Probability of skipping each transformer layer (LayerDrop).
    #[serde(default = "default_dropout")]
    pub layerdrop: f64,
    /// Whether SpecAugment masking is applied at all in training.
    #[serde(default = "default_true")]
    pub apply_spec_augment: bool,
    /// SpecAugment: expected fraction of frames masked (spans start with probability
    /// `mask_time_prob / mask_time_length`).
    #[serde(default = "default_mask_time_prob")]
    pub mask_time_prob: f64,
    /// SpecAugment: frames per time span.
    #[serde(default = "default_mask_length")]
    pub mask_time_length: usize,
    /// SpecAugment: fewest time spans per example.
    #[serde(default = "default_mask_time_min_masks")]
    pub mask_time_min_masks: usize,
    /// SpecAugment: expected fraction of hidden channels zeroed.
    #[serde(default)]
    pub mask_feature_prob: f64,
    /// SpecAugment: channels per feature span.
    #[serde(default = "default_mask_length")]
    pub mask_feature_length: usize,
    /// SpecAugment: fewest feature spans per example.
    #[serde(default)]
    pub mask_feature_min_masks: usize,
    /// Standard deviation of the normal initialization of linear layers.
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,

    /// Every other `config.json` field (`label2id`, `bos_token_id`, `ctc_loss_reduction`,
    /// `transformers_version`, ...), kept as read so that saving loses nothing.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
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

/// Names of the head's tensors (the ones without the base-model prefix).
pub(crate) const HEAD_TENSORS: [&str; 4] =
    ["lm_head.", "projector.", "classifier.", "layer_weights"];

/// The full Hugging Face name of the checkpoint tensor `name` (prefix-stripped, as in
/// [`Wav2Vec2Checkpoint::tensors`]): the head's tensors keep their names, the base model's
/// get `wav2vec2.` / `hubert.` in front.
pub fn hf_name(family: Family, name: &str) -> String {
    if HEAD_TENSORS.iter().any(|h| name.starts_with(h)) {
        name.to_string()
    } else {
        format!("{}.{name}", family.as_str())
    }
}

/// The weight-normalized positional convolution's magnitude `g`, `(1, 1, kernel)`.
pub(crate) const POS_CONV_WEIGHT_G: &str = "encoder.pos_conv_embed.conv.weight_g";
/// The weight-normalized positional convolution's direction `v`,
/// `(hidden, hidden / groups, kernel)`.
pub(crate) const POS_CONV_WEIGHT_V: &str = "encoder.pos_conv_embed.conv.weight_v";

/// A Wav2Vec2 / HuBERT checkpoint in Hugging Face layout.
///
/// `tensors` holds f32 tensors under the Hugging Face names with the base-model prefix
/// (`wav2vec2.` / `hubert.`) removed, so that both families share names:
/// `feature_extractor.conv_layers.{i}.conv.{weight,bias}`,
/// `feature_extractor.conv_layers.{i}.layer_norm.{weight,bias}`,
/// `feature_projection.{layer_norm,projection}.*`, `encoder.pos_conv_embed.conv.weight`
/// (weight normalization already applied: `g * v / ||v||`) together with the two
/// parameters it comes from, `encoder.pos_conv_embed.conv.weight_g` and `.weight_v`
/// (whichever names the file used; training needs them, as the gradients of `g` and `v`
/// are not those of their product), `encoder.pos_conv_embed.conv.bias`,
/// `encoder.layer_norm.*`, `encoder.layers.{i}.{attention.{q,k,v,out}_proj, layer_norm,
/// feed_forward.{intermediate,output}_dense, final_layer_norm}.*`, `masked_spec_embed`
/// when the model was saved with SpecAugment on, and the head's `lm_head.*`, or
/// `projector.*`, `classifier.*` and (weighted layer sum) `layer_weights`. [`hf_name`]
/// gives a tensor's full name.
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

impl Wav2Vec2Config {
    /// The family of `model_type`, if it is one of the two.
    pub fn family(&self) -> Option<Family> {
        match self.model_type.as_str() {
            "wav2vec2" => Some(Family::Wav2Vec2),
            "hubert" => Some(Family::Hubert),
            _ => None,
        }
    }

    /// [`Wav2Vec2Config::family`], or [`Error::Unsupported`] naming `path` (the
    /// configuration's file) for another `model_type`.
    pub(crate) fn require_family(&self, path: &Path) -> Result<Family> {
        self.family().ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!("model_type `{}` is not wav2vec2 or hubert", self.model_type),
        })
    }

    /// Makes the configuration describe `head` on a `family` model, as transformers'
    /// `*ForCTC` / `*ForSequenceClassification` configurations do: `architectures`, and
    /// `vocab_size` with `pad_token_id` (the blank) for CTC, or `id2label`, `label2id`,
    /// `num_labels` and `classifier_proj_size` (transformers' 256 when unset) for
    /// classification.
    ///
    /// Fails with [`Error::InvalidInput`] for an empty vocabulary or label set, a blank
    /// outside the vocabulary, or a label given twice.
    pub fn set_head(&mut self, family: Family, head: &Head) -> Result<()> {
        let class = match family {
            Family::Wav2Vec2 => "Wav2Vec2",
            Family::Hubert => "Hubert",
        };
        match head {
            Head::Ctc {
                vocab, blank_id, ..
            } => {
                if vocab.is_empty() || *blank_id as usize >= vocab.len() {
                    return Err(Error::InvalidInput {
                        what: "CTC head".into(),
                        expected: "a non-empty vocabulary that holds the blank id".into(),
                        got: format!("{} tokens, blank id {blank_id}", vocab.len()),
                    });
                }
                self.vocab_size = Some(vocab.len());
                self.pad_token_id = Some(*blank_id);
                self.architectures = Some(vec![format!("{class}ForCTC")]);
            }
            Head::Classifier { labels } => {
                let mut label2id = serde_json::Map::new();
                for (i, label) in labels.iter().enumerate() {
                    if label2id.insert(label.clone(), i.into()).is_some() {
                        return Err(Error::InvalidInput {
                            what: "classification labels".into(),
                            expected: "distinct names".into(),
                            got: format!("`{label}` twice"),
                        });
                    }
                }
                if labels.is_empty() {
                    return Err(Error::InvalidInput {
                        what: "classification labels".into(),
                        expected: "at least one".into(),
                        got: "none".into(),
                    });
                }
                self.id2label = Some(
                    labels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (i.to_string(), l.clone()))
                        .collect(),
                );
                self.extra
                    .insert("label2id".into(), serde_json::Value::Object(label2id));
                self.extra.insert("num_labels".into(), labels.len().into());
                self.classifier_proj_size.get_or_insert(256);
                self.architectures = Some(vec![format!("{class}ForSequenceClassification")]);
            }
        }
        Ok(())
    }
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
    let (config, family) = read_config(dir)?;
    let tensors = read_tensors(dir, family)?;
    let head = checkpoint_head(dir, &config, &tensors)?;
    Ok(Wav2Vec2Checkpoint {
        dir: dir.to_path_buf(),
        config,
        family,
        head,
        normalize: read_normalize(dir)?,
        tensors,
    })
}

/// Loads the base model of a Hugging Face Wav2Vec2 / HuBERT directory (a pretrained
/// `HubertModel`, `Wav2Vec2ForPreTraining`, or a fine-tuned model whose head is to be
/// replaced) and gives it `head`, whose tensors are left out: build the model with
/// [`model::Wav2Vec2Model::from_checkpoint`] and an initialization rng to create them.
///
/// The configuration is updated for the head ([`Wav2Vec2Config::set_head`]); any tensors
/// of the directory's own head are dropped. Fails as [`load_dir`] does (a missing
/// `vocab.json` excepted), and with [`Error::InvalidInput`] for an empty head.
pub fn load_dir_with_new_head(dir: impl AsRef<Path>, head: Head) -> Result<Wav2Vec2Checkpoint> {
    let dir = dir.as_ref();
    let (mut config, family) = read_config(dir)?;
    let mut tensors = read_tensors(dir, family)?;
    tensors.retain(|name, _| !HEAD_TENSORS.iter().any(|h| name.starts_with(h)));
    config.set_head(family, &head)?;
    Ok(Wav2Vec2Checkpoint {
        dir: dir.to_path_buf(),
        config,
        family,
        head,
        normalize: read_normalize(dir)?,
        tensors,
    })
}

/// `config.json`, checked for what the port supports.
fn read_config(dir: &Path) -> Result<(Wav2Vec2Config, Family)> {
    let config_path = dir.join("config.json");
    let mut config: Wav2Vec2Config = read_json(&config_path)?;
    let unsupported = |reason: String| Error::Unsupported {
        path: config_path.clone(),
        reason,
    };
    let family = config.require_family(&config_path)?;
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
    if family == Family::Wav2Vec2 {
        // Wav2Vec2's feature projection always has its LayerNorm, and its positional
        // convolution always its weight norm; the flags are HuBERT's.
        config.feat_proj_layer_norm = true;
        config.conv_pos_batch_norm = false;
    }
    Ok((config, family))
}

/// The weights of `dir` in f32, by prefix-stripped name, with the positional
/// convolution's weight norm resolved (and its parameters kept).
fn read_tensors(dir: &Path, family: Family) -> Result<BTreeMap<String, Tensor>> {
    let raw = crate::hf::load_dir(dir, DType::F32, &Device::Cpu)?;
    let prefix = format!("{}.", family.as_str());
    let mut tensors = BTreeMap::new();
    for (name, t) in raw {
        let name = name.strip_prefix(&prefix).unwrap_or(&name).to_string();
        tensors.insert(name, t);
    }
    resolve_weight_norm(&mut tensors)?;
    Ok(tensors)
}

/// The head the checkpoint's `architectures` (or, without it, its tensors) name.
fn checkpoint_head(
    dir: &Path,
    config: &Wav2Vec2Config,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<Head> {
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
    if is_ctc {
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
        Ok(Head::Ctc {
            vocab,
            blank_id,
            word_delimiter,
        })
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
        Ok(Head::Classifier { labels })
    } else {
        Err(Error::Unsupported {
            path: dir.join("config.json"),
            reason: format!(
                "architecture `{arch}` has no supported head (expected *ForCTC or \
                 *ForSequenceClassification; load_dir_with_new_head gives a base model one)"
            ),
        })
    }
}

/// `preprocessor_config.json`'s `do_normalize` (true when absent).
fn read_normalize(dir: &Path) -> Result<bool> {
    #[derive(Deserialize)]
    struct Pre {
        do_normalize: Option<bool>,
    }
    let p = dir.join("preprocessor_config.json");
    Ok(if p.is_file() {
        read_json::<Pre>(&p)?.do_normalize.unwrap_or(true)
    } else {
        true
    })
}

/// Adds the weight-normalized positional convolution's weight,
/// `w = g * v / ||v||`, the norm taken over every axis but the last (PyTorch's
/// `weight_norm(conv, dim=2)` as Wav2Vec2 uses it; `g` has shape `(1, 1, kernel)`), and
/// files `g` and `v` under [`POS_CONV_WEIGHT_G`] / [`POS_CONV_WEIGHT_V`] whichever names
/// the checkpoint used.
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
        let w = weight_norm(&g, &v).map_err(candle_err(
            "applying the positional convolution's weight norm",
        ))?;
        tensors.insert(format!("{BASE}weight"), w);
        tensors.insert(POS_CONV_WEIGHT_G.into(), g);
        tensors.insert(POS_CONV_WEIGHT_V.into(), v);
    }
    Ok(())
}

// https://github.com/pytorch/pytorch/blob/v2.5.1/aten/src/ATen/native/WeightNorm.cpp
// (`_weight_norm(v, g, dim=2)` = `v * (g / norm_except_dim(v, 2, dim=2))`)
/// `g * v / ||v||` with the norm over axes 0 and 1: `v` (C_out, C_in / groups, K), `g`
/// (1, 1, K) -> (C_out, C_in / groups, K). Differentiable in `g` and `v`.
pub(crate) fn weight_norm(g: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    v.broadcast_div(&weight_norm_magnitude(v)?)?
        .broadcast_mul(g)
}

/// `||v||` over axes 0 and 1, (1, 1, K): the `g` that makes `weight_norm(g, v) == v`.
pub(crate) fn weight_norm_magnitude(v: &Tensor) -> candle_core::Result<Tensor> {
    v.sqr()?.sum_keepdim(0)?.sum_keepdim(1)?.sqrt()
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
            for key in [
                "encoder.pos_conv_embed.conv.weight",
                POS_CONV_WEIGHT_G,
                POS_CONV_WEIGHT_V,
            ] {
                assert!(c.tensors.contains_key(key), "{name}: {key}");
            }
            assert!(!c.tensors.keys().any(|k| k.contains("original")));
            let (g, v) = (&c.tensors[POS_CONV_WEIGHT_G], &c.tensors[POS_CONV_WEIGHT_V]);
            assert_eq!(g.dims(), &[1, 1, 16]);
            assert_eq!(v.dims(), &[32, 8, 16]);
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
    fn config_round_trips_through_json_with_its_extra_fields() {
        let c = load_dir(fixture("hubert-cls-stable")).unwrap().config;
        assert_eq!(c.extra["ctc_loss_reduction"], "sum");
        assert_eq!(c.extra["label2id"]["angry"], 2);
        assert_eq!(c.mask_time_min_masks, 2);
        assert_eq!(c.hidden_dropout, 0.0);
        let back: Wav2Vec2Config =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn training_fields_default_as_in_transformers() {
        let c: Wav2Vec2Config = serde_json::from_str(
            r#"{"model_type": "hubert", "hidden_size": 4, "num_hidden_layers": 1,
                "num_attention_heads": 1, "intermediate_size": 4, "conv_dim": [1],
                "conv_stride": [1], "conv_kernel": [1], "feat_extract_norm": "group",
                "num_conv_pos_embeddings": 2, "num_conv_pos_embedding_groups": 1}"#,
        )
        .unwrap();
        assert_eq!(
            (c.hidden_dropout, c.attention_dropout, c.activation_dropout),
            (0.1, 0.1, 0.1)
        );
        assert_eq!(
            (c.feat_proj_dropout, c.final_dropout, c.layerdrop),
            (0.0, 0.1, 0.1)
        );
        assert!(c.apply_spec_augment);
        assert_eq!(
            (c.mask_time_prob, c.mask_time_length, c.mask_time_min_masks),
            (0.05, 10, 2)
        );
        assert_eq!(
            (
                c.mask_feature_prob,
                c.mask_feature_length,
                c.mask_feature_min_masks
            ),
            (0.0, 10, 0)
        );
        assert_eq!(c.initializer_range, 0.02);
        assert!(c.extra.is_empty());
    }

    #[test]
    fn a_new_head_replaces_the_old_one() {
        let labels: Vec<String> = ["yes", "no", "up"].map(String::from).into();
        let c = load_dir_with_new_head(
            fixture("hubert-ctc"),
            Head::Classifier {
                labels: labels.clone(),
            },
        )
        .unwrap();
        assert!(!c.tensors.keys().any(|k| k.starts_with("lm_head")));
        assert!(
            c.tensors
                .contains_key("encoder.layers.0.attention.q_proj.weight")
        );
        assert_eq!(c.config.labels(), Some(labels));
        assert_eq!(c.config.extra["label2id"]["up"], 2);
        assert_eq!(c.config.extra["num_labels"], 3);
        assert_eq!(
            c.config.architectures,
            Some(vec!["HubertForSequenceClassification".to_string()])
        );
        assert_eq!(c.config.classifier_proj_size, Some(256));

        let twice = Head::Classifier {
            labels: vec!["a".into(), "a".into()],
        };
        let e = load_dir_with_new_head(fixture("hubert-ctc"), twice).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        let none = Head::Classifier { labels: vec![] };
        assert!(load_dir_with_new_head(fixture("hubert-ctc"), none).is_err());
    }

    #[test]
    fn full_names_carry_the_base_model_prefix_but_not_the_head() {
        assert_eq!(
            hf_name(Family::Hubert, "encoder.layer_norm.weight"),
            "hubert.encoder.layer_norm.weight"
        );
        assert_eq!(
            hf_name(Family::Wav2Vec2, "masked_spec_embed"),
            "wav2vec2.masked_spec_embed"
        );
        for head in [
            "classifier.bias",
            "projector.weight",
            "lm_head.weight",
            "layer_weights",
        ] {
            assert_eq!(hf_name(Family::Hubert, head), head);
        }
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
