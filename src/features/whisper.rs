//! Whisper's log-mel spectrogram.
//!
//! A port of transformers' `WhisperFeatureExtractor` (its numpy path,
//! `_np_extract_fbank_features`), which in turn reproduces OpenAI's
//! `whisper.audio.log_mel_spectrogram`:
//!
//! 1. (padded variant) zero-pad or trim the audio to `n_samples` (30 s);
//! 2. centred STFT, `n_fft = 400`, `hop_length = 160`, periodic Hann window, reflect
//!    padding, power spectrum `|X|²` ([`Stft`]);
//! 3. Slaney mel filterbank, 0 ..= 8000 Hz ([`MelFilterbank`]);
//! 4. drop the last STFT frame, as both references do, so that 30 s give exactly 3000
//!    frames;
//! 5. `log10(max(mel, 1e-10))`, clamp from below at (global maximum − 8), then
//!    `(x + 4) / 4`.
//!
//! The clamp uses the maximum over the whole output, so features are a function of the
//! entire input: the unpadded variant of a long recording is *not* the concatenation of
//! the unpadded variants of its pieces.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{MelFilterbank, Stft};
use crate::engine::Tensor;
use crate::{Error, Result};

/// Mel power below this is raised to it before the logarithm (`1e-10`, i.e. −100 dB).
const MEL_FLOOR: f32 = 1e-10;

/// `log10(MEL_FLOOR)`, exactly as the reference computes it in `f64`.
const LOG_MEL_FLOOR: f32 = -10.0;

/// Dynamic range kept below the loudest value, in log10 units (80 dB).
const DYNAMIC_RANGE: f32 = 8.0;

/// Upper edge of Whisper's mel filters in Hz, fixed by the reference whatever the
/// sampling rate.
const MAX_FREQUENCY_HZ: f64 = 8000.0;

/// Configuration of Whisper's feature extractor, as in a Hugging Face
/// `preprocessor_config.json` (`"feature_extractor_type": "WhisperFeatureExtractor"`).
///
/// Field names are transformers'; missing fields take Whisper's values (see
/// [`MelConfig::default`]) and unknown fields (`mel_filters`, `padding_side`,
/// `processor_class`, ...) are ignored.
// Defaults from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/whisper/feature_extraction_whisper.py#L69-L103
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MelConfig {
    /// Number of mel filters (`n_mels` in OpenAI's code, `num_mel_bins` in the model's
    /// `config.json`): 80, or 128 for large-v3.
    pub feature_size: usize,
    /// Sample rate of the audio, in Hz.
    pub sampling_rate: u32,
    /// Samples between STFT frames (`HOP_LENGTH`).
    pub hop_length: usize,
    /// STFT frame and FFT length (`N_FFT`).
    pub n_fft: usize,
    /// Length of the padded window, in seconds (`CHUNK_LENGTH`).
    pub chunk_length: usize,
    /// Samples in the padded window: `chunk_length * sampling_rate` (`N_SAMPLES`).
    pub n_samples: usize,
    /// Frames in the padded window: `n_samples / hop_length` (`N_FRAMES`).
    pub nb_max_frames: usize,
    /// Value the padded variant pads with; only 0.0 (silence) is supported.
    pub padding_value: f32,
    /// Standard deviation of Gaussian noise added to frames; only 0.0 is supported, since
    /// dithering makes features irreproducible.
    pub dither: f32,
}

impl Default for MelConfig {
    /// Whisper's 80-filter configuration (tiny through large-v2).
    fn default() -> Self {
        MelConfig::whisper(80)
    }
}

impl MelConfig {
    /// Whisper's configuration with `n_mels` filters: 16 kHz, `n_fft` 400, hop 160, 30 s.
    pub fn whisper(n_mels: usize) -> Self {
        MelConfig {
            feature_size: n_mels,
            sampling_rate: 16_000,
            hop_length: 160,
            n_fft: 400,
            chunk_length: 30,
            n_samples: 480_000,
            nb_max_frames: 3000,
            padding_value: 0.0,
            dither: 0.0,
        }
    }

