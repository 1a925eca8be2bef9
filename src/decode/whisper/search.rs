//! One window's decode: greedy, best-of-N sampling or beam search over a [`WhisperStep`].

use std::io::Write;

use super::filters::{LogitFilter, logit_filters};
use super::prompt::{Prompt, initial_tokens};
use super::{SpecialTokens, Task, WhisperStep};
use crate::decode::math::{SplitMix64, argmax, logsumexp, sample, top_k};
use crate::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    /// Arg-max at every step (OpenAI's `GreedyDecoder` at temperature 0).
    Greedy,
    /// Draws from `softmax(logits / temperature)`, `best_of` independent samples, and keeps
    /// the best by [`DecodeOptions::length_penalty`] (OpenAI's `GreedyDecoder` at `T > 0`
    /// with `best_of`).
    Sample {
        /// `T > 0`.
        temperature: f32,
        /// Number of independent samples, ≥ 1.
        best_of: usize,
    },
    /// Beam search (OpenAI's `BeamSearchDecoder`): stops when `round(beam_size * patience)`
    /// hypotheses have ended.
    Beam {
        /// Number of live hypotheses, ≥ 1.
        beam_size: usize,
        /// Multiplies how many finished hypotheses to collect (arXiv:2204.05424); 1.0 is
        /// plain beam search.
        patience: f32,
    },
}

impl Search {
    /// The sampling temperature: 0 except for [`Search::Sample`].
    pub fn temperature(&self) -> f32 {
        match self {
            Search::Sample { temperature, .. } => *temperature,
            Search::Greedy | Search::Beam { .. } => 0.0,
        }
    }
}

/// Options of one window's decode (OpenAI's `DecodingOptions`, in token ids).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Transcribe or translate (multilingual models only).
    pub task: Task,
    /// The language token (`<|de|>`), multilingual models only; `None` detects the
    /// language from the window first.
    pub language: Option<u32>,
    /// Sample timestamp tokens (OpenAI's `not without_timestamps`); when `false` the prompt
    /// ends with `<|notimestamps|>`.
    pub timestamps: bool,
    /// How tokens are chosen.
    pub search: Search,
    /// Ranking of finished candidates (beam search, best-of-N): `None` divides the sum of
    /// log-probabilities by the length, `Some(alpha)` by `((5 + length) / 6)^alpha` (Google
    /// NMT), `alpha` in `0..=1`.
    pub length_penalty: Option<f32>,
    /// Most tokens sampled (OpenAI's `sample_len`): `n_text_ctx / 2` = 224.
    pub max_tokens: usize,
    /// The decoder's positions (`n_text_ctx`, 448): prompt plus output never exceed it.
    pub n_text_ctx: usize,
    /// Previous text (OpenAI's `prompt`), without `<|startofprev|>`; empty for none.
    pub prompt: Vec<u32>,
    /// Forced start of this window's text (OpenAI's `prefix`); empty for none.
    pub prefix: Vec<u32>,
    /// Forbid a blank or empty start ([`super::SuppressBlank`]).
    pub suppress_blank: bool,
    /// The token ids of `" "` for blank suppression: `[220]` in Whisper's vocabularies.
    pub blank_tokens: Vec<u32>,
    /// Tokens never sampled: the model's `suppress_tokens` or the tokenizer's non-speech
    /// tokens (OpenAI's default `"-1"`). The task, start and no-speech tokens are always
    /// added (OpenAI adds them only to a non-empty list).
    pub suppress_tokens: Vec<u32>,
    /// Latest first timestamp, in seconds (1.0); `None` or `0.0` for no limit.
    pub max_initial_timestamp_s: Option<f32>,
    /// Seed of the sampler (only [`Search::Sample`] draws from it).
    pub seed: u64,
}

