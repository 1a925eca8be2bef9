//! A candle Wav2Vec2 / HuBERT: the numerical reference that ONNX exports are checked
//! against, a way to run a checkpoint before exporting it, and the model that fine-tuning
//! and training from scratch differentiate.
//!
//! candle-transformers has no Wav2Vec2 or HuBERT, so this is a port of transformers'
//! modules, kept one to one with them (feature encoder, feature projection, SpecAugment,
//! positional convolution, post-LN or pre-LN encoder, CTC or classification head) so that
//! each step can be compared with its Python counterpart. It runs in f32 and follows
//! transformers' numerics where candle's building blocks would not:
//!
//! - GELU is the exact erf form (`ACT2FN["gelu"]`), not candle's tanh approximation;
//! - LayerNorm, GroupNorm and BatchNorm are computed here with two-pass statistics
//!   (mean, then the mean of squared deviations), as PyTorch does, rather than with
//!   candle-nn's fused layer norm, which uses `E[x²] - E[x]²` and loses digits when a
//!   channel's mean is large against its spread (the first feature-encoder convolution);
//!   LayerNorm and GroupNorm, and GELU, are the fused CPU kernels of [`crate::nn::fused`],
//!   each with its own backward pass, and the feature encoder runs channels last
//!   ([`crate::nn::conv::conv1d_channels_last`]), to the same values as transformers' (B,
//!   C, N) layout;
//! - padded keys get `f32::MIN` added to their attention scores, transformers' `finfo.min`.
//!
//! Everything here is differentiable: no candle-nn fused op is used (`layer_norm`,
//! `rms_norm`, `softmax_last_dim` and `LayerNorm` on contiguous input record no backward
//! pass, so gradients through them would silently be missing). Softmaxes are written
//! out (max-shifted, the max detached as it cancels), and the positional convolution's
//! weight is recomputed from its weight-norm parameters `g` and `v` on every call, so
//! that both get their own gradients, as in PyTorch.
//!
//! Parameters live in a [`VarMap`] under their Hugging Face names
//! (`hubert.encoder.layers.0.attention.q_proj.weight`, `classifier.weight`, ...), from
//! which the model is built through a [`candle_nn::VarBuilder`]; see [`super::init`] for
//! where they come from (checkpoint, existing variables, seeded initialization) and
//! [`super::save`] for writing them back as a Hugging Face checkpoint.
//!
//! [`Mode::Eval`] is the reference forward pass; [`Mode::Train`] adds what transformers
//! does in `model.train()`: dropout (`feat_proj_dropout` after the feature projection,
//! `hidden_dropout` on the encoder input and on each layer's attention and feed-forward
//! outputs, `attention_dropout` on attention probabilities, `activation_dropout` after
//! the feed-forward GELU, `final_dropout` before the CTC head and nowhere in the
//! classification head), LayerDrop, SpecAugment time and feature masking (with the
//! trainable `masked_spec_embed`), and batch statistics in HuBERT's optional positional
//! BatchNorm. Every random draw comes from the [`ChaCha8Rng`] the caller passes, in a
//! fixed order, so a training step is reproducible from the rng's seed and word position.
//!
//! A model holds only its parameters (shared, through the [`VarMap`], by its clones) and
//! no per-call state, so it is `Send + Sync`. Shapes below use `B` for the batch, `N` for
//! input samples, `T` for frames (`config.output_frames(N)`), `H` for `hidden_size`.
//!
//! Reference: transformers v4.57.6 (the version the fixtures were generated with),
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py>
//! and
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/hubert/modeling_hubert.py>;
//! see [`Wav2Vec2Model::hidden_states`] for how transformers 5.x differs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use candle_core::{D, DType, Device, Module, Tensor, Var};
use candle_nn::init::Init;
use candle_nn::{Linear, VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::init::{KAIMING_NORMAL, ParamStore, normal, symmetric_uniform, torch_default_conv};
use super::mask::{SpanMask, compute_mask_indices};
use super::{
    Family, Head, POS_CONV_WEIGHT_G, POS_CONV_WEIGHT_V, Wav2Vec2Checkpoint, Wav2Vec2Config,
    hf_name, weight_norm, weight_norm_magnitude,
};
use crate::error::{Error, Result, candle_err};
use crate::nn::conv::{conv1d, conv1d_channels_last};
use crate::nn::fused::{Affine, gelu_erf, norm_last, norm_over_time};

/// `eps` of the feature encoder's GroupNorm / LayerNorm and of HuBERT's positional
/// BatchNorm (PyTorch's default; `layer_norm_eps` applies only to the transformer and the
/// feature projection).
const FEATURE_NORM_EPS: f64 = 1e-5;

/// PyTorch's BatchNorm momentum: `running = (1 - m) * running + m * batch`.
const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// How a forward pass runs.
#[derive(Debug)]
pub enum Mode<'a> {
    /// Inference (`model.eval()`): no dropout, no masking, running BatchNorm statistics.
    Eval,
    /// Training (`model.train()`): dropout, LayerDrop and SpecAugment as the
    /// configuration says, batch statistics in BatchNorm (whose running statistics are
    /// updated), every random draw from `rng`.
    Train {
        /// The source of every draw of the step.
        rng: &'a mut ChaCha8Rng,
    },
}

/// Which parameters training updates; the others are frozen (and no gradient is
/// computed through them: the forward pass detaches at the frozen part's output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainable {
    /// Every parameter (BatchNorm running statistics, which are not parameters, aside).
    All,
    /// Every parameter but the convolutional feature encoder's
    /// (`{prefix}.feature_extractor.*`): transformers' `freeze_feature_encoder()`.
    AllButFeatureEncoder,
    /// The top `n_layers` transformer layers and the head; for a pre-LN encoder also the
    /// final `encoder.layer_norm`, which follows the layers.
    TopLayers {
        /// How many layers, counted from the top (at most `num_hidden_layers`).
        n_layers: usize,
    },
    /// The head only (`lm_head`, or `projector`, `classifier` and `layer_weights`):
    /// transformers' `freeze_base_model()`.
    Head,
}

/// The random draws of one forward pass; none in evaluation.
struct Run<'a> {
    rng: Option<&'a mut ChaCha8Rng>,
}

impl Run<'_> {
    fn training(&self) -> bool {
        self.rng.is_some()
    }

    // https://github.com/pytorch/pytorch/blob/v2.5.1/aten/src/ATen/native/Dropout.cpp
    // (`dropout`: keep with probability 1 - p, scale the kept by 1 / (1 - p)).
    /// Dropout of probability `p` in training, the identity in evaluation. The mask is
    /// drawn on the CPU, one `f32` per element, in row-major order.
    fn dropout(&mut self, x: &Tensor, p: f64) -> candle_core::Result<Tensor> {
        let Some(rng) = self.rng.as_deref_mut() else {
            return Ok(x.clone());
        };
        if p <= 0.0 {
            return Ok(x.clone());
        }
        if p >= 1.0 {
            return x.zeros_like();
        }
        let scale = (1.0 / (1.0 - p)) as f32;
        let p = p as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), &Device::Cpu)?
            .to_device(x.device())?
            .to_dtype(x.dtype())?;
        x * mask
    }
}

