//! Whisper over whole files: OpenAI's sequential long-form algorithm over a
//! [`WhisperModel`] and the pure decoders of [`crate::decode::whisper`], and the one-window
//! decode ([`WindowDecoder`]) that live streaming shares with it.
//!
//! The audio is cut into windows at `seek`; each window is encoded once, decoded with
//! temperature fallback, split into segments at its timestamp tokens, and `seek` moves to
//! the last complete timestamp (or by the whole window when the decode has no timestamps
//! or the window is silence). The previous windows' text is the next window's prompt
//! unless disabled or the window needed a high temperature. Window length, hop and sample
//! rate come from the model's feature contract, not from constants.
//! Reference: <https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L38-L507>
//!
//! Each window's log-mel is computed on its own samples, as transformers' pipeline does
//! (OpenAI normalizes over the whole file's spectrogram instead: the difference is the
//! `max - 8` clamp, which only matters for windows much quieter than the loudest one).

use std::time::Instant;

use crate::decode::WhisperStep;
use crate::decode::whisper::{
    DecodeOptions, DecodingResult, Fallback, Search, SpecialTokens, Task, WindowSegment,
    WindowSplit, decode_with_fallback, detect_language, initial_tokens, split_segments,
};
use crate::features::MelPadding;
use crate::model::whisper::WhisperModel;
use crate::result::{Segment, Timing, Transcript};
use crate::{Error, Result};

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

impl std::str::FromStr for Language {
    type Err = Error;

    /// `auto`, or a language code or name (checked against the model's vocabulary when
    /// decoding starts).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "" => Err(Error::invalid(
                "language",
                "auto or a language code",
                "nothing",
            )),
            "auto" => Ok(Language::Auto),
            code => Ok(Language::Code(code.to_string())),
        }
    }
}

/// Options of Whisper decoding, offline and live (faster-whisper's names in brackets).
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperOptions {
    /// Spoken language (`language`).
    pub language: Language,
    /// Transcribe or translate to English (`task`).
    pub task: Task,
    /// Greedy or beam search at temperature 0 (`beam_size`, `patience`); sampling above,
    /// during fallback.
    pub search: Search,
    /// Ranking of finished hypotheses: `None` divides by length, `Some(a)` is the Google
    /// NMT penalty `((5 + len) / 6)^a` (`length_penalty`).
    pub length_penalty: Option<f32>,
    /// Timestamp tokens in the decode (`without_timestamps = false`): segment times come
    /// from them; without them each window is one segment.
    pub timestamps: bool,
    /// Prompt each window with the previous windows' text
    /// (`condition_on_previous_text`).
    pub condition_on_previous_text: bool,
    /// Text that primes the first window: names, spelling, style (`initial_prompt`).
    pub initial_prompt: Option<String>,
    /// Temperature schedule, `best_of` and the compression-ratio, log-probability and
    /// no-speech thresholds.
    pub fallback: Fallback,
    /// Tokens never sampled (`suppress_tokens`); `None` keeps the model's list.
    pub suppress_tokens: Option<Vec<u32>>,
    /// Most tokens sampled per window (`max_new_tokens`); `None`: `n_text_ctx / 2`.
    pub max_new_tokens: Option<usize>,
    /// How a window shorter than 30 s is padded: the waveform (OpenAI, transformers) or
    /// the log-mel features (faster-whisper).
    pub mel_padding: MelPadding,
    /// Windows whose peak amplitude is below this are skipped without running the model
    /// (`Some(1e-4)`, -80 dBFS: digital silence, on which Whisper is prone to
    /// hallucinate "you" with a confidence the no-speech rule does not catch). `None`
    /// decodes every window.
    pub silence_peak: Option<f32>,
}

impl Default for WhisperOptions {
    /// OpenAI's `transcribe()` defaults, greedy.
    fn default() -> Self {
        WhisperOptions {
            language: Language::Auto,
            task: Task::Transcribe,
            search: Search::Greedy,
            length_penalty: None,
            timestamps: true,
            condition_on_previous_text: true,
            initial_prompt: None,
            fallback: Fallback::default(),
            suppress_tokens: None,
            max_new_tokens: None,
            mel_padding: MelPadding::default(),
            silence_peak: Some(1e-4),
        }
    }
}

