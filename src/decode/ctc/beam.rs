//! CTC prefix beam search (Hannun et al. 2014, "First-Pass Large Vocabulary Continuous
//! Speech Recognition using Bi-Directional Recurrent DNNs", arXiv:1408.2873, algorithm 1) in
//! log space, with shallow fusion of an n-gram LM at word boundaries and hotword bonuses.
//!
//! Each hypothesis is a prefix (an output token sequence) with two acoustic log-probs: of
//! the alignments that end in a blank (`p_b`) and of those that end in its last token
//! (`p_nb`). Per frame, every hypothesis stays (blank, or a repeat of its last token that
//! collapses) or grows by one token; identical prefixes are merged by summing; the best
//! `beam_width` by `ln(e^p_b + e^p_nb) + fusion score` survive.
//!
//! How it is kept cheap and exact:
//! - Prefixes live in a trie (parent-pointer arena with a `(parent, token) -> child` map), so
//!   a hypothesis is one `u32` and never clones its tokens. The trie is canonical (one node
//!   per prefix), so "same prefix" is "same node" and merging needs no hashing of token
//!   sequences; candidate prefixes that do not survive the frame never become nodes. Token
//!   timings live in a second, per-hypothesis arena (a merged prefix keeps the timing of
//!   its most probable contribution). Both arenas are compacted when they outgrow the live
//!   hypotheses, so long streams use bounded memory.
//! - The LM state, the current word's place in the LM lexicon and the hotword state are
//!   functions of the prefix alone, so merged hypotheses agree on them and merging is exact.
//! - Every frame is processed the same way whatever chunk it arrives in, and ties are
//!   broken by candidate order (hypothesis rank, then token id), never by hash order: chunked
//!   decoding equals offline decoding bit for bit.
//! - A frame on which only the blank survives token pruning (most frames of speech) only
//!   updates each hypothesis' two log-probs: no candidates, no selection.
//!
//! Approximations, all optional ([`BeamOptions`]): the beam itself; token pruning (a pruned
//! token contributes nothing on that frame, blank included); the beam cutoff; blank
//! skipping (see [`BlankSkip`]). With one hypothesis, prefix beam search still sums the
//! alignments of its prefix, so it equals greedy decoding only when each frame's best token
//! is clear (probability >= 0.9 suffices; `tests/ctc_decode.rs` has the proof sketch, a
//! property test, and a counter-example: frames `a`, then blank 0.3 / `a` 0.3 / `b` 0.4 give
//! greedy "ab" but the prefix "a" has 0.6).
//!
//! Output conventions as in [`super`]: special tokens count as blanks (their probability is
//! added to the blank's), and a delimiter at the start or right after another delimiter
//! collapses into the prefix instead of growing it.

use std::sync::Arc;

use super::hotwords::Hotwords;
use super::lm::{LEX_EMPTY, LEX_OOV, Lexicon, LmFusion, LmState, NgramLm};
use super::{
    CtcResult, CtcScore, CtcVocab, Hotword, IdMap, NONE, TokenKind, check_no_nan, check_rows,
    log_add, pair,
};
use crate::{Error, Result};

const NEG_INF: f32 = f32::NEG_INFINITY;

/// Node 0 of the prefix trie (the empty prefix) and of the timing arena.
const ROOT: u32 = 0;

/// Arena size below which no compaction happens.
const GC_MIN_NODES: usize = 1 << 16;

/// Per-frame token pruning. A pruned token contributes nothing on that frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenPruning {
    /// Keep at most this many tokens per frame (the most probable; the blank counts).
    pub top_k: Option<usize>,
    /// Drop tokens whose log-prob is more than this below the frame's best.
    pub max_below_best: Option<f32>,
}

impl TokenPruning {
    /// No pruning: every token with a finite log-prob is tried on every frame.
    pub const NONE: TokenPruning = TokenPruning {
        top_k: None,
        max_below_best: None,
    };
}

