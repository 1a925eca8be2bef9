//! Conversions between hearken's [`Tensor`] / [`Dim`] and ONNX's protobuf messages.
//!
//! Tensors are always written as `raw_data`, little-endian and fixed-width, which is what
//! PyTorch's exporter emits, what every ONNX reader accepts, and the only encoding that
//! external data (needed later for > 2 GiB checkpoints) can use. Reading back also
//! accepts the typed `*_data` fields, so models written by other tools can be inspected.

use half::f16;
use hearken::engine::{DType, Dim, Tensor, TensorData};
use tract_onnx::pb::{
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};

use crate::error::{Error, Result};

/// Encodes `t` as a `TensorProto` named `name`, with its elements in `raw_data`
/// (little-endian; bools one byte each, f16 as its IEEE bits).
///
/// Errors with [`Error::UnsupportedDType`] for element types added to hearken after this
/// writer.
pub fn tensor_proto(name: &str, t: &Tensor) -> Result<TensorProto> {
    fn le<T, const N: usize>(v: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(f).collect()
    }
    let raw_data = match t.data() {
        TensorData::F32(v) => le(v, |x| x.to_le_bytes()),
        TensorData::F16(v) => le(v, |x| x.to_bits().to_le_bytes()),
        TensorData::I64(v) => le(v, |x| x.to_le_bytes()),
        TensorData::I32(v) => le(v, |x| x.to_le_bytes()),
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I8(v) => le(v, |x| x.to_le_bytes()),
        _ => {
            return Err(Error::UnsupportedDType {
                what: format!("tensor `{name}`"),
                dtype: t.dtype(),
            });
        }
    };
    Ok(TensorProto {
        name: name.to_owned(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        raw_data,
        ..TensorProto::default()
    })
}

/// Decodes a `TensorProto` stored inline (`raw_data` or the typed `*_data` fields) into a
/// hearken [`Tensor`] of shape `proto.dims`.
///
/// Errors with [`Error::InvalidTensor`] for data types hearken has no [`DType`] for,
/// negative dimensions, external data, or an element count that does not match the dims.
pub fn tensor_from_proto(proto: &TensorProto) -> Result<Tensor> {
    let invalid = |reason: String| Error::InvalidTensor {
        name: proto.name.clone(),
        reason,
    };
    let dtype = DType::from_onnx_code(proto.data_type)
        .ok_or_else(|| invalid(format!("unsupported ONNX data type {}", proto.data_type)))?;
    if !proto.external_data.is_empty() {
        return Err(invalid("data is stored externally".into()));
    }
    let shape = proto
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| invalid(format!("negative dimension {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let raw = &proto.raw_data;
    let use_raw = !raw.is_empty() || shape.contains(&0);

    // `chunks_exact` guarantees the chunk length, so the array conversions below cannot
    // fail; the byte count itself is checked against the dims by `Tensor::new`.
    fn from_le<T, const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    let width = match dtype {
        DType::F32 | DType::I32 => 4,
        DType::F16 => 2,
        DType::I64 => 8,
        _ => 1,
    };
    if use_raw && !raw.len().is_multiple_of(width) {
        return Err(invalid(format!(
            "raw_data holds {} bytes, not a multiple of {width}",
            raw.len()
        )));
    }
    // Typed fields: ONNX stores f16/i8/u8/bool/i32 in `int32_data` (f16 as its bits).
    let ints = &proto.int32_data;
    let data = match dtype {
        DType::F32 if use_raw => TensorData::F32(from_le(raw, f32::from_le_bytes)),
        DType::F32 => TensorData::F32(proto.float_data.clone()),
        DType::F16 if use_raw => {
            TensorData::F16(from_le(raw, |b| f16::from_bits(u16::from_le_bytes(b))))
        }
        DType::F16 => TensorData::F16(ints.iter().map(|&x| f16::from_bits(x as u16)).collect()),
        DType::I64 if use_raw => TensorData::I64(from_le(raw, i64::from_le_bytes)),
        DType::I64 => TensorData::I64(proto.int64_data.clone()),
        DType::I32 if use_raw => TensorData::I32(from_le(raw, i32::from_le_bytes)),
        DType::I32 => TensorData::I32(ints.clone()),
        DType::Bool if use_raw => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
        DType::Bool => TensorData::Bool(ints.iter().map(|&b| b != 0).collect()),
        DType::U8 if use_raw => TensorData::U8(raw.clone()),
        DType::U8 => TensorData::U8(ints.iter().map(|&x| x as u8).collect()),
        DType::I8 if use_raw => TensorData::I8(raw.iter().map(|&x| x as i8).collect()),
        DType::I8 => TensorData::I8(ints.iter().map(|&x| x as i8).collect()),
        other => {
            return Err(Error::UnsupportedDType {
                what: format!("tensor `{}`", proto.name),
                dtype: other,
            });
        }
    };
    Tensor::new(shape, data).map_err(|e| invalid(e.to_string()))
}

/// A `ValueInfoProto` for a tensor value: `name`, element type and shape, with
/// [`Dim::Fixed`] written as `dim_value` and [`Dim::Symbolic`] as `dim_param`.
pub fn value_info(name: &str, dtype: DType, shape: &[Dim]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value};
    let dim = shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n as i64),
                Dim::Symbolic(s) => Value::DimParam(s.clone()),
            }),
            ..Dimension::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: dtype.onnx_code(),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// Converts one entry of a [`dims!`](crate::dims) list into a [`Dim`]: integers become