/// Counts decoder calls, records when the first token's logits arrive, and lets a caller
/// abandon a decode between steps.
struct Instrumented<'a, S> {
    inner: &'a mut S,
    n_steps: usize,
    /// Tokens fed since the last reset.
    n_fed: usize,
    /// Prompt length: the step that completes it returns the first token's logits.
    prompt_len: usize,
    first_token_at: Option<Instant>,
    abort: Option<&'a dyn Fn() -> bool>,
}

impl<S: WhisperStep> WhisperStep for Instrumented<'_, S> {
    fn n_vocab(&self) -> usize {
        self.inner.n_vocab()
    }
    fn step(&mut self, tokens: &[u32], n_hyp: usize) -> Result<Vec<f32>> {
        if self.abort.is_some_and(|f| f()) {
            return Err(Error::Cancelled);
        }
        self.n_steps += 1;
        let logits = self.inner.step(tokens, n_hyp)?;
        self.n_fed += tokens.len() / n_hyp.max(1);
        if self.first_token_at.is_none() && self.n_fed >= self.prompt_len {
            self.first_token_at = Some(Instant::now());
        }
        Ok(logits)
    }
    fn reorder(&mut self, src: &[usize]) -> Result<()> {
        self.inner.reorder(src)
    }
    fn reset(&mut self) -> Result<()> {
        self.n_fed = 0;
        self.inner.reset()
    }
}

/// What one window's decode gave.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOutcome {
    /// The accepted decode.
    pub result: DecodingResult,
    /// Whether the guards call the window silence: no-speech probability above the
    /// threshold without a confident decode. Its text should not be used.
    pub no_speech: bool,
    /// Segments of the window, times relative to the window start (one segment without
    /// timestamps).
    pub split: WindowSplit,
}

/// Decodes windows of one audio stream: the model's special tokens and the options that
/// do not change from window to window; the language once detected. It holds no model, so
/// a live session can keep one next to its shared [`crate::model::Model`].
#[derive(Debug, Clone)]
pub struct WindowDecoder {
    special: SpecialTokens,
    base: DecodeOptions,
    fallback: Fallback,
    silence_peak: Option<f32>,
    mel_padding: MelPadding,
    /// The language token: given, detected from the first window, or `None` for
    /// English-only models.
    language: Option<u32>,
    detect: bool,
}

