//! One inference API over several backends.
//!
//! An [`Engine`] loads ONNX models into [`Graph`]s. A graph is the shared, immutable half
//! of a model (weights, optimized plan): it is `Send + Sync`, lives behind an `Arc`, and
//! each call to [`Graph::run`] is independent, so per-stream state (KV caches, audio
//! buffers) stays with the caller as ordinary [`Tensor`]s. Backends convert to and from
//! their own types inside this module only; nothing from `ort`, `tract` or `ndarray`
//! appears in these signatures, which keeps models and decoders engine-agnostic and lets
//! one conformance suite (`tests/conformance.rs`) hold every engine to the same numbers.
//!
//! Engines:
//! - [`EngineKind::Ort`]: ONNX Runtime through the `ort` crate, loaded at run time from
//!   `libonnxruntime.so` (CPU, CUDA, TensorRT execution providers).
//! - [`EngineKind::Tract`]: tract, pure Rust, the embedded default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

mod tensor;
pub use tensor::{DType, Dim, IoSpec, Tensor, TensorData};

#[cfg(feature = "ort")]
mod ort;
#[cfg(feature = "ort")]
pub use self::ort::{OrtInfo, ort_info};

#[cfg(feature = "tract")]
mod tract;

/// Loads ONNX models. Create one with [`EngineKind::build`].
pub trait Engine: Send + Sync {
    /// Short name: `"ort"` or `"tract"`.
    fn name(&self) -> &'static str;

    /// Loads and optimizes the ONNX model at `path`.
    fn load(&self, path: &Path) -> Result<Arc<dyn Graph>>;

    /// Loads and optimizes an ONNX model from its serialized bytes.
    fn load_bytes(&self, bytes: &[u8]) -> Result<Arc<dyn Graph>>;
}

/// A loaded model: shared weights and plan, run once per call.
pub trait Graph: Send + Sync {
    /// The graph's inputs, in model order.
    fn inputs(&self) -> &[IoSpec];

    /// The graph's outputs, in model order.
    fn outputs(&self) -> &[IoSpec];

    /// The model's `metadata_props` (see `export/CONTRACT.md`).
    fn metadata(&self) -> &BTreeMap<String, String>;

    /// The execution providers that were actually registered for this graph, in
    /// priority order (`["cpu"]` for tract).
    fn providers(&self) -> &[ExecutionProvider];

    /// Runs the graph on borrowed inputs.
    ///
    /// `inputs` are matched by name and must cover every graph input; each is checked
    /// against its [`IoSpec`] before the backend sees it. Returns every graph output, in
    /// the order of [`Graph::outputs`]. Borrowing lets large, reused inputs (Whisper's
    /// cross-attention keys and values) be passed each step without a copy where the
    /// backend can read them in place (ONNX Runtime).
    fn run_refs(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>>;

    /// Which execution provider ran each node: provider short name (`cpu`, `cuda`,
    /// `tensorrt`, or ONNX Runtime's own name for others) → node names, sorted.
    ///
    /// Only graphs loaded with [`OrtOptions::profile_nodes`] can tell; the others return
    /// `Ok(None)` (tract runs every node on the CPU). The report covers the nodes that ran
    /// since the load, so call it after a run; the first call ends the recording and later
    /// calls return the same report.
    fn node_providers(&self) -> Result<Option<BTreeMap<String, Vec<String>>>> {
        Ok(None)
    }

    /// Runs the graph on owned inputs; see [`Graph::run_refs`].
    fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
        let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
        self.run_refs(&refs)
    }
}

/// Checks named inputs against a graph's specs: every input present once, no unknown
/// names, dtypes and fixed dimensions right. Returns them in graph order.
pub(crate) fn order_inputs<'a>(
    specs: &[IoSpec],
    inputs: &[(&str, &'a Tensor)],
) -> Result<Vec<&'a Tensor>> {
    if let Some((name, _)) = inputs
        .iter()
        .find(|(n, _)| !specs.iter().any(|s| s.name == *n))
    {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::invalid(
            "graph input name",
            format!("one of {names:?}"),
            format!("`{name}`"),
        ));
    }
    specs
        .iter()
        .map(|spec| {
            let mut found = inputs.iter().filter(|(n, _)| *n == spec.name);
            match (found.next(), found.next()) {
                (Some((_, t)), None) => spec.check(t).map(|()| *t),
                (None, _) => Err(Error::invalid(
                    "graph inputs",
                    format!("a tensor for `{spec}`"),
                    "none",
                )),
                (Some(_), Some(_)) => Err(Error::invalid(
                    format!("graph input `{}`", spec.name),
                    "given once",
                    "given twice",
                )),
            }
        })
        .collect()
}

/// Where ONNX Runtime runs a graph's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExecutionProvider {
    /// The default CPU provider.
    Cpu,
    /// NVIDIA CUDA on the given device.
    Cuda {
        /// CUDA device ordinal.
        device_id: i32,
    },
    /// NVIDIA TensorRT on the given device (needs `libnvinfer`).
    TensorRt {
        /// CUDA device ordinal.
        device_id: i32,
    },
}

