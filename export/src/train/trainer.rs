//! The training loop, and the [`Task`] trait that separates it from the job.
//!
//! The loop follows Hugging Face's `Trainer` (`src/transformers/trainer.py`, v4.57,
//! `_inner_training_loop`) where a user would notice a difference:
//!
//! - An update is made from a group of `gradient_accumulation_steps` micro-batches (the
//!   last group of an epoch may be shorter). Each micro-batch's loss is divided by the size
//!   of its group before the backward pass and the gradients are summed, so an update
//!   follows the mean of its micro-batches' (mean) losses. With micro-batches of unequal
//!   size that is not the mean over the samples; it is what HF does when the model
//!   computes its own loss.
//! - The gradients are clipped to `max_grad_norm` (if > 0) before the update.
//! - Update k uses the schedule's learning rate at k - 1 (torch's `LambdaLR` stepped after
//!   the optimizer). The logged `lr` is the one update k used; HF logs the scheduler's
//!   value after stepping, i.e. the next update's.
//! - The logged `loss` at step k is the mean over the updates since the previous log of
//!   each update's mean micro-batch loss: with `logging_steps = 1`, the mean training loss
//!   of the micro-batches whose gradients made update k.
//! - Evaluation runs every `eval_steps`, at the end of every epoch and at the last update;
//!   metrics are logged with an `eval_` prefix. Early stopping is HF's
//!   `EarlyStoppingCallback`, counting evaluations without an improvement larger than
//!   `early_stopping_threshold` over the best metric so far.
//!
//! Every random choice (batch order, dropout, masking) comes from one [`ChaCha8Rng`]
//! seeded with `seed` and handed to the task. Checkpoints store its word position, so a
//! resumed run draws the same numbers as an uninterrupted one and its losses are equal
//! bit for bit. candle's own random tensors (`Tensor::rand`) use an unseeded generator;
//! tasks must not use them.

use std::any::Any;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, candle_err, io_err};
use crate::train::checkpoint::{
    self, ARGS_FILE, LogEntry, MODEL_FILE, OPTIMIZER_FILE, RngState, STATE_FILE, TrainerState,
};
use crate::train::grad;
use crate::train::optim::{Optimizer, OptimizerConfig, Param};
use crate::train::plot;
use crate::train::progress::Progress;
use crate::train::schedule::{LrSchedule, SchedulerType, Warmup};

/// Named metric values from an evaluation, e.g. `loss`, `accuracy`, `f1`.
pub type Metrics = BTreeMap<String, f64>;

/// The log the trainer writes in the output folder, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One training job: its data, its loss, its metrics and what it trains.
///
/// The trainer calls, per epoch, [`Task::train_batches`], then [`Task::loss`] on each
/// micro-batch in order, and [`Task::evaluate`] when an evaluation is due. A task holds its
/// model (whose variables [`Task::trainable`] hands out) and its datasets; a batch is
/// whatever the task needs to build its inputs, typically sample indices, so that an
/// epoch's plan is cheap to make and to rebuild on resume.
///
/// For an audio classifier: `Batch` is a list of clip indices; `loss` loads and pads the
/// clips, runs the model in training mode (dropout and SpecAugment masks drawn from `rng`)
/// and returns the mean cross-entropy; `evaluate` runs the eval split in eval mode and
/// returns `loss`, `accuracy` and `f1`. CTC and Whisper tasks differ only in their loss,
/// their batches (length-grouped) and their metrics (`wer`).
pub trait Task {
    /// A micro-batch as the task describes it.
    type Batch;