impl Default for DecodeOptions {
    /// OpenAI's defaults, except `suppress_tokens`, which needs the tokenizer and is left
    /// empty: fill it from the model or `WhisperTokenizer::non_speech_tokens`.
    fn default() -> Self {
        DecodeOptions {
            task: Task::Transcribe,
            language: None,
            timestamps: true,
            search: Search::Greedy,
            length_penalty: None,
            max_tokens: 224,
            n_text_ctx: 448,
            prompt: Vec::new(),
            prefix: Vec::new(),
            suppress_blank: true,
            blank_tokens: vec![220],
            suppress_tokens: Vec::new(),
            max_initial_timestamp_s: Some(1.0),
            seed: 0,
        }
    }
}

impl DecodeOptions {
    /// OpenAI's `_verify_options`, plus range checks. Fails with [`Error::InvalidInput`].
    // https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L572-L585
    pub fn validate(&self) -> Result<()> {
        match self.search {
            Search::Greedy => {}
            Search::Sample {
                temperature,
                best_of,
            } => {
                if !(temperature > 0.0 && temperature.is_finite()) {
                    return Err(Error::invalid(
                        "sampling temperature",
                        "a finite T > 0",
                        temperature,
                    ));
                }
                if best_of == 0 {
                    return Err(Error::invalid("best_of", "≥ 1", best_of));
                }
            }
            Search::Beam {
                beam_size,
                patience,
            } => {
                if beam_size == 0 {
                    return Err(Error::invalid("beam_size", "≥ 1", beam_size));
                }
                if max_candidates(beam_size, patience) == 0 {
                    return Err(Error::invalid(
                        "beam search patience",
                        "a value with round(beam_size * patience) ≥ 1",
                        patience,
                    ));
                }
            }
        }
        if let Some(alpha) = self.length_penalty
            && !(0.0..=1.0).contains(&alpha)
        {
            return Err(Error::invalid("length_penalty", "alpha in 0..=1", alpha));
        }
        if self.max_tokens == 0 {
            return Err(Error::invalid("max_tokens", "≥ 1", 0));
        }
        Ok(())
    }
}

fn max_candidates(beam_size: usize, patience: f32) -> usize {
    let m = (beam_size as f64 * patience as f64).round_ties_even();
    if m.is_finite() && m > 0.0 {
        m as usize
    } else {
        0
    }
}

/// The outcome of one window's decode.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodingResult {
    /// Sampled tokens: no prompt, no prefix, no `<|endoftext|>`.
    pub tokens: Vec<u32>,
    /// `tokens` as text (timestamps dropped), trimmed.
    pub text: String,
    /// The language token in the prompt (given or detected); `None` for English-only
    /// models.
    pub language: Option<u32>,
    /// Sum of the chosen tokens' log-probabilities, `<|endoftext|>` included.
    pub sum_logprob: f32,
    /// `sum_logprob / (tokens.len() + 1)`.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at `<|startoftranscript|>`; `None` when the vocabulary
    /// has no such token.
    pub no_speech_prob: Option<f32>,
    /// Sampling temperature used (0 for greedy and beam search).
    pub temperature: f32,
    /// `len(text) / len(zlib(text))` in bytes: high for repetitive output.
    pub compression_ratio: f32,
}

/// Turns sampled tokens into text, for [`DecodingResult::text`] and the compression ratio.
///
/// `WhisperTokenizer` implements it (OpenAI's `Tokenizer.decode`: timestamps dropped), as
/// does any `Fn(&[u32]) -> String`.
pub trait Detokenize {
    /// The text of `tokens` (timestamp tokens must not appear in it).
    fn detokenize(&self, tokens: &[u32]) -> String;
}

impl<F: Fn(&[u32]) -> String> Detokenize for F {
    fn detokenize(&self, tokens: &[u32]) -> String {
        self(tokens)
    }
}

/// `len(text) / len(zlib.compress(text))` over UTF-8 bytes, zlib at its default level 6.
/// The compressor is flate2's, not CPython's zlib, so the denominator may differ by a few
/// bytes on some inputs.
// https://github.com/openai/whisper/blob/v20240930/whisper/utils.py#L45-L47
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let compressed = enc
        .write_all(bytes)
        .and_then(|_| enc.finish())
        .map(|v| v.len())
        .unwrap_or(0);
    if compressed == 0 {
        return 0.0;
    }
    bytes.len() as f32 / compressed as f32
}

