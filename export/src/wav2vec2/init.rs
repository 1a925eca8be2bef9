//! Where a model's parameters come from: a checkpoint, a [`VarMap`] that already holds
//! them, or a seeded initialization that follows transformers' `_init_weights`; and the
//! named configurations a model can be trained from scratch with.
//!
//! The model is built once, from a [`candle_nn::VarBuilder`]; every parameter is asked
//! for by its Hugging Face name with transformers' initialization as the hint. The
//! builder's backend here, [`ParamStore`], answers from the [`VarMap`] when the variable
//! exists, else from the checkpoint's tensors (copied into a new variable), else, when
//! it was given an rng, with a fresh draw of the hinted distribution from that
//! [`ChaCha8Rng`]: the same seed gives the same model, and nothing depends on candle's
//! own generator. The order of the draws is the order in which the model asks for its
//! parameters, which is fixed.
//!
//! transformers' initialization, as `_init_weights` leaves the weights (checked against
//! transformers 4.57 with PyTorch 2.x):
//!
//! | module | Wav2Vec2 | HuBERT |
//! |---|---|---|
//! | feature-encoder convolutions | Kaiming normal (fan in); bias `U(±sqrt(groups / fan_in))` | Kaiming normal; bias 0 |
//! | feature projection | `U(±1/sqrt(n_in))` (weight and bias) | `N(0, initializer_range)`, bias 0 |
//! | other linear layers (attention, feed-forward, heads) | `N(0, initializer_range)`, bias 0 | same |
//! | LayerNorm, GroupNorm, BatchNorm | weight 1, bias 0 | same |
//! | positional convolution | `v`: PyTorch's default `U(±1/sqrt(fan_in))`, `g = ‖v‖`; bias 0 | same |
//! | `masked_spec_embed` | `U(0, 1)` | same |
//! | `layer_weights` | `1 / (num_hidden_layers + 1)` | same |
//!
//! The positional convolution's row is what transformers really produces: its
//! `_init_weights` writes a normal draw into `conv.weight`, but under weight norm that
//! attribute is recomputed from `g` and `v` (by a parametrization or a pre-forward hook),
//! so the draw is lost and `v` keeps `nn.Conv1d`'s default initialization.
//!
//! References:
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L1034-L1071>,
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/hubert/modeling_hubert.py#L688-L719>.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::VarMap;
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::{Family, Wav2Vec2Config, weight_norm_magnitude};
use crate::error::{Error, Result};

/// A named architecture to train from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A small model that trains on two CPU cores: width 64, 2 layers of 4 heads,
    /// feed-forward 256, a 7-layer feature encoder of 32 channels with the released
    /// models' strides (320 samples a frame, so the runtime's contract is unchanged) and
    /// a 32-frame positional convolution. Dropouts as `Base`, but no LayerDrop: with two
    /// layers it would remove half the model.
    Tiny,
    /// `facebook/hubert-base-ls960`'s configuration (94 M parameters): width 768, 12
    /// layers of 12 heads, feed-forward 3072, 512-channel GroupNorm feature encoder,
    /// post-LN encoder, 128-frame positional convolution in 16 groups; dropout 0.1
    /// everywhere (hidden, attention, activation, feature projection, final), LayerDrop
    /// 0.1, time masking 0.05 of the frames in spans of 10.
    Base,
}

impl Preset {
    /// The preset named `name` (`tiny`, `base`), or [`Error::InvalidInput`].
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Preset::Tiny),
            "base" => Ok(Preset::Base),
            other => Err(Error::InvalidInput {
                what: "model preset".into(),
                expected: "tiny or base".into(),
                got: other.into(),
            }),
        }
    }

    /// The configuration of this preset for `family`, without a head (give it one with
    /// [`Wav2Vec2Config::set_head`]).
    pub fn config(self, family: Family) -> Result<Wav2Vec2Config> {
        let (hidden, layers, heads, ffn, conv, pos_kernel, pos_groups, layerdrop) = match self {
            Preset::Tiny => (64, 2, 4, 256, 32, 32, 4, 0.0),
            Preset::Base => (768, 12, 12, 3072, 512, 128, 16, 0.1),
        };
        let json = serde_json::json!({
            "model_type": family.as_str(),
            "architectures": [match family {
                Family::Wav2Vec2 => "Wav2Vec2Model",
                Family::Hubert => "HubertModel",
            }],
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": ffn,
            "hidden_act": "gelu",
            "feat_extract_activation": "gelu",
            "layer_norm_eps": 1e-5,
            "conv_dim": vec![conv; 7],
            "conv_stride": [5, 2, 2, 2, 2, 2, 2],
            "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
            "conv_bias": false,
            "feat_extract_norm": "group",
            "do_stable_layer_norm": false,
            "feat_proj_layer_norm": true,
            "num_conv_pos_embeddings": pos_kernel,
            "num_conv_pos_embedding_groups": pos_groups,
            "num_feat_extract_layers": 7,
            "hidden_dropout": 0.1,
            "attention_dropout": 0.1,
            "activation_dropout": 0.1,
            "feat_proj_dropout": 0.1,
            "final_dropout": 0.1,
            "layerdrop": layerdrop,
            "apply_spec_augment": true,
            "mask_time_prob": 0.05,
            "mask_time_length": 10,
            "mask_time_min_masks": 2,
            "mask_feature_prob": 0.0,
            "mask_feature_length": 10,
            "mask_feature_min_masks": 0,
            "initializer_range": 0.02,
            "vocab_size": 32,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "ctc_loss_reduction": "sum",
            "ctc_zero_infinity": false,
        });
        serde_json::from_value(json).map_err(|e| Error::InvalidInput {
            what: "preset configuration".into(),
            expected: "a valid Wav2Vec2 configuration".into(),
            got: e.to_string(),
        })
    }
}

