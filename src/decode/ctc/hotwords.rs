//! Hotwords: phrases the beam search should prefer, with a bonus per matched token.
//!
//! Like sherpa-onnx's `ContextGraph` (an Aho-Corasick automaton over token ids; scoring in
//! `ForwardOneStep` and `Finalize`,
//! <https://github.com/k2-fsa/sherpa-onnx/blob/0c953364b2849c76808e9427616acdc1fcac24a4/sherpa-onnx/csrc/context-graph.cc#L67-L111>)
//! and pyctcdecode's hotword scorer (whole words, partial matches rewarded), with one
//! difference in bookkeeping: a hypothesis carries `banked + potential(state)` where
//!
//! - `potential(state)` is the bonus of the match in progress: the per-token bonuses of the
//!   longest suffix of the prefix that starts some hotword (and at least the bonus of the
//!   complete hotwords inside it);
//! - `banked` only grows when a match in progress fails, by the bonus of the complete
//!   hotwords that the failure leaves behind.
//!
//! So a partial match earns its bonus token by token and loses it when the match fails
//! before completion, and at the end of the utterance the total is exactly the sum, over
//! every occurrence of a hotword in the transcript (Aho-Corasick counts overlapping
//! occurrences too), of that hotword's bonus: per-token bonus × its number of non-delimiter
//! tokens. Nothing is counted twice, also not while sitting on a completed hotword that a
//! longer one continues ("new" inside "new york"), which sherpa-onnx's strict mode does
//! until the next token (it adds the completed phrase's score on top of the partial one). The bonus is a function of the prefix alone, so beam search can merge hypotheses
//! with the same prefix exactly.
//!
//! With a word delimiter in the vocabulary, hotwords match whole words only (pyctcdecode's
//! behaviour): each pattern is `| w o r d |`, and the utterance starts (and, for the final
//! score, ends) as if after a delimiter.

use std::collections::VecDeque;

use super::{CtcVocab, IdMap, TokenKind, pair};
use crate::{Error, Result};

/// Default bonus per hotword token (natural log), sherpa-onnx's `hotwords_score`.
pub const DEFAULT_HOTWORD_BONUS: f32 = 1.5;

/// A phrase to boost and its bonus per token.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotword {
    /// One or more words separated by spaces.
    pub phrase: String,
    /// Bonus (natural log) for each of its non-delimiter tokens.
    pub bonus: f32,
}

impl Hotword {
    /// A hotword with the given per-token bonus.
    pub fn new(phrase: impl Into<String>, bonus: f32) -> Self {
        Hotword {
            phrase: phrase.into(),
            bonus,
        }
    }

    /// Parses a command-line `PHRASE[:BONUS]` (`"hearken:2.5"`, `"new york"`); a suffix after
    /// the last `:` that is not a number is part of the phrase.
    pub fn parse(spec: &str, default_bonus: f32) -> Result<Hotword> {
        let (phrase, bonus) = match spec.rsplit_once(':') {
            Some((p, b)) => match b.trim().parse::<f32>() {
                Ok(b) => (p, b),
                Err(_) => (spec, default_bonus),
            },
            None => (spec, default_bonus),
        };
        let phrase = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
        if phrase.is_empty() {
            return Err(Error::invalid(
                "hotword",
                "PHRASE or PHRASE:BONUS",
                format!("`{spec}`"),
            ));
        }
        if !bonus.is_finite() {
            return Err(Error::invalid(
                "hotword bonus",
                "a finite number",
                format!("`{spec}`"),
            ));
        }
        Ok(Hotword { phrase, bonus })
    }
}

const ROOT: u32 = 0;

#[derive(Debug, Clone)]
struct Node {
    parent: u32,
    depth: u32,
    /// Bonus of the token leading here (the largest among the hotwords sharing it).
    token_bonus: f32,
    /// Sum of `token_bonus` from the root.
    node_score: f32,
    /// Bonus of the hotword ending here, if one does.
    complete: Option<f32>,
    fail: u32,
    /// Bonus of all complete hotwords that are substrings of this node's string.
    occ: f32,
    /// `max(node_score, occ)`.
    potential: f32,
}

