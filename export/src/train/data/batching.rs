//! Batches: the epoch's order, then crop, augment, normalize and pad each batch.
//!
//! An epoch is planned in full first ([`plan_epoch`]): a list of batches of example
//! indices, every example exactly once (or, with `drop_last`, every example but the last
//! incomplete batch's). Three orders ([`Order`]): the source's order; a seeded shuffle;
//! or length-grouped, as transformers' `group_by_length` does, so each batch holds similar
//! lengths and pads little. Batches are then built one at a time ([`Epoch`]), each with its
//! own generator derived from the epoch's, so the random crops and augmentation of batch
//! `b` do not depend on whether earlier batches were built.
//!
//! A [`Batch`] is plain data, `(batch_size, n_samples)` row-major, padded to its longest
//! example (dynamic padding), with an attention mask of 1 on real samples and 0 on
//! padding; [`Batch::to_tensors`] turns it into candle tensors.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::augment::Augment;
use super::features::{AudioSet, Crop, FeatureConfig, crop_range};
use crate::error::candle_err;
use crate::{Error, Result};

/// The order of examples in an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The source's order, every epoch (evaluation; or reproducing a run).
    Sequential,
    /// A seeded shuffle of all examples.
    #[default]
    Shuffle,
    /// transformers' `group_by_length`: shuffle, cut into mega-batches of
    /// `mega_batch_mult * batch_size`, sort each by length (longest first), and move the
    /// longest example of all into the first batch, so memory runs out at the first step
    /// if it is going to.
    GroupByLength {
        /// Batches per mega-batch; `None` takes transformers' default,
        /// `min(n / (4 * batch_size), 50)`, at least 1.
        mega_batch_mult: Option<usize>,
    },
}

/// How an epoch is cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Examples per batch.
    pub batch_size: usize,
    /// The order of examples.
    pub order: Order,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
}

/// Plans one epoch: batches of indices into `lengths` (the examples' lengths, used only
/// by [`Order::GroupByLength`]).
///
/// Draws from `rng` for [`Order::Shuffle`] and [`Order::GroupByLength`] only. Fails with
/// [`Error::InvalidInput`] when `batch_size` or `mega_batch_mult` is 0.
pub fn plan_epoch(
    lengths: &[usize],
    config: &BatchConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>> {
    let batch_size = config.batch_size;
    if batch_size == 0 {
        return Err(Error::InvalidInput {
            what: "batch_size".into(),
            expected: "at least 1".into(),
            got: "0".into(),
        });
    }
    let n = lengths.len();
    let order = match config.order {
        Order::Sequential => (0..n).collect(),
        Order::Shuffle => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            order
        }
        Order::GroupByLength { mega_batch_mult } => {
            if mega_batch_mult == Some(0) {
                return Err(Error::InvalidInput {
                    what: "mega_batch_mult".into(),
                    expected: "at least 1".into(),
                    got: "0".into(),
                });
            }
            length_grouped(lengths, batch_size, mega_batch_mult, rng)
        }
    };
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    if config.drop_last && batches.last().is_some_and(|b| b.len() < batch_size) {
        batches.pop();
    }
    Ok(batches)
}

/// An order in which consecutive runs of `batch_size` have similar lengths.
// Ported from https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/trainer_pt_utils.py#L580-L612
// (`get_length_grouped_indices`); the permutation comes from `rng` instead of torch.
fn length_grouped(
    lengths: &[usize],
    batch_size: usize,
    mega_batch_mult: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mult = mega_batch_mult.unwrap_or_else(|| (lengths.len() / (batch_size * 4)).clamp(1, 50));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(rng);
    let mut megabatches: Vec<Vec<usize>> = order
        .chunks(mult * batch_size)
        .map(|m| {
            let mut m = m.to_vec();
            // Stable, like Python's `sorted(..., reverse=True)`: ties keep shuffled order.
            m.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
            m
        })
        .collect();
    // The longest example leads its mega-batch; swap it to the very front. The first of
    // equal maxima wins, as with torch.argmax.
    let mut longest = 0;
    for (i, m) in megabatches.iter().enumerate() {
        if lengths[m[0]] > lengths[megabatches[longest][0]] {
            longest = i;
        }
    }
    if longest != 0 {
        let (first, rest) = megabatches.split_at_mut(longest);
        std::mem::swap(&mut first[0][0], &mut rest[0][0]);
    }
    megabatches.concat()
}

