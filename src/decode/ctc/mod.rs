//! CTC decoding for Wav2Vec2 / HuBERT style models: greedy and prefix beam search, with
//! n-gram shallow fusion and hotwords, as pure code over per-frame log-probabilities.
//!
//! Why it is built this way:
//! - The input is what a CTC acoustic model gives after a log-softmax ([`log_softmax_rows`]):
//!   `log_probs: (n_frames, vocab_size)`, row-major. Nothing here sees an engine, so every
//!   rule is tested on synthetic matrices whose best path is known.
//! - Streaming is the only mode. [`CtcStream`] keeps everything that links one frame to the
//!   next (previous token, frame offset, the live prefixes) and is fed chunks of frames;
//!   [`CtcDecoder::decode`] is one `push` and one `finish`. A frame is processed the same way
//!   whatever chunk it arrives in, so chunked decoding equals offline decoding exactly
//!   (property-tested in `tests/ctc_decode.rs`).
//! - Shared, immutable data (vocabulary, language model, hotword automaton, options) sits
//!   behind `Arc` in [`CtcDecoder`]; a [`CtcStream`] holds only per-stream state.
//! - The search mode is an enum carrying its parameters ([`CtcSearch`]).
//!
//! Output conventions, shared by both searches so that they can be compared token for
//! token: blanks are dropped and repeats collapsed as in CTC; special tokens (`<s>`, `</s>`,
//! `<unk>`, ... see [`TokenKind::Special`]) act like blanks: they separate repeats, as in
//! Hugging Face's default `Wav2Vec2CTCTokenizer.decode` (group repeats, then drop `<pad>`),
//! and print nothing (that decode prints them; with `skip_special_tokens=True` it drops
//! every special token, `<pad>` included, *before* grouping, which merges doubled letters
//! across a blank); word delimiters are normalized: none at the start, never two in a row.
//!
//! - [`greedy`]: arg-max per frame ([`CtcGreedy`]).
//! - [`beam`]: CTC prefix beam search with pruning, blank skipping, LM and hotwords.
//! - [`lm`]: ARPA n-gram language model with back-off ([`NgramLm`]) and its fusion weights.
//! - [`hotwords`]: an Aho-Corasick automaton giving per-token bonuses to hotword phrases.

pub mod beam;
pub mod greedy;
pub mod hotwords;
pub mod lm;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::decode::math;
use crate::{Error, Result};

pub use beam::{BeamOptions, BeamStream, BlankSkip, TokenPruning};
pub use greedy::{CtcGreedy, greedy_decode};
pub use hotwords::{DEFAULT_HOTWORD_BONUS, Hotword, Hotwords};
pub use lm::{LmFusion, LmState, NgramLm};

/// Sentinel for "no node" / "no token" in the `u32` arenas of this module.
pub(crate) const NONE: u32 = u32::MAX;

/// What a vocabulary entry does in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The CTC blank (Wav2Vec2's pad token).
    Blank,
    /// A word boundary: the word-delimiter token (`|`), or any token that is only
    /// whitespace. Printed as one space.
    Delimiter,
    /// A token that prints nothing and behaves like a blank: `<s>`, `</s>`, `<unk>` and any
    /// other `<...>` token, and empty strings.
    Special,
    /// Printable text (a character, or a multi-character piece).
    Text,
}

/// A CTC vocabulary: one string per output id, the blank and the word delimiter.
#[derive(Debug, Clone)]
pub struct CtcVocab {
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    blank_id: u32,
    delimiter_id: Option<u32>,
    /// Text tokens by their string (the lowest id wins), for [`CtcVocab::tokenize`].
    by_text: HashMap<String, u32>,
    /// Length in bytes of the longest text token.
    max_token_bytes: usize,
}

