//! The Whisper tokenizer: ids → text with GPT-2's byte-level mapping, text → ids with the
//! Hugging Face `tokenizers` crate, and the special tokens by name.
//!
//! Decoding is done here rather than by `tokenizers` because the files Whisper models ship
//! with disagree on the vocabulary's tail: older `tokenizer.json` files stop at
//! `<|notimestamps|>` and know no timestamp tokens, while `vocabulary.txt` (CTranslate2
//! packages) lists every id, `<|0.00|>` … `<|30.00|>` included. With `vocabulary.txt` its
//! strings are authoritative; without it, the timestamps are added after `<|notimestamps|>`
//! as OpenAI lays them out. Every id's bytes sit in one flat buffer, so decoding is a copy
//! per token into the output and one UTF-8 conversion (invalid sequences become U+FFFD, as
//! tiktoken's `errors="replace"`).
//!
//! Encoding (prompts, the blank and non-speech token ids) uses `tokenizer.json` through
//! `tokenizers`, whose byte-level BPE with GPT-2's split pattern is what tiktoken computes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::languages::{LANGUAGES, language_code};
use crate::decode::whisper::{Detokenize, SpecialTokens};
use crate::{Error, Result};

/// GPT-2's `bytes_to_unicode`, inverted: index a char (`< 324`) to get its byte.
// https://github.com/openai/gpt-2/blob/9b63575ef42771a015060c964af2c3da4cf7c8ab/src/encoder.py#L9-L28
fn unicode_to_byte() -> [i16; 324] {
    let mut table = [-1i16; 324];
    let mut n = 0;
    for b in 0..=255u16 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        table[c as usize] = b as i16;
    }
    table
}

/// Whisper's tokenizer. Immutable after loading; share it through `Arc`.
pub struct WhisperTokenizer {
    /// Token bytes, concatenated; id `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    /// `<|...|>` tokens at or after `<|endoftext|>`, by name.
    special: HashMap<String, u32>,
    eot: u32,
    timestamp_begin: Option<u32>,
    encoder: tokenizers::Tokenizer,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("n_vocab", &self.n_vocab())
            .field("eot", &self.eot)
            .field("timestamp_begin", &self.timestamp_begin)
            .finish_non_exhaustive()
    }
}

fn bad_file(path: &Path, expected: &str, got: impl std::fmt::Display) -> Error {
    Error::invalid(format!("tokenizer file {}", path.display()), expected, got)
}

