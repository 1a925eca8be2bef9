//! Training: a generic loop apart from the task, after burn-train's `Learner`.
//!
//! This module holds what every training job shares: the optimizers ([`optim`]), the
//! learning-rate schedules ([`schedule`]), gradient accumulation and clipping ([`grad`])
//! and the usual classification metrics ([`metrics`]).

pub mod grad;
pub mod metrics;
pub mod optim;
pub mod schedule;

pub use optim::{Optimizer, OptimizerConfig, Param};
pub use schedule::{LrSchedule, SchedulerType, Warmup};