impl CtcVocab {
    /// A vocabulary from its tokens in id order (`tokens[i]` is the string of id `i`), the
    /// blank id and the optional word-delimiter id.
    ///
    /// Tokens of the form `<...>` and empty strings are [`TokenKind::Special`];
    /// whitespace-only tokens are [`TokenKind::Delimiter`] like `delimiter_id`.
    pub fn new(tokens: Vec<String>, blank_id: u32, delimiter_id: Option<u32>) -> Result<Self> {
        if tokens.is_empty() || tokens.len() >= NONE as usize {
            return Err(Error::invalid(
                "CTC vocabulary size",
                format!("1..{NONE}"),
                tokens.len(),
            ));
        }
        let n = tokens.len();
        if blank_id as usize >= n {
            return Err(Error::invalid(
                "CTC blank id",
                format!("< vocabulary size {n}"),
                blank_id,
            ));
        }
        if let Some(d) = delimiter_id
            && (d as usize >= n || d == blank_id)
        {
            return Err(Error::invalid(
                "CTC word-delimiter id",
                format!("< vocabulary size {n} and not the blank id {blank_id}"),
                d,
            ));
        }
        let kinds: Vec<TokenKind> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let i = i as u32;
                if i == blank_id {
                    TokenKind::Blank
                } else if Some(i) == delimiter_id || (!t.is_empty() && t.trim().is_empty()) {
                    TokenKind::Delimiter
                } else if t.is_empty() || (t.len() > 2 && t.starts_with('<') && t.ends_with('>')) {
                    TokenKind::Special
                } else {
                    TokenKind::Text
                }
            })
            .collect();
        let mut by_text = HashMap::new();
        let mut max_token_bytes = 0;
        for (i, t) in tokens.iter().enumerate() {
            if kinds[i] == TokenKind::Text {
                by_text.entry(t.clone()).or_insert(i as u32);
                max_token_bytes = max_token_bytes.max(t.len());
            }
        }
        Ok(CtcVocab {
            tokens,
            kinds,
            blank_id,
            delimiter_id,
            by_text,
            max_token_bytes,
        })
    }

    /// A Wav2Vec2 / HuBERT vocabulary (Hugging Face `Wav2Vec2CTCTokenizer`): the blank is
    /// `<pad>` (or `[PAD]`), the word delimiter `|` when present.
    pub fn wav2vec2(tokens: Vec<String>) -> Result<Self> {
        let find = |s: &str| tokens.iter().position(|t| t == s).map(|i| i as u32);
        let blank = find("<pad>").or_else(|| find("[PAD]")).ok_or_else(|| {
            Error::invalid(
                "Wav2Vec2 vocabulary",
                "a `<pad>` (or `[PAD]`) token to use as the CTC blank",
                format!("{} tokens without one", tokens.len()),
            )
        })?;
        let delimiter = find("|");
        CtcVocab::new(tokens, blank, delimiter)
    }

    /// The tokens of a Hugging Face `vocab.json` (`{"<pad>": 0, "<s>": 1, ...}`) in id order.
    /// The ids must be exactly `0..n`.
    pub fn tokens_from_vocab_json(json: &str) -> Result<Vec<String>> {
        let map: HashMap<String, u64> = serde_json::from_str(json)
            .map_err(|e| Error::invalid("vocab.json", "a JSON object of token -> id", e))?;
        let mut tokens = vec![None; map.len()];
        for (token, id) in map {
            match tokens.get_mut(id as usize) {
                Some(slot @ None) => *slot = Some(token),
                _ => {
                    return Err(Error::invalid(
                        "vocab.json",
                        format!("distinct ids 0..{}", tokens.len()),
                        format!("id {id} for `{token}`"),
                    ));
                }
            }
        }
        // n distinct ids below n fill every slot.
        Ok(tokens.into_iter().flatten().collect())
    }

    /// Number of tokens (the row length of the log-prob matrices).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always `false`: a vocabulary has at least the blank.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The blank id.
    pub fn blank_id(&self) -> u32 {
        self.blank_id
    }

    /// The word-delimiter id, if the vocabulary has one.
    pub fn delimiter_id(&self) -> Option<u32> {
        self.delimiter_id
    }

    /// What token `id` does; ids out of range are [`TokenKind::Special`].
    pub fn kind(&self, id: u32) -> TokenKind {
        self.kinds
            .get(id as usize)
            .copied()
            .unwrap_or(TokenKind::Special)
    }

    /// The string of token `id` (empty when out of range).
    pub fn token(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("", String::as_str)
    }

    /// All token strings in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Spells `text` with the vocabulary: whitespace runs become one delimiter (dropped at the
    /// ends), everything else is matched greedily against the longest text token. When the
    /// text as given cannot be spelled, its upper-case and then its lower-case form are tried
    /// (Wav2Vec2 vocabularies are often upper-case).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        self.tokenize_exact(&text)
            .or_else(|| self.tokenize_exact(&text.to_uppercase()))
            .or_else(|| self.tokenize_exact(&text.to_lowercase()))
            .ok_or_else(|| {
                Error::invalid(
                    "text to spell with the CTC vocabulary",
                    "characters that are tokens of the vocabulary (spaces need a word delimiter)",
                    format!("`{text}`"),
                )
            })
    }

    /// Greedy longest-match spelling of `text` (single spaces only), or `None`.
    pub(crate) fn tokenize_exact(&self, text: &str) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix(' ') {
                out.push(self.delimiter_id?);
                rest = r;
                continue;
            }
            let mut len = self.max_token_bytes.min(rest.len());
            let id = loop {
                if len == 0 {
                    return None;
                }
                if rest.is_char_boundary(len)
                    && let Some(&id) = self.by_text.get(&rest[..len])
                {
                    break id;
                }
                len -= 1;
            };
            out.push(id);
            rest = &rest[len..];
        }
        Some(out)
    }
}

