//! Whisper's logit filters: rules that set logits to `-inf` before a token is chosen.
//!
//! Each filter sees one hypothesis at a time, `(tokens, logits)`: `tokens` is the row's
//! whole history including the prompt (the sampled part starts at `sample_begin`), `logits`
//! its next-token logits `(n_vocab,)`. They are applied in OpenAI's order:
//! [`SuppressBlank`], [`SuppressTokens`], [`ApplyTimestampRules`] (see [`logit_filters`]).

use super::{DecodeOptions, SpecialTokens};
use crate::decode::math::logsumexp;

/// A rule applied to one hypothesis' next-token logits, in place.
pub trait LogitFilter: Send + Sync {
    /// `tokens`: the hypothesis so far, prompt included; `logits`: `(n_vocab,)`.
    fn apply(&self, tokens: &[u32], logits: &mut [f32]);
}

fn suppress(logits: &mut [f32], id: u32) {
    if let Some(l) = logits.get_mut(id as usize) {
        *l = f32::NEG_INFINITY;
    }
}

/// At the first sampled position, forbids the blank token(s) and `<|endoftext|>`, so that a
/// window never decodes to nothing or to a lone space.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L423-L430
#[derive(Debug, Clone)]
pub struct SuppressBlank {
    /// `tokenizer.encode(" ")`: `[220]` in both GPT-2-based Whisper vocabularies.
    pub blank_tokens: Vec<u32>,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// Length of the prompt: the first sampled position.
    pub sample_begin: usize,
}

impl LogitFilter for SuppressBlank {
    fn apply(&self, tokens: &[u32], logits: &mut [f32]) {
        if tokens.len() == self.sample_begin {
            for &id in &self.blank_tokens {
                suppress(logits, id);
            }
            suppress(logits, self.eot);
        }
    }
}

/// Forbids a fixed set of tokens at every position.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L433-L438
#[derive(Debug, Clone)]
pub struct SuppressTokens {
    /// The ids, sorted and without duplicates.
    pub ids: Vec<u32>,
}

impl SuppressTokens {
    /// OpenAI's suppression set: `suppress_tokens` (the model's `suppress_tokens`, or the
    /// tokenizer's non-speech tokens for OpenAI's `"-1"`) plus the task, start and
    /// no-speech tokens, which must never be sampled.
    // https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L615-L642
    pub fn whisper(special: &SpecialTokens, suppress_tokens: &[u32]) -> Self {
        let mut ids = suppress_tokens.to_vec();
        ids.extend([
            special.transcribe,
            special.translate,
            special.sot,
            special.sot_prev,
        ]);
        ids.extend(special.sot_lm);
        ids.extend(special.no_speech);
        ids.sort_unstable();
        ids.dedup();
        SuppressTokens { ids }
    }
}

impl LogitFilter for SuppressTokens {
    fn apply(&self, _tokens: &[u32], logits: &mut [f32]) {
        for &id in &self.ids {
            suppress(logits, id);
        }
    }
}

/// Whisper's timestamp grammar: timestamps come in pairs (`<|t0|> text <|t1|>`, a pair of
/// adjacent timestamps closing one segment and opening the next) except right before
/// `<|endoftext|>`, never decrease, each segment has a nonzero length, the first sampled
/// token is a timestamp no later than `max_initial_timestamp_index`, and a timestamp is
/// forced when the timestamps together are more probable than any single text token.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L441-L505
#[derive(Debug, Clone)]
pub struct ApplyTimestampRules {
    /// `<|endoftext|>`; ids below it are text.
    pub eot: u32,
    /// `<|notimestamps|>`, suppressed everywhere while timestamps are sampled.
    pub no_timestamps: u32,
    /// `<|0.00|>`; ids from it to the end of the vocabulary are timestamps.
    pub timestamp_begin: u32,
    /// Length of the prompt: the first sampled position.
    pub sample_begin: usize,
    /// The latest first timestamp, as an index from `<|0.00|>` (50 = 1.0 s), if limited.
    pub max_initial_timestamp_index: Option<u32>,
}

