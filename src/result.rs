//! What every model family returns: one [`Transcript`] for speech recognition (Whisper
//! and CTC alike) and one [`Labels`] for audio classification.
//!
//! The command line, `hearken listen`, a server and a C API all render these two types
//! through [`crate::output`], so none of them needs to know which family produced a
//! result. Fields that only one family can fill are `Option`s (Whisper's no-speech
//! probability, a CTC search's score breakdown) and are left out of JSON when absent.
//! Times are seconds from the start of the audio; durations carry their unit.

use serde::Serialize;

use crate::decode::ctc::CtcScore;

/// A transcription of one piece of audio.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Transcript {
    /// All segments' text, joined and trimmed.
    pub text: String,
    /// Language code used (detected or given); `None` where the model has no notion of
    /// language (English-only Whisper, CTC).
    pub language: Option<String>,
    /// Segments in time order.
    pub segments: Vec<Segment>,
    /// The CTC search's score breakdown (acoustic, LM, word insertion, hotwords); `None`
    /// for Whisper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<CtcScore>,
    /// Where the time went.
    pub timing: Timing,
}

impl Transcript {
    /// Every word of every segment, in order (empty when the model gave no word times).
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.segments.iter().flat_map(|s| s.words.iter())
    }

    /// Every token id of every segment, in order.
    pub fn tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.iter().flat_map(|s| s.tokens.iter().copied())
    }
}

/// A piece of a transcript with its time span.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Segment {
    /// Start, seconds from the start of the audio.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Text. Whisper keeps its leading space; CTC text has none.
    pub text: String,
    /// Token ids (Whisper: timestamps included; CTC: the collapsed output ids).
    pub tokens: Vec<u32>,
    /// Words with their times, where the model gives them (CTC always; Whisper not yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
    /// Whisper: average log-probability of the window's decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_logprob: Option<f32>,
    /// Whisper: probability that the window holds no speech.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_speech_prob: Option<f32>,
    /// Whisper: temperature the window was decoded at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Whisper: gzip compression ratio of the window's text (high means repetitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_ratio: Option<f32>,
}

/// One word with its time span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    /// The word, without surrounding spaces.
    pub word: String,
    /// Start, seconds from the start of the audio.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
}

/// Wall time per stage of one transcription or classification, in milliseconds.
///
/// The stages are named after Whisper's; for waveform models (CTC, classifiers)
/// `encoder_ms` is the acoustic model's forward passes (normalization included) and
/// `decoder_ms` the CTC search.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Timing {
    /// Feature extraction (log-mel), milliseconds.
    pub features_ms: f64,
    /// Encoder (or acoustic model) runs, milliseconds.
    pub encoder_ms: f64,
    /// Decoder runs and search, milliseconds.
    pub decoder_ms: f64,
    /// Decoder graph calls (Whisper; 0 otherwise).
    pub n_decoder_steps: usize,
    /// From the start to the first text token's logits (Whisper), milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// Everything, milliseconds.
    pub total_ms: f64,
    /// Audio duration, seconds.
    pub audio_s: f64,
    /// `total / audio`: below 1 is faster than real time.
    pub real_time_factor: f64,
}

impl Timing {
    /// Sets `total_ms` and the real-time factor from the total wall time.
    pub fn finish(&mut self, total_ms: f64) {
        self.total_ms = total_ms;
        self.real_time_factor = if self.audio_s > 0.0 {
            total_ms / 1e3 / self.audio_s
        } else {
            0.0
        };
    }
}

/// How per-window class probabilities combine into one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean of the windows' probabilities.
    #[default]
    Mean,
    /// Highest probability of each class over the windows.
    Max,
}

/// One class with its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    /// Class index (the model's `id2label` key).
    pub id: usize,
    /// Class name.
    pub label: String,
    /// Probability in `[0, 1]`.
    pub score: f32,
}

/// Class probabilities of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowScores {
    /// Window start, seconds.
    pub start_s: f64,
    /// Window end, seconds.
    pub end_s: f64,
    /// Probabilities, one per class in id order.
    pub probs: Vec<f32>,
}

/// An audio classification of one piece of audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Labels {
    /// The class names in id order.
    #[serde(skip)]
    pub names: Vec<String>,
    /// Combined probabilities, one per class in id order.
    pub probs: Vec<f32>,
    /// Per-window probabilities (one window when the audio was classified whole).
    pub windows: Vec<WindowScores>,
    /// How the windows were combined.
    pub aggregate: Aggregate,
    /// Where the time went.
    pub timing: Timing,
}

impl Labels {
    /// The `k` most probable classes, best first (ties: lower id first).
    pub fn top_k(&self, k: usize) -> Vec<LabelScore> {
        let mut order: Vec<usize> = (0..self.probs.len()).collect();
        order.sort_by(|&a, &b| self.probs[b].total_cmp(&self.probs[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k)
            .map(|id| LabelScore {
                id,
                label: self
                    .names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{id}")),
                score: self.probs[id],
            })
            .collect()
    }

    /// The most probable class, if there is any class.
    pub fn best(&self) -> Option<LabelScore> {
        self.top_k(1).into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_id() {
        let l = Labels {
            names: vec!["a".into(), "b".into(), "c".into()],
            probs: vec![0.2, 0.4, 0.4],
            windows: vec![],
            aggregate: Aggregate::Mean,
            timing: Timing::default(),
        };
        let top: Vec<(usize, String)> = l.top_k(3).into_iter().map(|s| (s.id, s.label)).collect();
        assert_eq!(top, vec![(1, "b".into()), (2, "c".into()), (0, "a".into())]);
        assert_eq!(l.top_k(10).len(), 3);
        assert_eq!(l.best().map(|s| s.id), Some(1));
    }
}
