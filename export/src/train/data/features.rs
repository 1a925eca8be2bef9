//! Decoding, cropping and the model's feature extractor.
//!
//! **Decoding.** [`AudioSet::load`] decodes every example through `hearken::audio` (WAV,
//! FLAC, MP3, OGG/Vorbis; channels averaged) and resamples it to the feature extractor's
//! `sampling_rate`, once, keeping the result in memory (see the module above for why).
//! Files are decoded on all cores, in order-preserving chunks.
//!
//! **Feature extraction** is `Wav2Vec2FeatureExtractor`, as configured by a checkpoint's
//! `preprocessor_config.json` ([`WaveformConfig`]: `sampling_rate`, `do_normalize`,
//! `padding_value`, `return_attention_mask`), applied the way transformers' training
//! scripts apply it: each example is cropped first, then normalized **alone** over its real
//! samples (`(x - mean) / sqrt(var + 1e-7)`, population variance), then padded with
//! `padding_value`. In `run_audio_classification.py` the crop is `random_subsample` and the
//! extractor is called per example without padding; `DataCollatorWithPadding` pads later.
//! The extractor itself also crops before it normalizes (it pads/truncates, then calls
//! `zero_mean_unit_var_norm`), so an evaluation crop to the first N samples here equals
//! `feature_extractor(x, max_length=N, truncation=True)`. The one case that differs is a
//! single padded call with `return_attention_mask=False` (e.g. `wav2vec2-base`): there
//! transformers normalizes each padded row *including* its padding; training never does
//! that, and neither does this module. `return_attention_mask` only decides whether the
//! model is given the mask ([`BatchTensors`](super::BatchTensors)).
//!
//! **Cropping** to `max_duration_s` (`max_length_seconds` in the transformers script):
//! training takes a uniformly random window with the epoch's seeded generator, evaluation
//! the first N seconds ([`EvalCrop::Start`], what `truncation=True` does and the default),
//! the centre ([`EvalCrop::Center`]), or nothing ([`EvalCrop::Whole`], what
//! `run_audio_classification.py` evaluates on). Shorter audio is left whole. The random
//! offset is uniform over every window, `0 ..= len - N`; transformers' `random_subsample`
//! draws `randint(0, len - N - 1)` and so never picks the last one.

use std::ops::Range;
use std::path::Path;

use hearken::features::WaveformConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Example, LabelVocab};
use crate::error::{io_err, runtime_err};
use crate::{Error, Result};

/// Which window of a too-long example evaluation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvalCrop {
    /// The first `max_duration_s`: what transformers' `truncation=True` keeps.
    #[default]
    Start,
    /// The middle `max_duration_s` (the earlier sample when the excess is odd).
    Center,
    /// No crop: evaluate on whole examples, as transformers' `run_audio_classification.py`
    /// does (its crop is for training only).
    Whole,
}

/// How examples become model input: the feature extractor and the crop.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// The checkpoint's `Wav2Vec2FeatureExtractor` settings; `sampling_rate` is the rate
    /// audio is resampled to.
    pub extractor: WaveformConfig,
    /// Longer examples are cropped to this many seconds; `None` keeps them whole.
    pub max_duration_s: Option<f64>,
    /// The evaluation crop.
    pub eval_crop: EvalCrop,
    /// The shortest a training augmentation (speed perturbation) may make a clip, in
    /// samples: the model's receptive field. Clips given shorter stay as they are.
    pub min_samples: usize,
}

impl Default for FeatureConfig {
    /// transformers' defaults (16 kHz, normalized, padding 0, no mask), no crop.
    fn default() -> Self {
        FeatureConfig {
            extractor: WaveformConfig::default(),
            max_duration_s: None,
            eval_crop: EvalCrop::Start,
            min_samples: 0,
        }
    }
}

