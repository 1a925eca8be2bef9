use std::collections::VecDeque;

use super::*;
use crate::train::checkpoint::{checkpoint_dir, list_checkpoints};
use crate::train::plot::read_metrics;
use crate::train::toy::Toy;

fn args(dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        learning_rate: 1e-2,
        logging_steps: 1,
        save_steps: None,
        disable_tqdm: true,
        ..TrainingArguments::default()
    }
}

fn losses(dir: &Path) -> Vec<f64> {
    read_metrics(&dir.join(METRICS_FILE))
        .unwrap()
        .iter()
        .filter_map(|e| e.get("loss").and_then(|v| v.as_f64()))
        .collect()
}

fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs() / (*y as f64).abs().max(1e-3))
        .fold(0.0, f64::max)
}

#[test]
fn train_trainer_loss_decreases_and_writes_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(0, 96, 48, 8, 0.0);
    let before = toy.evaluate().unwrap();
    let a = TrainingArguments {
        num_train_epochs: 15.0,
        learning_rate: 3e-2,
        warmup_ratio: 0.1,
        weight_decay: 0.01,
        ..args(dir.path())
    };
    let out = Trainer::new(a).unwrap().train(&mut toy).unwrap();
    assert_eq!(out.global_step, 15 * 12);
    let l = losses(dir.path());
    assert_eq!(l.len(), 180);
    let first: f64 = l[..12].iter().sum::<f64>() / 12.0;
    let last: f64 = l[l.len() - 12..].iter().sum::<f64>() / 12.0;
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(out.last_eval["eval_loss"] < 0.6 * before["loss"]);
    assert!(out.last_eval["eval_accuracy"] > 0.8, "{:?}", out.last_eval);
    assert!(!out.stopped_early);
    for f in [
        "model.safetensors",
        "trainer_state.json",
        "training_args.json",
        "loss.png",
        "metrics.png",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    // The default save_steps is off here; nothing warned.
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

/// Two micro-batches of 2 per update equal one batch of 4 when the loss is a mean.
#[test]
fn train_trainer_accumulation_equals_full_batch() {
    let run = |batch_size: usize, accumulation: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut toy = Toy::new(3, 24, 8, batch_size, 0.0);
        let a = TrainingArguments {
            max_steps: Some(9),
            gradient_accumulation_steps: accumulation,
            optim: Optim::Sgd,
            sgd_momentum: 0.9,
            learning_rate: 0.2,
            ..args(dir.path())
        };
        Trainer::new(a).unwrap().train(&mut toy).unwrap();
        (toy.weights(), losses(dir.path()))
    };
    let (w_acc, l_acc) = run(2, 2);
    let (w_full, l_full) = run(4, 1);
    let rel = max_rel(&w_acc, &w_full);
    assert!(rel < 1e-6, "weights differ by {rel}");
    assert_eq!(l_acc.len(), 9);
    for (a, b) in l_acc.iter().zip(&l_full) {
        assert!((a - b).abs() <= 1e-6 * b.abs(), "{a} vs {b}");
    }
    // And the runs did move the weights.
    assert!(max_rel(&w_full, &Toy::new(3, 24, 8, 4, 0.0).weights()) > 1e-3);
}

/// metrics.jsonl: with unequal micro-batches (4 and 2) in one update, the logged loss is
/// the mean of the two micro-batch means (HF's scaling), not the mean over the 6 samples.
#[test]
fn train_trainer_metrics_jsonl_contents() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(5, 6, 6, 4, 0.0);
    let a = TrainingArguments {
        num_train_epochs: 2.0,
        gradient_accumulation_steps: 2,
        shuffle: false,
        lr_scheduler_type: SchedulerType::Constant,
        ..args(dir.path())
    };
    let expected_first = (toy.clean_loss(&[0, 1, 2, 3]) + toy.clean_loss(&[4, 5])) / 2.0;
    let sample_mean = toy.clean_loss(&[0, 1, 2, 3, 4, 5]);
    let out = Trainer::new(a).unwrap().train(&mut toy).unwrap();
    assert_eq!(out.global_step, 2);
    let lines = read_metrics(&dir.path().join(METRICS_FILE)).unwrap();
    assert_eq!(lines.len(), 2);
    let first = &lines[0];
    assert_eq!(first["step"], 1);
    assert_eq!(first["epoch"].as_f64().unwrap(), 1.0);
    let loss = first["loss"].as_f64().unwrap();
    assert!(
        (loss - expected_first).abs() < 1e-6,
        "{loss} vs {expected_first}"
    );
    assert!(
        (loss - sample_mean).abs() > 1e-4,
        "test needs unequal halves"
    );
    assert_eq!(first["lr"].as_f64().unwrap(), 1e-2);
    assert!(first["grad_norm"].as_f64().unwrap() > 0.0);
    // Each epoch end evaluates.
    for line in &lines {
        for k in ["eval_loss", "eval_accuracy", "eval_f1"] {
            assert!(line.contains_key(k), "{k} missing in {line:?}");
        }
    }
    assert_eq!(lines[1]["step"], 2);
    assert_eq!(lines[1]["epoch"].as_f64().unwrap(), 2.0);
}

