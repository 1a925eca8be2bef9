//! Whisper on the export side: import (Hugging Face, CTranslate2), a candle reference,
//! and ONNX export in hearken's encoder/decoder layout.

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Dimensions of a Whisper model, with Hugging Face `config.json` names
/// (OpenAI's `ModelDimensions` names in comments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperDims {
    /// `n_mels`: mel bins of the input (80, or 128 for large-v3).
    pub num_mel_bins: usize,
    /// `n_vocab`.
    pub vocab_size: usize,
    /// `n_audio_ctx`: encoder positions (1500 for 30 s).
    pub max_source_positions: usize,
    /// `n_text_ctx`: decoder positions (448).
    pub max_target_positions: usize,
    /// `n_audio_state` = `n_text_state`: model width.
    pub d_model: usize,
    /// `n_audio_head`.
    pub encoder_attention_heads: usize,
    /// `n_text_head`.
    pub decoder_attention_heads: usize,
    /// `n_audio_layer`.
    pub encoder_layers: usize,
    /// `n_text_layer`.
    pub decoder_layers: usize,
    /// Feed-forward width of the encoder (4 * d_model in every released model).
    pub encoder_ffn_dim: usize,
    /// Feed-forward width of the decoder.
    pub decoder_ffn_dim: usize,
}

/// Special token ids and decoding lists, as the runtime's decoder needs them. Written
/// into the exported models' `hearken.whisper` metadata (export/CONTRACT.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperTokens {
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// `<|transcribe|>` (None for English-only models without task tokens... all released
    /// models have it).
    pub transcribe: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`, the first timestamp token.
    pub timestamp_begin: u32,
    /// `<|nospeech|>` (`<|nocaptions|>` in older vocabularies).
    pub no_speech: Option<u32>,
    /// `<|startofprev|>`.
    pub sot_prev: u32,
    /// `<|startoflm|>`.
    pub sot_lm: Option<u32>,
    /// Language code -> token id (empty for English-only models).
    pub lang_ids: BTreeMap<String, u32>,
    /// Tokens suppressed at every step (`suppress_tokens` / CTranslate2 `suppress_ids`).
    pub suppress_tokens: Vec<u32>,
    /// Tokens suppressed at the first sampled position (`begin_suppress_tokens`).
    pub begin_suppress_tokens: Vec<u32>,
    /// (decoder layer, head) pairs used for word-level alignment.
    pub alignment_heads: Vec<(u32, u32)>,
}

/// A Whisper checkpoint in Hugging Face layout, whatever it was imported from.
///
/// `tensors` holds f32 tensors under the Hugging Face `WhisperForConditionalGeneration`
/// names (`model.encoder.conv1.weight`, `model.decoder.layers.0.self_attn.k_proj.weight`,
/// ...; no `proj_out.weight`: the output projection is tied to
/// `model.decoder.embed_tokens.weight`).
#[derive(Debug, Clone)]
pub struct WhisperCheckpoint {
    /// Model dimensions.
    pub dims: WhisperDims,
    /// Special tokens and decoding lists.
    pub tokens: WhisperTokens,
    /// Weights by Hugging Face name, f32.
    pub tensors: BTreeMap<String, Tensor>,
}

pub mod import;
pub mod onnx;
pub mod random;
pub mod reference;

pub use import::{load_ct2_dir, load_dir, load_hf_dir};
pub use random::{save_ct2_dir, save_hf_dir, tiny_random};
pub use reference::Reference;
