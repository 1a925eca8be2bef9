//! CTC transcription and audio classification end to end: the `hearken` binary and the
//! library on the exports of two tiny seeded checkpoints (Wav2Vec2ForCTC and
//! HubertForSequenceClassification with a weighted layer sum) that `models/setup.sh`
//! converts from `export/tests/fixtures/wav2vec2/`.
//!
//! The expected transcript and label come from the fixture script, which computed them
//! with transformers (PyTorch) on `speech.wav`: the whole chain — decoding, resampling
//! none, normalization, export, engine, CTC decoding or softmax — must reproduce them.
//! Without the exports these tests print why and skip; under CI they fail instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hearken::model::classify::ClassifyOptions;
use hearken::model::ctc::ChunkOptions;
use hearken::model::open_with;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("export/tests/fixtures/wav2vec2")
}

fn speech() -> PathBuf {
    fixtures().join("speech.wav")
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ctc_model() -> Option<PathBuf> {
    common::model_dir("tiny-wav2vec2-ctc", "model.onnx")
}

fn cls_model() -> Option<PathBuf> {
    common::model_dir("tiny-hubert-cls-weighted", "model.onnx")
}

/// The engine flags to test with: tract, and ort when its library is present.
fn engine_flags() -> Vec<&'static str> {
    let mut out = vec!["tract"];
    if common::ort().is_some() {
        out.push("ort");
    }
    out
}

