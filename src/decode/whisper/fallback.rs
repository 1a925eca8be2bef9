//! Temperature fallback: decode again, hotter, when the output looks like a failure
//! (repetition loop or low confidence), unless the window looks silent.

use super::search::{DecodeOptions, DecodingResult, Detokenize, Search, decode};
use super::{SpecialTokens, WhisperStep};
use crate::{Error, Result};

/// The fallback schedule and its thresholds (arguments of OpenAI's `transcribe`).
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    /// Temperatures tried in order: `[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]`. At 0 the options'
    /// [`Search`] runs (greedy or beam); above 0, [`Search::Sample`] with `best_of`.
    pub temperatures: Vec<f32>,
    /// Samples per decode at `T > 0` (OpenAI's CLI default: 5).
    pub best_of: usize,
    /// Fall back when the compression ratio is above this (2.4): the text repeats itself.
    pub compression_ratio_threshold: Option<f32>,
    /// Fall back when the average log-probability is below this (-1.0).
    pub logprob_threshold: Option<f32>,
    /// Accept any result whose no-speech probability is above this (0.6): the window is
    /// silence, which [`Fallback::should_skip`] then confirms or not.
    pub no_speech_threshold: Option<f32>,
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback {
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            best_of: 5,
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
        }
    }
}

impl Fallback {
    /// Whether `result` should be decoded again at the next temperature.
    // https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L197-L213
    pub fn needs_fallback(&self, result: &DecodingResult) -> bool {
        let mut needs = false;
        if self
            .compression_ratio_threshold
            .is_some_and(|t| result.compression_ratio > t)
        {
            needs = true; // too repetitive
        }
        if self
            .logprob_threshold
            .is_some_and(|t| result.avg_logprob < t)
        {
            needs = true; // average log probability is too low
        }
        if self.is_no_speech(result) {
            needs = false; // silence
        }
        needs
    }

    /// Whether the caller should skip the window as silence: no-speech probability above the
    /// threshold and average log-probability not above `logprob_threshold`. The caller then
    /// advances by the whole window and emits nothing.
    // https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L282-L294
    pub fn should_skip(&self, result: &DecodingResult) -> bool {
        if !self.is_no_speech(result) {
            return false;
        }
        // Confident text despite the no-speech probability is kept.
        !self
            .logprob_threshold
            .is_some_and(|t| result.avg_logprob > t)
    }

    fn is_no_speech(&self, result: &DecodingResult) -> bool {
        match (self.no_speech_threshold, result.no_speech_prob) {
            (Some(t), Some(p)) => p > t,
            _ => false,
        }
    }

    /// The search at temperature `t`: `base` (its greedy form if it samples) at 0, best-of-N
    /// sampling above.
    fn search_at(&self, base: Search, t: f32) -> Search {
        if t > 0.0 {
            Search::Sample {
                temperature: t,
                best_of: self.best_of,
            }
        } else {
            match base {
                Search::Sample { .. } => Search::Greedy,
                other => other,
            }
        }
    }
}

/// Decodes `step`'s window at each temperature of `fallback` in turn and returns the first
/// result that does not need a fallback, or the last one.
///
/// Each attempt starts with [`WhisperStep::reset`] and samples with a seed derived from
/// `opts.seed` and the attempt number. Fails with [`Error::InvalidInput`] for an empty or
/// negative temperature list, and as [`decode`] does.
// https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L178-L216
pub fn decode_with_fallback<S, D>(
    step: &mut S,
    special: &SpecialTokens,
    opts: &DecodeOptions,
    fallback: &Fallback,
    text: &D,
) -> Result<DecodingResult>
where
    S: WhisperStep + ?Sized,
    D: Detokenize + ?Sized,
{
    if let Some(&t) = fallback
        .temperatures
        .iter()
        .find(|t| !(**t >= 0.0 && t.is_finite()))
    {
        return Err(Error::invalid("fallback temperature", "finite and ≥ 0", t));
    }
    let mut attempt_opts = opts.clone();
    let mut last = None;
    for (attempt, &t) in fallback.temperatures.iter().enumerate() {
        attempt_opts.search = fallback.search_at(opts.search, t);
        attempt_opts.seed = opts.seed ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let result = decode(step, special, &attempt_opts, text)?;
        tracing::debug!(
            temperature = t,
            avg_logprob = result.avg_logprob,
            compression_ratio = result.compression_ratio,
            no_speech_prob = ?result.no_speech_prob,
            "whisper decode attempt"
        );
        if !fallback.needs_fallback(&result) {
            return Ok(result);
        }
        last = Some(result);
    }
    last.ok_or_else(|| Error::invalid("fallback temperatures", "at least one temperature", "none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        avg_logprob: f32,
        compression_ratio: f32,
        no_speech_prob: Option<f32>,
    ) -> DecodingResult {
        DecodingResult {
            tokens: vec![1],
            text: "x".into(),
            language: None,
            sum_logprob: avg_logprob * 2.0,
            avg_logprob,
            no_speech_prob,
            temperature: 0.0,
            compression_ratio,
        }
    }

    #[test]
    fn fallback_rules_match_transcribe_py() {
        let f = Fallback::default();
        assert!(!f.needs_fallback(&result(-0.3, 1.5, Some(0.1))));
        assert!(f.needs_fallback(&result(-0.3, 2.5, Some(0.1))));
        assert!(f.needs_fallback(&result(-1.5, 1.5, None)));
        // Silence is accepted whatever the other scores.
        assert!(!f.needs_fallback(&result(-1.5, 2.5, Some(0.9))));
        let off = Fallback {
            compression_ratio_threshold: None,
            logprob_threshold: None,
            no_speech_threshold: None,
            ..Fallback::default()
        };
        assert!(!off.needs_fallback(&result(-5.0, 9.0, Some(1.0))));
    }

    #[test]
    fn skip_needs_no_speech_and_low_confidence() {
        let f = Fallback::default();
        assert!(f.should_skip(&result(-1.5, 1.0, Some(0.9))));
        assert!(!f.should_skip(&result(-0.5, 1.0, Some(0.9))));
        assert!(!f.should_skip(&result(-1.5, 1.0, Some(0.5))));
        assert!(!f.should_skip(&result(-1.5, 1.0, None)));
    }

    #[test]
    fn searches_per_temperature() {
        let f = Fallback::default();
        let beam = Search::Beam {
            beam_size: 5,
            patience: 1.0,
        };
        assert_eq!(f.search_at(beam, 0.0), beam);
        assert_eq!(
            f.search_at(beam, 0.4),
            Search::Sample {
                temperature: 0.4,
                best_of: 5
            }
        );
        assert_eq!(
            f.search_at(
                Search::Sample {
                    temperature: 1.0,
                    best_of: 2
                },
                0.0
            ),
            Search::Greedy
        );
    }
}
