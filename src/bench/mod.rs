//! Benchmarks measured through the library's own model code: latency, real-time factor,
//! time to first token and peak memory of a model directory per engine × execution
//! provider × input.
//!
//! One [`Job`] is one configuration (`ort/cpu`, `ort/cuda`, `tract/cpu`) on a list of
//! inputs; [`measure::run_job`] opens the model with [`crate::model::open_with`] and times
//! [`crate::model::Model::transcribe`] or [`crate::model::Model::classify`], exactly what
//! `hearken transcribe` runs, so the benchmark cannot drift from the product. The
//! `hearken bench` command runs each job in a child process of its own (so peak memory and
//! thread pools are the configuration's alone) and renders the rows with [`report`].
//!
//! Percentiles are linear interpolations between closest ranks (numpy's default,
//! Hyndman–Fan type 7), so p50 of an even count is the mean of the middle two.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Result;

pub mod machine;
pub mod measure;
pub mod report;

pub use machine::Machine;
pub use measure::{run_job, synthetic};

/// One input: a file, or synthetic audio of a duration.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// An audio file.
    File {
        /// Its path.
        path: PathBuf,
    },
    /// Seeded synthetic audio of a duration ([`synthetic`]).
    Synthetic {
        /// Its length, seconds.
        seconds: f64,
    },
}

impl Input {
    /// The name rows carry: the file name, or `synthetic-10s`.
    pub fn label(&self) -> String {
        match self {
            Input::File { path } => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            Input::Synthetic { seconds } => format!("synthetic-{seconds}s"),
        }
    }

    /// 16 kHz mono samples.
    pub fn samples(&self) -> Result<Vec<f32>> {
        Ok(match self {
            Input::File { path } => crate::audio::load(path)?.samples,
            Input::Synthetic { seconds } => synthetic(*seconds),
        })
    }
}

/// One configuration, handed to a child process.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Job {
    /// The model directory.
    pub model: PathBuf,
    /// `ort` or `tract`.
    pub engine: String,
    /// Execution provider: `cpu`, `cuda`, `cuda:1`, `tensorrt`.
    pub provider: String,
    /// ONNX Runtime intra-op threads (0: its default).
    pub threads: usize,
    /// Path of libonnxruntime.so.
    pub ort_lib: Option<PathBuf>,
    /// Accept nodes that leave the requested provider.
    pub allow_fallback: bool,
    /// What to measure on.
    pub inputs: Vec<Input>,
    /// Timed runs per input.
    pub runs: usize,
    /// Untimed runs per input first.
    pub warmup: usize,
    /// Whisper beam size (`None` or 1: greedy).
    pub beam: Option<usize>,
    /// Whisper language code, or `auto`.
    pub language: String,
}

/// How a row's measurement went.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
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
pub struct Stats {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Stats {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stats> {
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
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
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
pub struct Row {
    /// `ort` or `tract`.
    pub engine: String,
    /// Execution provider (`cpu`, `cuda`, …).
    pub provider: String,
    /// The input's label.
    pub input: String,
    /// Input duration, seconds.
    pub audio_s: f64,
    /// How the measurement went.
    pub status: Status,
    /// Why, when not `ok`.
    pub reason: Option<String>,
    /// Model load time, milliseconds.
    pub load_ms: Option<f64>,
    /// Peak resident memory of the configuration's process, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Threads of the configuration's process after its runs (main thread included).
    pub threads: Option<usize>,
    /// `greedy`, `beam5`, or `none` (waveform models).
    pub search: String,
    /// Timed runs.
    pub runs: usize,
    /// Text tokens of the transcript (Whisper).
    pub n_tokens: Option<usize>,
    /// The transcript of the last run.
    pub text: Option<String>,
    /// Feature extraction per run, milliseconds.
    pub features_ms: Option<Stats>,
    /// Encoder runs per run (Whisper), milliseconds.
    pub encoder_ms: Option<Stats>,
    /// Acoustic model forward passes per run (waveform models), milliseconds.
    pub forward_ms: Option<Stats>,
    /// Decoder time per decoder call (Whisper), milliseconds.
    pub decoder_token_ms: Option<Stats>,
    /// From the start to the first token's logits (Whisper), milliseconds.
    pub first_token_ms: Option<Stats>,
    /// Whole transcription or classification, milliseconds.
    pub total_ms: Option<Stats>,
    /// Real-time factor (`total / audio`).
    pub rtf: Option<Stats>,
    /// Graph file → provider → nodes run there, when the graph was profiled.
    pub nodes: Option<BTreeMap<String, BTreeMap<String, usize>>>,
    /// `graph: node` for every node that ran outside the requested provider.
    pub fallback_nodes: Vec<String>,
}

impl Row {
    /// A row of `job` on `input` with nothing measured yet.
    pub fn empty(job: &Job, input: &Input, audio_s: f64) -> Row {
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
            search: search_label(job.beam),
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

    /// `engine/provider`.
    pub fn config(&self) -> String {
        format!("{}/{}", self.engine, self.provider)
    }
}

/// `greedy` or `beam5`.
pub fn search_label(beam: Option<usize>) -> String {
    match beam {
        None | Some(0) | Some(1) => "greedy".into(),
        Some(n) => format!("beam{n}"),
    }
}

/// `ok`, `unavailable`, `fallback` or `error`.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Unavailable => "unavailable",
        Status::Fallback => "fallback",
        Status::Error => "error",
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    pub(crate) fn job_for_tests() -> Job {
        Job {
            model: "m".into(),
            engine: "ort".into(),
            provider: "cuda".into(),
            runs: 1,
            language: "en".into(),
            ..Job::default()
        }
    }

    pub(crate) fn row(status: Status, reason: Option<&str>) -> Row {
        let job = job_for_tests();
        Row {
            status,
            reason: reason.map(str::to_string),
            ..Row::empty(&job, &Input::Synthetic { seconds: 1.0 }, 1.0)
        }
    }
}
