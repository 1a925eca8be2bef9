//! `hearken-export`: import speech checkpoints and write hearken model directories.
//!
//! A thin layer over the library: it parses flags, calls the importer, the exporter and
//! the [`verify`] gates, prints what they measured, and writes the model only when every
//! gate passed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearken_export::onnx::Precision;
use hearken_export::verify::{self, Engines, ManifestEntry, Wav2Vec2Batch, WhisperProbe};
use hearken_export::wav2vec2;
use hearken_export::whisper::{self, onnx as whisper_onnx};

mod cli;

/// Import Hugging Face / CTranslate2 checkpoints and export them to ONNX for hearken.
#[derive(Parser)]
#[command(name = "hearken-export", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a checkpoint directory (Hugging Face Whisper, Wav2Vec2 or HuBERT, or
    /// CTranslate2, detected from its files) into a hearken model directory, running the
    /// parity gate.
    Convert(ConvertArgs),
    /// Train or fine-tune a model (`train classify`: an audio classifier), writing a
    /// Hugging Face checkpoint and, with `--export`, a hearken model directory.
    Train(cli::train::TrainArgs),
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
    /// Audio for the parity gate (default: a deterministic synthetic signal, 5 s of
    /// seeded noise for Whisper, a 2 s seeded tone glide for Wav2Vec2 / HuBERT). Speech
    /// makes the Whisper gate compare real text tokens too.
    #[arg(long)]
    parity_audio: Option<PathBuf>,
    /// Largest allowed |candle - ONNX| and |ort - tract| on logits (default: 1e-3 for
    /// Whisper, 1e-4 for Wav2Vec2 / HuBERT; int8 is gated on greedy tokens and WER
    /// (Whisper) or on frame arg-max and labels (Wav2Vec2 / HuBERT) instead, and on this
    /// only when it is given).
    #[arg(long)]
    parity_tolerance: Option<f32>,
    /// Whisper int8: JSON lines `{"audio": path, "text": reference}` (paths relative to
    /// the file's folder) transcribed with both the fp32 and the int8 export to measure
    /// the WER change; required unless --no-wer-gate. Entries whose audio is missing are
    /// skipped. Ignored for other exports.
    #[arg(long, alias = "eval-manifest", value_name = "FILE")]
    wer_manifest: Option<PathBuf>,
    /// Whisper int8: export without measuring the WER change (the int8 parity gate still
    /// runs).
    #[arg(long, conflicts_with = "wer_manifest")]
    no_wer_gate: bool,
    /// Whisper int8: write the model even when int8 raises the WER on the manifest by
    /// more than 1 point over fp32 (it is refused otherwise).
    #[arg(long)]
    allow_wer_increase: bool,
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
        Command::Train(a) => cli::train::run(a),
    }
}

fn convert(a: ConvertArgs) -> Result<()> {
    let precision = match a.precision.as_str() {
        "fp32" => Precision::F32,
        "fp16" => Precision::F16,
        "int8" => Precision::Int8,
        other => bail!("unknown precision `{other}` (expected fp32, fp16 or int8)"),
    };
    if wav2vec2::is_wav2vec2_dir(&a.src) {
        convert_wav2vec2(&a, precision)
    } else {
        convert_whisper(&a, precision)
    }
}

/// The parity gate's audio: `--parity-audio`, or `synthetic`.
fn parity_audio(a: &ConvertArgs, synthetic: fn() -> Vec<f32>) -> Result<Vec<f32>> {
    Ok(match &a.parity_audio {
        Some(p) => {
            hearken::audio::load(p)
                .with_context(|| format!("reading --parity-audio {}", p.display()))?
                .samples
        }
        None => synthetic(),
    })
}

/// The engines the gates run on, with a note when ONNX Runtime is absent.
fn engines() -> Result<Engines> {
    let engines = Engines::available()?;
    if engines.ort.is_none() {
        eprintln!("parity: ONNX Runtime library absent; checked tract only");
    }
    Ok(engines)
}

/// Fails with `gate`'s error, telling that `out` is not written.
fn refuse(gate: hearken_export::Result<()>, a: &ConvertArgs) -> Result<()> {
    gate.map_err(|e| anyhow::anyhow!("{e}; not writing {}", a.out.display()))
}

/// The Whisper int8 WER gate's utterances: `--wer-manifest`'s entries whose audio exists,
/// or `None` with `--no-wer-gate`. Read before the (long) export, so a bad manifest
/// fails at once.
fn wer_entries(a: &ConvertArgs) -> Result<Option<Vec<ManifestEntry>>> {
    let Some(manifest) = &a.wer_manifest else {
        if a.no_wer_gate {
            return Ok(None);
        }
        bail!(
            "an int8 Whisper export must pass the WER gate: give --wer-manifest FILE (JSON \
             lines {{\"audio\": path, \"text\": reference}}, e.g. \
             tests/fixtures/speech/manifest.jsonl), or --no-wer-gate to export without \
             measuring the WER"
        );
    };
    let mut entries = verify::read_manifest(manifest)?;
    entries.retain(|e| {
        let found = e.audio.is_file();
        if !found {
            eprintln!("WER: skipping {}: audio not found", e.audio.display());
        }
        found
    });
    if entries.is_empty() {
        bail!(
            "{}: no utterance with its audio present",
            manifest.display()
        );
    }
    Ok(Some(entries))
}

