//! `hearken inspect`: a model's interface and metadata, and whether it meets the contract.

use std::path::PathBuf;

use anyhow::Result;
use hearken::model::Contract;

use super::options::EngineArgs;

/// Flags of `hearken inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model file.
    model: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: Args) -> Result<()> {
    let mut o = String::new();
    let engine = args.engine.options()?.build()?;
    let graph = engine.load(&args.model)?;
    outln!(o, "model    {}", args.model.display());
    outln!(o, "engine   {} (providers: {})", engine.name(), {
        let p: Vec<&str> = graph.providers().iter().map(|p| p.name()).collect();
        p.join(", ")
    });
    outln!(o, "inputs");
    for spec in graph.inputs() {
        outln!(o, "  {spec}");
    }
    outln!(o, "outputs");
    for spec in graph.outputs() {
        outln!(o, "  {spec}");
    }
    outln!(o, "metadata");
    if graph.metadata().is_empty() {
        outln!(o, "  (none)");
    }
    for (k, v) in graph.metadata() {
        let v = if v.chars().count() > 120 {
            format!(
                "{}… ({} bytes)",
                v.chars().take(120).collect::<String>(),
                v.len()
            )
        } else {
            v.clone()
        };
        outln!(o, "  {k} = {v}");
    }
    match Contract::from_metadata(&args.model, graph.metadata()) {
        Ok(c) => outln!(
            o,
            "contract ok: {} ({:?})",
            c.model_type.as_str(),
            c.features
        ),
        Err(e) => outln!(o, "contract not met: {e}"),
    }
    super::out::print(&o)
}
