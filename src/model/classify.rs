//! Audio classification (Wav2Vec2 / HuBERT `*ForSequenceClassification` exported by
//! `hearken-export`): waveform → class probabilities, over sliding windows for audio
//! longer than the model should see at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{ExecutionProvider, Graph};
use crate::model::chunking::window_bounds;
use crate::model::waveform::{MIN_SAMPLES, WaveformGraph};
use crate::model::{Contract, Head, ModelType};
use crate::result::{Aggregate, Labels, Timing, WindowScores};
use crate::{Error, Result};

/// Sliding windows over long audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    /// Window length, seconds.
    pub window_s: f32,
    /// Distance between window starts, seconds.
    pub hop_s: f32,
}

impl Windows {
    /// Checks that both lengths are positive and finite. Fails with
    /// [`Error::InvalidInput`].
    pub fn validate(&self) -> Result<()> {
        let ok = |x: f32| x > 0.0 && x.is_finite();
        if ok(self.window_s) && ok(self.hop_s) {
            Ok(())
        } else {
            Err(Error::invalid(
                "classification windows",
                "positive window and hop lengths",
                format!("window {} s, hop {} s", self.window_s, self.hop_s),
            ))
        }
    }
}

/// Options of [`AudioClassifier::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClassifyOptions {
    /// `None`: the whole file in one pass. `Some`: windows, aggregated by `aggregate`.
    pub windows: Option<Windows>,
    /// How window results combine.
    pub aggregate: Aggregate,
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
    /// A classifier over an already loaded graph and its contract.
    /// Reached through [`crate::model::open`].
    pub(crate) fn from_graph(
        graph: Arc<dyn Graph>,
        contract: Contract,
        path: PathBuf,
    ) -> Result<Self> {
        Self::from_waveform(WaveformGraph::new(
            graph,
            contract,
            path,
            ModelType::AudioClassification,
        )?)
    }

    fn from_waveform(inner: WaveformGraph) -> Result<Self> {
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

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The execution providers the graph really runs on.
    pub fn providers(&self) -> Vec<ExecutionProvider> {
        self.inner.graph.providers().to_vec()
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
    pub fn classify(&self, samples: &[f32], opts: &ClassifyOptions) -> Result<Labels> {
        let t0 = Instant::now();
        let sr = f64::from(crate::audio::SAMPLE_RATE_HZ);
        let bounds = match opts.windows {
            None => vec![(0, samples.len())],
            Some(w) => {
                w.validate()?;
                window_bounds(
                    samples.len(),
                    (f64::from(w.window_s) * sr).round() as usize,
                    (f64::from(w.hop_s) * sr).round() as usize,
                )
            }
        };
        let mut windows = Vec::with_capacity(bounds.len());
        for &(a, b) in &bounds {
            windows.push(WindowScores {
                start_s: a as f64 / sr,
                end_s: b as f64 / sr,
                probs: self.probs(&samples[a..b])?,
            });
        }
        let forward_ms = t0.elapsed().as_secs_f64() * 1e3;
        let probs = aggregate(&windows, self.labels.len(), opts.aggregate);
        let mut timing = Timing {
            encoder_ms: forward_ms,
            audio_s: samples.len() as f64 / sr,
            ..Timing::default()
        };
        timing.finish(t0.elapsed().as_secs_f64() * 1e3);
        Ok(Labels {
            names: self.labels.clone(),
            probs,
            windows,
            aggregate: opts.aggregate,
            timing,
        })
    }
}

/// Combines per-window probabilities, `n` classes each.
pub fn aggregate(windows: &[WindowScores], n: usize, how: Aggregate) -> Vec<f32> {
    if windows.is_empty() {
        return vec![0.0; n];
    }
    match how {
        Aggregate::Mean => (0..n)
            .map(|i| windows.iter().map(|w| w.probs[i]).sum::<f32>() / windows.len() as f32)
            .collect(),
        Aggregate::Max => (0..n)
            .map(|i| windows.iter().map(|w| w.probs[i]).fold(0.0, f32::max))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalized() {
        let mut x = vec![1000.0, 1001.0, 999.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[0] && x[0] > x[2]);
    }
}
