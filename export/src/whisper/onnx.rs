//! Whisper as two ONNX graphs, in the layout hearken's runtime drives.
//!
//! Whisper's decoder attends to the encoder output through per-layer cross-attention keys
//! and values that never change while one 30 s window is decoded. So the encoder graph
//! ends with those projections and returns them, stacked over decoder layers, and the
//! decoder graph takes them as inputs: they are computed once per window, not once per
//! token, and one copy serves every beam (`cross_batch = 1`).
//!
//! ```text
//! encoder.onnx  mel (batch, n_mels, 3000)
//!               -> cross_k, cross_v (n_text_layer, batch, n_audio_ctx, d_model)
//! decoder.onnx  tokens (batch, n_new) i64, offset () i64 = n_past,
//!               self_k, self_v (n_text_layer, batch, n_past, d_model),
//!               cross_k, cross_v (n_text_layer, cross_batch, n_audio_ctx, d_model)
//!               -> logits (batch, n_new, n_vocab),
//!                  new_self_k, new_self_v (n_text_layer, batch, n_past + n_new, d_model)
//! ```
//!
//! The self-attention cache grows by concatenation inside the graph, so a step costs one
//! call and the caller only swaps tensors. `n_past` may be 0 (the first call, with the
//! whole prompt). `cross_batch` is 1 (sequence i of the batch reads the one window) or
//! `batch` (sequence i reads window i); `batch` and `cross_batch` are at most n_text_ctx.
//!
//! Both graphs are plain opset-17 dataflow, without `If`, `Loop` or `Scan`, so that tract
//! runs them as well as ONNX Runtime. Choices made for that, and for speed:
//!
//! - Projections that read the same input share one `MatMul`: q, k and v of a
//!   self-attention; and, in the encoder, the cross-attention k and v of every decoder
//!   layer (one `(d_model, 2 * n_text_layer * d_model)` product, reshaped and split into
//!   `cross_k` and `cross_v`). Heads come from a `Reshape`, never from per-head ops.
//! - The `head_dim^-0.5` attention scale is folded into the q weights and bias at export
//!   (Hugging Face scales q; OpenAI scales q and k by `head_dim^-0.25`: the same product).
//! - The decoder's positions and causal mask are rows of constant tables (the mask in
//!   bool, made additive once per call) picked with `Gather` at `offset + [0, n_new)`,
//!   `[0, n_new)` being a `Slice` of a constant `arange`; the mask's columns are cut at
//!   the key count `n_past + n_new`, read from the inputs' shapes. Every length in the
//!   graph is thus a symbol tract already knows (`n_new`, `n_past`) and can check shapes
//!   with. A causal mask built with `Range` and a comparison fails in tract 0.23.9 at run
//!   time ("Undetermined symbol"), and a `Slice` whose bounds come from the `offset`
//!   value becomes a tract `DynSlice` whose length is a new symbol, unrelated to `n_new`.
//! - Cross-attention folds the batch into the rows of one product per head instead of
//!   broadcasting `cross_batch` in a `MatMul`, which tract gets wrong; see
//!   `cross_attention` (in this file).
//! - The output projection is tied to the token embedding: a `Gemm` with `transB` reads
//!   the embedding table in place, instead of storing a transposed copy.
//!
//! [`Precision::F16`] stores the weight matrices in f16 and casts them back when the model
//! is loaded. [`Precision::Int8`] quantizes the weights of every projection (the `MatMul`s
//! with a constant right operand, the tied output projection included) per output column
//! and runs them as `DynamicQuantizeLinear` → `MatMulInteger`, as ONNX Runtime's
//! `quantize_dynamic` does (see [`crate::onnx::quant`]); the convolutions, embeddings,
//! LayerNorms and biases stay f32. The output projection then stores the embedding table
//! twice, f32 `(n_vocab, d_model)` for the token `Gather` and int8 `(d_model, n_vocab)` for
//! the logits, so the decoder shrinks much less than the encoder (whisper-base: encoder
//! 95.0 → 29.1 MB, decoder 195.7 → 156.6 MB, of which the f32 table is 106 MB); the int8
//! head is still the one that pays at run time, being the largest product of a step.

use std::path::Path;

use candle_core::{DType as CandleDType, Device, Tensor as CandleTensor};
use hearken::engine::{DType, Engine, Tensor};
use hearken::model::contract::{Contract, FeatureSpec, Head, ModelType};

use super::{WhisperCheckpoint, WhisperDims};
use crate::dims;
use crate::error::{Error, Result, candle_err, io_err, runtime_err};
pub use crate::onnx::Precision;
use crate::onnx::layers::{Linear, affine, store_int8_matrix, store_linear, store_tensor};
use crate::onnx::{Conv1d, GraphBuilder, Int8Weight};

