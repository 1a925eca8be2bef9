//! Dynamic int8 quantization of `MatMul` weights, the scheme of ONNX Runtime's
//! `quantize_dynamic` (`onnxruntime/python/tools/quantization`, `MatMulInteger` mode).
//!
//! Weights are known at export, so they are quantized once, per output column and
//! symmetrically: `w_q = round_half_even(w / scale)` in `[-127, 127]` with `scale =
//! max |w[:, j]| / 127` and zero point 0. Activations are not known, so the graph quantizes
//! them at run time, per tensor and asymmetrically to u8 (`DynamicQuantizeLinear`), and
//! the integer product is scaled back to f32:
//!
//! ```text
//! x (..., k) f32 ── DynamicQuantizeLinear ──> x_u8, x_scale (), x_zp () u8
//! MatMulInteger(x_u8, w_i8 (k, n), x_zp) ── Cast f32 ──> acc (..., n)
//! y = acc * (x_scale * w_scale (n))                         -> (..., n) f32
//! ```
//!
//! The chain is emitted node for node as `quantize_dynamic` writes it (scales multiplied
//! by their own `Mul`, one `DynamicQuantizeLinear` per product, a following bias `Add`
//! with the bias as its second input), because that is the pattern ONNX Runtime's
//! `MatMulIntegerToFloatFusion` and `DynamicQuantizeMatMulFusion` recognize and turn into
//! one fused kernel ([the pattern](https://github.com/microsoft/onnxruntime/blob/0c2d609bdc359e698b67be8209fbf21b77cf81bd/onnxruntime/core/optimizer/matmul_integer_to_float.cc#L33-L50));
//! tract 0.23 reads the same ops as an integer einsum. On whisper-base the encoder this
//! writes gives bit-identical outputs to `quantize_dynamic(per_channel=True,
//! weight_type=QInt8, op_types_to_quantize=["MatMul"])` applied to the f32 export. The weight zero
//! point is left out (both engines default it to 0), which saves `n` bytes per matrix and
//! an input tract would have to type-check.
//!
//! Symmetric weights in `[-127, 127]` (not -128) keep `w_q` negation-safe and match ONNX
//! Runtime's symmetric range; u8 × s8 products on x86 without VNNI can saturate in ONNX
//! Runtime's `vpmaddubsw` path, which the calibrated WER gate in `hearken-export convert`
//! is there to catch.

use hearken::engine::{DType, Tensor};

use super::GraphBuilder;
use crate::error::{Error, Result};

/// Largest magnitude of a quantized weight: symmetric int8 uses `[-127, 127]`.
const Q_MAX: f32 = 127.0;

// Scale, zero point and rounding as ONNX Runtime 1.31.1's `compute_scale_zp` and
// `quantize_nparray` (symmetric, qmin = -127, qmax = 127):
// https://github.com/microsoft/onnxruntime/blob/v1.31.1/onnxruntime/python/tools/quantization/quant_utils.py#L191-L301
/// Quantizes a `(k, n)` row-major matrix per column: returns `(w_q, scales)`, `w_q`
/// `(k, n)` row-major int8 and `scales` `(n,)`, such that `w[i][j] ≈ w_q[i][j] *
/// scales[j]` within `scales[j] / 2`.
///
/// `scales[j] = max_i |w[i][j]| / 127`; an all-zero column gets scale 1 (as ONNX Runtime
/// does below f32's smallest normal), so that no scale is 0. Values are rounded half to
/// even, like `numpy.round`.
///
/// Errors with [`Error::InvalidTensor`] when `w.len()` is not `k * n`, or when `w` holds
/// a NaN or an infinity (which no scale can represent).
pub fn quantize_per_column(w: &[f32], k: usize, n: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    let invalid = |reason: String| Error::InvalidTensor {
        name: "int8 weight".into(),
        reason,
    };
    if k.checked_mul(n) != Some(w.len()) {
        return Err(invalid(format!(
            "expected ({k}, {n}) = {} values, got {}",
            k.saturating_mul(n),
            w.len()
        )));
    }
    if let Some(i) = w.iter().position(|x| !x.is_finite()) {
        return Err(invalid(format!(
            "value {} at ({}, {}) is not finite",
            w[i],
            i / n,
            i % n
        )));
    }
    let mut max_abs = vec![0.0f32; n];
    for row in w.chunks_exact(n.max(1)) {
        for (m, &x) in max_abs.iter_mut().zip(row) {
            *m = m.max(x.abs());
        }
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| {
            let s = m / Q_MAX;
            if s < f32::MIN_POSITIVE { 1.0 } else { s }
        })
        .collect();
    let q = w
        .chunks_exact(n.max(1))
        .flat_map(|row| {
            row.iter().zip(&scales).map(|(&x, &s)| {
                // In range by construction of `s`; the clamp only guards rounding at the ends.
                (x / s).round_ties_even().clamp(-Q_MAX, Q_MAX) as i8
            })
        })
        .collect();
    Ok((q, scales))
}

