//! `hearken engines`: what this build can run on, and where ONNX Runtime came from.

use std::path::PathBuf;

use anyhow::Result;

/// Flags of `hearken engines`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, then .ort/ from models/setup.sh).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let mut o = String::new();
    if cfg!(feature = "tract") {
        outln!(
            o,
            "tract  {}  (pure Rust; providers: cpu)",
            env!("HEARKEN_TRACT_VERSION")
        );
    } else {
        outln!(o, "tract  not compiled in (rebuild with --features tract)");
    }
    #[cfg(feature = "ort")]
    match hearken::engine::ort_info(args.ort_lib.as_deref()) {
        Ok(info) => {
            let providers: Vec<&str> = info.providers.iter().map(|p| p.name()).collect();
            outln!(
                o,
                "ort    ONNX Runtime {}  ({}; providers: {})",
                info.version,
                info.path.display(),
                providers.join(", ")
            );
            for missing in ["cuda", "tensorrt"]
                .iter()
                .filter(|p| !providers.contains(p))
            {
                outln!(
                    o,
                    "       {missing}: unavailable (not in this ONNX Runtime build)"
                );
            }
        }
        Err(e) => outln!(o, "ort    unavailable: {e}"),
    }
    #[cfg(not(feature = "ort"))]
    {
        let _ = args;
        outln!(o, "ort    not compiled in (rebuild with --features ort)");
    }
    super::out::print(&o)
}
