//! Importers: a Hugging Face or CTranslate2 Whisper directory -> [`WhisperCheckpoint`].
//!
//! Every source is brought to one layout, Hugging Face's `WhisperForConditionalGeneration`
//! names in `f32`, so that the ONNX exporter and the candle reference have a single input
//! to handle. The list of tensors a checkpoint must hold ([`hf_tensor_shapes`]) and the
//! CTranslate2 <-> Hugging Face name mapping ([`ct2_layout`]) are tables, used both to
//! import and (in [`super::random`]) to write fixtures, so that the two directions cannot
//! drift apart.
//!
//! Special tokens are looked up by name in whatever vocabulary the directory has
//! (`vocabulary.txt`, `tokenizer.json`, `added_tokens.json`, `vocab.json`), then overridden
//! by explicit ids from `generation_config.json` where present; decoding lists
//! (`suppress_tokens`, alignment heads, languages) come from the CTranslate2 or generation
//! config, with OpenAI's defaults when absent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use serde_json::Value;

use hearken::model::whisper::{HfGenerationConfig, first_token_id};

use super::{WhisperCheckpoint, WhisperDims, WhisperTokens};
use crate::ct2::Ct2Model;
use crate::error::{Error, Result, candle_err, io_err, read_json};
use crate::hf;

/// Size of OpenAI's English-only vocabulary. It lists language tokens that the `.en`
/// models were never trained with; OpenAI's own test is `n_vocab >= 51865`
/// (`Whisper.is_multilingual`,
/// <https://github.com/openai/whisper/blob/v20240930/whisper/model.py>).
const ENGLISH_ONLY_VOCAB_SIZE: usize = 51864;

/// Every tensor of a Hugging Face Whisper checkpoint with dimensions `dims`, with its
/// shape, in a fixed order (encoder, then decoder; within a layer, attention before the
/// feed-forward). `proj_out.weight` is not listed: it is tied to
/// `model.decoder.embed_tokens.weight`.
pub fn hf_tensor_shapes(dims: &WhisperDims) -> Vec<(String, Vec<usize>)> {
    let d = dims.d_model;
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut push = |name: String, shape: &[usize]| out.push((name, shape.to_vec()));
    let e = "model.encoder";
    push(format!("{e}.conv1.weight"), &[d, dims.num_mel_bins, 3]);
    push(format!("{e}.conv1.bias"), &[d]);
    push(format!("{e}.conv2.weight"), &[d, d, 3]);
    push(format!("{e}.conv2.bias"), &[d]);
    push(
        format!("{e}.embed_positions.weight"),
        &[dims.max_source_positions, d],
    );
    let attention = |push: &mut dyn FnMut(String, &[usize]), p: &str| {
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            push(format!("{p}.{proj}.weight"), &[d, d]);
            if proj != "k_proj" {
                push(format!("{p}.{proj}.bias"), &[d]);
            }
        }
        push(format!("{p}_layer_norm.weight"), &[d]);
        push(format!("{p}_layer_norm.bias"), &[d]);
    };
    let ffn = |push: &mut dyn FnMut(String, &[usize]), p: &str, ffn_dim: usize| {
        push(format!("{p}.fc1.weight"), &[ffn_dim, d]);
        push(format!("{p}.fc1.bias"), &[ffn_dim]);
        push(format!("{p}.fc2.weight"), &[d, ffn_dim]);
        push(format!("{p}.fc2.bias"), &[d]);
        push(format!("{p}.final_layer_norm.weight"), &[d]);
        push(format!("{p}.final_layer_norm.bias"), &[d]);
    };
    for i in 0..dims.encoder_layers {
        let p = format!("{e}.layers.{i}");
        attention(&mut push, &format!("{p}.self_attn"));
        ffn(&mut push, &p, dims.encoder_ffn_dim);
    }
    push(format!("{e}.layer_norm.weight"), &[d]);
    push(format!("{e}.layer_norm.bias"), &[d]);
    let dd = "model.decoder";
    push(format!("{dd}.embed_tokens.weight"), &[dims.vocab_size, d]);
    push(
        format!("{dd}.embed_positions.weight"),
        &[dims.max_target_positions, d],
    );
    for i in 0..dims.decoder_layers {
        let p = format!("{dd}.layers.{i}");
        attention(&mut push, &format!("{p}.self_attn"));
        attention(&mut push, &format!("{p}.encoder_attn"));
        ffn(&mut push, &p, dims.decoder_ffn_dim);
    }
    push(format!("{dd}.layer_norm.weight"), &[d]);
    push(format!("{dd}.layer_norm.bias"), &[d]);
    out
}

