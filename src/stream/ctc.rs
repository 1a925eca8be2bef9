//! A CTC model (Wav2Vec2 / HuBERT) on a live stream: chunked encoding with left context
//! and a small look-ahead, one decoder stream carried across chunks, a partial after
//! every chunk, and endpoints from trailing blanks (sherpa-onnx's three rules) or the VAD.
//!
//! The chunk plan is fixed on the stream's own sample clock (chunk `k` covers frames
//! `k·n ..(k+1)·n` of the utterance's plan), never on how the audio happened to be
//! pushed, so any chunking of the same audio gives the same frames, tokens and events
//! (property-tested). Each chunk runs the model on `left_context_ms` of audio before it
//! and `lookahead_ms` after it and keeps only its own frames: full-attention models need
//! context on both sides, and the look-ahead is the latency price of the right one.
//! Reference for the endpoint rules:
//! <https://github.com/k2-fsa/sherpa-onnx/blob/master/sherpa-onnx/csrc/endpoint.h>

use super::event::Event;
use crate::decode::ctc::{CtcDecoder, CtcStream, TokenKind};
use crate::model::Model;
use crate::model::ctc::{CtcModel, CtcOptions, words};
use crate::{Error, Result};

/// Live CTC parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcStreamOptions {
    /// Audio decoded per model run, milliseconds (rounded to whole frames).
    pub chunk_ms: u32,
    /// Audio before each chunk the model sees, milliseconds.
    pub left_context_ms: u32,
    /// Audio after each chunk the model sees, milliseconds: the look-ahead latency.
    pub lookahead_ms: u32,
    /// Rule 1: this much trailing silence with nothing decoded resets the utterance,
    /// seconds (sherpa-onnx: 2.4).
    pub rule1_min_trailing_silence_s: f32,
    /// Rule 2: this much trailing silence after text ends the utterance, seconds
    /// (sherpa-onnx: 1.2; shorter here, since splitting a CTC utterance at a pause loses
    /// nothing).
    pub rule2_min_trailing_silence_s: f32,
    /// Rule 3: an utterance this long ends, seconds (sherpa-onnx: 20).
    pub rule3_max_utterance_s: f32,
}

impl Default for CtcStreamOptions {
    fn default() -> Self {
        CtcStreamOptions {
            chunk_ms: 320,
            left_context_ms: 2000,
            lookahead_ms: 200,
            rule1_min_trailing_silence_s: 2.4,
            rule2_min_trailing_silence_s: 0.5,
            rule3_max_utterance_s: 20.0,
        }
    }
}

/// Per-stream CTC state. Positions are absolute samples and frames of the stream.
pub(crate) struct CtcStage {
    model: Model,
    decoder: CtcDecoder,
    stream: CtcStream,
    stride: usize,
    chunk_frames: u64,
    left_frames: u64,
    lookahead_frames: u64,
    rule1_frames: u64,
    rule2_frames: u64,
    rule3_frames: u64,
    /// Absolute sample of the stage's position 0 (moves when the stream restarts after a
    /// gap); everything below counts from it.
    origin: u64,
    /// Audio from `audio_start`.
    audio: Vec<f32>,
    audio_start: u64,
    /// Frames decoded so far (absolute).
    done: u64,
    /// First frame of the current utterance.
    utt_start: u64,
    trailing_blanks: u64,
    has_text: bool,
    last_partial: String,
}

fn ctc_of(model: &Model) -> Result<&CtcModel> {
    model
        .as_ctc()
        .ok_or_else(|| Error::invalid("model", "a CTC model", model.family().name()))
}

impl CtcStage {
    pub(crate) fn new(model: Model, opts: &CtcOptions, live: &CtcStreamOptions) -> Result<Self> {
        let m = ctc_of(&model)?;
        let decoder = m.decoder(opts)?;
        let stride = m.frame_stride_samples().max(1);
        let frames = |ms: f64| (ms / 1e3 * 16_000.0 / stride as f64).round() as u64;
        let chunk_frames = frames(f64::from(live.chunk_ms)).max(1);
        Ok(CtcStage {
            stream: decoder.stream(),
            decoder,
            stride,
            chunk_frames,
            left_frames: frames(f64::from(live.left_context_ms)),
            lookahead_frames: frames(f64::from(live.lookahead_ms)),
            rule1_frames: frames(f64::from(live.rule1_min_trailing_silence_s) * 1e3).max(1),
            rule2_frames: frames(f64::from(live.rule2_min_trailing_silence_s) * 1e3).max(1),
            rule3_frames: frames(f64::from(live.rule3_max_utterance_s) * 1e3).max(1),
            model,
            origin: 0,
            audio: Vec::new(),
            audio_start: 0,
            done: 0,
            utt_start: 0,
            trailing_blanks: 0,
            has_text: false,
            last_partial: String::new(),
        })
    }

    fn frame_s(&self, frame: u64) -> f64 {
        (self.origin + frame * self.stride as u64) as f64 / 16_000.0
    }

