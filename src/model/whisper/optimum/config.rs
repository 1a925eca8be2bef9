//! The Hugging Face files of an optimum export (`config.json`, `generation_config.json`,
//! `preprocessor_config.json`, the vocabulary files) read into [`WhisperParams`], with the
//! mapping `hearken-export`'s importer uses (`export/src/whisper/import.rs`, `load_hf_dir`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::model::whisper::params::{HfGenerationConfig, WhisperParams, first_token_id};
use crate::{Error, Result};

/// The encoder of an optimum export; its presence marks the layout.
pub(crate) const ENCODER: &str = "encoder_model.onnx";
/// The first-run (or only) decoder.
pub(super) const DECODER: &str = "decoder_model.onnx";
/// The decoder with past keys and values.
pub(super) const WITH_PAST: &str = "decoder_with_past_model.onnx";
/// Both decoders behind an `If`.
pub(super) const MERGED: &str = "decoder_model_merged.onnx";

/// What a directory must hold to be an optimum Whisper export, for error messages.
pub(crate) const EXPECTED: &str = "an optimum export: encoder_model.onnx with \
    decoder_model.onnx + decoder_with_past_model.onnx (or decoder_model_merged.onnx, ONNX \
    Runtime only), and config.json, generation_config.json, tokenizer.json";

pub(super) fn contract(path: &Path, reason: impl Into<String>) -> Error {
    Error::Contract {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `config.json`: the fields hearken needs (upstream names).
#[derive(Debug, Deserialize)]
pub(super) struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    /// OpenAI `n_mels`.
    num_mel_bins: usize,
    /// OpenAI `n_vocab`.
    vocab_size: usize,
    /// OpenAI `n_audio_ctx` (1500).
    #[serde(default = "default_source_positions")]
    pub(super) max_source_positions: usize,
    /// OpenAI `n_text_ctx` (448).
    max_target_positions: usize,
    /// OpenAI `n_audio_state` = `n_text_state`.
    pub(super) d_model: usize,
    /// OpenAI `n_text_layer`.
    pub(super) decoder_layers: usize,
    /// OpenAI `n_text_head`.
    pub(super) decoder_attention_heads: usize,
    #[serde(default)]
    decoder_start_token_id: Option<u32>,
    #[serde(default)]
    eos_token_id: Option<Value>,
    #[serde(default)]
    suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    begin_suppress_tokens: Option<Vec<u32>>,
}

fn default_source_positions() -> usize {
    1500
}

/// `preprocessor_config.json`: the feature extractor, which must be Whisper's standard one.
#[derive(Debug, Deserialize)]
struct HfPreprocessorConfig {
    #[serde(default)]
    feature_size: Option<usize>,
    #[serde(default)]
    sampling_rate: Option<u32>,
    #[serde(default)]
    hop_length: Option<usize>,
    #[serde(default)]
    n_fft: Option<usize>,
    #[serde(default)]
    chunk_length: Option<usize>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| contract(path, format!("invalid JSON: {e}")))
}

fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The `<|...|>` token names of a directory's vocabulary files (`tokenizer.json`'s
/// `added_tokens` and `model.vocab`, `added_tokens.json`, `vocab.json`); earlier files win.
fn special_names(dir: &Path) -> Result<BTreeMap<String, u32>> {
    let mut names = BTreeMap::new();
    let mut add = |name: &str, id: Option<u64>| {
        if let Some(id) = id.and_then(|id| u32::try_from(id).ok())
            && name.starts_with("<|")
            && name.ends_with("|>")
        {
            names.entry(name.to_owned()).or_insert(id);
        }
    };
    if let Some(tok) = read_json_opt::<Value>(&dir.join("tokenizer.json"))? {
        for t in tok
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(content) = t.get("content").and_then(Value::as_str) {
                add(content, t.get("id").and_then(Value::as_u64));
            }
        }
        if let Some(vocab) = tok.pointer("/model/vocab").and_then(Value::as_object) {
            for (name, id) in vocab {
                add(name, id.as_u64());
            }
        }
    }
    for file in ["added_tokens.json", "vocab.json"] {
        if let Some(map) = read_json_opt::<BTreeMap<String, Value>>(&dir.join(file))? {
            for (name, id) in &map {
                add(name, id.as_u64());
            }
        }
    }
    Ok(names)
}

/// Size of OpenAI's English-only vocabulary, which lists language tokens its models never
/// use (OpenAI's test is `n_vocab >= 51865`).
const ENGLISH_ONLY_VOCAB_SIZE: usize = 51864;