/// Checks that `ckpt` holds exactly the tensors of [`hf_tensor_shapes`], in `f32`.
///
/// Fails with [`Error::MissingTensor`], [`Error::UnexpectedTensor`] or
/// [`Error::ShapeMismatch`].
pub fn validate(ckpt: &WhisperCheckpoint) -> Result<()> {
    check_tensors(&ckpt.dims, &ckpt.tensors)
}

fn check_tensors(dims: &WhisperDims, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let expected = hf_tensor_shapes(dims);
    let names: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(extra) = tensors.keys().find(|n| !names.contains(n.as_str())) {
        return Err(Error::UnexpectedTensor {
            name: extra.clone(),
            architecture: "Whisper".into(),
        });
    }
    for (name, shape) in expected {
        let t = tensors
            .get(&name)
            .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
        if t.dims() != shape.as_slice() || t.dtype() != DType::F32 {
            return Err(Error::ShapeMismatch {
                name,
                expected: shape,
                got: t.dims().to_vec(),
            });
        }
    }
    Ok(())
}

/// One CTranslate2 variable and the Hugging Face tensors whose rows it concatenates
/// along its first axis, in order. `None` stands for a block of zeros: the key bias,
/// which Hugging Face (and OpenAI) do not have and CTranslate2 stores as zeros.
#[derive(Debug, Clone)]
pub struct Ct2Var {
    /// CTranslate2 name, e.g. `encoder/layer_0/self_attention/linear_0/weight`.
    pub ct2: String,
    /// Hugging Face names, e.g. the `q_proj`, `k_proj`, `v_proj` weights.
    pub parts: Vec<Option<String>>,
}

