//! The ONNX Runtime engine, through the `ort` crate with `load-dynamic`.
//!
//! The shared library is not linked at build time: it is opened once per process from
//! the first path that exists among an explicit [`OrtOptions::dylib_path`],
//! `ORT_DYLIB_PATH`, and the project's `.ort/` folder (written by `models/setup.sh`).
//! `ort` panics when asked to open a path that does not exist, so every candidate is
//! checked here first and a missing library is [`Error::OrtLibraryNotFound`].
//!
//! Execution providers are registered one by one on each session so that hearken knows
//! which ones really took, instead of trusting ONNX Runtime's silent fallback to CPU.
//! Registration is not the whole story: a registered GPU provider may still leave nodes
//! it has no kernel for to the CPU. [`OrtOptions::disable_cpu_fallback`] makes ONNX
//! Runtime refuse such a session, and [`OrtOptions::profile_nodes`] tells which nodes went
//! where, read from ONNX Runtime's profiler output (the only place the C API reports the
//! assignment) by [`node_providers_from_profile`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ort::ep::ExecutionProvider as _;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};

use super::{DType, Dim, Engine, ExecutionProvider, Graph, IoSpec, OptLevel, OrtOptions};
use super::{Tensor, TensorData, order_inputs};
use crate::{Error, Result};

/// File name of the library version hearken is built and tested against.
pub(crate) const ORT_LIB_NAME: &str = "libonnxruntime.so.1.31.1";

/// The process-wide ONNX Runtime environment and where its library came from.
struct Loaded {
    env: ort::environment::Environment,
    path: PathBuf,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
// Serializes first-time loading: `OnceLock::get_or_try_init` is unstable.
static LOADING: Mutex<()> = Mutex::new(());

/// The candidate library paths, in look-up order. A path the user names (argument or
/// `ORT_DYLIB_PATH`) is the only candidate: silently loading another library instead
/// would hide a misconfiguration.
fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    // The project folder: in the checkout this binary was built from, then in the
    // current directory (for a binary copied elsewhere and run from a checkout).
    vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".ort")
            .join(ORT_LIB_NAME),
        Path::new(".ort").join(ORT_LIB_NAME),
    ]
}

fn load(explicit: Option<&Path>) -> Result<&'static Loaded> {
    let tried = candidates(explicit);
    let path =
        tried
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| Error::OrtLibraryNotFound {
                tried: tried.clone(),
            })?;
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = LOADED.get() {
        // One library per process: ONNX Runtime cannot be unloaded or swapped.
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        if explicit.is_some() && !same(&l.path, &path) {
            return Err(Error::ModelLoad {
                path,
                engine: "ort",
                reason: format!(
                    "ONNX Runtime is already loaded from {} in this process",
                    l.path.display()
                ),
            });
        }
        return Ok(l);
    }
    // ort panics when the file is missing; it was checked above.
    let env = ort::init_from(&path)
        .map_err(|e| Error::ModelLoad {
            path: path.clone(),
            engine: "ort",
            reason: format!("cannot load ONNX Runtime library: {e}"),
        })?
        .with_name("hearken")
        .build()
        .map_err(|e| Error::ModelLoad {
            path: path.clone(),
            engine: "ort",
            reason: format!("cannot create ONNX Runtime environment: {e}"),
        })?;
    Ok(LOADED.get_or_init(|| Loaded { env, path }))
}

/// What `hearken engines` reports about ONNX Runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtInfo {
    /// The library file that was loaded.
    pub path: PathBuf,
    /// Version, as reported by the library's build info (e.g. `1.31.1`).
    pub version: String,
    /// Execution providers compiled into the library (`cpu`, `cuda`, `tensorrt`) that
    /// hearken can request. Being compiled in does not mean the provider's own
    /// dependencies (CUDA, cuDNN, TensorRT) are present; only a session load tells.
    pub providers: Vec<ExecutionProvider>,
}

/// Loads ONNX Runtime (see [`OrtOptions::dylib_path`] for the look-up order) and
/// describes it.
pub fn ort_info(dylib_path: Option<&Path>) -> Result<OrtInfo> {
    let loaded = load(dylib_path)?;
    let build = ort::info();
    // The build string reads "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=...".
    let version = build
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|kv| kv.strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .or_else(|| {
            let name = loaded.path.file_name()?.to_string_lossy().into_owned();
            name.strip_prefix("libonnxruntime.so.").map(str::to_string)
        })
        .unwrap_or_else(|| build.to_string());
    #[allow(unused_mut)]
    let mut providers = vec![ExecutionProvider::Cpu];
    #[cfg(feature = "cuda")]
    if ort::ep::CUDA::is_available().unwrap_or(false) {
        providers.push(ExecutionProvider::Cuda { device_id: 0 });
    }
    #[cfg(feature = "tensorrt")]
    if ort::ep::TensorRT::is_available().unwrap_or(false) {
        providers.push(ExecutionProvider::TensorRt { device_id: 0 });
    }
    Ok(OrtInfo {
        path: loaded.path.clone(),
        version,
        providers,
    })
}

