//! Back-off n-gram language models read from ARPA files, and their shallow fusion weights.
//!
//! Pure Rust, no KenLM. The model is a forward trie of n-grams in one hash map keyed by
//! `(context node, word)`; each node has its natural-log probability, back-off weight and a
//! suffix link (the same n-gram without its first word). Scoring follows the ARPA back-off
//! rule
//!
//! ```text
//! ln p(w | h1..hk) = ln P(h1..hk w)                       if the n-gram is listed
//!                  = bow(h1..hk) + ln p(w | h2..hk)        otherwise (bow = 0 if h1..hk is not listed)
//! ```
//!
//! and, as in KenLM, the state ([`LmState`]) is the longest suffix of the history that is a
//! node of the trie: a longer history cannot match any n-gram and has no back-off weight, so
//! it would not change any probability. n-grams whose prefix or suffix is not listed (pruned
//! models) get placeholder nodes with no probability and a zero back-off, which keeps that
//! argument true. Words outside the vocabulary score as `<unk>`; a model without `<unk>`
//! gets one at log10 p = -100 (KenLM's default).
//!
//! ARPA format: <https://cmusphinx.github.io/wiki/arpaformat/>.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CtcVocab, IdMap, NONE, TokenKind, pair};
use crate::{Error, Result};

/// `ln(10)`: ARPA stores log10.
const LN_10: f32 = std::f32::consts::LN_10;

/// Log10 probability given to `<unk>` when the ARPA file has none (KenLM's default).
const MISSING_UNK_LOG10: f32 = -100.0;

/// Node 0 of the trie: the empty context.
const ROOT: u32 = 0;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// `ln P(n-gram)`; NaN for a placeholder (listed only as context).
    logp: f32,
    /// `ln bow(n-gram)`, 0 when not listed.
    backoff: f32,
    /// The n-gram without its first word (ROOT for unigrams).
    suffix: u32,
    /// The n-gram without its last word.
    context: u32,
    /// Last word.
    word: u32,
    /// Number of words.
    order: u32,
}

/// A language-model state: the part of the history that matters for the next word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LmState(pub(crate) u32);

/// A back-off n-gram language model of any order.
#[derive(Debug, Clone)]
pub struct NgramLm {
    order: usize,
    counts: Vec<usize>,
    words: Vec<String>,
    word_ids: std::collections::HashMap<String, u32>,
    nodes: Vec<Node>,
    children: IdMap<u32>,
    /// Node of each word's unigram.
    unigram: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: u32,
}

