//! Audio classification (Wav2Vec2 / HuBERT `*ForSequenceClassification` exported by
//! `hearken-export`): waveform → class probabilities, over sliding windows for audio
//! longer than the model should see at once.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::engine::Engine;
use crate::model::waveform::{MIN_SAMPLES, WaveformGraph};
use crate::model::{Head, ModelType};
use crate::{Error, Result};

/// How per-window probabilities become the file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean of the windows' probabilities (sums to 1).
    #[default]
    Mean,
    /// Per class, the highest probability any window gave it (does not sum to 1): "did
    /// this class occur anywhere".
    Max,
}

/// Sliding windows over long audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    /// Window length, seconds.
    pub window_s: f32,
    /// Distance between window starts, seconds.
    pub hop_s: f32,
}

/// Options of [`AudioClassifier::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClassifyOptions {
    /// `None`: the whole file in one pass. `Some`: windows, aggregated by `aggregate`.
    pub windows: Option<Windows>,
    /// How window results combine.
    pub aggregate: Aggregate,
}

/// Window start and end sample indices for `n_samples` of audio: windows of `window`
/// samples every `hop` samples; the last window ends at the end of the audio (it may
/// overlap its predecessor more), so no sample is left out. Audio not longer than one
/// window is one window.
pub fn window_bounds(n_samples: usize, window: usize, hop: usize) -> Vec<(usize, usize)> {
    let window = window.max(1);
    let hop = hop.max(1);
    if n_samples <= window {
        return vec![(0, n_samples)];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start + window < n_samples {
        out.push((start, start + window));
        start += hop;
    }
    let last = (n_samples - window, n_samples);
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// A class and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// Class id (index into the labels).
    pub id: usize,
    /// Label name.
    pub label: String,
    /// Probability (or aggregated score).
    pub score: f32,
}

/// One window's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowResult {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Softmax probabilities by class id.
    pub probs: Vec<f32>,
}

/// The result of classifying one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// Aggregated scores by class id.
    pub scores: Vec<f32>,
    /// Per-window probabilities (one entry without windows).
    pub windows: Vec<WindowResult>,
    /// How `scores` were aggregated.
    pub aggregate: Aggregate,
    /// Forward passes, milliseconds.
    pub forward_ms: f64,
    /// Audio length, seconds.
    pub audio_s: f64,
}

impl Classification {
    /// The `k` best classes, best first (ties: lower id first).
    pub fn top_k(&self, labels: &[String], k: usize) -> Vec<ClassScore> {
        let mut ids: Vec<usize> = (0..self.scores.len()).collect();
        ids.sort_by(|&a, &b| self.scores[b].total_cmp(&self.scores[a]).then(a.cmp(&b)));
        ids.into_iter()
            .take(k)
            .map(|id| ClassScore {
                id,
                label: labels.get(id).cloned().unwrap_or_else(|| id.to_string()),
                score: self.scores[id],
            })
            .collect()
    }
}

/// Softmax of `logits`, in place (max-subtracted, so large logits do not overflow).
pub fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let mut sum = 0.0;
    for x in logits.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    logits.iter_mut().for_each(|x| *x /= sum);
}

/// An audio classifier: `model.onnx` taking `waveform (1, n_samples)` to
/// `logits (1, n_labels)`, with its labels.
pub struct AudioClassifier {
    inner: WaveformGraph,
    labels: Vec<String>,
}

impl std::fmt::Debug for AudioClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioClassifier")
            .field("path", &self.inner.path)
            .field("labels", &self.labels)
            .finish()
    }
}

impl AudioClassifier {
    /// Loads a classifier: a hearken model directory with `model.onnx`, or the file.
    ///
    /// Fails with [`Error::Contract`] when the model is not an `audio-classification`
    /// model taking 16 kHz waveforms.
    pub fn load(engine: &dyn Engine, path: &Path) -> Result<Self> {
        let inner = WaveformGraph::load(engine, path, ModelType::AudioClassification)?;
        let Head::Classifier { labels } = inner.contract.head.clone() else {
            return Err(Error::Contract {
                path: inner.path.clone(),
                reason: "not a classifier".into(),
            });
        };
        Ok(AudioClassifier { inner, labels })
    }