/// Sample rate of Whisper's features, in Hz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// STFT size of Whisper's log-mel features, in samples.
pub const N_FFT: usize = 400;
/// STFT hop of Whisper's log-mel features, in samples.
pub const HOP_LENGTH: usize = 160;
/// Length of the window Whisper sees at once, in seconds.
pub const CHUNK_LENGTH_S: u32 = 30;
/// Mel frames of one window: 30 s at 100 frames per second.
pub const N_FRAMES: usize = CHUNK_LENGTH_S as usize * SAMPLE_RATE_HZ as usize / HOP_LENGTH;

/// Epsilon of every Whisper LayerNorm (PyTorch's default).
const LAYER_NORM_EPS: f32 = 1e-5;

/// The two exported graphs, serialized ONNX models.
#[derive(Debug, Clone)]
pub struct WhisperOnnx {
    /// `encoder.onnx`: mel → cross-attention keys and values (see the module docs).
    pub encoder: Vec<u8>,
    /// `decoder.onnx`: one decoding step with a self-attention cache.
    pub decoder: Vec<u8>,
}

/// Exports `ckpt` as hearken's Whisper encoder and decoder graphs (see the module
/// documentation for their inputs and outputs), with the model contract in their
/// metadata.
///
/// Fails with [`Error::MissingTensor`] / [`Error::ShapeMismatch`] /
/// [`Error::UnexpectedTensor`] when a tensor is missing, misshapen or extra,
/// [`Error::CannotExport`] when `n_audio_ctx` is not half of [`N_FRAMES`] or `d_model` does
/// not divide into the heads, and [`Error::InvalidTensor`] when an int8 weight holds a NaN or an
/// infinity.
pub fn export(ckpt: &WhisperCheckpoint, precision: Precision) -> Result<WhisperOnnx> {
    super::import::validate(ckpt)?;
    check_dims(&ckpt.dims)?;
    let w = Weights { ckpt, precision };
    let mut encoder = encoder_graph(&w)?;
    write_metadata(&mut encoder, ckpt, ModelType::WhisperEncoder);
    let mut decoder = decoder_graph(&w)?;
    write_metadata(&mut decoder, ckpt, ModelType::WhisperDecoder);
    Ok(WhisperOnnx {
        encoder: encoder.to_bytes()?,
        decoder: decoder.to_bytes()?,
    })
}

/// [`export`]s `ckpt` and writes `encoder.onnx` and `decoder.onnx` into `dir` (created if
/// needed). Tokenizer files are the caller's to copy (see [`write_model_dir`]).
///
/// Fails as [`export`] does, or with [`Error::Io`] when a file cannot be written.
pub fn write_dir(
    ckpt: &WhisperCheckpoint,
    dir: impl AsRef<Path>,
    precision: Precision,
) -> Result<()> {
    write_graphs(&export(ckpt, precision)?, dir.as_ref())
}

/// The files of a checkpoint directory that the runtime reads beside the graphs: the
/// tokenizer (`tokenizer.json`, or CTranslate2's `vocabulary.txt`) and the feature
/// extractor's settings.
pub const TOKENIZER_FILES: [&str; 3] = [
    "tokenizer.json",
    "vocabulary.txt",
    "preprocessor_config.json",
];

/// Writes a hearken Whisper model directory `dir` (created if needed): `onnx`'s two
/// graphs, and those of [`TOKENIZER_FILES`] that the checkpoint directory `src` has.
///
/// Fails with [`Error::Io`] when a file cannot be written or copied.
pub fn write_model_dir(onnx: &WhisperOnnx, src: &Path, dir: &Path) -> Result<()> {
    write_graphs(onnx, dir)?;
    for name in TOKENIZER_FILES {
        let from = src.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name)).map_err(io_err(&from))?;
        }
    }
    Ok(())
}

/// Writes `encoder.onnx` and `decoder.onnx` into `dir`, created if needed.
fn write_graphs(onnx: &WhisperOnnx, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for (name, bytes) in [
        ("encoder.onnx", &onnx.encoder),
        ("decoder.onnx", &onnx.decoder),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
    }
    Ok(())
}

/// Logits of the exported graphs on `engine` for one window: `tokens` decoded in one
/// call from an empty cache. Returns (n_tokens, n_vocab) row-major.
///
/// `mel`: (n_mels, 3000) row-major log-mel features. Fails with [`Error::Runtime`] when
/// the engine cannot load or run a graph.
pub fn onnx_logits(
    engine: &dyn Engine,
    ckpt: &WhisperCheckpoint,
    onnx: &WhisperOnnx,
    mel: &[f32],
    tokens: &[u32],
) -> Result<Vec<f32>> {
    let d = &ckpt.dims;
    let encoder = engine
        .load_bytes(&onnx.encoder)
        .map_err(runtime_err("loading encoder.onnx"))?;
    let decoder = engine
        .load_bytes(&onnx.decoder)
        .map_err(runtime_err("loading decoder.onnx"))?;
    let mel = Tensor::from_f32([1, d.num_mel_bins, N_FRAMES], mel.to_vec())
        .map_err(runtime_err("mel"))?;
    let cross = encoder
        .run_refs(&[("mel", &mel)])
        .map_err(runtime_err("running encoder.onnx"))?;
    let [cross_k, cross_v] = <[Tensor; 2]>::try_from(cross).map_err(|v| Error::InvalidInput {
        what: "encoder.onnx outputs".into(),
        expected: "2".into(),
        got: v.len().to_string(),
    })?;
    let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    let tokens = Tensor::from_i64([1, ids.len()], ids).map_err(runtime_err("tokens"))?;
    let empty = Tensor::zeros_f32([d.decoder_layers, 1, 0, d.d_model]);
    let out = decoder
        .run_refs(&[
            ("tokens", &tokens),
            ("self_k", &empty),
            ("self_v", &empty),
            ("cross_k", &cross_k),
            ("cross_v", &cross_v),
            ("offset", &Tensor::scalar_i64(0)),
        ])
        .map_err(runtime_err("running decoder.onnx"))?;
    Ok(out.first().map(Tensor::to_f32_vec).unwrap_or_default())
}

