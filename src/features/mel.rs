//! Slaney-style mel filterbanks, computed in code for any number of filters.
//!
//! Whisper's filters are `librosa.filters.mel(sr=16000, n_fft=400, n_mels=N)` (shipped by
//! OpenAI as `mel_filters.npz` for N = 80 and 128), which transformers reproduces with
//! `mel_filter_bank(norm="slaney", mel_scale="slaney")`. Computing them instead of
//! shipping a table lets any `feature_size` work and keeps the crate free of binary
//! assets; the arithmetic below follows transformers operation by operation in `f64`, so
//! the weights agree with its table to the last `f32` bit or so.
//!
//! The filters are stored sparse: filter `m` is a triangle that is non-zero only on a
//! contiguous band of FFT bins, so it is kept as (first bin, weights of the band).

use crate::{Error, Result};

// Slaney's auditory-toolbox mel scale: linear below 1 kHz (3 mels per 200 Hz),
// logarithmic above (27 mels per factor 6.4).
const MIN_LOG_HERTZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = 15.0;

/// Converts a frequency in Hz to the Slaney mel scale.
// Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L602-L613
pub fn hertz_to_mel_slaney(hz: f64) -> f64 {
    if hz >= MIN_LOG_HERTZ {
        let logstep = 27.0 / 6.4f64.ln();
        MIN_LOG_MEL + (hz / MIN_LOG_HERTZ).ln() * logstep
    } else {
        3.0 * hz / 200.0
    }
}