/// Kaiming normal with fan-in and ReLU gain: PyTorch's `kaiming_normal_` defaults.
pub(crate) const KAIMING_NORMAL: Init = candle_nn::init::DEFAULT_KAIMING_NORMAL;

/// `N(0, std)`.
pub(crate) fn normal(std: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

/// `U(-bound, bound)`.
pub(crate) fn symmetric_uniform(bound: f64) -> Init {
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// PyTorch's default initialization of a convolution's weight
/// (`kaiming_uniform_(a=sqrt(5))`): `U(±1/sqrt(fan_in))`, `fan_in = C_in / groups * K`.
pub(crate) fn torch_default_conv(fan_in: usize) -> Init {
    symmetric_uniform(1.0 / (fan_in.max(1) as f64).sqrt())
}

/// The [`SimpleBackend`] a model is built from: see the module documentation.
pub(crate) struct ParamStore<'r> {
    /// Where the variables live.
    varmap: VarMap,
    /// Tensors to copy into new variables, by full Hugging Face name.
    tensors: HashMap<String, Tensor>,
    /// Draws the parameters that neither holds; without it they are an error.
    rng: Option<Mutex<&'r mut ChaCha8Rng>>,
    /// A prefix to remove from names in errors, so that they name checkpoint tensors as
    /// [`super::Wav2Vec2Checkpoint::tensors`] does.
    error_prefix: Option<String>,
    /// The first error, with its context, for the builder to return in place of the
    /// context-free candle error a [`SimpleBackend`] can give.
    error: Arc<Mutex<Option<Error>>>,
}

impl<'r> ParamStore<'r> {
    /// A store over `varmap`, with checkpoint `tensors` (full names) to load from and an
    /// optional `rng` to initialize the rest. `family`'s prefix is removed from names in
    /// errors.
    pub(crate) fn new(
        varmap: VarMap,
        tensors: HashMap<String, Tensor>,
        rng: Option<&'r mut ChaCha8Rng>,
        family: Option<Family>,
    ) -> Self {
        Self {
            varmap,
            tensors,
            rng: rng.map(Mutex::new),
            error_prefix: family.map(|f| format!("{}.", f.as_str())),
            error: Arc::new(Mutex::new(None)),
        }
    }

    /// The map the variables are put in.
    pub(crate) fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The slot where the first error is kept.
    pub(crate) fn error_slot(&self) -> Arc<Mutex<Option<Error>>> {
        self.error.clone()
    }

    /// Records `e` (unless an earlier error is kept) and returns a candle error for it.
    fn fail(&self, e: Error) -> candle_core::Error {
        let msg = e.to_string();
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(e);
        }
        candle_core::Error::Msg(msg)
    }

    /// `name` as errors show it.
    fn shown(&self, name: &str) -> String {
        match &self.error_prefix {
            Some(p) => name.strip_prefix(p.as_str()).unwrap_or(name).to_string(),
            None => name.to_string(),
        }
    }

    fn check_shape(&self, name: &str, expected: &Shape, got: &Shape) -> candle_core::Result<()> {
        if expected != got {
            return Err(self.fail(Error::ShapeMismatch {
                name: self.shown(name),
                expected: expected.dims().to_vec(),
                got: got.dims().to_vec(),
            }));
        }
        Ok(())
    }

    /// A fresh draw for `name`: the hinted distribution, except for a weight-normalized
    /// convolution's `g`, which is `‖v‖` of its (already created) `v`, as
    /// `weight_norm` sets it.
    fn draw(
        &self,
        rng: &mut ChaCha8Rng,
        shape: &Shape,
        name: &str,
        init: Init,
    ) -> candle_core::Result<Tensor> {
        if let Some(base) = name.strip_suffix(".weight_g") {
            let v_name = format!("{base}.weight_v");
            let data = self
                .varmap
                .data()
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = data.get(&v_name) {
                return weight_norm_magnitude(v.as_tensor());
            }
        }
        let n = shape.elem_count();
        let values: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => sample_normal(rng, n, mean, stdev)?,
            Init::Uniform { lo, up } => sample_uniform(rng, n, lo, up)?,
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = fan.for_shape(shape).max(1);
                let std = non_linearity.gain() / (fan as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => sample_normal(rng, n, 0.0, std)?,
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        sample_uniform(rng, n, -bound, bound)?
                    }
                }
            }
        };
        Tensor::from_vec(values, shape, &Device::Cpu)
    }
}

