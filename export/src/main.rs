//! `hearken-export`: import speech checkpoints and write hearken model directories.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearken::engine::{EngineKind, OrtOptions, TractOptions};
use hearken_export::whisper::onnx::{Precision, WhisperOnnx, export, onnx_logits, parity};
use hearken_export::whisper::{Reference, WhisperCheckpoint, load_dir};

/// Import Hugging Face / CTranslate2 checkpoints and export them to ONNX for hearken.
#[derive(Parser)]
#[command(name = "hearken-export", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a checkpoint directory (Hugging Face or CTranslate2, detected from its
    /// files) into a hearken model directory, running the parity gate.
    Convert(ConvertArgs),
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// Source directory.
    src: PathBuf,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
    /// Weight precision: fp32, fp16 or int8.
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Audio for the parity gate (default: models/assets/beckett.wav when present,
    /// else seeded noise).
    #[arg(long)]
    parity_audio: Option<PathBuf>,
    /// Largest allowed |candle - ONNX| on logits.
    #[arg(long, default_value_t = 1e-3)]
    parity_tolerance: f32,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Convert(a) => convert(a),
    }
}

/// The parity gate's audio as a padded log-mel window, `(n_mels, 3000)`.
fn parity_mel(path: Option<&Path>, n_mels: usize) -> Result<Vec<f32>> {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/assets/beckett.wav");
    let samples = match path {
        Some(p) => hearken::audio::load(p)?.samples,
        None if default.is_file() => hearken::audio::load(&default)?.samples,
        None => {
            // Seeded noise: no speech, but every weight still takes part.
            let mut s = 0x2545_f491_4f6c_dd1du64;
            (0..16_000 * 5)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32 * 0.2 - 0.1
                })
                .collect()
        }
    };
    Ok(hearken::features::LogMel::whisper(n_mels)?
        .compute_padded(&samples)?
        .into_vec())
}

/// Max |ort - tract| over the logits of the same prompt: the two engines must agree too.
fn ort_vs_tract(
    ckpt: &WhisperCheckpoint,
    onnx: &WhisperOnnx,
    mel: &[f32],
    tokens: &[u32],
) -> Result<Option<f32>> {
    let ort = match EngineKind::Ort(OrtOptions::default()).build() {
        Ok(e) => e,
        Err(hearken::Error::OrtLibraryNotFound { .. }) => {
            eprintln!("parity: ONNX Runtime library absent; checked tract only");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let tract = EngineKind::Tract(TractOptions::default()).build()?;
    let a = onnx_logits(ort.as_ref(), ckpt, onnx, mel, tokens)?;
    let b = onnx_logits(tract.as_ref(), ckpt, onnx, mel, tokens)?;
    Ok(Some(
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max),
    ))
}

fn convert(a: ConvertArgs) -> Result<()> {
    let t0 = Instant::now();
    let precision = match a.precision.as_str() {
        "fp32" => Precision::F32,
        "fp16" => Precision::F16,
        "int8" => Precision::Int8,
        other => bail!("unknown precision `{other}` (expected fp32, fp16 or int8)"),
    };
    let ckpt = load_dir(&a.src).with_context(|| format!("importing {}", a.src.display()))?;
    let d = &ckpt.dims;
    eprintln!(
        "imported {}: Whisper d_model {}, {}+{} layers, {} mels, vocab {} ({:.1} s)",
        a.src.display(),
        d.d_model,
        d.encoder_layers,
        d.decoder_layers,
        d.num_mel_bins,
        d.vocab_size,
        t0.elapsed().as_secs_f64()
    );
    let onnx = export(&ckpt, precision)?;
    eprintln!(
        "exported: encoder {:.1} MB, decoder {:.1} MB",
        onnx.encoder.len() as f64 / 1e6,
        onnx.decoder.len() as f64 / 1e6
    );

    // Parity gate: candle reference vs tract, and ort vs tract, on the prompt plus the
    // reference's own greedy continuation (real text tokens, not just specials).
    let t = Instant::now();
    let mel = parity_mel(a.parity_audio.as_deref(), d.num_mel_bins)?;
    let tk = &ckpt.tokens;
    let mut prompt = vec![tk.sot];
    if let Some(&en) = tk.lang_ids.get("en") {
        prompt.extend([en, tk.transcribe]);
    }
    prompt.push(tk.no_timestamps);
    let reference = Reference::new(&ckpt)?;
    let continuation = reference.greedy(&mel, &prompt, 8)?;
    let mut tokens = prompt.clone();
    tokens.extend(continuation.iter().filter(|&&t| t != tk.eot));
    let diff = parity(&ckpt, &onnx, &mel, &tokens)?;
    let engines = ort_vs_tract(&ckpt, &onnx, &mel, &tokens)?;
    eprintln!(
        "parity over {} tokens: max |candle - tract| = {diff:.2e}{} (tolerance {:.0e}, {:.1} s)",
        tokens.len(),
        engines
            .map(|e| format!(", max |ort - tract| = {e:.2e}"))
            .unwrap_or_default(),
        a.parity_tolerance,
        t.elapsed().as_secs_f64()
    );
    // NaN must fail the gate too, hence "not within" rather than "above".
    let within = |d: f32| {
        d.partial_cmp(&a.parity_tolerance)
            .is_some_and(|o| o.is_le())
    };
    if !within(diff) || engines.is_some_and(|e| !within(e)) {
        bail!(
            "parity gate failed: logits differ by more than {:.0e}; not writing {}",
            a.parity_tolerance,
            a.out.display()
        );
    }

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    std::fs::write(a.out.join("encoder.onnx"), &onnx.encoder)?;
    std::fs::write(a.out.join("decoder.onnx"), &onnx.decoder)?;
    for name in [
        "tokenizer.json",
        "vocabulary.txt",
        "preprocessor_config.json",
    ] {
        let src = a.src.join(name);
        if src.is_file() {
            std::fs::copy(&src, a.out.join(name))
                .with_context(|| format!("copying {}", src.display()))?;
        }
    }
    eprintln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
