//! The ONNX writer, end to end: written bytes decode back to the same model, and small
//! graphs built with every op helper load and run in both hearken engines (tract and
//! ONNX Runtime) with the values a plain-Rust reference computes, within 1e-5.
//!
//! The ONNX Runtime half is skipped with a printed reason when its library is absent on
//! a developer machine, and fails under CI (`CI` set), where the setup script fetches it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use half::f16;
use hearken::engine::{DType, Dim, Engine, EngineKind, Graph, OrtOptions, Tensor, TractOptions};
use hearken_export::dims;
use hearken_export::onnx::{
    Conv1d, GraphBuilder, MAX_OPSET, MIN_OPSET, ir_version_for_opset, pb, tensor_from_proto,
};
use prost::Message;

const TOL: f32 = 1e-5;

// ---------------------------------------------------------------------------------------
// Engines and comparison

fn engines() -> Vec<Arc<dyn Engine>> {
    let mut engines = vec![EngineKind::Tract(TractOptions::default()).build().unwrap()];
    match EngineKind::Ort(OrtOptions::default()).build() {
        Ok(e) => engines.push(e),
        Err(hearken::Error::OrtLibraryNotFound { .. }) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipping the ONNX Runtime half: library absent (run `bash models/setup.sh` \
                 or set ORT_DYLIB_PATH)"
            );
        }
        Err(e) => panic!("ONNX Runtime engine unavailable: {e}"),
    }
    engines
}

