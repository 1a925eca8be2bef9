//! What a live session tells its caller, in the order things happen on the audio clock.

use crate::result::Word;

/// Something a [`super::Session`] found in the audio. Times (`start_s`, `end_s`) are
/// seconds on the audio clock since the stream began (the first sample pushed is 0).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Voice activity began; `start_s` includes the pre-roll kept before the first speech
    /// frame.
    SpeechStart {
        /// Start of the speech segment, seconds.
        start_s: f64,
    },
    /// The current hypothesis of the speech since the last [`Event::Final`]: it may still
    /// change. Its leading words may already be committed (they will appear unchanged in
    /// the next final).
    Partial {
        /// Text so far, committed and tentative.
        text: String,
        /// Start of the audio it covers, seconds.
        start_s: f64,
        /// End of the audio it covers, seconds.
        end_s: f64,
    },
    /// Text that will never change. Finals do not overlap: together, in order, they are the
    /// transcript of the stream.
    Final {
        /// The text, trimmed.
        text: String,
        /// Start, seconds.
        start_s: f64,
        /// End, seconds.
        end_s: f64,
        /// Words with times, where the model gives them (CTC).
        words: Vec<Word>,
        /// Average log-probability of the decode that produced it (Whisper).
        avg_logprob: Option<f32>,
        /// No-speech probability of that decode (Whisper).
        no_speech_prob: Option<f32>,
    },
    /// An audio classifier's (smoothed) answer for a stretch of audio.
    Label {
        /// Class name.
        label: String,
        /// Its smoothed probability.
        score: f32,
        /// Start of the stretch it covers, seconds.
        start_s: f64,
        /// End, seconds.
        end_s: f64,
    },
    /// Voice activity ended.
    SpeechEnd {
        /// Start of the segment that ended, seconds.
        start_s: f64,
        /// End of speech, seconds.
        end_s: f64,
    },
}

impl Event {
    /// The event's name as written in JSON lines: `speech_start`, `partial`, `final`,
    /// `label`, `speech_end`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SpeechStart { .. } => "speech_start",
            Event::Partial { .. } => "partial",
            Event::Final { .. } => "final",
            Event::Label { .. } => "label",
            Event::SpeechEnd { .. } => "speech_end",
        }
    }

    /// `(start_s, end_s)` on the audio clock.
    pub fn span(&self) -> (f64, f64) {
        match self {
            Event::SpeechStart { start_s } => (*start_s, *start_s),
            Event::Partial { start_s, end_s, .. }
            | Event::Final { start_s, end_s, .. }
            | Event::Label { start_s, end_s, .. }
            | Event::SpeechEnd { start_s, end_s } => (*start_s, *end_s),
        }
    }

    /// The event's text: the transcript text, the label name, or empty.
    pub fn text(&self) -> &str {
        match self {
            Event::Partial { text, .. } | Event::Final { text, .. } => text,
            Event::Label { label, .. } => label,
            Event::SpeechStart { .. } | Event::SpeechEnd { .. } => "",
        }
    }
}

/// An [`Event`] with the wall-clock time it was emitted at.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The event.
    pub event: Event,
    /// Wall-clock seconds since the session started, at emission. With audio pushed in
    /// real time, `wall_s - end_s` is the latency a user feels.
    pub wall_s: f64,
}