/// Softmax over the last axis, written out so that it has a backward pass; the max is
/// detached (the result does not depend on it).
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Normalization over the last axis with an affine map: LayerNorm when the input is
/// `(.., C)` and `weight`, `bias` are `(C)`; GroupNorm with one group per channel when
/// the input is `(B, C, T)` and they are `(C, 1)`.
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L263-L332
    // (`nn.GroupNorm(num_groups=C, num_channels=C)`: each channel of each example
    // normalized over time) and `nn.LayerNorm`, both with the biased variance.
    // Fused, with its own backward pass (`nn::fused`): the composed form costs about
    // twenty passes over the activations backward.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let affine = if self.weight.rank() == 1 {
            Affine::PerColumn
        } else {
            Affine::PerChannel
        };
        norm_last(x, &self.weight, &self.bias, self.eps, affine)
    }
}

/// What follows a feature-encoder convolution before its GELU.
#[derive(Debug, Clone)]
enum ConvNorm {
    /// Nothing (`Wav2Vec2NoLayerNormConvLayer`).
    None,
    /// GroupNorm with one group per channel, over time (`Wav2Vec2GroupNormConvLayer`);
    /// weight and bias `(C, 1)`.
    Group(Norm),
    /// LayerNorm over channels (`Wav2Vec2LayerNormConvLayer`); weight and bias `(C)`.
    Layer(Norm),
}

/// One feature-encoder layer: convolution, normalization, GELU.
#[derive(Debug, Clone)]
struct ConvLayer {
    /// (C_out, C_in, K).
    weight: Tensor,
    /// (C_out).
    bias: Option<Tensor>,
    stride: usize,
    norm: ConvNorm,
}

impl ConvLayer {
    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L263-L332
    /// x: (B, N_in, C_in) -> (B, N_out, C_out): channels last, unlike transformers' (B, C,
    /// N) and to the same values, so that no activation is transposed between layers (see
    /// [`conv1d_channels_last`]).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = conv1d_channels_last(x, &self.weight, self.stride)?;
        if let Some(bias) = &self.bias {
            x = x.broadcast_add(bias)?;
        }
        let x = match &self.norm {
            ConvNorm::None => x,
            // Per channel over time, on the channels-last activations.
            ConvNorm::Group(norm) => norm_over_time(&x, &norm.weight, &norm.bias, norm.eps)?,
            ConvNorm::Layer(norm) => norm.forward(&x)?,
        };
        gelu_erf(&x)
    }
}

/// HuBERT's optional BatchNorm before the positional convolution (`conv_pos_batch_norm`).
#[derive(Debug, Clone)]
struct BatchNorm {
    /// Affine weight and bias, (H, 1).
    weight: Tensor,
    bias: Tensor,
    /// Running statistics, (H): buffers, not parameters; updated in training.
    running_mean: Var,
    running_var: Var,
    /// Training steps taken (`num_batches_tracked`), shared by the model's clones.
    n_batches: Arc<AtomicU64>,
}

