//! Checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! `OUT/checkpoint-STEP/` holds the task's trainable state (written by the task, by default
//! `model.safetensors`), the optimizer state (`optimizer.safetensors`), the arguments of
//! the run (`training_args.json`) and `trainer_state.json`: the step, the position in the
//! epoch, the random generator's state, the best metric so far and the log history. Field
//! names follow Hugging Face's `TrainerState` where it has one.
//!
//! A checkpoint is written into a hidden temporary folder and renamed into place, so a run
//! killed while saving never leaves a half-written `checkpoint-STEP` to resume from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Tensor, Var};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, candle_err, io_err, read_json};

/// The file the default [`crate::train::Task::save`] writes the trainable variables to.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimizer state in a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The trainer state in a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// The run's arguments in a checkpoint.
pub const ARGS_FILE: &str = "training_args.json";
/// Checkpoint folders are `{CHECKPOINT_PREFIX}{global_step}`.
pub const CHECKPOINT_PREFIX: &str = "checkpoint-";

/// The state of a [`ChaCha8Rng`] as its seed, stream and word position, which restore it
/// exactly (`set_word_pos`), at two points: where the current epoch began (to rebuild the
/// epoch's batch order) and now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed, as 64 hex digits.
    pub seed: String,
    /// The ChaCha stream.
    pub stream: u64,
    /// The word position when the current epoch's batches were drawn.
    pub epoch_start_word_pos: u128,
    /// The word position after the last update.
    pub word_pos: u128,
}

impl RngState {
    /// Captures `rng`, whose current epoch began at `epoch_start_word_pos`.
    pub fn capture(rng: &ChaCha8Rng, epoch_start_word_pos: u128) -> Self {
        let seed = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            seed,
            stream: rng.get_stream(),
            epoch_start_word_pos,
            word_pos: rng.get_word_pos(),
        }
    }

    /// A generator with this seed and stream, at word position `word_pos`.
    pub fn restore(&self, word_pos: u128) -> Result<ChaCha8Rng> {
        let bad = || Error::InvalidInput {
            what: "rng seed in trainer state".into(),
            expected: "64 hex digits".into(),
            got: self.seed.clone(),
        };
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// One line of `metrics.jsonl` and of the log history: `step`, `epoch` and whatever was
/// logged at that step (`loss`, `lr`, `grad_norm`, `eval_*`).
pub type LogEntry = serde_json::Map<String, serde_json::Value>;

/// `trainer_state.json`: where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Updates made.
    pub global_step: usize,
    /// Fractional epochs done (epoch index + micro-batches done / micro-batches per epoch).
    pub epoch: f64,
    /// The epoch in progress, from 0.
    pub epoch_index: usize,
    /// Micro-batches of the epoch in progress already trained on.
    pub micro_batches_done: usize,
    /// Updates the run was planned for.
    pub max_steps: usize,
    /// The random generator that orders batches and drives dropout and masking.
    pub rng: RngState,
    /// The best value of the metric for the best model so far.
    pub best_metric: Option<f64>,
    /// The step of the evaluation that gave [`TrainerState::best_metric`].
    pub best_global_step: Option<usize>,
    /// The best checkpoint saved so far, by that metric.
    pub best_model_checkpoint: Option<PathBuf>,
    /// The metric of [`TrainerState::best_model_checkpoint`].
    pub best_checkpoint_metric: Option<f64>,
    /// Evaluations in a row without improvement (HF `EarlyStoppingCallback`'s counter).
    pub early_stopping_patience_counter: usize,
    /// Sum of the per-update training losses since the last logged loss.
    pub logging_loss_sum: f64,
    /// Updates since the last logged loss.
    pub logging_loss_steps: usize,
    /// Sum of the per-update training losses of the whole run.
    pub total_loss_sum: f64,
    /// Every line written to `metrics.jsonl` so far.
    pub log_history: Vec<LogEntry>,
}

