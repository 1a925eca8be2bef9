//! One configuration measured in its own process: load, warm up, time, read the peak
//! memory, and, for GPU providers, find out where the nodes really ran.
//!
//! Every model runs through [`Model::transcribe`] or [`Model::classify`], the code
//! `hearken transcribe` and `hearken classify` run; stage timings, time to first token
//! included, come from the result's [`crate::result::Timing`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Input, Job, Row, Stats, Status};
use crate::decode::whisper::Search;
use crate::engine::{Engine, EngineKind, ExecutionProvider, Graph, OrtOptions, TractOptions};
use crate::model::classify::ClassifyOptions;
use crate::model::{Family, Model};
use crate::offline::TranscribeOptions;
use crate::offline::whisper::{Language, WhisperOptions};
use crate::{Error, Result};

/// `n_samples = round(seconds · 16000)` of deterministic, speech-like audio: a gliding
/// 100–160 Hz fundamental with eight harmonics under a moving formant, gated at a
/// syllable rate of 4 Hz, plus seeded white noise. Timing only: it is not speech.
pub fn synthetic(seconds: f64) -> Vec<f32> {
    let n = (seconds * 16_000.0).round().max(0.0) as usize;
    let mut state = 0x5eed_u64;
    let mut noise = move || {
        // SplitMix64: a fixed seed gives the same audio on every machine.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let tau = std::f64::consts::TAU;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let f0 = 130.0 + 30.0 * (tau * 0.3 * t).sin();
            phase = (phase + tau * f0 / 16_000.0) % tau;
            let formant = 700.0 + 400.0 * (tau * 0.7 * t).sin();
            let voiced: f64 = (1..=8)
                .map(|k| {
                    let f = k as f64 * f0;
                    let gain = (-((f - formant) / 300.0).powi(2)).exp() + 0.1 / k as f64;
                    gain * (k as f64 * phase).sin()
                })
                .sum();
            let gate = (tau * 4.0 * t).sin().powi(2);
            (0.2 * gate * voiced + 0.01 * noise()) as f32
        })
        .collect()
}

/// An engine that remembers the graphs it loaded, to ask them about their providers.
struct Recording {
    inner: Arc<dyn Engine>,
    graphs: Mutex<Vec<(String, Arc<dyn Graph>)>>,
}

impl Recording {
    fn new(inner: Arc<dyn Engine>) -> Self {
        Recording {
            inner,
            graphs: Mutex::new(Vec::new()),
        }
    }

    fn graphs(&self) -> Vec<(String, Arc<dyn Graph>)> {
        self.graphs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn keep(&self, name: String, g: &Arc<dyn Graph>) {
        self.graphs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name, Arc::clone(g)));
    }
}

impl Engine for Recording {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn load(&self, path: &Path) -> Result<Arc<dyn Graph>> {
        let g = self.inner.load(path)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        self.keep(name, &g);
        Ok(g)
    }

    fn load_bytes(&self, bytes: &[u8]) -> Result<Arc<dyn Graph>> {
        let g = self.inner.load_bytes(bytes)?;
        self.keep("<memory>".into(), &g);
        Ok(g)
    }
}

/// The options a job's runs use: as `hearken transcribe` with the job's search and
/// language (timestamps when the audio needs several windows).
fn options(job: &Job, audio_s: f64) -> Result<TranscribeOptions> {
    let search = match job.beam {
        None | Some(1) => Search::Greedy,
        Some(0) => return Err(Error::invalid("beam size", "at least 1", 0)),
        Some(beam_size) => Search::Beam {
            beam_size,
            patience: 1.0,
        },
    };
    Ok(TranscribeOptions {
        whisper: WhisperOptions {
            language: job.language.parse::<Language>()?,
            search,
            timestamps: audio_s > 30.0,
            ..WhisperOptions::default()
        },
        ..TranscribeOptions::default()
    })
}

/// The timings of one run, milliseconds.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    features_ms: f64,
    encoder_ms: Option<f64>,
    forward_ms: Option<f64>,
    decoder_token_ms: Option<f64>,
    first_token_ms: Option<f64>,
    total_ms: f64,
    rtf: f64,
}

/// What a run produced, for the row: text and text-token count.
type Output = Option<(String, usize)>;

