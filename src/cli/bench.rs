//! `hearken bench`: latency, real-time factor and memory of a model directory per engine ×
//! execution provider × input.
//!
//! Each configuration (`ort/cpu`, `ort/cuda`, `tract/cpu`, …) runs in a child process of
//! its own: the binary runs itself again with a hidden `--child-job` holding one
//! configuration as JSON, and the child prints its result rows as JSON on stdout. So the
//! peak resident memory of a row (`VmHWM`, read by the child at the end of its runs) is
//! that configuration's alone, and one engine's allocator, thread pool and caches cannot
//! colour another's timings. The parent only plans, collects and prints.
//!
//! Provider honesty: a requested provider is registered without fallback, so one that
//! cannot be registered makes its rows `unavailable`, with ONNX Runtime's reason. A GPU
//! provider is loaded with CPU fallback disabled (`session.disable_cpu_ep_fallback`); when
//! ONNX Runtime refuses that, or with `--allow-fallback`, the model is loaded once more
//! with ONNX Runtime's profiler and run once, and the profile says how many nodes ran
//! where and which ones left the requested provider. Either way the command exits
//! non-zero unless `--allow-fallback` is given.
//!
//! Percentiles are linear interpolations between closest ranks (numpy's default,
//! Hyndman–Fan type 7), so p50 of an even count is the mean of the middle two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hearken::decode::whisper::Search;
use hearken::engine::ExecutionProvider;
use serde::{Deserialize, Serialize};

use machine::Machine;
use measure::{child, synthetic};
use report::{chart_panels, csv, footer_lines, table};

mod chart;
mod machine;
mod measure;
mod report;

/// Output formats of `hearken bench`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people, with the machine on top.
    Table,
    /// `{"machine", "settings", "results"}`.
    Json,
    /// One row per result, statistics flattened into columns.
    Csv,
}

/// Flags of `hearken bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory: a Whisper export (encoder.onnx + decoder.onnx, or an optimum
    /// export) or a CTC or audio-classification export (model.onnx).
    #[arg(long, default_value = "models/whisper-base")]
    model: PathBuf,
    /// Engines to measure (repeat, or comma-separate): ort, tract [default: ort,tract].
    #[arg(long, value_delimiter = ',')]
    engine: Vec<String>,
    /// ONNX Runtime execution providers, each measured on its own: cpu, cuda[:N],
    /// tensorrt[:N]. A GPU provider runs with CPU fallback disabled.
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    ep: Vec<String>,
    /// Report unavailable providers and nodes that fell back to the CPU, and exit zero.
    #[arg(long)]
    allow_fallback: bool,
    /// Intra-op threads for ONNX Runtime (0: its default, one per physical core). tract
    /// runs on the calling thread.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, then .ort/ from models/setup.sh).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Audio files to measure on [default: models/assets/beckett.wav if present, else
    /// --synthetic 10].
    #[arg(long, num_args = 1.., conflicts_with = "synthetic")]
    audio: Vec<PathBuf>,
    /// Synthetic inputs of these durations in seconds (comma-separated): a seeded mix of
    /// harmonics and noise. It measures speed only; its transcript means nothing.
    #[arg(long, value_delimiter = ',')]
    synthetic: Vec<f64>,
    /// Timed runs per input.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed runs per input before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Beam size for Whisper (1 or absent: greedy).
    #[arg(long)]
    beam: Option<usize>,
    /// Spoken language for Whisper (`en`, `de`, …, or `auto` to detect it each window).
    #[arg(long, default_value = "en")]
    language: String,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also draw a PNG bar chart of end-to-end and per-token p50 here.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// One configuration to measure, as JSON (internal: the parent's child processes).
    #[arg(long, hide = true)]
    child_job: Option<String>,
}

/// What kind of model directory is measured.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum ModelKind {
    /// `encoder.onnx` + `decoder.onnx`.
    Whisper,
    /// `model.onnx` taking a waveform (CTC or audio classification).
    Waveform,
}