impl ExecutionProvider {
    /// Short name as used on the command line: `cpu`, `cuda`, `tensorrt`.
    pub fn name(&self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda { .. } => "cuda",
            ExecutionProvider::TensorRt { .. } => "tensorrt",
        }
    }
}

impl std::fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ExecutionProvider {
    type Err = Error;

    /// Parses `cpu`, `cuda`, `cuda:1`, `tensorrt`, `tensorrt:0`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, device) = s.split_once(':').unwrap_or((s, "0"));
        let device_id: i32 = device
            .parse()
            .map_err(|_| Error::invalid("execution provider device", "an integer", device))?;
        match name {
            "cpu" => Ok(ExecutionProvider::Cpu),
            "cuda" => Ok(ExecutionProvider::Cuda { device_id }),
            "tensorrt" | "trt" => Ok(ExecutionProvider::TensorRt { device_id }),
            _ => Err(Error::invalid(
                "execution provider",
                "cpu, cuda[:N] or tensorrt[:N]",
                s,
            )),
        }
    }
}

/// ONNX Runtime's graph optimization levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptLevel {
    /// No graph rewriting.
    Disabled,
    /// Semantics-preserving node removals and constant folding.
    Basic,
    /// Basic plus node fusions.
    Extended,
    /// Everything, including layout changes.
    #[default]
    All,
}

/// Options of the ONNX Runtime engine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrtOptions {
    /// Path of `libonnxruntime.so`. When `None`: `ORT_DYLIB_PATH`, then the project's
    /// `.ort/` folder written by `models/setup.sh`.
    pub dylib_path: Option<PathBuf>,
    /// Providers in priority order; empty means `[Cpu]`. CPU is always appended last so
    /// nodes a GPU provider cannot take still run (ONNX Runtime's own rule).
    pub providers: Vec<ExecutionProvider>,
    /// When a requested provider cannot be registered: `false` (default) fails the load,
    /// `true` continues with the providers that did register.
    pub allow_fallback: bool,
    /// Threads used inside one operator (`0` lets ONNX Runtime choose).
    pub intra_threads: usize,
    /// Threads used to run independent operators in parallel (`0` lets ONNX Runtime choose).
    pub inter_threads: usize,
    /// Graph optimization level.
    pub opt_level: OptLevel,
    /// When a GPU provider registered, fail the load if ONNX Runtime would still run some
    /// node on the CPU (its `session.disable_cpu_ep_fallback`). ONNX Runtime refuses this
    /// together with an explicit CPU provider, so leave [`ExecutionProvider::Cpu`] out of
    /// `providers` when setting it.
    pub disable_cpu_fallback: bool,
    /// Record which provider runs each node (ONNX Runtime's profiler), read back with
    /// [`Graph::node_providers`]. Every run is profiled until then: do not time a graph
    /// loaded with this.
    pub profile_nodes: bool,
}

/// Options of the tract engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TractOptions {
    /// Concrete values for symbolic input dimensions (`"batch" -> 1`) to specialize the
    /// plan ahead of time. Dimensions not listed stay symbolic and are resolved per call.
    pub fixed_dims: BTreeMap<String, usize>,
}

/// Which engine to build, with its options.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineKind {
    /// ONNX Runtime.
    Ort(OrtOptions),
    /// tract.
    Tract(TractOptions),
}

impl Default for EngineKind {
    /// tract: it needs nothing outside the binary.
    fn default() -> Self {
        EngineKind::Tract(TractOptions::default())
    }
}

impl EngineKind {
    /// The engine's short name (`ort`, `tract`).
    pub fn name(&self) -> &'static str {
        match self {
            EngineKind::Ort(_) => "ort",
            EngineKind::Tract(_) => "tract",
        }
    }

    /// Builds the engine. For ONNX Runtime this loads the shared library (once per
    /// process) and fails with [`Error::OrtLibraryNotFound`] if it is missing.
    pub fn build(&self) -> Result<Arc<dyn Engine>> {
        match self {
            #[cfg(feature = "ort")]
            EngineKind::Ort(opts) => Ok(Arc::new(self::ort::OrtEngine::new(opts.clone())?)),
            #[cfg(not(feature = "ort"))]
            EngineKind::Ort(_) => Err(Error::FeatureDisabled {
                what: "the ONNX Runtime engine".into(),
                feature: "ort".into(),
            }),
            #[cfg(feature = "tract")]
            EngineKind::Tract(opts) => Ok(Arc::new(self::tract::TractEngine::new(opts.clone()))),
            #[cfg(not(feature = "tract"))]
            EngineKind::Tract(_) => Err(Error::FeatureDisabled {
                what: "the tract engine".into(),
                feature: "tract".into(),
            }),
        }
    }
}

impl std::str::FromStr for EngineKind {
    type Err = Error;

    /// `ort` or `tract`, with default options (`auto` is refused: it is resolved by
    /// [`EngineOptions::build`], which needs to try loading ONNX Runtime).
    fn from_str(s: &str) -> Result<Self> {
        match s.parse::<EngineChoice>()? {
            EngineChoice::Ort => Ok(EngineKind::Ort(OrtOptions::default())),
            EngineChoice::Tract => Ok(EngineKind::Tract(TractOptions::default())),
            EngineChoice::Auto => Err(Error::invalid("engine", "ort or tract", s)),
        }
    }
}