impl TrainerState {
    /// The state of a run that has not started, with its generator at the beginning.
    pub fn new(rng: &ChaCha8Rng) -> Self {
        Self {
            global_step: 0,
            epoch: 0.0,
            epoch_index: 0,
            micro_batches_done: 0,
            max_steps: 0,
            rng: RngState::capture(rng, rng.get_word_pos()),
            best_metric: None,
            best_global_step: None,
            best_model_checkpoint: None,
            best_checkpoint_metric: None,
            early_stopping_patience_counter: 0,
            logging_loss_sum: 0.0,
            logging_loss_steps: 0,
            total_loss_sum: 0.0,
            log_history: Vec::new(),
        }
    }

    /// Reads `dir/trainer_state.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        read_json(&dir.join(STATE_FILE))
    }
}

/// Writes `value` as pretty JSON to `path`.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

/// Writes named variables to a safetensors file.
pub fn save_vars(vars: &[(String, Var)], path: &Path) -> Result<()> {
    let tensors: HashMap<&str, Tensor> = vars
        .iter()
        .map(|(name, var)| (name.as_str(), var.as_detached_tensor()))
        .collect();
    candle_core::safetensors::save(&tensors, path)
        .map_err(candle_err(format!("writing {}", path.display())))
}

/// Sets named variables from a safetensors file written by [`save_vars`]. Every variable
/// must be there with its shape; extra tensors in the file are an error too, since they
/// mean the file belongs to another model.
pub fn load_vars(vars: &[(String, Var)], path: &Path) -> Result<()> {
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let tensors = candle_core::safetensors::load(path, &device)
        .map_err(candle_err(format!("reading {}", path.display())))?;
    if tensors.len() != vars.len() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "{} tensors in the file, {} trainable variables in the task",
                tensors.len(),
                vars.len()
            ),
        });
    }
    set_vars(vars, &tensors)
}

/// Sets every variable from the tensor of its name in `tensors` (converted to the
/// variable's dtype), which must be there with the variable's shape; other tensors are
/// ignored.
pub fn set_vars(vars: &[(String, Var)], tensors: &HashMap<String, Tensor>) -> Result<()> {
    for (name, var) in vars {
        let t = tensors
            .get(name)
            .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
        if t.shape() != var.shape() {
            return Err(Error::ShapeMismatch {
                name: name.clone(),
                expected: var.dims().to_vec(),
                got: t.dims().to_vec(),
            });
        }
        let t = t
            .to_dtype(var.dtype())
            .map_err(candle_err(format!("loading {name}")))?;
        var.set(&t).map_err(candle_err(format!("loading {name}")))?;
    }
    Ok(())
}

/// The folder of the checkpoint at `step`.
pub fn checkpoint_dir(output_dir: &Path, step: usize) -> PathBuf {
    output_dir.join(format!("{CHECKPOINT_PREFIX}{step}"))
}

/// Writes a checkpoint folder atomically: `fill` writes its files into a temporary folder,
/// which is then renamed to `target` (replacing an older one of the same name).
pub(crate) fn write_atomically(
    target: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    fill(&tmp)?;
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(io_err(target))?;
    }
    std::fs::rename(&tmp, target).map_err(io_err(target))
}

/// The checkpoints in `output_dir`, as (step, folder), by step.
pub fn list_checkpoints(output_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(output_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(output_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(output_dir))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CHECKPOINT_PREFIX))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().is_dir() {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest checkpoint in `output_dir`, if any (for `--resume` without a path).
pub fn last_checkpoint(output_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(output_dir)?.pop().map(|(_, p)| p))
}