/// Skipping frames that are almost surely blank.
///
/// On a skipped frame, hypotheses only continue through the blank: no prefix grows, and no
/// last token repeats. This is exact up to the paths that emit a token on such a frame: each
/// of those has probability at most `1 - exp(min_blank_logp)` there (0.001 for `ln 0.999`),
/// so the result changes only when the best transcript needs a token that the model gave
/// less than that. Token pruning gives the same fast path whenever it leaves only the blank
/// (with the default 10-nat cutoff, on most blank frames of speech), so this matters most
/// with pruning off or loose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlankSkip {
    /// Process every frame in full.
    Off,
    /// Skip frames whose blank log-prob (special tokens included) is above the threshold.
    Above {
        /// Threshold, natural log (`(0.999f32).ln()` is conservative).
        min_blank_logp: f32,
    },
}

/// Beam-search parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamOptions {
    /// Hypotheses kept per frame.
    pub beam_width: usize,
    /// Tokens tried per frame.
    pub token_pruning: TokenPruning,
    /// Frames to skip.
    pub blank_skip: BlankSkip,
    /// Drop hypotheses whose score is more than this below the best after each frame.
    pub beam_cutoff: Option<f32>,
}

impl Default for BeamOptions {
    /// Width 16, tokens within 10 nats of the frame's best, no cutoff, no blank skipping.
    fn default() -> Self {
        BeamOptions {
            beam_width: 16,
            token_pruning: TokenPruning {
                top_k: None,
                max_below_best: Some(10.0),
            },
            blank_skip: BlankSkip::Off,
            beam_cutoff: None,
        }
    }
}

impl BeamOptions {
    /// Default options with the given width.
    pub fn width(beam_width: usize) -> Self {
        BeamOptions {
            beam_width,
            ..BeamOptions::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.beam_width == 0 {
            return Err(Error::invalid("beam_width", ">= 1", 0));
        }
        if self.token_pruning.top_k == Some(0) {
            return Err(Error::invalid("token_pruning.top_k", ">= 1 or None", 0));
        }
        let non_negative = |what: &str, x: Option<f32>| match x {
            Some(x) if x.is_nan() || x < 0.0 => {
                Err(Error::invalid(what, "a number >= 0 (nats) or None", x))
            }
            _ => Ok(()),
        };
        non_negative(
            "token_pruning.max_below_best",
            self.token_pruning.max_below_best,
        )?;
        non_negative("beam_cutoff", self.beam_cutoff)?;
        if let BlankSkip::Above { min_blank_logp } = self.blank_skip
            && !(min_blank_logp.is_finite() && min_blank_logp <= 0.0)
        {
            return Err(Error::invalid(
                "blank_skip min_blank_logp",
                "a finite log-probability <= 0",
                min_blank_logp,
            ));
        }
        Ok(())
    }
}

/// The LM side of a search: weights, model and lexicon.
#[derive(Debug)]
struct Fusion {
    lm: Arc<NgramLm>,
    alpha: f32,
    beta: f32,
    oov_penalty: f32,
    lexicon: Lexicon,
}

/// What all streams of one decoder share.
#[derive(Debug)]
pub(crate) struct BeamShared {
    vocab: Arc<CtcVocab>,
    options: BeamOptions,
    frame_stride_s: f32,
    fusion: Option<Fusion>,
    hotwords: Option<Hotwords>,
    /// Special tokens, whose probability is added to the blank's.
    specials: Vec<u32>,
    /// Ids tried each frame (blank and non-special tokens), ascending.
    tried: Vec<u32>,
    is_delimiter: Vec<bool>,
}

impl BeamShared {
    pub(crate) fn new(
        vocab: Arc<CtcVocab>,
        options: BeamOptions,
        frame_stride_s: f32,
        lm: Option<LmFusion>,
        hotwords: &[Hotword],
    ) -> Result<Self> {
        options.validate()?;
        let fusion = match lm {
            None => None,
            Some(f) => {
                for (what, x) in [
                    ("LM alpha", f.alpha),
                    ("LM beta", f.beta),
                    ("LM oov_penalty", f.oov_penalty),
                ] {
                    if !x.is_finite() {
                        return Err(Error::invalid(what, "a finite number", x));
                    }
                }
                let lexicon = Lexicon::build(&f.lm, &vocab);
                tracing::debug!(lm_words = f.lm.words().len(), "CTC LM lexicon built");
                Some(Fusion {
                    lm: f.lm,
                    alpha: f.alpha,
                    beta: f.beta,
                    oov_penalty: f.oov_penalty,
                    lexicon,
                })
            }
        };
        let hotwords = if hotwords.is_empty() {
            None
        } else {
            Some(Hotwords::new(&vocab, hotwords)?)
        };
        let ids = 0..vocab.len() as u32;
        let specials = ids
            .clone()
            .filter(|&t| vocab.kind(t) == TokenKind::Special)
            .collect();
        let tried = ids
            .clone()
            .filter(|&t| vocab.kind(t) != TokenKind::Special)
            .collect();
        let is_delimiter = ids.map(|t| vocab.kind(t) == TokenKind::Delimiter).collect();
        Ok(BeamShared {
            vocab,
            options,
            frame_stride_s,
            fusion,
            hotwords,
            specials,
            tried,
            is_delimiter,
        })
    }

