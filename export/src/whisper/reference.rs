//! A candle reference forward pass for a [`WhisperCheckpoint`], to check exports against.
//!
//! This is OpenAI's `whisper/model.py` as ported by candle-transformers
//! (`candle_transformers::models::whisper::model`, v0.11.1), rebuilt here instead of
//! called because that port deviates from the original in two ways that matter for a
//! numerical reference (its fields are private, so neither can be patched from outside):
//!
//! - it uses the tanh approximation of GELU (`Tensor::gelu`), where OpenAI and
//!   transformers use the exact erf form (`nn.GELU()`, `ACT2FN["gelu"]`); the difference
//!   is up to ~5e-4 per activation and accumulates through the layers;
//! - it recomputes the encoder's sinusoidal positions instead of reading
//!   `model.encoder.embed_positions.weight`, so a checkpoint whose stored positions differ
//!   (rounded to f16 by CTranslate2, say) would run with other weights than the export.
//!
//! Apart from those, the structure and the order of operations are candle's (and
//! OpenAI's): pre-LayerNorm residual blocks, `d_head^-1/4` applied to both `q` and `k`,
//! a key projection without bias, a causal mask on decoder self-attention, and logits
//! from the tied token embedding. A unit test checks this port against
//! candle-transformers' model on a random checkpoint.
//!
//! There is no KV cache: every call runs the decoder over the full token sequence, so the
//! reference is simple enough to trust, and slow enough to use only in tests. Inputs are
//! one utterance (batch 1); shapes below omit the batch axis.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear};

use super::{WhisperCheckpoint, WhisperDims, WhisperTokens};
use crate::error::{Error, Result, candle_err};

/// `eps` of every LayerNorm in Whisper (`nn.LayerNorm` default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Multi-head attention.
// https://github.com/openai/whisper/blob/f572f2161ba831bae131364c3bffdead7af6d210/whisper/model.py#L62
#[derive(Debug, Clone)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: usize,
}

impl Attention {
    fn load(t: &Tensors<'_>, prefix: &str, n_head: usize) -> Result<Self> {
        Ok(Attention {
            query: t.linear(&format!("{prefix}.q_proj"), true)?,
            key: t.linear(&format!("{prefix}.k_proj"), false)?,
            value: t.linear(&format!("{prefix}.v_proj"), true)?,
            out: t.linear(&format!("{prefix}.out_proj"), true)?,
            n_head,
        })
    }

    /// (1, n, d) -> (1, n_head, n, d_head), pre-scaled by `d_head^-1/4` (OpenAI scales
    /// `q` and `k` each by the fourth root rather than `qk` by the square root).
    fn heads(&self, x: &Tensor, scale: bool) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let x = x
            .reshape((b, n, self.n_head, d / self.n_head))?
            .transpose(1, 2)?;
        if scale {
            (x * ((d / self.n_head) as f64).powf(-0.25))?.contiguous()
        } else {
            x.contiguous()
        }
    }

    /// Keys and values of `xa` (1, n_kv, d), split into heads and scaled: what the
    /// cross-attention of every decoding step reuses.
    fn key_value(&self, xa: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let k = self.heads(&self.key.forward(xa)?, true)?;
        let v = self.heads(&self.value.forward(xa)?, false)?;
        Ok((k, v))
    }

    /// x: (1, n, d); keys/values from [`Attention::key_value`]; mask: (n, n_kv) additive.
    fn forward(
        &self,
        x: &Tensor,
        kv: &(Tensor, Tensor),
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let q = self.heads(&self.query.forward(x)?, true)?;
        let (k, v) = kv;
        let mut qk = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            qk = qk.broadcast_add(mask)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&qk)?;
        let wv = w.matmul(v)?.transpose(1, 2)?.flatten_from(2)?;
        self.out.forward(&wv)
    }

    fn self_attention(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.forward(x, &self.key_value(x)?, mask)
    }
}

/// Which GELU the feed-forward layers and encoder convolutions apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gelu {
    /// `0.5 x (1 + erf(x / √2))`: OpenAI's and transformers'.
    Erf,
    /// The tanh approximation, as candle-transformers' port uses (kept for the test that
    /// compares with it).
    #[cfg_attr(not(test), allow(dead_code))]
    Tanh,
}

