//! `hearken-export`: import speech checkpoints and write hearken model directories.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearken::engine::{Engine, EngineKind, OrtOptions, TractOptions};
use hearken::offline::TranscribeOptions;
use hearken::offline::whisper::{Language, WhisperOptions};
use hearken::text::{EnglishTextNormalizer, ErrorRate, wer};
use hearken_export::wav2vec2::{self, Wav2Vec2Checkpoint};
use hearken_export::whisper::onnx::{Precision, WhisperOnnx, export, onnx_logits, parity};
use hearken_export::whisper::{Reference, WhisperCheckpoint, load_dir};

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
    /// Audio for the parity gate (default for Whisper: models/assets/beckett.wav when
    /// present, else seeded noise; for Wav2Vec2 / HuBERT: a seeded 2 s signal).
    #[arg(long)]
    parity_audio: Option<PathBuf>,
    /// Largest allowed |candle - ONNX| and |ort - tract| on logits (default: 1e-3 for
    /// Whisper, 1e-4 for Wav2Vec2 / HuBERT; int8 is gated on greedy tokens and WER
    /// (Whisper) or on frame arg-max and labels (Wav2Vec2 / HuBERT) instead, and on this
    /// only when it is given).
    #[arg(long)]
    parity_tolerance: Option<f32>,
    /// Whisper int8 only: JSON lines `{"audio": path, "text": reference}` (paths relative
    /// to the file's folder) transcribed with both the fp32 and the int8 export to measure
    /// the WER change (default: the workspace's tests/fixtures/speech/manifest.jsonl when
    /// present). Entries whose audio is missing are skipped.
    #[arg(long)]
    eval_manifest: Option<PathBuf>,
    /// Whisper int8 only: write the model even when int8 raises the WER on the eval
    /// manifest by more than 1 point over fp32 (it is refused otherwise).
    #[arg(long)]
    allow_wer_increase: bool,
}

/// Default parity tolerance of Whisper exports: its decoder's logits are O(10) over a
/// 50k vocabulary after 30 s of audio, through every layer twice.
const WHISPER_TOLERANCE: f32 = 1e-3;
/// Largest WER increase of an int8 Whisper export over fp32, in percentage points, that
/// `convert` accepts without `--allow-wer-increase` (the bar set for int8 in the issue).
const MAX_INT8_WER_INCREASE_POINTS: f64 = 1.0;
/// Default parity tolerance of Wav2Vec2 / HuBERT exports (what the fixtures reach
/// against PyTorch).
const WAV2VEC2_TOLERANCE: f32 = 1e-4;
/// Default tolerance of an f16 Wav2Vec2 / HuBERT export against the f32 candle model, as a
/// share of the largest |logit| (the fixtures reach 0.3%).
const WAV2VEC2_F16_RELATIVE_TOLERANCE: f32 = 1e-2;
/// Least share of the valid frames on which an int8 Wav2Vec2 / HuBERT CTC export must
/// keep the f32 candle model's arg-max. Not 100%: int8 moves the logits by 1-3% of their
/// range, which flips near-tie frames: on the tiny random test fixtures, 2 to 7 of the
/// 168 frames of the default parity signal (hubert-ctc: 161/168, 95.8%); a broken graph
/// or a bad scale loses most frames.
const WAV2VEC2_INT8_MIN_FRAME_AGREEMENT: f64 = 0.95;

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
    let Some(ort) = ort_engine()? else {
        return Ok(None);
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

/// The largest |a - b| (NaN when either has a NaN), or an error when the lengths differ.
fn max_abs_diff(what: &str, a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        bail!("{what}: {} logits against {}", a.len(), b.len());
    }
    Ok(a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        }))
}

/// Whether `d` is within `tolerance`; NaN is not, hence "not within" rather than "above".
fn within(d: f32, tolerance: f32) -> bool {
    d.partial_cmp(&tolerance).is_some_and(|o| o.is_le())
}

