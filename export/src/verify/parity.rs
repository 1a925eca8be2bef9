//! The f32 / f16 parity gates: an export's logits against the candle model's, and ONNX
//! Runtime's against tract's, on one probe input.
//!
//! The probe is the caller's audio, or else a deterministic synthetic signal generated
//! here ([`whisper_synthetic_audio`], [`wav2vec2_synthetic_audio`]), never a file found
//! on disk by convention. Real speech is the better probe for Whisper (its greedy
//! continuation is then real text tokens); the synthetic signals still make every weight
//! take part.

use std::fmt;

use candle_core::{Device, Tensor};

use super::{Engines, max_abs_diff, within};
use crate::error::{Error, Result, candle_err, runtime_err};
use crate::onnx::Precision;
use crate::wav2vec2::Wav2Vec2Checkpoint;
use crate::whisper::onnx::{N_FRAMES, WhisperOnnx, onnx_logits};
use crate::whisper::{Reference, WhisperCheckpoint};

/// Default parity tolerance of Whisper exports, on logits: its decoder's logits are
/// O(10) over a 50k vocabulary after 30 s of audio, through every layer twice.
pub const WHISPER_TOLERANCE: f32 = 1e-3;
/// Default parity tolerance of Wav2Vec2 / HuBERT exports, on logits (what the fixtures
/// reach against PyTorch).
pub const WAV2VEC2_TOLERANCE: f32 = 1e-4;
/// Default tolerance of an f16 Wav2Vec2 / HuBERT export against the f32 candle model, as
/// a share of the largest |logit| (the fixtures reach 0.3%).
pub const WAV2VEC2_F16_RELATIVE_TOLERANCE: f32 = 1e-2;
/// Tokens the candle reference generates after the Whisper probe's prompt, so that the
/// gates compare text tokens too, not only the specials of the prompt.
pub const WHISPER_PROBE_NEW_TOKENS: usize = 8;

/// Sample rate of every probe signal, in Hz.
const SAMPLE_RATE_HZ: usize = 16_000;

