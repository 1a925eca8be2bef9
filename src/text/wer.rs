//! Word and character error rates: Levenshtein alignment of a hypothesis against a
//! reference, counted as substitutions, deletions and insertions.
//!
//! Normalize both sides first (see [`super::normalize`]); these functions only split.
//! Corpus-level rates add errors and reference lengths over utterances
//! ([`ErrorRate::add`]) rather than averaging per-utterance rates, as `jiwer` and the
//! Whisper paper do.

/// Edit counts of one alignment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EditCounts {
    /// Reference units replaced by another.
    pub substitutions: usize,
    /// Reference units missing from the hypothesis.
    pub deletions: usize,
    /// Hypothesis units not in the reference.
    pub insertions: usize,
    /// Length of the reference.
    pub n_ref: usize,
}

impl EditCounts {
    /// `substitutions + deletions + insertions`: the edit distance.
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }
}

/// Minimum-edit alignment of `hypothesis` to `reference`. Among alignments with the same
/// number of errors, substitutions are preferred to a deletion plus an insertion (which
/// count the same only if that takes two edits, so the total is always the edit distance).
pub fn edit_counts<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> EditCounts {
    // One row of (cost, substitutions, deletions, insertions) per hypothesis prefix.
    type Cell = (usize, usize, usize, usize);
    let n = hypothesis.len();
    let mut row: Vec<Cell> = (0..=n).map(|j| (j, 0, 0, j)).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diag = row[0];
        row[0] = (i + 1, 0, i + 1, 0);
        for (j, h) in hypothesis.iter().enumerate() {
            let up = row[j + 1];
            let left = row[j];
            let same = r == h;
            let sub = (
                diag.0 + usize::from(!same),
                diag.1 + usize::from(!same),
                diag.2,
                diag.3,
            );
            let del = (up.0 + 1, up.1, up.2 + 1, up.3);
            let ins = (left.0 + 1, left.1, left.2, left.3 + 1);
            let mut best = sub;
            for c in [del, ins] {
                if c.0 < best.0 {
                    best = c;
                }
            }
            diag = up;
            row[j + 1] = best;
        }
    }
    let (_, substitutions, deletions, insertions) = row[n];
    EditCounts {
        substitutions,
        deletions,
        insertions,
        n_ref: reference.len(),
    }
}

/// Word errors: `(edit distance over whitespace-separated words, reference words)`.
pub fn wer(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r: Vec<&str> = reference.split_whitespace().collect();
    let h: Vec<&str> = hypothesis.split_whitespace().collect();
    let c = edit_counts(&r, &h);
    (c.errors(), c.n_ref)
}

/// Character errors: `(edit distance over Unicode scalar values, reference characters)`.
/// Spaces count as characters, as in `jiwer.cer`; normalize (and, for languages written
/// without spaces, remove them) first.
pub fn cer(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r: Vec<char> = reference.chars().collect();
    let h: Vec<char> = hypothesis.chars().collect();
    let c = edit_counts(&r, &h);
    (c.errors(), c.n_ref)
}

/// A corpus-level error rate: errors and reference lengths summed over utterances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorRate {
    /// Total edit distance.
    pub errors: usize,
    /// Total reference length.
    pub n_ref: usize,
}

impl ErrorRate {
    /// Adds one utterance's `(errors, n_ref)`, as returned by [`wer`] or [`cer`].
    pub fn add(&mut self, (errors, n_ref): (usize, usize)) {
        self.errors += errors;
        self.n_ref += n_ref;
    }

    /// `errors / n_ref`; 0 for an empty reference with no errors, infinite with errors.
    pub fn rate(&self) -> f64 {
        match (self.errors, self.n_ref) {
            (0, 0) => 0.0,
            (_, 0) => f64::INFINITY,
            (e, n) => e as f64 / n as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_pairs() {
        assert_eq!(
            wer("the cat sat on the mat", "the cat sat on the mat"),
            (0, 6)
        );
        assert_eq!(wer("the cat sat on the mat", "the cat sit on mat"), (2, 6));
        assert_eq!(wer("a b c", "a x b c d"), (2, 3));
        assert_eq!(wer("", "a b"), (2, 0));
        assert_eq!(wer("a b", ""), (2, 2));
        assert_eq!(cer("kitten", "sitting"), (3, 6));
        assert_eq!(cer("日本語", "日本"), (1, 3));
    }

    #[test]
    fn counts_split_into_kinds() {
        let r = ["a", "b", "c", "d"];
        let h = ["a", "x", "c", "d", "e"];
        let c = edit_counts(&r, &h);
        assert_eq!((c.substitutions, c.deletions, c.insertions), (1, 0, 1));
        let c = edit_counts(&["a", "b", "c"], &["a", "c"]);
        assert_eq!((c.substitutions, c.deletions, c.insertions), (0, 1, 0));
    }

    #[test]
    fn corpus_rate_sums_errors() {
        let mut total = ErrorRate::default();
        total.add(wer("a b c d", "a b c d"));
        total.add(wer("a b", "a x"));
        assert_eq!((total.errors, total.n_ref), (1, 6));
        assert!((total.rate() - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(ErrorRate::default().rate(), 0.0);
    }

    /// The textbook distance, for comparison.
    fn levenshtein(a: &[u8], b: &[u8]) -> usize {
        let mut d: Vec<Vec<usize>> = (0..=a.len()).map(|i| vec![i; b.len() + 1]).collect();
        for (j, x) in d[0].iter_mut().enumerate() {
            *x = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let s = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
                d[i][j] = s.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            }
        }
        d[a.len()][b.len()]
    }

    proptest! {
        #[test]
        fn errors_are_the_edit_distance(
            a in proptest::collection::vec(0u8..4, 0..12),
            b in proptest::collection::vec(0u8..4, 0..12),
        ) {
            let c = edit_counts(&a, &b);
            prop_assert_eq!(c.errors(), levenshtein(&a, &b));
            // Every reference unit is matched, substituted or deleted; every hypothesis
            // unit matched, substituted or inserted.
            prop_assert!(c.substitutions + c.deletions <= a.len());
            prop_assert_eq!(a.len() - c.substitutions - c.deletions, b.len() - c.substitutions - c.insertions);
        }
    }
}
