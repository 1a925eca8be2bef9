//! User mistakes end in one clear line on stderr and a non-zero exit, never a panic.

mod common;

use std::path::Path;
use std::process::Command;

use hearken::engine::{EngineKind, OrtOptions};

/// Runs the `hearken` binary; returns (exit success, stderr).
fn hearken(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args(args)
        .output()
        .expect("run hearken");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], expect: &str) {
    let (ok, stderr) = hearken(args);
    assert!(!ok, "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} printed {} lines: {stderr}",
        lines.len()
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(expect),
        "{args:?}: expected `{expect}` in: {stderr}"
    );
}

#[test]
fn missing_ort_library_names_the_fix() {
    let model = common::fixture("conformance/softmax/model.onnx");
    assert_one_line_error(
        &[
            "inspect",
            model.to_str().unwrap(),
            "--engine",
            "ort",
            "--ort-lib",
            "/nonexistent/libonnxruntime.so.1.31.1",
        ],
        "ONNX Runtime library not found (looked at: /nonexistent/libonnxruntime.so.1.31.1); run `bash models/setup.sh`",
    );
    // The same through the library API, whatever else this process has loaded.
    let err = EngineKind::Ort(OrtOptions {
        dylib_path: Some("/nonexistent/libonnxruntime.so".into()),
        ..OrtOptions::default()
    })
    .build()
    .err()
    .expect("a missing library is an error");
    assert!(
        matches!(err, hearken::Error::OrtLibraryNotFound { .. }),
        "{err}"
    );
}

#[test]
fn corrupt_and_empty_audio() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let out = out.to_str().unwrap();

    let corrupt = dir.path().join("corrupt.wav");
    // A RIFF/WAVE header that promises data and then stops.
    let mut bytes = b"RIFF\xff\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00".to_vec();
    bytes.extend_from_slice(b"\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\xff\xff");
    std::fs::write(&corrupt, &bytes).unwrap();
    assert_one_line_error(
        &["features", corrupt.to_str().unwrap(), "--out", out],
        "corrupt.wav",
    );

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert_one_line_error(
        &["features", empty.to_str().unwrap(), "--out", out],
        "empty.wav",
    );

    assert_one_line_error(
        &["features", "/nonexistent/audio.wav", "--out", out],
        "/nonexistent/audio.wav",
    );
    assert!(!Path::new(out).exists(), "no output is written on error");
}

#[test]
fn malformed_onnx_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"this is not a protobuf \x00\x01\x02\xff\xfe").unwrap();
    let bad = bad.to_str().unwrap();
    assert_one_line_error(
        &["inspect", bad, "--engine", "tract"],
        "cannot load model with tract",
    );
    if common::ort().is_some() {
        assert_one_line_error(
            &["inspect", bad, "--engine", "ort"],
            "cannot load model with ort",
        );
    }
    // Truncating a valid model is also caught.
    let good = std::fs::read(common::fixture("conformance/gelu_erf/model.onnx")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    assert_one_line_error(&["inspect", cut.to_str().unwrap()], "cut.onnx");
}

#[test]
fn bad_flags_are_errors() {
    let model = common::fixture("conformance/softmax/model.onnx");
    let model = model.to_str().unwrap();
    assert_one_line_error(
        &["inspect", model, "--engine", "coreml"],
        "invalid engine: expected auto, ort or tract, got coreml",
    );
    assert_one_line_error(
        &["inspect", model, "--engine", "ort", "--ep", "metal"],
        "execution provider",
    );
    // Unknown values are errors whatever the engine, never silently ignored.
    assert_one_line_error(
        &["inspect", model, "--engine", "tract", "--ep", "foo"],
        "invalid execution provider",
    );
    assert_one_line_error(
        &["inspect", model, "--engine", "tract", "--ep", "cuda"],
        "tract runs on the CPU only",
    );
    let audio = common::fixture("speech/piper.ogg");
    let audio = audio.to_str().unwrap();
    for args in [
        &["transcribe", audio, "--model", model, "--format", "xml"][..],
        &["transcribe", audio, "--model", model, "--task", "summarize"],
        &[
            "transcribe",
            audio,
            "--model",
            model,
            "--temperature",
            "hot",
        ],
        &[
            "transcribe",
            audio,
            "--model",
            model,
            "--no-speech-threshold",
            "x",
        ],
        &[
            "listen", "--input", audio, "--model", model, "--format", "srt",
        ],
    ] {
        let (ok, stderr) = hearken(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

/// `hearken … | head -1` stops quietly when the reader goes away, as ripgrep does.
#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::Stdio;
    let model = common::fixture("conformance/softmax/model.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args(["inspect", model.to_str().unwrap(), "--engine", "tract"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hearken");
    // Close the read end before the child writes anything.
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "exit {status}: {stderr}");
}
