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
//! On the CPU in `f32` without groups (the feature encoder's convolutions, most of a
//! Wav2Vec2 training step), [`conv1d`] instead lowers the convolution to one matrix product
//! over an im2col buffer, as PyTorch's CPU convolution does: `cols[(b, t), (c, j)] =
//! x[b, c, t s + j - p]`, `y = cols Wᵀ` with `W` as `(C_out, C_in K)`; backward, `dW =
//! gᵀ cols` and `dX = col2im(g W)` (the sum of each column entry back into the input
//! position it came from). Two or three products where candle's direct convolution loops
//! run single-threaded, and no stride-dilated intermediate.
//!
//! Reference for the formulas: PyTorch's `convolution_backward`,
//! <https://github.com/pytorch/pytorch/blob/v2.5.1/aten/src/ATen/native/Convolution.cpp>.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

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
    if groups == 1 && lowered(x) && lowered(w) {
        return conv1d_gemm(x, w, padding, stride);
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

/// [`conv1d`] on channels-last operands, without padding or groups: `x` (B, L, C_in)
/// convolved with `w` (C_out, C_in, K) at `stride` gives (B, L_out, C_out), with gradients
/// for both.
///
/// The layout of the feature encoder's activations when training: in it, a row of the
/// im2col buffer is one contiguous run of the input (`K C_in` values from `x[b, t s, 0]`),
/// the product's result is already the next layer's input, and no activation is ever
/// transposed. Off the CPU or in another type, it transposes around [`conv1d`].
pub fn conv1d_channels_last(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    if !(lowered(x) && lowered(w)) {
        return conv1d(&x.transpose(1, 2)?, w, 0, stride, 1)?.transpose(1, 2);
    }
    let (b, l, c_in) = x.dims3()?;
    let (c_out, c_in_w, k) = w.dims3()?;
    if c_in != c_in_w {
        candle_core::bail!("conv1d: input has {c_in} channels, the kernel {c_in_w}")
    }
    let l_out = out_len(l, k, 0, stride)?;
    let cols = x
        .detach()
        .contiguous()?
        .apply_op1_no_bwd(&Im2ColLast { k, stride })?;
    let w2 = kernel_rows(&w.detach())?;
    let y = cols.matmul(&w2.t()?)?.reshape((b, l_out, c_out))?;
    if !x.track_op() && !w.track_op() {
        return Ok(y);
    }
    x.apply_op3(w, &y, LastConvGrad { k, stride })
}

/// `w` (C_out, C_in, K) as (C_out, K C_in), the order of a channels-last im2col row.
fn kernel_rows(w: &Tensor) -> Result<Tensor> {
    let (c_out, c_in, k) = w.dims3()?;
    w.transpose(1, 2)?.contiguous()?.reshape((c_out, k * c_in))
}

/// `(B, L, C)` -> `(B L_out, K C)`: row `(b, t)` is `x[b, t s .. t s + K, ..]`.
struct Im2ColLast {
    k: usize,
    stride: usize,
}

impl CustomOp1 for Im2ColLast {
    fn name(&self) -> &'static str {
        "hearken-im2col-last"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let (b, len, c) = l.shape().dims3()?;
        let l_out = out_len(len, self.k, 0, self.stride)?;
        let width = self.k * c;
        let mut cols = Vec::with_capacity(b * l_out * width);
        for bi in 0..b {
            let item = &x[bi * len * c..(bi + 1) * len * c];
            for t in 0..l_out {
                let start = t * self.stride * c;
                cols.extend_from_slice(&item[start..start + width]);
            }
        }
        Ok((CpuStorage::F32(cols), Shape::from((b * l_out, width))))
    }
}

/// `(B L_out, K C)` -> `(B, L, C)`: the adjoint of [`Im2ColLast`].
struct Col2ImLast {
    len: usize,
    k: usize,
    stride: usize,
}

