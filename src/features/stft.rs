//! Centred short-time Fourier transform to a power spectrum.
//!
//! This is the framing of `transformers.audio_utils.spectrogram(center=True,
//! pad_mode="reflect")` and of `torch.stft(center=True)`: the signal is reflect-padded by
//! `n_fft / 2` samples on each side, frame `t` starts at `t * hop_length` of the padded
//! signal (so it is centred on sample `t * hop_length`), and each frame is multiplied by
//! the window before a real FFT of length `n_fft`. Windowing and FFT run in `f64`, like
//! transformers' numpy path; the power spectrum is handed out in `f32`.
//!
//! Frames are handed to a callback one at a time rather than collected, so that the mel
//! projection can consume them while they are hot in cache and no `(n_frames, n_bins)`
//! array is ever built. A frame whose samples are all zero is reported as `None` without
//! running the FFT: its power spectrum is exactly zero, and Whisper's 30 s padding makes
//! such frames common.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::{Error, Result};

/// The periodic Hann window of `n` samples: `w[k] = 0.5 - 0.5 cos(2πk / n)`.
///
/// This is `torch.hann_window(n)` and transformers' `window_function(n, "hann")`
/// (`np.hanning(n + 1)[:-1]`), in `f64` as transformers uses it.
///
/// Returns `(n,)`.
// Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L915-L929
pub fn hann_window(n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / n as f64).cos())
        .collect()
}

/// A planned, centred STFT producing power spectra `|X|²`.
///
/// Immutable and `Send + Sync`: build it once, share it.
pub struct Stft {
    n_fft: usize,
    hop_length: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("n_fft", &self.n_fft)
            .field("hop_length", &self.hop_length)
            .finish_non_exhaustive()
    }
}

impl Stft {
    /// Plans an STFT of `n_fft` samples per frame (periodic Hann window of the same
    /// length) every `hop_length` samples.
    ///
    /// Fails with [`Error::InvalidInput`] unless `n_fft >= 2` and `hop_length >= 1`.
    pub fn new(n_fft: usize, hop_length: usize) -> Result<Self> {
        if n_fft < 2 {
            return Err(Error::invalid("n_fft", "at least 2", n_fft));
        }
        if hop_length == 0 {
            return Err(Error::invalid("hop_length", "at least 1", hop_length));
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        Ok(Stft {
            n_fft,
            hop_length,
            window: hann_window(n_fft),
            fft,
        })
    }

    /// Samples per frame (the FFT length).
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Samples between the starts of consecutive frames.
    pub fn hop_length(&self) -> usize {
        self.hop_length
    }

    /// Frequency bins per frame: `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// The analysis window, `(n_fft,)`.
    pub fn window(&self) -> &[f64] {
        &self.window
    }

    /// The number of centred frames a signal of `len` samples has:
    /// `1 + (len + 2 * (n_fft / 2) - n_fft) / hop_length`, or 0 when the padded signal is
    /// shorter than one frame. For even `n_fft` this is `1 + len / hop_length`.
    // Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L1090-L1100
    pub fn n_frames(&self, len: usize) -> usize {
        let padded = len + 2 * (self.n_fft / 2);
        match padded.checked_sub(self.n_fft) {
            Some(room) => 1 + room / self.hop_length,
            None => 0,
        }
    }

    /// Computes the power spectra of the first `n_frames` centred frames of a signal.
    ///
    /// The signal is `audio` truncated or zero-extended to `signal_len` samples (Whisper's
    /// `pad_or_trim`; pass `audio.len()` to analyse the audio as given), then
    /// reflect-padded by `n_fft / 2` on each side as `np.pad(mode="reflect")` does,
    /// reflecting repeatedly when the signal is shorter than the padding.
    ///
    /// `f(t, power)` is called for `t` in `0..n_frames`, in order, with `power` of shape
    /// `(n_bins,)`, or `None` when every sample of frame `t` is zero (its power is zero).
    ///
    /// Fails with [`Error::InvalidInput`] when `signal_len` is 0 or `n_frames` exceeds
    /// [`Stft::n_frames`]`(signal_len)`. Samples are not validated here.
    pub fn for_each_power_frame(
        &self,
        audio: &[f32],
        signal_len: usize,
        n_frames: usize,
        mut f: impl FnMut(usize, Option<&[f32]>),
    ) -> Result<()> {
        if signal_len == 0 {
            return Err(Error::invalid("STFT signal length", "at least 1 sample", 0));
        }
        let available = self.n_frames(signal_len);
        if n_frames > available {
            return Err(Error::invalid(
                "STFT frame count",
                format!("at most {available} frames for {signal_len} samples"),
                n_frames,
            ));
        }
        let audio = &audio[..audio.len().min(signal_len)];
        let n_fft = self.n_fft;
        let pad = (n_fft / 2) as isize;
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; self.n_bins()];

        for t in 0..n_frames {
            let start = (t * self.hop_length) as isize - pad;
            let all_zero = if start >= 0 && start as usize + n_fft <= signal_len {
                // Interior frame: a slice of `audio`, then zeros past its end.
                let s = start as usize;
                let src = audio.get(s..audio.len().min(s + n_fft)).unwrap_or(&[]);
                let all_zero = src.iter().all(|&x| x == 0.0);
                if !all_zero {
                    for ((y, &x), &w) in frame.iter_mut().zip(src).zip(&self.window) {
                        *y = f64::from(x) * w;
                    }
                    frame[src.len()..].fill(0.0);
                }
                all_zero
            } else {
                // Edge frame: gather through the reflection.
                for (k, y) in frame.iter_mut().enumerate() {
                    let j = reflect(start + k as isize, signal_len);
                    *y = f64::from(audio.get(j).copied().unwrap_or(0.0));
                }
                let all_zero = frame.iter().all(|&x| x == 0.0);
                for (y, &w) in frame.iter_mut().zip(&self.window) {
                    *y *= w;
                }
                all_zero
            };
            if all_zero {
                f(t, None);
                continue;
            }
            self.fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .map_err(|e| Error::invalid("FFT buffers", "lengths planned for n_fft", e))?;
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = power_of(*c);
            }
            f(t, Some(&power));
        }
        Ok(())
    }
}