#[test]
fn train_trainer_clips_the_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(1, 16, 4, 16, 0.0);
    let before = toy.weights();
    let a = TrainingArguments {
        max_steps: Some(1),
        optim: Optim::Sgd,
        learning_rate: 1.0,
        max_grad_norm: 1e-3,
        lr_scheduler_type: SchedulerType::Constant,
        ..args(dir.path())
    };
    Trainer::new(a).unwrap().train(&mut toy).unwrap();
    let moved: f64 = toy
        .weights()
        .iter()
        .zip(&before)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    // Plain SGD with lr 1 moves the weights by the clipped gradient, of norm 1e-3.
    assert!((moved - 1e-3).abs() < 1e-6, "moved {moved}");
    let logged = losses(dir.path());
    assert_eq!(logged.len(), 1);
    let line = &read_metrics(&dir.path().join(METRICS_FILE)).unwrap()[0];
    assert!(
        line["grad_norm"].as_f64().unwrap() > 1e-2,
        "the gradient was not clipped"
    );
}

/// A task whose evaluations return a scripted metric.
struct Scripted {
    toy: Toy,
    metric: VecDeque<f64>,
}

impl Task for Scripted {
    type Batch = Vec<usize>;
    fn train_batches(&mut self, e: usize, rng: Option<&mut ChaCha8Rng>) -> Result<Vec<Vec<usize>>> {
        self.toy.train_batches(e, rng)
    }
    fn loss(&mut self, b: &Vec<usize>, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        self.toy.loss(b, rng)
    }
    fn evaluate(&mut self) -> Result<Metrics> {
        let v = self.metric.pop_front().unwrap_or(0.0);
        Ok(Metrics::from([("accuracy".to_string(), v)]))
    }
    fn trainable(&self) -> Vec<(String, Var)> {
        self.toy.trainable()
    }
}

#[test]
fn train_trainer_early_stopping_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Scripted {
        toy: Toy::new(0, 64, 4, 4, 0.0),
        metric: VecDeque::from([0.5, 0.6, 0.55, 0.6, 0.9, 0.95]),
    };
    let a = TrainingArguments {
        max_steps: Some(16),
        eval_steps: Some(1),
        metric_for_best_model: Some("accuracy".into()),
        early_stopping_patience: Some(2),
        ..args(dir.path())
    };
    let out = Trainer::new(a).unwrap().train(&mut task).unwrap();
    // 0.6 at step 2 is the best; 0.55 and 0.6 (not better) exhaust a patience of 2.
    assert!(out.stopped_early);
    assert_eq!(out.global_step, 4);
    assert_eq!(out.best_metric, Some(0.6));
    let state = TrainerState::load(dir.path()).unwrap();
    assert_eq!(state.best_global_step, Some(2));
    assert_eq!(state.early_stopping_patience_counter, 2);
}

#[test]
fn train_trainer_missing_metric_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(0, 8, 4, 4, 0.0);
    let a = TrainingArguments {
        max_steps: Some(2),
        metric_for_best_model: Some("wer".into()),
        ..args(dir.path())
    };
    let err = Trainer::new(a).unwrap().train(&mut toy).unwrap_err();
    assert!(err.to_string().contains("eval_wer"), "{err}");
}

#[test]
fn train_trainer_load_best_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Scripted {
        toy: Toy::new(0, 32, 4, 4, 0.0),
        // Evaluations at steps 2, 4, 6, 8 (eval_steps) and 8 is also the epoch end.
        metric: VecDeque::from([0.7, 0.9, 0.8, 0.85]),
    };
    let a = TrainingArguments {
        max_steps: Some(8),
        eval_steps: Some(2),
        save_steps: Some(2),
        save_total_limit: Some(1),
        load_best_model_at_end: true,
        metric_for_best_model: Some("accuracy".into()),
        ..args(dir.path())
    };
    let out = Trainer::new(a).unwrap().train(&mut task).unwrap();
    let best = checkpoint_dir(dir.path(), 4);
    assert_eq!(out.best_model_checkpoint, Some(best.clone()));
    assert_eq!(out.best_metric, Some(0.9));
    let kept: Vec<usize> = list_checkpoints(dir.path())
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(kept, vec![4, 8]);
    // The final model is the best checkpoint's.
    let mut from_best = Toy::new(9, 32, 4, 4, 0.0);
    from_best.load(&best).unwrap();
    assert_eq!(task.toy.weights(), from_best.weights());
    for f in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, ARGS_FILE] {
        assert!(best.join(f).exists(), "{f} missing");
    }
    let state = TrainerState::load(&best).unwrap();
    assert_eq!(state.global_step, 4);
    assert_eq!(state.log_history.len(), 4);
}

