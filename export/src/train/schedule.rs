//! Learning-rate schedules: Hugging Face's `get_scheduler` family.
//!
//! A schedule is a multiplier of the base learning rate as a function of the number of
//! updates already made, exactly as transformers' `LambdaLR` lambdas
//! (`src/transformers/optimization.py`, v4.57). Like torch's `LambdaLR`, update 1 uses the
//! factor at 0 (so with warmup the first update has learning rate 0), update k the factor
//! at k - 1.
//!
//! The configuration names the kind ([`SchedulerType`], `lr_scheduler_type` upstream); the
//! trainer resolves it with the warmup and the number of updates into an [`LrSchedule`]
//! that carries its parameters.

use serde::{Deserialize, Serialize};

/// The schedule's kind, as Hugging Face's `lr_scheduler_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    /// Linear warmup, then linear decay to 0 at the last update (HF's default).
    #[default]
    Linear,
    /// Linear warmup, then half a cosine down to 0 at the last update.
    Cosine,
    /// The base learning rate throughout.
    Constant,
    /// Linear warmup, then the base learning rate.
    ConstantWithWarmup,
}

/// How long the warmup lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    /// A number of updates (`warmup_steps`).
    Steps(usize),
    /// A fraction of all updates (`warmup_ratio`), rounded up as transformers'
    /// `TrainingArguments.get_warmup_steps` does: `ceil(total * ratio)`.
    Ratio(f64),
}

impl Warmup {
    /// The warmup in updates, for a run of `total_steps` updates.
    pub fn steps(&self, total_steps: usize) -> usize {
        match *self {
            Self::Steps(n) => n,
            Self::Ratio(r) => (total_steps as f64 * r.max(0.0)).ceil() as usize,
        }
    }
}

/// A learning-rate schedule with its parameters resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// Factor 1 throughout (`get_constant_schedule`).
    Constant,
    /// `get_constant_schedule_with_warmup`.
    ConstantWithWarmup {
        /// Updates over which the factor rises linearly from 0 to 1.
        warmup_steps: usize,
    },
    /// `get_linear_schedule_with_warmup`.
    Linear {
        /// Updates over which the factor rises linearly from 0 to 1.
        warmup_steps: usize,
        /// Updates in the whole run; the factor reaches 0 there.
        total_steps: usize,
    },
    /// `get_cosine_schedule_with_warmup`.
    Cosine {
        /// Updates over which the factor rises linearly from 0 to 1.
        warmup_steps: usize,
        /// Updates in the whole run.
        total_steps: usize,
        /// Cosine periods after the warmup; HF's default 0.5 goes from 1 down to 0.
        num_cycles: f64,
    },
}

impl LrSchedule {
    /// Resolves a configured kind for a run of `total_steps` updates.
    pub fn new(kind: SchedulerType, warmup: Warmup, total_steps: usize) -> Self {
        let warmup_steps = warmup.steps(total_steps);
        match kind {
            SchedulerType::Constant => Self::Constant,
            SchedulerType::ConstantWithWarmup => Self::ConstantWithWarmup { warmup_steps },
            SchedulerType::Linear => Self::Linear {
                warmup_steps,
                total_steps,
            },
            SchedulerType::Cosine => Self::Cosine {
                warmup_steps,
                total_steps,
                num_cycles: 0.5,
            },
        }
    }

