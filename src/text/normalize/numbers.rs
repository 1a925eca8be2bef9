//! Spelled-out numbers → digits: a port of OpenAI's `EnglishNumberNormalizer`.
//!
//! "twenty five" → "25", "one oh one" → "101", "two point five" → "2.5", "$20 million" →
//! "$20000000", "fifty percent" → "50%", "1960s" and "twenty first" keep their suffixes,
//! "double seven" → "77". Quirks kept for comparable error rates: "ninth" is not a number
//! word (OpenAI spells its ordinal "nineth"), a lone "1" becomes "one", "point" vanishes
//! before a non-decimal number word, digits of any script count ("٣" → "3"). Values are
//! `i128` (about 10^38), beyond which Python's integers keep going and this port starts a
//! new number.

use super::{is_digit, is_word, replace_matches};

// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/english.py#L26-L163

const ONES: [&str; 19] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

const MULTIPLIERS: [&str; 12] = [
    "hundred",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
];

fn zeros(w: &str) -> bool {
    matches!(w, "o" | "oh" | "zero")
}

fn ones(w: &str) -> Option<i128> {
    ONES.iter().position(|&n| n == w).map(|i| i as i128 + 1)
}

/// `ones_plural` and `ones_ordinal`: (value, suffix).
fn ones_suffixed(w: &str) -> Option<(i128, &'static str)> {
    match w {
        "zeroth" => return Some((0, "th")),
        "first" => return Some((1, "st")),
        "second" => return Some((2, "nd")),
        "third" => return Some((3, "rd")),
        "fifth" => return Some((5, "th")),
        "twelfth" => return Some((12, "th")),
        "sixes" => return Some((6, "s")),
        _ => {}
    }
    for (i, name) in ONES.iter().enumerate() {
        let value = i as i128 + 1;
        if value != 6 && w.strip_suffix('s') == Some(name) {
            return Some((value, "s"));
        }
        if value > 3 && value != 5 && value != 12 {
            let ordinal_suffix = if name.ends_with('t') { "h" } else { "th" };
            if w.strip_suffix(ordinal_suffix) == Some(name) {
                return Some((value, "th"));
            }
        }
    }
    None
}

fn tens(w: &str) -> Option<i128> {
    TENS.iter()
        .position(|&n| n == w)
        .map(|i| (i as i128 + 2) * 10)
}

/// `tens_plural` ("twenties") and `tens_ordinal` ("twentieth").
fn tens_suffixed(w: &str) -> Option<(i128, &'static str)> {
    TENS.iter().enumerate().find_map(|(i, name)| {
        let stem = &name[..name.len() - 1];
        let value = (i as i128 + 2) * 10;
        match w.strip_prefix(stem)? {
            "ies" => Some((value, "s")),
            "ieth" => Some((value, "th")),
            _ => None,
        }
    })
}

fn multipliers(w: &str) -> Option<i128> {
    MULTIPLIERS
        .iter()
        .position(|&n| n == w)
        .map(|i| if i == 0 { 100 } else { 1000i128.pow(i as u32) })
}

fn multipliers_suffixed(w: &str) -> Option<(i128, &'static str)> {
    if let Some(m) = w.strip_suffix('s').and_then(multipliers) {
        return Some((m, "s"));
    }
    w.strip_suffix("th")
        .and_then(multipliers)
        .map(|m| (m, "th"))
}

fn preceding_prefixer(w: &str) -> Option<&'static str> {
    match w {
        "minus" | "negative" => Some("-"),
        "plus" | "positive" => Some("+"),
        _ => None,
    }
}

fn following_prefixer(w: &str) -> Option<&'static str> {
    match w {
        "pound" | "pounds" => Some("£"),
        "euro" | "euros" => Some("€"),
        "dollar" | "dollars" => Some("$"),
        "cent" | "cents" => Some("¢"),
        _ => None,
    }
}

const PREFIXES: [char; 6] = ['-', '+', '£', '€', '$', '¢'];

fn specials(w: &str) -> bool {
    matches!(w, "and" | "double" | "triple" | "point")
}

/// `self.words`: everything the number grammar knows.
fn is_number_word(w: &str) -> bool {
    zeros(w)
        || ones(w).is_some()
        || ones_suffixed(w).is_some()
        || tens(w).is_some()
        || tens_suffixed(w).is_some()
        || multipliers(w).is_some()
        || multipliers_suffixed(w).is_some()
        || preceding_prefixer(w).is_some()
        || following_prefixer(w).is_some()
        || matches!(w, "per" | "percent")
        || specials(w)
}

