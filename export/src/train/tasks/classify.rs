//! Audio classification: a Wav2Vec2 / HuBERT `*ForSequenceClassification` trained on
//! labelled clips, as transformers' `run_audio_classification.py` trains one.
//!
//! [`ClassifyTask`] binds the pieces the trainer does not know about:
//!
//! - **data**: [`ClassifyData`] resolves a manifest, table or audiofolder (or the Free
//!   Spoken Digit Dataset's folder) into train / eval / test examples; they are decoded
//!   once into memory ([`AudioSet`]), and every micro-batch is cropped, normalized and
//!   padded from them with the checkpoint's feature extractor ([`collate`]);
//! - **model**: from a fine-tuned `*ForSequenceClassification` checkpoint (its labels must
//!   be the data's), from a base `HubertModel` / `Wav2Vec2Model` (or a CTC model) given a
//!   new head for the data's labels, or from scratch ([`ClassifyInit`]). Dropout, LayerDrop
//!   and SpecAugment are those of its configuration, as transformers applies them in
//!   training mode; [`ClassifyOptions::overrides`] changes them;
//! - **what trains**: by default everything but the convolutional feature encoder when
//!   starting from a checkpoint (transformers' `freeze_feature_encoder()`, which the
//!   example script calls unless told not to), everything from scratch; or the top layers,
//!   or the head only ([`Trainable`]);
//! - **loss**: the mean cross-entropy of the logits, as `*ForSequenceClassification`
//!   computes it ([`cross_entropy`]);
//! - **metrics**: `loss` (the mean over examples), `accuracy` and `f1` (macro-F1 over the
//!   classes present) on the eval split, and at the end a report per split with the
//!   confusion matrix and per-class precision, recall and F1 ([`EvalReport`]);
//! - **saving**: a Hugging Face checkpoint transformers loads as is
//!   (`AutoModelForAudioClassification.from_pretrained(dir)`): `config.json` with
//!   `id2label` / `label2id`, `model.safetensors` (every variable, frozen ones included,
//!   so a checkpoint is a whole model) and the `preprocessor_config.json` training used.
//!
//! Batches are sample indices planned per epoch ([`PlannedBatch`]): the trainer's
//! generator shuffles them (when it shuffles) and seeds their crops, so a resumed run
//! rebuilds the very same batches. Without shuffling the source order is kept and crops
//! draw from a generator of the task's own seed, per epoch.
//!
//! A run from the command line (`hearken-export train classify`, see its `--help`), e.g. the
//! digit benchmark on the Free Spoken Digit Dataset: a tiny HuBERT from scratch, speaker
//! `yweweler` held out as the test split, the others' takes 0-4 as the eval split:
//!
//! ```text
//! hearken-export train classify --data fsdd:../shared/data/fsdd --held-out-speaker yweweler \
//!     --init scratch --config tiny --out runs/fsdd-tiny --epochs 20 --batch-size 16 \
//!     --lr 5e-4 --warmup-ratio 0.1 --max-duration-s 1.0 --metric-for-best-model accuracy \
//!     --threads 2 --export
//! hearken classify --model runs/fsdd-tiny/onnx some.wav
//! ```
//!
//! These are the settings of `benches/peers/train_digits.py`, its PyTorch peer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;

use crate::error::{Error, Result, candle_err, io_err, read_json};
use crate::train::checkpoint::MODEL_FILE;
use crate::train::data::{
    AudioSet, Augment, BatchConfig, DataSpec, Epoch, EvalCrop, Example, FeatureConfig, LabelVocab,
    Order, Splits, Stage, batch_rng, collate, data_err, fsdd,
};
use crate::train::loss::classify::cross_entropy;
use crate::train::metrics::ConfusionMatrix;
use crate::train::trainer::{Metrics, Task};
use crate::wav2vec2::init::Preset;
use crate::wav2vec2::model::{Mode, Trainable, Wav2Vec2Model};
use crate::wav2vec2::{Family, Head, Wav2Vec2Config, load_dir, load_dir_with_new_head};

/// The configuration fields [`ClassifyOptions::overrides`] may change on a checkpoint:
/// those that act only in training (dropout, LayerDrop, SpecAugment). The others define
/// the architecture the weights were trained for.
pub const TRAINING_FIELDS: [&str; 14] = [
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "feat_proj_dropout",
    "final_dropout",
    "layerdrop",
    "apply_spec_augment",
    "mask_time_prob",
    "mask_time_length",
    "mask_time_min_masks",
    "mask_feature_prob",
    "mask_feature_length",
    "mask_feature_min_masks",
    "initializer_range",
];

/// Where the training and evaluation examples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassifyData {
    /// A manifest, table or audiofolder, with its evaluation data or ratio.
    Spec(DataSpec),
    /// The Free Spoken Digit Dataset ([`fsdd`]): its folder (or the `recordings` folder in
    /// it). Training takes 5 and up, evaluation takes 0-4 (the dataset's own split), of
    /// every speaker but `held_out_speaker`, all of whose recordings are the test split.
    Fsdd {
        /// The dataset's folder, or its `recordings` folder.
        dir: PathBuf,
        /// A speaker never trained on: the test split.
        held_out_speaker: Option<String>,
    },
}

