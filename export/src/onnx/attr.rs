//! Node attributes as one Rust enum.
//!
//! ONNX's `AttributeProto` is a C-style union (a type tag plus one field per type); an
//! enum makes the wrong combination unrepresentable, and `From` conversions keep call
//! sites short: `("axis", (-1).into())`, `("perm", vec![0, 2, 1].into())`.

use hearken::engine::Tensor;
use tract_onnx::pb::{AttributeProto, attribute_proto::AttributeType};

use super::tensor::tensor_proto;
use crate::error::Result;

/// The value of one node attribute.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Attr {
    /// A 64-bit integer (`axis`, `group`, `transB`).
    Int(i64),
    /// A 32-bit float (`epsilon`, `alpha`).
    Float(f32),
    /// A UTF-8 string (`mode`, `auto_pad`).
    String(String),
    /// A list of integers (`perm`, `kernel_shape`, `pads`).
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A tensor (`Constant`'s `value`, `ConstantOfShape`'s fill value).
    Tensor(Tensor),
}

impl Attr {
    /// Encodes the attribute as an `AttributeProto` called `name`.
    ///
    /// Fails only for a [`Attr::Tensor`] whose element type cannot be written.
    pub fn to_proto(&self, name: &str) -> Result<AttributeProto> {
        let mut p = AttributeProto {
            name: name.to_owned(),
            ..AttributeProto::default()
        };
        let ty = match self {
            Attr::Int(i) => {
                p.i = *i;
                AttributeType::Int
            }
            Attr::Float(f) => {
                p.f = *f;
                AttributeType::Float
            }
            Attr::String(s) => {
                p.s = s.as_bytes().to_vec();
                AttributeType::String
            }
            Attr::Ints(v) => {
                p.ints = v.clone();
                AttributeType::Ints
            }
            Attr::Floats(v) => {
                p.floats = v.clone();
                AttributeType::Floats
            }
            Attr::Tensor(t) => {
                p.t = Some(tensor_proto("", t)?);
                AttributeType::Tensor
            }
        };
        p.r#type = ty as i32;
        Ok(p)
    }
}

impl From<i64> for Attr {
    fn from(v: i64) -> Self {
        Attr::Int(v)
    }
}

impl From<i32> for Attr {
    fn from(v: i32) -> Self {
        Attr::Int(v.into())
    }
}

impl From<bool> for Attr {
    /// ONNX spells flags (`transB`, `keepdims`) as `0`/`1` integers.
    fn from(v: bool) -> Self {
        Attr::Int(v.into())
    }
}

impl From<f32> for Attr {
    fn from(v: f32) -> Self {
        Attr::Float(v)
    }
}

impl From<&str> for Attr {
    fn from(v: &str) -> Self {
        Attr::String(v.to_owned())
    }
}

impl From<String> for Attr {
    fn from(v: String) -> Self {
        Attr::String(v)
    }
}

impl From<Vec<i64>> for Attr {
    fn from(v: Vec<i64>) -> Self {
        Attr::Ints(v)
    }
}

impl From<&[i64]> for Attr {
    fn from(v: &[i64]) -> Self {
        Attr::Ints(v.to_vec())
    }
}

impl<const N: usize> From<[i64; N]> for Attr {
    fn from(v: [i64; N]) -> Self {
        Attr::Ints(v.to_vec())
    }
}

impl From<Vec<f32>> for Attr {
    fn from(v: Vec<f32>) -> Self {
        Attr::Floats(v)
    }
}

impl From<&[f32]> for Attr {
    fn from(v: &[f32]) -> Self {
        Attr::Floats(v.to_vec())
    }
}

impl From<Tensor> for Attr {
    fn from(v: Tensor) -> Self {
        Attr::Tensor(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_tag_matches_the_field_in_use() {
        let p = Attr::from(-1).to_proto("axis").unwrap();
        assert_eq!(
            (p.name.as_str(), p.i, p.r#type),
            ("axis", -1, AttributeType::Int as i32)
        );
        let p = Attr::from("NOTSET").to_proto("auto_pad").unwrap();
        assert_eq!(
            (p.s.as_slice(), p.r#type),
            (&b"NOTSET"[..], AttributeType::String as i32)
        );
        let p = Attr::from([0, 2, 1]).to_proto("perm").unwrap();
        assert_eq!(
            (p.ints, p.r#type),
            (vec![0, 2, 1], AttributeType::Ints as i32)
        );
        let p = Attr::from(1e-5f32).to_proto("epsilon").unwrap();
        assert_eq!((p.f, p.r#type), (1e-5, AttributeType::Float as i32));
        let p = Attr::from(Tensor::scalar_i64(3)).to_proto("value").unwrap();
        assert_eq!(p.r#type, AttributeType::Tensor as i32);
        assert_eq!(p.t.unwrap().raw_data, 3i64.to_le_bytes());
    }
}
