//! JSON: the whole result in an envelope that names the input, model and engine.

use serde::Serialize;

use super::Source;
use crate::result::{Aggregate, LabelScore, Labels, Timing, Transcript, WindowScores};
use crate::{Error, Result};

fn to_string<T: Serialize>(value: &T, pretty: bool) -> Result<String> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| Error::invalid("result", "serializable to JSON", e))?;
    Ok(text + "\n")
}

#[derive(Serialize)]
struct TranscriptOut<'a> {
    #[serde(flatten)]
    source: &'a Source,
    #[serde(flatten)]
    transcript: &'a Transcript,
}

/// `{file, model, engine, providers, load_ms, text, language, segments, score?, timing}`.
pub(super) fn transcript(t: &Transcript, source: &Source, pretty: bool) -> Result<String> {
    to_string(
        &TranscriptOut {
            source,
            transcript: t,
        },
        pretty,
    )
}

#[derive(Serialize)]
struct LabelsOut<'a> {
    #[serde(flatten)]
    source: &'a Source,
    top: Vec<LabelScore>,
    scores: Vec<LabelScore>,
    aggregate: Aggregate,
    windows: &'a [WindowScores],
    timing: &'a Timing,
}

/// `{file, model, engine, providers, load_ms, top, scores, aggregate, windows, timing}`.
pub(super) fn labels(l: &Labels, source: &Source, top_k: usize, pretty: bool) -> Result<String> {
    to_string(
        &LabelsOut {
            source,
            top: l.top_k(top_k),
            scores: l.top_k(l.probs.len()),
            aggregate: l.aggregate,
            windows: &l.windows,
            timing: &l.timing,
        },
        pretty,
    )
}