/// `softmax(logits_at_sot)[no_speech]`: the probability that the window has no speech.
///
/// `logits_at_sot`: `(n_vocab,)`, the logits at the `<|startoftranscript|>` position.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L689-L693
pub fn no_speech_prob(logits_at_sot: &[f32], no_speech: u32) -> f32 {
    match logits_at_sot.get(no_speech as usize) {
        Some(&l) => (l - logsumexp(logits_at_sot)).exp(),
        None => 0.0,
    }
}

/// Language probabilities from the logits of a bare `[<|startoftranscript|>]`: softmax
/// over the language tokens only, as `(token, probability)` in token order.
///
/// `logits_at_sot`: `(n_vocab,)`.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L54-L71
pub fn language_probs(logits_at_sot: &[f32], special: &SpecialTokens) -> Vec<(u32, f32)> {
    let ids: Vec<u32> = special
        .language_tokens()
        .filter(|&id| (id as usize) < logits_at_sot.len())
        .collect();
    let row: Vec<f32> = ids.iter().map(|&id| logits_at_sot[id as usize]).collect();
    let lse = logsumexp(&row);
    ids.iter()
        .zip(&row)
        .map(|(&id, &l)| (id, (l - lse).exp()))
        .collect()
}

/// Detects the spoken language of the window: one `[<|startoftranscript|>]` step, then the
/// most probable language token, with the probabilities of all (see [`language_probs`]).
/// Leaves `step` reset.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L18-L77
pub fn detect_language<S: WhisperStep + ?Sized>(
    step: &mut S,
    special: &SpecialTokens,
) -> Result<(u32, Vec<(u32, f32)>)> {
    step.reset()?;
    let logits = checked_step(step, &[special.sot], 1)?;
    step.reset()?;
    pick_language(&logits, special)
}

fn pick_language(logits: &[f32], special: &SpecialTokens) -> Result<(u32, Vec<(u32, f32)>)> {
    let probs = language_probs(logits, special);
    let row: Vec<f32> = probs.iter().map(|&(_, p)| p).collect();
    match probs.get(argmax(&row)) {
        Some(&(id, _)) => Ok((id, probs)),
        None => Err(Error::invalid(
            "language detection",
            "a multilingual vocabulary with language tokens",
            "none",
        )),
    }
}

fn checked_step<S: WhisperStep + ?Sized>(
    step: &mut S,
    tokens: &[u32],
    n_hyp: usize,
) -> Result<Vec<f32>> {
    let n_vocab = step.n_vocab();
    let logits = step.step(tokens, n_hyp)?;
    if logits.len() != n_hyp * n_vocab {
        return Err(Error::invalid(
            "WhisperStep::step logits length",
            format!("n_hyp * n_vocab = {n_hyp} * {n_vocab}"),
            logits.len(),
        ));
    }
    Ok(logits)
}

/// A finished candidate: full token sequence (prompt included, no `<|endoftext|>`) and
/// its summed log-probability.
struct Candidate {
    tokens: Vec<u32>,
    sum_logprob: f32,
}

