//! Verification gates: is an export fit to ship?
//!
//! An export is only as good as its agreement with the model it came from, on the engines
//! that will run it. `hearken-export convert` refuses to write a model that fails these
//! gates, and training calls the same functions after fine-tuning, so that a trained
//! model is held to exactly the bar a converted one is:
//!
//! - [`parity`]: f32 and f16 exports against the candle model (the reference) and ONNX
//!   Runtime against tract, on logits, within [`WHISPER_TOLERANCE`] or
//!   [`WAV2VEC2_TOLERANCE`];
//! - [`int8`]: int8 exports, whose logits move by a few percent, on what decoding reads
//!   instead: Whisper's greedy tokens, Wav2Vec2 / HuBERT's frame arg-max and labels;
//! - [`wer_gate`]: the int8 Whisper export against an f32 export of the same checkpoint,
//!   by corpus WER on a manifest ([`manifest`]), through hearken's own pipeline.
//!
//! Each gate measures and returns a report, whose `Display` is the line `convert`
//! prints and whose `check` turns a failed gate into [`Error::GateFailed`]: the caller
//! sees what was measured either way, and decides whether a failure is fatal. Nothing
//! here has a default input compiled in: the audio, the manifest and the tolerances are
//! the caller's (with the constants below as the defaults `convert` uses).

pub mod int8;
pub mod manifest;
pub mod parity;
pub mod wer_gate;

use std::sync::Arc;

use hearken::engine::{Engine, EngineKind, OrtOptions, TractOptions};

pub use int8::{
    WAV2VEC2_INT8_MIN_FRAME_AGREEMENT, Wav2Vec2Int8Parity, WhisperInt8Parity, wav2vec2_int8_parity,
    whisper_int8_parity,
};
pub use manifest::{ManifestEntry, read_manifest};
pub use parity::{
    WAV2VEC2_F16_RELATIVE_TOLERANCE, WAV2VEC2_TOLERANCE, WHISPER_TOLERANCE, Wav2Vec2Batch,
    Wav2Vec2Parity, WhisperParity, WhisperProbe, wav2vec2_candle_logits, wav2vec2_parity,
    wav2vec2_synthetic_audio, whisper_logits_diff, whisper_parity, whisper_synthetic_audio,
};
pub use wer_gate::{MAX_INT8_WER_INCREASE_POINTS, WerComparison, int8_wer};

use crate::error::{Error, Result, runtime_err};

/// The engines a gate runs an export on: tract, which every build has, and ONNX Runtime
/// when its shared library can be found.
#[derive(Clone)]
pub struct Engines {
    /// tract.
    pub tract: Arc<dyn Engine>,
    /// ONNX Runtime, or `None` when its library is absent.
    pub ort: Option<Arc<dyn Engine>>,
}

impl Engines {
    /// tract, and ONNX Runtime unless its library is absent (then [`Engines::ort`] is
    /// `None` and the gates check tract only).
    ///
    /// Fails with [`Error::Runtime`] when an engine exists but cannot be built.
    pub fn available() -> Result<Self> {
        let ort = match EngineKind::Ort(OrtOptions::default()).build() {
            Ok(e) => Some(e),
            Err(hearken::Error::OrtLibraryNotFound { .. }) => None,
            Err(e) => return Err(runtime_err("building the ONNX Runtime engine")(e)),
        };
        Ok(Engines {
            ort,
            ..Self::tract_only()?
        })
    }

    /// tract alone.
    ///
    /// Fails with [`Error::Runtime`] when it cannot be built.
    pub fn tract_only() -> Result<Self> {
        Ok(Engines {
            tract: EngineKind::Tract(TractOptions::default())
                .build()
                .map_err(runtime_err("building the tract engine"))?,
            ort: None,
        })
    }

    /// tract, then ONNX Runtime when present.
    pub fn all(&self) -> impl Iterator<Item = &dyn Engine> {
        std::iter::once(self.tract.as_ref()).chain(self.ort.as_deref())
    }

    /// ONNX Runtime when present, else tract: the engine hearken runs by default.
    pub fn preferred(&self) -> &dyn Engine {
        self.ort.as_deref().unwrap_or(self.tract.as_ref())
    }
}

/// The largest `|a - b|` over two sets of logits; NaN when either holds a NaN, so that a
/// NaN fails every tolerance instead of hiding behind `f32::max`.
///
/// Fails with [`Error::InvalidInput`] when the lengths differ (`what` names the two).
pub fn max_abs_diff(what: &str, a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        return Err(Error::InvalidInput {
            what: format!("{what} logits"),
            expected: format!("{} values", a.len()),
            got: format!("{} values", b.len()),
        });
    }
    Ok(a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        }))
}

/// Whether `d` is within `tolerance`; NaN is not, hence "not within" rather than "above".
pub fn within(d: f32, tolerance: f32) -> bool {
    d.partial_cmp(&tolerance).is_some_and(|o| o.is_le())
}

/// Index of the largest value (the lowest on ties, as the candle reference's greedy).
pub(crate) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_fails_every_tolerance() {
        let d = max_abs_diff("a vs b", &[0.0, f32::NAN, 1.0], &[0.0, 0.0, 1.0]).unwrap();
        assert!(d.is_nan());
        assert!(!within(d, f32::INFINITY));
        let d = max_abs_diff("a vs b", &[0.0, 2.0], &[0.5, 1.0]).unwrap();
        assert_eq!(d, 1.0);
        assert!(within(d, 1.0) && !within(d, 0.99));
        assert!(matches!(
            max_abs_diff("a vs b", &[0.0], &[]),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