impl NgramLm {
    /// Reads an ARPA file.
    pub fn from_arpa_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_arpa_reader(std::io::BufReader::new(file), path)
    }

    /// Parses ARPA text held in memory (errors name the file `<memory>`).
    pub fn from_arpa_str(text: &str) -> Result<Self> {
        Self::from_arpa_reader(text.as_bytes(), Path::new("<memory>"))
    }

    /// Parses ARPA text from `reader`; `path` names the source in errors.
    pub fn from_arpa_reader(reader: impl BufRead, path: &Path) -> Result<Self> {
        Parser::new(path).run(reader)
    }

    /// The model's order (longest n-gram).
    pub fn order(&self) -> usize {
        self.order
    }

    /// Number of n-grams of each order, as listed in `\data\` (index 0: unigrams).
    pub fn ngram_counts(&self) -> &[usize] {
        &self.counts
    }

    /// The vocabulary (unigrams, `<unk>` included), indexed by word id.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The id of `word`, or of `<unk>` when it is not in the vocabulary.
    pub fn word_id(&self, word: &str) -> u32 {
        self.word_ids.get(word).copied().unwrap_or(self.unk)
    }

    /// Whether `word` is in the vocabulary.
    pub fn contains(&self, word: &str) -> bool {
        self.word_ids.contains_key(word)
    }

    /// The id of `<unk>`.
    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    /// The state at the start of a sentence (after `<s>`; the empty context when the model
    /// has no `<s>`).
    pub fn begin_sentence(&self) -> LmState {
        match self.bos {
            Some(b) if self.order > 1 => LmState(self.unigram[b as usize]),
            _ => LmState(ROOT),
        }
    }

    /// The empty context (no `<s>`).
    pub fn null_context(&self) -> LmState {
        LmState(ROOT)
    }

    /// `ln p(word | state)` and the state after `word` (a word id from
    /// [`word_id`](Self::word_id); out-of-range ids score as `<unk>`).
    pub fn score(&self, state: LmState, word: u32) -> (f32, LmState) {
        let word = if (word as usize) < self.unigram.len() {
            word
        } else {
            self.unk
        };
        let mut ctx = state.0;
        let mut backoff = 0.0f32;
        let mut next = NONE;
        loop {
            let child = if ctx == ROOT {
                Some(self.unigram[word as usize])
            } else {
                self.children.get(&pair(ctx, word)).copied()
            };
            if let Some(m) = child {
                if next == NONE {
                    next = m;
                }
                let lp = self.nodes[m as usize].logp;
                if !lp.is_nan() {
                    return (backoff + lp, LmState(self.as_context(next)));
                }
            }
            if ctx == ROOT {
                // Unreachable for a parsed model: every word has a unigram probability.
                return (backoff + MISSING_UNK_LOG10 * LN_10, LmState(ROOT));
            }
            backoff += self.nodes[ctx as usize].backoff;
            ctx = self.nodes[ctx as usize].suffix;
        }
    }

    /// [`score`](Self::score) of a word given as text.
    pub fn score_word(&self, state: LmState, word: &str) -> (f32, LmState) {
        self.score(state, self.word_id(word))
    }

    /// `ln p(</s> | state)`; 0 when the model has no `</s>`.
    pub fn end_sentence(&self, state: LmState) -> f32 {
        self.eos.map_or(0.0, |eos| self.score(state, eos).0)
    }

    /// `ln p` of a whole word sequence, optionally after `<s>` and ending with `</s>`.
    pub fn sentence_score(&self, words: &[&str], bos: bool, eos: bool) -> f32 {
        let mut state = if bos {
            self.begin_sentence()
        } else {
            self.null_context()
        };
        let mut total = 0.0;
        for w in words {
            let (lp, s) = self.score_word(state, w);
            total += lp;
            state = s;
        }
        if eos {
            total += self.end_sentence(state);
        }
        total
    }

    /// A node as a context: a full-order n-gram is never a context, its suffix is.
    fn as_context(&self, node: u32) -> u32 {
        let n = &self.nodes[node as usize];
        if n.order as usize >= self.order {
            n.suffix
        } else {
            node
        }
    }

    /// The node `(context, word)`, created as a placeholder if missing.
    fn ensure(&mut self, context: u32, word: u32) -> u32 {
        if context == ROOT {
            return self.unigram[word as usize];
        }
        let key = pair(context, word);
        if let Some(&n) = self.children.get(&key) {
            return n;
        }
        let id = self.nodes.len() as u32;
        let order = self.nodes[context as usize].order + 1;
        self.nodes.push(Node {
            logp: f32::NAN,
            backoff: 0.0,
            suffix: NONE,
            context,
            word,
            order,
        });
        self.children.insert(key, id);
        id
    }

    /// Fills every node's suffix link, adding placeholders for missing suffixes.
    fn link_suffixes(&mut self) {
        let mut i = 1;
        while i < self.nodes.len() {
            self.suffix_of(i as u32);
            i += 1;
        }
    }

    fn suffix_of(&mut self, node: u32) -> u32 {
        let n = self.nodes[node as usize];
        if n.suffix != NONE {
            return n.suffix;
        }
        let suffix = if n.order <= 1 {
            ROOT
        } else {
            let ctx_suffix = self.suffix_of(n.context);
            self.ensure(ctx_suffix, n.word)
        };
        self.nodes[node as usize].suffix = suffix;
        suffix
    }
}

/// Line-by-line ARPA reader.
struct Parser {
    path: PathBuf,
    line_no: usize,
    lm: NgramLm,
}

impl Parser {
    fn new(path: &Path) -> Self {
        Parser {
            path: path.to_path_buf(),
            line_no: 0,
            lm: NgramLm {
                order: 0,
                counts: Vec::new(),
                words: Vec::new(),
                word_ids: Default::default(),
                nodes: vec![Node {
                    logp: f32::NAN,
                    backoff: 0.0,
                    suffix: ROOT,
                    context: ROOT,
                    word: NONE,
                    order: 0,
                }],
                children: IdMap::default(),
                unigram: Vec::new(),
                bos: None,
                eos: None,
                unk: NONE,
            },
        }
    }

    /// An error at the current line.
    fn err(&self, expected: impl Into<String>, got: impl std::fmt::Display) -> Error {
        Error::invalid(
            format!("ARPA file {}:{}", self.path.display(), self.line_no),
            expected,
            got,
        )
    }

