//! The part every waveform model shares (Wav2Vec2 / HuBERT CTC and classifiers): load
//! `model.onnx` with its contract, normalize the waveform as the model expects, run it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Graph, Tensor};
use crate::features::zero_mean_unit_var;
use crate::model::{Contract, FeatureSpec, ModelType};
use crate::{Error, Result};

/// Name of the waveform input, `(batch, n_samples)` f32.
pub(crate) const WAVEFORM: &str = "waveform";
/// Name of the optional mask input, `(batch, n_samples)` i64, 1 on real samples.
pub(crate) const ATTENTION_MASK: &str = "attention_mask";

/// Shortest input of a Wav2Vec2 / HuBERT graph: two frame strides (640 samples, 40 ms)
/// cover the 400-sample receptive field of the feature encoder, so the model emits at
/// least one frame. Shorter audio is zero-padded (after normalization, masked out).
pub(crate) const MIN_SAMPLES: usize = 640;

/// A loaded waveform graph and what its contract says about feeding it.
pub(crate) struct WaveformGraph {
    pub(crate) graph: Arc<dyn Graph>,
    pub(crate) contract: Contract,
    pub(crate) path: PathBuf,
    normalize: bool,
    has_mask: bool,
}

impl WaveformGraph {
    /// Checks a loaded graph and its contract: a `want` model taking 16 kHz waveforms.
    pub(crate) fn new(
        graph: Arc<dyn Graph>,
        contract: Contract,
        path: PathBuf,
        want: ModelType,
    ) -> Result<Self> {
        let err = |reason: String| Error::Contract {
            path: path.clone(),
            reason,
        };
        if contract.model_type != want {
            let hint = match contract.model_type {
                ModelType::AudioClassification => " (classify with `hearken classify`)",
                ModelType::Ctc => " (transcribe with `hearken transcribe`)",
                _ => "",
            };
            return Err(err(format!(
                "expected model type `{}`, found `{}`{hint}",
                want.as_str(),
                contract.model_type.as_str()
            )));
        }
        let FeatureSpec::Waveform {
            sample_rate_hz,
            normalize,
        } = contract.features
        else {
            return Err(err("a waveform model must take `waveform` features".into()));
        };
        if sample_rate_hz != crate::audio::SAMPLE_RATE_HZ {
            return Err(err(format!(
                "the model was trained at {sample_rate_hz} Hz; hearken feeds {} Hz audio",
                crate::audio::SAMPLE_RATE_HZ
            )));
        }
        let names: Vec<&str> = graph.inputs().iter().map(|s| s.name.as_str()).collect();
        if !names.contains(&WAVEFORM) {
            return Err(err(format!(
                "the graph has no `{WAVEFORM}` input (inputs: {names:?})"
            )));
        }
        let has_mask = names.contains(&ATTENTION_MASK);
        Ok(WaveformGraph {
            graph,
            contract,
            path,
            normalize,
            has_mask,
        })
    }

    /// Runs one utterance, `samples: (n_samples,)` at 16 kHz, and returns the graph's
    /// first output with its batch axis of 1.
    ///
    /// The samples are normalized first when the contract says so, and zero-padded to
    /// `min_samples` so that the model emits a frame.
    pub(crate) fn run(&self, samples: &[f32], min_samples: usize) -> Result<Tensor> {
        if samples.is_empty() {
            return Err(Error::EmptyAudio {
                path: PathBuf::from("<memory>"),
            });
        }
        let mut x = samples.to_vec();
        if self.normalize {
            zero_mean_unit_var(&mut x)?;
        } else {
            crate::audio::check_samples(&x)?;
        }
        let n_real = x.len();
        if x.len() < min_samples {
            x.resize(min_samples, 0.0);
        }
        let n = x.len();
        let waveform = Tensor::from_f32(vec![1, n], x)?;
        let outputs = if self.has_mask {
            let mut mask = vec![1i64; n];
            mask[n_real..].fill(0);
            let mask = Tensor::from_i64(vec![1, n], mask)?;
            self.graph
                .run_refs(&[(WAVEFORM, &waveform), (ATTENTION_MASK, &mask)])?
        } else {
            self.graph.run_refs(&[(WAVEFORM, &waveform)])?
        };
        outputs.into_iter().next().ok_or_else(|| Error::Contract {
            path: self.path.clone(),
            reason: "the graph has no outputs".into(),
        })
    }
}