/// A compiled set of hotwords: an Aho-Corasick automaton over token ids.
#[derive(Debug, Clone)]
pub struct Hotwords {
    nodes: Vec<Node>,
    children: IdMap<u32>,
    /// Child of the root for each token (`ROOT` when none): the common case is one lookup.
    root_goto: Vec<u32>,
    /// Delimiter-kind tokens map to this id (whole-word mode), if the vocabulary has one.
    delimiter: Option<u32>,
    is_delimiter: Vec<bool>,
    start: u32,
    n_phrases: usize,
}

impl Hotwords {
    /// Spells each phrase with `vocab` ([`CtcVocab::tokenize`]) and builds the automaton.
    pub fn new(vocab: &CtcVocab, hotwords: &[Hotword]) -> Result<Self> {
        let delimiter = vocab.delimiter_id();
        let is_delimiter: Vec<bool> = (0..vocab.len() as u32)
            .map(|t| vocab.kind(t) == TokenKind::Delimiter)
            .collect();
        let mut hw = Hotwords {
            nodes: vec![Node {
                parent: ROOT,
                depth: 0,
                token_bonus: 0.0,
                node_score: 0.0,
                complete: None,
                fail: ROOT,
                occ: 0.0,
                potential: 0.0,
            }],
            children: IdMap::default(),
            root_goto: vec![ROOT; vocab.len()],
            delimiter,
            is_delimiter,
            start: ROOT,
            n_phrases: 0,
        };
        for h in hotwords {
            if !h.bonus.is_finite() {
                return Err(Error::invalid(
                    "hotword bonus",
                    "a finite number",
                    format!("{} for `{}`", h.bonus, h.phrase),
                ));
            }
            let tokens = vocab.tokenize(&h.phrase)?;
            if tokens.is_empty() {
                return Err(Error::invalid("hotword", "a non-empty phrase", "``"));
            }
            let mut pattern = Vec::with_capacity(tokens.len() + 2);
            pattern.extend(delimiter);
            pattern.extend(tokens.iter().map(|&t| hw.normalize(t)));
            pattern.extend(delimiter);
            hw.insert(&pattern, h.bonus);
            hw.n_phrases += 1;
        }
        hw.link();
        hw.start = match delimiter {
            Some(d) => hw.step(ROOT, d).0,
            None => ROOT,
        };
        Ok(hw)
    }

    /// Number of phrases.
    pub fn len(&self) -> usize {
        self.n_phrases
    }

    /// Whether there are no phrases.
    pub fn is_empty(&self) -> bool {
        self.n_phrases == 0
    }

    /// Total bonus of a complete token sequence (blanks and specials removed, as in
    /// [`super::CtcResult::tokens`]): what beam search adds for it at the end.
    pub fn bonus(&self, tokens: &[u32]) -> f32 {
        let mut state = self.start();
        let mut banked = 0.0;
        for &t in tokens {
            let (s, b) = self.step(state, t);
            state = s;
            banked += b;
        }
        banked + self.finish(state)
    }

    fn normalize(&self, token: u32) -> u32 {
        match self.delimiter {
            Some(d) if self.is_delimiter.get(token as usize) == Some(&true) => d,
            _ => token,
        }
    }

