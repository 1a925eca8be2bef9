//! Silero VAD (voice activity detection), run as shipped.
//!
//! Silero VAD v5/v6 ONNX files (`silero_vad.onnx` and variants, from the `silero-vad`
//! Python package) take 512-sample windows at 16 kHz preceded by the last 64 samples of
//! the previous window, and carry an LSTM state `(2, batch, 128)` from call to call. The
//! graph is shared ([`SileroVad`], `Send + Sync`); the state and the 64-sample context
//! live in a per-stream [`VadStream`], so any number of streams can share one model.
//! Turning probabilities into speech segments is [`crate::stream::endpoint`]'s job, for
//! files and live streams alike.
//!
//! Reference for the windowing, context and state handling:
//! <https://github.com/snakers4/silero-vad/blob/v6.2/src/silero_vad/utils_vad.py#L13-L90>

use std::path::Path;
use std::sync::Arc;

use crate::engine::{Engine, Graph, Tensor};
use crate::{Error, Result};

/// Samples per window at 16 kHz.
pub const WINDOW_SAMPLES: usize = 512;
/// Samples of the previous window prepended to each window.
const CONTEXT_SAMPLES: usize = 64;
const STATE_LEN: usize = 2 * 128;

/// A loaded Silero VAD model, shared across streams.
#[derive(Clone)]
pub struct SileroVad {
    graph: Arc<dyn Graph>,
}

impl SileroVad {
    /// Loads a Silero VAD ONNX file and checks it has the `input`, `state`, `sr` inputs
    /// and `output`, `stateN` outputs of v5 and later.
    pub fn load(engine: &dyn Engine, path: &Path) -> Result<Self> {
        let graph = engine.load(path)?;
        let has = |names: &[&str], specs: &[crate::engine::IoSpec]| {
            names.iter().all(|n| specs.iter().any(|s| s.name == *n))
        };
        if !has(&["input", "state", "sr"], graph.inputs())
            || !has(&["output", "stateN"], graph.outputs())
        {
            return Err(Error::ModelLoad {
                path: path.to_path_buf(),
                engine: engine.name(),
                reason: "not a Silero VAD v5+ model (expected inputs input, state, sr and outputs output, stateN)".into(),
            });
        }
        Ok(SileroVad { graph })
    }

    /// A new stream with zeroed state.
    pub fn stream(&self) -> VadStream {
        VadStream {
            vad: self.clone(),
            state: vec![0.0; STATE_LEN],
            context: vec![0.0; CONTEXT_SAMPLES],
        }
    }

    /// Speech probability of every 512-sample window of 16 kHz audio (the last partial
    /// window zero-padded). Returns `ceil(len / 512)` values in `[0, 1]`.
    pub fn probabilities(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let mut stream = self.stream();
        samples
            .chunks(WINDOW_SAMPLES)
            .map(|chunk| {
                let mut window = [0.0f32; WINDOW_SAMPLES];
                window[..chunk.len()].copy_from_slice(chunk);
                stream.push_window(&window)
            })
            .collect()
    }
}

/// Per-stream VAD state: the LSTM state and the context samples.
pub struct VadStream {
    vad: SileroVad,
    state: Vec<f32>,
    context: Vec<f32>,
}

impl VadStream {
    /// Speech probability of one window of exactly [`WINDOW_SAMPLES`] samples at 16 kHz.
    pub fn push_window(&mut self, window: &[f32]) -> Result<f32> {
        if window.len() != WINDOW_SAMPLES {
            return Err(Error::invalid(
                "VAD window",
                format!("{WINDOW_SAMPLES} samples"),
                window.len(),
            ));
        }
        let mut input = Vec::with_capacity(CONTEXT_SAMPLES + WINDOW_SAMPLES);
        input.extend_from_slice(&self.context);
        input.extend_from_slice(window);
        let out = self.vad.graph.run(&[
            ("input", Tensor::from_f32([1, input.len()], input)?),
            ("state", Tensor::from_f32([2, 1, 128], self.state.clone())?),
            ("sr", Tensor::scalar_i64(16_000)),
        ])?;
        let names: Vec<&str> = self
            .vad
            .graph
            .outputs()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let get = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .and_then(|i| out.get(i))
                .ok_or_else(|| {
                    Error::invalid("VAD outputs", name.to_string(), format!("{names:?}"))
                })
        };
        let prob = *get("output")?
            .as_f32()?
            .first()
            .ok_or_else(|| Error::invalid("VAD output", "1 value", 0))?;
        let state = get("stateN")?.as_f32()?;
        if state.len() != STATE_LEN {
            return Err(Error::invalid(
                "VAD state",
                format!("{STATE_LEN} values"),
                state.len(),
            ));
        }
        self.state.copy_from_slice(state);
        self.context
            .copy_from_slice(&window[WINDOW_SAMPLES - CONTEXT_SAMPLES..]);
        Ok(prob)
    }
}