    fn is_delimiter(&self, token: u32) -> bool {
        self.is_delimiter
            .get(token as usize)
            .copied()
            .unwrap_or(false)
    }

    fn initial_ext(&self) -> Ext {
        let mut e = Ext {
            lm_state: self.fusion.as_ref().map_or(0, |f| f.lm.begin_sentence().0),
            word: LEX_EMPTY,
            lm: 0.0,
            n_words: 0,
            n_oov: 0,
            hot: self.hotwords.as_ref().map_or(0, |h| h.start()),
            hot_banked: 0.0,
            score: 0.0,
        };
        e.score = self.ext_score(&e);
        e
    }

    /// The fusion part of the ranking score.
    fn ext_score(&self, e: &Ext) -> f32 {
        let mut s = 0.0;
        if let Some(f) = &self.fusion {
            s += weighted(f.alpha, e.lm) + f.beta * e.n_words as f32;
            let n_oov = e.n_oov + u32::from(e.word == LEX_OOV);
            if n_oov > 0 {
                s += f.oov_penalty * n_oov as f32;
            }
        }
        if let Some(h) = &self.hotwords {
            s += e.hot_banked + h.potential(e.hot);
        }
        s
    }

    /// `e` after appending non-blank `token`.
    fn advance(&self, e: &Ext, token: u32) -> Ext {
        let mut e = *e;
        if let Some(f) = &self.fusion {
            if self.is_delimiter(token) {
                if e.word != LEX_EMPTY {
                    complete_word(f, &mut e);
                }
            } else {
                e.word = f.lexicon.step(e.word, token);
            }
        }
        if let Some(h) = &self.hotwords {
            let (s, banked) = h.step(e.hot, token);
            e.hot = s;
            e.hot_banked += banked;
        }
        e.score = self.ext_score(&e);
        e
    }

