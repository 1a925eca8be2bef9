//! Voice-activity endpointing: per-frame speech probabilities in, speech segments out.
//!
//! Why it is built this way:
//! - It is pure code over one number per frame (a VAD probability and the frame's RMS), so
//!   it is tested without a model, and any VAD (Silero, or [`EnergyVad`] in tract-only
//!   builds) can drive it.
//! - It runs online, one frame at a time, with all state explicit in [`Endpointer`], and
//!   the whole-signal [`segments`] is that same state machine run to the end: streaming
//!   equals offline by construction, and a property test checks both against a separate,
//!   declarative statement of the rules.
//! - The rules are those of Silero VAD's `get_speech_timestamps` (hysteresis between
//!   `threshold` and `neg_threshold`, minimum speech and silence, padding, a maximum
//!   length), restated on frames so that every decision is exact integer arithmetic.
//!   Durations in milliseconds become frames once, in [`Endpointer::new`]: minimums and
//!   pre-roll round up, the maximum rounds down. Where Silero cuts an over-long segment at
//!   its last pause, we cut at the quietest frame of its second half, which always exists.
//! - Memory is bounded by `max_speech_ms`: the only per-frame history kept is the RMS of
//!   the last `max_speech` frames, which a split needs to find the quietest frame.

use std::collections::VecDeque;

use crate::{Error, Result};

/// Endpointing parameters. Defaults (in brackets): thresholds and minimum speech as Silero
/// VAD's; longer silence and pre-roll than Silero's (100 ms, 30 ms), which suit recognition
/// better than tight cuts; a maximum under Whisper's 30 s window.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Outside speech, a frame with probability `>=` this starts a segment \[0.5\].
    pub threshold: f32,
    /// Inside speech, a frame with probability `<` this counts as silence \[0.35\].
    pub neg_threshold: f32,
    /// A segment is confirmed (its `Start` emitted) once it has lasted this long from its
    /// first speech frame, up to a frame that is not silence; shorter bursts are dropped
    /// silently \[250\].
    pub min_speech_ms: u32,
    /// Speech ends after this much continuous silence \[300\].
    pub min_silence_ms: u32,
    /// Audio kept before the first speech frame: the segment starts this much earlier, but
    /// never before the stream began nor before the previous segment's end \[300\].
    pub pre_roll_ms: u32,
    /// A segment that reaches this length is split at its quietest frame \[28 000\].
    pub max_speech_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 300,
            pre_roll_ms: 300,
            max_speech_ms: 28_000,
        }
    }
}

impl EndpointConfig {
    /// Checks `0 <= neg_threshold <= threshold <= 1`, `min_silence_ms > 0` and
    /// `max_speech_ms >= min_speech_ms + pre_roll_ms + min_silence_ms`. The last one makes a
    /// segment confirm before it can reach the maximum, so that a frame never yields more
    /// than two transitions. [`Endpointer::new`] checks it again in frames.
    pub fn validate(&self) -> Result<()> {
        let (t, neg, max) = (self.threshold, self.neg_threshold, self.max_speech_ms);
        if !(0.0..=1.0).contains(&t) {
            return Err(Error::invalid("endpoint threshold", "in [0, 1]", t));
        }
        if !(0.0..=t).contains(&neg) {
            let expected = format!("in [0, threshold = {t}]");
            return Err(Error::invalid("endpoint neg_threshold", expected, neg));
        }
        if self.min_silence_ms == 0 {
            return Err(Error::invalid("endpoint min_silence_ms", "> 0", 0));
        }
        let need = u64::from(self.min_speech_ms)
            + u64::from(self.pre_roll_ms)
            + u64::from(self.min_silence_ms);
        if u64::from(max) < need {
            let expected = format!(">= min_speech_ms + pre_roll_ms + min_silence_ms = {need}");
            return Err(Error::invalid("endpoint max_speech_ms", expected, max));
        }
        Ok(())
    }
}

/// A change of state, in frames from the start of the stream (frame `k` covers samples
/// `k * frame_samples .. (k + 1) * frame_samples`). Transitions alternate, `Start` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Speech began at `start_frame` (pre-roll included). Emitted when the segment is
    /// confirmed, `min_speech_ms` after its first speech frame (later if that frame is
    /// silence), or right after an `End` at the same frame for a split.
    Start {
        /// First frame of the segment.
        start_frame: u64,
    },
    /// Speech ended. Emitted `min_silence_ms` after the end, at a split, or by
    /// [`Endpointer::finish`].
    End {
        /// Exclusive: the first frame of the silence that ended the segment (not including
        /// the `min_silence_ms` wait); for a split, the quiet frame where the next begins.
        end_frame: u64,
    },
}