    /// Label names by class id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Softmax probabilities of one piece of audio, `(n_labels,)`.
    pub fn probs(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let logits = self.inner.run(samples, MIN_SAMPLES)?;
        if logits.shape() != [1, self.labels.len()] {
            return Err(Error::invalid(
                format!("logits of {}", self.inner.path.display()),
                format!("shape (1, {})", self.labels.len()),
                format!("{:?}", logits.shape()),
            ));
        }
        let mut p = logits.to_f32_vec();
        softmax(&mut p);
        Ok(p)
    }

    /// Classifies `samples` (16 kHz mono), in windows when `opts.windows` is set.
    pub fn classify(&self, samples: &[f32], opts: &ClassifyOptions) -> Result<Classification> {
        let t0 = Instant::now();
        let sr = f64::from(crate::audio::SAMPLE_RATE_HZ);
        let bounds = match opts.windows {
            None => vec![(0, samples.len())],
            Some(w) => {
                if !(w.window_s > 0.0 && w.hop_s > 0.0) {
                    return Err(Error::invalid(
                        "classification windows",
                        "positive window and hop lengths",
                        format!("window {} s, hop {} s", w.window_s, w.hop_s),
                    ));
                }
                window_bounds(
                    samples.len(),
                    (f64::from(w.window_s) * sr).round() as usize,
                    (f64::from(w.hop_s) * sr).round() as usize,
                )
            }
        };
        let mut windows = Vec::with_capacity(bounds.len());
        for &(a, b) in &bounds {
            windows.push(WindowResult {
                start_s: a as f64 / sr,
                end_s: b as f64 / sr,
                probs: self.probs(&samples[a..b])?,
            });
        }
        let n = self.labels.len();
        let scores = match opts.aggregate {
            Aggregate::Mean => (0..n)
                .map(|i| windows.iter().map(|w| w.probs[i]).sum::<f32>() / windows.len() as f32)
                .collect(),
            Aggregate::Max => (0..n)
                .map(|i| windows.iter().map(|w| w.probs[i]).fold(0.0, f32::max))
                .collect(),
        };
        Ok(Classification {
            scores,
            windows,
            aggregate: opts.aggregate,
            forward_ms: t0.elapsed().as_secs_f64() * 1e3,
            audio_s: samples.len() as f64 / sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_audio_and_end_at_its_end() {
        assert_eq!(window_bounds(100, 200, 50), vec![(0, 100)]);
        assert_eq!(window_bounds(200, 200, 50), vec![(0, 200)]);
        assert_eq!(
            window_bounds(300, 200, 50),
            vec![(0, 200), (50, 250), (100, 300)]
        );
        assert_eq!(
            window_bounds(330, 200, 100),
            vec![(0, 200), (100, 300), (130, 330)]
        );
        for n in [201, 999, 16_000 * 7 + 3] {
            let w = window_bounds(n, 16_000, 4_000);
            assert_eq!(w.first().map(|b| b.0), Some(0));
            assert_eq!(w.last().map(|b| b.1), Some(n));
            assert!(w.iter().all(|&(a, b)| b - a == 16_000.min(n)));
            assert!(w.windows(2).all(|p| p[1].0 > p[0].0 && p[1].0 <= p[0].1));
        }
    }

    #[test]
    fn softmax_is_stable_and_normalized() {
        let mut x = vec![1000.0, 1001.0, 999.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[0] && x[0] > x[2]);
    }

    #[test]
    fn top_k_orders_by_score_then_id() {
        let c = Classification {
            scores: vec![0.2, 0.5, 0.2, 0.1],
            windows: vec![],
            aggregate: Aggregate::Mean,
            forward_ms: 0.0,
            audio_s: 0.0,
        };
        let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let top: Vec<(usize, &str)> = c
            .top_k(&labels, 3)
            .iter()
            .map(|s| (s.id, labels[s.id].as_str()))
            .collect();
        assert_eq!(top, vec![(1, "b"), (0, "a"), (2, "c")]);
        assert_eq!(c.top_k(&labels, 10).len(), 4);
    }
}