impl Gelu {
    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Gelu::Erf => x.gelu_erf(),
            Gelu::Tanh => x.gelu(),
        }
    }
}

/// A pre-LayerNorm residual block, with cross-attention in the decoder.
// https://github.com/openai/whisper/blob/f572f2161ba831bae131364c3bffdead7af6d210/whisper/model.py#L111
#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross_attn: Option<(Attention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(t: &Tensors<'_>, prefix: &str, n_head: usize, cross: bool) -> Result<Self> {
        let cross_attn = if cross {
            Some((
                Attention::load(t, &format!("{prefix}.encoder_attn"), n_head)?,
                t.layer_norm(&format!("{prefix}.encoder_attn_layer_norm"))?,
            ))
        } else {
            None
        };
        Ok(Block {
            attn: Attention::load(t, &format!("{prefix}.self_attn"), n_head)?,
            attn_ln: t.layer_norm(&format!("{prefix}.self_attn_layer_norm"))?,
            cross_attn,
            fc1: t.linear(&format!("{prefix}.fc1"), true)?,
            fc2: t.linear(&format!("{prefix}.fc2"), true)?,
            mlp_ln: t.layer_norm(&format!("{prefix}.final_layer_norm"))?,
        })
    }

    /// x: (1, n, d); cross_kv: this block's keys/values of the encoder output.
    fn forward(
        &self,
        x: &Tensor,
        cross_kv: Option<&(Tensor, Tensor)>,
        mask: Option<&Tensor>,
        gelu: Gelu,
    ) -> candle_core::Result<Tensor> {
        let mut x = (x + self.attn.self_attention(&self.attn_ln.forward(x)?, mask)?)?;
        if let (Some((attn, ln)), Some(kv)) = (&self.cross_attn, cross_kv) {
            x = (&x + attn.forward(&ln.forward(&x)?, kv, None)?)?;
        }
        let h = gelu.apply(&self.fc1.forward(&self.mlp_ln.forward(&x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

/// Tensors of a checkpoint by name, failing with [`Error::MissingTensor`].
struct Tensors<'a>(&'a WhisperCheckpoint);

impl Tensors<'_> {
    fn get(&self, name: &str) -> Result<Tensor> {
        self.0
            .tensors
            .get(name)
            .cloned()
            .ok_or_else(|| Error::MissingTensor { name: name.into() })
    }

    fn linear(&self, prefix: &str, bias: bool) -> Result<Linear> {
        let b = if bias {
            Some(self.get(&format!("{prefix}.bias"))?)
        } else {
            None
        };
        Ok(Linear::new(self.get(&format!("{prefix}.weight"))?, b))
    }

    fn layer_norm(&self, prefix: &str) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(&format!("{prefix}.weight"))?,
            self.get(&format!("{prefix}.bias"))?,
            LAYER_NORM_EPS,
        ))
    }

    fn conv(&self, prefix: &str, stride: usize) -> Result<Conv1d> {
        let config = Conv1dConfig {
            padding: 1,
            stride,
            dilation: 1,
            groups: 1,
            cudnn_fwd_algo: None,
        };
        Ok(Conv1d::new(
            self.get(&format!("{prefix}.weight"))?,
            Some(self.get(&format!("{prefix}.bias"))?),
            config,
        ))
    }
}

/// The encoder output of one utterance, with each decoder layer's cross-attention keys
/// and values precomputed from it (they are the same at every decoding step).
#[derive(Debug, Clone)]
pub struct Encoded {
    /// (n_audio_ctx, d_model): the encoder output.
    output: Tensor,
    cross_kv: Vec<(Tensor, Tensor)>,
}

impl Encoded {
    /// The encoder output, (n_audio_ctx, d_model), where n_audio_ctx = ⌈n_frames / 2⌉
    /// (1500 for a padded 30 s window).
    pub fn output(&self) -> &Tensor {
        &self.output
    }
}

