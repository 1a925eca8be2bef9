//! `hearken eval`: word and character error rates over a manifest, of a Whisper model
//! (`--model`) or of transcripts made elsewhere (`--hypotheses`).
//!
//! Both modes score through the same code: the project's English normalizer on both
//! sides, then corpus rates that sum edits over utterances (see [`hearken::text::wer`]).
//! Scoring another system's output here, rather than with its own tooling, is what makes
//! its WER comparable with hearken's (`benches/peers/whisper.sh` relies on this).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hearken::text::wer::ErrorRate;
use hearken::text::{EnglishTextNormalizer, cer, wer};
use serde::{Deserialize, Serialize};

use super::options::{DecodeArgs, EngineArgs};
use super::out::print as emit;

/// Output formats of `hearken eval`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One tab-separated line per utterance, then a summary line.
    Text,
    /// One JSON object: corpus rates and per-utterance scores.
    Json,
}

/// Flags of `hearken eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (Whisper or CTC) to transcribe the manifest with (or give
    /// `--hypotheses`).
    #[arg(long, conflicts_with = "hypotheses")]
    model: Option<PathBuf>,
    /// JSON lines `{"audio": path, "text": reference}`; relative paths are relative to
    /// the manifest's folder.
    #[arg(long)]
    manifest: PathBuf,
    /// Score these transcripts instead of running a model: JSON lines `{"audio": path,
    /// "text": hypothesis}`, matched to the manifest by `audio` (relative paths are
    /// relative to this file's folder; failing a match, the path as written in the
    /// manifest is tried). Every manifest line needs one.
    #[arg(long)]
    hypotheses: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// One line of a manifest or hypotheses file.
#[derive(Deserialize)]
struct Line {
    audio: PathBuf,
    text: String,
}

/// A [`Line`] with where it came from.
struct Entry {
    /// `audio` as written in the file.
    audio: PathBuf,
    /// `audio` resolved against the file's folder.
    path: PathBuf,
    text: String,
    /// 1-based line number in the file.
    line_no: usize,
}

/// One utterance's scores, as printed by `--format json`.
#[derive(Serialize)]
struct Utterance {
    /// The manifest's `audio`, as written there.
    audio: PathBuf,
    reference: String,
    hypothesis: String,
    /// Both sides after normalization: what the rates are computed on.
    reference_normalized: String,
    hypothesis_normalized: String,
    wer: f64,
    cer: f64,
    word_errors: usize,
    n_ref_words: usize,
    char_errors: usize,
    n_ref_chars: usize,
}

/// The `--format json` report.
#[derive(Serialize)]
struct Report {
    /// Corpus word error rate, a fraction (errors over reference words, summed).
    wer: f64,
    /// Corpus character error rate, a fraction.
    cer: f64,
    word_errors: usize,
    n_ref_words: usize,
    char_errors: usize,
    n_ref_chars: usize,
    n_utterances: usize,
    /// Model mode only: what ran and how fast.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<ModelRun>,
    per_utterance: Vec<Utterance>,
}

/// How a model transcribed the manifest.
#[derive(Serialize)]
struct ModelRun {
    dir: PathBuf,
    engine: &'static str,
    audio_s: f64,
    elapsed_s: f64,
    /// Real-time factor: `elapsed_s / audio_s` (load excluded).
    rtf: f64,
}

/// Reads a JSONL file of [`Line`]s, resolving relative audio paths against its folder.
fn read_lines(file: &Path) -> Result<Vec<Entry>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let base = file.parent().map(PathBuf::from).unwrap_or_default();
    let mut entries = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: expected {{\"audio\": ..., \"text\": ...}}",
                file.display(),
                i + 1
            )
        })?;
        let path = if l.audio.is_absolute() {
            l.audio.clone()
        } else {
            base.join(&l.audio)
        };
        entries.push(Entry {
            audio: l.audio,
            path,
            text: l.text,
            line_no: i + 1,
        });
    }
    if entries.is_empty() {
        bail!("{}: no utterances", file.display());
    }
    Ok(entries)
}

