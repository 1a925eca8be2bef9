use std::path::PathBuf;

use super::*;
use crate::train::data::DataSpec;
use crate::train::data::testutil::{msg, wav, write_wav};
use crate::train::data::{Columns, EvalSplit, Source};
use crate::wav2vec2::Family;
use crate::wav2vec2::init::Preset;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/classify")
}

fn fixture_splits() -> Splits {
    ClassifyData::Spec(DataSpec {
        train: Source::Jsonl(fixture().join("manifest.jsonl")),
        eval: Some(Source::Jsonl(fixture().join("manifest.jsonl"))),
        split: EvalSplit::AsGiven,
        columns: Columns::default(),
    })
    .resolve()
    .unwrap()
}

fn fixture_task(batch_size: usize) -> ClassifyTask {
    let init = ClassifyInit::Checkpoint {
        dir: fixture().join("init"),
        replace_head: false,
    };
    let options = ClassifyOptions {
        batch_size,
        ..ClassifyOptions::new(init)
    };
    ClassifyTask::new(fixture_splits(), options).unwrap()
}

#[test]
fn train_classify_overrides_change_only_training_fields() {
    let mut c = Preset::Tiny.config(Family::Hubert).unwrap();
    let map = |json: &str| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(json).unwrap()
    };
    apply_overrides(&mut c, &map(r#"{"layerdrop": 0.2, "mask_time_prob": 0.0}"#)).unwrap();
    assert_eq!((c.layerdrop, c.mask_time_prob), (0.2, 0.0));
    let e = apply_overrides(&mut c, &map(r#"{"hidden_size": 8}"#)).unwrap_err();
    assert!(e.to_string().contains("`hidden_size`"), "{e}");
    let e = apply_overrides(&mut c, &map(r#"{"layerdrop": "high"}"#)).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert_eq!(
        c.layerdrop, 0.2,
        "a failed override leaves the config alone"
    );
}

#[test]
fn train_classify_scratch_config_from_preset_or_file() {
    assert_eq!(
        scratch_config("tiny", Family::Wav2Vec2).unwrap().model_type,
        "wav2vec2"
    );
    assert_eq!(
        scratch_config("base", Family::Hubert).unwrap().hidden_size,
        768
    );
    let e = scratch_config("huge", Family::Hubert).unwrap_err();
    assert!(e.to_string().contains("tiny, base"), "{e}");
    let file = fixture().join("init/config.json");
    let c = scratch_config(file.to_str().unwrap(), Family::Hubert).unwrap();
    assert_eq!((c.model_type.as_str(), c.hidden_size), ("wav2vec2", 32));
}

#[test]
fn train_classify_fsdd_holds_out_a_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("recordings");
    for name in [
        "0_ann_0.wav",
        "0_ann_5.wav",
        "1_ann_7.wav",
        "1_bob_1.wav",
        "0_bob_9.wav",
        "1_cid_2.wav",
        "0_cid_30.wav",
    ] {
        write_wav(&rec.join(name), &[0.1; 80], 8_000);
    }
    let fsdd = |speaker: Option<&str>| ClassifyData::Fsdd {
        dir: dir.path().to_path_buf(),
        held_out_speaker: speaker.map(str::to_string),
    };
    let s = fsdd(Some("cid")).resolve().unwrap();
    let names = |v: &[Example]| -> Vec<String> {
        v.iter()
            .map(|e| e.audio.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&s.train),
        ["0_ann_5.wav", "0_bob_9.wav", "1_ann_7.wav"]
    );
    assert_eq!(names(&s.eval), ["0_ann_0.wav", "1_bob_1.wav"]);
    assert_eq!(names(&s.test), ["0_cid_30.wav", "1_cid_2.wav"]);
    assert_eq!(s.labels.labels(), ["0", "1"]);
    let s = fsdd(None).resolve().unwrap();
    assert_eq!((s.train.len(), s.eval.len(), s.test.len()), (4, 3, 0));
    assert!(msg(fsdd(Some("dan")).resolve()).contains("held-out speaker `dan`"));
}

#[test]
fn train_classify_refuses_bad_inits_and_data() {
    let splits = fixture_splits();
    let with = |init| ClassifyTask::new(splits.clone(), ClassifyOptions::new(init));
    // A folder without config.json.
    let e = with(ClassifyInit::Checkpoint {
        dir: fixture().join("audio"),
        replace_head: false,
    })
    .unwrap_err();
    assert!(e.to_string().contains("no config.json"), "{e}");
    // A classifier of other labels, unless its head is replaced.
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2/wav2vec2-cls");
    let e = with(ClassifyInit::Checkpoint {
        dir: other.clone(),
        replace_head: false,
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("only in the data: [chirp, hum, noise]")
            && e.contains("only in the checkpoint: [angry, happy, neutral, sad]")
            && e.contains("--new-head"),
        "{e}"
    );
    let task = with(ClassifyInit::Checkpoint {
        dir: other,
        replace_head: true,
    })
    .unwrap();
    assert_eq!(task.labels().labels(), ["chirp", "hum", "noise"]);
    // One label is a regression in transformers, not a classifier.
    let mut one = splits.clone();
    one.labels = LabelVocab::from_labels(vec!["hum".into()]).unwrap();
    let init = ClassifyInit::Scratch {
        config: Box::new(Preset::Tiny.config(Family::Hubert).unwrap()),
    };
    let e = ClassifyTask::new(one, ClassifyOptions::new(init.clone())).unwrap_err();
    assert!(e.to_string().contains("at least 2 classes"), "{e}");
    // A clip shorter than the receptive field (400 samples) is named.
    let dir = tempfile::tempdir().unwrap();
    wav(dir.path(), "long.wav", 800, 1);
    wav(dir.path(), "short.wav", 399, 2);
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(
        &manifest,
        "{\"audio\": \"long.wav\", \"label\": \"a\"}\n{\"audio\": \"short.wav\", \"label\": \"b\"}\n",
    )
    .unwrap();
    let short = ClassifyData::Spec(DataSpec {
        train: Source::Jsonl(manifest),
        eval: None,
        split: EvalSplit::AsGiven,
        columns: Columns::default(),
    })
    .resolve()
    .unwrap();
    let e = ClassifyTask::new(short, ClassifyOptions::new(init))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.jsonl:2") && e.contains("short.wav") && e.contains("receptive field"),
        "{e}"
    );
}

#[test]
fn train_classify_empty_splits_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let spec = |train: &Path, eval: Option<&Path>| {
        ClassifyData::Spec(DataSpec {
            train: Source::Jsonl(train.to_path_buf()),
            eval: eval.map(|p| Source::Jsonl(p.to_path_buf())),
            split: EvalSplit::AsGiven,
            columns: Columns::default(),
        })
        .resolve()
    };
    let e = msg(spec(&empty, None));
    assert!(e.contains("empty.jsonl: no examples"), "{e}");
    let manifest = fixture().join("manifest.jsonl");
    let e = msg(spec(&manifest, Some(&empty)));
    assert!(e.contains("empty.jsonl: no examples"), "{e}");
    // An audiofolder whose splits hold no audio.
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(folder.join("train")).unwrap();
    std::fs::create_dir_all(folder.join("validation")).unwrap();
    let e = ClassifyData::Spec(DataSpec {
        train: Source::Jsonl(manifest),
        eval: Some(Source::AudioFolder(folder.clone())),
        split: EvalSplit::AsGiven,
        columns: Columns::default(),
    })
    .resolve();
    let e = msg(e);
    assert!(e.contains(&folder.display().to_string()), "{e}");
}

#[test]
fn train_classify_task_batches_loss_metrics_and_save() {
    let mut task = fixture_task(3);
    // The checkpoint's ids, not sorted order.
    assert_eq!(task.labels().labels(), ["noise", "hum", "chirp"]);
    assert_eq!(task.model().trainable(), Trainable::AllButFeatureEncoder);
    assert!(
        task.trainable()
            .iter()
            .all(|(n, _)| !n.contains("feature_extractor"))
    );
    assert_eq!(task.batches_per_epoch(), 3);
    let plain: Vec<Vec<usize>> = task
        .train_batches(0, None)
        .unwrap()
        .into_iter()
        .map(|b| b.indices)
        .collect();
    assert_eq!(plain, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let shuffled = task.train_batches(0, Some(&mut rng)).unwrap();
    let mut seen: Vec<usize> = shuffled.iter().flat_map(|b| b.indices.clone()).collect();
    assert_ne!(seen, (0..8).collect::<Vec<_>>());
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());

    let loss = task.loss(&shuffled[0], &mut rng).unwrap();
    assert_eq!(loss.dims(), &[] as &[usize]);
    let v = loss.to_scalar::<f32>().unwrap();
    // A fresh head on 3 classes: close to ln 3.
    assert!((v - 3f32.ln()).abs() < 0.05, "{v}");
    let metrics = task.evaluate().unwrap();
    assert_eq!(
        metrics.keys().collect::<Vec<_>>(),
        ["accuracy", "f1", "loss"]
    );
    let reports = task.reports().unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.n_examples, 8);
    assert_eq!(r.loss, metrics["loss"]);
    assert_eq!(r.accuracy, metrics["accuracy"]);
    assert_eq!(
        r.per_class.iter().map(|c| c.support).collect::<Vec<_>>(),
        [2, 3, 3]
    );

    let dir = tempfile::tempdir().unwrap();
    task.save(dir.path()).unwrap();
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(&dir.path().join("preprocessor_config.json")),
        read(&fixture().join("init/preprocessor_config.json"))
    );
    let config = read(&dir.path().join("config.json"));
    assert_eq!(config["id2label"]["2"], "chirp");
    assert_eq!(config["label2id"]["noise"], 0);
    // Loading gives back every variable, frozen ones included.
    let weights = |t: &ClassifyTask| -> Vec<Vec<f32>> {
        t.model()
            .vars()
            .iter()
            .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let mut other = ClassifyTask::new(
        fixture_splits(),
        ClassifyOptions {
            init: ClassifyInit::Checkpoint {
                dir: Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/wav2vec2/wav2vec2-cls"),
                replace_head: true,
            },
            seed: 7,
            ..ClassifyOptions::new(ClassifyInit::Scratch {
                config: Box::new(Preset::Tiny.config(Family::Hubert).unwrap()),
            })
        },
    )
    .unwrap();
    assert_ne!(weights(&other), weights(&task));
    other.load(dir.path()).unwrap();
    assert_eq!(weights(&other), weights(&task));
}

#[test]
fn train_classify_report_scores_per_class() {
    let labels = LabelVocab::from_labels(vec!["a".into(), "b".into(), "c".into()]).unwrap();
    let cm = ConfusionMatrix::new(3, &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 1]).unwrap();
    let r = EvalReport::new("eval", &labels, 0.5, &cm);
    let b = &r.per_class[1];
    assert_eq!((b.label.as_str(), b.support), ("b", 2));
    assert!((b.precision - 0.5).abs() < 1e-12 && (b.recall - 1.0).abs() < 1e-12);
    assert_eq!(r.per_class[2].precision, 0.0);
    assert_eq!(
        r.confusion_matrix,
        vec![vec![1, 1, 0], vec![0, 2, 0], vec![0, 1, 0]]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eval_report.json");
    write_reports(&path, std::slice::from_ref(&r)).unwrap();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back["eval"]["per_class"][1]["recall"], 1.0);
    assert_eq!(back["eval"]["n_examples"], 5);
}
