//! Thin helpers for the ops that speech transformers are made of.
//!
//! Each is one [`GraphBuilder::op`] call (GELU is four) with ONNX's attribute names spelt
//! out once, so exporters cannot misspell `transB` or pass axes as an attribute where
//! opset 13+ wants an input. Parameters that ONNX takes as constant inputs (axes, split
//! sizes, shapes, slice bounds) are given as Rust slices and stored as deduplicated
//! constants; for values computed in the graph, call [`GraphBuilder::op`] directly.
//! Shapes below use ONNX's broadcasting conventions; `...` is any number of leading
//! dimensions.

use hearken::engine::DType;

use super::{Attr, GraphBuilder};

/// Parameters of a 1-D convolution, as in PyTorch's `Conv1d` (symmetric padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv1d {
    /// Step between output frames, in input frames.
    pub stride: usize,
    /// Zero frames added at each end of the input.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Number of channel groups (`in_channels` and `out_channels` must divide by it).
    pub groups: usize,
}

impl Default for Conv1d {
    /// Stride 1, no padding, no dilation, one group.
    fn default() -> Self {
        Conv1d {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl GraphBuilder {
    /// `MatMul`: `a (..., m, k) @ b (..., k, n) -> (..., m, n)`, batch dims broadcast.
    pub fn matmul(&mut self, a: &str, b: &str) -> String {
        self.op("MatMul", &[a, b], [])
    }

    /// `Add`: `a + b`, broadcast.
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], [])
    }

    /// `Sub`: `a - b`, broadcast.
    pub fn sub(&mut self, a: &str, b: &str) -> String {
        self.op("Sub", &[a, b], [])
    }