/// The `hearken.whisper` metadata object: the dimensions under OpenAI's names
/// (`n_mels`, `n_vocab`, `n_audio_ctx`, `n_audio_state`, `n_audio_head`, `n_audio_layer`,
/// `n_text_ctx`, `n_text_state`, `n_text_head`, `n_text_layer`), next to the fields of
/// [`WhisperTokens`](super::WhisperTokens).
pub fn whisper_params(ckpt: &WhisperCheckpoint) -> serde_json::Value {
    let d = &ckpt.dims;
    let mut params = serde_json::json!({
        "n_mels": d.num_mel_bins,
        "n_vocab": d.vocab_size,
        "n_audio_ctx": d.max_source_positions,
        "n_audio_state": d.d_model,
        "n_audio_head": d.encoder_attention_heads,
        "n_audio_layer": d.encoder_layers,
        "n_text_ctx": d.max_target_positions,
        "n_text_state": d.d_model,
        "n_text_head": d.decoder_attention_heads,
        "n_text_layer": d.decoder_layers,
    });
    if let (Some(map), Ok(serde_json::Value::Object(tokens))) =
        (params.as_object_mut(), serde_json::to_value(&ckpt.tokens))
    {
        map.extend(tokens);
    }
    params
}

/// The model contract of one of the two graphs (`model_type` is
/// [`ModelType::WhisperEncoder`] or [`ModelType::WhisperDecoder`]).
pub fn contract(ckpt: &WhisperCheckpoint, model_type: ModelType) -> Contract {
    Contract {
        model_type,
        architecture: Some("whisper".into()),
        features: FeatureSpec::LogMel {
            sample_rate_hz: SAMPLE_RATE_HZ,
            n_mels: ckpt.dims.num_mel_bins,
            n_fft: N_FFT,
            hop_length: HOP_LENGTH,
            chunk_length_s: CHUNK_LENGTH_S,
        },
        head: Head::Whisper {
            params: whisper_params(ckpt),
        },
    }
}

fn write_metadata(b: &mut GraphBuilder, ckpt: &WhisperCheckpoint, model_type: ModelType) {
    for (k, v) in contract(ckpt, model_type).to_metadata() {
        b.metadata(k, v);
    }
}