impl FeatureConfig {
    /// Reads a checkpoint's `preprocessor_config.json`, with no crop.
    ///
    /// Fails with [`Error::Io`] when it cannot be read and [`Error::Runtime`] when it is
    /// not a `Wav2Vec2FeatureExtractor` config.
    pub fn from_preprocessor_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let extractor = WaveformConfig::from_json(&text)
            .map_err(runtime_err(format!("reading {}", path.display())))?;
        Ok(FeatureConfig {
            extractor,
            ..FeatureConfig::default()
        })
    }

    /// The rate audio is resampled to, in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.extractor.sampling_rate
    }

    /// `max_duration_s` in samples, `round(max_duration_s * sampling_rate)` as transformers
    /// rounds it, at least 1.
    ///
    /// Fails with [`Error::InvalidInput`] when `max_duration_s` is not a positive finite
    /// number.
    pub fn max_samples(&self) -> Result<Option<usize>> {
        match self.max_duration_s {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => {
                let n = (s * f64::from(self.sample_rate_hz())).round();
                Ok(Some((n as usize).max(1)))
            }
            Some(s) => Err(Error::InvalidInput {
                what: "max_duration_s".into(),
                expected: "a positive number of seconds".into(),
                got: s.to_string(),
            }),
        }
    }

    /// Checks the sample rate and crop.
    ///
    /// Fails with [`Error::InvalidInput`] for a rate outside what `hearken::audio` accepts
    /// or a bad `max_duration_s`.
    pub fn validate(&self) -> Result<()> {
        hearken::audio::check_sample_rate(self.sample_rate_hz()).map_err(|e| {
            Error::InvalidInput {
                what: "sampling_rate".into(),
                expected: "1 ..= 1000000 Hz".into(),
                got: e.to_string(),
            }
        })?;
        self.max_samples().map(|_| ())
    }
}

/// The window of `n_samples` kept under a limit of `max_samples`: the whole when it fits,
/// else a window of `max_samples` chosen by `crop`.
pub fn crop_range(n_samples: usize, max_samples: Option<usize>, crop: Crop<'_>) -> Range<usize> {
    let Some(max) = max_samples.filter(|&m| m < n_samples) else {
        return 0..n_samples;
    };
    if matches!(crop, Crop::Eval(EvalCrop::Whole)) {
        return 0..n_samples;
    }
    let excess = n_samples - max;
    let start = match crop {
        Crop::Random(rng) => rng.random_range(0..=excess),
        Crop::Eval(EvalCrop::Start) => 0,
        Crop::Eval(EvalCrop::Center) => excess / 2,
        Crop::Eval(EvalCrop::Whole) => 0,
    };
    start..start + max
}

/// How [`crop_range`] chooses a window.
pub enum Crop<'r> {
    /// Uniformly at random, for training.
    Random(&'r mut ChaCha8Rng),
    /// As evaluation does.
    Eval(EvalCrop),
}

/// Decoded examples, in memory: audio at one sample rate, and label ids.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSet {
    examples: Vec<Example>,
    audio: Vec<Vec<f32>>,
    label_ids: Option<Vec<u32>>,
    sample_rate_hz: u32,
}

impl AudioSet {
    /// Decodes and resamples every example to `sample_rate_hz`, and maps labels to ids.
    ///
    /// With a non-empty `labels`, every example must have a label in it; with an empty
    /// one, labels are ignored. Fails with [`Error::Data`] naming the example's file and
    /// line (and the audio file) when audio cannot be decoded or a label is missing or
    /// unknown, and with [`Error::InvalidInput`] for a bad rate or an empty list.
    pub fn load(examples: Vec<Example>, labels: &LabelVocab, sample_rate_hz: u32) -> Result<Self> {
        let n_threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let audio = decode_all(&examples, sample_rate_hz, n_threads)?;
        Self::from_parts(examples, audio, labels, sample_rate_hz)
    }

