//! Execution providers are honest: a provider that cannot be registered is an error
//! unless fallback is allowed, and the graph reports the providers that really took.

mod common;

use hearken::engine::{EngineKind, ExecutionProvider, OrtOptions};

fn model() -> std::path::PathBuf {
    common::fixture("conformance/softmax/model.onnx")
}

fn with(
    providers: Vec<ExecutionProvider>,
    allow_fallback: bool,
) -> hearken::Result<Vec<ExecutionProvider>> {
    let engine = EngineKind::Ort(OrtOptions {
        providers,
        allow_fallback,
        ..OrtOptions::default()
    })
    .build()?;
    Ok(engine.load(&model())?.providers().to_vec())
}

#[test]
fn cpu_is_always_reported() {
    if common::ort().is_none() {
        return;
    }
    assert_eq!(with(vec![], false).unwrap(), vec![ExecutionProvider::Cpu]);
    assert_eq!(
        with(vec![ExecutionProvider::Cpu], false).unwrap(),
        vec![ExecutionProvider::Cpu]
    );
}

#[test]
fn unavailable_gpu_provider_fails_unless_fallback_is_allowed() {
    let Some(_) = common::ort() else { return };
    let info = hearken::engine::ort_info(None).unwrap();
    // TensorRT needs libnvinfer, which no registry here ships: it is never available on
    // CI, whichever ONNX Runtime build is installed. CUDA is checked too when this
    // library lacks it (the CPU wheel that setup installs).
    let mut unavailable = vec![ExecutionProvider::TensorRt { device_id: 0 }];
    if !info
        .providers
        .contains(&ExecutionProvider::Cuda { device_id: 0 })
    {
        unavailable.push(ExecutionProvider::Cuda { device_id: 0 });
    }
    for ep in unavailable {
        let err = with(vec![ep, ExecutionProvider::Cpu], false).unwrap_err();
        match &err {
            hearken::Error::ProviderUnavailable { provider, .. } => assert_eq!(provider, ep.name()),
            other => panic!("{ep}: expected ProviderUnavailable, got {other}"),
        }
        assert!(err.to_string().contains(ep.name()), "{err}");
        // Allowed to fall back: the load succeeds and says where it really runs.
        assert_eq!(
            with(vec![ep, ExecutionProvider::Cpu], true).unwrap(),
            vec![ExecutionProvider::Cpu]
        );
    }
}
