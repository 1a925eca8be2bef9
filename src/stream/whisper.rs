//! Whisper on a live stream: decode only speech, re-decode the growing speech segment at
//! a step to show partials, commit the words two decodes agree on (LocalAgreement-2),
//! finalize the rest when speech ends.
//!
//! Why this shape (after ufal/whisper_streaming, Macháček et al. 2023, with two changes):
//! - Whisper is not a streaming model: it wants context and rewrites its hypothesis as
//!   audio arrives. So every `step_ms` of new speech the segment is decoded whole, and
//!   [`Agreement`] commits what the last two decodes agree on: committed text is never
//!   revised and never emitted twice.
//! - Silence never reaches the decoder on its own: decoding starts at a VAD start and
//!   ends at a VAD end (Whisper hallucinates "you" or "Thank you" on silence), and every
//!   decode passes the no-speech, log-probability and compression-ratio guards.
//! - What is already decided is forced, not decoded again: the committed words of the
//!   segment and the finals of the last `context_s` seconds are the decode's *prefix*
//!   (OpenAI's `prefix` option), and their audio stays in the window. The decoder reads
//!   the prefix in one pass and generates only the new words, so a step costs what the
//!   new speech costs, and a short segment after a pause is still decoded with the
//!   audio and words before it — cutting speech at 300 ms pauses without that context
//!   costs Whisper several WER points. whisper_streaming re-generates its whole buffer
//!   instead, and trims it at committed segment ends.
//! - The window stays bounded: the VAD splits speech longer than `max_segment_s` at its
//!   quietest point (the first part becomes a final), and context is dropped oldest
//!   first so that context plus segment stays within `max_window_s` (< 30 s).
//! - Older finals (≤ `prompt_chars`) prompt the decode, as `transcribe()` prompts each
//!   window with the previous text; a decode that fails the guards drops that prompt,
//!   which stops a hallucination from feeding itself.

use std::collections::VecDeque;
use std::time::Instant;

use super::agreement::{Agreement, join, word_key, words};
use super::budget::Budget;
use super::event::Event;
use crate::decode::whisper::Fallback;
use crate::model::Model;
use crate::model::whisper::WhisperModel;
use crate::offline::whisper::{WhisperOptions, WindowDecoder, WindowOutcome};
use crate::result::Timing;
use crate::{Error, Result};

/// Live Whisper parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperStreamOptions {
    /// Re-decode the segment after this much new speech, milliseconds (partials).
    pub step_ms: u32,
    /// Longest speech segment: the VAD splits longer speech at its quietest point,
    /// seconds.
    pub max_segment_s: f32,
    /// Finals of up to this many seconds before a segment are kept as its audio and text
    /// context, seconds.
    pub context_s: f32,
    /// Context plus segment never exceed this, seconds (Whisper's window is 30 s).
    pub max_window_s: f32,
    /// Most characters of older finals used as the prompt.
    pub prompt_chars: usize,
    /// Emit partial hypotheses (`false`: finals only, one decode per segment).
    pub partials: bool,
    /// In real time, decode a segment as soon as a pause begins, in case the pause ends
    /// the speech: the final is then ready when the endpointer confirms the end, without
    /// waiting the end-of-speech silence and the decode one after the other. Costs a
    /// decode per pause that is not an end.
    pub speculative_finals: bool,
}

impl Default for WhisperStreamOptions {
    fn default() -> Self {
        WhisperStreamOptions {
            step_ms: 1000,
            max_segment_s: 15.0,
            context_s: 10.0,
            max_window_s: 28.0,
            prompt_chars: 200,
            partials: true,
            speculative_finals: true,
        }
    }
}

/// A final that may serve as context: where it starts (absolute sample) and its text.
struct Done {
    start: u64,
    text: String,
}

/// One decode's new words (after the forced prefix) and its scores.
struct Hypothesis {
    words: Vec<String>,
    avg_logprob: f32,
    no_speech_prob: Option<f32>,
}

/// Per-stream Whisper state. Positions are absolute samples of the stream.
pub(crate) struct WhisperStage {
    model: Model,
    decoder: WindowDecoder,
    opts: WhisperOptions,
    live: WhisperStreamOptions,
    /// One attempt at temperature 0: partials must be cheap.
    partial_fallback: Fallback,
    sample_rate: f64,
    /// Recent audio (context and the open segment) from `audio_start`.
    audio: Vec<f32>,
    audio_start: u64,
    /// Start of the open speech segment; `None` outside speech.
    seg_start: Option<u64>,
    /// End of the audio the last decode covered.
    last_decode_end: u64,
    /// The open segment's committed and tentative words.
    agreement: Agreement,
    last_partial: String,
    /// Recent finals, oldest first: the context of the next segments.
    done: VecDeque<Done>,
    /// Text of finals older than `done`, the prompt's source (initial prompt first).
    prompt_text: String,
    /// A decode of the segment up to `.0`, made when a pause began, in case the pause is
    /// the end of speech; `.1` is `None` when the guards rejected it.
    speculative: Option<(u64, Option<Hypothesis>)>,
    /// Wall time of the last partial decode, seconds: in real time the next partial
    /// waits at least this much longer than a step, so that partials never take more
    /// compute than real time leaves (fewer partials, larger steps).
    last_partial_cost_s: f64,
    /// Wall-time bookkeeping of the decodes.
    pub(crate) timing: Timing,
}

