//! `hearken-export train classify`: fine-tune or train an audio classifier, write it as a
//! Hugging Face checkpoint and, with `--export`, as a hearken model directory.
//!
//! The flags carry transformers' `TrainingArguments` semantics under shorter names
//! (`--lr` is `learning_rate`, `--grad-accum` `gradient_accumulation_steps`, `--log-every`
//! `logging_steps`); the work is [`hearken_export::train::tasks::classify`] under the
//! generic [`Trainer`]. What differs from transformers' defaults, and why:
//!
//! - evaluation runs at every epoch end (and every `--eval-steps`), and a checkpoint is
//!   saved at every evaluation unless `--save-steps` says otherwise, so that the best
//!   model can be the final one (`--final-model best`, the default when there is
//!   evaluation data: `load_best_model_at_end`);
//! - `--save-total-limit` is 2 (the best checkpoint is kept besides), as checkpoints hold
//!   the optimizer's state, three times the model;
//! - `--log-every` is 10 updates, not 500: runs here are short;
//! - on the CPU, each micro-batch is split into `--shards` data-parallel parts (default: one
//!   per core), computed and differentiated on a thread each with one math thread apiece,
//!   and the next update's batches are built on another thread meanwhile. candle's own
//!   multi-threading of single ops gains little on small models (its pool's start-up and
//!   barriers cost about what the split work saves); whole-batch parallelism does: on two
//!   cores a tiny-model update takes ~57 ms sharded against ~75 ms whole. Each shard draws
//!   its own dropout and masks, as each device of data-parallel training does; without
//!   randomness the losses equal the whole batch's (to float rounding, by test).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use hearken_export::train::checkpoint::{self, TrainerState};
use hearken_export::train::data::{
    Augment, Columns, DataSpec, EvalCrop, EvalSplit, GainAugment, NoiseAugment, Order, Source,
    SpeedAugment,
};
use hearken_export::train::tasks::classify::{
    ClassifyData, ClassifyInit, ClassifyOptions, ClassifyTask, scratch_config, write_reports,
};
use hearken_export::train::trainer::METRICS_FILE;
use hearken_export::train::{Optim, SchedulerType, Trainer, TrainingArguments};
use hearken_export::wav2vec2::Family;
use hearken_export::wav2vec2::model::Trainable;

/// `hearken-export train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(subcommand)]
    task: TrainTask,
}

/// The training tasks.
#[derive(Subcommand)]
enum TrainTask {
    /// Fine-tune a Wav2Vec2 / HuBERT audio classifier from a Hugging Face checkpoint, or
    /// train one from scratch, on labelled clips (a JSONL manifest, a CSV table, an
    /// audiofolder, or the Free Spoken Digit Dataset).
    Classify(Box<ClassifyArgs>),
}

