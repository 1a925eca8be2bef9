//! `hearken eval --hypotheses`: scoring transcripts made elsewhere, no model needed.
//!
//! Runs the binary on temporary manifests whose word error rates are known by hand.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn write(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).expect("write a temporary JSONL file");
}

fn eval(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearken"))
        .arg("eval")
        .args(args)
        .output()
        .expect("run hearken")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_report(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("--format json prints one JSON object")
}

/// A manifest of two utterances in `dir`, with relative audio paths (no audio needed).
fn manifest(dir: &Path) -> std::path::PathBuf {
    let m = dir.join("manifest.jsonl");
    write(
        &m,
        &[
            serde_json::json!({"audio": "a.wav", "text": "The cat sat."}),
            serde_json::json!({"audio": "sub/b.wav", "text": "Hello, world!"}),
        ],
    );
    m
}

#[test]
fn known_wer_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path());
    // Listed in another order, one through an absolute path, one through `./`, and the
    // normalizer must ignore case and punctuation.
    let h = tmp.path().join("hyp.jsonl");
    write(
        &h,
        &[
            serde_json::json!({"audio": "./sub/b.wav", "text": "hello world"}),
            serde_json::json!({"audio": tmp.path().join("a.wav"), "text": "the cat sat down"}),
        ],
    );
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        h.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let r = json_report(&out);
    assert_eq!(r["n_utterances"], 2);
    // One insertion over 3 + 2 reference words.
    assert_eq!(r["word_errors"], 1);
    assert_eq!(r["n_ref_words"], 5);
    assert!((r["wer"].as_f64().unwrap() - 0.2).abs() < 1e-12, "{r}");
    let per = r["per_utterance"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    assert_eq!(per[0]["audio"], "a.wav");
    assert!((per[0]["wer"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(per[0]["hypothesis"], "the cat sat down");
    assert_eq!(per[1]["audio"], "sub/b.wav");
    assert_eq!(per[1]["wer"].as_f64(), Some(0.0));
    assert_eq!(per[1]["cer"].as_f64(), Some(0.0));
    // " down" is five inserted characters over "the cat sat" and "hello world".
    assert_eq!(r["char_errors"], 5);
    assert_eq!(r["n_ref_chars"], 22);
}

#[test]
fn known_wer_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("one.jsonl");
    write(
        &m,
        &[serde_json::json!({"audio": "x.wav", "text": "the cat sat"})],
    );
    let h = tmp.path().join("hyp.jsonl");
    write(
        &h,
        &[serde_json::json!({"audio": "x.wav", "text": "the cat sat down"})],
    );
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        h.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("1 utterances: WER 33.33% (1 / 3 words)"),
        "{summary}"
    );
}

/// Hypotheses written elsewhere may spell the manifest's relative paths as they appear
/// in the manifest, not relative to their own folder.
#[test]
fn falls_back_to_the_manifest_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path());
    let other = tempfile::tempdir().unwrap();
    let h = other.path().join("hyp.jsonl");
    write(
        &h,
        &[
            serde_json::json!({"audio": "a.wav", "text": "the cat sat"}),
            serde_json::json!({"audio": "sub/b.wav", "text": "hello"}),
            serde_json::json!({"audio": "extra.wav", "text": "not in the manifest"}),
        ],
    );
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        h.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let r = json_report(&out);
    assert_eq!(r["word_errors"], 1);
    assert!(stderr(&out).contains("1 line(s)"), "{}", stderr(&out));
}

#[test]
fn missing_hypothesis_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path());
    let h = tmp.path().join("hyp.jsonl");
    write(
        &h,
        &[serde_json::json!({"audio": "a.wav", "text": "the cat sat"})],
    );
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        h.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("no hypothesis for sub/b.wav"), "{err}");
    assert!(err.contains("manifest.jsonl:2"), "{err}");
}

#[test]
fn duplicate_hypothesis_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path());
    let h = tmp.path().join("hyp.jsonl");
    write(
        &h,
        &[
            serde_json::json!({"audio": "a.wav", "text": "the cat sat"}),
            serde_json::json!({"audio": "./a.wav", "text": "the cat"}),
        ],
    );
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        h.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lines 1 and 2"), "{}", stderr(&out));
}

#[test]
fn malformed_hypotheses_line_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path());
    let h = tmp.path().join("hyp.jsonl");
    std::fs::write(
        &h,
        "{\"audio\": \"a.wav\", \"text\": \"x\"}\n\n{\"audio\": 3}\n",
    )
    .unwrap();
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        h.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("hyp.jsonl:3"), "{}", stderr(&out));
}

#[test]
fn needs_a_model_or_hypotheses() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest(tmp.path());
    let out = eval(&["--manifest".as_ref(), m.as_os_str()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--model") && err.contains("--hypotheses"),
        "{err}"
    );

    // Both at once is ambiguous.
    let out = eval(&[
        "--manifest".as_ref(),
        m.as_os_str(),
        "--hypotheses".as_ref(),
        m.as_os_str(),
        "--model".as_ref(),
        "models/whisper-base".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}
