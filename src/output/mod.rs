//! Rendering results for people and programs: plain text, JSON, SubRip and WebVTT
//! subtitles, and JSON lines, for [`Transcript`], [`Labels`] and live stream events.
//!
//! The command line, the live `listen` loop, a server and a C API all print through
//! here, so a format means the same bytes wherever it is asked for. Each function returns
//! the whole rendered text (ending in a newline where the format has lines); where it goes
//! (stdout, a file, an HTTP body, a C string) is the caller's business.

mod json;
mod jsonl;
mod subtitles;
mod txt;

use serde::Serialize;

use crate::result::{Labels, Transcript};
use crate::{Error, Result};

pub use jsonl::event_line;
pub use subtitles::{Cue, render_cues};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Plain text: the transcript, or `file<TAB>label score<TAB>…` for labels.
    Txt,
    /// One pretty-printed JSON object per input: everything the result holds.
    Json,
    /// SubRip subtitles, one cue per segment (transcripts only).
    Srt,
    /// WebVTT subtitles, one cue per segment (transcripts only).
    Vtt,
    /// One compact JSON object per line: per input for files, per event for streams.
    Jsonl,
}

impl Format {
    /// Every format, in the order they are documented.
    pub const ALL: [Format; 5] = [
        Format::Txt,
        Format::Json,
        Format::Srt,
        Format::Vtt,
        Format::Jsonl,
    ];

    /// The format's name and file extension: `txt`, `json`, `srt`, `vtt`, `jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Jsonl => "jsonl",
        }
    }

    /// Whether labels can be rendered in this format (subtitles need text).
    pub fn supports_labels(self) -> bool {
        !matches!(self, Format::Srt | Format::Vtt)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    /// `txt`, `json`, `srt`, `vtt` or `jsonl`.
    fn from_str(s: &str) -> Result<Self> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::invalid("output format", "txt, json, srt, vtt or jsonl", s))
    }
}

/// Where a result came from, for the JSON envelope: the input, the model and how it ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Source {
    /// The input (a file path, `<memory>`, a request id).
    pub file: String,
    /// The model directory.
    pub model: String,
    /// The engine that ran it (`ort`, `tract`).
    pub engine: String,
    /// Execution providers that really took (ONNX Runtime), in priority order.
    pub providers: Vec<String>,
    /// How the output was searched (`greedy`, `beam 5`), when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Model load time, milliseconds.
    pub load_ms: f64,
}

/// Renders a transcript.
pub fn transcript(t: &Transcript, format: Format, source: &Source) -> Result<String> {
    Ok(match format {
        Format::Txt => txt::transcript(t),
        Format::Json => json::transcript(t, source, true)?,
        Format::Jsonl => json::transcript(t, source, false)?,
        Format::Srt => subtitles::transcript(t, false),
        Format::Vtt => subtitles::transcript(t, true),
    })
}

/// Renders a classification with its `top_k` best classes; subtitle formats are refused
/// with [`Error::InvalidInput`].
pub fn labels(l: &Labels, format: Format, source: &Source, top_k: usize) -> Result<String> {
    match format {
        Format::Txt => Ok(txt::labels(l, source, top_k)),
        Format::Json => json::labels(l, source, top_k, true),
        Format::Jsonl => json::labels(l, source, top_k, false),
        Format::Srt | Format::Vtt => Err(Error::invalid(
            "output format for labels",
            "txt, json or jsonl",
            format,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_their_names() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert!("xml".parse::<Format>().is_err());
    }
}