/// Flags of `hearken-export train classify`.
#[derive(Args)]
struct ClassifyArgs {
    /// Training data: a JSONL manifest (`{"audio": path, "label": ...}` per line), a CSV /
    /// TSV table, a Hugging Face audiofolder directory (with `train/`, `validation/`,
    /// `test/` splits or label folders), or `fsdd:DIR` for the Free Spoken Digit Dataset
    /// (its folder or its `recordings` folder: takes 5+ train, takes 0-4 evaluate).
    #[arg(long, help_heading = "Data")]
    data: String,
    /// Evaluation data (manifest, table or audiofolder); default: the data's validation
    /// (else test) split when it has one.
    #[arg(long, help_heading = "Data", conflicts_with = "eval_ratio")]
    eval_data: Option<PathBuf>,
    /// Hold out this fraction of the training data (of its groups, with --group-column)
    /// for evaluation, by a split seeded with --seed.
    #[arg(long, help_heading = "Data")]
    eval_ratio: Option<f64>,
    /// Column naming each row's group (the speaker): an --eval-ratio split keeps each
    /// group on one side.
    #[arg(long, help_heading = "Data")]
    group_column: Option<String>,
    /// Column holding the class label.
    #[arg(long, help_heading = "Data", default_value = "label")]
    label_column: String,
    /// Column holding the audio path (default: the first of audio, file_name, path,
    /// audio_filepath).
    #[arg(long, help_heading = "Data")]
    audio_column: Option<String>,
    /// With fsdd:DIR: a speaker never trained on, whose recordings are the test split.
    #[arg(long, help_heading = "Data")]
    held_out_speaker: Option<String>,
    /// Crop longer clips to this many seconds: a random window in training, the
    /// --eval-crop window in evaluation (transformers' max_length_seconds); default: no
    /// crop.
    #[arg(long, help_heading = "Data")]
    max_duration_s: Option<f64>,
    /// What evaluation keeps of a clip longer than --max-duration-s: its start (what the
    /// feature extractor's truncation keeps), its centre, or all of it (as
    /// run_audio_classification.py evaluates).
    #[arg(long, value_enum, default_value = "start", help_heading = "Data")]
    eval_crop: EvalCropArg,
    /// Batch clips of similar lengths together (transformers' group_by_length).
    #[arg(long, help_heading = "Data")]
    group_by_length: bool,
    /// Speed perturbation in training: play each clip at a speed drawn from MIN..MAX
    /// (resampled, so pitch and formants move with it; before cropping), with chance P
    /// (default 1), e.g. `0.9:1.1`.
    #[arg(long, value_name = "MIN:MAX[:P]", help_heading = "Augmentation")]
    augment_speed: Option<AugmentRange>,
    /// Additive white noise in training at an SNR (dB, against the clip's own power)
    /// drawn from MIN..MAX, with chance P (default 1), e.g. `10:30:0.5`.
    #[arg(long, value_name = "MIN:MAX[:P]", help_heading = "Augmentation")]
    augment_noise: Option<AugmentRange>,
    /// Random gain in training, in dB from MIN..MAX, with chance P (default 1); with the
    /// usual per-clip normalization (`do_normalize`) it has no effect.
    #[arg(long, value_name = "MIN:MAX[:P]", help_heading = "Augmentation")]
    augment_gain: Option<AugmentRange>,

    /// Where the model comes from: a Hugging Face checkpoint directory (a
    /// *ForSequenceClassification with the data's labels, or a base HubertModel /
    /// Wav2Vec2Model that gets a new head), or `scratch`.
    #[arg(long, help_heading = "Model")]
    init: String,
    /// With --init scratch: a preset (tiny, base) or a config.json. With a checkpoint: a
    /// JSON file of training-time fields to change (dropouts, layerdrop, mask_*).
    #[arg(long, help_heading = "Model")]
    config: Option<String>,
    /// Change one training-time configuration field (dropouts, layerdrop,
    /// apply_spec_augment, mask_*), e.g. `--override layerdrop=0.0`; repeatable.
    #[arg(long = "override", value_name = "KEY=JSON", help_heading = "Model")]
    overrides: Vec<String>,
    /// The family of a preset model from scratch.
    #[arg(long, value_enum, default_value = "hubert", help_heading = "Model")]
    family: FamilyArg,
    /// Give a classification checkpoint a new head for the data's labels.
    #[arg(long, help_heading = "Model")]
    new_head: bool,
    /// Freeze the convolutional feature encoder (the default from a checkpoint).
    #[arg(long, group = "freeze", help_heading = "Model")]
    freeze_feature_encoder: bool,
    /// Train every weight, the feature encoder included (the default from scratch).
    #[arg(long, group = "freeze", help_heading = "Model")]
    train_all: bool,
    /// Train only the top N transformer layers and the head.
    #[arg(long, value_name = "N", group = "freeze", help_heading = "Model")]
    unfreeze_top: Option<usize>,
    /// Train only the classification head.
    #[arg(long, group = "freeze", help_heading = "Model")]
    head_only: bool,

