//! Transcript normalization before scoring: ports of OpenAI Whisper's `BasicTextNormalizer`
//! and `EnglishTextNormalizer` (`whisper/normalizers`, v20240930).
//!
//! Word error rates are only comparable when both sides are normalized the same way, and
//! published Whisper numbers use these normalizers, so the ports follow the Python step by
//! step, quirks included. The regular expressions are written out as scanners with
//! Python's semantics (leftmost, non-overlapping matches; `\b`, `\w`, `\s` and `\d` over
//! Unicode); Unicode categories (`M`, `S`, `P`, `Mn`, letters and numbers) come from the
//! regex engine bundled with `tokenizers`, NFKC/NFKD from its normalizer.
//!
//! [`EnglishTextNormalizer`] covers, in OpenAI's order:
//! - lowercasing; removing `[...]`/`<...>` and `(...)` spans; removing the fillers `hmm`,
//!   `mm`, `mhm`, `mmm`, `uh`, `um`;
//! - all of OpenAI's contraction and title rules (`won't` → `will not`, `can't` → `can
//!   not`, `'re` → ` are`, `'s` → ` is`, `mr` → `mister`, `dr` → `doctor`, `gonna` →
//!   `going to`, …);
//! - commas between digits, periods not before a digit, symbols and diacritics (NFKD,
//!   `œ` → `oe`, `ß` → `ss`, …), keeping `.%$¢€£` for numbers;
//! - spelled-out numbers to digits, the whole of `EnglishNumberNormalizer` (cardinals,
//!   ordinals, plurals, decimals with "point", "and a half", "double"/"triple", signs,
//!   currencies, percent);
//! - British → American spelling for a subset of OpenAI's `english.json` (about 500 of
//!   its 1739 words: `-our`, `-ise`/`-isation`, `-yse`, doubled `l`, `-re`, and common
//!   single words such as `grey`, `programme`, `cheque`); the rest of the list is not
//!   applied;
//! - stray currency/percent symbols and whitespace.
//!
//! Not covered: integers beyond `i128` in the number grammar, and `BasicTextNormalizer`'s
//! `split_letters` splits on characters rather than extended grapheme clusters (the two
//! differ only for sequences the symbol removal already breaks up, such as emoji with
//! joiners). Like the Python, neither normalizer trims leading or trailing spaces.

mod numbers;
mod spelling;

use std::sync::OnceLock;

use tokenizers::utils::SysRegex;

/// Unicode classes the scanners need.
struct Classes {
    /// Marks, symbols and punctuation (`unicodedata.category(c)[0] in "MSP"`).
    msp: SysRegex,
    /// Nonspacing marks (`category == "Mn"`): diacritics after NFKD.
    mn: SysRegex,
    /// Python's `\w`: letters, numbers, underscore.
    word: SysRegex,
    /// Python's `\d`: decimal digits.
    digit: SysRegex,
}

fn classes() -> &'static Classes {
    static CLASSES: OnceLock<Classes> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let re = |p: &str| SysRegex::new(p).expect("constant Unicode class pattern compiles");
        Classes {
            msp: re(r"[\p{M}\p{S}\p{P}]"),
            mn: re(r"\p{Mn}"),
            word: re(r"[\p{L}\p{N}_]"),
            digit: re(r"\p{Nd}"),
        }
    })
}

fn char_matches(re: &SysRegex, c: char) -> bool {
    let mut buf = [0u8; 4];
    re.find_iter(c.encode_utf8(&mut buf)).next().is_some()
}

/// Python's `\w`.
fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        char_matches(&classes().word, c)
    }
}

/// Python's `\d`.
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        char_matches(&classes().digit, c)
    }
}

/// Python's `\s` and `str.isspace` (which also count the separators U+001C..U+001F).
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn nfkd(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut n = tokenizers::NormalizedString::from(s);
    n.nfkd();
    n.get().to_string()
}

fn nfkc(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut n = tokenizers::NormalizedString::from(s);
    n.nfkc();
    n.get().to_string()
}

/// `re.sub` with a hand-written matcher: scans left to right; where `matcher(s, i)` returns
/// `(end, replacement)` the span `i..end` is replaced and scanning resumes at `end`.
fn replace_matches(s: &str, matcher: impl Fn(&str, usize) -> Option<(usize, String)>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match matcher(s, i) {
            Some((end, replacement)) if end > i => {
                out.push_str(&replacement);
                i = end;
            }
            _ => {
                let c = s[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&s[i..i + c]);
                i += c;
            }
        }
    }
    out
}

fn char_at(s: &str, i: usize) -> Option<char> {
    s.get(i..)?.chars().next()
}