impl WhisperStage {
    pub(crate) fn new(
        model: Model,
        opts: &WhisperOptions,
        live: &WhisperStreamOptions,
    ) -> Result<Self> {
        let w = whisper_of(&model)?;
        let window_s = f64::from(w.log_mel().config().chunk_length as u32);
        if !(f64::from(live.max_window_s) <= window_s && live.max_segment_s <= live.max_window_s) {
            return Err(Error::invalid(
                "live Whisper windows",
                format!("max_segment_s <= max_window_s <= {window_s} s"),
                format!(
                    "max_segment_s {}, max_window_s {}",
                    live.max_segment_s, live.max_window_s
                ),
            ));
        }
        // Times come from the VAD; the text after a forced prefix must not start with a
        // timestamp.
        let opts = WhisperOptions {
            timestamps: false,
            ..opts.clone()
        };
        let decoder = WindowDecoder::new(w, &opts)?;
        let sample_rate = f64::from(w.log_mel().config().sampling_rate);
        Ok(WhisperStage {
            partial_fallback: Fallback {
                temperatures: vec![0.0],
                ..opts.fallback.clone()
            },
            prompt_text: opts.initial_prompt.clone().unwrap_or_default(),
            model,
            decoder,
            opts,
            live: live.clone(),
            sample_rate,
            audio: Vec::new(),
            audio_start: 0,
            seg_start: None,
            last_decode_end: 0,
            agreement: Agreement::new(),
            last_partial: String::new(),
            done: VecDeque::new(),
            speculative: None,
            last_partial_cost_s: 0.0,
            timing: Timing::default(),
        })
    }

    fn s(&self, abs: u64) -> f64 {
        abs as f64 / self.sample_rate
    }

    fn samples(&self, seconds: f32) -> u64 {
        (f64::from(seconds) * self.sample_rate) as u64
    }

    fn audio_end(&self) -> u64 {
        self.audio_start + self.audio.len() as u64
    }

    /// Speech began at `start` (absolute sample; its audio has already arrived).
    pub(crate) fn start(&mut self, start: u64) {
        self.seg_start = Some(start.max(self.audio_start));
        self.last_decode_end = start;
        self.agreement.reset();
        self.last_partial.clear();
        self.speculative = None;
    }

