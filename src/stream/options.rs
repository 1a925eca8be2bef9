//! How a live session behaves: plain data, per family, with upstream defaults.

use super::classify::ClassifyStreamOptions;
use super::ctc::CtcStreamOptions;
use super::endpoint::EndpointConfig;
use super::whisper::WhisperStreamOptions;
use crate::offline::TranscribeOptions;

/// How audio reaches a session, which decides what happens when compute falls behind.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Pacing {
    /// Audio is read as fast as it can be (files, tests, benchmarks): `push_audio` waits
    /// for room in the queue, nothing is skipped or dropped, and the events are the same
    /// on every run.
    AsFastAsPossible {
        /// Queue bound, seconds of audio.
        max_queue_s: f32,
    },
    /// Audio arrives in real time (a microphone): `push_audio` never waits. When compute
    /// falls behind, partial decodes are skipped (fewer partials, larger steps); when the
    /// queue holds more than `max_queue_s`, new audio is dropped, counted in
    /// [`super::SessionStats::dropped_s`], and the stream restarts after the gap (open
    /// speech is finalized first), so event times stay true to the audio clock.
    RealTime {
        /// Queue bound, seconds of audio.
        max_queue_s: f32,
    },
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::RealTime { max_queue_s: 10.0 }
    }
}

impl Pacing {
    /// The queue bound, seconds.
    pub fn max_queue_s(&self) -> f32 {
        match self {
            Pacing::AsFastAsPossible { max_queue_s } | Pacing::RealTime { max_queue_s } => {
                *max_queue_s
            }
        }
    }
}

/// Everything about how a live session behaves. Plain data.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Decoding options, as for files (Whisper's language, search, thresholds; CTC search).
    pub transcribe: TranscribeOptions,
    /// Live Whisper: partial step, buffer bound, prompt.
    pub whisper: WhisperStreamOptions,
    /// Live CTC: chunk, context, look-ahead, endpoint rules.
    pub ctc: CtcStreamOptions,
    /// Live classification: windows, smoothing.
    pub classify: ClassifyStreamOptions,
    /// VAD endpointing: thresholds, minimum speech and silence, pre-roll, longest segment.
    pub endpoint: EndpointConfig,
    /// How audio arrives.
    pub pacing: Pacing,
}
