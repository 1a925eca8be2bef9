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
//! `Layout` and cache enums here and in `optimum`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod optimum;
mod params;

pub(crate) use self::optimum::{ENCODER as OPTIMUM_ENCODER, EXPECTED as OPTIMUM_EXPECTED};
use self::optimum::{OptimumCache, OptimumWhisper};
use crate::engine::{Engine, Graph, Tensor};
use crate::features::{LogMel, LogMelFeatures, MelConfig};
use crate::model::{Contract, FeatureSpec, Head, ModelType};
use crate::text::WhisperTokenizer;
use crate::{Error, Result};

pub use params::{HfGenerationConfig, WhisperParams, first_token_id};

/// A loaded Whisper model: shared across threads and streams.
pub struct WhisperModel {
    layout: Layout,
    params: WhisperParams,
    log_mel: LogMel,
    tokenizer: WhisperTokenizer,
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
                optimum::EXPECTED
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
    /// Loads hearken's Whisper export from `dir`: `encoder.onnx` and `decoder.onnx`, whose
    /// contracts must agree, and the tokenizer files. Reached through
    /// [`crate::model::open`], which chooses the layout.
    ///
    /// Fails with [`Error::Contract`] when a file is missing or the files disagree.
    pub(crate) fn load_hearken(engine: &dyn Engine, dir: &Path) -> Result<Self> {
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
        let FeatureSpec::LogMel {
            sample_rate_hz,
            n_mels,
            n_fft,
            hop_length,
            chunk_length_s,
        } = enc.features
        else {
            return Err(contract_err("Whisper takes log-mel features".into()));
        };
        if n_mels != params.n_mels {
            return Err(contract_err(format!(
                "n_mels is {n_mels} in the features but {} in hearken.whisper",
                params.n_mels
            )));
        }
        // The window, hop and rate the model was exported with; the contract reader has
        // checked they are positive.
        let n_samples = chunk_length_s as usize * sample_rate_hz as usize;
        let log_mel = LogMel::new(MelConfig {
            feature_size: n_mels,
            sampling_rate: sample_rate_hz,
            hop_length,
            n_fft,
            chunk_length: chunk_length_s as usize,
            n_samples,
            nb_max_frames: n_samples / hop_length.max(1),
            ..MelConfig::whisper(n_mels)
        })?;
        Ok(WhisperModel {
            layout: Layout::Hearken { encoder, decoder },
            log_mel,
            tokenizer: WhisperTokenizer::from_dir(dir)?,
            params,
            dir: dir.to_path_buf(),
        })
    }

    /// Loads a Hugging Face optimum export from `dir` as it is: `encoder_model.onnx` with
    /// `decoder_model.onnx` + `decoder_with_past_model.onnx` (preferred) or
    /// `decoder_model_merged.onnx` (which tract cannot run); `config.json`,
    /// `generation_config.json` and `tokenizer.json` give the parameters. Reached through
    /// [`crate::model::open`].
    ///
    /// Fails with [`Error::Contract`] when the files are incomplete or disagree, and with
    /// [`Error::ModelLoad`] when the engine cannot run the decoders there are (tract
    /// without `decoder_with_past_model.onnx`).
    pub(crate) fn load_optimum(engine: &dyn Engine, dir: &Path) -> Result<Self> {
        let (optimum, params) = OptimumWhisper::load(engine, dir)?;
        Ok(WhisperModel {
            layout: Layout::Optimum(Box::new(optimum)),
            log_mel: LogMel::whisper(params.n_mels)?,
            tokenizer: WhisperTokenizer::from_dir(dir)?,
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

    /// The tokenizer of the model directory (`tokenizer.json`, and `vocabulary.txt` when
    /// present).
    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// The execution providers the graphs really run on.
    pub fn providers(&self) -> Vec<crate::engine::ExecutionProvider> {
        match &self.layout {
            Layout::Hearken { encoder, .. } => encoder.providers().to_vec(),
            Layout::Optimum(o) => o.providers(),
        }
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
