//! Whisper on a live stream: decode only speech, re-decode the growing speech buffer at a
//! step to show partials, commit words two decodes agree on (LocalAgreement-2), finalize
//! the rest when speech ends.
//!
//! Why this shape (after ufal/whisper_streaming, Macháček et al. 2023):
//! - Whisper is not a streaming model: it wants up to 30 s of context and rewrites its
//!   hypothesis as audio arrives. So the buffer holds the current speech segment (from
//!   the VAD's start, pre-roll included) and every `step_ms` of new speech it is decoded
//!   whole; [`Agreement`] commits what the last two decodes agree on, so committed text is
//!   never revised and never emitted twice.
//! - Silence never reaches the decoder: the buffer only exists between a VAD start and
//!   end (Whisper hallucinates "you" or "Thank you" on silence), and each decode still
//!   passes the no-speech, log-probability and compression-ratio guards.
//! - The buffer is bounded: past `max_buffer_s` it is cut at the end of the last Whisper
//!   segment that is wholly committed, and those words become a final; the VAD splits
//!   speech longer than 28 s, so a window never exceeds Whisper's 30 s.
//! - Committed text (≤ `prompt_chars`) prompts the next decodes, as `transcribe()` does
//!   with the previous window; a decode that fails the guards drops that prompt, which
//!   stops a hallucination from feeding itself.

use std::time::Instant;

use super::agreement::{Agreement, align_committed, words};
use super::event::Event;
use super::pipeline::Budget;
use crate::decode::whisper::Fallback;
use crate::model::Model;
use crate::model::whisper::WhisperModel;
use crate::offline::whisper::{WhisperOptions, WindowDecoder, WindowOutcome};
use crate::result::Timing;
use crate::{Error, Result};

/// Live Whisper parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperStreamOptions {
    /// Re-decode the speech buffer after this much new speech, milliseconds (partials).
    pub step_ms: u32,
    /// Cut the buffer at a committed segment end once it is longer than this, seconds.
    pub max_buffer_s: f32,
    /// Most characters of committed text used as the prompt.
    pub prompt_chars: usize,
    /// Emit partial hypotheses (`false`: finals only, one decode per segment).
    pub partials: bool,
}

impl Default for WhisperStreamOptions {
    fn default() -> Self {
        WhisperStreamOptions {
            step_ms: 1000,
            max_buffer_s: 15.0,
            prompt_chars: 200,
            partials: true,
        }
    }
}

/// One decode's hypothesis: its words, the Whisper segments' ends (seconds from the buffer
/// start) with the number of words up to each, and the decode's scores.
struct Hypothesis {
    words: Vec<String>,
    /// `(end_s, words so far)` per segment.
    segment_ends: Vec<(f64, usize)>,
    avg_logprob: f32,
    no_speech_prob: Option<f32>,
}

