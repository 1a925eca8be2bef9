//! The per-window decoder state of an optimum Whisper: self-attention caches of a set of
//! hypotheses, the cross-attention keys and values repeated per hypothesis, and the token
//! history of the no-cache layout.

use super::graphs::{DecoderGraph, Decoders, OptimumWhisper, take};
use crate::engine::{Tensor, TensorData};
use crate::{Error, Result};

/// Per-window decoder state of an optimum Whisper: the caches of a set of hypotheses.
pub(crate) struct OptimumCache {
    /// `present.{i}.decoder.{key,value}` per layer, each `(n_hyp, n_head, n_past,
    /// head_dim)`; empty before the first run.
    self_kv: Vec<Tensor>,
    /// `present.{i}.encoder.{key,value}` per layer, each `(n_rows, n_head, n_audio_ctx,
    /// head_dim)` with identical rows; repeated to the hypothesis count when it changes.
    cross_kv: Vec<Tensor>,
    /// `encoder_hidden_states` repeated to `hidden_rows.shape()[0]` rows, for the first
    /// run and the no-cache layout with several hypotheses.
    hidden_rows: Option<Tensor>,
    /// Every hypothesis' tokens so far (no-cache layout only).
    history: Vec<Vec<u32>>,
}

/// `t` `(n, ...)` → `(rows.len(), ...)`: row `i` of the result is row `rows[i]` of `t`.
fn gather_rows(t: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let n = t.shape().first().copied().unwrap_or(0);
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::invalid("cache row", format!("< {n}"), bad));
    }
    let row_len = t.len() / n.max(1);
    let mut shape = t.shape().to_vec();
    if let Some(first) = shape.first_mut() {
        *first = rows.len();
    }
    fn pick<T: Clone>(v: &[T], rows: &[usize], row_len: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(rows.len() * row_len);
        for &r in rows {
            out.extend_from_slice(&v[r * row_len..(r + 1) * row_len]);
        }
        out
    }
    let data = match t.data() {
        TensorData::F32(v) => TensorData::F32(pick(v, rows, row_len)),
        TensorData::F16(v) => TensorData::F16(pick(v, rows, row_len)),
        _ => return Err(Error::invalid("cache dtype", "f32 or f16", t.dtype())),
    };
    Tensor::new(shape, data)
}

/// `t` with identical rows, as `n` rows.
fn with_rows(t: &Tensor, n: usize) -> Result<Tensor> {
    if t.shape().first() == Some(&n) {
        return Ok(t.clone());
    }
    gather_rows(t, &vec![0; n])
}

/// `input_ids` `(rows, cols)`: element `(r, c)` is `get(r, c)`.
fn token_ids(rows: usize, cols: usize, get: impl Fn(usize, usize) -> u32) -> Result<Tensor> {
    let data = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| i64::from(get(r, c)))
        .collect();
    Tensor::from_i64([rows, cols], data)
}

/// Logits `(n_hyp, n_new, n_vocab)` → each row's last position, `(n_hyp, n_vocab)`.
fn last_positions(logits: Tensor, n_hyp: usize) -> Result<Vec<f32>> {
    let shape = logits.shape().to_vec();
    let [rows, n_new, n_vocab] = shape[..] else {
        return Err(Error::invalid(
            "decoder logits shape",
            "(batch, n_new, n_vocab)",
            format!("{shape:?}"),
        ));
    };
    if rows != n_hyp || n_new == 0 {
        return Err(Error::invalid(
            "decoder logits shape",
            format!("({n_hyp}, ≥ 1, n_vocab)"),
            format!("{shape:?}"),
        ));
    }
    let all = logits.into_f32()?;
    if n_new == 1 {
        return Ok(all);
    }
    let mut last = Vec::with_capacity(n_hyp * n_vocab);
    for h in 0..n_hyp {
        let start = (h * n_new + n_new - 1) * n_vocab;
        last.extend_from_slice(&all[start..start + n_vocab]);
    }
    Ok(last)
}