/// Which engine runs a model's graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// The fastest one available: ONNX Runtime when its library can be loaded (it runs
    /// Whisper 1.7–2.8× faster than tract on a CPU), tract otherwise.
    #[default]
    Auto,
    /// ONNX Runtime.
    Ort,
    /// tract.
    Tract,
}

impl EngineChoice {
    /// `auto`, `ort` or `tract`.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Ort => "ort",
            EngineChoice::Tract => "tract",
        }
    }
}

impl std::str::FromStr for EngineChoice {
    type Err = Error;

    /// `auto`, `ort` (or `onnxruntime`), `tract`: the one place engine names are parsed.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "ort" | "onnxruntime" => Ok(EngineChoice::Ort),
            "tract" => Ok(EngineChoice::Tract),
            _ => Err(Error::invalid("engine", "auto, ort or tract", s)),
        }
    }
}

/// How models are run: the engine and each engine's options. Plain data, shared by the
/// command line, live sessions, a server and a C API; [`EngineOptions::build`] turns it
/// into an engine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineOptions {
    /// Which engine.
    pub engine: EngineChoice,
    /// ONNX Runtime's options (used by [`EngineChoice::Ort`] and by `Auto` when the
    /// library loads).
    pub ort: OrtOptions,
    /// tract's options.
    pub tract: TractOptions,
}

impl EngineOptions {
    /// Options for one engine with its defaults.
    pub fn new(engine: EngineChoice) -> Self {
        EngineOptions {
            engine,
            ..EngineOptions::default()
        }
    }

    /// Builds the engine. `Auto` takes ONNX Runtime when this build has it and its library
    /// loads, and tract otherwise (unless a GPU execution provider was asked for, which
    /// only ONNX Runtime has: then the ONNX Runtime error is returned).
    ///
    /// Fails with [`Error::InvalidInput`] when execution providers other than the CPU are
    /// given for tract, and as [`EngineKind::build`].
    pub fn build(&self) -> Result<Arc<dyn Engine>> {
        let wants_gpu = self
            .ort
            .providers
            .iter()
            .any(|p| *p != ExecutionProvider::Cpu);
        match self.engine {
            EngineChoice::Ort => EngineKind::Ort(self.ort.clone()).build(),
            EngineChoice::Tract if wants_gpu => Err(Error::invalid(
                "execution providers for tract",
                "cpu (tract runs on the CPU only; use --engine ort for cuda or tensorrt)",
                self.ort
                    .providers
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            EngineChoice::Tract => EngineKind::Tract(self.tract.clone()).build(),
            EngineChoice::Auto => match EngineKind::Ort(self.ort.clone()).build() {
                Err(Error::OrtLibraryNotFound { .. } | Error::FeatureDisabled { .. })
                    if !wants_gpu =>
                {
                    EngineKind::Tract(self.tract.clone()).build()
                }
                other => other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> IoSpec {
        IoSpec {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![Dim::Symbolic("n".into())],
        }
    }

    #[test]
    fn order_inputs_reorders_and_rejects_missing_unknown_duplicate() {
        let specs = [spec("a"), spec("b")];
        let t = |v: f32| Tensor::from_f32([1], vec![v]).unwrap();
        let (one, two) = (t(1.0), t(2.0));
        let ordered = order_inputs(&specs, &[("b", &two), ("a", &one)]).unwrap();
        assert_eq!(ordered[0].as_f32().unwrap(), &[1.0]);
        assert!(order_inputs(&specs, &[("a", &one)]).is_err());
        assert!(order_inputs(&specs, &[("a", &one), ("b", &one), ("c", &one)]).is_err());
        assert!(order_inputs(&specs, &[("a", &one), ("a", &one), ("b", &one)]).is_err());
    }

    #[test]
    fn provider_names_parse() {
        assert_eq!(
            "cpu".parse::<ExecutionProvider>().unwrap(),
            ExecutionProvider::Cpu
        );
        assert_eq!(
            "cuda:1".parse::<ExecutionProvider>().unwrap(),
            ExecutionProvider::Cuda { device_id: 1 }
        );
        assert!("metal".parse::<ExecutionProvider>().is_err());
        assert!("cuda:x".parse::<ExecutionProvider>().is_err());
    }

    #[test]
    fn engine_names_parse_in_one_place() {
        assert_eq!("auto".parse::<EngineChoice>().unwrap(), EngineChoice::Auto);
        assert_eq!(
            "onnxruntime".parse::<EngineChoice>().unwrap(),
            EngineChoice::Ort
        );
        assert!("foo".parse::<EngineChoice>().is_err());
        assert!("auto".parse::<EngineKind>().is_err());
        let tract_gpu = EngineOptions {
            engine: EngineChoice::Tract,
            ort: OrtOptions {
                providers: vec![ExecutionProvider::Cuda { device_id: 0 }],
                ..OrtOptions::default()
            },
            ..EngineOptions::default()
        };
        assert!(tract_gpu.build().is_err());
    }
}
