//! The parameters of a Whisper model, as both of its directory layouts give them: the
//! `hearken.whisper` metadata object of hearken's exports and the Hugging Face JSON files
//! of optimum exports. Shared by the graph-driving code of both layouts, so it sits apart
//! from either.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Hugging Face `generation_config.json`: the Whisper fields, as both hearken's optimum
/// loader and `hearken-export`'s checkpoint importer read them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HfGenerationConfig {
    /// `<|startoftranscript|>`.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// `<|endoftext|>`: a number or a list whose first entry it is (see [`first_token_id`]).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// Whether the vocabulary has language and task tokens.
    #[serde(default)]
    pub is_multilingual: Option<bool>,
    /// Language token by `<|xx|>` name.
    #[serde(default)]
    pub lang_to_id: Option<BTreeMap<String, u32>>,
    /// `transcribe` / `translate` token ids.
    #[serde(default)]
    pub task_to_id: Option<BTreeMap<String, u32>>,
    /// `<|notimestamps|>`.
    #[serde(default)]
    pub no_timestamps_token_id: Option<u32>,
    /// `<|startofprev|>`.
    #[serde(default)]
    pub prev_sot_token_id: Option<u32>,
    /// Tokens suppressed at every step.
    #[serde(default)]
    pub suppress_tokens: Option<Vec<u32>>,
    /// Tokens suppressed at the first sampled position.
    #[serde(default)]
    pub begin_suppress_tokens: Option<Vec<u32>>,
    /// (decoder layer, head) pairs used for word-level alignment.
    #[serde(default)]
    pub alignment_heads: Option<Vec<(u32, u32)>>,
}

/// A token id given as a number or as a list of numbers (the first counts), as
/// Hugging Face writes `eos_token_id`; `None` for anything else.
pub fn first_token_id(v: Option<&serde_json::Value>) -> Option<u32> {
    let n = match v? {
        serde_json::Value::Array(a) => a.first()?.as_u64()?,
        other => other.as_u64()?,
    };
    u32::try_from(n).ok()
}

/// The `hearken.whisper` metadata object: dimensions (OpenAI `ModelDimensions` names)
/// and special tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WhisperParams {
    /// Mel bins of the input.
    pub n_mels: usize,
    /// Vocabulary size (logits width).
    pub n_vocab: usize,
    /// Encoder positions (1500).
    pub n_audio_ctx: usize,
    /// Model width.
    pub n_audio_state: usize,
    /// Decoder positions (448): prompt plus generated tokens must fit.
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`.
    pub timestamp_begin: u32,
    /// `<|nospeech|>`, if the vocabulary has it.
    #[serde(default)]
    pub no_speech: Option<u32>,
    /// `<|startofprev|>`.
    pub sot_prev: u32,
    /// `<|startoflm|>`, if any.
    #[serde(default)]
    pub sot_lm: Option<u32>,
    /// Language code → token id; empty for English-only models.
    #[serde(default)]
    pub lang_ids: BTreeMap<String, u32>,
    /// Suppressed at every step.
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    /// Suppressed at the first sampled position.
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

impl WhisperParams {
    /// Whether the model has language tokens (multilingual vocabulary).
    pub fn is_multilingual(&self) -> bool {
        !self.lang_ids.is_empty()
    }
}