/// The f32 matrix an int8 weight stands for: `w_q (k, n)` row-major times `scales (n,)`
/// per column → `(k, n)` row-major. Extra or missing scales are a caller error; a
/// `w_q` whose length is not a multiple of `scales.len()` leaves its last partial row out.
pub fn dequantize_per_column(w_q: &[i8], scales: &[f32]) -> Vec<f32> {
    w_q.chunks_exact(scales.len().max(1))
        .flat_map(|row| row.iter().zip(scales).map(|(&q, &s)| f32::from(q) * s))
        .collect()
}

/// Names of an int8 `MatMul` weight stored by [`store_int8_weight`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Int8Weight {
    /// `(k, n)` int8 initializer, laid out for `MatMulInteger`'s `B`.
    pub weight: String,
    /// `(n,)` f32 initializer: each column's scale.
    pub scale: String,
}

/// Quantizes the `(k, n)` row-major f32 matrix `w` with [`quantize_per_column`] and stores
/// it in `b` as initializers `{name}_quantized` (int8, `(k, n)`) and `{name}_scale` (f32,
/// `(n,)`), the names `quantize_dynamic` gives them.
///
/// Errors as [`quantize_per_column`] does.
pub fn store_int8_weight(
    b: &mut GraphBuilder,
    name: &str,
    w: &[f32],
    k: usize,
    n: usize,
) -> Result<Int8Weight> {
    let (q, scales) = quantize_per_column(w, k, n)?;
    let tensor_err = |e: hearken::Error| Error::InvalidTensor {
        name: name.to_owned(),
        reason: e.to_string(),
    };
    let q = Tensor::from_i8([k, n], q).map_err(tensor_err)?;
    let scales = Tensor::from_f32([n], scales).map_err(tensor_err)?;
    Ok(Int8Weight {
        weight: b.initializer(&format!("{name}_quantized"), &q),
        scale: b.initializer(&format!("{name}_scale"), &scales),
    })
}

impl GraphBuilder {
    /// `x (..., k) @ w (k, n) -> (..., n)` in f32, computed in integers: `x` quantized per
    /// tensor to u8 at run time (`DynamicQuantizeLinear`), multiplied by the int8 weight
    /// (`MatMulInteger`, int32 accumulators), cast back and scaled by `x_scale *
    /// w_scale`. Add a bias to the result with [`add`](Self::add) (bias second), which
    /// ONNX Runtime fuses into the same kernel.
    ///
    /// Each call quantizes `x` anew, even when another product reads the same `x`: ONNX
    /// Runtime fuses a `DynamicQuantizeLinear` into the product only when it feeds that
    /// product alone.
    pub fn matmul_int8(&mut self, x: &str, w: &Int8Weight) -> String {
        let q = self.op_n("DynamicQuantizeLinear", &[x], 3, []);
        let (x_q, x_scale, x_zp) = (&q[0], &q[1], &q[2]);
        let acc = self.op("MatMulInteger", &[x_q, &w.weight, x_zp], []);
        let acc = self.cast(&acc, DType::F32);
        let scale = self.mul(x_scale, &w.scale);
        self.mul(&acc, &scale)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hearken::engine::{EngineKind, OrtOptions, TractOptions};

    use super::*;
    use crate::dims;

    /// Deterministic values in [-1, 1) (a 32-bit LCG).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn round_trip_error_is_at_most_half_a_step() {
        let (k, n) = (37, 11);
        // Columns of very different ranges, so that one scale per column matters.
        let w: Vec<f32> = values(k * n, 3)
            .iter()
            .enumerate()
            .map(|(i, x)| x * 10f32.powi((i % n) as i32 - 5))
            .collect();
        let (q, scales) = quantize_per_column(&w, k, n).unwrap();
        assert_eq!((q.len(), scales.len()), (k * n, n));
        let back = dequantize_per_column(&q, &scales);
        for (i, (&x, &y)) in w.iter().zip(&back).enumerate() {
            let s = scales[i % n];
            assert!(
                (x - y).abs() <= s / 2.0 * 1.0001,
                "({}, {}): {x} vs {y}, scale {s}",
                i / n,
                i % n
            );
        }
        // Each column's largest magnitude maps to ±127 exactly.
        for j in 0..n {
            let peak = (0..k).map(|i| q[i * n + j].unsigned_abs()).max().unwrap();
            assert_eq!(peak, 127, "column {j}");
        }
    }

