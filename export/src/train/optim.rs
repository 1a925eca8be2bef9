//! Optimizers with PyTorch's update rules, over named candle [`Var`]s.
//!
//! candle-nn ships an AdamW, but its state cannot be read out or restored, which a
//! checkpoint that resumes exactly needs, and it has no per-parameter weight-decay switch,
//! which Hugging Face's `Trainer` uses (no decay for biases and norm weights). So the update
//! rules are written out here, one tensor at a time, in the order of torch's single-tensor
//! (`foreach=False`) implementations; the committed fixture
//! `export/tests/fixtures/train/optim.json` (from `gen_optim.py` beside it) checks them
//! against torch step by step.
//!
//! The learning rate is not part of an optimizer: the trainer's schedule passes it to every
//! [`Optimizer::step`].

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::error::{Error, Result, candle_err};

/// A trainable variable, its name (as in the model's safetensors) and whether weight decay
/// applies to it.
#[derive(Debug, Clone)]
pub struct Param {
    /// The tensor name, e.g. `classifier.weight`.
    pub name: String,
    /// The variable the optimizer updates in place.
    pub var: Var,
    /// Whether the optimizer's weight decay applies to this variable.
    pub weight_decay: bool,
}

impl Param {
    /// A parameter that weight decay applies to.
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        Self {
            name: name.into(),
            var,
            weight_decay: true,
        }
    }

    /// A parameter with Hugging Face's default decay rule ([`hf_decays`]).
    pub fn with_hf_decay(name: impl Into<String>, var: Var) -> Self {
        let name = name.into();
        let weight_decay = hf_decays(&name);
        Self {
            name,
            var,
            weight_decay,
        }
    }
}

/// Whether Hugging Face's `Trainer` applies weight decay to the parameter of this name:
/// not to biases nor to the weights of layer and RMS norms.
///
/// Transformers' `Trainer.get_decay_parameter_names` (`src/transformers/trainer.py`, v4.57)
/// excludes names matching `bias`, `layernorm`, `rmsnorm`, `(?:^|\.)norm(?:$|\.)` and
/// `_norm(?:$|\.)` (case-insensitive), and the parameters of `nn.LayerNorm` modules. Only
/// names are seen here, so a norm must be named like one (wav2vec2's `layer_norm` and
/// Whisper's `self_attn_layer_norm` are).
pub fn hf_decays(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.contains("bias") || name.contains("layernorm") || name.contains("rmsnorm") {
        return false;
    }
    // `(?:^|\.)norm(?:$|\.)` is a segment `norm`; `_norm(?:$|\.)` a segment ending in `_norm`.
    !name.split('.').any(|s| s == "norm" || s.ends_with("_norm"))
}

/// Which optimizer, with its hyperparameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.AdamW`: decoupled weight decay `p -= lr * weight_decay * p`, then the
    /// bias-corrected Adam update with `eps` added to `sqrt(v_hat)`.
    AdamW {
        /// Decay of the first moment (`adam_beta1`, torch `betas[0]`).
        beta1: f64,
        /// Decay of the second moment (`adam_beta2`, torch `betas[1]`).
        beta2: f64,
        /// Added to the denominator (`adam_epsilon`).
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
    /// `torch.optim.SGD`: weight decay as an L2 term added to the gradient, optional
    /// (Nesterov) momentum.
    Sgd {
        /// Momentum factor; 0 disables the momentum buffer.
        momentum: f64,
        /// Dampening of the gradient in the momentum buffer.
        dampening: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
        /// Nesterov momentum (needs momentum > 0 and no dampening).
        nesterov: bool,
    },
}