fn run_once(model: &Model, job: &Job, samples: &[f32]) -> Result<(Sample, Output)> {
    let audio_s = samples.len() as f64 / f64::from(crate::audio::SAMPLE_RATE_HZ);
    if model.family() == Family::Classifier {
        let labels = model.classify(samples, &ClassifyOptions::default())?;
        let t = &labels.timing;
        return Ok((
            Sample {
                forward_ms: Some(t.encoder_ms),
                total_ms: t.total_ms,
                rtf: t.real_time_factor,
                ..Sample::default()
            },
            None,
        ));
    }
    let tr = model.transcribe(samples, &options(job, audio_s)?, &mut |_| {})?;
    let t = &tr.timing;
    let sample = match model.family() {
        Family::Whisper => Sample {
            features_ms: t.features_ms,
            encoder_ms: Some(t.encoder_ms),
            forward_ms: None,
            decoder_token_ms: (t.n_decoder_steps > 0)
                .then(|| t.decoder_ms / t.n_decoder_steps as f64),
            first_token_ms: t.first_token_ms,
            total_ms: t.total_ms,
            rtf: t.real_time_factor,
        },
        _ => Sample {
            forward_ms: Some(t.encoder_ms),
            total_ms: t.total_ms,
            rtf: t.real_time_factor,
            ..Sample::default()
        },
    };
    let output = match model.as_whisper() {
        Some(w) => {
            let eot = w.params().eot;
            Some((tr.text.clone(), tr.tokens().filter(|&id| id < eot).count()))
        }
        None => Some((tr.text.clone(), tr.tokens().count())),
    };
    Ok((sample, output))
}

/// The engine kind of a job. `profile` loads for the node report: CPU fallback allowed,
/// profiler on.
fn engine_kind(job: &Job, profile: bool) -> Result<EngineKind> {
    Ok(match job.engine.as_str() {
        "ort" => {
            let provider: ExecutionProvider = job.provider.parse()?;
            let gpu = provider != ExecutionProvider::Cpu;
            EngineKind::Ort(OrtOptions {
                dylib_path: job.ort_lib.clone(),
                providers: vec![provider],
                // Registration never falls back here: an unregistered provider is a row
                // marked unavailable, not CPU numbers under a GPU's name.
                allow_fallback: false,
                intra_threads: job.threads,
                disable_cpu_fallback: gpu && !profile && !job.allow_fallback,
                profile_nodes: profile,
                ..OrtOptions::default()
            })
        }
        "tract" => EngineKind::Tract(TractOptions::default()),
        other => return Err(Error::invalid("engine", "ort or tract", other)),
    })
}

/// The reason, when an error means "cannot run here" rather than "went wrong".
fn unavailable_reason(e: &Error) -> Option<String> {
    match e {
        Error::ProviderUnavailable { reason, .. } => Some(reason.clone()),
        e @ (Error::OrtLibraryNotFound { .. } | Error::FeatureDisabled { .. }) => {
            Some(e.to_string())
        }
        _ => None,
    }
}