/// Frames `start_frame..=end_frame` of one output token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSpan {
    /// First frame the token was emitted on.
    pub start_frame: usize,
    /// Last frame of the token (repeats of it included), inclusive.
    pub end_frame: usize,
}

/// One word of a transcript with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    /// The word (its tokens' strings, concatenated).
    pub word: String,
    /// First frame of its first token.
    pub start_frame: usize,
    /// Last frame of its last token, inclusive.
    pub end_frame: usize,
    /// `start_frame * frame_stride_s`, seconds.
    pub start_s: f32,
    /// `(end_frame + 1) * frame_stride_s`, seconds: a one-frame word lasts one stride.
    pub end_s: f32,
}

/// The parts of a hypothesis' score, all natural logs.
///
/// `total = acoustic + alpha * lm + word_insertion + hotwords + oov`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct CtcScore {
    /// Acoustic log-probability: of the best path for greedy decoding, summed over all
    /// alignments of the prefix that the beam kept for beam search.
    pub acoustic: f32,
    /// Language-model log-probability (natural log, unweighted), `</s>` included at the end.
    pub lm: f32,
    /// `beta * n_words`.
    pub word_insertion: f32,
    /// Hotword bonus.
    pub hotwords: f32,
    /// Penalty for words outside the language model's vocabulary.
    pub oov: f32,
    /// The score the search ranks by.
    pub total: f32,
}

/// A decoded transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcResult {
    /// The text: delimiters as single spaces, no leading or trailing space.
    pub text: String,
    /// Output token ids (no blanks or special tokens, repeats collapsed, delimiters
    /// normalized).
    pub tokens: Vec<u32>,
    /// Frames of each token, parallel to `tokens`.
    pub token_spans: Vec<TokenSpan>,
    /// Words with timings.
    pub words: Vec<WordTiming>,
    /// Score breakdown.
    pub score: CtcScore,
}

impl CtcResult {
    /// Builds a result from `(token, start_frame, end_frame)` triples.
    pub(crate) fn assemble(
        vocab: &CtcVocab,
        spans: &[(u32, u32, u32)],
        frame_stride_s: f32,
        score: CtcScore,
    ) -> CtcResult {
        let mut text = String::new();
        let mut words: Vec<WordTiming> = Vec::new();
        let mut word: Option<WordTiming> = None;
        let flush = |word: &mut Option<WordTiming>, words: &mut Vec<WordTiming>| {
            if let Some(w) = word.take() {
                words.push(w);
            }
        };
        for &(token, start, end) in spans {
            match vocab.kind(token) {
                TokenKind::Delimiter => flush(&mut word, &mut words),
                TokenKind::Text => {
                    let piece = vocab.token(token);
                    match &mut word {
                        Some(w) => {
                            w.word.push_str(piece);
                            w.end_frame = end as usize;
                        }
                        None => {
                            word = Some(WordTiming {
                                word: piece.to_string(),
                                start_frame: start as usize,
                                end_frame: end as usize,
                                start_s: 0.0,
                                end_s: 0.0,
                            })
                        }
                    }
                }
                TokenKind::Blank | TokenKind::Special => {}
            }
        }
        flush(&mut word, &mut words);
        for w in &mut words {
            w.start_s = w.start_frame as f32 * frame_stride_s;
            w.end_s = (w.end_frame + 1) as f32 * frame_stride_s;
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&w.word);
        }
        CtcResult {
            text,
            tokens: spans.iter().map(|s| s.0).collect(),
            token_spans: spans
                .iter()
                .map(|&(_, s, e)| TokenSpan {
                    start_frame: s as usize,
                    end_frame: e as usize,
                })
                .collect(),
            words,
            score,
        }
    }
}