/// Converts a Slaney mel value to a frequency in Hz (the inverse of
/// [`hertz_to_mel_slaney`]).
// Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L638-L649
pub fn mel_to_hertz_slaney(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        let logstep = 6.4f64.ln() / 27.0;
        MIN_LOG_HERTZ * (logstep * (mel - MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// `np.linspace(start, stop, num)`: `start + i * step`, the last point exactly `stop`.
// Ported from https://github.com/numpy/numpy/blob/v2.4.6/numpy/_core/function_base.py#L128-L177
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num <= 1 {
        return vec![start; num];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = y.last_mut() {
        *last = stop;
    }
    y
}

/// One filter's non-zero band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Band {
    /// First FFT bin of the band.
    first_bin: usize,
    /// Offset of the band's weights in `MelFilterbank::weights`.
    offset: usize,
    /// Number of bins in the band (0 for a filter that misses every bin).
    len: usize,
}

/// A bank of `n_mels` triangular filters over `n_bins` FFT bins, stored sparse.
///
/// As a dense matrix it is `(n_mels, n_bins)` (librosa's and OpenAI's orientation; the
/// transpose of transformers' `(num_frequency_bins, num_mel_filters)`).
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilterbank {
    n_bins: usize,
    bands: Vec<Band>,
    weights: Vec<f32>,
}

impl MelFilterbank {
    /// The Slaney-normalized, Slaney-scaled filterbank of transformers'
    /// `mel_filter_bank(num_frequency_bins=n_bins, num_mel_filters=n_mels,
    /// min_frequency, max_frequency, sampling_rate, norm="slaney", mel_scale="slaney")`.
    ///
    /// Filter `m` rises linearly from `f[m]` to `f[m + 1]` and falls to `f[m + 2]`, where
    /// `f` are `n_mels + 2` points evenly spaced in mel between the two frequencies; it is
    /// scaled by `2 / (f[m + 2] - f[m])` so that each filter has unit area in Hz. Bin `k`
    /// sits at `k * (sampling_rate / 2) / (n_bins - 1)` Hz (integer `sampling_rate / 2`).
    ///
    /// Fails with [`Error::InvalidInput`] when `n_bins < 2`, `n_mels == 0`,
    /// `sampling_rate_hz == 0`, or the frequencies are not finite with
    /// `0 <= min_frequency_hz < max_frequency_hz`. A filter too narrow to cover any bin is
    /// allowed (transformers only warns) and produces zeros.
    // Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L837-L857
    // and https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L688-L692
    pub fn slaney(
        n_bins: usize,
        n_mels: usize,
        min_frequency_hz: f64,
        max_frequency_hz: f64,
        sampling_rate_hz: u32,
    ) -> Result<Self> {
        if n_bins < 2 {
            return Err(Error::invalid(
                "number of frequency bins",
                "at least 2",
                n_bins,
            ));
        }
        if n_mels == 0 {
            return Err(Error::invalid("n_mels", "at least 1", n_mels));
        }
        if sampling_rate_hz == 0 {
            return Err(Error::invalid(
                "sampling_rate",
                "at least 1 Hz",
                sampling_rate_hz,
            ));
        }
        let ordered = min_frequency_hz.is_finite()
            && max_frequency_hz.is_finite()
            && 0.0 <= min_frequency_hz
            && min_frequency_hz < max_frequency_hz;
        if !ordered {
            return Err(Error::invalid(
                "mel frequency range",
                "finite 0 <= min_frequency < max_frequency",
                format!("{min_frequency_hz} Hz ..= {max_frequency_hz} Hz"),
            ));
        }

        let mel_min = hertz_to_mel_slaney(min_frequency_hz);
        let mel_max = hertz_to_mel_slaney(max_frequency_hz);
        let filter_freqs: Vec<f64> = linspace(mel_min, mel_max, n_mels + 2)
            .into_iter()
            .map(mel_to_hertz_slaney)
            .collect();
        let fft_freqs = linspace(0.0, f64::from(sampling_rate_hz / 2), n_bins);
        let filter_diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();

        let mut bands = Vec::with_capacity(n_mels);
        let mut weights = Vec::new();
        let mut dense = vec![0.0f64; n_bins];
        for m in 0..n_mels {
            let enorm = 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
            for (w, &fft_freq) in dense.iter_mut().zip(&fft_freqs) {
                // slopes[b, i] = filter_freqs[i] - fft_freqs[b]
                let down = -(filter_freqs[m] - fft_freq) / filter_diff[m];
                let up = (filter_freqs[m + 2] - fft_freq) / filter_diff[m + 1];
                *w = 0.0f64.max(down.min(up)) * enorm;
            }
            let first = dense.iter().position(|&w| w > 0.0);
            let last = dense.iter().rposition(|&w| w > 0.0);
            let offset = weights.len();
            match (first, last) {
                (Some(first), Some(last)) => {
                    weights.extend(dense[first..=last].iter().map(|&w| w as f32));
                    bands.push(Band {
                        first_bin: first,
                        offset,
                        len: last + 1 - first,
                    });
                }
                _ => {
                    tracing::warn!(mel = m, n_mels, n_bins, "mel filter covers no FFT bin");
                    bands.push(Band {
                        first_bin: 0,
                        offset,
                        len: 0,
                    });
                }
            }
        }
        Ok(MelFilterbank {
            n_bins,
            bands,
            weights,
        })
    }

    /// The number of filters.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// The number of FFT bins the filters take.
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// Filter `mel`'s non-zero band: its first FFT bin and its weights `(band_len,)`.
    /// `None` when `mel >= n_mels`.
    pub fn band(&self, mel: usize) -> Option<(usize, &[f32])> {
        let b = self.bands.get(mel)?;
        Some((b.first_bin, &self.weights[b.offset..b.offset + b.len]))
    }

    /// The number of stored (non-zero band) weights, for all filters together.
    pub fn n_weights(&self) -> usize {
        self.weights.len()
    }

    /// The filterbank as a dense `(n_mels, n_bins)` row-major matrix.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut dense = vec![0.0f32; self.n_mels() * self.n_bins];
        for (row, b) in dense.chunks_exact_mut(self.n_bins).zip(&self.bands) {
            row[b.first_bin..b.first_bin + b.len]
                .copy_from_slice(&self.weights[b.offset..b.offset + b.len]);
        }
        dense
    }

    /// Projects one power spectrum onto the filters: `mel[m] = Σ_k W[m, k] · power[k]`.
    ///
    /// `power` is `(n_bins,)` and `mel` is `(n_mels,)`; fails with
    /// [`Error::InvalidInput`] otherwise.
    pub fn apply(&self, power: &[f32], mel: &mut [f32]) -> Result<()> {
        if power.len() != self.n_bins {
            return Err(Error::invalid(
                "power spectrum length",
                self.n_bins.to_string(),
                power.len(),
            ));
        }
        if mel.len() != self.n_mels() {
            return Err(Error::invalid(
                "mel output length",
                self.n_mels().to_string(),
                mel.len(),
            ));
        }
        self.apply_unchecked_len(power, mel);
        Ok(())
    }

    /// [`MelFilterbank::apply`] for callers that sized the slices themselves; slices of
    /// the wrong length give a short (not a wrong or panicking) result.
    #[inline]
    pub(crate) fn apply_unchecked_len(&self, power: &[f32], mel: &mut [f32]) {
        for (out, b) in mel.iter_mut().zip(&self.bands) {
            let w = &self.weights[b.offset..b.offset + b.len];
            let p = power.get(b.first_bin..b.first_bin + b.len).unwrap_or(&[]);
            *out = w.iter().zip(p).map(|(&w, &p)| w * p).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips_and_hits_known_points() {
        assert_eq!(hertz_to_mel_slaney(0.0), 0.0);
        assert!((hertz_to_mel_slaney(200.0) - 3.0).abs() < 1e-12);
        assert!((hertz_to_mel_slaney(1000.0) - 15.0).abs() < 1e-12);
        // 6.4 kHz is one log step (27 mels) above 1 kHz.
        assert!((hertz_to_mel_slaney(6400.0) - 42.0).abs() < 1e-12);
        for hz in [0.0, 50.0, 999.0, 1000.0, 1234.5, 8000.0, 22050.0] {
            let back = mel_to_hertz_slaney(hertz_to_mel_slaney(hz));
            assert!((back - hz).abs() < 1e-9 * hz.max(1.0), "{hz} -> {back}");
        }
    }

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(linspace(0.0, 8000.0, 201)[1], 40.0);
        assert_eq!(linspace(0.0, 1.0, 1), vec![0.0]);
        let y = linspace(0.1, 0.7, 7);
        assert_eq!(y[6], 0.7);
        assert_eq!(y[3], 3.0 * ((0.7 - 0.1) / 6.0) + 0.1);
    }

    #[test]
    fn whisper_filterbanks_have_the_documented_shape_and_area() {
        for n_mels in [80, 128] {
            let fb = MelFilterbank::slaney(201, n_mels, 0.0, 8000.0, 16_000).unwrap();
            assert_eq!((fb.n_mels(), fb.n_bins()), (n_mels, 201));
            let dense = fb.to_dense();
            assert_eq!(dense.len(), n_mels * 201);
            // Every filter covers at least one bin, and the bands are sparse: each bin is
            // in at most two neighbouring triangles.
            assert!(fb.n_weights() <= 2 * 201, "{}", fb.n_weights());
            for m in 0..n_mels {
                let (first, w) = fb.band(m).unwrap();
                assert!(!w.is_empty(), "filter {m} is empty");
                assert!(w.iter().all(|&x| x > 0.0));
                // Bands move up with m.
                if m > 0 {
                    assert!(first >= fb.band(m - 1).unwrap().0);
                }
                // Unit area in Hz (Slaney norm): Σ w · 40 Hz ≈ 1. The triangle is sampled
                // every 40 Hz, which is coarse for the low filters of the 128-filter bank
                // (47 Hz wide: transformers' own areas range 0.50 ..= 1.67 there), so the
                // bound is tight only where filters span several bins.
                let area: f32 = w.iter().sum::<f32>() * 40.0;
                let tol = if n_mels == 128 && m < n_mels / 2 {
                    0.7
                } else {
                    0.1
                };
                assert!(
                    (area - 1.0).abs() < tol,
                    "n_mels {n_mels} filter {m}: area {area}"
                );
            }
        }
    }

    #[test]
    fn first_filter_matches_hand_computation() {
        // n_mels = 80: f[m] = 200/3 * m * step for the linear region, with
        // step = hertz_to_mel(8000) / 81. Filter 0 rises over [0, f1], falls over [f1, f2].
        let fb = MelFilterbank::slaney(201, 80, 0.0, 8000.0, 16_000).unwrap();
        let step = hertz_to_mel_slaney(8000.0) / 81.0;
        let f1 = 200.0 * step / 3.0;
        let f2 = 200.0 * (2.0 * step) / 3.0;
        let enorm = 2.0 / f2;
        // Bin 1 is at 40 Hz; it is on the rising edge when 40 < f1, else the falling one.
        let expected = if 40.0 < f1 {
            40.0 / f1
        } else {
            (f2 - 40.0) / (f2 - f1)
        } * enorm;
        let (first, w) = fb.band(0).unwrap();
        assert_eq!(first, 1);
        assert!(
            (f64::from(w[0]) - expected).abs() < 1e-8,
            "{} vs {expected}",
            w[0]
        );
    }

    #[test]
    fn apply_is_the_dense_product() {
        let fb = MelFilterbank::slaney(201, 80, 0.0, 8000.0, 16_000).unwrap();
        let power: Vec<f32> = (0..201)
            .map(|k| ((k * 37 % 11) as f32) * 0.1 + 0.01)
            .collect();
        let mut mel = vec![0.0; 80];
        fb.apply(&power, &mut mel).unwrap();
        let dense = fb.to_dense();
        for m in 0..80 {
            let want: f32 = (0..201).map(|k| dense[m * 201 + k] * power[k]).sum();
            assert!((mel[m] - want).abs() <= 1e-6 * want.abs().max(1e-6), "{m}");
        }
        assert!(fb.apply(&power[..200], &mut mel).is_err());
        assert!(fb.apply(&power, &mut mel[..79]).is_err());
    }

    #[test]
    fn rejects_impossible_banks() {
        assert!(MelFilterbank::slaney(1, 80, 0.0, 8000.0, 16_000).is_err());
        assert!(MelFilterbank::slaney(201, 0, 0.0, 8000.0, 16_000).is_err());
        assert!(MelFilterbank::slaney(201, 80, 0.0, 8000.0, 0).is_err());
        assert!(MelFilterbank::slaney(201, 80, 8000.0, 8000.0, 16_000).is_err());
        assert!(MelFilterbank::slaney(201, 80, f64::NAN, 8000.0, 16_000).is_err());
        // Too many filters for the bins: allowed, some filters are empty and give zeros.
        let fb = MelFilterbank::slaney(5, 40, 0.0, 8000.0, 16_000).unwrap();
        assert!((0..40).any(|m| fb.band(m).unwrap().1.is_empty()));
        let mut mel = vec![1.0; 40];
        fb.apply(&[1.0; 5], &mut mel).unwrap();
        assert!(mel.iter().all(|x| x.is_finite()));
    }
}