    /// The multiplier of the base learning rate after `step` updates (HF's `lr_lambda`).
    pub fn factor(&self, step: usize) -> f64 {
        let step_f = step as f64;
        let warmup = |warmup_steps: usize| step_f / warmup_steps.max(1) as f64;
        match *self {
            Self::Constant => 1.0,
            Self::ConstantWithWarmup { warmup_steps } => {
                if step < warmup_steps {
                    warmup(warmup_steps)
                } else {
                    1.0
                }
            }
            Self::Linear {
                warmup_steps,
                total_steps,
            } => {
                if step < warmup_steps {
                    return warmup(warmup_steps);
                }
                let left = total_steps as f64 - step_f;
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                (left / span).max(0.0)
            }
            Self::Cosine {
                warmup_steps,
                total_steps,
                num_cycles,
            } => {
                if step < warmup_steps {
                    return warmup(warmup_steps);
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = (step - warmup_steps) as f64 / span;
                let cos = (std::f64::consts::PI * num_cycles * 2.0 * progress).cos();
                (0.5 * (1.0 + cos)).max(0.0)
            }
        }
    }

    /// The learning rate of update `update` (1-based), for base learning rate `base`:
    /// `base * factor(update - 1)`.
    pub fn lr(&self, base: f64, update: usize) -> f64 {
        base * self.factor(update.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    // Expected values written out by hand from transformers' lr lambdas.

    #[test]
    fn train_schedule_linear_with_warmup() {
        let s = LrSchedule::new(SchedulerType::Linear, Warmup::Steps(10), 100);
        for (step, want) in [
            (0, 0.0),
            (1, 0.1),
            (5, 0.5),
            (10, 1.0),
            (11, 89.0 / 90.0),
            (55, 0.5),
            (99, 1.0 / 90.0),
            (100, 0.0),
            (130, 0.0),
        ] {
            close(s.factor(step), want);
        }
        close(s.lr(5e-5, 1), 0.0);
        close(s.lr(5e-5, 56), 2.5e-5);
    }

    #[test]
    fn train_schedule_linear_without_warmup() {
        let s = LrSchedule::new(SchedulerType::Linear, Warmup::Steps(0), 4);
        let got: Vec<f64> = (1..=4).map(|k| s.lr(1.0, k)).collect();
        assert_eq!(got, vec![1.0, 0.75, 0.5, 0.25]);
    }

    #[test]
    fn train_schedule_cosine_with_warmup() {
        let s = LrSchedule::new(SchedulerType::Cosine, Warmup::Steps(10), 110);
        close(s.factor(0), 0.0);
        close(s.factor(4), 0.4);
        close(s.factor(10), 1.0);
        // progress 1/4: (1 + cos(pi/4)) / 2
        close(s.factor(35), 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2));
        close(s.factor(60), 0.5);
        // progress 3/4: (1 + cos(3 pi/4)) / 2
        close(s.factor(85), 0.5 * (1.0 - std::f64::consts::FRAC_1_SQRT_2));
        close(s.factor(110), 0.0);
        // Past the end the cosine rises again; HF does not clamp the progress either.
        close(s.factor(160), 0.5);
    }

    #[test]
    fn train_schedule_constant_kinds() {
        let c = LrSchedule::new(SchedulerType::Constant, Warmup::Steps(10), 100);
        close(c.factor(0), 1.0);
        close(c.factor(1000), 1.0);
        let w = LrSchedule::new(SchedulerType::ConstantWithWarmup, Warmup::Steps(4), 100);
        let got: Vec<f64> = (0..7).map(|s| w.factor(s)).collect();
        assert_eq!(got, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn train_schedule_warmup_ratio_rounds_up() {
        assert_eq!(Warmup::Ratio(0.1).steps(95), 10);
        assert_eq!(Warmup::Ratio(0.1).steps(100), 10);
        assert_eq!(Warmup::Ratio(0.0).steps(100), 0);
        let s = LrSchedule::new(SchedulerType::Linear, Warmup::Ratio(0.1), 95);
        assert_eq!(
            s,
            LrSchedule::Linear {
                warmup_steps: 10,
                total_steps: 95
            }
        );
    }

    #[test]
    fn train_schedule_serde_names() {
        let k: SchedulerType = serde_json::from_str("\"constant_with_warmup\"").unwrap();
        assert_eq!(k, SchedulerType::ConstantWithWarmup);
        assert_eq!(
            serde_json::to_string(&SchedulerType::Cosine).unwrap(),
            "\"cosine\""
        );
    }
}
