//! hearken's own dense tensor and I/O description types.
//!
//! They are deliberately plain (a shape and a `Vec` of one element type) so that no
//! backend type (`ort::Value`, `tract::Tensor`, `ndarray::Array`) appears in a public
//! signature: engines convert at their boundary, which costs one copy per graph call and
//! keeps every engine swappable behind `dyn Graph`.

use std::sync::Arc;

use half::f16;

use crate::{Error, Result};

/// Element type of a [`Tensor`] or of a graph input/output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 64-bit signed integer (token ids, shapes, offsets).
    I64,
    /// 32-bit signed integer.
    I32,
    /// Boolean (masks).
    Bool,
    /// Unsigned byte.
    U8,
    /// 8-bit signed integer (quantized weights).
    I8,
}

impl DType {
    /// The ONNX `TensorProto.DataType` code of this type.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
        }
    }

    /// The type for an ONNX `TensorProto.DataType` code, if hearken supports it.
    pub fn from_onnx_code(code: i32) -> Option<Self> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            10 => DType::F16,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
            DType::U8 => "u8",
            DType::I8 => "i8",
        })
    }
}

/// The elements of a [`Tensor`], row-major.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 16-bit floats.
    F16(Vec<f16>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 32-bit integers.
    I32(Vec<i32>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// Signed bytes.
    I8(Vec<i8>),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
        }
    }

    fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::Bool(_) => DType::Bool,
            TensorData::U8(_) => DType::U8,
            TensorData::I8(_) => DType::I8,
        }
    }
}

/// A dense, row-major tensor owned by hearken.
///
/// The invariant `shape.iter().product() == data.len()` is checked by every constructor.
/// The elements are shared: cloning a tensor is cheap, and an engine may recognize a
/// tensor it has already converted (tract keeps its copy of Whisper's cross-attention
/// keys and values for as long as the caller keeps passing the same tensor).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Arc<TensorData>,
}

macro_rules! typed_tensor {
    ($ctor:ident, $view:ident, $into:ident, $variant:ident, $t:ty) => {
        #[doc = concat!("A `", stringify!($t), "` tensor of `shape` (row-major `data`); errors if the element count differs.")]
        pub fn $ctor(shape: impl Into<Vec<usize>>, data: Vec<$t>) -> Result<Self> {
            Self::new(shape, TensorData::$variant(data))
        }

        #[doc = concat!("The elements as `", stringify!($t), "`, or an error naming the actual dtype.")]
        pub fn $view(&self) -> Result<&[$t]> {
            match self.data.as_ref() {
                TensorData::$variant(v) => Ok(v),
                other => Err(Error::invalid(
                    "tensor dtype",
                    stringify!($variant).to_lowercase(),
                    other.dtype(),
                )),
            }
        }

        #[doc = concat!("Consumes the tensor into its `", stringify!($t), "` elements, or errors naming the actual dtype.")]
        pub fn $into(self) -> Result<Vec<$t>> {
            match Arc::unwrap_or_clone(self.data) {
                TensorData::$variant(v) => Ok(v),
                other => Err(Error::invalid(
                    "tensor dtype",
                    stringify!($variant).to_lowercase(),
                    other.dtype(),
                )),
            }
        }
    };
}

