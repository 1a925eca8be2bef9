//! Waveform augmentation for training: speed perturbation, random gain and additive white
//! noise.
//!
//! Speed perturbation (Ko et al., "Audio augmentation for speech recognition", 2015, as
//! Kaldi's and ESPnet's recipes use it) plays the clip faster or slower by a factor `f`:
//! `y(t) = x(f·t)`, which shortens it to `1/f` of its length and moves every formant and
//! the pitch by `f`, the way a shorter or longer vocal tract does; it is the classic
//! remedy for a model that has heard few speakers. It resamples the whole clip (through
//! `hearken::audio`'s windowed-sinc resampler: the clip is read as if recorded at
//! `round(f · rate)` Hz) **before** cropping, so a crop still holds `max_duration_s` of
//! audio. Gain and noise follow, after cropping and **before** normalization. All draw
//! from the batch's seeded generator in a fixed order: speed, (the crop), gain, noise.
//! Evaluation is never augmented.
//!
//! Two consequences worth knowing. With `do_normalize` (the usual Wav2Vec2 setting), the
//! per-utterance normalization divides out any gain (the noise is relative to the signal,
//! so it scales along), so random gain matters only for extractors without normalization.
//! And because noise is set by signal-to-noise ratio against the example's own mean power,
//! it means the same at any recording level; a silent example (power 0) has no defined SNR
//! and is left silent. Samples are not clipped: they are `f32` and the model never sees a
//! quantized signal.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use hearken::audio::StreamResampler;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{Error, Result};

/// Augmentations applied to training examples; each is off when `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Augment {
    /// Speed perturbation, before cropping.
    pub speed: Option<SpeedAugment>,
    /// Random gain.
    pub gain: Option<GainAugment>,
    /// Additive white Gaussian noise.
    pub noise: Option<NoiseAugment>,
}

/// Play the clip at speed `f`, drawn uniformly from `min_factor ..= max_factor` (`f > 1`
/// is faster and shorter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedAugment {
    /// The slowest factor, > 0.
    pub min_factor: f32,
    /// The fastest factor.
    pub max_factor: f32,
    /// The chance of applying it to an example, in [0, 1].
    pub probability: f64,
}

/// Multiply by `10^(g / 20)`, `g` drawn uniformly from `min_db ..= max_db`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainAugment {
    /// The lowest gain, in dB.
    pub min_db: f32,
    /// The highest gain, in dB.
    pub max_db: f32,
    /// The chance of applying it to an example, in [0, 1].
    pub probability: f64,
}

/// Add white Gaussian noise at an SNR drawn uniformly from `min_snr_db ..= max_snr_db`,
/// relative to the example's mean power: noise standard deviation
/// `sqrt(mean(x²) / 10^(snr / 10))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseAugment {
    /// The lowest SNR (the loudest noise), in dB.
    pub min_snr_db: f32,
    /// The highest SNR, in dB.
    pub max_snr_db: f32,
    /// The chance of applying it to an example, in [0, 1].
    pub probability: f64,
}

impl Augment {
    /// `true` when nothing is enabled.
    pub fn is_off(&self) -> bool {
        self.speed.is_none() && self.gain.is_none() && self.noise.is_none()
    }

