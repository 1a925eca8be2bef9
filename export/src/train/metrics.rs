//! Classification metrics: accuracy, macro-F1, confusion matrix.
//!
//! Pure code over label slices, so a task computes its predictions however it likes and
//! these are tested without a model. Definitions follow scikit-learn (what Hugging Face's
//! `evaluate` metrics call): macro-F1 averages the per-class F1 over the classes that occur
//! in the references or the predictions, and a class with no true positive, predicted or
//! not, has F1 0 (`zero_division=0`).

use crate::error::{Error, Result};

/// Counts of (reference, prediction) pairs over `n_classes` classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    n_classes: usize,
    /// Row-major (n_classes, n_classes): `counts[reference * n_classes + predicted]`.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// Counts the pairs `(references[i], predictions[i])`. Fails when the slices differ in
    /// length or a class id is not below `n_classes`.
    pub fn new(n_classes: usize, references: &[usize], predictions: &[usize]) -> Result<Self> {
        check_lengths(references, predictions)?;
        let mut counts = vec![0u64; n_classes * n_classes];
        for (&r, &p) in references.iter().zip(predictions) {
            let top = r.max(p);
            if top >= n_classes {
                return Err(Error::InvalidInput {
                    what: "class id".into(),
                    expected: format!("< {n_classes}"),
                    got: top.to_string(),
                });
            }
            counts[r * n_classes + p] += 1;
        }
        Ok(Self { n_classes, counts })
    }

    /// The number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// How often class `reference` was predicted as `predicted` (0 outside the matrix).
    pub fn get(&self, reference: usize, predicted: usize) -> u64 {
        if reference >= self.n_classes || predicted >= self.n_classes {
            return 0;
        }
        self.counts[reference * self.n_classes + predicted]
    }

    /// Rows (references) of columns (predictions).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.n_classes.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// Pairs counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction of pairs on the diagonal; 0 when there are none.
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let correct: u64 = (0..self.n_classes).map(|c| self.get(c, c)).sum();
        correct as f64 / total as f64
    }

    /// F1 of each class, `2 tp / (2 tp + fp + fn)`, 0 where that is 0/0.
    pub fn f1_per_class(&self) -> Vec<f64> {
        (0..self.n_classes)
            .map(|c| {
                let tp = self.get(c, c);
                let predicted: u64 = (0..self.n_classes).map(|r| self.get(r, c)).sum();
                let actual: u64 = (0..self.n_classes).map(|p| self.get(c, p)).sum();
                let denom = predicted + actual;
                if denom == 0 {
                    0.0
                } else {
                    2.0 * tp as f64 / denom as f64
                }
            })
            .collect()
    }

    /// Mean F1 over the classes that occur as a reference or a prediction; 0 when none do.
    pub fn macro_f1(&self) -> f64 {
        let f1 = self.f1_per_class();
        let present: Vec<f64> = (0..self.n_classes)
            .filter(|&c| (0..self.n_classes).any(|o| self.get(c, o) + self.get(o, c) > 0))
            .map(|c| f1[c])
            .collect();
        if present.is_empty() {
            return 0.0;
        }
        present.iter().sum::<f64>() / present.len() as f64
    }
}

fn check_lengths(references: &[usize], predictions: &[usize]) -> Result<()> {
    if references.len() != predictions.len() {
        return Err(Error::InvalidInput {
            what: "number of predictions".into(),
            expected: references.len().to_string(),
            got: predictions.len().to_string(),
        });
    }
    Ok(())
}

/// Fraction of equal pairs; 0 for empty slices.
pub fn accuracy(references: &[usize], predictions: &[usize]) -> Result<f64> {
    check_lengths(references, predictions)?;
    if references.is_empty() {
        return Ok(0.0);
    }
    let correct = references
        .iter()
        .zip(predictions)
        .filter(|(r, p)| r == p)
        .count();
    Ok(correct as f64 / references.len() as f64)
}

/// Macro-averaged F1 over `n_classes` classes (see [`ConfusionMatrix::macro_f1`]).
pub fn macro_f1(n_classes: usize, references: &[usize], predictions: &[usize]) -> Result<f64> {
    Ok(ConfusionMatrix::new(n_classes, references, predictions)?.macro_f1())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn train_metrics_confusion_and_accuracy() {
        let refs = [0, 0, 1, 1, 2, 2];
        let preds = [0, 1, 1, 1, 2, 0];
        let m = ConfusionMatrix::new(3, &refs, &preds).unwrap();
        assert_eq!(m.rows(), vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 1]]);
        assert_eq!(m.total(), 6);
        close(m.accuracy(), 4.0 / 6.0);
        close(accuracy(&refs, &preds).unwrap(), 4.0 / 6.0);
        // class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8;
        // class 2: tp 1, fp 0, fn 1 -> 2/3.
        let f1 = m.f1_per_class();
        close(f1[0], 0.5);
        close(f1[1], 0.8);
        close(f1[2], 2.0 / 3.0);
        close(m.macro_f1(), (0.5 + 0.8 + 2.0 / 3.0) / 3.0);
    }

    #[test]
    fn train_metrics_class_never_predicted() {
        // Class 2 occurs but is never predicted: F1 0 (sklearn zero_division=0), averaged in.
        let refs = [0, 1, 2, 2];
        let preds = [0, 1, 0, 1];
        let m = ConfusionMatrix::new(3, &refs, &preds).unwrap();
        // class 0: tp 1, fp 1, fn 0 -> 2/3; class 1 likewise; class 2 -> 0.
        close(m.macro_f1(), (2.0 / 3.0 + 2.0 / 3.0 + 0.0) / 3.0);
        close(macro_f1(3, &refs, &preds).unwrap(), m.macro_f1());
    }

    #[test]
    fn train_metrics_absent_class_is_not_averaged() {
        // Class 3 neither occurs nor is predicted: left out, as sklearn's labels=None does.
        let refs = [0, 1, 2];
        let m = ConfusionMatrix::new(4, &refs, &refs).unwrap();
        close(m.macro_f1(), 1.0);
        assert_eq!(m.get(3, 3), 0);
        assert_eq!(m.get(9, 0), 0);
    }

    #[test]
    fn train_metrics_reject_bad_input() {
        assert!(ConfusionMatrix::new(2, &[0, 1], &[0]).is_err());
        assert!(ConfusionMatrix::new(2, &[0, 2], &[0, 1]).is_err());
        assert!(accuracy(&[0], &[]).is_err());
        close(accuracy(&[], &[]).unwrap(), 0.0);
        close(ConfusionMatrix::new(2, &[], &[]).unwrap().macro_f1(), 0.0);
    }
}