/// Per-stream Whisper state.
pub(crate) struct WhisperStage {
    model: Model,
    decoder: WindowDecoder,
    opts: WhisperOptions,
    live: WhisperStreamOptions,
    /// One attempt at temperature 0: partials must be cheap.
    partial_fallback: Fallback,
    sample_rate: f64,
    /// Speech buffer and the absolute sample its first sample is at.
    buf: Vec<f32>,
    buf_start: u64,
    /// Start of the current speech segment; `None` outside speech.
    seg_start: Option<u64>,
    /// Absolute end of the audio the last decode covered.
    last_decode_end: u64,
    agreement: Agreement,
    /// Text of the last partial, to skip repeats.
    last_partial: String,
    /// Finalized and committed text of the stream, the prompt's source.
    context: String,
    /// A decode of the buffer up to `.0` (absolute sample), made when a pause began, in
    /// case the pause is the end of speech; `.1` is `None` when the guards rejected it.
    speculative: Option<(u64, Option<Hypothesis>)>,
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
        let decoder = WindowDecoder::new(w, opts)?;
        let sample_rate = f64::from(w.log_mel().config().sampling_rate);
        Ok(WhisperStage {
            partial_fallback: Fallback {
                temperatures: vec![0.0],
                ..opts.fallback.clone()
            },
            context: opts.initial_prompt.clone().unwrap_or_default(),
            model,
            decoder,
            opts: opts.clone(),
            live: live.clone(),
            sample_rate,
            buf: Vec::new(),
            buf_start: 0,
            seg_start: None,
            last_decode_end: 0,
            agreement: Agreement::new(),
            last_partial: String::new(),
            speculative: None,
            timing: Timing::default(),
        })
    }

    fn s(&self, abs: u64) -> f64 {
        abs as f64 / self.sample_rate
    }

    /// Speech began at `start` (absolute sample); `audio` is the history from `start` to
    /// now.
    pub(crate) fn start(&mut self, start: u64, audio: Vec<f32>) {
        self.seg_start = Some(start);
        self.buf_start = start;
        self.buf = audio;
        self.last_decode_end = start;
        self.agreement.reset();
        self.last_partial.clear();
        self.speculative = None;
    }

    /// A pause began at `at` (absolute sample, the buffer's end): decode the buffer now,
    /// exactly as [`WhisperStage::end`] would if the pause turns out to be the end of
    /// speech, and keep the result. In real time this saves the end-of-speech silence
    /// wait from the final's latency; the result is the same decode either way, so the
    /// events do not change.
    pub(crate) fn pause_began(&mut self, at: u64, budget: &dyn Budget) -> Result<()> {
        if self.seg_start.is_none()
            || self.buf.is_empty()
            || self.buf_start + self.buf.len() as u64 != at
            || self.speculative.as_ref().is_some_and(|(e, _)| *e == at)
        {
            return Ok(());
        }
        let fallback = self.opts.fallback.clone();
        let abort = || budget.abort();
        match self.decode_for_end(&fallback, Some(&abort)) {
            Ok(h) => {
                self.speculative = Some((at, h));
                // The decode covered the buffer: the next partial is a step from here.
                self.last_decode_end = at;
                Ok(())
            }
            Err(Error::Cancelled) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// New audio; decodes a partial when a step of speech has accumulated.
    pub(crate) fn audio(
        &mut self,
        samples: &[f32],
        budget: &dyn Budget,
        out: &mut Vec<Event>,
    ) -> Result<()> {
        if self.seg_start.is_none() {
            return Ok(());
        }
        self.buf.extend_from_slice(samples);
        let end = self.buf_start + self.buf.len() as u64;
        let step = (f64::from(self.live.step_ms) / 1e3 * self.sample_rate) as u64;
        if !self.live.partials || end - self.last_decode_end < step.max(1) {
            return Ok(());
        }
        if budget.lagging() {
            // Behind real time: skip this partial; the next one covers more audio.
            budget.skipped_partial();
            return Ok(());
        }
        self.last_decode_end = end;
        // A partial may trim the buffer and change the prompt: a speculation made before
        // it would no longer be the decode `end` makes.
        self.speculative = None;
        let abort = || budget.abort();
        let fallback = self.partial_fallback.clone();
        let hyp = match self.decode(&fallback, Some(&abort)) {
            Ok(h) => h,
            Err(Error::Cancelled) => {
                budget.skipped_partial();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(hyp) = hyp else { return Ok(()) };
        self.agreement.insert(&hyp.words);
        let text = self.buffer_text();
        if !text.is_empty() && text != self.last_partial {
            out.push(Event::Partial {
                text: text.clone(),
                start_s: self.s(self.buf_start),
                end_s: self.s(end),
            });
            self.last_partial = text;
        }
        self.trim(&hyp, out);
        Ok(())
    }

    /// Committed and tentative words of the buffer.
    fn buffer_text(&self) -> String {
        self.agreement
            .committed()
            .iter()
            .chain(self.agreement.tentative())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Past `max_buffer_s`, cut the buffer at the end of the last wholly committed segment
    /// and finalize its words.
    fn trim(&mut self, hyp: &Hypothesis, out: &mut Vec<Event>) {
        let len_s = self.buf.len() as f64 / self.sample_rate;
        if len_s <= f64::from(self.live.max_buffer_s) {
            return;
        }
        let n_committed = align_committed(self.agreement.committed(), &hyp.words);
        let Some(&(end_s, n_words)) = hyp
            .segment_ends
            .iter()
            .rev()
            .find(|&&(end_s, n)| n <= n_committed && n > 0 && end_s > 0.0)
        else {
            return;
        };
        let cut = ((end_s * self.sample_rate) as usize).min(self.buf.len());
        let n = n_words.min(self.agreement.committed().len());
        let text = self.agreement.committed()[..n].join(" ");
        self.agreement.drop_committed(n);
        let start_s = self.s(self.buf_start);
        self.buf.drain(..cut);
        self.buf_start += cut as u64;
        self.push_context(&text);
        out.push(Event::Final {
            text,
            start_s,
            end_s: self.s(self.buf_start),
            words: Vec::new(),
            avg_logprob: Some(hyp.avg_logprob),
            no_speech_prob: hyp.no_speech_prob,
        });
        self.last_partial.clear();
    }

    /// Speech ended at `end` (absolute sample): decode the buffer up to there once more,
    /// with the full fallback, and finalize everything not yet final.
    pub(crate) fn end(&mut self, end: u64, out: &mut Vec<Event>) -> Result<()> {
        let Some(_) = self.seg_start.take() else {
            return Ok(());
        };
        let keep = end.saturating_sub(self.buf_start) as usize;
        self.buf.truncate(keep);
        let hyp = match self.speculative.take() {
            Some((at, hyp)) if at == self.buf_start + self.buf.len() as u64 => hyp,
            _ if self.buf.is_empty() => None,
            _ => {
                let fallback = self.opts.fallback.clone();
                self.decode_for_end(&fallback, None)?
            }
        };
        if hyp.is_none() {
            // The guards rejected the last decode: do not prompt with this stretch.
            self.context.clear();
        }
        let (avg_logprob, no_speech_prob) = hyp
            .as_ref()
            .map_or((None, None), |h| (Some(h.avg_logprob), h.no_speech_prob));
        if let Some(h) = &hyp {
            self.agreement.finish(&h.words);
        }
        // Committed words are final whatever the last decode says.
        let text = self.agreement.committed().join(" ");
        self.agreement.reset();
        if !text.is_empty() {
            self.push_context(&text);
            out.push(Event::Final {
                text,
                start_s: self.s(self.buf_start),
                end_s: self.s(end.max(self.buf_start)),
                words: Vec::new(),
                avg_logprob,
                no_speech_prob,
            });
        }
        self.buf.clear();
        self.last_partial.clear();
        Ok(())
    }

    /// Drops any open segment's audio (the stream restarts after a gap); the text
    /// context stays.
    pub(crate) fn reset_audio(&mut self) {
        self.seg_start = None;
        self.speculative = None;
        self.buf.clear();
        self.agreement.reset();
        self.last_partial.clear();
    }

    /// Forgets the stream, text context included.
    pub(crate) fn reset(&mut self) {
        self.reset_audio();
        self.context = self.opts.initial_prompt.clone().unwrap_or_default();
    }

    fn push_context(&mut self, text: &str) {
        if !self.opts.condition_on_previous_text {
            return;
        }
        if !self.context.is_empty() {
            self.context.push(' ');
        }
        self.context.push_str(text.trim());
        // Keep the last `prompt_chars` characters, from a word start.
        let n = self.context.chars().count();
        if n > self.live.prompt_chars {
            let skip = n - self.live.prompt_chars;
            let cut: String = self.context.chars().skip(skip).collect();
            self.context = match cut.find(' ') {
                Some(i) => cut[i + 1..].to_string(),
                None => cut,
            };
        }
    }

    /// The end-of-speech decode of the buffer. Unlike a partial, a rejected decode does
    /// not drop the prompt here: that happens when the result is used (in
    /// [`WhisperStage::end`]), so a speculation that is thrown away changes nothing.
    fn decode_for_end(
        &mut self,
        fallback: &Fallback,
        abort: Option<&dyn Fn() -> bool>,
    ) -> Result<Option<Hypothesis>> {
        let context = self.context.clone();
        let hyp = self.decode(fallback, abort)?;
        self.context = context;
        Ok(hyp)
    }

    /// Decodes the buffer. `None` when the guards call it silence or unreliable (the
    /// prompt is then dropped).
    fn decode(
        &mut self,
        fallback: &Fallback,
        abort: Option<&dyn Fn() -> bool>,
    ) -> Result<Option<Hypothesis>> {
        let w = whisper_of(&self.model)?;
        if self.decoder.is_silent(&self.buf) {
            return Ok(None);
        }
        let prompt = if self.context.is_empty() {
            Vec::new()
        } else {
            w.tokenizer().encode(&format!(" {}", self.context.trim()))?
        };
        let outcome = self.decoder.decode(
            w,
            &self.buf,
            &prompt,
            fallback,
            abort,
            Instant::now(),
            &mut self.timing,
        )?;
        if !self.passes_guards(&outcome) {
            self.context.clear();
            return Ok(None);
        }
        let r = &outcome.result;
        let mut all = Vec::new();
        let mut segment_ends = Vec::new();
        for s in &outcome.split.segments {
            all.extend(words(&self.decoder.text(w, &r.tokens[s.tokens.clone()])));
            segment_ends.push((s.end_s, all.len()));
        }
        Ok(Some(Hypothesis {
            words: all,
            segment_ends,
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
}

fn whisper_of(model: &Model) -> Result<&WhisperModel> {
    model
        .as_whisper()
        .ok_or_else(|| Error::invalid("model", "a Whisper model", model.family().name()))
}