pub(crate) struct OrtEngine {
    opts: OrtOptions,
    env: &'static ort::environment::Environment,
}

impl OrtEngine {
    pub(crate) fn new(opts: OrtOptions) -> Result<Self> {
        let loaded = load(opts.dylib_path.as_deref())?;
        Ok(OrtEngine {
            opts,
            env: &loaded.env,
        })
    }

    /// A session builder with threads, optimization level and providers applied.
    /// Returns the providers that registered, in priority order.
    fn builder(&self, path: &Path) -> Result<(SessionBuilder, Vec<ExecutionProvider>)> {
        let fail = |e: ort::Error| Error::ModelLoad {
            path: path.to_path_buf(),
            engine: "ort",
            reason: e.to_string(),
        };
        let level = match self.opts.opt_level {
            OptLevel::Disabled => GraphOptimizationLevel::Disable,
            OptLevel::Basic => GraphOptimizationLevel::Level1,
            OptLevel::Extended => GraphOptimizationLevel::Level2,
            OptLevel::All => GraphOptimizationLevel::All,
        };
        let mut b = Session::builder(self.env)
            .map_err(fail)?
            .with_optimization_level(level)
            .map_err(|e| fail(e.into()))?;
        if self.opts.intra_threads > 0 {
            b = b
                .with_intra_threads(self.opts.intra_threads)
                .map_err(|e| fail(e.into()))?;
        }
        if self.opts.inter_threads > 0 {
            b = b
                .with_inter_threads(self.opts.inter_threads)
                .map_err(|e| fail(e.into()))?
                .with_parallel_execution(true)
                .map_err(|e| fail(e.into()))?;
        }
        let mut registered = Vec::new();
        for &ep in &self.opts.providers {
            match register(&mut b, ep) {
                Ok(()) => registered.push(ep),
                Err(reason) if self.opts.allow_fallback => {
                    tracing::warn!(provider = %ep, %reason, "execution provider unavailable, continuing without it");
                }
                Err(reason) => {
                    return Err(Error::ProviderUnavailable {
                        provider: ep.name().to_string(),
                        reason,
                    });
                }
            }
        }
        let gpu_registered = registered.iter().any(|&p| p != ExecutionProvider::Cpu);
        if self.opts.disable_cpu_fallback && gpu_registered {
            if self.opts.providers.contains(&ExecutionProvider::Cpu) {
                return Err(Error::invalid(
                    "execution providers",
                    "no explicit cpu when CPU fallback is disabled",
                    "cpu in the list",
                ));
            }
            b = b
                .with_config_entry("session.disable_cpu_ep_fallback", "1")
                .map_err(|e| fail(e.into()))?;
        }
        if self.opts.profile_nodes {
            b = b
                .with_profiling(profile_prefix())
                .map_err(|e| fail(e.into()))?;
        }
        if !registered.contains(&ExecutionProvider::Cpu) {
            registered.push(ExecutionProvider::Cpu);
        }
        Ok((b, registered))
    }

    /// The load error, made clear when ONNX Runtime refused CPU fallback.
    fn commit_err(&self, path: &Path, providers: &[ExecutionProvider], e: &ort::Error) -> Error {
        let mut reason = one_line(&e.to_string());
        if self.opts.disable_cpu_fallback && reason.contains("fallback to CPU EP") {
            let gpu: Vec<&str> = providers
                .iter()
                .filter(|&&p| p != ExecutionProvider::Cpu)
                .map(|p| p.name())
                .collect();
            reason = format!(
                "some nodes cannot run on {} and CPU fallback is disabled; profile the graph \
                 with fallback allowed to see which ({reason})",
                gpu.join(", ")
            );
        }
        Error::ModelLoad {
            path: path.to_path_buf(),
            engine: "ort",
            reason,
        }
    }

