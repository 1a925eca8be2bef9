//! Flags shared by the commands that run models: which engine, and how to decode.
//!
//! Each flag maps onto one field of the library's plain-data options
//! ([`hearken::engine::EngineOptions`], [`hearken::offline::TranscribeOptions`]), under
//! faster-whisper's names where it has one, so the same words mean the same thing here,
//! in a server request and in the C API. Values are parsed by the library's `FromStr`
//! implementations: an unknown value is an error, never ignored.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hearken::decode::ctc::{
    BeamOptions, CtcSearch, DEFAULT_HOTWORD_BONUS, Hotword, LmFusion, NgramLm,
};
use hearken::decode::whisper::{Fallback, Search, Task};
use hearken::engine::{EngineChoice, EngineOptions, ExecutionProvider, OrtOptions};
use hearken::model::ctc::CtcOptions;
use hearken::offline::TranscribeOptions;
use hearken::offline::whisper::{Language, WhisperOptions};

/// The JSON envelope's description of an opened model: where it came from and how it runs.
pub fn source(model: &hearken::model::Model, dir: &std::path::Path) -> hearken::output::Source {
    hearken::output::Source {
        model: dir.display().to_string(),
        engine: model.engine_name().to_string(),
        providers: model
            .providers()
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
        load_ms: model.load_ms(),
        ..hearken::output::Source::default()
    }
}

/// Engine selection flags, shared by every command that runs a model.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Inference engine: `auto` (ONNX Runtime when its library is present, else tract),
    /// `ort` (ONNX Runtime) or `tract` (pure Rust).
    #[arg(long, default_value = "auto")]
    pub engine: String,
    /// ONNX Runtime execution providers in priority order: cpu, cuda[:N], tensorrt[:N].
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    pub ep: Vec<String>,
    /// Continue when a requested execution provider cannot be registered.
    #[arg(long)]
    pub allow_fallback: bool,
    /// Intra-op threads for ONNX Runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, then .ort/ from models/setup.sh).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
}

impl EngineArgs {
    /// The library's engine options these flags describe.
    pub fn options(&self) -> Result<EngineOptions> {
        Ok(EngineOptions {
            engine: self.engine.parse::<EngineChoice>()?,
            ort: OrtOptions {
                dylib_path: self.ort_lib.clone(),
                providers: self
                    .ep
                    .iter()
                    .map(|s| s.parse::<ExecutionProvider>())
                    .collect::<hearken::Result<_>>()?,
                allow_fallback: self.allow_fallback,
                intra_threads: self.threads,
                ..OrtOptions::default()
            },
            ..EngineOptions::default()
        })
    }

    /// The same flags with a different default engine (when `--engine` was left at
    /// `auto`): `hearken vad` needs ONNX Runtime for Silero.
    pub fn options_preferring(&self, engine: EngineChoice) -> Result<EngineOptions> {
        let mut o = self.options()?;
        if o.engine == EngineChoice::Auto {
            o.engine = engine;
        }
        Ok(o)
    }
}

/// A threshold that `none` disables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold(pub Option<f32>);

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Threshold(None));
        }
        match s.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(Threshold(Some(v))),
            _ => Err(format!("expected a number or `none`, got `{s}`")),
        }
    }
}

/// Decoding flags of `transcribe`, `listen`, `eval` and `bench` (faster-whisper's names).
#[derive(clap::Args, Debug, Clone)]
pub struct DecodeArgs {
    /// Beam size (1: greedy). Whisper: beam search at temperature 0; CTC: prefix beam
    /// search (16 by default with --lm or --hotword).
    #[arg(long, alias = "beam")]
    pub beam_size: Option<usize>,
    /// Beam search patience (finished hypotheses collected = beam size × patience).
    #[arg(long, default_value_t = 1.0)]
    pub patience: f32,
    /// Whisper: rank finished hypotheses by length-normalized log-probability (absent), or
    /// with the Google NMT length penalty of this exponent.
    #[arg(long)]
    pub length_penalty: Option<f32>,
    /// Whisper: temperatures tried in turn when a decode fails the thresholds, e.g.
    /// `0,0.2,0.4,0.6,0.8,1.0` (a single `0` disables fallback).
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8,1.0")]
    pub temperature: Vec<f32>,
    /// Whisper: samples drawn at each temperature above 0.
    #[arg(long, default_value_t = 5)]
    pub best_of: usize,
    /// Whisper: fall back to a higher temperature when the text's gzip compression ratio
    /// is above this (`none` to disable).
    #[arg(long, default_value = "2.4")]
    pub compression_ratio_threshold: Threshold,
    /// Whisper: fall back when the average log-probability is below this (`none` to
    /// disable).
    #[arg(long, default_value = "-1.0", allow_hyphen_values = true)]
    pub log_prob_threshold: Threshold,
    /// Whisper: treat a window as silence when its no-speech probability is above this
    /// and the decode is not confident (`none` to disable).
    #[arg(long, default_value = "0.6")]
    pub no_speech_threshold: Threshold,
    /// Whisper: token ids never sampled, comma-separated; `-1` stands for the model's own
    /// list.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "-1",
        allow_hyphen_values = true
    )]
    pub suppress_tokens: Vec<i64>,
    /// Whisper: most tokens sampled per 30 s window (default: half the decoder's context,
    /// 224).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Whisper: spoken language code (`en`, `de`, …) or `auto` to detect it.
    #[arg(long, default_value = "auto")]
    pub language: String,
    /// Whisper: `transcribe`, or `translate` to English.
    #[arg(long, default_value = "transcribe")]
    pub task: String,
    /// Whisper: how a window shorter than 30 s is padded: `auto` (the log-mel features,
    /// faster-whisper's way, for windows of up to 2 s of audio, better on short commands;
    /// the waveform above), `auto:SECONDS`, `features`, or `waveform` (OpenAI's and
    /// transformers', for token-exact comparisons with them).
    #[arg(long, default_value = "auto")]
    pub mel_padding: String,
    /// Whisper: text that primes the first window (names, spellings).
    #[arg(long)]
    pub initial_prompt: Option<String>,
    /// Whisper: do not prompt each window with the previous text.
    #[arg(long)]
    pub no_condition_on_previous_text: bool,
    /// CTC: ARPA n-gram word language model for shallow fusion (beam search).
    #[arg(long)]
    pub lm: Option<PathBuf>,
    /// CTC: language-model weight.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
    /// CTC: word insertion bonus.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f32,
    /// CTC: boost a word or phrase, `WORD[:BONUS]` (repeatable; bonus per token, default
    /// 1.5).
    #[arg(long)]
    pub hotword: Vec<String>,
}

