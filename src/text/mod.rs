//! Text: the Whisper tokenizer, transcript normalization and error rates.
//!
//! These sit after decoding in hearken's data flow (token ids → text → scores) and need no
//! model: the tokenizer reads a model directory's `tokenizer.json` and `vocabulary.txt`,
//! the normalizers and error rates are plain string functions.
//!
//! - [`tokenizer`]: ids ↔ text for Whisper vocabularies, special tokens and languages.
//! - [`normalize`]: OpenAI's `EnglishTextNormalizer` and `BasicTextNormalizer`.
//! - [`mod@wer`]: word and character error rates, per utterance and per corpus.
//! - [`languages`]: Whisper's language codes and names.

pub mod languages;
pub mod normalize;
pub mod tokenizer;
pub mod wer;

pub use normalize::{BasicTextNormalizer, EnglishTextNormalizer};
pub use tokenizer::WhisperTokenizer;
pub use wer::{ErrorRate, cer, wer};
