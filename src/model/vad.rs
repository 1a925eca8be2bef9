//! Silero VAD (voice activity detection), run as shipped.
//!
//! Silero VAD v5/v6 ONNX files (`silero_vad.onnx` and variants, from the `silero-vad`
//! Python package) take 512-sample windows at 16 kHz preceded by the last 64 samples of
//! the previous window, and carry an LSTM state `(2, batch, 128)` from call to call. The
//! graph is shared ([`SileroVad`], `Send + Sync`); the state and the 64-sample context
//! live in a per-stream [`VadStream`], so any number of streams can share one model.
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

/// A stretch of speech, in seconds from the start of the audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechSegment {
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
}

/// Turns per-window probabilities into speech segments with hysteresis: speech starts
/// when a window reaches `threshold` and ends after `min_silence_windows` windows below
/// `threshold - 0.15`; segments shorter than `min_speech_windows` are dropped. This is
/// the rule of Silero's `get_speech_timestamps` without its padding.
pub fn segments(
    probs: &[f32],
    threshold: f32,
    min_speech_windows: usize,
    min_silence_windows: usize,
) -> Vec<SpeechSegment> {
    let to_s = |w: usize| (w * WINDOW_SAMPLES) as f32 / 16_000.0;
    let low = threshold - 0.15;
    let mut out = Vec::new();
    let mut start = None;
    let mut silent = 0;
    for (i, &p) in probs.iter().enumerate() {
        match start {
            None if p >= threshold => {
                start = Some(i);
                silent = 0;
            }
            Some(s) if p < low => {
                silent += 1;
                if silent >= min_silence_windows {
                    let end = i + 1 - silent;
                    if end - s >= min_speech_windows {
                        out.push(SpeechSegment {
                            start_s: to_s(s),
                            end_s: to_s(end),
                        });
                    }
                    start = None;
                }
            }
            Some(_) => silent = 0,
            None => {}
        }
    }
    if let Some(s) = start {
        let end = probs.len() - silent;
        if end - s >= min_speech_windows {
            out.push(SpeechSegment {
                start_s: to_s(s),
                end_s: to_s(end),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_apply_hysteresis_and_minimums() {
        let p = [
            0.1, 0.9, 0.9, 0.5, 0.9, 0.1, 0.1, 0.1, 0.95, 0.1, 0.1, 0.1, 0.8, 0.8,
        ];
        let segs = segments(&p, 0.5, 2, 2);
        let at = |w: usize| (w * WINDOW_SAMPLES) as f32 / 16_000.0;
        // 0.5 at index 3 is above the low threshold (0.35): the first segment spans 1..5.
        // The lone 0.95 at 8 is too short; the trailing run 12..14 is kept.
        assert_eq!(
            segs,
            vec![
                SpeechSegment {
                    start_s: at(1),
                    end_s: at(5)
                },
                SpeechSegment {
                    start_s: at(12),
                    end_s: at(14)
                },
            ]
        );
        assert!(segments(&[], 0.5, 1, 1).is_empty());
        assert!(segments(&[0.1; 10], 0.5, 1, 1).is_empty());
    }
}