    fn finish(
        &self,
        session: Session,
        providers: Vec<ExecutionProvider>,
    ) -> Result<Arc<dyn Graph>> {
        let inputs = session
            .inputs()
            .iter()
            .map(|o| io_spec(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| io_spec(o.name(), o.dtype()))
            .collect();
        let mut metadata = BTreeMap::new();
        if let Ok(meta) = session.metadata() {
            for key in meta.custom_keys().unwrap_or_default() {
                if let Some(v) = meta.custom(&key) {
                    metadata.insert(key, v);
                }
            }
        }
        Ok(Arc::new(OrtGraph {
            session: Mutex::new(session),
            inputs,
            outputs,
            metadata,
            providers,
            profile: Mutex::new(if self.opts.profile_nodes {
                Profile::Recording
            } else {
                Profile::Off
            }),
        }))
    }
}

/// Registers one provider, returning ONNX Runtime's reason when it cannot.
fn register(b: &mut SessionBuilder, ep: ExecutionProvider) -> std::result::Result<(), String> {
    match ep {
        ExecutionProvider::Cpu => ort::ep::CPU::default()
            .register(b)
            .map_err(|e| e.to_string()),
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { device_id } => {
            if !ort::ep::CUDA::is_available().unwrap_or(false) {
                return Err("this ONNX Runtime library was built without CUDA (the GPU build ships as onnxruntime-gpu)".into());
            }
            ort::ep::CUDA::default()
                .with_device_id(device_id)
                .register(b)
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "tensorrt")]
        ExecutionProvider::TensorRt { device_id } => {
            if !ort::ep::TensorRT::is_available().unwrap_or(false) {
                return Err("this ONNX Runtime library was built without TensorRT".into());
            }
            ort::ep::TensorRT::default()
                .with_device_id(device_id)
                .register(b)
                .map_err(|e| e.to_string())
        }
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "hearken was built without the `{}` cargo feature",
            other.name()
        )),
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn load(&self, path: &Path) -> Result<Arc<dyn Graph>> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such model file"),
            ));
        }
        let (mut b, providers) = self.builder(path)?;
        let session = b
            .commit_from_file(path)
            .map_err(|e| self.commit_err(path, &providers, &e))?;
        self.finish(session, providers)
    }

    fn load_bytes(&self, bytes: &[u8]) -> Result<Arc<dyn Graph>> {
        let path = Path::new("<memory>");
        let (mut b, providers) = self.builder(path)?;
        let session = b
            .commit_from_memory(bytes)
            .map_err(|e| self.commit_err(path, &providers, &e))?;
        self.finish(session, providers)
    }
}

/// ONNX Runtime messages can span lines; errors are printed on one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn dtype_of(t: TensorElementType) -> Option<DType> {
    Some(match t {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Bool => DType::Bool,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Int8 => DType::I8,
        _ => return None,
    })
}

fn io_spec(name: &str, ty: &ValueType) -> IoSpec {
    match ty {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => IoSpec {
            name: name.to_string(),
            // Types hearken cannot feed are shown as f32; `check` rejects feeding them
            // only if the caller passes a mismatching tensor, and the run reports the rest.
            dtype: dtype_of(*ty).unwrap_or(DType::F32),
            shape: shape
                .iter()
                .enumerate()
                .map(|(i, &d)| match usize::try_from(d) {
                    Ok(n) => Dim::Fixed(n),
                    Err(_) => Dim::Symbolic(
                        dimension_symbols
                            .get(i)
                            .filter(|s| !s.is_empty())
                            .cloned()
                            .unwrap_or_else(|| "?".to_string()),
                    ),
                })
                .collect(),
        },
        _ => IoSpec {
            name: name.to_string(),
            dtype: DType::F32,
            shape: vec![],
        },
    }
}

struct OrtGraph {
    // `Session::run` takes `&mut self` in ort 2.0; calls on one graph are serialized.
    // Concurrent streams that need parallel runs load one graph each.
    session: Mutex<Session>,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    metadata: BTreeMap<String, String>,
    providers: Vec<ExecutionProvider>,
    profile: Mutex<Profile>,
}

/// Node-assignment recording of one graph ([`OrtOptions::profile_nodes`]).
enum Profile {
    /// Loaded without profiling.
    Off,
    /// ONNX Runtime is recording; the report is read at the first request.
    Recording,
    /// Recording ended; the report.
    Done(BTreeMap<String, Vec<String>>),
}

/// A fresh profile file prefix in the temporary folder; ONNX Runtime appends the date
/// and `.json`.
fn profile_prefix() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "hearken-ort-profile-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// hearken's short name for an ONNX Runtime provider name.
fn provider_short_name(ort_name: &str) -> String {
    match ort_name {
        "CPUExecutionProvider" => "cpu".into(),
        "CUDAExecutionProvider" => "cuda".into(),
        "TensorrtExecutionProvider" => "tensorrt".into(),
        other => other.into(),
    }
}