#[test]
fn train_trainer_load_best_keeps_the_last_weights_when_they_are_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = Scripted {
        toy: Toy::new(0, 32, 4, 4, 0.0),
        // Evaluations at steps 2, 4, 6 and at the last, 7, which no checkpoint is saved at.
        metric: VecDeque::from([0.7, 0.9, 0.8, 0.95]),
    };
    let a = TrainingArguments {
        max_steps: Some(7),
        eval_steps: Some(2),
        save_steps: Some(2),
        load_best_model_at_end: true,
        metric_for_best_model: Some("accuracy".into()),
        ..args(dir.path())
    };
    let out = Trainer::new(a).unwrap().train(&mut task).unwrap();
    assert_eq!(out.best_metric, Some(0.95));
    assert_eq!(out.global_step, 7);
    // checkpoint-4 was the best when it was saved; the last weights beat it and stay.
    let mut older = Toy::new(9, 32, 4, 4, 0.0);
    older.load(&checkpoint_dir(dir.path(), 4)).unwrap();
    assert_ne!(task.toy.weights(), older.weights());
    let mut saved = Toy::new(9, 32, 4, 4, 0.0);
    saved.load(dir.path()).unwrap();
    assert_eq!(task.toy.weights(), saved.weights());
}

/// A task that fails after a number of loss calls: a run killed mid-way.
struct Crashing {
    toy: Toy,
    calls_left: usize,
}

impl Task for Crashing {
    type Batch = Vec<usize>;
    fn train_batches(&mut self, e: usize, rng: Option<&mut ChaCha8Rng>) -> Result<Vec<Vec<usize>>> {
        self.toy.train_batches(e, rng)
    }
    fn loss(&mut self, b: &Vec<usize>, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        if self.calls_left == 0 {
            return Err(invalid("the run", "to go on", "a simulated crash"));
        }
        self.calls_left -= 1;
        self.toy.loss(b, rng)
    }
    fn evaluate(&mut self) -> Result<Metrics> {
        self.toy.evaluate()
    }
    fn trainable(&self) -> Vec<(String, Var)> {
        self.toy.trainable()
    }
}

/// Resuming from a checkpoint continues exactly: the same losses, bit for bit, and the
/// same final weights, with shuffling, dropout, accumulation, clipping, weight decay and
/// a warmup + cosine schedule all in play, and the checkpoint in the middle of an epoch.
#[test]
fn train_trainer_resume_is_exact() {
    let make_args = |dir: &Path| TrainingArguments {
        max_steps: Some(10),
        gradient_accumulation_steps: 2,
        lr_scheduler_type: SchedulerType::Cosine,
        warmup_steps: 2,
        weight_decay: 0.1,
        max_grad_norm: 0.5,
        save_steps: Some(5),
        eval_steps: Some(3),
        seed: 11,
        ..args(dir)
    };
    // 6 micro-batches per epoch: 3 updates; step 5 is in the middle of the second epoch.
    let toy = || Toy::new(2, 24, 8, 4, 0.2);

    let full_dir = tempfile::tempdir().unwrap();
    let mut full = toy();
    Trainer::new(make_args(full_dir.path()))
        .unwrap()
        .train(&mut full)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut crashing = Crashing {
        toy: toy(),
        calls_left: 13,
    };
    assert!(
        Trainer::new(make_args(dir.path()))
            .unwrap()
            .train(&mut crashing)
            .is_err()
    );
    let ckpt = checkpoint_dir(dir.path(), 5);
    let state = TrainerState::load(&ckpt).unwrap();
    assert_eq!((state.epoch_index, state.micro_batches_done), (1, 4));
    // The crashed run logged step 6 before dying; the resume must not keep it twice.
    assert_eq!(losses(dir.path()).len(), 6);

    let mut resumed = toy();
    let a = TrainingArguments {
        resume_from_checkpoint: Some(ckpt),
        ..make_args(dir.path())
    };
    let out = Trainer::new(a).unwrap().train(&mut resumed).unwrap();
    assert_eq!(out.global_step, 10);

    let want = losses(full_dir.path());
    let got = losses(dir.path());
    assert_eq!(want.len(), 10);
    assert_eq!(got, want, "loss trajectories differ");
    assert_eq!(resumed.weights(), full.weights());
    let all = |d: &Path| read_metrics(&d.join(METRICS_FILE)).unwrap();
    assert_eq!(all(dir.path()), all(full_dir.path()));
}

