//! Whisper on hearken's encoder/decoder ONNX layout.
//!
//! `encoder.onnx` turns a 30 s log-mel window `(1, n_mels, 3000)` into every decoder
//! layer's cross-attention keys and values, once per window. `decoder.onnx` runs one
//! step: new tokens plus the self-attention cache in, logits plus the grown cache out
//! (see `export/CONTRACT.md` and the exporter in `hearken-export`). The split follows
//! sherpa-onnx rather than optimum: the cross keys/values are never recomputed, and the
//! decoder has no `If` nodes, so tract runs it too.
//!
//! [`WhisperModel`] is the shared part (graphs, parameters, feature extractor), `Send +
//! Sync`; a [`DecoderState`] holds one window's self-attention cache for a set of
//! hypotheses and implements [`crate::decode::WhisperStep`], which is all the decoding
//! algorithms see of the model.
//!
//! [`WhisperModel::load`] also runs Hugging Face optimum exports as they are
//! (`encoder_model.onnx` with `decoder_model.onnx` + `decoder_with_past_model.onnx` or
//! `decoder_model_merged.onnx`, configured by the Hugging Face JSON files beside them):
//! the graphs differ, the decoding does not, so the difference stays inside the private
//! `Layout` and cache enums here and in `whisper_optimum`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::whisper_optimum::{self, OptimumCache, OptimumWhisper};
use crate::engine::{Engine, Graph, Tensor};
use crate::features::{LogMel, LogMelFeatures};
use crate::model::{Contract, FeatureSpec, Head, ModelType};
use crate::{Error, Result};

/// Hugging Face `generation_config.json`: the Whisper fields, as both hearken's optimum
/// loader and `hearken-export`'s checkpoint importer read them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HfGenerationConfig {
    /// `<|startoftranscript|>`.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// `<|endoftext|>`: a number or a list whose first entry it is (see [`first_token_id`]).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// Whether the vocabulary has language and task tokens.
    #[serde(default)]
    pub is_multilingual: Option<bool>,
    /// Language token by `<|xx|>` name.
    #[serde(default)]
    pub lang_to_id: Option<BTreeMap<String, u32>>,
    /// `transcribe` / `translate` token ids.
    #[serde(default)]
    pub task_to_id: Option<BTreeMap<String, u32>>,
    /// `<|notimestamps|>`.
    #[serde(default)]
    pub no_timestamps_token_id: Option<u32>,
    /// `<|startofprev|>`.
    #[serde(default)]
    pub prev_sot_token_id: Option<u32>,
    /// Tokens suppressed at every step.
    #[serde(default)]
    pub suppress_tokens: Option<Vec<u32>>,
    /// Tokens suppressed at the first sampled position.
    #[serde(default)]
    pub begin_suppress_tokens: Option<Vec<u32>>,
    /// (decoder layer, head) pairs used for word-level alignment.
    #[serde(default)]
    pub alignment_heads: Option<Vec<(u32, u32)>>,
}

/// A token id given as a number or as a list of numbers (the first counts), as
/// Hugging Face writes `eos_token_id`; `None` for anything else.
pub fn first_token_id(v: Option<&serde_json::Value>) -> Option<u32> {
    let n = match v? {
        serde_json::Value::Array(a) => a.first()?.as_u64()?,
        other => other.as_u64()?,
    };
    u32::try_from(n).ok()
}