    /// Output folder: the final model (a Hugging Face checkpoint), checkpoints,
    /// metrics.jsonl, curves, eval_report.json, and onnx/ with --export.
    #[arg(long, help_heading = "Training")]
    out: PathBuf,
    /// Epochs to train (may be fractional) [default: 3].
    #[arg(long, conflicts_with = "max_steps", help_heading = "Training")]
    epochs: Option<f64>,
    /// Updates to make, instead of --epochs.
    #[arg(long, help_heading = "Training")]
    max_steps: Option<usize>,
    /// Clips per micro-batch.
    #[arg(long, default_value_t = 8, help_heading = "Training")]
    batch_size: usize,
    /// Clips per evaluation batch [default: --batch-size].
    #[arg(long, help_heading = "Training")]
    eval_batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5, help_heading = "Training")]
    lr: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "linear", help_heading = "Training")]
    lr_schedule: ScheduleArg,
    /// Warmup as a fraction of all updates.
    #[arg(long, default_value_t = 0.0, help_heading = "Training")]
    warmup_ratio: f64,
    /// Warmup in updates (wins over --warmup-ratio).
    #[arg(long, default_value_t = 0, help_heading = "Training")]
    warmup_steps: usize,
    /// Micro-batches per update.
    #[arg(long, default_value_t = 1, help_heading = "Training")]
    grad_accum: usize,
    /// Clip the gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0, help_heading = "Training")]
    max_grad_norm: f64,
    /// Weight decay (not on biases and norms).
    #[arg(long, default_value_t = 0.0, help_heading = "Training")]
    weight_decay: f64,
    /// Optimizer.
    #[arg(
        long,
        value_enum,
        default_value = "adamw-torch",
        help_heading = "Training"
    )]
    optim: OptimArg,
    /// Evaluate every N updates, besides every epoch end.
    #[arg(long, value_name = "N", help_heading = "Training")]
    eval_steps: Option<usize>,
    /// Save a checkpoint every N updates [default: --eval-steps, else every epoch].
    #[arg(long, value_name = "N", help_heading = "Training")]
    save_steps: Option<usize>,
    /// Keep at most N checkpoints besides the best (0: keep all).
    #[arg(long, value_name = "N", default_value_t = 2, help_heading = "Training")]
    save_total_limit: usize,
    /// The evaluation metric that picks the best model and drives early stopping: loss,
    /// accuracy or f1.
    #[arg(long, default_value = "loss", help_heading = "Training")]
    metric_for_best_model: String,
    /// Which weights the final model has: the best evaluation's (needs evaluation data),
    /// or the last update's.
    #[arg(long, value_enum, default_value = "best", help_heading = "Training")]
    final_model: FinalModel,
    /// Stop after N evaluations without improvement of --metric-for-best-model.
    #[arg(long, value_name = "N", help_heading = "Training")]
    early_stopping_patience: Option<usize>,
    /// Keep the data order (no shuffle each epoch).
    #[arg(long, help_heading = "Training")]
    no_shuffle: bool,
    /// Seed of the initialization, the shuffles, dropout and masking, and --eval-ratio.
    #[arg(long, default_value_t = 42, help_heading = "Training")]
    seed: u64,
    /// Log the training loss every N updates.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        help_heading = "Training"
    )]
    log_every: usize,
    /// Continue a run from a checkpoint folder, or from the newest in --out (`latest`).
    #[arg(long, value_name = "DIR|latest", help_heading = "Training")]
    resume_from_checkpoint: Option<String>,
    /// Start afresh in an --out that holds checkpoints, deleting them.
    #[arg(long, help_heading = "Training")]
    overwrite_output_dir: bool,
    /// CPU threads for the model's math (default: the physical cores).
    #[arg(long, help_heading = "Training")]
    threads: Option<usize>,
    /// Split each training micro-batch into N data-parallel shards, one thread each, whose
    /// gradients add up (as data-parallel training over devices does; each shard draws its
    /// own dropout and masks). 1 computes whole batches with --threads math threads.
    /// Default: --threads (the physical cores).
    #[arg(long, help_heading = "Training")]
    shards: Option<usize>,
    /// No progress bar.
    #[arg(long, help_heading = "Training")]
    no_progress: bool,

    /// Convert the final model into OUT/onnx (a hearken model directory, through
    /// `convert` and its parity gate).
    #[arg(long, help_heading = "Export")]
    export: bool,
    /// Weight precision of the export: fp32, fp16 or int8.
    #[arg(long, default_value = "fp32", help_heading = "Export")]
    export_precision: String,
}

/// `--family`.
#[derive(ValueEnum, Clone, Copy)]
enum FamilyArg {
    /// HuBERT.
    Hubert,
    /// Wav2Vec2.
    Wav2vec2,
}