/// A key under which two spellings of the same audio path compare equal: the canonical
/// path when the file exists, else the absolute path with `.` and `..` resolved lexically.
fn path_key(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Scores one utterance with the English normalizer.
fn score(normalizer: &EnglishTextNormalizer, entry: &Entry, hypothesis: String) -> Utterance {
    let (r, h) = (
        normalizer.normalize(&entry.text),
        normalizer.normalize(&hypothesis),
    );
    let (word_errors, n_ref_words) = wer(&r, &h);
    let (char_errors, n_ref_chars) = cer(&r, &h);
    let rate = |e: usize, n: usize| {
        ErrorRate {
            errors: e,
            n_ref: n,
        }
        .rate()
    };
    Utterance {
        audio: entry.audio.clone(),
        reference: entry.text.clone(),
        hypothesis,
        reference_normalized: r,
        hypothesis_normalized: h,
        wer: rate(word_errors, n_ref_words),
        cer: rate(char_errors, n_ref_chars),
        word_errors,
        n_ref_words,
        char_errors,
        n_ref_chars,
    }
}

/// Each manifest entry's hypothesis from `file`, in manifest order.
fn match_hypotheses(manifest: &[Entry], manifest_path: &Path, file: &Path) -> Result<Vec<String>> {
    let hyps = read_lines(file)?;
    let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
    let mut by_raw: HashMap<&Path, usize> = HashMap::new();
    for (i, h) in hyps.iter().enumerate() {
        if let Some(j) = by_path.insert(path_key(&h.path), i) {
            bail!(
                "{}: lines {} and {} are both for {}",
                file.display(),
                hyps[j].line_no,
                h.line_no,
                h.audio.display()
            );
        }
        by_raw.entry(h.audio.as_path()).or_insert(i);
    }
    let mut used = vec![false; hyps.len()];
    let mut out = Vec::with_capacity(manifest.len());
    for m in manifest {
        let Some(&i) = by_path
            .get(&path_key(&m.path))
            .or_else(|| by_raw.get(m.audio.as_path()))
        else {
            bail!(
                "{} has no hypothesis for {} ({}:{})",
                file.display(),
                m.audio.display(),
                manifest_path.display(),
                m.line_no
            );
        };
        used[i] = true;
        out.push(hyps[i].text.clone());
    }
    let n_unused = used.iter().filter(|u| !**u).count();
    if n_unused > 0 {
        eprintln!(
            "note: {n_unused} line(s) of {} are not in the manifest and were not scored",
            file.display()
        );
    }
    Ok(out)
}

/// Runs `hearken eval`.
pub fn run(args: Args) -> Result<()> {
    let lines = read_lines(&args.manifest)?;
    let normalizer = EnglishTextNormalizer;
    let text = args.format == Format::Text;
    let mut utterances = Vec::with_capacity(lines.len());
    let mut model_run = None;

    match (&args.hypotheses, &args.model) {
        (Some(file), _) => {
            let hyps = match_hypotheses(&lines, &args.manifest, file)?;
            for (l, h) in lines.iter().zip(hyps) {
                utterances.push(score(&normalizer, l, h));
            }
        }
        (None, Some(dir)) => {
            let model = hearken::model::open(dir, &args.engine.options()?)?;
            args.decode.check_family(model.family(), dir)?;
            // Timestamps on, as OpenAI's transcribe() decodes by default.
            let opts = args.decode.options(true)?;
            let (mut audio_s, t0) = (0.0, Instant::now());
            for l in &lines {
                let pcm = hearken::audio::load(&l.path)?;
                audio_s += pcm.duration_s();
                let t = model.transcribe(&pcm.samples, &opts, &mut |_| {})?;
                let u = score(&normalizer, l, t.text);
                if text {
                    // Printed as it goes: a model run over a long manifest takes a while.
                    emit(&format!(
                        "{}\tWER {:.3}\t{}\n",
                        l.path.display(),
                        u.wer,
                        u.hypothesis
                    ))?;
                }
                utterances.push(u);
            }
            let elapsed_s = t0.elapsed().as_secs_f64();
            model_run = Some(ModelRun {
                dir: dir.clone(),
                engine: model.engine_name(),
                audio_s,
                elapsed_s,
                rtf: elapsed_s / audio_s.max(1e-9),
            });
        }
        (None, None) => bail!("give --model to transcribe the manifest or --hypotheses to score"),
    }

    let (mut w, mut c) = (ErrorRate::default(), ErrorRate::default());
    for u in &utterances {
        w.add((u.word_errors, u.n_ref_words));
        c.add((u.char_errors, u.n_ref_chars));
    }
    match args.format {
        Format::Json => {
            let report = Report {
                wer: w.rate(),
                cer: c.rate(),
                word_errors: w.errors,
                n_ref_words: w.n_ref,
                char_errors: c.errors,
                n_ref_chars: c.n_ref,
                n_utterances: utterances.len(),
                model: model_run,
                per_utterance: utterances,
            };
            emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
        }
        Format::Text => {
            if model_run.is_none() {
                for (l, u) in lines.iter().zip(&utterances) {
                    emit(&format!(
                        "{}\tWER {:.3}\t{}\n",
                        l.path.display(),
                        u.wer,
                        u.hypothesis
                    ))?;
                }
            }
            let audio = model_run
                .as_ref()
                .map(|m| format!(", {:.1} s of audio", m.audio_s))
                .unwrap_or_default();
            let speed = model_run
                .map(|m| format!(", RTF {:.3} ({})", m.rtf, m.engine))
                .unwrap_or_default();
            emit(&format!(
                "{} utterances{audio}: WER {:.2}% ({} / {} words), CER {:.2}%{speed}\n",
                utterances.len(),
                100.0 * w.rate(),
                w.errors,
                w.n_ref,
                100.0 * c.rate(),
            ))?;
        }
    }
    Ok(())
}