    /// Parses the text of a `preprocessor_config.json`.
    ///
    /// Fails with [`Error::InvalidInput`] when it is not JSON or a field has the wrong
    /// type. Values are checked by [`LogMel::new`].
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            Error::invalid(
                "preprocessor_config.json",
                "a WhisperFeatureExtractor config",
                e,
            )
        })
    }

    /// Reads and parses a `preprocessor_config.json` file.
    ///
    /// Fails with [`Error::Io`] when the file cannot be read, and as
    /// [`MelConfig::from_json`] otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::InvalidInput { expected, got, .. } => Error::InvalidInput {
                what: path.display().to_string(),
                expected,
                got,
            },
            other => other,
        })
    }
}

/// How a window shorter than 30 s is padded before the encoder.
///
/// The default, [`MelPadding::Auto`], pads the log-mel features (faster-whisper's way) for
/// windows of at most [`MelPadding::DEFAULT_FEATURES_UP_TO_S`] seconds of audio and the
/// waveform (OpenAI's and transformers' way) for longer ones: on short real utterances
/// (spoken digits and commands, 0.3-1 s) feature padding recognises more words, while on
/// longer speech the reference padding gives the lower WER (README, "Short utterances").
/// [`MelPadding::Waveform`] gives the same features as OpenAI's `transcribe()` and
/// transformers at every length, for token-exact comparisons with them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MelPadding {
    /// Zero-pad the waveform to 30 s and take the log-mel of all of it, as OpenAI's
    /// `transcribe()` and transformers do (reference-exact).
    Waveform,
    /// Take the log-mel of the audio alone and zero-pad the features, as faster-whisper
    /// does ([`LogMel::compute_feature_padded`]).
    Features,
    /// [`MelPadding::Features`] for a window holding at most `features_up_to_s` seconds
    /// of audio, [`MelPadding::Waveform`] for a longer one.
    Auto {
        /// The longest window, in seconds of audio, padded in the feature domain.
        features_up_to_s: f32,
    },
}

impl MelPadding {
    /// The longest window [`MelPadding::default`] pads in the feature domain, seconds.
    pub const DEFAULT_FEATURES_UP_TO_S: f32 = 2.0;

    /// Whether a window of `n_samples` at `sampling_rate` is padded in the feature domain.
    pub fn pads_features(self, n_samples: usize, sampling_rate: u32) -> bool {
        match self {
            MelPadding::Waveform => false,
            MelPadding::Features => true,
            MelPadding::Auto { features_up_to_s } => {
                n_samples as f64 <= f64::from(features_up_to_s) * f64::from(sampling_rate)
            }
        }
    }
}

impl Default for MelPadding {
    fn default() -> Self {
        MelPadding::Auto {
            features_up_to_s: Self::DEFAULT_FEATURES_UP_TO_S,
        }
    }
}

impl std::str::FromStr for MelPadding {
    type Err = Error;

    /// `waveform`, `features`, `auto` (features up to
    /// [`MelPadding::DEFAULT_FEATURES_UP_TO_S`]) or `auto:SECONDS`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("mel padding", "waveform, features, auto or auto:SECONDS", s);
        match s {
            "waveform" => Ok(MelPadding::Waveform),
            "features" => Ok(MelPadding::Features),
            "auto" => Ok(MelPadding::default()),
            _ => {
                let secs = s.strip_prefix("auto:").ok_or_else(bad)?;
                let features_up_to_s: f32 = secs.parse().map_err(|_| bad())?;
                if !(features_up_to_s.is_finite() && features_up_to_s >= 0.0) {
                    return Err(bad());
                }
                Ok(MelPadding::Auto { features_up_to_s })
            }
        }
    }
}