/// Durations of [`EndpointConfig`] in frames.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Frames {
    min_speech: u64,
    min_silence: u64,
    pre_roll: u64,
    max_speech: u64,
}

/// `ms` in frames of `frame_samples` at `sample_rate_hz`, rounded up or down, exactly.
fn ms_to_frames(ms: u32, frame_samples: usize, sample_rate_hz: u32, round_up: bool) -> u64 {
    let num = u128::from(ms) * u128::from(sample_rate_hz);
    let den = 1000 * frame_samples as u128;
    let frames = if round_up {
        num.div_ceil(den)
    } else {
        num / den
    };
    u64::try_from(frames).unwrap_or(u64::MAX)
}

/// NaN counts as no speech; anything else is clamped to [0, 1].
fn sanitize_prob(prob: f32) -> f32 {
    if prob.is_nan() {
        0.0
    } else {
        prob.clamp(0.0, 1.0)
    }
}

/// A NaN energy is never the quietest frame.
fn sanitize_rms(rms: f32) -> f32 {
    if rms.is_nan() { f32::INFINITY } else { rms }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    /// Speech began at `first_speech` but has not lasted `min_speech` yet.
    Candidate {
        first_speech: u64,
    },
    /// A confirmed segment is open; its `Start` was emitted.
    Speech {
        start: u64,
    },
}

/// Online endpointer: one [`push`](Self::push) per frame, transitions as they become
/// certain. Per-stream state; memory is bounded by `max_speech_ms`.
#[derive(Debug, Clone)]
pub struct Endpointer {
    config: EndpointConfig,
    frames: Frames,
    frame_samples: usize,
    sample_rate_hz: u32,
    state: State,
    /// Frames pushed since start or reset.
    n_frames: u64,
    /// Length of the run of silent frames ending at the last frame (inside speech only).
    silence_run: u64,
    /// End of the last segment, so that pre-roll never overlaps it.
    prev_end: u64,
    /// RMS of the last `min(n_frames, max_speech)` frames, oldest first.
    rms_history: VecDeque<f32>,
}

impl Endpointer {
    /// An endpointer for frames of `frame_samples` samples at `sample_rate_hz` (Silero VAD:
    /// 512 at 16 kHz, 32 ms). Fails if the config is invalid, a size is zero, or in frames
    /// `max_speech < min_speech + pre_roll + min_silence`.
    pub fn new(config: EndpointConfig, frame_samples: usize, sample_rate_hz: u32) -> Result<Self> {
        config.validate()?;
        if frame_samples == 0 {
            return Err(Error::invalid("endpoint frame_samples", "> 0", 0));
        }
        if sample_rate_hz == 0 {
            return Err(Error::invalid("endpoint sample_rate_hz", "> 0", 0));
        }
        let to_frames = |ms, up| ms_to_frames(ms, frame_samples, sample_rate_hz, up);
        let frames = Frames {
            min_speech: to_frames(config.min_speech_ms, true).max(1),
            min_silence: to_frames(config.min_silence_ms, true).max(1),
            pre_roll: to_frames(config.pre_roll_ms, true),
            max_speech: to_frames(config.max_speech_ms, false),
        };
        let need = frames.min_speech + frames.pre_roll + frames.min_silence;
        if frames.max_speech < need {
            return Err(Error::invalid(
                "endpoint max_speech_ms in frames",
                format!(">= min_speech + pre_roll + min_silence = {need} frames (rounded up)"),
                format!("{} frames", frames.max_speech),
            ));
        }
        Ok(Self {
            config,
            frames,
            frame_samples,
            sample_rate_hz,
            state: State::Idle,
            n_frames: 0,
            silence_run: 0,
            prev_end: 0,
            rms_history: VecDeque::new(),
        })
    }