/// Decodes one audio window: prompt, optional language detection, search, ranking.
///
/// Resets `step` first. `text` turns the sampled tokens into [`DecodingResult::text`].
/// Fails with [`Error::InvalidInput`] on inconsistent options or a `step` that returns
/// logits of the wrong size, and with whatever `step` returns.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L680-L789
pub fn decode<S, D>(
    step: &mut S,
    special: &SpecialTokens,
    opts: &DecodeOptions,
    text: &D,
) -> Result<DecodingResult>
where
    S: WhisperStep + ?Sized,
    D: Detokenize + ?Sized,
{
    let _span = tracing::debug_span!("whisper_decode", search = ?opts.search).entered();
    opts.validate()?;
    let n_vocab = step.n_vocab();
    if n_vocab != special.n_vocab {
        return Err(Error::invalid(
            "Whisper logits width",
            format!("n_vocab = {} from the special tokens", special.n_vocab),
            n_vocab,
        ));
    }
    special.validate()?;
    let mut prompt = initial_tokens(special, opts)?;
    let sample_begin = prompt.sample_begin();
    let filters = logit_filters(special, opts, sample_begin);

    // Prompt, no-speech probability and language.
    let detect = special.multilingual && opts.language.is_none();
    step.reset()?;
    let mut language = prompt.language_index.map(|i| prompt.tokens[i]);
    if detect && prompt.sot_index > 0 {
        language = Some(detect_language(step, special)?.0);
    }
    let mut no_speech_prob = None;
    let logits = if special.no_speech.is_some() || detect {
        let head = checked_step(step, &prompt.tokens[..=prompt.sot_index], 1)?;
        if detect && prompt.sot_index == 0 {
            language = Some(pick_language(&head, special)?.0);
        }
        if let (Some(i), Some(lang)) = (prompt.language_index, language) {
            prompt.tokens[i] = lang;
        }
        no_speech_prob = special.no_speech.map(|id| self::no_speech_prob(&head, id));
        if prompt.sot_index + 1 < prompt.tokens.len() {
            checked_step(step, &prompt.tokens[prompt.sot_index + 1..], 1)?
        } else {
            head
        }
    } else {
        checked_step(step, &prompt.tokens, 1)?
    };

    let candidates = match opts.search {
        Search::Greedy => sample_rows(step, &prompt, logits, 1, 0.0, &filters, special, opts)?,
        Search::Sample {
            temperature,
            best_of,
        } => sample_rows(
            step,
            &prompt,
            logits,
            best_of,
            temperature,
            &filters,
            special,
            opts,
        )?,
        Search::Beam {
            beam_size,
            patience,
        } => beam_search(
            step, &prompt, logits, beam_size, patience, &filters, special, opts,
        )?,
    };

    let ranked: Vec<(usize, f32)> = candidates
        .iter()
        .map(|c| {
            (
                sampled_len(&c.tokens, sample_begin, special.eot),
                c.sum_logprob,
            )
        })
        .collect();
    let best = rank(&ranked, opts.length_penalty);
    let Some(chosen) = candidates.get(best) else {
        return Err(Error::invalid(
            "Whisper search",
            "at least one candidate (a vocabulary larger than the beam)",
            "none",
        ));
    };
    let end = sample_begin + ranked[best].0;
    let tokens = chosen.tokens[sample_begin..end].to_vec();
    let text = text.detokenize(&tokens).trim().to_string();
    let sum_logprob = chosen.sum_logprob;
    Ok(DecodingResult {
        avg_logprob: sum_logprob / (tokens.len() + 1) as f32,
        compression_ratio: compression_ratio(&text),
        tokens,
        text,
        language,
        sum_logprob,
        no_speech_prob,
        temperature: opts.search.temperature(),
    })
}

/// Length of the sampled part, up to the first `<|endoftext|>` after the prompt.
fn sampled_len(tokens: &[u32], sample_begin: usize, eot: u32) -> usize {
    let sampled = tokens.get(sample_begin..).unwrap_or(&[]);
    sampled
        .iter()
        .position(|&t| t == eot)
        .unwrap_or(sampled.len())
}

/// OpenAI's `MaximumLikelihoodRanker`: index of the candidate `(length, sum_logprob)` with
/// the best `sum_logprob / penalty`, the first on ties. A zero length with no penalty
/// divides by zero as Python's tensors do (`-inf`, or NaN which never wins).
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L190-L213
fn rank(candidates: &[(usize, f32)], length_penalty: Option<f32>) -> usize {
    let scores: Vec<f32> = candidates
        .iter()
        .map(|&(len, logprob)| {
            let penalty = match length_penalty {
                None => len as f32,
                Some(alpha) => ((5.0 + len as f32) / 6.0).powf(alpha),
            };
            logprob / penalty
        })
        .collect();
    argmax(&scores)
}

