//! The progress bar: updates done, loss, learning rate, throughput and ETA on stderr.
//!
//! Hidden when stderr is not a terminal (logs, CI, pipes) or when asked
//! (`disable_tqdm`), so a redirected run writes no control characters; warnings still go
//! to stderr, above the bar when it is shown.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over the updates of one run.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total_steps` updates, `done` of them already made (a resumed run), hidden
    /// when `hidden` or when stderr is not a terminal.
    pub fn new(total_steps: usize, done: usize, hidden: bool) -> Self {
        let visible = !hidden && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total_steps as u64), target);
        let style = ProgressStyle::with_template(
            "{wide_bar} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_position(done as u64);
        bar.reset_eta();
        Self { bar }
    }

    /// Whether the bar is drawn.
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Moves the bar to `step` updates, showing the last logged loss and the learning rate.
    pub fn update(&self, step: usize, loss: Option<f64>, lr: f64) {
        self.bar.set_position(step as u64);
        let loss = loss.map(|l| format!("loss {l:.4} ")).unwrap_or_default();
        self.bar.set_message(format!("{loss}lr {lr:.3e}"));
    }

    /// Prints a line above the bar; nothing when the bar is hidden.
    pub fn println(&self, line: &str) {
        if self.is_visible() {
            self.bar.println(line);
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
