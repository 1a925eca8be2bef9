//! Checkpoint weights into initializers, at the precision an export asks for, and the
//! Linear layer they make.
//!
//! Every exporter stores its weights the same way: matrices in f32, in f16 (cast back to
//! f32 when the model loads), or, for the weights of Linear layers, in int8 per output
//! column ([`super::quant`]); vectors always in f32. Keeping that here, once, means a
//! precision is added or changed in one place and every architecture's export agrees on
//! it. Weights come in as candle tensors, the form every importer hands them over in.

use candle_core::{DType as CandleDType, Tensor as CandleTensor};
use half::f16;
use hearken::engine::{DType, Tensor};

use super::GraphBuilder;
use super::quant::{Int8Weight, store_int8_weight};
use crate::error::{Result, candle_err, runtime_err};

/// Element type of the exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Precision {
    /// Everything in f32, as trained.
    #[default]
    F32,
    /// Weight matrices stored in f16 (half the file), cast to f32 when the model is
    /// loaded, so compute and activations stay f32; vectors stay f32.
    F16,
    /// Linear weights in int8, per output column and symmetric, with activations
    /// quantized to u8 per tensor at run time (`DynamicQuantizeLinear` → `MatMulInteger`,
    /// ONNX Runtime's `quantize_dynamic` scheme): about a quarter of the projections'
    /// bytes and integer products; convolutions, embeddings and vectors stay f32. Logits
    /// move far past f32's 1e-3 (whisper-base: up to 12% of their range on a prompt,
    /// mostly as per-row offsets that leave the arg-max alone), so judge it by the tokens
    /// or labels and by the WER on a test set ([`crate::verify`]).
    Int8,
}

/// A Linear layer's stored weight: `(d_in, d_out)`, input-major.
#[derive(Debug, Clone)]
pub enum Matrix {
    /// f32, or f16 cast to f32 when loaded: an initializer (or `Cast` output) name.
    Float(String),
    /// int8 per output column, for [`GraphBuilder::matmul_int8`].
    Int8(Int8Weight),
}

/// A stored Linear layer: `(d_in, d_out)` weight and `(d_out)` f32 bias.
#[derive(Debug, Clone)]
pub struct Linear {
    /// The weight.
    pub weight: Matrix,
    /// The bias' initializer name.
    pub bias: String,
}

/// The elements of `t` as f32, row-major; `what` names the tensor in an error.
fn to_f32_vec(t: &CandleTensor, what: &str) -> Result<Vec<f32>> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(CandleDType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle_err(what))
}

/// Stores `t` as initializer `name` and returns the name to read it by (`name` either
/// way). In [`Precision::F16`], tensors of rank 2 or more are stored in f16 as
/// `{name}.f16` and cast to f32 by a `Cast` node named `name`.
///
/// Matrices (projections, embeddings, convolution kernels) are nearly all of the bytes;
/// vectors (biases, norm gains, layer weights) stay f32, where f16 rounding would buy
/// nothing. The `Cast` reads a constant, so both engines fold it when they load the
/// model: compute stays f32, only the file shrinks. [`Precision::Int8`] stores f32 here:
/// only Linear weights are quantized, through [`store_matrix`].
///
/// Fails with [`Error::Candle`](crate::Error::Candle) when `t` cannot be read as f32.
pub fn store_tensor(
    b: &mut GraphBuilder,
    name: &str,
    t: &CandleTensor,
    precision: Precision,
) -> Result<String> {
    let what = format!("converting `{name}`");
    let data = to_f32_vec(t, &what)?;
    if precision == Precision::F16 && t.rank() >= 2 {
        let data = data.into_iter().map(f16::from_f32).collect();
        let t = Tensor::from_f16(t.dims(), data).map_err(runtime_err(what))?;
        let stored = b.initializer(&format!("{name}.f16"), &t);
        b.node(
            "Cast",
            &[&stored],
            &[name],
            [("to", i64::from(DType::F32.onnx_code()).into())],
        );
        return Ok(name.to_owned());
    }
    let t = Tensor::from_f32(t.dims(), data).map_err(runtime_err(what))?;
    Ok(b.initializer(name, &t))
}

/// Stores the `(d_in, d_out)` matrix `w` quantized to int8 per output column, as
/// [`store_int8_weight`] does, whatever the export's precision.
///
/// Fails with [`Error::Candle`](crate::Error::Candle) when `w` is not a matrix, and with
/// [`Error::InvalidTensor`](crate::Error::InvalidTensor) when it holds a NaN or an
/// infinity.
pub fn store_int8_matrix(b: &mut GraphBuilder, name: &str, w: &CandleTensor) -> Result<Int8Weight> {
    let what = format!("quantizing `{name}`");
    let (d_in, d_out) = w.dims2().map_err(candle_err(what.clone()))?;
    let data = to_f32_vec(w, &what)?;
    store_int8_weight(b, name, &data, d_in, d_out)
}

/// Stores the input-major `(d_in, d_out)` weight `w` of a Linear layer as `name`: as
/// [`store_tensor`] does, or, in [`Precision::Int8`], as [`store_int8_matrix`] does.
pub fn store_matrix(
    b: &mut GraphBuilder,
    name: &str,
    w: &CandleTensor,
    precision: Precision,
) -> Result<Matrix> {
    Ok(match precision {
        Precision::Int8 => Matrix::Int8(store_int8_matrix(b, name, w)?),
        _ => Matrix::Float(store_tensor(b, name, w, precision)?),
    })
}

/// Stores a Linear layer, its input-major `(d_in, d_out)` weight `w` as `{name}.weight`
/// (see [`store_matrix`]) and its `(d_out)` bias as `{name}.bias` (f32).
pub fn store_linear(
    b: &mut GraphBuilder,
    name: &str,
    w: &CandleTensor,
    bias: &CandleTensor,
    precision: Precision,
) -> Result<Linear> {
    Ok(Linear {
        weight: store_matrix(b, &format!("{name}.weight"), w, precision)?,
        bias: store_tensor(b, &format!("{name}.bias"), bias, precision)?,
    })
}

/// `x (..., d_in) @ w (d_in, d_out)` → `(..., d_out)`, in integers for an int8 `w`.
pub fn project(b: &mut GraphBuilder, x: &str, w: &Matrix) -> String {
    match w {
        Matrix::Float(w) => b.matmul(x, w),
        Matrix::Int8(w) => b.matmul_int8(x, w),
    }
}

/// `x (..., d_in) @ w (d_in, d_out) + bias` → `(..., d_out)`, the bias `Add` second (as
/// ONNX Runtime's `MatMul` + `Add` fusion expects).
pub fn affine(b: &mut GraphBuilder, x: &str, lin: &Linear) -> String {
    let y = project(b, x, &lin.weight);
    b.add(&y, &lin.bias)
}