impl ClassifyData {
    /// Reads and splits the examples.
    ///
    /// Fails as [`DataSpec::resolve`] and [`fsdd::read`] do, and with [`Error::Data`]
    /// naming the source when the training split is empty, when evaluation data was given
    /// but holds no example, or when the held-out speaker has no recording.
    pub fn resolve(&self) -> Result<Splits> {
        match self {
            ClassifyData::Spec(spec) => {
                let splits = spec.resolve()?;
                if splits.train.is_empty() {
                    return Err(data_err(spec.train.path(), "no training examples"));
                }
                if let Some(eval) = &spec.eval
                    && splits.eval.is_empty()
                {
                    return Err(data_err(eval.path(), "no evaluation examples"));
                }
                Ok(splits)
            }
            ClassifyData::Fsdd {
                dir,
                held_out_speaker,
            } => {
                let recordings = dir.join("recordings");
                let dir = if recordings.is_dir() {
                    &recordings
                } else {
                    dir
                };
                let all = fsdd::read(dir)?;
                let held = |e: &Example| held_out_speaker.is_some() && e.group == *held_out_speaker;
                let (mut test, train): (Vec<Example>, Vec<Example>) =
                    all.train.into_iter().partition(held);
                let (held_test, eval): (Vec<Example>, Vec<Example>) =
                    all.test.into_iter().partition(held);
                test.extend(held_test);
                test.sort_by(|a, b| a.audio.cmp(&b.audio));
                if let Some(speaker) = held_out_speaker
                    && test.is_empty()
                {
                    return Err(data_err(
                        dir,
                        format!("no recording of the held-out speaker `{speaker}`"),
                    ));
                }
                if train.is_empty() || eval.is_empty() {
                    return Err(data_err(
                        dir,
                        "no recordings of any other speaker than the held-out one",
                    ));
                }
                let labels = LabelVocab::from_examples(&train);
                labels.check(&eval)?;
                labels.check(&test)?;
                Ok(Splits {
                    train,
                    eval,
                    test,
                    labels,
                })
            }
        }
    }
}

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassifyInit {
    /// A Hugging Face Wav2Vec2 / HuBERT checkpoint directory. A `*ForSequenceClassification`
    /// keeps its head, and its labels must be the training data's (in any order: the
    /// checkpoint's ids are kept), unless `replace_head`; any other (`HubertModel`,
    /// `Wav2Vec2Model`, `*ForPreTraining`, `*ForCTC`) gets a new head for the data's
    /// labels, initialized as transformers initializes one.
    Checkpoint {
        /// The directory (`config.json`, `model.safetensors` or `pytorch_model.bin`, and
        /// `preprocessor_config.json` when it has one).
        dir: PathBuf,
        /// Give a classification checkpoint a new head for the data's labels.
        replace_head: bool,
    },
    /// A new model of this configuration (a [`Preset`]'s, or a `config.json`; see
    /// [`scratch_config`]), initialized as transformers initializes one.
    Scratch {
        /// The architecture; its head is set from the data's labels.
        config: Box<Wav2Vec2Config>,
    },
}

/// The configuration of a model trained from scratch: the preset named `spec` (`tiny`,
/// `base`) for `family`, or else the `config.json` file at path `spec` (a whole
/// Wav2Vec2 / HuBERT configuration; its `model_type` decides the family).
///
/// Fails with [`Error::Io`] / [`Error::Json`] for a file that cannot be read or parsed,
/// and [`Error::Unsupported`] for a `model_type` other than `wav2vec2` and `hubert`.
pub fn scratch_config(spec: &str, family: Family) -> Result<Wav2Vec2Config> {
    if let Ok(preset) = Preset::from_name(spec) {
        return preset.config(family);
    }
    let path = Path::new(spec);
    if !path.is_file() {
        return Err(Error::InvalidInput {
            what: "model configuration".into(),
            expected: "a preset (tiny, base) or a config.json file".into(),
            got: spec.into(),
        });
    }
    let config: Wav2Vec2Config = read_json(path)?;
    if config.family().is_none() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "model_type `{}` is not wav2vec2 or hubert",
                config.model_type
            ),
        });
    }
    Ok(config)
}

/// Sets the training-time fields of `config` ([`TRAINING_FIELDS`]) from `overrides`, as
/// `AutoConfig.from_pretrained(dir, **overrides)` does.
///
/// Fails with [`Error::InvalidInput`] for another field, or a value of the wrong type.
pub fn apply_overrides(
    config: &mut Wav2Vec2Config,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    if overrides.is_empty() {
        return Ok(());
    }
    let bad = |what: String, expected: String, got: String| Error::InvalidInput {
        what,
        expected,
        got,
    };
    let mut value = serde_json::to_value(&*config)
        .map_err(|e| bad("configuration".into(), "serializable".into(), e.to_string()))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(bad(
            "configuration".into(),
            "a JSON object".into(),
            value.to_string(),
        ));
    };
    for (key, v) in overrides {
        if !TRAINING_FIELDS.contains(&key.as_str()) {
            return Err(bad(
                format!("configuration override `{key}`"),
                format!(
                    "one of the training-time fields {} (the others define the \
                     architecture)",
                    TRAINING_FIELDS.join(", ")
                ),
                key.clone(),
            ));
        }
        fields.insert(key.clone(), v.clone());
    }
    *config = serde_json::from_value(value).map_err(|e| {
        bad(
            "configuration overrides".into(),
            "values of the fields' types".into(),
            e.to_string(),
        )
    })?;
    Ok(())
}