impl WhisperTokenizer {
    /// Loads `tokenizer.json` and, if present, `vocabulary.txt` from a model directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let vocabulary = dir.join("vocabulary.txt");
        let vocabulary = vocabulary.is_file().then_some(vocabulary);
        Self::from_files(dir.join("tokenizer.json"), vocabulary.as_deref())
    }

    /// Loads a Hugging Face `tokenizer.json` (for encoding, and for decoding when no
    /// vocabulary is given) and optionally a `vocabulary.txt`: one token per line, line
    /// index = id, GPT-2 byte-level strings for text tokens and `<|...|>` for the special
    /// ones.
    ///
    /// Fails with [`Error::Io`] if a file cannot be read and [`Error::InvalidInput`] if it is
    /// malformed, lacks `<|endoftext|>`, or the two files disagree on its id.
    pub fn from_files(
        tokenizer_json: impl AsRef<Path>,
        vocabulary_txt: Option<&Path>,
    ) -> Result<Self> {
        let json_path = tokenizer_json.as_ref();
        let raw = std::fs::read(json_path).map_err(|e| Error::io(json_path, e))?;
        let encoder = tokenizers::Tokenizer::from_bytes(&raw)
            .map_err(|e| bad_file(json_path, "a Hugging Face tokenizer.json", e))?;
        let (strings, path): (Vec<String>, PathBuf) = match vocabulary_txt {
            Some(p) => (read_vocabulary(p)?, p.to_path_buf()),
            None => (vocabulary_from_json(&encoder), json_path.to_path_buf()),
        };
        let eot = strings
            .iter()
            .position(|s| s == "<|endoftext|>")
            .ok_or_else(|| bad_file(&path, "a vocabulary with <|endoftext|>", "none"))?
            as u32;
        if let Some(json_eot) = encoder.token_to_id("<|endoftext|>")
            && json_eot != eot
        {
            return Err(bad_file(
                &path,
                &format!(
                    "<|endoftext|> at id {json_eot}, as in {}",
                    json_path.display()
                ),
                eot,
            ));
        }

        let decoder = unicode_to_byte();
        let mut bytes = Vec::with_capacity(strings.iter().map(String::len).sum());
        let mut offsets = Vec::with_capacity(strings.len() + 1);
        let mut special = HashMap::new();
        offsets.push(0u32);
        for (id, s) in strings.iter().enumerate() {
            if id as u32 >= eot {
                bytes.extend_from_slice(s.as_bytes());
                special.insert(s.clone(), id as u32);
            } else {
                for c in s.chars() {
                    match decoder.get(c as usize) {
                        Some(&b) if b >= 0 => bytes.push(b as u8),
                        _ => {
                            return Err(bad_file(
                                &path,
                                &format!("GPT-2 byte-level characters in token {id}"),
                                format!("{c:?} in {s:?}"),
                            ));
                        }
                    }
                }
            }
            let end = u32::try_from(bytes.len())
                .map_err(|_| bad_file(&path, "under 4 GiB of token text", bytes.len()))?;
            offsets.push(end);
        }
        let timestamp_begin = special.get("<|0.00|>").copied();
        Ok(WhisperTokenizer {
            bytes,
            offsets,
            special,
            eot,
            timestamp_begin,
            encoder,
        })
    }

    /// Number of ids, timestamps included.
    pub fn n_vocab(&self) -> usize {
        self.offsets.len() - 1
    }

    /// `<|endoftext|>`: ids below are text, ids from it on special.
    pub fn eot(&self) -> u32 {
        self.eot
    }

    /// `<|0.00|>`, if the vocabulary has timestamps.
    pub fn timestamp_begin(&self) -> Option<u32> {
        self.timestamp_begin
    }

    /// The raw bytes of a token (its literal text for special tokens).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        let (&start, &end) = (self.offsets.get(i)?, self.offsets.get(i + 1)?);
        self.bytes.get(start as usize..end as usize)
    }

    fn is_timestamp(&self, id: u32) -> bool {
        self.timestamp_begin.is_some_and(|tb| id >= tb)
    }

    fn decode_where(&self, ids: &[u32], keep: impl Fn(u32) -> bool) -> String {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            if keep(id)
                && let Some(b) = self.token_bytes(id)
            {
                out.extend_from_slice(b);
            }
        }
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Text of `ids`. Timestamp tokens are always left out (OpenAI's `Tokenizer.decode`);
    /// other special tokens (`<|en|>`, `<|endoftext|>`) appear as their names unless
    /// `skip_special`. Ids outside the vocabulary are skipped.
    // https://github.com/openai/whisper/blob/v20240930/whisper/tokenizer.py#L164-L166
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        self.decode_where(ids, |id| {
            !(self.is_timestamp(id) || (skip_special && id >= self.eot))
        })
    }

    /// Text of `ids` with everything shown, timestamps as `<|1.08|>` (OpenAI's
    /// `decode_with_timestamps`).
    // https://github.com/openai/whisper/blob/v20240930/whisper/tokenizer.py#L168-L173
    pub fn decode_with_timestamps(&self, ids: &[u32]) -> String {
        self.decode_where(ids, |_| true)
    }

    /// Token ids of `text`, without special tokens added (special-token names inside
    /// `text` are recognised as such). Fails with [`Error::InvalidInput`] if the tokenizer
    /// cannot encode it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encoder
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid("text to encode", "text the tokenizer accepts", e))
    }

    /// The id of a special token by name (`"<|startoftranscript|>"`).
    pub fn special_token(&self, name: &str) -> Option<u32> {
        self.special.get(name).copied()
    }

    /// The token of a language given by code, English name or alias (`"de"`, `"German"`).
    pub fn language_token(&self, code_or_name: &str) -> Option<u32> {
        let code = language_code(code_or_name)?;
        self.special_token(&format!("<|{code}|>")).or_else(|| {
            // Hebrew's pre-2005 code, used by some older vocabularies.
            (code == "he")
                .then(|| self.special_token("<|iw|>"))
                .flatten()
        })
    }

    /// The language code of a language token (`<|de|>` → `"de"`; `<|iw|>` → `"he"`).
    pub fn language_code(&self, id: u32) -> Option<&'static str> {
        let name = std::str::from_utf8(self.token_bytes(id)?).ok()?;
        let code = name.strip_prefix("<|")?.strip_suffix("|>")?;
        let code = if code == "iw" { "he" } else { code };
        LANGUAGES.iter().find(|(c, _)| *c == code).map(|(c, _)| *c)
    }

    /// The ids of the special tokens, for the decoder. `multilingual` follows OpenAI
    /// (`n_vocab >= 51865`): English-only vocabularies also contain language tokens, but
    /// their models are prompted without them. Fails with [`Error::InvalidInput`] if a
    /// required token is missing.
    pub fn special_tokens(&self) -> Result<SpecialTokens> {
        let need = |name: &str| {
            self.special_token(name).ok_or_else(|| {
                Error::invalid("Whisper vocabulary", format!("a {name} token"), "none")
            })
        };
        let sot = need("<|startoftranscript|>")?;
        let translate = need("<|translate|>")?;
        // Every id between them is a language, whatever its code (some older files name
        // Hebrew `<|iw|>`).
        let n_languages = translate.saturating_sub(sot + 1);
        let timestamp_begin = self.timestamp_begin.ok_or_else(|| {
            Error::invalid("Whisper vocabulary", "timestamp tokens (<|0.00|>)", "none")
        })?;
        let special = SpecialTokens {
            n_vocab: self.n_vocab(),
            eot: self.eot,
            sot,
            language_begin: sot + 1,
            n_languages,
            translate,
            transcribe: need("<|transcribe|>")?,
            sot_lm: self.special_token("<|startoflm|>"),
            sot_prev: need("<|startofprev|>")?,
            no_speech: self
                .special_token("<|nospeech|>")
                .or_else(|| self.special_token("<|nocaptions|>")),
            no_timestamps: need("<|notimestamps|>")?,
            timestamp_begin,
            multilingual: self.n_vocab() >= 51865,
        };
        special.validate()?;
        Ok(special)
    }

    /// `encode(" ")`: the blank token(s) suppressed at the first sampled position.
    pub fn blank_tokens(&self) -> Result<Vec<u32>> {
        self.encode(" ")
    }

    /// OpenAI's non-speech tokens, suppressed by default (`suppress_tokens="-1"`): symbols
    /// that start speaker tags and sound annotations (`♪♪♪`, `( SPEAKING FOREIGN LANGUAGE
    /// )`, `[DAVID]`), keeping basic punctuation, and `" -"` and `" '"` at word starts.
    // https://github.com/openai/whisper/blob/v20240930/whisper/tokenizer.py#L241-L275
    pub fn non_speech_tokens(&self) -> Result<Vec<u32>> {
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
            .chars()
            .map(String::from)
            .collect();
        symbols.extend(
            "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
                .split(' ')
                .map(String::from),
        );
        // Between U+2640 and U+267F: when they take several tokens, their first (shared
        // UTF-8 prefix) token is safe to suppress.
        let miscellaneous: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();

        let mut result = Vec::new();
        for s in [" -", " '"] {
            result.extend(self.encode(s)?.first().copied());
        }
        for symbol in symbols.iter().chain(&miscellaneous) {
            let is_misc = miscellaneous.contains(symbol);
            for text in [symbol.clone(), format!(" {symbol}")] {
                let tokens = self.encode(&text)?;
                if tokens.len() == 1 || is_misc {
                    result.extend(tokens.first().copied());
                }
            }
        }
        result.sort_unstable();
        result.dedup();
        Ok(result)
    }
}