/// In-place log-softmax of each row: `values: (n_rows, n_vocab)`, row-major, becomes
/// `log_probs` of the same shape. Rows whose entries are all `-inf` stay `-inf`.
pub fn log_softmax_rows(values: &mut [f32], n_vocab: usize) -> Result<()> {
    check_rows(values, n_vocab)?;
    for row in values.chunks_exact_mut(n_vocab) {
        let lse = math::logsumexp(row);
        if lse.is_finite() {
            row.iter_mut().for_each(|x| *x -= lse);
        }
    }
    Ok(())
}

/// Checks that `values` is a whole number of rows of `n_vocab` entries.
pub(crate) fn check_rows(values: &[f32], n_vocab: usize) -> Result<()> {
    if n_vocab == 0 || !values.len().is_multiple_of(n_vocab) {
        return Err(Error::invalid(
            "log-prob matrix length",
            format!("a multiple of the vocabulary size {n_vocab} (n_frames, vocab_size)"),
            values.len(),
        ));
    }
    Ok(())
}

/// Rejects NaN entries (a NaN would poison every sum in the beam).
pub(crate) fn check_no_nan(values: &[f32], n_vocab: usize) -> Result<()> {
    if let Some(i) = values.iter().position(|x| x.is_nan()) {
        return Err(Error::invalid(
            "log-prob matrix",
            "no NaN",
            format!("NaN at frame {}, token {}", i / n_vocab, i % n_vocab),
        ));
    }
    Ok(())
}

/// `ln(exp(a) + exp(b))`, exact for `-inf` operands.
#[inline]
pub(crate) fn log_add(a: f32, b: f32) -> f32 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f32::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// A hasher for integer keys: one multiply per word and a SplitMix64 finalizer, so that
/// `(parent << 32) | token` keys spread over all bits (hashbrown indexes with the low bits).
/// Keys are ids the decoder makes, not attacker-chosen, so no DoS resistance is needed.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A hash map keyed by packed ids.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Packs `(a, b)` into a map key.
#[inline]
pub(crate) fn pair(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// How to search.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum CtcSearch {
    /// Arg-max per frame ([`greedy`]). No LM, no hotwords.
    #[default]
    Greedy,
    /// CTC prefix beam search ([`beam`]).
    Beam(BeamOptions),
}

/// A CTC decoder: vocabulary, search mode, and for beam search the language model and
/// hotwords. Immutable and cheap to clone (shared parts are behind `Arc`); each stream of
/// audio gets its own [`CtcStream`].
#[derive(Debug, Clone)]
pub struct CtcDecoder {
    vocab: Arc<CtcVocab>,
    frame_stride_s: f32,
    beam: Option<Arc<beam::BeamShared>>,
}

impl CtcDecoder {
    /// Starts a builder: greedy search, 0.02 s frames (Wav2Vec2: 320 samples at 16 kHz).
    pub fn builder(vocab: CtcVocab) -> CtcDecoderBuilder {
        CtcDecoderBuilder {
            vocab,
            frame_stride_s: 0.02,
            search: CtcSearch::Greedy,
            lm: None,
            hotwords: Vec::new(),
        }
    }

    /// Decodes a whole utterance.
    ///
    /// `log_probs: (n_frames, vocab_size)`, row-major, per-frame log-probabilities
    /// (see [`log_softmax_rows`]).
    pub fn decode(&self, log_probs: &[f32]) -> Result<CtcResult> {
        let _span = tracing::debug_span!(
            "ctc_decode",
            n_frames = log_probs.len() / self.vocab.len().max(1)
        )
        .entered();
        let mut stream = self.stream();
        stream.push(log_probs)?;
        Ok(stream.finish())
    }