/// A Whisper model in candle, built from a [`WhisperCheckpoint`], running on the CPU in
/// f32. See the module documentation for how it relates to candle-transformers.
#[derive(Debug, Clone)]
pub struct Reference {
    dims: WhisperDims,
    tokens: WhisperTokens,
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder_blocks: Vec<Block>,
    encoder_ln: LayerNorm,
    token_embedding: Tensor,
    decoder_positions: Tensor,
    decoder_blocks: Vec<Block>,
    decoder_ln: LayerNorm,
    gelu: Gelu,
}

impl Reference {
    /// Builds the model from `ckpt`'s tensors (shared, not copied).
    ///
    /// Fails with [`Error::MissingTensor`] / [`Error::ShapeMismatch`] /
    /// [`Error::UnexpectedTensor`] when the tensors do not match the dimensions.
    pub fn new(ckpt: &WhisperCheckpoint) -> Result<Self> {
        super::import::validate(ckpt)?;
        let t = Tensors(ckpt);
        let d = &ckpt.dims;
        let blocks = |side: &str, n: usize, n_head: usize, cross: bool| {
            (0..n)
                .map(|i| Block::load(&t, &format!("model.{side}.layers.{i}"), n_head, cross))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Reference {
            dims: d.clone(),
            tokens: ckpt.tokens.clone(),
            conv1: t.conv("model.encoder.conv1", 1)?,
            conv2: t.conv("model.encoder.conv2", 2)?,
            encoder_positions: t.get("model.encoder.embed_positions.weight")?,
            encoder_blocks: blocks(
                "encoder",
                d.encoder_layers,
                d.encoder_attention_heads,
                false,
            )?,
            encoder_ln: t.layer_norm("model.encoder.layer_norm")?,
            token_embedding: t.get("model.decoder.embed_tokens.weight")?,
            decoder_positions: t.get("model.decoder.embed_positions.weight")?,
            decoder_blocks: blocks("decoder", d.decoder_layers, d.decoder_attention_heads, true)?,
            decoder_ln: t.layer_norm("model.decoder.layer_norm")?,
            gelu: Gelu::Erf,
        })
    }

    /// The model's dimensions.
    pub fn dims(&self) -> &WhisperDims {
        &self.dims
    }

    /// The model's special tokens.
    pub fn tokens(&self) -> &WhisperTokens {
        &self.tokens
    }