    #[test]
    fn zero_columns_and_rounding_follow_onnx_runtime() {
        // Column 0 all zero (scale 1), column 1 with max 127 (scale 1): 2.5 rounds to even.
        let w = [0.0, 127.0, 0.0, 2.5, 0.0, -3.5, 0.0, -127.0];
        let (q, scales) = quantize_per_column(&w, 4, 2).unwrap();
        assert_eq!(scales, [1.0, 1.0]);
        assert_eq!(q, [0, 127, 0, 2, 0, -4, 0, -127]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(quantize_per_column(&[1.0; 5], 2, 3).is_err());
        assert!(quantize_per_column(&[1.0, f32::NAN], 1, 2).is_err());
        assert!(quantize_per_column(&[1.0, 2.0], usize::MAX, 2).is_err());
        let (q, s) = quantize_per_column(&[], 0, 4).unwrap();
        assert!(q.is_empty() && s == [1.0; 4]);
    }

    /// `x (batch, seq, k) @ w (k, n) + bias` through [`GraphBuilder::matmul_int8`] on
    /// every engine at hand, against the f32 product: 3-D activations against a 2-D
    /// weight are what a transformer's projections are.
    #[test]
    fn int8_matmul_runs_on_both_engines() {
        let (batch, seq, k, n) = (2, 5, 48, 24);
        let w = values(k * n, 7);
        let bias = values(n, 8);
        let x = values(batch * seq * k, 9);
        let mut b = GraphBuilder::new("int8_matmul");
        let xin = b.input("x", DType::F32, &dims!["batch", "seq", k]);
        let q = store_int8_weight(&mut b, "w", &w, k, n).unwrap();
        let bias_name = b.const_f32(&[n], &bias);
        let y = b.matmul_int8(&xin, &q);
        let y = b.add(&y, &bias_name);
        b.output_from(&y, "y", DType::F32, &dims!["batch", "seq", n]);
        let bytes = b.to_bytes().unwrap();

        let want: Vec<f32> = x
            .chunks_exact(k)
            .flat_map(|row| {
                (0..n).map(|j| {
                    bias[j]
                        + row
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| v * w[i * n + j])
                            .sum::<f32>()
                })
            })
            .collect();
        // Error bound: x is quantized with step (max - min) / 255 ≈ 2 / 255, w with
        // max|w_col| / 127; each term errs by at most |x| dw + |w| dx, summed over k.
        let tol = k as f32 * (1.0 / 254.0 + 1.0 / 255.0);

        let mut kinds = vec![EngineKind::Tract(TractOptions::default())];
        if EngineKind::Ort(OrtOptions::default()).build().is_ok()
            || std::env::var_os("CI").is_some()
        {
            kinds.push(EngineKind::Ort(OrtOptions::default()));
        }
        let input = Tensor::from_f32([batch, seq, k], x.clone()).unwrap();
        for kind in kinds {
            let engine = kind.build().unwrap();
            let graph = engine.load_bytes(&bytes).unwrap();
            let out = graph.run_refs(&[("x", &input)]).unwrap();
            assert_eq!(out[0].shape(), [batch, seq, n], "{}", kind.name());
            let got = out[0].to_f32_vec();
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            eprintln!(
                "{}: max |int8 - f32| = {d:.4} (bound {tol:.3})",
                kind.name()
            );
            assert!(d <= tol, "{}: max |int8 - f32| = {d} > {tol}", kind.name());
            assert!(d > 0.0, "{}: suspiciously exact", kind.name());
        }
    }
}
