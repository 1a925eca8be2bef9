//! Training: a generic loop apart from the task, after burn-train's `Learner`.
//!
//! This module holds what every training job shares; so far the optimizers ([`optim`]).

pub mod optim;

pub use optim::{Optimizer, OptimizerConfig, Param};