/// Deletes the oldest checkpoints so that at most `limit` remain besides `best`, which is
/// kept whatever its age (HF's `_rotate_checkpoints`). Returns the folders deleted.
pub fn rotate_checkpoints(
    output_dir: &Path,
    limit: usize,
    best: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    let all: Vec<PathBuf> = list_checkpoints(output_dir)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let is_best = |p: &Path| best.is_some_and(|b| same_dir(b, p));
    let newest = &all[all.len().saturating_sub(limit)..];
    // The newest `limit` stay; when the best is older, it stays too and takes one of their
    // places, except that the newest always stays (HF keeps 2 when the limit is 1).
    let best_is_older = all.iter().any(|p| is_best(p)) && !newest.iter().any(|p| is_best(p));
    let keep: Vec<&PathBuf> = if !best_is_older {
        newest.iter().collect()
    } else {
        let n = limit.saturating_sub(1).max(1);
        let mut keep: Vec<&PathBuf> = all[all.len().saturating_sub(n)..].iter().collect();
        keep.extend(all.iter().filter(|p| is_best(p)));
        keep
    };
    let doomed: Vec<&PathBuf> = all.iter().filter(|p| !keep.contains(p)).collect();
    let mut deleted = Vec::new();
    for p in doomed {
        std::fs::remove_dir_all(p).map_err(io_err(p))?;
        deleted.push(p.clone());
    }
    Ok(deleted)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || a.file_name().is_some() && a.file_name() == b.file_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::RngCore;

    #[test]
    fn train_checkpoint_rng_state_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let start = rng.get_word_pos();
        for _ in 0..13 {
            rng.next_u32();
        }
        let state = RngState::capture(&rng, start);
        let json = serde_json::to_string(&state).unwrap();
        let back: RngState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        let mut again = back.restore(back.word_pos).unwrap();
        let mut from_start = back.restore(back.epoch_start_word_pos).unwrap();
        let want: Vec<u32> = (0..5).map(|_| rng.next_u32()).collect();
        let got: Vec<u32> = (0..5).map(|_| again.next_u32()).collect();
        assert_eq!(got, want);
        let mut fresh = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(from_start.next_u64(), fresh.next_u64());
        let bad = RngState {
            seed: "zz".into(),
            ..state
        };
        assert!(bad.restore(0).is_err());
    }

    #[test]
    fn train_checkpoint_rotation_keeps_last_and_best() {
        let dir = tempfile::tempdir().unwrap();
        for step in [10, 20, 30, 40, 50] {
            std::fs::create_dir(checkpoint_dir(dir.path(), step)).unwrap();
        }
        std::fs::create_dir(dir.path().join("checkpoint-x")).unwrap();
        let best = checkpoint_dir(dir.path(), 20);
        let deleted = rotate_checkpoints(dir.path(), 2, Some(&best)).unwrap();
        assert_eq!(deleted.len(), 3);
        let left: Vec<usize> = list_checkpoints(dir.path())
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(left, vec![20, 50]);
        assert!(dir.path().join("checkpoint-x").exists());
        // Best among the newest: the limit holds the newest ones.
        let deleted = rotate_checkpoints(dir.path(), 1, None).unwrap();
        assert_eq!(deleted, vec![checkpoint_dir(dir.path(), 20)]);
        assert_eq!(
            last_checkpoint(dir.path()).unwrap(),
            Some(checkpoint_dir(dir.path(), 50))
        );
    }

    #[test]
    fn train_checkpoint_vars_round_trip_and_mismatch() {
        let dev = candle_core::Device::Cpu;
        let a = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &dev).unwrap()).unwrap();
        let vars = vec![("a".to_string(), a.clone())];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MODEL_FILE);
        save_vars(&vars, &path).unwrap();
        a.set(&Tensor::new(&[0f32, 0.0], &dev).unwrap()).unwrap();
        load_vars(&vars, &path).unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        let other = Var::from_tensor(&Tensor::new(&[1f32, 2.0, 3.0], &dev).unwrap()).unwrap();
        assert!(load_vars(&[("a".to_string(), other.clone())], &path).is_err());
        assert!(load_vars(&[("b".to_string(), other)], &path).is_err());
    }
}
