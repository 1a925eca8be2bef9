//! An audio classifier on a live stream: sliding windows on the stream's clock (all
//! audio, or only VAD speech), probabilities smoothed across windows, and a `Label` event
//! when the smoothed best class changes, so that a label does not flicker between two
//! close classes from one window to the next.

use super::event::Event;
use crate::model::Model;
use crate::model::classify::AudioClassifier;
use crate::{Error, Result};

/// Live classification parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyStreamOptions {
    /// Window length, seconds.
    pub window_s: f32,
    /// Distance between window starts, seconds.
    pub hop_s: f32,
    /// Weight of the newest window in the exponential moving average of probabilities
    /// (1: no smoothing).
    pub smoothing: f32,
    /// A new label is reported only when its smoothed probability beats the current
    /// label's by this margin (hysteresis).
    pub switch_margin: f32,
    /// Classify only speech (windows inside VAD segments) rather than all audio.
    pub speech_only: bool,
}

impl Default for ClassifyStreamOptions {
    fn default() -> Self {
        ClassifyStreamOptions {
            window_s: 2.0,
            hop_s: 0.5,
            smoothing: 0.5,
            switch_margin: 0.1,
            speech_only: false,
        }
    }
}

impl ClassifyStreamOptions {
    /// Checks the ranges. Fails with [`Error::InvalidInput`].
    pub fn validate(&self) -> Result<()> {
        let pos = |x: f32| x > 0.0 && x.is_finite();
        if !(pos(self.window_s) && pos(self.hop_s) && self.hop_s <= self.window_s) {
            return Err(Error::invalid(
                "live classification windows",
                "0 < hop_s <= window_s",
                format!("window {} s, hop {} s", self.window_s, self.hop_s),
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(Error::invalid("smoothing", "in (0, 1]", self.smoothing));
        }
        if !(0.0..1.0).contains(&self.switch_margin) {
            return Err(Error::invalid(
                "switch_margin",
                "in [0, 1)",
                self.switch_margin,
            ));
        }
        Ok(())
    }
}

/// Per-stream classification state; positions are absolute samples.
pub(crate) struct ClassifyStage {
    model: Model,
    live: ClassifyStreamOptions,
    window: usize,
    hop: usize,
    /// Audio from `audio_start`.
    audio: Vec<f32>,
    audio_start: u64,
    /// Start of the next window.
    next: u64,
    /// Whether any window was classified since the last (re)start.
    any: bool,
    smoothed: Vec<f32>,
    current: Option<usize>,
    /// `speech_only`: inside a VAD segment.
    active: bool,
}

fn classifier_of(model: &Model) -> Result<&AudioClassifier> {
    model
        .as_classifier()
        .ok_or_else(|| Error::invalid("model", "an audio classifier", model.family().name()))
}

impl ClassifyStage {
    pub(crate) fn new(model: Model, live: &ClassifyStreamOptions) -> Result<Self> {
        live.validate()?;
        classifier_of(&model)?;
        let samples = |s: f32| ((f64::from(s) * 16_000.0).round() as usize).max(1);
        Ok(ClassifyStage {
            model,
            window: samples(live.window_s),
            hop: samples(live.hop_s),
            live: live.clone(),
            audio: Vec::new(),
            audio_start: 0,
            next: 0,
            any: false,
            smoothed: Vec::new(),
            current: None,
            active: !live.speech_only,
        })
    }

    fn end_abs(&self) -> u64 {
        self.audio_start + self.audio.len() as u64
    }

    /// Speech began at `start` with `audio` from there to now (`speech_only`).
    pub(crate) fn start(&mut self, start: u64, audio: Vec<f32>) {
        if self.live.speech_only {
            self.active = true;
            self.audio = audio;
            self.audio_start = start;
            self.next = start;
            self.any = false;
            self.smoothed.clear();
            self.current = None;
        }
    }

    /// New audio: classifies every window that is complete.
    pub(crate) fn audio(&mut self, samples: &[f32], out: &mut Vec<Event>) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        self.audio.extend_from_slice(samples);
        while self.end_abs() >= self.next + self.window as u64 {
            let a = self.next;
            self.classify(a, a + self.window as u64, out)?;
            self.next += self.hop as u64;
        }
        // Drop what no later window needs.
        let drop = (self.next.saturating_sub(self.audio_start) as usize).min(self.audio.len());
        self.audio.drain(..drop);
        self.audio_start += drop as u64;
        Ok(())
    }

    fn classify(&mut self, a: u64, b: u64, out: &mut Vec<Event>) -> Result<()> {
        let lo = (a - self.audio_start) as usize;
        let hi = (b - self.audio_start) as usize;
        let c = classifier_of(&self.model)?;
        let probs = c.probs(&self.audio[lo..hi])?;
        if self.smoothed.len() != probs.len() {
            self.smoothed = probs.clone();
        } else {
            let w = self.live.smoothing;
            for (s, p) in self.smoothed.iter_mut().zip(&probs) {
                *s = w * p + (1.0 - w) * *s;
            }
        }
        self.any = true;
        let best = self
            .smoothed
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1).then(y.0.cmp(&x.0)))
            .map(|(i, _)| i);
        let Some(best) = best else { return Ok(()) };
        let switch = match self.current {
            None => true,
            Some(cur) if cur == best => false,
            Some(cur) => self.smoothed[best] >= self.smoothed[cur] + self.live.switch_margin,
        };
        if switch {
            self.current = Some(best);
            out.push(Event::Label {
                label: c
                    .labels()
                    .get(best)
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{best}")),
                score: self.smoothed[best],
                start_s: a as f64 / 16_000.0,
                end_s: b as f64 / 16_000.0,
            });
        }
        Ok(())
    }

    /// Speech ended (`speech_only`) or the stream ends: audio that no full window
    /// covered is classified as one shorter window if nothing covered it at all.
    pub(crate) fn end(&mut self, out: &mut Vec<Event>) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        if !self.any && !self.audio.is_empty() {
            let (a, b) = (self.audio_start, self.end_abs());
            self.classify(a, b, out)?;
        }
        if self.live.speech_only {
            self.active = false;
            self.audio.clear();
        }
        Ok(())
    }

    /// Starts over with the stream's next sample at absolute position `at`.
    pub(crate) fn reset_at(&mut self, at: u64) {
        self.audio.clear();
        self.audio_start = at;
        self.next = at;
        self.any = false;
        self.smoothed.clear();
        self.current = None;
        self.active = !self.live.speech_only;
    }
}