/// One padded batch, as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The model input `(batch_size, n_samples)` row-major: each row cropped, augmented
    /// (training), normalized, then padded with `padding_value`.
    pub input_values: Vec<f32>,
    /// `(batch_size, n_samples)` row-major: 1 on real samples, 0 on padding.
    pub attention_mask: Vec<u32>,
    /// The padded length: the longest row's.
    pub n_samples: usize,
    /// The number of rows.
    pub batch_size: usize,
    /// Each row's real length, `(batch_size,)`.
    pub lengths: Vec<usize>,
    /// Each row's label id, `(batch_size,)`; empty when the set has no labels.
    pub labels: Vec<u32>,
    /// Each row's index into the [`AudioSet`], for what else a task needs (the text).
    pub indices: Vec<usize>,
}

/// A [`Batch`] as candle tensors on one device.
#[derive(Debug, Clone)]
pub struct BatchTensors {
    /// `(batch_size, n_samples)`, `f32`.
    pub input_values: Tensor,
    /// `(batch_size, n_samples)`, `u32`, 1 real and 0 padding; `None` when the extractor's
    /// `return_attention_mask` is false (the model was trained without one).
    pub attention_mask: Option<Tensor>,
    /// `(batch_size,)`, `u32`; `None` without labels.
    pub labels: Option<Tensor>,
}

impl Batch {
    /// The batch as up to `n` consecutive row ranges of near-equal size (the first ones one
    /// row longer), each padded to this batch's length, so that every row is computed as it
    /// would be in the whole batch. `n` is clamped to `1 ..= batch_size`.
    pub fn split(&self, n: usize) -> Vec<Batch> {
        let n = n.clamp(1, self.batch_size.max(1));
        let (base, extra) = (self.batch_size / n, self.batch_size % n);
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for i in 0..n {
            let rows = base + usize::from(i < extra);
            let (a, b) = (start * self.n_samples, (start + rows) * self.n_samples);
            let labels = if self.labels.is_empty() {
                Vec::new()
            } else {
                self.labels[start..start + rows].to_vec()
            };
            out.push(Batch {
                input_values: self.input_values[a..b].to_vec(),
                attention_mask: self.attention_mask[a..b].to_vec(),
                n_samples: self.n_samples,
                batch_size: rows,
                lengths: self.lengths[start..start + rows].to_vec(),
                labels,
                indices: self.indices[start..start + rows].to_vec(),
            });
            start += rows;
        }
        out
    }

    /// Copies the batch into tensors on `device`; the mask is included when
    /// `with_attention_mask` (pass the extractor's `return_attention_mask`).
    ///
    /// Fails with [`Error::Candle`] when a tensor cannot be created.
    pub fn to_tensors(&self, device: &Device, with_attention_mask: bool) -> Result<BatchTensors> {
        let shape = (self.batch_size, self.n_samples);
        let input_values = Tensor::from_slice(&self.input_values, shape, device)
            .map_err(candle_err("building input_values"))?;
        let attention_mask = if with_attention_mask {
            Some(
                Tensor::from_slice(&self.attention_mask, shape, device)
                    .map_err(candle_err("building attention_mask"))?,
            )
        } else {
            None
        };
        let labels = if self.labels.is_empty() {
            None
        } else {
            Some(
                Tensor::from_slice(&self.labels, self.batch_size, device)
                    .map_err(candle_err("building labels"))?,
            )
        };
        Ok(BatchTensors {
            input_values,
            attention_mask,
            labels,
        })
    }
}

