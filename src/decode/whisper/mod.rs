//! Whisper decoding: a port of OpenAI's `decoding.py` and the temperature fallback and
//! long-form bookkeeping of `transcribe.py` (release v20240930).
//!
//! The decoder never sees an engine. It drives a [`WhisperStep`] ("append these tokens to
//! each hypothesis, give me the next logits"; "hypothesis `i` now continues old row
//! `src[i]`") and everything else is pure: logit filters ([`filters`]) take
//! `(tokens: &[u32], logits: &mut [f32])`, the prompt is built by [`prompt::initial_tokens`],
//! segment splitting and seeking are functions of a token slice ([`longform`]). The Whisper
//! ONNX driver in `src/model` implements [`WhisperStep`]; tests use the scripted models of
//! [`testing`].
//!
//! What follows OpenAI exactly, and where it differs:
//! - Logit filters, greedy decoding, beam search (candidate expansion with `beam_size + 1`
//!   top tokens per beam, `round(beam_size * patience)` finished candidates), the
//!   maximum-likelihood ranker and `avg_logprob = sum_logprob / (n_tokens + 1)` are as in
//!   `decoding.py`; ties are broken towards the lower token id, so beam size 1 is exactly
//!   greedy.
//! - Sampling (`T > 0`) uses a seeded SplitMix64, not torch's generator: sampled outputs are
//!   reproducible for a seed but do not match PyTorch draw for draw.
//! - Best-of-N sampling drops finished rows from the model's cache instead of feeding them
//!   `<|endoftext|>` again; the candidates are the same.
//! - Beam search starts from one cache row and fans out with the first
//!   [`WhisperStep::reorder`], instead of OpenAI's `beam_size` identical rows; the candidates
//!   of the first step are the same (OpenAI's dictionary merges the duplicates).
//! - The prompt is sent in two calls when the vocabulary has a no-speech token (see
//!   [`WhisperStep`]), to read the logits at `<|startoftranscript|>`.

pub mod fallback;
pub mod filters;
pub mod longform;
pub mod prompt;
pub mod search;
pub mod testing;

use std::ops::Range;

use crate::{Error, Result};

pub use fallback::{Fallback, decode_with_fallback};
pub use filters::{ApplyTimestampRules, LogitFilter, SuppressBlank, SuppressTokens, logit_filters};
pub use longform::{WindowSegment, WindowSplit, split_segments};
pub use prompt::{Prompt, initial_tokens};
pub use search::{
    DecodeOptions, DecodingResult, Detokenize, Search, compression_ratio, decode, detect_language,
    language_probs, no_speech_prob,
};

/// Next-token logits for a set of live hypotheses that share one audio window.
///
/// The decoder calls, per window: [`reset`](Self::reset), then the prompt in one call, or in
/// two when the vocabulary has a no-speech token (the first call ends at
/// `<|startoftranscript|>`, whose logits give the no-speech probability; the second carries
/// the rest of the prompt), then one new token per live hypothesis per step, with
/// [`reorder`](Self::reorder) in between whenever the set of hypotheses changes (beam
/// search, best-of-N rows that finished). Language detection, when asked for, is one extra
/// `reset`, `step([sot], 1)` before that.
pub trait WhisperStep {
    /// Vocabulary size (logits row length).
    fn n_vocab(&self) -> usize;

    /// Appends `tokens` (`n_hyp` rows, each with the same number `n_new ≥ 1` of new tokens,
    /// row-major) to each hypothesis' cache row and returns the logits of each row's last
    /// new position: `(n_hyp, n_vocab)` row-major.
    ///
    /// The first call after [`reset`](Self::reset) carries (the start of) the prompt, one
    /// row; `n_hyp` changes between calls only through [`reorder`](Self::reorder).
    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>>;

    /// Rebuilds the cache rows: new row `i` continues old row `src[i]` (rows may repeat or
    /// be dropped). Cross-attention state is shared, not copied.
    fn reorder(&mut self, src: &[usize]) -> Result<()>;

