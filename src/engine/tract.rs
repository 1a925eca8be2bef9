//! The tract engine: pure Rust, nothing to install, the embedded default.
//!
//! A model is parsed once into an optimized, runnable plan shared behind an `Arc`; each
//! [`Graph::run`] spawns a fresh execution state, so concurrent calls need no lock.
//! Dynamic input dimensions (ONNX `dim_param`) stay symbolic through optimization and
//! are bound from the actual input shapes on every call; [`TractOptions::fixed_dims`]
//! binds some ahead of time, which lets tract specialize kernels for them.
//!
//! Input and output specs and `metadata_props` are read from the ONNX protobuf itself,
//! since tract's optimizer may rename or fuse the nodes that carried them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use tract_onnx::pb;
use tract_onnx::prelude::Tensor as TractTensor;
use tract_onnx::prelude::{
    DatumType, InferenceFact, InferenceModelExt, IntoRunnable, SymbolValues, TDim, TValue,
    TractResult, TypedModel, TypedRunnableModel,
};

use super::{DType, Dim, Engine, ExecutionProvider, Graph, IoSpec, TractOptions};
use super::{Tensor, TensorData, order_inputs};
use crate::{Error, Result};

pub(crate) struct TractEngine {
    opts: TractOptions,
}

impl TractEngine {
    pub(crate) fn new(opts: TractOptions) -> Self {
        TractEngine { opts }
    }

    fn load_proto(
        &self,
        proto: pb::ModelProto,
        path: &Path,
        dir: Option<&str>,
    ) -> Result<Arc<dyn Graph>> {
        let fail = |e: tract_onnx::prelude::TractError| Error::ModelLoad {
            path: path.to_path_buf(),
            engine: "tract",
            reason: format!("{e:#}").replace('\n', " "),
        };
        let graph = proto.graph.as_ref().ok_or_else(|| Error::ModelLoad {
            path: path.to_path_buf(),
            engine: "tract",
            reason: "the model has no graph".into(),
        })?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_str()))
            .map(io_spec)
            .collect::<Vec<_>>();
        let outputs = graph.output.iter().map(io_spec).collect::<Vec<_>>();
        let metadata = proto
            .metadata_props
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();

        let parsed = tract_onnx::onnx().parse(&proto, dir).map_err(fail)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(Error::ModelLoad {
                path: path.to_path_buf(),
                engine: "tract",
                reason: format!("unresolved graph inputs {:?}", parsed.unresolved_inputs),
            });
        }
        let mut model = parsed.model;
        // Declare every input's fact from the ONNX declaration: dimensions the model leaves
        // unnamed (neither dim_value nor dim_param, as in Silero VAD) get a symbol of their
        // own, so tract can type the graph and bind them from each call's inputs.
        for (i, spec) in inputs.iter().enumerate() {
            let shape: Vec<TDim> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Dim::Fixed(n) => TDim::Val(*n as i64),
                    Dim::Symbolic(name) if name != "?" => model.sym(name).into(),
                    Dim::Symbolic(_) => model
                        .sym(&format!("{}_{axis}", sanitize(&spec.name)))
                        .into(),
                })
                .collect();
            let fact = InferenceFact::dt_shape(datum_type(spec.dtype), shape);
            model.set_input_fact(i, fact).map_err(fail)?;
        }
        let mut typed: TypedModel = model.into_typed().map_err(fail)?;
        if !self.opts.fixed_dims.is_empty() {
            let subs: HashMap<_, _> = self
                .opts
                .fixed_dims
                .iter()
                .map(|(name, &v)| (typed.sym(name), TDim::Val(v as i64)))
                .collect();
            typed = typed.set_symbols(&subs).map_err(fail)?;
        }
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(fail)?;
        Ok(Arc::new(TractGraph {
            plan,
            inputs,
            outputs,
            metadata,
            converted: Mutex::new(Vec::new()),
        }))
    }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn load(&self, path: &Path) -> Result<Arc<dyn Graph>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let proto = decode(&bytes, path)?;
        let dir = path.parent().and_then(|d| d.to_str());
        self.load_proto(proto, path, dir)
    }

    fn load_bytes(&self, bytes: &[u8]) -> Result<Arc<dyn Graph>> {
        let path = Path::new("<memory>");
        self.load_proto(decode(bytes, path)?, path, None)
    }
}

/// A symbol name made of the characters tract's dimension parser accepts.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("in_{s}")
}

fn datum_type(d: DType) -> DatumType {
    match d {
        DType::F32 => DatumType::F32,
        DType::F16 => DatumType::F16,
        DType::I64 => DatumType::I64,
        DType::I32 => DatumType::I32,
        DType::Bool => DatumType::Bool,
        DType::U8 => DatumType::U8,
        DType::I8 => DatumType::I8,
    }
}

fn decode(bytes: &[u8], path: &Path) -> Result<pb::ModelProto> {
    use prost::Message as _;
    let proto = pb::ModelProto::decode(bytes).map_err(|e| Error::ModelLoad {
        path: path.to_path_buf(),
        engine: "tract",
        reason: format!("not an ONNX model: {e}"),
    })?;
    if proto.graph.is_none() {
        return Err(Error::ModelLoad {
            path: path.to_path_buf(),
            engine: "tract",
            reason: "not an ONNX model: no graph".into(),
        });
    }
    Ok(proto)
}

