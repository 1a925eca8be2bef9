//! Scripted models for testing decoders without weights.
//!
//! [`ScriptedStep`] implements [`WhisperStep`] with logits computed by a function of each
//! hypothesis' token history, so a test knows the optimum in advance. It also checks the
//! calling protocol (row counts, token counts, the positional limit) and records every
//! call, so tests can assert how the decoder drove it. A real driver must behave the same
//! way: a decoder that passes here is protocol-correct.

use super::WhisperStep;
use crate::decode::math::SplitMix64;
use crate::{Error, Result};

/// What the logits function sees for one hypothesis.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The hypothesis' tokens so far, prompt included; the logits are for what follows.
    pub tokens: &'a [u32],
    /// How many times [`WhisperStep::reset`] was called before this step (1 in the first
    /// decode, which resets first; 2 in the first fallback, ...).
    pub n_resets: usize,
}

/// One call to the model, as recorded by [`ScriptedStep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `step` with `n_new` tokens for each of `n_hyp` rows.
    Step {
        /// New tokens per row.
        n_new: usize,
        /// Rows.
        n_hyp: usize,
    },
    /// `reorder(src)`.
    Reorder(Vec<usize>),
    /// `reset()`.
    Reset,
}

/// A [`WhisperStep`] whose logits are `logits(query, out)` for each row's history.
pub struct ScriptedStep<F> {
    n_vocab: usize,
    logits: F,
    rows: Vec<Vec<u32>>,
    n_resets: usize,
    /// Positions the model accepts per row (`n_text_ctx`, 448): a step past it fails.
    pub max_positions: usize,
    /// Every call, in order.
    pub calls: Vec<Call>,
}

impl<F: Fn(Query<'_>, &mut [f32])> ScriptedStep<F> {
    /// A model with `n_vocab` outputs whose logits `logits` writes into `out`
    /// (`(n_vocab,)`, zeroed first).
    pub fn new(n_vocab: usize, logits: F) -> Self {
        ScriptedStep {
            n_vocab,
            logits,
            rows: Vec::new(),
            n_resets: 0,
            max_positions: 448,
            calls: Vec::new(),
        }
    }

    /// Number of model calls that ran tokens through the decoder.
    pub fn n_steps(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| matches!(c, Call::Step { .. }))
            .count()
    }

    /// Number of resets so far.
    pub fn n_resets(&self) -> usize {
        self.n_resets
    }
}

fn protocol(what: &str, expected: String, got: impl std::fmt::Display) -> Error {
    Error::invalid(format!("WhisperStep protocol: {what}"), expected, got)
}

impl<F: Fn(Query<'_>, &mut [f32])> WhisperStep for ScriptedStep<F> {
    fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        let expected_rows = if self.rows.is_empty() {
            1
        } else {
            self.rows.len()
        };
        if n_hyp != expected_rows {
            return Err(protocol("rows", format!("{expected_rows}"), n_hyp));
        }
        if tokens.is_empty() || !tokens.len().is_multiple_of(n_hyp) {
            return Err(protocol(
                "token count",
                format!("a positive multiple of {n_hyp}"),
                tokens.len(),
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(protocol("token id", format!("< {}", self.n_vocab), bad));
        }
        let n_new = tokens.len() / n_hyp;
        if self.rows.is_empty() {
            self.rows.push(Vec::new());
        }
        self.calls.push(Call::Step { n_new, n_hyp });
        let mut out = vec![0.0f32; n_hyp * self.n_vocab];
        for (r, row) in self.rows.iter_mut().enumerate() {
            row.extend_from_slice(&tokens[r * n_new..(r + 1) * n_new]);
            if row.len() > self.max_positions {
                return Err(protocol(
                    "positions",
                    format!("≤ {}", self.max_positions),
                    row.len(),
                ));
            }
            (self.logits)(
                Query {
                    tokens: row,
                    n_resets: self.n_resets,
                },
                &mut out[r * self.n_vocab..(r + 1) * self.n_vocab],
            );
        }
        Ok(out)
    }

    fn reorder(&mut self, src: &[usize]) -> Result<()> {
        if let Some(&bad) = src.iter().find(|&&s| s >= self.rows.len()) {
            return Err(protocol(
                "reorder source",
                format!("< {} rows", self.rows.len()),
                bad,
            ));
        }
        self.calls.push(Call::Reorder(src.to_vec()));
        self.rows = src.iter().map(|&s| self.rows[s].clone()).collect();
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        self.calls.push(Call::Reset);
        self.rows.clear();
        self.n_resets += 1;
        Ok(())
    }
}

/// Pseudo-random logits in `[-scale, scale)`, a deterministic function of `seed` and the
/// token history: a random "language model" for property tests.
pub fn hashed_logits(seed: u64, tokens: &[u32], scale: f32, out: &mut [f32]) {
    let mut h = seed ^ 0xCBF2_9CE4_8422_2325;
    for &t in tokens {
        h = (h ^ t as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut rng = SplitMix64::new(h);
    for x in out.iter_mut() {
        *x = ((rng.next_f64() * 2.0 - 1.0) * scale as f64) as f32;
    }
}