    /// Score parts of a hypothesis; `last` closes the utterance (last word, `</s>`,
    /// hotword matches in progress).
    fn score_parts(&self, acoustic: f32, e: &Ext, last: bool) -> CtcScore {
        let mut e = *e;
        let mut out = CtcScore {
            acoustic,
            ..CtcScore::default()
        };
        if let Some(f) = &self.fusion {
            if last {
                if e.word != LEX_EMPTY {
                    complete_word(f, &mut e);
                }
                e.lm += f.lm.end_sentence(LmState(e.lm_state));
            }
            out.lm = e.lm;
            out.word_insertion = f.beta * e.n_words as f32;
            let n_oov = e.n_oov + u32::from(e.word == LEX_OOV);
            out.oov = if n_oov > 0 {
                f.oov_penalty * n_oov as f32
            } else {
                0.0
            };
        }
        if let Some(h) = &self.hotwords {
            out.hotwords = if last {
                e.hot_banked + h.finish(e.hot)
            } else {
                e.hot_banked + h.potential(e.hot)
            };
        }
        let alpha = self.fusion.as_ref().map_or(0.0, |f| f.alpha);
        out.total =
            acoustic + weighted(alpha, out.lm) + out.word_insertion + out.hotwords + out.oov;
        out
    }
}

/// `alpha * lm`, with `0 * -inf = 0`.
#[inline]
fn weighted(alpha: f32, lm: f32) -> f32 {
    if alpha == 0.0 { 0.0 } else { alpha * lm }
}

fn complete_word(f: &Fusion, e: &mut Ext) {
    let word = f.lexicon.word(e.word);
    let (lp, s) =
        f.lm.score(LmState(e.lm_state), word.unwrap_or(f.lm.unk_id()));
    e.lm += lp;
    e.lm_state = s.0;
    e.n_words += 1;
    e.n_oov += u32::from(word.is_none());
    e.word = LEX_EMPTY;
}

/// The prefix-determined part of a hypothesis: LM and hotword states and scores.
#[derive(Debug, Clone, Copy)]
struct Ext {
    lm_state: u32,
    /// Lexicon node of the word in progress.
    word: u32,
    /// Sum of LM log-probs of the completed words (natural log, unweighted).
    lm: f32,
    n_words: u32,
    /// Completed words outside the LM vocabulary.
    n_oov: u32,
    hot: u32,
    hot_banked: f32,
    /// `BeamShared::ext_score` of this.
    score: f32,
}

#[derive(Debug, Clone, Copy)]
struct Hyp {
    /// Prefix trie node.
    node: u32,
    /// Timing node of the last token.
    time: u32,
    /// Last frame of the last token.
    last_end: u32,
    p_b: f32,
    p_nb: f32,
    ext: Ext,
}

#[derive(Debug, Clone, Copy)]
struct TimeNode {
    parent: u32,
    /// Frame the token was emitted on.
    start: u32,
    /// Last frame of the previous token.
    prev_end: u32,
}

/// A prefix being scored for the next frame.
#[derive(Debug, Clone, Copy)]
struct Cand {
    /// Trie node, or `NONE` for a new prefix `parent + token`.
    node: u32,
    parent: u32,
    token: u32,
    p_b: f32,
    p_nb: f32,
    ext: Ext,
    /// Timing of the best contribution so far: an existing node, or (`NONE`) a new one
    /// after `time_parent` whose previous token ended at `prev_end`.
    time: u32,
    time_parent: u32,
    prev_end: u32,
    last_end: u32,
    best: f32,
    score: f32,
}

#[derive(Debug, Clone)]
struct BeamState {
    frame: u32,
    beam: Vec<Hyp>,
    trie_parent: Vec<u32>,
    trie_token: Vec<u32>,
    trie_children: IdMap<u32>,
    /// Candidate index of each trie node during a frame (`NONE` otherwise).
    slot: Vec<u32>,
    times: Vec<TimeNode>,
    gc_at: usize,
    gc_min: usize,
    // Scratch buffers, kept to avoid allocating per frame.
    cands: Vec<Cand>,
    /// `(score, candidate index)` of the survivors, best first.
    order: Vec<(f32, u32)>,
    tokens: Vec<(u32, f32)>,
    next_beam: Vec<Hyp>,
}

impl BeamState {
    fn new(shared: &BeamShared, gc_min: usize) -> Self {
        BeamState {
            frame: 0,
            beam: vec![Hyp {
                node: ROOT,
                time: ROOT,
                last_end: 0,
                p_b: 0.0,
                p_nb: NEG_INF,
                ext: shared.initial_ext(),
            }],
            trie_parent: vec![NONE],
            trie_token: vec![NONE],
            trie_children: IdMap::with_capacity_and_hasher(1024, Default::default()),
            slot: vec![NONE],
            times: vec![TimeNode {
                parent: NONE,
                start: 0,
                prev_end: 0,
            }],
            gc_at: gc_min,
            gc_min,
            cands: Vec::new(),
            order: Vec::new(),
            tokens: Vec::new(),
            next_beam: Vec::new(),
        }
    }

