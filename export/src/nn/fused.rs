//! Fused CPU kernels, with their backward passes, for the element-wise work of training.
//!
//! Written out of candle's primitives, a GELU is one pass forward and eleven backward (each
//! allocating a tensor the size of the activations), and a normalization is six passes
//! forward and about twenty backward. On the feature encoder of a Wav2Vec2 / HuBERT model,
//! whose first activations are `(B, C, 3199)` for a second of audio, those passes are most
//! of a training step's time. Here each is one custom op: one pass forward, one or two
//! backward, with the textbook formulas.
//!
//! - [`gelu_erf`]: `x Φ(x)`, `Φ(x) = (1 + erf(x / √2)) / 2`, with a vectorizable rational
//!   `erf` within 5e-7 of the exact one; gradient `Φ(x) + x φ(x)`.
//! - [`norm_last`]: normalization over the last axis with the biased variance, then an
//!   affine map whose weight and bias are per column (LayerNorm) or per channel of a
//!   `(B, C, T)` input (GroupNorm with one group per channel). Statistics are accumulated in
//!   `f64`. Gradients, per row of `N` elements with `x̂ = (x - μ) / σ`, `g` the output
//!   gradient and `ĝ = g w`: `dx = (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)) / σ`; `dw = Σ g x̂`,
//!   `db = Σ g` over everything the weight is shared by.
//!
//! Only `f32` on the CPU is fused; other devices and types take candle's composed ops, the
//! same functions as before, so results there are unchanged.
//!
//! References: PyTorch's `GeluKernel.cpp` and `layer_norm_kernel.cpp` (the same formulas),
//! <https://github.com/pytorch/pytorch/blob/v2.5.1/aten/src/ATen/native/cpu/layer_norm_kernel.cpp>.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel work item of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// `1 / √(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// The contiguous `f32` data of a CPU operand, or an error naming the op.
fn data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: expected f32, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: the operand must be contiguous"),
    }
}

/// Whether `x` can take the fused path.
fn fusable(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// `erf(x)` in `f32` as a branch-free rational function, so that the loops around it
/// vectorize: Eigen's `generic_fast_erf_float` (an odd degree-13 numerator over an even
/// degree-8 denominator on `x` clamped to `[-4, 4]`, beyond which `erf` is `±1` in `f32`).
/// Within 5e-7 (8 ulp near ±1) of the exact `erf` everywhere (see the test); libm's scalar `erff`, which
/// candle's `gelu_erf` calls, was a tenth of a training step.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    const A: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_6e-3,
        -7.349_906_3e-4,
        -5.692_506_4e-5,
        -2.101_024e-6,
        2.770_681_4e-8,
        -2.726_142_3e-10,
    ];
    const B: [f32; 5] = [
        -1.426_473_9e-2,
        -7.373_329e-3,
        -1.682_827e-3,
        -2.133_740_6e-4,
        -1.456_607_2e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    // Plain multiply-adds: `mul_add` is a libm call unless the build targets FMA.
    let p =
        ((((((A[6] * x2 + A[5]) * x2 + A[4]) * x2 + A[3]) * x2 + A[2]) * x2 + A[1]) * x2) + A[0];
    let q = ((((B[4] * x2 + B[3]) * x2 + B[2]) * x2 + B[1]) * x2) + B[0];
    x * p / q
}

/// `Φ(x)`, the standard normal CDF.
#[inline(always)]
fn phi_cdf(x: f32) -> f32 {
    (erf_fast(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5
}

/// GELU with the exact (erf) form, with a fused backward pass; see the module
/// documentation.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !fusable(x) {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(GeluErf)
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "hearken-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x * phi_cdf(x);
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // The forward result comes along so that Φ is read back from it instead of
        // computed again.
        let (x, y, grad) = (arg.contiguous()?, res.contiguous()?, grad.contiguous()?);
        Ok(Some(x.apply_op3_no_bwd(&y, &grad, &GeluErfGrad)?))
    }
}

/// `grad · (Φ(x) + x φ(x))`, operands `(x, y, grad)` with `y = x Φ(x)` the forward result:
/// `Φ(x) = y / x`, to within an ulp, where `|x|` is not tiny; Φ again where it is.
struct GeluErfGrad;

