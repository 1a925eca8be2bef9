//! The int8 parity gates: held to what decoding reads, not to logits.
//!
//! Quantizing every projection moves the logits by a few percent of their range, far past
//! the f32 gates' 1e-3 / 1e-4, and the engines differ from each other by as much (every
//! layer re-rounds its activations, so their f32 ops' last-bit differences flip some
//! roundings). So each engine is compared with the f32 candle model on the decisions a
//! decoder takes: Whisper's greedy tokens, Wav2Vec2 / HuBERT's frame arg-max (CTC) or
//! label (classification). Max |candle f32 - int8| is reported, and held to a tolerance
//! only when the caller gives one.

use std::fmt;

use super::parity::{
    Wav2Vec2Batch, WhisperProbe, wav2vec2_candle_logits, whisper_reference_logits,
};
use super::{Engines, argmax, max_abs_diff, within};
use crate::error::{Error, Result};
use crate::wav2vec2::{Head, Wav2Vec2Checkpoint};
use crate::whisper::WhisperCheckpoint;
use crate::whisper::onnx::{WhisperOnnx, onnx_logits};

/// Least share of the valid frames on which an int8 Wav2Vec2 / HuBERT CTC export must
/// keep the f32 candle model's arg-max. Not 100%: int8 moves the logits by 1-3% of their
/// range, which flips near-tie frames: on the tiny random test fixtures, 2 to 7 of the
/// 168 frames of the default parity signal (hubert-ctc: 161/168, 95.8%); a broken graph
/// or a bad scale loses most frames.
pub const WAV2VEC2_INT8_MIN_FRAME_AGREEMENT: f64 = 0.95;

/// The [`Error::GateFailed`] of an int8 gate on `engine` when its logits differ by more
/// than the tolerance the caller gave.
fn tolerance_failed(engine: &str, diff: f32, tolerance: f32) -> Error {
    Error::GateFailed {
        gate: "int8 parity".into(),
        engine: Some(engine.into()),
        reason: format!("logits differ by {diff:.3}, more than the tolerance {tolerance}"),
    }
}

// ---------------------------------------------------------------------------------------
// Whisper

/// One engine's run of the Whisper int8 gate.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperInt8Engine {
    /// The engine's name (`tract`, `ort`).
    pub engine: String,
    /// Max |candle f32 - int8| over the logits.
    pub max_abs_diff: f32,
    /// The int8 logits' arg-max at each position of the continuation, teacher-forced.
    pub greedy: Vec<u32>,
}

/// What the Whisper int8 parity gate measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperInt8Parity {
    /// Tokens decoded (the probe's prompt and continuation).
    pub n_tokens: usize,
    /// Largest minus smallest f32 reference logit, to put the differences in scale.
    pub logit_range: f32,
    /// The f32 reference's greedy continuation, which every engine must reproduce.
    pub continuation: Vec<u32>,
    /// Each engine's run, tract first.
    pub engines: Vec<WhisperInt8Engine>,
    /// The tolerance on max |candle f32 - int8|, when the caller gave one.
    pub tolerance: Option<f32>,
}

impl WhisperInt8Parity {
    /// Whether every engine kept the greedy tokens (and the tolerance, when given).
    pub fn passed(&self) -> bool {
        self.check().is_ok()
    }

    /// `Ok` when [`passed`](Self::passed), else [`Error::GateFailed`] for the first engine
    /// that failed.
    pub fn check(&self) -> Result<()> {
        for e in &self.engines {
            if e.greedy != self.continuation {
                return Err(Error::GateFailed {
                    gate: "int8 parity".into(),
                    engine: Some(e.engine.clone()),
                    reason: format!(
                        "greedy tokens {:?} instead of the f32 reference's {:?}",
                        e.greedy, self.continuation
                    ),
                });
            }
            if let Some(tolerance) = self.tolerance
                && !within(e.max_abs_diff, tolerance)
            {
                return Err(tolerance_failed(&e.engine, e.max_abs_diff, tolerance));
            }
        }
        Ok(())
    }
}

impl fmt::Display for WhisperInt8Parity {
    /// One line per engine.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.engines.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "int8 parity ({}) over {} tokens: max |candle f32 - int8| = {:.3} ({:.2}% of \
                 the logit range {:.1}); greedy continuation {}",
                e.engine,
                self.n_tokens,
                e.max_abs_diff,
                100.0 * e.max_abs_diff / self.logit_range,
                self.logit_range,
                if e.greedy == self.continuation {
                    "identical"
                } else {
                    "DIFFERS"
                }
            )?;
        }
        Ok(())
    }
}