impl Default for OptimizerConfig {
    /// AdamW with Hugging Face `TrainingArguments`' defaults: betas (0.9, 0.999), eps 1e-8,
    /// no weight decay.
    fn default() -> Self {
        Self::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// Checks the hyperparameters as torch's constructors do.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, expected: &str, got: String| {
            Err(Error::InvalidInput {
                what: format!("optimizer {what}"),
                expected: expected.to_string(),
                got,
            })
        };
        match *self {
            Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta1) {
                    return bad("beta1", "0 <= beta1 < 1", beta1.to_string());
                }
                if !(0.0..1.0).contains(&beta2) {
                    return bad("beta2", "0 <= beta2 < 1", beta2.to_string());
                }
                if eps.is_nan() || eps < 0.0 {
                    return bad("eps", "eps >= 0", eps.to_string());
                }
                if weight_decay.is_nan() || weight_decay < 0.0 {
                    return bad("weight_decay", ">= 0", weight_decay.to_string());
                }
            }
            Self::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
            } => {
                if momentum.is_nan() || momentum < 0.0 {
                    return bad("momentum", ">= 0", momentum.to_string());
                }
                if weight_decay.is_nan() || weight_decay < 0.0 {
                    return bad("weight_decay", ">= 0", weight_decay.to_string());
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return bad(
                        "nesterov",
                        "momentum > 0 and dampening 0",
                        format!("momentum {momentum}, dampening {dampening}"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// What an optimizer keeps for one parameter between steps.
#[derive(Debug, Clone, Default)]
struct ParamState {
    /// Updates applied to this parameter (torch's per-parameter `step`).
    step: u64,
    /// AdamW's first moment.
    exp_avg: Option<Tensor>,
    /// AdamW's second moment.
    exp_avg_sq: Option<Tensor>,
    /// SGD's momentum buffer.
    momentum_buffer: Option<Tensor>,
}

/// An optimizer over a fixed list of named parameters.
///
/// As in torch, a parameter without a gradient in a step is left alone entirely: no
/// weight decay, no moment update, its `step` does not advance.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Param>,
    states: Vec<ParamState>,
}

/// The state tensor names of one parameter, as `{param}.{suffix}` in the state file.
const STATE_SUFFIXES: [&str; 4] = ["step", "exp_avg", "exp_avg_sq", "momentum_buffer"];

impl Optimizer {
    /// An optimizer with fresh state. Fails on hyperparameters torch rejects, on two
    /// parameters with one name, and on a parameter that is not floating point.
    pub fn new(config: OptimizerConfig, params: Vec<Param>) -> Result<Self> {
        config.validate()?;
        let mut seen = HashSet::new();
        for p in &params {
            if !seen.insert(p.name.as_str()) {
                return Err(Error::InvalidInput {
                    what: "trainable parameter names".into(),
                    expected: "unique names".into(),
                    got: format!("`{}` twice", p.name),
                });
            }
            if !p.var.dtype().is_float() {
                return Err(Error::InvalidInput {
                    what: format!("dtype of trainable parameter `{}`", p.name),
                    expected: "a floating-point dtype".into(),
                    got: format!("{:?}", p.var.dtype()),
                });
            }
        }
        let states = vec![ParamState::default(); params.len()];
        Ok(Self {
            config,
            params,
            states,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The parameters, in the order given to [`Optimizer::new`].
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The variables, in the order of [`Optimizer::params`] (cheap clones of shared handles).
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|p| p.var.clone()).collect()
    }

    /// Applies one update with learning rate `lr` to every parameter that has a gradient
    /// in `grads`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for (param, state) in self.params.iter().zip(self.states.iter_mut()) {
            let Some(grad) = grads.get(param.var.as_tensor()) else {
                continue;
            };
            let what = || format!("optimizer step on `{}`", param.name);
            let p = param.var.as_detached_tensor();
            if grad.shape() != p.shape() {
                return Err(Error::ShapeMismatch {
                    name: format!("gradient of {}", param.name),
                    expected: p.dims().to_vec(),
                    got: grad.dims().to_vec(),
                });
            }
            let grad = grad
                .detach()
                .to_dtype(p.dtype())
                .map_err(candle_err(what()))?;
            let updated = match self.config {
                OptimizerConfig::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => adamw(
                    &p,
                    &grad,
                    state,
                    lr,
                    (beta1, beta2),
                    eps,
                    if param.weight_decay {
                        weight_decay
                    } else {
                        0.0
                    },
                ),
                OptimizerConfig::Sgd {
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                } => sgd(
                    &p,
                    &grad,
                    state,
                    lr,
                    momentum,
                    dampening,
                    if param.weight_decay {
                        weight_decay
                    } else {
                        0.0
                    },
                    nesterov,
                ),
            }
            .map_err(candle_err(what()))?;
            param.var.set(&updated).map_err(candle_err(what()))?;
        }
        Ok(())
    }

    /// The optimizer state as named tensors, for a checkpoint: for each parameter that has
    /// been updated, `{name}.step` (i64, shape (1,)) and, as the optimizer keeps them,
    /// `{name}.exp_avg`, `{name}.exp_avg_sq`, `{name}.momentum_buffer` (the parameter's
    /// shape and dtype).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (param, state) in self.params.iter().zip(&self.states) {
            if state.step == 0 {
                continue;
            }
            let step = i64::try_from(state.step).unwrap_or(i64::MAX);
            let device = param.var.device();
            let step = Tensor::new(&[step], device).map_err(candle_err("optimizer state"))?;
            out.insert(format!("{}.step", param.name), step);
            for (suffix, t) in [
                ("exp_avg", &state.exp_avg),
                ("exp_avg_sq", &state.exp_avg_sq),
                ("momentum_buffer", &state.momentum_buffer),
            ] {
                if let Some(t) = t {
                    out.insert(format!("{}.{suffix}", param.name), t.clone());
                }
            }
        }
        Ok(out)
    }

    /// Replaces the state with one exported by [`Optimizer::state_tensors`]. Parameters
    /// absent from `tensors` start fresh; a tensor for an unknown parameter, or of the wrong
    /// shape, is an error.
    pub fn load_state_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let known: HashSet<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        for key in tensors.keys() {
            let owner = key
                .rsplit_once('.')
                .filter(|(name, suffix)| STATE_SUFFIXES.contains(suffix) && known.contains(name));
            if owner.is_none() {
                return Err(Error::InvalidInput {
                    what: "optimizer state".into(),
                    expected: "`{param}.{step|exp_avg|exp_avg_sq|momentum_buffer}` for a trainable parameter".into(),
                    got: format!("`{key}`"),
                });
            }
        }
        let mut states = Vec::with_capacity(self.params.len());
        for param in &self.params {
            let mut state = ParamState::default();
            if let Some(step) = tensors.get(&format!("{}.step", param.name)) {
                let what = || format!("reading optimizer step of `{}`", param.name);
                let step: Vec<i64> = step
                    .to_dtype(DType::I64)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1())
                    .map_err(candle_err(what()))?;
                state.step = match step.as_slice() {
                    [s] if *s >= 0 => *s as u64,
                    other => {
                        return Err(Error::InvalidInput {
                            what: what(),
                            expected: "one non-negative count".into(),
                            got: format!("{other:?}"),
                        });
                    }
                };
            }
            let device = param.var.device();
            let load = |suffix: &str| -> Result<Option<Tensor>> {
                let key = format!("{}.{suffix}", param.name);
                let Some(t) = tensors.get(&key) else {
                    return Ok(None);
                };
                if t.shape() != param.var.shape() {
                    return Err(Error::ShapeMismatch {
                        name: key,
                        expected: param.var.dims().to_vec(),
                        got: t.dims().to_vec(),
                    });
                }
                let t = t
                    .to_device(device)
                    .and_then(|t| t.to_dtype(param.var.dtype()))
                    .map_err(candle_err(format!("loading {key}")))?;
                Ok(Some(t))
            };
            state.exp_avg = load("exp_avg")?;
            state.exp_avg_sq = load("exp_avg_sq")?;
            state.momentum_buffer = load("momentum_buffer")?;
            states.push(state);
        }
        self.states = states;
        Ok(())
    }

    /// Writes [`Optimizer::state_tensors`] to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors = self.state_tensors()?;
        candle_core::safetensors::save(&tensors, path)
            .map_err(candle_err(format!("writing {}", path.display())))
    }

    /// Reads a state written by [`Optimizer::save`].
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self
            .params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let tensors = candle_core::safetensors::load(path, &device)
            .map_err(candle_err(format!("reading {}", path.display())))?;
        self.load_state_tensors(&tensors)
    }
}

