//! Models: hearken ONNX files with their contract, and the code that drives them.
//!
//! A model here is a graph plus the metadata that says how to feed it and read its
//! output ([`contract`]). Driving code (feature extraction → graph runs) lives in this
//! module; search and decoding logic does not, so it can be tested without a model.

use std::path::Path;
use std::sync::Arc;

use crate::Result;
use crate::engine::{Engine, Graph};

pub mod classify;
pub mod contract;
pub mod ctc;
pub mod transcribe;
pub mod vad;
mod waveform;
pub mod whisper;
mod whisper_optimum;
pub use contract::{Contract, FeatureSpec, Head, ModelType};

/// Loads a hearken model file and validates its contract.
///
/// Fails with [`crate::Error::Contract`] when the metadata is missing or inconsistent,
/// before any audio is processed.
pub fn load(engine: &dyn Engine, path: &Path) -> Result<(Arc<dyn Graph>, Contract)> {
    let graph = engine.load(path)?;
    let contract = Contract::from_metadata(path, graph.metadata())?;
    Ok((graph, contract))
}
