//! Train/evaluation splits and the label vocabulary.
//!
//! Evaluation data is either given (a second source, or an audiofolder's `validation`
//! split, else its `test` split) or held out from training by a seeded ratio; without
//! either, every row trains. A ratio split works on **groups** when rows have one (the
//! speaker, say), like scikit-learn's `GroupShuffleSplit`: the distinct groups are sorted,
//! shuffled with the seed, and the first `ceil(eval_ratio * n_groups)` go to evaluation,
//! so no speaker is ever on both sides and the split depends only on the seed and the set
//! of groups, not on row order. Rows without a group are groups of one. Each side keeps
//! the source's row order.
//!
//! Labels map to ids in sorted order of the training labels (Rust's `str` order, which is
//! Unicode code point order, the same as Python's `sorted` on `str`, and the order of the
//! `ClassLabel` names `datasets` builds for an audiofolder). Labels are text, so numeric
//! labels sort as text: `"10"` before `"2"`.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Columns, Example, Source, SourceSplits, data_err};
use crate::{Error, Result};

/// How evaluation rows are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalSplit {
    /// Evaluation rows are those given: [`DataSpec::eval`] (the training source's own
    /// `validation` split, if any, is then unused), or else the training source's
    /// `validation` split, or else its `test` split. Without any, every row trains and
    /// there is no evaluation.
    AsGiven,
    /// Hold out a seeded fraction of the training source's groups (or rows).
    Ratio {
        /// The fraction of groups held out, in (0, 1).
        eval_ratio: f64,
        /// The shuffle's seed.
        seed: u64,
    },
}

/// What to train and evaluate on.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// The training source.
    pub train: Source,
    /// A separate evaluation source: its rows, or for a source with splits, its
    /// `validation` split, else its `test` split.
    pub eval: Option<Source>,
    /// How evaluation rows are chosen.
    pub split: EvalSplit,
    /// Column names and requirements, for every source.
    pub columns: Columns,
}

/// Training, evaluation and test examples, and the label vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Examples to train on, in source order.
    pub train: Vec<Example>,
    /// Examples to evaluate on during training; empty when there are none.
    pub eval: Vec<Example>,
    /// A training source's `test` split when its `validation` split was used for
    /// evaluation; empty otherwise.
    pub test: Vec<Example>,
    /// The training labels; empty when the rows have none.
    pub labels: LabelVocab,
}

impl DataSpec {
    /// Reads the sources, splits them, and builds the label vocabulary.
    ///
    /// Fails as [`Source::read`] does; with [`Error::InvalidInput`] for an `eval_ratio`
    /// outside (0, 1) or a training source with fewer than two groups to split; with
    /// [`Error::Data`] when a ratio split and given evaluation data are both present, or
    /// when an evaluation or test row has a label no training row has (naming that row's
    /// file and line).
    pub fn resolve(&self) -> Result<Splits> {
        let source = self.train.read(&self.columns)?;
        let given_eval = match &self.eval {
            Some(eval) => {
                let rows = eval.read(&self.columns)?;
                Some(if rows.is_unsplit() {
                    rows.train
                } else {
                    rows.validation.or(rows.test).unwrap_or_default()
                })
            }
            None => None,
        };
        let SourceSplits {
            train,
            validation,
            test,
        } = source;
        let (train, eval, test) = match (&self.split, given_eval) {
            (EvalSplit::AsGiven, Some(eval)) => (train, eval, test.unwrap_or_default()),
            (EvalSplit::AsGiven, None) => match (validation, test) {
                (Some(v), test) => (train, v, test.unwrap_or_default()),
                (None, Some(t)) => (train, t, Vec::new()),
                (None, None) => (train, Vec::new(), Vec::new()),
            },
            (EvalSplit::Ratio { eval_ratio, seed }, None) if validation.is_none() => {
                let (train, eval) = split_by_ratio(train, *eval_ratio, *seed)?;
                (train, eval, test.unwrap_or_default())
            }
            (EvalSplit::Ratio { .. }, _) => {
                return Err(data_err(
                    self.train.path(),
                    "evaluation data is given (an eval source or a validation split) and an \
                     eval_ratio is set too; use one",
                ));
            }
        };
        let labels = LabelVocab::from_examples(&train);
        if !labels.is_empty() {
            labels
                .check_eval(&eval)
                .map_err(|e| match (&self.split, e) {
                    (EvalSplit::Ratio { .. }, Error::Data { path, line, reason }) => Error::Data {
                        path,
                        line,
                        reason: format!(
                            "{reason}; the eval_ratio split held out every row of this label \
                         (try another seed or ratio)"
                        ),
                    },
                    (_, e) => e,
                })?;
            labels.check_eval(&test)?;
        }
        Ok(Splits {
            train,
            eval,
            test,
            labels,
        })
    }
}