    /// The micro-batches of epoch `epoch` (from 0), in training order. `rng` is given when
    /// shuffling is on and is `None` when the data order must be kept; everything drawn
    /// from it here is reproduced on resume.
    fn train_batches(
        &mut self,
        epoch: usize,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Vec<Self::Batch>>;

    /// The training loss of one micro-batch: a tensor with one element (shape `()`),
    /// differentiable with respect to [`Task::trainable`], in training mode. Dropout,
    /// masking and any other randomness must be drawn from `rng`.
    fn loss(&mut self, batch: &Self::Batch, rng: &mut ChaCha8Rng) -> Result<Tensor>;

    /// A function that builds a micro-batch's inputs (reading, cropping, augmenting,
    /// padding) apart from the task, so that the trainer builds the next update's batches
    /// on another thread while the model computes, as a PyTorch `DataLoader` worker does.
    /// What it builds must depend on the batch alone (not on the model or `rng`), so that
    /// runs stay reproducible. `None`, the default: [`Task::loss`] builds them itself.
    fn loader(&self) -> Option<Loader<Self::Batch>> {
        None
    }

    /// The training loss of one micro-batch as data-parallel shards: losses of disjoint
    /// parts of the batch, each with its own graph, that sum to the batch's loss. The
    /// trainer runs their backward passes on as many threads and adds the gradients, as
    /// data-parallel training adds them over devices. `loaded` is what [`Task::loader`]
    /// built for `batch`, if it has one. The default: one shard, [`Task::loss_loaded`] or
    /// [`Task::loss`].
    fn loss_shards(
        &mut self,
        batch: &Self::Batch,
        loaded: Option<Loaded>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor>> {
        Ok(vec![match loaded {
            Some(inputs) => self.loss_loaded(batch, inputs, rng)?,
            None => self.loss(batch, rng)?,
        }])
    }

    /// [`Task::loss`] given the inputs its [`Task::loader`] built for `batch`; the default
    /// ignores them.
    fn loss_loaded(
        &mut self,
        batch: &Self::Batch,
        loaded: Loaded,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        drop(loaded);
        self.loss(batch, rng)
    }

    /// Evaluates the model in eval mode on the task's evaluation data. Names are given
    /// without prefix (`loss`, `accuracy`); the trainer logs them as `eval_loss`, ... An
    /// empty map means the task has nothing to evaluate.
    fn evaluate(&mut self) -> Result<Metrics>;

    /// The variables the optimizer updates, with unique names (as in the model's
    /// safetensors). Called once per run; the order is the optimizer's.
    fn trainable(&self) -> Vec<(String, Var)>;

    /// Writes the model's state into `dir` (a checkpoint, or the output folder at the
    /// end). The default writes the trainable variables to `model.safetensors`; a task with
    /// frozen weights it cannot rebuild, or a config to write, overrides it.
    fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save_vars(&self.trainable(), &dir.join(MODEL_FILE))
    }

    /// Reads back what [`Task::save`] wrote into `dir`.
    fn load(&mut self, dir: &Path) -> Result<()> {
        checkpoint::load_vars(&self.trainable(), &dir.join(MODEL_FILE))
    }
}

/// The gradients of each of `losses` divided by `n_group`, in order: the backward passes
/// run on one thread each when there are several.
fn backward_all(losses: Vec<Tensor>, n_group: usize) -> Result<Vec<GradStore>> {
    let backward = |loss: Tensor| {
        (loss / n_group as f64)
            .and_then(|l| l.backward())
            .map_err(candle_err("backward pass of the task loss"))
    };
    if losses.len() <= 1 {
        return losses.into_iter().map(backward).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = losses
            .into_iter()
            .map(|loss| scope.spawn(move || backward(loss)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| Error::InvalidInput {
                    what: "a backward pass".into(),
                    expected: "its thread to finish".into(),
                    got: "a panic".into(),
                })?
            })
            .collect()
    })
}

/// A micro-batch's inputs as a [`Task::loader`] builds them, for its
/// [`Task::loss_loaded`].
pub type Loaded = Box<dyn Any + Send>;

/// What [`Task::loader`] gives: builds the inputs of a micro-batch on any thread.
pub type Loader<B> = Arc<dyn Fn(&B) -> Result<Loaded> + Send + Sync>;

/// The optimizer, by Hugging Face's `optim` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optim {
    /// `adamw_torch`: torch's AdamW (HF's default).
    #[default]
    AdamwTorch,
    /// `sgd`: torch's SGD, with `sgd_momentum`.
    Sgd,
}

