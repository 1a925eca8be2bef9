//! SpecAugment span masks, as transformers draws them for Wav2Vec2 / HuBERT training.
//!
//! A port of `_compute_mask_indices` that draws from a [`ChaCha8Rng`] handed in by the
//! caller instead of NumPy's global generator: the same seed and word position give the
//! same masks, so a resumed training run masks exactly as the uninterrupted one would.
//! The draws differ from NumPy's, so masks are not bit-identical to transformers', but
//! their law is: span counts (with the probabilistic rounding by one shared `epsilon` per
//! call), distinct span starts drawn without replacement inside each example's valid
//! length, the padding of short examples' span lists with their first start (or with the
//! last frame when they have none), and the clipping of spans at the sequence end.
//!
//! Reference:
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/wav2vec2/modeling_wav2vec2.py#L108-L224>

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// How many spans of which length to mask along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanMask {
    /// Expected fraction of the axis covered (`mask_time_prob`, `mask_feature_prob`); an
    /// upper bound, as spans may overlap.
    pub prob: f64,
    /// Span length (`mask_time_length`, `mask_feature_length`), at least 1.
    pub length: usize,
    /// Fewest spans per example (`mask_time_min_masks`, `mask_feature_min_masks`).
    pub min_masks: usize,
}

/// Draws the span mask of a batch of `n_batch` rows of `sequence_length` positions:
/// `n_batch * sequence_length` booleans, row-major, true where masked.
///
/// `input_lengths` (one per row) restricts each row's span starts to its valid prefix
/// (right padding assumed); `None` treats every row as full. Fails with
/// [`Error::InvalidInput`] when the span length is 0 or longer than the sequence
/// (transformers raises the same), or when the lengths do not number `n_batch`.
pub fn compute_mask_indices(
    n_batch: usize,
    sequence_length: usize,
    spec: SpanMask,
    input_lengths: Option<&[usize]>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<bool>> {
    let mask_length = spec.length;
    if mask_length < 1 {
        return Err(Error::InvalidInput {
            what: "SpecAugment span length".into(),
            expected: "at least 1".into(),
            got: "0".into(),
        });
    }
    if mask_length > sequence_length {
        return Err(Error::InvalidInput {
            what: "SpecAugment span length".into(),
            expected: format!("at most the masked axis' length, {sequence_length}"),
            got: mask_length.to_string(),
        });
    }
    if let Some(lengths) = input_lengths
        && lengths.len() != n_batch
    {
        return Err(Error::InvalidInput {
            what: "SpecAugment input lengths".into(),
            expected: format!("{n_batch}, one per example"),
            got: lengths.len().to_string(),
        });
    }

    // One `epsilon` per call, shared by every row: probabilistic rounding of the count.
    let epsilon: f64 = rng.random();
    let (seq, len_m, min_masks) = (
        sequence_length as i64,
        mask_length as i64,
        spec.min_masks as i64,
    );
    let num_masked_span = |input_length: i64| -> i64 {
        let mut n = (spec.prob * input_length as f64 / mask_length as f64 + epsilon) as i64;
        n = n.max(min_masks);
        if n * len_m > seq {
            n = seq / len_m;
        }
        if input_length - (len_m - 1) < n {
            n = (input_length - (len_m - 1)).max(0);
        }
        n
    };

    let mut mask = vec![false; n_batch * sequence_length];
    let max_num_masked_span = num_masked_span(seq);
    if max_num_masked_span == 0 {
        return Ok(mask);
    }
    for b in 0..n_batch {
        let input_length = input_lengths.map_or(sequence_length, |l| l[b].min(sequence_length));
        let n = num_masked_span(input_length as i64) as usize;
        let n_starts = (input_length as i64 - (len_m - 1)).max(0) as usize;
        let starts = rand::seq::index::sample(rng, n_starts, n.min(n_starts)).into_vec();
        // Rows with fewer spans than the longest are padded with their first start, or
        // with the last frame (a padded one) when they have none.
        let dummy = starts.first().copied().unwrap_or(sequence_length - 1);
        let row = &mut mask[b * sequence_length..(b + 1) * sequence_length];
        let padding = max_num_masked_span as usize - starts.len();
        for start in starts
            .iter()
            .copied()
            .chain(std::iter::repeat_n(dummy, padding))
        {
            for offset in 0..mask_length {
                row[(start + offset).min(sequence_length - 1)] = true;
            }
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn spans(row: &[bool]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, &m) in row.iter().chain([false].iter()).enumerate() {
            match (m, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    out.push((s, i - s));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn same_seed_same_masks_other_seed_other_masks() {
        let spec = SpanMask {
            prob: 0.3,
            length: 4,
            min_masks: 1,
        };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            compute_mask_indices(3, 50, spec, Some(&[50, 40, 20]), &mut rng).unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn spans_stay_inside_each_rows_valid_length() {
        let spec = SpanMask {
            prob: 0.5,
            length: 5,
            min_masks: 2,
        };
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let lengths = [49, 30, 12];
            let mask = compute_mask_indices(3, 49, spec, Some(&lengths), &mut rng).unwrap();
            for (b, &len) in lengths.iter().enumerate() {
                let row = &mask[b * 49..(b + 1) * 49];
                assert!(row[len..].iter().all(|&m| !m), "seed {seed} row {b}");
                let masked = row.iter().filter(|&&m| m).count();
                // At least min_masks spans, each of 5 frames, overlaps allowed.
                assert!(masked >= 5, "seed {seed} row {b}: {masked}");
                // At most prob * len / length + 1 spans of 5 frames.
                let max_spans = (0.5 * len as f64 / 5.0 + 1.0) as usize;
                assert!(masked <= max_spans.max(2) * 5, "seed {seed} row {b}");
                for (_, l) in spans(row) {
                    assert!(l >= 5, "seed {seed} row {b}: span of {l}");
                }
            }
        }
    }

    #[test]
    fn the_expected_fraction_is_close_to_prob() {
        let spec = SpanMask {
            prob: 0.2,
            length: 1,
            min_masks: 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mask = compute_mask_indices(200, 100, spec, None, &mut rng).unwrap();
        // Length-1 spans never overlap: exactly floor(0.2 * 100 + eps) = 20 per row.
        for row in mask.chunks(100) {
            assert_eq!(row.iter().filter(|&&m| m).count(), 20);
        }
    }

    #[test]
    fn a_row_too_short_for_a_span_masks_only_its_last_padded_frame() {
        // transformers pads a row without spans with the sequence's last index.
        let spec = SpanMask {
            prob: 0.5,
            length: 10,
            min_masks: 2,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mask = compute_mask_indices(2, 40, spec, Some(&[40, 5]), &mut rng).unwrap();
        let short = &mask[40..];
        assert_eq!(spans(short), vec![(39, 1)]);
        assert!(mask[..40].iter().filter(|&&m| m).count() >= 10);
    }

    #[test]
    fn zero_probability_and_no_minimum_masks_nothing() {
        let spec = SpanMask {
            prob: 0.0,
            length: 10,
            min_masks: 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mask = compute_mask_indices(2, 40, spec, None, &mut rng).unwrap();
        assert!(mask.iter().all(|&m| !m));
    }

    #[test]
    fn refuses_spans_longer_than_the_axis_or_empty() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let spec = SpanMask {
            prob: 0.1,
            length: 11,
            min_masks: 0,
        };
        assert!(compute_mask_indices(1, 10, spec, None, &mut rng).is_err());
        let spec = SpanMask { length: 0, ..spec };
        assert!(compute_mask_indices(1, 10, spec, None, &mut rng).is_err());
        let spec = SpanMask { length: 2, ..spec };
        assert!(compute_mask_indices(2, 10, spec, Some(&[10]), &mut rng).is_err());
    }
}