/// Nodes that ran outside `requested`, as `graph: node`, from per-graph reports
/// (graph → provider → node names).
fn fallback_nodes(
    requested: &str,
    report: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> Vec<String> {
    let requested = requested.split(':').next().unwrap_or(requested);
    report
        .iter()
        .flat_map(|(graph, by_provider)| {
            by_provider
                .iter()
                .filter(|(p, _)| p.as_str() != requested)
                .flat_map(move |(_, nodes)| nodes.iter().map(move |n| format!("{graph}: {n}")))
        })
        .collect()
}

/// `"12 of 340 nodes ran on cpu instead of cuda: encoder.onnx: /a, …"`, naming at most
/// ten nodes.
fn fallback_reason(
    requested: &str,
    report: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    fallen: &[String],
) -> String {
    let total: usize = report.values().flat_map(|p| p.values()).map(Vec::len).sum();
    let requested = requested.split(':').next().unwrap_or(requested);
    let elsewhere: Vec<&str> = report
        .values()
        .flat_map(|p| p.keys())
        .filter(|p| p.as_str() != requested)
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let shown: Vec<&str> = fallen.iter().take(10).map(String::as_str).collect();
    let more = if fallen.len() > shown.len() {
        format!(", and {} more", fallen.len() - shown.len())
    } else {
        String::new()
    };
    format!(
        "{} of {total} nodes ran on {} instead of {requested}: {}{more}",
        fallen.len(),
        elsewhere.join(", "),
        shown.join(", ")
    )
}

/// Loads the model with ONNX Runtime's profiler, runs it once on `samples` and reports
/// which provider ran each node, per graph file.
fn probe_nodes(
    job: &Job,
    samples: &[f32],
) -> Result<BTreeMap<String, BTreeMap<String, Vec<String>>>> {
    let engine = Recording::new(engine_kind(job, true)?.build()?);
    let model = crate::model::open_with(&job.model, &engine)?;
    run_once(&model, job, samples)?;
    let mut report = BTreeMap::new();
    for (name, graph) in engine.graphs() {
        if let Some(nodes) = graph.node_providers()? {
            report.insert(name, nodes);
        }
    }
    Ok(report)
}

fn counts(
    report: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> BTreeMap<String, BTreeMap<String, usize>> {
    report
        .iter()
        .map(|(g, p)| {
            (
                g.clone(),
                p.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
            )
        })
        .collect()
}

/// `VmHWM` (peak resident set) and `Threads` of this process, from `/proc/self/status`.
fn self_status() -> (Option<f64>, Option<usize>) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    (
        field("VmHWM:").map(|kib| kib as f64 / 1024.0),
        field("Threads:").map(|n| n as usize),
    )
}

/// Measures one configuration on every input. Meant to run in a process of its own: the
/// rows' peak memory and thread count are this process's.
pub fn run_job(job: &Job) -> Vec<Row> {
    let inputs: Vec<(Input, Result<Vec<f32>>)> = job
        .inputs
        .iter()
        .map(|i| (i.clone(), i.samples()))
        .collect();
    let audio_s = |s: &Result<Vec<f32>>| s.as_ref().map_or(0.0, |v| v.len() as f64 / 16_000.0);
    let rows_with = |status: Status, reason: String| -> Vec<Row> {
        inputs
            .iter()
            .map(|(input, s)| Row {
                status,
                reason: Some(reason.clone()),
                ..Row::empty(job, input, audio_s(s))
            })
            .collect()
    };
    let gpu = job.engine == "ort" && job.provider.split(':').next() != Some("cpu");
    let first_samples = inputs.iter().find_map(|(_, s)| s.as_ref().ok());

    let t = Instant::now();
    let engine = match engine_kind(job, false).and_then(|k| k.build()) {
        Ok(e) => Recording::new(e),
        Err(e) => {
            return match unavailable_reason(&e) {
                Some(reason) => rows_with(Status::Unavailable, reason),
                None => rows_with(Status::Error, e.to_string()),
            };
        }
    };
    let model = match crate::model::open_with(&job.model, &engine) {
        Ok(m) => m,
        Err(e) => {
            if let Some(reason) = unavailable_reason(&e) {
                return rows_with(Status::Unavailable, reason);
            }
            // With CPU fallback disabled ONNX Runtime only says that some node would
            // fall back: the profiled load says which.
            if gpu
                && !job.allow_fallback
                && let Some(samples) = first_samples
                && let Ok(report) = probe_nodes(job, samples)
            {
                let fallen = fallback_nodes(&job.provider, &report);
                if !fallen.is_empty() {
                    let reason = fallback_reason(&job.provider, &report, &fallen);
                    let mut rows = rows_with(Status::Fallback, reason);
                    for r in &mut rows {
                        r.nodes = Some(counts(&report));
                        r.fallback_nodes = fallen.clone();
                    }
                    return rows;
                }
            }
            return rows_with(Status::Error, e.to_string());
        }
    };
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    // Belt and braces: every graph must report the requested provider as registered.
    if job.engine == "ort"
        && let Ok(want) = job.provider.parse::<ExecutionProvider>()
        && let Some((name, _)) = engine
            .graphs()
            .into_iter()
            .find(|(_, g)| !g.providers().contains(&want))
    {
        return rows_with(
            Status::Unavailable,
            format!("{name}: {} did not register", job.provider),
        );
    }

    let mut rows = Vec::new();
    for (input, samples) in &inputs {
        let mut row = Row {
            load_ms: Some(load_ms),
            ..Row::empty(job, input, audio_s(samples))
        };
        let samples = match samples {
            Ok(s) => s,
            Err(e) => {
                row.status = Status::Error;
                row.reason = Some(e.to_string());
                rows.push(row);
                continue;
            }
        };
        match measure(&model, job, samples) {
            Ok((runs, output)) => {
                let col = |f: fn(&Sample) -> Option<f64>| {
                    Stats::of(&runs.iter().filter_map(f).collect::<Vec<_>>())
                };
                row.runs = runs.len();
                row.features_ms = col(|s| Some(s.features_ms));
                row.encoder_ms = col(|s| s.encoder_ms);
                row.forward_ms = col(|s| s.forward_ms);
                row.decoder_token_ms = col(|s| s.decoder_token_ms);
                row.first_token_ms = col(|s| s.first_token_ms);
                row.total_ms = col(|s| Some(s.total_ms));
                row.rtf = col(|s| Some(s.rtf));
                if let Some((text, n_tokens)) = output {
                    row.text = Some(text);
                    row.n_tokens = Some(n_tokens);
                }
            }
            Err(e) => {
                row.status = Status::Error;
                row.reason = Some(e.to_string());
            }
        }
        rows.push(row);
    }
    // Read before the node probe below, whose second copy of the model is not part of
    // this configuration's footprint.
    let (peak_rss_mb, threads) = self_status();
    for r in &mut rows {
        r.peak_rss_mb = peak_rss_mb;
        r.threads = threads;
    }
    let search = if model.family() == Family::Whisper {
        super::search_label(job.beam)
    } else {
        "none".to_string()
    };
    for r in &mut rows {
        r.search = search.clone();
    }
    drop(model);

    // Fallback was allowed at load time: say how much of the graph left the GPU.
    if gpu
        && job.allow_fallback
        && let Some(samples) = first_samples
    {
        match probe_nodes(job, samples) {
            Ok(report) => {
                let fallen = fallback_nodes(&job.provider, &report);
                let reason =
                    (!fallen.is_empty()).then(|| fallback_reason(&job.provider, &report, &fallen));
                for r in &mut rows {
                    r.nodes = Some(counts(&report));
                    r.fallback_nodes = fallen.clone();
                    if r.reason.is_none() {
                        r.reason = reason.clone();
                    }
                }
            }
            Err(e) => tracing::warn!("bench: node report unavailable: {e}"),
        }
    }
    rows
}

/// Warm-up runs, then the timed runs; the output of the last one.
fn measure(model: &Model, job: &Job, samples: &[f32]) -> Result<(Vec<Sample>, Output)> {
    for _ in 0..job.warmup {
        run_once(model, job, samples)?;
    }
    let mut runs = Vec::with_capacity(job.runs);
    let mut output = None;
    for _ in 0..job.runs {
        let (s, out) = run_once(model, job, samples)?;
        runs.push(s);
        output = out;
    }
    Ok((runs, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tests::job_for_tests;

    fn report(
        entries: &[(&str, &str, &[&str])],
    ) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let mut r: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (g, p, nodes) in entries {
            r.entry(g.to_string())
                .or_default()
                .insert(p.to_string(), nodes.iter().map(|n| n.to_string()).collect());
        }
        r
    }

    #[test]
    fn nodes_outside_the_requested_provider_are_fallback() {
        let r = report(&[
            ("encoder.onnx", "cuda", &["/conv1/Conv", "/conv2/Conv"]),
            ("encoder.onnx", "cpu", &["/Shape"]),
            ("decoder.onnx", "cuda", &["/MatMul"]),
        ]);
        let fallen = fallback_nodes("cuda:0", &r);
        assert_eq!(fallen, vec!["encoder.onnx: /Shape".to_string()]);
        let reason = fallback_reason("cuda", &r, &fallen);
        assert_eq!(
            reason,
            "1 of 4 nodes ran on cpu instead of cuda: encoder.onnx: /Shape"
        );
        assert!(fallback_nodes("cuda", &report(&[("m.onnx", "cuda", &["/a"])])).is_empty());
        // TensorRT leaving nodes to CUDA is fallback too.
        let r = report(&[("m.onnx", "tensorrt", &["/a"]), ("m.onnx", "cuda", &["/b"])]);
        assert_eq!(
            fallback_nodes("tensorrt", &r),
            vec!["m.onnx: /b".to_string()]
        );
    }

    /// The profiled load on real Whisper graphs: every node of both graphs reports the
    /// CPU, which would all be fallback had CUDA been requested.
    #[test]
    fn whisper_tiny_probe_reports_every_graph() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/whisper-tiny.en");
        let ort = EngineKind::Ort(OrtOptions::default()).build();
        if !model.join("decoder.onnx").is_file() || ort.is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "models/setup.sh should have fetched the model and ONNX Runtime"
            );
            eprintln!("skipping: whisper-tiny.en or ONNX Runtime absent");
            return;
        }
        let job = Job {
            model,
            provider: "cpu".into(),
            ..job_for_tests()
        };
        let report = probe_nodes(&job, &synthetic(1.0)).unwrap();
        assert_eq!(
            report.keys().collect::<Vec<_>>(),
            ["decoder.onnx", "encoder.onnx"]
        );
        for by_provider in report.values() {
            assert_eq!(by_provider.keys().collect::<Vec<_>>(), ["cpu"]);
            assert!(by_provider["cpu"].len() > 10);
        }
        assert!(fallback_nodes("cpu", &report).is_empty());
        let all: usize = counts(&report).values().flat_map(|p| p.values()).sum();
        assert_eq!(fallback_nodes("cuda", &report).len(), all);
    }

    #[test]
    fn synthetic_audio_is_deterministic_and_in_range() {
        let a = synthetic(0.5);
        assert_eq!(a.len(), 8000);
        assert_eq!(a, synthetic(0.5));
        assert!(a.iter().all(|x| x.is_finite() && x.abs() < 1.0));
        assert!(a.iter().map(|x| x.abs()).fold(0.0, f32::max) > 0.05);
    }
}
