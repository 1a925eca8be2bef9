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

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::error::{Error, Result, candle_err, io_err, read_json};
use crate::train::checkpoint::{self, MODEL_FILE};
use crate::train::data::Batch as ClipBatch;
use crate::train::data::{
    AudioSet, Augment, BatchConfig, Epoch, Example, FeatureConfig, LabelVocab, Order, Splits,
    Stage, batch_rng, collate,
};
use crate::train::loss::classify::cross_entropy;
use crate::train::metrics::ConfusionMatrix;
use crate::train::trainer::{Loaded, Loader, Metrics, Task};
use crate::wav2vec2::model::{Mode, Trainable, Wav2Vec2Model};
use crate::wav2vec2::{Head, load_dir, load_dir_with_new_head};

mod options;
mod report;
#[cfg(test)]
mod tests;

pub use options::{
    ClassifyData, ClassifyInit, ClassifyOptions, TRAINING_FIELDS, apply_overrides, scratch_config,
};
pub use report::{ClassScores, EvalReport, write_reports};

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

/// Audio classification as a [`Task`]; see the module documentation.
#[derive(Debug)]
pub struct ClassifyTask {
    model: Wav2Vec2Model,
    labels: LabelVocab,
    features: FeatureConfig,
    /// Shared with the batch builder of [`Task::loader`].
    train: Arc<AudioSet>,
    eval: Option<AudioSet>,
    test: Option<AudioSet>,
    /// The init checkpoint's `preprocessor_config.json`, written as is on save.
    preprocessor: Option<serde_json::Value>,
    batch_size: usize,
    eval_batch_size: usize,
    order: Order,
    augment: Option<Augment>,
    seed: u64,
    /// Data-parallel shards of a training micro-batch ([`ClassifyOptions::shards`]).
    shards: usize,
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
            train: Arc::new(train),
            eval,
            test,
            preprocessor,
            batch_size: options.batch_size,
            eval_batch_size: options.eval_batch_size,
            order: options.order,
            augment: options.augment,
            seed: options.seed,
            shards: options.shards.max(1),
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

/// Training batch `batch` of `train`: cropped, augmented, normalized and padded, from its
/// own generator ([`batch_rng`]), so that it can be built on any thread.
fn build_batch(
    train: &AudioSet,
    features: &FeatureConfig,
    augment: Option<&Augment>,
    batch: &PlannedBatch,
) -> Result<ClipBatch> {
    let stage = Stage::Train {
        rng: &mut batch_rng(batch.seed, batch.position),
        augment,
    };
    collate(train, &batch.indices, features, stage)
}

/// The mean cross-entropy of `model` in training mode on the built batch `b`.
fn train_loss(
    model: &Wav2Vec2Model,
    b: &ClipBatch,
    with_mask: bool,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let t = b.to_tensors(model.device(), with_mask)?;
    let labels = t.labels.ok_or_else(|| Error::InvalidInput {
        what: "training batch".into(),
        expected: "labels".into(),
        got: "none".into(),
    })?;
    let logits = model.forward_t(
        &t.input_values,
        t.attention_mask.as_ref(),
        Mode::Train { rng },
    )?;
    cross_entropy(&logits, &labels)
}

impl ClassifyTask {
    /// [`build_batch`] with the task's data and augmentation.
    fn build_batch(&self, batch: &PlannedBatch) -> Result<ClipBatch> {
        let augment = self.augment.as_ref().filter(|a| !a.is_off());
        build_batch(&self.train, &self.features, augment, batch)
    }

    /// The mean cross-entropy of the model in training mode on a built batch.
    fn loss_on(&mut self, b: ClipBatch, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let with_mask = self.features.extractor.return_attention_mask;
        train_loss(&self.model, &b, with_mask, rng)
    }
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
        let inputs = self.build_batch(batch)?;
        self.loss_on(inputs, rng)
    }

    fn loader(&self) -> Option<Loader<PlannedBatch>> {
        let train = Arc::clone(&self.train);
        let features = self.features.clone();
        let augment = self.augment.clone().filter(|a| !a.is_off());
        Some(Arc::new(move |batch: &PlannedBatch| {
            let b = build_batch(&train, &features, augment.as_ref(), batch)?;
            Ok(Box::new(b) as Loaded)
        }))
    }

    fn loss_shards(
        &mut self,
        batch: &PlannedBatch,
        loaded: Option<Loaded>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor>> {
        let inputs = match loaded.map(|l| l.downcast::<ClipBatch>()) {
            Some(Ok(inputs)) => *inputs,
            _ => self.build_batch(batch)?,
        };
        let n = if self.model.config().conv_pos_batch_norm {
            1
        } else {
            self.shards.min(inputs.batch_size)
        };
        if n <= 1 {
            return Ok(vec![self.loss_on(inputs, rng)?]);
        }
        // Each shard's dropout, LayerDrop and masks from its own generator, seeded from the
        // trainer's (as each device of data-parallel training draws its own).
        let total = inputs.batch_size as f64;
        let parts = inputs.split(n);
        let seeds: Vec<u64> = parts.iter().map(|_| rng.random()).collect();
        let with_mask = self.features.extractor.return_attention_mask;
        let model = &self.model;
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .zip(seeds)
                .map(|(part, seed)| {
                    scope.spawn(move || -> Result<Tensor> {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        let loss = train_loss(model, &part, with_mask, &mut rng)?;
                        (loss * (part.batch_size as f64 / total))
                            .map_err(candle_err("weighting a shard's loss"))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|_| Error::InvalidInput {
                        what: "a training shard".into(),
                        expected: "its thread to finish".into(),
                        got: "a panic".into(),
                    })?
                })
                .collect()
        })
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
        checkpoint::set_vars(&self.model.vars(), &tensors)
    }
}
