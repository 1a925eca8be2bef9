//! `hearken classify`: audio files to class labels with an audio-classification model
//! (Wav2Vec2 / HuBERT `*ForSequenceClassification` exported by `hearken-export`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use hearken::model::classify::{
    Aggregate, AudioClassifier, ClassScore, ClassifyOptions, WindowResult, Windows,
};
use serde::Serialize;

use super::EngineArgs;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per file: the top classes with their scores.
    Txt,
    /// Top classes, all scores, and per-window probabilities.
    Json,
}

/// Flags of `hearken classify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// hearken audio-classification model directory (model.onnx).
    #[arg(long)]
    model: PathBuf,
    /// Classes to report per file.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Classify windows of this many seconds (default: the whole file at once).
    #[arg(long)]
    window_s: Option<f32>,
    /// Seconds between window starts (default: half the window).
    #[arg(long)]
    hop_s: Option<f32>,
    /// How window probabilities combine: mean, or max per class.
    #[arg(long, value_enum, default_value = "mean")]
    aggregate: AggregateArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    format: Format,
    #[command(flatten)]
    engine: EngineArgs,
}

/// `--aggregate` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateArg {
    /// Mean of the windows' probabilities.
    Mean,
    /// Highest probability of each class over the windows.
    Max,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    file: String,
    model: String,
    engine: &'a str,
    load_ms: f64,
    forward_ms: f64,
    audio_s: f64,
    aggregate: Aggregate,
    top: Vec<ClassScore>,
    scores: Vec<ClassScore>,
    windows: &'a [WindowResult],
}

/// Runs `hearken classify`.
pub fn run(args: Args) -> Result<()> {
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let windows = match (args.window_s, args.hop_s) {
        (None, None) => None,
        (None, Some(_)) => bail!("--hop-s needs --window-s"),
        (Some(window_s), hop_s) => Some(Windows {
            window_s,
            hop_s: hop_s.unwrap_or(window_s / 2.0),
        }),
    };
    let opts = ClassifyOptions {
        windows,
        aggregate: match args.aggregate {
            AggregateArg::Mean => Aggregate::Mean,
            AggregateArg::Max => Aggregate::Max,
        },
    };
    let engine = args.engine.build()?;
    let t_load = Instant::now();
    let model = AudioClassifier::load(engine.as_ref(), &args.model)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let labels = model.labels();
    for file in &args.files {
        let pcm = hearken::audio::load(file)?;
        let c = model.classify(&pcm.samples, &opts)?;
        let top = c.top_k(labels, args.top_k);
        match args.format {
            Format::Txt => {
                let parts: Vec<String> = top
                    .iter()
                    .map(|s| format!("{} {:.3}", s.label, s.score))
                    .collect();
                println!("{}\t{}", file.display(), parts.join("\t"));
            }
            Format::Json => {
                let out = JsonOut {
                    file: file.display().to_string(),
                    model: args.model.display().to_string(),
                    engine: engine.name(),
                    load_ms,
                    forward_ms: c.forward_ms,
                    audio_s: c.audio_s,
                    aggregate: c.aggregate,
                    top,
                    scores: c.top_k(labels, labels.len()),
                    windows: &c.windows,
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
        }
        eprintln!(
            "{}: {:.2} s audio, {} window(s), load {:.0} ms, forward {:.0} ms ({})",
            file.display(),
            c.audio_s,
            c.windows.len(),
            load_ms,
            c.forward_ms,
            engine.name()
        );
    }
    Ok(())
}