impl Detokenize for WhisperTokenizer {
    /// OpenAI's `Tokenizer.decode`: timestamps dropped, other special tokens kept.
    fn detokenize(&self, tokens: &[u32]) -> String {
        self.decode(tokens, false)
    }
}

/// Reads `vocabulary.txt`: one token string per line, line index = id.
fn read_vocabulary(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    Ok(lines)
}

/// Token strings by id from `tokenizer.json`, with OpenAI's 1501 timestamps appended after
/// `<|notimestamps|>` when the file has none.
fn vocabulary_from_json(encoder: &tokenizers::Tokenizer) -> Vec<String> {
    let mut vocab = encoder.get_vocab(true);
    if !vocab.contains_key("<|0.00|>")
        && let Some(&nt) = vocab.get("<|notimestamps|>")
    {
        // https://github.com/openai/whisper/blob/v20240930/whisper/tokenizer.py#L350
        for i in 0..1501u32 {
            vocab.insert(format!("<|{:.2}|>", f64::from(i) * 0.02), nt + 1 + i);
        }
    }
    let n = vocab.values().max().map_or(0, |&m| m as usize + 1);
    let mut strings = vec![String::new(); n];
    for (s, id) in vocab {
        strings[id as usize] = s;
    }
    strings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_a_bijection() {
        let t = unicode_to_byte();
        let mut seen = [false; 256];
        for &b in t.iter().filter(|&&b| b >= 0) {
            assert!(!seen[b as usize]);
            seen[b as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(t['Ġ' as usize], b' ' as i16);
        assert_eq!(t['Ċ' as usize], b'\n' as i16);
        assert_eq!(t['a' as usize], b'a' as i16);
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;
    use std::path::Path;

    /// A tiny byte-level BPE vocabulary in the shape of Whisper's older `tokenizer.json`:
    /// text tokens 0..7, `<|endoftext|>` 7, `<|startoftranscript|>` 8, one language, the
    /// task and prompt tokens, `<|nocaptions|>` 14, `<|notimestamps|>` 15, no timestamps.
    fn write_fixture(dir: &Path, vocabulary_eot: usize) {
        let specials = [
            "<|endoftext|>",
            "<|startoftranscript|>",
            "<|en|>",
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nocaptions|>",
            "<|notimestamps|>",
        ];
        let added: Vec<serde_json::Value> = specials
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({"id": 7 + i, "content": s, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                "vocab": {"a": 0, "b": 1, "Ġ": 2, "Ġa": 3, "ab": 4, "Ã": 5, "©": 6},
                "merges": ["Ġ a", "a b"]}
        });
        std::fs::write(dir.join("tokenizer.json"), json.to_string()).unwrap();
        let mut lines: Vec<&str> = vec!["a", "b", "Ġ", "Ġa", "ab", "Ã", "©"];
        lines.insert(vocabulary_eot.min(7), "<|endoftext|>");
        lines.truncate(8);
        lines.extend(&specials[1..]);
        lines.extend(["<|0.00|>", "<|0.02|>", "<|0.04|>"]);
        std::fs::write(dir.join("vocabulary.txt"), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn synthetic_vocabulary_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), 7);
        let tok = WhisperTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(
            (tok.n_vocab(), tok.eot(), tok.timestamp_begin()),
            (19, 7, Some(16))
        );
        assert_eq!(tok.decode(&[3, 4, 5, 6], false), " aabé");
        assert_eq!(
            tok.decode(&[8, 9, 11, 3, 16, 7], false),
            "<|startoftranscript|><|en|><|transcribe|> a<|endoftext|>"
        );
        assert_eq!(tok.decode(&[8, 9, 11, 3, 16, 7], true), " a");
        assert_eq!(
            tok.decode_with_timestamps(&[16, 3, 17]),
            "<|0.00|> a<|0.02|>"
        );
        assert_eq!(tok.decode(&[5, 99], true), "\u{FFFD}");
        assert_eq!(tok.encode(" a").unwrap(), vec![3]);
        assert_eq!(tok.encode("ab").unwrap(), vec![4]);
        assert_eq!(tok.blank_tokens().unwrap(), vec![2]);
        assert_eq!(tok.language_token("English"), Some(9));
        assert_eq!(tok.language_code(9), Some("en"));
        assert_eq!(tok.language_code(3), None);

        let s = tok.special_tokens().unwrap();
        assert_eq!((s.sot, s.language_begin, s.n_languages), (8, 9, 1));
        assert_eq!(
            (s.translate, s.transcribe, s.sot_lm, s.sot_prev),
            (10, 11, Some(12), 13)
        );
        assert_eq!(
            (s.no_speech, s.no_timestamps, s.timestamp_begin),
            (Some(14), 15, 16)
        );
        assert!(!s.multilingual);
        assert_eq!(
            crate::decode::Detokenize::detokenize(&tok, &[16, 3, 17]),
            " a"
        );
    }

    #[test]
    fn without_vocabulary_the_timestamps_are_synthesized() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), 7);
        let tok = WhisperTokenizer::from_files(dir.path().join("tokenizer.json"), None).unwrap();
        assert_eq!(
            (tok.n_vocab(), tok.timestamp_begin()),
            (16 + 1501, Some(16))
        );
        assert_eq!(
            tok.decode_with_timestamps(&[16 + 54, 16 + 1500]),
            "<|1.08|><|30.00|>"
        );
        assert_eq!(tok.decode(&[3, 4], false), " aab");
    }

    #[test]
    fn inconsistent_or_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), 6);
        let err = WhisperTokenizer::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("<|endoftext|>"), "{err}");
        std::fs::write(
            dir.path().join("vocabulary.txt"),
            "a\n\u{1F600}\n<|endoftext|>\n",
        )
        .unwrap();
        assert!(WhisperTokenizer::from_dir(dir.path()).is_err());
        assert!(matches!(
            WhisperTokenizer::from_dir(dir.path().join("absent")),
            Err(Error::Io { .. })
        ));
        std::fs::write(dir.path().join("tokenizer.json"), "{").unwrap();
        assert!(WhisperTokenizer::from_dir(dir.path()).is_err());
    }
}