/// A log-mel spectrogram: `(n_mels, n_frames)`, row-major (mel filter major, time minor).
///
/// Frame `t` is centred on sample `t * hop_length`; values are Whisper's scaled log10
/// power, within `[max - 2, max]` for `max = (log10(peak mel power) + 4) / 4`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMelFeatures {
    n_mels: usize,
    n_frames: usize,
    data: Vec<f32>,
}

impl LogMelFeatures {
    /// Number of mel filters (rows).
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Number of frames (columns).
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    /// The values, `(n_mels, n_frames)` row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The values of mel filter `mel` over time, `(n_frames,)`; `None` when
    /// `mel >= n_mels`.
    pub fn row(&self, mel: usize) -> Option<&[f32]> {
        (mel < self.n_mels).then(|| &self.data[mel * self.n_frames..(mel + 1) * self.n_frames])
    }

    /// The value of filter `mel` at frame `frame`, if both are in range.
    pub fn get(&self, mel: usize, frame: usize) -> Option<f32> {
        if frame >= self.n_frames {
            return None;
        }
        self.row(mel).map(|r| r[frame])
    }

    /// The values, `(n_mels, n_frames)` row-major.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The features as an `f32` tensor of shape `(n_mels, n_frames)`.
    ///
    /// Whisper's encoder takes `(batch, n_mels, n_frames)`: reshape or stack as needed.
    pub fn into_tensor(self) -> Result<Tensor> {
        Tensor::from_f32([self.n_mels, self.n_frames], self.data)
    }
}

/// Whisper's log-mel feature extractor.
///
/// Holds the window, the mel filterbank and the planned FFT for one [`MelConfig`]; it is
/// immutable and `Send + Sync`, so build it once and share it (`Arc<LogMel>`) between
/// streams. Each call allocates its few working buffers once, never per frame.
#[derive(Debug)]
pub struct LogMel {
    config: MelConfig,
    stft: Stft,
    filters: MelFilterbank,
    max_abs_sample: f32,
}

impl LogMel {
    /// Builds the extractor for `config`.
    ///
    /// Fails with [`Error::InvalidInput`] when a count is zero, `n_fft < 2`,
    /// `n_samples != chunk_length * sampling_rate`,
    /// `nb_max_frames != n_samples / hop_length`, the padded window holds no frame, or
    /// `padding_value` or `dither` is non-zero.
    pub fn new(config: MelConfig) -> Result<Self> {
        let c = &config;
        for (what, value) in [
            ("feature_size", c.feature_size),
            ("sampling_rate", c.sampling_rate as usize),
            ("hop_length", c.hop_length),
            ("chunk_length", c.chunk_length),
        ] {
            if value == 0 {
                return Err(Error::invalid(what, "at least 1", value));
            }
        }
        let n_samples = c.chunk_length.checked_mul(c.sampling_rate as usize);
        if n_samples != Some(c.n_samples) {
            return Err(Error::invalid(
                "n_samples",
                format!(
                    "chunk_length * sampling_rate = {} * {}",
                    c.chunk_length, c.sampling_rate
                ),
                c.n_samples,
            ));
        }
        if c.nb_max_frames != c.n_samples / c.hop_length {
            return Err(Error::invalid(
                "nb_max_frames",
                format!("n_samples / hop_length = {}", c.n_samples / c.hop_length),
                c.nb_max_frames,
            ));
        }
        if c.padding_value != 0.0 {
            return Err(Error::invalid(
                "padding_value",
                "0.0 (silence)",
                c.padding_value,
            ));
        }
        if c.dither != 0.0 {
            return Err(Error::invalid(
                "dither",
                "0.0 (hearken does not dither: features must be reproducible)",
                c.dither,
            ));
        }
        let stft = Stft::new(c.n_fft, c.hop_length)?;
        if stft.n_frames(c.n_samples) < 2 {
            return Err(Error::invalid(
                "n_samples",
                format!("at least hop_length = {} (one frame)", c.hop_length),
                c.n_samples,
            ));
        }
        let filters = MelFilterbank::slaney(
            stft.n_bins(),
            c.feature_size,
            0.0,
            MAX_FREQUENCY_HZ,
            c.sampling_rate,
        )?;
        // |X_k| <= Σ|x w| <= A n_fft / 2, and each filter's weights sum to about one bin,
        // so mel power stays below (A n_fft / 2)² = 2^118 < f32::MAX / 1000.
        let max_abs_sample = (2.0f64.powi(60) / c.n_fft as f64) as f32;
        Ok(LogMel {
            config,
            stft,
            filters,
            max_abs_sample,
        })
    }