impl BatchNorm {
    // https://github.com/pytorch/pytorch/blob/v2.5.1/torch/nn/modules/batchnorm.py
    // (`BatchNorm1d` on (B, H, T): statistics over batch and time; the running variance is
    // updated with the unbiased batch variance, the output uses the biased one).
    /// x: (B, H, T) -> (B, H, T).
    fn forward(&self, x: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        let h = self.weight.dim(0)?;
        let (mean, var) = if training {
            let (b, _, t) = x.dims3()?;
            let mean = x.mean_keepdim(2)?.mean_keepdim(0)?;
            let var = x
                .broadcast_sub(&mean)?
                .sqr()?
                .mean_keepdim(2)?
                .mean_keepdim(0)?;
            let n = (b * t) as f64;
            let unbiased = if n > 1.0 {
                (var.detach() * (n / (n - 1.0)))?
            } else {
                var.detach()
            };
            let m = BATCH_NORM_MOMENTUM;
            let rm =
                ((self.running_mean.as_tensor() * (1.0 - m))? + (mean.detach().reshape(h)? * m)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased.reshape(h)? * m)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            self.n_batches.fetch_add(1, Ordering::Relaxed);
            (mean.reshape((h, 1))?, var.reshape((h, 1))?)
        } else {
            (
                self.running_mean.as_tensor().reshape((h, 1))?,
                self.running_var.as_tensor().reshape((h, 1))?,
            )
        };
        x.broadcast_sub(&mean)?
            .broadcast_div(&(var + FEATURE_NORM_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// The positional convolution's weight.
#[derive(Debug, Clone)]
enum PosConvWeight {
    /// Weight-normalized: `g` (1, 1, K) and `v` (H, H / groups, K), combined on each call.
    Norm { g: Tensor, v: Tensor },
    /// Plain (HuBERT with `conv_pos_batch_norm`), (H, H / groups, K).
    Plain(Tensor),
}

/// The convolutional positional embedding.
#[derive(Debug, Clone)]
struct PositionalConv {
    batch_norm: Option<BatchNorm>,
    weight: PosConvWeight,
    /// (1, H, 1).
    bias: Tensor,
    padding: usize,
    groups: usize,
}

impl PositionalConv {
    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L335-L389
    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/hubert/modeling_hubert.py#L50-L108
    /// x: (B, T, H) -> (B, T, H). The convolution pads K/2 on both sides, which yields
    /// T + 1 frames for an even kernel; the last one is dropped (`SamePadLayer`).
    fn forward(&self, x: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        let n_frames = x.dim(1)?;
        let mut x = x.transpose(1, 2)?;
        if let Some(bn) = &self.batch_norm {
            x = bn.forward(&x, training)?;
        }
        let w = match &self.weight {
            PosConvWeight::Norm { g, v } => weight_norm(g, v)?,
            PosConvWeight::Plain(w) => w.clone(),
        };
        let y = conv1d(&x, &w, self.padding, 1, self.groups)?
            .broadcast_add(&self.bias)?
            .narrow(2, 0, n_frames)?;
        gelu_erf(&y)?.transpose(1, 2)
    }
}

/// Multi-head self-attention.
#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    n_heads: usize,
    dropout: f64,
}

impl Attention {
    /// (B, T, H) -> (B, n_heads, T, H / n_heads).
    fn heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        x.reshape((b, t, self.n_heads, h / self.n_heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L458-L573
    /// x: (B, T, H); mask: (B, 1, 1, T), 0 on valid keys and `f32::MIN` on padded ones.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        run: &mut Run,
    ) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let q = self.heads(&self.q_proj.forward(x)?)?;
        let k = self.heads(&self.k_proj.forward(x)?)?;
        let v = self.heads(&self.v_proj.forward(x)?)?;
        let scaling = ((h / self.n_heads) as f64).powf(-0.5);
        let mut scores = (q.matmul(&k.t()?)? * scaling)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = run.dropout(&softmax_last(&scores)?, self.dropout)?;
        let out = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        self.out_proj.forward(&out)
    }
}

/// One transformer layer, run in post-LN or pre-LN order by the encoder.
#[derive(Debug, Clone)]
struct EncoderLayer {
    attention: Attention,
    layer_norm: Norm,
    intermediate_dense: Linear,
    output_dense: Linear,
    final_layer_norm: Norm,
    hidden_dropout: f64,
    activation_dropout: f64,
}

impl EncoderLayer {
    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L576-L597
    /// (B, T, H) -> (B, T, H).
    fn feed_forward(&self, x: &Tensor, run: &mut Run) -> candle_core::Result<Tensor> {
        let h = gelu_erf(&self.intermediate_dense.forward(x)?)?;
        let h = run.dropout(&h, self.activation_dropout)?;
        let h = self.output_dense.forward(&h)?;
        run.dropout(&h, self.hidden_dropout)
    }

    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L600-L633
    /// Post-LN: x: (B, T, H) -> (B, T, H).
    fn forward_post_ln(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        run: &mut Run,
    ) -> candle_core::Result<Tensor> {
        let a = self.attention.forward(x, mask, run)?;
        let h = (x + run.dropout(&a, self.hidden_dropout)?)?;
        let h = self.layer_norm.forward(&h)?;
        let h = (&h + self.feed_forward(&h, run)?)?;
        self.final_layer_norm.forward(&h)
    }

    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L636-L679
    /// Pre-LN ("stable layer norm"): x: (B, T, H) -> (B, T, H).
    fn forward_pre_ln(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        run: &mut Run,
    ) -> candle_core::Result<Tensor> {
        let a = self
            .attention
            .forward(&self.layer_norm.forward(x)?, mask, run)?;
        let h = (x + run.dropout(&a, self.hidden_dropout)?)?;
        let f = self.feed_forward(&self.final_layer_norm.forward(&h)?, run)?;
        &h + f
    }
}

/// The head's layers.
#[derive(Debug, Clone)]
enum HeadLayers {
    /// `final_dropout`, then `lm_head` over every frame.
    Ctc { lm_head: Linear },
    /// Optional weighted layer sum, `projector`, mean pooling over valid frames,
    /// `classifier`.
    Classifier {
        /// `layer_weights`, (L + 1), softmaxed on each call.
        layer_weights: Option<Tensor>,
        projector: Linear,
        classifier: Linear,
    },
}

/// Frame-level padding derived from a sample-level attention mask.
struct FrameMask {
    /// (B, T) f32: 1 on valid frames, 0 on padding.
    valid: Tensor,
    /// (B, 1, 1, T) f32: 0 on valid frames, `f32::MIN` on padding, added to attention
    /// scores.
    additive: Tensor,
    /// (B, 1) f32: valid frames per example.
    n_valid: Tensor,
    /// Valid frames per example.
    lengths: Vec<usize>,
}

/// What the encoder computes for a batch.
struct Encoded {
    /// The encoder output, (B, T, H).
    last: Tensor,
    /// L + 1 tensors (B, T, H), as [`Wav2Vec2Model::hidden_states`] documents.
    all: Vec<Tensor>,
    mask: Option<FrameMask>,
}

/// A Wav2Vec2 / HuBERT model with its CTC or classification head, in candle (f32).
///
/// Its parameters are the variables of a [`VarMap`] ([`Wav2Vec2Model::varmap`]), shared
/// with the model's clones; an optimizer updating them updates the model. Inputs are
/// batches of already normalized waveforms (the processor's `do_normalize` is the
/// caller's business, see [`Wav2Vec2Model::normalize`]).
#[derive(Clone)]
pub struct Wav2Vec2Model {
    config: Wav2Vec2Config,
    family: Family,
    head_spec: Head,
    normalize: bool,
    device: Device,
    varmap: VarMap,
    conv_layers: Vec<ConvLayer>,
    projection_norm: Option<Norm>,
    projection: Linear,
    masked_spec_embed: Option<Tensor>,
    pos_conv: PositionalConv,
    encoder_norm: Norm,
    layers: Vec<EncoderLayer>,
    head: HeadLayers,
    trainable: Trainable,
}

impl std::fmt::Debug for Wav2Vec2Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wav2Vec2Model")
            .field("family", &self.family)
            .field("hidden_size", &self.config.hidden_size)
            .field("num_hidden_layers", &self.config.num_hidden_layers)
            .field("head", &self.head_spec)
            .field("device", &self.device)
            .field("trainable", &self.trainable)
            .finish_non_exhaustive()
    }
}

/// [`Error::Unsupported`] about `path` (a `config.json`).
fn unsupported(path: &Path, reason: String) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        reason,
    }
}

/// Rejects configurations the model cannot run (a [`Wav2Vec2Checkpoint`] is plain data,
/// so it may not have come from [`super::load_dir`], which checks part of this).
/// `path` names the configuration in errors.
fn check_config(c: &Wav2Vec2Config, path: &Path) -> Result<()> {
    let n = c.conv_dim.len();
    if n == 0 || c.conv_stride.len() != n || c.conv_kernel.len() != n {
        return Err(unsupported(
            path,
            format!(
                "conv_dim, conv_stride and conv_kernel must have the same non-zero length, got {}, {}, {}",
                n,
                c.conv_stride.len(),
                c.conv_kernel.len()
            ),
        ));
    }
    if c.conv_stride.contains(&0) || c.conv_kernel.contains(&0) || c.conv_dim.contains(&0) {
        return Err(unsupported(
            path,
            "conv_dim, conv_stride and conv_kernel must be positive".into(),
        ));
    }
    if !matches!(c.feat_extract_norm.as_str(), "group" | "layer") {
        return Err(unsupported(
            path,
            format!(
                "feat_extract_norm `{}` is not group or layer",
                c.feat_extract_norm
            ),
        ));
    }
    for (what, act) in [
        ("hidden_act", &c.hidden_act),
        ("feat_extract_activation", &c.feat_extract_activation),
    ] {
        if act != "gelu" {
            return Err(unsupported(
                path,
                format!("{what} `{act}` is not supported (only gelu)"),
            ));
        }
    }
    if c.hidden_size == 0
        || c.num_attention_heads == 0
        || !c.hidden_size.is_multiple_of(c.num_attention_heads)
    {
        return Err(unsupported(
            path,
            format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            ),
        ));
    }
    if c.num_conv_pos_embedding_groups == 0
        || !c
            .hidden_size
            .is_multiple_of(c.num_conv_pos_embedding_groups)
        || c.num_conv_pos_embeddings == 0
    {
        return Err(unsupported(
            path,
            format!(
                "hidden_size {} is not a multiple of num_conv_pos_embedding_groups {}, or \
                 num_conv_pos_embeddings is 0",
                c.hidden_size, c.num_conv_pos_embedding_groups
            ),
        ));
    }
    if c.add_adapter {
        return Err(unsupported(
            path,
            "adapter layers (`add_adapter`) are not supported".into(),
        ));
    }
    for (what, p) in [
        ("hidden_dropout", c.hidden_dropout),
        ("attention_dropout", c.attention_dropout),
        ("activation_dropout", c.activation_dropout),
        ("feat_proj_dropout", c.feat_proj_dropout),
        ("final_dropout", c.final_dropout),
        ("layerdrop", c.layerdrop),
        ("mask_time_prob", c.mask_time_prob),
        ("mask_feature_prob", c.mask_feature_prob),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(unsupported(
                path,
                format!("{what} {p} is not a probability"),
            ));
        }
    }
    for (what, prob, length) in [
        ("mask_time_length", c.mask_time_prob, c.mask_time_length),
        (
            "mask_feature_length",
            c.mask_feature_prob,
            c.mask_feature_length,
        ),
    ] {
        if prob > 0.0 && length == 0 {
            return Err(unsupported(path, format!("{what} must be at least 1")));
        }
    }
    Ok(())
}

