//! Wav2Vec2 and HuBERT as one ONNX graph, in the layout hearken's runtime drives.
//!
//! ```text
//! model.onnx  waveform (batch, n_samples) f32, attention_mask (batch, n_samples) i64
//!             -> logits (batch, n_frames, vocab)     CTC (`*ForCTC`)
//!                logits (batch, n_labels)            classification (`*ForSequenceClassification`)
//! ```
//!
//! The waveform arrives already normalized when the contract says so (the runtime does it,
//! per utterance over the real samples, as `Wav2Vec2FeatureExtractor` does), and padded
//! rows carry zeros past their length. `attention_mask` is 1 on real samples: only its
//! row sums are read, as Hugging Face reads them, so a right-padded batch gives each row
//! the logits it has alone, up to float rounding (the `group` feature encoder excepted:
//! its per-channel normalization runs over the padding too, as upstream's does, which is
//! why such checkpoints are meant to be run without padding).
//!
//! The graph is Hugging Face's forward pass op for op, in plain opset-17 dataflow (no
//! `If`, `Loop` or `Scan`) that tract runs as well as ONNX Runtime:
//!
//! - Feature encoder: 7 strided `Conv`s, each followed by its norm and an erf GELU. The
//!   `group` norm (`GroupNorm` with one group per channel, first layer only) normalizes
//!   each (item, channel) row over time; it is written out as `ReduceMean`s rather than
//!   `InstanceNormalization` (or opset 18's `GroupNormalization`, which tract lacks) so
//!   that its statistics can be taken in f64 (see `channel_norm`: in f32 both engines
//!   lose ~25 times PyTorch's accuracy there). `layer` norms are `LayerNormalization`
//!   over channels between two transposes.
//! - Frame mask: the row sums of `attention_mask` go through the conv arithmetic,
//!   `floor((n - k) / s) + 1` per layer (in i64, clamped at 0 so that integer division,
//!   which truncates, agrees with the floor), and are compared with frame indices made by
//!   a `CumSum` over a `ConstantOfShape` of the frame count. Nothing depends on a `Range`
//!   (tract 0.23.9 mis-optimizes masks built from one) or on a constant table (which
//!   would bound the input length).
//! - Padded frames are zeroed before the positional convolution and closed to attention
//!   by an additive `(batch, 1, 1, n_frames)` key bias; classification pools over valid
//!   frames only.
//! - Attention: q, k and v share one `MatMul`, the `head_dim^-0.5` scale is folded into
//!   the q weights, and scores are 4-D `MatMul`s whose batch dimensions match exactly
//!   (tract mis-handles broadcasting ones).
//! - The weighted layer sum (`use_weighted_layer_sum`) mixes the `num_hidden_layers + 1`
//!   hidden states of transformers 4.x's `output_hidden_states`: the input of the first
//!   layer, then each layer's output, the last one through a stable-layer-norm encoder's
//!   final LayerNorm. That is the convention s3prl uses and the released SUPERB
//!   classifiers (stable encoders with a weighted sum) were trained with, and the one the
//!   candle model ([`super::model`]) follows, so the parity gate compares like with like.
//!   transformers 5 collects the layers' outputs by hooks instead, so its last entry is
//!   the last layer's output *before* that LayerNorm; the two agree for post-LN encoders
//!   and differ only for a stable encoder with a weighted sum.
//!
//! [`Precision::F16`] stores the weight matrices and kernels in f16, cast back to f32
//! when the model is loaded. [`Precision::Int8`] quantizes the weight of every Linear
//! layer (feature projection, q/k/v and out projections, feed-forward, `lm_head`,
//! classification projector and classifier) per output column and runs it as
//! `DynamicQuantizeLinear` → `MatMulInteger`, as ONNX Runtime's
//! `quantize_dynamic(op_types_to_quantize=["MatMul"])` does (see [`crate::onnx::quant`]).
//! The convolutions (feature encoder, positional embedding), norms, biases and layer
//! weights stay f32, as the issue asks: the feature encoder reads raw audio, where one u8
//! scale per tensor would flatten the quiet samples. So int8 shrinks the transformer
//! only: on wav2vec2-base about 9 M of the 95 M parameters (4.2 M in the feature
//! encoder, 4.7 M in the positional convolution) stay f32. The logits move by a few
//! percent of their range, so int8 is judged by the arg-max of each frame (CTC) or by
//! the label (classification).
//!
//! Reference: `transformers/models/wav2vec2/modeling_wav2vec2.py` and
//! `transformers/models/hubert/modeling_hubert.py`,
//! <https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/wav2vec2/modeling_wav2vec2.py>
//! (and v5.23.0, which the fixtures in `tests/fixtures/wav2vec2` were generated with: the
//! same computation but for the weighted layer sum above).