/// xorshift64 from a fixed seed: reproducible noise without a dependency.
fn seeded_noise() -> impl FnMut() -> f32 {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        // The top 24 bits, in [0, 1).
        (s >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The Whisper probe signal used when no audio is given: 5 s of seeded uniform noise in
/// [-0.1, 0.1) at 16 kHz, the same on every run. No speech, but every weight takes part.
pub fn whisper_synthetic_audio() -> Vec<f32> {
    let mut noise = seeded_noise();
    (0..5 * SAMPLE_RATE_HZ)
        .map(|_| noise() * 0.2 - 0.1)
        .collect()
}

/// The Wav2Vec2 / HuBERT probe signal used when no audio is given: 2 s at 16 kHz of a
/// tone gliding up from 150 Hz under a 3 Hz envelope, plus seeded noise, the same on
/// every run, so that every weight takes part and the frames differ from each other.
pub fn wav2vec2_synthetic_audio() -> Vec<f32> {
    let mut noise = seeded_noise();
    (0..2 * SAMPLE_RATE_HZ)
        .map(|i| {
            let noise = noise() - 0.5;
            let t = i as f32 / SAMPLE_RATE_HZ as f32;
            let phase = 2.0 * std::f32::consts::PI * (150.0 * t + 40.0 * t * t);
            let env = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin().powi(2);
            0.3 * env * phase.sin() + 0.02 * noise
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Whisper

/// The input every Whisper gate decodes: one padded log-mel window, and a prompt followed
/// by the candle reference's own greedy continuation.
#[derive(Debug, Clone)]
pub struct WhisperProbe {
    /// `(n_mels, 3000)` row-major log-mel features of the probe audio.
    pub mel: Vec<f32>,
    /// `<|startoftranscript|>`, `<|en|>` and `<|transcribe|>` when the model is
    /// multilingual, `<|notimestamps|>`.
    pub prompt: Vec<u32>,
    /// The reference's greedy continuation of `prompt`, up to
    /// [`WHISPER_PROBE_NEW_TOKENS`] tokens, `<|endoftext|>` included when reached.
    pub continuation: Vec<u32>,
    /// `prompt`, then `continuation` without `<|endoftext|>`: what the gates decode in
    /// one call.
    pub tokens: Vec<u32>,
}

impl WhisperProbe {
    /// The probe of `ckpt` on `samples` (mono, 16 kHz; padded or cut to one 30 s
    /// window).
    ///
    /// Fails with [`Error::Runtime`] when the features cannot be computed, and as
    /// [`Reference::greedy`] does.
    pub fn new(ckpt: &WhisperCheckpoint, samples: &[f32]) -> Result<Self> {
        let mel = hearken::features::LogMel::whisper(ckpt.dims.num_mel_bins)
            .and_then(|m| m.compute_padded(samples))
            .map_err(runtime_err("computing the probe's log-mel features"))?
            .into_vec();
        let tk = &ckpt.tokens;
        let mut prompt = vec![tk.sot];
        if let Some(&en) = tk.lang_ids.get("en") {
            prompt.extend([en, tk.transcribe]);
        }
        prompt.push(tk.no_timestamps);
        let continuation = Reference::new(ckpt)?.greedy(&mel, &prompt, WHISPER_PROBE_NEW_TOKENS)?;
        let mut tokens = prompt.clone();
        tokens.extend(continuation.iter().filter(|&&t| t != tk.eot));
        Ok(WhisperProbe {
            mel,
            prompt,
            continuation,
            tokens,
        })
    }
}

/// The candle reference's logits for `tokens` decoded in one call on one window, `(n_tokens,
/// n_vocab)` row-major, after checking that `mel` is `(n_mels, 3000)`.
pub(crate) fn whisper_reference_logits(
    ckpt: &WhisperCheckpoint,
    mel: &[f32],
    tokens: &[u32],
) -> Result<Vec<f32>> {
    let n_mels = ckpt.dims.num_mel_bins;
    if mel.len() != n_mels * N_FRAMES {
        return Err(Error::InvalidInput {
            what: "mel".into(),
            expected: format!(
                "(n_mels = {n_mels}, {N_FRAMES}) = {} values",
                n_mels * N_FRAMES
            ),
            got: format!("{} values", mel.len()),
        });
    }
    Reference::new(ckpt)?.logits(mel, tokens)
}

/// The largest absolute difference between the exported graphs' logits on `engine` and
/// the candle [`Reference`]'s, for one window.
///
/// `mel`: `(n_mels, 3000)` row-major log-mel features; `tokens`: a prompt of 1 to
/// n_text_ctx ids, decoded in one call from an empty cache. Compares all `(n_tokens,
/// n_vocab)` logits.
///
/// Fails with [`Error::InvalidInput`] for a mel of the wrong size or tokens the reference
/// rejects, and [`Error::Runtime`] when the engine cannot load or run a graph.
pub fn whisper_logits_diff(
    engine: &dyn hearken::engine::Engine,
    ckpt: &WhisperCheckpoint,
    onnx: &WhisperOnnx,
    mel: &[f32],
    tokens: &[u32],
) -> Result<f32> {
    let want = whisper_reference_logits(ckpt, mel, tokens)?;
    let got = onnx_logits(engine, ckpt, onnx, mel, tokens)?;
    max_abs_diff(&format!("candle vs {}", engine.name()), &want, &got)
}

/// What the Whisper parity gate measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperParity {
    /// Tokens decoded (the probe's prompt and continuation).
    pub n_tokens: usize,
    /// Max |candle - tract| over the logits.
    pub candle_vs_tract: f32,
    /// Max |ONNX Runtime - tract|, or `None` when ONNX Runtime was absent.
    pub ort_vs_tract: Option<f32>,
    /// The tolerance both are held to.
    pub tolerance: f32,
}

impl WhisperParity {
    /// Whether every difference is within the tolerance (NaN is not).
    pub fn passed(&self) -> bool {
        within(self.candle_vs_tract, self.tolerance)
            && self.ort_vs_tract.is_none_or(|e| within(e, self.tolerance))
    }

    /// `Ok` when [`passed`](Self::passed), else [`Error::GateFailed`].
    pub fn check(&self) -> Result<()> {
        if self.passed() {
            return Ok(());
        }
        Err(Error::GateFailed {
            gate: "parity".into(),
            engine: None,
            reason: format!("logits differ by more than {:.0e}", self.tolerance),
        })
    }
}

impl fmt::Display for WhisperParity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parity over {} tokens: max |candle - tract| = {:.2e}",
            self.n_tokens, self.candle_vs_tract
        )?;
        if let Some(e) = self.ort_vs_tract {
            write!(f, ", max |ort - tract| = {e:.2e}")?;
        }
        write!(f, " (tolerance {:.0e})", self.tolerance)
    }
}

/// The parity gate of an f32 or f16 Whisper export: the candle reference against tract,
/// and ONNX Runtime (when `engines` has it) against tract, on the logits of
/// `probe.tokens` over `probe.mel`, each held to `tolerance` (`convert` uses
/// [`WHISPER_TOLERANCE`]).
///
/// Returns the measurement; call [`WhisperParity::check`] to fail on it. Fails with
/// [`Error::InvalidInput`] for a probe that does not fit `ckpt`, and with
/// [`Error::Runtime`] when an engine cannot load or run a graph.
pub fn whisper_parity(
    ckpt: &WhisperCheckpoint,
    onnx: &WhisperOnnx,
    probe: &WhisperProbe,
    engines: &Engines,
    tolerance: f32,
) -> Result<WhisperParity> {
    let (mel, tokens) = (&probe.mel, &probe.tokens);
    let want = whisper_reference_logits(ckpt, mel, tokens)?;
    let tract = onnx_logits(engines.tract.as_ref(), ckpt, onnx, mel, tokens)?;
    let candle_vs_tract = max_abs_diff("candle vs tract", &want, &tract)?;
    let ort_vs_tract = match &engines.ort {
        Some(ort) => {
            let o = onnx_logits(ort.as_ref(), ckpt, onnx, mel, tokens)?;
            Some(max_abs_diff("ort vs tract", &o, &tract)?)
        }
        None => None,
    };
    Ok(WhisperParity {
        n_tokens: tokens.len(),
        candle_vs_tract,
        ort_vs_tract,
        tolerance,
    })
}

// ---------------------------------------------------------------------------------------
// Wav2Vec2 / HuBERT

/// The Wav2Vec2 / HuBERT probe: a batch of waveforms with its attention mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav2Vec2Batch {
    /// `(batch, n_samples)` row-major waveforms, normalized as the checkpoint's processor
    /// does, zero past each row's length.
    pub input: Vec<f32>,
    /// `(batch, n_samples)` row-major attention mask, 1 on real samples.
    pub mask: Vec<i64>,
    /// Rows.
    pub batch: usize,
}