/// `--eval-crop`.
#[derive(ValueEnum, Clone, Copy)]
enum EvalCropArg {
    /// The first --max-duration-s.
    Start,
    /// The middle --max-duration-s.
    Center,
    /// The whole clip.
    Whole,
}

/// `--lr-schedule`.
#[derive(ValueEnum, Clone, Copy)]
enum ScheduleArg {
    /// Warmup, then linear decay to 0.
    Linear,
    /// Warmup, then half a cosine down to 0.
    Cosine,
    /// The peak rate throughout (no warmup).
    Constant,
    /// Warmup, then the peak rate.
    ConstantWithWarmup,
}

/// `--optim`.
#[derive(ValueEnum, Clone, Copy)]
enum OptimArg {
    /// torch's AdamW.
    AdamwTorch,
    /// torch's SGD.
    Sgd,
}

/// `--final-model`.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum FinalModel {
    /// The best evaluation's weights (transformers' load_best_model_at_end).
    Best,
    /// The last update's weights.
    Last,
}

/// Runs `hearken-export train`.
pub fn run(args: TrainArgs) -> Result<()> {
    match args.task {
        TrainTask::Classify(a) => classify(*a),
    }
}

/// The data flags as a [`ClassifyData`].
fn data(a: &ClassifyArgs) -> Result<ClassifyData> {
    if let Some(dir) = a.data.strip_prefix("fsdd:") {
        if a.eval_data.is_some() || a.eval_ratio.is_some() {
            bail!("fsdd: data has its own evaluation split; drop --eval-data / --eval-ratio");
        }
        return Ok(ClassifyData::Fsdd {
            dir: PathBuf::from(dir),
            held_out_speaker: a.held_out_speaker.clone(),
        });
    }
    if a.held_out_speaker.is_some() {
        bail!("--held-out-speaker is for fsdd:DIR data (use --eval-ratio with --group-column)");
    }
    let train = Source::from_path(&a.data).with_context(|| format!("--data {}", a.data))?;
    let eval = match &a.eval_data {
        Some(p) => {
            Some(Source::from_path(p).with_context(|| format!("--eval-data {}", p.display()))?)
        }
        None => None,
    };
    let split = match a.eval_ratio {
        Some(eval_ratio) => EvalSplit::Ratio {
            eval_ratio,
            seed: a.seed,
        },
        None => EvalSplit::AsGiven,
    };
    Ok(ClassifyData::Spec(DataSpec {
        train,
        eval,
        split,
        columns: Columns {
            audio: a.audio_column.clone(),
            label: a.label_column.clone(),
            group: a.group_column.clone(),
            ..Columns::default()
        },
    }))
}

/// The model flags as [`ClassifyOptions`].
fn options(a: &ClassifyArgs) -> Result<ClassifyOptions> {
    let mut overrides = serde_json::Map::new();
    let init = if a.init == "scratch" {
        if a.new_head {
            bail!("--new-head is for a checkpoint --init; a model from scratch has a new head");
        }
        let family = match a.family {
            FamilyArg::Hubert => Family::Hubert,
            FamilyArg::Wav2vec2 => Family::Wav2Vec2,
        };
        let spec = a
            .config
            .as_deref()
            .context("--init scratch needs --config tiny, base or a config.json")?;
        let config = scratch_config(spec, family).with_context(|| format!("--config {spec}"))?;
        ClassifyInit::Scratch {
            config: Box::new(config),
        }
    } else {
        if let Some(file) = &a.config {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading --config {file}"))?;
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
                .with_context(|| {
                    format!("--config {file}: not a JSON object of configuration fields")
                })?;
            overrides.extend(map);
        }
        ClassifyInit::Checkpoint {
            dir: PathBuf::from(&a.init),
            replace_head: a.new_head,
        }
    };
    for o in &a.overrides {
        let Some((key, value)) = o.split_once('=') else {
            bail!("--override {o}: expected KEY=JSON, e.g. layerdrop=0.0");
        };
        let value: serde_json::Value = serde_json::from_str(value)
            .with_context(|| format!("--override {o}: the value is not JSON"))?;
        overrides.insert(key.trim().to_string(), value);
    }
    let trainable = if a.freeze_feature_encoder {
        Some(Trainable::AllButFeatureEncoder)
    } else if a.train_all {
        Some(Trainable::All)
    } else if let Some(n_layers) = a.unfreeze_top {
        Some(Trainable::TopLayers { n_layers })
    } else if a.head_only {
        Some(Trainable::Head)
    } else {
        None
    };
    Ok(ClassifyOptions {
        overrides,
        trainable,
        max_duration_s: a.max_duration_s,
        eval_crop: match a.eval_crop {
            EvalCropArg::Start => EvalCrop::Start,
            EvalCropArg::Center => EvalCrop::Center,
            EvalCropArg::Whole => EvalCrop::Whole,
        },
        batch_size: a.batch_size,
        eval_batch_size: a.eval_batch_size.unwrap_or(a.batch_size),
        order: if a.group_by_length {
            Order::GroupByLength {
                mega_batch_mult: None,
            }
        } else {
            Order::Shuffle
        },
        seed: a.seed,
        augment: augment(a),
        shards: a
            .shards
            .or(a.threads)
            .unwrap_or_else(candle_core::utils::get_num_threads),
        ..ClassifyOptions::new(init)
    })
}