fn prev_is_word(s: &str, i: usize) -> bool {
    s[..i].chars().next_back().is_some_and(is_word)
}

/// `re.sub(r"[<\[][^>\]]*[>\]]", "", s)`.
fn remove_bracketed(s: &str) -> String {
    replace_matches(s, |s, i| {
        if !matches!(char_at(s, i)?, '<' | '[') {
            return None;
        }
        let close = s[i + 1..].find(['>', ']'])?;
        Some((i + 1 + close + 1, String::new()))
    })
}

/// `re.sub(r"\(([^)]+?)\)", "", s)`.
fn remove_parenthesized(s: &str) -> String {
    replace_matches(s, |s, i| {
        if char_at(s, i)? != '(' {
            return None;
        }
        let close = s[i + 1..].find(')')?;
        (close > 0).then(|| (i + 1 + close + 1, String::new()))
    })
}

/// `re.sub(r"\s+", " ", s)`.
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if is_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Non-ASCII letters that NFKD does not decompose.
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/basic.py#L6-L24
fn additional_diacritic(c: char) -> Option<&'static str> {
    Some(match c {
        'œ' => "oe",
        'Œ' => "OE",
        'ø' => "o",
        'Ø' => "O",
        'æ' => "ae",
        'Æ' => "AE",
        'ß' => "ss",
        'ẞ' => "SS",
        'đ' => "d",
        'Đ' => "D",
        'ð' => "d",
        'Ð' => "D",
        'þ' => "th",
        'Þ' => "th",
        'ł' => "l",
        'Ł' => "L",
        _ => return None,
    })
}

/// Byte offsets of the single-character matches of `re` in `s`, sorted.
fn match_starts(re: &SysRegex, s: &str) -> Vec<usize> {
    re.find_iter(s).map(|(start, _)| start).collect()
}

/// NFKD, then: characters in `keep` stay, letters NFKD leaves whole (`œ`, `ß`, `ł`, …) are
/// spelled out, nonspacing marks are dropped and other marks, symbols and punctuation
/// become spaces.
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/basic.py#L27-L43
pub fn remove_symbols_and_diacritics(s: &str, keep: &str) -> String {
    let s = nfkd(s);
    let c = classes();
    let msp = match_starts(&c.msp, &s);
    let mn = match_starts(&c.mn, &s);
    let mut out = String::with_capacity(s.len());
    for (i, ch) in s.char_indices() {
        if keep.contains(ch) {
            out.push(ch);
        } else if let Some(r) = additional_diacritic(ch) {
            out.push_str(r);
        } else if mn.binary_search(&i).is_ok() {
        } else if msp.binary_search(&i).is_ok() {
            out.push(' ');
        } else {
            out.push(ch);
        }
    }
    out
}

/// NFKC, then marks, symbols and punctuation become spaces (diacritics are kept).
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/basic.py#L46-L53
pub fn remove_symbols(s: &str) -> String {
    let s = nfkc(s);
    let msp = match_starts(&classes().msp, &s);
    s.char_indices()
        .map(|(i, ch)| {
            if msp.binary_search(&i).is_ok() {
                ' '
            } else {
                ch
            }
        })
        .collect()
}

/// Language-independent normalization: lowercase, drop bracketed and parenthesized spans,
/// turn symbols and punctuation into spaces, collapse whitespace.
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/basic.py#L56-L76
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BasicTextNormalizer {
    /// Also strip diacritics (NFKD, `é` → `e`).
    pub remove_diacritics: bool,
    /// Separate every character by spaces (for character error rates of languages
    /// written without spaces).
    pub split_letters: bool,
}

impl BasicTextNormalizer {
    /// Normalizes `s`.
    pub fn normalize(&self, s: &str) -> String {
        let s = s.to_lowercase();
        let s = remove_parenthesized(&remove_bracketed(&s));
        let s = if self.remove_diacritics {
            remove_symbols_and_diacritics(&s, "")
        } else {
            remove_symbols(&s)
        };
        let mut s = s.to_lowercase();
        if self.split_letters {
            let mut spaced = String::with_capacity(s.len() * 2);
            for c in s.chars() {
                if !spaced.is_empty() {
                    spaced.push(' ');
                }
                spaced.push(c);
            }
            s = spaced;
        }
        collapse_whitespace(&s)
    }
}