/// Whether a batch is built for training (random crop, augmentation) or evaluation.
pub enum Stage<'a> {
    /// Training: crops at random and augments, drawing from `rng`.
    Train {
        /// The batch's generator.
        rng: &'a mut ChaCha8Rng,
        /// Augmentation, if any.
        augment: Option<&'a Augment>,
    },
    /// Evaluation: [`FeatureConfig::eval_crop`], no augmentation.
    Eval,
}

/// Builds the batch of `indices` (into `set`): crop each example, augment it (training),
/// normalize it over its real samples, and pad every row to the longest with
/// `padding_value`.
///
/// In training, the draws from `rng` are, per example in `indices` order:
/// [`Augment::apply_speed`]'s (which resamples the whole clip), the crop offset (only when
/// it is cropped), then [`Augment::apply`]'s.
///
/// Fails with [`Error::InvalidInput`] for an empty or out-of-range index list or a bad
/// `max_duration_s`, and with [`Error::Runtime`] if normalization meets a non-finite
/// sample (which augmentation of finite audio cannot produce).
pub fn collate(
    set: &AudioSet,
    indices: &[usize],
    features: &FeatureConfig,
    stage: Stage<'_>,
) -> Result<Batch> {
    if indices.is_empty() {
        return Err(Error::InvalidInput {
            what: "batch indices".into(),
            expected: "at least one".into(),
            got: "none".into(),
        });
    }
    let max_samples = features.max_samples()?;
    let (mut rng, augment) = match stage {
        Stage::Train { rng, augment } => (Some(rng), augment),
        Stage::Eval => (None, None),
    };
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(indices.len());
    for &i in indices {
        let samples = set.samples(i).ok_or_else(|| Error::InvalidInput {
            what: "batch index".into(),
            expected: format!("below the set's {} examples", set.len()),
            got: i.to_string(),
        })?;
        let sped = match (rng.as_deref_mut(), augment) {
            (Some(rng), Some(augment)) => augment.apply_speed(
                samples,
                features.sample_rate_hz(),
                features.min_samples,
                rng,
            )?,
            _ => None,
        };
        let samples = sped.as_deref().unwrap_or(samples);
        let crop = match rng.as_deref_mut() {
            Some(rng) => Crop::Random(rng),
            None => Crop::Eval(features.eval_crop),
        };
        let mut row = samples[crop_range(samples.len(), max_samples, crop)].to_vec();
        if let (Some(rng), Some(augment)) = (rng.as_deref_mut(), augment) {
            augment.apply(&mut row, rng);
        }
        rows.push(row);
    }
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    let n_samples = lengths.iter().copied().max().unwrap_or(0);
    let batch_size = rows.len();
    let extractor = &features.extractor;
    let mut input_values = vec![extractor.padding_value; batch_size * n_samples];
    let mut attention_mask = vec![0u32; batch_size * n_samples];
    for (r, row) in rows.iter().enumerate() {
        input_values[r * n_samples..r * n_samples + row.len()].copy_from_slice(row);
        attention_mask[r * n_samples..r * n_samples + row.len()].fill(1);
    }
    if extractor.do_normalize {
        // Each row over its real samples, padding set to `padding_value`: what transformers'
        // training scripts produce (see `features`), whatever `return_attention_mask` says.
        hearken::features::zero_mean_unit_var_batch(
            &mut input_values,
            &lengths,
            extractor.padding_value,
        )
        .map_err(crate::error::runtime_err("normalizing a batch"))?;
    }
    let labels = match set.label_ids() {
        Some(ids) => indices.iter().map(|&i| ids[i]).collect(),
        None => Vec::new(),
    };
    Ok(Batch {
        input_values,
        attention_mask,
        n_samples,
        batch_size,
        lengths,
        labels,
        indices: indices.to_vec(),
    })
}

/// The generator of training batch `b` of an epoch whose batches were seeded with `seed`
/// ([`Epoch::batch_seed`]): that seed's stream `b`, so each batch draws its crops and
/// augmentation independently of the others.
pub fn batch_rng(seed: [u8; 32], b: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(b as u64);
    rng
}

