//! Greedy CTC decoding: arg-max per frame, collapse repeats, drop blanks.
//!
//! The state that links a frame to the next is the previous frame's arg-max, whether that
//! frame extended an output token, and the frame offset; [`CtcGreedy`] keeps exactly that
//! (plus the output so far), so chunks of any size give the offline result. Ties go to the
//! lower id (`decode::math::argmax`).

use std::sync::Arc;

use crate::Result;
use crate::decode::math;

use super::{CtcResult, CtcScore, CtcVocab, TokenKind, check_no_nan, check_rows};

/// Streaming greedy decoder for one utterance.
#[derive(Debug, Clone)]
pub struct CtcGreedy {
    vocab: Arc<CtcVocab>,
    frame_stride_s: f32,
    state: GreedyState,
}

#[derive(Debug, Clone, Default)]
struct GreedyState {
    /// Arg-max of the previous frame.
    prev: Option<u32>,
    /// Whether the previous frame's token is the last entry of `spans` (so a repeat of it
    /// extends that span).
    extending: bool,
    /// Frames consumed.
    n_frames: u32,
    /// `(token, start_frame, end_frame)` of each output token.
    spans: Vec<(u32, u32, u32)>,
    /// Sum of the chosen log-probs.
    acoustic: f64,
}

impl CtcGreedy {
    /// A decoder with no frames consumed; `frame_stride_s` converts frames to seconds.
    pub fn new(vocab: Arc<CtcVocab>, frame_stride_s: f32) -> Self {
        CtcGreedy {
            vocab,
            frame_stride_s,
            state: GreedyState::default(),
        }
    }

    /// Consumes `log_probs: (n_chunk_frames, vocab_size)`, row-major (raw logits give the
    /// same tokens; only the score assumes log-probabilities). On error the state is
    /// unchanged.
    pub fn push(&mut self, log_probs: &[f32]) -> Result<()> {
        self.state.push(&self.vocab, log_probs)
    }

    /// The transcript so far.
    pub fn partial(&self) -> CtcResult {
        self.state.result(&self.vocab, self.frame_stride_s)
    }

    /// The transcript of everything pushed; resets the decoder.
    pub fn finish(&mut self) -> CtcResult {
        let out = self.partial();
        self.reset();
        out
    }

    /// Forgets all frames.
    pub fn reset(&mut self) {
        self.state = GreedyState::default();
    }

    /// Frames consumed since the last reset.
    pub fn n_frames(&self) -> usize {
        self.state.n_frames as usize
    }
}

impl GreedyState {
    fn push(&mut self, vocab: &CtcVocab, log_probs: &[f32]) -> Result<()> {
        let n_vocab = vocab.len();
        check_rows(log_probs, n_vocab)?;
        check_no_nan(log_probs, n_vocab)?;
        for row in log_probs.chunks_exact(n_vocab) {
            let best = math::argmax(row) as u32;
            self.acoustic += f64::from(row[best as usize]);
            self.step(vocab, best);
        }
        Ok(())
    }

    fn step(&mut self, vocab: &CtcVocab, token: u32) {
        let frame = self.n_frames;
        self.n_frames += 1;
        let repeat = self.prev == Some(token);
        self.prev = Some(token);
        if repeat {
            if self.extending
                && let Some(last) = self.spans.last_mut()
            {
                last.2 = frame;
            }
            return;
        }
        self.extending = false;
        match vocab.kind(token) {
            TokenKind::Blank | TokenKind::Special => {}
            TokenKind::Text => {
                self.spans.push((token, frame, frame));
                self.extending = true;
            }
            TokenKind::Delimiter => match self.spans.last_mut() {
                // No delimiter before the first word.
                None => {}
                // Two delimiters with only blanks between collapse into the first.
                Some(last) if vocab.kind(last.0) == TokenKind::Delimiter => {
                    last.2 = frame;
                    self.extending = true;
                }
                Some(_) => {
                    self.spans.push((token, frame, frame));
                    self.extending = true;
                }
            },
        }
    }

    fn result(&self, vocab: &CtcVocab, frame_stride_s: f32) -> CtcResult {
        let acoustic = self.acoustic as f32;
        CtcResult::assemble(
            vocab,
            &self.spans,
            frame_stride_s,
            CtcScore {
                acoustic,
                total: acoustic,
                ..CtcScore::default()
            },
        )
    }
}

/// Greedy decoding of a whole utterance: `log_probs: (n_frames, vocab_size)`, row-major.
pub fn greedy_decode(
    log_probs: &[f32],
    vocab: &CtcVocab,
    frame_stride_s: f32,
) -> Result<CtcResult> {
    let mut state = GreedyState::default();
    state.push(vocab, log_probs)?;
    Ok(state.result(vocab, frame_stride_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `_ | a b <unk>` with blank 0, delimiter 1.
    fn vocab() -> CtcVocab {
        let t = ["_", "|", "a", "b", "<unk>"].map(String::from).to_vec();
        CtcVocab::new(t, 0, Some(1)).unwrap()
    }

    /// One-hot log-prob rows for a frame-level path.
    fn one_hot(path: &[u32], n: usize) -> Vec<f32> {
        let mut m = vec![-10.0f32; path.len() * n];
        for (f, &t) in path.iter().enumerate() {
            m[f * n + t as usize] = 0.0;
        }
        m
    }

    #[test]
    fn collapses_repeats_drops_blanks_and_normalizes_delimiters() {
        let v = vocab();
        // | a a _ a b | _ | b b <unk> b |
        let path = [1, 2, 2, 0, 2, 3, 1, 0, 1, 3, 3, 4, 3, 1];
        let r = greedy_decode(&one_hot(&path, 5), &v, 0.02).unwrap();
        assert_eq!(r.text, "aab bb");
        assert_eq!(r.tokens, [2, 2, 3, 1, 3, 3, 1]);
        let spans: Vec<_> = r
            .token_spans
            .iter()
            .map(|s| (s.start_frame, s.end_frame))
            .collect();
        assert_eq!(
            spans,
            [(1, 2), (4, 4), (5, 5), (6, 8), (9, 10), (12, 12), (13, 13)]
        );
        assert_eq!(r.words.len(), 2);
        assert_eq!((r.words[0].start_frame, r.words[0].end_frame), (1, 5));
        assert!((r.words[0].start_s - 0.02).abs() < 1e-6);
        assert!((r.words[0].end_s - 0.12).abs() < 1e-6);
        assert_eq!(r.words[1].word, "bb");
        assert!((r.score.acoustic - 0.0).abs() < 1e-6);
    }

    #[test]
    fn chunks_equal_offline_and_errors_leave_state_alone() {
        let v = Arc::new(vocab());
        let path = [1, 2, 2, 0, 2, 3, 1, 0, 1, 3, 3, 4, 3, 1];
        let m = one_hot(&path, 5);
        let offline = greedy_decode(&m, &v, 0.02).unwrap();
        let mut g = CtcGreedy::new(v.clone(), 0.02);
        for chunk in m.chunks(15) {
            g.push(chunk).unwrap();
        }
        assert!(g.push(&[0.0; 3]).is_err());
        let mut nan = vec![0.0; 5];
        nan[3] = f32::NAN;
        assert!(g.push(&nan).is_err());
        assert_eq!(g.n_frames(), path.len());
        assert_eq!(g.finish(), offline);
        assert_eq!(g.n_frames(), 0);
    }
}