    /// Feeds the next frame's speech probability (NaN counts as 0, clamped to [0, 1]) and
    /// its energy (RMS of the frame in any unit, only compared within a segment; NaN is
    /// never the quietest); appends 0, 1 or 2 transitions to `out` (a split gives `End`
    /// then `Start` at the same frame).
    pub fn push(&mut self, prob: f32, rms: f32, out: &mut Vec<Transition>) {
        let p = sanitize_prob(prob);
        let frame = self.n_frames;
        self.n_frames += 1;
        if self.rms_history.len() as u64 >= self.frames.max_speech {
            self.rms_history.pop_front();
        }
        self.rms_history.push_back(sanitize_rms(rms));

        let silent = p < self.config.neg_threshold;
        if self.state == State::Idle {
            if p < self.config.threshold {
                return;
            }
            self.state = State::Candidate {
                first_speech: frame,
            };
            self.silence_run = 0;
        } else {
            self.silence_run = if silent { self.silence_run + 1 } else { 0 };
            if self.silence_run >= self.frames.min_silence {
                let end = frame + 1 - self.silence_run;
                if matches!(self.state, State::Speech { .. }) {
                    out.push(Transition::End { end_frame: end });
                    self.prev_end = end;
                }
                self.state = State::Idle;
                return;
            }
        }
        // A silent frame cannot confirm: the silence it starts may turn out to end the
        // segment, and then the burst before it was shorter than `min_speech`.
        if let State::Candidate { first_speech } = self.state
            && !silent
            && frame + 1 - first_speech >= self.frames.min_speech
        {
            self.confirm(first_speech, out);
        }
        if let State::Speech { start } = self.state
            && frame + 1 - start >= self.frames.max_speech
        {
            self.split(start, out);
        }
    }

    fn confirm(&mut self, first_speech: u64, out: &mut Vec<Transition>) {
        let start = first_speech
            .saturating_sub(self.frames.pre_roll)
            .max(self.prev_end);
        out.push(Transition::Start { start_frame: start });
        self.state = State::Speech { start };
    }

    /// Splits the open segment, which has just reached `max_speech` frames, at the quietest
    /// frame of its second half. Frames of the silence run in progress are not candidates:
    /// the new segment would begin inside a silence that may end it before any speech. If
    /// that run covers the whole second half (only when `min_silence > max_speech / 2`),
    /// the segment ends where it began, as if the silence had been long enough.
    fn split(&mut self, start: u64, out: &mut Vec<Transition>) {
        let last = self.n_frames - 1;
        let lo = start + (last + 1 - start) / 2;
        let hi = last.saturating_sub(self.silence_run);
        if hi < lo {
            let end = hi + 1;
            out.push(Transition::End { end_frame: end });
            self.prev_end = end;
            self.state = State::Idle;
            return;
        }
        let first_kept = self.n_frames - self.rms_history.len() as u64;
        let mut quietest = (f32::INFINITY, hi);
        for frame in lo..=hi {
            let rms = usize::try_from(frame - first_kept)
                .ok()
                .and_then(|i| self.rms_history.get(i).copied())
                .unwrap_or(f32::INFINITY);
            if rms <= quietest.0 {
                quietest = (rms, frame);
            }
        }
        let cut = quietest.1;
        out.push(Transition::End { end_frame: cut });
        out.push(Transition::Start { start_frame: cut });
        self.prev_end = cut;
        self.state = State::Speech { start: cut };
    }

    /// End of input: closes an open segment where its trailing silence began, or at
    /// `n_frames` if the last frame was not silence. A burst not yet confirmed is emitted
    /// (`Start` then `End`) if it lasted `min_speech` by that end, else dropped. Leaves the
    /// endpointer idle; pushing more continues the same stream.
    pub fn finish(&mut self, out: &mut Vec<Transition>) {
        let end = self.n_frames - self.silence_run;
        match self.state {
            State::Idle => {}
            State::Candidate { first_speech } => {
                if end.saturating_sub(first_speech) >= self.frames.min_speech {
                    self.confirm(first_speech, out);
                    out.push(Transition::End { end_frame: end });
                    self.prev_end = end;
                }
            }
            State::Speech { .. } => {
                out.push(Transition::End { end_frame: end });
                self.prev_end = end;
            }
        }
        self.state = State::Idle;
        self.silence_run = 0;
    }

    /// Forgets the stream: frame numbering restarts at 0.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.n_frames = 0;
        self.silence_run = 0;
        self.prev_end = 0;
        self.rms_history.clear();
    }

    /// Whether a confirmed segment is open (its `Start` was emitted, its `End` not yet).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Frames pushed since creation or the last [`reset`](Self::reset).
    pub fn n_frames(&self) -> u64 {
        self.n_frames
    }

    /// Seconds from the start of the stream to the start of frame `frames`.
    pub fn frames_to_s(&self, frames: u64) -> f64 {
        frames as f64 * self.frame_samples as f64 / f64::from(self.sample_rate_hz)
    }
}