fn decimals(w: &str) -> bool {
    ones(w).is_some() || tens(w).is_some() || zeros(w)
}

/// `re.match(r"^\d+(\.\d+)?$", s)`: Python's `\d` is any decimal digit (`٣` too).
fn is_arabic(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.chars().all(is_digit);
    digits(int) && frac.is_none_or(digits)
}

/// The value of a decimal digit. Unicode encodes each script's digits as runs of ten
/// consecutive code points from zero, so a digit's value is its distance from the start
/// of its run of digits, modulo 10.
fn digit_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return c.to_digit(10);
    }
    if !is_digit(c) {
        return None;
    }
    let mut steps = 0;
    let mut code = c as u32;
    while let Some(prev) = code.checked_sub(1).and_then(char::from_u32)
        && is_digit(prev)
    {
        steps += 1;
        code -= 1;
    }
    Some(steps % 10)
}

/// Python's `Fraction(s)` for decimal strings: `(numerator digits, decimal places)`.
fn to_fraction(s: &str) -> Option<(i128, u32)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut n: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        n = n
            .checked_mul(10)?
            .checked_add(i128::from(digit_value(c)?))?;
    }
    Some((n, frac.chars().count() as u32))
}

/// `Fraction(value) * multiplier` if it is an integer.
fn times_if_integer(value: &str, multiplier: i128) -> Option<i128> {
    let (n, places) = to_fraction(value)?;
    let p = n.checked_mul(multiplier)?;
    let d = 10i128.checked_pow(places)?;
    (p % d == 0).then_some(p / d)
}