/// One input: a file, or synthetic audio of a duration.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Input {
    File { path: PathBuf },
    Synthetic { seconds: f64 },
}

impl Input {
    fn label(&self) -> String {
        match self {
            Input::File { path } => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            Input::Synthetic { seconds } => format!("synthetic-{seconds}s"),
        }
    }

    /// 16 kHz mono samples.
    fn samples(&self) -> Result<Vec<f32>> {
        Ok(match self {
            Input::File { path } => hearken::audio::load(path)?.samples,
            Input::Synthetic { seconds } => synthetic(*seconds),
        })
    }
}

/// One configuration, handed to a child process.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Job {
    model: PathBuf,
    model_kind: ModelKind,
    engine: String,
    provider: String,
    threads: usize,
    ort_lib: Option<PathBuf>,
    allow_fallback: bool,
    inputs: Vec<Input>,
    runs: usize,
    warmup: usize,
    beam: Option<usize>,
    language: String,
}

/// How a row's measurement went.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    /// Measured.
    Ok,
    /// The engine or provider cannot run here (see `reason`).
    Unavailable,
    /// Nodes left the requested provider and `--allow-fallback` was not given.
    Fallback,
    /// Something else failed (see `reason`).
    Error,
}

/// Summary of one measured quantity over the timed runs.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    min: f64,
    max: f64,
    mean: f64,
}