/// The whole-signal version: runs an [`Endpointer`] over all frames (`probs[k]`, `rms[k]`;
/// a missing `rms` counts as NaN), then [`Endpointer::finish`]. Returns `(start_frame,
/// end_frame)` pairs, end exclusive, exactly the segments the streaming version gives.
pub fn segments(
    probs: &[f32],
    rms: &[f32],
    config: &EndpointConfig,
    frame_samples: usize,
    sample_rate_hz: u32,
) -> Result<Vec<(u64, u64)>> {
    let mut endpointer = Endpointer::new(config.clone(), frame_samples, sample_rate_hz)?;
    let mut transitions = Vec::new();
    for (k, &p) in probs.iter().enumerate() {
        endpointer.push(p, rms.get(k).copied().unwrap_or(f32::NAN), &mut transitions);
    }
    endpointer.finish(&mut transitions);
    let mut out = Vec::new();
    let mut open = None;
    for t in transitions {
        match t {
            Transition::Start { start_frame } => open = Some(start_frame),
            Transition::End { end_frame } => out.extend(open.take().map(|s| (s, end_frame))),
        }
    }
    Ok(out)
}

/// RMS of a frame after removing its mean (DC); 0 for an empty frame.
pub fn frame_rms(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let n = frame.len() as f64;
    let mean = frame.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let power = frame
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    power.sqrt() as f32
}

/// Samples per block of the noise-floor minimum: 0.5 s at 16 kHz.
const FLOOR_BLOCK_SAMPLES: usize = 8_000;
/// Completed blocks remembered: with the block in progress the floor is the minimum of the
/// last 2 to 2.5 s. Long enough that speech, which dips between syllables and words at
/// least that often, is never absorbed into the floor; short enough that a new, louder
/// background is learnt within 2.5 s.
const FLOOR_N_BLOCKS: usize = 4;
/// Frames below this level, dBFS, carry no news of the background (digital zeros, a bare DC
/// offset; 16-bit rounding noise is -101 dBFS): they score 0 and leave the floor alone.
/// Were they counted, a microphone that starts with zeros would hold the floor down for a
/// whole window, and the room noise that follows would score as speech.
const DIGITAL_SILENCE_DB: f32 = -90.0;
/// Lowest floor, dBFS: about the background of a quiet room through a good microphone, so
/// that in such a room faint sounds a few dB above it do not score as speech.
const FLOOR_MIN_DB: f32 = -65.0;
/// Level above the floor where the score is 0.5, dB. The floor is a minimum, so stationary
/// noise sits about 1 dB above it (frame-level spread of white noise over 512 samples is
/// ~0.3 dB) and coloured noise a few dB; voiced speech is 15-40 dB above.
const SPEECH_MARGIN_DB: f32 = 9.0;
/// Scale of the logistic, dB: the score goes from 0.12 at 5 dB to 0.88 at 13 dB above the
/// floor, so Silero's 0.5 / 0.35 hysteresis works on it unchanged.
const SPEECH_SLOPE_DB: f32 = 2.0;

/// A speech probability from frame energy alone, for builds where Silero VAD cannot run
/// (tract-only). Removes the frame's DC offset, measures RMS in dBFS, keeps an adaptive
/// noise floor (a running minimum over the last 2-2.5 s, so it follows a louder
/// background within that time and falls at once to a quieter one), and maps
/// (level - floor) to [0, 1] with a logistic curve. Time constants assume 16 kHz samples.
/// The floor starts at the first audible frame's level, so speech from the very start
/// scores low until its first pause (the endpointer's pre-roll recovers that audio).
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// Minimum level of each completed block, dBFS; ring of `FLOOR_N_BLOCKS`.
    block_min_db: [f32; FLOOR_N_BLOCKS],
    next_block: usize,
    /// Minimum level of the block in progress, dBFS.
    current_min_db: f32,
    current_samples: usize,
}

impl Default for EnergyVad {
    fn default() -> Self {
        Self::new()
    }
}

impl EnergyVad {
    /// A detector with no history.
    pub fn new() -> Self {
        Self {
            block_min_db: [f32::INFINITY; FLOOR_N_BLOCKS],
            next_block: 0,
            current_min_db: f32::INFINITY,
            current_samples: 0,
        }
    }

    /// Probability-like speech score for one frame of samples in [-1, 1] (any length;
    /// Silero's 512 keeps the documented spreads). A frame with non-finite samples scores
    /// as silence.
    pub fn push_frame(&mut self, frame: &[f32]) -> f32 {
        let rms = frame_rms(frame);
        let rms = if rms.is_finite() { rms } else { 0.0 };
        let level_db = 20.0 * rms.max(1e-6).log10();
        if level_db >= DIGITAL_SILENCE_DB {
            self.current_min_db = self.current_min_db.min(level_db);
        }
        let floor_db = self
            .block_min_db
            .iter()
            .fold(self.current_min_db, |a, &b| a.min(b))
            .max(FLOOR_MIN_DB);
        self.current_samples += frame.len();
        if self.current_samples >= FLOOR_BLOCK_SAMPLES {
            self.block_min_db[self.next_block] = self.current_min_db;
            self.next_block = (self.next_block + 1) % FLOOR_N_BLOCKS;
            self.current_min_db = f32::INFINITY;
            self.current_samples = 0;
        }
        let x = (level_db - floor_db - SPEECH_MARGIN_DB) / SPEECH_SLOPE_DB;
        1.0 / (1.0 + (-x).exp())
    }

