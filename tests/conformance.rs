//! One conformance suite, every engine: the graphs, inputs and ONNX Runtime reference
//! outputs written by `tests/fixtures/gen_conformance.py` must be reproduced by each
//! engine within the case's tolerance (from `manifest.json`).
//!
//! The suite is written once against `&dyn Engine`; `engine_suite!` instantiates it per
//! engine so a failure names the engine and the case.

mod common;

use hearken::engine::{Engine, Tensor};
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    tolerance: f32,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn manifest() -> Manifest {
    let path = common::fixture("conformance/manifest.json");
    let text = std::fs::read_to_string(&path).expect("conformance manifest");
    serde_json::from_str(&text).expect("valid manifest")
}

fn run_case(engine: &dyn Engine, name: &str) {
    let manifest = manifest();
    let case = manifest
        .cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("case {name} missing from the manifest"));
    let dir = common::fixture(&format!("conformance/{name}"));
    // One loaded graph serves every run: dynamic dimensions must re-resolve per call.
    let graph = engine.load(&dir.join("model.onnx")).unwrap();
    for (k, run) in case.runs.iter().enumerate() {
        let inputs: Vec<(&str, Tensor)> = run
            .inputs
            .iter()
            .map(|n| {
                let t = hearken::npy::read(dir.join(format!("run{k}_in_{n}.npy"))).unwrap();
                (n.as_str(), t)
            })
            .collect();
        let outputs = graph.run(&inputs).unwrap();
        assert_eq!(outputs.len(), run.outputs.len());
        for (got, name_out) in outputs.iter().zip(&run.outputs) {
            let want = hearken::npy::read(dir.join(format!("run{k}_out_{name_out}.npy"))).unwrap();
            assert_eq!(
                got.shape(),
                want.shape(),
                "{name} run {k} output {name_out}: shape"
            );
            assert_eq!(
                got.dtype(),
                want.dtype(),
                "{name} run {k} output {name_out}: dtype"
            );
            let diff = common::max_abs_diff(&got.to_f32_vec(), &want.to_f32_vec());
            assert!(
                diff <= case.tolerance,
                "{} {name} run {k} output {name_out}: max |diff| {diff:e} > {:e}",
                engine.name(),
                case.tolerance
            );
        }
    }
}

/// Every case in the manifest has a test below (a new fixture without a test fails).
#[test]
fn every_manifest_case_is_tested() {
    let tested = [
        "matmul_gemm",
        "batched_matmul",
        "conv1d",
        "layer_norm",
        "softmax",
        "gelu_erf",
        "gather",
        "concat_split_transpose_reshape",
        "where_mask",
        "attention_dynamic_seq",
    ];
    let names: Vec<String> = manifest().cases.into_iter().map(|c| c.name).collect();
    assert_eq!(names, tested);
}

macro_rules! engine_suite {
    ($engine:ident, $get:expr) => {
        mod $engine {
            use super::*;

            fn check(case: &str) {
                if let Some(engine) = $get {
                    run_case(engine.as_ref(), case);
                }
            }

            #[test]
            fn matmul_gemm() {
                check("matmul_gemm");
            }
            #[test]
            fn batched_matmul() {
                check("batched_matmul");
            }
            #[test]
            fn conv1d() {
                check("conv1d");
            }
            #[test]
            fn layer_norm() {
                check("layer_norm");
            }
            #[test]
            fn softmax() {
                check("softmax");
            }
            #[test]
            fn gelu_erf() {
                check("gelu_erf");
            }
            #[test]
            fn gather() {
                check("gather");
            }
            #[test]
            fn concat_split_transpose_reshape() {
                check("concat_split_transpose_reshape");
            }
            #[test]
            fn where_mask() {
                check("where_mask");
            }
            #[test]
            fn attention_dynamic_seq() {
                check("attention_dynamic_seq");
            }

            #[test]
            fn wrong_input_is_an_error_not_a_panic() {
                let Some(engine) = $get else { return };
                let graph = engine
                    .load(&common::fixture("conformance/matmul_gemm/model.onnx"))
                    .unwrap();
                let bad_width = Tensor::from_f32([2, 15], vec![0.0; 30]).unwrap();
                let e = graph.run(&[("x", bad_width)]).unwrap_err().to_string();
                assert!(e.contains("shape of input `x`"), "{e}");
                let bad_type = Tensor::from_i64([2, 16], vec![0; 32]).unwrap();
                assert!(graph.run(&[("x", bad_type)]).is_err());
                assert!(graph.run(&[]).is_err());
            }

            #[test]
            fn io_specs_keep_symbolic_dims() {
                let Some(engine) = $get else { return };
                let graph = engine
                    .load(&common::fixture("conformance/matmul_gemm/model.onnx"))
                    .unwrap();
                assert_eq!(graph.inputs()[0].to_string(), "x: f32[batch, 16]");
                assert_eq!(graph.outputs()[0].to_string(), "y: f32[batch, 4]");
            }
        }
    };
}

engine_suite!(tract, Some(common::tract()));
engine_suite!(ort, common::ort());