impl Wav2Vec2Batch {
    /// The probe batch of `ckpt` on `samples` (mono, 16 kHz). Row 0 is all of `samples`;
    /// row 1, when long enough to give frames, its first 70% zero-padded, so that the gate
    /// covers the attention mask too. Rows are normalized over their real samples when
    /// the checkpoint's processor normalizes (zero mean, unit variance, epsilon 1e-7, as
    /// `Wav2Vec2FeatureExtractor`).
    ///
    /// Fails with [`Error::InvalidInput`] when `samples` is shorter than one frame of the
    /// feature encoder, and [`Error::Runtime`] when it cannot be normalized.
    pub fn new(ckpt: &Wav2Vec2Checkpoint, samples: &[f32]) -> Result<Self> {
        let n = samples.len();
        let config = &ckpt.config;
        if config.output_frames(n) == 0 {
            return Err(Error::InvalidInput {
                what: "parity audio".into(),
                expected: "at least one frame of the feature encoder".into(),
                got: format!("{n} samples"),
            });
        }
        let short = n * 7 / 10;
        let lengths = if config.output_frames(short) > 0 {
            vec![n, short]
        } else {
            vec![n]
        };
        let mut input = Vec::with_capacity(lengths.len() * n);
        let mut mask = Vec::with_capacity(lengths.len() * n);
        for &len in &lengths {
            input.extend_from_slice(&samples[..len]);
            input.resize(input.len() + n - len, 0.0);
            mask.extend((0..n).map(|i| i64::from(i < len)));
        }
        if ckpt.normalize {
            hearken::features::zero_mean_unit_var_batch(&mut input, &lengths, 0.0)
                .map_err(runtime_err("normalizing the parity batch"))?;
        }
        Ok(Wav2Vec2Batch {
            input,
            mask,
            batch: lengths.len(),
        })
    }