    fn insert(&mut self, pattern: &[u32], bonus: f32) {
        let mut node = ROOT;
        let mut total = 0.0;
        for &t in pattern {
            let b = if Some(t) == self.delimiter {
                0.0
            } else {
                bonus
            };
            total += b;
            let next = self.nodes.len() as u32;
            let child = *self.children.entry(pair(node, t)).or_insert(next);
            if child == next {
                let depth = self.nodes[node as usize].depth + 1;
                self.nodes.push(Node {
                    parent: node,
                    depth,
                    token_bonus: b,
                    node_score: 0.0,
                    complete: None,
                    fail: ROOT,
                    occ: 0.0,
                    potential: 0.0,
                });
                if node == ROOT {
                    self.root_goto[t as usize] = child;
                }
            } else {
                let n = &mut self.nodes[child as usize];
                n.token_bonus = n.token_bonus.max(b);
            }
            node = child;
        }
        let n = &mut self.nodes[node as usize];
        n.complete = Some(n.complete.map_or(total, |c| c.max(total)));
    }

    /// Fail links (breadth first) and the derived scores.
    fn link(&mut self) {
        let mut by_parent: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.nodes.len()];
        for (&key, &child) in &self.children {
            by_parent[(key >> 32) as usize].push((key as u32, child));
        }
        by_parent.iter_mut().for_each(|c| c.sort_unstable());
        let mut queue = VecDeque::from([ROOT]);
        while let Some(node) = queue.pop_front() {
            for &(token, child) in &by_parent[node as usize] {
                let fail = if node == ROOT {
                    ROOT
                } else {
                    let mut f = self.nodes[node as usize].fail;
                    loop {
                        if let Some(&c) = self.children.get(&pair(f, token)) {
                            break c;
                        }
                        if f == ROOT {
                            break ROOT;
                        }
                        f = self.nodes[f as usize].fail;
                    }
                };
                let parent = &self.nodes[node as usize];
                let (parent_score, parent_occ) = (parent.node_score, parent.occ);
                let fail_node = &self.nodes[fail as usize];
                // Bonus of the hotwords ending exactly here: this node's own and, through the
                // fail link (whose `occ` minus its parent's is that), the shorter ones.
                let fail_ending = fail_node.occ - self.nodes[fail_node.parent as usize].occ;
                let fail_ending = if fail == ROOT { 0.0 } else { fail_ending };
                let c = &mut self.nodes[child as usize];
                c.fail = fail;
                c.node_score = parent_score + c.token_bonus;
                c.occ = parent_occ + c.complete.unwrap_or(0.0) + fail_ending;
                c.potential = c.node_score.max(c.occ);
                queue.push_back(child);
            }
        }
    }

    /// The state at the start of an utterance.
    pub(crate) fn start(&self) -> u32 {
        self.start
    }

    /// The potential bonus of a state (see the module docs).
    #[inline]
    pub(crate) fn potential(&self, state: u32) -> f32 {
        self.nodes[state as usize].potential
    }

    /// The state after `token` and the bonus banked by the transition.
    #[inline]
    pub(crate) fn step(&self, state: u32, token: u32) -> (u32, f32) {
        let token = self.normalize(token);
        if state == ROOT {
            return (
                self.root_goto.get(token as usize).copied().unwrap_or(ROOT),
                0.0,
            );
        }
        if let Some(&c) = self.children.get(&pair(state, token)) {
            return (c, 0.0);
        }
        let occ = self.nodes[state as usize].occ;
        let mut f = state;
        while f != ROOT {
            f = self.nodes[f as usize].fail;
            let child = if f == ROOT {
                self.root_goto
                    .get(token as usize)
                    .copied()
                    .filter(|&c| c != ROOT)
            } else {
                self.children.get(&pair(f, token)).copied()
            };
            if let Some(c) = child {
                return (c, occ - self.nodes[f as usize].occ);
            }
        }
        (ROOT, occ)
    }

    /// What is banked at the end of the utterance in `state` (the match in progress is
    /// closed by a virtual delimiter, then its complete hotwords are banked).
    pub(crate) fn finish(&self, state: u32) -> f32 {
        match self.delimiter {
            Some(d) => {
                let (s, banked) = self.step(state, d);
                banked + self.nodes[s as usize].occ
            }
            None => self.nodes[state as usize].occ,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(delimiter: bool) -> CtcVocab {
        let t = ["_", "|", "a", "b", "c", "n", "e", "w", "y", "o", "r", "k"]
            .map(String::from)
            .to_vec();
        CtcVocab::new(t, 0, delimiter.then_some(1)).unwrap()
    }

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn parses_phrase_and_bonus() {
        assert_eq!(
            Hotword::parse("cab:2.5", 1.5).unwrap(),
            Hotword::new("cab", 2.5)
        );
        assert_eq!(
            Hotword::parse("  new   york ", 1.5).unwrap(),
            Hotword::new("new york", 1.5)
        );
        assert_eq!(
            Hotword::parse("c:drive", 1.5).unwrap(),
            Hotword::new("c:drive", 1.5)
        );
        assert!(Hotword::parse(":2", 1.0).is_err());
        assert!(Hotword::parse("x:inf", 1.0).is_err());
        assert!(Hotword::parse("", 1.0).is_err());
    }

    #[test]
    fn whole_words_partial_matches_and_take_back() {
        let v = vocab(true);
        let hw = Hotwords::new(&v, &[Hotword::new("cab", 1.0)]).unwrap();
        let t = |s: &str| v.tokenize(s).unwrap();
        close(hw.bonus(&t("cab")), 3.0);
        close(hw.bonus(&t("a cab a cab")), 6.0);
        close(hw.bonus(&t("cabb")), 0.0);
        close(hw.bonus(&t("acab")), 0.0);
        close(hw.bonus(&t("ca")), 0.0);
        // The partial match earns per token while it lasts, and it is banked on completion.
        let mut s = hw.start();
        let mut banked = 0.0;
        for (tok, pot) in [(4u32, 1.0), (2, 2.0), (3, 3.0)] {
            let (n, b) = hw.step(s, tok);
            s = n;
            banked += b;
            close(banked + hw.potential(s), pot);
        }
        let (n, b) = hw.step(s, 1);
        close(b + hw.potential(n), 3.0);
        // A failure takes the partial bonus back.
        let (n, b) = hw.step(hw.step(hw.start(), 4).0, 4);
        close(b + hw.potential(n), 0.0);
    }

    #[test]
    fn nested_and_overlapping_hotwords_count_each_occurrence_once() {
        let v = vocab(true);
        let t = |s: &str| v.tokenize(s).unwrap();
        let hw = Hotwords::new(
            &v,
            &[Hotword::new("new", 1.0), Hotword::new("new york", 0.5)],
        )
        .unwrap();
        close(hw.bonus(&t("new york")), 3.0 + 3.5);
        close(hw.bonus(&t("new yo")), 3.0);
        close(hw.bonus(&t("new")), 3.0);
        close(hw.bonus(&t("new new")), 6.0);
        // Without a delimiter, matches are substrings and overlap.
        let v = vocab(false);
        let hw = Hotwords::new(&v, &[Hotword::new("aa", 1.0), Hotword::new("ab", 2.0)]).unwrap();
        close(hw.bonus(&v.tokenize("aaa").unwrap()), 4.0);
        close(hw.bonus(&v.tokenize("aab").unwrap()), 2.0 + 4.0);
        close(hw.bonus(&v.tokenize("cab").unwrap()), 4.0);
        assert!(Hotwords::new(&v, &[Hotword::new("zz", 1.0)]).is_err());
        assert_eq!(hw.len(), 2);
    }

    #[test]
    fn suffix_hotword_inside_a_longer_partial_match_is_kept() {
        let v = vocab(false);
        // "bc" completes inside a failed partial match of "abck".
        let hw = Hotwords::new(&v, &[Hotword::new("abck", 1.0), Hotword::new("bc", 5.0)]).unwrap();
        close(hw.bonus(&v.tokenize("abca").unwrap()), 10.0);
        close(hw.bonus(&v.tokenize("abck").unwrap()), 14.0);
    }
}