/// One AdamW update of `p` (torch `_single_tensor_adam` with `decoupled_weight_decay`),
/// `torch/optim/adam.py` (torch 2.x; AdamW is Adam with decoupled decay there).
fn adamw(
    p: &Tensor,
    grad: &Tensor,
    state: &mut ParamState,
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> candle_core::Result<Tensor> {
    state.step += 1;
    // param.mul_(1 - lr * weight_decay)
    let p = if weight_decay != 0.0 {
        p.affine(1.0 - lr * weight_decay, 0.0)?
    } else {
        p.clone()
    };
    let m = match &state.exp_avg {
        Some(m) => m.clone(),
        None => grad.zeros_like()?,
    };
    let v = match &state.exp_avg_sq {
        Some(v) => v.clone(),
        None => grad.zeros_like()?,
    };
    // exp_avg.lerp_(grad, 1 - beta1): m + (1 - beta1) * (grad - m)
    let m = (&m + grad.sub(&m)?.affine(1.0 - beta1, 0.0)?)?;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    let v = (v.affine(beta2, 0.0)? + grad.affine(1.0 - beta2, 0.0)?.mul(grad)?)?;
    let step = state.step as f64;
    let bias_correction1 = 1.0 - beta1.powf(step);
    let bias_correction2 = 1.0 - beta2.powf(step);
    let step_size = lr / bias_correction1;
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    let denom = (v.sqrt()? / bias_correction2.sqrt())?.affine(1.0, eps)?;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    let p = (p - m.div(&denom)?.affine(step_size, 0.0)?)?;
    state.exp_avg = Some(m);
    state.exp_avg_sq = Some(v);
    Ok(p)
}

/// One SGD update of `p` (torch `_single_tensor_sgd`),
/// `torch/optim/sgd.py` (torch 2.x).
#[allow(clippy::too_many_arguments)]
fn sgd(
    p: &Tensor,
    grad: &Tensor,
    state: &mut ParamState,
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
) -> candle_core::Result<Tensor> {
    state.step += 1;
    // d_p = grad.add(param, alpha=weight_decay)
    let mut d_p = if weight_decay != 0.0 {
        (grad + p.affine(weight_decay, 0.0)?)?
    } else {
        grad.clone()
    };
    if momentum != 0.0 {
        // buf = clone(d_p) on the first step, else buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
        let buf = match &state.momentum_buffer {
            None => d_p.copy()?,
            Some(buf) => (buf.affine(momentum, 0.0)? + d_p.affine(1.0 - dampening, 0.0)?)?,
        };
        d_p = if nesterov {
            (&d_p + buf.affine(momentum, 0.0)?)?
        } else {
            buf.clone()
        };
        state.momentum_buffer = Some(buf);
    }
    // param.add_(d_p, alpha=-lr)
    p - d_p.affine(lr, 0.0)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    struct Fixture {
        shapes: BTreeMap<String, Vec<usize>>,
        init: BTreeMap<String, Vec<f32>>,
        grads: Vec<BTreeMap<String, Vec<f32>>>,
        cases: BTreeMap<String, Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        config: serde_json::Value,
        lrs: Vec<f64>,
        params: Vec<BTreeMap<String, Vec<f32>>>,
    }

    fn fixture() -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/optim.json");
        crate::error::read_json(&path).unwrap()
    }

    fn config_of(name: &str, c: &serde_json::Value) -> OptimizerConfig {
        let f = |k: &str| c[k].as_f64().unwrap();
        if name == "adamw" {
            OptimizerConfig::AdamW {
                beta1: c["betas"][0].as_f64().unwrap(),
                beta2: c["betas"][1].as_f64().unwrap(),
                eps: f("eps"),
                weight_decay: f("weight_decay"),
            }
        } else {
            OptimizerConfig::Sgd {
                momentum: f("momentum"),
                dampening: f("dampening"),
                weight_decay: f("weight_decay"),
                nesterov: c["nesterov"].as_bool().unwrap(),
            }
        }
    }

    /// Runs one fixture case; returns the largest relative error over all steps.
    fn replay(fx: &Fixture, name: &str, case: &Case, reload_each_step: bool) -> f64 {
        let dev = Device::Cpu;
        let params: Vec<Param> = fx
            .shapes
            .iter()
            .map(|(n, shape)| {
                let t = Tensor::from_vec(fx.init[n].clone(), shape.as_slice(), &dev).unwrap();
                Param::new(n.clone(), Var::from_tensor(&t).unwrap())
            })
            .collect();
        let config = config_of(name, &case.config);
        let mut opt = Optimizer::new(config, params.clone()).unwrap();
        let mut worst = 0f64;
        for (step, lr) in case.lrs.iter().enumerate() {
            let mut grads = GradStore::default();
            for p in &params {
                let g = Tensor::from_vec(fx.grads[step][&p.name].clone(), p.var.shape(), &dev);
                grads.insert(p.var.as_tensor(), g.unwrap());
            }
            opt.step(&grads, *lr).unwrap();
            if reload_each_step {
                // A fresh optimizer restored from the exported state continues identically.
                let state = opt.state_tensors().unwrap();
                opt = Optimizer::new(config, params.clone()).unwrap();
                opt.load_state_tensors(&state).unwrap();
            }
            for p in &params {
                let got: Vec<f32> = p.var.flatten_all().unwrap().to_vec1().unwrap();
                for (g, w) in got.iter().zip(&case.params[step][&p.name]) {
                    let rel = (*g as f64 - *w as f64).abs() / (*w as f64).abs().max(1e-6);
                    worst = worst.max(rel);
                }
            }
        }
        worst
    }

    #[test]
    fn train_optim_matches_torch_adamw_and_sgd() {
        let fx = fixture();
        assert_eq!(fx.cases.len(), 4);
        for (name, case) in &fx.cases {
            let worst = replay(&fx, name, case, false);
            eprintln!("{name}: max relative error vs torch {worst:.3e}");
            assert!(worst <= 1e-6, "{name}: relative error {worst} > 1e-6");
        }
    }

    #[test]
    fn train_optim_state_round_trip_continues_exactly() {
        let fx = fixture();
        for (name, case) in &fx.cases {
            let worst = replay(&fx, name, case, true);
            assert!(worst <= 1e-6, "{name} after reload: {worst}");
        }
    }

    #[test]
    fn train_optim_state_file_round_trip() {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &dev).unwrap()).unwrap();
        let params = vec![Param::new("w", var.clone())];
        let mut opt = Optimizer::new(OptimizerConfig::default(), params.clone()).unwrap();
        let mut grads = GradStore::default();
        grads.insert(
            var.as_tensor(),
            Tensor::new(&[0.5f32, 0.25, -1.0], &dev).unwrap(),
        );
        opt.step(&grads, 1e-3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        opt.save(&path).unwrap();
        let mut again = Optimizer::new(OptimizerConfig::default(), params).unwrap();
        again.load(&path).unwrap();
        assert_eq!(again.states[0].step, 1);
        let a: Vec<f32> = opt.states[0]
            .exp_avg_sq
            .as_ref()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = again.states[0]
            .exp_avg_sq
            .as_ref()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn train_optim_skips_params_without_grad_and_respects_no_decay() {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &dev).unwrap()).unwrap();
        let unused = Var::from_tensor(&Tensor::new(&[5f32], &dev).unwrap()).unwrap();
        let params = vec![
            Param::with_hf_decay("dense.weight", w.clone()),
            Param::with_hf_decay("dense.bias", b.clone()),
            Param::with_hf_decay("unused.weight", unused.clone()),
        ];
        let config = OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.5,
        };
        let mut opt = Optimizer::new(config, params).unwrap();
        let mut grads = GradStore::default();
        let zero = Tensor::zeros(2, DType::F32, &dev).unwrap();
        grads.insert(w.as_tensor(), zero.clone());
        grads.insert(b.as_tensor(), zero);
        opt.step(&grads, 0.1).unwrap();
        // Zero gradient: only the decoupled decay moves the weight, and not the bias.
        assert_eq!(w.to_vec1::<f32>().unwrap(), vec![0.95, 1.9]);
        assert_eq!(b.to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        assert_eq!(unused.to_vec1::<f32>().unwrap(), vec![5.0]);
        assert_eq!(opt.states[2].step, 0);
        assert!(
            !opt.state_tensors()
                .unwrap()
                .contains_key("unused.weight.step")
        );
    }

    #[test]
    fn train_optim_hf_decay_rule() {
        assert!(hf_decays("encoder.layers.0.attention.q_proj.weight"));
        assert!(hf_decays("classifier.weight"));
        assert!(!hf_decays("classifier.bias"));
        assert!(!hf_decays("encoder.layer_norm.weight"));
        assert!(!hf_decays("encoder.layers.0.final_layer_norm.weight"));
        assert!(!hf_decays("model.LayerNorm.weight"));
        assert!(!hf_decays("model.norm.weight"));
        assert!(hf_decays("model.normalizer.weight"));
    }

    #[test]
    fn train_optim_rejects_bad_config_and_names() {
        let dev = Device::Cpu;
        let v = Var::from_tensor(&Tensor::new(&[1f32], &dev).unwrap()).unwrap();
        let dup = vec![Param::new("a", v.clone()), Param::new("a", v.clone())];
        assert!(Optimizer::new(OptimizerConfig::default(), dup).is_err());
        let bad = OptimizerConfig::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: true,
        };
        assert!(Optimizer::new(bad, vec![Param::new("a", v.clone())]).is_err());
        let mut opt = Optimizer::new(OptimizerConfig::default(), vec![Param::new("a", v)]).unwrap();
        let mut state = HashMap::new();
        state.insert("b.exp_avg".to_string(), Tensor::new(&[1f32], &dev).unwrap());
        assert!(opt.load_state_tensors(&state).is_err());
    }
}