    fn audio_end(&self) -> u64 {
        self.audio_start + self.audio.len() as u64
    }

    /// New audio: runs every chunk whose look-ahead has arrived.
    pub(crate) fn audio(&mut self, samples: &[f32], out: &mut Vec<Event>) -> Result<()> {
        self.audio.extend_from_slice(samples);
        loop {
            let target = self.done + self.chunk_frames;
            // One stride more than the frames need covers the feature encoder's
            // receptive field (400 samples for a 320 stride).
            let need = (target + self.lookahead_frames + 1) * self.stride as u64;
            if self.audio_end() < need {
                return Ok(());
            }
            self.run(target, need, out)?;
        }
    }

    /// Decodes frames `done..target` from audio up to `until` (absolute sample), then
    /// applies the endpoint rules.
    fn run(&mut self, target: u64, until: u64, out: &mut Vec<Event>) -> Result<()> {
        let from_frame = self.done.saturating_sub(self.left_frames);
        let from = (from_frame * self.stride as u64).max(self.audio_start);
        let until = until.min(self.audio_end());
        if until <= from {
            return Ok(());
        }
        let lo = (from - self.audio_start) as usize;
        let hi = (until - self.audio_start) as usize;
        let m = ctc_of(&self.model)?;
        let lp = m.forward(&self.audio[lo..hi])?;
        let first = from / self.stride as u64;
        let n_vocab = lp.n_vocab;
        let keep_from = self.done.saturating_sub(first) as usize;
        let keep_to = (target.saturating_sub(first) as usize).min(lp.n_frames);
        if keep_to > keep_from {
            let rows = &lp.data[keep_from * n_vocab..keep_to * n_vocab];
            self.stream.push(rows)?;
            let vocab = self.decoder.vocab();
            for row in rows.chunks(n_vocab) {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i as u32);
                if matches!(vocab.kind(best), TokenKind::Blank | TokenKind::Special) {
                    self.trailing_blanks += 1;
                } else {
                    self.trailing_blanks = 0;
                    self.has_text = true;
                }
            }
            self.done = first + keep_to as u64;
        } else {
            // Not enough audio for a frame (end of stream): nothing more to decode.
            self.done = target.max(self.done);
        }
        // Keep only the left context of the next chunk.
        let keep_from_sample = (self.done.saturating_sub(self.left_frames)) * self.stride as u64;
        if keep_from_sample > self.audio_start {
            let drop = ((keep_from_sample - self.audio_start) as usize).min(self.audio.len());
            self.audio.drain(..drop);
            self.audio_start += drop as u64;
        }
        let partial = self.stream.partial().text;
        if !partial.is_empty() && partial != self.last_partial {
            out.push(Event::Partial {
                text: partial.clone(),
                start_s: self.frame_s(self.utt_start),
                end_s: self.frame_s(self.done),
            });
            self.last_partial = partial;
        }
        let utt_frames = self.done - self.utt_start;
        if !self.has_text && self.trailing_blanks >= self.rule1_frames {
            self.stream.reset();
            self.start_utterance();
        } else if (self.has_text && self.trailing_blanks >= self.rule2_frames)
            || utt_frames >= self.rule3_frames
        {
            self.finalize(out);
        }
        Ok(())
    }

    fn start_utterance(&mut self) {
        self.utt_start = self.done;
        self.trailing_blanks = 0;
        self.has_text = false;
        self.last_partial.clear();
    }

    /// Ends the utterance at the decoded position.
    fn finalize(&mut self, out: &mut Vec<Event>) {
        let r = self.stream.finish();
        if !r.text.is_empty() {
            out.push(Event::Final {
                text: r.text.clone(),
                start_s: r.words.first().map_or(self.frame_s(self.utt_start), |w| {
                    self.frame_s(self.utt_start) + f64::from(w.start_s)
                }),
                end_s: r.words.last().map_or(self.frame_s(self.done), |w| {
                    self.frame_s(self.utt_start) + f64::from(w.end_s)
                }),
                words: words(&r, self.frame_s(self.utt_start)),
                avg_logprob: None,
                no_speech_prob: None,
            });
        }
        self.start_utterance();
    }

    /// The VAD says speech ended (or the stream ends): decode everything that has
    /// arrived, with whatever look-ahead there is, and finalize.
    pub(crate) fn end(&mut self, out: &mut Vec<Event>) -> Result<()> {
        let end = self.audio_end();
        let last = end / self.stride as u64;
        while self.done < last {
            let target = (self.done + self.chunk_frames).min(last);
            let before = self.done;
            self.run(target, end, out)?;
            if self.done == before {
                break;
            }
        }
        if self.has_text {
            self.finalize(out);
        }
        Ok(())
    }

    /// Starts over with the stream's next sample at absolute position `at`.
    pub(crate) fn reset_at(&mut self, at: u64) {
        self.stream.reset();
        self.origin = at;
        self.audio.clear();
        self.audio_start = 0;
        self.done = 0;
        self.start_utterance();
    }
}