/// Splits `examples` into (train, eval), holding out `ceil(eval_ratio * n_groups)` groups
/// chosen by a seeded shuffle of the sorted distinct groups (rows without a group are
/// groups of one), and at least one group is always left to train on. Both sides keep the
/// input order.
///
/// Fails with [`Error::InvalidInput`] when `eval_ratio` is not in (0, 1) or there are
/// fewer than two groups.
pub fn split_by_ratio(
    examples: Vec<Example>,
    eval_ratio: f64,
    seed: u64,
) -> Result<(Vec<Example>, Vec<Example>)> {
    if !(eval_ratio > 0.0 && eval_ratio < 1.0) {
        return Err(Error::InvalidInput {
            what: "eval_ratio".into(),
            expected: "a fraction in (0, 1)".into(),
            got: eval_ratio.to_string(),
        });
    }
    /// A split unit: a named group, or an ungrouped row by index.
    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Unit<'a> {
        Group(&'a str),
        Row(usize),
    }
    fn unit_of(i: usize, e: &Example) -> Unit<'_> {
        match &e.group {
            Some(g) => Unit::Group(g.as_str()),
            None => Unit::Row(i),
        }
    }
    let units: BTreeSet<Unit> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| unit_of(i, e))
        .collect();
    let n_units = units.len();
    if n_units < 2 {
        return Err(Error::InvalidInput {
            what: "rows to split by eval_ratio".into(),
            expected: "at least 2 groups (or ungrouped rows)".into(),
            got: n_units.to_string(),
        });
    }
    let mut order: Vec<Unit> = units.into_iter().collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_eval = ((eval_ratio * n_units as f64).ceil() as usize).clamp(1, n_units - 1);
    let held: BTreeSet<Unit> = order.into_iter().take(n_eval).collect();
    let is_eval: Vec<bool> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| held.contains(&unit_of(i, e)))
        .collect();
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for (example, eval_side) in examples.into_iter().zip(is_eval) {
        if eval_side {
            eval.push(example);
        } else {
            train.push(example);
        }
    }
    Ok((train, eval))
}

/// The class labels and their ids: the sorted distinct training labels, id = position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelVocab {
    labels: Vec<String>,
}

impl LabelVocab {
    /// The sorted distinct labels of `examples` (rows without a label are skipped).
    pub fn from_examples(examples: &[Example]) -> Self {
        let set: BTreeSet<&str> = examples.iter().filter_map(|e| e.label.as_deref()).collect();
        LabelVocab {
            labels: set.into_iter().map(str::to_owned).collect(),
        }
    }

    /// A vocabulary from labels in id order (e.g. a checkpoint's `id2label`), which must be
    /// distinct.
    ///
    /// Fails with [`Error::InvalidInput`] on a repeated label.
    pub fn from_labels(labels: Vec<String>) -> Result<Self> {
        let mut seen = BTreeSet::new();
        for label in &labels {
            if !seen.insert(label.as_str()) {
                return Err(Error::InvalidInput {
                    what: "label vocabulary".into(),
                    expected: "distinct labels".into(),
                    got: format!("`{label}` twice"),
                });
            }
        }
        Ok(LabelVocab { labels })
    }