/// How a [`ClassifyTask`] is built.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyOptions {
    /// Where the model comes from.
    pub init: ClassifyInit,
    /// Training-time configuration fields to change ([`apply_overrides`]), e.g.
    /// `{"layerdrop": 0.0, "mask_time_prob": 0.0}`.
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// What trains; `None`: all but the feature encoder from a checkpoint, all from scratch.
    pub trainable: Option<Trainable>,
    /// Longer clips are cropped to this many seconds: a random window in training, the
    /// `eval_crop` window in evaluation (`max_length_seconds` of the transformers script).
    pub max_duration_s: Option<f64>,
    /// The window evaluation keeps of a longer clip.
    pub eval_crop: EvalCrop,
    /// Clips per training micro-batch.
    pub batch_size: usize,
    /// Clips per evaluation batch.
    pub eval_batch_size: usize,
    /// The order of a shuffled epoch (when the trainer shuffles; else the source order).
    pub order: Order,
    /// Waveform augmentation in training.
    pub augment: Option<Augment>,
    /// Seeds the initialization of new weights, and the crops of unshuffled epochs.
    pub seed: u64,
}

impl ClassifyOptions {
    /// Options for `init` with the defaults: batches of 8 (transformers'
    /// `per_device_train_batch_size`), shuffled, no crop (and, with one, evaluation on the
    /// start of a clip, as the feature extractor's `truncation=True` keeps), seed 42.
    pub fn new(init: ClassifyInit) -> Self {
        ClassifyOptions {
            init,
            overrides: serde_json::Map::new(),
            trainable: None,
            max_duration_s: None,
            eval_crop: EvalCrop::Start,
            batch_size: 8,
            eval_batch_size: 8,
            order: Order::Shuffle,
            augment: None,
            seed: 42,
        }
    }
}