fn check_dims(d: &WhisperDims) -> Result<()> {
    if 2 * d.max_source_positions != N_FRAMES {
        return Err(Error::CannotExport {
            architecture: "Whisper".into(),
            reason: format!(
                "n_audio_ctx is {}, but a {CHUNK_LENGTH_S} s window of {N_FRAMES} mel frames \
                 gives {} encoder positions",
                d.max_source_positions,
                N_FRAMES / 2
            ),
        });
    }
    for (what, heads) in [
        ("n_audio_head", d.encoder_attention_heads),
        ("n_text_head", d.decoder_attention_heads),
    ] {
        if heads == 0 || !d.d_model.is_multiple_of(heads) {
            return Err(Error::CannotExport {
                architecture: "Whisper".into(),
                reason: format!(
                    "d_model {} does not split into {what} = {heads} heads",
                    d.d_model
                ),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Weights

/// Reads checkpoint tensors (by Hugging Face name, without the `model.` prefix) and
/// stores them, rearranged for the graph, as initializers named after them: linear
/// weights input-major `(d_in, d_out)` (transposed from PyTorch's `(d_out, d_in)`), q
/// projections pre-scaled, fused projections as `...self_attn.qkv_proj` and
/// `decoder.cross_kv_proj`; in int8, linear weights as `{name}_quantized` and
/// `{name}_scale`.
struct Weights<'a> {
    ckpt: &'a WhisperCheckpoint,
    precision: Precision,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<CandleTensor> {
        let name = format!("model.{name}");
        self.ckpt
            .tensors
            .get(&name)
            .cloned()
            .ok_or(Error::MissingTensor { name })
    }

    /// Stores `t` as initializer `name` (see [`store_tensor`]).
    fn store(&self, b: &mut GraphBuilder, name: &str, t: &CandleTensor) -> Result<String> {
        store_tensor(b, name, t, self.precision)
    }

    /// Stores checkpoint tensor `hf` unchanged, as initializer `hf`.
    fn plain(&self, b: &mut GraphBuilder, hf: &str) -> Result<String> {
        let t = self.get(hf)?;
        self.store(b, hf, &t)
    }

    /// The input-major `(d_in, Σ d_out)` weight and `(Σ d_out)` bias of the linear layers
    /// `projs` (Hugging Face prefixes, e.g. `decoder.layers.0.self_attn.q_proj`) applied
    /// to the same input and concatenated along the output: each is `(scale, prefix)`,
    /// its weight and bias multiplied by `scale`, a missing bias (k_proj) taken as zeros.
    /// Stored as `{name}.weight` and `{name}.bias` (see [`store_linear`]).
    fn fused_linear(
        &self,
        b: &mut GraphBuilder,
        name: &str,
        projs: &[(f64, String)],
    ) -> Result<Linear> {
        let what = format!("fusing `{name}`");
        let mut weights = Vec::with_capacity(projs.len());
        let mut biases = Vec::with_capacity(projs.len());
        for (scale, p) in projs {
            let w = self.get(&format!("{p}.weight"))?;
            let bias_name = format!("model.{p}.bias");
            let bias = match self.ckpt.tensors.get(&bias_name) {
                Some(bias) => bias.clone(),
                None => CandleTensor::zeros(
                    w.dim(0).map_err(candle_err(what.clone()))?,
                    CandleDType::F32,
                    &Device::Cpu,
                )
                .map_err(candle_err(what.clone()))?,
            };
            let scaled = |t: CandleTensor| {
                if *scale == 1.0 {
                    Ok(t)
                } else {
                    t.affine(*scale, 0.0)
                }
            };
            weights.push(
                scaled(w)
                    .and_then(|w| w.t())
                    .map_err(candle_err(what.clone()))?,
            );
            biases.push(scaled(bias).map_err(candle_err(what.clone()))?);
        }
        let w = CandleTensor::cat(&weights, 1).map_err(candle_err(what.clone()))?;
        let bias = CandleTensor::cat(&biases, 0).map_err(candle_err(what))?;
        store_linear(b, name, &w, &bias, self.precision)
    }

    /// [`fused_linear`](Self::fused_linear) of the single layer `prefix`.
    fn linear(&self, b: &mut GraphBuilder, prefix: &str, scale: f64) -> Result<Linear> {
        self.fused_linear(b, prefix, &[(scale, prefix.to_owned())])
    }

    /// The tied output projection in int8: the token embedding `(n_vocab, d_model)`
    /// transposed to `(d_model, n_vocab)` and quantized per vocabulary entry, stored as
    /// `decoder.embed_tokens.weight.t` (next to the f32 table the token `Gather` reads).
    fn output_projection_int8(&self, b: &mut GraphBuilder) -> Result<Int8Weight> {
        let name = "decoder.embed_tokens.weight";
        let what = format!("transposing `{name}`");
        let w = self.get(name)?.t().map_err(candle_err(what))?;
        store_int8_matrix(b, &format!("{name}.t"), &w)
    }

    /// The weights of the self-attention block `attn` (e.g. `encoder.layers.0.self_attn`):
    /// its pre-LayerNorm, q/k/v fused into one linear layer with q scaled by `q_scale`,
    /// and the output projection, as `(layer_norm, qkv, out)`.
    fn self_attention(
        &self,
        b: &mut GraphBuilder,
        attn: &str,
        q_scale: f64,
    ) -> Result<((String, String), Linear, Linear)> {
        let ln = self.layer_norm(b, &format!("{attn}_layer_norm"))?;
        let qkv = self.fused_linear(
            b,
            &format!("{attn}.qkv_proj"),
            &[
                (q_scale, format!("{attn}.q_proj")),
                (1.0, format!("{attn}.k_proj")),
                (1.0, format!("{attn}.v_proj")),
            ],
        )?;
        let out = self.linear(b, &format!("{attn}.out_proj"), 1.0)?;
        Ok((ln, qkv, out))
    }

    /// Stores a LayerNorm's `(weight, bias)`.
    fn layer_norm(&self, b: &mut GraphBuilder, prefix: &str) -> Result<(String, String)> {
        Ok((
            self.plain(b, &format!("{prefix}.weight"))?,
            self.plain(b, &format!("{prefix}.bias"))?,
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Graph pieces

/// [`GraphBuilder::split`] into a fixed number of pieces, as an array.
fn split<const N: usize>(b: &mut GraphBuilder, x: &str, sizes: [i64; N], axis: i64) -> [String; N] {
    let mut parts = b.split(x, &sizes, axis).into_iter();
    // `split` names exactly one output per size.
    std::array::from_fn(|_| parts.next().unwrap_or_default())
}

/// `LayerNormalization` with stored `(weight, bias)`.
fn layer_norm(b: &mut GraphBuilder, x: &str, (w, bias): &(String, String)) -> String {
    b.layer_norm(x, w, Some(bias), LAYER_NORM_EPS)
}

/// `(batch, n, n_head * head_dim)` → `(batch, n_head, n, head_dim)`; with `keys`, the
/// transposed `(batch, n_head, head_dim, n)` that `q @ k` wants.
fn split_heads(
    b: &mut GraphBuilder,
    x: &str,
    n_head: usize,
    head_dim: usize,
    keys: bool,
) -> String {
    let x = b.reshape(x, &[0, 0, n_head as i64, head_dim as i64]);
    b.transpose(&x, if keys { &[0, 2, 3, 1] } else { &[0, 2, 1, 3] })
}

/// `softmax(q @ k_t + mask) @ v` over heads, then merged back and projected by `out`:
/// `q (batch, n_head, n_q, head_dim)` (already scaled), `k_t (batch, n_head, head_dim,
/// n_k)`, `v (batch, n_head, n_k, head_dim)`, optional additive `mask (n_q, n_k)` →
/// `(batch, n_q, d_model)`.
fn attention(
    b: &mut GraphBuilder,
    q: &str,
    k_t: &str,
    v: &str,
    mask: Option<&str>,
    out: &Linear,
    d_model: usize,
) -> String {
    let scores = b.matmul(q, k_t);
    let scores = match mask {
        Some(m) => b.add(&scores, m),
        None => scores,
    };
    let p = b.softmax(&scores, -1);
    let a = b.matmul(&p, v);
    let a = b.transpose(&a, &[0, 2, 1, 3]);
    let a = b.reshape(&a, &[0, 0, d_model as i64]);
    affine(b, &a, out)
}

/// Values shared by every decoder layer's cross-attention, computed once per call (see
/// [`cross_attention`]).
struct CrossShapes {
    /// `(batch, 1, cross_batch, 1)` additive: 0 where sequence `i` may read cross item
    /// `c` (`c == min(i, cross_batch - 1)`), -inf elsewhere.
    bias: String,
    /// `[n_head, batch, n_new, cross_batch, n_audio_ctx]`.
    scores_5d: String,
    /// `[n_head, batch * n_new, cross_batch * n_audio_ctx]`.
    scores_3d: String,
    /// `[batch, n_new, d_model]`.
    out: String,
}

impl CrossShapes {
    /// From the `(1,)` tensors `batch`, `n_new`, `cross_batch`, and `arange` = `[0, 1,
    /// ..., n)` with n at least `batch` and `cross_batch`.
    fn new(
        b: &mut GraphBuilder,
        [batch, n_new, cross_batch]: [&str; 3],
        arange: &str,
        d: &WhisperDims,
    ) -> Self {
        let zero = b.const_i64(&[0]);
        let one = b.const_i64(&[1]);
        let seqs = b.op("Slice", &[arange, &zero, batch, &zero], []);
        let items = b.op("Slice", &[arange, &zero, cross_batch, &zero], []);
        let last = b.sub(cross_batch, &one);
        let wanted = b.op("Min", &[&seqs, &last], []);
        let wanted = b.unsqueeze(&wanted, &[1]);
        let allowed = b.op("Equal", &[&wanted, &items], []);
        let open = b.scalar_f32(0.0);
        let closed = b.scalar_f32(f32::NEG_INFINITY);
        let bias = b.where_(&allowed, &open, &closed);
        let bias = b.unsqueeze(&bias, &[1, 3]);
        let n_head = b.const_i64(&[d.decoder_attention_heads as i64]);
        let n_ctx = b.const_i64(&[d.max_source_positions as i64]);
        let scores_5d = b.concat(&[&n_head, batch, n_new, cross_batch, &n_ctx], 0);
        let rows = b.mul(batch, n_new);
        let cols = b.mul(cross_batch, &n_ctx);
        let scores_3d = b.concat(&[&n_head, &rows, &cols], 0);
        let width = b.const_i64(&[d.d_model as i64]);
        let out = b.concat(&[batch, n_new, &width], 0);
        CrossShapes {
            bias,
            scores_5d,
            scores_3d,
            out,
        }
    }
}

/// Cross-attention of `q (batch, n_new, d_model)` (projected and scaled) over one layer's
/// `k`, `v (cross_batch, n_audio_ctx, d_model)`, where `cross_batch` is 1 (one window's
/// keys shared by a beam) or `batch`; projected by `out` → `(batch, n_new, d_model)`.
///
/// A `MatMul` broadcasting `k`'s batch against `q`'s would be the obvious graph, but
/// tract 0.23.9 gets it wrong: its analysis types that batch `broadcast(batch,
/// cross_batch)` while its typed `MatMul` says `batch` (the load fails on the mismatch),
/// and after optimization the `MatMul` takes the output's batch from whichever operand
/// comes first, `cross_batch` once the keys are packed as the left operand, so the result
/// has 1 row instead of `batch` (with an `Expand` of the queries to make the first two
/// agree). Splitting `batch` into `(cross_batch, batch / cross_batch)` would need a
/// division of symbols, which tract's shapes cannot express; expanding the keys to
/// `batch` would copy them at every step.
///
/// So the batch is folded into the rows instead, and no `MatMul` broadcasts: queries
/// `(n_head, batch * n_new, head_dim)` against keys `(n_head, head_dim, cross_batch *
/// n_audio_ctx)`, with [`CrossShapes::bias`] closing the other items' keys to each
/// sequence before one softmax over all `cross_batch * n_audio_ctx` columns. For a shared
/// window (`cross_batch` = 1) this is exactly the work of the broadcast, in one larger
/// product per head; for `cross_batch` = `batch` it computes `batch` times the needed
/// scores, the price of serving both layouts from one graph on both engines.
#[allow(clippy::too_many_arguments)]
fn cross_attention(
    b: &mut GraphBuilder,
    q: &str,
    k: &str,
    v: &str,
    shapes: &CrossShapes,
    out: &Linear,
    n_head: usize,
    head_dim: usize,
) -> String {
    let (h, hd) = (n_head as i64, head_dim as i64);
    // (batch, n_new, d) -> (n_head, batch * n_new, head_dim)
    let q = b.reshape(q, &[-1, h, hd]);
    let q = b.transpose(&q, &[1, 0, 2]);
    // (cross_batch, T, d) -> (n_head, head_dim, cross_batch * T) and (n_head, cross_batch * T, head_dim)
    let k = b.reshape(k, &[-1, h, hd]);
    let k_t = b.transpose(&k, &[1, 2, 0]);
    let v = b.reshape(v, &[-1, h, hd]);
    let v = b.transpose(&v, &[1, 0, 2]);
    let scores = b.matmul(&q, &k_t);
    let scores = b.op("Reshape", &[&scores, &shapes.scores_5d], []);
    let scores = b.add(&scores, &shapes.bias);
    let scores = b.op("Reshape", &[&scores, &shapes.scores_3d], []);
    let p = b.softmax(&scores, -1);
    let a = b.matmul(&p, &v);
    // (n_head, batch * n_new, head_dim) -> (batch, n_new, d)
    let a = b.transpose(&a, &[1, 0, 2]);
    let a = b.op("Reshape", &[&a, &shapes.out], []);
    affine(b, &a, out)
}

/// Pre-LN feed-forward block with its residual: `x + fc2(gelu(fc1(ln(x))))`.
fn feed_forward(b: &mut GraphBuilder, w: &Weights, x: &str, prefix: &str) -> Result<String> {
    let ln = w.layer_norm(b, &format!("{prefix}.final_layer_norm"))?;
    let fc1 = w.linear(b, &format!("{prefix}.fc1"), 1.0)?;
    let fc2 = w.linear(b, &format!("{prefix}.fc2"), 1.0)?;
    Ok(b.scoped("mlp", |b| {
        let h = layer_norm(b, x, &ln);
        let h = affine(b, &h, &fc1);
        let h = b.gelu_erf(&h);
        let h = affine(b, &h, &fc2);
        b.add(x, &h)
    }))
}

// ---------------------------------------------------------------------------------------
// Encoder

fn encoder_graph(w: &Weights) -> Result<GraphBuilder> {
    let d = &w.ckpt.dims;
    let (d_model, n_head) = (d.d_model, d.encoder_attention_heads);
    let head_dim = d_model / n_head;
    let scale = (head_dim as f64).powf(-0.5);
    let mut b = GraphBuilder::new("whisper_encoder").doc_string(
        "Whisper encoder: log-mel (batch, n_mels, 3000) -> cross-attention keys and values \
         of every decoder layer, (n_text_layer, batch, n_audio_ctx, d_model).",
    );
    let mel = b.input("mel", DType::F32, &dims!["batch", d.num_mel_bins, N_FRAMES]);

    // Convolutional stem: (batch, n_mels, 3000) -> (batch, n_audio_ctx, d_model).
    let conv1 = (
        w.plain(&mut b, "encoder.conv1.weight")?,
        w.plain(&mut b, "encoder.conv1.bias")?,
    );
    let conv2 = (
        w.plain(&mut b, "encoder.conv2.weight")?,
        w.plain(&mut b, "encoder.conv2.bias")?,
    );
    let positions = w.plain(&mut b, "encoder.embed_positions.weight")?;
    let mut x = b.scoped("encoder.stem", |b| {
        let p = Conv1d {
            padding: 1,
            ..Conv1d::default()
        };
        let x = b.conv1d(&mel, &conv1.0, Some(&conv1.1), p);
        let x = b.gelu_erf(&x);
        let x = b.conv1d(&x, &conv2.0, Some(&conv2.1), Conv1d { stride: 2, ..p });
        let x = b.gelu_erf(&x);
        let x = b.transpose(&x, &[0, 2, 1]);
        b.add(&x, &positions)
    });

    for l in 0..d.encoder_layers {
        let prefix = format!("encoder.layers.{l}");
        let attn = format!("{prefix}.self_attn");
        let (ln, qkv, out) = w.self_attention(&mut b, &attn, scale)?;
        x = b.scoped(&attn, |b| {
            let h = layer_norm(b, &x, &ln);
            // One product for q, k, v: (batch, T, 3 d) -> (batch, 3 n_head, T, head_dim),
            // then split along the heads.
            let qkv = affine(b, &h, &qkv);
            let qkv = split_heads(b, &qkv, 3 * n_head, head_dim, false);
            let h = n_head as i64;
            let [q, k, v] = split(b, &qkv, [h, h, h], 1);
            let k_t = b.transpose(&k, &[0, 1, 3, 2]);
            let a = attention(b, &q, &k_t, &v, None, &out, d_model);
            b.add(&x, &a)
        });
        x = b.scoped(&prefix, |b| feed_forward(b, w, &x, &prefix))?;
    }
    let ln = w.layer_norm(&mut b, "encoder.layer_norm")?;
    let x = b.scoped("encoder", |b| layer_norm(b, &x, &ln));

    // Cross-attention keys and values of every decoder layer in one product: columns are
    // [k_0 .. k_{L-1}, v_0 .. v_{L-1}], d_model each.
    let n_layer = d.decoder_layers;
    let projs: Vec<(f64, String)> = ["k_proj", "v_proj"]
        .iter()
        .flat_map(|p| {
            (0..n_layer).map(move |l| (1.0, format!("decoder.layers.{l}.encoder_attn.{p}")))
        })
        .collect();
    let kv = w.fused_linear(&mut b, "decoder.cross_kv_proj", &projs)?;
    let [cross_k, cross_v] = b.scoped("cross_kv", |b| {
        let kv = affine(b, &x, &kv);
        let kv = b.reshape(&kv, &[0, 0, 2 * n_layer as i64, d_model as i64]);
        let kv = b.transpose(&kv, &[2, 0, 1, 3]);
        let l = n_layer as i64;
        split(b, &kv, [l, l], 0)
    });
    let shape = dims![n_layer, "batch", d.max_source_positions, d_model];
    b.output_from(&cross_k, "cross_k", DType::F32, &shape);
    b.output_from(&cross_v, "cross_v", DType::F32, &shape);
    Ok(b)
}

// ---------------------------------------------------------------------------------------
// Decoder

fn decoder_graph(w: &Weights) -> Result<GraphBuilder> {
    let d = &w.ckpt.dims;
    let (d_model, n_head, n_layer) = (d.d_model, d.decoder_attention_heads, d.decoder_layers);
    let (n_ctx, n_vocab) = (d.max_target_positions, d.vocab_size);
    let head_dim = d_model / n_head;
    let scale = (head_dim as f64).powf(-0.5);
    let mut b = GraphBuilder::new("whisper_decoder").doc_string(
        "Whisper decoder step: tokens (batch, n_new) after n_past cached positions -> \
         logits (batch, n_new, n_vocab) and the self-attention cache grown to n_past + n_new.",
    );
    let tokens = b.input("tokens", DType::I64, &dims!["batch", "n_new"]);
    let cache_shape = dims![n_layer, "batch", "n_past", d_model];
    let self_k = b.input("self_k", DType::F32, &cache_shape);
    let self_v = b.input("self_v", DType::F32, &cache_shape);
    let cross_shape = dims![n_layer, "cross_batch", d.max_source_positions, d_model];
    let cross_k = b.input("cross_k", DType::F32, &cross_shape);
    let cross_v = b.input("cross_v", DType::F32, &cross_shape);
    let offset = b.input("offset", DType::I64, &dims![]);

    let embed_tokens = w.plain(&mut b, "decoder.embed_tokens.weight")?;
    let embed_positions = w.plain(&mut b, "decoder.embed_positions.weight")?;
    // visible[i][j]: key j may be seen from position i (j <= i). Stored as bool (a
    // quarter of f32's bytes) and turned additive once per call, after slicing.
    let visible: Vec<bool> = (0..n_ctx)
        .flat_map(|i| (0..n_ctx).map(move |j| j <= i))
        .collect();
    let mask_table =
        Tensor::from_bool([n_ctx, n_ctx], visible).map_err(runtime_err("causal mask"))?;
    let mask_table = b.initializer("decoder.causal_mask", &mask_table);
    let arange =
        Tensor::from_i64([n_ctx], (0..n_ctx as i64).collect()).map_err(runtime_err("arange"))?;
    let arange = b.initializer("decoder.arange", &arange);

    let (mut x, mask, cross) = b.scoped("decoder.embed", |b| {
        // Lengths as 1-D tensors, read from shapes so tract knows them symbolically.
        let n_new = b.op(
            "Shape",
            &[&tokens],
            [("start", 1.into()), ("end", 2.into())],
        );
        let n_past = b.op(
            "Shape",
            &[&self_k],
            [("start", 2.into()), ("end", 3.into())],
        );
        let batch = b.op(
            "Shape",
            &[&tokens],
            [("start", 0.into()), ("end", 1.into())],
        );
        let n_keys = b.add(&n_past, &n_new);
        let zero = b.const_i64(&[0]);
        let axis0 = b.const_i64(&[0]);
        let axis1 = b.const_i64(&[1]);
        // Absolute positions offset + [0, n_new).
        let steps = b.op("Slice", &[&arange, &zero, &n_new, &axis0], []);
        let positions = b.add(&steps, &offset);
        let tok = b.gather(&embed_tokens, &tokens, 0);
        let pos = b.gather(&embed_positions, &positions, 0);
        let x = b.add(&tok, &pos);
        // Rows `positions` of the causal mask, keys [0, n_past + n_new): (n_new, n_keys).
        let rows = b.gather(&mask_table, &positions, 0);
        let visible = b.op("Slice", &[&rows, &zero, &n_keys, &axis1], []);
        let open = b.scalar_f32(0.0);
        let closed = b.scalar_f32(f32::NEG_INFINITY);
        let mask = b.where_(&visible, &open, &closed);
        let cross_batch = b.op(
            "Shape",
            &[&cross_k],
            [("start", 1.into()), ("end", 2.into())],
        );
        let cross = CrossShapes::new(b, [&batch, &n_new, &cross_batch], &arange, d);
        (x, mask, cross)
    });

    let mut new_k = Vec::with_capacity(n_layer);
    let mut new_v = Vec::with_capacity(n_layer);
    for l in 0..n_layer {
        let prefix = format!("decoder.layers.{l}");
        let layer = b.scalar_i64(l as i64);

        // Self-attention over the cache and the new positions.
        let attn = format!("{prefix}.self_attn");
        let (ln, qkv, out) = w.self_attention(&mut b, &attn, scale)?;
        let (y, k_all, v_all) = b.scoped(&attn, |b| {
            let h = layer_norm(b, &x, &ln);
            let qkv = affine(b, &h, &qkv);
            let dm = d_model as i64;
            let [q, k, v] = split(b, &qkv, [dm, dm, dm], -1);
            let past_k = b.gather(&self_k, &layer, 0);
            let past_v = b.gather(&self_v, &layer, 0);
            let k_all = b.concat(&[&past_k, &k], 1);
            let v_all = b.concat(&[&past_v, &v], 1);
            let q = split_heads(b, &q, n_head, head_dim, false);
            let k_t = split_heads(b, &k_all, n_head, head_dim, true);
            let v = split_heads(b, &v_all, n_head, head_dim, false);
            let a = attention(b, &q, &k_t, &v, Some(&mask), &out, d_model);
            (b.add(&x, &a), k_all, v_all)
        });
        x = y;
        new_k.push(k_all);
        new_v.push(v_all);

        // Cross-attention over the encoder's keys and values.
        let attn = format!("{prefix}.encoder_attn");
        let ln = w.layer_norm(&mut b, &format!("{attn}_layer_norm"))?;
        let q_proj = w.linear(&mut b, &format!("{attn}.q_proj"), scale)?;
        let out = w.linear(&mut b, &format!("{attn}.out_proj"), 1.0)?;
        x = b.scoped(&attn, |b| {
            let h = layer_norm(b, &x, &ln);
            let q = affine(b, &h, &q_proj);
            let k = b.gather(&cross_k, &layer, 0);
            let v = b.gather(&cross_v, &layer, 0);
            let a = cross_attention(b, &q, &k, &v, &cross, &out, n_head, head_dim);
            b.add(&x, &a)
        });

        x = b.scoped(&prefix, |b| feed_forward(b, w, &x, &prefix))?;
    }

    let ln = w.layer_norm(&mut b, "decoder.layer_norm")?;
    let head_int8 = match w.precision {
        Precision::Int8 => Some(w.output_projection_int8(&mut b)?),
        _ => None,
    };
    let logits = b.scoped("decoder.head", |b| {
        let x = layer_norm(b, &x, &ln);
        if let Some(head) = &head_int8 {
            // (batch, n_new, d_model) @ (d_model, n_vocab): MatMulInteger broadcasts.
            return b.matmul_int8(&x, head);
        }
        // Tied output projection: logits = x @ embed_tokens^T, as a 2-D Gemm so the table
        // is read in place.
        let flat = b.reshape(&x, &[-1, d_model as i64]);
        let logits = b.gemm(&flat, &embed_tokens, None, true);
        let batch_n = b.shape(&tokens);
        let vocab = b.const_i64(&[n_vocab as i64]);
        let shape = b.concat(&[&batch_n, &vocab], 0);
        b.op("Reshape", &[&logits, &shape], [])
    });
    b.output_from(
        &logits,
        "logits",
        DType::F32,
        &dims!["batch", "n_new", n_vocab],
    );

    let stack = |b: &mut GraphBuilder, per_layer: &[String]| {
        let parts: Vec<String> = per_layer.iter().map(|t| b.unsqueeze(t, &[0])).collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        b.concat(&parts, 0)
    };
    let out_shape = dims![n_layer, "batch", "n_keys", d_model];
    let k = b.scoped("decoder.cache", |b| stack(b, &new_k));
    b.output_from(&k, "new_self_k", DType::F32, &out_shape);
    let v = b.scoped("decoder.cache", |b| stack(b, &new_v));
    b.output_from(&v, "new_self_v", DType::F32, &out_shape);
    Ok(b)
}