impl CustomOp1 for Col2ImLast {
    fn name(&self) -> &'static str {
        "hearken-col2im-last"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols = f32_data(s, l, self.name())?;
        let (rows, width) = l.shape().dims2()?;
        let c = width / self.k.max(1);
        let l_out = out_len(self.len, self.k, 0, self.stride)?;
        if c * self.k != width || l_out == 0 || rows % l_out != 0 {
            candle_core::bail!("{}: {rows}x{width} is not a column buffer", self.name())
        }
        let b = rows / l_out;
        let mut x = vec![0f32; b * self.len * c];
        x.par_chunks_mut(self.len * c)
            .enumerate()
            .for_each(|(bi, item)| {
                for t in 0..l_out {
                    let src = &cols[(bi * l_out + t) * width..][..width];
                    let start = t * self.stride * c;
                    for (d, &v) in item[start..start + width].iter_mut().zip(src) {
                        *d += v;
                    }
                }
            });
        Ok((CpuStorage::F32(x), Shape::from((b, self.len, c))))
    }
}

/// The identity on its third operand (the channels-last convolution's result), whose
/// backward pass is the convolution's as matrix products.
struct LastConvGrad {
    k: usize,
    stride: usize,
}

impl CustomOp3 for LastConvGrad {
    fn name(&self) -> &'static str {
        "hearken-conv1d-last"
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

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want_x = x.track_op();
        let (b, len, c_in) = x.dims3()?;
        let (c_out, _, k) = w.dims3()?;
        let (_, l_out, _) = grad.dims3()?;
        let g = grad.contiguous()?.reshape((b * l_out, c_out))?;
        let cols = x.detach().contiguous()?.apply_op1_no_bwd(&Im2ColLast {
            k,
            stride: self.stride,
        })?;
        // (C_out, K C_in) -> (C_out, K, C_in) -> (C_out, C_in, K).
        let grad_w = g
            .t()?
            .matmul(&cols)?
            .reshape((c_out, k, c_in))?
            .transpose(1, 2)?
            .contiguous()?;
        let grad_x = if want_x {
            let grad_cols = g.matmul(&kernel_rows(&w.detach())?)?;
            Some(grad_cols.apply_op1_no_bwd(&Col2ImLast {
                len,
                k: self.k,
                stride: self.stride,
            })?)
        } else {
            None
        };
        Ok((grad_x, Some(grad_w), None))
    }
}