impl Tensor {
    /// A tensor from a shape and its row-major data.
    ///
    /// Errors when the element count does not match the shape.
    pub fn new(shape: impl Into<Vec<usize>>, data: TensorData) -> Result<Self> {
        let shape = shape.into();
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::invalid(
                format!("tensor data for shape {shape:?}"),
                format!("{n} elements"),
                data.len(),
            ));
        }
        Ok(Tensor {
            shape,
            data: Arc::new(data),
        })
    }

    typed_tensor!(from_f32, as_f32, into_f32, F32, f32);
    typed_tensor!(from_f16, as_f16, into_f16, F16, f16);
    typed_tensor!(from_i64, as_i64, into_i64, I64, i64);
    typed_tensor!(from_i32, as_i32, into_i32, I32, i32);
    typed_tensor!(from_bool, as_bool, into_bool, Bool, bool);
    typed_tensor!(from_u8, as_u8, into_u8, U8, u8);
    typed_tensor!(from_i8, as_i8, into_i8, I8, i8);

    /// An `f32` tensor of zeros (no elements when a dimension is 0, as for an empty cache).
    pub fn zeros_f32(shape: impl Into<Vec<usize>>) -> Self {
        let shape = shape.into();
        let n = shape.iter().product();
        Tensor {
            shape,
            data: Arc::new(TensorData::F32(vec![0.0; n])),
        }
    }

    /// A scalar (rank 0) `i64`, as used for offsets and lengths.
    pub fn scalar_i64(v: i64) -> Self {
        Tensor {
            shape: vec![],
            data: Arc::new(TensorData::I64(vec![v])),
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The shared elements, for engines that cache conversions by identity.
    pub(crate) fn shared_data(&self) -> &Arc<TensorData> {
        &self.data
    }

    /// Consumes the tensor into its shape and elements (copying them only if the
    /// elements are shared with a clone).
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, Arc::unwrap_or_clone(self.data))
    }

    /// The elements widened to `f32` (F32 as is, F16 widened, integers and bools cast),
    /// for comparisons and reports.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.data.as_ref() {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
            TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
        }
    }

    /// The same elements under another shape with the same element count.
    pub fn reshape(self, shape: impl Into<Vec<usize>>) -> Result<Self> {
        let shape = shape.into();
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return Err(Error::invalid(
                format!("reshape to {shape:?}"),
                format!("{n} elements"),
                self.data.len(),
            ));
        }
        Ok(Tensor {
            shape,
            data: self.data,
        })
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size fixed in the model.
    Fixed(usize),
    /// A size chosen at run time, named in the model (`"batch"`, `"n_frames"`), or
    /// unnamed (`"?"`).
    Symbolic(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// Name, element type and shape of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IoSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions; [`Dim::Symbolic`] where the model leaves them open.
    pub shape: Vec<Dim>,
}

impl IoSpec {
    /// Checks that `t` can be fed to this input: same dtype, same rank, and equal sizes
    /// wherever the model fixes them.
    pub fn check(&self, t: &Tensor) -> Result<()> {
        if t.dtype() != self.dtype {
            return Err(Error::invalid(
                format!("dtype of input `{}`", self.name),
                self.dtype.to_string(),
                t.dtype(),
            ));
        }
        let fits = t.shape().len() == self.shape.len()
            && self.shape.iter().zip(t.shape()).all(|(d, &n)| match d {
                Dim::Fixed(m) => *m == n,
                Dim::Symbolic(_) => true,
            });
        if !fits {
            return Err(Error::invalid(
                format!("shape of input `{}`", self.name),
                self.to_string(),
                format!("{:?}", t.shape()),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for IoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        write!(f, "{}: {}[{}]", self.name, self.dtype, dims.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructor_checks_element_count() {
        assert!(Tensor::from_f32([2, 3], vec![0.0; 6]).is_ok());
        let err = Tensor::from_f32([2, 3], vec![0.0; 5]).unwrap_err();
        assert!(err.to_string().contains("6 elements"), "{err}");
    }

    #[test]
    fn typed_view_names_actual_dtype() {
        let t = Tensor::from_i64([1], vec![7]).unwrap();
        assert_eq!(t.as_i64().unwrap(), &[7]);
        let err = t.as_f32().unwrap_err().to_string();
        assert!(err.contains("i64"), "{err}");
    }

    #[test]
    fn io_spec_check_accepts_symbolic_and_rejects_fixed_mismatch() {
        let spec = IoSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(80)],
        };
        assert!(
            spec.check(&Tensor::from_f32([3, 80], vec![0.0; 240]).unwrap())
                .is_ok()
        );
        assert!(
            spec.check(&Tensor::from_f32([3, 81], vec![0.0; 243]).unwrap())
                .is_err()
        );
        assert!(
            spec.check(&Tensor::from_i64([1, 80], vec![0; 80]).unwrap())
                .is_err()
        );
        assert!(
            spec.check(&Tensor::from_f32([240], vec![0.0; 240]).unwrap())
                .is_err()
        );
    }
}