    fn step(&mut self, sh: &BeamShared, row: &[f32]) {
        let blank_id = sh.vocab.blank_id();
        let mut blank = row[blank_id as usize];
        for &s in &sh.specials {
            blank = log_add(blank, row[s as usize]);
        }
        let skip = match sh.options.blank_skip {
            BlankSkip::Above { min_blank_logp } => blank > min_blank_logp,
            BlankSkip::Off => false,
        };
        if !skip {
            self.select_tokens(sh, row, blank);
        }
        let blank_only = self.tokens.len() == 1 && self.tokens[0].0 == sh.vocab.blank_id();
        if skip || blank_only || self.tokens.is_empty() {
            // Every hypothesis can only stay, through the blank: the regular path would
            // shift all scores by the same amount and keep them all. Skip its bookkeeping.
            self.carry_on(blank);
        } else {
            self.expand(sh);
        }
        self.frame += 1;
        if self.trie_parent.len() >= self.gc_at || self.times.len() >= self.gc_at {
            self.compact();
        }
    }

    /// The tokens tried on this frame, ascending ids.
    fn select_tokens(&mut self, sh: &BeamShared, row: &[f32], blank: f32) {
        let blank_id = sh.vocab.blank_id();
        let lp = |t: u32| {
            if t == blank_id {
                blank
            } else {
                row[t as usize]
            }
        };
        let pruning = sh.options.token_pruning;
        let floor = match pruning.max_below_best {
            Some(d) => sh.tried.iter().map(|&t| lp(t)).fold(NEG_INF, f32::max) - d,
            None => NEG_INF,
        };
        self.tokens.clear();
        for &t in &sh.tried {
            let x = lp(t);
            if x > NEG_INF && x >= floor {
                self.tokens.push((t, x));
            }
        }
        if let Some(k) = pruning.top_k
            && self.tokens.len() > k
        {
            self.tokens
                .sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            self.tokens.truncate(k);
            self.tokens.sort_unstable_by_key(|t| t.0);
        }
    }

    /// A frame on which every hypothesis continues through the blank only.
    fn carry_on(&mut self, blank: f32) {
        for h in &mut self.beam {
            h.p_b = log_add(h.p_b, h.p_nb) + blank;
            h.p_nb = NEG_INF;
        }
    }

    fn expand(&mut self, sh: &BeamShared) {
        let t = self.frame;
        let blank_id = sh.vocab.blank_id();
        self.cands.clear();
        for (i, h) in self.beam.iter().enumerate() {
            self.slot[h.node as usize] = i as u32;
            self.cands.push(Cand {
                node: h.node,
                parent: NONE,
                token: NONE,
                p_b: NEG_INF,
                p_nb: NEG_INF,
                ext: h.ext,
                time: h.time,
                time_parent: NONE,
                prev_end: 0,
                last_end: h.last_end,
                best: NEG_INF,
                score: NEG_INF,
            });
        }
        for i in 0..self.beam.len() {
            let h = self.beam[i];
            let total = log_add(h.p_b, h.p_nb);
            if total == NEG_INF {
                continue;
            }
            let last = self.trie_token[h.node as usize];
            let word_ended = h.node == ROOT || sh.is_delimiter(last);
            for k in 0..self.tokens.len() {
                let (c, lp) = self.tokens[k];
                if c == blank_id {
                    self.add_stay(i, false, total + lp, h.last_end);
                } else if word_ended && sh.is_delimiter(c) {
                    self.add_stay(i, true, total + lp, t);
                } else if c == last {
                    self.add_stay(i, true, h.p_nb + lp, t);
                    if h.p_b > NEG_INF {
                        self.extend(sh, &h, c, h.p_b + lp);
                    }
                } else {
                    self.extend(sh, &h, c, total + lp);
                }
            }
        }
        for c in &mut self.cands {
            c.score = log_add(c.p_b, c.p_nb) + c.ext.score;
        }
        self.select(sh);
        for h in &self.beam {
            self.slot[h.node as usize] = NONE;
        }
        self.next_beam.clear();
        for k in 0..self.order.len() {
            let c = self.cands[self.order[k].1 as usize];
            let node = if c.node != NONE {
                c.node
            } else {
                let id = self.trie_parent.len() as u32;
                self.trie_parent.push(c.parent);
                self.trie_token.push(c.token);
                self.slot.push(NONE);
                self.trie_children.insert(pair(c.parent, c.token), id);
                id
            };
            let time = if c.time != NONE {
                c.time
            } else {
                self.times.push(TimeNode {
                    parent: c.time_parent,
                    start: t,
                    prev_end: c.prev_end,
                });
                (self.times.len() - 1) as u32
            };
            self.next_beam.push(Hyp {
                node,
                time,
                last_end: c.last_end,
                p_b: c.p_b,
                p_nb: c.p_nb,
                ext: c.ext,
            });
        }
        std::mem::swap(&mut self.beam, &mut self.next_beam);
    }

