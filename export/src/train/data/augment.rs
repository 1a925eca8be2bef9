//! Waveform augmentation for training: random gain and additive white noise.
//!
//! Applied to each training example after cropping and **before** normalization, with the
//! batch's seeded generator, in a fixed order: gain, then noise. Evaluation is never
//! augmented.
//!
//! Two consequences worth knowing. With `do_normalize` (the usual Wav2Vec2 setting), the
//! per-utterance normalization divides out any gain (the noise is relative to the signal,
//! so it scales along), so random gain matters only for extractors without normalization.
//! And because noise is set by signal-to-noise ratio against the example's own mean power,
//! it means the same at any recording level; a silent example (power 0) has no defined SNR
//! and is left silent. Samples are not clipped: they are `f32` and the model never sees a
//! quantized signal.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// Augmentations applied to training examples; each is off when `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Augment {
    /// Random gain.
    pub gain: Option<GainAugment>,
    /// Additive white Gaussian noise.
    pub noise: Option<NoiseAugment>,
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
        self.gain.is_none() && self.noise.is_none()
    }

    /// Checks the ranges and probabilities.
    ///
    /// Fails with [`Error::InvalidInput`] for a non-finite bound, `min > max`, or a
    /// probability outside [0, 1].
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
        if let Some(g) = &self.gain {
            check("gain_db", g.min_db, g.max_db, g.probability)?;
        }
        if let Some(n) = &self.noise {
            check("noise snr_db", n.min_snr_db, n.max_snr_db, n.probability)?;
        }
        Ok(())
    }

    /// Augments one example in place, `samples`: `(n_samples,)`.
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

/// A standard normal draw (Box–Muller, one of the pair).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // 1 - U maps [0, 1) to (0, 1], keeping ln finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
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
        };
        let mut x = tone(100);
        never.apply(&mut x, &mut rng);
        assert_eq!(x, tone(100));
        assert!(Augment::default().is_off());
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
    }
}
