//! A toy task for the trainer's tests: a two-layer classifier (4 -> 8 -> 3, ReLU, dropout)
//! on seeded synthetic data whose labels come from a random linear teacher.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::error::{Result, candle_err};
use crate::train::metrics::ConfusionMatrix;
use crate::train::trainer::{Loaded, Loader, Metrics, Task};

const N_IN: usize = 4;
const N_HIDDEN: usize = 8;
const N_CLASSES: usize = 3;

/// The toy task. Its weights are drawn from `seed`, so two toys with one seed start equal.
pub(crate) struct Toy {
    pub w1: Var,
    pub b1: Var,
    pub w2: Var,
    pub b2: Var,
    x_train: Tensor,
    y_train: Vec<u32>,
    x_eval: Tensor,
    y_eval: Vec<u32>,
    pub batch_size: usize,
    pub dropout: f32,
    /// Build batches through [`Task::loader`] (on the trainer's prefetch thread).
    pub prefetch: bool,
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

fn var(values: Vec<f32>, shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn data(rng: &mut ChaCha8Rng, teacher: &[f32], n: usize) -> (Tensor, Vec<u32>) {
    let x = uniform(rng, n * N_IN, 1.0);
    let y = x
        .chunks(N_IN)
        .map(|row| {
            let scores: Vec<f32> = teacher
                .chunks(N_IN)
                .map(|w| w.iter().zip(row).map(|(a, b)| a * b).sum())
                .collect();
            (0..N_CLASSES)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap() as u32
        })
        .collect();
    (Tensor::from_vec(x, (n, N_IN), &Device::Cpu).unwrap(), y)
}

impl Toy {
    pub fn new(seed: u64, n_train: usize, n_eval: usize, batch_size: usize, dropout: f32) -> Self {
        let mut data_rng = ChaCha8Rng::seed_from_u64(1234);
        let teacher = uniform(&mut data_rng, N_CLASSES * N_IN, 1.0);
        let (x_train, y_train) = data(&mut data_rng, &teacher, n_train);
        let (x_eval, y_eval) = data(&mut data_rng, &teacher, n_eval);
        let mut init = ChaCha8Rng::seed_from_u64(seed);
        Self {
            w1: var(uniform(&mut init, N_HIDDEN * N_IN, 0.5), &[N_HIDDEN, N_IN]),
            b1: var(uniform(&mut init, N_HIDDEN, 0.1), &[N_HIDDEN]),
            w2: var(
                uniform(&mut init, N_CLASSES * N_HIDDEN, 0.5),
                &[N_CLASSES, N_HIDDEN],
            ),
            b2: var(uniform(&mut init, N_CLASSES, 0.1), &[N_CLASSES]),
            prefetch: false,
            x_train,
            y_train,
            x_eval,
            y_eval,
            batch_size,
            dropout,
        }
    }

    /// logits: (n, 3) for x: (n, 4); dropout on the hidden layer when `rng` is given.
    fn forward(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> candle_core::Result<Tensor> {
        let h = x
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        let h = match rng {
            Some(rng) if self.dropout > 0.0 => {
                let keep = 1.0 / (1.0 - self.dropout);
                let mask: Vec<f32> = (0..h.elem_count())
                    .map(|_| {
                        if rng.random::<f32>() < self.dropout {
                            0.0
                        } else {
                            keep
                        }
                    })
                    .collect();
                h.mul(&Tensor::from_vec(mask, h.shape(), h.device())?)?
            }
            _ => h,
        };
        h.matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())
    }

    fn batch(&self, idx: &[usize]) -> candle_core::Result<(Tensor, Tensor)> {
        let ids = Tensor::from_vec(
            idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            idx.len(),
            &Device::Cpu,
        )?;
        let x = self.x_train.index_select(&ids, 0)?;
        let y: Vec<u32> = idx.iter().map(|&i| self.y_train[i]).collect();
        Ok((x, Tensor::from_vec(y, idx.len(), &Device::Cpu)?))
    }

    /// The mean loss on the training samples `idx` without dropout.
    pub fn clean_loss(&self, idx: &[usize]) -> f64 {
        let (x, y) = self.batch(idx).unwrap();
        let logits = self.forward(&x, None).unwrap();
        candle_nn::loss::cross_entropy(&logits, &y)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    }

    /// All weights, flattened, in `trainable` order.
    pub fn weights(&self) -> Vec<f32> {
        self.trainable()
            .iter()
            .flat_map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    }
}

impl Task for Toy {
    type Batch = Vec<usize>;

    fn train_batches(
        &mut self,
        _epoch: usize,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Vec<Vec<usize>>> {
        let mut idx: Vec<usize> = (0..self.y_train.len()).collect();
        if let Some(rng) = rng {
            idx.shuffle(rng);
        }
        Ok(idx.chunks(self.batch_size).map(<[usize]>::to_vec).collect())
    }

    fn loss(&mut self, batch: &Vec<usize>, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let (x, y) = self.batch(batch).map_err(candle_err("toy batch"))?;
        let logits = self
            .forward(&x, Some(rng))
            .map_err(candle_err("toy forward"))?;
        candle_nn::loss::cross_entropy(&logits, &y).map_err(candle_err("toy loss"))
    }

    fn loader(&self) -> Option<Loader<Vec<usize>>> {
        if !self.prefetch {
            return None;
        }
        let x_train = self.x_train.clone();
        let y_train = self.y_train.clone();
        Some(Arc::new(move |batch: &Vec<usize>| {
            let ids = Tensor::from_vec(
                batch.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                batch.len(),
                &Device::Cpu,
            )
            .and_then(|ids| x_train.index_select(&ids, 0))
            .map_err(candle_err("toy batch"))?;
            let y: Vec<u32> = batch.iter().map(|&i| y_train[i]).collect();
            Ok(Box::new((ids, y)) as Loaded)
        }))
    }

    fn loss_loaded(
        &mut self,
        batch: &Vec<usize>,
        loaded: Loaded,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        let Ok(inputs) = loaded.downcast::<(Tensor, Vec<u32>)>() else {
            return self.loss(batch, rng);
        };
        let (x, y) = *inputs;
        let n = y.len();
        let y = Tensor::from_vec(y, n, &Device::Cpu).map_err(candle_err("toy batch"))?;
        let logits = self
            .forward(&x, Some(rng))
            .map_err(candle_err("toy forward"))?;
        candle_nn::loss::cross_entropy(&logits, &y).map_err(candle_err("toy loss"))
    }

    fn evaluate(&mut self) -> Result<Metrics> {
        let logits = self
            .forward(&self.x_eval, None)
            .map_err(candle_err("toy eval"))?;
        let y = Tensor::from_vec(self.y_eval.clone(), self.y_eval.len(), &Device::Cpu)
            .map_err(candle_err("toy eval"))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)
            .and_then(|l| l.to_dtype(DType::F64))
            .and_then(|l| l.to_scalar::<f64>())
            .map_err(candle_err("toy eval"))?;
        let preds: Vec<usize> = logits
            .argmax(1)
            .and_then(|p| p.to_vec1::<u32>())
            .map_err(candle_err("toy eval"))?
            .into_iter()
            .map(|p| p as usize)
            .collect();
        let refs: Vec<usize> = self.y_eval.iter().map(|&y| y as usize).collect();
        let cm = ConfusionMatrix::new(N_CLASSES, &refs, &preds)?;
        Ok(Metrics::from([
            ("loss".to_string(), loss),
            ("accuracy".to_string(), cm.accuracy()),
            ("f1".to_string(), cm.macro_f1()),
        ]))
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        vec![
            ("fc1.weight".into(), self.w1.clone()),
            ("fc1.bias".into(), self.b1.clone()),
            ("fc2.weight".into(), self.w2.clone()),
            ("fc2.bias".into(), self.b2.clone()),
        ]
    }
}
