//! Audio decoding and resampling: bytes → [`Pcm`] (mono `f32`) → 16 kHz.
//!
//! Every model hearken runs takes mono `f32` samples at [`SAMPLE_RATE_HZ`]; this module is
//! the one place that turns whatever a user has (a WAV from a recorder, a FLAC, an MP3
//! podcast, an OGG/Vorbis voice note, a live microphone stream) into that.
//!
//! Design:
//!
//! - **Decoding is symphonia.** It is pure Rust (no C library to find on a device), reads
//!   WAV, FLAC, MP3 and OGG/Vorbis behind one probe-by-content API, and returns errors
//!   instead of crashing on malformed input. Decoding yields mono at the file's *native*
//!   rate: channels are averaged, nothing else is done, so [`decode_file`] is a faithful
//!   view of the file and the resampling step stays separate and testable.
//! - **Resampling is rubato's windowed-sinc resampler** (256 taps, Blackman-Harris²
//!   window, cutoff ≈ 0.95 of the lower Nyquist). For the usual rate pairs (8, 11.025,
//!   22.05, 32, 44.1, 48, 96 kHz → 16 kHz) the ratio is a small fraction and the filter
//!   table holds exactly the polyphase branches needed, so every output sample is one
//!   exact dot product; other ratios fall back to cubic interpolation between 256
//!   oversampled branches. The filter delay is removed exactly, so output sample `j` sits
//!   at input time `j * from / to` and the output has `round(len * to / from)` samples.
//! - **Offline equals streaming.** [`resample`] is [`StreamResampler`] fed in one push:
//!   the streaming resampler re-chunks its input into fixed blocks internally, so any
//!   chunking of a live stream gives bit-identical output to the offline path.
//! - **Validation at the edge.** Sample rates outside 1 Hz ..= 1 MHz, NaN/∞ samples and
//!   empty audio are rejected here with an [`Error`](crate::Error) naming the problem, so
//!   later stages can assume clean input.

#[cfg(feature = "mic")]
pub mod capture;
mod decode;
mod resample;

pub use decode::{decode_bytes, decode_file};
pub use resample::{StreamResampler, resample};

use std::path::Path;

use crate::{Error, Result};

/// The sample rate every hearken model takes, in Hz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// The lowest sample rate accepted anywhere, in Hz.
pub const MIN_SAMPLE_RATE_HZ: u32 = 1;

/// The highest sample rate accepted anywhere, in Hz.
pub const MAX_SAMPLE_RATE_HZ: u32 = 1_000_000;

/// Mono audio: `samples` is `(n_samples,)` at `sample_rate_hz`.
///
/// Samples are nominally in `[-1, 1]`: integer sources map full scale to ±1 exactly
/// (`i16::MIN` → `-1.0`), while float sources are passed through unclipped, since values
/// slightly over full scale are legal there and clipping would distort them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// The samples, one per time step: `(n_samples,)`.
    pub samples: Vec<f32>,
    /// Samples per second, in Hz.
    pub sample_rate_hz: u32,
}

impl Pcm {
    /// Wraps `samples` at `sample_rate_hz`, checking the rate and that every sample is finite.
    pub fn new(samples: Vec<f32>, sample_rate_hz: u32) -> Result<Self> {
        check_sample_rate(sample_rate_hz)?;
        check_samples(&samples)?;
        Ok(Pcm {
            samples,
            sample_rate_hz,
        })
    }

    /// The number of samples.
    pub fn n_samples(&self) -> usize {
        self.samples.len()
    }

    /// `true` when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The duration in seconds (0 when the rate is 0, which [`Pcm::new`] never allows).
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate_hz == 0 {
            0.0
        } else {
            self.samples.len() as f64 / f64::from(self.sample_rate_hz)
        }
    }
}

/// Decodes an audio file and resamples it to [`SAMPLE_RATE_HZ`]: the usual way in.
///
/// Returns mono `(n_samples,)` at 16 kHz, with `n_samples = round(n_native * 16000 / rate)`.
/// Errors are those of [`decode_file`] and [`resample`].
pub fn load(path: impl AsRef<Path>) -> Result<Pcm> {
    let pcm = decode_file(path)?;
    resample(&pcm, SAMPLE_RATE_HZ)
}

/// Checks that every sample is finite.
///
/// Fails with [`Error::NonFiniteSample`] giving the index and value of the first NaN or
/// infinity.
pub fn check_samples(samples: &[f32]) -> Result<()> {
    match samples.iter().position(|s| !s.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFiniteSample {
            index,
            value: samples[index],
        }),
    }
}

/// Checks that a sample rate is within [`MIN_SAMPLE_RATE_HZ`] ..= [`MAX_SAMPLE_RATE_HZ`].
///
/// Fails with [`Error::InvalidSampleRate`] otherwise.
pub fn check_sample_rate(sample_rate_hz: u32) -> Result<()> {
    if (MIN_SAMPLE_RATE_HZ..=MAX_SAMPLE_RATE_HZ).contains(&sample_rate_hz) {
        Ok(())
    } else {
        Err(Error::InvalidSampleRate { sample_rate_hz })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_samples_reports_first_non_finite() {
        assert!(check_samples(&[0.0, 1.0, -1.0]).is_ok());
        assert!(check_samples(&[]).is_ok());
        match check_samples(&[0.0, f32::INFINITY, f32::NAN]) {
            Err(Error::NonFiniteSample { index: 1, value }) => assert!(value.is_infinite()),
            other => panic!("unexpected {other:?}"),
        }
        match check_samples(&[0.5, 0.25, f32::NAN]) {
            Err(Error::NonFiniteSample { index: 2, value }) => assert!(value.is_nan()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sample_rate_bounds() {
        assert!(check_sample_rate(1).is_ok());
        assert!(check_sample_rate(16_000).is_ok());
        assert!(check_sample_rate(1_000_000).is_ok());
        for bad in [0, 1_000_001, u32::MAX] {
            assert!(matches!(
                check_sample_rate(bad),
                Err(Error::InvalidSampleRate { sample_rate_hz }) if sample_rate_hz == bad
            ));
        }
    }

    #[test]
    fn pcm_new_validates() {
        assert!(Pcm::new(vec![0.0; 4], 0).is_err());
        assert!(Pcm::new(vec![f32::NAN], 16_000).is_err());
        let pcm = Pcm::new(vec![0.0; 8000], 16_000).unwrap();
        assert_eq!(pcm.n_samples(), 8000);
        assert!((pcm.duration_s() - 0.5).abs() < 1e-12);
    }
}
