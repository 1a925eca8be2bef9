//! The int8 WER gate: does quantization cost words?
//!
//! Greedy tokens on one probe window ([`super::int8`]) catch a broken int8 graph, not a
//! slow drift in accuracy. So the int8 Whisper export and an f32 export of the same
//! checkpoint both transcribe a manifest through hearken's own pipeline (the model
//! directory loader, long-form decoding, greedy, English: what `hearken eval` runs by
//! default, so that its numbers compare with these), and the corpus WER may rise by at
//! most [`MAX_INT8_WER_INCREASE_POINTS`].

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{self, AtomicUsize};

use hearken::engine::Engine;
use hearken::offline::TranscribeOptions;
use hearken::offline::whisper::{Language, WhisperOptions};
use hearken::text::{EnglishTextNormalizer, ErrorRate, wer};

use super::manifest::ManifestEntry;
use crate::error::{Error, Result, runtime_err};
use crate::onnx::Precision;
use crate::whisper::WhisperCheckpoint;
use crate::whisper::onnx::{WhisperOnnx, export, write_model_dir};

/// Largest rise of the corpus WER, in percentage points, from an f32 Whisper export to
/// its int8 export (the bar set for int8 in the issue).
pub const MAX_INT8_WER_INCREASE_POINTS: f64 = 1.0;

/// One utterance transcribed by one of the two exports, as reported while the gate runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtteranceWer<'a> {
    /// `fp32` or `int8`.
    pub precision: &'a str,
    /// The utterance's audio.
    pub audio: &'a Path,
    /// Word errors (substitutions, insertions, deletions) after normalization.
    pub errors: usize,
    /// Words of the normalized reference.
    pub n_ref: usize,
}

/// What the int8 WER gate measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WerComparison {
    /// Utterances transcribed (by each export).
    pub n_utterances: usize,
    /// Errors and reference words of the f32 export, over the corpus.
    pub fp32: ErrorRate,
    /// Errors and reference words of the int8 export, over the corpus.
    pub int8: ErrorRate,
    /// The engine both ran on.
    pub engine: String,
    /// The most the WER may rise, in percentage points.
    pub max_increase_points: f64,
}

impl WerComparison {
    /// Corpus WER of the f32 export, in percent.
    pub fn fp32_percent(&self) -> f64 {
        100.0 * self.fp32.rate()
    }

    /// Corpus WER of the int8 export, in percent.
    pub fn int8_percent(&self) -> f64 {
        100.0 * self.int8.rate()
    }

    /// int8 minus f32 WER, in percentage points.
    pub fn increase_points(&self) -> f64 {
        self.int8_percent() - self.fp32_percent()
    }

    /// Whether the WER rose by at most [`max_increase_points`](Self::max_increase_points).
    /// Only a measured rise fails: a NaN (no reference words, yet errors, in both
    /// exports) does not.
    pub fn passed(&self) -> bool {
        self.increase_points()
            .partial_cmp(&self.max_increase_points)
            != Some(Ordering::Greater)
    }

    /// `Ok` when [`passed`](Self::passed), else [`Error::GateFailed`].
    pub fn check(&self) -> Result<()> {
        if self.passed() {
            return Ok(());
        }
        Err(Error::GateFailed {
            gate: "int8 WER".into(),
            engine: None,
            reason: format!(
                "int8 raises the WER by {:.2} points (more than {})",
                self.increase_points(),
                self.max_increase_points
            ),
        })
    }
}

impl fmt::Display for WerComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WER fp32 {:.2}% -> int8 {:.2}% ({:+.2} points) over {} utterances, {} words ({})",
            self.fp32_percent(),
            self.int8_percent(),
            self.increase_points(),
            self.n_utterances,
            self.fp32.n_ref,
            self.engine
        )
    }
}

