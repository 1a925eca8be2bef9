//! A candle forward pass for a [`Wav2Vec2Checkpoint`]: the numerical reference that ONNX
//! exports are checked against, and a way to run a checkpoint before exporting it.
//!
//! candle-transformers has no Wav2Vec2 or HuBERT, so this is a port of transformers'
//! modules, kept one to one with them (feature encoder, feature projection, positional
//! convolution, post-LN or pre-LN encoder, CTC or classification head) so that each step
//! can be compared with its Python counterpart. It runs in f32 on the device of the
//! checkpoint's tensors (the CPU for [`super::load_dir`]) and follows transformers'
//! numerics where candle's building blocks would not:
//!
//! - GELU is the exact erf form (`ACT2FN["gelu"]`), not candle's tanh approximation;
//! - LayerNorm, GroupNorm and BatchNorm are computed here with two-pass statistics
//!   (mean, then the mean of squared deviations), as PyTorch does, rather than with
//!   candle-nn's fused layer norm, which uses `E[x²] - E[x]²` and loses digits when a
//!   channel's mean is large against its spread (the first feature-encoder convolution);
//! - padded keys get `f32::MIN` added to their attention scores, transformers' `finfo.min`.
//!
//! There is no per-call state: [`Wav2Vec2Model`] holds only weights and is `Send + Sync`,
//! so one model can serve many threads. Shapes below use `B` for the batch, `N` for input
//! samples, `T` for frames (`config.output_frames(N)`), `H` for `hidden_size`.
//!
//! Reference: transformers v5.23.0 (the version the fixtures were generated with),
//! <https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py>
//! and
//! <https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/hubert/modeling_hubert.py>;
//! see [`Wav2Vec2Model::hidden_states`] for the one place where this port follows
//! transformers 4.x instead.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Linear};

use super::{Error, Head, Result, Wav2Vec2Checkpoint, Wav2Vec2Config, candle_err};

/// `eps` of the feature encoder's GroupNorm / LayerNorm and of HuBERT's positional
/// BatchNorm (PyTorch's default; `layer_norm_eps` applies only to the transformer and the
/// feature projection).
const FEATURE_NORM_EPS: f64 = 1e-5;

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
    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L306-L327
    // (`nn.GroupNorm(num_groups=C, num_channels=C)`: each channel of each example
    // normalized over time) and `nn.LayerNorm`, both with the biased variance.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        centered
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
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
    conv: Conv1d,
    norm: ConvNorm,
}

impl ConvLayer {
    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L258-L327
    /// x: (B, C_in, N_in) -> (B, C_out, N_out).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.conv.forward(x)?;
        let x = match &self.norm {
            ConvNorm::None => x,
            ConvNorm::Group(norm) => norm.forward(&x)?,
            ConvNorm::Layer(norm) => norm.forward(&x.transpose(1, 2)?)?.transpose(1, 2)?,
        };
        x.gelu_erf()
    }
}

