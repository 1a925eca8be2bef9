//! The final evaluation of a split, as `eval_report.json` holds it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result, io_err};
use crate::train::data::LabelVocab;
use crate::train::metrics::ConfusionMatrix;

/// One class's scores in an [`EvalReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// The class label.
    pub label: String,
    /// Correct predictions of the class over all its predictions (0 when never predicted).
    pub precision: f64,
    /// Correct predictions of the class over its examples (0 when it has none).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// The class's examples.
    pub support: u64,
}

/// The final evaluation of one split, as written to `eval_report.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// `eval` or `test`.
    pub split: String,
    /// Examples evaluated.
    pub n_examples: usize,
    /// Mean cross-entropy over the examples.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Mean F1 over the classes that occur as a reference or a prediction.
    pub macro_f1: f64,
    /// Class labels by id: the rows and columns of the matrix.
    pub labels: Vec<String>,
    /// `confusion_matrix[reference][predicted]`: counts, `(n_labels, n_labels)`.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Scores of each class, in id order.
    pub per_class: Vec<ClassScores>,
}

impl EvalReport {
    /// The report of `split` from its confusion matrix and mean loss.
    pub(super) fn new(split: &str, labels: &LabelVocab, loss: f64, cm: &ConfusionMatrix) -> Self {
        let n = cm.n_classes();
        let f1 = cm.f1_per_class();
        let per_class = (0..n)
            .map(|c| {
                let tp = cm.get(c, c) as f64;
                let predicted: u64 = (0..n).map(|r| cm.get(r, c)).sum();
                let support: u64 = (0..n).map(|p| cm.get(c, p)).sum();
                let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
                ClassScores {
                    label: labels.label(c as u32).unwrap_or_default().to_string(),
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    f1: f1[c],
                    support,
                }
            })
            .collect();
        EvalReport {
            split: split.into(),
            n_examples: cm.total() as usize,
            loss,
            accuracy: cm.accuracy(),
            macro_f1: cm.macro_f1(),
            labels: labels.labels().to_vec(),
            confusion_matrix: cm.rows(),
            per_class,
        }
    }
}

/// Writes `reports` to `path` as one JSON object keyed by split name.
///
/// Fails with [`Error::Io`] when the file cannot be written.
pub fn write_reports(path: &Path, reports: &[EvalReport]) -> Result<()> {
    let by_split: BTreeMap<&str, &EvalReport> =
        reports.iter().map(|r| (r.split.as_str(), r)).collect();
    let text = serde_json::to_string_pretty(&by_split).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(io_err(path))
}
