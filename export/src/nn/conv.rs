//! A 1-D convolution with a backward pass that can be trusted.
//!
//! candle 0.11's own `Tensor::conv1d` computes the forward pass correctly for contiguous
//! kernels, but its gradients are wrong in common cases: the kernel gradient runs a
//! convolution whose kernel is a transposed (non-contiguous) view, and the CPU im2col
//! path copies such a kernel into a buffer and then multiplies by the original storage
//! anyway (`cpu_backend::conv1d`); the input gradient goes through `conv_transpose1d`,
//! which disagrees with finite differences whenever input and output channels differ.
//! Both show up in Wav2Vec2's feature encoder and positional convolution (gradients off
//! by more than 100 % against PyTorch).
//!
//! So [`conv1d`] runs candle's forward convolution on detached, contiguous operands and
//! attaches its own backward pass through a custom op that is the identity on the result:
//! the kernel gradient as a convolution of the input by the output gradient (dilated by
//! the stride), the input gradient as a convolution of the stride-dilated, padded output
//! gradient by the flipped, transposed kernel; both only with contiguous operands, group
//! by group. The input gradient is skipped when the input needs none (the waveform).
//!
//! Reference for the formulas: PyTorch's `convolution_backward`,
//! <https://github.com/pytorch/pytorch/blob/v2.5.1/aten/src/ATen/native/Convolution.cpp>.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `x` (B, C_in, L) convolved with `w` (C_out, C_in / groups, K), zero padding `padding`
/// on both sides, stride `stride`, no dilation: (B, C_out, (L + 2 padding - K) / stride + 1),
/// with gradients for `x` and `w` (see the module documentation). `padding` must be less
/// than `K`.
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
    groups: usize,
) -> Result<Tensor> {
    let (_, _, k) = w.dims3()?;
    if padding >= k {
        candle_core::bail!("conv1d: padding {padding} must be less than the kernel size {k}")
    }
    let y = x
        .detach()
        .contiguous()?
        .conv1d(&w.detach().contiguous()?, padding, stride, 1, groups)?
        .contiguous()?;
    if !x.track_op() && !w.track_op() {
        return Ok(y);
    }
    x.apply_op3(
        w,
        &y,
        ConvGrad {
            padding,
            stride,
            groups,
        },
    )
}

/// The identity on its third operand (the convolution's result), whose backward pass
/// is the convolution's, with respect to the first two.
struct ConvGrad {
    padding: usize,
    stride: usize,
    groups: usize,
}

/// `y`'s storage as the op's result: a fresh, contiguous convolution output.
fn same<S: BackendStorage>(s: &S, l: &Layout) -> Result<(S, Shape)> {
    if !l.is_contiguous() || l.start_offset() != 0 {
        candle_core::bail!("conv1d gradient hook: the result must be a fresh contiguous tensor")
    }
    Ok((s.try_clone(l)?, l.shape().clone()))
}

impl CustomOp3 for ConvGrad {
    fn name(&self) -> &'static str {
        "hearken-conv1d"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same(y, l)
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        y: &CudaStorage,
        l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        same(y, l)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (p, s, groups) = (self.padding, self.stride, self.groups);
        let want_x = x.track_op();
        let x = x.detach();
        let w = w.detach();
        let (_, _, l) = x.dims3()?;
        let (_, _, k) = w.dims3()?;
        let (_, _, l_out) = grad.dims3()?;
        if l_out == 0 {
            return Ok((
                want_x.then(|| x.zeros_like()).transpose()?,
                Some(w.zeros_like()?),
                None,
            ));
        }
        let xs = x.chunk(groups, 1)?;
        let ws = w.chunk(groups, 0)?;
        let gs = grad.chunk(groups, 1)?;
        let mut grad_x = Vec::with_capacity(groups);
        let mut grad_w = Vec::with_capacity(groups);
        for ((x, w), g) in xs.iter().zip(&ws).zip(&gs) {
            let g = g.contiguous()?;
            // dW[o, i, j] = sum_{b, t} g[b, o, t] x[b, i, t s + j - p]: the input (batch
            // and channels swapped) convolved with g as the kernel, dilated by the stride.
            let xt = x.transpose(0, 1)?.contiguous()?;
            let gt = g.transpose(0, 1)?.contiguous()?;
            let gw = xt
                .conv1d(&gt, p, 1, s, 1)?
                .transpose(0, 1)?
                .narrow(2, 0, k)?
                .contiguous()?;
            grad_w.push(gw);
            if want_x {
                // dX = (g dilated by s, padded by K - 1 - p) convolved with W flipped along
                // the kernel and with its channel axes swapped.
                let (b, c, _) = g.dims3()?;
                let dilated = if s > 1 {
                    g.unsqueeze(3)?
                        .pad_with_zeros(3, 0, s - 1)?
                        .reshape((b, c, l_out * s))?
                        .narrow(2, 0, (l_out - 1) * s + 1)?
                } else {
                    g.clone()
                };
                let covered = (l_out - 1) * s + k;
                let extra = (l + 2 * p).saturating_sub(covered);
                let edge = k - 1 - p;
                let padded = dilated
                    .pad_with_zeros(2, edge, edge + extra)?
                    .contiguous()?;
                let rev: Vec<u32> = (0..k as u32).rev().collect();
                let rev = Tensor::new(rev.as_slice(), w.device())?;
                let flipped = w
                    .transpose(0, 1)?
                    .contiguous()?
                    .index_select(&rev, 2)?
                    .contiguous()?;
                grad_x.push(padded.conv1d(&flipped, 0, 1, 1, 1)?);
            }
        }
        let grad_x = if want_x {
            Some(Tensor::cat(&grad_x, 1)?)
        } else {
            None
        };
        Ok((grad_x, Some(Tensor::cat(&grad_w, 0)?), None))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    /// A fixed, non-trivial weighting of the output, so that the loss is `sum(y * r)`.
    fn weights(shape: &Shape) -> Tensor {
        let n = shape.elem_count();
        Tensor::arange(0f64, n as f64, &Device::Cpu)
            .and_then(|t| t.reshape(shape))
            .and_then(|t| t.affine(0.37, 0.3))
            .and_then(|t| t.sin())
            .unwrap()
    }