impl CustomOp3 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "hearken-gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, self.name())?;
        let y = data(s2, l2, self.name())?;
        let g = data(s3, l3, self.name())?;
        if x.len() != g.len() || y.len() != g.len() {
            candle_core::bail!(
                "{}: {} inputs and {} outputs against {} gradients",
                self.name(),
                x.len(),
                y.len(),
                g.len()
            )
        }
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(y.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|((out, x), (y, g))| {
                for (((o, &x), &y), &g) in out.iter_mut().zip(x).zip(y).zip(g) {
                    let cdf = if x.abs() > 1e-3 { y / x } else { phi_cdf(x) };
                    let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
                    *o = g * (cdf + x * pdf);
                }
            });
        Ok((CpuStorage::F32(out), l3.shape().clone()))
    }
}

/// What the affine map of [`norm_last`] is shared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affine {
    /// Weight and bias `(N)`, one per position of the normalized (last) axis: LayerNorm.
    PerColumn,
    /// Weight and bias `(C, 1)`, one per channel of a `(B, C, T)` input: GroupNorm with one
    /// group per channel.
    PerChannel,
}

/// `x` normalized over its last axis (biased variance, `eps` added to it), times `weight`
/// plus `bias` as `affine` says; see the module documentation.
pub fn norm_last(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    affine: Affine,
) -> Result<Tensor> {
    if !fusable(x) || !fusable(weight) || !fusable(bias) {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        return centered
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(weight)?
            .broadcast_add(bias);
    }
    let n = x.dim(D::Minus1)?;
    let channels = match affine {
        Affine::PerColumn => n,
        Affine::PerChannel => {
            let (_, c, _) = x.dims3()?;
            c
        }
    };
    if weight.elem_count() != channels || bias.elem_count() != channels {
        candle_core::bail!(
            "norm_last: weight {:?} and bias {:?} do not match {channels} {}",
            weight.shape(),
            bias.shape(),
            if affine == Affine::PerColumn {
                "columns"
            } else {
                "channels"
            }
        )
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        NormLast { eps, affine },
    )
}

struct NormLast {
    eps: f64,
    affine: Affine,
}