    /// Adds a contribution to hypothesis `i`'s own prefix (`non_blank`: to `p_nb`).
    #[inline]
    fn add_stay(&mut self, i: usize, non_blank: bool, contrib: f32, last_end: u32) {
        let time = self.beam[i].time;
        let c = &mut self.cands[i];
        if non_blank {
            c.p_nb = log_add(c.p_nb, contrib);
        } else {
            c.p_b = log_add(c.p_b, contrib);
        }
        if contrib > c.best {
            c.best = contrib;
            c.time = time;
            c.last_end = last_end;
        }
    }

    /// Adds the contribution of `h`'s prefix followed by `token`.
    #[inline]
    fn extend(&mut self, sh: &BeamShared, h: &Hyp, token: u32, contrib: f32) {
        let t = self.frame;
        let child = self.trie_children.get(&pair(h.node, token)).copied();
        if let Some(n) = child {
            let j = self.slot[n as usize];
            if j != NONE {
                let c = &mut self.cands[j as usize];
                c.p_nb = log_add(c.p_nb, contrib);
                if contrib > c.best {
                    c.best = contrib;
                    c.time = NONE;
                    c.time_parent = h.time;
                    c.prev_end = h.last_end;
                    c.last_end = t;
                }
                return;
            }
        }
        self.cands.push(Cand {
            node: child.unwrap_or(NONE),
            parent: h.node,
            token,
            p_b: NEG_INF,
            p_nb: contrib,
            ext: sh.advance(&h.ext, token),
            time: NONE,
            time_parent: h.time,
            prev_end: h.last_end,
            last_end: t,
            best: contrib,
            score: NEG_INF,
        });
    }

    /// Fills `order` with the surviving candidates, best first.
    fn select(&mut self, sh: &BeamShared) {
        self.order.clear();
        self.order.extend(
            self.cands
                .iter()
                .enumerate()
                .filter(|(_, c)| c.score > NEG_INF)
                .map(|(i, c)| (c.score, i as u32)),
        );
        if self.order.is_empty() {
            // Nothing is possible any more; keep the hypotheses (at -inf) rather than none.
            self.order
                .extend((0..self.beam.len() as u32).map(|i| (NEG_INF, i)));
        }
        let cmp = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let width = sh.options.beam_width;
        if self.order.len() > width {
            self.order.select_nth_unstable_by(width - 1, cmp);
            self.order.truncate(width);
        }
        self.order.sort_unstable_by(cmp);
        if let (Some(cut), Some(&(best, _))) = (sh.options.beam_cutoff, self.order.first()) {
            let floor = best - cut;
            self.order.retain(|&(score, _)| score >= floor);
        }
    }

    /// Drops trie and timing nodes that no live hypothesis reaches, renumbering the rest
    /// (in order, so parents stay before children).
    fn compact(&mut self) {
        let mut keep = vec![false; self.trie_parent.len()];
        keep[ROOT as usize] = true;
        for h in &self.beam {
            let mut n = h.node;
            while !keep[n as usize] {
                keep[n as usize] = true;
                n = self.trie_parent[n as usize];
            }
        }
        let mut remap = vec![NONE; keep.len()];
        let (mut parent, mut token) = (Vec::new(), Vec::new());
        self.trie_children.clear();
        for (old, _) in keep.iter().enumerate().filter(|k| *k.1) {
            let id = parent.len() as u32;
            remap[old] = id;
            let p = self.trie_parent[old];
            let p = if p == NONE { NONE } else { remap[p as usize] };
            parent.push(p);
            token.push(self.trie_token[old]);
            if p != NONE {
                self.trie_children.insert(pair(p, self.trie_token[old]), id);
            }
        }
        self.trie_parent = parent;
        self.trie_token = token;
        self.slot = vec![NONE; self.trie_parent.len()];

        let mut keep_t = vec![false; self.times.len()];
        keep_t[ROOT as usize] = true;
        for h in &self.beam {
            let mut n = h.time;
            while !keep_t[n as usize] {
                keep_t[n as usize] = true;
                n = self.times[n as usize].parent;
            }
        }
        let mut remap_t = vec![NONE; keep_t.len()];
        let mut times = Vec::new();
        for (old, _) in keep_t.iter().enumerate().filter(|k| *k.1) {
            remap_t[old] = times.len() as u32;
            let mut node = self.times[old];
            if node.parent != NONE {
                node.parent = remap_t[node.parent as usize];
            }
            times.push(node);
        }
        self.times = times;
        for h in &mut self.beam {
            h.node = remap[h.node as usize];
            h.time = remap_t[h.time as usize];
        }
        let live = self.trie_parent.len().max(self.times.len());
        self.gc_at = self.gc_min.max(2 * live);
    }