    /// [`LogMel::new`] for [`MelConfig::whisper`]`(n_mels)`.
    pub fn whisper(n_mels: usize) -> Result<Self> {
        Self::new(MelConfig::whisper(n_mels))
    }

    /// The configuration this extractor was built from.
    pub fn config(&self) -> &MelConfig {
        &self.config
    }

    /// Number of mel filters.
    pub fn n_mels(&self) -> usize {
        self.filters.n_mels()
    }

    /// The mel filterbank.
    pub fn filters(&self) -> &MelFilterbank {
        &self.filters
    }

    /// The STFT.
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// The largest sample magnitude accepted: `2^60 / n_fft` (≈ 2.9e15 for Whisper).
    ///
    /// Audio is nominally within ±1; beyond this bound the `f32` power spectrum could
    /// overflow, so such input is rejected rather than turned into infinities.
    pub fn max_abs_sample(&self) -> f32 {
        self.max_abs_sample
    }

    /// The number of frames [`LogMel::compute_unpadded`] gives for `n_samples` samples:
    /// `n_samples / hop_length` (for even `n_fft`; in general one less than
    /// [`Stft::n_frames`]).
    pub fn n_frames_unpadded(&self, n_samples: usize) -> usize {
        self.stft.n_frames(n_samples).saturating_sub(1)
    }

    /// Whisper's encoder input: the log-mel spectrogram of `audio` zero-padded or trimmed
    /// to `n_samples` (30 s).
    ///
    /// `audio`: `(n_samples_in,)` mono at `sampling_rate`, any length including 0 (which
    /// is 30 s of silence). Returns `(n_mels, nb_max_frames)` = `(n_mels, 3000)`, equal to
    /// `WhisperFeatureExtractor(feature_size=n_mels)(audio).input_features[0]` and to
    /// OpenAI's `log_mel_spectrogram(pad_or_trim(audio), n_mels)`.
    ///
    /// Samples past `n_samples` are ignored, not validated. Fails with
    /// [`Error::NonFiniteSample`] for a NaN or infinite sample, and with
    /// [`Error::InvalidInput`] for one larger than [`LogMel::max_abs_sample`].
    // Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/whisper/feature_extraction_whisper.py#L300-L324
    // and https://github.com/openai/whisper/blob/v20240930/whisper/audio.py#L65-L88
    pub fn compute_padded(&self, audio: &[f32]) -> Result<LogMelFeatures> {
        let _span =
            tracing::debug_span!("logmel", n_samples = audio.len(), padded = true).entered();
        let n_samples = self.config.n_samples;
        let audio = &audio[..audio.len().min(n_samples)];
        self.check_samples(audio)?;
        let n_frames = self.stft.n_frames(n_samples) - 1;
        self.log_mel(audio, n_samples, n_frames)
    }

    /// Whisper's encoder input padded as `padding` says: [`LogMel::compute_padded`] or
    /// [`LogMel::compute_feature_padded`].
    pub fn compute_window(&self, audio: &[f32], padding: MelPadding) -> Result<LogMelFeatures> {
        if padding.pads_features(audio.len(), self.config.sampling_rate) {
            self.compute_feature_padded(audio)
        } else {
            self.compute_padded(audio)
        }
    }

