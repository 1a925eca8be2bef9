//! Whisper transcription of whole files: OpenAI's sequential long-form algorithm over
//! [`WhisperModel`] and the pure decoders of [`crate::decode::whisper`].
//!
//! The audio is cut into 30 s windows at `seek`; each window is encoded once, decoded
//! with temperature fallback, split into segments at its timestamp tokens, and `seek`
//! moves to the last complete timestamp (or by the whole window when the decode has no
//! timestamps or the window is silence). The previous windows' text is the next
//! window's prompt unless disabled or the window needed a high temperature.
//! Reference: <https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L38-L507>
//!
//! Each window's log-mel is computed on its own 30 s of samples, as transformers'
//! pipeline does (OpenAI normalizes over the whole file's spectrogram instead: the
//! difference is the `max - 8` clamp, which only matters for windows much quieter than
//! the loudest one).

use std::time::Instant;

use serde::Serialize;

use crate::decode::whisper::{
    DecodeOptions, Fallback, Search, SpecialTokens, Task, decode_with_fallback, detect_language,
    split_segments,
};
use crate::model::whisper::WhisperModel;
use crate::text::WhisperTokenizer;
use crate::{Error, Result};

/// Samples per 30 s window at 16 kHz.
const N_SAMPLES: usize = 480_000;
/// Mel frames per window.
const N_FRAMES: usize = 3000;
/// Samples per mel frame.
const HOP: usize = 160;

/// Which language the audio is in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Language {
    /// Detect it from the first window (multilingual models); English for English-only
    /// models.
    #[default]
    Auto,
    /// A Whisper language code (`en`, `de`, …) or name (`english`).
    Code(String),
}

/// Options of a transcription.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    /// Spoken language.
    pub language: Language,
    /// Transcribe or translate to English.
    pub task: Task,
    /// Greedy or beam search at temperature 0 (sampling above, during fallback).
    pub search: Search,
    /// Ranking of finished hypotheses: `None` divides by length, `Some(a)` is the
    /// Google NMT penalty `((5 + len) / 6)^a`.
    pub length_penalty: Option<f32>,
    /// Timestamp tokens in the decode (segment times come from them; without them each
    /// window is one segment).
    pub timestamps: bool,
    /// Prompt each window with the previous windows' text.
    pub condition_on_previous_text: bool,
    /// Text that primes the first window (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Temperature fallback and silence thresholds.
    pub fallback: Fallback,
    /// Windows whose peak amplitude is below this are skipped without running the model
    /// (`Some(1e-4)`, -80 dBFS: digital silence, on which Whisper is prone to
    /// hallucinate "you" with a confidence the no-speech rule does not catch). `None`
    /// decodes every window.
    pub silence_peak: Option<f32>,
}

impl Default for TranscribeOptions {
    /// OpenAI's `transcribe()` defaults, greedy.
    fn default() -> Self {
        TranscribeOptions {
            language: Language::Auto,
            task: Task::Transcribe,
            search: Search::Greedy,
            length_penalty: None,
            timestamps: true,
            condition_on_previous_text: true,
            initial_prompt: None,
            fallback: Fallback::default(),
            silence_peak: Some(1e-4),
        }
    }
}

/// A piece of the transcript with its time span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Start, seconds from the start of the audio.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Text, leading space kept as Whisper produces it.
    pub text: String,
    /// Token ids, timestamps included.
    pub tokens: Vec<u32>,
    /// Average log-probability of the window's decode.
    pub avg_logprob: f32,
    /// Probability that the window holds no speech.
    pub no_speech_prob: Option<f32>,
    /// Temperature the window was decoded at.
    pub temperature: f32,
    /// Compression ratio of the window's text.
    pub compression_ratio: f32,
}

/// Wall time per stage, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timing {
    /// Log-mel features.
    pub features_ms: f64,
    /// Encoder runs.
    pub encoder_ms: f64,
    /// Decoder runs and search.
    pub decoder_ms: f64,
    /// Decoder steps taken (every call of the decoder graph).
    pub n_decoder_steps: usize,
    /// Whole transcription.
    pub total_ms: f64,
    /// Audio duration, seconds.
    pub audio_s: f64,
    /// `total / audio`: below 1 is faster than real time.
    pub real_time_factor: f64,
}

/// The result of [`transcribe`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// All segments' text, trimmed.
    pub text: String,
    /// Language code used (detected or given); `None` for English-only models.
    pub language: Option<String>,
    /// Segments in time order.
    pub segments: Vec<Segment>,
    /// Stage timings.
    pub timing: Timing,
}

/// Counts decoder calls for [`Timing::n_decoder_steps`].
struct Counting<'a, S> {
    inner: &'a mut S,
    n: usize,
}

impl<S: crate::decode::WhisperStep> crate::decode::WhisperStep for Counting<'_, S> {
    fn n_vocab(&self) -> usize {
        self.inner.n_vocab()
    }
    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        self.n += 1;
        self.inner.step(tokens, n_hyp)
    }
    fn reorder(&mut self, src: &[usize]) -> Result<()> {
        self.inner.reorder(src)
    }
    fn reset(&mut self) -> Result<()> {
        self.inner.reset()
    }
}