/// Checks against the real vocabularies the project's setup fetches
/// (`models/ct2/whisper-base`, multilingual, and `models/ct2/whisper-tiny.en`); skipped
/// with a message when they are absent, failing instead under CI. `HEARKEN_MODELS_DIR`
/// points elsewhere than `models/`.
#[cfg(test)]
mod real_vocabulary_tests {
    use super::*;

    fn model_dir(name: &str) -> Option<PathBuf> {
        let root = std::env::var_os("HEARKEN_MODELS_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
            PathBuf::from,
        );
        let dir = root.join("ct2").join(name);
        if dir.join("tokenizer.json").is_file() && dir.join("vocabulary.txt").is_file() {
            return Some(dir);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: run `bash models/setup.sh`",
            dir.display()
        );
        eprintln!(
            "skipping: {} absent (run `bash models/setup.sh`)",
            dir.display()
        );
        None
    }

    fn check(name: &str, n_vocab: usize) {
        let Some(dir) = model_dir(name) else { return };
        let tok = WhisperTokenizer::from_dir(&dir).unwrap();
        assert_eq!(tok.n_vocab(), n_vocab);
        let special = tok.special_tokens().unwrap();
        assert_eq!(special, SpecialTokens::openai(n_vocab).unwrap());

        // tokenizer.json alone gives the same bytes for every id, timestamps included.
        let json_only = WhisperTokenizer::from_files(dir.join("tokenizer.json"), None).unwrap();
        assert_eq!(json_only.n_vocab(), n_vocab);
        for id in 0..n_vocab as u32 {
            assert_eq!(tok.token_bytes(id), json_only.token_bytes(id), "id {id}");
        }

        let text = " Hello world, this is Whisper. Ünïcödé — 日本語です! 1.08 ♪";
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, true), text);
        assert_eq!(tok.blank_tokens().unwrap(), vec![220]);
        let tb = special.timestamp_begin;
        assert_eq!(
            tok.decode_with_timestamps(&[tb, ids[0], tb + 54]),
            "<|0.00|> Hello<|1.08|>"
        );
        assert_eq!(
            tok.decode(&[special.sot, tb, ids[0], special.eot], true),
            " Hello"
        );
        assert_eq!(
            tok.language_token("german"),
            Some(special.language_begin + 2)
        );
        assert_eq!(tok.language_code(special.language_begin + 2), Some("de"));
        let hebrew = special.language_begin + 20;
        assert_eq!(
            (tok.language_token("hebrew"), tok.language_code(hebrew)),
            (Some(hebrew), Some("he"))
        );

        // OpenAI's non-speech tokens are the text ids of the model's `suppress_tokens`.
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let suppress: Vec<u32> = config["suppress_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .filter(|&id| id < special.eot)
            .collect();
        assert_eq!(tok.non_speech_tokens().unwrap(), suppress);
    }

    #[test]
    fn real_vocabulary_whisper_base() {
        check("whisper-base", 51865);
    }

    #[test]
    fn real_vocabulary_whisper_tiny_en() {
        check("whisper-tiny.en", 51864);
    }
}
