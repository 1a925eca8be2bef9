//! [`GraphBuilder`]: records inputs, weights and nodes, then checks and encodes them.
//!
//! Every graph-building call is infallible and returns the name of the value it defines,
//! so an exporter reads like the model's forward pass (`let h = b.matmul(&x, &w);`).
//! Mistakes (a misspelt weight name, nodes out of order, an output nobody produces) are
//! collected and reported by [`GraphBuilder::build`] with the node and value involved:
//! checking once at the end costs one pass over the graph and keeps hundreds of call
//! sites free of `?`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use hearken::engine::{DType, Dim, Tensor};
use prost::Message;
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};

use super::Attr;
use super::tensor::{tensor_proto, value_info};
use crate::error::{Error, Result};

/// Lowest opset the writer emits: LayerNormalization became a standard op in 17, and the
/// helpers assume opset-13 semantics (axes and split sizes as inputs).
pub const MIN_OPSET: i64 = 17;

/// Highest opset the writer emits: the one ONNX 1.19 introduced, the newest at which
/// every helper here is tested to load and run in both ONNX Runtime 1.31 and tract 0.23.
pub const MAX_OPSET: i64 = 24;

/// Opset used unless [`GraphBuilder::opset`] says otherwise.
pub const DEFAULT_OPSET: i64 = 17;

/// `producer_name` written into every model.
pub const PRODUCER_NAME: &str = "hearken-export";

/// Largest message protobuf readers accept (2 GiB - 1).
const MAX_PROTO_BYTES: usize = i32::MAX as usize;

/// Small constants are deduplicated by value; larger ones are rare and not worth hashing.
const MAX_DEDUP_BYTES: usize = 256;

/// The ONNX IR version that introduced `opset` (ONNX's own release table, as in
/// `onnx.helper.VERSION_TABLE`): 8 for opsets 17-18, 9 for 19-20, 10 for 21-22, 11 for
/// 23, 12 for 24. Writing the oldest IR that has the opset keeps models loadable by older
/// runtimes.
pub fn ir_version_for_opset(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19 | 20 => 9,
        21 | 22 => 10,
        23 => 11,
        _ => 12,
    }
}

/// Builds one ONNX model: a graph's inputs, outputs, initializers (weights) and nodes,
/// plus model-level `metadata_props`.
///
/// ```
/// use hearken::engine::DType;
/// use hearken_export::{dims, onnx::GraphBuilder};
///
/// let mut b = GraphBuilder::new("affine");
/// let x = b.input("x", DType::F32, &dims!["batch", 3]);
/// let w = b.const_f32(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
/// let y = b.matmul(&x, &w);
/// b.output_from(&y, "y", DType::F32, &dims!["batch", 2]);
/// b.metadata("model_type", "demo");
/// let bytes = b.to_bytes()?;
/// # Ok::<(), hearken_export::Error>(())
/// ```
#[derive(Debug)]
pub struct GraphBuilder {
    name: String,
    opset: i64,
    doc_string: String,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    metadata: BTreeMap<String, String>,
    /// Name-scope stack; see [`GraphBuilder::scoped`].
    scope: Vec<String>,
    /// Every value name declared or handed out so far, so generated names never clash.
    taken_values: HashSet<String>,
    /// Every node name handed out so far.
    taken_nodes: HashSet<String>,
    /// Next suffix to try for each generated-name base.
    counters: HashMap<String, usize>,
    /// Deduplicated small constants: (data type, dims, raw bytes) -> initializer name.
    consts: HashMap<(i32, Vec<i64>, Vec<u8>), String>,
    /// First error hit by an infallible call, reported by `build`.
    deferred: Option<Error>,
}

impl GraphBuilder {
    /// An empty graph called `name` (also used in error messages), at [`DEFAULT_OPSET`].
    pub fn new(name: impl Into<String>) -> Self {
        GraphBuilder {
            name: name.into(),
            opset: DEFAULT_OPSET,
            doc_string: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            nodes: Vec::new(),
            metadata: BTreeMap::new(),
            scope: Vec::new(),
            taken_values: HashSet::new(),
            taken_nodes: HashSet::new(),
            counters: HashMap::new(),
            consts: HashMap::new(),
            deferred: None,
        }
    }