    /// Forgets the noise floor.
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 10 ms frames, so that test configs read in frames.
    const FS: usize = 160;
    const SR: u32 = 16_000;
    const END: fn(u64) -> Transition = |end_frame| Transition::End { end_frame };
    const START: fn(u64) -> Transition = |start_frame| Transition::Start { start_frame };

    /// A config with durations given in 10 ms frames.
    fn cfg(min_speech: u32, min_silence: u32, pre_roll: u32, max_speech: u32) -> EndpointConfig {
        EndpointConfig {
            min_speech_ms: 10 * min_speech,
            min_silence_ms: 10 * min_silence,
            pre_roll_ms: 10 * pre_roll,
            max_speech_ms: 10 * max_speech,
            ..EndpointConfig::default()
        }
    }

    /// `(probability, n_frames)` runs, expanded.
    fn runs(parts: &[(f32, usize)]) -> Vec<f32> {
        let run = |&(p, n): &(f32, usize)| std::iter::repeat_n(p, n);
        parts.iter().flat_map(run).collect()
    }

    /// Segments of 10 ms frames with a flat energy.
    fn segs(config: &EndpointConfig, parts: &[(f32, usize)]) -> Vec<(u64, u64)> {
        segments(&runs(parts), &[1.0; 4096], config, FS, SR).unwrap()
    }

    /// Every transition with the index of the frame whose push emitted it (`n` for finish).
    fn stream(ep: &mut Endpointer, probs: &[f32], rms: &[f32]) -> Vec<(u64, Transition)> {
        let (mut all, mut out) = (Vec::new(), Vec::new());
        for (k, (&p, &r)) in probs.iter().zip(rms).enumerate() {
            ep.push(p, r, &mut out);
            all.extend(out.drain(..).map(|t| (k as u64, t)));
        }
        ep.finish(&mut out);
        all.extend(out.drain(..).map(|t| (probs.len() as u64, t)));
        all
    }

    #[test]
    fn hysteresis_between_thresholds() {
        // 0.4 is below `threshold` (no start) but above `neg_threshold` (no end).
        let probs = runs(&[(0.4, 10), (0.6, 10), (0.4, 5), (0.1, 3), (0.4, 10)]);
        let mut ep = Endpointer::new(cfg(5, 3, 2, 100), FS, SR).unwrap();
        let got = stream(&mut ep, &probs, &[1.0; 38]);
        assert_eq!(got, [(14, START(8)), (27, END(25))]);
    }

    #[test]
    fn bursts_shorter_than_min_speech_are_dropped() {
        let config = EndpointConfig::default(); // 32 ms frames: min speech 8, pre-roll 10
        let seg = |n| {
            let probs = runs(&[(0.0, 20), (0.9, n), (0.0, 20)]);
            segments(&probs, &[], &config, 512, SR).unwrap() // missing energies are NaN
        };
        assert_eq!(seg(3), []);
        assert_eq!(seg(7), []);
        assert_eq!(seg(8), [(10, 28)]);
        // Short silences inside a burst count towards min speech; one that ends it does not.
        let config = cfg(5, 3, 0, 100);
        let inner_gap = [(0.9, 3), (0.1, 2), (0.9, 1), (0.1, 9)];
        assert_eq!(segs(&config, &inner_gap), [(0, 6)]);
        assert_eq!(segs(&config, &[(0.9, 3), (0.1, 9)]), []);
    }

    #[test]
    fn min_silence_ends_speech_at_its_first_frame() {
        let parts = [
            (0.9, 10),
            (0.1, 2),
            (0.9, 10),
            (0.1, 3),
            (0.9, 10),
            (0.1, 5),
        ];
        assert_eq!(segs(&cfg(5, 3, 0, 100), &parts), [(0, 22), (25, 35)]);
    }

    #[test]
    fn pre_roll_is_clamped_at_zero_and_at_the_previous_end() {
        let parts = [(0.1, 2), (0.9, 10), (0.1, 3), (0.9, 10), (0.1, 3)];
        assert_eq!(segs(&cfg(3, 3, 5, 100), &parts), [(0, 12), (12, 25)]);
        assert_eq!(segs(&cfg(3, 3, 1, 100), &parts), [(1, 12), (14, 25)]);
    }