    /// faster-whisper's encoder input: the log-mel spectrogram of `audio` followed by
    /// `hop_length` zero samples (clamped at its own maximum − 8), cut to the audio's
    /// `len / hop_length` content frames and padded to `nb_max_frames` with zeros in the
    /// feature domain, rather than computed over 30 s of zero-padded waveform. The padded
    /// frames then hold 0.0 (a mel power of 1e-4) instead of the log of silence at the
    /// clamp floor, which changes what the encoder sees most for short clips.
    ///
    /// `audio` past `n_samples` is ignored. Fails as [`LogMel::compute_padded`].
    // Ported from https://github.com/SYSTRAN/faster-whisper/blob/v1.2.1/faster_whisper/feature_extractor.py#L198-L230
    // and https://github.com/SYSTRAN/faster-whisper/blob/v1.2.1/faster_whisper/transcribe.py#L1170-L1180
    pub fn compute_feature_padded(&self, audio: &[f32]) -> Result<LogMelFeatures> {
        let hop = self.config.hop_length.max(1);
        let n_out = self.config.nb_max_frames;
        let audio = &audio[..audio.len().min(self.config.n_samples)];
        self.check_samples(audio)?;
        let signal_len = audio.len() + hop;
        let n_frames = self.n_frames_unpadded(signal_len).max(1);
        let full = self.log_mel(audio, signal_len, n_frames)?;
        let content = (audio.len() / hop).min(n_frames).min(n_out);
        let n_mels = full.n_mels;
        let mut data = vec![0.0f32; n_mels * n_out];
        for m in 0..n_mels {
            data[m * n_out..m * n_out + content]
                .copy_from_slice(&full.data[m * n_frames..m * n_frames + content]);
        }
        Ok(LogMelFeatures {
            n_mels,
            n_frames: n_out,
            data,
        })
    }

    /// The log-mel spectrogram of `audio` as given, with no padding to 30 s (for long-form
    /// and streaming front ends).
    ///
    /// `audio`: `(n_samples,)` mono at `sampling_rate`, at least `hop_length` samples
    /// (160; one more for odd `n_fft`). Returns `(n_mels, n_samples / hop_length)`
    /// ([`LogMel::n_frames_unpadded`]), equal to
    /// `WhisperFeatureExtractor(...)(audio, padding="do_not_pad", truncation=False)
    /// .input_features[0]` and to OpenAI's `log_mel_spectrogram(audio, n_mels)`. The
    /// clamp at (maximum − 8) is over this output only.
    ///
    /// Fails with [`Error::InvalidInput`] for shorter audio (it has no frame, and the
    /// reference fails taking the maximum of nothing), and as
    /// [`LogMel::compute_padded`] for bad samples.
    // Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/whisper/feature_extraction_whisper.py#L105-L133
    pub fn compute_unpadded(&self, audio: &[f32]) -> Result<LogMelFeatures> {
        let _span =
            tracing::debug_span!("logmel", n_samples = audio.len(), padded = false).entered();
        let n_frames = self.n_frames_unpadded(audio.len());
        if n_frames == 0 {
            let min = self.config.hop_length + self.config.n_fft % 2;
            return Err(Error::invalid(
                "audio length for an unpadded log-mel",
                format!("at least {min} samples (one frame)"),
                audio.len(),
            ));
        }
        self.check_samples(audio)?;
        self.log_mel(audio, audio.len(), n_frames)
    }