    fn loss(x: &Tensor, w: &Tensor, p: usize, s: usize, g: usize) -> f64 {
        let y = x.conv1d(w, p, s, 1, g).unwrap();
        let r = weights(y.shape());
        (y * r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Central finite differences of `loss` with respect to `t`.
    fn numeric(t: &Tensor, f: impl Fn(&Tensor) -> f64) -> Vec<f64> {
        let v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
        let h = 1e-5;
        (0..v.len())
            .map(|i| {
                let mut plus = v.clone();
                plus[i] += h;
                let mut minus = v.clone();
                minus[i] -= h;
                let tp = Tensor::from_vec(plus, t.shape(), &Device::Cpu).unwrap();
                let tm = Tensor::from_vec(minus, t.shape(), &Device::Cpu).unwrap();
                (f(&tp) - f(&tm)) / (2.0 * h)
            })
            .collect()
    }

    fn max_err(a: &Tensor, b: &[f64]) -> f64 {
        let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn gradients_match_finite_differences() {
        // (batch, c_in, c_out, length, kernel, padding, stride, groups): the feature
        // encoder's shapes (one input channel, strides 5 and 2, more outputs than inputs)
        // and the positional convolution's (grouped, padded, even kernel).
        for (b, c_in, c_out, l, k, p, s, g) in [
            (2, 1, 3, 23, 10, 0, 5, 1),
            (2, 3, 4, 20, 3, 0, 2, 1),
            (2, 4, 3, 17, 2, 0, 2, 1),
            (3, 8, 8, 11, 4, 2, 1, 4),
            (1, 2, 6, 9, 3, 1, 1, 2),
        ] {
            let x = Var::randn(0f64, 1.0, (b, c_in, l), &Device::Cpu).unwrap();
            let w = Var::randn(0f64, 1.0, (c_out, c_in / g, k), &Device::Cpu).unwrap();
            let y = conv1d(x.as_tensor(), w.as_tensor(), p, s, g).unwrap();
            let reference = x.as_tensor().conv1d(w.as_tensor(), p, s, 1, g).unwrap();
            let diff = (&y - &reference).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f64>().unwrap(), 0.0);
            let r = weights(y.shape());
            let grads = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
            let what = format!("b{b} c_in{c_in} c_out{c_out} l{l} k{k} p{p} s{s} g{g}");
            let nx = numeric(x.as_tensor(), |x| loss(x, w.as_tensor(), p, s, g));
            let ex = max_err(grads.get(x.as_tensor()).unwrap(), &nx);
            let nw = numeric(w.as_tensor(), |w| loss(x.as_tensor(), w, p, s, g));
            let ew = max_err(grads.get(w.as_tensor()).unwrap(), &nw);
            assert!(
                ex < 1e-6 && ew < 1e-6,
                "{what}: input {ex:.1e}, kernel {ew:.1e}"
            );
        }
    }

    #[test]
    fn a_constant_input_gets_no_gradient_and_costs_none() {
        let x = Tensor::randn(0f32, 1.0, (2, 1, 50), &Device::Cpu).unwrap();
        let w = Var::randn(0f32, 1.0, (4, 1, 10), &Device::Cpu).unwrap();
        let y = conv1d(&x, w.as_tensor(), 0, 5, 1).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        assert_eq!(grads.get(w.as_tensor()).unwrap().dims(), &[4, 1, 10]);
        let plain = conv1d(&x, &w.as_detached_tensor(), 0, 5, 1).unwrap();
        assert!(!plain.track_op());
        assert_eq!(plain.dtype(), DType::F32);
    }
}