/// One training micro-batch: which clips, and the generator its crops and augmentation
/// draw from ([`batch_rng`]`(seed, position)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    /// Indices into the training set.
    pub indices: Vec<usize>,
    /// The epoch's batch seed.
    pub seed: [u8; 32],
    /// The batch's position in its epoch.
    pub position: usize,
}

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
    fn new(split: &str, labels: &LabelVocab, loss: f64, cm: &ConfusionMatrix) -> Self {
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

/// Audio classification as a [`Task`]; see the module documentation.
#[derive(Debug)]
pub struct ClassifyTask {
    model: Wav2Vec2Model,
    labels: LabelVocab,
    features: FeatureConfig,
    train: AudioSet,
    eval: Option<AudioSet>,
    test: Option<AudioSet>,
    /// The init checkpoint's `preprocessor_config.json`, written as is on save.
    preprocessor: Option<serde_json::Value>,
    batch_size: usize,
    eval_batch_size: usize,
    order: Order,
    augment: Option<Augment>,
    seed: u64,
}

impl ClassifyTask {
    /// Builds the model and decodes the data.
    ///
    /// Fails with [`Error::InvalidInput`] for a batch size of 0, fewer than two training
    /// labels (transformers makes a one-label model a regression), a bad override or
    /// `max_duration_s`; with [`Error::Unsupported`] for an init directory that is not a
    /// Wav2Vec2 / HuBERT checkpoint, or a classification checkpoint whose labels are not
    /// the data's; with [`Error::Data`] for audio that cannot be decoded or is shorter
    /// than the model's receptive field (naming the file and line); and as the checkpoint
    /// loaders ([`load_dir`], [`Wav2Vec2Model::from_checkpoint`]) do.
    pub fn new(splits: Splits, options: ClassifyOptions) -> Result<Self> {
        for (what, n) in [
            ("batch_size", options.batch_size),
            ("eval_batch_size", options.eval_batch_size),
        ] {
            if n == 0 {
                return Err(Error::InvalidInput {
                    what: what.into(),
                    expected: "at least 1".into(),
                    got: "0".into(),
                });
            }
        }
        if splits.labels.len() < 2 {
            return Err(Error::InvalidInput {
                what: "training labels".into(),
                expected: "at least 2 classes".into(),
                got: format!("{:?}", splits.labels.labels()),
            });
        }
        let mut init_rng = ChaCha8Rng::seed_from_u64(options.seed);
        let device = Device::Cpu;
        let (mut model, labels, preprocessor) = match &options.init {
            ClassifyInit::Checkpoint { dir, replace_head } => {
                let config_path = dir.join("config.json");
                if !dir.is_dir() {
                    return Err(Error::Unsupported {
                        path: dir.clone(),
                        reason: "no such checkpoint directory".into(),
                    });
                }
                if !config_path.is_file() {
                    return Err(Error::Unsupported {
                        path: dir.clone(),
                        reason: "not a Hugging Face checkpoint directory (no config.json)".into(),
                    });
                }
                let mut ckpt = if !replace_head && is_classifier(&config_path)? {
                    let ckpt = load_dir(dir)?;
                    let Head::Classifier { labels } = &ckpt.head else {
                        return Err(Error::Unsupported {
                            path: config_path,
                            reason: "a sequence-classification architecture without a \
                                     classification head"
                                .into(),
                        });
                    };
                    check_labels(&config_path, labels, &splits.labels)?;
                    ckpt
                } else {
                    let head = Head::Classifier {
                        labels: splits.labels.labels().to_vec(),
                    };
                    load_dir_with_new_head(dir, head)?
                };
                apply_overrides(&mut ckpt.config, &options.overrides)?;
                let labels = match &ckpt.head {
                    Head::Classifier { labels } => LabelVocab::from_labels(labels.clone())?,
                    Head::Ctc { .. } => splits.labels.clone(),
                };
                let model = Wav2Vec2Model::from_checkpoint(&ckpt, &device, Some(&mut init_rng))?;
                let pre_path = dir.join("preprocessor_config.json");
                let preprocessor = if pre_path.is_file() {
                    let json = read_json::<serde_json::Value>(&pre_path)?;
                    Some((json, FeatureConfig::from_preprocessor_config(&pre_path)?))
                } else {
                    None
                };
                (model, labels, preprocessor)
            }
            ClassifyInit::Scratch { config } => {
                let mut config = (**config).clone();
                apply_overrides(&mut config, &options.overrides)?;
                let head = Head::Classifier {
                    labels: splits.labels.labels().to_vec(),
                };
                let model = Wav2Vec2Model::from_scratch(&config, head, &device, &mut init_rng)?;
                (model, splits.labels.clone(), None)
            }
        };
        let from_checkpoint = matches!(options.init, ClassifyInit::Checkpoint { .. });
        model.set_trainable(options.trainable.unwrap_or(if from_checkpoint {
            Trainable::AllButFeatureEncoder
        } else {
            Trainable::All
        }))?;

        let (preprocessor, features) = match preprocessor {
            Some((json, features)) => (Some(json), Some(features)),
            None => (None, None),
        };
        let mut features = match features {
            Some(features) => features,
            // What `Wav2Vec2Model::save_dir` writes when there is nothing to keep.
            None => {
                let mut f = FeatureConfig::default();
                f.extractor.do_normalize = model.normalize();
                f.extractor.return_attention_mask = true;
                f
            }
        };
        features.max_duration_s = options.max_duration_s;
        features.eval_crop = options.eval_crop;
        features.validate()?;
        if let Some(augment) = &options.augment {
            augment.validate()?;
        }
        let min_samples = model.receptive_field_samples();
        features.min_samples = min_samples;
        if let Some(max) = features.max_samples()?
            && max < min_samples
        {
            return Err(Error::InvalidInput {
                what: "max_duration_s".into(),
                expected: format!(
                    "at least the model's receptive field, {min_samples} samples ({:.1} ms)",
                    min_samples as f64 * 1e3 / f64::from(features.sample_rate_hz())
                ),
                got: format!("{:?} s", options.max_duration_s),
            });
        }

        let rate = features.sample_rate_hz();
        let load = |examples: Vec<Example>| -> Result<Option<AudioSet>> {
            if examples.is_empty() {
                return Ok(None);
            }
            let set = AudioSet::load(examples, &labels, rate)?;
            check_lengths(&set, min_samples)?;
            Ok(Some(set))
        };
        let Some(train) = load(splits.train)? else {
            return Err(Error::InvalidInput {
                what: "training examples".into(),
                expected: "at least one".into(),
                got: "none".into(),
            });
        };
        let eval = load(splits.eval)?;
        let test = load(splits.test)?;
        Ok(ClassifyTask {
            model,
            labels,
            features,
            train,
            eval,
            test,
            preprocessor,
            batch_size: options.batch_size,
            eval_batch_size: options.eval_batch_size,
            order: options.order,
            augment: options.augment,
            seed: options.seed,
        })
    }

    /// The model.
    pub fn model(&self) -> &Wav2Vec2Model {
        &self.model
    }

    /// The class labels, in the model's id order.
    pub fn labels(&self) -> &LabelVocab {
        &self.labels
    }

    /// The feature extractor and crops.
    pub fn features(&self) -> &FeatureConfig {
        &self.features
    }

    /// The training clips.
    pub fn train_set(&self) -> &AudioSet {
        &self.train
    }

    /// The evaluation clips, if any.
    pub fn eval_set(&self) -> Option<&AudioSet> {
        self.eval.as_ref()
    }

    /// The test clips, if any (an audiofolder's `test` split beside its `validation`, or
    /// FSDD's held-out speaker), evaluated only in [`ClassifyTask::reports`].
    pub fn test_set(&self) -> Option<&AudioSet> {
        self.test.as_ref()
    }

    /// Training micro-batches in an epoch (the last may be smaller).
    pub fn batches_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.batch_size)
    }

    /// A one-line description: architecture, labels, parameters, what trains, the data.
    pub fn describe(&self) -> String {
        let c = self.model.config();
        let count = |vars: &[(String, Var)]| -> usize {
            vars.iter().map(|(_, v)| v.as_tensor().elem_count()).sum()
        };
        let n_params = count(&self.model.vars());
        let n_trained = count(&self.model.trainable_vars());
        let what = match self.model.trainable() {
            Trainable::All => "all".to_string(),
            Trainable::AllButFeatureEncoder => "all but the feature encoder".to_string(),
            Trainable::TopLayers { n_layers } => format!("the top {n_layers} layers and head"),
            Trainable::Head => "the head".to_string(),
        };
        let duration = |s: &AudioSet| {
            let secs = s.duration_s();
            if secs < 60.0 {
                format!("{secs:.1} s")
            } else {
                format!("{:.1} min", secs / 60.0)
            }
        };
        let set = |s: Option<&AudioSet>, name: &str| {
            s.map(|s| format!(", {} {name} ({})", s.len(), duration(s)))
                .unwrap_or_default()
        };
        format!(
            "{} {} layers x {}, {} labels; {n_params} parameters, {n_trained} trained ({what}); \
             {} train clips ({}){}{}",
            self.model.family().as_str(),
            c.num_hidden_layers,
            c.hidden_size,
            self.labels.len(),
            self.train.len(),
            duration(&self.train),
            set(self.eval.as_ref(), "eval"),
            set(self.test.as_ref(), "test"),
        )
    }

    /// The mean loss and the confusion matrix of the model, in eval mode, over `set`.
    fn evaluate_set(&self, set: &AudioSet) -> Result<(f64, ConfusionMatrix)> {
        let with_mask = self.features.extractor.return_attention_mask;
        let (mut loss_sum, mut refs, mut preds) = (0.0, Vec::new(), Vec::new());
        for batch in Epoch::eval(set, &self.features, self.eval_batch_size)? {
            let batch = batch?;
            let t = batch.to_tensors(self.model.device(), with_mask)?;
            let labels = t.labels.ok_or_else(|| Error::InvalidInput {
                what: "evaluation batch".into(),
                expected: "labels".into(),
                got: "none".into(),
            })?;
            let logits = self
                .model
                .forward(&t.input_values, t.attention_mask.as_ref())?
                .detach();
            let loss = cross_entropy(&logits, &labels)?
                .to_scalar::<f32>()
                .map_err(candle_err("reading the evaluation loss"))?;
            loss_sum += f64::from(loss) * batch.batch_size as f64;
            let ids = logits
                .argmax(1)
                .and_then(|p| p.to_vec1::<u32>())
                .map_err(candle_err("predicting classes"))?;
            preds.extend(ids.into_iter().map(|p| p as usize));
            refs.extend(batch.labels.iter().map(|&l| l as usize));
        }
        let cm = ConfusionMatrix::new(self.labels.len(), &refs, &preds)?;
        Ok((loss_sum / refs.len().max(1) as f64, cm))
    }

    /// Evaluates the model as it is on the eval and test splits (those present): loss,
    /// accuracy, macro-F1, confusion matrix and per-class scores.
    pub fn reports(&self) -> Result<Vec<EvalReport>> {
        let mut out = Vec::new();
        for (name, set) in [("eval", &self.eval), ("test", &self.test)] {
            if let Some(set) = set {
                let (loss, cm) = self.evaluate_set(set)?;
                out.push(EvalReport::new(name, &self.labels, loss, &cm));
            }
        }
        Ok(out)
    }
}