/// The parts [`Wav2Vec2Model::load`] builds.
struct Parts {
    conv_layers: Vec<ConvLayer>,
    projection_norm: Option<Norm>,
    projection: Linear,
    masked_spec_embed: Option<Tensor>,
    pos_conv: PositionalConv,
    encoder_norm: Norm,
    layers: Vec<EncoderLayer>,
    head: HeadLayers,
}

/// `{vb}.weight` (n_out, n_in) and `{vb}.bias` (n_out).
fn linear(
    vb: &VarBuilder,
    n_in: usize,
    n_out: usize,
    weight: Init,
    bias: Init,
) -> candle_core::Result<Linear> {
    Ok(Linear::new(
        vb.get_with_hints((n_out, n_in), "weight", weight)?,
        Some(vb.get_with_hints(n_out, "bias", bias)?),
    ))
}

/// `{vb}.weight` (ones) and `{vb}.bias` (zeros), both (n), reshaped to `shape`.
fn norm(vb: &VarBuilder, n: usize, shape: &[usize], eps: f64) -> candle_core::Result<Norm> {
    Ok(Norm {
        weight: vb
            .get_with_hints(n, "weight", Init::Const(1.0))?
            .reshape(shape)?,
        bias: vb
            .get_with_hints(n, "bias", Init::Const(0.0))?
            .reshape(shape)?,
        eps,
    })
}

/// `t` with its gradient path cut.
fn detach_all(all: &mut [Tensor]) {
    for t in all {
        *t = t.detach();
    }
}

impl Wav2Vec2Model {
    /// The reference model of a checkpoint, on the CPU: every parameter from its tensors,
    /// each checked against the shape the configuration implies.
    ///
    /// Fails with [`Error::MissingTensor`] or [`Error::ShapeMismatch`] (naming the
    /// tensor as [`Wav2Vec2Checkpoint::tensors`] does) when the tensors do not fit the
    /// configuration, and [`Error::Unsupported`] for configurations the model does not
    /// implement (non-GELU activations, adapters, inconsistent convolution lists, a
    /// dropout probability outside [0, 1]). The CTC head's width is `vocab_size` (or the
    /// vocabulary's size when the configuration has none); the classifier's is the number
    /// of labels of [`Head::Classifier`], and its projector's `classifier_proj_size`
    /// (transformers' 256 when unset).
    pub fn new(ckpt: &Wav2Vec2Checkpoint) -> Result<Self> {
        Self::from_checkpoint(ckpt, &Device::Cpu, None)
    }

    /// The model of a checkpoint on `device`, its parameters copied into a new
    /// [`VarMap`] (training never writes into `ckpt`).
    ///
    /// Without `init`, every parameter must be in the checkpoint, as for
    /// [`Wav2Vec2Model::new`] (`masked_spec_embed` aside: a model without it runs, and
    /// only training with time masking fails). With `init`, the missing ones (a new head
    /// from [`super::load_dir_with_new_head`], `masked_spec_embed`) are drawn from it as
    /// transformers initializes them ([`super::init`]). Errors as for
    /// [`Wav2Vec2Model::new`].
    pub fn from_checkpoint(
        ckpt: &Wav2Vec2Checkpoint,
        device: &Device,
        init: Option<&mut ChaCha8Rng>,
    ) -> Result<Self> {
        let path = ckpt.dir.join("config.json");
        check_config(&ckpt.config, &path)?;
        let family = ckpt.family;
        let mut tensors: HashMap<String, Tensor> = ckpt
            .tensors
            .iter()
            .map(|(name, t)| (hf_name(family, name), t.clone()))
            .collect();
        // A checkpoint with only the combined positional weight (built by hand, or
        // converted without weight norm) still trains as PyTorch would have it: `v = w`
        // and `g = ||w||` reproduce `w` exactly.
        let w_name = hf_name(family, "encoder.pos_conv_embed.conv.weight");
        let (g_name, v_name) = (
            hf_name(family, POS_CONV_WEIGHT_G),
            hf_name(family, POS_CONV_WEIGHT_V),
        );
        if !ckpt.config.conv_pos_batch_norm
            && !tensors.contains_key(&g_name)
            && let Some(w) = tensors.get(&w_name).cloned()
        {
            let g = weight_norm_magnitude(&w).map_err(candle_err(
                "deriving the positional convolution's weight norm",
            ))?;
            tensors.insert(g_name, g);
            tensors.insert(v_name, w);
        }
        let store = ParamStore::new(VarMap::new(), tensors, init, Some(family));
        Self::build(
            store,
            ckpt.config.clone(),
            family,
            ckpt.head.clone(),
            ckpt.normalize,
            device,
            &path,
        )
    }

    /// A new model of `config` with `head`, every parameter drawn from `rng` as
    /// transformers initializes them ([`super::init`]); `config` is given the head with
    /// [`Wav2Vec2Config::set_head`]. Waveforms are to be normalized
    /// ([`Wav2Vec2Model::normalize`] is true).
    ///
    /// Fails with [`Error::Unsupported`] for a `model_type` other than wav2vec2 and
    /// hubert or a configuration the model does not implement, and
    /// [`Error::InvalidInput`] for an empty head.
    pub fn from_scratch(
        config: &Wav2Vec2Config,
        head: Head,
        device: &Device,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let path = PathBuf::from("<new model>/config.json");
        let family = config.require_family(&path)?;
        let mut config = config.clone();
        config.set_head(family, &head)?;
        check_config(&config, &path)?;
        let store = ParamStore::new(VarMap::new(), HashMap::new(), Some(rng), None);
        Self::build(store, config, family, head, true, device, &path)
    }

