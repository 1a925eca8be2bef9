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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hearken::bench::report::{chart_panels, csv, footer_lines, table};
use hearken::bench::{Input, Job, Machine, Row, Status, run_job, search_label, status_name};
use hearken::engine::ExecutionProvider;

use super::out;

mod chart;

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

/// Runs `hearken bench`, or one configuration of it in a child process.
pub fn run(args: Args) -> Result<()> {
    match &args.child_job {
        Some(job) => {
            let job: Job = serde_json::from_str(job).context("reading --child-job")?;
            let rows = run_job(&job);
            out::print(&format!("{}\n", serde_json::to_string(&rows)?))
        }
        None => parent(args),
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
    if !args.model.exists() {
        bail!("{}: no such model directory", args.model.display());
    }
    let configs = configurations(&args.engine, &args.ep)?;
    if args.beam == Some(0) {
        bail!("--beam must be at least 1");
    }
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
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": args.threads,
        "search": search_label(args.beam),
        "language": args.language,
        "allow_fallback": args.allow_fallback,
        "percentiles": "linear interpolation between closest ranks (numpy default)",
        "peak_rss_unit": "MiB (VmHWM of the configuration's own process)",
        "first_token": "from the start of transcription to the logits of the first sampled token (log-mel, encoder, language detection, prompt), measured inside the timed runs",
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
    out::print(&rendered)?;
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

    fn row(status: Status, reason: Option<&str>) -> Row {
        let job = Job {
            engine: "ort".into(),
            provider: "cuda".into(),
            ..Job::default()
        };
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
