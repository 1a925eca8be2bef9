//! Reader (and a small writer) for CTranslate2's `model.bin`.
//!
//! faster-whisper and many packaged Whisper models ship only CTranslate2 conversions, so
//! importing them needs no Python: this module parses the file into named variables whose
//! bytes stay in the one buffer the file was read into (a 150 MB model is read once and
//! never copied; conversion to `f32` happens per variable, on demand).
//!
//! The layout, little-endian throughout, as written by `ModelSpec._serialize`
//! (<https://github.com/OpenNMT/CTranslate2/blob/v4.5.0/python/ctranslate2/specs/model_spec.py>)
//! and read by `Model::load`
//! (<https://github.com/OpenNMT/CTranslate2/blob/v4.5.0/src/models/model.cc>), and checked
//! byte for byte against real Whisper conversions (binary version 6):
//!
//! ```text
//! u32 binary_version          4, 5 or 6: the byte layout below is the same for all three
//! str spec_name               e.g. "WhisperSpec"
//! u32 spec_revision
//! u32 n_variables
//! n_variables × { str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, u8 data[n_bytes] }
//! u32 n_aliases
//! n_aliases × { str alias, str target }
//! ```
//!
//! where `str` is a `u16` length that counts a trailing NUL, the UTF-8 bytes, then the NUL,
//! and `dtype` indexes CTranslate2's `DataType` enum (`f32, i8, i16, i32, f16, bf16`).
//! Versions 5 and 6 changed load-time behaviour (quantization rounding), not bytes;
//! versions 1-3 (an item size instead of a dtype id, no aliases before 3) predate every
//! Whisper conversion and are rejected.
//!
//! Scalar model attributes (`encoder/num_heads`, `decoder/activation`, ...) are ordinary
//! rank-0 variables; quantized weights are `i8` with a per-row `{name}_scale` (see
//! [`Ct2Model::to_f32`]).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result, io_err};

/// Binary versions whose layout this reader understands.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 4..=6;

/// Element type of a stored variable, in CTranslate2's `DataType` order (the id is the
/// position: `F32` = 0 ... `BF16` = 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `float32`.
    F32,
    /// `int8` (quantized weights, flags).
    I8,
    /// `int16` (quantized weights, integer attributes such as `num_heads`).
    I16,
    /// `int32`.
    I32,
    /// `float16`.
    F16,
    /// `bfloat16`.
    BF16,
}

impl DType {
    /// The dtype with CTranslate2 id `id`, if any.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    /// CTranslate2's id for this dtype.
    pub fn id(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 => 3,
            DType::F16 => 4,
            DType::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "float32",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
        })
    }
}

/// Where a stored variable's bytes are in the file.
#[derive(Debug, Clone)]
struct Stored {
    shape: Vec<usize>,
    dtype: DType,
    range: Range<usize>,
}

/// A variable borrowed from a [`Ct2Model`] (or handed to [`write_model`]).
#[derive(Debug, Clone, Copy)]
pub struct VarRef<'a> {
    /// Its name (the stored name, after alias resolution).
    pub name: &'a str,
    /// Its shape, row-major; empty for a scalar.
    pub shape: &'a [usize],
    /// Its element type.
    pub dtype: DType,
    /// Its raw little-endian bytes, `shape.product() * dtype.size_in_bytes()` of them.
    pub bytes: &'a [u8],
}

impl VarRef<'_> {
    /// Number of elements (1 for a scalar; saturates at `usize::MAX`).
    pub fn n_elements(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The elements as `f32`: floats are converted, integers cast (an `i8` weight stays
    /// its quantized value; see [`Ct2Model::to_f32`] for dequantization).
    /// Output: `(shape.product(),)`, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        let b = self.bytes;
        match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I8 => b.iter().map(|&x| x as i8 as f32).collect(),
            DType::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            DType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }

    /// The value of a scalar integer attribute (`encoder/num_heads`), or an error if the
    /// variable is not a one-element integer.
    pub fn to_i64(&self) -> Result<i64> {
        let err = |reason: String| Error::Ct2Conversion {
            name: self.name.to_owned(),
            reason,
        };
        if self.n_elements() != 1 || self.bytes.len() != self.dtype.size_in_bytes() {
            return Err(err(format!(
                "expected a scalar, got shape {:?} ({} bytes)",
                self.shape,
                self.bytes.len()
            )));
        }
        let b = self.bytes;
        Ok(match self.dtype {
            DType::I8 => b[0] as i8 as i64,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            other => return Err(err(format!("expected an integer, got {other}"))),
        })
    }
}