    #[test]
    fn long_segment_is_split_at_the_quietest_frame_of_its_second_half() {
        let probs = runs(&[(0.1, 10), (0.9, 200), (0.1, 5)]);
        let mut rms = vec![1.0; probs.len()];
        rms[20] = 0.01; // quieter, but in the first half
        (rms[70], rms[80]) = (0.1, 0.1); // a tie: the latest wins
        let mut ep = Endpointer::new(cfg(5, 3, 2, 100), FS, SR).unwrap();
        let got = stream(&mut ep, &probs, &rms);
        assert_eq!(got[1..3], [(107, END(80)), (107, START(80))]);
        let want = [(8, 80), (80, 179), (179, 210)];
        assert_eq!(segments(&probs, &rms, &ep.config, FS, SR).unwrap(), want);
    }

    #[test]
    fn split_does_not_cut_inside_a_pause_in_progress() {
        // At frame 39 the segment reaches 40 frames during a pause (35..43) whose frames
        // are the quietest; the cut goes to the quietest frame before the pause instead.
        let probs = runs(&[(0.9, 35), (0.1, 8), (0.9, 10), (0.1, 10)]);
        let mut rms: Vec<f32> = probs
            .iter()
            .map(|&p| if p > 0.5 { 1.0 } else { 0.0 })
            .collect();
        rms[25] = 0.5;
        let got = segments(&probs, &rms, &cfg(5, 10, 0, 40), FS, SR).unwrap();
        assert_eq!(got, [(0, 25), (25, 53)]);
    }

    #[test]
    fn finish_closes_confirmed_and_drops_unconfirmed() {
        let config = cfg(5, 3, 0, 100);
        let mut ep = Endpointer::new(config.clone(), FS, SR).unwrap();
        assert_eq!(
            stream(&mut ep, &[0.9; 10], &[1.0; 10]).last(),
            Some(&(10, END(10)))
        );
        assert!(!ep.in_speech());
        let mut out = Vec::new();
        ep.finish(&mut out);
        assert_eq!(out, []);
        // A trailing silence shorter than min silence is not part of the segment.
        assert_eq!(segs(&config, &[(0.9, 10), (0.1, 2)]), [(0, 10)]);
        assert_eq!(segs(&config, &[(0.1, 5), (0.9, 3)]), []);
        assert_eq!(segs(&config, &[(0.1, 5), (0.9, 5)]), [(5, 10)]);
    }

    #[test]
    fn nan_is_silence_and_probabilities_are_clamped() {
        let config = cfg(5, 3, 0, 100);
        assert_eq!(segs(&config, &[(f32::NAN, 20)]), []);
        assert_eq!(
            segs(&config, &[(0.9, 10), (f32::NAN, 3), (0.9, 1)]),
            [(0, 10)]
        );
        assert_eq!(segs(&config, &[(7.0, 10), (-3.0, 3)]), [(0, 10)]);
        let nan_rms = segments(&[0.9; 10], &[f32::NAN; 10], &config, FS, SR);
        assert_eq!(nan_rms.unwrap(), [(0, 10)]);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad: [fn(&mut EndpointConfig); 6] = [
            |c| c.threshold = 1.5,
            |c| c.threshold = f32::NAN,
            |c| c.neg_threshold = 0.6,
            |c| c.neg_threshold = -0.1,
            |c| c.min_silence_ms = 0,
            |c| c.max_speech_ms = 849,
        ];
        for edit in bad {
            let mut c = EndpointConfig::default();
            edit(&mut c);
            assert!(c.validate().is_err(), "{c:?}");
        }
        let d = EndpointConfig::default();
        assert!(d.validate().is_ok());
        assert!(Endpointer::new(d.clone(), 0, SR).is_err());
        assert!(Endpointer::new(d.clone(), 512, 0).is_err());
        // Valid in ms, but in 32 ms frames 8 + 10 + 10 > floor(851 / 32).
        let rounded = EndpointConfig {
            max_speech_ms: 851,
            ..d
        };
        assert!(Endpointer::new(rounded, 512, SR).is_err());
    }

    #[test]
    fn counters_and_bounded_memory() {
        let mut ep = Endpointer::new(EndpointConfig::default(), 512, SR).unwrap();
        let mut out = Vec::new();
        for _ in 0..20_000 {
            ep.push(0.9, 1.0, &mut out);
        }
        assert!(ep.in_speech());
        assert_eq!((ep.n_frames(), ep.rms_history.len()), (20_000, 875));
        assert!((ep.frames_to_s(100) - 3.2).abs() < 1e-12);
        ep.reset();
        assert_eq!((ep.n_frames(), ep.in_speech()), (0, false));
    }