    /// Checks the ranges and probabilities.
    ///
    /// Fails with [`Error::InvalidInput`] for a non-finite bound, `min > max`, a speed
    /// factor outside 0.5 ..= 2, or a probability outside [0, 1].
    pub fn validate(&self) -> Result<()> {
        let check = |what: &str, min: f32, max: f32, p: f64| {
            if !(min.is_finite() && max.is_finite() && min <= max) {
                return Err(Error::InvalidInput {
                    what: format!("{what} range"),
                    expected: "finite bounds with min <= max".into(),
                    got: format!("{min} ..= {max}"),
                });
            }
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::InvalidInput {
                    what: format!("{what} probability"),
                    expected: "a probability in [0, 1]".into(),
                    got: p.to_string(),
                });
            }
            Ok(())
        };
        if let Some(v) = &self.speed {
            check("speed factor", v.min_factor, v.max_factor, v.probability)?;
            if !(v.min_factor >= 0.5 && v.max_factor <= 2.0) {
                return Err(Error::InvalidInput {
                    what: "speed factor range".into(),
                    expected: "factors within 0.5 ..= 2".into(),
                    got: format!("{} ..= {}", v.min_factor, v.max_factor),
                });
            }
        }
        if let Some(g) = &self.gain {
            check("gain_db", g.min_db, g.max_db, g.probability)?;
        }
        if let Some(n) = &self.noise {
            check("noise snr_db", n.min_snr_db, n.max_snr_db, n.probability)?;
        }
        Ok(())
    }

    /// Speed-perturbs a whole example, `samples`: `(n_samples,)` at `sample_rate_hz`;
    /// `None` when speed perturbation is off or not drawn for this example (the example
    /// is used as it is). The factor is rounded to a step of 80 Hz in the rate it reads
    /// the clip at (0.005 at 16 kHz). A drawn factor that would make the clip shorter
    /// than `min_samples` is lowered to keep that many (and to 1, no change, at the
    /// least).
    ///
    /// Draws from `rng`, when speed perturbation is enabled: whether to apply it
    /// (`probability`), then the factor. Fails with [`Error::Runtime`] if the resampler
    /// refuses the rate (a factor outside what [`Augment::validate`] accepts).
    pub fn apply_speed(
        &self,
        samples: &[f32],
        sample_rate_hz: u32,
        min_samples: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<Vec<f32>>> {
        let Some(v) = &self.speed else {
            return Ok(None);
        };
        if !rng.random_bool(v.probability.clamp(0.0, 1.0)) {
            return Ok(None);
        }
        let mut factor = f64::from(uniform(rng, v.min_factor, v.max_factor));
        let mut round: fn(f64) -> f64 = f64::round;
        if factor > 1.0 && min_samples > 0 {
            let fastest = (samples.len() as f64 / min_samples as f64).max(1.0);
            if factor > fastest {
                factor = fastest;
                round = f64::floor;
            }
        }
        // The clip is read as if recorded at `from_hz`, a multiple of `RATE_STEP_HZ`, so
        // that a run needs few resamplers (their filter tables are the costly part), each
        // built once and kept in a shared pool.
        let steps = round(f64::from(sample_rate_hz) * factor / RATE_STEP_HZ);
        let from_hz = (steps * RATE_STEP_HZ) as u32;
        if from_hz == sample_rate_hz {
            return Ok(None);
        }
        // One from the shared pool (the batch builders run on short-lived threads), or a
        // new one; put back after use.
        let key = (from_hz, sample_rate_hz);
        let pooled = RESAMPLERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&key)
            .and_then(Vec::pop);
        let mut resampler = match pooled {
            Some(r) => r,
            None => hearken::audio::StreamResampler::new(from_hz, sample_rate_hz)
                .map_err(crate::error::runtime_err("speed perturbation"))?,
        };
        // `finish` ends the stream and resets the resampler for the next clip; a failed
        // `push` leaves it as it was, so reset it before giving it back.
        let out = resampler.push(samples).and_then(|mut out| {
            out.extend(resampler.finish()?);
            Ok(out)
        });
        if out.is_err() {
            let _ = resampler.reset();
        }
        RESAMPLERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .push(resampler);
        Ok(Some(out.map_err(crate::error::runtime_err(
            "speed perturbation",
        ))?))
    }

    /// Augments one cropped example in place with gain and noise, `samples`:
    /// `(n_samples,)`; speed perturbation is [`Augment::apply_speed`]'s, before cropping.
    ///
    /// Draws from `rng`, per enabled augmentation in order (gain, noise): whether to apply
    /// it (`probability`), then its level, then (noise) one Gaussian per sample. Assumes
    /// [`Augment::validate`] passed; bounds are taken as given otherwise.
    pub fn apply(&self, samples: &mut [f32], rng: &mut ChaCha8Rng) {
        if let Some(g) = &self.gain
            && rng.random_bool(g.probability.clamp(0.0, 1.0))
        {
            let db = uniform(rng, g.min_db, g.max_db);
            let gain = 10f32.powf(db / 20.0);
            samples.iter_mut().for_each(|x| *x *= gain);
        }
        if let Some(n) = &self.noise
            && rng.random_bool(n.probability.clamp(0.0, 1.0))
        {
            let snr_db = uniform(rng, n.min_snr_db, n.max_snr_db);
            let power = mean_power(samples);
            if power > 0.0 {
                let std = (power / 10f64.powf(f64::from(snr_db) / 10.0)).sqrt();
                for x in samples.iter_mut() {
                    *x = (f64::from(*x) + std * gaussian(rng)) as f32;
                }
            }
        }
    }
}

