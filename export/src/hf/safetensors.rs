//! A checkpoint directory's weights, in whichever layout `save_pretrained` wrote them.
//!
//! transformers looks for, in this order (`modeling_utils.py`, `PreTrainedModel.
//! from_pretrained`,
//! <https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/modeling_utils.py>):
//! `model.safetensors`; `model.safetensors.index.json`, whose `weight_map` sends each
//! tensor name to one of the shards beside it (what `save_pretrained` writes past
//! `max_shard_size`, 5 GB by default); then the PyTorch pickles `pytorch_model.bin` and
//! `pytorch_model.bin.index.json`. [`WeightFiles::find`] follows the same order, and
//! [`load_dir`] reads the files one at a time, converting each tensor as it goes, so
//! that a sharded checkpoint never holds more than one shard's raw bytes at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result, candle_err, io_err, read_json};

/// The names [`WeightFiles::find`] looks for, in its order, for messages.
pub const WEIGHT_FILE_NAMES: &str = "`model.safetensors`, `model.safetensors.index.json`, \
                                     `pytorch_model.bin` or `pytorch_model.bin.index.json`";

/// Where a checkpoint directory keeps its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFiles {
    /// One safetensors file (`model.safetensors`).
    Safetensors(PathBuf),
    /// Safetensors shards, as listed by the index `model.safetensors.index.json`.
    ShardedSafetensors {
        /// The index.
        index: PathBuf,
        /// Every shard its `weight_map` names, once each, sorted.
        shards: Vec<PathBuf>,
    },
    /// One PyTorch pickle (`pytorch_model.bin`).
    Pytorch(PathBuf),
    /// PyTorch shards, as listed by the index `pytorch_model.bin.index.json`.
    ShardedPytorch {
        /// The index.
        index: PathBuf,
        /// Every shard its `weight_map` names, once each, sorted.
        shards: Vec<PathBuf>,
    },
}

/// The part of a sharded checkpoint's index that locates the tensors.
#[derive(Deserialize)]
struct Index {
    /// Tensor name -> shard file name, relative to the index's directory.
    weight_map: BTreeMap<String, String>,
}

impl WeightFiles {
    /// The weights of `dir`, the first layout found in transformers' order (see the
    /// module documentation), or `None` when it has none.
    ///
    /// Fails with [`Error::Io`] / [`Error::Json`] when an index cannot be read or has no
    /// `weight_map`. Shards are not opened here: a missing one fails in [`load_dir`].
    pub fn find(dir: impl AsRef<Path>) -> Result<Option<Self>> {
        let dir = dir.as_ref();
        let shards = |index: &Path| -> Result<Vec<PathBuf>> {
            let index: Index = read_json(index)?;
            let names: BTreeSet<String> = index.weight_map.into_values().collect();
            Ok(names.into_iter().map(|n| dir.join(n)).collect())
        };
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        Ok(Some(if let Some(f) = file("model.safetensors") {
            WeightFiles::Safetensors(f)
        } else if let Some(index) = file("model.safetensors.index.json") {
            WeightFiles::ShardedSafetensors {
                shards: shards(&index)?,
                index,
            }
        } else if let Some(f) = file("pytorch_model.bin") {
            WeightFiles::Pytorch(f)
        } else if let Some(index) = file("pytorch_model.bin.index.json") {
            WeightFiles::ShardedPytorch {
                shards: shards(&index)?,
                index,
            }
        } else {
            return Ok(None);
        }))
    }

    /// The files that hold the tensors (the shards, not the index).
    pub fn files(&self) -> &[PathBuf] {
        match self {
            WeightFiles::Safetensors(f) | WeightFiles::Pytorch(f) => std::slice::from_ref(f),
            WeightFiles::ShardedSafetensors { shards, .. }
            | WeightFiles::ShardedPytorch { shards, .. } => shards,
        }
    }

    /// Whether the files are PyTorch pickles rather than safetensors.
    pub fn is_pytorch(&self) -> bool {
        matches!(
            self,
            WeightFiles::Pytorch(_) | WeightFiles::ShardedPytorch { .. }
        )
    }
}