/// The int8 parity gate of a Whisper export: on every engine of `engines`, the arg-max of
/// the int8 logits at each position of the candle reference's greedy continuation of the
/// probe's prompt, teacher-forced, must be the reference's token, i.e. greedy decoding
/// gives the same tokens. With a `tolerance`, max |candle f32 - int8| is held to it too.
///
/// Returns the measurement; call [`WhisperInt8Parity::check`] to fail on it. Fails with
/// [`Error::InvalidInput`] for a probe that does not fit `ckpt`, and with
/// [`Error::Runtime`] when an engine cannot load or run a graph.
pub fn whisper_int8_parity(
    ckpt: &WhisperCheckpoint,
    int8: &WhisperOnnx,
    probe: &WhisperProbe,
    engines: &Engines,
    tolerance: Option<f32>,
) -> Result<WhisperInt8Parity> {
    let n_vocab = ckpt.dims.vocab_size;
    let (mel, tokens) = (&probe.mel, &probe.tokens);
    let want = whisper_reference_logits(ckpt, mel, tokens)?;
    let (lo, hi) = want
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    let mut runs = Vec::new();
    for engine in engines.all() {
        let name = engine.name();
        let got = onnx_logits(engine, ckpt, int8, mel, tokens)?;
        let diff = max_abs_diff(&format!("candle vs int8 {name}"), &want, &got)?;
        let greedy: Vec<u32> = got
            .chunks_exact(n_vocab.max(1))
            .skip(probe.prompt.len().saturating_sub(1))
            .take(probe.continuation.len())
            .map(argmax)
            .collect();
        runs.push(WhisperInt8Engine {
            engine: name.into(),
            max_abs_diff: diff,
            greedy,
        });
    }
    Ok(WhisperInt8Parity {
        n_tokens: tokens.len(),
        logit_range: hi - lo,
        continuation: probe.continuation.clone(),
        engines: runs,
        tolerance,
    })
}

// ---------------------------------------------------------------------------------------
// Wav2Vec2 / HuBERT

/// One engine's run of the Wav2Vec2 / HuBERT int8 gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav2Vec2Int8Engine {
    /// The engine's name (`tract`, `ort`).
    pub engine: String,
    /// Max |candle f32 - int8| over the logits.
    pub max_abs_diff: f32,
    /// Valid frames (CTC) or items (classification) whose arg-max is candle's.
    pub same: usize,
    /// Valid frames (CTC) or items (classification) compared.
    pub total: usize,
}

impl Wav2Vec2Int8Engine {
    /// `same / total` (1 when nothing was compared).
    pub fn share(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.same as f64 / self.total as f64
        }
    }
}

/// What the Wav2Vec2 / HuBERT int8 parity gate measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav2Vec2Int8Parity {
    /// Rows of the probe batch.
    pub batch: usize,
    /// Samples per row.
    pub n_samples: usize,
    /// Whether the head is CTC (frames compared) rather than classification (labels).
    pub ctc: bool,
    /// Largest |logit| of the f32 candle model, to put the differences in scale.
    pub max_abs_logit: f32,
    /// Each engine's run, tract first.
    pub engines: Vec<Wav2Vec2Int8Engine>,
    /// The tolerance on max |candle f32 - int8|, when the caller gave one.
    pub tolerance: Option<f32>,
}

impl Wav2Vec2Int8Parity {
    /// What is compared, and the rule it is held to.
    fn rule(&self) -> (&'static str, String) {
        if self.ctc {
            (
                "valid frames keep candle's arg-max",
                format!(
                    "rule: at least {:.0}%",
                    100.0 * WAV2VEC2_INT8_MIN_FRAME_AGREEMENT
                ),
            )
        } else {
            ("labels are candle's", "rule: all".to_owned())
        }
    }

    /// Whether `e` keeps the arg-max rule (not the tolerance).
    fn keeps_argmax(&self, e: &Wav2Vec2Int8Engine) -> bool {
        if self.ctc {
            e.share() >= WAV2VEC2_INT8_MIN_FRAME_AGREEMENT
        } else {
            e.same == e.total
        }
    }

    /// Whether every engine keeps the arg-max rule (and the tolerance, when given).
    pub fn passed(&self) -> bool {
        self.check().is_ok()
    }