/// The configuration of a run, with Hugging Face `TrainingArguments` names and defaults.
///
/// Steps are updates (optimizer steps), not micro-batches. `None` switches a periodic
/// action off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingArguments {
    /// Where checkpoints, `metrics.jsonl`, the final model and the plots go.
    pub output_dir: PathBuf,
    /// Epochs to train when `max_steps` is not set; may be fractional.
    pub num_train_epochs: f64,
    /// Updates to make, overriding `num_train_epochs` (HF: `max_steps > 0`).
    pub max_steps: Option<usize>,
    /// The peak learning rate.
    pub learning_rate: f64,
    /// The learning-rate schedule.
    pub lr_scheduler_type: SchedulerType,
    /// Warmup as a fraction of all updates (used when `warmup_steps` is 0).
    pub warmup_ratio: f64,
    /// Warmup in updates; takes precedence over `warmup_ratio` when > 0.
    pub warmup_steps: usize,
    /// Micro-batches per update.
    pub gradient_accumulation_steps: usize,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub max_grad_norm: f64,
    /// The optimizer.
    pub optim: Optim,
    /// Weight decay (decoupled for AdamW, L2 for SGD); not applied to biases and norms.
    pub weight_decay: f64,
    /// AdamW's beta1.
    pub adam_beta1: f64,
    /// AdamW's beta2.
    pub adam_beta2: f64,
    /// AdamW's epsilon.
    pub adam_epsilon: f64,
    /// SGD's momentum (HF passes it through `optim_args`).
    pub sgd_momentum: f64,
    /// Log the training loss every this many updates (and at the last).
    pub logging_steps: usize,
    /// Evaluate every this many updates, besides every epoch end.
    pub eval_steps: Option<usize>,
    /// Write a checkpoint every this many updates.
    pub save_steps: Option<usize>,
    /// Keep at most this many checkpoints (the best one is kept besides).
    pub save_total_limit: Option<usize>,
    /// At the end, load the best checkpoint's model before saving the final model.
    pub load_best_model_at_end: bool,
    /// The metric that ranks checkpoints and drives early stopping (`eval_` is added when
    /// missing); default `loss`.
    pub metric_for_best_model: Option<String>,
    /// Whether a larger metric is better; default: unless the metric's name ends in `loss`.
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations in a row without improvement.
    pub early_stopping_patience: Option<usize>,
    /// How much the metric must improve to reset the patience.
    pub early_stopping_threshold: f64,
    /// Seed of the one random generator of the run.
    pub seed: u64,
    /// Shuffle the training data every epoch (HF's sampler does; no upstream field).
    pub shuffle: bool,
    /// Hide the progress bar.
    pub disable_tqdm: bool,
    /// Continue the run saved in this checkpoint folder.
    pub resume_from_checkpoint: Option<PathBuf>,
}

impl Default for TrainingArguments {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("trainer_output"),
            num_train_epochs: 3.0,
            max_steps: None,
            learning_rate: 5e-5,
            lr_scheduler_type: SchedulerType::Linear,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            gradient_accumulation_steps: 1,
            max_grad_norm: 1.0,
            optim: Optim::AdamwTorch,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            sgd_momentum: 0.0,
            logging_steps: 500,
            eval_steps: None,
            save_steps: Some(500),
            save_total_limit: None,
            load_best_model_at_end: false,
            metric_for_best_model: None,
            greater_is_better: None,
            early_stopping_patience: None,
            early_stopping_threshold: 0.0,
            seed: 42,
            shuffle: true,
            disable_tqdm: false,
            resume_from_checkpoint: None,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutput {
    /// Updates made, including those before a resume.
    pub global_step: usize,
    /// Mean training loss over all updates.
    pub training_loss: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The best value of the metric for the best model.
    pub best_metric: Option<f64>,
    /// The checkpoint with that value, if one was saved at that step.
    pub best_model_checkpoint: Option<PathBuf>,
    /// The last evaluation's metrics, `eval_`-prefixed.
    pub last_eval: Metrics,
    /// The warnings printed during the run.
    pub warnings: Vec<String>,
    /// The wall time of this run's updates, when it made more than
    /// [`UpdateTime::WARMUP_UPDATES`].
    pub update_time: Option<UpdateTime>,
}

/// The wall time of one update: getting its batches (built ahead on another thread when
/// the task has a [`Task::loader`], so this is the wait, if any; else built in place),
/// forward, loss, backward, accumulation, clipping and the optimizer step; evaluation,
/// logging and checkpoints are not in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateTime {
    /// The mean, in seconds.
    pub mean_s: f64,
    /// The median, in seconds.
    pub p50_s: f64,
    /// How many updates were measured.
    pub updates: usize,
}