fn sample_normal(
    rng: &mut ChaCha8Rng,
    n: usize,
    mean: f64,
    std: f64,
) -> candle_core::Result<Vec<f32>> {
    let d = Normal::new(mean, std).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok((0..n).map(|_| d.sample(rng) as f32).collect())
}

fn sample_uniform(
    rng: &mut ChaCha8Rng,
    n: usize,
    lo: f64,
    up: f64,
) -> candle_core::Result<Vec<f32>> {
    if up <= lo {
        return Ok(vec![lo as f32; n]);
    }
    let d = Uniform::new(lo, up).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok((0..n).map(|_| d.sample(rng) as f32).collect())
}

impl SimpleBackend for ParamStore<'_> {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        {
            let data = self
                .varmap
                .data()
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(var) = data.get(name) {
                self.check_shape(name, &shape, var.shape())?;
                return Ok(var.as_tensor().clone());
            }
        }
        let value = if let Some(t) = self.tensors.get(name) {
            self.check_shape(name, &shape, t.shape())?;
            // `detach` makes `Var::from_tensor` copy even a tensor that is a variable, so
            // that training never writes into the checkpoint.
            t.detach()
        } else if let Some(rng) = &self.rng {
            let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
            self.draw(&mut rng, &shape, name, init)?
        } else {
            return Err(self.fail(Error::MissingTensor {
                name: self.shown(name),
            }));
        };
        let var = Var::from_tensor(&value.to_dtype(dtype)?.to_device(dev)?.detach())?;
        let tensor = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Err(self.fail(Error::MissingTensor {
            name: self.shown(name),
        }))
    }

    /// Whether [`SimpleBackend::get`] can answer for `name`: it is in the map or the
    /// checkpoint, or the store initializes what is missing.
    fn contains_tensor(&self, name: &str) -> bool {
        self.rng.is_some()
            || self.tensors.contains_key(name)
            || self
                .varmap
                .data()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn presets_parse_and_have_their_sizes() {
        let tiny = Preset::from_name("tiny")
            .unwrap()
            .config(Family::Hubert)
            .unwrap();
        assert_eq!(tiny.hidden_size, 64);
        assert_eq!(tiny.model_type, "hubert");
        assert_eq!(tiny.frame_stride(), 320);
        let base = Preset::Base.config(Family::Wav2Vec2).unwrap();
        assert_eq!((base.hidden_size, base.num_hidden_layers), (768, 12));
        assert_eq!(base.conv_dim, vec![512; 7]);
        assert_eq!(base.num_conv_pos_embeddings, 128);
        assert!(Preset::from_name("huge").is_err());
    }

    #[test]
    fn draws_follow_the_hint_and_the_seed() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let store = ParamStore::new(VarMap::new(), HashMap::new(), Some(&mut rng), None);
        let shape = Shape::from((256, 64));
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let w = store
            .draw(&mut r, &shape, "a.weight", normal(0.02))
            .unwrap();
        let std = w.sqr().unwrap().mean_all().unwrap().sqrt().unwrap();
        let std = std.to_scalar::<f32>().unwrap();
        assert!((std - 0.02).abs() < 0.001, "{std}");
        let mut r2 = ChaCha8Rng::seed_from_u64(1);
        let w2 = store
            .draw(&mut r2, &shape, "a.weight", normal(0.02))
            .unwrap();
        let same = (w - w2).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(same.to_scalar::<f32>().unwrap(), 0.0);

        let k = store
            .draw(
                &mut r,
                &Shape::from((64, 32, 3)),
                "c.weight",
                KAIMING_NORMAL,
            )
            .unwrap();
        let std = k.sqr().unwrap().mean_all().unwrap().sqrt().unwrap();
        let expected = (2.0f32 / 96.0).sqrt();
        assert!((std.to_scalar::<f32>().unwrap() / expected - 1.0).abs() < 0.05);

        let u = store
            .draw(&mut r, &Shape::from(1000), "u", symmetric_uniform(0.5))
            .unwrap();
        let max = u
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max <= 0.5 && max > 0.45, "{max}");
    }
}