/// Runs `hearken ARGS...`, returning stdout; panics with stderr on failure.
fn hearken(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hearken {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `hearken ARGS...` expecting failure, returning stderr.
fn hearken_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "hearken {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn ctc_transcript_matches_the_reference_on_both_engines() {
    let Some(model) = ctc_model() else { return };
    let want = expected("wav2vec2-ctc")["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!want.is_empty());
    for engine in engine_flags() {
        let m = model.to_str().unwrap();
        let s = speech();
        let text = hearken(&[
            "transcribe",
            s.to_str().unwrap(),
            "--model",
            m,
            "--engine",
            engine,
        ]);
        assert_eq!(text.trim(), want, "{engine}");
    }
}

#[test]
fn ctc_json_has_words_with_ordered_times() {
    let Some(model) = ctc_model() else { return };
    let s = speech();
    let out = hearken(&[
        "transcribe",
        s.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["search"], "greedy");
    let words: Vec<&Value> = j["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap())
        .collect();
    let joined: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert_eq!(joined.join(" "), j["text"].as_str().unwrap());
    let mut prev_end = 0.0;
    for w in words {
        let (a, b) = (w["start_s"].as_f64().unwrap(), w["end_s"].as_f64().unwrap());
        assert!(a >= prev_end && b > a && b <= 1.3 + 1e-6, "{w}");
        prev_end = b;
    }
    assert!(j["timing"]["real_time_factor"].as_f64().unwrap() > 0.0);
}

#[test]
fn ctc_beam_search_with_a_language_model_reports_its_score() {
    let Some(model) = ctc_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let arpa = dir.path().join("lm.arpa");
    std::fs::write(
        &arpa,
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-1.0\t<s>\t0\n-1.0\t</s>\t0\n-2.0\t<unk>\t0\n-0.5\tSAD\t0\n\n\\end\\\n",
    )
    .unwrap();
    let s = speech();
    let out = hearken(&[
        "transcribe",
        s.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--lm",
        arpa.to_str().unwrap(),
        "--hotword",
        "SAD:2",
        "--format",
        "json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["search"], "beam 16");
    assert!(j["score"]["lm"].as_f64().unwrap() < 0.0, "{}", j["score"]);
}

#[test]
fn ctc_subtitles_are_written_to_the_output_folder() {
    let Some(model) = ctc_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = speech();
    hearken(&[
        "transcribe",
        s.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--format",
        "srt",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let srt = std::fs::read_to_string(dir.path().join("speech.srt")).unwrap();
    assert!(srt.starts_with("1\n00:00:00,"), "{srt}");
    assert!(srt.contains(" --> "));
}

#[test]
fn chunked_log_probs_cover_the_same_frames() {
    let Some(model) = ctc_model() else { return };
    let engine = common::tract();
    let opened = open_with(&model, engine.as_ref()).unwrap();
    let m = opened.as_ctc().unwrap();
    let pcm = hearken::audio::load(speech()).unwrap();
    let whole = m.log_probs(&pcm.samples, &ChunkOptions::default()).unwrap();
    let pieces = ChunkOptions {
        chunk_s: 0.6,
        context_s: 0.1,
    };
    let chunked = m.log_probs(&pcm.samples, &pieces).unwrap();
    assert_eq!(whole.n_frames, 64);
    assert_eq!(chunked.n_frames, whole.n_frames);
    for row in chunked.data.chunks(chunked.n_vocab) {
        let p: f32 = row.iter().map(|x| x.exp()).sum();
        assert!((p - 1.0).abs() < 1e-4);
    }
}

#[test]
fn classifier_label_matches_the_reference_on_both_engines() {
    let Some(model) = cls_model() else { return };
    let want = expected("hubert-cls-weighted");
    let label = want["label"].as_str().unwrap();
    let probs: Vec<f64> = want["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    for engine in engine_flags() {
        let s = speech();
        let out = hearken(&[
            "classify",
            s.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--engine",
            engine,
            "--format",
            "json",
        ]);
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["top"][0]["label"], label, "{engine}");
        for s in j["scores"].as_array().unwrap() {
            let id = s["id"].as_u64().unwrap() as usize;
            let got = s["score"].as_f64().unwrap();
            assert!(
                (got - probs[id]).abs() < 1e-4,
                "{engine}: class {id}: {got} vs {}",
                probs[id]
            );
        }
        let txt = hearken(&[
            "classify",
            s.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--engine",
            engine,
            "--top-k",
            "1",
        ]);
        assert!(
            txt.trim_end().ends_with(&format!(
                "\t{label} {:.3}",
                probs.iter().cloned().fold(0.0, f64::max)
            )),
            "{txt}"
        );
    }
}

#[test]
fn classifier_windows_cover_long_audio() {
    let Some(model) = cls_model() else { return };
    let s = speech();
    let out = hearken(&[
        "classify",
        s.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--window-s",
        "0.5",
        "--hop-s",
        "0.25",
        "--aggregate",
        "max",
        "--format",
        "json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    let windows = j["windows"].as_array().unwrap();
    // 1.3 s: windows at 0, 0.25, 0.5, 0.75 and one ending at 1.3 s.
    assert_eq!(windows.len(), 5);
    assert_eq!(windows[4]["end_s"].as_f64().unwrap(), 1.3);
    let max0 = windows
        .iter()
        .map(|w| w["probs"][0].as_f64().unwrap())
        .fold(0.0, f64::max);
    let score0 = j["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 0)
        .unwrap()["score"]
        .as_f64()
        .unwrap();
    assert!((score0 - max0).abs() < 1e-6);

    // The library agrees with the CLI on the unwindowed probabilities.
    let engine = common::tract();
    let c = open_with(&model, engine.as_ref()).unwrap();
    let pcm = hearken::audio::load(&s).unwrap();
    let r = c
        .classify(&pcm.samples, &ClassifyOptions::default())
        .unwrap();
    assert_eq!(r.windows.len(), 1);
    assert!((r.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn wrong_model_kinds_are_clear_errors() {
    let (Some(ctc), Some(cls)) = (ctc_model(), cls_model()) else {
        return;
    };
    let s = speech();
    let e = hearken_fails(&[
        "classify",
        s.to_str().unwrap(),
        "--model",
        ctc.to_str().unwrap(),
    ]);
    assert!(
        e.contains("is a ctc model, not an audio classifier: transcribe with `hearken transcribe`"),
        "{e}"
    );
    let e = hearken_fails(&[
        "transcribe",
        s.to_str().unwrap(),
        "--model",
        cls.to_str().unwrap(),
    ]);
    assert!(
        e.contains("is an audio classifier: use `hearken classify`"),
        "{e}"
    );
    if let Some(whisper) = common::model_dir("whisper-tiny.en", "decoder.onnx") {
        let e = hearken_fails(&[
            "transcribe",
            s.to_str().unwrap(),
            "--model",
            whisper.to_str().unwrap(),
            "--hotword",
            "x",
        ]);
        assert!(e.contains("--lm and --hotword apply to CTC models"), "{e}");
    }
}