/// The `hearken.whisper` metadata object: dimensions (OpenAI `ModelDimensions` names)
/// and special tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WhisperParams {
    /// Mel bins of the input.
    pub n_mels: usize,
    /// Vocabulary size (logits width).
    pub n_vocab: usize,
    /// Encoder positions (1500).
    pub n_audio_ctx: usize,
    /// Model width.
    pub n_audio_state: usize,
    /// Decoder positions (448): prompt plus generated tokens must fit.
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`.
    pub timestamp_begin: u32,
    /// `<|nospeech|>`, if the vocabulary has it.
    #[serde(default)]
    pub no_speech: Option<u32>,
    /// `<|startofprev|>`.
    pub sot_prev: u32,
    /// `<|startoflm|>`, if any.
    #[serde(default)]
    pub sot_lm: Option<u32>,
    /// Language code → token id; empty for English-only models.
    #[serde(default)]
    pub lang_ids: BTreeMap<String, u32>,
    /// Suppressed at every step.
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    /// Suppressed at the first sampled position.
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

impl WhisperParams {
    /// Whether the model has language tokens (multilingual vocabulary).
    pub fn is_multilingual(&self) -> bool {
        !self.lang_ids.is_empty()
    }
}

/// A loaded Whisper model: shared across threads and streams.
pub struct WhisperModel {
    layout: Layout,
    params: WhisperParams,
    log_mel: LogMel,
    dir: PathBuf,
}

/// The graphs of a model directory.
enum Layout {
    /// hearken's export: `encoder.onnx` and the one-step `decoder.onnx`.
    Hearken {
        encoder: Arc<dyn Graph>,
        decoder: Arc<dyn Graph>,
    },
    /// A Hugging Face optimum export.
    Optimum(Box<OptimumWhisper>),
}

/// One window's encoder output, shared by every hypothesis.
pub struct AudioContext {
    inner: Audio,
}

enum Audio {
    /// Cross-attention keys and values, each `(n_text_layer, 1, n_audio_ctx,
    /// n_text_state)`.
    Hearken { cross_k: Tensor, cross_v: Tensor },
    /// The encoder's `last_hidden_state` `(1, n_audio_ctx, n_audio_state)`; the decoder
    /// derives the cross-attention keys and values from it in its first run.
    Optimum { hidden: Tensor },
}

fn load_checked(
    engine: &dyn Engine,
    path: &Path,
    want: ModelType,
) -> Result<(Arc<dyn Graph>, Contract)> {
    if !path.is_file() {
        return Err(Error::Contract {
            path: path.to_path_buf(),
            reason: format!(
                "missing: a Whisper model directory holds encoder.onnx and decoder.onnx \
                 (export one with `hearken-export convert`), or is {}",
                whisper_optimum::EXPECTED
            ),
        });
    }
    let (graph, contract) = super::load(engine, path)?;
    if contract.model_type != want {
        return Err(Error::Contract {
            path: path.to_path_buf(),
            reason: format!(
                "expected a {} graph, found {}",
                want.as_str(),
                contract.model_type.as_str()
            ),
        });
    }
    Ok((graph, contract))
}

impl WhisperModel {
    /// Loads a Whisper model directory: hearken's export (`encoder.onnx` and
    /// `decoder.onnx`, whose contracts must agree) or a Hugging Face optimum export
    /// (`encoder_model.onnx` with `decoder_model.onnx` + `decoder_with_past_model.onnx`,
    /// preferred, or `decoder_model_merged.onnx`, which tract cannot run; `config.json`,
    /// `generation_config.json` and `tokenizer.json` give the parameters).
    ///
    /// Fails with [`Error::Contract`] when the directory holds neither layout completely
    /// or its files disagree, and with [`Error::ModelLoad`] when an engine cannot load a
    /// graph (tract and an optimum export without `decoder_with_past_model.onnx`).
    pub fn load(engine: &dyn Engine, dir: &Path) -> Result<Self> {
        if !dir.join("encoder.onnx").is_file() && dir.join(whisper_optimum::ENCODER).is_file() {
            let (optimum, params) = OptimumWhisper::load(engine, dir)?;
            return Ok(WhisperModel {
                layout: Layout::Optimum(Box::new(optimum)),
                log_mel: LogMel::whisper(params.n_mels)?,
                params,
                dir: dir.to_path_buf(),
            });
        }
        let (encoder, enc) =
            load_checked(engine, &dir.join("encoder.onnx"), ModelType::WhisperEncoder)?;
        let (decoder, dec) =
            load_checked(engine, &dir.join("decoder.onnx"), ModelType::WhisperDecoder)?;
        let contract_err = |reason: String| Error::Contract {
            path: dir.to_path_buf(),
            reason,
        };
        if enc.head != dec.head || enc.features != dec.features {
            return Err(contract_err(
                "encoder.onnx and decoder.onnx come from different exports (their metadata differ)"
                    .into(),
            ));
        }
        let Head::Whisper { params } = &enc.head else {
            return Err(contract_err("not a Whisper model".into()));
        };
        let params: WhisperParams = serde_json::from_value(params.clone())
            .map_err(|e| contract_err(format!("`hearken.whisper` is incomplete: {e}")))?;
        let FeatureSpec::LogMel { n_mels, .. } = enc.features else {
            return Err(contract_err("Whisper takes log-mel features".into()));
        };
        if n_mels != params.n_mels {
            return Err(contract_err(format!(
                "n_mels is {n_mels} in the features but {} in hearken.whisper",
                params.n_mels
            )));
        }
        Ok(WhisperModel {
            layout: Layout::Hearken { encoder, decoder },
            log_mel: LogMel::whisper(n_mels)?,
            params,
            dir: dir.to_path_buf(),
        })
    }