/// Removes a directory tree when dropped (best effort): the gate's temporary models.
struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, not yet created, directory under the system's temporary folder.
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, atomic::Ordering::Relaxed);
        TempDir(std::env::temp_dir().join(format!("hearken-export-wer-{}-{n}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Nothing to do about a failure here but leave the files in the temp folder.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The int8 WER gate: transcribes `entries` with an f32 export of `ckpt` and with its
/// int8 export `int8`, on `engine` (`convert` uses ONNX Runtime when present, else
/// tract), and compares the corpus WERs after OpenAI's English text normalization.
/// `on_utterance` hears of each utterance as it is scored.
///
/// The models are written, with the tokenizer files of the checkpoint directory `src`
/// (see [`write_model_dir`]), to a temporary directory removed afterwards, and loaded
/// as the runtime loads any model. Every entry's audio must exist (filter a manifest
/// with [`ManifestEntry::audio`]`.is_file()` first).
///
/// Returns the measurement, held to [`MAX_INT8_WER_INCREASE_POINTS`]; call
/// [`WerComparison::check`] to fail on it. Fails with [`Error::InvalidInput`] for no
/// entries, as [`export`] does, [`Error::Io`] when the models cannot be written, and
/// [`Error::Runtime`] when a model cannot be loaded (`src` without `tokenizer.json`, for
/// one) or an utterance cannot be decoded or transcribed.
pub fn int8_wer(
    ckpt: &WhisperCheckpoint,
    int8: &WhisperOnnx,
    src: &Path,
    entries: &[ManifestEntry],
    engine: &dyn Engine,
    on_utterance: &mut dyn FnMut(&UtteranceWer<'_>),
) -> Result<WerComparison> {
    if entries.is_empty() {
        return Err(Error::InvalidInput {
            what: "WER gate utterances".into(),
            expected: "at least one".into(),
            got: "none".into(),
        });
    }
    let fp32 = export(ckpt, Precision::F32)?;
    let tmp = TempDir::new();
    let opts = TranscribeOptions {
        whisper: WhisperOptions {
            language: Language::Code("en".into()),
            ..WhisperOptions::default()
        },
        ..TranscribeOptions::default()
    };
    let normalizer = EnglishTextNormalizer;
    let mut rates = [ErrorRate::default(), ErrorRate::default()];
    for ((precision, onnx), rate) in [("fp32", &fp32), ("int8", int8)]
        .into_iter()
        .zip(&mut rates)
    {
        // Models load from directories: write each, tokenizer included, to a temp one.
        let dir = tmp.0.join(precision);
        write_model_dir(onnx, src, &dir)?;
        let model = hearken::model::open_with(&dir, engine).map_err(runtime_err(format!(
            "loading the {precision} export for the WER gate (it needs the tokenizer, \
             tokenizer.json, of {})",
            src.display()
        )))?;
        for entry in entries {
            let audio = &entry.audio;
            let pcm = hearken::audio::load(audio)
                .map_err(runtime_err(format!("loading {}", audio.display())))?;
            let hypothesis = model
                .transcribe(&pcm.samples, &opts, &mut |_| {})
                .map_err(runtime_err(format!(
                    "transcribing {} with {precision}",
                    audio.display()
                )))?
                .text;
            let (errors, n_ref) = wer(
                &normalizer.normalize(&entry.text),
                &normalizer.normalize(&hypothesis),
            );
            on_utterance(&UtteranceWer {
                precision,
                audio,
                errors,
                n_ref,
            });
            rate.add((errors, n_ref));
        }
    }
    let [fp32, int8] = rates;
    Ok(WerComparison {
        n_utterances: entries.len(),
        fp32,
        int8,
        engine: engine.name().into(),
        max_increase_points: MAX_INT8_WER_INCREASE_POINTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_allows_one_point() {
        let rate = |errors, n_ref| ErrorRate { errors, n_ref };
        let mut c = WerComparison {
            n_utterances: 3,
            fp32: rate(28, 239),
            int8: rate(27, 239),
            engine: "ort".into(),
            max_increase_points: MAX_INT8_WER_INCREASE_POINTS,
        };
        assert!(c.passed());
        assert_eq!(
            c.to_string(),
            "WER fp32 11.72% -> int8 11.30% (-0.42 points) over 3 utterances, 239 words (ort)"
        );
        c.int8 = rate(30, 239); // +0.84 points
        assert!(c.passed());
        c.int8 = rate(31, 239); // +1.26 points
        let e = c.check().unwrap_err().to_string();
        assert_eq!(
            e,
            "int8 WER gate failed: int8 raises the WER by 1.26 points (more than 1)"
        );
    }
}
