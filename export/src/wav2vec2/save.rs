//! Writing a [`Wav2Vec2Model`] as a Hugging Face checkpoint directory that transformers'
//! `from_pretrained` loads as is (and [`super::load_dir`] reads back).
//!
//! - `model.safetensors`: every variable under its Hugging Face name, f32, with the
//!   `{"format": "pt"}` metadata `save_pretrained` writes. The positional convolution's
//!   weight norm is stored as `...pos_conv_embed.conv.weight_g` / `weight_v`, the names
//!   of the released checkpoints: transformers 4.x renames them to
//!   `parametrizations.weight.original0/1` on load when PyTorch has parametrized weight
//!   norm (`PreTrainedModel._fix_state_dict_key_on_load`), and uses them directly when it
//!   has not. A positional BatchNorm also gets its `num_batches_tracked`.
//! - `config.json`: the configuration with its head (`architectures`, labels or
//!   vocabulary size) and every field it was read with.
//! - `preprocessor_config.json`: a `Wav2Vec2FeatureExtractor` at 16 kHz with the model's
//!   waveform normalization, returning attention masks (the model is trained on padded
//!   batches with their masks).
//! - `vocab.json` for a CTC head: tokens by id, as `Wav2Vec2CTCTokenizer` reads them.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::Head;
use super::model::Wav2Vec2Model;
use crate::error::{Error, Result, candle_err, io_err};

/// Writes `value` as pretty JSON to `path`.
fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

impl Wav2Vec2Model {
    /// Writes the model to `dir` (created if needed) as a Hugging Face checkpoint:
    /// `model.safetensors`, `config.json`, `preprocessor_config.json` and, for a CTC
    /// head, `vocab.json` (see the module documentation). Existing files of those names
    /// are replaced.
    ///
    /// Fails with [`Error::Io`] when a file cannot be written, [`Error::Candle`] when a
    /// variable cannot be read, and [`Error::InvalidInput`] for a CTC vocabulary that
    /// holds a token twice.
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;

        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, var) in self.vars() {
            let t = var
                .as_tensor()
                .to_device(&Device::Cpu)
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.contiguous())
                .map_err(candle_err(format!("reading `{name}`")))?;
            tensors.push((name, t));
        }
        if let Some(steps) = self.batch_norm_steps() {
            let name = format!(
                "{}.encoder.pos_conv_embed.batch_norm.num_batches_tracked",
                self.family().as_str()
            );
            let t = Tensor::new(steps as i64, &Device::Cpu)
                .map_err(candle_err("building num_batches_tracked"))?;
            tensors.push((name, t));
        }
        let path = dir.join("model.safetensors");
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            Some(metadata),
            &path,
        )
        .map_err(|e| candle_err(format!("writing {}", path.display()))(e.into()))?;

        let config_path = dir.join("config.json");
        let config = serde_json::to_value(self.config()).map_err(|source| Error::Json {
            path: config_path.clone(),
            source,
        })?;
        write_json(&config_path, &config)?;

        let preprocessor = serde_json::json!({
            "do_normalize": self.normalize(),
            "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": true,
            "sampling_rate": 16_000,
        });
        write_json(&dir.join("preprocessor_config.json"), &preprocessor)?;

        if let Head::Ctc { vocab, .. } = self.head() {
            let mut map = serde_json::Map::new();
            for (i, token) in vocab.iter().enumerate() {
                if map.insert(token.clone(), i.into()).is_some() {
                    return Err(Error::InvalidInput {
                        what: "CTC vocabulary".into(),
                        expected: "distinct tokens".into(),
                        got: format!("`{token}` twice"),
                    });
                }
            }
            write_json(&dir.join("vocab.json"), &serde_json::Value::Object(map))?;
        }
        Ok(())
    }
}