impl Stats {
    /// `None` for no values.
    fn of(values: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Stats {
            p50: percentile(&v, 50.0),
            p90: percentile(&v, 90.0),
            p99: percentile(&v, 99.0),
            min: v[0],
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// The `p`-th percentile (0..=100) of ascending `sorted`, interpolating linearly between
/// the closest ranks (numpy's default): rank `p / 100 · (n − 1)`. `NaN` when empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// One result: a configuration on one input. Field names are read by scripts
/// (`benches/peers/`): keep them.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Row {
    engine: String,
    provider: String,
    input: String,
    audio_s: f64,
    status: Status,
    reason: Option<String>,
    load_ms: Option<f64>,
    /// Peak resident memory of the configuration's process, MiB.
    peak_rss_mb: Option<f64>,
    /// Threads of the configuration's process after its runs (main thread included).
    threads: Option<usize>,
    search: String,
    runs: usize,
    n_tokens: Option<usize>,
    text: Option<String>,
    features_ms: Option<Stats>,
    encoder_ms: Option<Stats>,
    forward_ms: Option<Stats>,
    decoder_token_ms: Option<Stats>,
    first_token_ms: Option<Stats>,
    total_ms: Option<Stats>,
    rtf: Option<Stats>,
    /// Graph file → provider → nodes run there, when the graph was profiled.
    nodes: Option<BTreeMap<String, BTreeMap<String, usize>>>,
    /// `graph: node` for every node that ran outside the requested provider.
    fallback_nodes: Vec<String>,
}

impl Row {
    fn empty(job: &Job, input: &Input, audio_s: f64) -> Row {
        Row {
            engine: job.engine.clone(),
            provider: job.provider.clone(),
            input: input.label(),
            audio_s,
            status: Status::Ok,
            reason: None,
            load_ms: None,
            peak_rss_mb: None,
            threads: None,
            search: match job.model_kind {
                ModelKind::Whisper => search_label(job.beam),
                ModelKind::Waveform => "none".into(),
            },
            runs: 0,
            n_tokens: None,
            text: None,
            features_ms: None,
            encoder_ms: None,
            forward_ms: None,
            decoder_token_ms: None,
            first_token_ms: None,
            total_ms: None,
            rtf: None,
            nodes: None,
            fallback_nodes: Vec::new(),
        }
    }

    fn config(&self) -> String {
        format!("{}/{}", self.engine, self.provider)
    }
}

fn search_of(beam: Option<usize>) -> Result<Search> {
    Ok(match beam {
        None | Some(1) => Search::Greedy,
        Some(0) => bail!("--beam must be at least 1"),
        Some(beam_size) => Search::Beam {
            beam_size,
            patience: 1.0,
        },
    })
}

fn search_label(beam: Option<usize>) -> String {
    match beam {
        None | Some(0) | Some(1) => "greedy".into(),
        Some(n) => format!("beam{n}"),
    }
}

/// Runs `hearken bench`, or one configuration of it in a child process.
pub fn run(args: Args) -> Result<()> {
    match &args.child_job {
        Some(job) => {
            let job: Job = serde_json::from_str(job).context("reading --child-job")?;
            let rows = child(&job);
            println!("{}", serde_json::to_string(&rows)?);
            Ok(())
        }
        None => parent(args),
    }
}

fn model_kind(dir: &Path) -> Result<ModelKind> {
    if !dir.is_dir() {
        bail!("{}: no such model directory", dir.display());
    }
    // Whisper in hearken's layout (encoder.onnx + decoder.onnx) or as a Hugging Face
    // optimum export (encoder_model.onnx + decoders): `WhisperModel::load` takes both.
    if dir.join("encoder.onnx").is_file() || dir.join("encoder_model.onnx").is_file() {
        Ok(ModelKind::Whisper)
    } else if dir.join("model.onnx").is_file() {
        Ok(ModelKind::Waveform)
    } else {
        bail!(
            "{}: not a model directory (expected encoder.onnx and decoder.onnx, an optimum \
             export with encoder_model.onnx, or model.onnx)",
            dir.display()
        )
    }
}

/// The configurations to measure, as `(engine, provider)`, in command-line order.
fn configurations(engines: &[String], eps: &[String]) -> Result<Vec<(String, String)>> {
    let engines: Vec<&str> = if engines.is_empty() {
        vec!["ort", "tract"]
    } else {
        engines.iter().map(String::as_str).collect()
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for engine in engines {
        let configs = match engine {
            "ort" | "onnxruntime" => eps
                .iter()
                .map(|ep| {
                    let p: ExecutionProvider = ep.parse()?;
                    // `cuda:0` is `cuda`: label the device only when it is not the first.
                    Ok(("ort".to_string(), canonical_provider(ep, p)))
                })
                .collect::<hearken::Result<Vec<_>>>()?,
            "tract" => vec![("tract".to_string(), "cpu".to_string())],
            other => bail!("unknown engine `{other}` (expected ort or tract)"),
        };
        for c in configs {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn canonical_provider(raw: &str, p: ExecutionProvider) -> String {
    match raw.split_once(':') {
        Some((_, dev)) if dev.trim() != "0" => format!("{}:{}", p.name(), dev.trim()),
        _ => p.name().to_string(),
    }
}

fn default_inputs() -> Vec<Input> {
    let rel = Path::new("models/assets/beckett.wav");
    let candidates = [
        rel.to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel),
    ];
    match candidates.into_iter().find(|p| p.is_file()) {
        Some(path) => vec![Input::File { path }],
        None => vec![Input::Synthetic { seconds: 10.0 }],
    }
}

fn parent(args: Args) -> Result<()> {
    let model_kind = model_kind(&args.model)?;
    let configs = configurations(&args.engine, &args.ep)?;
    search_of(args.beam)?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let inputs: Vec<Input> = if !args.audio.is_empty() {
        args.audio
            .iter()
            .map(|p| Input::File { path: p.clone() })
            .collect()
    } else if !args.synthetic.is_empty() {
        for &s in &args.synthetic {
            if !(s.is_finite() && s > 0.0 && s <= 3600.0) {
                bail!("--synthetic durations must be in (0, 3600] seconds, got {s}");
            }
        }
        args.synthetic
            .iter()
            .map(|&seconds| Input::Synthetic { seconds })
            .collect()
    } else {
        default_inputs()
    };
    // Decode every file once here, so that a bad file fails before any measurement.
    let mut durations = Vec::new();
    for input in &inputs {
        let samples = input
            .samples()
            .with_context(|| format!("reading input {}", input.label()))?;
        if samples.is_empty() {
            bail!("input {} holds no samples", input.label());
        }
        durations.push(samples.len() as f64 / 16_000.0);
    }
    let machine = Machine::detect(args.ort_lib.as_deref());
    let exe = std::env::current_exe().context("locating the hearken binary to run children")?;

    let mut rows: Vec<Row> = Vec::new();
    for (engine, provider) in &configs {
        let job = Job {
            model: args.model.clone(),
            model_kind,
            engine: engine.clone(),
            provider: provider.clone(),
            threads: args.threads,
            ort_lib: args.ort_lib.clone(),
            allow_fallback: args.allow_fallback,
            inputs: inputs.clone(),
            runs: args.runs,
            warmup: args.warmup,
            beam: args.beam,
            language: args.language.clone(),
        };
        eprintln!(
            "bench: {engine}/{provider}: {} input(s), {} warm-up + {} timed run(s) each",
            inputs.len(),
            args.warmup,
            args.runs
        );
        let t = Instant::now();
        let mut got = spawn_child(&exe, &job, &durations);
        for r in &got {
            if r.status != Status::Ok {
                eprintln!(
                    "bench: {}/{} on {}: {}: {}",
                    r.engine,
                    r.provider,
                    r.input,
                    status_name(r.status),
                    r.reason.as_deref().unwrap_or("")
                );
            }
        }
        eprintln!(
            "bench: {engine}/{provider}: done in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        rows.append(&mut got);
    }

    let settings = serde_json::json!({
        "model": args.model.display().to_string(),
        "model_kind": model_kind,
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": args.threads,
        "search": search_label(args.beam),
        "language": args.language,
        "allow_fallback": args.allow_fallback,
        "percentiles": "linear interpolation between closest ranks (numpy default)",
        "peak_rss_unit": "MiB (VmHWM of the configuration's own process)",
        "first_token": "log-mel of the first window + encoder + prompt through the decoder + arg-max, a separate pass per run",
        "decoder_token": "decoder time / decoder calls (prompt calls included; one call advances every beam)",
    });
    let rendered = match args.format {
        Format::Table => table(&machine, &args.model, &rows),
        Format::Json => {
            let out = serde_json::json!({
                "machine": machine,
                "settings": settings,
                "results": rows,
            });
            format!("{}\n", serde_json::to_string_pretty(&out)?)
        }
        Format::Csv => csv(&machine, &rows),
    };
    print!("{rendered}");
    if let Some(path) = &args.chart {
        let (title, panels) = chart_panels(&args.model, &rows, &search_label(args.beam));
        if panels.is_empty() {
            eprintln!("bench: no measured rows: chart not written");
        } else {
            let footer = footer_lines(&machine);
            let png = chart::render(&title, &panels, &footer)
                .to_png()
                .context("encoding the chart")?;
            std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("bench: chart written to {}", path.display());
        }
    }
    verdict(&rows, args.allow_fallback)
}

/// The exit status: an error naming every configuration that could not be measured as
/// asked.
fn verdict(rows: &[Row], allow_fallback: bool) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    for r in rows {
        let msg = match r.status {
            Status::Ok => continue,
            Status::Unavailable | Status::Fallback if allow_fallback => continue,
            Status::Unavailable => format!(
                "{} is unavailable: {} (--allow-fallback reports it and exits zero)",
                r.config(),
                r.reason.as_deref().unwrap_or("no reason given")
            ),
            Status::Fallback => format!(
                "{}: {} (--allow-fallback accepts it)",
                r.config(),
                r.reason.as_deref().unwrap_or("nodes fell back to the CPU")
            ),
            Status::Error => format!(
                "{} failed: {}",
                r.config(),
                r.reason.as_deref().unwrap_or("no reason given")
            ),
        };
        if !problems.contains(&msg) {
            problems.push(msg);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Unavailable => "unavailable",
        Status::Fallback => "fallback",
        Status::Error => "error",
    }
}

/// Runs one configuration in a child process; its failure becomes `error` rows.
fn spawn_child(exe: &Path, job: &Job, durations: &[f64]) -> Vec<Row> {
    let failed = |reason: String| -> Vec<Row> {
        job.inputs
            .iter()
            .zip(durations)
            .map(|(input, &audio_s)| Row {
                status: Status::Error,
                reason: Some(reason.clone()),
                ..Row::empty(job, input, audio_s)
            })
            .collect()
    };
    let json = match serde_json::to_string(job) {
        Ok(j) => j,
        Err(e) => return failed(format!("cannot describe the job: {e}")),
    };
    let out = match Command::new(exe)
        .args(["bench", "--child-job", &json])
        .output()
    {
        Ok(o) => o,
        Err(e) => return failed(format!("cannot start {}: {e}", exe.display())),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .map(serde_json::from_str::<Vec<Row>>);
    match (out.status.success(), parsed) {
        (true, Some(Ok(rows))) => {
            // Warnings of the child (tracing, ONNX Runtime) stay visible.
            eprint!("{stderr}");
            rows
        }
        (_, parsed) => {
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            let why = match parsed {
                Some(Err(e)) => format!("unreadable result ({e})"),
                _ => format!("child process {}", out.status),
            };
            failed(format!("{why}: {last}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!((percentile(&v, 90.0) - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        let s = Stats::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.p50, s.min, s.max, s.mean), (2.0, 1.0, 3.0, 2.0));
        assert!((s.p99 - 2.98).abs() < 1e-12);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn configurations_expand_providers_and_dedupe() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c = configurations(
            &s(&["ort", "tract", "ort"]),
            &s(&["cpu", "cuda:0", "cuda:1"]),
        )
        .unwrap();
        let want = [
            ("ort", "cpu"),
            ("ort", "cuda"),
            ("ort", "cuda:1"),
            ("tract", "cpu"),
        ];
        assert_eq!(
            c,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        assert_eq!(configurations(&[], &s(&["cpu"])).unwrap().len(), 2);
        assert!(configurations(&s(&["onnx"]), &s(&["cpu"])).is_err());
        assert!(configurations(&s(&["ort"]), &s(&["metal"])).is_err());
    }

    pub(super) fn job_for_tests() -> Job {
        Job {
            model: "m".into(),
            model_kind: ModelKind::Whisper,
            engine: "ort".into(),
            provider: "cuda".into(),
            threads: 0,
            ort_lib: None,
            allow_fallback: false,
            inputs: vec![],
            runs: 1,
            warmup: 0,
            beam: None,
            language: "en".into(),
        }
    }

    pub(super) fn row(status: Status, reason: Option<&str>) -> Row {
        let job = job_for_tests();
        Row {
            status,
            reason: reason.map(str::to_string),
            ..Row::empty(&job, &Input::Synthetic { seconds: 1.0 }, 1.0)
        }
    }

    #[test]
    fn unavailable_or_fallen_back_providers_fail_unless_allowed() {
        let un = row(Status::Unavailable, Some("built without CUDA"));
        let err = verdict(&[un.clone(), un.clone()], false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "ort/cuda is unavailable: built without CUDA (--allow-fallback reports it and exits zero)"
        );
        assert!(verdict(std::slice::from_ref(&un), true).is_ok());
        let fb = row(Status::Fallback, Some("1 of 4 nodes ran on cpu"));
        assert!(verdict(std::slice::from_ref(&fb), false).is_err());
        assert!(verdict(&[fb], true).is_ok());
        // Errors are never excused.
        assert!(verdict(&[row(Status::Error, Some("boom"))], true).is_err());
        assert!(verdict(&[row(Status::Ok, None)], false).is_ok());
    }
}