    /// Dimensions and special tokens.
    pub fn params(&self) -> &WhisperParams {
        &self.params
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The feature extractor matching this model.
    pub fn log_mel(&self) -> &LogMel {
        &self.log_mel
    }

    /// Which graphs run: `"hearken"`, or for optimum exports `"optimum-split"`,
    /// `"optimum-merged"` or `"optimum-no-cache"` (`decoder_model.onnx` alone, every step
    /// recomputing the whole prefix).
    pub fn layout(&self) -> &'static str {
        match &self.layout {
            Layout::Hearken { .. } => "hearken",
            Layout::Optimum(o) => o.layout(),
        }
    }

    /// Runs the encoder on one padded window, `(n_mels, 3000)`.
    pub fn encode(&self, mel: &LogMelFeatures) -> Result<AudioContext> {
        let t = Tensor::from_f32([1, mel.n_mels(), mel.n_frames()], mel.as_slice().to_vec())?;
        let inner = match &self.layout {
            Layout::Hearken { encoder, .. } => {
                let mut out = encoder.run_refs(&[("mel", &t)])?.into_iter();
                let (Some(cross_k), Some(cross_v)) = (out.next(), out.next()) else {
                    return Err(Error::invalid(
                        "encoder outputs",
                        "cross_k, cross_v",
                        "fewer",
                    ));
                };
                Audio::Hearken { cross_k, cross_v }
            }
            Layout::Optimum(o) => Audio::Optimum {
                hidden: o.encode(&t)?,
            },
        };
        Ok(AudioContext { inner })
    }

    /// A decoder state over one window with one empty hypothesis.
    pub fn decoder<'a>(&'a self, audio: &'a AudioContext) -> DecoderState<'a> {
        let cache = match &self.layout {
            Layout::Hearken { .. } => Cache::Hearken {
                self_k: self.empty_cache(1),
                self_v: self.empty_cache(1),
            },
            Layout::Optimum(_) => Cache::Optimum(OptimumCache::new()),
        };
        DecoderState {
            model: self,
            audio,
            cache,
            n_past: 0,
            n_hyp: 1,
        }
    }

    fn empty_cache(&self, n_hyp: usize) -> Tensor {
        let p = &self.params;
        Tensor::zeros_f32([p.n_text_layer, n_hyp, 0, p.n_text_state])
    }
}

/// The self-attention cache of a set of hypotheses over one window.
pub struct DecoderState<'a> {
    model: &'a WhisperModel,
    audio: &'a AudioContext,
    cache: Cache,
    n_past: usize,
    n_hyp: usize,
}

enum Cache {
    /// Each `(n_text_layer, n_hyp, n_past, n_text_state)`.
    Hearken { self_k: Tensor, self_v: Tensor },
    /// Per-layer tensors in optimum's layout.
    Optimum(OptimumCache),
}