    /// `(token, start_frame, end_frame)` of a hypothesis' tokens.
    fn spans(&self, h: &Hyp) -> Vec<(u32, u32, u32)> {
        let mut tokens = Vec::new();
        let mut n = h.node;
        while n != ROOT {
            tokens.push(self.trie_token[n as usize]);
            n = self.trie_parent[n as usize];
        }
        let mut times = Vec::new();
        let mut m = h.time;
        while m != ROOT {
            times.push(self.times[m as usize]);
            m = self.times[m as usize].parent;
        }
        debug_assert_eq!(tokens.len(), times.len());
        tokens.reverse();
        times.reverse();
        (0..tokens.len())
            .map(|i| {
                let end = times.get(i + 1).map_or(h.last_end, |n| n.prev_end);
                (tokens[i], times.get(i).map_or(0, |n| n.start), end)
            })
            .collect()
    }
}

/// Per-stream beam-search state: the live prefixes and the frame offset.
#[derive(Debug, Clone)]
pub struct BeamStream {
    shared: Arc<BeamShared>,
    state: Box<BeamState>,
}

impl BeamStream {
    pub(crate) fn new(shared: Arc<BeamShared>) -> Self {
        let state = Box::new(BeamState::new(&shared, GC_MIN_NODES));
        BeamStream { shared, state }
    }

    /// Consumes `log_probs: (n_chunk_frames, vocab_size)`, row-major, log-probabilities.
    /// On error (wrong length, NaN) the state is unchanged.
    pub fn push(&mut self, log_probs: &[f32]) -> Result<()> {
        let n_vocab = self.shared.vocab.len();
        check_rows(log_probs, n_vocab)?;
        check_no_nan(log_probs, n_vocab)?;
        for row in log_probs.chunks_exact(n_vocab) {
            self.state.step(&self.shared, row);
        }
        Ok(())
    }