    /// Targets `opset` of the default ONNX domain (checked by [`build`](Self::build) to be
    /// within [`MIN_OPSET`]`..=`[`MAX_OPSET`]); the IR version follows from it (see
    /// [`ir_version_for_opset`]).
    pub fn opset(mut self, opset: i64) -> Self {
        self.opset = opset;
        self
    }

    /// Sets the graph's human-readable description.
    pub fn doc_string(mut self, doc: impl Into<String>) -> Self {
        self.doc_string = doc.into();
        self
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of nodes added so far.
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Sets model metadata `key` to `value` (written to `metadata_props`, sorted by key;
    /// setting a key again replaces its value). This is where hearken's model contract
    /// lives (`export/CONTRACT.md`).
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Declares a graph input of element type `dtype` and shape `shape`
    /// ([`Dim::Symbolic`] dimensions become named `dim_param`s, see [`dims!`](crate::dims)).
    /// Returns `name`.
    pub fn input(&mut self, name: &str, dtype: DType, shape: &[Dim]) -> String {
        self.taken_values.insert(name.to_owned());
        self.inputs.push(value_info(name, dtype, shape));
        name.to_owned()
    }

    /// Declares a graph output: the value `name`, which some node (or an input or
    /// initializer) must define, of element type `dtype` and shape `shape`.
    ///
    /// Outputs are returned by engines in declaration order.
    pub fn output(&mut self, name: &str, dtype: DType, shape: &[Dim]) {
        self.outputs.push(value_info(name, dtype, shape));
    }

    /// Declares value `value` as graph output `name`. When the names differ (typically
    /// `value` was auto-named by [`op`](Self::op)), an `Identity` node renames it; ONNX
    /// Runtime and tract both remove such nodes when optimizing.
    pub fn output_from(&mut self, value: &str, name: &str, dtype: DType, shape: &[Dim]) {
        if value != name {
            self.node("Identity", &[value], &[name], []);
        }
        self.output(name, dtype, shape);
    }

    /// Stores `t` as initializer `name` (a weight, usually named as in the source
    /// checkpoint, e.g. `encoder.layers.0.fc1.weight`; scopes do not prefix it), in
    /// `raw_data`. Returns `name`. The tensor is copied once into its little-endian
    /// bytes; exporters that already hold those bytes can use
    /// [`initializer_proto`](Self::initializer_proto).
    pub fn initializer(&mut self, name: &str, t: &Tensor) -> String {
        match tensor_proto(name, t) {
            Ok(p) => self.push_initializer(p),
            Err(e) => self.defer(e),
        }
        name.to_owned()
    }

    /// Stores an already-encoded initializer (its name is `proto.name`). Returns the name.
    pub fn initializer_proto(&mut self, proto: TensorProto) -> String {
        let name = proto.name.clone();
        self.push_initializer(proto);
        name
    }

    fn push_initializer(&mut self, p: TensorProto) {
        self.taken_values.insert(p.name.clone());
        self.initializers.push(p);
    }

    /// A constant tensor stored as an auto-named initializer (`const_N`). Identical small
    /// constants (up to 256 bytes: axes, shapes, scalars) are stored once and shared.
    /// Returns the initializer's name.
    pub fn constant(&mut self, t: &Tensor) -> String {
        let mut p = match tensor_proto("", t) {
            Ok(p) => p,
            Err(e) => {
                self.defer(e);
                return String::new();
            }
        };
        let key = (p.raw_data.len() <= MAX_DEDUP_BYTES)
            .then(|| (p.data_type, p.dims.clone(), p.raw_data.clone()));
        if let Some(name) = key.as_ref().and_then(|k| self.consts.get(k)) {
            return name.clone();
        }
        let name = self.fresh_value("const");
        p.name.clone_from(&name);
        self.push_initializer(p);
        if let Some(k) = key {
            self.consts.insert(k, name.clone());
        }
        name
    }

    /// A 1-D `i64` constant: shape `(values.len(),)` (axes, shapes, split sizes, slice
    /// bounds).
    pub fn const_i64(&mut self, values: &[i64]) -> String {
        let t = Tensor::from_i64([values.len()], values.to_vec());
        self.constant_or_defer(t, "const_i64")
    }

    /// An `f32` constant of shape `shape` with row-major `values`. A mismatched element
    /// count is reported by [`build`](Self::build).
    pub fn const_f32(&mut self, shape: &[usize], values: &[f32]) -> String {
        let t = Tensor::from_f32(shape, values.to_vec());
        self.constant_or_defer(t, "const_f32")
    }

    fn constant_or_defer(&mut self, t: hearken::Result<Tensor>, what: &str) -> String {
        match t {
            Ok(t) => self.constant(&t),
            Err(e) => {
                self.defer(Error::InvalidTensor {
                    name: what.to_owned(),
                    reason: e.to_string(),
                });
                String::new()
            }
        }
    }

    /// A scalar (rank 0) `f32` constant.
    pub fn scalar_f32(&mut self, value: f32) -> String {
        self.const_f32(&[], &[value])
    }

    /// A scalar (rank 0) `i64` constant.
    pub fn scalar_i64(&mut self, value: i64) -> String {
        self.constant(&Tensor::scalar_i64(value))
    }

    /// Adds a node of operator `op_type` (default ONNX domain) reading `inputs` and
    /// defining `outputs`, with attributes `attrs`. An empty input name skips an optional
    /// input (`""` for Clip's `min`). The node gets a unique auto-generated name.
    ///
    /// Inputs must already be defined when [`build`](Self::build) runs, and by a graph
    /// input, an initializer, or a node added earlier.
    pub fn node<'a>(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: impl IntoIterator<Item = (&'a str, Attr)>,
    ) {
        let name = self.fresh_node(op_type, 0);
        let outputs: Vec<String> = outputs.iter().map(|&o| o.to_owned()).collect();
        self.taken_values.extend(outputs.iter().cloned());
        self.push_node(op_type, name, inputs, outputs, attrs);
    }