/// One epoch's batches, built on demand.
pub struct Epoch<'a> {
    set: &'a AudioSet,
    features: &'a FeatureConfig,
    augment: Option<&'a Augment>,
    plan: Vec<Vec<usize>>,
    /// The seed of every batch's generator (training), each batch on its own stream.
    batch_seed: Option<[u8; 32]>,
    next: usize,
}

impl<'a> Epoch<'a> {
    /// A training epoch: plans the batches from `rng` ([`plan_epoch`] on the lengths after
    /// cropping), then draws one seed for the batches' generators.
    ///
    /// Fails as [`plan_epoch`], [`FeatureConfig::validate`] and [`Augment::validate`] do.
    pub fn train(
        set: &'a AudioSet,
        features: &'a FeatureConfig,
        augment: Option<&'a Augment>,
        config: &BatchConfig,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        features.validate()?;
        if let Some(a) = augment {
            a.validate()?;
        }
        let max = features.max_samples()?;
        let lengths: Vec<usize> = set
            .lengths()
            .into_iter()
            .map(|n| max.map_or(n, |m| n.min(m)))
            .collect();
        let plan = plan_epoch(&lengths, config, rng)?;
        let batch_seed = Some(rng.random());
        Ok(Epoch {
            set,
            features,
            augment: augment.filter(|a| !a.is_off()),
            plan,
            batch_seed,
            next: 0,
        })
    }

    /// An evaluation pass: every example once, in order, `batch_size` at a time, with the
    /// evaluation crop and no augmentation.
    ///
    /// Fails with [`Error::InvalidInput`] when `batch_size` is 0 or the features are invalid.
    pub fn eval(set: &'a AudioSet, features: &'a FeatureConfig, batch_size: usize) -> Result<Self> {
        features.validate()?;
        let config = BatchConfig {
            batch_size,
            order: Order::Sequential,
            drop_last: false,
        };
        // Sequential order draws nothing.
        let plan = plan_epoch(&set.lengths(), &config, &mut ChaCha8Rng::seed_from_u64(0))?;
        Ok(Epoch {
            set,
            features,
            augment: None,
            plan,
            batch_seed: None,
            next: 0,
        })
    }

    /// The planned batches, as indices into the set.
    pub fn plan(&self) -> &[Vec<usize>] {
        &self.plan
    }

    /// The seed of the training batches' generators ([`batch_rng`]); `None` for an
    /// evaluation pass. With it and [`Epoch::plan`], a caller can rebuild any batch later
    /// with [`collate`], without keeping the epoch (which borrows the set).
    pub fn batch_seed(&self) -> Option<[u8; 32]> {
        self.batch_seed
    }

    /// The number of batches.
    pub fn n_batches(&self) -> usize {
        self.plan.len()
    }

    /// Builds batch `b` of the plan, independently of the others.
    ///
    /// Fails with [`Error::InvalidInput`] when `b` is past the plan, else as [`collate`].
    pub fn batch(&self, b: usize) -> Result<Batch> {
        let indices = self.plan.get(b).ok_or_else(|| Error::InvalidInput {
            what: "batch number".into(),
            expected: format!("below {}", self.plan.len()),
            got: b.to_string(),
        })?;
        match self.batch_seed {
            Some(seed) => {
                let mut rng = batch_rng(seed, b);
                let stage = Stage::Train {
                    rng: &mut rng,
                    augment: self.augment,
                };
                collate(self.set, indices, self.features, stage)
            }
            None => collate(self.set, indices, self.features, Stage::Eval),
        }
    }
}

impl Iterator for Epoch<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.plan.len() {
            return None;
        }
        let batch = self.batch(self.next);
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Epoch<'_> {}

#[cfg(test)]
mod tests {
    use super::super::augment::NoiseAugment;
    use super::super::{Example, LabelVocab};
    use super::*;

    fn config(batch_size: usize, order: Order, drop_last: bool) -> BatchConfig {
        BatchConfig {
            batch_size,
            order,
            drop_last,
        }
    }

    fn sorted_flat(plan: &[Vec<usize>]) -> Vec<usize> {
        let mut all: Vec<usize> = plan.concat();
        all.sort_unstable();
        all
    }