impl WindowDecoder {
    /// Checks `opts` against `model` (language code, English-only models, vocabulary).
    ///
    /// Fails with [`Error::InvalidInput`] for an unknown language, a language other than
    /// English on an English-only model, or a tokenizer that does not fit the model.
    pub fn new(model: &WhisperModel, opts: &WhisperOptions) -> Result<Self> {
        let tokenizer = model.tokenizer();
        let special: SpecialTokens = tokenizer.special_tokens()?;
        let params = model.params();
        if special.n_vocab != params.n_vocab {
            return Err(Error::invalid(
                "tokenizer vocabulary",
                format!("{} tokens as the model", params.n_vocab),
                special.n_vocab,
            ));
        }
        let mut language = match &opts.language {
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
        let max_tokens = opts.max_new_tokens.unwrap_or(params.n_text_ctx / 2);
        if max_tokens == 0 || max_tokens >= params.n_text_ctx {
            return Err(Error::invalid(
                "max_new_tokens",
                format!("1..{}", params.n_text_ctx),
                max_tokens,
            ));
        }
        let base = DecodeOptions {
            task: opts.task,
            timestamps: opts.timestamps,
            search: opts.search,
            length_penalty: opts.length_penalty,
            n_text_ctx: params.n_text_ctx,
            max_tokens,
            suppress_tokens: opts
                .suppress_tokens
                .clone()
                .unwrap_or_else(|| params.suppress_tokens.clone()),
            blank_tokens: tokenizer.blank_tokens()?,
            language,
            ..DecodeOptions::default()
        };
        base.validate()?;
        Ok(WindowDecoder {
            detect: special.multilingual && language.is_none(),
            special,
            base,
            fallback: opts.fallback.clone(),
            silence_peak: opts.silence_peak,
            mel_padding: opts.mel_padding,
            language,
        })
    }

    /// The special tokens of the model's vocabulary.
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    /// The language token in use (given or detected); `None` before detection and for
    /// English-only models.
    pub fn language(&self) -> Option<u32> {
        self.language
    }

    /// The language code in use, if known.
    pub fn language_code(&self, model: &WhisperModel) -> Option<String> {
        self.language
            .and_then(|id| model.tokenizer().language_code(id))
            .map(str::to_string)
    }

    /// The fallback schedule and thresholds these windows are decoded with.
    pub fn fallback(&self) -> &Fallback {
        &self.fallback
    }

    /// Whether `samples` are below the silence floor (never decoded).
    pub fn is_silent(&self, samples: &[f32]) -> bool {
        self.silence_peak
            .is_some_and(|floor| samples.iter().all(|x| x.abs() < floor))
    }

    /// Decodes one window: `samples` (at most the model's window, `n_samples`, at its
    /// sample rate) are padded, encoded and decoded after `prompt` (previous text tokens,
    /// without `<|startofprev|>`) and the forced start `prefix` (OpenAI's `prefix`: text
    /// the decode must begin with; its tokens are not in the result), with `fallback` (the
    /// options' schedule, or a shorter one for live partials). `abort` is asked before
    /// every decoder step; when it answers true the decode stops with
    /// [`Error::Cancelled`].
    ///
    /// Adds its stage times to `timing` (and `first_token_ms`, relative to `t0`, if unset).
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &mut self,
        model: &WhisperModel,
        samples: &[f32],
        prompt: &[u32],
        prefix: &[u32],
        fallback: &Fallback,
        abort: Option<&dyn Fn() -> bool>,
        t0: Instant,
        timing: &mut Timing,
    ) -> Result<WindowOutcome> {
        let mel_cfg = model.log_mel().config();
        let n_window = mel_cfg.n_samples;
        let hop = mel_cfg.hop_length;
        let window = &samples[..samples.len().min(n_window)];

        let t = Instant::now();
        let mel = model.log_mel().compute_window(window, self.mel_padding)?;
        timing.features_ms += t.elapsed().as_secs_f64() * 1e3;

        let t = Instant::now();
        let audio = model.encode(&mel)?;
        timing.encoder_ms += t.elapsed().as_secs_f64() * 1e3;

        let t = Instant::now();
        let mut state = model.decoder(&audio);
        let mut opts = self.base.clone();
        opts.prompt = prompt.to_vec();
        opts.prefix = prefix.to_vec();
        // The prompt's length does not depend on which language token it carries.
        let prompt_len = initial_tokens(
            &self.special,
            &DecodeOptions {
                language: Some(self.language.unwrap_or(self.special.language_begin)),
                ..opts.clone()
            },
        )?
        .tokens
        .len();
        let mut step = Instrumented {
            inner: &mut state,
            n_steps: 0,
            n_fed: 0,
            prompt_len,
            first_token_at: None,
            abort,
        };
        let outcome = (|| {
            if self.detect && self.language.is_none() {
                let (lang, _) = detect_language(&mut step, &self.special)?;
                self.language = Some(lang);
            }
            opts.language = self.language;
            let tokenizer = model.tokenizer();
            let text_of = |ids: &[u32]| tokenizer.decode(ids, true);
            decode_with_fallback(&mut step, &self.special, &opts, fallback, &text_of)
        })();
        timing.n_decoder_steps += step.n_steps;
        if timing.first_token_ms.is_none()
            && let Some(at) = step.first_token_at
        {
            timing.first_token_ms = Some(at.duration_since(t0).as_secs_f64() * 1e3);
        }
        timing.decoder_ms += t.elapsed().as_secs_f64() * 1e3;
        let result = outcome?;

        let n_frames = window.len().div_ceil(hop.max(1)).max(1);
        let frame_s = hop as f64 / f64::from(mel_cfg.sampling_rate);
        let split = if opts.timestamps {
            split_segments(
                &result.tokens,
                self.special.timestamp_begin,
                0,
                n_frames.min(mel_cfg.nb_max_frames),
                frame_s,
            )
        } else {
            WindowSplit {
                segments: vec![WindowSegment {
                    start_s: 0.0,
                    end_s: n_frames as f64 * frame_s,
                    tokens: 0..result.tokens.len(),
                }],
                seek_advance_frames: n_frames,
                single_timestamp_ending: false,
            }
        };
        Ok(WindowOutcome {
            no_speech: self.fallback.should_skip(&result),
            result,
            split,
        })
    }