    /// The next line, trimmed, or `None` at the end of the file.
    fn next_line(&mut self, reader: &mut impl BufRead, buf: &mut String) -> Result<bool> {
        buf.clear();
        let n = reader
            .read_line(buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        let trimmed = buf.trim().len();
        let start = buf.len() - buf.trim_start().len();
        buf.drain(..start);
        buf.truncate(trimmed);
        Ok(true)
    }

    fn run(mut self, mut reader: impl BufRead) -> Result<NgramLm> {
        let mut line = String::new();
        // Anything before `\data\` is a comment.
        loop {
            if !self.next_line(&mut reader, &mut line)? {
                return Err(self.err("a `\\data\\` section", "end of file"));
            }
            if line == "\\data\\" {
                break;
            }
        }
        // `ngram N=count` lines.
        let mut declared: Vec<usize> = Vec::new();
        let mut section;
        loop {
            if !self.next_line(&mut reader, &mut line)? {
                return Err(self.err("`\\1-grams:`", "end of file"));
            }
            if line.is_empty() {
                continue;
            }
            if line.starts_with('\\') {
                section = line.clone();
                break;
            }
            let parsed = line
                .strip_prefix("ngram ")
                .and_then(|r| r.split_once('='))
                .and_then(|(n, c)| Some((n.trim().parse::<usize>().ok()?, c.trim().parse().ok()?)));
            match parsed {
                Some((n, count)) if n == declared.len() + 1 => declared.push(count),
                _ => {
                    return Err(self.err(
                        format!("`ngram {}=<count>`", declared.len() + 1),
                        format!("`{line}`"),
                    ));
                }
            }
        }
        if declared.is_empty() {
            return Err(self.err("`ngram 1=<count>` lines in `\\data\\`", format!("`{line}`")));
        }
        self.lm.order = declared.len();
        self.lm.counts = declared.clone();
        // `\N-grams:` sections, in order, then `\end\`.
        for n in 1..=declared.len() {
            if section != format!("\\{n}-grams:") {
                return Err(self.err(format!("`\\{n}-grams:`"), format!("`{section}`")));
            }
            let mut count = 0usize;
            loop {
                if !self.next_line(&mut reader, &mut line)? {
                    return Err(self.err("`\\end\\`", "end of file"));
                }
                if line.is_empty() {
                    continue;
                }
                if line.starts_with('\\') {
                    section = line.clone();
                    break;
                }
                self.entry(n, &line)?;
                count += 1;
            }
            if count != declared[n - 1] {
                return Err(self.err(
                    format!("{} {n}-grams (as declared in `\\data\\`)", declared[n - 1]),
                    format!("{count} before `{section}`"),
                ));
            }
            if n == 1 {
                self.after_unigrams();
            }
        }
        if section != "\\end\\" {
            return Err(self.err("`\\end\\`", format!("`{section}`")));
        }
        self.lm.link_suffixes();
        Ok(self.lm)
    }

    /// One `log10p w1 .. wn [bow]` line of the `n`-gram section.
    fn entry(&mut self, n: usize, line: &str) -> Result<()> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != n + 1 && fields.len() != n + 2 {
            return Err(self.err(
                format!("log10 probability, {n} word(s), optional back-off"),
                format!("{} fields in `{line}`", fields.len()),
            ));
        }
        let number = |s: &str| s.parse::<f32>().ok().filter(|x| !x.is_nan() && *x <= 0.0);
        let Some(log10p) = number(fields[0]) else {
            return Err(self.err(
                "a log10 probability (a number <= 0)",
                format!("`{}`", fields[0]),
            ));
        };
        let backoff = match fields.get(n + 1) {
            None => 0.0,
            Some(b) => match b.parse::<f32>() {
                Ok(x) if x.is_finite() => x,
                _ => return Err(self.err("a finite log10 back-off weight", format!("`{b}`"))),
            },
        };
        let words = &fields[1..=n];
        let node = if n == 1 {
            let w = words[0];
            if self.lm.word_ids.contains_key(w) {
                return Err(self.err("each 1-gram once", format!("`{w}` again")));
            }
            let id = self.lm.words.len() as u32;
            self.lm.words.push(w.to_string());
            self.lm.word_ids.insert(w.to_string(), id);
            let node = self.lm.nodes.len() as u32;
            self.lm.nodes.push(Node {
                logp: f32::NAN,
                backoff: 0.0,
                suffix: ROOT,
                context: ROOT,
                word: id,
                order: 1,
            });
            self.lm.unigram.push(node);
            node
        } else {
            let mut ids = Vec::with_capacity(n);
            for w in words {
                match self.lm.word_ids.get(*w) {
                    Some(&id) => ids.push(id),
                    None => {
                        return Err(
                            self.err("words listed in `\\1-grams:`", format!("`{w}` in `{line}`"))
                        );
                    }
                }
            }
            let mut ctx = ROOT;
            for &id in &ids[..n - 1] {
                ctx = self.lm.ensure(ctx, id);
            }
            let node = self.lm.ensure(ctx, ids[n - 1]);
            if !self.lm.nodes[node as usize].logp.is_nan() {
                return Err(self.err(format!("each {n}-gram once"), format!("`{line}` again")));
            }
            node
        };
        let entry = &mut self.lm.nodes[node as usize];
        entry.logp = log10p * LN_10;
        entry.backoff = backoff * LN_10;
        Ok(())
    }

