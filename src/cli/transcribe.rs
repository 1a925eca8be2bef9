//! `hearken transcribe`: audio files to text with a Whisper or a CTC (Wav2Vec2 / HuBERT)
//! model directory; the model's contract picks the decoder.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hearken::model::Family;
use hearken::output::{self, Format};

use super::options::{DecodeArgs, EngineArgs};
use super::out;

/// Flags of `hearken transcribe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Audio files (WAV, FLAC, MP3, OGG/Vorbis).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Model directory: Whisper (hearken's encoder.onnx + decoder.onnx, or a Hugging Face
    /// optimum export: encoder_model.onnx + decoder files; tokenizer files beside them) or
    /// CTC (model.onnx).
    #[arg(long, default_value = "models/whisper-base")]
    model: PathBuf,
    /// Whisper: decode timestamp tokens (always on for audio over 30 s and for srt/vtt).
    #[arg(long)]
    timestamps: bool,
    /// Output format: txt, json, srt, vtt or jsonl (one JSON object per file per line).
    #[arg(long, default_value = "txt")]
    format: String,
    /// Write `<file stem>.<format>` here instead of printing.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: Args) -> Result<()> {
    let format: Format = args.format.parse()?;
    let engine = args.engine.options()?;
    let model = hearken::model::open(&args.model, &engine)?;
    if model.family() == Family::Classifier {
        anyhow::bail!(
            "{} is an audio classifier: use `hearken classify`",
            args.model.display()
        );
    }
    args.decode.check_family(model.family(), &args.model)?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut source = super::options::source(&model, &args.model);
    source.search = Some(args.decode.search_label(model.family()));
    for file in &args.files {
        let pcm = hearken::audio::load(file)?;
        let opts = args.decode.options(
            args.timestamps
                || pcm.duration_s() > 30.0
                || matches!(format, Format::Srt | Format::Vtt),
        )?;
        let show_progress = std::io::stderr().is_terminal() && pcm.duration_s() > 30.0;
        let mut progress = |f: f64| {
            if show_progress {
                let n = (f * 30.0).round() as usize;
                eprint!(
                    "\r[{}{}] {:3.0}%",
                    "#".repeat(n.min(30)),
                    " ".repeat(30 - n.min(30)),
                    f * 100.0
                );
                let _ = std::io::stderr().flush();
            }
        };
        let transcript = model.transcribe(&pcm.samples, &opts, &mut progress)?;
        if show_progress {
            eprintln!();
        }
        source.file = file.display().to_string();
        let rendered = output::transcript(&transcript, format, &source)?;
        emit(file, &rendered, args.out.as_deref(), format)?;
        let t = &transcript.timing;
        let language = match model.family() {
            Family::Whisper => format!(
                ", language {}",
                transcript.language.as_deref().unwrap_or("en")
            ),
            _ => String::new(),
        };
        let steps = if t.n_decoder_steps > 0 {
            format!(" ({} steps)", t.n_decoder_steps)
        } else {
            String::new()
        };
        eprintln!(
            "{}: {:.2} s audio{language}, load {:.0} ms, features {:.0} ms, encoder {:.0} ms, decoder {:.0} ms{steps}, total {:.0} ms, RTF {:.3} ({}, {})",
            file.display(),
            t.audio_s,
            model.load_ms(),
            t.features_ms,
            t.encoder_ms,
            t.decoder_ms,
            t.total_ms,
            t.real_time_factor,
            model.family().name(),
            model.engine_name()
        );
    }
    Ok(())
}

/// Prints `rendered`, or writes it to `<out>/<file stem>.<format>`.
pub(super) fn emit(file: &Path, rendered: &str, out: Option<&Path>, format: Format) -> Result<()> {
    match out {
        Some(dir) => {
            let stem = file.file_stem().unwrap_or(file.as_os_str());
            let path = dir.join(Path::new(stem).with_extension(format.name()));
            std::fs::write(&path, rendered)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} -> {}", file.display(), path.display());
            Ok(())
        }
        None => out::print(rendered),
    }
}
