//! Model input features: Whisper log-mel spectrograms and Wav2Vec2/HuBERT waveform
//! normalization.
//!
//! Each feature is a port of the Hugging Face `transformers` feature extractor that the
//! model was trained with, and is tested against it within a stated tolerance on
//! committed goldens (`tests/fixtures/gen_features.py`): the numerics follow the
//! reference, not a textbook, down to details such as the dropped last STFT frame.
//!
//! Design:
//!
//! - **Shared, immutable extractors.** [`LogMel`] holds everything that depends only on
//!   its [`MelConfig`] (the Hann window, the mel filterbank, the planned FFT) and is
//!   `Send + Sync`, so one instance serves every stream through an `Arc`. Per-call
//!   buffers are allocated once per call, never per frame.
//! - **Building blocks are public.** [`Stft`] (centred, reflect-padded power spectrum)
//!   and [`MelFilterbank`] (Slaney mel filters for any size) are what [`LogMel`] is made
//!   of, and what another model's front end can reuse.
//! - **`f64` where it shows.** The FFT runs in `f64`, as in the reference: the clamp at
//!   (maximum − 8) keeps mel bins 80 dB below the loudest one, where `f32` FFT rounding is
//!   visible (an `f32` FFT drifted up to 2.5e-5 from transformers on a two-tone golden;
//!   `f64` stays within 3e-7 on all of them, for about the same speed). Power, mel
//!   projection and logarithm are `f32`, whose rounding stays near 1e-7 there. Waveform
//!   statistics are sums over up to millions of samples and are accumulated in `f64`.
//! - **Sparse filterbank.** Each mel filter is non-zero on one contiguous band of FFT
//!   bins, so the mel projection touches about two weights per bin instead of
//!   `n_mels × n_bins`.
//! - **Validation at the edge.** NaN or infinite samples fail with
//!   [`Error::NonFiniteSample`](crate::Error::NonFiniteSample); impossible configurations
//!   and too-short inputs fail with [`Error::InvalidInput`](crate::Error::InvalidInput).
//!   Nothing here panics on user input.
//!
//! Layout: log-mel features are `(n_mels, n_frames)` row-major, the layout Whisper's
//! encoder takes (`input_features[0]` in `transformers`); waveforms are `(n_samples,)`,
//! batches `(batch, n_samples)`.

mod mel;
mod stft;
mod waveform;
mod whisper;

pub use mel::{MelFilterbank, hertz_to_mel_slaney, mel_to_hertz_slaney};
pub use stft::{Stft, hann_window};
pub use waveform::{WaveformConfig, zero_mean_unit_var, zero_mean_unit_var_batch};
pub use whisper::{LogMel, LogMelFeatures, MelConfig, MelPadding};