/// Greedy (`temperature == 0`) or sampled decoding of `n_rows` independent rows
/// (OpenAI's `GreedyDecoder`). Finished rows leave the cache through `reorder`.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L272-L298
#[allow(clippy::too_many_arguments)]
fn sample_rows<S: WhisperStep + ?Sized>(
    step: &mut S,
    prompt: &Prompt,
    first_logits: Vec<f32>,
    n_rows: usize,
    temperature: f32,
    filters: &[Box<dyn LogitFilter>],
    special: &SpecialTokens,
    opts: &DecodeOptions,
) -> Result<Vec<Candidate>> {
    let n_vocab = special.n_vocab;
    let mut rng = SplitMix64::new(opts.seed);
    let mut rows: Vec<Candidate> = (0..n_rows)
        .map(|_| Candidate {
            tokens: prompt.tokens.clone(),
            sum_logprob: 0.0,
        })
        .collect();
    // `live[r]`: the row held by cache row `r`.
    let mut live: Vec<usize> = (0..n_rows).collect();
    let mut logits = if n_rows > 1 {
        step.reorder(&vec![0; n_rows])?;
        first_logits.repeat(n_rows)
    } else {
        first_logits
    };
    for i in 0..opts.max_tokens {
        let mut next = Vec::with_capacity(live.len());
        let mut keep = Vec::with_capacity(live.len());
        for (r, &row_id) in live.iter().enumerate() {
            let row = &mut rows[row_id];
            let l = &mut logits[r * n_vocab..(r + 1) * n_vocab];
            for f in filters {
                f.apply(&row.tokens, l);
            }
            let token = if temperature == 0.0 {
                argmax(l)
            } else {
                sample(l, temperature, &mut rng)
            };
            // Log-probabilities come from the filtered logits at T = 1, as in OpenAI.
            row.sum_logprob += l[token] - logsumexp(l);
            row.tokens.push(token as u32);
            next.push(token as u32);
            if token as u32 != special.eot {
                keep.push(r);
            }
        }
        let length = rows[live[0]].tokens.len();
        if keep.is_empty() || length > opts.n_text_ctx || i + 1 == opts.max_tokens {
            break;
        }
        if keep.len() < live.len() {
            step.reorder(&keep)?;
            next = keep.iter().map(|&r| next[r]).collect();
            live = keep.iter().map(|&r| live[r]).collect();
        }
        logits = checked_step(step, &next, live.len())?;
    }
    Ok(rows)
}

