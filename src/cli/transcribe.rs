//! `hearken transcribe`: audio files to text with a Whisper or a CTC (Wav2Vec2 /
//! HuBERT) model directory; the model's metadata picks the decoder.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hearken::decode::whisper::{Search, Task};
use hearken::model::transcribe::{Language, TranscribeOptions, Transcript, transcribe};
use hearken::model::whisper::WhisperModel;
use hearken::text::WhisperTokenizer;
use serde::Serialize;

use super::EngineArgs;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain text.
    Txt,
    /// Segments, tokens, probabilities, language and timings.
    Json,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }
}

/// Flags of `hearken transcribe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis).
    #[arg(required = true)]
    pub(super) files: Vec<PathBuf>,
    /// Model directory: Whisper (hearken's encoder.onnx + decoder.onnx, or a Hugging Face
    /// optimum export: encoder_model.onnx + decoder files; tokenizer files beside them) or
    /// CTC (model.onnx).
    #[arg(long, default_value = "models/whisper-base")]
    pub(super) model: PathBuf,
    /// Beam size (1 or absent: greedy; CTC with --lm or --hotword: 16).
    #[arg(long)]
    pub(super) beam: Option<usize>,
    /// CTC: ARPA n-gram word language model for shallow fusion (beam search).
    #[arg(long)]
    pub(super) lm: Option<PathBuf>,
    /// CTC: language-model weight.
    #[arg(long, default_value_t = 0.5)]
    pub(super) alpha: f32,
    /// CTC: word insertion bonus.
    #[arg(long, default_value_t = 1.0)]
    pub(super) beta: f32,
    /// CTC: boost a word or phrase, `WORD[:BONUS]` (repeatable; bonus per token, default
    /// 1.5).
    #[arg(long)]
    pub(super) hotword: Vec<String>,
    /// Beam search patience (finished hypotheses collected = beam * patience).
    #[arg(long, default_value_t = 1.0)]
    patience: f32,
    /// Spoken language code (`en`, `de`, …) or `auto` to detect it.
    #[arg(long, default_value = "auto")]
    language: String,
    /// `transcribe`, or `translate` to English.
    #[arg(long, default_value = "transcribe")]
    task: String,
    /// Decode timestamp tokens (always on for audio over 30 s and for srt/vtt).
    #[arg(long)]
    timestamps: bool,
    /// Text that primes the first window (names, spellings).
    #[arg(long)]
    initial_prompt: Option<String>,
    /// Do not prompt each window with the previous text.
    #[arg(long)]
    no_condition_on_previous_text: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(super) format: Format,
    /// Write `<file stem>.<format>` here instead of printing.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) engine: EngineArgs,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    file: String,
    model: String,
    engine: &'a str,
    providers: Vec<&'static str>,
    load_ms: f64,
    #[serde(flatten)]
    transcript: &'a Transcript,
}