/// `MIN:MAX[:P]`: a range of an augmentation's level and the chance of applying it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AugmentRange {
    min: f32,
    max: f32,
    probability: f64,
}

impl std::str::FromStr for AugmentRange {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |t: &str| {
            t.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{t}` is not a number (expected MIN:MAX[:P])"))
        };
        match parts.as_slice() {
            [min, max] | [min, max, _] => Ok(AugmentRange {
                min: num(min)? as f32,
                max: num(max)? as f32,
                probability: match parts.get(2) {
                    Some(p) => num(p)?,
                    None => 1.0,
                },
            }),
            _ => Err(format!("`{s}`: expected MIN:MAX or MIN:MAX:P")),
        }
    }
}

/// The augmentation flags as an [`Augment`], `None` when none is given.
fn augment(a: &ClassifyArgs) -> Option<Augment> {
    let augment = Augment {
        speed: a.augment_speed.map(|r| SpeedAugment {
            min_factor: r.min,
            max_factor: r.max,
            probability: r.probability,
        }),
        noise: a.augment_noise.map(|r| NoiseAugment {
            min_snr_db: r.min,
            max_snr_db: r.max,
            probability: r.probability,
        }),
        gain: a.augment_gain.map(|r| GainAugment {
            min_db: r.min,
            max_db: r.max,
            probability: r.probability,
        }),
    };
    (!augment.is_off()).then_some(augment)
}

/// Sets the math threads of candle and rayon (which read them from the environment when
/// their pools start): `threads` for rayon (the fused kernels, batch building, matrix
/// products), and for candle's element-wise pool one thread when batches are sharded (each
/// shard is a thread of its own) or `threads` when they are not.
fn set_threads(threads: usize, shards: usize) -> Result<()> {
    if threads == 0 || shards == 0 {
        bail!("--threads and --shards must be at least 1");
    }
    let candle = if shards > 1 { 1 } else { threads };
    for (var, n) in [
        ("RAYON_NUM_THREADS", threads),
        ("CANDLE_NUM_THREADS", candle),
    ] {
        // SAFETY: called first thing in the command, while the process has one thread
        // (clap parses on the main thread; nothing has started candle's or rayon's pools
        // or any other thread), so no other thread can read the environment concurrently.
        unsafe { std::env::set_var(var, n.to_string()) };
    }
    Ok(())
}

/// The checkpoint to resume from: a folder, or `latest` in `out`.
fn resume_dir(spec: &str, out: &Path) -> Result<PathBuf> {
    if spec == "latest" {
        return checkpoint::last_checkpoint(out)?.with_context(|| {
            format!(
                "--resume-from-checkpoint latest: no checkpoint-* folder in {}",
                out.display()
            )
        });
    }
    let dir = PathBuf::from(spec);
    if !dir.join(checkpoint::STATE_FILE).is_file() {
        bail!(
            "--resume-from-checkpoint {spec}: not a training checkpoint (no {})",
            checkpoint::STATE_FILE
        );
    }
    Ok(dir)
}

/// The metrics the classification task evaluates.
const METRICS: [&str; 3] = ["loss", "accuracy", "f1"];

fn classify(a: ClassifyArgs) -> Result<()> {
    let threads = match a.threads {
        Some(n) => n,
        None => candle_core::utils::get_num_threads(),
    };
    let shards = a.shards.unwrap_or(threads);
    set_threads(threads, shards)?;
    // Checked before hours of training, not when they are used.
    let metric = a.metric_for_best_model.as_str();
    if !METRICS.contains(&metric.strip_prefix("eval_").unwrap_or(metric)) {
        bail!(
            "--metric-for-best-model {metric}: the task evaluates {}",
            METRICS.join(", ")
        );
    }
    if a.export && !["fp32", "fp16", "int8"].contains(&a.export_precision.as_str()) {
        bail!(
            "--export-precision {}: expected fp32, fp16 or int8",
            a.export_precision
        );
    }
    let t0 = Instant::now();
    let resume = match &a.resume_from_checkpoint {
        Some(spec) => Some(resume_dir(spec, &a.out)?),
        None => {
            let existing = checkpoint::list_checkpoints(&a.out)?;
            let previous = a.out.join(checkpoint::STATE_FILE).is_file() || !existing.is_empty();
            if previous {
                if !a.overwrite_output_dir {
                    bail!(
                        "{} holds the output of an earlier run{}; continue that run with \
                         --resume-from-checkpoint latest, or start afresh with \
                         --overwrite-output-dir",
                        a.out.display(),
                        existing
                            .last()
                            .map(|(_, p)| format!(" (newest checkpoint: {})", p.display()))
                            .unwrap_or_default()
                    );
                }
                clear_outputs(&a.out, &existing)?;
            }
            None
        }
    };
    let splits = data(&a)?.resolve()?;
    let has_eval = !splits.eval.is_empty();
    if !has_eval && a.early_stopping_patience.is_some() {
        bail!(
            "--early-stopping-patience needs evaluation data (--eval-data, --eval-ratio, or a \
             validation split in --data)"
        );
    }
    let task_options = options(&a)?;
    let mut task = ClassifyTask::new(splits, task_options).with_context(|| {
        format!(
            "building the model from --init {}{}",
            a.init,
            a.config
                .as_deref()
                .map(|c| format!(" --config {c}"))
                .unwrap_or_default()
        )
    })?;
    eprintln!(
        "model and data: {} ({:.1} s)",
        task.describe(),
        t0.elapsed().as_secs_f64()
    );
    if !has_eval {
        eprintln!("no evaluation data: the final model is the last update's");
    }

    let updates_per_epoch = task.batches_per_epoch().div_ceil(a.grad_accum.max(1));
    let load_best = has_eval && a.final_model == FinalModel::Best;
    let args = TrainingArguments {
        output_dir: a.out.clone(),
        num_train_epochs: a.epochs.unwrap_or(3.0),
        max_steps: a.max_steps,
        learning_rate: a.lr,
        lr_scheduler_type: match a.lr_schedule {
            ScheduleArg::Linear => SchedulerType::Linear,
            ScheduleArg::Cosine => SchedulerType::Cosine,
            ScheduleArg::Constant => SchedulerType::Constant,
            ScheduleArg::ConstantWithWarmup => SchedulerType::ConstantWithWarmup,
        },
        warmup_ratio: a.warmup_ratio,
        warmup_steps: a.warmup_steps,
        gradient_accumulation_steps: a.grad_accum,
        max_grad_norm: a.max_grad_norm,
        optim: match a.optim {
            OptimArg::AdamwTorch => Optim::AdamwTorch,
            OptimArg::Sgd => Optim::Sgd,
        },
        weight_decay: a.weight_decay,
        logging_steps: a.log_every,
        eval_steps: a.eval_steps,
        save_steps: Some(
            a.save_steps
                .or(a.eval_steps)
                .unwrap_or(updates_per_epoch.max(1)),
        ),
        save_total_limit: (a.save_total_limit > 0).then_some(a.save_total_limit),
        load_best_model_at_end: load_best,
        metric_for_best_model: Some(a.metric_for_best_model.clone()),
        early_stopping_patience: a.early_stopping_patience,
        seed: a.seed,
        shuffle: !a.no_shuffle,
        disable_tqdm: a.no_progress,
        resume_from_checkpoint: resume,
        ..TrainingArguments::default()
    };
    let trainer = Trainer::new(args).context("training arguments")?;
    let t_train = Instant::now();
    let out = trainer.train(&mut task)?;
    let train_s = t_train.elapsed().as_secs_f64();

    let reports = task.reports()?;
    let report_path = a.out.join("eval_report.json");
    if !reports.is_empty() {
        write_reports(&report_path, &reports)?;
    }
    let onnx_dir = a.out.join("onnx");
    if a.export {
        export_onnx(&a.out, &onnx_dir, &a.export_precision).with_context(|| {
            format!(
                "exporting the trained model (the Hugging Face checkpoint is in {}; retry \
                 with `hearken-export convert {} --out {}`)",
                a.out.display(),
                a.out.display(),
                onnx_dir.display()
            )
        })?;
    }

    // The summary.
    let state = TrainerState::load(&a.out)?;
    let metric = trainer.metric_key();
    println!(
        "trained {} updates ({:.2} epochs{}) in {train_s:.1} s; mean training loss {:.4}",
        out.global_step,
        state.epoch,
        if out.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        out.training_loss
    );
    if let Some(t) = out.update_time {
        println!(
            "update time: mean {:.1} ms, p50 {:.1} ms over {} updates (batches built ahead \
             on another thread; any wait for them included){}",
            t.mean_s * 1e3,
            t.p50_s * 1e3,
            t.updates,
            peak_rss_mib()
                .map(|m| format!("; peak memory (RSS) {m:.0} MiB"))
                .unwrap_or_default()
        );
    }
    if let (Some(best), Some(step)) = (out.best_metric, state.best_global_step) {
        let which = if !load_best {
            "the last update's".to_string()
        } else if step == out.global_step {
            "the last update's, the best".to_string()
        } else {
            match &out.best_model_checkpoint {
                Some(dir) => format!("{}'s", dir.display()),
                None => "the last update's (no checkpoint at the best evaluation)".to_string(),
            }
        };
        println!("best {metric} {best:.4} at update {step}; final model: {which}");
    }
    for r in &reports {
        println!(
            "{}: {} clips, accuracy {:.4}, macro-F1 {:.4}, loss {:.4}",
            r.split, r.n_examples, r.accuracy, r.macro_f1, r.loss
        );
    }
    println!(
        "model: {} (Hugging Face checkpoint); log: {}{}",
        a.out.display(),
        a.out.join(METRICS_FILE).display(),
        if reports.is_empty() {
            String::new()
        } else {
            format!("; report: {}", report_path.display())
        }
    );
    if a.export {
        println!(
            "onnx: {} (hearken classify --model {} FILE)",
            onnx_dir.display(),
            onnx_dir.display()
        );
    }
    Ok(())
}

/// The process's peak resident memory in MiB (`VmHWM`), where the system reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Removes what an earlier run left in `out` that this one might not overwrite: its
/// `checkpoints`, the report, the ONNX export and the curves.
fn clear_outputs(out: &Path, checkpoints: &[(usize, PathBuf)]) -> Result<()> {
    for (_, dir) in checkpoints {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let onnx = out.join("onnx");
    if onnx.is_dir() {
        std::fs::remove_dir_all(&onnx).with_context(|| format!("removing {}", onnx.display()))?;
    }
    for name in ["eval_report.json", "loss.png", "metrics.png"] {
        let path = out.join(name);
        if path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Converts the Hugging Face checkpoint `src` into the hearken model directory `out` at
/// `precision`, through `convert` and its parity gate: the one place training reaches the
/// exporter.
fn export_onnx(src: &Path, out: &Path, precision: &str) -> Result<()> {
    crate::convert(crate::ConvertArgs {
        src: src.to_path_buf(),
        out: out.to_path_buf(),
        precision: precision.to_string(),
        parity_audio: None,
        parity_tolerance: None,
        wer_manifest: None,
        no_wer_gate: false,
        allow_wer_increase: false,
    })
}