    /// A fresh stream to feed frames to.
    pub fn stream(&self) -> CtcStream {
        match &self.beam {
            None => CtcStream::Greedy(CtcGreedy::new(self.vocab.clone(), self.frame_stride_s)),
            Some(shared) => CtcStream::Beam(BeamStream::new(shared.clone())),
        }
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &CtcVocab {
        &self.vocab
    }

    /// Seconds between frames.
    pub fn frame_stride_s(&self) -> f32 {
        self.frame_stride_s
    }
}

/// Builder of [`CtcDecoder`]; see [`CtcDecoder::builder`].
#[derive(Debug)]
pub struct CtcDecoderBuilder {
    vocab: CtcVocab,
    frame_stride_s: f32,
    search: CtcSearch,
    lm: Option<LmFusion>,
    hotwords: Vec<Hotword>,
}

impl CtcDecoderBuilder {
    /// Seconds between output frames (hop of the model: 320 samples / 16 000 Hz = 0.02).
    pub fn frame_stride_s(mut self, frame_stride_s: f32) -> Self {
        self.frame_stride_s = frame_stride_s;
        self
    }

    /// The search mode.
    pub fn search(mut self, search: CtcSearch) -> Self {
        self.search = search;
        self
    }

    /// Shallow fusion with an n-gram LM (beam search only).
    pub fn lm(mut self, fusion: LmFusion) -> Self {
        self.lm = Some(fusion);
        self
    }

    /// Hotwords to boost (beam search only); an empty list boosts nothing.
    pub fn hotwords(mut self, hotwords: Vec<Hotword>) -> Self {
        self.hotwords = hotwords;
        self
    }

    /// Validates the options and builds the decoder (spells the hotwords and the LM's
    /// words with the vocabulary).
    pub fn build(self) -> Result<CtcDecoder> {
        if !(self.frame_stride_s.is_finite() && self.frame_stride_s > 0.0) {
            return Err(Error::invalid(
                "frame_stride_s",
                "a positive number of seconds",
                self.frame_stride_s,
            ));
        }
        let vocab = Arc::new(self.vocab);
        let beam = match self.search {
            CtcSearch::Greedy => {
                if self.lm.is_some() || !self.hotwords.is_empty() {
                    return Err(Error::invalid(
                        "CTC search",
                        "CtcSearch::Beam when a language model or hotwords are given",
                        "CtcSearch::Greedy",
                    ));
                }
                None
            }
            CtcSearch::Beam(options) => Some(Arc::new(beam::BeamShared::new(
                vocab.clone(),
                options,
                self.frame_stride_s,
                self.lm,
                &self.hotwords,
            )?)),
        };
        Ok(CtcDecoder {
            vocab,
            frame_stride_s: self.frame_stride_s,
            beam,
        })
    }
}

/// Per-stream decoding state: feed chunks of frames with [`push`](Self::push), read the
/// current best with [`partial`](Self::partial), end the utterance with
/// [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub enum CtcStream {
    /// Greedy state.
    Greedy(CtcGreedy),
    /// Beam-search state.
    Beam(BeamStream),
}

impl CtcStream {
    /// Consumes a chunk of frames: `log_probs: (n_chunk_frames, vocab_size)`, row-major.
    /// On error (wrong length, NaN) the state is unchanged.
    pub fn push(&mut self, log_probs: &[f32]) -> Result<()> {
        match self {
            CtcStream::Greedy(g) => g.push(log_probs),
            CtcStream::Beam(b) => b.push(log_probs),
        }
    }

    /// The best transcript so far, without end-of-utterance scoring.
    pub fn partial(&self) -> CtcResult {
        match self {
            CtcStream::Greedy(g) => g.partial(),
            CtcStream::Beam(b) => b.partial(),
        }
    }

    /// Ends the utterance: the final best transcript. The stream is reset for the next one.
    pub fn finish(&mut self) -> CtcResult {
        match self {
            CtcStream::Greedy(g) => g.finish(),
            CtcStream::Beam(b) => b.finish(),
        }
    }

