//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearken::engine::{Engine, EngineKind, OrtOptions, TractOptions};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The tract engine.
pub fn tract() -> Arc<dyn Engine> {
    EngineKind::Tract(TractOptions::default())
        .build()
        .expect("tract is compiled in")
}

/// The ONNX Runtime engine, or `None` with a printed reason when its library is absent
/// on a developer machine. Under CI (`CI` set) the setup script has fetched it, so a
/// missing library fails the test instead of skipping it.
pub fn ort() -> Option<Arc<dyn Engine>> {
    match EngineKind::Ort(OrtOptions::default()).build() {
        Ok(e) => Some(e),
        Err(hearken::Error::OrtLibraryNotFound { .. }) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipping the ONNX Runtime half: library absent (run `bash models/setup.sh`)"
            );
            None
        }
        Err(e) => panic!("ONNX Runtime engine unavailable: {e}"),
    }
}

/// Largest absolute difference; panics on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

/// `models/<name>` when it holds `file`, or `None` (with the reason printed) when absent
/// outside CI. Under CI (`CI` set) `models/setup.sh` has run, so a missing model fails.
pub fn model_dir(name: &str, file: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    if dir.join(file).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing under CI: models/setup.sh should have exported it",
        dir.display()
    );
    eprintln!(
        "skipping: {} absent (run `bash models/setup.sh`)",
        dir.display()
    );
    None
}