impl OptimumCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        OptimumCache {
            self_kv: Vec::new(),
            cross_kv: Vec::new(),
            hidden_rows: None,
            history: Vec::new(),
        }
    }

    /// `hidden` `(1, n_audio_ctx, d_model)` as `n` rows, kept for the next call.
    fn hidden(&mut self, hidden: &Tensor, n: usize) -> Result<Tensor> {
        if n == 1 {
            return Ok(hidden.clone());
        }
        match &self.hidden_rows {
            Some(t) if t.shape().first() == Some(&n) => Ok(t.clone()),
            _ => {
                let t = with_rows(hidden, n)?;
                self.hidden_rows = Some(t.clone());
                Ok(t)
            }
        }
    }

    /// Appends `tokens` (`n_hyp` rows of `n_new`, row-major) after `n_past` cached ones and
    /// returns each row's last logits `(n_hyp, n_vocab)`.
    pub(crate) fn step(
        &mut self,
        model: &OptimumWhisper,
        hidden: &Tensor,
        tokens: &[u32],
        n_hyp: usize,
        n_past: usize,
    ) -> Result<Vec<f32>> {
        let n_new = tokens.len() / n_hyp;
        match &model.decoders {
            Decoders::NoCache(g) => {
                if n_past == 0 {
                    self.history = tokens.chunks(n_new).map(<[u32]>::to_vec).collect();
                } else {
                    if self.history.len() != n_hyp {
                        return Err(Error::invalid(
                            "decoder hypotheses",
                            self.history.len().to_string(),
                            n_hyp,
                        ));
                    }
                    for (row, new) in self.history.iter_mut().zip(tokens.chunks(n_new)) {
                        row.extend_from_slice(new);
                    }
                }
                let history = &self.history;
                let input = token_ids(n_hyp, n_past + n_new, |r, c| history[r][c])?;
                let hidden = self.hidden(hidden, n_hyp)?;
                let out = g
                    .graph
                    .run_refs(&[("input_ids", &input), ("encoder_hidden_states", &hidden)])?;
                last_positions(take(out, g.logits)?, n_hyp)
            }
            Decoders::Split { first, with_past } if n_past == 0 && model.prefill_with_past => {
                if self.cross_kv.is_empty() {
                    // Only the cross-attention keys and values are read from this run: they
                    // depend on the audio alone, and two tokens stay clear of the tract bug
                    // (see `OptimumWhisper::prefill_with_past`). They outlive `reset`.
                    let input = token_ids(1, 2, |_, _| tokens[0])?;
                    let out = first
                        .graph
                        .run_refs(&[("input_ids", &input), ("encoder_hidden_states", hidden)])?;
                    self.cross_kv = split_outputs(out, first)?.2;
                }
                self.self_kv = vec![model.empty_past(n_hyp); 2 * model.n_layer];
                self.step_with_past(model, with_past, hidden, tokens, n_hyp, 0)
            }
            Decoders::Split { first, .. } | Decoders::Merged(first) if n_past == 0 => {
                let input = token_ids(n_hyp, n_new, |r, c| tokens[r * n_new + c])?;
                let hidden = self.hidden(hidden, n_hyp)?;
                let empty = model.empty_past(n_hyp);
                let no_cache = Tensor::from_bool([1], vec![false])?;
                let mut inputs: Vec<(&str, &Tensor)> =
                    vec![("input_ids", &input), ("encoder_hidden_states", &hidden)];
                if matches!(model.decoders, Decoders::Merged(_)) {
                    inputs.push(("use_cache_branch", &no_cache));
                    inputs.extend(model.past_names.iter().map(|n| (n.as_str(), &empty)));
                }
                let out = first.graph.run_refs(&inputs)?;
                let (logits, self_kv, cross_kv) = split_outputs(out, first)?;
                self.check_self_kv(model, &self_kv, n_hyp, n_new)?;
                self.self_kv = self_kv;
                self.cross_kv = cross_kv;
                last_positions(logits, n_hyp)
            }
            Decoders::Split { with_past: g, .. } | Decoders::Merged(g) => {
                self.step_with_past(model, g, hidden, tokens, n_hyp, n_past)
            }
        }
    }

    /// [`Self::step`] through `decoder_with_past_model.onnx` or the merged decoder's cache
    /// branch, one token per run: exports made before transformers built the causal mask
    /// from the cache position have none for several new tokens after a past. Only the
    /// prompt has more than one token per row.
    fn step_with_past(
        &mut self,
        model: &OptimumWhisper,
        g: &DecoderGraph,
        hidden: &Tensor,
        tokens: &[u32],
        n_hyp: usize,
        n_past: usize,
    ) -> Result<Vec<f32>> {
        let n_new = tokens.len() / n_hyp;
        if self.cross_kv.first().and_then(|t| t.shape().first()) != Some(&n_hyp) {
            self.cross_kv = self
                .cross_kv
                .iter()
                .map(|t| with_rows(t, n_hyp))
                .collect::<Result<_>>()?;
        }
        let merged = matches!(model.decoders, Decoders::Merged(_));
        let use_cache = Tensor::from_bool([1], vec![true])?;
        let mut last = Vec::new();
        for col in 0..n_new {
            let input = token_ids(n_hyp, 1, |r, _| tokens[r * n_new + col])?;
            let mut inputs: Vec<(&str, &Tensor)> = vec![("input_ids", &input)];
            for (i, name) in model.past_names.iter().enumerate() {
                let (layer, part) = (i / 4, i % 4);
                let t = if part < 2 {
                    self.self_kv.get(2 * layer + part)
                } else {
                    self.cross_kv.get(2 * layer + part - 2)
                };
                let t = t.ok_or_else(|| Error::invalid("decoder cache", name, "none"))?;
                inputs.push((name.as_str(), t));
            }
            if merged {
                // Read by the other branch only; its batch is not checked.
                inputs.push(("encoder_hidden_states", hidden));
                inputs.push(("use_cache_branch", &use_cache));
            }
            let out = g.graph.run_refs(&inputs)?;
            let (logits, self_kv, _) = split_outputs(out, g)?;
            self.check_self_kv(model, &self_kv, n_hyp, n_past + col + 1)?;
            self.self_kv = self_kv;
            last = last_positions(logits, n_hyp)?;
        }
        Ok(last)
    }

    fn check_self_kv(
        &self,
        model: &OptimumWhisper,
        self_kv: &[Tensor],
        n_hyp: usize,
        n_seq: usize,
    ) -> Result<()> {
        let want = [n_hyp, model.n_head, n_seq, model.head_dim];
        match self_kv.iter().find(|t| t.shape() != want) {
            Some(t) => Err(Error::invalid(
                "decoder cache shape",
                format!("{want:?}"),
                format!("{:?}", t.shape()),
            )),
            None => Ok(()),
        }
    }

    /// Rebuilds the rows: new row `i` continues old row `src[i]`. The cross-attention rows
    /// are all the same; they are resized at the next step if the count changed.
    pub(crate) fn reorder(&mut self, src: &[usize]) -> Result<()> {
        self.self_kv = self
            .self_kv
            .iter()
            .map(|t| gather_rows(t, src))
            .collect::<Result<_>>()?;
        if !self.history.is_empty() {
            self.history = src
                .iter()
                .map(|&s| self.history.get(s).cloned().unwrap_or_default())
                .collect();
        }
        Ok(())
    }

    /// Forgets the decoded tokens; the next step is a first run again.
    pub(crate) fn reset(&mut self) {
        self.self_kv.clear();
        self.history.clear();
    }
}

/// A decoder run's outputs as (logits, self-attention cache, cross-attention cache).
fn split_outputs(out: Vec<Tensor>, g: &DecoderGraph) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
    let n = out.len();
    let mut slots: Vec<Option<Tensor>> = out.into_iter().map(Some).collect();
    let mut pick = |i: usize| {
        slots
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| Error::invalid("decoder outputs", format!("> {i}"), n))
    };
    let logits = pick(g.logits)?;
    let self_kv = g.self_kv.iter().map(|&i| pick(i)).collect::<Result<_>>()?;
    let cross_kv = g.cross_kv.iter().map(|&i| pick(i)).collect::<Result<_>>()?;
    Ok((logits, self_kv, cross_kv))
}