    /// Forgets all decoded tokens (keeps the audio window), for temperature fallback.
    fn reset(&mut self) -> Result<()>;
}

impl<T: WhisperStep + ?Sized> WhisperStep for &mut T {
    fn n_vocab(&self) -> usize {
        (**self).n_vocab()
    }
    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        (**self).step(tokens, n_hyp)
    }
    fn reorder(&mut self, src: &[usize]) -> Result<()> {
        (**self).reorder(src)
    }
    fn reset(&mut self) -> Result<()> {
        (**self).reset()
    }
}

/// Whisper's task token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// `<|transcribe|>`: speech to text in the spoken language.
    #[default]
    Transcribe,
    /// `<|translate|>`: speech to English text.
    Translate,
}

/// Ids of Whisper's special tokens.
///
/// OpenAI's vocabularies lay them out after the text tokens as `<|endoftext|>`,
/// `<|startoftranscript|>`, one token per language, `<|translate|>`, `<|transcribe|>`,
/// `<|startoflm|>`, `<|startofprev|>`, `<|nospeech|>` (`<|nocaptions|>` in older files),
/// `<|notimestamps|>`, then the timestamps `<|0.00|>` … `<|30.00|>` up to the end of the
/// vocabulary ([`SpecialTokens::openai`] computes that layout). Any layout with the
/// timestamps last works: the decoder only assumes that ids `≥ timestamp_begin` are
/// timestamps and ids `< eot` are text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Vocabulary size, the logits' row length.
    pub n_vocab: usize,
    /// `<|endoftext|>`; every id below it is a text token.
    pub eot: u32,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// First language token (`<|en|>`); the languages are
    /// `language_begin .. language_begin + n_languages`.
    pub language_begin: u32,
    /// Number of language tokens (99 before large-v3, 100 from it).
    pub n_languages: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|startoflm|>`, if the vocabulary has it.
    pub sot_lm: Option<u32>,
    /// `<|startofprev|>`, which introduces the previous-text prompt.
    pub sot_prev: u32,
    /// `<|nospeech|>` (`<|nocaptions|>`), if the vocabulary has it.
    pub no_speech: Option<u32>,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`, the first timestamp; timestamps run to `n_vocab - 1` in 0.02 s steps.
    pub timestamp_begin: u32,
    /// Whether the model is multilingual: its prompt carries language and task tokens.
    /// OpenAI: `n_vocab >= 51865`; English-only models prompt with `<|startoftranscript|>`
    /// alone.
    pub multilingual: bool,
}

impl SpecialTokens {
    /// The layout of OpenAI's own vocabularies for a model with `n_vocab` outputs: 51864
    /// (English-only, GPT-2 text tokens), 51865 (multilingual, 99 languages) or 51866
    /// (large-v3, 100 languages).
    // https://github.com/openai/whisper/blob/v20240930/whisper/tokenizer.py#L340-L351
    pub fn openai(n_vocab: usize) -> Result<Self> {
        const N_TIMESTAMPS: usize = 1501;
        let multilingual = n_vocab >= 51865;
        let n_text = if multilingual { 50257 } else { 50256 };
        let n_languages = n_vocab
            .checked_sub(n_text + 2 + 6 + N_TIMESTAMPS)
            .filter(|&n| (1..=200).contains(&n))
            .ok_or_else(|| {
                Error::invalid(
                    "Whisper n_vocab",
                    "51864 (English-only), 51865 or 51866 (multilingual)",
                    n_vocab,
                )
            })?;
        let eot = n_text as u32;
        let sot = eot + 1;
        let language_begin = sot + 1;
        let translate = language_begin + n_languages as u32;
        Ok(SpecialTokens {
            n_vocab,
            eot,
            sot,
            language_begin,
            n_languages: n_languages as u32,
            translate,
            transcribe: translate + 1,
            sot_lm: Some(translate + 2),
            sot_prev: translate + 3,
            no_speech: Some(translate + 4),
            no_timestamps: translate + 5,
            timestamp_begin: translate + 6,
            multilingual,
        })
    }