/// OpenAI's contraction and title rules, in order: `(literal, replacement, \b before)`;
/// every literal is followed by `\b`.
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/english.py#L468-L522
const REPLACERS: [(&str, &str, bool); 49] = [
    // common contractions
    ("won't", "will not", true),
    ("can't", "can not", true),
    ("let's", "let us", true),
    ("ain't", "aint", true),
    ("y'all", "you all", true),
    ("wanna", "want to", true),
    ("gotta", "got to", true),
    ("gonna", "going to", true),
    ("i'ma", "i am going to", true),
    ("imma", "i am going to", true),
    ("woulda", "would have", true),
    ("coulda", "could have", true),
    ("shoulda", "should have", true),
    ("ma'am", "madam", true),
    // contractions in titles/prefixes
    ("mr", "mister ", true),
    ("mrs", "missus ", true),
    ("st", "saint ", true),
    ("dr", "doctor ", true),
    ("prof", "professor ", true),
    ("capt", "captain ", true),
    ("gov", "governor ", true),
    ("ald", "alderman ", true),
    ("gen", "general ", true),
    ("sen", "senator ", true),
    ("rep", "representative ", true),
    ("pres", "president ", true),
    ("rev", "reverend ", true),
    ("hon", "honorable ", true),
    ("asst", "assistant ", true),
    ("assoc", "associate ", true),
    ("lt", "lieutenant ", true),
    ("col", "colonel ", true),
    ("jr", "junior ", true),
    ("sr", "senior ", true),
    ("esq", "esquire ", true),
    // perfect tenses
    ("'d been", " had been", false),
    ("'s been", " has been", false),
    ("'d gone", " had gone", false),
    ("'s gone", " has gone", false),
    ("'d done", " had done", false),
    ("'s got", " has got", false),
    // general contractions
    ("n't", " not", false),
    ("'re", " are", false),
    ("'s", " is", false),
    ("'d", " would", false),
    ("'ll", " will", false),
    ("'t", " not", false),
    ("'ve", " have", false),
    ("'m", " am", false),
];

/// `re.sub(r"\b<literal>\b", replacement, s)` (leading `\b` only if `lead`).
fn replace_word(s: &str, literal: &str, replacement: &str, lead: bool) -> String {
    if !s.contains(literal) {
        return s.to_string();
    }
    replace_matches(s, |s, i| {
        if !s[i..].starts_with(literal) || (lead && prev_is_word(s, i)) {
            return None;
        }
        let end = i + literal.len();
        if char_at(s, end).is_some_and(is_word) {
            return None;
        }
        Some((end, replacement.to_string()))
    })
}

/// Whisper's English normalizer: [`BasicTextNormalizer`]'s cleaning plus contractions,
/// fillers, spelled-out numbers and British spellings (see the module documentation for
/// exactly what is covered).
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/english.py#L465-L550
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnglishTextNormalizer;