    fn check_samples(&self, audio: &[f32]) -> Result<()> {
        const CHUNK: usize = 256;
        let limit = self.max_abs_sample;
        for (c, chunk) in audio.chunks(CHUNK).enumerate() {
            // Branch-free over the chunk, so that the common case vectorizes.
            let bad = chunk
                .iter()
                .fold(false, |bad, &x| bad | x.is_nan() | (x.abs() > limit));
            if !bad {
                continue;
            }
            for (i, &x) in chunk.iter().enumerate() {
                let index = c * CHUNK + i;
                if !x.is_finite() {
                    return Err(Error::NonFiniteSample { index, value: x });
                }
                if x.abs() > limit {
                    return Err(Error::invalid(
                        format!("audio sample {index}"),
                        format!("a magnitude of at most {limit:e} (audio is nominally within ±1)"),
                        x,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Steps 2 to 5 of the module docs on `audio` extended to `signal_len` samples.
    /// `n_frames >= 1` and within the STFT's frame count (both callers ensure it).
    // Ported from https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/models/whisper/feature_extraction_whisper.py#L118-L130
    // (spectrogram: https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/audio_utils.py#L1128-L1152)
    // and https://github.com/openai/whisper/blob/v20240930/whisper/audio.py#L147-L156
    fn log_mel(&self, audio: &[f32], signal_len: usize, n_frames: usize) -> Result<LogMelFeatures> {
        let n_mels = self.filters.n_mels();
        let mut data = vec![0.0f32; n_mels * n_frames];
        let mut mel = vec![0.0f32; n_mels];
        self.stft
            .for_each_power_frame(audio, signal_len, n_frames, |t, power| {
                // Column t of the (n_mels, n_frames) output.
                let column = data.iter_mut().skip(t).step_by(n_frames);
                match power {
                    Some(power) => {
                        self.filters.apply_unchecked_len(power, &mut mel);
                        // A separate pass so that the logarithms vectorize.
                        for m in &mut mel {
                            let log = log10_positive(m.max(MEL_FLOOR));
                            *m = if *m <= MEL_FLOOR { LOG_MEL_FLOOR } else { log };
                        }
                        for (y, &m) in column.zip(&mel) {
                            *y = m;
                        }
                    }
                    None => column.for_each(|y| *y = LOG_MEL_FLOOR),
                }
            })?;
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - DYNAMIC_RANGE;
        for y in &mut data {
            *y = (y.max(floor) + 4.0) / 4.0;
        }
        Ok(LogMelFeatures {
            n_mels,
            n_frames,
            data,
        })
    }
}

/// `log10(x)` for positive, normal, finite `x`, within 2 ulp of the correctly rounded
/// value; branch-free, so that a loop over it vectorizes (libm's `log10f` is a call per
/// value and was a third of the extractor's time).
///
/// The natural logarithm is Cephes' `logf` (S. L. Moshier, Cephes Math Library,
/// `single/logf.c`, <https://www.netlib.org/cephes/>): `x = m · 2^e` with
/// `m ∈ [√½, √2)`, then a minimax polynomial in `m − 1`.
#[inline(always)]
fn log10_positive(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1).
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let e = (e - i32::from(small)) as f32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    // Cephes' coefficients, as the f32 values they round to.
    let mut y = 0.070_376_836_f32;
    y = y * m - 0.115_146_1;
    y = y * m + 0.116_769_984;
    y = y * m - 0.124_201_41;
    y = y * m + 0.142_493_23;
    y = y * m - 0.166_680_57;
    y = y * m + 0.200_007_14;
    y = y * m - 0.249_999_94;
    y = y * m + 0.333_333_3;
    y *= m * z;
    // ln 2 = 0.693359375 - 2.12194440e-4 (to f32), split so that e · ln 2 keeps its
    // high part exact.
    y += -0.000_212_194_44 * e;
    y += -0.5 * z;
    let ln = m + y + 0.693_359_4 * e;
    ln * std::f32::consts::LOG10_E
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn mel_padding_parses_and_picks_by_length() {
        let auto: MelPadding = "auto".parse().unwrap();
        assert_eq!(auto, MelPadding::default());
        assert_eq!(
            "auto:1.5".parse::<MelPadding>().unwrap(),
            MelPadding::Auto {
                features_up_to_s: 1.5
            }
        );
        for bad in ["", "auto:", "auto:-1", "auto:nan", "wave", "features:2"] {
            assert!(bad.parse::<MelPadding>().is_err(), "{bad:?}");
        }
        let limit = (MelPadding::DEFAULT_FEATURES_UP_TO_S * 16_000.0) as usize;
        assert!(auto.pads_features(limit, 16_000));
        assert!(!auto.pads_features(limit + 1, 16_000));
        assert!(MelPadding::Features.pads_features(480_000, 16_000));
        assert!(!MelPadding::Waveform.pads_features(1, 16_000));

        // compute_window follows the choice: a short window gets zeros after its content.
        let lm = LogMel::whisper(80).unwrap();
        let audio: Vec<f32> = (0..8_000).map(|i| (i as f32 * 0.05).sin() * 0.1).collect();
        let short = lm.compute_window(&audio, auto).unwrap();
        assert_eq!(short, lm.compute_feature_padded(&audio).unwrap());
        let long_audio: Vec<f32> = audio.iter().copied().cycle().take(limit + 160).collect();
        let long = lm.compute_window(&long_audio, auto).unwrap();
        assert_eq!(long, lm.compute_padded(&long_audio).unwrap());
    }

    #[test]
    fn fast_log10_is_accurate() {
        let mut worst_ulps = 0.0f64;
        // Every 997th f32 from the smallest normal to f32::MAX.
        let mut bits = f32::MIN_POSITIVE.to_bits();
        while bits < f32::MAX.to_bits() {
            let x = f32::from_bits(bits);
            let want = f64::from(x).log10();
            let got = f64::from(log10_positive(x));
            let ulp = f64::from(f32::EPSILON) * want.abs().max(f64::from(f32::MIN_POSITIVE));
            // Near x = 1 the result is tiny; bound the absolute error there instead.
            let ulps = ((got - want).abs() / ulp).min((got - want).abs() / 1e-8);
            worst_ulps = worst_ulps.max(ulps);
            bits += 997;
        }
        assert!(worst_ulps <= 2.0, "worst error {worst_ulps} ulp");
        assert_eq!(log10_positive(1.0), 0.0);
        assert!((log10_positive(1e-10) + 10.0).abs() <= 2.0 * 10.0 * f32::EPSILON);
    }

    #[test]
    fn extractor_is_shareable() {
        assert_send_sync::<LogMel>();
        assert_send_sync::<LogMelFeatures>();
    }

    #[test]
    fn config_reads_hf_preprocessor_config() {
        // openai/whisper-large-v3's preprocessor_config.json, abridged (its `mel_filters`
        // table is dropped: unknown fields are ignored).
        let json = r#"{
            "chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor",
            "feature_size": 128, "hop_length": 160, "n_fft": 400, "n_samples": 480000,
            "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
            "processor_class": "WhisperProcessor", "return_attention_mask": false,
            "sampling_rate": 16000, "mel_filters": [[0.0, 0.1]]
        }"#;
        let c = MelConfig::from_json(json).unwrap();
        assert_eq!(c, MelConfig::whisper(128));
        assert_eq!(MelConfig::from_json("{}").unwrap(), MelConfig::default());
        assert!(MelConfig::from_json(r#"{"feature_size": "eighty"}"#).is_err());
        assert!(MelConfig::from_file("/nonexistent/preprocessor_config.json").is_err());
    }

    #[test]
    fn rejects_inconsistent_configs() {
        let bad = [
            MelConfig {
                feature_size: 0,
                ..MelConfig::default()
            },
            MelConfig {
                hop_length: 0,
                ..MelConfig::default()
            },
            MelConfig {
                n_fft: 1,
                ..MelConfig::default()
            },
            MelConfig {
                n_samples: 160_000,
                ..MelConfig::default()
            },
            MelConfig {
                nb_max_frames: 1500,
                ..MelConfig::default()
            },
            MelConfig {
                dither: 1e-4,
                ..MelConfig::default()
            },
            MelConfig {
                padding_value: 1.0,
                ..MelConfig::default()
            },
            MelConfig {
                sampling_rate: 0,
                ..MelConfig::default()
            },
        ];
        for c in bad {
            let err = LogMel::new(c.clone()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{c:?}: {err}");
        }
    }

    #[test]
    fn silence_is_constant_minus_one_and_a_half() {
        // log10(1e-10) = -10 everywhere, the clamp at -18 does nothing, (-10 + 4) / 4.
        let lm = LogMel::whisper(80).unwrap();
        let f = lm.compute_padded(&[]).unwrap();
        assert_eq!((f.n_mels(), f.n_frames()), (80, 3000));
        assert!(f.as_slice().iter().all(|&x| x == -1.5));
        let f = lm.compute_unpadded(&[0.0; 1600]).unwrap();
        assert_eq!((f.n_mels(), f.n_frames()), (80, 10));
        assert!(f.as_slice().iter().all(|&x| x == -1.5));
    }

    #[test]
    fn a_tone_lights_up_its_mel_band_and_the_clamp_holds() {
        let lm = LogMel::whisper(80).unwrap();
        // 1 kHz at 0.5 amplitude for 1 s.
        let audio: Vec<f32> = (0..16_000)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16_000.0).sin()) as f32
            })
            .collect();
        let f = lm.compute_unpadded(&audio).unwrap();
        assert_eq!(f.n_frames(), 100);
        let max = f.as_slice().iter().copied().fold(f32::MIN, f32::max);
        let min = f.as_slice().iter().copied().fold(f32::MAX, f32::min);
        assert!((max - min - 2.0).abs() < 1e-6, "range {min} ..= {max}");
        // The loudest filter at a middle frame is the one whose band holds 1 kHz
        // (bin 25): its centre is the nearest to 1000 Hz.
        let loudest = (0..80)
            .max_by(|&a, &b| f.get(a, 50).unwrap().total_cmp(&f.get(b, 50).unwrap()))
            .unwrap();
        let (first, w) = lm.filters().band(loudest).unwrap();
        assert!((first..first + w.len()).contains(&25), "filter {loudest}");
        // The padded variant has the same frames where the audio is, then the floor.
        let p = lm.compute_padded(&audio).unwrap();
        assert_eq!(p.get(loudest, 50), f.get(loudest, 50));
        let tail = p.get(0, 2999).unwrap();
        assert!((tail - (max - 2.0)).abs() < 1e-6, "{tail} vs {max}");
    }

    #[test]
    fn validates_samples_and_length() {
        let lm = LogMel::whisper(80).unwrap();
        let mut audio = vec![0.1f32; 1000];
        audio[700] = f32::NAN;
        match lm.compute_padded(&audio) {
            Err(Error::NonFiniteSample { index: 700, value }) => assert!(value.is_nan()),
            other => panic!("{other:?}"),
        }
        audio[700] = f32::NEG_INFINITY;
        assert!(matches!(
            lm.compute_unpadded(&audio),
            Err(Error::NonFiniteSample { index: 700, .. })
        ));
        audio[700] = 1e17;
        assert!(matches!(
            lm.compute_padded(&audio),
            Err(Error::InvalidInput { .. })
        ));
        // Past 30 s, samples are ignored by the padded variant.
        let mut long = vec![0.0f32; 480_001];
        long[480_000] = f32::NAN;
        assert!(lm.compute_padded(&long).is_ok());
        assert!(lm.compute_unpadded(&long).is_err());
        // Too short for a frame.
        assert!(matches!(
            lm.compute_unpadded(&[0.1; 159]),
            Err(Error::InvalidInput { .. })
        ));
        assert_eq!(lm.compute_unpadded(&[0.1; 160]).unwrap().n_frames(), 1);
        assert!(lm.compute_unpadded(&[]).is_err());
    }

    #[test]
    fn features_accessors_and_tensor() {
        let lm = LogMel::whisper(80).unwrap();
        let f = lm.compute_unpadded(&[0.25; 800]).unwrap();
        assert_eq!(f.row(79).map(<[f32]>::len), Some(5));
        assert_eq!(f.row(80), None);
        assert_eq!(f.get(0, 5), None);
        let t = f.into_tensor().unwrap();
        assert_eq!(t.shape(), &[80, 5]);
    }
}