/// Loads `bytes` in every engine.
fn load_all(bytes: &[u8]) -> Vec<(&'static str, Arc<dyn Graph>)> {
    engines()
        .into_iter()
        .map(|e| {
            let g = e.load_bytes(bytes).unwrap_or_else(|err| panic!("{err}"));
            (e.name(), g)
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts `got` matches `want`: same dtype and shape; values within [`TOL`] for floats,
/// equal otherwise.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    match want.dtype() {
        DType::F32 | DType::F16 => {
            let d = max_abs_diff(&got.to_f32_vec(), &want.to_f32_vec());
            assert!(
                d <= TOL,
                "{what}: max |diff| {d} > {TOL}\n got {got:?}\nwant {want:?}"
            );
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

/// Runs `graphs` (one per engine) on `inputs` and checks every output against `want`
/// and every engine against the first.
fn check_runs(graphs: &[(&str, Arc<dyn Graph>)], inputs: &[(&str, Tensor)], want: &[Tensor]) {
    let mut first: Option<(&str, Vec<Tensor>)> = None;
    for (engine, g) in graphs {
        let got = g.run(inputs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), want.len(), "{engine}: number of outputs");
        for ((got_t, want_t), spec) in got.iter().zip(want).zip(g.outputs()) {
            assert_close(&format!("{engine} `{}`", spec.name), got_t, want_t);
        }
        match &first {
            None => first = Some((engine, got)),
            Some((other, theirs)) => {
                for (a, b) in got.iter().zip(theirs) {
                    assert_close(&format!("{engine} vs {other}"), a, b);
                }
            }
        }
    }
}

/// Builds the graph at the lowest and the highest supported opset, loads each in every
/// engine, runs and checks.
fn check(build: impl Fn() -> GraphBuilder, inputs: &[(&str, Tensor)], want: &[Tensor]) {
    for opset in [MIN_OPSET, MAX_OPSET] {
        let bytes = build().opset(opset).to_bytes().unwrap();
        eprintln!("opset {opset}");
        check_runs(&load_all(&bytes), inputs, want);
    }
}

// ---------------------------------------------------------------------------------------
// Plain-Rust references and data

/// Deterministic values in [-1, 1) (a 32-bit LCG), so the tests need no RNG crate.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn f32t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape, v).unwrap()
}

/// `a (m, k) @ b (k, n)`, row-major.
fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

/// Rows of length `d`, normalized.
fn layer_norm(x: &[f32], d: usize, scale: &[f32], bias: &[f32], eps: f32) -> Vec<f32> {
    x.chunks(d)
        .flat_map(|row| {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + eps).sqrt();
            row.iter()
                .enumerate()
                .map(move |(i, v)| (v - mean) * inv * scale[i] + bias[i])
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Softmax of rows of length `d`.
fn softmax(x: &[f32], d: usize) -> Vec<f32> {
    x.chunks(d)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

/// erf by its Maclaurin series in f64 (std has none): exact to ~1e-9 for |x| <= 4, and
/// erf(4) differs from 1 by 1.5e-8, so larger inputs saturate.
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    if x.abs() > 4.0 {
        return x.signum() as f32;
    }
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
}

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// PyTorch `conv1d` of `x (c_in, n)` with `w (c_out, c_in / groups, k)`.
fn conv1d(x: &[f32], c_in: usize, w: &[f32], bias: &[f32], k: usize, p: Conv1d) -> Vec<f32> {
    let n = x.len() / c_in;
    let c_out = bias.len();
    let (cg_in, cg_out) = (c_in / p.groups, c_out / p.groups);
    let n_out = (n + 2 * p.padding - p.dilation * (k - 1) - 1) / p.stride + 1;
    let mut out = vec![0.0; c_out * n_out];
    for o in 0..c_out {
        let g = o / cg_out;
        for t in 0..n_out {
            let mut acc = bias[o];
            for ci in 0..cg_in {
                for j in 0..k {
                    let pos = (t * p.stride + j * p.dilation) as isize - p.padding as isize;
                    if (0..n as isize).contains(&pos) {
                        let c = g * cg_in + ci;
                        acc += w[(o * cg_in + ci) * k + j] * x[c * n + pos as usize];
                    }
                }
            }
            out[o * n_out + t] = acc;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pure tests: encoding

/// Initializers of every dtype the writer supports, as the kitchen-sink model stores them.
fn kitchen_weights() -> Vec<Tensor> {
    vec![
        Tensor::from_f32([4], vec![0.5, -1.0, 2.0, 0.0]).unwrap(),
        Tensor::from_f16([4], [1.0, -2.0, 0.5, 3.0].map(f16::from_f32).into()).unwrap(),
        Tensor::from_i64([4], vec![1, -2, 3, -4000]).unwrap(),
        Tensor::from_i32([4], vec![1, -2, 3, 70_000]).unwrap(),
        Tensor::from_i8([4], vec![1, -2, 3, -128]).unwrap(),
        Tensor::from_u8([4], vec![1, 2, 3, 255]).unwrap(),
        Tensor::from_bool([4], vec![true, false, true, false]).unwrap(),
    ]
}

const KITCHEN_FLOATS: [f32; 4] = [0.125, -0.25, 0.5, -1.0];

/// A model using every initializer dtype, every attribute kind, and metadata, made of
/// real ops so that engines can run it: `x (batch, 4)` plus each weight cast to f32,
/// `LeakyRelu` (float attr), plus a `Constant` (floats attr), `Transpose` (ints attr),
/// `Pad` by zero (string attr), plus a `ConstantOfShape` fill (tensor attr).
fn kitchen_sink() -> GraphBuilder {
    let mut b = GraphBuilder::new("kitchen_sink").doc_string("every field the writer emits");
    let x = b.input("x", DType::F32, &dims!["batch", 4]);
    let mut acc = x.clone();
    for (i, w) in kitchen_weights().iter().enumerate() {
        let w = b.initializer(&format!("w{i}"), w);
        let w = b.cast(&w, DType::F32);
        acc = b.add(&acc, &w);
    }
    let y = b.op("LeakyRelu", &[&acc], [("alpha", 0.1f32.into())]);
    let c = b.op(
        "Constant",
        &[],
        [("value_floats", KITCHEN_FLOATS.as_slice().into())],
    );
    let y = b.add(&y, &c);
    let y = b.transpose(&y, &[0, 1]);
    let pads = b.const_i64(&[0, 0, 0, 0]);
    let y = b.op("Pad", &[&y, &pads], [("mode", "constant".into())]);
    let one = b.const_i64(&[1]);
    let fill = Tensor::from_f32([1], vec![0.25]).unwrap();
    let quarter = b.op("ConstantOfShape", &[&one], [("value", fill.into())]);
    let y = b.add(&y, &quarter);
    b.output_from(&y, "y", DType::F32, &dims!["batch", 4]);
    b.metadata("model_type", "test").metadata("n_dims", "4");
    b
}

/// What [`kitchen_sink`] computes, in the graph's order of f32 operations.
fn kitchen_reference(x: &[f32]) -> Vec<f32> {
    let weights: Vec<Vec<f32>> = kitchen_weights().iter().map(Tensor::to_f32_vec).collect();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let col = i % 4;
            let s = weights.iter().fold(v, |acc, w| acc + w[col]);
            let s = if s < 0.0 { 0.1 * s } else { s };
            s + KITCHEN_FLOATS[col] + 0.25
        })
        .collect()
}

#[test]
fn written_bytes_decode_to_the_built_model() {
    let model = kitchen_sink().build().unwrap();
    let bytes = kitchen_sink().to_bytes().unwrap();
    let decoded = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, model);
    assert_eq!(decoded.producer_name, "hearken-export");
    assert_eq!(decoded.ir_version, 8);
    let graph = decoded.graph.unwrap();
    assert_eq!(graph.name, "kitchen_sink");
    // Seven weights, the pads, and the shape of the fill.
    assert_eq!(graph.initializer.len(), 9);
    let x_dims: Vec<_> = match &graph.input[0].r#type.as_ref().unwrap().value {
        Some(pb::type_proto::Value::TensorType(t)) => t.shape.clone().unwrap().dim,
        other => panic!("not a tensor type: {other:?}"),
    };
    use pb::tensor_shape_proto::dimension::Value;
    assert_eq!(x_dims[0].value, Some(Value::DimParam("batch".into())));
    assert_eq!(x_dims[1].value, Some(Value::DimValue(4)));
}

#[test]
fn initializers_read_back_as_the_tensors_written() {
    let model = kitchen_sink().build().unwrap();
    let graph = model.graph.unwrap();
    for (i, want) in kitchen_weights().iter().enumerate() {
        assert_eq!(
            &tensor_from_proto(&graph.initializer[i]).unwrap(),
            want,
            "w{i}"
        );
    }
}

#[test]
fn save_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    kitchen_sink().save(&path).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        kitchen_sink().to_bytes().unwrap()
    );
    let err = kitchen_sink()
        .save(dir.path().join("missing/m.onnx"))
        .unwrap_err();
    assert!(err.to_string().contains("missing/m.onnx"), "{err}");
}

#[test]
fn validation_errors_reach_to_bytes_and_save() {
    let mut b = GraphBuilder::new("broken");
    let x = b.input("x", DType::F32, &dims![1]);
    let y = b.add(&x, "bias_typo");
    b.output_from(&y, "y", DType::F32, &dims![1]);
    let e = b.to_bytes().unwrap_err().to_string();
    assert!(
        e.contains("graph `broken`") && e.contains("`bias_typo`"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Engine-backed tests

#[test]
fn matmul_add_with_dynamic_batch() {
    let (k, n) = (3, 4);
    let w = values(k * n, 1);
    let bias = values(n, 2);
    let build = || {
        let mut b = GraphBuilder::new("affine");
        let x = b.input("x", DType::F32, &dims!["batch", k]);
        let wn = b.initializer("proj.weight", &f32t(&[k, n], w.clone()));
        let bn = b.initializer("proj.bias", &f32t(&[n], bias.clone()));
        let h = b.matmul(&x, &wn);
        let y = b.add(&h, &bn);
        b.output_from(&y, "y", DType::F32, &dims!["batch", n]);
        b
    };
    let graphs = load_all(&build().to_bytes().unwrap());
    for batch in [1, 3] {
        let x = values(batch * k, 3 + batch as u32);
        let mut y = matmul(&x, &w, batch, k, n);
        y.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += bias[i % n]);
        check_runs(
            &graphs,
            &[("x", f32t(&[batch, k], x))],
            &[f32t(&[batch, n], y)],
        );
    }
}

#[test]
fn gemm_with_transposed_weight() {
    let (m, k, n) = (2, 3, 4);
    let w = values(n * k, 5); // (n, k), as a PyTorch Linear stores it
    let bias = values(n, 6);
    let x = values(m * k, 7);
    let build = || {
        let mut b = GraphBuilder::new("gemm");
        let xn = b.input("x", DType::F32, &dims![m, k]);
        let wn = b.initializer("w", &f32t(&[n, k], w.clone()));
        let bn = b.initializer("b", &f32t(&[n], bias.clone()));
        let y = b.gemm(&xn, &wn, Some(&bn), true);
        b.output_from(&y, "y", DType::F32, &dims![m, n]);
        b
    };
    let mut wt = vec![0.0; k * n];
    for i in 0..n {
        for j in 0..k {
            wt[j * n + i] = w[i * k + j];
        }
    }
    let mut want = matmul(&x, &wt, m, k, n);
    want.iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v += bias[i % n]);
    check(build, &[("x", f32t(&[m, k], x))], &[f32t(&[m, n], want)]);
}

#[test]
fn conv1d_strided_and_grouped() {
    let (c_in, c_out, k, n) = (4, 6, 3, 9);
    let plain = Conv1d {
        stride: 2,
        padding: 1,
        ..Conv1d::default()
    };
    let grouped = Conv1d {
        padding: 2,
        dilation: 2,
        groups: 2,
        ..Conv1d::default()
    };
    let w1 = values(c_out * c_in * k, 11);
    let w2 = values(c_out * (c_in / 2) * k, 12);
    let bias = values(c_out, 13);
    let x = values(c_in * n, 14);

    let build = || {
        let mut b = GraphBuilder::new("conv");
        let xn = b.input("x", DType::F32, &dims![1, c_in, "n_frames"]);
        let w1n = b.initializer("conv1.weight", &f32t(&[c_out, c_in, k], w1.clone()));
        let w2n = b.initializer("conv2.weight", &f32t(&[c_out, c_in / 2, k], w2.clone()));
        let bn = b.initializer("conv.bias", &f32t(&[c_out], bias.clone()));
        let y1 = b.conv1d(&xn, &w1n, Some(&bn), plain);
        let y2 = b.conv1d(&xn, &w2n, None, grouped);
        b.output_from(&y1, "strided", DType::F32, &dims![1, c_out, "n_out"]);
        b.output_from(&y2, "grouped", DType::F32, &dims![1, c_out, "n_frames"]);
        b
    };

    let want1 = conv1d(&x, c_in, &w1, &bias, k, plain);
    let want2 = conv1d(&x, c_in, &w2, &vec![0.0; c_out], k, grouped);
    let n1 = want1.len() / c_out;
    assert_eq!(n1, 5);
    check(
        build,
        &[("x", f32t(&[1, c_in, n], x))],
        &[f32t(&[1, c_out, n1], want1), f32t(&[1, c_out, n], want2)],
    );
}

#[test]
fn layer_norm_over_last_axis() {
    let (rows, d) = (3, 5);
    let x: Vec<f32> = values(rows * d, 21).iter().map(|v| v * 4.0 + 1.0).collect();
    let scale = values(d, 22);
    let bias = values(d, 23);
    let build = || {
        let mut b = GraphBuilder::new("ln");
        let xn = b.input("x", DType::F32, &dims!["rows", d]);
        let s = b.initializer("ln.weight", &f32t(&[d], scale.clone()));
        let bb = b.initializer("ln.bias", &f32t(&[d], bias.clone()));
        let y = b.layer_norm(&xn, &s, Some(&bb), 1e-5);
        b.output_from(&y, "y", DType::F32, &dims!["rows", d]);
        b
    };
    let want = layer_norm(&x, d, &scale, &bias, 1e-5);
    check(
        build,
        &[("x", f32t(&[rows, d], x))],
        &[f32t(&[rows, d], want)],
    );
}

#[test]
fn softmax_last_axis_is_stable_for_large_logits() {
    let x: Vec<f32> = values(2 * 4, 31).iter().map(|v| v * 50.0 + 100.0).collect();
    let build = || {
        let mut b = GraphBuilder::new("softmax");
        let xn = b.input("x", DType::F32, &dims![2, 4]);
        let y = b.softmax(&xn, -1);
        b.output_from(&y, "y", DType::F32, &dims![2, 4]);
        b
    };
    let want = softmax(&x, 4);
    check(build, &[("x", f32t(&[2, 4], x))], &[f32t(&[2, 4], want)]);
}

#[test]
fn gelu_erf_matches_exact_gelu() {
    let x: Vec<f32> = (0..33).map(|i| -4.0 + 0.25 * i as f32).collect();
    let mut b = GraphBuilder::new("gelu");
    let xn = b.input("x", DType::F32, &dims!["n"]);
    let y = b.gelu_erf(&xn);
    b.output_from(&y, "y", DType::F32, &dims!["n"]);
    let model = b.build().unwrap();
    let ops: Vec<&str> = model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert_eq!(ops, ["Div", "Erf", "Add", "Mul", "Mul", "Identity"]);
    let want: Vec<f32> = x.iter().map(|&v| gelu(v)).collect();
    let graphs = load_all(&model.encode_to_vec());
    check_runs(
        &graphs,
        &[("x", f32t(&[x.len()], x.clone()))],
        &[f32t(&[x.len()], want)],
    );
}
#[test]
fn gather_embeddings_by_i64_ids() {
    let (vocab, d) = (5, 3);
    let table = values(vocab * d, 41);
    let ids = vec![4i64, 0, 2, 2, -1, 1];
    let build = || {
        let mut b = GraphBuilder::new("embed");
        let idn = b.input("ids", DType::I64, &dims!["batch", "n_tokens"]);
        let t = b.initializer("embed_tokens.weight", &f32t(&[vocab, d], table.clone()));
        let y = b.gather(&t, &idn, 0);
        b.output_from(&y, "y", DType::F32, &dims!["batch", "n_tokens", d]);
        b
    };
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&i| {
            let row = i.rem_euclid(vocab as i64) as usize;
            table[row * d..(row + 1) * d].to_vec()
        })
        .collect();
    check(
        build,
        &[("ids", Tensor::from_i64([2, 3], ids).unwrap())],
        &[f32t(&[2, 3, d], want)],
    );
}

#[test]
fn concat_split_transpose_reshape() {
    // x (2, 3) ++ y (2, 1) -> (2, 4) -> split [1, 3] -> a (2, 1), c (2, 3);
    // c^T (3, 2) -> reshape [-1] (6,); also unsqueeze/squeeze round trip on a.
    let x = values(6, 51);
    let y = values(2, 52);
    let build = || {
        let mut b = GraphBuilder::new("shapes");
        let xn = b.input("x", DType::F32, &dims![2, 3]);
        let yn = b.input("y", DType::F32, &dims![2, 1]);
        let cat = b.concat(&[&yn, &xn], 1);
        let [a, c] = b.split_into(&cat, [1, 3], 1);
        let ct = b.transpose(&c, &[1, 0]);
        let flat = b.reshape(&ct, &[-1]);
        let a3 = b.unsqueeze(&a, &[0]);
        let a = b.squeeze(&a3, &[0, 2]);
        b.output_from(&a, "a", DType::F32, &dims![2]);
        b.output_from(&flat, "flat", DType::F32, &dims![6]);
        b
    };
    let mut want_flat = vec![0.0; 6];
    for i in 0..2 {
        for j in 0..3 {
            want_flat[j * 2 + i] = x[i * 3 + j];
        }
    }
    check(
        build,
        &[("x", f32t(&[2, 3], x)), ("y", f32t(&[2, 1], y.clone()))],
        &[f32t(&[2], y), f32t(&[6], want_flat)],
    );
}

#[test]
fn where_with_bool_mask_and_casts() {
    let x = values(6, 61);
    let mask = vec![true, false, false, true, true, false];
    let build = || {
        let mut b = GraphBuilder::new("where");
        let xn = b.input("x", DType::F32, &dims![2, 3]);
        let mn = b.input("mask", DType::Bool, &dims![2, 3]);
        let neg_inf = b.scalar_f32(-1e9);
        let y = b.where_(&mn, &xn, &neg_inf);
        let mf = b.cast(&mn, DType::F32);
        let mi = b.cast(&mn, DType::I64);
        b.output_from(&y, "masked", DType::F32, &dims![2, 3]);
        b.output_from(&mf, "mask_f32", DType::F32, &dims![2, 3]);
        b.output_from(&mi, "mask_i64", DType::I64, &dims![2, 3]);
        b
    };
    let want: Vec<f32> = x
        .iter()
        .zip(&mask)
        .map(|(&v, &m)| if m { v } else { -1e9 })
        .collect();
    let mask_f: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
    let mask_i: Vec<i64> = mask.iter().map(|&m| i64::from(m)).collect();
    check(
        build,
        &[
            ("x", f32t(&[2, 3], x)),
            ("mask", Tensor::from_bool([2, 3], mask).unwrap()),
        ],
        &[
            f32t(&[2, 3], want),
            f32t(&[2, 3], mask_f),
            Tensor::from_i64([2, 3], mask_i).unwrap(),
        ],
    );
}

#[test]
fn every_initializer_dtype_and_attribute_kind_runs_in_the_engines() {
    let x = values(8, 71);
    let want = kitchen_reference(&x);
    check(
        kitchen_sink,
        &[("x", f32t(&[2, 4], x))],
        &[f32t(&[2, 4], want)],
    );
}

/// Attention-shaped graph over a dynamic sequence: `softmax(x x^T / sqrt(d)) x` with a
/// slice of the first `d / 2` features and the sequence length read back through `Shape`.
fn attention_graph(d: usize) -> GraphBuilder {
    let mut b = GraphBuilder::new("self_attention");
    let x = b.input("x", DType::F32, &dims![1, "n_frames", d]);
    let (ctx, n) = b.scoped("attn", |b| {
        let xt = b.transpose(&x, &[0, 2, 1]);
        let scores = b.matmul(&x, &xt);
        let scale = b.scalar_f32((d as f32).sqrt());
        let scores = b.div(&scores, &scale);
        let p = b.softmax(&scores, -1);
        let ctx = b.matmul(&p, &x);
        let ctx = b.slice(&ctx, &[0], &[d as i64 / 2], &[2], &[]);
        let shape = b.shape(&x);
        let n = b.gather(&shape, "attn_axis", 0);
        (ctx, n)
    });
    b.initializer("attn_axis", &Tensor::scalar_i64(1));
    // The initializer is declared after its use in `gather` above: that is fine, since
    // initializers are defined before any node runs.
    b.output_from(&ctx, "ctx", DType::F32, &dims![1, "n_frames", d / 2]);
    b.output_from(&n, "n_frames", DType::I64, &dims![]);
    b
}

fn attention_reference(x: &[f32], n: usize, d: usize) -> Vec<f32> {
    let mut xt = vec![0.0; d * n];
    for i in 0..n {
        for j in 0..d {
            xt[j * n + i] = x[i * d + j];
        }
    }
    let scores: Vec<f32> = matmul(x, &xt, n, d, n)
        .iter()
        .map(|v| v / (d as f32).sqrt())
        .collect();
    let p = softmax(&scores, n);
    let ctx = matmul(&p, x, n, n, d);
    ctx.chunks(d)
        .flat_map(|row| row[..d / 2].to_vec())
        .collect()
}

#[test]
fn dynamic_sequence_length_runs_at_two_lengths() {
    let d = 4;
    for opset in [MIN_OPSET, MAX_OPSET] {
        let graphs = load_all(&attention_graph(d).opset(opset).to_bytes().unwrap());
        for (engine, g) in &graphs {
            assert_eq!(
                g.inputs()[0].shape[1],
                Dim::Symbolic("n_frames".into()),
                "{engine}"
            );
        }
        for n in [3, 7] {
            let x = values(n * d, 80 + n as u32);
            let want = attention_reference(&x, n, d);
            check_runs(
                &graphs,
                &[("x", f32t(&[1, n, d], x))],
                &[
                    f32t(&[1, n, d / 2], want),
                    Tensor::from_i64([], vec![n as i64]).unwrap(),
                ],
            );
        }
    }
}

#[test]
fn metadata_and_dynamic_dim_names_reach_the_engines() {
    let mut b = GraphBuilder::new("meta");
    let x = b.input("mel", DType::F32, &dims!["batch", 2, "n_frames"]);
    let y = b.softmax(&x, 1);
    b.output_from(&y, "probs", DType::F32, &dims!["batch", 2, "n_frames"]);
    b.metadata("model_type", "whisper-encoder")
        .metadata("n_mels", "2")
        .metadata("labels", "a,b");
    for (engine, g) in load_all(&b.to_bytes().unwrap()) {
        let meta: Vec<(&str, &str)> = g
            .metadata()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            meta,
            [
                ("labels", "a,b"),
                ("model_type", "whisper-encoder"),
                ("n_mels", "2")
            ],
            "{engine}"
        );
        let want_shape = vec![
            Dim::Symbolic("batch".into()),
            Dim::Fixed(2),
            Dim::Symbolic("n_frames".into()),
        ];
        assert_eq!(g.inputs().len(), 1, "{engine}");
        assert_eq!(g.inputs()[0].name, "mel", "{engine}");
        assert_eq!(g.inputs()[0].dtype, DType::F32, "{engine}");
        assert_eq!(g.inputs()[0].shape, want_shape, "{engine} input");
        assert_eq!(g.outputs()[0].name, "probs", "{engine}");
        assert_eq!(g.outputs()[0].shape, want_shape, "{engine} output");
    }
}

#[test]
fn every_supported_opset_loads_in_the_engines() {
    for opset in MIN_OPSET..=MAX_OPSET {
        let mut b = GraphBuilder::new("opset").opset(opset);
        let x = b.input("x", DType::F32, &dims!["n"]);
        let y = b.gelu_erf(&x);
        b.output_from(&y, "y", DType::F32, &dims!["n"]);
        let bytes = b.to_bytes().unwrap();
        let m = pb::ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(m.ir_version, ir_version_for_opset(opset));
        let x = vec![-1.0f32, 0.0, 2.0];
        let want: Vec<f32> = x.iter().map(|&v| gelu(v)).collect();
        check_runs(
            &load_all(&bytes),
            &[("x", f32t(&[3], x))],
            &[f32t(&[3], want)],
        );
    }
}
