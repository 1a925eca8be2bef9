//! What a run shows while it trains: a progress bar on a terminal, plain lines elsewhere.
//!
//! On a terminal, an indicatif bar: updates done, loss, learning rate, throughput and
//! ETA, with evaluation results printed above it. When stderr is not a terminal (a log
//! file, CI, `nohup`), a bar would either be invisible or fill the log with control
//! characters, so the run prints one plain line per logged update instead (`step 40/1700
//! (epoch 0.47): loss 2.2871, lr 2.353e-4, 5.62 steps/s, ETA 5m 00s`), as Hugging Face's
//! Trainer prints its log dictionaries. `--no-progress` (`disable_tqdm`) silences both;
//! warnings always go to stderr, above the bar when it is shown.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug)]
enum Shown {
    /// A bar on the terminal.
    Bar,
    /// A line per logged update on stderr, with the rate measured from `start`.
    Lines {
        /// When this run (or resumed run) began updating.
        start: Instant,
        /// Updates already made when it began.
        first_step: usize,
    },
    /// Nothing but warnings.
    Off,
}

/// Progress over the updates of one run.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    shown: Shown,
    total: usize,
}

impl Progress {
    /// Progress for `total_steps` updates, `done` of them already made (a resumed run):
    /// nothing when `hidden`, a bar when stderr is a terminal, else lines.
    pub fn new(total_steps: usize, done: usize, hidden: bool) -> Self {
        let shown = if hidden {
            Shown::Off
        } else if std::io::stderr().is_terminal() {
            Shown::Bar
        } else {
            Shown::Lines {
                start: Instant::now(),
                first_step: done,
            }
        };
        let target = match shown {
            Shown::Bar => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        };
        let bar = ProgressBar::with_draw_target(Some(total_steps as u64), target);
        let style = ProgressStyle::with_template(
            "{wide_bar} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_position(done as u64);
        bar.reset_eta();
        Self {
            bar,
            shown,
            total: total_steps,
        }
    }

    /// Whether anything but warnings is shown.
    pub fn is_visible(&self) -> bool {
        !matches!(self.shown, Shown::Off)
    }

    /// Moves to `step` updates (at `epoch`), showing the last logged loss and the learning
    /// rate; `logged` says that this update logged its loss, which is when the line mode
    /// prints.
    pub fn update(&self, step: usize, epoch: f64, loss: Option<f64>, lr: f64, logged: bool) {
        self.bar.set_position(step as u64);
        let loss_text = loss.map(|l| format!("loss {l:.4}, ")).unwrap_or_default();
        match self.shown {
            Shown::Bar => self.bar.set_message(format!("{loss_text}lr {lr:.3e}")),
            Shown::Lines { start, first_step } if logged => {
                let rate = rate(step.saturating_sub(first_step), start.elapsed());
                let eta = match rate {
                    Some(r) if r > 0.0 => {
                        let left = self.total.saturating_sub(step) as f64 / r;
                        format!(", ETA {}", format_duration(Duration::from_secs_f64(left)))
                    }
                    _ => String::new(),
                };
                let rate = rate
                    .map(|r| format!(", {r:.2} steps/s"))
                    .unwrap_or_default();
                eprintln!(
                    "step {step}/{} (epoch {epoch:.2}): {loss_text}lr {lr:.3e}{rate}{eta}",
                    self.total
                );
            }
            _ => {}
        }
    }

    /// Prints a line (an evaluation's results, early stopping): above the bar, or as a
    /// line; nothing when progress is off.
    pub fn println(&self, line: &str) {
        match self.shown {
            Shown::Bar => self.bar.println(line),
            Shown::Lines { .. } => eprintln!("{line}"),
            Shown::Off => {}
        }
    }

    /// Prints a warning to stderr, above the bar when it is shown.
    pub fn warn(&self, message: &str) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
    }

    /// Leaves the bar at its last state.
    pub fn finish(&self) {
        self.bar.abandon();
    }
}

/// Updates per second over `elapsed`, when anything was measured.
fn rate(steps: usize, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (steps > 0 && secs > 0.0).then(|| steps as f64 / secs)
}

/// `1h 02m 03s`, `5m 00s` or `42s`.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, s) => format!("{h}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m 00s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h 02m 03s");
    }

    #[test]
    fn no_rate_before_the_first_update() {
        assert_eq!(rate(0, Duration::from_secs(3)), None);
        assert_eq!(rate(10, Duration::ZERO), None);
        assert_eq!(rate(10, Duration::from_secs(4)), Some(2.5));
    }
}
