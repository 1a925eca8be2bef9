//! The synchronous core of a live session: 16 kHz audio in, events out, no threads.
//!
//! Audio is cut into 512-sample frames; each frame goes to the VAD and the endpointer,
//! then, with the endpointer's transitions, to the model family's stage. Everything is a
//! function of the samples and their positions on the stream's clock, never of how they
//! were pushed or how long anything took, so any chunking of the same audio gives the
//! same events (property-tested) — except where a [`Budget`] in real-time mode asks to
//! skip partial decodes to catch up, which only ever removes partials.

use std::collections::VecDeque;

use super::budget::Budget;
#[cfg(test)]
use super::budget::Unhurried;
use super::classify::ClassifyStage;
use super::ctc::CtcStage;
use super::endpoint::{Endpointer, Transition};
use super::event::Event;
use super::options::StreamOptions;
use super::vad::{FRAME_SAMPLES, Vad, VadState};
use super::whisper::WhisperStage;
use crate::Result;
use crate::model::{Family, Model};

/// The last `cap` samples of the stream, addressed by absolute position.
struct History {
    start: u64,
    buf: VecDeque<f32>,
    cap: usize,
}

impl History {
    fn push(&mut self, samples: &[f32]) {
        self.buf.extend(samples);
        let excess = self.buf.len().saturating_sub(self.cap);
        self.buf.drain(..excess);
        self.start += excess as u64;
    }

    /// Samples from `from` to the newest, clamped to what is kept.
    fn since(&self, from: u64) -> Vec<f32> {
        let skip = from.saturating_sub(self.start) as usize;
        self.buf.iter().skip(skip).copied().collect()
    }

    fn clear(&mut self, at: u64) {
        self.buf.clear();
        self.start = at;
    }
}

enum Stage {
    Whisper(Box<WhisperStage>),
    Ctc(Box<CtcStage>),
    Classify(Box<ClassifyStage>),
}

/// Per-stream state of everything: frame buffer, VAD, endpointer, family stage.
pub(crate) struct Pipeline {
    vad: Vad,
    vad_state: VadState,
    endpointer: Endpointer,
    history: History,
    /// Samples not yet making a whole frame.
    pending: Vec<f32>,
    /// Absolute position of the next frame.
    frame_pos: u64,
    /// Absolute position of the endpointer's frame 0 (it counts from its last reset).
    frame_offset: u64,
    /// Start of the open speech segment.
    speech_start: Option<u64>,
    /// The previous frame's speech probability, and the endpointer's leave threshold:
    /// a frame below it after one above begins a pause.
    prev_p: f32,
    neg_threshold: f32,
    stage: Stage,
    transitions: Vec<Transition>,
}

/// Audio kept for segment starts that lie in the past: pre-roll, confirmation delay and a
/// split at up to half the longest segment.
const HISTORY_S: usize = 30;

impl Pipeline {
    pub(crate) fn new(model: &Model, vad: &Vad, opts: &StreamOptions) -> Result<Self> {
        let mut endpoint = opts.endpoint.clone();
        let stage = match model.family() {
            Family::Whisper => {
                let w = WhisperStage::new(model.clone(), &opts.transcribe.whisper, &opts.whisper)?;
                // The VAD bounds Whisper's segments: longer speech is split at its
                // quietest point.
                endpoint.max_speech_ms = endpoint.max_speech_ms.min(w.max_segment_ms());
                Stage::Whisper(Box::new(w))
            }
            Family::Ctc => Stage::Ctc(Box::new(CtcStage::new(
                model.clone(),
                &opts.transcribe.ctc,
                &opts.ctc,
            )?)),
            Family::Classifier => {
                Stage::Classify(Box::new(ClassifyStage::new(model.clone(), &opts.classify)?))
            }
        };
        Ok(Pipeline {
            vad: vad.clone(),
            vad_state: vad.stream(),
            endpointer: Endpointer::new(endpoint, FRAME_SAMPLES, crate::audio::SAMPLE_RATE_HZ)?,
            history: History {
                start: 0,
                buf: VecDeque::new(),
                cap: HISTORY_S * crate::audio::SAMPLE_RATE_HZ as usize,
            },
            pending: Vec::with_capacity(FRAME_SAMPLES),
            frame_pos: 0,
            frame_offset: 0,
            speech_start: None,
            prev_p: 0.0,
            neg_threshold: opts.endpoint.neg_threshold,
            stage,
            transitions: Vec::new(),
        })
    }