/// The CTranslate2 `WhisperSpec` variables of a checkpoint with `n_encoder_layers` and
/// `n_decoder_layers` layers, and where each one's rows come from, following
/// CTranslate2's `WhisperLoader`
/// (<https://github.com/OpenNMT/CTranslate2/blob/v4.5.0/python/ctranslate2/converters/transformers.py>),
/// checked against the variable names of real conversions:
/// self-attention `linear_0` fuses q, k, v; cross-attention `linear_0` is q and
/// `linear_1` fuses k, v; layer norms are `gamma`/`beta`.
pub fn ct2_layout(n_encoder_layers: usize, n_decoder_layers: usize) -> Vec<Ct2Var> {
    let mut out = Vec::new();
    let mut one = |ct2: String, hf: String| {
        out.push(Ct2Var {
            ct2,
            parts: vec![Some(hf)],
        })
    };
    for conv in ["conv1", "conv2"] {
        for p in ["weight", "bias"] {
            one(
                format!("encoder/{conv}/{p}"),
                format!("model.encoder.{conv}.{p}"),
            );
        }
    }
    one(
        "encoder/position_encodings/encodings".into(),
        "model.encoder.embed_positions.weight".into(),
    );
    one(
        "decoder/embeddings/weight".into(),
        "model.decoder.embed_tokens.weight".into(),
    );
    one(
        "decoder/position_encodings/encodings".into(),
        "model.decoder.embed_positions.weight".into(),
    );
    let norm = |one: &mut dyn FnMut(String, String), c: &str, h: &str| {
        one(format!("{c}/gamma"), format!("{h}.weight"));
        one(format!("{c}/beta"), format!("{h}.bias"));
    };
    let linear = |one: &mut dyn FnMut(String, String), c: &str, h: &str| {
        one(format!("{c}/weight"), format!("{h}.weight"));
        one(format!("{c}/bias"), format!("{h}.bias"));
    };
    for (side, n_layers) in [("encoder", n_encoder_layers), ("decoder", n_decoder_layers)] {
        norm(
            &mut one,
            &format!("{side}/layer_norm"),
            &format!("model.{side}.layer_norm"),
        );
        for i in 0..n_layers {
            let c = format!("{side}/layer_{i}");
            let h = format!("model.{side}.layers.{i}");
            norm(
                &mut one,
                &format!("{c}/self_attention/layer_norm"),
                &format!("{h}.self_attn_layer_norm"),
            );
            linear(
                &mut one,
                &format!("{c}/self_attention/linear_1"),
                &format!("{h}.self_attn.out_proj"),
            );
            norm(
                &mut one,
                &format!("{c}/ffn/layer_norm"),
                &format!("{h}.final_layer_norm"),
            );
            linear(&mut one, &format!("{c}/ffn/linear_0"), &format!("{h}.fc1"));
            linear(&mut one, &format!("{c}/ffn/linear_1"), &format!("{h}.fc2"));
            if side == "decoder" {
                norm(
                    &mut one,
                    &format!("{c}/attention/layer_norm"),
                    &format!("{h}.encoder_attn_layer_norm"),
                );
                linear(
                    &mut one,
                    &format!("{c}/attention/linear_0"),
                    &format!("{h}.encoder_attn.q_proj"),
                );
                linear(
                    &mut one,
                    &format!("{c}/attention/linear_2"),
                    &format!("{h}.encoder_attn.out_proj"),
                );
            }
        }
    }
    let fused = |c: String, h: &str, projs: &[&str], p: &str| Ct2Var {
        ct2: c,
        parts: projs
            .iter()
            .map(|proj| (p == "weight" || *proj != "k_proj").then(|| format!("{h}.{proj}.{p}")))
            .collect(),
    };
    for (side, n_layers) in [("encoder", n_encoder_layers), ("decoder", n_decoder_layers)] {
        for i in 0..n_layers {
            let c = format!("{side}/layer_{i}");
            let h = format!("model.{side}.layers.{i}");
            for p in ["weight", "bias"] {
                out.push(fused(
                    format!("{c}/self_attention/linear_0/{p}"),
                    &format!("{h}.self_attn"),
                    &["q_proj", "k_proj", "v_proj"],
                    p,
                ));
                if side == "decoder" {
                    out.push(fused(
                        format!("{c}/attention/linear_1/{p}"),
                        &format!("{h}.encoder_attn"),
                        &["k_proj", "v_proj"],
                        p,
                    ));
                }
            }
        }
    }
    out
}

/// Imports whatever Whisper checkpoint `dir` holds: CTranslate2 if it has `model.bin`,
/// Hugging Face if it has weights [`hf::WeightFiles::find`] recognizes
/// (`model.safetensors`, a sharded index, or `pytorch_model.bin`).
///
/// Fails with [`Error::UnknownLayout`] when it has neither, and as [`load_ct2_dir`] or
/// [`load_hf_dir`] otherwise.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<WhisperCheckpoint> {
    let dir = dir.as_ref();
    if dir.join("model.bin").is_file() {
        load_ct2_dir(dir)
    } else if hf::WeightFiles::find(dir)?.is_some() {
        load_hf_dir(dir)
    } else {
        Err(Error::UnknownLayout {
            dir: dir.to_owned(),
            what: "Whisper checkpoint".into(),
            expected: format!(
                "`model.bin` from CTranslate2, or `config.json` with {} from Hugging Face",
                hf::safetensors::WEIGHT_FILE_NAMES
            ),
            hint: if dir.is_dir() {
                String::new()
            } else {
                "; it is not a directory".into()
            },
        })
    }
}

/// CTranslate2's `config.json` for Whisper (written by its `WhisperLoader`).
#[derive(Debug, Default, Deserialize)]
struct Ct2Config {
    #[serde(default)]
    alignment_heads: Option<Vec<(u32, u32)>>,
    #[serde(default)]
    lang_ids: Option<Vec<u32>>,
    #[serde(default)]
    suppress_ids: Option<Vec<u32>>,
    #[serde(default)]
    suppress_ids_begin: Option<Vec<u32>>,
}

