//! Training: a generic loop apart from the task, after burn-train's `Learner`.
//!
//! The [`Trainer`] knows nothing of speech. It owns what every job shares: the optimizer
//! ([`optim`]), the learning-rate schedule ([`schedule`]), gradient accumulation and
//! clipping ([`grad`]), evaluation, logging, checkpoints that resume exactly
//! ([`checkpoint`]), early stopping, the progress bar ([`progress`]) and the curves
//! ([`plot`]). A [`Task`] says what is specific to one job: its batches, its loss, its
//! metrics ([`metrics`] has the usual ones) and its trainable variables.
//!
//! Configuration is [`TrainingArguments`], with Hugging Face's field names and defaults,
//! and the semantics of HF's `Trainer` where they matter for reproducing a run (loss
//! scaling under accumulation, schedule stepping, what is logged).
//!
//! The jobs themselves are in [`tasks`] (audio classification: [`tasks::classify`]).

pub mod checkpoint;
pub mod data;
pub mod grad;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod schedule;
pub mod tasks;
pub mod trainer;

#[cfg(test)]
pub(crate) mod toy;

pub use checkpoint::TrainerState;
pub use optim::{Optimizer, OptimizerConfig, Param};
pub use schedule::{LrSchedule, SchedulerType, Warmup};
pub use trainer::{Metrics, Optim, Task, TrainOutput, Trainer, TrainingArguments};