/// Mean and `1 / σ` of one row, accumulated in `f64`.
fn row_stats(row: &[f32], eps: f64) -> (f32, f32) {
    let n = row.len().max(1) as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = row
        .iter()
        .map(|&v| {
            let d = f64::from(v) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
}

impl NormLast {
    /// The affine parameter index of row `r` (PerChannel) or `None` (PerColumn).
    fn channel(&self, r: usize, channels: usize) -> Option<usize> {
        match self.affine {
            Affine::PerColumn => None,
            Affine::PerChannel => Some(r % channels),
        }
    }
}

impl CustomOp3 for NormLast {
    fn name(&self) -> &'static str {
        "hearken-norm-last"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, self.name())?;
        let w = data(s2, l2, self.name())?;
        let b = data(s3, l3, self.name())?;
        let n = l1.dims().last().copied().unwrap_or(1).max(1);
        let channels = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .enumerate()
            .for_each(|(r, (y, x))| {
                let (mean, rstd) = row_stats(x, self.eps);
                match self.channel(r, channels) {
                    None => {
                        for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(w).zip(b) {
                            *y = (x - mean) * rstd * w + b;
                        }
                    }
                    Some(c) => {
                        let (w, b) = (w[c], b[c]);
                        for (y, &x) in y.iter_mut().zip(x) {
                            *y = (x - mean) * rstd * w + b;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(D::Minus1)?.max(1);
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ws = w.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.flatten_all()?.to_vec1::<f32>()?;
        let channels = ws.len();
        let mut dx = vec![0f32; xs.len()];
        // Per row: its contribution to dw and db, kept apart so rows can run in parallel,
        // then summed in row order (deterministic).
        let per_row: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(n)
            .zip(xs.par_chunks(n).zip(gs.par_chunks(n)))
            .enumerate()
            .map(|(r, (dx, (x, g)))| {
                let (mean, rstd) = row_stats(x, self.eps);
                let c = self.channel(r, channels);
                let weight = |j: usize| match c {
                    Some(c) => ws[c],
                    None => ws[j],
                };
                let (mut sum_gw, mut sum_gw_xhat) = (0f64, 0f64);
                for (j, (&x, &g)) in x.iter().zip(g).enumerate() {
                    let gw = f64::from(g * weight(j));
                    sum_gw += gw;
                    sum_gw_xhat += gw * f64::from((x - mean) * rstd);
                }
                let (mean_gw, mean_gw_xhat) = (sum_gw / n as f64, sum_gw_xhat / n as f64);
                for (j, ((dx, &x), &g)) in dx.iter_mut().zip(x).zip(g).enumerate() {
                    let xhat = f64::from((x - mean) * rstd);
                    let gw = f64::from(g * weight(j));
                    *dx = ((gw - mean_gw - xhat * mean_gw_xhat) * f64::from(rstd)) as f32;
                }
                match c {
                    Some(_) => {
                        let (mut dw, mut db) = (0f64, 0f64);
                        for (&x, &g) in x.iter().zip(g) {
                            dw += f64::from(g) * f64::from((x - mean) * rstd);
                            db += f64::from(g);
                        }
                        (vec![dw as f32], vec![db as f32])
                    }
                    None => (
                        x.iter()
                            .zip(g)
                            .map(|(&x, &g)| g * (x - mean) * rstd)
                            .collect(),
                        g.to_vec(),
                    ),
                }
            })
            .collect();
        let mut dw = vec![0f64; channels];
        let mut db = vec![0f64; channels];
        for (r, (w_part, b_part)) in per_row.iter().enumerate() {
            match self.channel(r, channels) {
                Some(c) => {
                    dw[c] += f64::from(w_part[0]);
                    db[c] += f64::from(b_part[0]);
                }
                None => {
                    for j in 0..channels {
                        dw[j] += f64::from(w_part[j]);
                        db[j] += f64::from(b_part[j]);
                    }
                }
            }
        }
        let to = |v: Vec<f64>, like: &Tensor| {
            Tensor::from_vec(
                v.into_iter().map(|v| v as f32).collect::<Vec<f32>>(),
                like.shape(),
                like.device(),
            )
        };
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        Ok((Some(dx), Some(to(dw, w)?), Some(to(db, b)?)))
    }
}

/// `x` `(B, T, C)` normalized over time for each example and channel (biased variance,
/// `eps` added to it), times `weight` plus `bias`, both `C` values: GroupNorm with one group
/// per channel on channels-last activations, with the gradients of [`norm_last`]'s
/// `PerChannel` case, without transposing the input.
pub fn norm_over_time(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let (_, _, c) = x.dims3()?;
    if weight.elem_count() != c || bias.elem_count() != c {
        candle_core::bail!(
            "norm_over_time: weight {:?} and bias {:?} do not match {c} channels",
            weight.shape(),
            bias.shape()
        )
    }
    if !fusable(x) || !fusable(weight) || !fusable(bias) {
        let w = weight.reshape((c, 1))?;
        let b = bias.reshape((c, 1))?;
        return norm_last(&x.transpose(1, 2)?, &w, &b, eps, Affine::PerChannel)?.transpose(1, 2);
    }
    x.contiguous()?.apply_op3(
        &weight.flatten_all()?.contiguous()?,
        &bias.flatten_all()?.contiguous()?,
        NormTime { eps },
    )
}

struct NormTime {
    eps: f64,
}

/// Per channel of one example `x` `(T, C)`: the mean and `1 / σ`, accumulated in `f64`.
fn time_stats(x: &[f32], c: usize, eps: f64) -> (Vec<f32>, Vec<f32>) {
    let t = (x.len() / c.max(1)).max(1) as f64;
    let mut sum = vec![0f64; c];
    for row in x.chunks_exact(c) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / t).collect();
    let mut sq = vec![0f64; c];
    for row in x.chunks_exact(c) {
        for ((s, &v), &m) in sq.iter_mut().zip(row).zip(&mean) {
            let d = f64::from(v) - m;
            *s += d * d;
        }
    }
    let rstd = sq
        .iter()
        .map(|s| (1.0 / (s / t + eps).sqrt()) as f32)
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), rstd)
}

impl CustomOp3 for NormTime {
    fn name(&self) -> &'static str {
        "hearken-norm-over-time"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, self.name())?;
        let w = data(s2, l2, self.name())?;
        let b = data(s3, l3, self.name())?;
        let (_, t, c) = l1.shape().dims3()?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut((t * c).max(1))
            .zip(x.par_chunks((t * c).max(1)))
            .for_each(|(y, x)| {
                let (mean, rstd) = time_stats(x, c, self.eps);
                for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for j in 0..c {
                        y[j] = (x[j] - mean[j]) * rstd[j] * w[j] + b[j];
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, t, c) = x.dims3()?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ws = w.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let item = (t * c).max(1);
        let mut dx = vec![0f32; xs.len()];
        let per_item: Vec<(Vec<f64>, Vec<f64>)> = dx
            .par_chunks_mut(item)
            .zip(xs.par_chunks(item).zip(gs.par_chunks(item)))
            .map(|(dx, (x, g))| {
                let (mean, rstd) = time_stats(x, c, self.eps);
                let (mut sum_gw, mut sum_gw_xhat) = (vec![0f64; c], vec![0f64; c]);
                let (mut dw, mut db) = (vec![0f64; c], vec![0f64; c]);
                for (x, g) in x.chunks_exact(c).zip(g.chunks_exact(c)) {
                    for j in 0..c {
                        let xhat = f64::from((x[j] - mean[j]) * rstd[j]);
                        let gw = f64::from(g[j] * ws[j]);
                        sum_gw[j] += gw;
                        sum_gw_xhat[j] += gw * xhat;
                        dw[j] += f64::from(g[j]) * xhat;
                        db[j] += f64::from(g[j]);
                    }
                }
                let n = t.max(1) as f64;
                for (dx, (x, g)) in dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c).zip(g.chunks_exact(c)))
                {
                    for j in 0..c {
                        let xhat = f64::from((x[j] - mean[j]) * rstd[j]);
                        let gw = f64::from(g[j] * ws[j]);
                        dx[j] = ((gw - sum_gw[j] / n - xhat * sum_gw_xhat[j] / n)
                            * f64::from(rstd[j])) as f32;
                    }
                }
                (dw, db)
            })
            .collect();
        let mut dw = vec![0f64; c];
        let mut db = vec![0f64; c];
        for (w_part, b_part) in &per_item {
            for j in 0..c {
                dw[j] += w_part[j];
                db[j] += b_part[j];
            }
        }
        let to = |v: Vec<f64>, like: &Tensor| {
            Tensor::from_vec(
                v.into_iter().map(|v| v as f32).collect::<Vec<f32>>(),
                like.shape(),
                like.device(),
            )
        };
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        Ok((Some(dx), Some(to(dw, w)?), Some(to(db, b)?)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// A seeded tensor of `shape` with values spread over about ±3.
    fn values(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                (h % 10_000) as f32 / 10_000.0 * 6.0 - 3.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        max_abs(&(a - b).unwrap())
    }

    /// `ours` within 1e-5 of `theirs`, and the gradients of `sum(y g)` with respect to
    /// each of `vars` within 1e-4 of the reference's scale (at least 1).
    fn assert_forward_and_gradients_match(
        ours: Tensor,
        theirs: Tensor,
        g: &Tensor,
        vars: [(&str, &Var); 3],
        what: &str,
    ) {
        assert!(max_diff(&ours, &theirs) < 1e-5, "{what} forward");
        let d_ours = (ours * g).unwrap().sum_all().unwrap().backward().unwrap();
        let d_theirs = (theirs * g).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in vars {
            let (a, r) = (d_ours.get(v).unwrap(), d_theirs.get(v).unwrap());
            assert_eq!(a.shape(), r.shape(), "{what} {name}");
            let scale = max_abs(r);
            let d = max_diff(a, r);
            assert!(
                d <= 1e-4 * scale.max(1.0),
                "{what} d{name}: {d} (scale {scale})"
            );
        }
    }

    /// The composed-op reference of [`norm_last`].
    fn norm_reference(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let centered = x.broadcast_sub(&mean).unwrap();
        let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        centered
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(w)
            .unwrap()
            .broadcast_add(b)
            .unwrap()
    }

    #[test]
    fn fast_erf_is_within_5e_7_of_libm() {
        let mut worst = (0f64, 0f32);
        for i in -700_000..=700_000 {
            let x = i as f32 * 1e-5;
            let d = (f64::from(erf_fast(x)) - f64::from(candle_core::cpu::erf::erf_f32(x))).abs();
            if d > worst.0 {
                worst = (d, x);
            }
        }
        assert!(worst.0 < 5e-7, "erf off by {} at {}", worst.0, worst.1);
        assert_eq!(erf_fast(0.0), 0.0);
        for x in [4.0, 9.0, f32::INFINITY] {
            assert!((erf_fast(x) - 1.0).abs() < 1e-6 && erf_fast(-x) == -erf_fast(x));
        }
        assert!(erf_fast(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_matches_candle_forward_and_backward() {
        let x = Var::from_tensor(&values(&[3, 5, 37], 1)).unwrap();
        let g = values(&[3, 5, 37], 2);
        let ours = gelu_erf(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        // |x Φ(x) - x Φ'(x)| <= |x| 2.3e-7, and |x| < 4 here.
        let d = max_diff(&ours, &theirs);
        assert!(d < 1e-6, "forward: {d}");
        let d_ours = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let d_theirs = (theirs * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (d_ours.get(&x).unwrap(), d_theirs.get(&x).unwrap());
        // candle rounds 1/sqrt(2 pi) to 0.398942; the rest is float noise.
        assert!(max_diff(a, b) < 1e-5, "{}", max_diff(a, b));
    }

    #[test]
    fn norms_match_the_composed_ops_forward_and_backward() {
        for (affine, x_shape, w_shape) in [
            (Affine::PerColumn, vec![2, 7, 16], vec![16]),
            (Affine::PerChannel, vec![3, 4, 53], vec![4, 1]),
        ] {
            let x = Var::from_tensor(&values(&x_shape, 3)).unwrap();
            let w = Var::from_tensor(&(values(&w_shape, 4) * 0.5).unwrap()).unwrap();
            let b = Var::from_tensor(&values(&w_shape, 5)).unwrap();
            let g = values(&x_shape, 6);
            let eps = 1e-5;
            let ours = norm_last(x.as_tensor(), w.as_tensor(), b.as_tensor(), eps, affine).unwrap();
            let theirs = norm_reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), eps);
            let vars = [("x", &x), ("weight", &w), ("bias", &b)];
            assert_forward_and_gradients_match(ours, theirs, &g, vars, &format!("{affine:?}"));
        }
    }

    #[test]
    fn norm_over_time_matches_the_transposed_channel_norm() {
        let x = Var::from_tensor(&values(&[3, 41, 5], 8)).unwrap();
        let w = Var::from_tensor(&(values(&[5], 9) * 0.5).unwrap()).unwrap();
        let b = Var::from_tensor(&values(&[5], 10)).unwrap();
        let g = values(&[3, 41, 5], 11);
        let eps = 1e-5;
        let ours = norm_over_time(x.as_tensor(), w.as_tensor(), b.as_tensor(), eps).unwrap();
        let theirs = norm_reference(
            &x.as_tensor().transpose(1, 2).unwrap(),
            &w.as_tensor().reshape((5, 1)).unwrap(),
            &b.as_tensor().reshape((5, 1)).unwrap(),
            eps,
        )
        .transpose(1, 2)
        .unwrap();
        let vars = [("x", &x), ("weight", &w), ("bias", &b)];
        assert_forward_and_gradients_match(ours, theirs, &g, vars, "norm over time");
    }

    #[test]
    fn other_dtypes_take_the_composed_ops() {
        let x = values(&[2, 3, 8], 7).to_dtype(DType::F64).unwrap();
        let y = gelu_erf(&x).unwrap();
        assert_eq!(y.dtype(), DType::F64);
        let w = Tensor::ones(8, DType::F64, &Device::Cpu).unwrap();
        let b = Tensor::zeros(8, DType::F64, &Device::Cpu).unwrap();
        let n = norm_last(&x, &w, &b, 1e-5, Affine::PerColumn).unwrap();
        assert_eq!(n.dtype(), DType::F64);
    }
}