impl EnglishTextNormalizer {
    /// Normalizes `s`.
    pub fn normalize(&self, s: &str) -> String {
        let s = s.to_lowercase();
        let s = remove_parenthesized(&remove_bracketed(&s));
        // `\b(hmm|mm|mhm|mmm|uh|um)\b`: a whole word.
        let s = replace_matches(&s, |s, i| {
            if prev_is_word(s, i) {
                return None;
            }
            let len = s[i..].find(|c: char| !is_word(c)).unwrap_or(s.len() - i);
            matches!(&s[i..i + len], "hmm" | "mm" | "mhm" | "mmm" | "uh" | "um")
                .then(|| (i + len, String::new()))
        });
        // `\s+'` → `'`.
        let mut s = replace_matches(&s, |s, i| {
            if !is_space(char_at(s, i)?) {
                return None;
            }
            let rest = s[i..].trim_start_matches(is_space);
            rest.starts_with('\'')
                .then(|| (s.len() - rest.len() + 1, "'".to_string()))
        });
        for (literal, replacement, lead) in REPLACERS {
            s = replace_word(&s, literal, replacement, lead);
        }
        // `(\d),(\d)` → `\1\2`.
        let s = replace_matches(&s, |s, i| {
            let a = char_at(s, i).filter(|&c| is_digit(c))?;
            let rest = s[i + a.len_utf8()..].strip_prefix(',')?;
            let b = rest.chars().next().filter(|&c| is_digit(c))?;
            Some((s.len() - rest.len() + b.len_utf8(), format!("{a}{b}")))
        });
        // `\.([^0-9]|$)` → ` \1`: periods not followed by a number.
        let s = replace_matches(&s, |s, i| {
            if char_at(s, i)? != '.' {
                return None;
            }
            match char_at(s, i + 1) {
                None => Some((i + 1, " ".to_string())),
                Some(c) if !c.is_ascii_digit() => Some((i + 1 + c.len_utf8(), format!(" {c}"))),
                Some(_) => None,
            }
        });
        let s = remove_symbols_and_diacritics(&s, ".%$¢€£");
        let s = numbers::normalize_numbers(&s);
        let s = s
            .split(is_space)
            .filter(|w| !w.is_empty())
            .map(|w| spelling::american(w).unwrap_or_else(|| w.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        // Symbols not next to a number: `[.$¢€£]([^0-9])` → ` \1`, `([^0-9])%` → `\1 `.
        let s = replace_matches(&s, |s, i| {
            if !matches!(char_at(s, i)?, '.' | '$' | '¢' | '€' | '£') {
                return None;
            }
            let sym = char_at(s, i)?.len_utf8();
            let c = char_at(s, i + sym).filter(|c| !c.is_ascii_digit())?;
            Some((i + sym + c.len_utf8(), format!(" {c}")))
        });
        let s = replace_matches(&s, |s, i| {
            let c = char_at(s, i).filter(|c| !c.is_ascii_digit())?;
            (char_at(s, i + c.len_utf8())? == '%').then(|| (i + c.len_utf8() + 1, format!("{c} ")))
        });
        collapse_whitespace(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en(s: &str) -> String {
        EnglishTextNormalizer.normalize(s).trim().to_string()
    }

    #[test]
    fn english_removes_punctuation_case_and_fillers() {
        assert_eq!(
            en("Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."),
            "ever tried ever failed no matter try again fail again fail better"
        );
        assert_eq!(
            en("Ever tried ever failed, no matter try again, fail again, fail better."),
            "ever tried ever failed no matter try again fail again fail better"
        );
        assert_eq!(
            en("Um, I think [MUSIC] it's (inaudible) fine, uh."),
            "i think it is fine"
        );
        assert_eq!(en("Hmm... mmm okay"), "okay");
    }

    #[test]
    fn differently_punctuated_transcripts_score_zero_wer() {
        let reference = "Ever tried ever failed, no matter try again, fail again, fail better.";
        let hypothesis = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.";
        let n = EnglishTextNormalizer;
        let score = crate::text::wer(&n.normalize(reference), &n.normalize(hypothesis));
        assert_eq!(score, (0, 12));
        // Unnormalized, every sentence boundary costs.
        assert!(crate::text::wer(reference, hypothesis).0 > 0);
    }

    #[test]
    fn english_contractions_and_titles() {
        assert_eq!(
            en("I won't go, we can't stay"),
            "i will not go we can not stay"
        );
        assert_eq!(
            en("They're gonna say you'd been there"),
            "they are going to say you had been there"
        );
        assert_eq!(
            en("Mr. Smith met Dr Jones"),
            "mister smith met doctor jones"
        );
        assert_eq!(
            en("I'm sure he'll say we've"),
            "i am sure he will say we have"
        );
        // Leftover apostrophes are punctuation.
        assert_eq!(en("rock 'n' roll"), "rock n roll");
    }

    #[test]
    fn english_numbers_and_spelling() {
        assert_eq!(en("Twenty five colours"), "25 colors");
        assert_eq!(en("It costs $1,500.50 today"), "it costs $1500.50 today");
        assert_eq!(
            en("the theatre's programme was realised"),
            "the theater is program was realized"
        );
        assert_eq!(en("one hundred and one percent"), "101%");
        assert_eq!(en("He was 1st, she was second"), "he was 1st she was 2nd");
        assert_eq!(en("Café naïve façade"), "cafe naive facade");
    }

    #[test]
    fn english_symbols_next_to_numbers_survive() {
        assert_eq!(en("50% of $5 and 3.14"), "50% of $5 and 3.14");
        assert_eq!(en("a % sign and a $ sign."), "a sign and a sign");
    }

    #[test]
    fn basic_normalizer() {
        let basic = BasicTextNormalizer::default();
        assert_eq!(
            basic.normalize("Héllo, World! [noise] (aside) ok"),
            "héllo world ok"
        );
        let strip = BasicTextNormalizer {
            remove_diacritics: true,
            split_letters: false,
        };
        assert_eq!(
            strip.normalize("Héllo, Wörld — Œuvre"),
            "hello world oeuvre"
        );
        let split = BasicTextNormalizer {
            remove_diacritics: false,
            split_letters: true,
        };
        assert_eq!(split.normalize("你好，世界"), "你 好 世 界");
    }

    #[test]
    fn scanners_follow_python_regex_semantics() {
        assert_eq!(remove_bracketed("a <b> c [d] e [f> g"), "a  c  e  g");
        assert_eq!(remove_parenthesized("a () b (c) d ((e) f"), "a () b  d  f");
        assert_eq!(collapse_whitespace(" a \t\n b  "), " a b ");
        assert_eq!(
            replace_word("mr mrs mr. mrx", "mr", "mister ", true),
            "mister  mrs mister . mrx"
        );
        assert!(is_word('é') && is_word('٣') && !is_word('-'));
        assert!(is_digit('٣') && !is_digit('½'));
    }
}