    /// Runs the encoder on `mel`: (n_mels, n_frames) row-major log-mel features (the
    /// runtime pads to n_frames = 2 * n_audio_ctx = 3000; fewer frames are accepted for
    /// cheap tests and give ⌈n_frames / 2⌉ positions).
    ///
    /// Fails with [`Error::InvalidInput`] when `mel.len()` is not a positive multiple of
    /// `n_mels` with at most 2 * n_audio_ctx frames.
    pub fn encode(&self, mel: &[f32]) -> Result<Encoded> {
        let n_mels = self.dims.num_mel_bins;
        let max_frames = 2 * self.dims.max_source_positions;
        let n_frames = mel.len() / n_mels.max(1);
        if n_mels == 0
            || !mel.len().is_multiple_of(n_mels)
            || n_frames == 0
            || n_frames > max_frames
        {
            return Err(Error::InvalidInput {
                what: "mel".into(),
                expected: format!("(n_mels = {n_mels}, n_frames in 1..={max_frames}) values"),
                got: format!("{} values", mel.len()),
            });
        }
        let run = || -> candle_core::Result<Encoded> {
            let x = Tensor::from_slice(mel, (1, n_mels, n_frames), &Device::Cpu)?;
            let x = self.gelu.apply(&self.conv1.forward(&x)?)?;
            let x = self.gelu.apply(&self.conv2.forward(&x)?)?.transpose(1, 2)?;
            let n_ctx = x.dim(1)?;
            let mut x = x.broadcast_add(&self.encoder_positions.narrow(0, 0, n_ctx)?)?;
            for block in &self.encoder_blocks {
                x = block.forward(&x, None, None, self.gelu)?;
            }
            let x = self.encoder_ln.forward(&x)?;
            let cross_kv = self
                .decoder_blocks
                .iter()
                .filter_map(|b| b.cross_attn.as_ref())
                .map(|(attn, _)| attn.key_value(&x))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Encoded {
                output: x.squeeze(0)?,
                cross_kv,
            })
        };
        run().map_err(candle_err("running the reference encoder"))
    }

    /// The encoder output for `mel` (see [`Reference::encode`]): (n_audio_ctx, d_model).
    pub fn encoder_output(&self, mel: &[f32]) -> Result<Tensor> {
        Ok(self.encode(mel)?.output)
    }

    /// Decoder logits for every position of `tokens` given an encoded utterance:
    /// (n_tokens, vocab_size) row-major, row `i` predicting the token after `tokens[i]`.
    ///
    /// Fails with [`Error::InvalidInput`] when `tokens` is empty, longer than
    /// n_text_ctx, or holds an id outside the vocabulary.
    pub fn decoder_logits(&self, encoded: &Encoded, tokens: &[u32]) -> Result<Vec<f32>> {
        self.check_tokens(tokens)?;
        let n = tokens.len();
        let run = || -> candle_core::Result<Vec<f32>> {
            let device = Device::Cpu;
            let ids = Tensor::from_slice(tokens, n, &device)?;
            let x = self.token_embedding.index_select(&ids, 0)?;
            let x = (x + self.decoder_positions.narrow(0, 0, n)?)?.unsqueeze(0)?;
            let mask: Vec<f32> = (0..n)
                .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            let mask = Tensor::from_vec(mask, (n, n), &device)?;
            let mut x = x;
            for (block, kv) in self.decoder_blocks.iter().zip(&encoded.cross_kv) {
                x = block.forward(&x, Some(kv), Some(&mask), self.gelu)?;
            }
            let x = self.decoder_ln.forward(&x)?.squeeze(0)?;
            x.matmul(&self.token_embedding.t()?)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()
        };
        run().map_err(candle_err("running the reference decoder"))
    }

    /// [`Reference::encode`] then [`Reference::decoder_logits`]: (n_tokens, vocab_size).
    pub fn logits(&self, mel: &[f32], tokens: &[u32]) -> Result<Vec<f32>> {
        let encoded = self.encode(mel)?;
        self.decoder_logits(&encoded, tokens)
    }

    /// Greedy decoding after `prompt` (e.g. `[sot, lang, transcribe, notimestamps]`):
    /// at each step the argmax (lowest id on ties) of the last row of logits, with
    /// `suppress_tokens` masked at every step and `begin_suppress_tokens` at the first;
    /// stops at `<|endoftext|>`, after `max_new_tokens`, or when the context is full.
    /// Returns the new tokens, without the prompt and the final `<|endoftext|>`.
    ///
    /// These are OpenAI's `SuppressTokens` and `SuppressBlank` filters and nothing else
    /// (no timestamp rules, no temperature fallback): a fixed rule that an exported
    /// model's decoding can be compared with token for token.
    pub fn greedy(&self, mel: &[f32], prompt: &[u32], max_new_tokens: usize) -> Result<Vec<u32>> {
        let encoded = self.encode(mel)?;
        self.greedy_encoded(&encoded, prompt, max_new_tokens)
    }

    /// [`Reference::greedy`] on an already encoded utterance.
    pub fn greedy_encoded(
        &self,
        encoded: &Encoded,
        prompt: &[u32],
        max_new_tokens: usize,
    ) -> Result<Vec<u32>> {
        let vocab = self.dims.vocab_size;
        let mut tokens = prompt.to_vec();
        let mut new = Vec::new();
        while new.len() < max_new_tokens && tokens.len() < self.dims.max_target_positions {
            let logits = self.decoder_logits(encoded, &tokens)?;
            let mut last = logits[logits.len() - vocab..].to_vec();
            let mut suppress = |ids: &[u32]| {
                for &id in ids {
                    if let Some(l) = last.get_mut(id as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            };
            suppress(&self.tokens.suppress_tokens);
            if new.is_empty() {
                suppress(&self.tokens.begin_suppress_tokens);
            }
            let next = argmax(&last);
            if next == self.tokens.eot {
                break;
            }
            tokens.push(next);
            new.push(next);
        }
        Ok(new)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let n_ctx = self.dims.max_target_positions;
        let vocab = self.dims.vocab_size;
        if tokens.is_empty() || tokens.len() > n_ctx {
            return Err(Error::InvalidInput {
                what: "tokens".into(),
                expected: format!("1..={n_ctx} tokens"),
                got: format!("{} tokens", tokens.len()),
            });
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidInput {
                what: "token id".into(),
                expected: format!("an id below the vocabulary size {vocab}"),
                got: bad.to_string(),
            });
        }
        Ok(())
    }
}