    /// The labels, in id order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The id of `label`.
    pub fn id(&self, label: &str) -> Option<u32> {
        // Linear: vocabularies are tens of labels, and `from_labels` keeps id order.
        self.labels
            .iter()
            .position(|l| l == label)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The label of `id`.
    pub fn label(&self, id: u32) -> Option<&str> {
        self.labels.get(id as usize).map(String::as_str)
    }

    /// `id → label`, as a Hugging Face `config.json`'s `id2label` (whose keys are the ids
    /// as text).
    pub fn id2label(&self) -> BTreeMap<u32, String> {
        (0u32..).zip(self.labels.iter().cloned()).collect()
    }

    /// `label → id`, as a Hugging Face `config.json`'s `label2id`.
    pub fn label2id(&self) -> BTreeMap<String, u32> {
        self.labels.iter().cloned().zip(0u32..).collect()
    }

    /// Checks that every example has a label in the vocabulary.
    ///
    /// Fails with [`Error::Data`] at the first example (its file and line) whose label is
    /// not, or that has no label.
    pub fn check(&self, examples: &[Example]) -> Result<()> {
        self.check_as(examples, "is not a training label")
    }

    /// [`LabelVocab::check`] for evaluation rows, whose unknown labels appear only there.
    fn check_eval(&self, examples: &[Example]) -> Result<()> {
        self.check_as(examples, "appears only in evaluation data")
    }

    fn check_as(&self, examples: &[Example], unknown: &str) -> Result<()> {
        for e in examples {
            match &e.label {
                Some(label) if self.id(label).is_some() => {}
                Some(label) => {
                    return Err(e.origin.error(format!(
                        "label `{label}` {unknown} (training labels: {})",
                        self.summary()
                    )));
                }
                None => {
                    return Err(e.origin.error(format!(
                        "no label for `{}`, while the training rows have labels",
                        e.audio.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The labels for a message, abbreviated past 20.
    fn summary(&self) -> String {
        let mut s: Vec<&str> = self.labels.iter().take(20).map(String::as_str).collect();
        if self.labels.len() > 20 {
            s.push("...");
        }
        s.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn ex(i: usize, label: &str, group: Option<&str>) -> Example {
        Example {
            label: Some(label.into()),
            group: group.map(str::to_owned),
            ..Example::new(format!("{i}.wav"))
        }
    }

    #[test]
    fn group_split_never_splits_a_group_and_follows_the_seed() {
        let speakers = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"];
        let rows: Vec<Example> = (0..70)
            .map(|i| ex(i, &format!("{}", i % 3), Some(speakers[i % 7])))
            .collect();
        let (train, eval) = split_by_ratio(rows.clone(), 0.3, 11).unwrap();
        let groups = |v: &[Example]| -> BTreeSet<String> {
            v.iter().map(|e| e.group.clone().unwrap()).collect()
        };
        assert!(groups(&train).is_disjoint(&groups(&eval)));
        assert_eq!(groups(&eval).len(), 3, "ceil(0.3 * 7)");
        assert_eq!(train.len() + eval.len(), 70);
        assert_eq!(eval.len(), 30);
        // Input order kept on each side.
        let idx = |v: &[Example]| -> Vec<usize> {
            v.iter()
                .map(|e| {
                    e.audio
                        .to_str()
                        .unwrap()
                        .trim_end_matches(".wav")
                        .parse()
                        .unwrap()
                })
                .collect()
        };
        assert!(idx(&train).windows(2).all(|w| w[0] < w[1]));
        // Deterministic by seed, independent of row order.
        let (_, again) = split_by_ratio(rows.clone(), 0.3, 11).unwrap();
        assert_eq!(again, eval);
        let mut reversed = rows.clone();
        reversed.reverse();
        let (_, rev_eval) = split_by_ratio(reversed, 0.3, 11).unwrap();
        assert_eq!(groups(&rev_eval), groups(&eval));
        // Some other seed holds out other speakers.
        let differs = (0..20u64).any(|seed| {
            let (_, e) = split_by_ratio(rows.clone(), 0.3, seed).unwrap();
            groups(&e) != groups(&eval)
        });
        assert!(differs);
    }

    #[test]
    fn ungrouped_rows_split_by_row() {
        let rows: Vec<Example> = (0..10).map(|i| ex(i, "a", None)).collect();
        let (train, eval) = split_by_ratio(rows, 0.25, 1).unwrap();
        assert_eq!((train.len(), eval.len()), (7, 3));
        // Always at least one row on each side.
        let two: Vec<Example> = (0..2).map(|i| ex(i, "a", None)).collect();
        let (train, eval) = split_by_ratio(two.clone(), 0.99, 1).unwrap();
        assert_eq!((train.len(), eval.len()), (1, 1));
        let (train, eval) = split_by_ratio(two, 0.01, 1).unwrap();
        assert_eq!((train.len(), eval.len()), (1, 1));
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(split_by_ratio(vec![ex(0, "a", None), ex(1, "a", None)], bad, 0).is_err());
        }
        let one_speaker: Vec<Example> = (0..5).map(|i| ex(i, "a", Some("s"))).collect();
        assert!(matches!(
            split_by_ratio(one_speaker, 0.5, 0),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn vocabulary_is_sorted_training_labels() {
        let rows = vec![
            ex(0, "yes", None),
            ex(1, "2", None),
            ex(2, "10", None),
            ex(3, "yes", None),
        ];
        let v = LabelVocab::from_examples(&rows);
        assert_eq!(v.labels(), ["10", "2", "yes"]);
        assert_eq!(v.id("2"), Some(1));
        assert_eq!(v.label(2), Some("yes"));
        assert_eq!(v.label(3), None);
        assert_eq!(v.id2label()[&0], "10");
        assert_eq!(v.label2id()["yes"], 2);
        assert!(LabelVocab::from_labels(vec!["a".into(), "a".into()]).is_err());
        let mut eval = ex(9, "maybe", None);
        eval.origin.path = "eval.jsonl".into();
        eval.origin.line = Some(4);
        assert!(msg(v.check(&[eval.clone()])).contains("`maybe` is not a training label"));
        let err = msg(v.check_eval(&[eval]));
        assert!(
            err.starts_with("eval.jsonl:4: label `maybe` appears only in evaluation data"),
            "{err}"
        );
    }

    fn write_manifest(d: &std::path::Path, name: &str, rows: &[(&str, &str, &str)]) {
        let mut body = String::new();
        for (audio, label, spk) in rows {
            wav(d, audio, 10, 0);
            body += &format!(
                "{{\"audio\": \"{audio}\", \"label\": \"{label}\", \"speaker\": \"{spk}\"}}\n"
            );
        }
        std::fs::write(d.join(name), body).unwrap();
    }

    #[test]
    fn resolve_given_ratio_or_all_train() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_manifest(
            d,
            "train.jsonl",
            &[
                ("a.wav", "yes", "s1"),
                ("b.wav", "no", "s1"),
                ("c.wav", "no", "s2"),
                ("d.wav", "yes", "s2"),
                ("e.wav", "yes", "s3"),
                ("f.wav", "no", "s3"),
            ],
        );
        write_manifest(d, "eval.jsonl", &[("g.wav", "no", "s4")]);
        write_manifest(
            d,
            "bad_eval.jsonl",
            &[("g.wav", "no", "s4"), ("h.wav", "maybe", "s4")],
        );
        let columns = Columns {
            group: Some("speaker".into()),
            ..Columns::default()
        };
        let spec = DataSpec {
            train: Source::Jsonl(d.join("train.jsonl")),
            eval: None,
            split: EvalSplit::AsGiven,
            columns,
        };
        let all = spec.resolve().unwrap();
        assert_eq!((all.train.len(), all.eval.len()), (6, 0));
        assert_eq!(all.labels.labels(), ["no", "yes"]);

        let given = DataSpec {
            eval: Some(Source::Jsonl(d.join("eval.jsonl"))),
            ..spec.clone()
        };
        let s = given.resolve().unwrap();
        assert_eq!((s.train.len(), s.eval.len()), (6, 1));

        let bad = DataSpec {
            eval: Some(Source::Jsonl(d.join("bad_eval.jsonl"))),
            ..spec.clone()
        };
        let err = msg(bad.resolve());
        assert!(
            err.starts_with(&format!(
                "{}:2: label `maybe`",
                d.join("bad_eval.jsonl").display()
            )),
            "{err}"
        );

        let ratio = DataSpec {
            split: EvalSplit::Ratio {
                eval_ratio: 0.34,
                seed: 3,
            },
            ..spec.clone()
        };
        let s = ratio.resolve().unwrap();
        assert_eq!((s.train.len(), s.eval.len()), (2, 4));
        let eval_groups: BTreeSet<_> = s.eval.iter().map(|e| e.group.clone()).collect();
        assert_eq!(eval_groups.len(), 2, "ceil(0.34 * 3) speakers held out");
        assert!(s.train.iter().all(|e| !eval_groups.contains(&e.group)));

        let both = DataSpec {
            eval: Some(Source::Jsonl(d.join("eval.jsonl"))),
            ..ratio
        };
        assert!(msg(both.resolve()).contains("use one"));
    }

    #[test]
    fn resolve_audiofolder_splits() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "train/yes/a.wav", 10, 0);
        wav(d, "train/no/b.wav", 10, 1);
        wav(d, "test/no/c.wav", 10, 2);
        let spec = DataSpec {
            train: Source::AudioFolder(d.to_path_buf()),
            eval: None,
            split: EvalSplit::AsGiven,
            columns: Columns::default(),
        };
        let s = spec.resolve().unwrap();
        assert_eq!((s.train.len(), s.eval.len(), s.test.len()), (2, 1, 0));
        wav(d, "validation/yes/e.wav", 10, 3);
        let s = spec.resolve().unwrap();
        assert_eq!((s.train.len(), s.eval.len(), s.test.len()), (2, 1, 1));
        assert_eq!(s.eval[0].label.as_deref(), Some("yes"));
        assert_eq!(s.test[0].label.as_deref(), Some("no"));
        // A label only in the test split is caught, naming the audio file.
        wav(d, "test/maybe/f.wav", 10, 4);
        let err = msg(spec.resolve());
        assert!(err.contains("label `maybe`"), "{err}");
        assert!(
            err.starts_with(&d.join("test/maybe/f.wav").display().to_string()),
            "{err}"
        );
    }
}
