//! Gradient utilities: accumulation over micro-batches and global-norm clipping.
//!
//! A candle backward pass returns a [`GradStore`] with the gradient of every node of the
//! graph, activations included. Accumulating whole stores would keep every micro-batch's
//! activation gradients alive until the update, so [`accumulate`] moves out only the
//! trainable variables' gradients and drops the rest.
//!
//! Accumulation follows Hugging Face's `Trainer`: each micro-batch's loss is divided by
//! the number of micro-batches in its update before the backward pass, and the gradients
//! are summed. The trainer does the division (it knows the group); these functions only
//! sum and clip.

use candle_core::backprop::GradStore;
use candle_core::{DType, Var};

use crate::error::{Result, candle_err};

/// Moves the gradients of `vars` out of `grads` (one backward pass) and adds them into
/// `acc`. Variables without a gradient in `grads` are left as they are in `acc`.
pub fn accumulate(acc: &mut GradStore, vars: &[Var], mut grads: GradStore) -> Result<()> {
    for var in vars {
        let Some(g) = grads.remove(var.as_tensor()) else {
            continue;
        };
        let g = g.detach();
        let sum = match acc.remove(var.as_tensor()) {
            Some(prev) => (prev + g).map_err(candle_err("accumulating gradients"))?,
            None => g,
        };
        acc.insert(var.as_tensor(), sum);
    }
    Ok(())
}

/// The global L2 norm of the gradients of `vars`: the norm of the per-tensor norms, as
/// torch's `clip_grad_norm_` computes it (`norm_type` 2).
pub fn global_norm(grads: &GradStore, vars: &[Var]) -> Result<f64> {
    let mut sum_sq = 0f64;
    for var in vars {
        let Some(g) = grads.get(var.as_tensor()) else {
            continue;
        };
        let norm = g
            .to_dtype(DType::F32)
            .and_then(|g| g.sqr())
            .and_then(|g| g.sum_all())
            .and_then(|g| g.sqrt())
            .and_then(|g| g.to_scalar::<f32>())
            .map_err(candle_err("gradient norm"))?;
        sum_sq += f64::from(norm) * f64::from(norm);
    }
    Ok(sum_sq.sqrt())
}

/// Scales the gradients of `vars` so that their global norm is at most `max_norm`, with
/// torch's `clip_grad_norm_` semantics: `clip_coef = max_norm / (total_norm + 1e-6)`, and
/// the gradients are multiplied by it when it is below 1. Returns the norm before
/// clipping (what HF logs as `grad_norm`).
///
/// torch: `torch/nn/utils/clip_grad.py`, `_clip_grads_with_norm_` (2.x).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let total = global_norm(grads, vars)?;
    let clip_coef = max_norm / (total + 1e-6);
    if clip_coef < 1.0 {
        for var in vars {
            let Some(g) = grads.remove(var.as_tensor()) else {
                continue;
            };
            let g = g
                .affine(clip_coef, 0.0)
                .map_err(candle_err("clipping gradients"))?;
            grads.insert(var.as_tensor(), g);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn var(values: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
    }

    fn store(pairs: &[(&Var, &[f32])]) -> GradStore {
        let mut s = GradStore::default();
        for (v, g) in pairs {
            s.insert(v.as_tensor(), Tensor::new(*g, &Device::Cpu).unwrap());
        }
        s
    }

    fn grad(s: &GradStore, v: &Var) -> Vec<f32> {
        s.get(v.as_tensor()).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn train_grad_clip_scales_to_max_norm() {
        let a = var(&[0.0, 0.0]);
        let b = var(&[0.0]);
        let vars = [a.clone(), b.clone()];
        // Norms 5 and 12: global 13.
        let mut s = store(&[(&a, &[3.0, 4.0]), (&b, &[12.0])]);
        let total = clip_grad_norm(&mut s, &vars, 1.0).unwrap();
        assert!((total - 13.0).abs() < 1e-9);
        let coef = 1.0 / (13.0 + 1e-6);
        let ga = grad(&s, &a);
        assert!((ga[0] as f64 - 3.0 * coef).abs() < 1e-7);
        assert!((ga[1] as f64 - 4.0 * coef).abs() < 1e-7);
        assert!((grad(&s, &b)[0] as f64 - 12.0 * coef).abs() < 1e-7);
        let after = global_norm(&s, &vars).unwrap();
        assert!((after - 1.0).abs() < 1e-6, "{after}");
    }

    #[test]
    fn train_grad_clip_leaves_small_gradients() {
        let a = var(&[0.0, 0.0]);
        let mut s = store(&[(&a, &[0.3, 0.4])]);
        let total = clip_grad_norm(&mut s, std::slice::from_ref(&a), 1.0).unwrap();
        assert!((total - 0.5).abs() < 1e-7);
        assert_eq!(grad(&s, &a), vec![0.3, 0.4]);
    }

    #[test]
    fn train_grad_accumulate_sums_only_vars() {
        let a = var(&[0.0, 0.0]);
        let b = var(&[0.0]);
        let other = var(&[0.0]);
        let vars = [a.clone(), b.clone()];
        let mut acc = GradStore::default();
        accumulate(
            &mut acc,
            &vars,
            store(&[(&a, &[1.0, 2.0]), (&other, &[9.0])]),
        )
        .unwrap();
        accumulate(&mut acc, &vars, store(&[(&a, &[0.5, 0.5]), (&b, &[3.0])])).unwrap();
        assert_eq!(grad(&acc, &a), vec![1.5, 2.5]);
        assert_eq!(grad(&acc, &b), vec![3.0]);
        assert!(acc.get(other.as_tensor()).is_none());
    }

    /// Two micro-batches of 2 whose mean losses are each divided by 2 give the gradient of
    /// the mean loss over the batch of 4.
    #[test]
    fn train_grad_accumulated_halves_equal_full_batch() {
        let dev = Device::Cpu;
        let w =
            Var::from_tensor(&Tensor::new(&[[0.3f32, -0.2], [0.1, 0.4]], &dev).unwrap()).unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0], [-1.0, 0.5], [0.3, -0.7], [2.0, 1.0]], &dev).unwrap();
        let y = Tensor::new(&[1u32, 0, 0, 1], &dev).unwrap();
        let loss = |x: &Tensor, y: &Tensor| {
            let logits = x.matmul(&w.as_tensor().t().unwrap()).unwrap();
            candle_nn::loss::cross_entropy(&logits, y).unwrap()
        };
        let vars = [w.clone()];
        let mut full = GradStore::default();
        accumulate(&mut full, &vars, loss(&x, &y).backward().unwrap()).unwrap();
        let mut acc = GradStore::default();
        for i in [0, 2] {
            let l = (loss(&x.narrow(0, i, 2).unwrap(), &y.narrow(0, i, 2).unwrap()) / 2.0).unwrap();
            accumulate(&mut acc, &vars, l.backward().unwrap()).unwrap();
        }
        let a: Vec<f32> = full
            .get(w.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = acc
            .get(w.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{a} vs {b}");
        }
    }
}
