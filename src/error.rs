//! The one error type of the runtime.
//!
//! Every fallible public function returns [`Result`]. Variants carry the context a user
//! needs to fix the problem (a path, what was expected and what was found, the command
//! that installs a missing piece), so that a binary can print `error: {err}` on one line
//! and stop. Nothing a user controls (files, models, audio, flags) may panic.

use std::path::PathBuf;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Audio data is corrupt, truncated, or otherwise undecodable.
    #[error("{}: cannot decode audio: {reason}", path.display())]
    AudioDecode {
        /// The audio file (or `<memory>` for in-memory buffers).
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },

    /// The container or codec is recognised but not supported.
    #[error("{}: unsupported audio format: {what}", path.display())]
    UnsupportedAudio {
        /// The audio file.
        path: PathBuf,
        /// Which format or codec.
        what: String,
    },

    /// The audio holds no samples.
    #[error("{}: audio is empty (0 samples)", path.display())]
    EmptyAudio {
        /// The audio file (or `<memory>`).
        path: PathBuf,
    },

    /// A sample rate outside what any audio device produces (1 Hz ..= 1 MHz).
    #[error("sample rate {sample_rate_hz} Hz is out of range (expected 1..=1000000 Hz)")]
    InvalidSampleRate {
        /// The rejected rate.
        sample_rate_hz: u32,
    },

    /// A NaN or infinite sample: features computed from it would be meaningless.
    #[error("audio sample {index} is not finite ({value})")]
    NonFiniteSample {
        /// Index of the first offending sample.
        index: usize,
        /// Its value.
        value: f32,
    },

    /// An argument or tensor does not have the shape, size or value range required.
    #[error("invalid {what}: expected {expected}, got {got}")]
    InvalidInput {
        /// What was checked (`"n_mels"`, `"input `mel` shape"`, ...).
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },

    /// The ONNX Runtime shared library could not be found.
    #[error(
        "ONNX Runtime library not found (looked at: {}); run `bash models/setup.sh` to fetch it, \
         or set ORT_DYLIB_PATH to a libonnxruntime.so",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    OrtLibraryNotFound {
        /// Every path that was looked at, in order.
        tried: Vec<PathBuf>,
    },

    /// An engine or provider was asked for but not compiled into this build.
    #[error("{what} is not available in this build: rebuild with `--features {feature}`")]
    FeatureDisabled {
        /// What was asked for (`"the ONNX Runtime engine"`).
        what: String,
        /// The cargo feature that enables it.
        feature: String,
    },

    /// An execution provider was requested and could not be registered.
    #[error("execution provider `{provider}` is unavailable: {reason}")]
    ProviderUnavailable {
        /// The provider (`cuda`, `tensorrt`).
        provider: String,
        /// Why, as far as the backend says.
        reason: String,
    },

    /// A model file could not be loaded or optimized by an engine.
    #[error("{}: cannot load model with {engine}: {reason}", path.display())]
    ModelLoad {
        /// The model file (or `<memory>`).
        path: PathBuf,
        /// The engine that tried (`ort`, `tract`).
        engine: &'static str,
        /// What the engine reported.
        reason: String,
    },

    /// A graph run failed inside the engine.
    #[error("{engine}: graph run failed: {reason}")]
    Run {
        /// The engine (`ort`, `tract`).
        engine: &'static str,
        /// What the engine reported.
        reason: String,
    },

    /// A model's ONNX metadata does not satisfy hearken's contract (`export/CONTRACT.md`).
    #[error("{}: model contract: {reason}", path.display())]
    Contract {
        /// The model file or directory.
        path: PathBuf,
        /// Which key is missing or wrong, and why.
        reason: String,
    },

    /// An audio capture device is missing, busy or failed.
    #[error("audio device{}: {reason}", device.as_ref().map(|d| format!(" `{d}`")).unwrap_or_default())]
    Device {
        /// The device asked for, if one was named.
        device: Option<String>,
        /// What went wrong, and what to do about it.
        reason: String,
    },

    /// Work was abandoned on request (a live session dropping a partial decode to catch
    /// up with real time). Callers that ask for cancellation handle it; it never reaches a
    /// user otherwise.
    #[error("cancelled")]
    Cancelled,

    /// A live session's worker thread stopped (it failed earlier, or panicked).
    #[error("live session stopped: {reason}")]
    SessionClosed {
        /// Why, as far as known.
        reason: String,
    },

    /// A `.npy` file is malformed or of an unsupported dtype.
    #[error("{}: invalid .npy: {reason}", path.display())]
    Npy {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub(crate) fn invalid(
        what: impl Into<String>,
        expected: impl Into<String>,
        got: impl std::fmt::Display,
    ) -> Self {
        Error::InvalidInput {
            what: what.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