impl DecoderState<'_> {
    /// Tokens already in the cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Runs the decoder; returns the logits of each hypothesis' last new position,
    /// `(n_hyp, n_vocab)` row-major.
    fn run(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        let p = &self.model.params;
        if n_hyp == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(n_hyp) {
            return Err(Error::invalid(
                "decoder tokens",
                format!("a multiple of {n_hyp} hypotheses"),
                tokens.len(),
            ));
        }
        if n_hyp != self.n_hyp {
            return Err(Error::invalid(
                "decoder hypotheses",
                format!("{} (reorder first)", self.n_hyp),
                n_hyp,
            ));
        }
        let n_new = tokens.len() / n_hyp;
        if self.n_past + n_new > p.n_text_ctx {
            return Err(Error::invalid(
                "decoder length",
                format!("at most {} tokens", p.n_text_ctx),
                self.n_past + n_new,
            ));
        }
        let logits = match (&self.model.layout, &self.audio.inner, &mut self.cache) {
            (
                Layout::Hearken { decoder, .. },
                Audio::Hearken { cross_k, cross_v },
                Cache::Hearken { self_k, self_v },
            ) => {
                let ids = Tensor::from_i64(
                    [n_hyp, n_new],
                    tokens.iter().map(|&t| i64::from(t)).collect(),
                )?;
                let offset = Tensor::scalar_i64(self.n_past as i64);
                let out = decoder.run_refs(&[
                    ("tokens", &ids),
                    ("self_k", self_k),
                    ("self_v", self_v),
                    ("cross_k", cross_k),
                    ("cross_v", cross_v),
                    ("offset", &offset),
                ])?;
                let [logits, new_k, new_v]: [Tensor; 3] = out
                    .try_into()
                    .map_err(|v: Vec<Tensor>| Error::invalid("decoder outputs", "3", v.len()))?;
                let want = [p.n_text_layer, n_hyp, self.n_past + n_new, p.n_text_state];
                if new_k.shape() != want || new_v.shape() != want {
                    return Err(Error::invalid(
                        "decoder cache shape",
                        format!("{want:?}"),
                        format!("{:?}", new_k.shape()),
                    ));
                }
                *self_k = new_k;
                *self_v = new_v;
                last_positions(logits.into_f32()?, n_hyp, n_new, p.n_vocab)
            }
            (Layout::Optimum(o), Audio::Optimum { hidden }, Cache::Optimum(cache)) => {
                cache.step(o, hidden, tokens, n_hyp, self.n_past)?
            }
            _ => {
                return Err(Error::invalid(
                    "audio context",
                    "the encoder output of the same model",
                    "one from a model of another layout",
                ));
            }
        };
        if logits.len() != n_hyp * p.n_vocab {
            return Err(Error::invalid(
                "decoder logits",
                format!("{n_hyp} × n_vocab = {n_hyp} × {}", p.n_vocab),
                format!("{} values", logits.len()),
            ));
        }
        self.n_past += n_new;
        Ok(logits)
    }
}

/// All logits `(n_hyp, n_new, n_vocab)` → each hypothesis' last position.
fn last_positions(all: Vec<f32>, n_hyp: usize, n_new: usize, n_vocab: usize) -> Vec<f32> {
    if n_new == 1 {
        return all;
    }
    let mut last = Vec::with_capacity(n_hyp * n_vocab);
    for h in 0..n_hyp {
        let start = (h * n_new + n_new - 1) * n_vocab;
        if let Some(row) = all.get(start..start + n_vocab) {
            last.extend_from_slice(row);
        }
    }
    last
}

impl crate::decode::WhisperStep for DecoderState<'_> {
    fn n_vocab(&self) -> usize {
        self.model.params.n_vocab
    }

    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        self.run(tokens, n_hyp)
    }

    fn reorder(&mut self, src: &[usize]) -> Result<()> {
        if let Some(&bad) = src.iter().find(|&&s| s >= self.n_hyp) {
            return Err(Error::invalid(
                "reorder source row",
                format!("< {}", self.n_hyp),
                bad,
            ));
        }
        let p = &self.model.params;
        let (self_k, self_v) = match &mut self.cache {
            Cache::Hearken { self_k, self_v } => (self_k, self_v),
            Cache::Optimum(cache) => {
                cache.reorder(src)?;
                self.n_hyp = src.len();
                return Ok(());
            }
        };
        let row = self.n_past * p.n_text_state;
        let gather = |t: &Tensor| -> Result<Tensor> {
            let data = t.as_f32()?;
            let mut out = Vec::with_capacity(p.n_text_layer * src.len() * row);
            for layer in 0..p.n_text_layer {
                let base = layer * self.n_hyp * row;
                for &s in src {
                    out.extend_from_slice(&data[base + s * row..base + (s + 1) * row]);
                }
            }
            Tensor::from_f32(
                [p.n_text_layer, src.len(), self.n_past, p.n_text_state],
                out,
            )
        };
        *self_k = gather(self_k)?;
        *self_v = gather(self_v)?;
        self.n_hyp = src.len();
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        match &mut self.cache {
            Cache::Hearken { self_k, self_v } => {
                *self_k = self.model.empty_cache(1);
                *self_v = self.model.empty_cache(1);
            }
            Cache::Optimum(cache) => cache.reset(),
        }
        self.n_past = 0;
        self.n_hyp = 1;
        Ok(())
    }
}