    /// Adds a node with one output and returns that output's auto-generated, unique name
    /// (the node's name, e.g. `encoder/layers.0/MatMul_2` inside scopes). See
    /// [`node`](Self::node) for `inputs` and `attrs`.
    pub fn op<'a>(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: impl IntoIterator<Item = (&'a str, Attr)>,
    ) -> String {
        let name = self.fresh_node(op_type, 1);
        let output = name.clone();
        self.taken_values.insert(output.clone());
        self.push_node(op_type, name, inputs, vec![output.clone()], attrs);
        output
    }

    /// Adds a node with `n_outputs` outputs and returns their auto-generated, unique names
    /// (`<node>_out0`, `<node>_out1`, ...), in order.
    pub fn op_n<'a>(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        n_outputs: usize,
        attrs: impl IntoIterator<Item = (&'a str, Attr)>,
    ) -> Vec<String> {
        let name = self.fresh_node(op_type, n_outputs);
        let outputs = output_names(&name, n_outputs);
        self.taken_values.extend(outputs.iter().cloned());
        self.push_node(op_type, name, inputs, outputs.clone(), attrs);
        outputs
    }

    /// Runs `f` with `scope` pushed onto the name scope: nodes and names generated inside
    /// are prefixed `scope/` (nested scopes join with `/`), so a value's name says which
    /// layer made it (`decoder/layers.3/self_attn/Softmax_0`). Returns `f`'s result.
    pub fn scoped<R>(&mut self, scope: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scope.push(scope.to_owned());
        let r = f(self);
        self.scope.pop();
        r
    }

    /// A value name starting with `base` (prefixed by the current scope) that nothing in
    /// the graph uses yet, for nodes whose outputs are named by the caller.
    pub fn unique_name(&mut self, base: &str) -> String {
        let base = self.scoped_name(base);
        self.fresh_value(&base)
    }

    fn scoped_name(&self, base: &str) -> String {
        if self.scope.is_empty() {
            base.to_owned()
        } else {
            format!("{}/{base}", self.scope.join("/"))
        }
    }

    /// `base_N` for the first N that is free among value names.
    fn fresh_value(&mut self, base: &str) -> String {
        let counter = self.counters.entry(base.to_owned()).or_insert(0);
        loop {
            let name = format!("{base}_{counter}");
            *counter += 1;
            if !self.taken_values.contains(&name) {
                self.taken_values.insert(name.clone());
                return name;
            }
        }
    }

    /// A free node name `scope/op_type_N`; when the node's outputs will be named after it
    /// (`n_outputs` of them, see [`output_names`]), those value names are free too.
    fn fresh_node(&mut self, op_type: &str, n_outputs: usize) -> String {
        let base = self.scoped_name(op_type);
        let counter = self.counters.entry(base.clone()).or_insert(0);
        loop {
            let name = format!("{base}_{counter}");
            *counter += 1;
            let free = !self.taken_nodes.contains(&name)
                && output_names(&name, n_outputs)
                    .iter()
                    .all(|o| !self.taken_values.contains(o));
            if free {
                self.taken_nodes.insert(name.clone());
                return name;
            }
        }
    }

    fn push_node<'a>(
        &mut self,
        op_type: &str,
        name: String,
        inputs: &[&str],
        outputs: Vec<String>,
        attrs: impl IntoIterator<Item = (&'a str, Attr)>,
    ) {
        let mut attribute = Vec::new();
        for (key, value) in attrs {
            match value.to_proto(key) {
                Ok(a) => attribute.push(a),
                Err(e) => self.defer(e),
            }
        }
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|&i| i.to_owned()).collect(),
            output: outputs,
            name,
            op_type: op_type.to_owned(),
            attribute,
            ..NodeProto::default()
        });
    }

    fn defer(&mut self, e: Error) {
        self.deferred.get_or_insert(e);
    }

    /// Checks the graph and assembles the model.
    ///
    /// Errors (the first found) when the opset is unsupported, a name is defined twice, a
    /// node reads an undefined value or one produced only by a later node, a declared
    /// output is not produced, no output is declared, an initializer is never used, or an
    /// earlier call recorded a problem (a tensor that cannot be written).
    pub fn build(self) -> Result<ModelProto> {
        if let Some(e) = self.deferred {
            return Err(e);
        }
        self.validate()?;
        Ok(ModelProto {
            ir_version: ir_version_for_opset(self.opset),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: PRODUCER_NAME.to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: self.name,
                initializer: self.initializers,
                doc_string: self.doc_string,
                input: self.inputs,
                output: self.outputs,
                ..GraphProto::default()
            }),
            metadata_props: self
                .metadata
                .into_iter()
                .map(|(key, value)| StringStringEntryProto { key, value })
                .collect(),
            ..ModelProto::default()
        })
    }

    /// [`build`](Self::build)s the model and serializes it to protobuf bytes (the content
    /// of a `.onnx` file).
    ///
    /// Also errors with [`Error::TooLarge`] past protobuf's 2 GiB limit.
    pub fn to_bytes(self) -> Result<Vec<u8>> {
        let graph = self.name.clone();
        let model = self.build()?;
        let n_bytes = model.encoded_len();
        if n_bytes > MAX_PROTO_BYTES {
            return Err(Error::TooLarge { graph, n_bytes });
        }
        Ok(model.encode_to_vec())
    }

    /// [`build`](Self::build)s the model and writes it to `path` as a `.onnx` file.
    pub fn save(self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }

    fn validate<'s>(&'s self) -> Result<()> {
        let graph = || self.name.clone();
        if !(MIN_OPSET..=MAX_OPSET).contains(&self.opset) {
            return Err(Error::UnsupportedOpset {
                graph: graph(),
                opset: self.opset,
                min: MIN_OPSET,
                max: MAX_OPSET,
            });
        }
        if self.outputs.is_empty() {
            return Err(Error::NoOutputs { graph: graph() });
        }

        // Name -> what defined it, filled in graph order.
        let mut defined: HashMap<&'s str, String> = HashMap::new();
        let define =
            |defined: &mut HashMap<&'s str, String>, name: &'s str, what: String| match defined
                .get(name)
            {
                Some(first) => Err(Error::DuplicateName {
                    graph: graph(),
                    name: name.to_owned(),
                    first: first.clone(),
                    second: what,
                }),
                None => {
                    defined.insert(name, what);
                    Ok(())
                }
            };
        for i in &self.inputs {
            define(&mut defined, &i.name, "graph input".into())?;
        }
        for t in &self.initializers {
            define(&mut defined, &t.name, "initializer".into())?;
        }
        let mut used: HashSet<&str> = HashSet::new();
        for node in &self.nodes {
            for (index, value) in node.input.iter().enumerate() {
                if value.is_empty() {
                    continue;
                }
                used.insert(value);
                if defined.contains_key(value.as_str()) {
                    continue;
                }
                let producer = self.nodes.iter().find(|n| n.output.contains(value));
                return Err(match producer {
                    Some(p) => Error::NotTopological {
                        graph: graph(),
                        node: node.name.clone(),
                        index,
                        value: value.clone(),
                        producer: p.name.clone(),
                    },
                    None => Error::UndefinedValue {
                        graph: graph(),
                        node: node.name.clone(),
                        index,
                        value: value.clone(),
                    },
                });
            }
            for (i, out) in node.output.iter().enumerate() {
                // An empty name skips an optional output.
                if !out.is_empty() {
                    let what = format!("output {i} of node `{}`", node.name);
                    define(&mut defined, out, what)?;
                }
            }
        }
        let mut declared: HashSet<&str> = HashSet::new();
        for o in &self.outputs {
            if !declared.insert(&o.name) {
                return Err(Error::DuplicateName {
                    graph: graph(),
                    name: o.name.clone(),
                    first: "graph output".into(),
                    second: "graph output".into(),
                });
            }
            if !defined.contains_key(o.name.as_str()) {
                return Err(Error::OutputNotProduced {
                    graph: graph(),
                    output: o.name.clone(),
                });
            }
            used.insert(&o.name);
        }
        if let Some(t) = self
            .initializers
            .iter()
            .find(|t| !used.contains(t.name.as_str()))
        {
            return Err(Error::UnusedInitializer {
                graph: graph(),
                name: t.name.clone(),
            });
        }
        Ok(())
    }
}