/// Whether `config.json` names a `*ForSequenceClassification` architecture.
fn is_classifier(config_path: &Path) -> Result<bool> {
    #[derive(serde::Deserialize)]
    struct Arch {
        architectures: Option<Vec<String>>,
    }
    let arch: Arch = read_json(config_path)?;
    Ok(arch
        .architectures
        .unwrap_or_default()
        .iter()
        .any(|a| a.ends_with("ForSequenceClassification")))
}

/// Checks that a classification checkpoint's labels are the data's, as sets.
fn check_labels(config_path: &Path, checkpoint: &[String], data: &LabelVocab) -> Result<()> {
    let ours: BTreeSet<&str> = checkpoint.iter().map(String::as_str).collect();
    let theirs: BTreeSet<&str> = data.labels().iter().map(String::as_str).collect();
    if ours == theirs && ours.len() == checkpoint.len() {
        return Ok(());
    }
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    let only_data: BTreeSet<&str> = theirs.difference(&ours).copied().collect();
    let only_ckpt: BTreeSet<&str> = ours.difference(&theirs).copied().collect();
    Err(Error::Unsupported {
        path: config_path.to_path_buf(),
        reason: format!(
            "the checkpoint's labels are not the training data's (only in the data: [{}]; \
             only in the checkpoint: [{}]); give it a new classification head for the \
             data's labels (`--new-head`) or train on data with its labels",
            list(&only_data),
            list(&only_ckpt)
        ),
    })
}