/// Which provider ran each node, from the text of an ONNX Runtime profile: provider short
/// name → distinct node names, sorted.
///
/// The profile is a JSON array of trace events; a node's kernel run is an event with
/// `"cat": "Node"`, `"name": "<node>_kernel_time"` and `args.provider` naming the provider
/// (other node events, such as `_fence_before`, carry no provider and are skipped). ONNX
/// Runtime writes names without escaping them, so when the text is not valid JSON (a node
/// name holding a quote or backslash) the events are read line by line instead, one per
/// line as ONNX Runtime writes them.
pub(crate) fn node_providers_from_profile(text: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut by_provider: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |name: &str, provider: &str| {
        let node = name.strip_suffix("_kernel_time").unwrap_or(name);
        by_provider
            .entry(provider_short_name(provider))
            .or_default()
            .insert(node.to_string());
    };
    match serde_json::from_str::<Vec<serde_json::Value>>(text) {
        Ok(events) => {
            for e in &events {
                if e.get("cat").and_then(|c| c.as_str()) != Some("Node") {
                    continue;
                }
                let name = e.get("name").and_then(|n| n.as_str());
                let provider = e.pointer("/args/provider").and_then(|p| p.as_str());
                if let (Some(name), Some(provider)) = (name, provider) {
                    add(name, provider);
                }
            }
        }
        Err(json_err) => {
            let mut any = false;
            for line in text.lines() {
                if !line.contains(r#""cat" : "Node""#) {
                    continue;
                }
                let between = |start: &str, end: &str| {
                    let from = line.find(start)? + start.len();
                    let len = line[from..].find(end)?;
                    Some(&line[from..from + len])
                };
                let name = between(r#""name" :""#, r#"","args""#);
                let provider = between(r#""provider" : ""#, "\"");
                if let (Some(name), Some(provider)) = (name, provider) {
                    add(name, provider);
                    any = true;
                }
            }
            if !any && !text.trim().is_empty() {
                return Err(Error::invalid(
                    "ONNX Runtime profile",
                    "a JSON array of trace events",
                    format!("unreadable text ({json_err})"),
                ));
            }
        }
    }
    Ok(by_provider
        .into_iter()
        .map(|(p, nodes)| (p, nodes.into_iter().collect()))
        .collect())
}

impl OrtGraph {
    /// Ends ONNX Runtime's profiling and reads the report back, removing the file.
    fn end_profile(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let file = PathBuf::from(session.end_profiling().map_err(run_err)?);
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e));
        // The file is ours and only read once; a failed removal leaves a stray temp file.
        let _ = std::fs::remove_file(&file);
        node_providers_from_profile(&text?)
    }
}

impl Drop for OrtGraph {
    fn drop(&mut self) {
        // ONNX Runtime writes the profile when the session ends: remove it if unread.
        let recording = matches!(
            *self.profile.get_mut().unwrap_or_else(|e| e.into_inner()),
            Profile::Recording
        );
        if recording {
            let _ = self.end_profile();
        }
    }
}

fn run_err(e: impl std::fmt::Display) -> Error {
    Error::Run {
        engine: "ort",
        reason: one_line(&e.to_string()),
    }
}