/// OpenAI's `BeamSearchDecoder` for one audio: per beam the `beam_size + 1` most likely
/// tokens, the best `beam_size` unfinished continuations live on, finished ones are
/// collected until `round(beam_size * patience)`; if the length limit comes first, the
/// best live beams fill the candidate list up to `beam_size`.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L301-L404
#[allow(clippy::too_many_arguments)]
fn beam_search<S: WhisperStep + ?Sized>(
    step: &mut S,
    prompt: &Prompt,
    first_logits: Vec<f32>,
    beam_size: usize,
    patience: f32,
    filters: &[Box<dyn LogitFilter>],
    special: &SpecialTokens,
    opts: &DecodeOptions,
) -> Result<Vec<Candidate>> {
    let n_vocab = special.n_vocab;
    let max_candidates = max_candidates(beam_size, patience);
    let mut beams = vec![Candidate {
        tokens: prompt.tokens.clone(),
        sum_logprob: 0.0,
    }];
    let mut finished: Vec<Candidate> = Vec::new();
    let mut logits = first_logits;
    for i in 0..opts.max_tokens {
        // STEP 1: every beam's best `beam_size + 1` continuations, in beam then rank order.
        let mut scored: Vec<(f32, usize, u32)> = Vec::with_capacity(beams.len() * (beam_size + 1));
        for (j, beam) in beams.iter().enumerate() {
            let l = &mut logits[j * n_vocab..(j + 1) * n_vocab];
            for f in filters {
                f.apply(&beam.tokens, l);
            }
            let lse = logsumexp(l);
            for token in top_k(l, beam_size + 1) {
                scored.push((beam.sum_logprob + (l[token] - lse), j, token as u32));
            }
        }
        // STEP 2: stable sort by score, as Python's `sorted`.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next: Vec<Candidate> = Vec::with_capacity(beam_size);
        let mut sources = Vec::with_capacity(beam_size);
        let mut newly_finished = Vec::new();
        for &(score, j, token) in &scored {
            let mut tokens = Vec::with_capacity(beams[j].tokens.len() + 1);
            tokens.extend_from_slice(&beams[j].tokens);
            tokens.push(token);
            let candidate = Candidate {
                tokens,
                sum_logprob: score,
            };
            if token == special.eot {
                newly_finished.push(candidate);
            } else {
                next.push(candidate);
                sources.push(j);
                if next.len() == beam_size {
                    break;
                }
            }
        }
        for c in newly_finished {
            if finished.len() >= max_candidates {
                break;
            }
            finished.push(c);
        }
        let n_old = beams.len();
        beams = next;
        let length = beams.first().map_or(0, |b| b.tokens.len());
        if finished.len() >= max_candidates
            || length > opts.n_text_ctx
            || i + 1 == opts.max_tokens
            || beams.is_empty()
        {
            break;
        }
        if sources.len() != n_old || sources.iter().enumerate().any(|(k, &s)| k != s) {
            step.reorder(&sources)?;
        }
        let last: Vec<u32> = beams
            .iter()
            .filter_map(|b| b.tokens.last().copied())
            .collect();
        logits = checked_step(step, &last, beams.len())?;
    }
    if finished.len() < beam_size {
        let mut order: Vec<usize> = (0..beams.len()).collect();
        order.sort_by(|&a, &b| beams[b].sum_logprob.total_cmp(&beams[a].sum_logprob));
        for j in order {
            if finished.len() >= beam_size {
                break;
            }
            finished.push(Candidate {
                tokens: beams[j].tokens.clone(),
                sum_logprob: beams[j].sum_logprob,
            });
        }
    }
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_of_repetition_is_high() {
        let repetitive = "the cat sat on the mat ".repeat(20);
        assert!(compression_ratio(&repetitive) > 2.4);
        assert!(compression_ratio("Ever tried. Ever failed. No matter.") < 2.4);
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn ranker_normalizes_by_length() {
        // (length, sum): -3/3 = -1 beats -2/1 = -2.
        assert_eq!(rank(&[(1, -2.0), (3, -3.0)], None), 1);
        // Google NMT with alpha 0: raw sums.
        assert_eq!(rank(&[(1, -2.0), (3, -3.0)], Some(0.0)), 0);
        assert_eq!(rank(&[(0, -1.0), (2, -5.0)], None), 1);
    }

    #[test]
    fn no_speech_and_language_probabilities() {
        let s = SpecialTokens::openai(51865).unwrap();
        let mut l = vec![0.0f32; s.n_vocab];
        l[s.no_speech.unwrap() as usize] = 20.0;
        assert!(no_speech_prob(&l, s.no_speech.unwrap()) > 0.99);
        l[s.language_begin as usize + 3] = 5.0;
        let probs = language_probs(&l, &s);
        assert_eq!(probs.len(), 99);
        let total: f32 = probs.iter().map(|p| p.1).sum();
        assert!((total - 1.0).abs() < 1e-4);
        assert_eq!(pick_language(&l, &s).unwrap().0, s.language_begin + 3);
    }

    #[test]
    fn options_are_validated() {
        let mut o = DecodeOptions::default();
        assert!(o.validate().is_ok());
        o.search = Search::Beam {
            beam_size: 2,
            patience: 0.1,
        };
        assert!(o.validate().is_err());
        o.search = Search::Sample {
            temperature: 0.0,
            best_of: 1,
        };
        assert!(o.validate().is_err());
        o.search = Search::Greedy;
        o.length_penalty = Some(1.5);
        assert!(o.validate().is_err());
    }
}
