//! `hearken eval`: word and character error rates of a Whisper model over a manifest.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hearken::decode::whisper::Search;
use hearken::model::transcribe::{Language, TranscribeOptions, transcribe};
use hearken::model::whisper::WhisperModel;
use hearken::text::wer::ErrorRate;
use hearken::text::{EnglishTextNormalizer, WhisperTokenizer, cer, wer};
use serde::Deserialize;

use super::EngineArgs;

/// Flags of `hearken eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// hearken Whisper model directory.
    #[arg(long, default_value = "models/whisper-base")]
    model: PathBuf,
    /// JSON lines `{"audio": path, "text": reference}`; relative paths are relative to
    /// the manifest's folder.
    #[arg(long)]
    manifest: PathBuf,
    /// Beam size (1 or absent: greedy).
    #[arg(long)]
    beam: Option<usize>,
    /// Spoken language code, or `auto`.
    #[arg(long, default_value = "en")]
    language: String,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Deserialize)]
struct Line {
    audio: PathBuf,
    text: String,
}

pub fn run(args: Args) -> Result<()> {
    let file = std::fs::File::open(&args.manifest)
        .with_context(|| format!("opening {}", args.manifest.display()))?;
    let base = args
        .manifest
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut lines = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", args.manifest.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: expected {{\"audio\": ..., \"text\": ...}}",
                args.manifest.display(),
                i + 1
            )
        })?;
        lines.push(l);
    }
    if lines.is_empty() {
        bail!("{}: no utterances", args.manifest.display());
    }

    let engine = args.engine.build()?;
    let model = WhisperModel::load(engine.as_ref(), &args.model)?;
    let tokenizer = WhisperTokenizer::from_dir(&args.model)?;
    let opts = TranscribeOptions {
        search: match args.beam {
            None | Some(1) => Search::Greedy,
            Some(0) => bail!("--beam must be at least 1"),
            Some(beam_size) => Search::Beam {
                beam_size,
                patience: 1.0,
            },
        },
        language: match args.language.as_str() {
            "auto" => Language::Auto,
            code => Language::Code(code.to_string()),
        },
        ..TranscribeOptions::default()
    };
    let normalizer = EnglishTextNormalizer;
    let (mut w, mut c) = (ErrorRate::default(), ErrorRate::default());
    let (mut audio_s, t0) = (0.0, Instant::now());
    for l in &lines {
        let path = if l.audio.is_absolute() {
            l.audio.clone()
        } else {
            base.join(&l.audio)
        };
        let pcm = hearken::audio::load(&path)?;
        audio_s += pcm.duration_s();
        let t = transcribe(&model, &tokenizer, &pcm.samples, &opts, &mut |_| {})?;
        let (r, h) = (normalizer.normalize(&l.text), normalizer.normalize(&t.text));
        let (e, n) = wer(&r, &h);
        w.add((e, n));
        c.add(cer(&r, &h));
        println!(
            "{}\tWER {:.3}\t{}",
            path.display(),
            e as f64 / n.max(1) as f64,
            t.text
        );
    }
    let elapsed = t0.elapsed().as_secs_f64();
    println!(
        "{} utterances, {audio_s:.1} s of audio: WER {:.2}% ({} / {} words), CER {:.2}%, RTF {:.3} ({})",
        lines.len(),
        100.0 * w.rate(),
        w.errors,
        w.n_ref,
        100.0 * c.rate(),
        elapsed / audio_s.max(1e-9),
        engine.name()
    );
    Ok(())
}