use std::path::Path;

use candle_core::Tensor as CandleTensor;
use hearken::engine::{DType, Engine, Tensor};
use hearken::model::contract::{self, Contract, FeatureSpec, ModelType};

pub use crate::onnx::Precision;

use super::{Head, Wav2Vec2Checkpoint, Wav2Vec2Config};
use crate::dims;
use crate::error::{Error, Result, candle_err, runtime_err};
use crate::onnx::layers::{Linear, affine, store_linear, store_tensor};
use crate::onnx::{Attr, Conv1d, GraphBuilder};

/// Sample rate of every Wav2Vec2 / HuBERT checkpoint, in Hz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// Epsilon of the feature encoder's norms: `nn.GroupNorm` and `nn.LayerNorm` built
/// without one, so PyTorch's default (the config's `layer_norm_eps` is for the others).
const CONV_NORM_EPS: f32 = 1e-5;

/// ONNX's `TensorProto.DataType.DOUBLE`, for the `Cast`s of [`channel_norm`].
const ONNX_DOUBLE: i64 = 11;

/// Added to the attention scores of padded keys. Finite, unlike -inf, so that a row
/// without any valid frame (an input shorter than the receptive field) stays finite, and
/// far enough below any score that `exp` underflows to exactly 0, as upstream's
/// `finfo.min` does.
const MASKED_SCORE: f32 = -1e9;

/// The model contract of the exported graph: `ctc` or `audio-classification`, waveform
/// features at 16 kHz normalized as the checkpoint's processor says, and the head's
/// vocabulary or labels.
pub fn contract(ckpt: &Wav2Vec2Checkpoint) -> Contract {
    let (model_type, head) = match &ckpt.head {
        Head::Ctc {
            vocab,
            blank_id,
            word_delimiter,
        } => (
            ModelType::Ctc,
            contract::Head::Ctc {
                vocab: vocab.clone(),
                blank_id: *blank_id,
                word_delimiter: word_delimiter.clone(),
                frame_stride_samples: ckpt.config.frame_stride() as u32,
            },
        ),
        Head::Classifier { labels } => (
            ModelType::AudioClassification,
            contract::Head::Classifier {
                labels: labels.clone(),
            },
        ),
    };
    Contract {
        model_type,
        architecture: Some(ckpt.family.as_str().into()),
        features: FeatureSpec::Waveform {
            sample_rate_hz: SAMPLE_RATE_HZ,
            normalize: ckpt.normalize,
        },
        head,
    }
}

/// Exports `ckpt` as hearken's `model.onnx` (see the module documentation), with the
/// model contract in its metadata; returns the serialized model.
///
/// Inputs: `waveform (batch, n_samples)` f32 and `attention_mask (batch, n_samples)` i64;
/// output `logits`: `(batch, n_frames, vocab)` for CTC, `(batch, n_labels)` for
/// classification, where `n_frames` follows the conv arithmetic
/// ([`Wav2Vec2Config::output_frames`]).
///
/// Fails with [`Error::MissingTensor`] / [`Error::ShapeMismatch`] when a tensor is missing
/// or misshapen (a head whose size disagrees with its vocabulary or labels included),
/// [`Error::CannotExport`] when
/// the positional convolution's groups do not divide `hidden_size` or a classifier has no
/// `classifier_proj_size`, and [`Error::InvalidTensor`] when an int8 weight holds a NaN or an
/// infinity.
pub fn export(ckpt: &Wav2Vec2Checkpoint, precision: Precision) -> Result<Vec<u8>> {
    let w = Weights { ckpt, precision };
    let mut b = graph(&w)?;
    for (k, v) in contract(ckpt).to_metadata() {
        b.metadata(k, v);
    }
    b.to_bytes()
}

