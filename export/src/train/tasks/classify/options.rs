//! What a classification run is given: where the examples come from, where the model comes
//! from, and the options of the task.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, read_json};
use crate::train::data::{
    Augment, DataSpec, EvalCrop, Example, LabelVocab, Order, Splits, data_err, fsdd,
};
use crate::wav2vec2::init::Preset;
use crate::wav2vec2::model::Trainable;
use crate::wav2vec2::{Family, Wav2Vec2Config};

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

/// How a [`ClassifyTask`](super::ClassifyTask) is built.
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
    /// Data-parallel shards of each training micro-batch, run on one thread each (see
    /// [`crate::train::Task::loss_shards`]): give it the number of cores and one math
    /// thread to candle. 1 computes the batch whole. Models with a BatchNorm are not
    /// sharded (its statistics are the whole batch's).
    pub shards: usize,
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
            shards: 1,
        }
    }
}