/// Speed perturbation reads a clip as recorded at a multiple of this rate: factors in
/// steps of 0.005 at 16 kHz.
const RATE_STEP_HZ: f64 = 80.0;

/// Idle speed-perturbation resamplers, by (from, to) rate, shared by all threads.
static RESAMPLERS: LazyLock<Mutex<ResamplerPool>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Resamplers by (from, to) rate.
type ResamplerPool = HashMap<(u32, u32), Vec<StreamResampler>>;

/// Uniform in `min ..= max` (exactly `min` when the range is one point or inverted).
fn uniform(rng: &mut ChaCha8Rng, min: f32, max: f32) -> f32 {
    if max > min {
        rng.random_range(min..=max)
    } else {
        min
    }
}

/// The mean of `x²`, in `f64`.
pub(crate) fn mean_power(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64
}

/// A standard normal draw (rand_distr's ziggurat: no logarithm or cosine per sample).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn tone(n: usize) -> Vec<f32> {
        (0..n).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect()
    }

    #[test]
    fn noise_hits_the_drawn_snr() {
        let aug = Augment {
            noise: Some(NoiseAugment {
                min_snr_db: 10.0,
                max_snr_db: 10.0,
                probability: 1.0,
            }),
            ..Augment::default()
        };
        aug.validate().unwrap();
        let clean = tone(64_000);
        let mut noisy = clean.clone();
        aug.apply(&mut noisy, &mut ChaCha8Rng::seed_from_u64(1));
        let noise: Vec<f32> = noisy.iter().zip(&clean).map(|(a, b)| a - b).collect();
        let snr = 10.0 * (mean_power(&clean) / mean_power(&noise)).log10();
        assert!((snr - 10.0).abs() < 0.1, "snr {snr}");
        let mean = noise.iter().map(|&x| f64::from(x)).sum::<f64>() / noise.len() as f64;
        assert!(mean.abs() < 0.01, "white noise has zero mean: {mean}");
        // Seeded: the same generator state gives the same noise; another seed does not.
        let mut again = clean.clone();
        aug.apply(&mut again, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(again, noisy);
        let mut other = clean.clone();
        aug.apply(&mut other, &mut ChaCha8Rng::seed_from_u64(2));
        assert_ne!(other, noisy);
        // Silence stays silent.
        let mut silent = vec![0.0f32; 100];
        aug.apply(&mut silent, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(silent.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn gain_within_range_and_probability() {
        let aug = Augment {
            gain: Some(GainAugment {
                min_db: -6.0,
                max_db: 6.0,
                probability: 1.0,
            }),
            ..Augment::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = Vec::new();
        for _ in 0..200 {
            let mut x = vec![0.5f32];
            aug.apply(&mut x, &mut rng);
            let db = 20.0 * (x[0] / 0.5).log10();
            assert!((-6.0001..=6.0001).contains(&db), "{db}");
            seen.push(db);
        }
        assert!(seen.iter().any(|&d| d < -4.0) && seen.iter().any(|&d| d > 4.0));
        let never = Augment {
            gain: Some(GainAugment {
                probability: 0.0,
                ..aug.gain.unwrap()
            }),
            noise: Some(NoiseAugment {
                min_snr_db: 0.0,
                max_snr_db: 5.0,
                probability: 0.0,
            }),
            speed: Some(SpeedAugment {
                min_factor: 0.9,
                max_factor: 1.1,
                probability: 0.0,
            }),
        };
        assert_eq!(
            never.apply_speed(&tone(100), 16_000, 0, &mut rng).unwrap(),
            None
        );
        let mut x = tone(100);
        never.apply(&mut x, &mut rng);
        assert_eq!(x, tone(100));
        assert!(Augment::default().is_off());
    }

    /// A tone played at speed `f` is `1/f` as long and `f` times as high: the length and
    /// the zero-crossing rate of the output say so.
    #[test]
    fn speed_changes_length_and_pitch_by_the_factor() {
        let rate = 16_000;
        let hz = 440.0f32;
        let n = 16_000;
        let clean: Vec<f32> = (0..n)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect();
        let crossings = |x: &[f32]| {
            x.windows(2)
                .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
                .count() as f64
                / (x.len() as f64 / f64::from(rate))
                / 2.0
        };
        // A clip at its shortest is never made shorter.
        let fast = Augment {
            speed: Some(SpeedAugment {
                min_factor: 1.5,
                max_factor: 1.5,
                probability: 1.0,
            }),
            ..Augment::default()
        };
        let short = &clean[..400];
        let kept = fast
            .apply_speed(short, rate, 400, &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap();
        assert_eq!(kept, None);
        let capped = fast
            .apply_speed(&clean[..500], rate, 400, &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap()
            .unwrap();
        assert!(capped.len() >= 400, "{}", capped.len());
        for factor in [0.9f32, 1.1] {
            let aug = Augment {
                speed: Some(SpeedAugment {
                    min_factor: factor,
                    max_factor: factor,
                    probability: 1.0,
                }),
                ..Augment::default()
            };
            aug.validate().unwrap();
            let out = aug
                .apply_speed(&clean, rate, 0, &mut ChaCha8Rng::seed_from_u64(0))
                .unwrap()
                .expect("drawn with probability 1");
            let expected_len = n as f64 / f64::from(factor);
            assert!(
                (out.len() as f64 - expected_len).abs() <= 1.0,
                "{factor}: {} samples, expected {expected_len}",
                out.len()
            );
            // Away from the edges, where the filter meets the clip's ends.
            let pitch = crossings(&out[400..out.len() - 400]);
            let expected = f64::from(hz * factor);
            assert!(
                (pitch - expected).abs() < 0.01 * expected,
                "{factor}: {pitch} Hz, expected {expected}"
            );
        }
    }

    #[test]
    fn validate_rejects_bad_ranges() {
        let bad = |min_db, max_db, probability| Augment {
            gain: Some(GainAugment {
                min_db,
                max_db,
                probability,
            }),
            ..Augment::default()
        };
        assert!(bad(1.0, 0.0, 0.5).validate().is_err());
        assert!(bad(f32::NAN, 0.0, 0.5).validate().is_err());
        assert!(bad(0.0, 1.0, 1.5).validate().is_err());
        bad(0.0, 0.0, 1.0).validate().unwrap();
        let speed = |min_factor, max_factor| Augment {
            speed: Some(SpeedAugment {
                min_factor,
                max_factor,
                probability: 1.0,
            }),
            ..Augment::default()
        };
        assert!(speed(0.0, 1.1).validate().is_err());
        assert!(speed(0.9, 3.0).validate().is_err());
        assert!(speed(1.1, 0.9).validate().is_err());
        speed(0.9, 1.1).validate().unwrap();
    }
}