impl UpdateTime {
    /// The first updates of a run, not measured: allocation and caches warm up in them.
    pub const WARMUP_UPDATES: usize = 5;

    /// The summary of `seconds` past the first [`Self::WARMUP_UPDATES`]; `None` when none
    /// is left.
    pub fn of(seconds: &[f64]) -> Option<Self> {
        let mut kept = seconds.get(Self::WARMUP_UPDATES..)?.to_vec();
        if kept.is_empty() {
            return None;
        }
        kept.sort_by(f64::total_cmp);
        let n = kept.len();
        let p50_s = if n % 2 == 1 {
            kept[n / 2]
        } else {
            (kept[n / 2 - 1] + kept[n / 2]) / 2.0
        };
        Some(UpdateTime {
            mean_s: kept.iter().sum::<f64>() / n as f64,
            p50_s,
            updates: n,
        })
    }
}

/// Runs a [`Task`] under [`TrainingArguments`].
#[derive(Debug, Clone)]
pub struct Trainer {
    args: TrainingArguments,
}

fn invalid(what: &str, expected: &str, got: impl ToString) -> Error {
    Error::InvalidInput {
        what: what.into(),
        expected: expected.into(),
        got: got.to_string(),
    }
}

impl Trainer {
    /// A trainer for `args`; fails on arguments that cannot make a run.
    pub fn new(args: TrainingArguments) -> Result<Self> {
        let a = &args;
        if !(a.learning_rate >= 0.0 && a.learning_rate.is_finite()) {
            return Err(invalid(
                "learning_rate",
                "a finite value >= 0",
                a.learning_rate,
            ));
        }
        if a.gradient_accumulation_steps == 0 {
            return Err(invalid("gradient_accumulation_steps", ">= 1", 0));
        }
        if a.logging_steps == 0 {
            return Err(invalid("logging_steps", ">= 1", 0));
        }
        for (name, v) in [
            ("eval_steps", a.eval_steps),
            ("save_steps", a.save_steps),
            ("save_total_limit", a.save_total_limit),
            ("early_stopping_patience", a.early_stopping_patience),
            ("max_steps", a.max_steps),
        ] {
            if v == Some(0) {
                return Err(invalid(name, ">= 1, or unset", 0));
            }
        }
        if !(0.0..=1.0).contains(&a.warmup_ratio) {
            return Err(invalid("warmup_ratio", "between 0 and 1", a.warmup_ratio));
        }
        if a.max_steps.is_none() && !(a.num_train_epochs > 0.0 && a.num_train_epochs.is_finite()) {
            return Err(invalid("num_train_epochs", "> 0", a.num_train_epochs));
        }
        if a.max_grad_norm.is_nan() || a.max_grad_norm < 0.0 {
            return Err(invalid(
                "max_grad_norm",
                ">= 0 (0: no clipping)",
                a.max_grad_norm,
            ));
        }
        if a.load_best_model_at_end {
            let Some(save) = a.save_steps else {
                return Err(invalid(
                    "save_steps",
                    "set when load_best_model_at_end is on",
                    "none",
                ));
            };
            if let Some(eval) = a.eval_steps
                && save % eval != 0
            {
                return Err(invalid(
                    "save_steps",
                    &format!("a multiple of eval_steps ({eval}) with load_best_model_at_end"),
                    save,
                ));
            }
        }
        let trainer = Self { args };
        trainer.optimizer_config().validate()?;
        Ok(trainer)
    }