    /// The best hypothesis so far, scored as it stands (no end-of-utterance scoring).
    pub fn partial(&self) -> CtcResult {
        let sh = &*self.shared;
        let mut best: Option<(f32, &Hyp)> = None;
        for h in &self.state.beam {
            let s = log_add(h.p_b, h.p_nb) + h.ext.score;
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, h));
            }
        }
        match best {
            Some((_, h)) => self.result(h, sh.score_parts(log_add(h.p_b, h.p_nb), &h.ext, false)),
            None => CtcResult::assemble(&sh.vocab, &[], sh.frame_stride_s, CtcScore::default()),
        }
    }

    /// Ends the utterance and returns the best transcript; resets the stream.
    pub fn finish(&mut self) -> CtcResult {
        let mut n_best = self.finish_n_best(1);
        n_best.pop().unwrap_or_else(|| {
            CtcResult::assemble(
                &self.shared.vocab,
                &[],
                self.shared.frame_stride_s,
                CtcScore::default(),
            )
        })
    }

    /// Ends the utterance and returns up to `n` transcripts, best first (by final score:
    /// last word, `</s>` and hotword matches closed); resets the stream.
    pub fn finish_n_best(&mut self, n: usize) -> Vec<CtcResult> {
        let sh = &*self.shared;
        let mut scored: Vec<(CtcScore, usize)> = self
            .state
            .beam
            .iter()
            .enumerate()
            .map(|(i, h)| (sh.score_parts(log_add(h.p_b, h.p_nb), &h.ext, true), i))
            .collect();
        scored.sort_by(|a, b| b.0.total.total_cmp(&a.0.total).then(a.1.cmp(&b.1)));
        let out = scored
            .into_iter()
            .take(n)
            .map(|(score, i)| self.result(&self.state.beam[i], score))
            .collect();
        self.reset();
        out
    }

    /// Drops all state.
    pub fn reset(&mut self) {
        *self.state = BeamState::new(&self.shared, self.state.gc_min);
    }

    /// Frames consumed since the last reset.
    pub fn n_frames(&self) -> usize {
        self.state.frame as usize
    }

    /// Number of live hypotheses.
    pub fn n_hypotheses(&self) -> usize {
        self.state.beam.len()
    }

    fn result(&self, h: &Hyp, score: CtcScore) -> CtcResult {
        CtcResult::assemble(
            &self.shared.vocab,
            &self.state.spans(h),
            self.shared.frame_stride_s,
            score,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ctc::{CtcDecoder, CtcSearch, CtcStream, log_softmax_rows};
    use crate::decode::math::SplitMix64;

    fn vocab() -> CtcVocab {
        let t = ["_", "|", "a", "b", "c", "<unk>"]
            .map(String::from)
            .to_vec();
        CtcVocab::new(t, 0, Some(1)).unwrap()
    }

    fn random_log_probs(n_frames: usize, n_vocab: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut m: Vec<f32> = (0..n_frames * n_vocab)
            .map(|_| (rng.next_f64() * 6.0 - 3.0) as f32)
            .collect();
        log_softmax_rows(&mut m, n_vocab).unwrap();
        m
    }

    fn beam_stream(options: BeamOptions) -> BeamStream {
        let dec = CtcDecoder::builder(vocab())
            .search(CtcSearch::Beam(options))
            .build()
            .unwrap();
        match dec.stream() {
            CtcStream::Beam(b) => b,
            CtcStream::Greedy(_) => unreachable!(),
        }
    }

    #[test]
    fn compaction_changes_nothing() {
        let m = random_log_probs(400, 6, 11);
        let options = BeamOptions {
            token_pruning: TokenPruning::NONE,
            ..BeamOptions::width(8)
        };
        let mut plain = beam_stream(options);
        let mut compacted = beam_stream(options);
        *compacted.state = BeamState::new(&compacted.shared, 16);
        plain.push(&m).unwrap();
        compacted.push(&m).unwrap();
        assert!(compacted.state.trie_parent.len() < plain.state.trie_parent.len());
        assert_eq!(plain.partial(), compacted.partial());
        assert_eq!(plain.finish_n_best(8), compacted.finish_n_best(8));
    }

    #[test]
    fn invalid_options_are_rejected() {
        let bad = [
            BeamOptions::width(0),
            BeamOptions {
                token_pruning: TokenPruning {
                    top_k: Some(0),
                    max_below_best: None,
                },
                ..BeamOptions::default()
            },
            BeamOptions {
                beam_cutoff: Some(f32::NAN),
                ..BeamOptions::default()
            },
            BeamOptions {
                blank_skip: BlankSkip::Above {
                    min_blank_logp: 0.5,
                },
                ..BeamOptions::default()
            },
        ];
        for options in bad {
            let r = CtcDecoder::builder(vocab())
                .search(CtcSearch::Beam(options))
                .build();
            assert!(r.is_err(), "{options:?}");
        }
    }

    #[test]
    fn n_best_is_sorted_and_distinct() {
        let m = random_log_probs(30, 6, 3);
        let mut s = beam_stream(BeamOptions::width(6));
        s.push(&m).unwrap();
        assert!(s.n_hypotheses() > 1);
        let n_best = s.finish_n_best(6);
        assert!(n_best.len() > 1);
        for w in n_best.windows(2) {
            assert!(w[0].score.total >= w[1].score.total);
            assert_ne!(w[0].tokens, w[1].tokens);
        }
        assert_eq!(s.n_frames(), 0);
    }
}
