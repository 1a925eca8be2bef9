//! `hearken inspect`: a model's interface and metadata, and whether it meets the contract.

use std::path::PathBuf;

use anyhow::Result;
use hearken::model::Contract;

use super::EngineArgs;

/// Flags of `hearken inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model file.
    model: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: Args) -> Result<()> {
    let engine = args.engine.build()?;
    let graph = engine.load(&args.model)?;
    println!("model    {}", args.model.display());
    println!("engine   {} (providers: {})", engine.name(), {
        let p: Vec<&str> = graph.providers().iter().map(|p| p.name()).collect();
        p.join(", ")
    });
    println!("inputs");
    for spec in graph.inputs() {
        println!("  {spec}");
    }
    println!("outputs");
    for spec in graph.outputs() {
        println!("  {spec}");
    }
    println!("metadata");
    if graph.metadata().is_empty() {
        println!("  (none)");
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
        println!("  {k} = {v}");
    }
    match Contract::from_metadata(&args.model, graph.metadata()) {
        Ok(c) => println!("contract ok: {} ({:?})", c.model_type.as_str(), c.features),
        Err(e) => println!("contract not met: {e}"),
    }
    Ok(())
}
