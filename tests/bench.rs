//! `hearken bench` end to end, through the binary: provider honesty (a provider that
//! cannot be registered is reported, with its reason, and fails the command unless
//! `--allow-fallback`), and the JSON and CSV outputs on a real model.
//!
//! The provider tests need the ONNX Runtime library; the output tests need the exported
//! Whisper tiny.en (`models/setup.sh`). Without them the tests print why and skip; under
//! CI (`CI` set) they fail instead.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use hearken::engine::ExecutionProvider;

fn hearken(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearken"))
        .arg("bench")
        .args(args)
        .output()
        .expect("the hearken binary runs")
}

/// A provider that cannot be registered with this ONNX Runtime library: CUDA on the
/// CPU build that setup installs, else TensorRT (no registry here ships libnvinfer).
fn unregistrable_provider() -> Option<&'static str> {
    common::ort()?;
    let info = hearken::engine::ort_info(None).expect("ONNX Runtime loads");
    let cuda = info
        .providers
        .contains(&ExecutionProvider::Cuda { device_id: 0 });
    Some(if cuda { "tensorrt" } else { "cuda" })
}

/// The exported Whisper tiny.en, or `None` (with the reason printed) outside CI.
fn tiny_en() -> Option<PathBuf> {
    common::model_dir("whisper-tiny.en", "decoder.onnx")
}

/// A directory that looks like a Whisper export: registration fails before the files
/// are read, so the unavailable-provider path needs no real model.
fn fake_whisper_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["encoder.onnx", "decoder.onnx"] {
        std::fs::write(dir.path().join(f), b"not a model").unwrap();
    }
    dir
}

