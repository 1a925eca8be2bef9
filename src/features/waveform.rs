//! Raw-waveform normalization for Wav2Vec2, HuBERT, WavLM and other models that take
//! samples rather than spectrograms.
//!
//! A port of `Wav2Vec2FeatureExtractor(do_normalize=True)`: each utterance is shifted to
//! zero mean and scaled to unit variance, `(x - mean) / sqrt(var + 1e-7)`. In a padded
//! batch with an attention mask, the statistics of each row cover only its real samples
//! and the padding is then set to `padding_value`, so a padded utterance normalizes
//! exactly as it would alone.
//!
//! The reference computes the mean and variance in `float32` with numpy's pairwise
//! summation; here they are accumulated in `f64` (two passes), which is at least as
//! accurate for any length, so results agree to float32 rounding (≤ 1e-5 on the goldens).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Added to the variance before the square root, as the reference does, so that silence
/// (variance 0) maps to zeros instead of NaN.
const VARIANCE_EPSILON: f64 = 1e-7;

/// Configuration of a `Wav2Vec2FeatureExtractor`, as in a Hugging Face
/// `preprocessor_config.json`; field names are transformers', defaults its defaults.
// Defaults from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/feature_extraction_wav2vec2.py#L64-L75
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WaveformConfig {
    /// Values per time step: 1 (mono samples).
    pub feature_size: usize,
    /// Sample rate of the audio, in Hz.
    pub sampling_rate: u32,
    /// Value that padding positions of a batch are set to.
    pub padding_value: f32,
    /// Whether to normalize to zero mean and unit variance.
    pub do_normalize: bool,
    /// Whether the model takes an attention mask. When `false` (e.g.
    /// `wav2vec2-base-960h`), transformers normalizes each padded batch row over all of its
    /// samples, padding included, and [`WaveformConfig::apply_batch`] does the same.
    pub return_attention_mask: bool,
}

impl Default for WaveformConfig {
    fn default() -> Self {
        WaveformConfig {
            feature_size: 1,
            sampling_rate: 16_000,
            padding_value: 0.0,
            do_normalize: true,
            return_attention_mask: false,
        }
    }
}

impl WaveformConfig {
    /// Parses the text of a `preprocessor_config.json`.
    ///
    /// Fails with [`Error::InvalidInput`] when it is not JSON, a field has the wrong type,
    /// or `feature_size` is not 1.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text).map_err(|e| {
            Error::invalid(
                "preprocessor_config.json",
                "a Wav2Vec2FeatureExtractor config",
                e,
            )
        })?;
        if config.feature_size != 1 {
            return Err(Error::invalid(
                "feature_size",
                "1 (mono samples)",
                config.feature_size,
            ));
        }
        Ok(config)
    }

    /// Prepares one utterance in place: normalizes it when `do_normalize`, and checks that
    /// every sample is finite either way.
    ///
    /// `samples`: `(n_samples,)`. Errors as [`zero_mean_unit_var`].
    pub fn apply(&self, samples: &mut [f32]) -> Result<()> {
        if self.do_normalize {
            zero_mean_unit_var(samples)
        } else {
            crate::audio::check_samples(samples)
        }
    }

    /// Prepares a padded batch in place, as `Wav2Vec2FeatureExtractor(...)(list_of_audio,
    /// padding=True)` does.
    ///
    /// `batch`: `(lengths.len(), n_padded)` row-major, row `i` holding `lengths[i]` real
    /// samples followed by padding. With `return_attention_mask`, each row is normalized
    /// over its real samples and its padding set to `padding_value`
    /// ([`zero_mean_unit_var_batch`]); without it, the padding is set to `padding_value`
    /// and, when `do_normalize`, each whole row is normalized.
    ///
    /// Errors as [`zero_mean_unit_var_batch`].
    pub fn apply_batch(&self, batch: &mut [f32], lengths: &[usize]) -> Result<()> {
        if self.do_normalize && self.return_attention_mask {
            return zero_mean_unit_var_batch(batch, lengths, self.padding_value);
        }
        let n_padded = padded_len(batch, lengths)?;
        check_real_samples(batch, lengths, n_padded)?;
        if n_padded == 0 {
            return Ok(());
        }
        for (row, &len) in batch.chunks_exact_mut(n_padded).zip(lengths) {
            row[len..].fill(self.padding_value);
            if self.do_normalize {
                normalize(row);
            }
        }
        Ok(())
    }
}