/// Checks that every clip of `set` gives the model at least one frame.
fn check_lengths(set: &AudioSet, min_samples: usize) -> Result<()> {
    let rate = f64::from(set.sample_rate_hz());
    for (i, e) in set.examples().iter().enumerate() {
        let n = set.samples(i).map_or(0, <[f32]>::len);
        if n < min_samples {
            return Err(e.origin.error(format!(
                "`{}` is {n} samples long at {} Hz ({:.1} ms), shorter than the model's \
                 receptive field of {min_samples} samples ({:.1} ms)",
                e.audio.display(),
                set.sample_rate_hz(),
                n as f64 * 1e3 / rate,
                min_samples as f64 * 1e3 / rate
            )));
        }
    }
    Ok(())
}

impl Task for ClassifyTask {
    type Batch = PlannedBatch;

    fn train_batches(
        &mut self,
        epoch: usize,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Vec<PlannedBatch>> {
        let mut own;
        let (rng, order) = match rng {
            Some(rng) => (rng, self.order),
            None => {
                // No shuffle: the source order, and the crops from the task's own seed.
                own = ChaCha8Rng::seed_from_u64(self.seed);
                own.set_stream(epoch as u64);
                (&mut own, Order::Sequential)
            }
        };
        let config = BatchConfig {
            batch_size: self.batch_size,
            order,
            drop_last: false,
        };
        let epoch = Epoch::train(
            &self.train,
            &self.features,
            self.augment.as_ref(),
            &config,
            rng,
        )?;
        let seed = epoch.batch_seed().ok_or_else(|| Error::InvalidInput {
            what: "training epoch".into(),
            expected: "a batch seed".into(),
            got: "none".into(),
        })?;
        Ok(epoch
            .plan()
            .iter()
            .enumerate()
            .map(|(position, indices)| PlannedBatch {
                indices: indices.clone(),
                seed,
                position,
            })
            .collect())
    }

    fn loss(&mut self, batch: &PlannedBatch, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let stage = Stage::Train {
            rng: &mut batch_rng(batch.seed, batch.position),
            augment: self.augment.as_ref().filter(|a| !a.is_off()),
        };
        let b = collate(&self.train, &batch.indices, &self.features, stage)?;
        let with_mask = self.features.extractor.return_attention_mask;
        let t = b.to_tensors(self.model.device(), with_mask)?;
        let labels = t.labels.ok_or_else(|| Error::InvalidInput {
            what: "training batch".into(),
            expected: "labels".into(),
            got: "none".into(),
        })?;
        let logits = self.model.forward_t(
            &t.input_values,
            t.attention_mask.as_ref(),
            Mode::Train { rng },
        )?;
        cross_entropy(&logits, &labels)
    }

    fn evaluate(&mut self) -> Result<Metrics> {
        let Some(set) = &self.eval else {
            return Ok(Metrics::new());
        };
        let (loss, cm) = self.evaluate_set(set)?;
        Ok(Metrics::from([
            ("loss".to_string(), loss),
            ("accuracy".to_string(), cm.accuracy()),
            ("f1".to_string(), cm.macro_f1()),
        ]))
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        self.model.trainable_vars()
    }

    /// Writes the whole model as a Hugging Face checkpoint, with the init checkpoint's
    /// `preprocessor_config.json` when it had one.
    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save_dir(dir)?;
        if let Some(pre) = &self.preprocessor {
            let path = dir.join("preprocessor_config.json");
            let text = serde_json::to_string_pretty(pre).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
            std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Reads every variable back from `dir/model.safetensors` (by Hugging Face name; a
    /// positional BatchNorm's `num_batches_tracked` is not read, as nothing depends on it).
    fn load(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(MODEL_FILE);
        let tensors = candle_core::safetensors::load(&path, self.model.device())
            .map_err(candle_err(format!("reading {}", path.display())))?;
        for (name, var) in self.model.vars() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
            if t.dims() != var.dims() {
                return Err(Error::ShapeMismatch {
                    name,
                    expected: var.dims().to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            let t = t
                .to_dtype(var.dtype())
                .map_err(candle_err(format!("loading {name}")))?;
            var.set(&t).map_err(candle_err(format!("loading {name}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::testutil::{msg, wav, write_wav};
    use crate::train::data::{Columns, EvalSplit, Source};

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/classify")
    }

    fn fixture_splits() -> Splits {
        ClassifyData::Spec(DataSpec {
            train: Source::Jsonl(fixture().join("manifest.jsonl")),
            eval: Some(Source::Jsonl(fixture().join("manifest.jsonl"))),
            split: EvalSplit::AsGiven,
            columns: Columns::default(),
        })
        .resolve()
        .unwrap()
    }

    fn fixture_task(batch_size: usize) -> ClassifyTask {
        let init = ClassifyInit::Checkpoint {
            dir: fixture().join("init"),
            replace_head: false,
        };
        let options = ClassifyOptions {
            batch_size,
            ..ClassifyOptions::new(init)
        };
        ClassifyTask::new(fixture_splits(), options).unwrap()
    }

    #[test]
    fn train_classify_overrides_change_only_training_fields() {
        let mut c = Preset::Tiny.config(Family::Hubert).unwrap();
        let map = |json: &str| -> serde_json::Map<String, serde_json::Value> {
            serde_json::from_str(json).unwrap()
        };
        apply_overrides(&mut c, &map(r#"{"layerdrop": 0.2, "mask_time_prob": 0.0}"#)).unwrap();
        assert_eq!((c.layerdrop, c.mask_time_prob), (0.2, 0.0));
        let e = apply_overrides(&mut c, &map(r#"{"hidden_size": 8}"#)).unwrap_err();
        assert!(e.to_string().contains("`hidden_size`"), "{e}");
        let e = apply_overrides(&mut c, &map(r#"{"layerdrop": "high"}"#)).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        assert_eq!(
            c.layerdrop, 0.2,
            "a failed override leaves the config alone"
        );
    }

    #[test]
    fn train_classify_scratch_config_from_preset_or_file() {
        assert_eq!(
            scratch_config("tiny", Family::Wav2Vec2).unwrap().model_type,
            "wav2vec2"
        );
        assert_eq!(
            scratch_config("base", Family::Hubert).unwrap().hidden_size,
            768
        );
        let e = scratch_config("huge", Family::Hubert).unwrap_err();
        assert!(e.to_string().contains("tiny, base"), "{e}");
        let file = fixture().join("init/config.json");
        let c = scratch_config(file.to_str().unwrap(), Family::Hubert).unwrap();
        assert_eq!((c.model_type.as_str(), c.hidden_size), ("wav2vec2", 32));
    }

    #[test]
    fn train_classify_fsdd_holds_out_a_speaker() {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("recordings");
        for name in [
            "0_ann_0.wav",
            "0_ann_5.wav",
            "1_ann_7.wav",
            "1_bob_1.wav",
            "0_bob_9.wav",
            "1_cid_2.wav",
            "0_cid_30.wav",
        ] {
            write_wav(&rec.join(name), &[0.1; 80], 8_000);
        }
        let fsdd = |speaker: Option<&str>| ClassifyData::Fsdd {
            dir: dir.path().to_path_buf(),
            held_out_speaker: speaker.map(str::to_string),
        };
        let s = fsdd(Some("cid")).resolve().unwrap();
        let names = |v: &[Example]| -> Vec<String> {
            v.iter()
                .map(|e| e.audio.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(&s.train),
            ["0_ann_5.wav", "0_bob_9.wav", "1_ann_7.wav"]
        );
        assert_eq!(names(&s.eval), ["0_ann_0.wav", "1_bob_1.wav"]);
        assert_eq!(names(&s.test), ["0_cid_30.wav", "1_cid_2.wav"]);
        assert_eq!(s.labels.labels(), ["0", "1"]);
        let s = fsdd(None).resolve().unwrap();
        assert_eq!((s.train.len(), s.eval.len(), s.test.len()), (4, 3, 0));
        assert!(msg(fsdd(Some("dan")).resolve()).contains("held-out speaker `dan`"));
    }

    #[test]
    fn train_classify_refuses_bad_inits_and_data() {
        let splits = fixture_splits();
        let with = |init| ClassifyTask::new(splits.clone(), ClassifyOptions::new(init));
        // A folder without config.json.
        let e = with(ClassifyInit::Checkpoint {
            dir: fixture().join("audio"),
            replace_head: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("no config.json"), "{e}");
        // A classifier of other labels, unless its head is replaced.
        let other =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2/wav2vec2-cls");
        let e = with(ClassifyInit::Checkpoint {
            dir: other.clone(),
            replace_head: false,
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("only in the data: [chirp, hum, noise]")
                && e.contains("only in the checkpoint: [angry, happy, neutral, sad]")
                && e.contains("--new-head"),
            "{e}"
        );
        let task = with(ClassifyInit::Checkpoint {
            dir: other,
            replace_head: true,
        })
        .unwrap();
        assert_eq!(task.labels().labels(), ["chirp", "hum", "noise"]);
        // One label is a regression in transformers, not a classifier.
        let mut one = splits.clone();
        one.labels = LabelVocab::from_labels(vec!["hum".into()]).unwrap();
        let init = ClassifyInit::Scratch {
            config: Box::new(Preset::Tiny.config(Family::Hubert).unwrap()),
        };
        let e = ClassifyTask::new(one, ClassifyOptions::new(init.clone())).unwrap_err();
        assert!(e.to_string().contains("at least 2 classes"), "{e}");
        // A clip shorter than the receptive field (400 samples) is named.
        let dir = tempfile::tempdir().unwrap();
        wav(dir.path(), "long.wav", 800, 1);
        wav(dir.path(), "short.wav", 399, 2);
        let manifest = dir.path().join("m.jsonl");
        std::fs::write(
            &manifest,
            "{\"audio\": \"long.wav\", \"label\": \"a\"}\n{\"audio\": \"short.wav\", \"label\": \"b\"}\n",
        )
        .unwrap();
        let short = ClassifyData::Spec(DataSpec {
            train: Source::Jsonl(manifest),
            eval: None,
            split: EvalSplit::AsGiven,
            columns: Columns::default(),
        })
        .resolve()
        .unwrap();
        let e = ClassifyTask::new(short, ClassifyOptions::new(init))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.jsonl:2") && e.contains("short.wav") && e.contains("receptive field"),
            "{e}"
        );
    }

    #[test]
    fn train_classify_empty_splits_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let spec = |train: &Path, eval: Option<&Path>| {
            ClassifyData::Spec(DataSpec {
                train: Source::Jsonl(train.to_path_buf()),
                eval: eval.map(|p| Source::Jsonl(p.to_path_buf())),
                split: EvalSplit::AsGiven,
                columns: Columns::default(),
            })
            .resolve()
        };
        let e = msg(spec(&empty, None));
        assert!(e.contains("empty.jsonl: no examples"), "{e}");
        let manifest = fixture().join("manifest.jsonl");
        let e = msg(spec(&manifest, Some(&empty)));
        assert!(e.contains("empty.jsonl: no examples"), "{e}");
        // An audiofolder whose splits hold no audio.
        let folder = dir.path().join("folder");
        std::fs::create_dir_all(folder.join("train")).unwrap();
        std::fs::create_dir_all(folder.join("validation")).unwrap();
        let e = ClassifyData::Spec(DataSpec {
            train: Source::Jsonl(manifest),
            eval: Some(Source::AudioFolder(folder.clone())),
            split: EvalSplit::AsGiven,
            columns: Columns::default(),
        })
        .resolve();
        let e = msg(e);
        assert!(e.contains(&folder.display().to_string()), "{e}");
    }

    #[test]
    fn train_classify_task_batches_loss_metrics_and_save() {
        let mut task = fixture_task(3);
        // The checkpoint's ids, not sorted order.
        assert_eq!(task.labels().labels(), ["noise", "hum", "chirp"]);
        assert_eq!(task.model().trainable(), Trainable::AllButFeatureEncoder);
        assert!(
            task.trainable()
                .iter()
                .all(|(n, _)| !n.contains("feature_extractor"))
        );
        assert_eq!(task.batches_per_epoch(), 3);
        let plain: Vec<Vec<usize>> = task
            .train_batches(0, None)
            .unwrap()
            .into_iter()
            .map(|b| b.indices)
            .collect();
        assert_eq!(plain, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let shuffled = task.train_batches(0, Some(&mut rng)).unwrap();
        let mut seen: Vec<usize> = shuffled.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..8).collect::<Vec<_>>());
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());

        let loss = task.loss(&shuffled[0], &mut rng).unwrap();
        assert_eq!(loss.dims(), &[] as &[usize]);
        let v = loss.to_scalar::<f32>().unwrap();
        // A fresh head on 3 classes: close to ln 3.
        assert!((v - 3f32.ln()).abs() < 0.05, "{v}");
        let metrics = task.evaluate().unwrap();
        assert_eq!(
            metrics.keys().collect::<Vec<_>>(),
            ["accuracy", "f1", "loss"]
        );
        let reports = task.reports().unwrap();
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.n_examples, 8);
        assert_eq!(r.loss, metrics["loss"]);
        assert_eq!(r.accuracy, metrics["accuracy"]);
        assert_eq!(
            r.per_class.iter().map(|c| c.support).collect::<Vec<_>>(),
            [2, 3, 3]
        );

        let dir = tempfile::tempdir().unwrap();
        task.save(dir.path()).unwrap();
        let read = |p: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        assert_eq!(
            read(&dir.path().join("preprocessor_config.json")),
            read(&fixture().join("init/preprocessor_config.json"))
        );
        let config = read(&dir.path().join("config.json"));
        assert_eq!(config["id2label"]["2"], "chirp");
        assert_eq!(config["label2id"]["noise"], 0);
        // Loading gives back every variable, frozen ones included.
        let weights = |t: &ClassifyTask| -> Vec<Vec<f32>> {
            t.model()
                .vars()
                .iter()
                .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
                .collect()
        };
        let mut other = ClassifyTask::new(
            fixture_splits(),
            ClassifyOptions {
                init: ClassifyInit::Checkpoint {
                    dir: Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/fixtures/wav2vec2/wav2vec2-cls"),
                    replace_head: true,
                },
                seed: 7,
                ..ClassifyOptions::new(ClassifyInit::Scratch {
                    config: Box::new(Preset::Tiny.config(Family::Hubert).unwrap()),
                })
            },
        )
        .unwrap();
        assert_ne!(weights(&other), weights(&task));
        other.load(dir.path()).unwrap();
        assert_eq!(weights(&other), weights(&task));
    }

    #[test]
    fn train_classify_report_scores_per_class() {
        let labels = LabelVocab::from_labels(vec!["a".into(), "b".into(), "c".into()]).unwrap();
        let cm = ConfusionMatrix::new(3, &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 1]).unwrap();
        let r = EvalReport::new("eval", &labels, 0.5, &cm);
        let b = &r.per_class[1];
        assert_eq!((b.label.as_str(), b.support), ("b", 2));
        assert!((b.precision - 0.5).abs() < 1e-12 && (b.recall - 1.0).abs() < 1e-12);
        assert_eq!(r.per_class[2].precision, 0.0);
        assert_eq!(
            r.confusion_matrix,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![0, 1, 0]]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval_report.json");
        write_reports(&path, std::slice::from_ref(&r)).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["eval"]["per_class"][1]["recall"], 1.0);
        assert_eq!(back["eval"]["n_examples"], 5);
    }
}