    /// The model whose parameters are the variables of `varmap`, all present under their
    /// Hugging Face names (a map filled by another model, or by [`VarMap::load`] of a
    /// training checkpoint): built through `VarBuilder::from_backend` over it, sharing
    /// its variables. Fails with [`Error::MissingTensor`] / [`Error::ShapeMismatch`]
    /// (full names) when one is absent or misshapen.
    pub fn from_varmap(
        varmap: &VarMap,
        config: &Wav2Vec2Config,
        head: Head,
        normalize: bool,
        device: &Device,
    ) -> Result<Self> {
        let path = PathBuf::from("<varmap>/config.json");
        let family = config.require_family(&path)?;
        check_config(config, &path)?;
        let store = ParamStore::new(varmap.clone(), HashMap::new(), None, None);
        Self::build(
            store,
            config.clone(),
            family,
            head,
            normalize,
            device,
            &path,
        )
    }

    fn build(
        store: ParamStore,
        config: Wav2Vec2Config,
        family: Family,
        head: Head,
        normalize: bool,
        device: &Device,
        path: &Path,
    ) -> Result<Self> {
        if let Head::Classifier { labels } = &head
            && labels.is_empty()
        {
            return Err(unsupported(
                path,
                "a classifier needs at least one label".into(),
            ));
        }
        let varmap = store.varmap().clone();
        let slot = store.error_slot();
        let vb = VarBuilder::from_backend(Box::new(store), DType::F32, device.clone());
        let parts = Self::load(&vb, &varmap, &config, family, &head).map_err(|e| {
            let kept = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            kept.unwrap_or_else(|| candle_err("building the model")(e))
        })?;
        Ok(Wav2Vec2Model {
            config,
            family,
            head_spec: head,
            normalize,
            device: device.clone(),
            varmap,
            conv_layers: parts.conv_layers,
            projection_norm: parts.projection_norm,
            projection: parts.projection,
            masked_spec_embed: parts.masked_spec_embed,
            pos_conv: parts.pos_conv,
            encoder_norm: parts.encoder_norm,
            layers: parts.layers,
            head: parts.head,
            trainable: Trainable::All,
        })
    }