    /// The arguments.
    pub fn args(&self) -> &TrainingArguments {
        &self.args
    }

    /// The optimizer the arguments describe.
    pub fn optimizer_config(&self) -> OptimizerConfig {
        let a = &self.args;
        match a.optim {
            Optim::AdamwTorch => OptimizerConfig::AdamW {
                beta1: a.adam_beta1,
                beta2: a.adam_beta2,
                eps: a.adam_epsilon,
                weight_decay: a.weight_decay,
            },
            Optim::Sgd => OptimizerConfig::Sgd {
                momentum: a.sgd_momentum,
                dampening: 0.0,
                weight_decay: a.weight_decay,
                nesterov: false,
            },
        }
    }

    /// The warmup the arguments describe (`warmup_steps` wins when > 0, as in HF).
    pub fn warmup(&self) -> Warmup {
        if self.args.warmup_steps > 0 {
            Warmup::Steps(self.args.warmup_steps)
        } else {
            Warmup::Ratio(self.args.warmup_ratio)
        }
    }

    /// The name of the metric that ranks checkpoints, `eval_`-prefixed.
    pub fn metric_key(&self) -> String {
        let name = self.args.metric_for_best_model.as_deref().unwrap_or("loss");
        if name.starts_with("eval_") {
            name.to_string()
        } else {
            format!("eval_{name}")
        }
    }

    fn greater_is_better(&self) -> bool {
        self.args
            .greater_is_better
            .unwrap_or_else(|| !self.metric_key().ends_with("loss"))
    }

    /// Whether a missing best-model metric is an error (something depends on it).
    fn needs_metric(&self) -> bool {
        let a = &self.args;
        a.load_best_model_at_end
            || a.early_stopping_patience.is_some()
            || a.metric_for_best_model.is_some()
    }

