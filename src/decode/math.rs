//! Small numerics shared by the decoders: log-softmax, arg-max with a fixed tie rule, top-k
//! and a seeded PRNG for sampling.
//!
//! Greedy and beam search must pick the same token from the same logits (beam size 1 is
//! greedy), so both go through [`better`]: higher value first, lower id on ties, NaN never
//! preferred.

/// `true` when `(a, ia)` ranks before `(b, ib)`: larger value, then smaller index; NaN
/// ranks below everything.
#[inline]
pub(crate) fn better(a: f32, ia: usize, b: f32, ib: usize) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => ia < ib,
        (false, false) => a > b || (a == b && ia < ib),
    }
}

/// Index of the best value by [`better`]; 0 for an empty row.
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate().skip(1) {
        if better(x, i, row[best], best) {
            best = i;
        }
    }
    best
}

/// `log(sum(exp(row)))`, computed around the maximum; `-inf` when every entry is `-inf`.
pub(crate) fn logsumexp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY || !max.is_finite() {
        return max;
    }
    // f32 exponentials (the logits are f32 anyway), summed in f64.
    let sum: f64 = row.iter().map(|&x| f64::from((x - max).exp())).sum();
    max + sum.ln() as f32
}

/// The `k` best `(index, value)` of `row`, best first, ranked by [`better`].
pub(crate) fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(row.len());
    let mut top: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &x) in row.iter().enumerate() {
        if top.len() == k {
            let last = top[k - 1];
            if !better(x, i, row[last], last) {
                continue;
            }
            top.pop();
        }
        let pos = top
            .iter()
            .position(|&j| better(x, i, row[j], j))
            .unwrap_or(top.len());
        top.insert(pos, i);
    }
    top
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny, well-mixed 64-bit generator. Seeded,
/// so a sampled decode is reproducible; not cryptographic.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Draws an index from `softmax(row / temperature)` (`temperature > 0`). Entries at `-inf`
/// are never drawn; a row with no finite entry falls back to [`argmax`].
pub(crate) fn sample(row: &[f32], temperature: f32, rng: &mut SplitMix64) -> usize {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return argmax(row);
    }
    let t = temperature as f64;
    let weight = |x: f32| {
        let w = ((x as f64 - max as f64) / t).exp();
        if w.is_finite() { w } else { 0.0 }
    };
    let total: f64 = row.iter().map(|&x| weight(x)).sum();
    if total <= 0.0 || !total.is_finite() {
        return argmax(row);
    }
    let mut u = rng.next_f64() * total;
    let mut last_positive = 0;
    for (i, &x) in row.iter().enumerate() {
        let w = weight(x);
        if w > 0.0 {
            last_positive = i;
            if u < w {
                return i;
            }
            u -= w;
        }
    }
    // Rounding left `u` a hair above the last weight: that token is the draw.
    last_positive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_of_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    }

    #[test]
    fn top_k_is_sorted_and_agrees_with_argmax() {
        let row = [0.5, 2.0, -1.0, 2.0, 7.0, f32::NEG_INFINITY];
        assert_eq!(top_k(&row, 3), vec![4, 1, 3]);
        assert_eq!(top_k(&row, 1)[0], argmax(&row));
        let with_nan = [f32::NAN, 1.0, 0.5];
        assert_eq!(top_k(&with_nan, 1)[0], argmax(&with_nan));
        assert_eq!(top_k(&row, 10).len(), row.len());
    }

    #[test]
    fn logsumexp_matches_direct_sum() {
        let row = [0.1f32, -2.0, 3.5, f32::NEG_INFINITY];
        let direct = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        assert!((logsumexp(&row) as f64 - direct).abs() < 1e-6);
        assert_eq!(logsumexp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
    }

    #[test]
    fn sampling_follows_the_distribution_and_skips_masked_tokens() {
        let row = [0.0f32, (3.0f32).ln(), f32::NEG_INFINITY];
        let mut rng = SplitMix64::new(7);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[sample(&row, 1.0, &mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        let p1 = counts[1] as f64 / 20_000.0;
        assert!((p1 - 0.75).abs() < 0.02, "p1 = {p1}");
        // A low temperature sharpens the distribution towards the arg-max.
        let mut cold = 0;
        for _ in 0..2_000 {
            cold += usize::from(sample(&row, 0.05, &mut rng) == 1);
        }
        assert!(cold > 1_990);
    }
}