    /// Asks `vb` for every parameter, in a fixed order (the order of seeded draws), with
    /// transformers' initialization as the hint.
    fn load(
        vb: &VarBuilder,
        varmap: &VarMap,
        c: &Wav2Vec2Config,
        family: Family,
        head: &Head,
    ) -> candle_core::Result<Parts> {
        let base = vb.pp(family.as_str());
        let hidden = c.hidden_size;
        let hubert = family == Family::Hubert;

        let mut conv_layers = Vec::with_capacity(c.conv_dim.len());
        let mut c_in = 1;
        for (i, ((&c_out, &kernel), &stride)) in c
            .conv_dim
            .iter()
            .zip(&c.conv_kernel)
            .zip(&c.conv_stride)
            .enumerate()
        {
            let vb = base.pp(format!("feature_extractor.conv_layers.{i}"));
            let weight =
                vb.pp("conv")
                    .get_with_hints((c_out, c_in, kernel), "weight", KAIMING_NORMAL)?;
            let bias = if c.conv_bias {
                let init = if hubert {
                    Init::Const(0.0)
                } else {
                    symmetric_uniform((1.0 / (c_in * kernel) as f64).sqrt())
                };
                Some(vb.pp("conv").get_with_hints(c_out, "bias", init)?)
            } else {
                None
            };
            let ln = vb.pp("layer_norm");
            let norm = match (c.feat_extract_norm == "group", i) {
                (true, 0) => ConvNorm::Group(norm(&ln, c_out, &[c_out, 1], FEATURE_NORM_EPS)?),
                (true, _) => ConvNorm::None,
                (false, _) => ConvNorm::Layer(norm(&ln, c_out, &[c_out], FEATURE_NORM_EPS)?),
            };
            conv_layers.push(ConvLayer {
                weight,
                bias,
                stride,
                norm,
            });
            c_in = c_out;
        }

        let fp = base.pp("feature_projection");
        let projection_norm = if c.feat_proj_layer_norm {
            Some(norm(&fp.pp("layer_norm"), c_in, &[c_in], c.layer_norm_eps)?)
        } else {
            None
        };
        let projection = if hubert {
            linear(
                &fp.pp("projection"),
                c_in,
                hidden,
                normal(c.initializer_range),
                Init::Const(0.0),
            )?
        } else {
            let k = (1.0 / c_in as f64).sqrt();
            linear(
                &fp.pp("projection"),
                c_in,
                hidden,
                symmetric_uniform(k),
                symmetric_uniform(k),
            )?
        };

        // transformers creates `masked_spec_embed` only when some masking is configured.
        let masked_spec_embed = if (c.mask_time_prob > 0.0 || c.mask_feature_prob > 0.0)
            && base.contains_tensor("masked_spec_embed")
        {
            Some(base.get_with_hints(
                hidden,
                "masked_spec_embed",
                Init::Uniform { lo: 0.0, up: 1.0 },
            )?)
        } else {
            None
        };

        let kernel = c.num_conv_pos_embeddings;
        let groups = c.num_conv_pos_embedding_groups;
        let pos = base.pp("encoder.pos_conv_embed");
        let batch_norm = if c.conv_pos_batch_norm {
            let bn = pos.pp("batch_norm");
            let affine = |name: &str, init: f64| -> candle_core::Result<Tensor> {
                bn.get_with_hints(hidden, name, Init::Const(init))?
                    .reshape((hidden, 1))
            };
            let (weight, bias) = (affine("weight", 1.0)?, affine("bias", 0.0)?);
            bn.get_with_hints(hidden, "running_mean", Init::Const(0.0))?;
            bn.get_with_hints(hidden, "running_var", Init::Const(1.0))?;
            let buffer = |name: &str| -> candle_core::Result<Var> {
                let full = format!("{}.{name}", bn.prefix());
                varmap
                    .data()
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&full)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("no variable `{full}`")))
            };
            Some(BatchNorm {
                weight,
                bias,
                running_mean: buffer("running_mean")?,
                running_var: buffer("running_var")?,
                n_batches: Arc::new(AtomicU64::new(0)),
            })
        } else {
            None
        };
        let shape = (hidden, hidden / groups, kernel);
        let fan_in = hidden / groups * kernel;
        let conv = pos.pp("conv");
        let weight = if c.conv_pos_batch_norm {
            PosConvWeight::Plain(conv.get_with_hints(shape, "weight", KAIMING_NORMAL)?)
        } else {
            // `v` first: a drawn `g` is `||v||`.
            let v = conv.get_with_hints(shape, "weight_v", torch_default_conv(fan_in))?;
            let g = conv.get_with_hints((1, 1, kernel), "weight_g", Init::Const(1.0))?;
            PosConvWeight::Norm { g, v }
        };
        let pos_conv = PositionalConv {
            batch_norm,
            weight,
            bias: conv
                .get_with_hints(hidden, "bias", Init::Const(0.0))?
                .reshape((1, hidden, 1))?,
            padding: kernel / 2,
            groups,
        };
        let encoder_norm = norm(
            &base.pp("encoder.layer_norm"),
            hidden,
            &[hidden],
            c.layer_norm_eps,
        )?;

        let dense = normal(c.initializer_range);
        let zero = Init::Const(0.0);
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let vb = base.pp(format!("encoder.layers.{i}"));
            let attn =
                |name: &str| linear(&vb.pp("attention").pp(name), hidden, hidden, dense, zero);
            // Requested in the order of transformers' module definition (k, v, q, out),
            // so that seeded draws come in a stable order that reads like the reference.
            let k_proj = attn("k_proj")?;
            let v_proj = attn("v_proj")?;
            let q_proj = attn("q_proj")?;
            let out_proj = attn("out_proj")?;
            let ff = vb.pp("feed_forward");
            layers.push(EncoderLayer {
                attention: Attention {
                    q_proj,
                    k_proj,
                    v_proj,
                    out_proj,
                    n_heads: c.num_attention_heads,
                    dropout: c.attention_dropout,
                },
                layer_norm: norm(&vb.pp("layer_norm"), hidden, &[hidden], c.layer_norm_eps)?,
                intermediate_dense: linear(
                    &ff.pp("intermediate_dense"),
                    hidden,
                    c.intermediate_size,
                    dense,
                    zero,
                )?,
                output_dense: linear(
                    &ff.pp("output_dense"),
                    c.intermediate_size,
                    hidden,
                    dense,
                    zero,
                )?,
                final_layer_norm: norm(
                    &vb.pp("final_layer_norm"),
                    hidden,
                    &[hidden],
                    c.layer_norm_eps,
                )?,
                hidden_dropout: c.hidden_dropout,
                activation_dropout: c.activation_dropout,
            });
        }

        let head = match head {
            Head::Ctc { vocab, .. } => {
                let n_vocab = c.vocab_size.unwrap_or(vocab.len());
                HeadLayers::Ctc {
                    lm_head: linear(&vb.pp("lm_head"), hidden, n_vocab, dense, zero)?,
                }
            }
            Head::Classifier { labels } => {
                let proj = c.classifier_proj_size.unwrap_or(256);
                let n = c.num_hidden_layers + 1;
                let layer_weights = if c.use_weighted_layer_sum {
                    Some(vb.get_with_hints(n, "layer_weights", Init::Const(1.0 / n as f64))?)
                } else {
                    None
                };
                HeadLayers::Classifier {
                    layer_weights,
                    projector: linear(&vb.pp("projector"), hidden, proj, dense, zero)?,
                    classifier: linear(&vb.pp("classifier"), proj, labels.len(), dense, zero)?,
                }
            }
        };

        Ok(Parts {
            conv_layers,
            projection_norm,
            projection,
            masked_spec_embed,
            pos_conv,
            encoder_norm,
            layers,
            head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Wav2Vec2Config {
        &self.config
    }

    /// Wav2Vec2 or HuBERT.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The head: CTC vocabulary or class labels.
    pub fn head(&self) -> &Head {
        &self.head_spec
    }

    /// Whether inputs are to be normalized to zero mean and unit variance per example
    /// (the processor's `do_normalize`).
    pub fn normalize(&self) -> bool {
        self.normalize
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables, by Hugging Face name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Every variable with its Hugging Face name, sorted by name: the parameters and,
    /// for a positional BatchNorm, its running statistics.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// HuBERT's positional BatchNorm's `num_batches_tracked`: training steps taken by
    /// this model and its clones (0 without that BatchNorm).
    pub(crate) fn batch_norm_steps(&self) -> Option<u64> {
        self.pos_conv
            .batch_norm
            .as_ref()
            .map(|bn| bn.n_batches.load(Ordering::Relaxed))
    }

    /// Which parameters are trained ([`Trainable::All`] unless set).
    pub fn trainable(&self) -> Trainable {
        self.trainable
    }

    /// Freezes every parameter but those `trainable` names, and stops the backward pass
    /// at the frozen part's output, as transformers' `requires_grad = False` does.
    /// Fails with [`Error::InvalidInput`] when more layers are asked for than there are.
    pub fn set_trainable(&mut self, trainable: Trainable) -> Result<()> {
        if let Trainable::TopLayers { n_layers } = trainable
            && n_layers > self.config.num_hidden_layers
        {
            return Err(Error::InvalidInput {
                what: "trainable top layers".into(),
                expected: format!("at most {}", self.config.num_hidden_layers),
                got: n_layers.to_string(),
            });
        }
        self.trainable = trainable;
        Ok(())
    }

    /// The variables to optimize under [`Wav2Vec2Model::trainable`], with their Hugging
    /// Face names, sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.vars()
            .into_iter()
            .filter(|(name, _)| self.is_trainable(name))
            .collect()
    }

    /// Whether the variable `name` is trained, by its Hugging Face name.
    fn is_trainable(&self, name: &str) -> bool {
        if name.ends_with(".running_mean") || name.ends_with(".running_var") {
            return false;
        }
        let base = format!("{}.", self.family.as_str());
        let Some(inner) = name.strip_prefix(&base) else {
            return true; // the head
        };
        match self.trainable {
            Trainable::All => true,
            Trainable::AllButFeatureEncoder => !inner.starts_with("feature_extractor."),
            Trainable::TopLayers { n_layers } => {
                if self.config.do_stable_layer_norm && inner.starts_with("encoder.layer_norm.") {
                    return true;
                }
                let first = self.config.num_hidden_layers - n_layers;
                inner
                    .strip_prefix("encoder.layers.")
                    .and_then(|rest| rest.split('.').next())
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i >= first)
            }
            Trainable::Head => false,
        }
    }

    /// The fewest input samples that give one frame: the feature encoder's receptive
    /// field (400 for the released models' convolutions). Shorter inputs, and examples
    /// whose attention mask has fewer valid samples, are refused.
    pub fn receptive_field_samples(&self) -> usize {
        self.config
            .conv_kernel
            .iter()
            .zip(&self.config.conv_stride)
            .rev()
            .fold(1, |r, (&k, &s)| (r - 1) * s + k)
    }

    /// Runs the model and its head in evaluation mode: [`Wav2Vec2Model::forward_t`] with
    /// [`Mode::Eval`].
    pub fn forward(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.forward_t(input_values, attention_mask, Mode::Eval)
    }

    /// Runs the model and its head.
    ///
    /// - `input_values`: (B, N) waveforms, already normalized, in a float dtype
    ///   (converted to f32); N must be at least [`Wav2Vec2Model::receptive_field_samples`].
    /// - `attention_mask`: optional (B, N), 1 on real samples and 0 on padding, in any
    ///   numeric dtype (`u8`, `u32`, `i64`, `f32`, ...). As in transformers, an example's
    ///   valid length is the number of ones (padding is expected at the end), and its
    ///   valid frames are `config.output_frames(length)`; padded frames are zeroed before
    ///   the positional convolution and masked out of attention and pooling.
    /// - `mode`: [`Mode::Eval`] for the reference, [`Mode::Train`] for a training step.
    ///
    /// Returns CTC logits (B, T, vocab) over every frame (padded frames included, as
    /// transformers computes them), or classification logits (B, n_labels).
    ///
    /// Fails with [`Error::InvalidInput`] for a rank other than 2, an empty batch, a
    /// non-float input, a mask whose shape differs from the input's or with values other
    /// than 0 and 1, an input or valid length shorter than the receptive field, or (in
    /// training) a SpecAugment span longer than the masked axis; with
    /// [`Error::MissingTensor`] when training with time masking a model built without
    /// `masked_spec_embed`.
    pub fn forward_t(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
        mode: Mode<'_>,
    ) -> Result<Tensor> {
        let mut run = Run {
            rng: match mode {
                Mode::Eval => None,
                Mode::Train { rng } => Some(rng),
            },
        };
        let encoded = self.encode(input_values, attention_mask, &mut run)?;
        match &self.head {
            // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1871-L1873
            HeadLayers::Ctc { lm_head } => run
                .dropout(&encoded.last, self.config.final_dropout)
                .and_then(|h| lm_head.forward(&h))
                .map_err(candle_err("running the CTC head")),
            HeadLayers::Classifier {
                layer_weights,
                projector,
                classifier,
            } => classify(&encoded, layer_weights.as_ref(), projector, classifier)
                .map_err(candle_err("running the classification head")),
        }
    }

    /// The encoder output (B, T, H) for `input_values` (B, N) and an optional
    /// `attention_mask` (B, N), in evaluation mode: what the head reads (transformers'
    /// `last_hidden_state`). Inputs and errors as for [`Wav2Vec2Model::forward`].
    pub fn last_hidden_state(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        Ok(self
            .encode(input_values, attention_mask, &mut Run { rng: None })?
            .last)
    }

    /// The `num_hidden_layers + 1` hidden states (each (B, T, H)) that a weighted layer
    /// sum mixes, in evaluation mode, for `input_values` (B, N) and an optional
    /// `attention_mask` (B, N); inputs and errors as for [`Wav2Vec2Model::forward`].
    ///
    /// The input of every layer (post-LN encoder: the positional embedding added, then
    /// `encoder.layer_norm`; pre-LN: the positional embedding added, with no
    /// normalization, for the first), then the encoder output (post-LN: the last layer's
    /// output; pre-LN: it through `encoder.layer_norm`).
    ///
    /// That is transformers 4.x's `output_hidden_states`
    /// (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py>,
    /// `Wav2Vec2EncoderStableLayerNorm.forward`), the one under which the released
    /// classifiers with a stable encoder and a weighted layer sum (the
    /// `superb/*-large-superb-*` checkpoints, converted from s3prl) were published.
    /// transformers 5.x collects the layers' outputs by hooks instead
    /// (<https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1272>,
    /// `tie_last_hidden_states=False`), so for a stable encoder its last entry is the last
    /// layer's output *before* `encoder.layer_norm`; its other entries are the ones here.
    /// The two agree for post-LN encoders, so they differ only for classifiers with a
    /// stable encoder and `use_weighted_layer_sum`.
    pub fn hidden_states(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        Ok(self
            .encode(input_values, attention_mask, &mut Run { rng: None })?
            .all)
    }

    /// Checks `input_values` and returns it as (B, N) f32 on the model's device.
    fn check_input(&self, input_values: &Tensor) -> Result<Tensor> {
        let dims = input_values.dims();
        let &[n_batch, n_samples] = dims else {
            return Err(Error::InvalidInput {
                what: "input_values shape".into(),
                expected: "2 axes (batch, n_samples)".into(),
                got: format!("{dims:?}"),
            });
        };
        if n_batch == 0 {
            return Err(Error::InvalidInput {
                what: "input_values batch size".into(),
                expected: "at least 1".into(),
                got: "0".into(),
            });
        }
        let min_samples = self.receptive_field_samples();
        if n_samples < min_samples {
            return Err(Error::InvalidInput {
                what: "input_values length".into(),
                expected: format!(
                    "at least {min_samples} samples (the feature encoder's receptive field)"
                ),
                got: format!("{n_samples} samples"),
            });
        }
        if !input_values.dtype().is_float() {
            return Err(Error::InvalidInput {
                what: "input_values dtype".into(),
                expected: "a float dtype (f32)".into(),
                got: format!("{:?}", input_values.dtype()),
            });
        }
        input_values
            .to_dtype(DType::F32)
            .and_then(|x| x.to_device(&self.device))
            .map_err(candle_err("preparing input_values"))
    }

    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1096-L1114
    /// The frame mask of a sample mask (B, N) for `n_frames` frames.
    fn frame_mask(
        &self,
        mask: &Tensor,
        input_dims: &[usize],
        n_frames: usize,
    ) -> Result<FrameMask> {
        if mask.dims() != input_dims {
            return Err(Error::InvalidInput {
                what: "attention_mask shape".into(),
                expected: format!("{input_dims:?}, the shape of input_values"),
                got: format!("{:?}", mask.dims()),
            });
        }
        let rows: Vec<Vec<f32>> = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.to_vec2())
            .map_err(candle_err("reading attention_mask"))?;
        let min_samples = self.receptive_field_samples();
        let mut valid = Vec::with_capacity(rows.len() * n_frames);
        let mut lengths = Vec::with_capacity(rows.len());
        for (b, row) in rows.iter().enumerate() {
            if let Some(v) = row.iter().find(|&&v| v != 0.0 && v != 1.0) {
                return Err(Error::InvalidInput {
                    what: format!("attention_mask value in example {b}"),
                    expected: "0 or 1".into(),
                    got: v.to_string(),
                });
            }
            let length = row.iter().filter(|&&v| v == 1.0).count();
            let frames = self.config.output_frames(length);
            if frames == 0 {
                return Err(Error::InvalidInput {
                    what: format!("valid samples of example {b} (ones in attention_mask)"),
                    expected: format!(
                        "at least {min_samples} (the feature encoder's receptive field)"
                    ),
                    got: length.to_string(),
                });
            }
            valid.extend((0..n_frames).map(|t| if t < frames { 1f32 } else { 0f32 }));
            lengths.push(frames.min(n_frames));
        }
        let n_batch = rows.len();
        let n_valid: Vec<f32> = lengths.iter().map(|&l| l as f32).collect();
        let build = || -> candle_core::Result<FrameMask> {
            let valid = Tensor::from_vec(valid, (n_batch, n_frames), &self.device)?;
            // 0 where valid, f32::MIN where padded: (1 - valid) * MIN.
            let additive = (valid.affine(-1.0, 1.0)? * f64::from(f32::MIN))?
                .reshape((n_batch, 1, 1, n_frames))?;
            let n_valid = Tensor::from_vec(n_valid, (n_batch, 1), &self.device)?;
            Ok(FrameMask {
                valid,
                additive,
                n_valid,
                lengths,
            })
        };
        build().map_err(candle_err("building the frame mask"))
    }

    // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1381-L1425
    /// SpecAugment in training (identity otherwise): spans of frames replaced by
    /// `masked_spec_embed`, then spans of channels zeroed, on h: (B, T, H).
    ///
    /// Wav2Vec2 draws each example's time spans inside its valid frames; HuBERT's
    /// `HubertModel.forward` does not pass its attention mask to `_mask_hidden_states`,
    /// so its spans may fall on padding, and so they do here.
    fn spec_augment(&self, h: Tensor, mask: Option<&FrameMask>, run: &mut Run) -> Result<Tensor> {
        let c = &self.config;
        let Some(rng) = run.rng.as_deref_mut() else {
            return Ok(h);
        };
        if !c.apply_spec_augment {
            return Ok(h);
        }
        let (n_batch, n_frames, hidden) = h.dims3().map_err(candle_err("reading shapes"))?;
        let mut h = h;
        if c.mask_time_prob > 0.0 {
            let embed = self
                .masked_spec_embed
                .as_ref()
                .ok_or_else(|| Error::MissingTensor {
                    name: format!("{}.masked_spec_embed", self.family.as_str()),
                })?;
            let lengths = match (self.family, mask) {
                (Family::Wav2Vec2, Some(m)) => Some(m.lengths.as_slice()),
                _ => None,
            };
            let spec = SpanMask {
                prob: c.mask_time_prob,
                length: c.mask_time_length,
                min_masks: c.mask_time_min_masks,
            };
            let m = compute_mask_indices(n_batch, n_frames, spec, lengths, rng)?;
            let m: Vec<f32> = m.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect();
            h = (|| -> candle_core::Result<Tensor> {
                let m = Tensor::from_vec(m, (n_batch, n_frames, 1), &self.device)?;
                let kept = h.broadcast_mul(&m.affine(-1.0, 1.0)?)?;
                kept + m.broadcast_mul(&embed.reshape((1, 1, hidden))?)?
            })()
            .map_err(candle_err("masking frames"))?;
        }
        if c.mask_feature_prob > 0.0 {
            let spec = SpanMask {
                prob: c.mask_feature_prob,
                length: c.mask_feature_length,
                min_masks: c.mask_feature_min_masks,
            };
            let m = compute_mask_indices(n_batch, hidden, spec, None, rng)?;
            let keep: Vec<f32> = m.into_iter().map(|b| if b { 0.0 } else { 1.0 }).collect();
            h = Tensor::from_vec(keep, (n_batch, 1, hidden), &self.device)
                .and_then(|k| h.broadcast_mul(&k))
                .map_err(candle_err("masking channels"))?;
        }
        Ok(h)
    }

    /// Feature encoder, projection, SpecAugment and transformer encoder.
    fn encode(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
        run: &mut Run,
    ) -> Result<Encoded> {
        let x = self.check_input(input_values)?;
        let c = &self.config;
        let training = run.training();

        // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L391-L456
        // (HuBERT may skip the LayerNorm: `feat_proj_layer_norm`)
        // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/hubert/modeling_hubert.py#L221-L236
        let features = (|| -> candle_core::Result<Tensor> {
            let mut h = x.unsqueeze(2)?;
            for layer in &self.conv_layers {
                h = layer.forward(&h)?;
            }
            let h = h.contiguous()?;
            Ok(match self.trainable {
                Trainable::All => h,
                _ => h.detach(),
            })
        })()
        .map_err(candle_err("running the feature encoder"))?;
        let n_frames = features
            .dim(1)
            .map_err(candle_err("reading the number of frames"))?;
        let mask = attention_mask
            .map(|m| self.frame_mask(m, x.dims(), n_frames))
            .transpose()?;
        let projected = (|| -> candle_core::Result<Tensor> {
            let mut h = features;
            if let Some(norm) = &self.projection_norm {
                h = norm.forward(&h)?;
            }
            let h = self.projection.forward(&h)?;
            run.dropout(&h, c.feat_proj_dropout)
        })()
        .map_err(candle_err("running the feature projection"))?;
        let h = self.spec_augment(projected, mask.as_ref(), run)?;

        // https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L682-L871
        let n_layers = self.layers.len();
        let first_trained = match self.trainable {
            Trainable::TopLayers { n_layers: n } => Some(n_layers - n.min(n_layers)),
            _ => None,
        };
        let encoder = || -> candle_core::Result<(Tensor, Vec<Tensor>)> {
            let mut h = h;
            let additive = mask.as_ref().map(|m| &m.additive);
            if let Some(m) = &mask {
                h = h.broadcast_mul(&m.valid.unsqueeze(2)?)?;
            }
            h = (&h + self.pos_conv.forward(&h, training)?)?;
            if !c.do_stable_layer_norm {
                h = self.encoder_norm.forward(&h)?;
            }
            h = run.dropout(&h, c.hidden_dropout)?;
            let mut all = Vec::with_capacity(n_layers + 1);
            for (i, layer) in self.layers.iter().enumerate() {
                if first_trained == Some(i) {
                    h = h.detach();
                    detach_all(&mut all);
                }
                all.push(h.clone());
                // LayerDrop: one draw per layer, as `torch.rand([])` in the loop.
                if let Some(rng) = run.rng.as_deref_mut()
                    && c.layerdrop > 0.0
                    && rng.random::<f64>() < c.layerdrop
                {
                    continue;
                }
                h = if c.do_stable_layer_norm {
                    layer.forward_pre_ln(&h, additive, run)?
                } else {
                    layer.forward_post_ln(&h, additive, run)?
                };
            }
            if first_trained == Some(n_layers) {
                h = h.detach();
                detach_all(&mut all);
            }
            if c.do_stable_layer_norm {
                h = self.encoder_norm.forward(&h)?;
            }
            all.push(h.clone());
            if self.trainable == Trainable::Head {
                h = h.detach();
                detach_all(&mut all);
            }
            Ok((h, all))
        };
        let (last, all) = encoder().map_err(candle_err("running the transformer encoder"))?;
        Ok(Encoded { last, all, mask })
    }
}

// https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1996-L2014
/// Weighted layer sum (or last hidden state), projector, mean over valid frames,
/// classifier: (B, n_labels).
fn classify(
    encoded: &Encoded,
    layer_weights: Option<&Tensor>,
    projector: &Linear,
    classifier: &Linear,
) -> candle_core::Result<Tensor> {
    let h = match layer_weights {
        Some(w) => {
            let n = w.dim(0)?;
            let w = softmax_last(w)?.reshape((n, 1, 1, 1))?;
            Tensor::stack(&encoded.all, 0)?.broadcast_mul(&w)?.sum(0)?
        }
        None => encoded.last.clone(),
    };
    let h = projector.forward(&h)?;
    let pooled = match &encoded.mask {
        None => h.mean(1)?,
        Some(m) => h
            .broadcast_mul(&m.valid.unsqueeze(2)?)?
            .sum(1)?
            .broadcast_div(&m.n_valid)?,
    };
    classifier.forward(&pooled)
}