    /// Samples per row.
    pub fn n_samples(&self) -> usize {
        self.input.len() / self.batch.max(1)
    }

    /// Valid rows of logits per item: its frames within its real length for CTC
    /// (`ctc`), else the one row of labels.
    pub(crate) fn n_valid(&self, ckpt: &Wav2Vec2Checkpoint, ctc: bool) -> Vec<usize> {
        self.mask
            .chunks(self.n_samples().max(1))
            .map(|row| {
                let len = row.iter().filter(|&&m| m != 0).count();
                if ctc {
                    ckpt.config.output_frames(len)
                } else {
                    1
                }
            })
            .collect()
    }
}

/// The candle model's logits for `batch`, flattened as the ONNX model returns them:
/// `(batch, n_frames, vocab)` for CTC, `(batch, n_labels)` for classification.
///
/// Fails as the candle model does on the checkpoint or the batch.
pub fn wav2vec2_candle_logits(
    ckpt: &Wav2Vec2Checkpoint,
    batch: &Wav2Vec2Batch,
) -> Result<Vec<f32>> {
    let shape = (batch.batch, batch.n_samples());
    let input = Tensor::from_slice(&batch.input, shape, &Device::Cpu)
        .map_err(candle_err("building the parity batch"))?;
    let mask = Tensor::from_slice(&batch.mask, shape, &Device::Cpu)
        .map_err(candle_err("building the parity mask"))?;
    let model = crate::wav2vec2::model::Wav2Vec2Model::new(ckpt)?;
    let logits = model.forward(&input, Some(&mask))?;
    logits
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle_err("reading the candle logits"))
}

/// What the Wav2Vec2 / HuBERT parity gate measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav2Vec2Parity {
    /// Rows of the probe batch.
    pub batch: usize,
    /// Samples per row.
    pub n_samples: usize,
    /// Max |candle - tract| over the logits.
    pub candle_vs_tract: f32,
    /// Max |ONNX Runtime - tract|, or `None` when ONNX Runtime was absent.
    pub ort_vs_tract: Option<f32>,
    /// What `candle_vs_tract` is held to.
    pub candle_tolerance: f32,
    /// What `ort_vs_tract` is held to.
    pub engine_tolerance: f32,
}

impl Wav2Vec2Parity {
    /// Whether every difference is within its tolerance (NaN is not).
    pub fn passed(&self) -> bool {
        within(self.candle_vs_tract, self.candle_tolerance)
            && self
                .ort_vs_tract
                .is_none_or(|e| within(e, self.engine_tolerance))
    }

    /// `Ok` when [`passed`](Self::passed), else [`Error::GateFailed`].
    pub fn check(&self) -> Result<()> {
        if self.passed() {
            return Ok(());
        }
        Err(Error::GateFailed {
            gate: "parity".into(),
            engine: None,
            reason: format!(
                "logits differ by more than {:.0e} (candle) or {:.0e} (engines)",
                self.candle_tolerance, self.engine_tolerance
            ),
        })
    }
}

impl fmt::Display for Wav2Vec2Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parity over {} x {} samples: max |candle - tract| = {:.2e}",
            self.batch, self.n_samples, self.candle_vs_tract
        )?;
        if let Some(e) = self.ort_vs_tract {
            write!(f, ", max |ort - tract| = {e:.2e}")?;
        }
        write!(f, " (tolerance {:.0e}", self.candle_tolerance)?;
        if self.candle_tolerance != self.engine_tolerance {
            write!(
                f,
                " for candle, {:.0e} between engines",
                self.engine_tolerance
            )?;
        }
        write!(f, ")")
    }
}