/// Beam width when a language model or hotwords are given without `--beam-size`.
const DEFAULT_LM_BEAM: usize = 16;

impl DecodeArgs {
    /// The library's options these flags describe; `timestamps` is the command's choice.
    pub fn options(&self, timestamps: bool) -> Result<TranscribeOptions> {
        let search = match self.beam_size {
            None | Some(1) => Search::Greedy,
            Some(0) => bail!("--beam-size must be at least 1"),
            Some(beam_size) => Search::Beam {
                beam_size,
                patience: self.patience,
            },
        };
        let task = match self.task.as_str() {
            "transcribe" => Task::Transcribe,
            "translate" => Task::Translate,
            other => bail!("unknown task `{other}` (expected transcribe or translate)"),
        };
        if self.temperature.is_empty() {
            bail!("--temperature needs at least one value");
        }
        let suppress_tokens = if self.suppress_tokens.contains(&-1) {
            None
        } else {
            Some(
                self.suppress_tokens
                    .iter()
                    .map(|&t| u32::try_from(t).with_context(|| format!("--suppress-tokens: {t}")))
                    .collect::<Result<Vec<u32>>>()?,
            )
        };
        let whisper = WhisperOptions {
            language: self.language.parse::<Language>()?,
            task,
            search,
            length_penalty: self.length_penalty,
            timestamps,
            condition_on_previous_text: !self.no_condition_on_previous_text,
            initial_prompt: self.initial_prompt.clone(),
            fallback: Fallback {
                temperatures: self.temperature.clone(),
                best_of: self.best_of,
                compression_ratio_threshold: self.compression_ratio_threshold.0,
                logprob_threshold: self.log_prob_threshold.0,
                no_speech_threshold: self.no_speech_threshold.0,
            },
            suppress_tokens,
            max_new_tokens: self.max_new_tokens,
            mel_padding: self.mel_padding.parse()?,
            ..WhisperOptions::default()
        };
        Ok(TranscribeOptions {
            whisper,
            ctc: self.ctc_options()?,
        })
    }

    fn ctc_options(&self) -> Result<CtcOptions> {
        let hotwords = self
            .hotword
            .iter()
            .map(|h| Hotword::parse(h, DEFAULT_HOTWORD_BONUS))
            .collect::<hearken::Result<Vec<_>>>()?;
        let lm = match &self.lm {
            Some(path) => Some(Arc::new(
                NgramLm::from_arpa_file(path)
                    .with_context(|| format!("loading {}", path.display()))?,
            )),
            None => None,
        };
        let width = match self.beam_size {
            Some(0) => bail!("--beam-size must be at least 1"),
            Some(b) => Some(b),
            None if lm.is_some() || !hotwords.is_empty() => Some(DEFAULT_LM_BEAM),
            None => None,
        };
        Ok(match width {
            None => CtcOptions::default(),
            Some(width) => CtcOptions {
                search: CtcSearch::Beam(BeamOptions::width(width)),
                lm: lm.map(|lm| LmFusion::new(lm).weights(self.alpha, self.beta)),
                hotwords,
                ..CtcOptions::default()
            },
        })
    }

    /// A short name of the search these flags give `family`: `greedy`, `beam 5`.
    pub fn search_label(&self, family: hearken::model::Family) -> String {
        let ctc_lm = self.lm.is_some() || !self.hotword.is_empty();
        match (self.beam_size, family) {
            (Some(b), _) if b > 1 => format!("beam {b}"),
            (None, hearken::model::Family::Ctc) if ctc_lm => format!("beam {DEFAULT_LM_BEAM}"),
            _ => "greedy".into(),
        }
    }

    /// Refuses flags that do not apply to `family`.
    pub fn check_family(
        &self,
        family: hearken::model::Family,
        dir: &std::path::Path,
    ) -> Result<()> {
        if family == hearken::model::Family::Whisper
            && (!self.hotword.is_empty() || self.lm.is_some())
        {
            bail!(
                "--lm and --hotword apply to CTC models; {} is a Whisper model (use \
                 --initial-prompt)",
                dir.display()
            );
        }
        Ok(())
    }
}