    /// Drops all state (frame count back to 0).
    pub fn reset(&mut self) {
        match self {
            CtcStream::Greedy(g) => g.reset(),
            CtcStream::Beam(b) => b.reset(),
        }
    }

    /// Frames consumed since the last reset.
    pub fn n_frames(&self) -> usize {
        match self {
            CtcStream::Greedy(g) => g.n_frames(),
            CtcStream::Beam(b) => b.n_frames(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wav2vec2_vocab_classifies_tokens() {
        let v = CtcVocab::wav2vec2(strings(&[
            "<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "'", " ", "<",
        ]))
        .unwrap();
        assert_eq!(v.blank_id(), 0);
        assert_eq!(v.delimiter_id(), Some(4));
        use TokenKind::*;
        let kinds: Vec<_> = (0..v.len() as u32).map(|i| v.kind(i)).collect();
        assert_eq!(
            kinds,
            [
                Blank, Special, Special, Special, Delimiter, Text, Text, Text, Delimiter, Text
            ]
        );
        assert_eq!(v.kind(99), Special);
        assert!(CtcVocab::wav2vec2(strings(&["a", "|"])).is_err());
        assert!(CtcVocab::new(strings(&["a"]), 1, None).is_err());
        assert!(CtcVocab::new(strings(&["a", "b"]), 0, Some(0)).is_err());
        assert!(CtcVocab::new(Vec::new(), 0, None).is_err());
    }

    #[test]
    fn vocab_json_is_read_in_id_order() {
        let t = CtcVocab::tokens_from_vocab_json(r#"{"|": 2, "<pad>": 0, "A": 1}"#).unwrap();
        assert_eq!(t, ["<pad>", "A", "|"]);
        assert!(CtcVocab::tokens_from_vocab_json(r#"{"a": 0, "b": 0}"#).is_err());
        assert!(CtcVocab::tokens_from_vocab_json(r#"{"a": 0, "b": 2}"#).is_err());
        assert!(CtcVocab::tokens_from_vocab_json("[1]").is_err());
    }

    #[test]
    fn tokenize_uses_longest_match_and_case_fallback() {
        let v = CtcVocab::new(strings(&["_", "|", "a", "b", "ab", "C"]), 0, Some(1)).unwrap();
        assert_eq!(v.tokenize("ab a").unwrap(), [4, 1, 2]);
        assert_eq!(v.tokenize("  b  ab ").unwrap(), [3, 1, 4]);
        // "c" only exists upper-case; "ABC" only lower-case... as a whole neither works.
        assert_eq!(v.tokenize("c").unwrap(), [5]);
        assert!(v.tokenize("abc").is_err());
        let no_delim = CtcVocab::new(strings(&["_", "a"]), 0, None).unwrap();
        assert!(no_delim.tokenize("a a").is_err());
        assert_eq!(no_delim.tokenize("aa").unwrap(), [1, 1]);
    }

    #[test]
    fn log_softmax_rows_normalizes_each_row() {
        let mut x = vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
        log_softmax_rows(&mut x, 3).unwrap();
        for row in x.chunks(3) {
            let s: f32 = row.iter().map(|v| v.exp()).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        assert!((x[5] - (1.0f32 / 3.0).ln()).abs() < 1e-6);
        let mut inf = vec![f32::NEG_INFINITY; 2];
        log_softmax_rows(&mut inf, 2).unwrap();
        assert_eq!(inf, [f32::NEG_INFINITY; 2]);
        assert!(log_softmax_rows(&mut [0.0; 5], 3).is_err());
        assert!(log_softmax_rows(&mut [], 0).is_err());
    }

    #[test]
    fn log_add_handles_infinities() {
        let ninf = f32::NEG_INFINITY;
        assert_eq!(log_add(ninf, ninf), ninf);
        assert_eq!(log_add(ninf, -1.0), -1.0);
        assert!((log_add(0.0, 0.0) - 2f32.ln()).abs() < 1e-7);
    }

    #[test]
    fn id_hasher_spreads_high_bits() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        let low: std::collections::HashSet<u64> =
            (0..64u32).map(|p| b.hash_one(pair(p, 7)) & 63).collect();
        assert!(low.len() > 30, "{}", low.len());
    }
}
