//! `hearken-export train classify` end to end: per-step training losses against a plain
//! PyTorch / transformers loop (`tests/fixtures/train/gen_classify_steps.py`), a run with
//! evaluation and `--export` whose ONNX model the hearken runtime classifies with, an exact
//! resume, the errors a user meets first, and a smoke run on the Free Spoken Digit Dataset
//! when it is present.
//!
//! Every run is a few updates of a 26k-parameter model on eight short clips: the file takes
//! seconds in release mode (`cargo test --release -p hearken-export --test train_classify`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use hearken::engine::{EngineChoice, EngineOptions};
use hearken::model::classify::ClassifyOptions;
use hearken_export::wav2vec2::load_dir;
use hearken_export::wav2vec2::model::Wav2Vec2Model;

/// Largest accepted relative difference between a step's training loss and PyTorch's.
const LOSS_TOLERANCE: f64 = 1e-3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/classify")
}

fn manifest() -> String {
    fixtures().join("manifest.jsonl").display().to_string()
}

fn init() -> String {
    fixtures().join("init").display().to_string()
}

/// Runs `hearken-export train classify` with `args`.
fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearken-export"))
        .args(["train", "classify", "--no-progress"])
        .args(args)
        .output()
        .expect("running hearken-export")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and requires success; returns stdout.