    /// The text of `tokens` with timestamps and other special tokens dropped.
    pub fn text(&self, model: &WhisperModel, tokens: &[u32]) -> String {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        model.tokenizer().decode(&text, true)
    }
}

/// Transcribes mono `samples` of any length at the model's sample rate (16 kHz).
///
/// `progress` is called with the fraction of audio done after each window.
pub fn transcribe(
    model: &WhisperModel,
    samples: &[f32],
    opts: &WhisperOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript> {
    let t_start = Instant::now();
    crate::audio::check_samples(samples)?;
    let mut decoder = WindowDecoder::new(model, opts)?;
    let mel_cfg = model.log_mel().config().clone();
    let hop = mel_cfg.hop_length.max(1);
    let n_window_frames = mel_cfg.nb_max_frames;
    let sample_rate = f64::from(mel_cfg.sampling_rate);
    let frame_s = hop as f64 / sample_rate;
    let special = decoder.special().clone();
    let mut timing = Timing {
        audio_s: samples.len() as f64 / sample_rate,
        ..Timing::default()
    };

    let mut all_tokens: Vec<u32> = match &opts.initial_prompt {
        Some(p) => model.tokenizer().encode(&format!(" {}", p.trim()))?,
        None => Vec::new(),
    };
    let mut prompt_reset_since = 0;
    let mut segments = Vec::new();
    let n_content_frames = samples.len() / hop;
    let mut seek = 0usize;
    let done = |seek: usize| (seek as f64 / n_content_frames.max(1) as f64).min(1.0);
    while seek < n_content_frames.max(1) {
        let segment_frames = n_window_frames
            .min(n_content_frames.saturating_sub(seek))
            .max(1);
        let start = (seek * hop).min(samples.len());
        // Only the audio of this segment: OpenAI pads the window with zeros after it.
        let chunk_end = (start + segment_frames * hop).min(samples.len());
        let window = &samples[start..chunk_end];
        if decoder.is_silent(window) {
            seek += segment_frames;
            progress(done(seek));
            continue;
        }
        let prompt = all_tokens[prompt_reset_since..].to_vec();
        let fallback = decoder.fallback().clone();
        let outcome = decoder.decode(
            model,
            window,
            &prompt,
            &[],
            &fallback,
            None,
            t_start,
            &mut timing,
        )?;
        if outcome.no_speech {
            seek += segment_frames;
            progress(done(seek));
            continue;
        }
        let result = &outcome.result;
        let offset_s = seek as f64 * frame_s;
        // The window holds exactly `segment_frames` frames of audio, so the decoder's
        // split is bounded by them.
        let split = &outcome.split;
        for s in &split.segments {
            let tokens = result.tokens[s.tokens.clone()].to_vec();
            let text = decoder.text(model, &tokens);
            let (start_s, end_s) = (offset_s + s.start_s, offset_s + s.end_s);
            // OpenAI drops segments that are empty or zero-length.
            if text.trim().is_empty() || end_s <= start_s {
                continue;
            }
            segments.push(Segment {
                start_s,
                end_s: end_s.min(timing.audio_s.max(start_s)),
                text,
                tokens,
                words: Vec::new(),
                avg_logprob: Some(result.avg_logprob),
                no_speech_prob: result.no_speech_prob,
                temperature: Some(result.temperature),
                compression_ratio: Some(result.compression_ratio),
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
        progress(done(seek));
    }

    timing.finish(t_start.elapsed().as_secs_f64() * 1e3);
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .trim()
        .to_string();
    Ok(Transcript {
        text,
        language: decoder.language_code(model),
        segments,
        score: None,
        timing,
    })
}