    /// The warnings for a run of `max_steps` updates: periodic actions that will never
    /// happen.
    pub fn warnings(&self, max_steps: usize) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(save) = self.args.save_steps
            && save > max_steps
        {
            out.push(format!(
                "save_steps ({save}) exceeds the total number of training steps ({max_steps}): \
                 no checkpoint will be written"
            ));
        }
        if let Some(eval) = self.args.eval_steps
            && eval > max_steps
        {
            out.push(format!(
                "eval_steps ({eval}) exceeds the total number of training steps ({max_steps}): \
                 evaluation only at epoch ends"
            ));
        }
        out
    }

    /// Trains `task`: from scratch, or from `resume_from_checkpoint`. At the end the model
    /// (the best checkpoint's with `load_best_model_at_end`) is saved into `output_dir`
    /// with the final `trainer_state.json`, and the curves are drawn.
    pub fn train<T: Task>(&self, task: &mut T) -> Result<TrainOutput>
    where
        T::Batch: Clone + Send + 'static,
    {
        let args = &self.args;
        let out_dir = &args.output_dir;
        std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;

        let params: Vec<Param> = task
            .trainable()
            .into_iter()
            .map(|(name, var)| Param::with_hf_decay(name, var))
            .collect();
        if params.is_empty() {
            return Err(invalid(
                "trainable variables of the task",
                "at least one",
                "none",
            ));
        }
        let mut optimizer = Optimizer::new(self.optimizer_config(), params)?;
        let vars = optimizer.vars();

        let resuming = args.resume_from_checkpoint.is_some();
        let (mut state, mut rng) = match &args.resume_from_checkpoint {
            Some(dir) => {
                let state = TrainerState::load(dir)?;
                task.load(dir)?;
                optimizer.load(&dir.join(OPTIMIZER_FILE))?;
                let rng = state.rng.restore(state.rng.epoch_start_word_pos)?;
                (state, rng)
            }
            None => {
                let rng = ChaCha8Rng::seed_from_u64(args.seed);
                (TrainerState::new(&rng), rng)
            }
        };
        let metrics_path = out_dir.join(METRICS_FILE);
        let mut log = MetricsLog::create(&metrics_path, &state.log_history)?;

        let mut epoch = state.epoch_index;
        let mut epoch_start = state.rng.epoch_start_word_pos;
        let mut batches = task.train_batches(epoch, args.shuffle.then_some(&mut rng))?;
        if batches.is_empty() {
            return Err(invalid("training batches of an epoch", "at least one", 0));
        }
        let mut micro = 0;
        if resuming {
            if state.micro_batches_done > batches.len() {
                return Err(invalid(
                    "micro-batches of the resumed epoch",
                    &format!("at least {} (as when saved)", state.micro_batches_done),
                    batches.len(),
                ));
            }
            micro = state.micro_batches_done;
            rng.set_word_pos(state.rng.word_pos);
        }

        let accumulation = args.gradient_accumulation_steps;
        let updates_per_epoch = batches.len().div_ceil(accumulation);
        let max_steps = args
            .max_steps
            .unwrap_or_else(|| (args.num_train_epochs * updates_per_epoch as f64).ceil() as usize);
        state.max_steps = max_steps;
        let schedule = LrSchedule::new(args.lr_scheduler_type, self.warmup(), max_steps);
        let progress = Progress::new(max_steps, state.global_step, args.disable_tqdm);
        let mut warnings = self.warnings(max_steps);
        for w in &warnings {
            progress.warn(w);
        }

        let mut stopped_early = false;
        let mut last_eval = Metrics::new();
        let mut last_loss = None;
        let mut update_seconds = Vec::new();
        let loader = task.loader();
        std::thread::scope(|scope| -> Result<()> {
            // The next update's inputs, being built on another thread: (its first micro-batch,
            // the builder).
            let mut pending: Option<(
                usize,
                std::thread::ScopedJoinHandle<'_, Result<Vec<Loaded>>>,
            )> = None;
            while state.global_step < max_steps {
                if micro >= batches.len() {
                    epoch += 1;
                    micro = 0;
                    epoch_start = rng.get_word_pos();
                    batches = task.train_batches(epoch, args.shuffle.then_some(&mut rng))?;
                    if batches.is_empty() {
                        return Err(invalid("training batches of an epoch", "at least one", 0));
                    }
                }
                let n_batches = batches.len();
                let group = micro..(micro + accumulation).min(n_batches);
                let n_group = group.len();

                let update_start = Instant::now();
                let loaded = match (&loader, pending.take()) {
                    (Some(_), Some((start, builder))) if start == group.start => {
                        Some(builder.join().map_err(|_| Error::InvalidInput {
                            what: "building a training batch".into(),
                            expected: "the batch builder to finish".into(),
                            got: "a panic".into(),
                        })??)
                    }
                    (Some(load), _) => Some(
                        batches[group.clone()]
                            .iter()
                            .map(|b| load(b))
                            .collect::<Result<Vec<_>>>()?,
                    ),
                    (None, _) => None,
                };
                if let Some(load) = &loader {
                    let next = group.end..(group.end + accumulation).min(n_batches);
                    if !next.is_empty() {
                        let load = Arc::clone(load);
                        let planned = batches[next.clone()].to_vec();
                        pending = Some((
                            next.start,
                            scope.spawn(move || planned.iter().map(|b| load(b)).collect()),
                        ));
                    }
                }
                let mut loaded = loaded.map(Vec::into_iter);
                let mut grads = GradStore::default();
                let mut loss_sum = 0.0;
                for batch in &batches[group.clone()] {
                    let inputs = loaded.as_mut().and_then(Iterator::next);
                    let losses = task.loss_shards(batch, inputs, &mut rng)?;
                    for loss in &losses {
                        loss_sum += scalar_value(loss)?;
                    }
                    for shard_grads in backward_all(losses, n_group)? {
                        grad::accumulate(&mut grads, &vars, shard_grads)?;
                    }
                }
                let grad_norm = if args.max_grad_norm > 0.0 {
                    grad::clip_grad_norm(&mut grads, &vars, args.max_grad_norm)?
                } else {
                    grad::global_norm(&grads, &vars)?
                };
                state.global_step += 1;
                let step = state.global_step;
                let lr = schedule.lr(args.learning_rate, step);
                optimizer.step(&grads, lr)?;
                drop(grads);
                update_seconds.push(update_start.elapsed().as_secs_f64());

                micro = group.end;
                state.epoch_index = epoch;
                state.micro_batches_done = micro;
                state.epoch = epoch as f64 + micro as f64 / n_batches as f64;
                let step_loss = loss_sum / n_group as f64;
                state.logging_loss_sum += step_loss;
                state.logging_loss_steps += 1;
                state.total_loss_sum += step_loss;

                let last = step >= max_steps;
                let mut logged = false;
                let mut entry = LogEntry::new();
                entry.insert("step".into(), step.into());
                entry.insert("epoch".into(), json_f64(state.epoch));
                if step % args.logging_steps == 0 || last {
                    let loss = state.logging_loss_sum / state.logging_loss_steps.max(1) as f64;
                    entry.insert("loss".into(), json_f64(loss));
                    entry.insert("lr".into(), json_f64(lr));
                    entry.insert("grad_norm".into(), json_f64(grad_norm));
                    state.logging_loss_sum = 0.0;
                    state.logging_loss_steps = 0;
                    last_loss = Some(loss);
                    logged = true;
                }
                let eval_due =
                    args.eval_steps.is_some_and(|k| step % k == 0) || micro == n_batches || last;
                if eval_due {
                    let metrics: Metrics = task
                        .evaluate()?
                        .into_iter()
                        .map(|(k, v)| (format!("eval_{k}"), v))
                        .collect();
                    if !metrics.is_empty() {
                        for (k, v) in &metrics {
                            entry.insert(k.clone(), json_f64(*v));
                        }
                        let line: Vec<String> =
                            metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                        progress.println(&format!("step {step}: {}", line.join(", ")));
                        stopped_early = self.record_eval(&mut state, &metrics)?;
                        last_eval = metrics;
                    }
                }
                if entry.len() > 2 {
                    log.write(&entry)?;
                    state.log_history.push(entry);
                }
                state.rng = RngState::capture(&rng, epoch_start);
                if args.save_steps.is_some_and(|k| step % k == 0) {
                    self.save_checkpoint(task, &optimizer, &mut state)?;
                }
                progress.update(step, state.epoch, last_loss, lr, logged);
                if stopped_early {
                    progress.println(&format!(
                        "early stopping at step {step}: {} did not improve in {} evaluations",
                        self.metric_key(),
                        state.early_stopping_patience_counter
                    ));
                    break;
                }
            }
            Ok(())
        })?;

        progress.finish();

        if args.load_best_model_at_end {
            match &state.best_model_checkpoint {
                // The last evaluation was the best: the weights in hand are the best model.
                // HF's `DefaultFlowCallback` saves a checkpoint at the last step, so there
                // its best checkpoint is this one; here no checkpoint may have been written
                // at that step, and an older best one must not replace it.
                _ if state.best_global_step == Some(state.global_step) => {}
                Some(dir) => task.load(dir)?,
                None => {
                    let w = "load_best_model_at_end: no checkpoint was saved at an evaluation; \
                             keeping the last weights"
                        .to_string();
                    progress.warn(&w);
                    warnings.push(w);
                }
            }
        }
        task.save(out_dir)?;
        checkpoint::write_json(&out_dir.join(STATE_FILE), &state)?;
        checkpoint::write_json(&out_dir.join(ARGS_FILE), args)?;
        if let Err(e) = plot::plot_metrics(&metrics_path, out_dir) {
            let w = format!("could not draw the training curves: {e}");
            progress.warn(&w);
            warnings.push(w);
        }

        Ok(TrainOutput {
            global_step: state.global_step,
            training_loss: state.total_loss_sum / state.global_step.max(1) as f64,
            stopped_early,
            best_metric: state.best_metric,
            best_model_checkpoint: state.best_model_checkpoint.clone(),
            last_eval,
            warnings,
            update_time: UpdateTime::of(&update_seconds),
        })
    }

    /// Updates the best metric and the early-stopping counter after an evaluation; returns
    /// whether training should stop.
    fn record_eval(&self, state: &mut TrainerState, metrics: &Metrics) -> Result<bool> {
        let key = self.metric_key();
        let Some(&value) = metrics.get(&key) else {
            if self.needs_metric() {
                let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                return Err(invalid(
                    "metric_for_best_model",
                    &format!("one of the evaluation's metrics {known:?}"),
                    key,
                ));
            }
            return Ok(false);
        };
        let greater = self.greater_is_better();
        let better = |a: f64, b: f64| if greater { a > b } else { a < b };
        let (improved, by_threshold) = match state.best_metric {
            _ if value.is_nan() => (false, false),
            None => (true, true),
            Some(best) => (
                better(value, best),
                better(value, best) && (value - best).abs() > self.args.early_stopping_threshold,
            ),
        };
        if improved {
            state.best_metric = Some(value);
            state.best_global_step = Some(state.global_step);
        }
        let Some(patience) = self.args.early_stopping_patience else {
            return Ok(false);
        };
        if by_threshold {
            state.early_stopping_patience_counter = 0;
        } else {
            state.early_stopping_patience_counter += 1;
        }
        Ok(state.early_stopping_patience_counter >= patience)
    }

    /// Writes `checkpoint-STEP` and drops the checkpoints past `save_total_limit`.
    fn save_checkpoint<T: Task>(
        &self,
        task: &T,
        optimizer: &Optimizer,
        state: &mut TrainerState,
    ) -> Result<()> {
        let out_dir = &self.args.output_dir;
        let dir = checkpoint::checkpoint_dir(out_dir, state.global_step);
        if state.best_global_step == Some(state.global_step) {
            state.best_model_checkpoint = Some(dir.clone());
            state.best_checkpoint_metric = state.best_metric;
        }
        checkpoint::write_atomically(&dir, |tmp| {
            task.save(tmp)?;
            optimizer.save(&tmp.join(OPTIMIZER_FILE))?;
            checkpoint::write_json(&tmp.join(STATE_FILE), state)?;
            checkpoint::write_json(&tmp.join(ARGS_FILE), &self.args)
        })?;
        if let Some(limit) = self.args.save_total_limit {
            checkpoint::rotate_checkpoints(out_dir, limit, state.best_model_checkpoint.as_deref())?;
        }
        Ok(())
    }
}