    /// The language token ids.
    pub fn language_tokens(&self) -> Range<u32> {
        self.language_begin..self.language_begin + self.n_languages
    }

    /// Whether `id` is a timestamp token.
    pub fn is_timestamp(&self, id: u32) -> bool {
        id >= self.timestamp_begin
    }

    /// Checks that every id is inside the vocabulary, that timestamps come last and text
    /// tokens first. Fails with [`Error::InvalidInput`].
    pub fn validate(&self) -> Result<()> {
        let mut ids = vec![
            ("<|endoftext|>", self.eot),
            ("<|startoftranscript|>", self.sot),
            ("<|translate|>", self.translate),
            ("<|transcribe|>", self.transcribe),
            ("<|startofprev|>", self.sot_prev),
            ("<|notimestamps|>", self.no_timestamps),
            ("<|0.00|>", self.timestamp_begin),
        ];
        ids.extend(self.sot_lm.map(|id| ("<|startoflm|>", id)));
        ids.extend(self.no_speech.map(|id| ("<|nospeech|>", id)));
        if self.n_languages > 0 {
            ids.push(("first language token", self.language_begin));
            ids.push((
                "last language token",
                self.language_begin + self.n_languages - 1,
            ));
        }
        for (name, id) in ids {
            if id as usize >= self.n_vocab {
                return Err(Error::invalid(
                    format!("{name} id"),
                    format!("< n_vocab = {}", self.n_vocab),
                    id,
                ));
            }
            if id > self.timestamp_begin {
                return Err(Error::invalid(
                    format!("{name} id"),
                    format!("below the first timestamp {}", self.timestamp_begin),
                    id,
                ));
            }
            if id < self.eot {
                return Err(Error::invalid(
                    format!("{name} id"),
                    format!("≥ <|endoftext|> = {} (ids below it are text)", self.eot),
                    id,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_layouts_match_the_published_ids() {
        let en = SpecialTokens::openai(51864).unwrap();
        assert_eq!(
            (
                en.eot,
                en.sot,
                en.language_begin,
                en.translate,
                en.transcribe
            ),
            (50256, 50257, 50258, 50357, 50358)
        );
        assert_eq!(
            (
                en.sot_prev,
                en.no_speech,
                en.no_timestamps,
                en.timestamp_begin
            ),
            (50360, Some(50361), 50362, 50363)
        );
        assert!(!en.multilingual);
        let multi = SpecialTokens::openai(51865).unwrap();
        assert_eq!(
            (multi.eot, multi.sot, multi.translate, multi.transcribe),
            (50257, 50258, 50358, 50359)
        );
        assert_eq!(
            (multi.sot_prev, multi.no_timestamps, multi.timestamp_begin),
            (50361, 50363, 50364)
        );
        assert!(multi.multilingual);
        let v3 = SpecialTokens::openai(51866).unwrap();
        assert_eq!(
            (v3.n_languages, v3.transcribe, v3.timestamp_begin),
            (100, 50360, 50365)
        );
        for s in [en, multi, v3] {
            s.validate().unwrap();
            assert_eq!(s.n_vocab - s.timestamp_begin as usize, 1501);
        }
        assert!(SpecialTokens::openai(1000).is_err());
    }

    #[test]
    fn validate_rejects_out_of_range_ids() {
        let mut s = SpecialTokens::openai(51865).unwrap();
        s.sot = 60000;
        assert!(s.validate().is_err());
        let mut s = SpecialTokens::openai(51865).unwrap();
        s.no_timestamps = s.timestamp_begin + 3;
        assert!(s.validate().is_err());
    }
}
