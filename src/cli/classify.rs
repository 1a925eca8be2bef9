//! `hearken classify`: audio files to class labels with an audio-classification model
//! (Wav2Vec2 / HuBERT `*ForSequenceClassification` exported by `hearken-export`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use hearken::model::classify::{ClassifyOptions, Windows};
use hearken::output::{self, Format};
use hearken::result::Aggregate;

use super::options::EngineArgs;
use super::out;

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
    /// Output format: txt (one line per file), json or jsonl.
    #[arg(long, default_value = "txt")]
    format: String,
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

/// Runs `hearken classify`.
pub fn run(args: Args) -> Result<()> {
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let format: Format = args.format.parse()?;
    if !format.supports_labels() {
        bail!("--format {format} needs text; labels print as txt, json or jsonl");
    }
    let windows = match (args.window_s, args.hop_s) {
        (None, None) => None,
        (None, Some(_)) => bail!("--hop-s needs --window-s"),
        (Some(window_s), hop_s) => Some(Windows {
            window_s,
            hop_s: hop_s.unwrap_or(window_s / 2.0),
        }),
    };
    if let Some(w) = &windows {
        w.validate()?;
    }
    let opts = ClassifyOptions {
        windows,
        aggregate: match args.aggregate {
            AggregateArg::Mean => Aggregate::Mean,
            AggregateArg::Max => Aggregate::Max,
        },
    };
    let model = hearken::model::open(&args.model, &args.engine.options()?)?;
    if model.family() != hearken::model::Family::Classifier {
        bail!(
            "{} is a {} model, not an audio classifier: transcribe with `hearken transcribe`",
            args.model.display(),
            model.family().name()
        );
    }
    let mut source = super::options::source(&model, &args.model);
    for file in &args.files {
        let pcm = hearken::audio::load(file)?;
        let labels = model.classify(&pcm.samples, &opts)?;
        source.file = file.display().to_string();
        out::print(&output::labels(&labels, format, &source, args.top_k)?)?;
        eprintln!(
            "{}: {:.2} s audio, {} window(s), load {:.0} ms, forward {:.0} ms ({})",
            file.display(),
            labels.timing.audio_s,
            labels.windows.len(),
            model.load_ms(),
            labels.timing.encoder_ms,
            model.engine_name()
        );
    }
    Ok(())
}