pub fn run(args: Args) -> Result<()> {
    if args.model.join("model.onnx").is_file() {
        return super::transcribe_ctc::run(&args);
    }
    if !args.hotword.is_empty() || args.lm.is_some() {
        bail!(
            "--lm and --hotword apply to CTC models; {} is a Whisper model (use --initial-prompt)",
            args.model.display()
        );
    }
    let engine = args.engine.build()?;
    let t_load = Instant::now();
    let model = WhisperModel::load(engine.as_ref(), &args.model)?;
    let tokenizer = WhisperTokenizer::from_dir(&args.model)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;

    let search = match args.beam {
        None | Some(1) => Search::Greedy,
        Some(0) => bail!("--beam must be at least 1"),
        Some(beam_size) => Search::Beam {
            beam_size,
            patience: args.patience,
        },
    };
    let task = match args.task.as_str() {
        "transcribe" => Task::Transcribe,
        "translate" => Task::Translate,
        other => bail!("unknown task `{other}` (expected transcribe or translate)"),
    };
    let language = match args.language.as_str() {
        "auto" => Language::Auto,
        code => Language::Code(code.to_string()),
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    for file in &args.files {
        let pcm = hearken::audio::load(file)?;
        let opts = TranscribeOptions {
            language: language.clone(),
            task,
            search,
            timestamps: args.timestamps
                || pcm.duration_s() > 30.0
                || matches!(args.format, Format::Srt | Format::Vtt),
            condition_on_previous_text: !args.no_condition_on_previous_text,
            initial_prompt: args.initial_prompt.clone(),
            ..TranscribeOptions::default()
        };
        let show_progress = std::io::stderr().is_terminal() && pcm.duration_s() > 30.0;
        let mut progress = |f: f64| {
            if show_progress {
                let n = (f * 30.0).round() as usize;
                eprint!(
                    "\r[{}{}] {:3.0}%",
                    "#".repeat(n),
                    " ".repeat(30 - n.min(30)),
                    f * 100.0
                );
                let _ = std::io::stderr().flush();
            }
        };
        let transcript = transcribe(&model, &tokenizer, &pcm.samples, &opts, &mut progress)?;
        if show_progress {
            eprintln!();
        }
        let rendered = match args.format {
            Format::Txt => format!("{}\n", transcript.text),
            Format::Json => {
                let out = JsonOut {
                    file: file.display().to_string(),
                    model: args.model.display().to_string(),
                    engine: engine.name(),
                    providers: vec![],
                    load_ms,
                    transcript: &transcript,
                };
                format!("{}\n", serde_json::to_string_pretty(&out)?)
            }
            Format::Srt => subtitles(&transcript, false),
            Format::Vtt => subtitles(&transcript, true),
        };
        emit(file, &rendered, args.out.as_deref(), args.format)?;
        let t = &transcript.timing;
        eprintln!(
            "{}: {:.2} s audio, language {}, load {:.0} ms, features {:.0} ms, encoder {:.0} ms, decoder {:.0} ms ({} steps), total {:.0} ms, RTF {:.3} ({})",
            file.display(),
            t.audio_s,
            transcript.language.as_deref().unwrap_or("en"),
            load_ms,
            t.features_ms,
            t.encoder_ms,
            t.decoder_ms,
            t.n_decoder_steps,
            t.total_ms,
            t.real_time_factor,
            engine.name()
        );
    }
    Ok(())
}

/// Prints `rendered`, or writes it to `<out>/<file stem>.<format>`.
pub(super) fn emit(file: &Path, rendered: &str, out: Option<&Path>, format: Format) -> Result<()> {
    match out {
        Some(dir) => {
            let stem = file.file_stem().unwrap_or(file.as_os_str());
            let path = dir.join(Path::new(stem).with_extension(format.ext()));
            std::fs::write(&path, rendered)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} -> {}", file.display(), path.display());
        }
        None => print!("{rendered}"),
    }
    Ok(())
}

/// SubRip (`00:00:01,500`) or WebVTT (`00:00:01.500`) cues, one per segment.
fn subtitles(t: &Transcript, vtt: bool) -> String {
    let cues: Vec<(f64, f64, &str)> = t
        .segments
        .iter()
        .map(|s| (s.start_s, s.end_s, s.text.trim()))
        .collect();
    render_cues(&cues, vtt)
}

/// SubRip (`00:00:01,500`) or WebVTT (`00:00:01.500`) text of `(start_s, end_s, text)` cues.
pub(super) fn render_cues(cues: &[(f64, f64, &str)], vtt: bool) -> String {
    let stamp = |s: f64| {
        let ms = (s.max(0.0) * 1000.0).round() as u64;
        let (h, m, sec, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        let sep = if vtt { '.' } else { ',' };
        format!("{h:02}:{m:02}:{sec:02}{sep}{milli:03}")
    };
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, (start, end, text)) in cues.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(*start),
            stamp(*end),
            text
        ));
    }
    out
}