/// A view of `t` for ONNX Runtime: no copy of the elements.
fn to_view(t: &Tensor) -> Result<SessionInputValue<'_>> {
    use ort::value::TensorRef;
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let v: ort::Result<SessionInputValue<'_>> = match t.data() {
        TensorData::F32(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        TensorData::F16(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        TensorData::I64(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        TensorData::I32(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        TensorData::Bool(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        TensorData::U8(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        TensorData::I8(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
    };
    v.map_err(run_err)
}

fn from_value(name: &str, v: &DynValue) -> Result<Tensor> {
    let ValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(run_err(format!("output `{name}` is not a tensor")));
    };
    fn get<T: ort::value::PrimitiveTensorElementType + Clone>(
        v: &DynValue,
    ) -> Result<(Vec<usize>, Vec<T>)> {
        let (shape, data) = v.try_extract_tensor::<T>().map_err(run_err)?;
        Ok((shape.iter().map(|&d| d as usize).collect(), data.to_vec()))
    }
    match ty {
        TensorElementType::Float32 => get::<f32>(v).and_then(|(s, d)| Tensor::from_f32(s, d)),
        TensorElementType::Float16 => get::<half::f16>(v).and_then(|(s, d)| Tensor::from_f16(s, d)),
        TensorElementType::Int64 => get::<i64>(v).and_then(|(s, d)| Tensor::from_i64(s, d)),
        TensorElementType::Int32 => get::<i32>(v).and_then(|(s, d)| Tensor::from_i32(s, d)),
        TensorElementType::Bool => get::<bool>(v).and_then(|(s, d)| Tensor::from_bool(s, d)),
        TensorElementType::Uint8 => get::<u8>(v).and_then(|(s, d)| Tensor::from_u8(s, d)),
        TensorElementType::Int8 => get::<i8>(v).and_then(|(s, d)| Tensor::from_i8(s, d)),
        other => Err(run_err(format!(
            "output `{name}` has unsupported type {other:?}"
        ))),
    }
}

impl Graph for OrtGraph {
    fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }

    fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    fn providers(&self) -> &[ExecutionProvider] {
        &self.providers
    }

    fn node_providers(&self) -> Result<Option<BTreeMap<String, Vec<String>>>> {
        let mut profile = self.profile.lock().unwrap_or_else(|e| e.into_inner());
        match &*profile {
            Profile::Off => Ok(None),
            Profile::Done(report) => Ok(Some(report.clone())),
            Profile::Recording => {
                let report = self.end_profile()?;
                *profile = Profile::Done(report.clone());
                Ok(Some(report))
            }
        }
    }

    fn run_refs(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>> {
        let ordered = order_inputs(&self.inputs, inputs)?;
        let values: Vec<(&str, SessionInputValue<'_>)> = self
            .inputs
            .iter()
            .zip(ordered)
            .map(|(spec, t)| Ok((spec.name.as_str(), to_view(t)?)))
            .collect::<Result<_>>()?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(values).map_err(run_err)?;
        self.outputs
            .iter()
            .map(|spec| {
                let v = outputs
                    .get(&spec.name)
                    .ok_or_else(|| run_err(format!("output `{}` missing", spec.name)))?;
                from_value(&spec.name, v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as ONNX Runtime 1.31 writes them: session events, a fence event without a
    /// provider, and the same node run twice.
    const PROFILE: &str = r#"[
{"cat" : "Session","pid" :1,"tid" :1,"dur" :120,"ts" :3,"ph" : "X","name" :"model_loading_uri","args" : {}},
{"cat" : "Node","pid" :1,"tid" :1,"dur" :0,"ts" :200,"ph" : "X","name" :"/conv1/Conv_fence_before","args" : {"op_name" : "Conv"}},
{"cat" : "Node","pid" :1,"tid" :1,"dur" :40,"ts" :201,"ph" : "X","name" :"/conv1/Conv_kernel_time","args" : {"op_name" : "Conv","provider" : "CUDAExecutionProvider"}},
{"cat" : "Node","pid" :1,"tid" :1,"dur" :2,"ts" :250,"ph" : "X","name" :"/Shape_kernel_time","args" : {"op_name" : "Shape","provider" : "CPUExecutionProvider"}},
{"cat" : "Node","pid" :1,"tid" :1,"dur" :41,"ts" :300,"ph" : "X","name" :"/conv1/Conv_kernel_time","args" : {"op_name" : "Conv","provider" : "CUDAExecutionProvider"}},
{"cat" : "Node","pid" :1,"tid" :1,"dur" :3,"ts" :350,"ph" : "X","name" :"/ln/Mul_kernel_time","args" : {"op_name" : "Mul","provider" : "MyExecutionProvider"}},
{"cat" : "Session","pid" :1,"tid" :1,"dur" :400,"ts" :199,"ph" : "X","name" :"model_run","args" : {}}
]
"#;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn profile_nodes_are_counted_once_per_provider() {
        let report = node_providers_from_profile(PROFILE).unwrap();
        assert_eq!(report.len(), 3);
        assert_eq!(report["cuda"], names(&["/conv1/Conv"]));
        assert_eq!(report["cpu"], names(&["/Shape"]));
        assert_eq!(report["MyExecutionProvider"], names(&["/ln/Mul"]));
    }

    #[test]
    fn unescaped_node_names_are_read_line_by_line() {
        let text = PROFILE.replace("/Shape_kernel", r#"/Sha"pe_kernel"#);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
        let report = node_providers_from_profile(&text).unwrap();
        assert_eq!(report["cpu"], names(&[r#"/Sha"pe"#]));
        assert_eq!(report["cuda"], names(&["/conv1/Conv"]));
    }

    #[test]
    fn empty_and_garbage_profiles() {
        assert!(node_providers_from_profile("[]").unwrap().is_empty());
        assert!(node_providers_from_profile("").unwrap().is_empty());
        assert!(node_providers_from_profile("not a profile").is_err());
    }
}