    fn after_unigrams(&mut self) {
        let lm = &mut self.lm;
        lm.bos = lm.word_ids.get("<s>").copied();
        lm.eos = lm.word_ids.get("</s>").copied();
        lm.unk = match lm.word_ids.get("<unk>") {
            Some(&u) => u,
            None => {
                let id = lm.words.len() as u32;
                lm.words.push("<unk>".to_string());
                lm.word_ids.insert("<unk>".to_string(), id);
                let node = lm.nodes.len() as u32;
                lm.nodes.push(Node {
                    logp: MISSING_UNK_LOG10 * LN_10,
                    backoff: 0.0,
                    suffix: ROOT,
                    context: ROOT,
                    word: id,
                    order: 1,
                });
                lm.unigram.push(node);
                id
            }
        };
    }
}

/// Shallow fusion of an n-gram LM into CTC beam search.
///
/// At each word boundary (a delimiter after a non-empty word, and the last word at the end)
/// the hypothesis gains `alpha * ln p(word | history) + beta`, and at the end
/// `alpha * ln p(</s> | history)`. A word that is not in the LM's vocabulary also costs
/// `oov_penalty`, from the token where its spelling leaves every LM word (so hopeless
/// spellings are pruned early) until the end. Defaults are pyctcdecode's `alpha` 0.5 and
/// `beta` 1.0, and an OOV penalty of -10 (pyctcdecode's `unk_score_offset`, here in natural
/// log and not scaled by `alpha`).
#[derive(Debug, Clone)]
pub struct LmFusion {
    /// The language model.
    pub lm: Arc<NgramLm>,
    /// Weight of the LM log-probability.
    pub alpha: f32,
    /// Bonus per word (word insertion bonus).
    pub beta: f32,
    /// Added (natural log, usually <= 0) for each word outside the LM's vocabulary.
    pub oov_penalty: f32,
}

impl LmFusion {
    /// Fusion with the default weights.
    pub fn new(lm: Arc<NgramLm>) -> Self {
        LmFusion {
            lm,
            alpha: 0.5,
            beta: 1.0,
            oov_penalty: -10.0,
        }
    }

    /// Sets `alpha` and `beta`.
    pub fn weights(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    /// Sets the OOV penalty.
    pub fn oov_penalty(mut self, oov_penalty: f32) -> Self {
        self.oov_penalty = oov_penalty;
        self
    }
}

/// The LM's words spelled with the acoustic vocabulary: a trie over token ids whose nodes
/// know which LM word (if any) they spell, so a hypothesis tracks its current word with one
/// lookup per token.
#[derive(Debug)]
pub(crate) struct Lexicon {
    /// LM word id spelled by each node (`NONE` for proper prefixes).
    word: Vec<u32>,
    children: IdMap<u32>,
}

/// Lexicon node of the empty word.
pub(crate) const LEX_EMPTY: u32 = 0;
/// A spelling that is no prefix of any LM word.
pub(crate) const LEX_OOV: u32 = NONE;

impl Lexicon {
    /// Spells every LM word except `<s>`, `</s>`, `<unk>` (as given, else upper-case, else
    /// lower-case); words that cannot be spelled are left out. The first word to claim a
    /// spelling keeps it.
    pub(crate) fn build(lm: &NgramLm, vocab: &CtcVocab) -> Lexicon {
        let mut lex = Lexicon {
            word: vec![NONE],
            children: IdMap::default(),
        };
        for (id, w) in lm.words.iter().enumerate() {
            if matches!(w.as_str(), "<s>" | "</s>" | "<unk>") {
                continue;
            }
            let spelled = vocab
                .tokenize_exact(w)
                .or_else(|| vocab.tokenize_exact(&w.to_uppercase()))
                .or_else(|| vocab.tokenize_exact(&w.to_lowercase()));
            let Some(tokens) = spelled else { continue };
            if tokens.is_empty() || tokens.iter().any(|&t| vocab.kind(t) != TokenKind::Text) {
                continue;
            }
            let mut node = LEX_EMPTY;
            for t in tokens {
                let next = lex.word.len() as u32;
                node = *lex.children.entry(pair(node, t)).or_insert_with(|| {
                    lex.word.push(NONE);
                    next
                });
            }
            if lex.word[node as usize] == NONE {
                lex.word[node as usize] = id as u32;
            }
        }
        lex
    }