/// Normalizes one utterance in place to zero mean and unit variance:
/// `x ← (x - mean) / sqrt(var + 1e-7)`, with population variance.
///
/// `samples`: `(n_samples,)`; an empty slice is left as is. Fails with
/// [`Error::NonFiniteSample`] (leaving `samples` untouched) when a sample is NaN or
/// infinite.
// Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/feature_extraction_wav2vec2.py#L94-L95
pub fn zero_mean_unit_var(samples: &mut [f32]) -> Result<()> {
    crate::audio::check_samples(samples)?;
    normalize(samples);
    Ok(())
}

/// Normalizes a padded batch in place with an attention mask, as
/// `zero_mean_unit_var_norm(input_values, attention_mask, padding_value)` does.
///
/// `batch`: `(lengths.len(), n_padded)` row-major. Row `i` is normalized over its first
/// `lengths[i]` samples (the mask's row sum), and its remaining samples are set to
/// `padding_value`; a row of length 0 becomes all padding.
///
/// Fails with [`Error::InvalidInput`] when `batch.len()` is not a multiple of
/// `lengths.len()` or a length exceeds the row, and with [`Error::NonFiniteSample`]
/// (index into `batch`) for a NaN or infinite real sample; on error `batch` is untouched.
// Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/wav2vec2/feature_extraction_wav2vec2.py#L84-L93
pub fn zero_mean_unit_var_batch(
    batch: &mut [f32],
    lengths: &[usize],
    padding_value: f32,
) -> Result<()> {
    let n_padded = padded_len(batch, lengths)?;
    check_real_samples(batch, lengths, n_padded)?;
    if n_padded == 0 {
        return Ok(());
    }
    for (row, &len) in batch.chunks_exact_mut(n_padded).zip(lengths) {
        let (real, padding) = row.split_at_mut(len);
        normalize(real);
        padding.fill(padding_value);
    }
    Ok(())
}

/// The row length of a `(lengths.len(), n_padded)` batch, checking every length fits.
fn padded_len(batch: &[f32], lengths: &[usize]) -> Result<usize> {
    if lengths.is_empty() {
        return if batch.is_empty() {
            Ok(0)
        } else {
            Err(Error::invalid(
                "batch lengths",
                "one length per row",
                "none for a non-empty batch",
            ))
        };
    }
    if !batch.len().is_multiple_of(lengths.len()) {
        return Err(Error::invalid(
            "batch size",
            format!("a multiple of the {} rows", lengths.len()),
            batch.len(),
        ));
    }
    let n_padded = batch.len() / lengths.len();
    if let Some((i, &len)) = lengths.iter().enumerate().find(|&(_, &len)| len > n_padded) {
        return Err(Error::invalid(
            format!("length of batch row {i}"),
            format!("at most the padded length {n_padded}"),
            len,
        ));
    }
    Ok(n_padded)
}

/// Checks the real (unpadded) samples of every row; the index reported is into `batch`.
fn check_real_samples(batch: &[f32], lengths: &[usize], n_padded: usize) -> Result<()> {
    for (r, &len) in lengths.iter().enumerate() {
        let start = r * n_padded;
        crate::audio::check_samples(&batch[start..start + len]).map_err(|e| match e {
            Error::NonFiniteSample { index, value } => Error::NonFiniteSample {
                index: index + start,
                value,
            },
            other => other,
        })?;
    }
    Ok(())
}

