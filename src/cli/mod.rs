//! Subcommands of the `hearken` binary, one file each, plus the engine flags they share.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use hearken::engine::{Engine, EngineKind, ExecutionProvider, OrtOptions, TractOptions};

pub mod bench;
pub mod classify;
pub mod engines;
pub mod eval;
pub mod features;
pub mod inspect;
pub mod transcribe;
pub mod transcribe_ctc;
pub mod vad;

/// Engine selection flags, shared by every command that runs a model.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Inference engine: `tract` (pure Rust) or `ort` (ONNX Runtime); default: tract,
    /// unless the command says otherwise.
    #[arg(long)]
    pub engine: Option<String>,
    /// ONNX Runtime execution providers in priority order: cpu, cuda[:N], tensorrt[:N].
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    pub ep: Vec<String>,
    /// Continue when a requested execution provider cannot be registered.
    #[arg(long)]
    pub allow_fallback: bool,
    /// Intra-op threads for ONNX Runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, then .ort/ from models/setup.sh).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
}

impl EngineArgs {
    /// The engine kind these flags describe, `default` when `--engine` is absent.
    pub fn kind(&self, default: &str) -> Result<EngineKind> {
        Ok(match self.engine.as_deref().unwrap_or(default) {
            "ort" | "onnxruntime" => EngineKind::Ort(OrtOptions {
                dylib_path: self.ort_lib.clone(),
                providers: self
                    .ep
                    .iter()
                    .map(|s| s.parse::<ExecutionProvider>())
                    .collect::<hearken::Result<_>>()?,
                allow_fallback: self.allow_fallback,
                intra_threads: self.threads,
                ..OrtOptions::default()
            }),
            "tract" => EngineKind::Tract(TractOptions::default()),
            other => anyhow::bail!("unknown engine `{other}` (expected ort or tract)"),
        })
    }

    /// Builds the engine, tract when `--engine` is absent.
    pub fn build(&self) -> Result<Arc<dyn Engine>> {
        self.build_or("tract")
    }

    /// Builds the engine, `default` when `--engine` is absent.
    pub fn build_or(&self, default: &str) -> Result<Arc<dyn Engine>> {
        Ok(self.kind(default)?.build()?)
    }
}