    /// The rules stated over the whole signal, without a state machine. Valid when
    /// `min_silence <= max_speech - max_speech / 2`: a split then always finds a frame
    /// before the silence run in progress.
    fn reference(probs: &[f32], rms: &[f32], c: &EndpointConfig, f: Frames) -> Vec<(u64, u64)> {
        let p: Vec<f32> = probs.iter().map(|&p| sanitize_prob(p)).collect();
        let silent: Vec<bool> = p.iter().map(|&p| p < c.neg_threshold).collect();
        let [min_speech, min_silence, pre_roll, m] =
            [f.min_speech, f.min_silence, f.pre_roll, f.max_speech].map(|x| x as usize);
        let (n, mut out, mut prev_end, mut i) = (p.len(), Vec::new(), 0, 0);
        while i < n {
            if p[i] < c.threshold {
                i += 1;
                continue;
            }
            // The first run of `min_silence` silent frames ends the segment; the frame that
            // completes it is where `End` is emitted (no split from there on).
            let (first, mut run_start, mut ended) = (i, None, None);
            for (j, &s) in silent.iter().enumerate().skip(first + 1) {
                if !s {
                    run_start = None;
                } else if j + 1 - *run_start.get_or_insert(j) >= min_silence {
                    ended = run_start.map(|r| (r, j));
                    break;
                }
            }
            let (end, emitted_at) = ended.unwrap_or((run_start.unwrap_or(n), n));
            if end - first >= min_speech {
                let mut start = first.saturating_sub(pre_roll).max(prev_end);
                while start + m - 1 < emitted_at {
                    let last = start + m - 1;
                    let pause = silent[..=last].iter().rev().take_while(|&&s| s).count();
                    let by_rms = |&a: &usize, &b: &usize| {
                        sanitize_rms(rms[a]).total_cmp(&sanitize_rms(rms[b]))
                    };
                    let q = (start + m / 2..=last - pause).rev().min_by(by_rms).unwrap();
                    out.push((start as u64, q as u64));
                    start = q;
                }
                out.push((start as u64, end as u64));
                prev_end = end;
            }
            i = emitted_at + 1;
        }
        out
    }

    proptest! {
        #[test]
        fn streaming_matches_segments_and_rules(
            parts in prop::collection::vec((prop_oneof![
                0.0f32..0.35, 0.3f32..0.55, 0.5f32..1.0, Just(f32::NAN), -1.0f32..2.0
            ], 1usize..40), 0..150),
            rms in prop::collection::vec(prop_oneof![9 => 0.0f32..1.0, 1 => Just(f32::NAN)], 3000),
            (t0, t1) in (0.0f32..=1.0, 0.0f32..=1.0),
            (min_speech, min_silence, pre_roll, extra) in (0u32..20, 1u32..30, 0u32..20, 0u32..200),
            frame_ms in prop_oneof![Just(10u32), Just(32)],
        ) {
            let mut probs = runs(&parts);
            probs.truncate(3000);
            let rms = &rms[..probs.len()];
            let (frame_samples, ms) = (16 * frame_ms as usize, |frames: u32| frames * frame_ms);
            let config = EndpointConfig {
                threshold: t0.max(t1),
                neg_threshold: t0.min(t1),
                min_speech_ms: ms(min_speech),
                min_silence_ms: ms(min_silence),
                pre_roll_ms: ms(pre_roll),
                max_speech_ms: ms(min_speech.max(1) + min_silence + pre_roll + extra),
            };
            let mut ep = Endpointer::new(config.clone(), frame_samples, SR).unwrap();
            let f = ep.frames;
            let got = stream(&mut ep, &probs, rms);
            ep.reset();
            prop_assert_eq!(&stream(&mut ep, &probs, rms), &got);

            // Pair transitions into (start, end, begun by a split, ended by a split). Two
            // transitions from one push are a split: `End` then `Start` at the same frame.
            let split = |k: usize| k + 1 < got.len() && got[k].0 == got[k + 1].0;
            let (mut segs, mut open) = (Vec::new(), None);
            for (k, &(_, t)) in got.iter().enumerate() {
                match t {
                    Transition::Start { start_frame } => {
                        prop_assert!(open.is_none());
                        open = Some((start_frame, k > 0 && split(k - 1)));
                    }
                    Transition::End { end_frame } => {
                        prop_assert!(!split(k) || got[k + 1].1 == START(end_frame));
                        let Some((start, begun)) = open.take() else { panic!("{got:?}") };
                        segs.push((start, end_frame, begun, split(k)));
                    }
                }
            }
            prop_assert!(open.is_none());
            let pairs: Vec<(u64, u64)> = segs.iter().map(|s| (s.0, s.1)).collect();
            prop_assert_eq!(&segments(&probs, rms, &config, frame_samples, SR).unwrap(), &pairs);

            // Ordered, disjoint, shorter than max_speech. Pre-roll only lengthens a segment,
            // so one begun by confirmation lasts min_speech; a split's first part lasts half
            // the maximum; the remainder of a split may be as short as one frame.
            let mut prev_end = 0;
            for &(start, end, begun_by_split, ended_by_split) in &segs {
                prop_assert!(prev_end <= start && start < end && end <= probs.len() as u64);
                let min_len = match (begun_by_split, ended_by_split) {
                    (_, true) => f.max_speech / 2,
                    (true, false) => 1,
                    (false, false) => f.min_speech,
                };
                prop_assert!((min_len..f.max_speech).contains(&(end - start)));
                prev_end = end;
            }
            if f.min_silence <= f.max_speech - f.max_speech / 2 {
                prop_assert_eq!(reference(&probs, rms, &config, f), pairs);
            }
        }
    }