    /// Wraps audio already decoded (`audio[i]`: `(n_samples,)` at `sample_rate_hz`, for
    /// `examples[i]`), e.g. synthetic data; labels as in [`AudioSet::load`].
    ///
    /// Fails with [`Error::InvalidInput`] when the lists differ in length or are empty, a
    /// clip is empty or has a non-finite sample, or the rate is invalid; with
    /// [`Error::Data`] for a missing or unknown label.
    pub fn from_parts(
        examples: Vec<Example>,
        audio: Vec<Vec<f32>>,
        labels: &LabelVocab,
        sample_rate_hz: u32,
    ) -> Result<Self> {
        let invalid = |what: &str, expected: &str, got: String| Error::InvalidInput {
            what: what.into(),
            expected: expected.into(),
            got,
        };
        if examples.is_empty() || examples.len() != audio.len() {
            return Err(invalid(
                "decoded examples",
                "one clip per example, at least one",
                format!("{} examples, {} clips", examples.len(), audio.len()),
            ));
        }
        hearken::audio::check_sample_rate(sample_rate_hz)
            .map_err(|e| invalid("sample rate", "1 ..= 1000000 Hz", e.to_string()))?;
        for (e, clip) in examples.iter().zip(&audio) {
            if clip.is_empty() {
                return Err(e
                    .origin
                    .error(format!("`{}` has no samples", e.audio.display())));
            }
            hearken::audio::check_samples(clip)
                .map_err(|err| e.origin.error(format!("`{}`: {err}", e.audio.display())))?;
        }
        let label_ids = if labels.is_empty() {
            None
        } else {
            labels.check(&examples)?;
            Some(
                examples
                    .iter()
                    .map(|e| e.label.as_deref().and_then(|l| labels.id(l)).unwrap_or(0))
                    .collect(),
            )
        };
        Ok(AudioSet {
            examples,
            audio,
            label_ids,
            sample_rate_hz,
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// `true` when there are no examples (never, for a built set).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The sample rate of every clip, in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The examples, in order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Example `i`'s decoded audio, `(n_samples,)`.
    pub fn samples(&self, i: usize) -> Option<&[f32]> {
        self.audio.get(i).map(Vec::as_slice)
    }

    /// Every clip's length in samples, in order.
    pub fn lengths(&self) -> Vec<usize> {
        self.audio.iter().map(Vec::len).collect()
    }

    /// Label ids, one per example, when the set has labels.
    pub fn label_ids(&self) -> Option<&[u32]> {
        self.label_ids.as_deref()
    }

    /// The total duration, in seconds.
    pub fn duration_s(&self) -> f64 {
        self.audio.iter().map(Vec::len).sum::<usize>() as f64 / f64::from(self.sample_rate_hz)
    }
}

/// Decodes every example on up to `n_threads` threads, keeping order; the error reported
/// is the first failing example's in list order.
fn decode_all(
    examples: &[Example],
    sample_rate_hz: u32,
    n_threads: usize,
) -> Result<Vec<Vec<f32>>> {
    let chunk = examples.len().div_ceil(n_threads.max(1)).max(1);
    let chunks: Vec<Result<Vec<Vec<f32>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = examples
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|e| decode(e, sample_rate_hz))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut audio = Vec::with_capacity(examples.len());
    for part in chunks {
        audio.extend(part?);
    }
    Ok(audio)
}

/// Decodes one example and resamples it to `sample_rate_hz`.
fn decode(example: &Example, sample_rate_hz: u32) -> Result<Vec<f32>> {
    let fail = |e: hearken::Error| {
        example.origin.error(format!(
            "audio file `{}` cannot be decoded: {e}",
            example.audio.display()
        ))
    };
    let pcm = hearken::audio::decode_file(&example.audio).map_err(fail)?;
    if pcm.sample_rate_hz == sample_rate_hz {
        return Ok(pcm.samples);
    }
    Ok(hearken::audio::resample(&pcm, sample_rate_hz)
        .map_err(fail)?
        .samples)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::testutil::*;
    use super::*;

    #[test]
    fn crop_windows() {
        assert_eq!(crop_range(10, None, Crop::Eval(EvalCrop::Start)), 0..10);
        assert_eq!(
            crop_range(10, Some(10), Crop::Eval(EvalCrop::Center)),
            0..10
        );
        assert_eq!(crop_range(10, Some(4), Crop::Eval(EvalCrop::Start)), 0..4);
        assert_eq!(crop_range(10, Some(4), Crop::Eval(EvalCrop::Center)), 3..7);
        assert_eq!(crop_range(11, Some(4), Crop::Eval(EvalCrop::Center)), 3..7);
        assert_eq!(crop_range(11, Some(4), Crop::Eval(EvalCrop::Whole)), 0..11);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut starts = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let r = crop_range(10, Some(4), Crop::Random(&mut rng));
            assert_eq!(r.len(), 4);
            assert!(r.end <= 10);
            starts.insert(r.start);
        }
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            (0..=6).collect::<Vec<_>>()
        );
        // The same seed gives the same windows.
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..8)
                .map(|_| crop_range(1000, Some(10), Crop::Random(&mut rng)).start)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }

    #[test]
    fn max_samples_rounds_and_validates() {
        let mut f = FeatureConfig {
            max_duration_s: Some(1.00004),
            ..FeatureConfig::default()
        };
        assert_eq!(f.max_samples().unwrap(), Some(16_001));
        f.max_duration_s = Some(0.0);
        assert!(f.validate().is_err());
        f.max_duration_s = Some(f64::NAN);
        assert!(f.max_samples().is_err());
        f.max_duration_s = None;
        f.validate().unwrap();
        f.extractor.sampling_rate = 0;
        assert!(f.validate().is_err());
    }

    #[test]
    fn reads_preprocessor_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("preprocessor_config.json");
        std::fs::write(
            &p,
            r#"{"do_normalize": true, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
                "return_attention_mask": true, "sampling_rate": 16000}"#,
        )
        .unwrap();
        let f = FeatureConfig::from_preprocessor_config(&p).unwrap();
        assert!(f.extractor.return_attention_mask);
        assert_eq!(f.sample_rate_hz(), 16_000);
        std::fs::write(&p, r#"{"feature_size": 80}"#).unwrap();
        assert!(FeatureConfig::from_preprocessor_config(&p).is_err());
        assert!(FeatureConfig::from_preprocessor_config(&dir.path().join("x.json")).is_err());
    }

    #[test]
    fn load_decodes_resamples_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_wav(&d.join("a.wav"), &tone(800, 0), 8_000);
        wav(d, "b.wav", 500, 1);
        std::fs::write(d.join("bad.wav"), b"RIFF garbage").unwrap();
        let mut rows: Vec<Example> = ["a.wav", "b.wav"]
            .iter()
            .map(|n| Example {
                label: Some((*n).into()),
                ..Example::new(d.join(n))
            })
            .collect();
        let vocab = LabelVocab::from_examples(&rows);
        let set = AudioSet::load(rows.clone(), &vocab, 16_000).unwrap();
        assert_eq!(set.lengths(), vec![1600, 500]);
        assert_eq!(set.label_ids(), Some(&[0, 1][..]));
        assert!((set.duration_s() - 2100.0 / 16_000.0).abs() < 1e-12);
        // 16-bit PCM at the target rate is passed through exactly.
        // (`write_wav` scales by 32767, hearken's decoder divides by 32768.)
        let want: Vec<f32> = tone(500, 1)
            .iter()
            .map(|x| (x * 32767.0).round() / 32768.0)
            .collect();
        assert_eq!(set.samples(1).unwrap(), &want[..]);
        // Without a vocabulary, labels are ignored.
        let unlabelled = AudioSet::load(rows.clone(), &LabelVocab::default(), 8_000).unwrap();
        assert_eq!(unlabelled.label_ids(), None);
        assert_eq!(unlabelled.lengths(), vec![800, 250]);

        let mut bad = Example::new(d.join("bad.wav"));
        bad.label = Some("a.wav".into());
        bad.origin.path = d.join("m.jsonl");
        bad.origin.line = Some(3);
        rows.push(bad);
        let err = msg(AudioSet::load(rows, &vocab, 16_000));
        assert!(
            err.starts_with(&format!("{}:3: audio file", d.join("m.jsonl").display())),
            "{err}"
        );
        assert!(err.contains("bad.wav"), "{err}");
    }

    #[test]
    fn from_parts_checks() {
        let e = Example::new("x.wav");
        let none = LabelVocab::default();
        assert!(AudioSet::from_parts(vec![], vec![], &none, 16_000).is_err());
        assert!(AudioSet::from_parts(vec![e.clone()], vec![], &none, 16_000).is_err());
        assert!(AudioSet::from_parts(vec![e.clone()], vec![vec![]], &none, 16_000).is_err());
        assert!(
            AudioSet::from_parts(vec![e.clone()], vec![vec![f32::NAN]], &none, 16_000).is_err()
        );
        assert!(AudioSet::from_parts(vec![e.clone()], vec![vec![0.0]], &none, 0).is_err());
        let vocab = LabelVocab::from_labels(vec!["a".into()]).unwrap();
        assert!(
            msg(AudioSet::from_parts(
                vec![e.clone()],
                vec![vec![0.0]],
                &vocab,
                16_000
            ))
            .contains("no label")
        );
        let set = AudioSet::from_parts(
            vec![Example {
                label: Some("a".into()),
                ..e
            }],
            vec![vec![0.0]],
            &vocab,
            16_000,
        )
        .unwrap();
        assert_eq!(set.label_ids(), Some(&[0][..]));
    }
}