/// `x ← (x - mean) / sqrt(var + 1e-7)` over finite `samples`, statistics in `f64`.
fn normalize(samples: &mut [f32]) {
    if samples.is_empty() {
        return;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = samples
        .iter()
        .map(|&x| {
            let d = f64::from(x) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    let scale = 1.0 / (var + VARIANCE_EPSILON).sqrt();
    for x in samples {
        *x = ((f64::from(*x) - mean) * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_zero_mean_unit_variance() {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        zero_mean_unit_var(&mut x).unwrap();
        // mean 2.5, var 1.25
        let s = (1.25f64 + 1e-7).sqrt();
        let want = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s];
        for (a, b) in x.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn silence_and_empty_stay_put() {
        let mut x = vec![0.0f32; 100];
        zero_mean_unit_var(&mut x).unwrap();
        assert!(x.iter().all(|&v| v == 0.0));
        zero_mean_unit_var(&mut []).unwrap();
        // A constant maps to exact zeros: the f64 mean is exact.
        let mut c = vec![0.1f32; 1000];
        zero_mean_unit_var(&mut c).unwrap();
        assert!(c.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn batch_rows_normalize_as_if_alone() {
        let a = [0.5f32, -0.25, 0.75, 0.0, 0.1];
        let b = [1.0f32, 3.0];
        let mut batch = vec![9.0f32; 10];
        batch[..5].copy_from_slice(&a);
        batch[5..7].copy_from_slice(&b);
        zero_mean_unit_var_batch(&mut batch, &[5, 2], -1.0).unwrap();
        let (mut a1, mut b1) = (a.to_vec(), b.to_vec());
        zero_mean_unit_var(&mut a1).unwrap();
        zero_mean_unit_var(&mut b1).unwrap();
        assert_eq!(&batch[..5], &a1[..]);
        assert_eq!(&batch[5..7], &b1[..]);
        assert_eq!(&batch[7..], &[-1.0; 3]);
        // A zero-length row is all padding.
        let mut z = vec![5.0f32, 5.0, -1.0, 1.0];
        zero_mean_unit_var_batch(&mut z, &[0, 2], 0.0).unwrap();
        let one = (1.0 / (1.0f64 + 1e-7).sqrt()) as f32;
        assert_eq!(z, vec![0.0, 0.0, -one, one]);
    }

    #[test]
    fn batch_errors_name_the_problem() {
        let mut batch = vec![0.0f32; 6];
        assert!(matches!(
            zero_mean_unit_var_batch(&mut batch, &[3, 4], 0.0),
            Err(Error::InvalidInput { .. })
        ));
        assert!(zero_mean_unit_var_batch(&mut batch, &[1, 1, 1, 1], 0.0).is_err());
        assert!(zero_mean_unit_var_batch(&mut batch, &[], 0.0).is_err());
        zero_mean_unit_var_batch(&mut [], &[], 0.0).unwrap();
        batch[4] = f32::NAN;
        // NaN in the padding of row 1 (length 1) is fine: it is overwritten.
        zero_mean_unit_var_batch(&mut batch, &[3, 1], 0.0).unwrap();
        assert_eq!(batch[4], 0.0);
        batch[3] = f32::INFINITY;
        match zero_mean_unit_var_batch(&mut batch, &[3, 1], 0.0) {
            Err(Error::NonFiniteSample { index, .. }) => assert_eq!(index, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(batch[3], f32::INFINITY, "untouched on error");
    }

    #[test]
    fn config_without_mask_normalizes_padding_too() {
        let cfg = WaveformConfig::from_json(r#"{"do_normalize": true, "return_attention_mask": false, "feature_extractor_type": "Wav2Vec2FeatureExtractor"}"#).unwrap();
        let mut batch = vec![1.0f32, 3.0, 7.0, 7.0];
        cfg.apply_batch(&mut batch, &[2, 1]).unwrap();
        // Row 0: [1, 3] -> mean 2, var 1; row 1: [7, 0] -> mean 3.5, var 12.25.
        let s0 = (1.0f64 + 1e-7).sqrt();
        let s1 = (12.25f64 + 1e-7).sqrt();
        let want = [-1.0 / s0, 1.0 / s0, 3.5 / s1, -3.5 / s1];
        for (a, b) in batch.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
        }
        let masked = WaveformConfig {
            return_attention_mask: true,
            ..cfg.clone()
        };
        let mut batch = vec![1.0f32, 3.0, 7.0, 7.0];
        masked.apply_batch(&mut batch, &[2, 1]).unwrap();
        assert_eq!(&batch[2..], &[0.0, 0.0]);
        assert!(WaveformConfig::from_json(r#"{"feature_size": 2}"#).is_err());
        let off = WaveformConfig {
            do_normalize: false,
            ..cfg
        };
        let mut x = vec![0.5f32, 0.25];
        off.apply(&mut x).unwrap();
        assert_eq!(x, vec![0.5, 0.25]);
    }
}