/// A parsed CTranslate2 `model.bin`: header, variables and aliases, over the file's bytes.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    binary_version: u32,
    spec_name: String,
    spec_revision: u32,
    variables: BTreeMap<String, Stored>,
    aliases: BTreeMap<String, String>,
    data: Vec<u8>,
}

impl Ct2Model {
    /// Reads and parses `path` (a `model.bin`).
    ///
    /// Fails with [`Error::Io`] when it cannot be read, and with the format errors of
    /// [`Ct2Model::from_bytes`] (naming `path`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(io_err(path))?;
        parse(data, path)
    }

    /// Parses the bytes of a `model.bin`, taking ownership so that variables borrow them
    /// without a copy.
    ///
    /// Fails with [`Error::Ct2Truncated`], [`Error::Ct2UnsupportedVersion`],
    /// [`Error::Ct2UnknownDType`], [`Error::Ct2SizeMismatch`] or [`Error::Ct2Malformed`]; never
    /// panics, whatever the bytes.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self> {
        parse(data, Path::new("<memory>"))
    }

    /// The file's binary (format) version.
    pub fn binary_version(&self) -> u32 {
        self.binary_version
    }

    /// The model specification, e.g. `WhisperSpec`.
    pub fn spec_name(&self) -> &str {
        &self.spec_name
    }

    /// The specification's revision (the weights layout version of that architecture).
    pub fn spec_revision(&self) -> u32 {
        self.spec_revision
    }

    /// Stored variables, by name (aliases excluded).
    pub fn variables(&self) -> impl Iterator<Item = VarRef<'_>> {
        self.variables.iter().map(|(name, s)| self.var_ref(name, s))
    }

    /// Aliases, alias -> stored variable (e.g. `decoder/projection/weight` ->
    /// `decoder/embeddings/weight` for tied embeddings).
    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// Whether `name` is a stored variable or an alias.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The variable `name`, following an alias if `name` is one.
    pub fn get(&self, name: &str) -> Option<VarRef<'_>> {
        let (name, stored) = match self.variables.get_key_value(name) {
            Some(found) => found,
            None => {
                let target = self.aliases.get(name)?;
                self.variables.get_key_value(target.as_str())?
            }
        };
        Some(self.var_ref(name, stored))
    }

    /// Like [`Ct2Model::get`], failing with [`Error::Ct2MissingVariable`].
    pub fn require(&self, name: &str) -> Result<VarRef<'_>> {
        self.get(name).ok_or_else(|| Error::Ct2MissingVariable {
            name: name.to_owned(),
        })
    }

    /// The variable `name` as `f32`, with its shape: floats are converted; an `i8` or
    /// `i16` weight is dequantized with its `{name}_scale` (`w = q / scale`, one scale per
    /// row of the 2-D view `(shape[0], rest)` or a single global scale), as CTranslate2's
    /// `Dequantize` op does. Output: `(shape, (shape.product(),) row-major)`.
    ///
    /// Fails with [`Error::Ct2MissingVariable`], or [`Error::Ct2Conversion`] for an integer
    /// weight without a usable scale.
    pub fn to_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let var = self.require(name)?;
        let shape = var.shape.to_vec();
        let mut values = var.to_f32();
        if matches!(var.dtype, DType::I8 | DType::I16) {
            let scale_name = format!("{name}_scale");
            let scale = self
                .get(&scale_name)
                .ok_or_else(|| Error::Ct2Conversion {
                    name: name.to_owned(),
                    reason: format!("{} weight without `{scale_name}`", var.dtype),
                })?
                .to_f32();
            let n_rows = match scale.len() {
                1 => 1,
                n if shape.first() == Some(&n) => n,
                n => {
                    return Err(Error::Ct2Conversion {
                        name: name.to_owned(),
                        reason: format!("{n} scales do not match shape {shape:?}"),
                    });
                }
            };
            let row_len = values.len() / n_rows.max(1);
            for (row, s) in values.chunks_mut(row_len.max(1)).zip(&scale) {
                if *s == 0.0 || !s.is_finite() {
                    return Err(Error::Ct2Conversion {
                        name: name.to_owned(),
                        reason: format!("invalid quantization scale {s}"),
                    });
                }
                row.iter_mut().for_each(|x| *x /= s);
            }
        }
        Ok((shape, values))
    }

    fn var_ref<'a>(&'a self, name: &'a str, s: &'a Stored) -> VarRef<'a> {
        VarRef {
            name,
            shape: &s.shape,
            dtype: s.dtype,
            bytes: &self.data[s.range.clone()],
        }
    }
}