    /// `Ok` when [`passed`](Self::passed), else [`Error::GateFailed`] for the first engine
    /// that failed.
    pub fn check(&self) -> Result<()> {
        let (what, rule) = self.rule();
        for e in &self.engines {
            if !self.keeps_argmax(e) {
                return Err(Error::GateFailed {
                    gate: "int8 parity".into(),
                    engine: Some(e.engine.clone()),
                    reason: format!("only {}/{} {what} ({rule})", e.same, e.total),
                });
            }
            if let Some(tolerance) = self.tolerance
                && !within(e.max_abs_diff, tolerance)
            {
                return Err(tolerance_failed(&e.engine, e.max_abs_diff, tolerance));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Wav2Vec2Int8Parity {
    /// One line per engine.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, rule) = self.rule();
        for (i, e) in self.engines.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "int8 parity ({}) over {} x {} samples: max |candle f32 - int8| = {:.3} \
                 ({:.1}% of max |logit| {:.1}); {}/{} {what} ({:.1}%, {rule}): {}",
                e.engine,
                self.batch,
                self.n_samples,
                e.max_abs_diff,
                100.0 * e.max_abs_diff / self.max_abs_logit.max(f32::MIN_POSITIVE),
                self.max_abs_logit,
                e.same,
                e.total,
                100.0 * e.share(),
                if self.keeps_argmax(e) {
                    "passed"
                } else {
                    "FAILED"
                }
            )?;
        }
        Ok(())
    }
}

/// The int8 parity gate of a Wav2Vec2 / HuBERT export: on every engine of `engines`,
/// against the f32 candle model on `batch`,
///
/// - CTC: the arg-max of at least [`WAV2VEC2_INT8_MIN_FRAME_AGREEMENT`] of the valid
///   frames (each row's frames within its real length) is candle's;
/// - classification: every row's top-1 label is candle's.
///
/// With a `tolerance`, max |candle f32 - int8| is held to it too.
///
/// Returns the measurement; call [`Wav2Vec2Int8Parity::check`] to fail on it. Fails as
/// [`wav2vec2_candle_logits`] and
/// [`crate::wav2vec2::onnx::onnx_logits`] do.
pub fn wav2vec2_int8_parity(
    ckpt: &Wav2Vec2Checkpoint,
    int8: &[u8],
    batch: &Wav2Vec2Batch,
    engines: &Engines,
    tolerance: Option<f32>,
) -> Result<Wav2Vec2Int8Parity> {
    use crate::wav2vec2::onnx::onnx_logits;
    let want = wav2vec2_candle_logits(ckpt, batch)?;
    let (ctc, width) = match &ckpt.head {
        Head::Ctc { vocab, .. } => (true, vocab.len()),
        Head::Classifier { labels } => (false, labels.len()),
    };
    let n_valid = batch.n_valid(ckpt, ctc);
    let per_item = want.len() / batch.batch.max(1);
    let mut runs = Vec::new();
    for engine in engines.all() {
        let name = engine.name();
        let got = onnx_logits(engine, int8, &batch.input, &batch.mask, batch.batch)?;
        let diff = max_abs_diff(&format!("candle vs int8 {name}"), &want, &got)?;
        let (mut same, mut total) = (0usize, 0usize);
        for (item, &valid) in n_valid.iter().enumerate() {
            let (w, g) = (&want[item * per_item..], &got[item * per_item..]);
            let rows = w
                .chunks_exact(width.max(1))
                .zip(g.chunks_exact(width.max(1)));
            for (w, g) in rows.take(valid.min(per_item / width.max(1))) {
                total += 1;
                same += usize::from(argmax(w) == argmax(g));
            }
        }
        runs.push(Wav2Vec2Int8Engine {
            engine: name.into(),
            max_abs_diff: diff,
            same,
            total,
        });
    }
    Ok(Wav2Vec2Int8Parity {
        batch: batch.batch,
        n_samples: batch.n_samples(),
        ctc,
        max_abs_logit: want.iter().fold(0.0f32, |m, v| m.max(v.abs())),
        engines: runs,
        tolerance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_int8_fails_on_the_first_engine_that_changes_a_token() {
        let mut r = WhisperInt8Parity {
            n_tokens: 6,
            logit_range: 20.0,
            continuation: vec![5, 6],
            engines: vec![
                WhisperInt8Engine {
                    engine: "tract".into(),
                    max_abs_diff: 0.3,
                    greedy: vec![5, 6],
                },
                WhisperInt8Engine {
                    engine: "ort".into(),
                    max_abs_diff: 0.2,
                    greedy: vec![5, 7],
                },
            ],
            tolerance: None,
        };
        let e = r.check().unwrap_err().to_string();
        assert_eq!(
            e,
            "int8 parity gate failed on ort: greedy tokens [5, 7] instead of the f32 \
             reference's [5, 6]"
        );
        assert!(r.to_string().lines().nth(1).unwrap().ends_with("DIFFERS"));
        r.engines[1].greedy = vec![5, 6];
        assert!(r.passed());
        r.tolerance = Some(0.25);
        let e = r.check().unwrap_err().to_string();
        assert!(
            e.starts_with("int8 parity gate failed on tract: logits differ by 0.300"),
            "{e}"
        );
    }

    #[test]
    fn wav2vec2_int8_holds_ctc_to_a_share_and_labels_to_all() {
        let run = |same, total| Wav2Vec2Int8Engine {
            engine: "tract".into(),
            max_abs_diff: 0.1,
            same,
            total,
        };
        let mut r = Wav2Vec2Int8Parity {
            batch: 2,
            n_samples: 100,
            ctc: true,
            max_abs_logit: 4.0,
            engines: vec![run(161, 168)],
            tolerance: None,
        };
        assert!(r.passed(), "{r}");
        r.engines = vec![run(150, 168)];
        assert!(!r.passed());
        assert!(r.to_string().ends_with("FAILED"), "{r}");
        r.ctc = false;
        r.engines = vec![run(2, 2)];
        assert!(r.passed());
        r.engines = vec![run(1, 2)];
        let e = r.check().unwrap_err().to_string();
        assert_eq!(
            e,
            "int8 parity gate failed on tract: only 1/2 labels are candle's (rule: all)"
        );
    }
}