/// The ONNX Runtime engine, or `None` (with a printed note) when its library is absent.
fn ort_engine() -> Result<Option<std::sync::Arc<dyn Engine>>> {
    match EngineKind::Ort(OrtOptions::default()).build() {
        Ok(e) => Ok(Some(e)),
        Err(hearken::Error::OrtLibraryNotFound { .. }) => {
            eprintln!("parity: ONNX Runtime library absent; checked tract only");
            Ok(None)
        }
        Err(e) => Err(e.into()),
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

fn convert_whisper(a: &ConvertArgs, precision: Precision) -> Result<()> {
    let t0 = Instant::now();
    let tolerance = a.parity_tolerance.unwrap_or(WHISPER_TOLERANCE);
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
    if precision == Precision::Int8 {
        int8_parity(a, &ckpt, &onnx, &mel, &tokens, prompt.len(), &continuation)?;
        eprintln!("int8 parity: {:.1} s", t.elapsed().as_secs_f64());
        int8_wer_gate(a, &ckpt, &onnx)?;
        write_whisper_dir(&a.out, &onnx, &a.src)?;
        eprintln!(
            "wrote {} in {:.1} s",
            a.out.display(),
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let diff = parity(&ckpt, &onnx, &mel, &tokens)?;
    let engines = ort_vs_tract(&ckpt, &onnx, &mel, &tokens)?;
    eprintln!(
        "parity over {} tokens: max |candle - tract| = {diff:.2e}{} (tolerance {:.0e}, {:.1} s)",
        tokens.len(),
        engines
            .map(|e| format!(", max |ort - tract| = {e:.2e}"))
            .unwrap_or_default(),
        tolerance,
        t.elapsed().as_secs_f64()
    );
    if !within(diff, tolerance) || engines.is_some_and(|e| !within(e, tolerance)) {
        bail!(
            "parity gate failed: logits differ by more than {tolerance:.0e}; not writing {}",
            a.out.display()
        );
    }

    write_whisper_dir(&a.out, &onnx, &a.src)?;
    eprintln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes a hearken Whisper model directory: `onnx`'s two graphs and the tokenizer files
/// found in the checkpoint directory `src`.
fn write_whisper_dir(dir: &Path, onnx: &WhisperOnnx, src: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in [
        ("encoder.onnx", &onnx.encoder),
        ("decoder.onnx", &onnx.decoder),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    for name in [
        "tokenizer.json",
        "vocabulary.txt",
        "preprocessor_config.json",
    ] {
        let from = src.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    Ok(())
}

/// Index of the largest value (the lowest on ties, as the candle reference's greedy).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// The int8 parity gate. Quantizing every projection moves Whisper's logits by a few
/// percent of their range, far past the f32 gate's 1e-3, and the engines differ from each
/// other by as much (every layer re-rounds its activations, so their f32 ops' last-bit
/// differences flip some roundings). So int8 is held to what decoding sees instead: on
/// tract and ONNX Runtime (when present), the arg-max of the int8 logits at each position
/// of the candle reference's greedy continuation of the prompt, teacher-forced, must be
/// the reference's token, i.e. greedy decoding gives the same tokens. Max |candle f32 -
/// int8| is reported, and held to `--parity-tolerance` only when one is given.
///
/// `tokens`: the prompt (`n_prompt` tokens) then `continuation` without its final
/// `<|endoftext|>`; `mel`: (n_mels, 3000).
fn int8_parity(
    a: &ConvertArgs,
    ckpt: &WhisperCheckpoint,
    onnx: &WhisperOnnx,
    mel: &[f32],
    tokens: &[u32],
    n_prompt: usize,
    continuation: &[u32],
) -> Result<()> {
    let n_vocab = ckpt.dims.vocab_size;
    let want = Reference::new(ckpt)?.logits(mel, tokens)?;
    let (lo, hi) = want
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    let mut engines = vec![EngineKind::Tract(TractOptions::default()).build()?];
    engines.extend(ort_engine()?);
    for engine in engines {
        let name = engine.name();
        let got = onnx_logits(engine.as_ref(), ckpt, onnx, mel, tokens)?;
        let diff = max_abs_diff(&format!("candle vs int8 {name}"), &want, &got)?;
        let greedy: Vec<u32> = got
            .chunks_exact(n_vocab)
            .skip(n_prompt.saturating_sub(1))
            .take(continuation.len())
            .map(argmax)
            .collect();
        eprintln!(
            "int8 parity ({name}) over {} tokens: max |candle f32 - int8| = {diff:.3} ({:.2}% \
             of the logit range {:.1}); greedy continuation {}",
            tokens.len(),
            100.0 * diff / (hi - lo),
            hi - lo,
            if greedy == continuation {
                "identical"
            } else {
                "DIFFERS"
            }
        );
        if greedy != continuation {
            bail!(
                "int8 parity gate failed on {name}: greedy tokens {greedy:?} instead of the \
                 f32 reference's {continuation:?}; not writing {}",
                a.out.display()
            );
        }
        if let Some(tolerance) = a.parity_tolerance
            && !within(diff, tolerance)
        {
            bail!(
                "int8 parity gate failed on {name}: logits differ by {diff:.3}, more than \
                 --parity-tolerance {tolerance}; not writing {}",
                a.out.display()
            );
        }
    }
    Ok(())
}

/// Removes a directory tree when dropped (best effort): the WER gate's temporary models.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // Nothing to do about a failure here but leave the files in the temp folder.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads an eval manifest: `(audio, reference text)` per non-empty line, relative audio
/// paths resolved against the manifest's folder.
fn read_manifest(path: &Path) -> Result<Vec<(PathBuf, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let (Some(audio), Some(reference)) = (v["audio"].as_str(), v["text"].as_str()) else {
            bail!(
                "{}:{}: expected {{\"audio\": ..., \"text\": ...}}",
                path.display(),
                i + 1
            );
        };
        entries.push((base.join(audio), reference.to_owned()));
    }
    Ok(entries)
}

/// The int8 WER gate: transcribes the eval manifest with an fp32 export of the same
/// checkpoint and with `int8`, through hearken's own pipeline (greedy, English, ONNX
/// Runtime when present, else tract), and refuses int8 when it raises the corpus WER by
/// more than [`MAX_INT8_WER_INCREASE_POINTS`] unless `--allow-wer-increase` is given.
/// Without a manifest it warns that nothing was measured.
fn int8_wer_gate(a: &ConvertArgs, ckpt: &WhisperCheckpoint, int8: &WhisperOnnx) -> Result<()> {
    let default =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/speech/manifest.jsonl");
    let manifest = match &a.eval_manifest {
        Some(p) => p.clone(),
        None if default.is_file() => default,
        None => {
            eprintln!(
                "WARNING: no --eval-manifest (and no tests/fixtures/speech/manifest.jsonl): \
                 the WER change of int8 against fp32 was NOT measured"
            );
            return Ok(());
        }
    };
    let mut entries = read_manifest(&manifest)?;
    entries.retain(|(audio, _)| {
        let found = audio.is_file();
        if !found {
            eprintln!("WER: skipping {}: audio not found", audio.display());
        }
        found
    });
    if entries.is_empty() {
        if a.eval_manifest.is_some() {
            bail!(
                "{}: no utterance with its audio present",
                manifest.display()
            );
        }
        eprintln!(
            "WARNING: no audio of {} present: the WER change of int8 was NOT measured",
            manifest.display()
        );
        return Ok(());
    }

    let t = Instant::now();
    let fp32 = export(ckpt, Precision::F32)?;
    let tmp =
        TempDir(std::env::temp_dir().join(format!("hearken-export-wer-{}", std::process::id())));
    let engine = match ort_engine()? {
        Some(e) => e,
        None => EngineKind::Tract(TractOptions::default()).build()?,
    };
    // What `hearken eval` runs by default, so that its numbers compare with these.
    let opts = TranscribeOptions {
        whisper: WhisperOptions {
            language: Language::Code("en".into()),
            ..WhisperOptions::default()
        },
        ..TranscribeOptions::default()
    };
    let normalizer = EnglishTextNormalizer;
    let mut rates = [ErrorRate::default(), ErrorRate::default()];
    for ((name, onnx), rate) in [("fp32", &fp32), ("int8", int8)]
        .into_iter()
        .zip(&mut rates)
    {
        // Models load from directories: write each, tokenizer included, to a temp one.
        let dir = tmp.0.join(name);
        write_whisper_dir(&dir, onnx, &a.src)?;
        let model = hearken::model::open_with(&dir, engine.as_ref()).with_context(|| {
            format!(
                "loading the {name} export for the WER gate (it needs the tokenizer, \
                 tokenizer.json, of {})",
                a.src.display()
            )
        })?;
        for (audio, reference) in &entries {
            let pcm = hearken::audio::load(audio)?;
            let hypothesis = model
                .transcribe(&pcm.samples, &opts, &mut |_| {})
                .with_context(|| format!("transcribing {} with {name}", audio.display()))?
                .text;
            let (errors, n_ref) = wer(
                &normalizer.normalize(reference),
                &normalizer.normalize(&hypothesis),
            );
            eprintln!(
                "WER {name} {}: {:.2}% ({errors} / {n_ref} words)",
                audio.display(),
                100.0 * errors as f64 / n_ref.max(1) as f64
            );
            rate.add((errors, n_ref));
        }
    }
    let [w32, w8] = rates.map(|r| 100.0 * r.rate());
    let increase = w8 - w32;
    eprintln!(
        "WER fp32 {w32:.2}% -> int8 {w8:.2}% ({increase:+.2} points) over {} utterances, {} \
         words ({}, {:.1} s)",
        entries.len(),
        rates[0].n_ref,
        engine.name(),
        t.elapsed().as_secs_f64()
    );
    if increase > MAX_INT8_WER_INCREASE_POINTS {
        if !a.allow_wer_increase {
            bail!(
                "int8 raises the WER by {increase:.2} points (more than \
                 {MAX_INT8_WER_INCREASE_POINTS}) on {}; not writing {} (pass \
                 --allow-wer-increase to write it anyway)",
                manifest.display(),
                a.out.display()
            );
        }
        eprintln!(
            "WARNING: int8 raises the WER by {increase:.2} points, more than \
             {MAX_INT8_WER_INCREASE_POINTS}; writing it anyway (--allow-wer-increase)"
        );
    }
    Ok(())
}

/// The Wav2Vec2 / HuBERT parity batch: `(input, mask, batch)`, `input` and `mask`
/// `(batch, n_samples)` row-major. Row 0 is the whole parity audio; row 1, when long
/// enough to give frames, its first 70% zero-padded, so that the gate covers the
/// attention mask too. Rows are normalized over their real samples when the checkpoint's
/// processor normalizes (zero mean, unit variance, epsilon 1e-7, as
/// `Wav2Vec2FeatureExtractor`).
fn wav2vec2_parity_batch(
    path: Option<&Path>,
    ckpt: &Wav2Vec2Checkpoint,
) -> Result<(Vec<f32>, Vec<i64>, usize)> {
    let samples = match path {
        Some(p) => hearken::audio::load(p)?.samples,
        None => {
            // Seeded: a gliding tone under an envelope, plus noise, so that every weight
            // takes part and the frames differ from each other.
            let mut s = 0x2545_f491_4f6c_dd1du64;
            (0..2 * 16_000)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let noise = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let t = i as f32 / 16_000.0;
                    let phase = 2.0 * std::f32::consts::PI * (150.0 * t + 40.0 * t * t);
                    let env = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin().powi(2);
                    0.3 * env * phase.sin() + 0.02 * noise
                })
                .collect()
        }
    };
    let n = samples.len();
    let config = &ckpt.config;
    if config.output_frames(n) == 0 {
        bail!(
            "the parity audio has {n} samples, fewer than one frame of the feature encoder \
             needs"
        );
    }
    let short = n * 7 / 10;
    let lengths = if config.output_frames(short) > 0 {
        vec![n, short]
    } else {
        vec![n]
    };
    let mut input = Vec::with_capacity(lengths.len() * n);
    let mut mask = Vec::with_capacity(lengths.len() * n);
    for &len in &lengths {
        input.extend_from_slice(&samples[..len]);
        input.resize(input.len() + n - len, 0.0);
        mask.extend((0..n).map(|i| i64::from(i < len)));
    }
    if ckpt.normalize {
        hearken::features::zero_mean_unit_var_batch(&mut input, &lengths, 0.0)?;
    }
    Ok((input, mask, lengths.len()))
}

/// The candle model's logits for the parity batch (`input` and `mask` `(batch,
/// n_samples)`), flattened as the ONNX model returns them.
fn wav2vec2_candle_logits(
    ckpt: &Wav2Vec2Checkpoint,
    input: &[f32],
    mask: &[i64],
    batch: usize,
) -> Result<Vec<f32>> {
    use candle_core::{Device, Tensor};
    let n = input.len() / batch;
    let input = Tensor::from_slice(input, (batch, n), &Device::Cpu)?;
    let mask = Tensor::from_slice(mask, (batch, n), &Device::Cpu)?;
    let model = wav2vec2::model::Wav2Vec2Model::new(ckpt)?;
    let logits = model.forward(&input, Some(&mask))?;
    Ok(logits.flatten_all()?.to_vec1::<f32>()?)
}

/// The Wav2Vec2 / HuBERT int8 parity gate. Quantizing every Linear moves the logits by a
/// few percent of their range, far past the f32 gate's 1e-4, so int8 is held to what
/// decoding reads instead: on tract and ONNX Runtime (when present), against the f32
/// candle model on the parity batch (`input` and `mask` `(batch, n_samples)`),
///
/// - CTC: the arg-max of at least [`WAV2VEC2_INT8_MIN_FRAME_AGREEMENT`] of the valid
///   frames (each row's frames within its real length) is candle's;
/// - classification: every row's top-1 label is candle's.
///
/// Max |candle f32 - int8| is reported, and held to `--parity-tolerance` only when one is
/// given.
fn wav2vec2_int8_parity(
    a: &ConvertArgs,
    ckpt: &Wav2Vec2Checkpoint,
    onnx: &[u8],
    input: &[f32],
    mask: &[i64],
    batch: usize,
) -> Result<()> {
    use hearken_export::wav2vec2::onnx as w2v_onnx;
    let want = wav2vec2_candle_logits(ckpt, input, mask, batch)?;
    let n_samples = input.len() / batch;
    let (ctc, width) = match &ckpt.head {
        wav2vec2::Head::Ctc { vocab, .. } => (true, vocab.len()),
        wav2vec2::Head::Classifier { labels } => (false, labels.len()),
    };
    // Rows of `width` logits that count, per item: the valid frames, or the one label row.
    let n_valid: Vec<usize> = mask
        .chunks(n_samples.max(1))
        .map(|row| {
            let len = row.iter().filter(|&&m| m != 0).count();
            if ctc {
                ckpt.config.output_frames(len)
            } else {
                1
            }
        })
        .collect();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let per_item = want.len() / batch;
    let mut engines = vec![EngineKind::Tract(TractOptions::default()).build()?];
    engines.extend(ort_engine()?);
    for engine in engines {
        let name = engine.name();
        let got = w2v_onnx::onnx_logits(engine.as_ref(), onnx, input, mask, batch)?;
        let diff = max_abs_diff(&format!("candle vs int8 {name}"), &want, &got)?;
        let (mut same, mut total) = (0usize, 0usize);
        for (item, &valid) in n_valid.iter().enumerate() {
            let (w, g) = (&want[item * per_item..], &got[item * per_item..]);
            let rows = w.chunks_exact(width).zip(g.chunks_exact(width));
            for (w, g) in rows.take(valid.min(per_item / width.max(1))) {
                total += 1;
                same += usize::from(argmax(w) == argmax(g));
            }
        }
        let share = if total == 0 {
            1.0
        } else {
            same as f64 / total as f64
        };
        let (what, rule, passed) = if ctc {
            (
                "valid frames keep candle's arg-max",
                format!(
                    "rule: at least {:.0}%",
                    100.0 * WAV2VEC2_INT8_MIN_FRAME_AGREEMENT
                ),
                share >= WAV2VEC2_INT8_MIN_FRAME_AGREEMENT,
            )
        } else {
            ("labels are candle's", "rule: all".to_owned(), same == total)
        };
        eprintln!(
            "int8 parity ({name}) over {batch} x {n_samples} samples: max |candle f32 - int8| \
             = {diff:.3} ({:.1}% of max |logit| {scale:.1}); {same}/{total} {what} ({:.1}%, \
             {rule}): {}",
            100.0 * diff / scale.max(f32::MIN_POSITIVE),
            100.0 * share,
            if passed { "passed" } else { "FAILED" }
        );
        if !passed {
            bail!(
                "int8 parity gate failed on {name}: only {same}/{total} {what} ({rule}); not \
                 writing {}",
                a.out.display()
            );
        }
        if let Some(tolerance) = a.parity_tolerance
            && !within(diff, tolerance)
        {
            bail!(
                "int8 parity gate failed on {name}: logits differ by {diff:.3}, more than \
                 --parity-tolerance {tolerance}; not writing {}",
                a.out.display()
            );
        }
    }
    Ok(())
}

fn convert_wav2vec2(a: &ConvertArgs, precision: Precision) -> Result<()> {
    use hearken_export::wav2vec2::onnx as w2v_onnx;
    let t0 = Instant::now();
    let tolerance = a.parity_tolerance.unwrap_or(WAV2VEC2_TOLERANCE);
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
    let (input, mask, batch) = wav2vec2_parity_batch(a.parity_audio.as_deref(), &ckpt)?;
    if precision == Precision::Int8 {
        wav2vec2_int8_parity(a, &ckpt, &onnx, &input, &mask, batch)?;
        eprintln!("int8 parity: {:.1} s", t.elapsed().as_secs_f64());
        w2v_onnx::write_dir(&ckpt, &onnx, &a.out)?;
        eprintln!(
            "wrote {} in {:.1} s",
            a.out.display(),
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let tract = EngineKind::Tract(TractOptions::default()).build()?;
    let got = w2v_onnx::onnx_logits(tract.as_ref(), &onnx, &input, &mask, batch)?;
    let want = wav2vec2_candle_logits(&ckpt, &input, &mask, batch)?;
    let diff = max_abs_diff("candle vs tract", &want, &got)?;
    let engines = match ort_engine()? {
        Some(ort) => {
            let o = w2v_onnx::onnx_logits(ort.as_ref(), &onnx, &input, &mask, batch)?;
            Some(max_abs_diff("ort vs tract", &o, &got)?)
        }
        None => None,
    };
    // f16 weights move the logits by ~0.3% of their scale (the candle reference keeps
    // f32), so unless a tolerance is given, candle is held to a share of the largest
    // |logit| there; both engines read the same f16 weights, so they stay within 1e-4.
    let candle_tolerance = match (a.parity_tolerance, precision) {
        (None, Precision::F16) => {
            WAV2VEC2_F16_RELATIVE_TOLERANCE * want.iter().fold(0.0f32, |m, v| m.max(v.abs()))
        }
        _ => tolerance,
    };
    eprintln!(
        "parity over {batch} x {} samples: max |candle - tract| = {diff:.2e}{} (tolerance \
         {candle_tolerance:.0e}{}, {:.1} s)",
        input.len() / batch,
        engines
            .map(|e| format!(", max |ort - tract| = {e:.2e}"))
            .unwrap_or_default(),
        if candle_tolerance == tolerance {
            String::new()
        } else {
            format!(" for candle, {tolerance:.0e} between engines")
        },
        t.elapsed().as_secs_f64()
    );
    if !within(diff, candle_tolerance) || engines.is_some_and(|e| !within(e, tolerance)) {
        bail!(
            "parity gate failed: logits differ by more than {candle_tolerance:.0e} (candle) or \
             {tolerance:.0e} (engines); not writing {}",
            a.out.display()
        );
    }

    w2v_onnx::write_dir(&ckpt, &onnx, &a.out)?;
    eprintln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
