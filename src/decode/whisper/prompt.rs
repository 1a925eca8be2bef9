//! The decoder prompt: `[<|startofprev|> previous text…] <|startoftranscript|> [language]
//! [task] [<|notimestamps|>] [prefix…]`.

use super::{DecodeOptions, SpecialTokens, Task};
use crate::{Error, Result};

/// The tokens a window's decoding starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The whole prompt, in order.
    pub tokens: Vec<u32>,
    /// Position of `<|startoftranscript|>` in `tokens`; its logits give the no-speech
    /// probability and, from a bare `[sot]`, the language.
    pub sot_index: usize,
    /// Position of the language token (multilingual models only), which language detection
    /// overwrites.
    pub language_index: Option<usize>,
}

impl Prompt {
    /// Index of the first sampled token: the prompt length.
    pub fn sample_begin(&self) -> usize {
        self.tokens.len()
    }
}

/// Builds the prompt for `opts`, as OpenAI's `DecodingTask._get_initial_tokens`.
///
/// English-only models (`!special.multilingual`) get no language or task token, as
/// `get_tokenizer(multilingual=False)` sets both to `None`. A multilingual model without
/// `opts.language` gets `<|en|>` here; [`decode`](super::decode) detects the language and
/// overwrites it. `opts.prompt` keeps its last `n_text_ctx / 2 - 1` tokens. `opts.prefix` is
/// cut to its last `n_text_ctx / 2 - max_tokens` tokens, with Python's slicing quirks: a
/// limit of 0 keeps all of it, a negative one `-k` drops the first `k`.
///
/// Fails with [`Error::InvalidInput`] if a token is outside the vocabulary or the prompt
/// does not fit in `n_text_ctx` positions.
// https://github.com/openai/whisper/blob/v20240930/whisper/decoding.py#L587-L613
// https://github.com/openai/whisper/blob/v20240930/whisper/tokenizer.py#L147-L159
pub fn initial_tokens(special: &SpecialTokens, opts: &DecodeOptions) -> Result<Prompt> {
    let mut tokens = Vec::new();
    let half = opts.n_text_ctx / 2;
    if !opts.prompt.is_empty() {
        tokens.push(special.sot_prev);
        let keep = half.saturating_sub(1);
        tokens.extend_from_slice(&opts.prompt[opts.prompt.len().saturating_sub(keep)..]);
    }
    let sot_index = tokens.len();
    tokens.push(special.sot);
    let mut language_index = None;
    if special.multilingual {
        language_index = Some(tokens.len());
        tokens.push(opts.language.unwrap_or(special.language_begin));
        tokens.push(match opts.task {
            Task::Transcribe => special.transcribe,
            Task::Translate => special.translate,
        });
    }
    if !opts.timestamps {
        tokens.push(special.no_timestamps);
    }
    if !opts.prefix.is_empty() {
        let max_prefix_len = half as i64 - opts.max_tokens as i64;
        let n = opts.prefix.len() as i64;
        // Python's `prefix[-max_prefix_len:]`.
        let start = match max_prefix_len {
            0 => 0,
            m if m > 0 => (n - m).max(0),
            m => (-m).min(n),
        } as usize;
        tokens.extend_from_slice(&opts.prefix[start..]);
    }

    if let Some(language) = opts.language
        && !special.language_tokens().contains(&language)
    {
        return Err(Error::invalid(
            "language token",
            format!("one of {:?}", special.language_tokens()),
            language,
        ));
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= special.n_vocab) {
        return Err(Error::invalid(
            "prompt token",
            format!("an id < n_vocab = {}", special.n_vocab),
            bad,
        ));
    }
    if tokens.len() > opts.n_text_ctx {
        return Err(Error::invalid(
            "decoder prompt length",
            format!("at most n_text_ctx = {} tokens", opts.n_text_ctx),
            tokens.len(),
        ));
    }
    Ok(Prompt {
        tokens,
        sot_index,
        language_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DecodeOptions {
        DecodeOptions::default()
    }

    #[test]
    fn multilingual_prompt_has_language_and_task() {
        let s = SpecialTokens::openai(51865).unwrap();
        let mut o = opts();
        o.language = Some(s.language_begin + 2);
        o.task = Task::Translate;
        o.timestamps = false;
        let p = initial_tokens(&s, &o).unwrap();
        assert_eq!(p.tokens, vec![50258, 50261, 50358, 50363]);
        assert_eq!(
            (p.sot_index, p.language_index, p.sample_begin()),
            (0, Some(1), 4)
        );
        o.timestamps = true;
        o.language = None;
        o.task = Task::Transcribe;
        assert_eq!(
            initial_tokens(&s, &o).unwrap().tokens,
            vec![50258, 50259, 50359]
        );
    }

    #[test]
    fn english_only_prompt_is_sot_alone() {
        let s = SpecialTokens::openai(51864).unwrap();
        let mut o = opts();
        o.language = Some(s.language_begin);
        o.task = Task::Translate;
        assert_eq!(initial_tokens(&s, &o).unwrap().tokens, vec![50257]);
        o.timestamps = false;
        assert_eq!(initial_tokens(&s, &o).unwrap().tokens, vec![50257, 50362]);
    }

    #[test]
    fn previous_text_is_truncated_to_half_the_context() {
        let s = SpecialTokens::openai(51864).unwrap();
        let mut o = opts();
        o.prompt = (0..300).collect();
        o.prefix = vec![7, 8];
        let p = initial_tokens(&s, &o).unwrap();
        assert_eq!(p.tokens[0], s.sot_prev);
        assert_eq!(p.tokens[1], 300 - 223);
        assert_eq!(p.sot_index, 224);
        assert_eq!(&p.tokens[224..], &[50257, 7, 8]);
    }

    #[test]
    fn prefix_follows_python_slicing() {
        let s = SpecialTokens::openai(51864).unwrap();
        let mut o = opts();
        o.prefix = vec![1, 2, 3, 4, 5];
        o.max_tokens = 221; // limit 3
        assert_eq!(initial_tokens(&s, &o).unwrap().tokens, vec![50257, 3, 4, 5]);
        o.max_tokens = 224; // limit 0: keeps everything
        assert_eq!(
            initial_tokens(&s, &o).unwrap().tokens,
            vec![50257, 1, 2, 3, 4, 5]
        );
        o.max_tokens = 226; // limit -2: drops the first two
        assert_eq!(initial_tokens(&s, &o).unwrap().tokens, vec![50257, 3, 4, 5]);
    }

    #[test]
    fn bad_ids_are_rejected() {
        let s = SpecialTokens::openai(51865).unwrap();
        let mut o = opts();
        o.prefix = vec![60_000];
        assert!(initial_tokens(&s, &o).is_err());
        let mut o = opts();
        o.language = Some(5);
        assert!(initial_tokens(&s, &o).is_err());
        let mut o = opts();
        o.n_text_ctx = 2;
        assert!(initial_tokens(&s, &o).is_err());
    }
}