    /// White noise at `level_db` dBFS RMS: uniform (xorshift64*), RMS = amplitude / sqrt(3).
    fn hiss(level_db: f32, n: usize, mut seed: u64) -> Vec<f32> {
        let amplitude = 10f32.powf(level_db / 20.0) * 3f32.sqrt();
        let mut uniform = move || {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        (0..n).map(|_| amplitude * uniform()).collect()
    }

    fn scores(samples: &[f32]) -> Vec<f32> {
        let mut vad = EnergyVad::new();
        samples
            .chunks_exact(512)
            .map(|f| vad.push_frame(f))
            .collect()
    }

    #[test]
    fn energy_vad_ignores_silence_dc_and_hiss() {
        assert!(scores(&[0.0; 512 * 100]).iter().all(|&p| p < 0.1));
        assert!(scores(&[0.3; 512 * 100]).iter().all(|&p| p < 0.1));
        for level_db in [-60.0, -50.0, -40.0, -30.0, -20.0] {
            let p = scores(&hiss(level_db, 16_000 * 10, 7));
            let worst = p[32..].iter().fold(0f32, |a, &b| a.max(b)); // after 1 s
            assert!(worst < 0.35, "{level_db} dBFS hiss scored {worst}");
        }
        // A microphone that starts with zeros: the hiss after them is no speech either.
        let zeros_then_hiss = [vec![0.0; 16_000], hiss(-40.0, 16_000 * 3, 5)].concat();
        assert!(scores(&zeros_then_hiss).iter().all(|&p| p < 0.35));
        assert!((frame_rms(&[1.3, 0.7, 1.3, 0.7]) - 0.3).abs() < 1e-6);
    }

    #[test]
    fn energy_vad_detects_speech_after_hiss_and_keeps_detecting_it() {
        use std::f32::consts::TAU;
        // 150 Hz with 5 harmonics, gated at 4 Hz into 125 ms syllables, after 1 s of hiss.
        let gate = |i: usize| i >= 16_000 && (TAU * 4.0 * (i - 16_000) as f32 / 16e3).sin() > 0.0;
        let voice =
            |i: usize| (1..=5).map(move |k| (TAU * 150.0 * (k * i) as f32 / 16e3).sin() / k as f32);
        // A frame is voiced when the gate is open over all of it.
        let voiced = |k: usize| (0..512).step_by(32).all(|i| gate(k * 512 + i));
        for amplitude in [0.1f32, 0.3] {
            let mut x = hiss(-50.0, 16_000 * 11, 3);
            for (i, x) in x.iter_mut().enumerate().filter(|&(i, _)| gate(i)) {
                *x += amplitude * voice(i).sum::<f32>();
            }
            let p = scores(&x);
            // All 10 s of speech, then its last 2 s: the floor has not absorbed it.
            for from in [32, p.len() - 62] {
                let v: Vec<f32> = (from..p.len())
                    .filter(|&k| voiced(k))
                    .map(|k| p[k])
                    .collect();
                let hits = v.iter().filter(|&&p| p >= 0.5).count();
                assert!(
                    hits * 10 >= v.len() * 9,
                    "{amplitude}: {hits} of {}",
                    v.len()
                );
            }
        }
    }
}