impl LogitFilter for ApplyTimestampRules {
    fn apply(&self, tokens: &[u32], logits: &mut [f32]) {
        let n_vocab = logits.len();
        let tb = (self.timestamp_begin as usize).min(n_vocab);
        let eot = (self.eot as usize).min(n_vocab);
        suppress(logits, self.no_timestamps);

        let sampled = tokens.get(self.sample_begin..).unwrap_or(&[]);
        let is_ts = |t: u32| t >= self.timestamp_begin;
        let last_was_timestamp = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_was_timestamp = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_was_timestamp {
            if penultimate_was_timestamp {
                // A pair is complete (or the segment just began): text must follow.
                logits[tb..].fill(f32::NEG_INFINITY);
            } else {
                // A segment's text just ended with a timestamp: close the pair or stop.
                logits[..eot].fill(f32::NEG_INFINITY);
            }
        }

        if let Some(&last_ts) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            // Timestamps never decrease, and a segment must not end where it began.
            let timestamp_last = if last_was_timestamp && !penultimate_was_timestamp {
                last_ts
            } else {
                last_ts + 1
            };
            let end = (timestamp_last as usize).min(n_vocab);
            if end > tb {
                logits[tb..end].fill(f32::NEG_INFINITY);
            }
        }

        if tokens.len() == self.sample_begin {
            // The first sampled token is a timestamp, and not too late.
            logits[..tb].fill(f32::NEG_INFINITY);
            if let Some(index) = self.max_initial_timestamp_index {
                let last_allowed = tb + index as usize;
                if last_allowed + 1 < n_vocab {
                    logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
                }
            }
        }

        // If the timestamps together outweigh every text token, sample a timestamp.
        if tb < n_vocab && tb > 0 {
            // OpenAI compares log-probabilities; both share the softmax normalizer, so the
            // timestamps' logsumexp against the best text logit is the same test.
            let timestamp_logsumexp = logsumexp(&logits[tb..]);
            let max_text = logits[..tb]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            if timestamp_logsumexp > max_text {
                logits[..tb].fill(f32::NEG_INFINITY);
            }
        }
    }
}

/// Seconds per timestamp step: `CHUNK_LENGTH / n_audio_ctx` = 30 / 1500.
pub const TIME_PRECISION_S: f32 = 0.02;

/// OpenAI's filter chain for one decode: blank suppression (if enabled), token suppression,
/// and the timestamp rules when timestamps are sampled.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L553-L570
pub fn logit_filters(
    special: &SpecialTokens,
    opts: &DecodeOptions,
    sample_begin: usize,
) -> Vec<Box<dyn LogitFilter>> {
    let mut filters: Vec<Box<dyn LogitFilter>> = Vec::new();
    if opts.suppress_blank {
        filters.push(Box::new(SuppressBlank {
            blank_tokens: opts.blank_tokens.clone(),
            eot: special.eot,
            sample_begin,
        }));
    }
    // OpenAI drops the whole filter for an empty `suppress_tokens` (`if
    // self.options.suppress_tokens:`), special tokens included. Its default is never empty
    // ("-1"), ours is (the non-speech ids need the tokenizer), so the special tokens are
    // always suppressed here.
    filters.push(Box::new(SuppressTokens::whisper(
        special,
        &opts.suppress_tokens,
    )));
    if opts.timestamps {
        filters.push(Box::new(ApplyTimestampRules {
            eot: special.eot,
            no_timestamps: special.no_timestamps,
            timestamp_begin: special.timestamp_begin,
            sample_begin,
            max_initial_timestamp_index: max_initial_timestamp_index(opts.max_initial_timestamp_s),
        }));
    }
    filters
}