/// Names of a multi-output node's outputs: `<node>_out0`, `<node>_out1`, ...; a
/// single-output node's output is named like the node itself.
fn output_names(node: &str, n_outputs: usize) -> Vec<String> {
    match n_outputs {
        0 => Vec::new(),
        1 => vec![node.to_owned()],
        n => (0..n).map(|i| format!("{node}_out{i}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dims;

    /// `x (n) + 1 -> y`, valid.
    fn add_one() -> GraphBuilder {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DType::F32, &dims!["n"]);
        let one = b.scalar_f32(1.0);
        let y = b.add(&x, &one);
        b.output_from(&y, "y", DType::F32, &dims!["n"]);
        b
    }

    fn err(b: GraphBuilder) -> String {
        b.build().unwrap_err().to_string()
    }

    #[test]
    fn model_header_follows_opset() {
        let m = add_one().build().unwrap();
        assert_eq!((m.ir_version, m.opset_import[0].version), (8, 17));
        assert_eq!(m.opset_import[0].domain, "");
        assert_eq!(m.producer_name, "hearken-export");
        let m = add_one().opset(MAX_OPSET).build().unwrap();
        assert_eq!(m.ir_version, ir_version_for_opset(MAX_OPSET));
        assert_eq!(ir_version_for_opset(18), 8);
        assert_eq!(ir_version_for_opset(19), 9);
        assert_eq!(ir_version_for_opset(21), 10);
    }

    #[test]
    fn unsupported_opset_is_rejected() {
        let e = err(add_one().opset(13));
        assert!(e.contains("opset 13") && e.contains("17..="), "{e}");
        assert!(add_one().opset(MAX_OPSET + 1).build().is_err());
    }

    #[test]
    fn generated_names_are_unique_and_scoped() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DType::F32, &dims![2]);
        // A user value that looks like a generated name must not be reused.
        b.node("Neg", &[&x], &["Relu_0"], []);
        let r = b.op("Relu", &[&x], []);
        assert_eq!(r, "Relu_1");
        let (s0, s1) = b.scoped("layers.0", |b| {
            let s = b.op("Sigmoid", &[&x], []);
            let s2 = b.scoped("attn", |b| b.op("Sigmoid", &[&x], []));
            (s, s2)
        });
        assert_eq!(
            (s0.as_str(), s1.as_str()),
            ("layers.0/Sigmoid_0", "layers.0/attn/Sigmoid_0")
        );
        let parts = b.op_n("Split", &[&x], 2, [("num_outputs", 2.into())]);
        assert_eq!(parts, ["Split_0_out0", "Split_0_out1"]);
        let [p, q] = b.split_into(&x, [1, 1], 0);
        assert_eq!((p.as_str(), q.as_str()), ("Split_1_out0", "Split_1_out1"));
        assert_eq!(b.unique_name("Relu"), "Relu_2");
        assert_eq!(b.n_nodes(), 6);
    }

    #[test]
    fn small_constants_are_shared() {
        let mut b = GraphBuilder::new("g");
        let a = b.const_i64(&[-1]);
        let c = b.const_i64(&[-1]);
        let d = b.const_i64(&[0, -1]);
        let e = b.scalar_i64(-1);
        assert_eq!(a, c);
        assert_ne!(a, d);
        assert_ne!(a, e, "rank differs");
        assert_eq!(b.initializers.len(), 3);
    }

    #[test]
    fn metadata_is_sorted_and_last_write_wins() {
        let mut b = add_one();
        b.metadata("z", "1").metadata("a", "2").metadata("z", "3");
        let m = b.build().unwrap();
        let kv: Vec<(&str, &str)> = m
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(kv, [("a", "2"), ("z", "3")]);
    }

    #[test]
    fn undefined_input_names_node_and_position() {
        let mut b = add_one();
        b.op("Mul", &["x", "w_typo"], []);
        let e = err(b);
        assert!(e.contains("input 1 of node `Mul_0` is `w_typo`"), "{e}");
        assert!(e.contains("not a graph input"), "{e}");
    }

    #[test]
    fn out_of_order_nodes_name_the_producer() {
        let mut b = GraphBuilder::new("g");
        b.input("x", DType::F32, &dims![2]);
        b.node("Relu", &["later"], &["y"], []);
        b.node("Neg", &["x"], &["later"], []);
        b.output("y", DType::F32, &dims![2]);
        let e = err(b);
        assert!(e.contains("produced later by node `Neg_0`"), "{e}");
    }

    #[test]
    fn duplicate_definitions_are_rejected() {
        let mut b = add_one();
        b.node("Neg", &["x"], &["y"], []);
        let e = err(b);
        assert!(e.contains("`y` is defined twice"), "{e}");
        assert!(e.contains("Identity") && e.contains("Neg"), "{e}");

        let mut b = add_one();
        b.input("x", DType::F32, &dims![2]);
        assert!(err(b).contains("first as graph input, then as graph input"));

        let mut b = add_one();
        let t = Tensor::from_f32([1], vec![0.0]).unwrap();
        b.initializer("x", &t);
        assert!(err(b).contains("then as initializer"));

        let mut b = add_one();
        b.output("y", DType::F32, &dims!["n"]);
        assert!(err(b).contains("first as graph output"));
    }

    #[test]
    fn outputs_must_exist_and_be_produced() {
        let mut b = GraphBuilder::new("empty");
        b.input("x", DType::F32, &dims![2]);
        assert!(err(b).contains("declares no outputs"));

        let mut b = add_one();
        b.output("z", DType::F32, &dims![1]);
        assert!(err(b).contains("output `z` is declared but nothing produces it"));
    }

    #[test]
    fn unused_initializer_is_rejected() {
        let mut b = add_one();
        b.initializer("dead.weight", &Tensor::from_f32([1], vec![0.0]).unwrap());
        assert!(err(b).contains("initializer `dead.weight` is never used"));
    }

    #[test]
    fn optional_inputs_and_outputs_may_be_empty() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DType::F32, &dims![3]);
        let hi = b.scalar_f32(6.0);
        let y = b.op("Clip", &[&x, "", &hi], []);
        b.output_from(&y, "y", DType::F32, &dims![3]);
        let m = b.build().unwrap();
        let clip = &m.graph.unwrap().node[0];
        assert_eq!(clip.input, ["x", "", "const_0"]);
    }

    #[test]
    fn deferred_errors_surface_at_build() {
        let mut b = add_one();
        b.const_f32(&[2, 2], &[1.0]);
        let e = err(b);
        assert!(e.contains("const_f32") && e.contains("4 elements"), "{e}");
    }
}
