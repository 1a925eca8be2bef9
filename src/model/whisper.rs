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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::engine::{Engine, Graph, Tensor};
use crate::features::{LogMel, LogMelFeatures};
use crate::model::{Contract, FeatureSpec, Head, ModelType};
use crate::{Error, Result};

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
    encoder: Arc<dyn Graph>,
    decoder: Arc<dyn Graph>,
    params: WhisperParams,
    log_mel: LogMel,
    dir: PathBuf,
}

/// One window's encoder output: cross-attention keys and values, each
/// `(n_text_layer, 1, n_audio_ctx, n_text_state)`. Shared by every hypothesis.
pub struct AudioContext {
    cross_k: Tensor,
    cross_v: Tensor,
}

fn load_checked(
    engine: &dyn Engine,
    path: &Path,
    want: ModelType,
) -> Result<(Arc<dyn Graph>, Contract)> {
    if !path.is_file() {
        return Err(Error::Contract {
            path: path.to_path_buf(),
            reason: "missing: a Whisper model directory holds encoder.onnx and decoder.onnx \
                     (export one with `hearken-export convert`)"
                .into(),
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
    /// Loads `encoder.onnx` and `decoder.onnx` from a hearken model directory and checks
    /// that their contracts agree.
    pub fn load(engine: &dyn Engine, dir: &Path) -> Result<Self> {
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
            encoder,
            decoder,
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

    /// Runs the encoder on one padded window, `(n_mels, 3000)`.
    pub fn encode(&self, mel: &LogMelFeatures) -> Result<AudioContext> {
        let t = Tensor::from_f32([1, mel.n_mels(), mel.n_frames()], mel.as_slice().to_vec())?;
        let mut out = self.encoder.run_refs(&[("mel", &t)])?.into_iter();
        let (Some(cross_k), Some(cross_v)) = (out.next(), out.next()) else {
            return Err(Error::invalid(
                "encoder outputs",
                "cross_k, cross_v",
                "fewer",
            ));
        };
        Ok(AudioContext { cross_k, cross_v })
    }

    /// A decoder state over one window with one empty hypothesis.
    pub fn decoder<'a>(&'a self, audio: &'a AudioContext) -> DecoderState<'a> {
        DecoderState {
            model: self,
            audio,
            self_k: self.empty_cache(1),
            self_v: self.empty_cache(1),
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
    /// `(n_text_layer, n_hyp, n_past, n_text_state)`.
    self_k: Tensor,
    self_v: Tensor,
    n_past: usize,
    n_hyp: usize,
}

impl DecoderState<'_> {
    /// Tokens already in the cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Runs the decoder; returns all logits `(n_hyp, n_new, n_vocab)` row-major.
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
        let ids = Tensor::from_i64(
            [n_hyp, n_new],
            tokens.iter().map(|&t| i64::from(t)).collect(),
        )?;
        let offset = Tensor::scalar_i64(self.n_past as i64);
        let out = self.model.decoder.run_refs(&[
            ("tokens", &ids),
            ("self_k", &self.self_k),
            ("self_v", &self.self_v),
            ("cross_k", &self.audio.cross_k),
            ("cross_v", &self.audio.cross_v),
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
        self.self_k = new_k;
        self.self_v = new_v;
        self.n_past += n_new;
        logits.into_f32()
    }
}

impl crate::decode::WhisperStep for DecoderState<'_> {
    fn n_vocab(&self) -> usize {
        self.model.params.n_vocab
    }

    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        let n_new = tokens.len() / n_hyp.max(1);
        let n_vocab = self.model.params.n_vocab;
        let all = self.run(tokens, n_hyp)?;
        if n_new == 1 {
            return Ok(all);
        }
        // Keep each hypothesis' last position only.
        let mut last = Vec::with_capacity(n_hyp * n_vocab);
        for h in 0..n_hyp {
            let start = (h * n_new + n_new - 1) * n_vocab;
            last.extend_from_slice(&all[start..start + n_vocab]);
        }
        Ok(last)
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
        self.self_k = gather(&self.self_k)?;
        self.self_v = gather(&self.self_v)?;
        self.n_hyp = src.len();
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        self.self_k = self.model.empty_cache(1);
        self.self_v = self.model.empty_cache(1);
        self.n_past = 0;
        self.n_hyp = 1;
        Ok(())
    }
}