/// Imports a CTranslate2 Whisper conversion (faster-whisper's format): `model.bin` and
/// `config.json`, with `vocabulary.txt` (or `vocabulary.json`, `tokenizer.json`) for the
/// special tokens. Weights are converted to `f32` (`i8`/`i16` ones dequantized).
///
/// Fails with the `Ct2*` errors of [`Ct2Model::open`] for an unreadable `model.bin`, [`Error::Unsupported`] for
/// another spec or an untied output projection, [`Error::MissingTensor`] /
/// [`Error::UnexpectedTensor`] / [`Error::ShapeMismatch`] for a layout that is not
/// Whisper's, and [`Error::SpecialToken`] when a special token cannot be found.
pub fn load_ct2_dir(dir: impl AsRef<Path>) -> Result<WhisperCheckpoint> {
    let dir = dir.as_ref();
    let bin = dir.join("model.bin");
    let model = Ct2Model::open(&bin)?;
    if model.spec_name() != "WhisperSpec" {
        return Err(Error::Unsupported {
            path: bin,
            reason: format!(
                "CTranslate2 spec `{}` is not a Whisper model (`WhisperSpec`)",
                model.spec_name()
            ),
        });
    }
    let unsupported = |reason: String| Error::Unsupported {
        path: bin.clone(),
        reason,
    };

    let shape = |name: &str| -> Result<Vec<usize>> { Ok(model.require(name)?.shape.to_vec()) };
    let dim = |name: &str, axis: usize| -> Result<usize> {
        let s = shape(name)?;
        s.get(axis)
            .copied()
            .ok_or_else(|| unsupported(format!("`{name}` has shape {s:?}, expected axis {axis}")))
    };
    let count_layers = |side: &str| {
        (0..)
            .take_while(|i| model.contains(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let d_model = dim("encoder/conv1/weight", 0)?;
    let heads = |side: &str| -> Result<usize> {
        match model.get(&format!("{side}/num_heads")) {
            Some(v) => usize::try_from(v.to_i64()?)
                .ok()
                .filter(|&h| h > 0)
                .ok_or_else(|| unsupported(format!("`{side}/num_heads` is not positive"))),
            // Older WhisperSpec revisions did not store the head count; every released
            // Whisper has 64-dimensional heads.
            None => Ok((d_model / 64).max(1)),
        }
    };
    let dims = WhisperDims {
        num_mel_bins: dim("encoder/conv1/weight", 1)?,
        vocab_size: dim("decoder/embeddings/weight", 0)?,
        max_source_positions: dim("encoder/position_encodings/encodings", 0)?,
        max_target_positions: dim("decoder/position_encodings/encodings", 0)?,
        d_model,
        encoder_attention_heads: heads("encoder")?,
        decoder_attention_heads: heads("decoder")?,
        encoder_layers: count_layers("encoder"),
        decoder_layers: count_layers("decoder"),
        encoder_ffn_dim: dim("encoder/layer_0/ffn/linear_0/weight", 0)?,
        decoder_ffn_dim: dim("decoder/layer_0/ffn/linear_0/weight", 0)?,
    };

    // The output projection must be the token embedding, as in every released Whisper:
    // CTranslate2 stores it as an alias (or, from older converters, a copy).
    if let Some(proj) = model.get("decoder/projection/weight")
        && proj.name != "decoder/embeddings/weight"
        && model.to_f32(proj.name)?.1 != model.to_f32("decoder/embeddings/weight")?.1
    {
        return Err(unsupported(
            "`decoder/projection/weight` differs from `decoder/embeddings/weight`: \
             untied output projections are not supported"
                .into(),
        ));
    }

    let device = Device::Cpu;
    let mut tensors = BTreeMap::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for var in ct2_layout(dims.encoder_layers, dims.decoder_layers) {
        let (shape, data) = model.to_f32(&var.ct2).map_err(|e| match e {
            Error::Ct2MissingVariable { .. } => Error::MissingTensor {
                name: var.ct2.clone(),
            },
            other => other,
        })?;
        used.insert(var.ct2.clone());
        used.insert(format!("{}_scale", var.ct2));
        let n_parts = var.parts.len();
        let rows = shape.first().copied().unwrap_or(1);
        if n_parts == 0 || !rows.is_multiple_of(n_parts) {
            return Err(unsupported(format!(
                "`{}` has shape {shape:?}, not {n_parts} equal blocks of rows",
                var.ct2
            )));
        }
        let part_len = data.len() / n_parts;
        let mut part_shape = shape.clone();
        if let Some(first) = part_shape.first_mut() {
            *first = rows / n_parts;
        }
        if let [Some(hf)] = var.parts.as_slice() {
            let t = Tensor::from_vec(data, part_shape.as_slice(), &device)
                .map_err(candle_err(format!("building `{hf}`")))?;
            tensors.insert(hf.clone(), t);
            continue;
        }
        for (part, hf) in data.chunks(part_len.max(1)).zip(&var.parts) {
            // A key bias only adds `q · b_k` to every logit of a query's row, which
            // softmax cancels: dropping it is exact whatever CTranslate2 stored.
            let Some(hf) = hf else { continue };
            let t = Tensor::from_slice(part, part_shape.as_slice(), &device)
                .map_err(candle_err(format!("building `{hf}`")))?;
            tensors.insert(hf.clone(), t);
        }
    }
    // Checked above to be a copy of the embedding when it is stored rather than aliased.
    used.insert("decoder/projection/weight".into());
    used.insert("decoder/projection/weight_scale".into());
    if let Some(extra) = model
        .variables()
        .find(|v| !v.shape.is_empty() && !used.contains(v.name))
    {
        return Err(Error::UnexpectedTensor {
            name: extra.name.to_owned(),
            architecture: "Whisper".into(),
        });
    }

    check_tensors(&dims, &tensors)?;
    let config: Ct2Config = read_json_opt(&dir.join("config.json"))?.unwrap_or_default();
    let vocab = Vocabulary::read(dir)?;
    let multilingual = vocab.has_languages() && dims.vocab_size != ENGLISH_ONLY_VOCAB_SIZE;
    let lang_ids = match (&config.lang_ids, multilingual) {
        (Some(ids), true) => Some(
            ids.iter()
                .map(|&id| Ok((vocab.language_code(id, dir)?, id)))
                .collect::<Result<BTreeMap<_, _>>>()?,
        ),
        _ => None,
    };
    let tokens = vocab.resolve(
        dir,
        &dims,
        Explicit {
            multilingual,
            lang_ids,
            suppress_tokens: config.suppress_ids,
            begin_suppress_tokens: config.suppress_ids_begin,
            alignment_heads: config.alignment_heads,
            ..Explicit::default()
        },
    )?;
    Ok(WhisperCheckpoint {
        dims,
        tokens,
        tensors,
    })
}

/// The parts of a Hugging Face Whisper `config.json` the importer checks besides the
/// dimensions.
#[derive(Debug, Deserialize)]
struct HfConfigExtra {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    scale_embedding: Option<bool>,
    #[serde(default)]
    activation_function: Option<String>,
    #[serde(default)]
    suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    begin_suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    decoder_start_token_id: Option<u32>,
    #[serde(default)]
    eos_token_id: Option<Value>,
}

/// Imports a Hugging Face Whisper directory: `config.json`, the weights (read by
/// [`hf::load_dir`]: `model.safetensors`, `model.safetensors.index.json` and its shards,
/// or `pytorch_model.bin`), and for the special tokens
/// `generation_config.json` plus `tokenizer.json`, `added_tokens.json` or `vocab.json`.
/// Weights in any float dtype are converted to `f32`; `proj_out.weight`, if stored, must
/// equal the token embedding.
///
/// Fails with [`Error::Io`] / [`Error::Json`] for unreadable files, [`Error::UnknownLayout`]
/// when there are no weights, [`Error::Candle`] for invalid weight files,
/// [`Error::Unsupported`] for another architecture,
/// [`Error::MissingTensor`] / [`Error::UnexpectedTensor`] / [`Error::ShapeMismatch`] for
/// weights that do not match `config.json`, and [`Error::SpecialToken`] when a special token
/// cannot be found.
pub fn load_hf_dir(dir: impl AsRef<Path>) -> Result<WhisperCheckpoint> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config_text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let json_err = |source| Error::Json {
        path: config_path.clone(),
        source,
    };
    let dims: WhisperDims = serde_json::from_str(&config_text).map_err(json_err)?;
    let extra: HfConfigExtra = serde_json::from_str(&config_text).map_err(json_err)?;
    let unsupported = |reason: String| Error::Unsupported {
        path: config_path.clone(),
        reason,
    };
    if let Some(t) = extra.model_type.as_deref().filter(|t| *t != "whisper") {
        return Err(unsupported(format!("model_type `{t}` is not `whisper`")));
    }
    if extra.scale_embedding == Some(true) {
        return Err(unsupported(
            "scale_embedding = true is not supported (no released Whisper uses it)".into(),
        ));
    }
    if let Some(a) = extra
        .activation_function
        .as_deref()
        .filter(|a| *a != "gelu")
    {
        return Err(unsupported(format!(
            "activation_function `{a}` is not supported (expected `gelu`)"
        )));
    }

    let mut tensors = BTreeMap::new();
    let mut proj_out = None;
    for (name, t) in hf::load_dir(dir, DType::F32, &Device::Cpu)? {
        // `WhisperModel` checkpoints have no `model.` prefix.
        let name = if name.starts_with("encoder.") || name.starts_with("decoder.") {
            format!("model.{name}")
        } else {
            name
        };
        if name == "proj_out.weight" {
            proj_out = Some(t);
        } else {
            tensors.insert(name, t);
        }
    }
    if let (Some(proj), Some(embed)) = (&proj_out, tensors.get("model.decoder.embed_tokens.weight"))
    {
        let same = proj.dims() == embed.dims()
            && proj
                .ne(embed)
                .and_then(|m| m.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>())
                .map_err(candle_err("comparing proj_out with embed_tokens"))?
                == 0.0;
        if !same {
            return Err(Error::Unsupported {
                path: dir.to_owned(),
                reason: "`proj_out.weight` differs from `model.decoder.embed_tokens.weight`: \
                         untied output projections are not supported"
                    .into(),
            });
        }
    }

    check_tensors(&dims, &tensors)?;
    let generation: HfGenerationConfig =
        read_json_opt(&dir.join("generation_config.json"))?.unwrap_or_default();
    let vocab = Vocabulary::read(dir)?;
    let multilingual = generation
        .is_multilingual
        .unwrap_or_else(|| vocab.has_languages() && dims.vocab_size != ENGLISH_ONLY_VOCAB_SIZE);
    let lang_ids = match (generation.lang_to_id, multilingual) {
        (Some(map), true) => Some(
            map.into_iter()
                .map(|(name, id)| {
                    let code = name
                        .strip_prefix("<|")
                        .and_then(|n| n.strip_suffix("|>"))
                        .unwrap_or(&name)
                        .to_owned();
                    (code, id)
                })
                .collect(),
        ),
        _ => None,
    };
    let task = |name: &str| generation.task_to_id.as_ref()?.get(name).copied();
    let explicit = Explicit {
        multilingual,
        lang_ids,
        suppress_tokens: generation.suppress_tokens.or(extra.suppress_tokens),
        begin_suppress_tokens: generation
            .begin_suppress_tokens
            .or(extra.begin_suppress_tokens),
        alignment_heads: generation.alignment_heads,
        sot: generation
            .decoder_start_token_id
            .or(extra.decoder_start_token_id),
        eot: first_token_id(generation.eos_token_id.as_ref())
            .or(first_token_id(extra.eos_token_id.as_ref())),
        transcribe: task("transcribe"),
        translate: task("translate"),
        no_timestamps: generation.no_timestamps_token_id,
        sot_prev: generation.prev_sot_token_id,
    };
    let tokens = vocab.resolve(dir, &dims, explicit)?;
    Ok(WhisperCheckpoint {
        dims,
        tokens,
        tensors,
    })
}

fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Ids and lists that a config states explicitly (they win over names looked up in the
/// vocabulary).
#[derive(Debug, Default)]
struct Explicit {
    multilingual: bool,
    lang_ids: Option<BTreeMap<String, u32>>,
    suppress_tokens: Option<Vec<u32>>,
    begin_suppress_tokens: Option<Vec<u32>>,
    alignment_heads: Option<Vec<(u32, u32)>>,
    sot: Option<u32>,
    eot: Option<u32>,
    transcribe: Option<u32>,
    translate: Option<u32>,
    no_timestamps: Option<u32>,
    sot_prev: Option<u32>,
}

/// Special tokens (`<|...|>`) by name, gathered from every vocabulary file present.
#[derive(Debug, Default)]
struct Vocabulary {
    specials: BTreeMap<String, u32>,
    files: Vec<String>,
}

impl Vocabulary {
    /// Reads `vocabulary.txt` (CTranslate2: one token per line, line number = id),
    /// `vocabulary.json` (CTranslate2: a JSON list), `tokenizer.json` (`added_tokens` and
    /// `model.vocab`), `added_tokens.json` and `vocab.json` (name -> id), keeping the
    /// `<|...|>` names. Files read first win on conflicts.
    fn read(dir: &Path) -> Result<Self> {
        let mut v = Vocabulary::default();
        let txt = dir.join("vocabulary.txt");
        if txt.is_file() {
            let text = std::fs::read_to_string(&txt).map_err(io_err(&txt))?;
            let lines = text.strip_suffix('\n').unwrap_or(&text).split('\n');
            for (id, line) in lines.enumerate() {
                v.add(line.trim_end_matches('\r'), id);
            }
            v.files.push("vocabulary.txt".into());
        }
        if let Some(list) = read_json_opt::<Vec<String>>(&dir.join("vocabulary.json"))? {
            for (id, token) in list.iter().enumerate() {
                v.add(token, id);
            }
            v.files.push("vocabulary.json".into());
        }
        if let Some(tok) = read_json_opt::<Value>(&dir.join("tokenizer.json"))? {
            if let Some(added) = tok.get("added_tokens").and_then(Value::as_array) {
                for t in added {
                    if let (Some(content), Some(id)) = (
                        t.get("content").and_then(Value::as_str),
                        t.get("id").and_then(Value::as_u64),
                    ) {
                        v.add(content, id as usize);
                    }
                }
            }
            if let Some(vocab) = tok.pointer("/model/vocab").and_then(Value::as_object) {
                for (name, id) in vocab {
                    if let Some(id) = id.as_u64() {
                        v.add(name, id as usize);
                    }
                }
            }
            v.files.push("tokenizer.json".into());
        }
        for file in ["added_tokens.json", "vocab.json"] {
            if let Some(map) = read_json_opt::<HashMap<String, Value>>(&dir.join(file))? {
                for (name, id) in map {
                    if let Some(id) = id.as_u64() {
                        v.add(&name, id as usize);
                    }
                }
                v.files.push(file.into());
            }
        }
        Ok(v)
    }

    fn add(&mut self, name: &str, id: usize) {
        if name.starts_with("<|")
            && name.ends_with("|>")
            && let Ok(id) = u32::try_from(id)
        {
            self.specials.entry(name.to_owned()).or_insert(id);
        }
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.specials.get(name).copied()
    }

    /// Language tokens: `<|xx|>` strictly between `<|startoftranscript|>` and
    /// `<|translate|>`, as laid out by OpenAI's tokenizer.
    fn languages(&self) -> BTreeMap<String, u32> {
        let (Some(sot), Some(translate)) =
            (self.get("<|startoftranscript|>"), self.get("<|translate|>"))
        else {
            return BTreeMap::new();
        };
        self.specials
            .iter()
            .filter(|&(_, &id)| sot < id && id < translate)
            .filter_map(|(name, &id)| Some((name.strip_prefix("<|")?.strip_suffix("|>")?, id)))
            .filter(|(code, _)| !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase()))
            .map(|(code, id)| (code.to_owned(), id))
            .collect()
    }

    fn has_languages(&self) -> bool {
        !self.languages().is_empty()
    }

    fn language_code(&self, id: u32, dir: &Path) -> Result<String> {
        self.languages()
            .into_iter()
            .find(|(_, i)| *i == id)
            .map(|(code, _)| code)
            .ok_or_else(|| Error::SpecialToken {
                dir: dir.to_owned(),
                token: format!("language id {id}"),
                reason: "not a language token in the vocabulary".into(),
            })
    }

    fn resolve(&self, dir: &Path, dims: &WhisperDims, x: Explicit) -> Result<WhisperTokens> {
        let missing = |token: &str| Error::SpecialToken {
            dir: dir.to_owned(),
            token: token.to_owned(),
            reason: if self.files.is_empty() {
                "no vocabulary file (vocabulary.txt, tokenizer.json, added_tokens.json, \
                 vocab.json) in the directory"
                    .into()
            } else {
                format!("not found in {}", self.files.join(", "))
            },
        };
        let need = |explicit: Option<u32>, name: &str| -> Result<u32> {
            explicit
                .or_else(|| self.get(name))
                .ok_or_else(|| missing(name))
        };
        let no_timestamps = need(x.no_timestamps, "<|notimestamps|>")?;
        let lang_ids = if x.multilingual {
            x.lang_ids.unwrap_or_else(|| self.languages())
        } else {
            BTreeMap::new()
        };
        let n_text_layers = dims.decoder_layers as u32;
        let alignment_heads = x.alignment_heads.unwrap_or_else(|| {
            // OpenAI's default: every head of the second half of the decoder.
            // `Whisper.__init__`, `all_heads[self.dims.n_text_layer // 2 :] = True`:
            // https://github.com/openai/whisper/blob/v20240930/whisper/model.py
            (n_text_layers / 2..n_text_layers)
                .flat_map(|l| (0..dims.decoder_attention_heads as u32).map(move |h| (l, h)))
                .collect()
        });
        let tokens = WhisperTokens {
            sot: need(x.sot, "<|startoftranscript|>")?,
            eot: need(x.eot, "<|endoftext|>")?,
            transcribe: need(x.transcribe, "<|transcribe|>")?,
            translate: need(x.translate, "<|translate|>")?,
            no_timestamps,
            timestamp_begin: self.get("<|0.00|>").unwrap_or(no_timestamps + 1),
            no_speech: self.get("<|nospeech|>").or(self.get("<|nocaptions|>")),
            sot_prev: need(x.sot_prev, "<|startofprev|>")?,
            sot_lm: self.get("<|startoflm|>"),
            lang_ids,
            suppress_tokens: x.suppress_tokens.unwrap_or_default(),
            begin_suppress_tokens: x.begin_suppress_tokens.unwrap_or_default(),
            alignment_heads,
        };
        check_tokens(&tokens, dims).map_err(|(token, reason)| Error::SpecialToken {
            dir: dir.to_owned(),
            token,
            reason,
        })?;
        Ok(tokens)
    }
}

/// Checks that every id is inside the vocabulary and every alignment head exists.
fn check_tokens(t: &WhisperTokens, dims: &WhisperDims) -> Result<(), (String, String)> {
    let n = dims.vocab_size;
    let named = [
        ("<|startoftranscript|>", Some(t.sot)),
        ("<|endoftext|>", Some(t.eot)),
        ("<|transcribe|>", Some(t.transcribe)),
        ("<|translate|>", Some(t.translate)),
        ("<|notimestamps|>", Some(t.no_timestamps)),
        ("<|0.00|>", Some(t.timestamp_begin)),
        ("<|nospeech|>", t.no_speech),
        ("<|startofprev|>", Some(t.sot_prev)),
        ("<|startoflm|>", t.sot_lm),
    ];
    let out_of_range = |id: u32| format!("id {id} is outside the vocabulary of {n} tokens");
    for (name, id) in named {
        if let Some(id) = id.filter(|&id| id as usize >= n) {
            return Err((name.into(), out_of_range(id)));
        }
    }
    let lists = [
        (
            "language tokens",
            t.lang_ids.values().copied().collect::<Vec<_>>(),
        ),
        ("suppress_tokens", t.suppress_tokens.clone()),
        ("begin_suppress_tokens", t.begin_suppress_tokens.clone()),
    ];
    for (what, ids) in lists {
        if let Some(id) = ids.into_iter().find(|&id| id as usize >= n) {
            return Err((what.into(), out_of_range(id)));
        }
    }
    if let Some((l, h)) = t.alignment_heads.iter().find(|(l, h)| {
        *l as usize >= dims.decoder_layers || *h as usize >= dims.decoder_attention_heads
    }) {
        return Err((
            "alignment_heads".into(),
            format!(
                "({l}, {h}) is outside {} layers × {} heads",
                dims.decoder_layers, dims.decoder_attention_heads
            ),
        ));
    }
    Ok(())
}