/// `round(max_initial_timestamp / precision)`; `None` (no limit) for `None` and, as in
/// OpenAI where `0.0` is falsy, for `0.0`.
fn max_initial_timestamp_index(seconds: Option<f32>) -> Option<u32> {
    match seconds {
        Some(s) if s > 0.0 && s.is_finite() => {
            Some((s / TIME_PRECISION_S).round_ties_even() as u32)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tiny layout: text 0..10, eot 10, notimestamps 11, timestamps 12..20.
    fn rules(sample_begin: usize, max_initial: Option<u32>) -> ApplyTimestampRules {
        ApplyTimestampRules {
            eot: 10,
            no_timestamps: 11,
            timestamp_begin: 12,
            sample_begin,
            max_initial_timestamp_index: max_initial,
        }
    }

    fn allowed(logits: &[f32]) -> Vec<usize> {
        logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, _)| i)
            .collect()
    }

    /// Text (and the specials) far likelier than any timestamp, so that the timestamp-mass
    /// rule stays out of the way unless text is masked.
    fn flat() -> Vec<f32> {
        let mut l = vec![5.0; 20];
        l[12..].fill(0.0);
        l
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let mut l = flat();
        rules(2, Some(3)).apply(&[99, 98], &mut l);
        assert_eq!(allowed(&l), vec![12, 13, 14, 15]);
        let mut l = flat();
        rules(2, None).apply(&[99, 98], &mut l);
        assert_eq!(allowed(&l), (12..20).collect::<Vec<_>>());
    }

    #[test]
    fn after_an_opening_timestamp_text_follows() {
        // [ts] → penultimate counts as timestamp (len < 2) → no timestamps at all.
        let mut l = flat();
        rules(1, Some(3)).apply(&[99, 13], &mut l);
        assert_eq!(allowed(&l), (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn after_text_timestamps_must_not_go_back() {
        // <|t1|> text: timestamps ≥ t1 + 1 = 14 allowed, with text and eot.
        let mut l = flat();
        rules(1, None).apply(&[99, 13, 5], &mut l);
        let expect: Vec<usize> = (0..11).chain(14..20).collect();
        assert_eq!(allowed(&l), expect);
    }

    #[test]
    fn closing_timestamp_forces_pair_or_end() {
        // <|t1|> text <|t3|>: no text; the next timestamp may repeat t3 (opening the next
        // segment where this one ended), or end with eot.
        let mut l = flat();
        rules(1, None).apply(&[99, 13, 5, 15], &mut l);
        let expect: Vec<usize> = std::iter::once(10).chain(15..20).collect();
        assert_eq!(allowed(&l), expect);
        // After a complete pair: text only.
        let mut l = flat();
        rules(1, None).apply(&[99, 13, 5, 15, 15], &mut l);
        assert_eq!(allowed(&l), (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn timestamp_is_forced_when_their_mass_dominates() {
        // Each timestamp a bit less likely than the best text token, but together more.
        let mut l = vec![0.0f32; 20];
        l[3] = 2.0;
        for x in &mut l[12..20] {
            *x = 1.0;
        }
        rules(1, None).apply(&[99, 13, 5], &mut l);
        assert!(l[..12].iter().all(|x| *x == f32::NEG_INFINITY));
        assert!(l[14..].iter().all(|x| x.is_finite()));
        // With one timestamp allowed the mass does not dominate: text stays.
        let mut l = vec![0.0f32; 20];
        l[3] = 2.0;
        l[12..19].fill(f32::NEG_INFINITY);
        l[19] = 1.0;
        rules(1, None).apply(&[99, 13, 5], &mut l);
        assert!(l[3].is_finite());
    }

    #[test]
    fn notimestamps_is_always_suppressed() {
        let mut l = flat();
        rules(1, None).apply(&[99, 13, 5], &mut l);
        assert_eq!(l[11], f32::NEG_INFINITY);
    }

    #[test]
    fn suppress_blank_only_at_first_position() {
        let f = SuppressBlank {
            blank_tokens: vec![2],
            eot: 10,
            sample_begin: 3,
        };
        let mut l = flat();
        f.apply(&[1, 2, 3], &mut l);
        assert_eq!(l[2], f32::NEG_INFINITY);
        assert_eq!(l[10], f32::NEG_INFINITY);
        let mut l = flat();
        f.apply(&[1, 2, 3, 4], &mut l);
        assert!(l.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn suppress_tokens_adds_the_special_tokens() {
        let special = SpecialTokens::openai(51865).unwrap();
        let s = SuppressTokens::whisper(&special, &[7, 1, 7]);
        assert_eq!(s.ids, vec![1, 7, 50258, 50358, 50359, 50360, 50361, 50362]);
        let mut l = vec![0.0; 8];
        SuppressTokens { ids: vec![3, 100] }.apply(&[], &mut l);
        assert_eq!(allowed(&l), vec![0, 1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn max_initial_timestamp_rounds_like_openai() {
        assert_eq!(max_initial_timestamp_index(Some(1.0)), Some(50));
        assert_eq!(max_initial_timestamp_index(Some(0.0)), None);
        assert_eq!(max_initial_timestamp_index(None), None);
    }
}
