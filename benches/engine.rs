//! Engine overhead: the fixed cost of one `Graph::run_refs` call on graphs so small that
//! the arithmetic is negligible (input checks, tensor conversion, the backend's own
//! dispatch), for ONNX Runtime (CPU provider, default options) and tract.
//!
//! Groups `engine_overhead/ort-cpu` and `engine_overhead/tract`, one benchmark per
//! conformance fixture of `tests/fixtures/conformance/`, with the inputs of its first run:
//! `layer_norm` (one LayerNormalization over `(2, 6, 32)`) and `matmul_gemm` (a Gemm
//! `(3, 16) x (16, 8)` then a MatMul by `(8, 4)`). No throughput is declared: the time per
//! call is the number. The ONNX Runtime half is skipped, with a line on stderr, when its
//! library is absent (run `bash models/setup.sh`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use hearken::engine::{Engine, EngineKind, OrtOptions, Tensor, TractOptions};

/// Fixtures of `tests/fixtures/conformance/` benchmarked, with their input names.
const CASES: [(&str, &[&str]); 2] = [("layer_norm", &["x"]), ("matmul_gemm", &["x"])];

/// The engines to benchmark, each with its group suffix (`ort-cpu`, `tract`). ONNX
/// Runtime is left out, with a line on stderr, when it cannot be built here.
fn engines() -> Vec<(&'static str, Arc<dyn Engine>)> {
    let mut out = Vec::new();
    match EngineKind::Ort(OrtOptions::default()).build() {
        Ok(e) => out.push(("ort-cpu", e)),
        Err(e) => eprintln!("engine_overhead/ort-cpu: skipped, ONNX Runtime unavailable: {e}"),
    }
    let tract = EngineKind::Tract(TractOptions::default())
        .build()
        .expect("tract is compiled in");
    out.push(("tract", tract));
    out
}

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conformance")
        .join(case)
}

fn engine_overhead(c: &mut Criterion) {
    for (suffix, engine) in engines() {
        let mut group = c.benchmark_group(format!("engine_overhead/{suffix}"));
        group.measurement_time(Duration::from_secs(3));
        for (case, input_names) in CASES {
            let dir = fixture_dir(case);
            let graph = engine
                .load(&dir.join("model.onnx"))
                .unwrap_or_else(|e| panic!("{suffix}: loading {case}: {e}"));
            let inputs: Vec<(&str, Tensor)> = input_names
                .iter()
                .map(|&n| {
                    let t = hearken::npy::read(dir.join(format!("run0_in_{n}.npy")))
                        .unwrap_or_else(|e| panic!("{case} input {n}: {e}"));
                    (n, t)
                })
                .collect();
            let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
            group.bench_function(case, |b| {
                b.iter(|| graph.run_refs(black_box(&refs)).expect("run"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, engine_overhead);