    #[test]
    fn every_order_covers_each_example_once() {
        let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 101 + 1).collect();
        for order in [
            Order::Sequential,
            Order::Shuffle,
            Order::GroupByLength {
                mega_batch_mult: None,
            },
            Order::GroupByLength {
                mega_batch_mult: Some(3),
            },
        ] {
            for epoch in 0..3u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(epoch);
                let plan = plan_epoch(&lengths, &config(8, order, false), &mut rng).unwrap();
                assert_eq!(
                    sorted_flat(&plan),
                    (0..103).collect::<Vec<_>>(),
                    "{order:?}"
                );
                assert_eq!(plan.len(), 13);
                assert!(plan[..12].iter().all(|b| b.len() == 8));
                assert_eq!(plan[12].len(), 7);
                let dropped = plan_epoch(
                    &lengths,
                    &config(8, order, true),
                    &mut ChaCha8Rng::seed_from_u64(epoch),
                )
                .unwrap();
                assert_eq!(dropped.len(), 12);
                assert_eq!(dropped[..], plan[..12], "drop_last drops only the tail");
            }
        }
        let seq = plan_epoch(
            &lengths,
            &config(10, Order::Sequential, false),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        assert_eq!(seq.concat(), (0..103).collect::<Vec<_>>());
        assert!(
            plan_epoch(
                &lengths,
                &config(0, Order::Shuffle, false),
                &mut ChaCha8Rng::seed_from_u64(0)
            )
            .is_err()
        );
        let zero_mult = Order::GroupByLength {
            mega_batch_mult: Some(0),
        };
        assert!(
            plan_epoch(
                &lengths,
                &config(4, zero_mult, false),
                &mut ChaCha8Rng::seed_from_u64(0)
            )
            .is_err()
        );
        assert!(
            plan_epoch(
                &[],
                &config(4, Order::Shuffle, false),
                &mut ChaCha8Rng::seed_from_u64(0)
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn shuffles_are_seeded() {
        let lengths = vec![1usize; 50];
        let plan = |seed| {
            plan_epoch(
                &lengths,
                &config(5, Order::Shuffle, false),
                &mut ChaCha8Rng::seed_from_u64(seed),
            )
            .unwrap()
        };
        assert_eq!(plan(1), plan(1));
        assert_ne!(plan(1), plan(2));
        assert_ne!(plan(1).concat(), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn length_grouping_sorts_within_megabatches_longest_first() {
        let lengths: Vec<usize> = (0..64).map(|i| (i * 29) % 64 + 1).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let order = Order::GroupByLength {
            mega_batch_mult: Some(2),
        };
        let plan = plan_epoch(&lengths, &config(4, order, false), &mut rng).unwrap();
        let flat = plan.concat();
        assert_eq!(lengths[flat[0]], 64, "the longest example comes first");
        // Within each mega-batch of 8 (after the first element's swap), descending.
        for (m, mega) in flat.chunks(8).enumerate() {
            let start = usize::from(m == 0);
            let l: Vec<usize> = mega[start..].iter().map(|&i| lengths[i]).collect();
            assert!(l.windows(2).all(|w| w[0] >= w[1]), "mega-batch {m}: {l:?}");
        }
        // Grouping pads less than a plain shuffle.
        let padding = |plan: &[Vec<usize>]| -> usize {
            plan.iter()
                .map(|b| {
                    let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| max - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let shuffled = plan_epoch(
            &lengths,
            &config(4, Order::Shuffle, false),
            &mut ChaCha8Rng::seed_from_u64(9),
        )
        .unwrap();
        assert!(padding(&plan) < padding(&shuffled));
        // The default multiplier: 64 / 16 = 4 batches per mega-batch.
        let default = plan_epoch(
            &lengths,
            &config(
                4,
                Order::GroupByLength {
                    mega_batch_mult: None,
                },
                false,
            ),
            &mut ChaCha8Rng::seed_from_u64(9),
        )
        .unwrap();
        let by4 = plan_epoch(
            &lengths,
            &config(
                4,
                Order::GroupByLength {
                    mega_batch_mult: Some(4),
                },
                false,
            ),
            &mut ChaCha8Rng::seed_from_u64(9),
        )
        .unwrap();
        assert_eq!(default, by4);
    }

    fn set(clips: Vec<Vec<f32>>, labels: &[&str]) -> AudioSet {
        let examples: Vec<Example> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| Example {
                label: Some((*l).into()),
                ..Example::new(format!("{i}.wav"))
            })
            .collect();
        let vocab = LabelVocab::from_examples(&examples);
        AudioSet::from_parts(examples, clips, &vocab, 16_000).unwrap()
    }

    #[test]
    fn padding_mask_and_normalization() {
        let s = set(vec![vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 3.0]], &["b", "a"]);
        let mut features = FeatureConfig::default();
        features.extractor.padding_value = -7.0;
        let b = collate(&s, &[1, 0], &features, Stage::Eval).unwrap();
        assert_eq!((b.batch_size, b.n_samples), (2, 4));
        assert_eq!(b.lengths, vec![2, 4]);
        assert_eq!(b.labels, vec![0, 1], "sorted labels: a = 0, b = 1");
        assert_eq!(b.indices, vec![1, 0]);
        assert_eq!(b.attention_mask, vec![1, 1, 0, 0, 1, 1, 1, 1]);
        // Hand-computed: [1, 3] has mean 2, variance 1; [1, 2, 3, 4] mean 2.5, var 1.25.
        let s0 = (1.0f64 + 1e-7).sqrt();
        let s1 = (1.25f64 + 1e-7).sqrt();
        let want = [
            -1.0 / s0,
            1.0 / s0,
            -7.0,
            -7.0,
            -1.5 / s1,
            -0.5 / s1,
            0.5 / s1,
            1.5 / s1,
        ];
        for (got, want) in b.input_values.iter().zip(want) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
        // Without normalization the samples pass through and padding is padding_value.
        features.extractor.do_normalize = false;
        let b = collate(&s, &[1, 0], &features, Stage::Eval).unwrap();
        assert_eq!(
            b.input_values,
            vec![1.0, 3.0, -7.0, -7.0, 1.0, 2.0, 3.0, 4.0]
        );

        let t = b.to_tensors(&Device::Cpu, true).unwrap();
        assert_eq!(t.input_values.dims(), [2, 4]);
        assert_eq!(
            t.attention_mask.as_ref().unwrap().to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 0, 0], vec![1; 4]]
        );
        assert_eq!(
            t.labels.as_ref().unwrap().to_vec1::<u32>().unwrap(),
            vec![0, 1]
        );
        assert!(
            b.to_tensors(&Device::Cpu, false)
                .unwrap()
                .attention_mask
                .is_none()
        );

        assert!(collate(&s, &[], &features, Stage::Eval).is_err());
        assert!(collate(&s, &[2], &features, Stage::Eval).is_err());
    }

    /// transformers' `Wav2Vec2FeatureExtractor` on seeded clips, the two ways training uses
    /// it (`export/tests/fixtures/train/gen_feature_extractor.py`).
    #[test]
    fn matches_transformers_feature_extractor() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/train/feature_extractor.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let clips: Vec<Vec<f32>> = doc["clips"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let n = clips.len();
        let examples = (0..n).map(|i| Example::new(format!("{i}.wav"))).collect();
        let s = AudioSet::from_parts(examples, clips, &LabelVocab::default(), 16_000).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 2);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let extractor =
                hearken::features::WaveformConfig::from_json(&case["config"].to_string()).unwrap();
            let max_duration_s = case["max_length"].as_u64().map(|m| m as f64 / 16_000.0);
            let features = FeatureConfig {
                extractor,
                max_duration_s,
                ..FeatureConfig::default()
            };
            let indices: Vec<usize> = (0..n).collect();
            let b = collate(&s, &indices, &features, Stage::Eval).unwrap();
            let want: Vec<f32> = case["input_values"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(floats)
                .collect();
            let mask: Vec<u32> = case["attention_mask"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap() as u32)
                })
                .collect();
            assert_eq!(b.input_values.len(), want.len(), "{name}");
            assert_eq!(b.attention_mask, mask, "{name}");
            let err = b
                .input_values
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "{name}: max |hearken - transformers| = {err}");
        }
    }

    #[test]
    fn cropping_in_training_and_evaluation() {
        let clip: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let s = set(vec![clip.clone(), vec![5.0; 10]], &["a", "a"]);
        let features = FeatureConfig {
            max_duration_s: Some(20.0 / 16_000.0),
            extractor: hearken::features::WaveformConfig {
                do_normalize: false,
                ..Default::default()
            },
            ..FeatureConfig::default()
        };
        let b = collate(&s, &[0, 1], &features, Stage::Eval).unwrap();
        assert_eq!(b.n_samples, 20);
        assert_eq!(
            &b.input_values[..20],
            &clip[..20],
            "evaluation keeps the start"
        );
        assert_eq!(b.lengths, vec![20, 10], "short clips are not cropped");
        let center = FeatureConfig {
            eval_crop: super::super::EvalCrop::Center,
            ..features.clone()
        };
        let b = collate(&s, &[0], &center, Stage::Eval).unwrap();
        assert_eq!(&b.input_values[..], &clip[40..60]);
        // Training windows are random, contiguous and seeded.
        let mut starts = std::collections::BTreeSet::new();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..50 {
            let b = collate(
                &s,
                &[0],
                &features,
                Stage::Train {
                    rng: &mut rng,
                    augment: None,
                },
            )
            .unwrap();
            let start = b.input_values[0] as usize;
            assert_eq!(&b.input_values[..], &clip[start..start + 20]);
            starts.insert(start);
        }
        assert!(starts.len() > 10);
    }

    #[test]
    fn epochs_are_deterministic_and_batches_independent() {
        let clips: Vec<Vec<f32>> = (0..10)
            .map(|i| {
                (0..(50 + 7 * i))
                    .map(|j| ((j * (i + 1)) as f32 * 0.01).sin())
                    .collect()
            })
            .collect();
        let s = set(clips, &["a", "b", "a", "b", "c", "a", "b", "c", "a", "b"]);
        let features = FeatureConfig {
            max_duration_s: Some(60.0 / 16_000.0),
            ..FeatureConfig::default()
        };
        let augment = Augment {
            noise: Some(NoiseAugment {
                min_snr_db: 5.0,
                max_snr_db: 20.0,
                probability: 0.5,
            }),
            ..Augment::default()
        };
        let cfg = config(
            3,
            Order::GroupByLength {
                mega_batch_mult: None,
            },
            false,
        );
        let run = |seed| -> Vec<Batch> {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            Epoch::train(&s, &features, Some(&augment), &cfg, &mut rng)
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let seen: Vec<usize> = a.iter().flat_map(|b| b.indices.clone()).collect();
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert!(a.iter().all(|b| b.n_samples <= 60));
        // Batch 2 alone equals batch 2 of the full pass.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let epoch = Epoch::train(&s, &features, Some(&augment), &cfg, &mut rng).unwrap();
        assert_eq!(epoch.len(), 4);
        assert_eq!(epoch.batch(2).unwrap(), a[2]);
        assert!(epoch.batch(4).is_err());
        // ... and so does a batch rebuilt later from the plan and the batch seed alone.
        let seed = epoch.batch_seed().unwrap();
        let stage = Stage::Train {
            rng: &mut batch_rng(seed, 3),
            augment: Some(&augment),
        };
        let rebuilt = collate(&s, &epoch.plan()[3], &features, stage).unwrap();
        assert_eq!(rebuilt, a[3]);
        assert_eq!(Epoch::eval(&s, &features, 4).unwrap().batch_seed(), None);
        // Evaluation: in order, all of each clip up to the crop, no randomness.
        let e: Vec<Batch> = Epoch::eval(&s, &features, 4)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].indices, vec![0, 1, 2, 3]);
        assert_eq!(e[2].indices, vec![8, 9]);
        assert_eq!(
            e,
            Epoch::eval(&s, &features, 4)
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        );
    }
}
