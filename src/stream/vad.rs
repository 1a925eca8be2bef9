//! The voice-activity front of a live session: 16 kHz audio in 512-sample frames, a
//! speech probability per frame from Silero VAD (or, where Silero cannot run, from frame
//! energy), and the endpointer that turns those into speech segments.
//!
//! Silero runs on ONNX Runtime only (tract cannot type its `If` nodes); a build or a
//! machine without ONNX Runtime gets the energy detector, and [`Vad::describe`] says so,
//! so that the command line can tell the user which one is listening.

use std::path::{Path, PathBuf};

use super::endpoint::{EnergyVad, frame_rms};
use crate::Result;
use crate::engine::{EngineChoice, EngineOptions};
use crate::model::vad::{SileroVad, VadStream, WINDOW_SAMPLES};

/// Samples per VAD frame at 16 kHz (32 ms): Silero's window.
pub const FRAME_SAMPLES: usize = WINDOW_SAMPLES;

/// Which voice-activity detector a session uses.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum VadChoice {
    /// Silero VAD from this ONNX file when ONNX Runtime can run it, else the energy
    /// detector (the recognizer records why).
    Silero(PathBuf),
    /// Frame energy against an adaptive noise floor: no model, any build.
    #[default]
    Energy,
}

/// The shared, loaded detector (a Silero graph, or nothing for the energy detector).
#[derive(Clone)]
pub struct Vad {
    silero: Option<SileroVad>,
    description: String,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Vad {
    /// Loads the detector `choice` names. Silero is loaded on ONNX Runtime with the
    /// engine options' library path and one thread; when that is impossible (no ONNX
    /// Runtime in this build or on this machine) the energy detector is used and
    /// [`Vad::describe`] says why. A Silero file that exists but is not a Silero model is
    /// an error.
    pub fn load(choice: &VadChoice, engine: &EngineOptions) -> Result<Vad> {
        match choice {
            VadChoice::Energy => Ok(Vad {
                silero: None,
                description: "energy VAD".into(),
            }),
            VadChoice::Silero(path) => Self::silero(path, engine),
        }
    }

    fn silero(path: &Path, engine: &EngineOptions) -> Result<Vad> {
        if !path.is_file() {
            return Ok(Vad {
                silero: None,
                description: format!(
                    "energy VAD ({} not found; `bash models/setup.sh` fetches Silero VAD)",
                    path.display()
                ),
            });
        }
        let mut opts = engine.clone();
        opts.engine = EngineChoice::Ort;
        // One frame is a few hundred microseconds of work: one thread, no pool to wake.
        opts.ort.intra_threads = 1;
        opts.ort.inter_threads = 1;
        opts.ort.providers.clear();
        match opts.build() {
            Ok(ort) => Ok(Vad {
                silero: Some(SileroVad::load(ort.as_ref(), path)?),
                description: format!("Silero VAD ({}, ort)", path.display()),
            }),
            Err(e) => Ok(Vad {
                silero: None,
                description: format!("energy VAD (Silero needs ONNX Runtime: {e})"),
            }),
        }
    }

    /// Which detector this is, and why when it is not the one asked for.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Whether Silero runs (rather than the energy detector).
    pub fn is_silero(&self) -> bool {
        self.silero.is_some()
    }

    /// Per-stream state.
    pub(crate) fn stream(&self) -> VadState {
        match &self.silero {
            Some(s) => VadState::Silero(Box::new(s.stream())),
            None => VadState::Energy(EnergyVad::new()),
        }
    }
}

/// The per-stream half of a [`Vad`].
pub(crate) enum VadState {
    Silero(Box<VadStream>),
    Energy(EnergyVad),
}

impl VadState {
    /// `(speech probability, rms)` of one frame of [`FRAME_SAMPLES`] samples.
    pub(crate) fn push(&mut self, frame: &[f32]) -> Result<(f32, f32)> {
        let rms = frame_rms(frame);
        let p = match self {
            VadState::Silero(s) => s.push_window(frame)?,
            VadState::Energy(e) => e.push_frame(frame),
        };
        Ok((p, rms))
    }
}