/// Transcribes 16 kHz mono `samples` of any length.
///
/// `progress` is called with the fraction of audio done after each window.
pub fn transcribe(
    model: &WhisperModel,
    tokenizer: &WhisperTokenizer,
    samples: &[f32],
    opts: &TranscribeOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript> {
    let t_start = Instant::now();
    crate::audio::check_samples(samples)?;
    let special: SpecialTokens = tokenizer.special_tokens()?;
    let params = model.params();
    if special.n_vocab != params.n_vocab {
        return Err(Error::invalid(
            "tokenizer vocabulary",
            format!("{} tokens as the model", params.n_vocab),
            special.n_vocab,
        ));
    }
    let mut timing = Timing {
        audio_s: samples.len() as f64 / 16_000.0,
        ..Timing::default()
    };
    let text_of = |ids: &[u32]| tokenizer.decode(ids, true);

    let mut language =
        match &opts.language {
            Language::Code(code) => Some(tokenizer.language_token(code).ok_or_else(|| {
                Error::invalid("language", "a Whisper language code or name", code)
            })?),
            Language::Auto => None,
        };
    if !special.multilingual {
        if language.is_some() && opts.language != Language::Code("en".into()) {
            return Err(Error::invalid(
                "language",
                "en (English-only model)",
                format!("{:?}", opts.language),
            ));
        }
        language = None;
    }

    let mut base = DecodeOptions {
        task: opts.task,
        timestamps: opts.timestamps,
        search: opts.search,
        length_penalty: opts.length_penalty,
        n_text_ctx: params.n_text_ctx,
        max_tokens: params.n_text_ctx / 2,
        suppress_tokens: params.suppress_tokens.clone(),
        blank_tokens: tokenizer.blank_tokens()?,
        ..DecodeOptions::default()
    };
    let mut all_tokens: Vec<u32> = match &opts.initial_prompt {
        Some(p) => tokenizer.encode(&format!(" {}", p.trim()))?,
        None => Vec::new(),
    };
    let mut prompt_reset_since = 0;
    let mut segments = Vec::new();
    let n_content_frames = samples.len() / HOP;
    let mut seek = 0usize;
    while seek < n_content_frames.max(1) {
        let segment_frames = N_FRAMES.min(n_content_frames.saturating_sub(seek)).max(1);
        let start = (seek * HOP).min(samples.len());
        let end = (start + N_SAMPLES).min(samples.len());
        // Only the audio of this segment: OpenAI pads the window with zeros after it.
        let chunk_end = (start + segment_frames * HOP).min(end);

        let window = &samples[start..chunk_end];
        if let Some(floor) = opts.silence_peak
            && window.iter().all(|x| x.abs() < floor)
        {
            seek += segment_frames;
            progress((seek as f64 / n_content_frames.max(1) as f64).min(1.0));
            continue;
        }
        let t = Instant::now();
        let mel = model.log_mel().compute_padded(window)?;
        timing.features_ms += t.elapsed().as_secs_f64() * 1e3;

        let t = Instant::now();
        let audio = model.encode(&mel)?;
        timing.encoder_ms += t.elapsed().as_secs_f64() * 1e3;

        let t = Instant::now();
        let mut state = model.decoder(&audio);
        let mut step = Counting {
            inner: &mut state,
            n: 0,
        };
        if special.multilingual && language.is_none() {
            let (lang, _) = detect_language(&mut step, &special)?;
            language = Some(lang);
        }
        base.language = language;
        base.prompt = all_tokens[prompt_reset_since..].to_vec();
        let result = decode_with_fallback(&mut step, &special, &base, &opts.fallback, &text_of)?;
        timing.n_decoder_steps += step.n;
        timing.decoder_ms += t.elapsed().as_secs_f64() * 1e3;

        if opts.fallback.should_skip(&result) {
            seek += segment_frames;
            progress((seek as f64 / n_content_frames.max(1) as f64).min(1.0));
            continue;
        }
        let split = if opts.timestamps {
            split_segments(
                &result.tokens,
                special.timestamp_begin,
                seek,
                segment_frames,
            )
        } else {
            crate::decode::whisper::WindowSplit {
                segments: vec![crate::decode::whisper::WindowSegment {
                    start_s: seek as f64 * HOP as f64 / 16_000.0,
                    end_s: (seek + segment_frames) as f64 * HOP as f64 / 16_000.0,
                    tokens: 0..result.tokens.len(),
                }],
                seek_advance_frames: segment_frames,
                single_timestamp_ending: false,
            }
        };
        for s in &split.segments {
            let tokens = result.tokens[s.tokens.clone()].to_vec();
            let text_tokens: Vec<u32> = tokens
                .iter()
                .copied()
                .filter(|&t| t < special.eot)
                .collect();
            let text = text_of(&text_tokens);
            // OpenAI drops segments that are empty or zero-length.
            if text.trim().is_empty() || s.end_s <= s.start_s {
                continue;
            }
            segments.push(Segment {
                start_s: s.start_s,
                end_s: s.end_s.min(timing.audio_s.max(s.start_s)),
                text,
                tokens,
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
                temperature: result.temperature,
                compression_ratio: result.compression_ratio,
            });
        }
        all_tokens.extend(
            result
                .tokens
                .iter()
                .copied()
                .filter(|&t| t < special.eot || t >= special.timestamp_begin),
        );
        if crate::decode::whisper::longform::resets_prompt(
            opts.condition_on_previous_text,
            result.temperature,
        ) {
            prompt_reset_since = all_tokens.len();
        }
        seek += split.seek_advance_frames.max(1);
        progress((seek as f64 / n_content_frames.max(1) as f64).min(1.0));
    }

    timing.total_ms = t_start.elapsed().as_secs_f64() * 1e3;
    timing.real_time_factor = timing.total_ms / 1e3 / timing.audio_s.max(1e-9);
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .trim()
        .to_string();
    Ok(Transcript {
        text,
        language: language
            .and_then(|id| tokenizer.language_code(id))
            .map(str::to_string),
        segments,
        timing,
    })
}