#[derive(Debug, Clone)]
enum Value {
    Int(i128),
    Str(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// Python's `str(value or "")`: 0 and "" are falsy.
fn or_empty(value: &Option<Value>) -> String {
    match value {
        None | Some(Value::Int(0)) => String::new(),
        Some(v) => v.to_string(),
    }
}

/// `value[:-1] + digit` when the value ends with the tens' zero.
fn replace_last_zero(value: &str, ones: i128) -> String {
    match value.strip_suffix('0') {
        Some(head) => format!("{head}{ones}"),
        None => format!("{value}{ones}"),
    }
}

/// `before + residual * multiplier`, `value // 1000 * 1000 + value % 1000 * multiplier`.
fn scale(value: i128, multiplier: i128) -> Option<i128> {
    (value / 1000 * 1000).checked_add((value % 1000).checked_mul(multiplier)?)
}

#[derive(Default)]
struct Words {
    prefix: Option<&'static str>,
    value: Option<Value>,
    out: Vec<String>,
}

impl Words {
    /// OpenAI's `output`: emit (with the pending prefix) and forget value and prefix.
    fn output(&mut self, result: impl std::fmt::Display) {
        let result = match self.prefix.take() {
            Some(p) => format!("{p}{result}"),
            None => result.to_string(),
        };
        self.value = None;
        self.out.push(result);
    }

    fn flush(&mut self) {
        if let Some(v) = self.value.take() {
            self.output(v);
        }
    }
}

// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/english.py#L165-L386
fn process_words(words: &[&str]) -> Vec<String> {
    use Value::{Int, Str};
    let mut w = Words::default();
    let mut skip = false;
    for i in 0..words.len() {
        if skip {
            skip = false;
            continue;
        }
        let prev = i.checked_sub(1).map(|j| words[j]);
        let current = words[i];
        let next = words.get(i + 1).copied();
        let next_is_numeric = next.is_some_and(is_arabic);
        let next_is_word = next.is_some_and(is_number_word);
        let prev_in = |f: fn(&str) -> bool| prev.is_some_and(f);
        let first = current.chars().next();
        let prefix_char = first.filter(|c| PREFIXES.contains(c));
        let without_prefix = match prefix_char {
            Some(c) => &current[c.len_utf8()..],
            None => current,
        };

        if is_arabic(without_prefix) {
            if let Some(v) = &w.value {
                if let Str(s) = v
                    && s.ends_with('.')
                {
                    // Decimals and IP address components.
                    w.value = Some(Str(format!("{s}{current}")));
                    continue;
                }
                w.flush();
            }
            if let Some(c) = prefix_char {
                w.prefix = PREFIXES
                    .iter()
                    .zip(["-", "+", "£", "€", "$", "¢"])
                    .find(|(p, _)| **p == c)
                    .map(|(_, s)| s);
            }
            // Integers are stored as numbers, decimals as written ("2.50").
            let integer = to_fraction(without_prefix)
                .and_then(|(n, places)| Some((n, 10i128.checked_pow(places)?)))
                .filter(|(n, d)| n % d == 0);
            w.value = Some(match integer {
                Some((n, d)) => Int(n / d),
                None => Str(without_prefix.to_string()),
            });
        } else if !is_number_word(current) {
            w.flush();
            w.output(current);
        } else if zeros(current) {
            w.value = Some(Str(or_empty(&w.value) + "0"));
        } else if let Some(ones) = ones(current) {
            w.value = Some(match w.value.take() {
                None => Int(ones),
                Some(v) if matches!(v, Str(_)) || prev_in(|p| self::ones(p).is_some()) => {
                    if prev_in(|p| tens(p).is_some()) && ones < 10 {
                        Str(replace_last_zero(&v.to_string(), ones))
                    } else {
                        Str(format!("{v}{ones}"))
                    }
                }
                Some(Int(v)) if (ones < 10 && v % 10 == 0) || (ones >= 10 && v % 100 == 0) => v
                    .checked_add(ones)
                    .map_or_else(|| Str(format!("{v}{ones}")), Int),
                Some(v) => Str(format!("{v}{ones}")),
            });
        } else if let Some((ones, suffix)) = ones_suffixed(current) {
            match w.value.clone() {
                None => w.output(format!("{ones}{suffix}")),
                Some(v) if matches!(v, Str(_)) || prev_in(|p| self::ones(p).is_some()) => {
                    if prev_in(|p| tens(p).is_some()) && ones < 10 {
                        w.output(format!(
                            "{}{suffix}",
                            replace_last_zero(&v.to_string(), ones)
                        ));
                    } else {
                        w.output(format!("{v}{ones}{suffix}"));
                    }
                }
                Some(Int(v)) if (ones < 10 && v % 10 == 0) || (ones >= 10 && v % 100 == 0) => {
                    w.output(format!("{}{suffix}", v + ones));
                }
                Some(v) => w.output(format!("{v}{ones}{suffix}")),
            }
            w.value = None;
        } else if let Some(tens) = tens(current) {
            w.value = Some(match w.value.take() {
                None => Int(tens),
                Some(Str(s)) => Str(format!("{s}{tens}")),
                Some(Int(v)) if v % 100 == 0 => Int(v + tens),
                Some(Int(v)) => Str(format!("{v}{tens}")),
            });
        } else if let Some((tens, suffix)) = tens_suffixed(current) {
            match w.value.clone() {
                None => w.output(format!("{tens}{suffix}")),
                Some(Str(s)) => w.output(format!("{s}{tens}{suffix}")),
                Some(Int(v)) if v % 100 == 0 => w.output(format!("{}{suffix}", v + tens)),
                Some(Int(v)) => w.output(format!("{v}{tens}{suffix}")),
            }
        } else if let Some(multiplier) = multipliers(current) {
            match w.value.clone() {
                None => w.value = Some(Int(multiplier)),
                Some(v @ (Str(_) | Int(0))) => match times_if_integer(&v.to_string(), multiplier) {
                    Some(p) => w.value = Some(Int(p)),
                    None => {
                        w.output(v);
                        w.value = Some(Int(multiplier));
                    }
                },
                Some(Int(v)) => match scale(v, multiplier) {
                    Some(s) => w.value = Some(Int(s)),
                    None => {
                        w.output(v);
                        w.value = Some(Int(multiplier));
                    }
                },
            }
        } else if let Some((multiplier, suffix)) = multipliers_suffixed(current) {
            match w.value.clone() {
                None => w.output(format!("{multiplier}{suffix}")),
                Some(Str(s)) => match times_if_integer(&s, multiplier) {
                    Some(p) => w.output(format!("{p}{suffix}")),
                    None => {
                        w.output(&s);
                        w.output(format!("{multiplier}{suffix}"));
                    }
                },
                Some(Int(v)) => match scale(v, multiplier) {
                    Some(s) => w.output(format!("{s}{suffix}")),
                    None => {
                        w.output(v);
                        w.output(format!("{multiplier}{suffix}"));
                    }
                },
            }
            w.value = None;
        } else if let Some(p) = preceding_prefixer(current) {
            // A sign, if a number follows.
            w.flush();
            if next_is_word || next_is_numeric {
                w.prefix = Some(p);
            } else {
                w.output(current);
            }
        } else if let Some(p) = following_prefixer(current) {
            // A currency, only after a number.
            match w.value.take() {
                Some(v) => {
                    w.prefix = Some(p);
                    w.output(v);
                }
                None => w.output(current),
            }
        } else if current == "per" || current == "percent" {
            match w.value.take() {
                Some(v) if current == "percent" => w.output(format!("{v}%")),
                Some(v) if next == Some("cent") => {
                    w.output(format!("{v}%"));
                    skip = true;
                }
                Some(v) => {
                    w.output(v);
                    w.output(current);
                }
                None => w.output(current),
            }
        } else if specials(current) {
            if !next_is_word && !next_is_numeric {
                // Only special before something numeric.
                w.flush();
                w.output(current);
            } else if current == "and" {
                // "and" after hundreds, thousands, ... is dropped.
                if !prev_in(|p| multipliers(p).is_some()) {
                    w.flush();
                    w.output(current);
                }
            } else if current == "double" || current == "triple" {
                let next_word = next.unwrap_or("");
                if ones(next_word).is_some() || zeros(next_word) {
                    let repeats = if current == "double" { 2 } else { 3 };
                    let digit = ones(next_word).unwrap_or(0).to_string();
                    w.value = Some(Str(or_empty(&w.value) + &digit.repeat(repeats)));
                    skip = true;
                } else {
                    w.flush();
                    w.output(current);
                }
            } else if next.is_some_and(decimals) || next_is_numeric {
                // "point"
                w.value = Some(Str(or_empty(&w.value) + "."));
            }
        }
    }
    w.flush();
    w.out
}

/// `re.split(r"\band\s+a\s+half\b", s)`.
fn split_and_a_half(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut last = 0;
    let mut i = 0;
    while i < s.len() {
        if let Some(end) = match_and_a_half(s, i) {
            parts.push(&s[last..i]);
            last = end;
            i = end;
        } else {
            i += s[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    parts.push(&s[last..]);
    parts
}

fn match_and_a_half(s: &str, i: usize) -> Option<usize> {
    if s[..i].chars().next_back().is_some_and(is_word) {
        return None;
    }
    let mut rest = s[i..].strip_prefix("and")?;
    for word in ["a", "half"] {
        let trimmed = rest.trim_start_matches(super::is_space);
        if trimmed.len() == rest.len() {
            return None;
        }
        rest = trimmed.strip_prefix(word)?;
    }
    if rest.chars().next().is_some_and(is_word) {
        return None;
    }
    Some(s.len() - rest.len())
}

/// "<number> and a half" → "<number> point five", spaces at letter/digit boundaries,
/// ordinal and plural suffixes back onto their digits.
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/english.py#L388-L415
fn preprocess(s: &str) -> String {
    let segments = split_and_a_half(s);
    let mut results: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if segment.trim_matches(super::is_space).is_empty() {
            continue;
        }
        results.push(segment);
        if i + 1 < segments.len() {
            let last_word = segment
                .split(super::is_space)
                .rfind(|w| !w.is_empty())
                .unwrap_or("");
            if decimals(last_word) || multipliers(last_word).is_some() {
                results.push("point five");
            } else {
                results.push("and a half");
            }
        }
    }
    let s = results.join(" ");

    // A space at each letter/digit boundary (`([a-z])([0-9])`, `([0-9])([a-z])`).
    let mut spaced = String::with_capacity(s.len() + 8);
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if let Some(p) = prev
            && ((p.is_ascii_lowercase() && c.is_ascii_digit())
                || (p.is_ascii_digit() && c.is_ascii_lowercase()))
        {
            spaced.push(' ');
        }
        spaced.push(c);
        prev = Some(c);
    }

    // `([0-9])\s+(st|nd|rd|th|s)\b` → `\1\2`.
    replace_matches(&spaced, |s, i| {
        let c = s[i..].chars().next()?;
        if !c.is_ascii_digit() {
            return None;
        }
        let after = &s[i + 1..];
        let rest = after.trim_start_matches(super::is_space);
        if rest.len() == after.len() {
            return None;
        }
        for suffix in ["st", "nd", "rd", "th", "s"] {
            if let Some(tail) = rest.strip_prefix(suffix)
                && !tail.chars().next().is_some_and(is_word)
            {
                return Some((s.len() - tail.len(), format!("{c}{suffix}")));
            }
        }
        None
    })
}

/// Currency cents and "one(s)".
// https://github.com/openai/whisper/blob/v20240930/whisper/normalizers/english.py#L417-L440
fn postprocess(s: &str) -> String {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let is_currency = |c: char| matches!(c, '€' | '£' | '$');
    // `([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b` → "$2.07".
    let s = replace_matches(s, |s, i| {
        let c = s[i..].chars().next().filter(|&c| is_currency(c))?;
        let rest = &s[i + c.len_utf8()..];
        let n_int = digits(rest);
        if n_int == 0 {
            return None;
        }
        let integer = &rest[..n_int];
        let mut rest = rest[n_int..].strip_prefix(' ')?;
        if let Some(r) = rest.strip_prefix("and ")
            && r.starts_with('¢')
        {
            rest = r;
        }
        let rest = rest.strip_prefix('¢')?;
        let n_cents = digits(rest);
        if !(1..=2).contains(&n_cents) || rest[n_cents..].chars().next().is_some_and(is_word) {
            return None;
        }
        let cents: u32 = rest[..n_cents].parse().ok()?;
        Some((
            s.len() - rest.len() + n_cents,
            format!("{c}{integer}.{cents:02}"),
        ))
    });
    // `[€£$]0.([0-9]{1,2})\b` → "¢7" (`.` is any character but a newline).
    let s = replace_matches(&s, |s, i| {
        let c = s[i..].chars().next().filter(|&c| is_currency(c))?;
        let rest = s[i + c.len_utf8()..].strip_prefix('0')?;
        let any = rest.chars().next().filter(|&c| c != '\n')?;
        let rest = &rest[any.len_utf8()..];
        let n = digits(rest);
        if !(1..=2).contains(&n) || rest[n..].chars().next().is_some_and(is_word) {
            return None;
        }
        let cents: u32 = rest[..n].parse().ok()?;
        Some((s.len() - rest.len() + n, format!("¢{cents}")))
    });
    // `\b1(s?)\b` → "one\1".
    replace_matches(&s, |s, i| {
        if !s[i..].starts_with('1') || s[..i].chars().next_back().is_some_and(is_word) {
            return None;
        }
        let rest = &s[i + 1..];
        if rest.starts_with('s') && !rest[1..].chars().next().is_some_and(is_word) {
            return Some((i + 2, "ones".to_string()));
        }
        (!rest.chars().next().is_some_and(is_word)).then(|| (i + 1, "one".to_string()))
    })
}

/// OpenAI's `EnglishNumberNormalizer.__call__`.
pub(super) fn normalize_numbers(s: &str) -> String {
    let s = preprocess(s);
    let words: Vec<&str> = s.split(super::is_space).filter(|w| !w.is_empty()).collect();
    let s = process_words(&words).join(" ");
    postprocess(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize_numbers(s)
    }

    #[test]
    fn cardinals() {
        assert_eq!(n("twenty five"), "25");
        assert_eq!(n("one hundred and twenty three"), "123");
        assert_eq!(n("two thousand and nineteen"), "2019");
        assert_eq!(n("nineteen ninety nine"), "1999");
        assert_eq!(n("three million"), "3000000");
        assert_eq!(n("one oh one"), "101");
        assert_eq!(n("double seven"), "77");
        assert_eq!(n("zero"), "0");
        assert_eq!(
            n("i have one apple and two pears"),
            "i have one apple and 2 pears"
        );
    }

    #[test]
    fn ordinals_plurals_and_suffixes() {
        assert_eq!(n("twenty first"), "21st");
        assert_eq!(n("the fifth"), "the 5th");
        assert_eq!(n("the 1960s"), "the 1960s");
        assert_eq!(n("the nineteen sixties"), "the 1960s");
        assert_eq!(n("32 nd"), "32nd");
        // OpenAI's ordinal of nine is "nineth".
        assert_eq!(n("ninth"), "ninth");
    }

    #[test]
    fn decimals_currency_and_percent() {
        assert_eq!(n("two point five"), "2.5");
        assert_eq!(n("three and a half"), "3.5");
        assert_eq!(n("twenty dollars"), "$20");
        assert_eq!(n("$20 million"), "$20000000");
        assert_eq!(n("fifty percent"), "50%");
        assert_eq!(n("fifty per cent"), "50%");
        assert_eq!(n("minus five"), "-5");
        assert_eq!(n("$2 and ¢7"), "$2.07");
        assert_eq!(n("$0.5"), "¢5");
        assert_eq!(n("1.5 million"), "1500000");
        // Commas are removed before this step in the English normalizer.
        assert_eq!(n("1,000"), "one,000");
    }

    #[test]
    fn ones_stay_words() {
        assert_eq!(n("1"), "one");
        assert_eq!(n("1s"), "ones");
        assert_eq!(n("it's 11"), "it's 11");
    }
}