/// A cursor over the file that turns every short read into [`Error::Ct2Truncated`].
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<Range<usize>> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len());
        match end {
            Some(end) => {
                let range = self.pos..end;
                self.pos = end;
                Ok(range)
            }
            None => Err(Error::Ct2Truncated {
                path: self.path.to_owned(),
                what: what(),
                offset: self.pos,
                needed: n,
                len: self.data.len(),
            }),
        }
    }

    fn bytes(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let range = self.take(n, what)?;
        Ok(&self.data[range])
    }

    fn u8(&mut self, what: impl FnOnce() -> String) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u16(&mut self, what: impl FnOnce() -> String) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let offset = self.pos;
        let n = self.u16(|| format!("length of {}", what()))? as usize;
        let b = self.bytes(n, what)?;
        let malformed = |reason: String| Error::Ct2Malformed {
            path: self.path.to_owned(),
            offset,
            reason,
        };
        match b.split_last() {
            Some((0, text)) => std::str::from_utf8(text)
                .map(str::to_owned)
                .map_err(|e| malformed(format!("{} is not UTF-8: {e}", what()))),
            _ => Err(malformed(format!(
                "{} (length {n}) does not end with a NUL byte",
                what()
            ))),
        }
    }
}

fn parse(data: Vec<u8>, path: &Path) -> Result<Ct2Model> {
    let mut c = Cursor {
        data: &data,
        pos: 0,
        path,
    };
    let binary_version = c.u32(|| "binary version".into())?;
    if !SUPPORTED_VERSIONS.contains(&binary_version) {
        let hint = if binary_version < *SUPPORTED_VERSIONS.start() {
            "re-convert the model with a current CTranslate2"
        } else if binary_version < 0x100 {
            "the model was written by a newer CTranslate2 than this reader knows"
        } else {
            "this does not look like a CTranslate2 model.bin"
        };
        return Err(Error::Ct2UnsupportedVersion {
            path: path.to_owned(),
            version: binary_version,
            hint,
        });
    }
    let spec_name = c.string(&|| "spec name".into())?;
    let spec_revision = c.u32(|| "spec revision".into())?;
    let n_variables = c.u32(|| "variable count".into())?;

    let mut variables = BTreeMap::new();
    for index in 0..n_variables {
        let offset = c.pos;
        let name = c.string(&|| format!("name of variable {index}"))?;
        let rank = c.u8(|| format!("rank of `{name}`"))? as usize;
        let dims = c.bytes(rank * 4, || format!("dims of `{name}`"))?;
        let shape: Vec<usize> = dims
            .chunks_exact(4)
            .map(|d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize)
            .collect();
        let dtype_id = c.u8(|| format!("dtype of `{name}`"))?;
        let dtype = DType::from_id(dtype_id).ok_or_else(|| Error::Ct2UnknownDType {
            path: path.to_owned(),
            name: name.clone(),
            dtype_id,
        })?;
        let n_bytes = c.u32(|| format!("byte count of `{name}`"))? as usize;
        let expected = shape
            .iter()
            .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX);
        if expected != n_bytes {
            return Err(Error::Ct2SizeMismatch {
                path: path.to_owned(),
                name,
                shape,
                dtype,
                expected,
                got: n_bytes,
            });
        }
        let range = c.take(n_bytes, || format!("data of `{name}`"))?;
        if variables.contains_key(&name) {
            return Err(Error::Ct2Malformed {
                path: path.to_owned(),
                offset,
                reason: format!("variable `{name}` is defined twice"),
            });
        }
        variables.insert(
            name,
            Stored {
                shape,
                dtype,
                range,
            },
        );
    }

    let n_aliases = c.u32(|| "alias count".into())?;
    let mut aliases = BTreeMap::new();
    for index in 0..n_aliases {
        let offset = c.pos;
        let alias = c.string(&|| format!("alias {index}"))?;
        let target = c.string(&|| format!("target of alias `{alias}`"))?;
        let malformed = |reason: String| Error::Ct2Malformed {
            path: path.to_owned(),
            offset,
            reason,
        };
        if !variables.contains_key(&target) {
            return Err(malformed(format!(
                "alias `{alias}` points to `{target}`, which is not a variable"
            )));
        }
        if variables.contains_key(&alias) || aliases.contains_key(&alias) {
            return Err(malformed(format!("alias `{alias}` is defined twice")));
        }
        aliases.insert(alias, target);
    }
    if c.pos != data.len() {
        return Err(Error::Ct2Malformed {
            path: path.to_owned(),
            offset: c.pos,
            reason: format!(
                "{} bytes after the alias table (were the parts of a split model \
                 concatenated more than once?)",
                data.len() - c.pos
            ),
        });
    }

    Ok(Ct2Model {
        binary_version,
        spec_name,
        spec_revision,
        variables,
        aliases,
        data,
    })
}

