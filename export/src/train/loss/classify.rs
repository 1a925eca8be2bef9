//! Cross-entropy for sequence classification, as PyTorch's `CrossEntropyLoss()` (mean
//! over the batch, no label smoothing, no ignored index), which transformers'
//! `*ForSequenceClassification` applies to its logits.
//!
//! The log-softmax is written out (max-shifted, the max detached as it cancels) rather
//! than taken from candle-nn, so that the backward pass is the one this file shows, and
//! the target log-probability is picked with a one-hot product, which differentiates
//! without a gather.

use candle_core::{D, DType, Tensor};

use crate::error::{Error, Result, candle_err};

/// Log-softmax over the last axis of `x` (any shape), differentiable.
pub fn log_softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&log_sum)
}

/// Mean cross-entropy of `logits` (B, C), float, against `labels` (B), integer class ids
/// (`u8`, `u32` or `i64`): `-mean_b log_softmax(logits[b])[labels[b]]`, a scalar tensor
/// on the logits' device whose gradient reaches `logits`.
///
/// Fails with [`Error::InvalidInput`] when `logits` is not (B, C) with B, C > 0, `labels`
/// is not (B) or not of an integer dtype, or a label is outside `0..C`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let &[n_batch, n_classes] = logits.dims() else {
        return Err(Error::InvalidInput {
            what: "logits shape".into(),
            expected: "(batch, n_classes)".into(),
            got: format!("{:?}", logits.dims()),
        });
    };
    if n_batch == 0 || n_classes == 0 || !logits.dtype().is_float() {
        return Err(Error::InvalidInput {
            what: "logits".into(),
            expected: "a non-empty float (batch, n_classes) tensor".into(),
            got: format!("{:?} {:?}", logits.dims(), logits.dtype()),
        });
    }
    if labels.dims() != [n_batch] || !labels.dtype().is_int() {
        return Err(Error::InvalidInput {
            what: "labels".into(),
            expected: format!("({n_batch}) integer class ids"),
            got: format!("{:?} {:?}", labels.dims(), labels.dtype()),
        });
    }
    let ids: Vec<i64> = labels
        .to_dtype(DType::I64)
        .and_then(|l| l.to_vec1())
        .map_err(candle_err("reading labels"))?;
    let mut one_hot = vec![0f32; n_batch * n_classes];
    for (b, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= n_classes {
            return Err(Error::InvalidInput {
                what: format!("label of example {b}"),
                expected: format!("a class id in 0..{n_classes}"),
                got: id.to_string(),
            });
        }
        one_hot[b * n_classes + id as usize] = 1.0;
    }
    (|| -> candle_core::Result<Tensor> {
        let one_hot = Tensor::from_vec(one_hot, (n_batch, n_classes), logits.device())?
            .to_dtype(logits.dtype())?;
        let picked = (log_softmax_last(logits)? * one_hot)?.sum_all()?;
        picked.affine(-1.0 / n_batch as f64, 0.0)
    })()
    .map_err(candle_err("computing the cross-entropy"))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn matches_the_closed_form_and_its_gradient() {
        let logits =
            Var::from_vec(vec![1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0], (2, 3), &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        let loss = cross_entropy(logits.as_tensor(), &labels).unwrap();
        let rows = [[1.0f64, 2.0, 0.5], [-1.0, 0.0, 3.0]];
        let lse = |r: &[f64; 3]| r.iter().map(|x| x.exp()).sum::<f64>().ln();
        let expected = ((lse(&rows[0]) - 2.0) + (lse(&rows[1]) - 3.0)) / 2.0;
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");

        // d loss / d logits = (softmax - one_hot) / B.
        let grads = loss.backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(logits.as_tensor()).unwrap().to_vec2().unwrap();
        for (b, (row, label)) in rows.iter().zip([1, 2]).enumerate() {
            let z: f64 = row.iter().map(|x| x.exp()).sum();
            for c in 0..3 {
                let want = (row[c].exp() / z - f64::from(c == label)) / 2.0;
                assert!((g[b][c] as f64 - want).abs() < 1e-6, "{b} {c}");
            }
        }
    }

    #[test]
    fn large_logits_stay_finite() {
        let logits = Tensor::new(&[[1000f32, -1000.0]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1i64], &Device::Cpu).unwrap();
        let loss = cross_entropy(&logits, &labels).unwrap();
        assert_eq!(loss.to_scalar::<f32>().unwrap(), 2000.0);
    }

    #[test]
    fn refuses_bad_labels() {
        let logits = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        for labels in [
            Tensor::new(&[0i64, 3], &Device::Cpu).unwrap(),
            Tensor::new(&[0i64, -1], &Device::Cpu).unwrap(),
            Tensor::new(&[0i64], &Device::Cpu).unwrap(),
            Tensor::new(&[0f32, 1.0], &Device::Cpu).unwrap(),
        ] {
            let e = cross_entropy(&logits, &labels).unwrap_err();
            assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        }
        let flat = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32], &Device::Cpu).unwrap();
        assert!(cross_entropy(&flat, &labels).is_err());
    }
}