/// A JSON number, or `null` for NaN and infinities (which JSON cannot hold).
fn json_f64(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The value of a one-element loss tensor.
fn scalar_value(loss: &Tensor) -> Result<f64> {
    if loss.elem_count() != 1 {
        return Err(invalid(
            "task loss",
            "a tensor with one element",
            format!("shape {:?}", loss.dims()),
        ));
    }
    let values: Vec<f64> = loss
        .to_dtype(DType::F64)
        .and_then(|l| l.flatten_all())
        .and_then(|l| l.to_vec1())
        .map_err(candle_err("reading the task loss"))?;
    Ok(values.first().copied().unwrap_or(f64::NAN))
}

/// `metrics.jsonl`, rewritten from the log history on resume so that lines after the
/// checkpoint (from the run that stopped) do not stay behind.
struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    fn create(path: &Path, history: &[LogEntry]) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(io_err(path))?;
        let mut log = Self {
            path: path.to_path_buf(),
            file,
        };
        for entry in history {
            log.write(entry)?;
        }
        Ok(log)
    }

    fn write(&mut self, entry: &LogEntry) -> Result<()> {
        let line = serde_json::to_string(entry).map_err(|source| Error::Json {
            path: self.path.clone(),
            source,
        })?;
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(io_err(&self.path))
    }
}

#[cfg(test)]
mod tests;