    /// `Mul`: `a * b`, broadcast.
    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.op("Mul", &[a, b], [])
    }

    /// `Div`: `a / b`, broadcast.
    pub fn div(&mut self, a: &str, b: &str) -> String {
        self.op("Div", &[a, b], [])
    }

    /// `Gemm`: `a (m, k) @ b (k, n) + c` with `c` broadcast to `(m, n)`; with `trans_b`,
    /// `b` is `(n, k)` (a PyTorch `Linear` weight). Only 2-D `a`: use
    /// [`matmul`](Self::matmul) + [`add`](Self::add) for batched activations.
    pub fn gemm(&mut self, a: &str, b: &str, c: Option<&str>, trans_b: bool) -> String {
        let mut inputs = vec![a, b];
        inputs.extend(c);
        self.op("Gemm", &inputs, [("transB", trans_b.into())])
    }

    /// `LayerNormalization` over the last axis: `x (..., d)`, `scale (d)`, optional
    /// `bias (d)` → `(..., d)`, computed as `(x - mean) / sqrt(var + epsilon) * scale +
    /// bias` (opset 17's native op, which engines fuse).
    pub fn layer_norm(&mut self, x: &str, scale: &str, bias: Option<&str>, epsilon: f32) -> String {
        let mut inputs = vec![x, scale];
        inputs.extend(bias);
        self.op(
            "LayerNormalization",
            &inputs,
            [("axis", Attr::Int(-1)), ("epsilon", epsilon.into())],
        )
    }

    /// `Softmax` along `axis` (negative counts from the end); same shape as `x`.
    pub fn softmax(&mut self, x: &str, axis: i64) -> String {
        self.op("Softmax", &[x], [("axis", axis.into())])
    }

    /// GELU in its exact erf form, `x * 0.5 * (1 + erf(x / sqrt(2)))`, as the
    /// `Div → Erf → Add → Mul → Mul` chain PyTorch exports for `nn.GELU()` (Whisper's and
    /// Wav2Vec2's `"gelu"` activation); same shape as `x`. Composed rather than the
    /// opset-20 `Gelu` op so that it works from opset 17.
    pub fn gelu_erf(&mut self, x: &str) -> String {
        let sqrt2 = self.scalar_f32(std::f32::consts::SQRT_2);
        let one = self.scalar_f32(1.0);
        let half = self.scalar_f32(0.5);
        let scaled = self.div(x, &sqrt2);
        let erf = self.op("Erf", &[&scaled], []);
        let shifted = self.add(&erf, &one);
        let gated = self.mul(x, &shifted);
        self.mul(&gated, &half)
    }

    /// 1-D `Conv`: `x (batch, c_in, n_frames)`, `weight (c_out, c_in / groups, kernel)`,
    /// optional `bias (c_out)` → `(batch, c_out, n_out)` with `n_out = (n_frames + 2 *
    /// padding - dilation * (kernel - 1) - 1) / stride + 1`.
    pub fn conv1d(&mut self, x: &str, weight: &str, bias: Option<&str>, p: Conv1d) -> String {
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        let (stride, padding, dilation) = (p.stride as i64, p.padding as i64, p.dilation as i64);
        self.op(
            "Conv",
            &inputs,
            [
                ("strides", Attr::Ints(vec![stride])),
                ("pads", Attr::Ints(vec![padding, padding])),
                ("dilations", Attr::Ints(vec![dilation])),
                ("group", Attr::Int(p.groups as i64)),
            ],
        )
    }

    /// `Gather` along `axis`: `data (d0, ..., d_axis, ...)` indexed by integer `indices`
    /// (any shape `I`, negative counts from the end) → `(d0, ..., I..., ...)`; e.g. an
    /// embedding lookup `table (vocab, d)` × `ids (batch, n)` → `(batch, n, d)`.
    pub fn gather(&mut self, data: &str, indices: &str, axis: i64) -> String {
        self.op("Gather", &[data, indices], [("axis", axis.into())])
    }

    /// `Concat` of `inputs` along `axis`; all other dimensions must agree.
    pub fn concat(&mut self, inputs: &[&str], axis: i64) -> String {
        self.op("Concat", inputs, [("axis", axis.into())])
    }

    /// `Split` of `x` along `axis` into pieces of `sizes` (which must sum to the axis'
    /// length); returns one value per piece, in order. Sizes are a constant input
    /// (opset 13+).
    pub fn split(&mut self, x: &str, sizes: &[i64], axis: i64) -> Vec<String> {
        let sizes_name = self.const_i64(sizes);
        self.op_n(
            "Split",
            &[x, &sizes_name],
            sizes.len(),
            [("axis", axis.into())],
        )
    }

    /// [`split`](Self::split) into a fixed number of pieces, returned as an array so that
    /// callers can destructure it: `let [q, k, v] = b.split_into(&qkv, [d, d, d], -1);`.
    pub fn split_into<const N: usize>(
        &mut self,
        x: &str,
        sizes: [i64; N],
        axis: i64,
    ) -> [String; N] {
        let mut parts = self.split(x, &sizes, axis).into_iter();
        // `split` returns exactly one name per size.
        std::array::from_fn(|_| parts.next().unwrap_or_default())
    }

    /// `Transpose`: output dimension `i` is input dimension `perm[i]`.
    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op("Transpose", &[x], [("perm", perm.into())])
    }

    /// `Reshape` to the constant `shape`: `0` copies the input's dimension at that
    /// position, one `-1` is inferred from the element count (so `[0, 0, 8, 64]` splits
    /// `(batch, n, 512)` into heads without knowing `batch` or `n`).
    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let shape_name = self.const_i64(shape);
        self.op("Reshape", &[x, &shape_name], [])
    }

    /// `Unsqueeze`: inserts size-1 dimensions at `axes` (positions in the output).
    pub fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let axes_name = self.const_i64(axes);
        self.op("Unsqueeze", &[x, &axes_name], [])
    }

    /// `Squeeze`: removes the size-1 dimensions at `axes`.
    pub fn squeeze(&mut self, x: &str, axes: &[i64]) -> String {
        let axes_name = self.const_i64(axes);
        self.op("Squeeze", &[x, &axes_name], [])
    }

    /// `Where`: elementwise `cond ? x : y` with a `bool` `cond`, all three broadcast.
    pub fn where_(&mut self, cond: &str, x: &str, y: &str) -> String {
        self.op("Where", &[cond, x, y], [])
    }

    /// `Cast` to element type `to`; same shape.
    pub fn cast(&mut self, x: &str, to: DType) -> String {
        self.op("Cast", &[x], [("to", i64::from(to.onnx_code()).into())])
    }

    /// `Shape`: `x`'s dimensions as an `i64` tensor of shape `(rank,)`.
    pub fn shape(&mut self, x: &str) -> String {
        self.op("Shape", &[x], [])
    }

    /// `Slice` with constant bounds: along each of `axes`, keeps `starts[i]..ends[i]`
    /// stepping by `steps[i]` (negative bounds count from the end, ends are clamped, so
    /// `i64::MAX` means "to the end"). An empty `steps` means all 1.
    pub fn slice(
        &mut self,
        x: &str,
        starts: &[i64],
        ends: &[i64],
        axes: &[i64],
        steps: &[i64],
    ) -> String {
        let starts = self.const_i64(starts);
        let ends = self.const_i64(ends);
        let axes = self.const_i64(axes);
        let mut inputs = vec![x, &starts, &ends, &axes];
        let steps = (!steps.is_empty()).then(|| self.const_i64(steps));
        inputs.extend(steps.as_deref());
        self.op("Slice", &inputs, [])
    }
}