/// Serializes variables and aliases in the `model.bin` layout (the inverse of
/// [`Ct2Model::from_bytes`]), for fixtures and tests.
///
/// Each variable's `bytes` must hold `shape.product() * dtype.size_in_bytes()` bytes;
/// names and aliases must be shorter than 65535 bytes. Fails with [`Error::Ct2Conversion`]
/// (naming the variable) otherwise.
pub fn write_model(
    binary_version: u32,
    spec_name: &str,
    spec_revision: u32,
    variables: &[VarRef<'_>],
    aliases: &[(&str, &str)],
) -> Result<Vec<u8>> {
    fn put_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
        let len = u16::try_from(s.len() + 1).map_err(|_| Error::Ct2Conversion {
            name: s.chars().take(40).collect(),
            reason: "name longer than 65534 bytes".into(),
        })?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
        Ok(())
    }
    let n_bytes: usize = variables.iter().map(|v| v.bytes.len() + 64).sum();
    let mut out = Vec::with_capacity(n_bytes + 64);
    out.extend_from_slice(&binary_version.to_le_bytes());
    put_str(&mut out, spec_name)?;
    out.extend_from_slice(&spec_revision.to_le_bytes());
    out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
    for v in variables {
        let err = |reason: String| Error::Ct2Conversion {
            name: v.name.to_owned(),
            reason,
        };
        let expected = v
            .shape
            .iter()
            .try_fold(v.dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d));
        if expected != Some(v.bytes.len()) {
            return Err(err(format!(
                "{} bytes for shape {:?} of {}",
                v.bytes.len(),
                v.shape,
                v.dtype
            )));
        }
        put_str(&mut out, v.name)?;
        let rank = u8::try_from(v.shape.len()).map_err(|_| err("rank over 255".into()))?;
        out.push(rank);
        for &d in v.shape {
            let d = u32::try_from(d).map_err(|_| err(format!("dimension {d} over u32")))?;
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.push(v.dtype.id());
        let len = u32::try_from(v.bytes.len()).map_err(|_| err("over 4 GiB".into()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(v.bytes);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (alias, target) in aliases {
        put_str(&mut out, alias)?;
        put_str(&mut out, target)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn sample(version: u32) -> Vec<u8> {
        let w = f32_bytes(&[1.0, -2.0, 3.5, 0.25, 5.0, 6.0]);
        let h: Vec<u8> = [0.5f32, -1.0]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let heads = 6i16.to_le_bytes();
        let vars = [
            VarRef {
                name: "enc/w",
                shape: &[2, 3],
                dtype: DType::F32,
                bytes: &w,
            },
            VarRef {
                name: "enc/h",
                shape: &[2],
                dtype: DType::F16,
                bytes: &h,
            },
            VarRef {
                name: "enc/num_heads",
                shape: &[],
                dtype: DType::I16,
                bytes: &heads,
            },
        ];
        write_model(version, "WhisperSpec", 3, &vars, &[("dec/proj", "enc/w")]).unwrap()
    }

    #[test]
    fn round_trips_v5_and_v6() {
        for version in [5, 6] {
            let m = Ct2Model::from_bytes(sample(version)).unwrap();
            assert_eq!(m.binary_version(), version);
            assert_eq!(m.spec_name(), "WhisperSpec");
            assert_eq!(m.spec_revision(), 3);
            assert_eq!(m.variables().count(), 3);
            let w = m.get("dec/proj").unwrap();
            assert_eq!(w.name, "enc/w");
            assert_eq!(w.shape, &[2, 3]);
            assert_eq!(w.to_f32(), vec![1.0, -2.0, 3.5, 0.25, 5.0, 6.0]);
            assert_eq!(m.to_f32("enc/h").unwrap().1, vec![0.5, -1.0]);
            assert_eq!(m.require("enc/num_heads").unwrap().to_i64().unwrap(), 6);
            assert!(m.require("enc/w").unwrap().to_i64().is_err());
            assert!(matches!(
                m.require("nope"),
                Err(Error::Ct2MissingVariable { .. })
            ));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample(6);
        for len in 0..bytes.len() {
            let err = Ct2Model::from_bytes(bytes[..len].to_vec()).unwrap_err();
            assert!(
                matches!(err, Error::Ct2Truncated { .. }),
                "len {len}: unexpected {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Ct2Model::from_bytes(longer),
            Err(Error::Ct2Malformed { .. })
        ));
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        // Flip each byte to a few values: the parser must return, Ok or Err.
        let bytes = sample(6);
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = Ct2Model::from_bytes(b);
            }
        }
    }

    #[test]
    fn rejects_bad_headers_and_fields() {
        let mut b = sample(6);
        b[0] = 7;
        assert!(matches!(
            Ct2Model::from_bytes(b),
            Err(Error::Ct2UnsupportedVersion { version: 7, .. })
        ));
        let mut b = sample(6);
        b[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            Ct2Model::from_bytes(b),
            Err(Error::Ct2UnsupportedVersion { version: 3, .. })
        ));

        // Header: 4 (version) + 2 + 12 ("WhisperSpec\0") + 4 (revision) + 4 (count);
        // variable 0: 2 + 6 ("enc/w\0") + 1 (rank) + 8 (dims), then its dtype.
        let dtype_at = 4 + 2 + 12 + 4 + 4 + 2 + 6 + 1 + 8;
        let mut b = sample(6);
        assert_eq!(b[dtype_at], 0);
        b[dtype_at] = 9;
        assert!(matches!(
            Ct2Model::from_bytes(b),
            Err(Error::Ct2UnknownDType { dtype_id: 9, .. })
        ));
        let mut b = sample(6);
        b[dtype_at] = 4; // f16 data would need 12 bytes, the file stores 24
        assert!(matches!(
            Ct2Model::from_bytes(b),
            Err(Error::Ct2SizeMismatch {
                expected: 12,
                got: 24,
                ..
            })
        ));
        let mut b = sample(6);
        b[4 + 2 + 11] = b'!'; // the spec name's NUL
        assert!(matches!(
            Ct2Model::from_bytes(b),
            Err(Error::Ct2Malformed { .. })
        ));
    }

    #[test]
    fn rejects_dangling_and_duplicate_names() {
        let x = f32_bytes(&[1.0]);
        let v = VarRef {
            name: "x",
            shape: &[1],
            dtype: DType::F32,
            bytes: &x,
        };
        let dangling = write_model(6, "S", 1, &[v], &[("y", "z")]).unwrap();
        assert!(matches!(
            Ct2Model::from_bytes(dangling),
            Err(Error::Ct2Malformed { .. })
        ));
        let twice = write_model(6, "S", 1, &[v, v], &[]).unwrap();
        assert!(matches!(
            Ct2Model::from_bytes(twice),
            Err(Error::Ct2Malformed { .. })
        ));
        let overflow = VarRef {
            shape: &[u32::MAX as usize, u32::MAX as usize, 16],
            ..v
        };
        assert!(write_model(6, "S", 1, &[overflow], &[]).is_err());
    }

    #[test]
    fn dequantizes_int8_rows() {
        let q: Vec<u8> = [127i8, -64, 10, 20].iter().map(|&x| x as u8).collect();
        let scale = f32_bytes(&[127.0, 10.0]);
        let vars = [
            VarRef {
                name: "w",
                shape: &[2, 2],
                dtype: DType::I8,
                bytes: &q,
            },
            VarRef {
                name: "w_scale",
                shape: &[2],
                dtype: DType::F32,
                bytes: &scale,
            },
        ];
        let m = Ct2Model::from_bytes(write_model(6, "S", 1, &vars, &[]).unwrap()).unwrap();
        let (shape, w) = m.to_f32("w").unwrap();
        assert_eq!(shape, vec![2, 2]);
        assert_eq!(w, vec![1.0, -64.0 / 127.0, 1.0, 2.0]);
        let unscaled = [vars[0]];
        let m = Ct2Model::from_bytes(write_model(6, "S", 1, &unscaled, &[]).unwrap()).unwrap();
        assert!(matches!(m.to_f32("w"), Err(Error::Ct2Conversion { .. })));
    }
}