#[inline]
fn power_of(c: Complex<f64>) -> f32 {
    (c.re * c.re + c.im * c.im) as f32
}

/// Maps index `i` of the infinitely reflect-padded signal of length `n` into `0..n`.
///
/// `np.pad(mode="reflect")` mirrors about the end samples without repeating them
/// (`[a b c] -> c b [a b c] b a`), and for pads longer than the signal keeps mirroring:
/// the result is periodic with period `2 (n - 1)`. A one-sample signal pads with itself.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_window_is_periodic() {
        let w = hann_window(400);
        assert_eq!(w.len(), 400);
        assert_eq!(w[0], 0.0);
        assert_eq!(w[200], 1.0);
        assert!((w[100] - 0.5).abs() < 1e-7);
        // Periodic: symmetric about n/2, w[k] == w[n - k].
        for k in 1..400 {
            assert!((w[k] - w[400 - k]).abs() < 1e-15, "k = {k}");
        }
        // Sum of a periodic Hann window is exactly n/2.
        let sum: f64 = w.iter().sum();
        assert!((sum - 200.0).abs() < 1e-12, "{sum}");
    }

    #[test]
    fn reflect_matches_numpy_pad() {
        // np.pad(np.arange(4), (5, 5), mode="reflect")
        let expected = [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2];
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, expected);
        assert_eq!(reflect(-3, 1), 0);
        assert_eq!(reflect(7, 1), 0);
    }

    #[test]
    fn frame_count_matches_reference_formula() {
        let stft = Stft::new(400, 160).unwrap();
        assert_eq!(stft.n_frames(480_000), 3001);
        assert_eq!(stft.n_frames(0), 1);
        assert_eq!(stft.n_frames(159), 1);
        assert_eq!(stft.n_frames(160), 2);
        let odd = Stft::new(5, 2).unwrap();
        assert_eq!(odd.n_frames(0), 0);
        assert_eq!(odd.n_frames(1), 1);
        assert_eq!(odd.n_frames(4), 2);
    }

    #[test]
    fn power_of_a_bin_centred_sine_is_a_line() {
        // A cosine at exactly bin 10 of a 64-point FFT: after the Hann window the
        // energy sits in bins 9..=11 with amplitudes N/4 * [1/2, 1, 1/2].
        let n = 64;
        let stft = Stft::new(n, 16).unwrap();
        let audio: Vec<f32> = (0..256)
            .map(|i| (2.0 * std::f64::consts::PI * 10.0 * i as f64 / n as f64).cos() as f32)
            .collect();
        let mut frames = Vec::new();
        stft.for_each_power_frame(&audio, audio.len(), 12, |t, p| {
            frames.push((t, p.map(<[f32]>::to_vec)));
        })
        .unwrap();
        assert_eq!(frames.len(), 12);
        // Frame 4 starts at sample 4*16 - 32 = 32: fully interior.
        let p = frames[4].1.as_ref().unwrap();
        let peak = (n as f32 / 4.0).powi(2);
        assert!((p[10] - peak).abs() < 1e-2 * peak, "{}", p[10]);
        assert!((p[9] - peak / 4.0).abs() < 1e-2 * peak, "{}", p[9]);
        assert!((p[11] - peak / 4.0).abs() < 1e-2 * peak, "{}", p[11]);
        for (k, &v) in p.iter().enumerate() {
            if !(9..=11).contains(&k) {
                assert!(v < 1e-6 * peak, "bin {k}: {v}");
            }
        }
    }

    #[test]
    fn zero_frames_skip_the_fft_and_padding_is_zero_extension() {
        let stft = Stft::new(8, 4).unwrap();
        let audio = [1.0f32, -1.0, 0.5, 0.25];
        let mut seen = Vec::new();
        // Zero-extended to 32 samples: frame t covers [4t - 4, 4t + 4), so frames 0
        // (through the reflection) and 1 see the audio and the rest are all zero.
        stft.for_each_power_frame(&audio, 32, stft.n_frames(32), |t, p| {
            seen.push((t, p.is_some()));
        })
        .unwrap();
        assert_eq!(seen.len(), 9);
        assert!(seen[..2].iter().all(|&(_, some)| some));
        assert!(seen[2..].iter().all(|&(_, some)| !some));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(Stft::new(1, 160).is_err());
        assert!(Stft::new(400, 0).is_err());
        let stft = Stft::new(400, 160).unwrap();
        assert!(stft.for_each_power_frame(&[], 0, 0, |_, _| {}).is_err());
        assert!(
            stft.for_each_power_frame(&[0.0; 160], 160, 3, |_, _| {})
                .is_err()
        );
    }
}