    /// Feeds 16 kHz samples; appends the events they cause.
    pub(crate) fn push(
        &mut self,
        samples: &[f32],
        budget: &dyn Budget,
        out: &mut Vec<Event>,
    ) -> Result<()> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME_SAMPLES {
                let frame = std::mem::take(&mut self.pending);
                self.frame(&frame, budget, out)?;
                self.pending = frame;
                self.pending.clear();
            }
        }
        Ok(())
    }

    fn s(pos: u64) -> f64 {
        pos as f64 / f64::from(crate::audio::SAMPLE_RATE_HZ)
    }

    fn frame(&mut self, frame: &[f32], budget: &dyn Budget, out: &mut Vec<Event>) -> Result<()> {
        let frame_start = self.frame_pos;
        self.history.push(frame);
        let (p, rms) = self.vad_state.push(frame)?;
        let pause_began = self.speech_start.is_some()
            && self.prev_p >= self.neg_threshold
            && (p < self.neg_threshold || p.is_nan());
        self.prev_p = if p.is_nan() { 0.0 } else { p };
        if pause_began
            && budget.speculate()
            && let Stage::Whisper(w) = &mut self.stage
        {
            w.pause_began(frame_start, budget)?;
        }
        self.transitions.clear();
        self.endpointer.push(p, rms, &mut self.transitions);
        self.frame_pos += frame.len() as u64;
        let transitions = std::mem::take(&mut self.transitions);
        // CTC sees every sample before the transitions of its frame (its end decodes what
        // has arrived); Whisper keeps its own audio and is told of the transitions first
        // (they lie in the past); speech-only classification copies the segment's audio
        // from the history.
        if let Stage::Ctc(c) = &mut self.stage {
            c.audio(frame, out)?;
        }
        let mut started_here = false;
        for t in &transitions {
            match *t {
                Transition::Start { start_frame } => {
                    let start = self.frame_offset + start_frame * FRAME_SAMPLES as u64;
                    self.speech_start = Some(start);
                    started_here = true;
                    out.push(Event::SpeechStart {
                        start_s: Self::s(start),
                    });
                    match &mut self.stage {
                        Stage::Whisper(w) => w.start(start),
                        Stage::Classify(c) => c.start(start, self.history.since(start)),
                        Stage::Ctc(_) => {}
                    }
                }
                Transition::End { end_frame } => {
                    let end = self.frame_offset + end_frame * FRAME_SAMPLES as u64;
                    // End and Start in one frame: the VAD split long speech.
                    let split = transitions
                        .iter()
                        .any(|t| matches!(t, Transition::Start { .. }));
                    self.end_segment(end, split, out)?;
                }
            }
        }
        self.transitions = transitions;
        match &mut self.stage {
            Stage::Whisper(w) => w.audio(frame, budget, out)?,
            // The copied history already holds this frame.
            Stage::Classify(c) if started_here => c.audio(&[], out)?,
            Stage::Classify(c) => c.audio(frame, out)?,
            Stage::Ctc(_) => {}
        }
        Ok(())
    }

    fn end_segment(&mut self, end: u64, split: bool, out: &mut Vec<Event>) -> Result<()> {
        let Some(start) = self.speech_start.take() else {
            return Ok(());
        };
        match &mut self.stage {
            Stage::Whisper(w) => w.end(end, split, out)?,
            Stage::Ctc(c) => c.end(out)?,
            Stage::Classify(c) => c.end(out)?,
        }
        out.push(Event::SpeechEnd {
            start_s: Self::s(start),
            end_s: Self::s(end),
        });
        Ok(())
    }

    /// End of input: the last partial frame, open segments and pending windows are
    /// finalized. The pipeline then continues as a new stream would at this position.
    pub(crate) fn flush(&mut self, budget: &dyn Budget, out: &mut Vec<Event>) -> Result<()> {
        if !self.pending.is_empty() {
            // A last partial frame: the VAD sees it zero-padded; the stages get only the
            // real samples.
            let real = std::mem::take(&mut self.pending);
            let mut frame = real.clone();
            frame.resize(FRAME_SAMPLES, 0.0);
            self.history.push(&real);
            let (p, rms) = self.vad_state.push(&frame)?;
            self.transitions.clear();
            self.endpointer.push(p, rms, &mut self.transitions);
            match &mut self.stage {
                Stage::Whisper(w) => w.audio(&real, budget, out)?,
                Stage::Classify(c) => c.audio(&real, out)?,
                Stage::Ctc(c) => c.audio(&real, out)?,
            }
            self.frame_pos += real.len() as u64;
        }
        let mut t = Vec::new();
        self.endpointer.finish(&mut t);
        let mut ended = false;
        for tr in t {
            match tr {
                Transition::Start { start_frame } => {
                    let start = self.frame_offset + start_frame * FRAME_SAMPLES as u64;
                    self.speech_start = Some(start);
                    out.push(Event::SpeechStart {
                        start_s: Self::s(start),
                    });
                    match &mut self.stage {
                        Stage::Whisper(w) => w.start(start),
                        Stage::Classify(c) => c.start(start, self.history.since(start)),
                        Stage::Ctc(_) => {}
                    }
                }
                Transition::End { end_frame } => {
                    let end =
                        (self.frame_offset + end_frame * FRAME_SAMPLES as u64).min(self.frame_pos);
                    self.end_segment(end, false, out)?;
                    ended = true;
                }
            }
        }
        if !ended && self.speech_start.is_some() {
            let end = self.frame_pos;
            self.end_segment(end, false, out)?;
        }
        match &mut self.stage {
            Stage::Ctc(c) => c.end(out)?,
            Stage::Classify(c) => c.end(out)?,
            Stage::Whisper(_) => {}
        }
        // More audio after this is a new stream that starts here.
        let at = self.frame_pos;
        self.restart_at(at);
        Ok(())
    }

    /// A gap of `n` samples that never arrived (dropped to keep up with real time): open
    /// speech ends where the gap begins, and the clock jumps over it.
    pub(crate) fn gap(&mut self, n: u64, budget: &dyn Budget, out: &mut Vec<Event>) -> Result<()> {
        self.flush(budget, out)?;
        let at = self.frame_pos + n;
        self.restart_at(at);
        Ok(())
    }

    fn restart_at(&mut self, at: u64) {
        self.vad_state = self.vad.stream();
        self.endpointer.reset();
        self.pending.clear();
        self.history.clear(at);
        self.speech_start = None;
        self.prev_p = 0.0;
        match &mut self.stage {
            Stage::Whisper(w) => w.reset_audio(at),
            Stage::Ctc(c) => c.reset_at(at),
            Stage::Classify(c) => c.reset_at(at),
        }
        // The endpointer counts frames from its reset: keep positions absolute by
        // starting it on a frame boundary of the stream.
        self.frame_pos = at;
        self.frame_offset = at;
    }

    /// Forgets everything: a new stream from position 0.
    pub(crate) fn reset(&mut self) {
        self.restart_at(0);
        if let Stage::Whisper(w) = &mut self.stage {
            w.reset(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineChoice, EngineOptions};
    use crate::offline::whisper::Language;
    use crate::stream::VadChoice;

    /// Real time with compute to spare: every pause is decoded ahead.
    struct Speculating;

    impl Budget for Speculating {
        fn lagging(&self) -> bool {
            false
        }
        fn abort(&self) -> bool {
            false
        }
        fn skipped_partial(&self) {}
        fn speculate(&self) -> bool {
            true
        }
        fn realtime(&self) -> bool {
            false
        }
    }

    /// Decoding ahead at each pause changes when a final is ready, never what it says.
    #[test]
    fn real_whisper_speculative_finals_equal_plain_ones() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("models/whisper-tiny.en");
        if !dir.join("decoder.onnx").is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "setup should export tiny.en"
            );
            eprintln!("skipping: models/whisper-tiny.en absent (run `bash models/setup.sh`)");
            return;
        }
        let model = crate::model::open(&dir, &EngineOptions::new(EngineChoice::Auto)).unwrap();
        let vad = Vad::load(&VadChoice::Energy, &EngineOptions::default()).unwrap();
        let mut opts = StreamOptions::default();
        opts.transcribe.whisper.language = Language::Code("en".into());
        let audio = crate::audio::load(root.join("models/assets/beckett.wav"))
            .unwrap()
            .samples;
        let run = |budget: &dyn Budget| {
            let mut p = Pipeline::new(&model, &vad, &opts).unwrap();
            let mut events = Vec::new();
            for piece in audio.chunks(800) {
                p.push(piece, budget, &mut events).unwrap();
            }
            p.flush(budget, &mut events).unwrap();
            events
        };
        let plain = run(&Unhurried);
        let ahead = run(&Speculating);
        assert!(plain.iter().any(|e| matches!(e, Event::Final { .. })));
        assert_eq!(plain, ahead);
    }
}