fn convert_whisper(a: &ConvertArgs, precision: Precision) -> Result<()> {
    let t0 = Instant::now();
    let wer_entries = match precision {
        Precision::Int8 => wer_entries(a)?,
        _ => None,
    };
    let ckpt =
        whisper::load_dir(&a.src).with_context(|| format!("importing {}", a.src.display()))?;
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
    let onnx = whisper_onnx::export(&ckpt, precision)?;
    eprintln!(
        "exported: encoder {:.1} MB, decoder {:.1} MB",
        onnx.encoder.len() as f64 / 1e6,
        onnx.decoder.len() as f64 / 1e6
    );

    // Parity gate: candle reference vs tract, and ort vs tract, on the prompt plus the
    // reference's own greedy continuation (real text tokens, not just specials).
    let t = Instant::now();
    let samples = parity_audio(a, verify::whisper_synthetic_audio)?;
    let probe = WhisperProbe::new(&ckpt, &samples)?;
    let engines = engines()?;
    if precision == Precision::Int8 {
        let parity =
            verify::whisper_int8_parity(&ckpt, &onnx, &probe, &engines, a.parity_tolerance)?;
        eprintln!("{parity}");
        refuse(parity.check(), a)?;
        eprintln!("int8 parity: {:.1} s", t.elapsed().as_secs_f64());
        match &wer_entries {
            Some(entries) => whisper_wer_gate(a, &ckpt, &onnx, entries, &engines)?,
            None => eprintln!(
                "WARNING: --no-wer-gate: the WER change of int8 against fp32 was NOT measured"
            ),
        }
    } else {
        let tolerance = a.parity_tolerance.unwrap_or(verify::WHISPER_TOLERANCE);
        let parity = verify::whisper_parity(&ckpt, &onnx, &probe, &engines, tolerance)?;
        eprintln!("{parity} in {:.1} s", t.elapsed().as_secs_f64());
        refuse(parity.check(), a)?;
    }

    whisper_onnx::write_model_dir(&onnx, &a.src, &a.out)?;
    eprintln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The int8 WER gate, printing each utterance's WER; `--allow-wer-increase` turns its
/// failure into a warning.
fn whisper_wer_gate(
    a: &ConvertArgs,
    ckpt: &whisper::WhisperCheckpoint,
    int8: &whisper_onnx::WhisperOnnx,
    entries: &[ManifestEntry],
    engines: &Engines,
) -> Result<()> {
    let t = Instant::now();
    let comparison =
        verify::int8_wer(ckpt, int8, &a.src, entries, engines.preferred(), &mut |u| {
            eprintln!(
                "WER {} {}: {:.2}% ({} / {} words)",
                u.precision,
                u.audio.display(),
                100.0 * u.errors as f64 / u.n_ref.max(1) as f64,
                u.errors,
                u.n_ref
            )
        })?;
    eprintln!("{comparison}, {:.1} s", t.elapsed().as_secs_f64());
    if let Err(e) = comparison.check() {
        if !a.allow_wer_increase {
            bail!(
                "{e}; not writing {} (pass --allow-wer-increase to write it anyway)",
                a.out.display()
            );
        }
        eprintln!("WARNING: {e}; writing it anyway (--allow-wer-increase)");
    }
    Ok(())
}

fn convert_wav2vec2(a: &ConvertArgs, precision: Precision) -> Result<()> {
    use hearken_export::wav2vec2::onnx as w2v_onnx;
    let t0 = Instant::now();
    let ckpt =
        wav2vec2::load_dir(&a.src).with_context(|| format!("importing {}", a.src.display()))?;
    let c = &ckpt.config;
    let head = match &ckpt.head {
        wav2vec2::Head::Ctc { vocab, .. } => format!("CTC over {} tokens", vocab.len()),
        wav2vec2::Head::Classifier { labels } => format!("classifier of {} labels", labels.len()),
    };
    eprintln!(
        "imported {}: {} hidden {}, {} layers{}, {head} ({:.1} s)",
        a.src.display(),
        ckpt.family.as_str(),
        c.hidden_size,
        c.num_hidden_layers,
        if c.do_stable_layer_norm {
            " (pre-LN)"
        } else {
            ""
        },
        t0.elapsed().as_secs_f64()
    );
    let onnx = w2v_onnx::export(&ckpt, precision)?;
    eprintln!("exported: model {:.1} MB", onnx.len() as f64 / 1e6);

    // Parity gate: candle vs tract, and ort vs tract, on a padded batch with its mask.
    let t = Instant::now();
    let samples = parity_audio(a, verify::wav2vec2_synthetic_audio)?;
    let batch = Wav2Vec2Batch::new(&ckpt, &samples)?;
    let engines = engines()?;
    if precision == Precision::Int8 {
        let parity =
            verify::wav2vec2_int8_parity(&ckpt, &onnx, &batch, &engines, a.parity_tolerance)?;
        eprintln!("{parity}");
        refuse(parity.check(), a)?;
        eprintln!("int8 parity: {:.1} s", t.elapsed().as_secs_f64());
    } else {
        let parity = verify::wav2vec2_parity(
            &ckpt,
            &onnx,
            &batch,
            &engines,
            precision,
            a.parity_tolerance,
        )?;
        eprintln!("{parity} in {:.1} s", t.elapsed().as_secs_f64());
        refuse(parity.check(), a)?;
    }

    w2v_onnx::write_dir(&ckpt, &onnx, &a.out)?;
    eprintln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