/// HuBERT's optional BatchNorm before the positional convolution (`conv_pos_batch_norm`),
/// in inference mode. Every tensor is `(H, 1)`.
#[derive(Debug, Clone)]
struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm {
    /// x: (B, H, T) -> (B, H, T).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_sub(&self.running_mean)?
            .broadcast_div(&(&self.running_var + FEATURE_NORM_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// The convolutional positional embedding.
#[derive(Debug, Clone)]
struct PositionalConv {
    batch_norm: Option<BatchNorm>,
    conv: Conv1d,
}

impl PositionalConv {
    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L364-L383
    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/hubert/modeling_hubert.py#L86-L95
    /// x: (B, T, H) -> (B, T, H). The convolution pads K/2 on both sides, which yields
    /// T + 1 frames for an even kernel; the last one is dropped (`SamePadLayer`).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n_frames = x.dim(1)?;
        let mut x = x.transpose(1, 2)?;
        if let Some(bn) = &self.batch_norm {
            x = bn.forward(&x)?;
        }
        self.conv
            .forward(&x)?
            .narrow(2, 0, n_frames)?
            .gelu_erf()?
            .transpose(1, 2)
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
}

impl Attention {
    /// (B, T, H) -> (B, n_heads, T, H / n_heads).
    fn heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        x.reshape((b, t, self.n_heads, h / self.n_heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L442-L552
    /// x: (B, T, H); mask: (B, 1, 1, T), 0 on valid keys and `f32::MIN` on padded ones.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let q = self.heads(&self.q_proj.forward(x)?)?;
        let k = self.heads(&self.k_proj.forward(x)?)?;
        let v = self.heads(&self.v_proj.forward(x)?)?;
        let scaling = ((h / self.n_heads) as f64).powf(-0.5);
        let mut scores = (q.matmul(&k.t()?)? * scaling)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
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
}

impl EncoderLayer {
    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L555-L576
    /// (B, T, H) -> (B, T, H).
    fn feed_forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.output_dense
            .forward(&self.intermediate_dense.forward(x)?.gelu_erf()?)
    }

    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L595-L610
    /// Post-LN: x: (B, T, H) -> (B, T, H).
    fn forward_post_ln(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let h = (x + self.attention.forward(x, mask)?)?;
        let h = self.layer_norm.forward(&h)?;
        let h = (&h + self.feed_forward(&h)?)?;
        self.final_layer_norm.forward(&h)
    }

    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L633-L649
    /// Pre-LN ("stable layer norm"): x: (B, T, H) -> (B, T, H).
    fn forward_pre_ln(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let h = (x + self.attention.forward(&self.layer_norm.forward(x)?, mask)?)?;
        &h + self.feed_forward(&self.final_layer_norm.forward(&h)?)?
    }
}

/// The head's layers.
#[derive(Debug, Clone)]
enum HeadLayers {
    /// `lm_head` over every frame.
    Ctc { lm_head: Linear },
    /// Optional weighted layer sum, `projector`, mean pooling over valid frames,
    /// `classifier`.
    Classifier {
        /// softmax(`layer_weights`), shaped (L + 1, 1, 1, 1) to weigh stacked hidden states.
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
/// Holds only weights (immutable after [`Wav2Vec2Model::new`]), so it is `Send + Sync`
/// and can be shared through an `Arc`; inputs are batches of already normalized
/// waveforms (the processor's `do_normalize` is the caller's business).
#[derive(Debug, Clone)]
pub struct Wav2Vec2Model {
    config: Wav2Vec2Config,
    device: Device,
    conv_layers: Vec<ConvLayer>,
    projection_norm: Option<Norm>,
    projection: Linear,
    pos_conv: PositionalConv,
    encoder_norm: Norm,
    layers: Vec<EncoderLayer>,
    head: HeadLayers,
}

/// Tensors of a checkpoint by name, checked against the shapes the configuration implies.
struct Weights<'a>(&'a Wav2Vec2Checkpoint);

impl Weights<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.tensors.contains_key(name)
    }

    /// The tensor `name` in f32, or [`Error::MissingTensor`] / [`Error::ShapeMismatch`].
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.0.get(name)?;
        if t.dims() != shape {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        t.to_dtype(DType::F32)
            .map_err(candle_err(format!("converting `{name}` to f32")))
    }

    /// The number of rows of the matrix `name`, or [`Error::MissingTensor`].
    fn rows(&self, name: &str) -> Result<usize> {
        Ok(self.0.get(name)?.dims().first().copied().unwrap_or(0))
    }

    /// `{prefix}.weight` (n_out, n_in) and `{prefix}.bias` (n_out).
    fn linear(&self, prefix: &str, n_out: usize, n_in: usize) -> Result<Linear> {
        Ok(Linear::new(
            self.get(&format!("{prefix}.weight"), &[n_out, n_in])?,
            Some(self.get(&format!("{prefix}.bias"), &[n_out])?),
        ))
    }

    /// `{prefix}.weight` and `{prefix}.bias`, both (n), reshaped to `shape`.
    fn norm(&self, prefix: &str, n: usize, shape: &[usize], eps: f64) -> Result<Norm> {
        let get = |what: &str| -> Result<Tensor> {
            let name = format!("{prefix}.{what}");
            self.get(&name, &[n])?
                .reshape(shape)
                .map_err(candle_err(format!("reshaping `{name}`")))
        };
        Ok(Norm {
            weight: get("weight")?,
            bias: get("bias")?,
            eps,
        })
    }
}

/// [`Error::Unsupported`] about the checkpoint's `config.json`.
fn unsupported(ckpt: &Wav2Vec2Checkpoint, reason: String) -> Error {
    Error::Unsupported {
        path: ckpt.dir.join("config.json"),
        reason,
    }
}

/// Rejects configurations the forward pass cannot run (a [`Wav2Vec2Checkpoint`] is plain
/// data, so it may not have come from [`super::load_dir`], which checks the same).
fn check_config(ckpt: &Wav2Vec2Checkpoint) -> Result<()> {
    let c = &ckpt.config;
    let n = c.conv_dim.len();
    if n == 0 || c.conv_stride.len() != n || c.conv_kernel.len() != n {
        return Err(unsupported(
            ckpt,
            format!(
                "conv_dim, conv_stride and conv_kernel must have the same non-zero length, got {}, {}, {}",
                n,
                c.conv_stride.len(),
                c.conv_kernel.len()
            ),
        ));
    }
    if c.conv_stride.contains(&0) || c.conv_kernel.contains(&0) {
        return Err(unsupported(
            ckpt,
            "conv_stride and conv_kernel must be positive".into(),
        ));
    }
    if !matches!(c.feat_extract_norm.as_str(), "group" | "layer") {
        return Err(unsupported(
            ckpt,
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
                ckpt,
                format!("{what} `{act}` is not supported (only gelu)"),
            ));
        }
    }
    if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        return Err(unsupported(
            ckpt,
            format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
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
            ckpt,
            format!(
                "hidden_size {} is not a multiple of num_conv_pos_embedding_groups {}, or \
                 num_conv_pos_embeddings is 0",
                c.hidden_size, c.num_conv_pos_embedding_groups
            ),
        ));
    }
    if c.add_adapter {
        return Err(unsupported(
            ckpt,
            "adapter layers (`add_adapter`) are not supported".into(),
        ));
    }
    Ok(())
}

impl Wav2Vec2Model {
    /// Builds the model from a checkpoint's configuration and tensors, checking every
    /// tensor's shape against the configuration.
    ///
    /// Fails with [`Error::MissingTensor`] or [`Error::ShapeMismatch`] when the tensors do
    /// not fit the configuration, and [`Error::Unsupported`] for configurations the
    /// forward pass does not implement (non-GELU activations, adapters, inconsistent
    /// convolution lists). The CTC head's width is `vocab_size` (or `lm_head.weight`'s rows
    /// when the configuration has none); the classifier's is the number of labels of
    /// [`Head::Classifier`].
    pub fn new(ckpt: &Wav2Vec2Checkpoint) -> Result<Self> {
        check_config(ckpt)?;
        let c = &ckpt.config;
        let w = Weights(ckpt);
        let hidden = c.hidden_size;
        let group_norm = c.feat_extract_norm == "group";

        let mut conv_layers = Vec::with_capacity(c.conv_dim.len());
        let mut c_in = 1;
        for (i, ((&c_out, &kernel), &stride)) in c
            .conv_dim
            .iter()
            .zip(&c.conv_kernel)
            .zip(&c.conv_stride)
            .enumerate()
        {
            let prefix = format!("feature_extractor.conv_layers.{i}");
            let weight = w.get(&format!("{prefix}.conv.weight"), &[c_out, c_in, kernel])?;
            let bias = if c.conv_bias {
                Some(w.get(&format!("{prefix}.conv.bias"), &[c_out])?)
            } else {
                None
            };
            let config = Conv1dConfig {
                padding: 0,
                stride,
                dilation: 1,
                groups: 1,
                cudnn_fwd_algo: None,
            };
            let ln = format!("{prefix}.layer_norm");
            let norm = match (group_norm, i) {
                (true, 0) => ConvNorm::Group(w.norm(&ln, c_out, &[c_out, 1], FEATURE_NORM_EPS)?),
                (true, _) => ConvNorm::None,
                (false, _) => ConvNorm::Layer(w.norm(&ln, c_out, &[c_out], FEATURE_NORM_EPS)?),
            };
            conv_layers.push(ConvLayer {
                conv: Conv1d::new(weight, bias, config),
                norm,
            });
            c_in = c_out;
        }

        let projection_norm = if c.feat_proj_layer_norm {
            Some(w.norm(
                "feature_projection.layer_norm",
                c_in,
                &[c_in],
                c.layer_norm_eps,
            )?)
        } else {
            None
        };
        let projection = w.linear("feature_projection.projection", hidden, c_in)?;

        let kernel = c.num_conv_pos_embeddings;
        let groups = c.num_conv_pos_embedding_groups;
        let pos = "encoder.pos_conv_embed";
        let batch_norm = if w.has(&format!("{pos}.batch_norm.weight")) {
            let get = |what: &str| -> Result<Tensor> {
                let name = format!("{pos}.batch_norm.{what}");
                w.get(&name, &[hidden])?
                    .reshape((hidden, 1))
                    .map_err(candle_err(format!("reshaping `{name}`")))
            };
            Some(BatchNorm {
                weight: get("weight")?,
                bias: get("bias")?,
                running_mean: get("running_mean")?,
                running_var: get("running_var")?,
            })
        } else {
            None
        };
        let pos_conv = PositionalConv {
            batch_norm,
            conv: Conv1d::new(
                w.get(
                    &format!("{pos}.conv.weight"),
                    &[hidden, hidden / groups, kernel],
                )?,
                Some(w.get(&format!("{pos}.conv.bias"), &[hidden])?),
                Conv1dConfig {
                    padding: kernel / 2,
                    stride: 1,
                    dilation: 1,
                    groups,
                    cudnn_fwd_algo: None,
                },
            ),
        };
        let encoder_norm = w.norm("encoder.layer_norm", hidden, &[hidden], c.layer_norm_eps)?;

        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("encoder.layers.{i}");
            let attn = |name: &str| w.linear(&format!("{p}.attention.{name}"), hidden, hidden);
            layers.push(EncoderLayer {
                attention: Attention {
                    q_proj: attn("q_proj")?,
                    k_proj: attn("k_proj")?,
                    v_proj: attn("v_proj")?,
                    out_proj: attn("out_proj")?,
                    n_heads: c.num_attention_heads,
                },
                layer_norm: w.norm(
                    &format!("{p}.layer_norm"),
                    hidden,
                    &[hidden],
                    c.layer_norm_eps,
                )?,
                intermediate_dense: w.linear(
                    &format!("{p}.feed_forward.intermediate_dense"),
                    c.intermediate_size,
                    hidden,
                )?,
                output_dense: w.linear(
                    &format!("{p}.feed_forward.output_dense"),
                    hidden,
                    c.intermediate_size,
                )?,
                final_layer_norm: w.norm(
                    &format!("{p}.final_layer_norm"),
                    hidden,
                    &[hidden],
                    c.layer_norm_eps,
                )?,
            });
        }

        let head = match &ckpt.head {
            Head::Ctc { .. } => {
                let vocab = match c.vocab_size {
                    Some(n) => n,
                    None => w.rows("lm_head.weight")?,
                };
                HeadLayers::Ctc {
                    lm_head: w.linear("lm_head", vocab, hidden)?,
                }
            }
            Head::Classifier { labels } => {
                let proj = match c.classifier_proj_size {
                    Some(n) => n,
                    None => w.rows("projector.weight")?,
                };
                let layer_weights = if c.use_weighted_layer_sum {
                    let n = c.num_hidden_layers + 1;
                    let lw = w.get("layer_weights", &[n])?;
                    Some(
                        candle_nn::ops::softmax(&lw, 0)
                            .and_then(|s| s.reshape((n, 1, 1, 1)))
                            .map_err(candle_err("normalizing `layer_weights`"))?,
                    )
                } else {
                    None
                };
                HeadLayers::Classifier {
                    layer_weights,
                    projector: w.linear("projector", proj, hidden)?,
                    classifier: w.linear("classifier", labels.len(), proj)?,
                }
            }
        };

        Ok(Wav2Vec2Model {
            config: c.clone(),
            device: projection.weight().device().clone(),
            conv_layers,
            projection_norm,
            projection,
            pos_conv,
            encoder_norm,
            layers,
            head,
        })
    }

    /// The architecture configuration.
    pub fn config(&self) -> &Wav2Vec2Config {
        &self.config
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

    /// Runs the model and its head.
    ///
    /// - `input_values`: (B, N) waveforms, already normalized, in a float dtype
    ///   (converted to f32); N must be at least [`Wav2Vec2Model::receptive_field_samples`].
    /// - `attention_mask`: optional (B, N), 1 on real samples and 0 on padding, in any
    ///   numeric dtype (`u8`, `u32`, `i64`, `f32`, ...). As in transformers, an example's
    ///   valid length is the number of ones (padding is expected at the end), and its
    ///   valid frames are `config.output_frames(length)`; padded frames are zeroed before
    ///   the positional convolution and masked out of attention and pooling.
    ///
    /// Returns CTC logits (B, T, vocab) over every frame (padded frames included, as
    /// transformers computes them), or classification logits (B, n_labels).
    ///
    /// Fails with [`Error::InvalidInput`] for a rank other than 2, an empty batch, a
    /// non-float input, a mask whose shape differs from the input's or with values other
    /// than 0 and 1, or an input or valid length shorter than the receptive field.
    pub fn forward(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let encoded = self.encode(input_values, attention_mask)?;
        match &self.head {
            HeadLayers::Ctc { lm_head } => lm_head
                .forward(&encoded.last)
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
    /// `attention_mask` (B, N): what the head reads (transformers' `last_hidden_state`).
    /// Inputs and errors as for [`Wav2Vec2Model::forward`].
    pub fn last_hidden_state(
        &self,
        input_values: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        Ok(self.encode(input_values, attention_mask)?.last)
    }

    /// The `num_hidden_layers + 1` hidden states (each (B, T, H)) that a weighted layer
    /// sum mixes, for `input_values` (B, N) and an optional `attention_mask` (B, N);
    /// inputs and errors as for [`Wav2Vec2Model::forward`].
    ///
    /// Post-LN encoder: the input of the first layer (positional embedding added, then
    /// `encoder.layer_norm`), then the output of every layer; the last entry is the
    /// encoder output. Pre-LN (stable) encoder: the input of every layer (the first is
    /// the positional embedding added, with no normalization), then the encoder output
    /// (the last layer's output through `encoder.layer_norm`).
    ///
    /// That is transformers 4.x's `output_hidden_states`
    /// (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/wav2vec2/modeling_wav2vec2.py>,
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
        Ok(self.encode(input_values, attention_mask)?.all)
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

    // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L950-L989
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
        let mut n_valid = Vec::with_capacity(rows.len());
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
            n_valid.push(frames as f32);
        }
        let n_batch = rows.len();
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
            })
        };
        build().map_err(candle_err("building the frame mask"))
    }

    /// Feature encoder, projection and transformer encoder.
    fn encode(&self, input_values: &Tensor, attention_mask: Option<&Tensor>) -> Result<Encoded> {
        let x = self.check_input(input_values)?;

        // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L413-L438
        // (HuBERT may skip the LayerNorm: `feat_proj_layer_norm`)
        // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/hubert/modeling_hubert.py#L228-L234
        let features = (|| -> candle_core::Result<Tensor> {
            let mut h = x.unsqueeze(1)?;
            for layer in &self.conv_layers {
                h = layer.forward(&h)?;
            }
            let mut h = h.transpose(1, 2)?.contiguous()?;
            if let Some(norm) = &self.projection_norm {
                h = norm.forward(&h)?;
            }
            self.projection.forward(&h)
        })()
        .map_err(candle_err("running the feature encoder"))?;

        let n_frames = features
            .dim(1)
            .map_err(candle_err("reading the number of frames"))?;
        let mask = attention_mask
            .map(|m| self.frame_mask(m, x.dims(), n_frames))
            .transpose()?;

        // https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L662-L747
        let run = || -> candle_core::Result<(Tensor, Vec<Tensor>)> {
            let mut h = features;
            let additive = mask.as_ref().map(|m| &m.additive);
            if let Some(m) = &mask {
                h = h.broadcast_mul(&m.valid.unsqueeze(2)?)?;
            }
            h = (&h + self.pos_conv.forward(&h)?)?;
            let mut all = Vec::with_capacity(self.layers.len() + 1);
            if self.config.do_stable_layer_norm {
                for layer in &self.layers {
                    all.push(h.clone());
                    h = layer.forward_pre_ln(&h, additive)?;
                }
                h = self.encoder_norm.forward(&h)?;
                all.push(h.clone());
            } else {
                h = self.encoder_norm.forward(&h)?;
                all.push(h.clone());
                for layer in &self.layers {
                    h = layer.forward_post_ln(&h, additive)?;
                    all.push(h.clone());
                }
            }
            Ok((h, all))
        };
        let (last, all) = run().map_err(candle_err("running the transformer encoder"))?;
        Ok(Encoded { last, all, mask })
    }
}

// https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1703-L1729
/// Weighted layer sum (or last hidden state), projector, mean over valid frames,
/// classifier: (B, n_labels).
fn classify(
    encoded: &Encoded,
    layer_weights: Option<&Tensor>,
    projector: &Linear,
    classifier: &Linear,
) -> candle_core::Result<Tensor> {
    let h = match layer_weights {
        Some(w) => Tensor::stack(&encoded.all, 0)?.broadcast_mul(w)?.sum(0)?,
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