    /// New audio (speech or not); decodes a partial when a step of speech has
    /// accumulated.
    pub(crate) fn audio(
        &mut self,
        samples: &[f32],
        budget: &dyn Budget,
        out: &mut Vec<Event>,
    ) -> Result<()> {
        self.audio.extend_from_slice(samples);
        self.prune();
        let Some(seg_start) = self.seg_start else {
            return Ok(());
        };
        let end = self.audio_end();
        let mut step_s = f64::from(self.live.step_ms) / 1e3;
        if budget.realtime() {
            step_s = step_s.max(1.5 * self.last_partial_cost_s);
        }
        let step = ((step_s * self.sample_rate) as u64).max(1);
        if !self.live.partials || end - self.last_decode_end.max(seg_start) < step {
            return Ok(());
        }
        if budget.lagging() {
            // Behind real time: skip this partial; the next one covers more audio.
            budget.skipped_partial();
            return Ok(());
        }
        self.last_decode_end = end;
        self.speculative = None;
        let abort = || budget.abort();
        let fallback = self.partial_fallback.clone();
        let t = Instant::now();
        let decoded = self.decode(end, &fallback, Some(&abort));
        self.last_partial_cost_s = t.elapsed().as_secs_f64();
        let hyp = match decoded {
            Ok(h) => h,
            Err(Error::Cancelled) => {
                budget.skipped_partial();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(hyp) = hyp else { return Ok(()) };
        let full: Vec<String> = self
            .agreement
            .committed()
            .iter()
            .cloned()
            .chain(hyp.words)
            .collect();
        self.agreement.insert(&full);
        let text = join(
            &self
                .agreement
                .committed()
                .iter()
                .chain(self.agreement.tentative())
                .cloned()
                .collect::<Vec<_>>(),
        );
        if !text.is_empty() && text != self.last_partial {
            out.push(Event::Partial {
                text: text.clone(),
                start_s: self.s(seg_start),
                end_s: self.s(end),
            });
            self.last_partial = text;
        }
        Ok(())
    }

    /// Keeps only the audio a decode can still need: the open segment and up to
    /// `context_s` before it (or before now, outside speech).
    fn prune(&mut self) {
        let keep_from = self
            .seg_start
            .unwrap_or(self.audio_end())
            .saturating_sub(self.samples(self.live.context_s));
        if keep_from > self.audio_start {
            let n = ((keep_from - self.audio_start) as usize).min(self.audio.len());
            self.audio.drain(..n);
            self.audio_start += n as u64;
        }
        while self
            .done
            .front()
            .is_some_and(|d| d.start < self.audio_start)
        {
            if let Some(d) = self.done.pop_front() {
                self.push_prompt(&d.text);
            }
        }
    }

    /// A pause began at `at` (absolute sample, the end of the audio so far): decode the
    /// segment now, exactly as [`WhisperStage::end`] would if the pause turns out to be
    /// the end of speech, and keep the result. In real time this takes the end-of-speech
    /// silence wait out of the final's latency; the decode is the same either way, so the
    /// events do not change.
    pub(crate) fn pause_began(&mut self, at: u64, budget: &dyn Budget) -> Result<()> {
        if !self.live.speculative_finals
            || self.seg_start.is_none()
            || self.audio_end() != at
            || self.speculative.as_ref().is_some_and(|(e, _)| *e == at)
        {
            return Ok(());
        }
        let fallback = self.opts.fallback.clone();
        let abort = || budget.abort();
        match self.decode_for_end(at, &fallback, Some(&abort)) {
            Ok(h) => {
                // The partial schedule is left as it is, so the events stay the same as
                // without speculation; a partial before the end makes this one stale.
                self.speculative = Some((at, h));
                Ok(())
            }
            Err(Error::Cancelled) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Speech ended at `end` (absolute sample): decode the segment up to there once more,
    /// with the full fallback, and finalize everything not yet final.
    ///
    /// `split`: the VAD cut long speech here and the next segment starts at `end`. When
    /// words are committed they may already reach past the cut (they come from decodes of
    /// the audio after it), so nothing is decoded: the committed words become the final,
    /// and the next segment, which sees this one's audio and text as context, continues
    /// after them. With nothing committed the cut is an ordinary end.
    pub(crate) fn end(&mut self, end: u64, split: bool, out: &mut Vec<Event>) -> Result<()> {
        let Some(seg_start) = self.seg_start else {
            return Ok(());
        };
        let end = end.clamp(seg_start, self.audio_end());
        let split = split && !self.agreement.committed().is_empty();
        let hyp = match self.speculative.take() {
            _ if split => None,
            Some((at, hyp)) if at == end => hyp,
            _ if end == seg_start => None,
            _ => {
                let fallback = self.opts.fallback.clone();
                self.decode_for_end(end, &fallback, None)?
            }
        };
        if hyp.is_none() && !split {
            // The guards rejected the last decode: do not prompt with this stretch.
            self.prompt_text.clear();
        }
        let (avg_logprob, no_speech_prob) = hyp
            .as_ref()
            .map_or((None, None), |h| (Some(h.avg_logprob), h.no_speech_prob));
        if let Some(h) = &hyp {
            let full: Vec<String> = self
                .agreement
                .committed()
                .iter()
                .cloned()
                .chain(h.words.iter().cloned())
                .collect();
            self.agreement.finish(&full);
        }
        // Committed words are final whatever the last decode says.
        let text = join(self.agreement.committed());
        self.seg_start = None;
        self.agreement.reset();
        self.last_partial.clear();
        if !text.is_empty() {
            self.done.push_back(Done {
                start: seg_start,
                text: text.clone(),
            });
            out.push(Event::Final {
                text,
                start_s: self.s(seg_start),
                end_s: self.s(end),
                words: Vec::new(),
                avg_logprob,
                no_speech_prob,
            });
        }
        Ok(())
    }

    /// Drops any open segment and the audio (the stream restarts after a gap at `at`);
    /// the text context stays, as prompt.
    pub(crate) fn reset_audio(&mut self, at: u64) {
        self.seg_start = None;
        self.speculative = None;
        self.agreement.reset();
        self.last_partial.clear();
        self.audio.clear();
        self.audio_start = at;
        while let Some(d) = self.done.pop_front() {
            self.push_prompt(&d.text);
        }
    }

    /// Forgets the stream, text context included.
    pub(crate) fn reset(&mut self, at: u64) {
        self.reset_audio(at);
        self.prompt_text = self.opts.initial_prompt.clone().unwrap_or_default();
    }

    fn push_prompt(&mut self, text: &str) {
        if !self.opts.condition_on_previous_text {
            return;
        }
        if !self.prompt_text.is_empty() {
            self.prompt_text.push(' ');
        }
        self.prompt_text.push_str(text.trim());
        // Keep the last `prompt_chars` characters, from a word start.
        let n = self.prompt_text.chars().count();
        if n > self.live.prompt_chars {
            let cut: String = self
                .prompt_text
                .chars()
                .skip(n - self.live.prompt_chars)
                .collect();
            self.prompt_text = match cut.find(' ') {
                Some(i) => cut[i + 1..].to_string(),
                None => cut,
            };
        }
    }

    /// The end-of-speech decode of the segment up to `end`. Unlike a partial, a rejected
    /// decode does not drop the prompt here: that happens when the result is used (in
    /// [`WhisperStage::end`]), so a speculation that is thrown away changes nothing.
    fn decode_for_end(
        &mut self,
        end: u64,
        fallback: &Fallback,
        abort: Option<&dyn Fn() -> bool>,
    ) -> Result<Option<Hypothesis>> {
        let prompt = self.prompt_text.clone();
        let hyp = self.decode(end, fallback, abort)?;
        self.prompt_text = prompt;
        Ok(hyp)
    }

    /// Decodes the open segment up to `end` after its context: the audio from the first
    /// context final on, with the context finals' text and the segment's committed words
    /// forced as the prefix. `None` when the guards call it silence or unreliable (the
    /// prompt is then dropped).
    fn decode(
        &mut self,
        end: u64,
        fallback: &Fallback,
        abort: Option<&dyn Fn() -> bool>,
    ) -> Result<Option<Hypothesis>> {
        let Some(seg_start) = self.seg_start else {
            return Ok(None);
        };
        let w = whisper_of(&self.model)?;
        let min_start = end.saturating_sub(self.samples(self.live.max_window_s));
        // Context: the finals since the oldest one that still fits the window.
        let first = self
            .done
            .iter()
            .position(|d| d.start >= min_start && d.start >= self.audio_start)
            .unwrap_or(self.done.len());
        let window_start = self.done.get(first).map_or(seg_start, |d| d.start);
        let lo = (window_start - self.audio_start) as usize;
        let hi = ((end - self.audio_start) as usize).min(self.audio.len());
        let segment = &self.audio[(seg_start - self.audio_start) as usize..hi];
        if self.decoder.is_silent(segment) {
            return Ok(None);
        }
        let mut prefix_text: Vec<&str> = self
            .done
            .iter()
            .skip(first)
            .map(|d| d.text.as_str())
            .collect();
        let committed = join(self.agreement.committed());
        prefix_text.push(&committed);
        let encode = |text: &str| -> Result<Vec<u32>> {
            if text.trim().is_empty() {
                Ok(Vec::new())
            } else {
                w.tokenizer().encode(&format!(" {}", text.trim()))
            }
        };
        let prefix = encode(&prefix_text.join(" "))?;
        let prompt = encode(&self.prompt_text)?;
        let outcome = self.decoder.decode(
            w,
            &self.audio[lo..hi],
            &prompt,
            &prefix,
            fallback,
            abort,
            Instant::now(),
            &mut self.timing,
        )?;
        if !self.passes_guards(&outcome) {
            self.prompt_text.clear();
            return Ok(None);
        }
        let r = &outcome.result;
        let mut new = words(&self.decoder.text(w, &r.tokens));
        // Asked to continue past all the speech there is, a small model sometimes starts
        // the window over: that is a repeat, not new words.
        let key = |ws: &[String]| -> Vec<String> { ws.iter().map(|w| word_key(w)).collect() };
        let prefix_words = words(&prefix_text.join(" "));
        if prefix_words.len() >= 3 && new.len() >= 3 && key(&new[..3]) == key(&prefix_words[..3]) {
            new.clear();
        }
        Ok(Some(Hypothesis {
            words: new,
            avg_logprob: r.avg_logprob,
            no_speech_prob: r.no_speech_prob,
        }))
    }

    /// The no-speech, log-probability and compression-ratio guards of one window.
    fn passes_guards(&self, o: &WindowOutcome) -> bool {
        let f = &self.opts.fallback;
        let r = &o.result;
        !o.no_speech
            && !f.logprob_threshold.is_some_and(|t| r.avg_logprob < t)
            && !f
                .compression_ratio_threshold
                .is_some_and(|t| r.compression_ratio > t)
    }

    /// The longest segment the VAD should let through, milliseconds.
    pub(crate) fn max_segment_ms(&self) -> u32 {
        (self.live.max_segment_s * 1e3) as u32
    }
}

fn whisper_of(model: &Model) -> Result<&WhisperModel> {
    model
        .as_whisper()
        .ok_or_else(|| Error::invalid("model", "a Whisper model", model.family().name()))
}