/// Every tensor of the checkpoint directory `dir` (see [`WeightFiles::find`]), by its
/// stored name, converted to `dtype` on `device`.
///
/// Fails with [`Error::UnknownLayout`] when `dir` has no weights, [`Error::Io`] when a file
/// (a shard named by the index included) cannot be read, [`Error::Candle`] for a file
/// that is not valid safetensors / PyTorch or a tensor that cannot be converted, and
/// [`Error::Unsupported`] when two shards store the same tensor.
pub fn load_dir(
    dir: impl AsRef<Path>,
    dtype: DType,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let dir = dir.as_ref();
    let Some(files) = WeightFiles::find(dir)? else {
        return Err(Error::UnknownLayout {
            dir: dir.to_path_buf(),
            what: "weights".into(),
            expected: WEIGHT_FILE_NAMES.into(),
            hint: if dir.is_dir() {
                String::new()
            } else {
                "; it is not a directory".into()
            },
        });
    };
    let mut tensors = BTreeMap::new();
    for file in files.files() {
        let loaded: Vec<(String, Tensor)> = if files.is_pytorch() {
            if !file.is_file() {
                // candle's pickle reader would report the missing file without its path.
                return Err(io_err(file)(std::io::ErrorKind::NotFound.into()));
            }
            candle_core::pickle::read_all(file)
                .map_err(candle_err(format!("reading {}", file.display())))?
        } else {
            let bytes = std::fs::read(file).map_err(io_err(file))?;
            candle_core::safetensors::load_buffer(&bytes, device)
                .map_err(candle_err(format!("reading {}", file.display())))?
                .into_iter()
                .collect()
        };
        for (name, t) in loaded {
            let t = t
                .to_dtype(dtype)
                .and_then(|t| t.to_device(device))
                .map_err(candle_err(format!("converting `{name}` to {dtype:?}")))?;
            if tensors.contains_key(&name) {
                return Err(Error::Unsupported {
                    path: file.clone(),
                    reason: format!("tensor `{name}` is also stored in an earlier shard"),
                });
            }
            tensors.insert(name, t);
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn tensor(values: &[f32], shape: &[usize], dtype: DType) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .unwrap()
    }

    /// Writes `shards` (file name -> tensors) with candle's safetensors writer, and the
    /// index that maps each tensor to its shard.
    fn write_sharded(dir: &Path, shards: &[(&str, Vec<(&str, Tensor)>)]) {
        let mut weight_map = serde_json::Map::new();
        for (file, tensors) in shards {
            let map: HashMap<String, Tensor> = tensors
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect();
            candle_core::safetensors::save(&map, dir.join(file)).unwrap();
            for (n, _) in tensors {
                weight_map.insert(n.to_string(), (*file).into());
            }
        }
        let index = serde_json::json!({
            "metadata": {"total_size": 0},
            "weight_map": weight_map,
        });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }

    #[test]
    fn loads_a_two_shard_checkpoint_through_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let a = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], DType::F16);
        let b = tensor(&[0.5, -0.5], &[2], DType::BF16);
        let c = tensor(&[7.0], &[1], DType::F32);
        let shard1 = "model-00001-of-00002.safetensors";
        let shard2 = "model-00002-of-00002.safetensors";
        write_sharded(
            dir.path(),
            &[
                (shard1, vec![("enc.w", a.clone()), ("enc.b", b.clone())]),
                (shard2, vec![("dec.w", c.clone())]),
            ],
        );

        let files = WeightFiles::find(dir.path()).unwrap().unwrap();
        assert_eq!(
            files,
            WeightFiles::ShardedSafetensors {
                index: dir.path().join("model.safetensors.index.json"),
                shards: vec![dir.path().join(shard1), dir.path().join(shard2)],
            }
        );
        assert!(!files.is_pytorch());

        let loaded = load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            loaded.keys().collect::<Vec<_>>(),
            ["dec.w", "enc.b", "enc.w"]
        );
        for (name, want) in [("enc.w", &a), ("enc.b", &b), ("dec.w", &c)] {
            let got = &loaded[name];
            assert_eq!(got.dtype(), DType::F32, "{name}");
            assert_eq!(got.dims(), want.dims(), "{name}");
            let want: Vec<f32> = want
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        }

        // A shard the index names but that is gone is an I/O error naming it.
        std::fs::remove_file(dir.path().join(shard2)).unwrap();
        match load_dir(dir.path(), DType::F32, &Device::Cpu) {
            Err(Error::Io { path, .. }) => assert_eq!(path, dir.path().join(shard2)),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    #[test]
    fn a_tensor_in_two_shards_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = tensor(&[1.0], &[1], DType::F32);
        write_sharded(
            dir.path(),
            &[
                ("a.safetensors", vec![("w", t.clone())]),
                ("b.safetensors", vec![("v", t.clone())]),
            ],
        );
        // The index sends `w` to a.safetensors, but b.safetensors stores it as well.
        let map: HashMap<String, Tensor> =
            [("v".to_string(), t.clone()), ("w".to_string(), t)].into();
        candle_core::safetensors::save(&map, dir.path().join("b.safetensors")).unwrap();
        let e = load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("`w`"), "{e}");
    }

    #[test]
    fn single_files_win_in_transformers_order() {
        let dir = tempfile::tempdir().unwrap();
        let t = tensor(&[1.0, 2.0], &[2], DType::F32);
        write_sharded(
            dir.path(),
            &[("s.safetensors", vec![("sharded", t.clone())])],
        );
        let map: HashMap<String, Tensor> = [("single".to_string(), t)].into();
        candle_core::safetensors::save(&map, dir.path().join("model.safetensors")).unwrap();
        let loaded = load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["single"]);
    }

    #[test]
    fn reads_pytorch_pickles() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2/hubert-ctc");
        let files = WeightFiles::find(&dir).unwrap().unwrap();
        assert_eq!(files, WeightFiles::Pytorch(dir.join("pytorch_model.bin")));
        let loaded = load_dir(&dir, DType::F32, &Device::Cpu).unwrap();
        assert!(loaded.contains_key("lm_head.weight"), "{:?}", loaded.keys());
        assert!(loaded.values().all(|t| t.dtype() == DType::F32));
    }

    #[test]
    fn a_directory_without_weights_is_an_unknown_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(WeightFiles::find(dir.path()).unwrap(), None);
        let e = load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
        assert!(matches!(e, Error::UnknownLayout { .. }), "{e}");
        assert!(e.to_string().contains("model.safetensors"), "{e}");
        let e = load_dir(dir.path().join("absent"), DType::F32, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