#[test]
fn unavailable_provider_fails_with_its_reason() {
    let Some(ep) = unregistrable_provider() else {
        return;
    };
    let dir = fake_whisper_dir();
    let model = dir.path().to_str().unwrap();
    let common_args = [
        "--model",
        model,
        "--engine",
        "ort",
        "--ep",
        ep,
        "--synthetic",
        "1",
        "--runs",
        "1",
        "--warmup",
        "0",
    ];
    let out = hearken(&common_args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(
        error.contains(&format!("ort/{ep} is unavailable: ")),
        "{error}"
    );
    // ONNX Runtime's (or hearken's) reason follows, not just the word.
    let reason = error.split("is unavailable: ").nth(1).unwrap();
    assert!(reason.len() > 20, "{error}");
    let expected = if ep == "cuda" { "CUDA" } else { "TensorRT" };
    assert!(reason.contains(expected), "{error}");

    // Allowed: reported as unavailable, with the reason, and the command succeeds.
    let mut args = common_args.to_vec();
    args.extend(["--allow-fallback", "--format", "json"]);
    let out = hearken(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["provider"], ep);
    assert_eq!(rows[0]["status"], "unavailable");
    assert!(rows[0]["reason"].as_str().unwrap().contains(expected));
    assert!(rows[0]["total_ms"].is_null());
}

#[test]
fn unknown_provider_and_engine_are_rejected_before_running() {
    let dir = fake_whisper_dir();
    let model = dir.path().to_str().unwrap();
    let out = hearken(&["--model", model, "--engine", "ort", "--ep", "metal"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("execution provider"));
    let out = hearken(&["--model", model, "--engine", "onnx"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown engine"));
    let out = hearken(&["--model", "/nonexistent/model", "--engine", "tract"]);
    assert!(!out.status.success());
}

/// Engines to run the real-model tests on: tract always, ort when its library is here.
fn engines() -> &'static str {
    if common::ort().is_some() {
        "ort,tract"
    } else {
        "tract"
    }
}

#[test]
fn whisper_tiny_json_has_the_documented_fields() {
    let Some(model) = tiny_en() else { return };
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.png");
    let out = hearken(&[
        "--model",
        model.to_str().unwrap(),
        "--engine",
        engines(),
        "--synthetic",
        "2",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--format",
        "json",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["cpu", "logical_cores", "os", "onnxruntime", "tract", "date"] {
        assert!(!json["machine"][key].is_null(), "machine.{key}");
    }
    assert_eq!(json["settings"]["runs"], 1);
    let rows = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), engines().split(',').count());
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["provider"], "cpu");
        assert_eq!(r["input"], "synthetic-2s");
        assert_eq!(r["search"], "greedy");
        assert!(r["text"].is_string());
        assert!(r["n_tokens"].is_u64());
        assert_eq!(r["audio_s"], 2.0);
        assert!(r["load_ms"].as_f64().unwrap() > 0.0);
        assert!(r["peak_rss_mb"].as_f64().unwrap() > 10.0);
        assert!(r["threads"].as_u64().unwrap() >= 1);
        for metric in [
            "features_ms",
            "encoder_ms",
            "decoder_token_ms",
            "first_token_ms",
            "total_ms",
            "rtf",
        ] {
            let s = &r[metric];
            for stat in ["p50", "p90", "p99", "min", "max", "mean"] {
                assert!(s[stat].as_f64().is_some(), "{metric}.{stat} in {r}");
            }
        }
        let total = r["total_ms"]["p50"].as_f64().unwrap();
        assert!(r["first_token_ms"]["p50"].as_f64().unwrap() > 0.0);
        assert!((r["rtf"]["p50"].as_f64().unwrap() - total / 2000.0).abs() < 1e-3);
    }
    let png = std::fs::read(&chart).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn whisper_tiny_csv_has_a_header_and_one_line_per_result() {
    let Some(model) = tiny_en() else { return };
    let out = hearken(&[
        "--model",
        model.to_str().unwrap(),
        "--engine",
        "tract",
        "--synthetic",
        "1",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--beam",
        "2",
        "--format",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in [
        "engine",
        "provider",
        "input",
        "status",
        "load_ms",
        "peak_rss_mb",
        "total_ms_p50",
        "rtf_p50",
        "decoder_token_ms_p50",
        "first_token_ms_p50",
        "cpu",
        "date",
    ] {
        assert!(header.contains(&col), "{col} missing from {}", lines[0]);
    }
    assert!(
        lines[1].starts_with("tract,cpu,synthetic-1s,ok,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(",beam2,"), "{}", lines[1]);
}

/// The node report reads ONNX Runtime's real profile format: on the CPU library every
/// node that ran is on `cpu`. Graphs loaded without profiling, and tract, cannot tell.
#[test]
fn profiled_graph_reports_where_its_nodes_ran() {
    use hearken::engine::{EngineKind, OrtOptions, Tensor};
    let Some(plain) = common::ort() else { return };
    let path = common::fixture("conformance/softmax/model.onnx");
    let engine = EngineKind::Ort(OrtOptions {
        profile_nodes: true,
        ..OrtOptions::default()
    })
    .build()
    .unwrap();
    let graph = engine.load(&path).unwrap();
    let inputs: Vec<(String, Tensor)> = graph
        .inputs()
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|d| match d {
                    hearken::engine::Dim::Fixed(n) => *n,
                    _ => 3,
                })
                .collect();
            let n = shape.iter().product();
            (
                spec.name.clone(),
                Tensor::from_f32(shape, vec![0.5; n]).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    graph.run_refs(&refs).unwrap();
    let report = graph
        .node_providers()
        .unwrap()
        .expect("profiled graph reports");
    assert_eq!(report.keys().collect::<Vec<_>>(), ["cpu"], "{report:?}");
    assert!(!report["cpu"].is_empty());
    assert!(report["cpu"].iter().all(|n| !n.ends_with("_kernel_time")));
    // Asking again gives the same report (the recording has ended).
    assert_eq!(graph.node_providers().unwrap(), Some(report));

    // A report never asked for leaves no profile file behind.
    let unread = engine.load(&path).unwrap();
    unread.run_refs(&refs).unwrap();
    drop(unread);
    drop(graph);
    let prefix = format!("hearken-ort-profile-{}-", std::process::id());
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    assert_eq!(plain.load(&path).unwrap().node_providers().unwrap(), None);
    assert_eq!(
        common::tract()
            .load(&path)
            .unwrap()
            .node_providers()
            .unwrap(),
        None
    );
}

/// CTC and classification models are timed as one forward pass, fed the attention mask
/// their graphs take.
#[test]
fn waveform_models_report_their_forward_pass() {
    for (name, input) in [
        ("tiny-wav2vec2-ctc", vec!["--synthetic", "2"]),
        ("tiny-hubert-cls-weighted", vec!["--synthetic", "1"]),
    ] {
        let Some(dir) = common::model_dir(name, "model.onnx") else {
            return;
        };
        let mut args = vec![
            "--model",
            dir.to_str().unwrap(),
            "--engine",
            "tract",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--format",
            "json",
        ];
        args.extend(input);
        let out = hearken(&args);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let row = &j["results"][0];
        assert_eq!(row["status"], "ok", "{name}: {row}");
        assert!(
            row["forward_ms"]["p50"].as_f64().unwrap() > 0.0,
            "{name}: {row}"
        );
    }
}