    /// The node after appending text token `token` to `node`.
    #[inline]
    pub(crate) fn step(&self, node: u32, token: u32) -> u32 {
        if node == LEX_OOV {
            return LEX_OOV;
        }
        self.children
            .get(&pair(node, token))
            .copied()
            .unwrap_or(LEX_OOV)
    }

    /// The LM word spelled by `node`, if it spells one.
    #[inline]
    pub(crate) fn word(&self, node: u32) -> Option<u32> {
        match self.word.get(node as usize) {
            Some(&w) if w != NONE => Some(w),
            _ => None,
        }
    }

    /// Number of trie nodes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.word.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARPA: &str = "some header text\n\
        \\data\\\nngram 1=5\nngram 2=2\n\n\
        \\1-grams:\n-1.0\t<s>\t-0.5\n-0.5\t</s>\n-0.7\ta\t-0.3\n-0.9\tb\n-2.0\t<unk>\n\n\
        \\2-grams:\n-0.2\t<s> a\n-0.1\ta b\n\n\\end\\\n";

    fn close(a: f32, log10: f32) {
        assert!((a - log10 * LN_10).abs() < 1e-5, "{a} vs {}", log10 * LN_10);
    }

    #[test]
    fn bigram_backs_off() {
        let lm = NgramLm::from_arpa_str(ARPA).unwrap();
        assert_eq!(lm.order(), 2);
        assert_eq!(lm.ngram_counts(), [5, 2]);
        let s = lm.begin_sentence();
        let (lp, s) = lm.score_word(s, "a");
        close(lp, -0.2);
        let (lp, s) = lm.score_word(s, "b");
        close(lp, -0.1);
        // "b" has no back-off weight: p(a | b) = p(a).
        let (lp, _) = lm.score_word(s, "a");
        close(lp, -0.7);
        // p(b | <s>) = bow(<s>) + p(b); unknown words are <unk>.
        close(lm.score_word(lm.begin_sentence(), "b").0, -0.5 - 0.9);
        close(lm.score_word(lm.begin_sentence(), "zzz").0, -0.5 - 2.0);
        close(lm.sentence_score(&["a", "b"], true, true), -0.2 - 0.1 - 0.5);
        assert_eq!(lm.word_id("zzz"), lm.unk_id());
        assert!(lm.contains("a") && !lm.contains("zzz"));
    }

    #[test]
    fn missing_unk_gets_kenlm_default() {
        let lm =
            NgramLm::from_arpa_str("\\data\\\nngram 1=1\n\\1-grams:\n-0.5 x\n\\end\\\n").unwrap();
        assert_eq!(lm.order(), 1);
        close(lm.score_word(lm.begin_sentence(), "y").0, -100.0);
        close(lm.score_word(lm.begin_sentence(), "x").0, -0.5);
        assert_eq!(lm.end_sentence(lm.begin_sentence()), 0.0);
    }

    #[test]
    fn lexicon_spells_lm_words_with_case_fallback() {
        let lm = NgramLm::from_arpa_str(
            "\\data\\\nngram 1=5\n\\1-grams:\n-1 <s>\n-1 </s>\n-1 AB\n-1 b\n-1 a-b\n\\end\\\n",
        )
        .unwrap();
        let vocab =
            CtcVocab::new(["_", "|", "a", "b"].map(String::from).to_vec(), 0, Some(1)).unwrap();
        let lex = Lexicon::build(&lm, &vocab);
        // AB (as "ab") and b; "a-b" cannot be spelled.
        assert_eq!(lex.len(), 4);
        let a = lex.step(LEX_EMPTY, 2);
        assert_eq!(lex.word(a), None);
        let ab = lex.step(a, 3);
        assert_eq!(lex.word(ab), Some(lm.word_id("AB")));
        assert_eq!(lex.step(ab, 3), LEX_OOV);
        assert_eq!(lex.step(LEX_OOV, 2), LEX_OOV);
        assert_eq!(lex.word(LEX_OOV), None);
    }
}