fn train_ok(args: &[&str]) -> String {
    let out = train(args);
    assert!(
        out.status.success(),
        "train classify {args:?} failed:\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs and requires a failure whose message contains every one of `needles`, without a
/// panic.
fn train_err(args: &[&str], needles: &[&str]) {
    let out = train(args);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: no `{n}` in:\n{stderr}");
    }
    println!("{}", stderr.trim());
}

/// `metrics.jsonl` of a run, one JSON object per line.
fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The logged training losses, by step.
fn losses(out: &Path) -> Vec<(u64, f64)> {
    metrics(out)
        .iter()
        .filter_map(|m| Some((m["step"].as_u64()?, m.get("loss")?.as_f64()?)))
        .collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(serde::Deserialize)]
struct Run {
    name: String,
    batch_size: usize,
    grad_accum: usize,
    lr: f64,
    weight_decay: f64,
    max_grad_norm: f64,
    train_all: bool,
    steps: usize,
    losses: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Steps {
    runs: Vec<Run>,
}

#[test]
fn losses_match_pytorch_step_for_step() {
    let steps: Steps = serde_json::from_value(read_json(&fixtures().join("steps.json"))).unwrap();
    assert_eq!(steps.runs.len(), 3);
    let tmp = tempfile::tempdir().unwrap();
    let (m, i) = (manifest(), init());
    let mut worst = 0f64;
    // Whole batches, and batches split into data-parallel shards (3: uneven parts).
    for (run, shards) in steps.runs.iter().flat_map(|r| [(r, "1"), (r, "3")]) {
        let out = tmp.path().join(format!("{}-shards{shards}", run.name));
        let (out_s, bs, accum, lr, wd, clip, n) = (
            out.display().to_string(),
            run.batch_size.to_string(),
            run.grad_accum.to_string(),
            run.lr.to_string(),
            run.weight_decay.to_string(),
            run.max_grad_norm.to_string(),
            run.steps.to_string(),
        );
        let mut args = vec![
            "--data",
            &m,
            "--init",
            &i,
            "--out",
            &out_s,
            "--no-shuffle",
            "--lr-schedule",
            "constant",
            "--log-every",
            "1",
            "--batch-size",
            &bs,
            "--grad-accum",
            &accum,
            "--lr",
            &lr,
            "--weight-decay",
            &wd,
            "--max-grad-norm",
            &clip,
            "--max-steps",
            &n,
            "--threads",
            "2",
            "--shards",
            shards,
        ];
        if run.train_all {
            args.push("--train-all");
        }
        train_ok(&args);
        let got = losses(&out);
        assert_eq!(got.len(), run.steps, "{}: {got:?}", run.name);
        let errors: Vec<f64> = got
            .iter()
            .zip(&run.losses)
            .map(|((_, ours), theirs)| (ours - theirs).abs() / theirs.abs())
            .collect();
        println!(
            "{:14} shards {shards}: relative loss error per step: {}",
            run.name,
            errors
                .iter()
                .map(|e| format!("{e:.1e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (k, e) in errors.iter().enumerate() {
            assert!(
                *e <= LOSS_TOLERANCE,
                "{} (shards {shards}) step {}: {} vs PyTorch {} ({e:.1e})",
                run.name,
                k + 1,
                got[k].1,
                run.losses[k]
            );
        }
        worst = worst.max(errors.iter().copied().fold(0.0, f64::max));
    }
    println!("worst relative loss error {worst:.1e} (tolerance {LOSS_TOLERANCE:.0e})");
}

/// The candle model's softmax over `clip` (16 kHz, normalized as the extractor does).
fn candle_probs(model_dir: &Path, clip: &[f32]) -> Vec<f32> {
    let model = Wav2Vec2Model::new(&load_dir(model_dir).unwrap()).unwrap();
    let mut x = clip.to_vec();
    hearken::features::zero_mean_unit_var_batch(&mut x, &[clip.len()], 0.0).unwrap();
    let input = Tensor::from_vec(x, (1, clip.len()), &Device::Cpu).unwrap();
    let logits: Vec<f32> = model
        .forward(&input, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let max = logits.iter().fold(f32::MIN, |m, &v| m.max(v));
    let e: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

#[test]
fn cli_trains_evaluates_exports_and_the_runtime_classifies() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.display().to_string();
    let stdout = train_ok(&[
        "--data",
        &manifest(),
        "--eval-data",
        &manifest(),
        "--init",
        &init(),
        "--out",
        &out_s,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--log-every",
        "1",
        "--metric-for-best-model",
        "accuracy",
        "--export",
    ]);
    println!("{stdout}");
    assert!(
        stdout.contains("trained 4 updates (2.00 epochs)"),
        "{stdout}"
    );
    assert!(stdout.contains("best eval_accuracy"), "{stdout}");
    assert!(stdout.contains("eval: 8 clips, accuracy"), "{stdout}");

    // A Hugging Face checkpoint with its labels, as transformers loads it.
    let config = read_json(&out.join("config.json"));
    assert_eq!(
        config["architectures"][0],
        "Wav2Vec2ForSequenceClassification"
    );
    assert_eq!(config["id2label"]["0"], "noise");
    assert_eq!(config["label2id"]["chirp"], 2);
    for f in [
        "model.safetensors",
        "preprocessor_config.json",
        "trainer_state.json",
        "loss.png",
        "metrics.png",
        "checkpoint-2/model.safetensors",
        "checkpoint-4/optimizer.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Evaluated at both epoch ends, with every metric.
    let evals: Vec<u64> = metrics(&out)
        .iter()
        .filter(|m| m.get("eval_f1").is_some())
        .map(|m| {
            assert!(m["eval_accuracy"].is_f64() && m["eval_loss"].is_f64());
            m["step"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(evals, [2, 4]);
    let report = read_json(&out.join("eval_report.json"));
    let eval = &report["eval"];
    assert_eq!(eval["labels"], serde_json::json!(["noise", "hum", "chirp"]));
    let counts: u64 = eval["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
        .sum();
    assert_eq!(counts, 8);
    assert_eq!(eval["per_class"][1]["support"], 3);

    // The export runs in the runtime straight away, and agrees with the checkpoint.
    let onnx = out.join("onnx");
    assert!(onnx.join("model.onnx").is_file());
    let model = hearken::model::open(&onnx, &EngineOptions::new(EngineChoice::Tract)).unwrap();
    let wav = fixtures().join("audio/a1.wav");
    let pcm = hearken::audio::load(&wav).unwrap();
    let labels = model
        .classify(&pcm.samples, &ClassifyOptions::default())
        .unwrap();
    let want = candle_probs(&out, &pcm.samples);
    println!("runtime {:?}, candle {want:?}", labels.probs);
    assert_eq!(labels.names, ["noise", "hum", "chirp"]);
    assert_eq!(labels.probs.len(), want.len());
    for (got, want) in labels.probs.iter().zip(&want) {
        assert!((got - want).abs() < 1e-4, "{:?} vs {want}", labels.probs);
    }
}

#[test]
fn cli_resume_continues_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    // Shuffled, with dropout and time masking on, so that the resumed run must restore
    // the generator as well as the weights and the optimizer.
    let common = |out: &Path, steps: &str, extra: &[&str]| {
        let out = out.display().to_string();
        let mut args: Vec<String> = [
            "--data",
            &manifest(),
            "--init",
            &init(),
            "--out",
            &out,
            "--batch-size",
            "3",
            "--lr",
            "1e-2",
            "--lr-schedule",
            "constant",
            "--log-every",
            "1",
            "--save-steps",
            "2",
            "--override",
            "hidden_dropout=0.1",
            "--override",
            "mask_time_prob=0.3",
            "--override",
            "mask_time_length=2",
            "--max-steps",
            steps,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let whole = tmp.path().join("whole");
    let a = common(&whole, "6", &[]);
    train_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());

    let split = tmp.path().join("split");
    let a = common(&split, "4", &[]);
    train_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // A fresh run in a folder with checkpoints is refused ...
    train_err(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            "holds the output of an earlier run (newest checkpoint:",
            "--resume-from-checkpoint latest",
        ],
    );
    // ... and `latest` continues from checkpoint-4.
    let a = common(&split, "6", &["--resume-from-checkpoint", "latest"]);
    train_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());

    let (w, s) = (losses(&whole), losses(&split));
    println!("uninterrupted {w:?}\nresumed       {s:?}");
    assert_eq!(w.len(), 6);
    assert_eq!(w, s, "the resumed run's losses differ");
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(split.join("model.safetensors")).unwrap(),
        "the resumed run's final weights differ"
    );
}

#[test]
fn cli_other_inits_new_heads_and_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let w2v = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2");
    let m = manifest();
    for (name, init, extra) in [
        // A classifier of other labels with its head replaced; a CTC model given one.
        (
            "new-head",
            w2v.join("wav2vec2-cls").display().to_string(),
            &["--new-head", "--head-only"][..],
        ),
        (
            "from-ctc",
            w2v.join("hubert-ctc").display().to_string(),
            &["--unfreeze-top", "1"][..],
        ),
        (
            "scratch",
            "scratch".to_string(),
            &["--config", "tiny", "--family", "wav2vec2"][..],
        ),
    ] {
        let out = tmp.path().join(name).display().to_string();
        let mut args = vec![
            "--data",
            &m,
            "--eval-ratio",
            "0.25",
            "--init",
            init.as_str(),
            "--out",
            &out,
            "--max-steps",
            "2",
            "--batch-size",
            "4",
        ];
        args.extend_from_slice(extra);
        let stdout = train_ok(&args);
        println!("{name}: {stdout}");
        let config = read_json(&Path::new(&out).join("config.json"));
        let labels: Vec<&str> = (0..3)
            .map(|i| config["id2label"][i.to_string()].as_str().unwrap())
            .collect();
        // The data's labels, sorted, for a new head.
        assert_eq!(labels, ["chirp", "hum", "noise"], "{name}");
        assert!(
            config["architectures"][0]
                .as_str()
                .unwrap()
                .ends_with("ForSequenceClassification")
        );
        assert!(stdout.contains("eval: 2 clips"), "{name}: {stdout}");
    }
}

#[test]
fn cli_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out").display().to_string();
    let w2v = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2");
    let cls4 = w2v.join("wav2vec2-cls").display().to_string();
    let m = manifest();
    // --init: a folder that does not exist, a folder that is not a checkpoint, scratch
    // without a configuration.
    train_err(
        &["--data", &m, "--init", "/no/such/model", "--out", &out],
        &["/no/such/model", "no such checkpoint directory"],
    );
    let audio = fixtures().join("audio").display().to_string();
    train_err(
        &["--data", &m, "--init", &audio, "--out", &out],
        &["not a Hugging Face checkpoint directory"],
    );
    train_err(
        &["--data", &m, "--init", "scratch", "--out", &out],
        &["--config tiny, base or a config.json"],
    );
    train_err(
        &[
            "--data", &m, "--init", "scratch", "--config", "huge", "--out", &out,
        ],
        &["--config huge", "a preset (tiny, base) or a config.json"],
    );
    // A classifier whose labels are not the data's.
    train_err(
        &["--data", &m, "--init", &cls4, "--out", &out],
        &[
            "only in the data: [chirp, hum, noise]",
            "only in the checkpoint: [angry, happy, neutral, sad]",
            "--new-head",
        ],
    );
    // Empty splits: training, and evaluation.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    train_err(
        &["--data", &empty, "--init", &init(), "--out", &out],
        &["empty.jsonl: no examples"],
    );
    train_err(
        &[
            "--data",
            &m,
            "--eval-data",
            &empty,
            "--init",
            &init(),
            "--out",
            &out,
        ],
        &["empty.jsonl: no examples"],
    );
    // A label only the evaluation data has.
    let odd = tmp.path().join("odd.jsonl");
    std::fs::write(
        &odd,
        format!(
            "{{\"audio\": \"{}\", \"label\": \"bark\"}}\n",
            fixtures().join("audio/a0.wav").display()
        ),
    )
    .unwrap();
    train_err(
        &[
            "--data",
            &m,
            "--eval-data",
            odd.to_str().unwrap(),
            "--init",
            &init(),
            "--out",
            &out,
        ],
        &["odd.jsonl:1", "`bark`"],
    );
    // Flags that cannot work together, or at all.
    train_err(
        &[
            "--data",
            &m,
            "--init",
            &init(),
            "--out",
            &out,
            "--override",
            "hidden_size=8",
        ],
        &["`hidden_size`", "training-time fields"],
    );
    train_err(
        &[
            "--data",
            &m,
            "--init",
            &init(),
            "--out",
            &out,
            "--early-stopping-patience",
            "2",
        ],
        &["--early-stopping-patience needs evaluation data"],
    );
    train_err(
        &[
            "--data",
            &m,
            "--init",
            &init(),
            "--out",
            &out,
            "--resume-from-checkpoint",
            "latest",
        ],
        &["no checkpoint-* folder"],
    );
    train_err(
        &[
            "--data",
            &m,
            "--init",
            &init(),
            "--out",
            &out,
            "--metric-for-best-model",
            "wer",
        ],
        &["--metric-for-best-model wer", "loss, accuracy, f1"],
    );
    assert!(
        !Path::new(&out).join("model.safetensors").exists(),
        "a failed run wrote a model"
    );
}

/// The shared FSDD copy, `../shared/data/fsdd` from the repository root.
fn fsdd() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/fsdd");
    if dir.join("recordings").is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: {} is absent (see /work/shared/data/fsdd/README.md)",
            dir.display()
        );
        None
    }
}

#[test]
fn cli_fsdd_smoke_run_with_a_tiny_model_from_scratch() {
    let Some(data) = fsdd() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fsdd");
    let stdout = train_ok(&[
        "--data",
        &format!("fsdd:{}", data.display()),
        "--held-out-speaker",
        "yweweler",
        "--init",
        "scratch",
        "--config",
        "tiny",
        "--out",
        out.to_str().unwrap(),
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "5e-4",
        "--max-duration-s",
        "1.0",
        "--log-every",
        "1",
    ]);
    println!("{stdout}");
    let m = metrics(&out);
    assert_eq!(losses(&out).len(), 3);
    assert!(losses(&out).iter().all(|(_, l)| l.is_finite()));
    assert!(m.iter().any(|e| e["eval_accuracy"].is_f64()), "{m:?}");
    let report = read_json(&out.join("eval_report.json"));
    // Speaker yweweler's 500 recordings are the test split; the others' takes 0-4 evaluate.
    assert_eq!(report["test"]["n_examples"], 500);
    assert_eq!(report["eval"]["labels"].as_array().unwrap().len(), 10);
}

#[test]
fn cli_augmentation_changes_the_batches_and_logs_plain_progress_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, i) = (manifest(), init());
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let out_s = out.display().to_string();
        let mut args = vec![
            "train",
            "classify",
            "--data",
            &m,
            "--init",
            &i,
            "--out",
            &out_s,
            "--max-steps",
            "7",
            "--batch-size",
            "4",
            "--log-every",
            "1",
        ];
        args.extend_from_slice(extra);
        // Progress on: stderr is a pipe here, so the run prints lines, not a bar.
        let output = Command::new(env!("CARGO_BIN_EXE_hearken-export"))
            .args(&args)
            .output()
            .expect("running hearken-export");
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        (out, stderr, text(&output.stdout))
    };
    let (plain, stderr, stdout) = run("plain", &[]);
    for step in 1..=7 {
        assert!(
            stderr.contains(&format!("step {step}/7 (epoch ")),
            "no progress line for step {step} in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    assert!(stdout.contains("update time: mean"), "{stdout}");

    let (sped, _, _) = run(
        "augmented",
        &["--augment-speed", "0.8:1.2", "--augment-noise", "5:10"],
    );
    let (a, b) = (losses(&plain), losses(&sped));
    assert_eq!(a.len(), 7);
    assert_eq!(b.len(), 7);
    assert!(b.iter().all(|(_, l)| l.is_finite()));
    // Same seed, same dropout draws: only the augmented audio can move the first loss.
    assert_ne!(
        a[0].1, b[0].1,
        "augmentation left the first batch unchanged"
    );

    let out = tmp.path().join("bad").display().to_string();
    for (flag, value, needle) in [
        ("--augment-speed", "1.2:0.8", "speed factor range"),
        ("--augment-speed", "0.3:1.0", "speed factor range"),
        ("--augment-noise", "10:20:1.5", "probability"),
        ("--augment-noise", "ten:20", "not a number"),
    ] {
        train_err(
            &[
                "--data",
                &m,
                "--init",
                &i,
                "--out",
                &out,
                "--max-steps",
                "1",
                flag,
                value,
            ],
            &[needle],
        );
    }
}