/// The parity gate of an f32 or f16 Wav2Vec2 / HuBERT export `onnx` (as
/// [`crate::wav2vec2::onnx::export`] returns it, in `precision`): the f32 candle model
/// against tract, and ONNX Runtime (when `engines` has it) against tract, on `batch`.
///
/// Both differences are held to `tolerance` when one is given, else to
/// [`WAV2VEC2_TOLERANCE`], except candle against an f16 export without a given
/// tolerance: f16 weights move the logits by ~0.3% of their scale (the candle model keeps
/// f32), so that one is held to [`WAV2VEC2_F16_RELATIVE_TOLERANCE`] of the largest
/// |logit|; both engines read the same f16 weights, so they stay within 1e-4.
///
/// Returns the measurement; call [`Wav2Vec2Parity::check`] to fail on it. Fails as
/// [`wav2vec2_candle_logits`] and [`crate::wav2vec2::onnx::onnx_logits`] do.
pub fn wav2vec2_parity(
    ckpt: &Wav2Vec2Checkpoint,
    onnx: &[u8],
    batch: &Wav2Vec2Batch,
    engines: &Engines,
    precision: Precision,
    tolerance: Option<f32>,
) -> Result<Wav2Vec2Parity> {
    use crate::wav2vec2::onnx::onnx_logits;
    let engine_tolerance = tolerance.unwrap_or(WAV2VEC2_TOLERANCE);
    let (input, mask, n) = (&batch.input, &batch.mask, batch.batch);
    let got = onnx_logits(engines.tract.as_ref(), onnx, input, mask, n)?;
    let want = wav2vec2_candle_logits(ckpt, batch)?;
    let candle_vs_tract = max_abs_diff("candle vs tract", &want, &got)?;
    let ort_vs_tract = match &engines.ort {
        Some(ort) => {
            let o = onnx_logits(ort.as_ref(), onnx, input, mask, n)?;
            Some(max_abs_diff("ort vs tract", &o, &got)?)
        }
        None => None,
    };
    let candle_tolerance = match (tolerance, precision) {
        (None, Precision::F16) => {
            WAV2VEC2_F16_RELATIVE_TOLERANCE * want.iter().fold(0.0f32, |m, v| m.max(v.abs()))
        }
        _ => engine_tolerance,
    };
    Ok(Wav2Vec2Parity {
        batch: n,
        n_samples: batch.n_samples(),
        candle_vs_tract,
        ort_vs_tract,
        candle_tolerance,
        engine_tolerance,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn synthetic_audio_is_deterministic_and_bounded() {
        let w = whisper_synthetic_audio();
        assert_eq!(w.len(), 5 * 16_000);
        assert_eq!(w, whisper_synthetic_audio());
        assert!(w.iter().all(|s| (-0.1..0.1).contains(s)));
        let v = wav2vec2_synthetic_audio();
        assert_eq!(v.len(), 2 * 16_000);
        assert_eq!(v, wav2vec2_synthetic_audio());
        assert!(v.iter().all(|s| s.abs() < 0.4));
    }

    #[test]
    fn the_wav2vec2_batch_covers_the_mask() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2/wav2vec2-ctc");
        let ckpt = crate::wav2vec2::load_dir(dir).unwrap();
        let b = Wav2Vec2Batch::new(&ckpt, &wav2vec2_synthetic_audio()).unwrap();
        assert_eq!((b.batch, b.n_samples()), (2, 32_000));
        let short = 32_000 * 7 / 10;
        assert_eq!(b.mask[32_000..].iter().filter(|&&m| m == 1).count(), short);
        assert!(b.input[32_000 + short..].iter().all(|&x| x == 0.0));
        assert_eq!(
            b.n_valid(&ckpt, true),
            [
                ckpt.config.output_frames(32_000),
                ckpt.config.output_frames(short)
            ]
        );
        let e = Wav2Vec2Batch::new(&ckpt, &[0.0; 100]).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    }

    #[test]
    fn reports_fail_on_nan_and_name_the_tolerances() {
        let p = WhisperParity {
            n_tokens: 4,
            candle_vs_tract: 2e-4,
            ort_vs_tract: Some(f32::NAN),
            tolerance: 1e-3,
        };
        assert!(!p.passed());
        let e = p.check().unwrap_err().to_string();
        assert_eq!(e, "parity gate failed: logits differ by more than 1e-3");
        let p = WhisperParity {
            ort_vs_tract: None,
            ..p
        };
        assert!(p.passed() && p.check().is_ok());
        assert!(p.to_string().contains("(tolerance 1e-3)"), "{p}");

        let w = Wav2Vec2Parity {
            batch: 2,
            n_samples: 10,
            candle_vs_tract: 5e-3,
            ort_vs_tract: Some(1e-5),
            candle_tolerance: 1e-2,
            engine_tolerance: 1e-4,
        };
        assert!(w.passed());
        assert!(
            w.to_string().contains("for candle, 1e-4 between engines"),
            "{w}"
        );
    }
}