fn io_spec(v: &pb::ValueInfoProto) -> IoSpec {
    use pb::type_proto::Value;
    let (dtype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => {
            let dims = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(n))
                                if *n >= 0 =>
                            {
                                Dim::Fixed(*n as usize)
                            }
                            Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                                Dim::Symbolic(p.clone())
                            }
                            _ => Dim::Symbolic("?".into()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                DType::from_onnx_code(t.elem_type).unwrap_or(DType::F32),
                dims,
            )
        }
        _ => (DType::F32, vec![]),
    };
    IoSpec {
        name: v.name.clone(),
        dtype,
        shape,
    }
}

struct TractGraph {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    metadata: BTreeMap<String, String>,
    /// tract copies of large inputs, keyed by the identity of hearken's shared elements:
    /// an input passed again unchanged (Whisper's cross-attention keys and values, every
    /// decoder step) is not converted again. A dead `Weak` means the caller dropped the
    /// tensor, so a reused address can never hit a stale entry.
    converted: Mutex<Vec<(Weak<TensorData>, Arc<TractTensor>)>>,
}

/// Inputs at least this large are worth remembering (1 Mi elements = 4 MiB of f32).
const CACHE_MIN_ELEMENTS: usize = 1 << 20;
/// Entries kept at most; Whisper needs two.
const CACHE_CAPACITY: usize = 4;

impl TractGraph {
    fn input_value(&self, t: &Tensor) -> Result<TValue> {
        if t.len() < CACHE_MIN_ELEMENTS {
            return to_tract(t).map(TValue::from).map_err(run_err);
        }
        let key = Arc::downgrade(t.shared_data());
        let mut cache = self.converted.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(k, _)| k.strong_count() > 0);
        if let Some((_, v)) = cache.iter().find(|(k, _)| Weak::ptr_eq(k, &key)) {
            return Ok(TValue::from_const(v.clone()));
        }
        let v = Arc::new(to_tract(t).map_err(run_err)?);
        if cache.len() >= CACHE_CAPACITY {
            cache.remove(0);
        }
        cache.push((key, v.clone()));
        Ok(TValue::from_const(v))
    }
}

fn run_err(e: impl std::fmt::Display) -> Error {
    Error::Run {
        engine: "tract",
        reason: e.to_string().replace('\n', " "),
    }
}

fn to_tract(t: &Tensor) -> TractResult<TractTensor> {
    let s = t.shape();
    match t.data() {
        TensorData::F32(v) => TractTensor::from_shape(s, v),
        TensorData::F16(v) => TractTensor::from_shape(s, v),
        TensorData::I64(v) => TractTensor::from_shape(s, v),
        TensorData::I32(v) => TractTensor::from_shape(s, v),
        TensorData::Bool(v) => TractTensor::from_shape(s, v),
        TensorData::U8(v) => TractTensor::from_shape(s, v),
        TensorData::I8(v) => TractTensor::from_shape(s, v),
    }
}

/// `symbols`: the values the run bound to the model's symbols, for outputs that tract
/// computed as symbolic dimensions at plan time (`Shape` of a dynamic input).
fn from_tract(t: &TractTensor, symbols: &SymbolValues) -> Result<Tensor> {
    let shape = t.shape().to_vec();
    let view = t.try_as_plain_ram().map_err(run_err)?;
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::F32(view.as_slice::<f32>().map_err(run_err)?.to_vec()),
        DatumType::F16 => TensorData::F16(view.as_slice::<half::f16>().map_err(run_err)?.to_vec()),
        DatumType::I64 => TensorData::I64(view.as_slice::<i64>().map_err(run_err)?.to_vec()),
        DatumType::I32 => TensorData::I32(view.as_slice::<i32>().map_err(run_err)?.to_vec()),
        DatumType::Bool => TensorData::Bool(view.as_slice::<bool>().map_err(run_err)?.to_vec()),
        DatumType::U8 => TensorData::U8(view.as_slice::<u8>().map_err(run_err)?.to_vec()),
        DatumType::I8 => TensorData::I8(view.as_slice::<i8>().map_err(run_err)?.to_vec()),
        // tract keeps shape arithmetic (Shape, Gather on shapes, Cast to INT64) as
        // symbolic dimensions; at run time they are concrete and cast to i64.
        DatumType::TDim => TensorData::I64(
            view.as_slice::<TDim>()
                .map_err(run_err)?
                .iter()
                .map(|d| d.eval(symbols).to_i64().map_err(run_err))
                .collect::<Result<_>>()?,
        ),
        other => return Err(run_err(format!("unsupported output type {other:?}"))),
    };
    Tensor::new(shape, data)
}

impl Graph for TractGraph {
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
        &[ExecutionProvider::Cpu]
    }

    fn run_refs(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>> {
        let ordered = order_inputs(&self.inputs, inputs)?;
        let values: tract_onnx::prelude::TVec<TValue> = ordered
            .iter()
            .map(|t| self.input_value(t))
            .collect::<Result<_>>()?;
        // Symbol values from the inputs' named dimensions, for symbolic outputs.
        let mut symbols = SymbolValues::default();
        for (spec, t) in self.inputs.iter().zip(&ordered) {
            for (d, &n) in spec.shape.iter().zip(t.shape()) {
                if let Dim::Symbolic(name) = d
                    && name != "?"
                {
                    symbols = symbols.with(&self.plan.model().sym(name), n as i64);
                }
            }
        }
        let out = self
            .plan
            .run(values)
            .map_err(|e| run_err(format!("{e:#}")))?;
        let symbols = &symbols;
        if out.len() != self.outputs.len() {
            return Err(run_err(format!(
                "expected {} outputs, tract produced {}",
                self.outputs.len(),
                out.len()
            )));
        }
        out.iter().map(|v| from_tract(v, symbols)).collect()
    }
}