/// [`Dim::Fixed`], strings become named [`Dim::Symbolic`] (`dim_param`) dimensions.
pub trait IntoDim {
    /// The dimension.
    fn into_dim(self) -> Dim;
}

impl IntoDim for usize {
    fn into_dim(self) -> Dim {
        Dim::Fixed(self)
    }
}

impl IntoDim for &str {
    fn into_dim(self) -> Dim {
        Dim::Symbolic(self.to_owned())
    }
}

impl IntoDim for String {
    fn into_dim(self) -> Dim {
        Dim::Symbolic(self)
    }
}

impl IntoDim for &String {
    fn into_dim(self) -> Dim {
        Dim::Symbolic(self.clone())
    }
}

impl IntoDim for Dim {
    fn into_dim(self) -> Dim {
        self
    }
}

/// A `Vec<Dim>` from a mix of fixed sizes and dimension names:
/// `dims!["batch", 80, "n_frames"]` is `[Symbolic("batch"), Fixed(80),
/// Symbolic("n_frames")]`. `dims![]` is a scalar's (rank 0) shape.
#[macro_export]
macro_rules! dims {
    ($($d:expr),* $(,)?) => {
        {
            let dims: ::std::vec::Vec<$crate::onnx::Dim> =
                ::std::vec![$($crate::onnx::IntoDim::into_dim($d)),*];
            dims
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(t: Tensor) {
        let p = tensor_proto("t", &t).unwrap();
        assert_eq!(tensor_from_proto(&p).unwrap(), t);
    }

    #[test]
    fn every_dtype_round_trips_through_raw_data() {
        round_trip(Tensor::from_f32([2, 2], vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE]).unwrap());
        round_trip(Tensor::from_f16([3], [1.0, -0.5, 65504.0].map(f16::from_f32).into()).unwrap());
        round_trip(Tensor::from_i64([2], vec![i64::MIN, 7]).unwrap());
        round_trip(Tensor::from_i32([2, 1], vec![-3, i32::MAX]).unwrap());
        round_trip(Tensor::from_i8([2], vec![-128, 127]).unwrap());
        round_trip(Tensor::from_u8([2], vec![0, 255]).unwrap());
        round_trip(Tensor::from_bool([3], vec![true, false, true]).unwrap());
        round_trip(Tensor::scalar_i64(5));
        round_trip(Tensor::from_f32([0, 4], vec![]).unwrap());
    }

    #[test]
    fn raw_data_is_little_endian() {
        let p = tensor_proto("x", &Tensor::from_i32([1], vec![0x0102_0304]).unwrap()).unwrap();
        assert_eq!(p.raw_data, [4, 3, 2, 1]);
        assert_eq!(p.data_type, 6);
        let p = tensor_proto("b", &Tensor::from_bool([2], vec![true, false]).unwrap()).unwrap();
        assert_eq!(p.raw_data, [1, 0]);
    }

    #[test]
    fn typed_fields_are_read_too() {
        let p = TensorProto {
            dims: vec![2],
            data_type: DType::F32.onnx_code(),
            float_data: vec![1.0, 2.0],
            ..TensorProto::default()
        };
        assert_eq!(
            tensor_from_proto(&p).unwrap().as_f32().unwrap(),
            &[1.0, 2.0]
        );
    }

    #[test]
    fn bad_protos_are_rejected_with_reason() {
        let mut p = tensor_proto("w", &Tensor::from_f32([2], vec![1.0, 2.0]).unwrap()).unwrap();
        p.raw_data.pop();
        let err = tensor_from_proto(&p).unwrap_err().to_string();
        assert!(
            err.contains("`w`") && err.contains("multiple of 4"),
            "{err}"
        );
        p.data_type = 11; // double
        assert!(
            tensor_from_proto(&p)
                .unwrap_err()
                .to_string()
                .contains("data type 11")
        );
    }

    #[test]
    fn dims_macro_mixes_fixed_and_named() {
        let d: Vec<Dim> = crate::dims!["batch", 80, String::from("n")];
        assert_eq!(
            d,
            [
                Dim::Symbolic("batch".into()),
                Dim::Fixed(80),
                Dim::Symbolic("n".into())
            ]
        );
        assert!(crate::dims![].is_empty());
    }
}