/// Writes a hearken model directory into `out` (created if needed): `onnx` (from
/// [`export`]) as `model.onnx`, and the checkpoint's `config.json`,
/// `preprocessor_config.json` (when it has one) and, for CTC, `vocab.json` beside it.
///
/// Fails with [`Error::Io`] when a file cannot be written or copied.
pub fn write_dir(ckpt: &Wav2Vec2Checkpoint, onnx: &[u8], out: impl AsRef<Path>) -> Result<()> {
    let out = out.as_ref();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let model = out.join("model.onnx");
    std::fs::write(&model, onnx).map_err(io(&model))?;
    let mut copies = vec![("config.json", true), ("preprocessor_config.json", false)];
    if matches!(ckpt.head, Head::Ctc { .. }) {
        copies.push(("vocab.json", true));
    }
    for (name, required) in copies {
        let src = ckpt.dir.join(name);
        if required || src.is_file() {
            std::fs::copy(&src, out.join(name)).map_err(io(&src))?;
        }
    }
    Ok(())
}

/// Logits of the exported model on `engine`: `onnx` is the serialized model, `input` the
/// `(batch, n_samples)` row-major waveforms (normalized as the contract says), `mask` the
/// `(batch, n_samples)` attention mask (1 on real samples).
///
/// Returns `(batch, n_frames, vocab)` (CTC) or `(batch, n_labels)` (classification)
/// logits, row-major. Fails with [`Error::InvalidInput`] when the sizes disagree or
/// `batch` is 0, and with [`Error::Runtime`] when the engine cannot load or run the model.
pub fn onnx_logits(
    engine: &dyn Engine,
    onnx: &[u8],
    input: &[f32],
    mask: &[i64],
    batch: usize,
) -> Result<Vec<f32>> {
    if batch == 0 || !input.len().is_multiple_of(batch) || mask.len() != input.len() {
        return Err(Error::InvalidInput {
            what: "waveform and attention mask".into(),
            expected: format!("batch ({batch}) > 0 rows of equal length, mask as long as input"),
            got: format!("{} samples, {} mask values", input.len(), mask.len()),
        });
    }
    let n_samples = input.len() / batch;
    let graph = engine
        .load_bytes(onnx)
        .map_err(runtime_err("loading model.onnx"))?;
    let waveform =
        Tensor::from_f32([batch, n_samples], input.to_vec()).map_err(runtime_err("waveform"))?;
    let mask = Tensor::from_i64([batch, n_samples], mask.to_vec())
        .map_err(runtime_err("attention_mask"))?;
    let out = graph
        .run_refs(&[("waveform", &waveform), ("attention_mask", &mask)])
        .map_err(runtime_err("running model.onnx"))?;
    Ok(out.first().map(Tensor::to_f32_vec).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Weights

/// Reads checkpoint tensors (by their prefix-stripped Hugging Face names) and stores them
/// as initializers named after them: linear weights input-major `(d_in, d_out)`
/// (transposed from PyTorch's `(d_out, d_in)`), fused q/k/v projections as
/// `encoder.layers.{i}.attention.qkv_proj`; in int8, linear weights as
/// `{name}.weight_quantized` and `{name}.weight_scale`.
struct Weights<'a> {
    ckpt: &'a Wav2Vec2Checkpoint,
    precision: Precision,
}

impl Weights<'_> {
    /// Checkpoint tensor `name`, checked to have shape `expected`.
    fn get(&self, name: &str, expected: &[usize]) -> Result<CandleTensor> {
        let t = self
            .ckpt
            .tensors
            .get(name)
            .ok_or_else(|| Error::MissingTensor { name: name.into() })?;
        if t.dims() != expected {
            return Err(Error::ShapeMismatch {
                name: name.into(),
                expected: expected.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// Stores `t` as initializer `name` (see [`store_tensor`]).
    fn store(&self, b: &mut GraphBuilder, name: &str, t: &CandleTensor) -> Result<String> {
        store_tensor(b, name, t, self.precision)
    }

    /// Stores checkpoint tensor `name` unchanged, after checking its shape.
    fn plain(&self, b: &mut GraphBuilder, name: &str, shape: &[usize]) -> Result<String> {
        let t = self.get(name, shape)?;
        self.store(b, name, &t)
    }

    /// A norm's `(weight, bias)`, both `(d)`.
    fn norm(&self, b: &mut GraphBuilder, prefix: &str, d: usize) -> Result<(String, String)> {
        Ok((
            self.plain(b, &format!("{prefix}.weight"), &[d])?,
            self.plain(b, &format!("{prefix}.bias"), &[d])?,
        ))
    }

    /// The linear layers `prefixes`, all `d_in -> d_out` and applied to the same input,
    /// as one input-major `(d_in, n * d_out)` weight and `(n * d_out)` bias, the first
    /// one's scaled by `first_scale`. Stored as `{name}.weight` and `{name}.bias` (see
    /// [`store_linear`]).
    fn fused_linear(
        &self,
        b: &mut GraphBuilder,
        name: &str,
        prefixes: &[String],
        (d_in, d_out): (usize, usize),
        first_scale: f64,
    ) -> Result<Linear> {
        let what = format!("preparing `{name}`");
        let mut weights = Vec::with_capacity(prefixes.len());
        let mut biases = Vec::with_capacity(prefixes.len());
        for (i, p) in prefixes.iter().enumerate() {
            let w = self.get(&format!("{p}.weight"), &[d_out, d_in])?;
            let bias = self.get(&format!("{p}.bias"), &[d_out])?;
            let (w, bias) = if i == 0 && first_scale != 1.0 {
                (
                    w.affine(first_scale, 0.0)
                        .map_err(candle_err(what.clone()))?,
                    bias.affine(first_scale, 0.0)
                        .map_err(candle_err(what.clone()))?,
                )
            } else {
                (w, bias)
            };
            weights.push(w.t().map_err(candle_err(what.clone()))?);
            biases.push(bias);
        }
        let w = CandleTensor::cat(&weights, 1).map_err(candle_err(what.clone()))?;
        let bias = CandleTensor::cat(&biases, 0).map_err(candle_err(what))?;
        store_linear(b, name, &w, &bias, self.precision)
    }

    /// The linear layer `prefix`, `d_in -> d_out`, input-major.
    fn linear(&self, b: &mut GraphBuilder, prefix: &str, dims: (usize, usize)) -> Result<Linear> {
        self.fused_linear(b, prefix, &[prefix.to_owned()], dims, 1.0)
    }
}

// ---------------------------------------------------------------------------------------
// Graph pieces

/// `ReduceSum` over `axes` (an input since opset 13).
fn reduce_sum(b: &mut GraphBuilder, x: &str, axes: &[i64], keepdims: bool) -> String {
    let axes = b.const_i64(axes);
    b.op(
        "ReduceSum",
        &[x, &axes],
        [("keepdims", i64::from(keepdims).into())],
    )
}

/// The feature encoder: `waveform (batch, n_samples)` → `(batch, n_frames, conv_dim[-1])`.
fn feature_encoder(b: &mut GraphBuilder, w: &Weights, waveform: &str) -> Result<String> {
    let c = &w.ckpt.config;
    let mut x = b.unsqueeze(waveform, &[1]);
    let mut c_in = 1;
    for (i, ((&c_out, &k), &s)) in c
        .conv_dim
        .iter()
        .zip(&c.conv_kernel)
        .zip(&c.conv_stride)
        .enumerate()
    {
        let prefix = format!("feature_extractor.conv_layers.{i}");
        let weight = w.plain(b, &format!("{prefix}.conv.weight"), &[c_out, c_in, k])?;
        let bias = if c.conv_bias {
            Some(w.plain(b, &format!("{prefix}.conv.bias"), &[c_out])?)
        } else {
            None
        };
        let norm = match (c.feat_extract_norm.as_str(), i) {
            ("layer", _) | ("group", 0) => {
                Some(w.norm(b, &format!("{prefix}.layer_norm"), c_out)?)
            }
            _ => None,
        };
        let layer_norm = c.feat_extract_norm == "layer";
        x = b.scoped(&prefix, |b| {
            let p = Conv1d {
                stride: s,
                ..Conv1d::default()
            };
            let x = b.conv1d(&x, &weight, bias.as_deref(), p);
            let x = match &norm {
                Some((g, beta)) if layer_norm => {
                    let t = b.transpose(&x, &[0, 2, 1]);
                    let t = b.layer_norm(&t, g, Some(beta), CONV_NORM_EPS);
                    b.transpose(&t, &[0, 2, 1])
                }
                Some((g, beta)) => channel_norm(b, &x, g, beta),
                None => x,
            };
            b.gelu_erf(&x)
        });
        c_in = c_out;
    }
    Ok(b.transpose(&x, &[0, 2, 1]))
}

/// `GroupNorm` with one group per channel over `x (batch, channels, n_frames)`: each
/// (item, channel) row normalized over time, `(x - mean) / sqrt(var + eps) * g + beta`
/// with the biased variance, `g` and `beta (channels)`.
///
/// The statistics are taken in f64. In f32, over the ~3200 frames of each second of
/// audio, the engines' reductions are far less accurate than PyTorch's: on the fixtures
/// the normalized output was off by 3e-5 (tract's lowering) and 1e-5 (ONNX Runtime's
/// `InstanceNormalization`) against 1.3e-6 for PyTorch, an error every later layer
/// inherits, which doubled the logits' error. In f64 the output is as accurate as
/// PyTorch's, for the cost of a few elementwise passes over one layer's activations.
fn channel_norm(b: &mut GraphBuilder, x: &str, g: &str, beta: &str) -> String {
    let to_f64 = |b: &mut GraphBuilder, x: &str| b.op("Cast", &[x], [("to", ONNX_DOUBLE.into())]);
    let x = to_f64(b, x);
    // Before opset 18, ReduceMean takes its axes as an attribute.
    let time = || [("axes", Attr::Ints(vec![2])), ("keepdims", 1.into())];
    let mean = b.op("ReduceMean", &[&x], time());
    let d = b.sub(&x, &mean);
    let sq = b.mul(&d, &d);
    let var = b.op("ReduceMean", &[&sq], time());
    // hearken tensors have no f64, so the epsilon is stored in f32, as PyTorch holds it.
    let eps = b.scalar_f32(CONV_NORM_EPS);
    let eps = to_f64(b, &eps);
    let var = b.add(&var, &eps);
    let std = b.op("Sqrt", &[&var], []);
    let y = b.div(&d, &std);
    let y = b.cast(&y, DType::F32);
    let gain = b.unsqueeze(g, &[1]);
    let shift = b.unsqueeze(beta, &[1]);
    let y = b.mul(&y, &gain);
    b.add(&y, &shift)
}

/// The frame mask of `attention_mask (batch, n_samples)` for `features (batch, n_frames,
/// _)`: `(valid, bias)`, `valid (batch, n_frames, 1)` f32, 1 on frames within the conv
/// arithmetic's output length of the row's sample count, 0 after; `bias (batch, 1, 1,
/// n_frames)` f32, 0 on valid keys and [`MASKED_SCORE`] on the others.
fn frame_mask(
    b: &mut GraphBuilder,
    c: &Wav2Vec2Config,
    attention_mask: &str,
    features: &str,
) -> Result<(String, String)> {
    let one = Tensor::from_i64([1], vec![1]).map_err(runtime_err("ConstantOfShape value"))?;
    Ok(b.scoped("frame_mask", |b| {
        // _get_feat_extract_output_lengths: floor((n - k) / s) + 1 per layer, written as
        // max(n - k + s, 0) / s so that truncating integer division is the floor.
        let mut n = reduce_sum(b, attention_mask, &[1], true);
        let zero = b.scalar_i64(0);
        for (&k, &s) in c.conv_kernel.iter().zip(&c.conv_stride) {
            let shift = b.scalar_i64(k as i64 - s as i64);
            let stride = b.scalar_i64(s as i64);
            let m = b.sub(&n, &shift);
            let m = b.op("Max", &[&m, &zero], []);
            n = b.div(&m, &stride);
        }
        // Frame indices [0, n_frames) from the features' shape.
        let n_frames = b.op(
            "Shape",
            &[features],
            [("start", 1.into()), ("end", 2.into())],
        );
        let ones = b.op(
            "ConstantOfShape",
            &[&n_frames],
            [("value", Attr::Tensor(one))],
        );
        let axis = b.scalar_i64(0);
        let index = b.op("CumSum", &[&ones, &axis], [("exclusive", 1.into())]);
        let valid = b.op("Less", &[&index, &n], []);
        let open = b.scalar_f32(0.0);
        let closed = b.scalar_f32(MASKED_SCORE);
        let bias = b.where_(&valid, &open, &closed);
        let bias = b.unsqueeze(&bias, &[1, 2]);
        let valid = b.cast(&valid, DType::F32);
        let valid = b.unsqueeze(&valid, &[2]);
        (valid, bias)
    }))
}

/// Weights of one encoder layer, stored.
struct LayerWeights {
    layer_norm: (String, String),
    qkv: Linear,
    out: Linear,
    intermediate: Linear,
    output: Linear,
    final_layer_norm: (String, String),
}

impl LayerWeights {
    fn new(b: &mut GraphBuilder, w: &Weights, prefix: &str) -> Result<Self> {
        let c = &w.ckpt.config;
        let d = c.hidden_size;
        let head_dim = d / c.num_attention_heads;
        let attn = format!("{prefix}.attention");
        Ok(LayerWeights {
            layer_norm: w.norm(b, &format!("{prefix}.layer_norm"), d)?,
            qkv: w.fused_linear(
                b,
                &format!("{attn}.qkv_proj"),
                &["q_proj", "k_proj", "v_proj"].map(|p| format!("{attn}.{p}")),
                (d, d),
                (head_dim as f64).powf(-0.5),
            )?,
            out: w.linear(b, &format!("{attn}.out_proj"), (d, d))?,
            intermediate: w.linear(
                b,
                &format!("{prefix}.feed_forward.intermediate_dense"),
                (d, c.intermediate_size),
            )?,
            output: w.linear(
                b,
                &format!("{prefix}.feed_forward.output_dense"),
                (c.intermediate_size, d),
            )?,
            final_layer_norm: w.norm(b, &format!("{prefix}.final_layer_norm"), d)?,
        })
    }
}

/// Self-attention of `x (batch, n_frames, d)` with the additive key `bias (batch, 1, 1,
/// n_frames)`, projected by `out` → `(batch, n_frames, d)`.
fn attention(
    b: &mut GraphBuilder,
    x: &str,
    bias: &str,
    lw: &LayerWeights,
    n_head: usize,
    d: usize,
) -> String {
    let (h, hd) = (n_head as i64, (d / n_head) as i64);
    let qkv = affine(b, x, &lw.qkv);
    // (batch, T, 3 d) -> (batch, 3 n_head, T, head_dim), split along the heads.
    let qkv = b.reshape(&qkv, &[0, 0, 3 * h, hd]);
    let qkv = b.transpose(&qkv, &[0, 2, 1, 3]);
    let [q, k, v] = b.split_into(&qkv, [h, h, h], 1);
    let k_t = b.transpose(&k, &[0, 1, 3, 2]);
    let scores = b.matmul(&q, &k_t);
    let scores = b.add(&scores, bias);
    let p = b.softmax(&scores, -1);
    let a = b.matmul(&p, &v);
    let a = b.transpose(&a, &[0, 2, 1, 3]);
    let a = b.reshape(&a, &[0, 0, d as i64]);
    affine(b, &a, &lw.out)
}

/// `output_dense(gelu(intermediate_dense(x)))`.
fn feed_forward(b: &mut GraphBuilder, x: &str, lw: &LayerWeights) -> String {
    let h = affine(b, x, &lw.intermediate);
    let h = b.gelu_erf(&h);
    affine(b, &h, &lw.output)
}

/// The whole graph, without metadata.
fn graph(w: &Weights) -> Result<GraphBuilder> {
    let c = &w.ckpt.config;
    let d = c.hidden_size;
    let n_head = c.num_attention_heads;
    let eps = c.layer_norm_eps as f32;
    let conv_out = c.conv_dim.last().copied().unwrap_or_default();
    let mut b = GraphBuilder::new(format!(
        "{}_{}",
        w.ckpt.family.as_str(),
        head_name(&w.ckpt.head)
    ))
    .doc_string(
        "Wav2Vec2 / HuBERT: waveform (batch, n_samples) with attention_mask (batch, \
             n_samples) -> logits (batch, n_frames, vocab) for CTC, (batch, n_labels) for \
             classification.",
    );
    let waveform = b.input("waveform", DType::F32, &dims!["batch", "n_samples"]);
    let attention_mask = b.input("attention_mask", DType::I64, &dims!["batch", "n_samples"]);

    let features = feature_encoder(&mut b, w, &waveform)?;
    let (valid, bias) = frame_mask(&mut b, c, &attention_mask, &features)?;

    // Feature projection: (batch, T, conv_dim[-1]) -> (batch, T, d).
    let ln = if c.feat_proj_layer_norm {
        Some(w.norm(&mut b, "feature_projection.layer_norm", conv_out)?)
    } else {
        None
    };
    let proj = w.linear(&mut b, "feature_projection.projection", (conv_out, d))?;
    let x = b.scoped("feature_projection", |b| {
        let x = match &ln {
            Some((g, beta)) => b.layer_norm(&features, g, Some(beta), eps),
            None => features.clone(),
        };
        affine(b, &x, &proj)
    });

    // Positional convolution on the masked frames, residual, then (post-LN) LayerNorm.
    let k = c.num_conv_pos_embeddings;
    let groups = c.num_conv_pos_embedding_groups;
    if groups == 0 || !d.is_multiple_of(groups) {
        return Err(Error::CannotExport {
            architecture: "Wav2Vec2".into(),
            reason: format!(
                "hidden_size {d} does not split into num_conv_pos_embedding_groups = {groups}"
            ),
        });
    }
    let pos_w = w.plain(
        &mut b,
        "encoder.pos_conv_embed.conv.weight",
        &[d, d / groups, k],
    )?;
    let pos_b = w.plain(&mut b, "encoder.pos_conv_embed.conv.bias", &[d])?;
    let encoder_ln = w.norm(&mut b, "encoder.layer_norm", d)?;
    let stable = c.do_stable_layer_norm;
    let mut x = b.scoped("encoder.pos_conv_embed", |b| {
        let x = b.mul(&x, &valid);
        let t = b.transpose(&x, &[0, 2, 1]);
        let p = Conv1d {
            padding: k / 2,
            groups,
            ..Conv1d::default()
        };
        let mut pos = b.conv1d(&t, &pos_w, Some(&pos_b), p);
        if k.is_multiple_of(2) {
            // Wav2Vec2SamePadLayer: an even kernel with padding k/2 gives one extra frame.
            pos = b.slice(&pos, &[0], &[-1], &[2], &[]);
        }
        let pos = b.gelu_erf(&pos);
        let pos = b.transpose(&pos, &[0, 2, 1]);
        let x = b.add(&x, &pos);
        if stable {
            x
        } else {
            b.layer_norm(&x, &encoder_ln.0, Some(&encoder_ln.1), eps)
        }
    });

    // Encoder layers. `hidden` collects the hidden states the weighted layer sum mixes
    // (see the module documentation): the first layer's input, then every layer's output,
    // the last one replaced by the encoder output.
    let mut hidden = vec![x.clone()];
    for l in 0..c.num_hidden_layers {
        let prefix = format!("encoder.layers.{l}");
        let lw = LayerWeights::new(&mut b, w, &prefix)?;
        x = b.scoped(&prefix, |b| {
            let ln = |b: &mut GraphBuilder, x: &str, (g, beta): &(String, String)| {
                b.layer_norm(x, g, Some(beta), eps)
            };
            if stable {
                let h = ln(b, &x, &lw.layer_norm);
                let a = attention(b, &h, &bias, &lw, n_head, d);
                let x = b.add(&x, &a);
                let h = ln(b, &x, &lw.final_layer_norm);
                let f = feed_forward(b, &h, &lw);
                b.add(&x, &f)
            } else {
                let a = attention(b, &x, &bias, &lw, n_head, d);
                let x = b.add(&x, &a);
                let x = ln(b, &x, &lw.layer_norm);
                let f = feed_forward(b, &x, &lw);
                let x = b.add(&x, &f);
                ln(b, &x, &lw.final_layer_norm)
            }
        });
        hidden.push(x.clone());
    }
    if stable {
        x = b.scoped("encoder", |b| {
            b.layer_norm(&x, &encoder_ln.0, Some(&encoder_ln.1), eps)
        });
        if let Some(last) = hidden.last_mut() {
            last.clone_from(&x);
        }
    }

    match &w.ckpt.head {
        Head::Ctc { vocab, .. } => {
            let n_vocab = vocab.len();
            let lm_head = w.linear(&mut b, "lm_head", (d, n_vocab))?;
            let logits = b.scoped("lm_head", |b| affine(b, &x, &lm_head));
            b.output_from(
                &logits,
                "logits",
                DType::F32,
                &dims!["batch", "n_frames", n_vocab],
            );
        }
        Head::Classifier { labels } => {
            let n_labels = labels.len();
            let n_proj = c.classifier_proj_size.ok_or_else(|| Error::CannotExport {
                architecture: "Wav2Vec2".into(),
                reason: "a classification head needs `classifier_proj_size` in config.json".into(),
            })?;
            let layer_weights = if c.use_weighted_layer_sum {
                Some(w.plain(&mut b, "layer_weights", &[c.num_hidden_layers + 1])?)
            } else {
                None
            };
            let projector = w.linear(&mut b, "projector", (d, n_proj))?;
            // In float, the classifier is a 2-D Gemm that reads PyTorch's (n_labels,
            // n_proj) weight in place; int8 needs it input-major, like the others.
            let classifier = if w.precision == Precision::Int8 {
                Classifier::Int8(w.linear(&mut b, "classifier", (n_proj, n_labels))?)
            } else {
                Classifier::Gemm(
                    w.plain(&mut b, "classifier.weight", &[n_labels, n_proj])?,
                    w.plain(&mut b, "classifier.bias", &[n_labels])?,
                )
            };
            let logits = b.scoped("classifier", |b| {
                let x = match &layer_weights {
                    Some(lw) => {
                        // torch.stack(hidden_states, dim=1) * softmax(layer_weights) summed
                        // over the stack: (batch, L + 1, T, d) -> (batch, T, d).
                        let parts: Vec<String> =
                            hidden.iter().map(|h| b.unsqueeze(h, &[1])).collect();
                        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                        let stack = b.concat(&parts, 1);
                        let norm = b.softmax(lw, -1);
                        let norm = b.reshape(&norm, &[-1, 1, 1]);
                        let weighted = b.mul(&stack, &norm);
                        reduce_sum(b, &weighted, &[1], false)
                    }
                    None => x.clone(),
                };
                // Mean over valid frames: (batch, T, n_proj) -> (batch, n_proj).
                let h = affine(b, &x, &projector);
                let h = b.mul(&h, &valid);
                let sum = reduce_sum(b, &h, &[1], false);
                let count = reduce_sum(b, &valid, &[1], false);
                // An utterance without frames pools to 0 rather than NaN.
                let one = b.scalar_f32(1.0);
                let count = b.op("Max", &[&count, &one], []);
                let pooled = b.div(&sum, &count);
                match &classifier {
                    Classifier::Gemm(weight, bias) => b.gemm(&pooled, weight, Some(bias), true),
                    Classifier::Int8(lin) => affine(b, &pooled, lin),
                }
            });
            b.output_from(&logits, "logits", DType::F32, &dims!["batch", n_labels]);
        }
    }
    Ok(b)
}

/// The stored classification layer, `(batch, n_proj) -> (batch, n_labels)`.
enum Classifier {
    /// f32 / f16: PyTorch's `(n_labels, n_proj)` weight and `(n_labels)` bias, for a
    /// `Gemm` with `transB`.
    Gemm(String, String),
    /// int8: input-major, as every other Linear layer.
    Int8(Linear),
}

fn head_name(head: &Head) -> &'static str {
    match head {
        Head::Ctc { .. } => "ctc",
        Head::Classifier { .. } => "classifier",
    }
}