/// [`WhisperParams`] from the Hugging Face files of `dir`: dimensions from `config.json`,
/// special tokens by name from the vocabulary files, overridden by the explicit ids of
/// `generation_config.json` (then `config.json`), as `hearken-export`'s `load_hf_dir`.
pub(super) fn params_from_hf(dir: &Path) -> Result<(WhisperParams, HfConfig)> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(contract(
            &config_path,
            format!("missing: {EXPECTED} (the Hugging Face files of the exported model)"),
        ));
    }
    let config: HfConfig = read_json(&config_path)?;
    if let Some(t) = config.model_type.as_deref().filter(|t| *t != "whisper") {
        return Err(contract(
            &config_path,
            format!("model_type `{t}` is not `whisper`"),
        ));
    }
    if config.decoder_attention_heads == 0
        || !config
            .d_model
            .is_multiple_of(config.decoder_attention_heads)
    {
        return Err(contract(
            &config_path,
            format!(
                "d_model {} is not a multiple of decoder_attention_heads {}",
                config.d_model, config.decoder_attention_heads
            ),
        ));
    }
    if let Some(pre) = read_json_opt::<HfPreprocessorConfig>(&dir.join("preprocessor_config.json"))?
    {
        let checks = [
            ("feature_size", pre.feature_size, config.num_mel_bins),
            (
                "sampling_rate",
                pre.sampling_rate.map(|r| r as usize),
                16_000,
            ),
            ("hop_length", pre.hop_length, 160),
            ("n_fft", pre.n_fft, 400),
            ("chunk_length", pre.chunk_length, 30),
        ];
        for (name, got, want) in checks {
            if let Some(got) = got.filter(|&g| g != want) {
                return Err(contract(
                    &dir.join("preprocessor_config.json"),
                    format!(
                        "{name} is {got}; hearken computes Whisper's log-mel with {name} {want}"
                    ),
                ));
            }
        }
    }
    let generation: HfGenerationConfig =
        read_json_opt(&dir.join("generation_config.json"))?.unwrap_or_default();
    let names = special_names(dir)?;
    let name = |n: &str| names.get(n).copied();
    let need = |explicit: Option<u32>, n: &str| {
        explicit.or_else(|| name(n)).ok_or_else(|| {
            contract(
                dir,
                format!(
                    "special token {n} not found (generation_config.json gives no id and \
                     tokenizer.json, added_tokens.json, vocab.json do not list it)"
                ),
            )
        })
    };
    let task = |t: &str| generation.task_to_id.as_ref()?.get(t).copied();
    let sot = need(
        generation
            .decoder_start_token_id
            .or(config.decoder_start_token_id),
        "<|startoftranscript|>",
    )?;
    let translate = need(task("translate"), "<|translate|>")?;
    let no_timestamps = need(generation.no_timestamps_token_id, "<|notimestamps|>")?;
    // Language tokens sit between <|startoftranscript|> and <|translate|> (OpenAI's layout).
    let vocab_languages: BTreeMap<String, u32> = names
        .iter()
        .filter(|&(_, &id)| sot < id && id < translate)
        .filter_map(|(n, &id)| Some((n.strip_prefix("<|")?.strip_suffix("|>")?, id)))
        .filter(|(code, _)| !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase()))
        .map(|(code, id)| (code.to_owned(), id))
        .collect();
    let multilingual = generation
        .is_multilingual
        .unwrap_or(!vocab_languages.is_empty() && config.vocab_size != ENGLISH_ONLY_VOCAB_SIZE);
    let lang_ids = match (multilingual, &generation.lang_to_id) {
        (false, _) => BTreeMap::new(),
        (true, Some(map)) if !map.is_empty() => map
            .iter()
            .map(|(n, &id)| {
                let code = n.strip_prefix("<|").and_then(|c| c.strip_suffix("|>"));
                (code.unwrap_or(n).to_owned(), id)
            })
            .collect(),
        (true, _) => vocab_languages,
    };
    let params = WhisperParams {
        n_mels: config.num_mel_bins,
        n_vocab: config.vocab_size,
        n_audio_ctx: config.max_source_positions,
        n_audio_state: config.d_model,
        n_text_ctx: config.max_target_positions,
        n_text_state: config.d_model,
        n_text_layer: config.decoder_layers,
        sot,
        eot: need(
            first_token_id(generation.eos_token_id.as_ref())
                .or_else(|| first_token_id(config.eos_token_id.as_ref())),
            "<|endoftext|>",
        )?,
        transcribe: need(task("transcribe"), "<|transcribe|>")?,
        translate,
        no_timestamps,
        timestamp_begin: name("<|0.00|>").unwrap_or(no_timestamps + 1),
        no_speech: name("<|nospeech|>").or_else(|| name("<|nocaptions|>")),
        sot_prev: need(generation.prev_sot_token_id, "<|startofprev|>")?,
        sot_lm: name("<|startoflm|>"),
        lang_ids,
        suppress_tokens: generation
            .suppress_tokens
            .or_else(|| config.suppress_tokens.clone())
            .unwrap_or_default(),
        begin_suppress_tokens: generation
            .begin_suppress_tokens
            .or_else(|| config.begin_suppress_tokens.clone())
            .unwrap_or_default(),
    };
    let n_vocab = params.n_vocab as u32;
    let out_of_range = [
        ("<|startoftranscript|>", params.sot),
        ("<|endoftext|>", params.eot),
        ("<|transcribe|>", params.transcribe),
        ("<|translate|>", params.translate),
        ("<|notimestamps|>", params.no_timestamps),
        ("<|0.00|>", params.timestamp_begin),
        ("<|startofprev|>", params.sot_prev),
    ]
    .into_iter()
    .chain(params.lang_ids.values().map(|&id| ("a language token", id)))
    .chain(
        params
            .suppress_tokens
            .iter()
            .map(|&id| ("suppress_tokens", id)),
    )
    .chain(
        params
            .begin_suppress_tokens
            .iter()
            .map(|&id| ("begin_suppress_tokens", id)),
    )
    .find(|&(_, id)| id >= n_vocab);
    if let Some((what, id)) = out_of_range {
        return Err(contract(
            dir,
            format!("{what} id {id} is outside the vocabulary of {n_vocab} tokens"),
        ));
    }
    Ok((params, config))
}