/// Whether `t` takes the im2col path: `f32` on the CPU.
fn lowered(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The output length of a convolution, or an error when the kernel does not fit.
fn out_len(l: usize, k: usize, padding: usize, stride: usize) -> Result<usize> {
    let padded = l + 2 * padding;
    if padded < k || stride == 0 {
        candle_core::bail!("conv1d: kernel {k} longer than the padded input {padded}")
    }
    Ok((padded - k) / stride + 1)
}

/// [`conv1d`] without groups as a matrix product; see the module documentation.
fn conv1d_gemm(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    let (b, c_in, l) = x.dims3()?;
    let (c_out, c_in_w, k) = w.dims3()?;
    if c_in != c_in_w {
        candle_core::bail!("conv1d: input has {c_in} channels, the kernel {c_in_w}")
    }
    let l_out = out_len(l, k, padding, stride)?;
    let im2col = Im2Col { k, padding, stride };
    let cols = x.detach().contiguous()?.apply_op1_no_bwd(&im2col)?;
    let w2 = w.detach().contiguous()?.reshape((c_out, c_in * k))?;
    let y = cols
        .matmul(&w2.t()?)?
        .reshape((b, l_out, c_out))?
        .transpose(1, 2)?
        .contiguous()?;
    if !x.track_op() && !w.track_op() {
        return Ok(y);
    }
    x.apply_op3(w, &y, GemmConvGrad { k, padding, stride })
}

/// `(B, C, L)` -> `(B L_out, C K)`: row `(b, t)` holds the input window of output `t`,
/// channel by channel, zeros where it reaches into the padding.
struct Im2Col {
    k: usize,
    padding: usize,
    stride: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "hearken-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let (b, c, len) = l.shape().dims3()?;
        let (k, p, st) = (self.k, self.padding, self.stride);
        let l_out = out_len(len, k, p, st)?;
        let width = c * k;
        let mut cols = vec![0f32; b * l_out * width];
        cols.par_chunks_mut(width)
            .enumerate()
            .for_each(|(row, out)| {
                let (bi, t) = (row / l_out, row % l_out);
                for ci in 0..c {
                    let src = &x[(bi * c + ci) * len..(bi * c + ci + 1) * len];
                    let dst = &mut out[ci * k..(ci + 1) * k];
                    for (j, d) in dst.iter_mut().enumerate() {
                        let pos = t * st + j;
                        if pos >= p && pos - p < len {
                            *d = src[pos - p];
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(cols), Shape::from((b * l_out, width))))
    }
}

/// `(B L_out, C K)` -> `(B, C, L)`: each column entry added back into the input position
/// it was read from (the adjoint of [`Im2Col`]).
struct Col2Im {
    b: usize,
    c: usize,
    len: usize,
    k: usize,
    padding: usize,
    stride: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "hearken-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols = f32_data(s, l, self.name())?;
        let Col2Im {
            b,
            c,
            len,
            k,
            padding: p,
            stride: st,
        } = *self;
        let l_out = out_len(len, k, p, st)?;
        let width = c * k;
        if cols.len() != b * l_out * width {
            candle_core::bail!(
                "{}: {} values for {b}x{l_out}x{width}",
                self.name(),
                cols.len()
            )
        }
        let mut x = vec![0f32; b * c * len];
        x.par_chunks_mut(len).enumerate().for_each(|(row, out)| {
            let (bi, ci) = (row / c, row % c);
            for t in 0..l_out {
                let src = &cols[(bi * l_out + t) * width + ci * k..][..k];
                for (j, &v) in src.iter().enumerate() {
                    let pos = t * st + j;
                    if pos >= p && pos - p < len {
                        out[pos - p] += v;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(x), Shape::from((b, c, len))))
    }
}

/// The contiguous `f32` data of a CPU operand.
fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: expected f32, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: the operand must be contiguous"),
    }
}

/// The identity on its third operand (the lowered convolution's result), whose backward
/// pass is the convolution's as matrix products.
struct GemmConvGrad {
    k: usize,
    padding: usize,
    stride: usize,
}

impl CustomOp3 for GemmConvGrad {
    fn name(&self) -> &'static str {
        "hearken-conv1d-gemm"
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

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want_x = x.track_op();
        let (b, c_in, len) = x.dims3()?;
        let (c_out, _, k) = w.dims3()?;
        let (_, _, l_out) = grad.dims3()?;
        let g = grad
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * l_out, c_out))?;
        let cols = x.detach().contiguous()?.apply_op1_no_bwd(&Im2Col {
            k,
            padding: self.padding,
            stride: self.stride,
        })?;
        let grad_w = g.t()?.matmul(&cols)?.reshape((c_out, c_in, k))?;
        let grad_x = if want_x {
            let w2 = w.detach().contiguous()?.reshape((c_out, c_in * k))?;
            let grad_cols = g.matmul(&w2)?;
            Some(grad_cols.apply_op1_no_bwd(&Col2Im {
                b,
                c: c_in,
                len,
                k: self.k,
                padding: self.padding,
                stride: self.stride,
            })?)
        } else {
            None
        };
        Ok((grad_x, Some(grad_w), None))
    }
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

    /// The lowered `f32` path against the `f64` path checked above: outputs and both
    /// gradients, on the feature encoder's shapes and a padded one.
    #[test]
    fn the_lowered_f32_path_matches_the_checked_one() {
        for (b, c_in, c_out, l, k, p, s) in [
            (2, 1, 3, 23, 10, 0, 5),
            (2, 3, 4, 20, 3, 0, 2),
            (2, 4, 3, 17, 2, 0, 2),
            (3, 5, 6, 11, 4, 2, 1),
            (1, 2, 6, 9, 3, 1, 3),
        ] {
            let x64 = Var::randn(0f64, 1.0, (b, c_in, l), &Device::Cpu).unwrap();
            let w64 = Var::randn(0f64, 1.0, (c_out, c_in, k), &Device::Cpu).unwrap();
            let x32 = Var::from_tensor(&x64.to_dtype(DType::F32).unwrap()).unwrap();
            let w32 = Var::from_tensor(&w64.to_dtype(DType::F32).unwrap()).unwrap();
            let y64 = conv1d(x64.as_tensor(), w64.as_tensor(), p, s, 1).unwrap();
            let y32 = conv1d(x32.as_tensor(), w32.as_tensor(), p, s, 1).unwrap();
            let what = format!("b{b} c_in{c_in} c_out{c_out} l{l} k{k} p{p} s{s}");
            assert_eq!(y32.dims(), y64.dims(), "{what}");
            let close = |a: &Tensor, r: &Tensor, name: &str| {
                let r: Vec<f64> = r.flatten_all().unwrap().to_vec1().unwrap();
                let e = max_err(&a.to_dtype(DType::F64).unwrap(), &r);
                assert!(e < 1e-4, "{what} {name}: {e:.1e}");
            };
            close(&y32, &y64, "output");
            let r = weights(y64.shape());
            let g64 = (y64 * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let r32 = r.to_dtype(DType::F32).unwrap();
            let g32 = (y32 * r32).unwrap().sum_all().unwrap().backward().unwrap();
            close(
                g32.get(x32.as_tensor()).unwrap(),
                g64.get(x64.as_tensor()).unwrap(),
                "input gradient",
            );
            close(
                g32.get(w32.as_tensor()).unwrap(),
                g64.get(w64.as_tensor()).unwrap(),
                "kernel gradient",
            );
        }
    }

    /// The channels-last convolution against the checked one, transposed around it.
    #[test]
    fn the_channels_last_path_matches_the_checked_one() {
        for (b, c_in, c_out, l, k, s) in [
            (2, 1, 3, 23, 10, 5),
            (2, 3, 4, 20, 3, 2),
            (2, 4, 3, 17, 2, 2),
            (3, 5, 6, 11, 4, 1),
        ] {
            let x64 = Var::randn(0f64, 1.0, (b, c_in, l), &Device::Cpu).unwrap();
            let w64 = Var::randn(0f64, 1.0, (c_out, c_in, k), &Device::Cpu).unwrap();
            let x32 = Var::from_tensor(
                &x64.to_dtype(DType::F32)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap(),
            )
            .unwrap();
            let w32 = Var::from_tensor(&w64.to_dtype(DType::F32).unwrap()).unwrap();
            let y64 = conv1d(x64.as_tensor(), w64.as_tensor(), 0, s, 1).unwrap();
            let y32 = conv1d_channels_last(x32.as_tensor(), w32.as_tensor(), s).unwrap();
            let what = format!("b{b} c_in{c_in} c_out{c_out} l{l} k{k} s{s}");
            let close = |a: &Tensor, r: &Tensor, name: &str| {
                let r: Vec<f64> = r.flatten_all().unwrap().to_vec1().unwrap();
                let e = max_err(&a.to_dtype(DType::F64).unwrap(), &r);
                assert!(e < 1e-4, "{what} {name}: {e:.1e}");
            };
            close(&y32.transpose(1, 2).unwrap(), &y64, "output");
            let r = weights(y64.shape());
            let g64 = (y64 * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let r32 = r.to_dtype(DType::F32).unwrap().transpose(1, 2).unwrap();
            let g32 = (y32 * r32).unwrap().sum_all().unwrap().backward().unwrap();
            close(
                &g32.get(x32.as_tensor()).unwrap().transpose(1, 2).unwrap(),
                g64.get(x64.as_tensor()).unwrap(),
                "input gradient",
            );
            close(
                g32.get(w32.as_tensor()).unwrap(),
                g64.get(w64.as_tensor()).unwrap(),
                "kernel gradient",
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
