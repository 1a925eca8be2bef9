//! Minimal NumPy `.npy` reading and writing.
//!
//! `.npy` is how features and golden tensors travel between hearken and the Python
//! reference implementations (`hearken features --out x.npy`, `tests/fixtures/*.npy`).
//! Only what those need is supported: little-endian (or byte-order-free) C-order arrays of
//! the dtypes in [`DType`]; format versions 1, 2 and 3. Format reference:
//! <https://github.com/numpy/numpy/blob/v2.1.0/numpy/lib/format.py#L1-L160>

use std::path::{Path, PathBuf};

use half::f16;

use crate::engine::{DType, Tensor, TensorData};
use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a `.npy` file into a [`Tensor`].
pub fn read(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes).map_err(|reason| Error::Npy {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes a [`Tensor`] as a version 1.0 `.npy` file.
pub fn write(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(t)).map_err(|e| Error::io(path, e))
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Tensor> {
    from_bytes(bytes).map_err(|reason| Error::Npy {
        path: PathBuf::from("<memory>"),
        reason,
    })
}

/// Serializes a tensor as a version 1.0 `.npy` file.
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let descr = match t.dtype() {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
    };
    let shape = match t.shape() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that magic + version + length + header + '\n' is a multiple of 64.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');

    let mut out = Vec::with_capacity(unpadded + 64 + t.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match t.data() {
        TensorData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::F16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::U8(v) => out.extend_from_slice(v),
        TensorData::I8(v) => out.extend(v.iter().map(|&b| b as u8)),
    }
    out
}

fn from_bytes(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let b = bytes.get(8..12).ok_or("truncated header length")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(format!("unsupported format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not UTF-8")?;
    let descr = dict_value(header, "descr")
        .and_then(quoted)
        .ok_or("header has no 'descr' string")?;
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = parse_shape(header)?;
    let body = &bytes[start + header_len..];
    let n: usize = shape.iter().product();

    let (order, kind) = descr.split_at(1);
    if order == ">" {
        return Err(format!("big-endian dtype {descr} is not supported"));
    }
    let width: usize = kind[1..]
        .parse()
        .map_err(|_| format!("unsupported dtype {descr}"))?;
    if body.len() != n * width {
        return Err(format!(
            "data holds {} bytes, shape {shape:?} of {descr} needs {}",
            body.len(),
            n * width
        ));
    }
    let chunks = body.chunks_exact(width);
    let data = match kind {
        "f4" => TensorData::F32(
            chunks
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        "f8" => TensorData::F32(
            chunks
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        ),
        "f2" => TensorData::F16(chunks.map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
        "i8" => TensorData::I64(
            chunks
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        "i4" => TensorData::I32(
            chunks
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        "b1" => TensorData::Bool(body.iter().map(|&b| b != 0).collect()),
        "u1" => TensorData::U8(body.to_vec()),
        "i1" => TensorData::I8(body.iter().map(|&b| b as i8).collect()),
        _ => return Err(format!("unsupported dtype {descr}")),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// The raw text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?;
    Some(rest.trim_start())
}

/// The contents of the quoted string `raw` starts with (`'<f4', ...` -> `<f4`).
fn quoted(raw: &str) -> Option<&str> {
    let q = raw.chars().next().filter(|&c| c == '\'' || c == '"')?;
    let rest = &raw[1..];
    rest.find(q).map(|end| &rest[..end])
}

fn parse_shape(header: &str) -> std::result::Result<Vec<usize>, String> {
    let v = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let inner = v
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("malformed 'shape'")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad dimension `{s}`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype_and_rank() {
        let cases = [
            Tensor::from_f32([2, 3], vec![0.5, -1.0, 2.0, 3.25, f32::MIN_POSITIVE, 1e30]).unwrap(),
            Tensor::from_i64([3], vec![-1, 0, i64::MAX]).unwrap(),
            Tensor::from_i32([1, 1, 2], vec![7, -7]).unwrap(),
            Tensor::from_bool([2], vec![true, false]).unwrap(),
            Tensor::from_f16([1], vec![f16::from_f32(0.25)]).unwrap(),
            Tensor::from_f32(Vec::<usize>::new(), vec![4.0]).unwrap(),
            Tensor::from_f32([0, 5], vec![]).unwrap(),
        ];
        for t in cases {
            let bytes = to_bytes(&t);
            assert_eq!(
                bytes.iter().position(|&b| b == b'\n').map(|p| (p + 1) % 64),
                Some(0)
            );
            assert_eq!(parse(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn rejects_truncated_and_foreign_data() {
        let t = Tensor::from_f32([4], vec![1.0; 4]).unwrap();
        let bytes = to_bytes(&t);
        let err = parse(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("needs 16"), "{err}");
        assert!(parse(b"RIFF0000WAVE").is_err());
        assert!(parse(&[]).is_err());
    }
}