/// Index of the largest value, the lowest one on ties (NaN never wins).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_nn::VarBuilder;
    use candle_transformers::models::whisper::{Config, model::Whisper};

    use super::*;
    use crate::whisper::random::tiny_random;

    fn mel(n_mels: usize, n_frames: usize, seed: u32) -> Vec<f32> {
        (0..n_mels * n_frames)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn argmax_takes_lowest_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    }

    #[test]
    fn rejects_bad_inputs() {
        let ckpt = tiny_random(1, 80, true);
        let r = Reference::new(&ckpt).unwrap();
        assert!(r.encode(&[0.0; 79]).is_err());
        assert!(r.encode(&[]).is_err());
        assert!(r.encode(&vec![0.0; 80 * 3001]).is_err());
        let enc = r.encode(&mel(80, 20, 1)).unwrap();
        assert_eq!(enc.output().dims(), &[10, 64]);
        assert!(r.decoder_logits(&enc, &[]).is_err());
        assert!(
            r.decoder_logits(&enc, &[ckpt.dims.vocab_size as u32])
                .is_err()
        );
    }

    /// This port against candle-transformers' Whisper on the same weights: with candle's
    /// tanh-GELU the two must agree to float rounding (the random model stores exact
    /// sinusoids, which candle recomputes); with the exact GELU they still agree closely.
    #[test]
    fn matches_candle_transformers() {
        let ckpt = tiny_random(7, 80, true);
        let r = Reference::new(&ckpt).unwrap();
        let d = &ckpt.dims;
        let config = Config {
            num_mel_bins: d.num_mel_bins,
            max_source_positions: d.max_source_positions,
            d_model: d.d_model,
            encoder_attention_heads: d.encoder_attention_heads,
            encoder_layers: d.encoder_layers,
            vocab_size: d.vocab_size,
            max_target_positions: d.max_target_positions,
            decoder_attention_heads: d.decoder_attention_heads,
            decoder_layers: d.decoder_layers,
            suppress_tokens: vec![],
        };
        let tensors: HashMap<String, Tensor> = ckpt
            .tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let mut upstream = Whisper::load(&vb, config).unwrap();

        let n_frames = 3000;
        let mel = mel(80, n_frames, 3);
        let tokens = [ckpt.tokens.sot, ckpt.tokens.transcribe, 5, 77, 220];
        let x = Tensor::from_slice(&mel, (1, 80, n_frames), &Device::Cpu).unwrap();
        let enc_up = upstream.encoder.forward(&x, true).unwrap();
        let ids = Tensor::from_slice(&tokens, (1, tokens.len()), &Device::Cpu).unwrap();
        let hidden = upstream.decoder.forward(&ids, &enc_up, true).unwrap();
        let logits_up: Vec<f32> = upstream
            .decoder
            .final_linear(&hidden)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();

        let max_abs = logits_up.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        let compare = |r: &Reference| {
            let enc = r.encode(&mel).unwrap();
            let enc_diff = (enc.output() - enc_up.squeeze(0).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let logits = r.decoder_logits(&enc, &tokens).unwrap();
            let logit_diff = logits
                .iter()
                .zip(&logits_up)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            (enc_diff, logit_diff)
        };
        let tanh = Reference {
            gelu: Gelu::Tanh,
            ..r.clone()
        };
        let (enc_diff, logit_diff) = compare(&tanh);
        assert!(enc_diff < 1e-4, "tanh-GELU encoder differs by {enc_diff}");
        assert!(
            logit_diff < 1e-4 * max_abs.max(1.0),
            "tanh-GELU logits differ by {logit_diff} (max |logit| {max_abs})"
        );
        let (enc_diff, logit_diff) = compare(&r);
        assert!(
            enc_diff > 0.0 && enc_diff < 2e-2,
            "encoder differs by {enc_diff}"
        );
        assert!(
            logit_diff < 2e-2 * max_abs.max(1.0),
            "logits differ by {logit_diff} (max |logit| {max_abs})"
        );
    }
}