#[test]
fn train_trainer_warns_when_save_steps_exceed_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(0, 8, 4, 4, 0.0);
    let a = TrainingArguments {
        max_steps: Some(3),
        save_steps: Some(500),
        ..args(dir.path())
    };
    let trainer = Trainer::new(a).unwrap();
    let out = trainer.train(&mut toy).unwrap();
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("save_steps (500) exceeds the total number of training steps (3)"),
        "{:?}",
        out.warnings
    );
    assert!(list_checkpoints(dir.path()).unwrap().is_empty());
    assert!(trainer.warnings(500).is_empty());
}

#[test]
fn train_trainer_rejects_bad_arguments() {
    let base = TrainingArguments::default();
    let bad = [
        TrainingArguments {
            gradient_accumulation_steps: 0,
            ..base.clone()
        },
        TrainingArguments {
            save_steps: Some(0),
            ..base.clone()
        },
        TrainingArguments {
            warmup_ratio: 1.5,
            ..base.clone()
        },
        TrainingArguments {
            load_best_model_at_end: true,
            save_steps: Some(5),
            eval_steps: Some(2),
            ..base.clone()
        },
        TrainingArguments {
            optim: Optim::AdamwTorch,
            adam_beta1: 1.0,
            ..base.clone()
        },
    ];
    for a in bad {
        assert!(Trainer::new(a.clone()).is_err(), "{a:?}");
    }
    assert!(Trainer::new(base).is_ok());
}

#[test]
fn train_trainer_arguments_deserialize_with_hf_names() {
    let a: TrainingArguments = serde_json::from_str(
        r#"{"output_dir": "out", "learning_rate": 3e-5, "lr_scheduler_type": "cosine",
            "warmup_ratio": 0.1, "optim": "sgd", "eval_steps": 100, "max_steps": 1000}"#,
    )
    .unwrap();
    assert_eq!(a.lr_scheduler_type, SchedulerType::Cosine);
    assert_eq!(a.optim, Optim::Sgd);
    assert_eq!(a.eval_steps, Some(100));
    assert_eq!(a.gradient_accumulation_steps, 1);
    assert_eq!(a.max_grad_norm, 1.0);
    assert_eq!(a.save_steps, Some(500));
}

#[test]
fn update_time_leaves_out_the_warmup() {
    assert_eq!(UpdateTime::of(&[1.0; 5]), None);
    let t = UpdateTime::of(&[9.0, 9.0, 9.0, 9.0, 9.0, 0.3, 0.1, 0.2, 0.6]).unwrap();
    assert_eq!(t.updates, 4);
    assert!((t.mean_s - 0.3).abs() < 1e-12);
    assert!((t.p50_s - 0.25).abs() < 1e-12);
    let odd = UpdateTime::of(&[9.0, 9.0, 9.0, 9.0, 9.0, 0.3, 0.1, 0.2]).unwrap();
    assert!((odd.p50_s - 0.2).abs() < 1e-12);
}

/// Building batches ahead on another thread changes nothing: with dropout (drawn from the
/// trainer's generator), shuffling and accumulation, the losses and the final weights
/// equal those of building each batch in place, bit for bit.
#[test]
fn prefetched_batches_train_exactly_as_batches_built_in_place() {
    let run = |prefetch: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut toy = Toy::new(7, 40, 8, 4, 0.2);
        toy.prefetch = prefetch;
        assert_eq!(toy.loader().is_some(), prefetch);
        let a = TrainingArguments {
            num_train_epochs: 3.0,
            learning_rate: 1e-2,
            gradient_accumulation_steps: 3,
            logging_steps: 1,
            ..args(dir.path())
        };
        Trainer::new(a).unwrap().train(&mut toy).unwrap();
        (losses(dir.path()), toy.weights())
    };
    let (in_place, w_in_place) = run(false);
    let (prefetched, w_prefetched) = run(true);
    assert_eq!(
        in_place.len(),
        12,
        "3 epochs of 4 updates (10 batches, 3 per update)"
    );
    assert_eq!(prefetched, in_place);
    assert_eq!(w_prefetched, w_in_place);
}
