//! Whisper directories exported by Hugging Face optimum, run as they are.
//!
//! `optimum-cli export onnx --task automatic-speech-recognition-with-past` writes
//! `encoder_model.onnx` (log-mel `(batch, n_mels, 3000)` → `last_hidden_state` `(batch,
//! 1500, d_model)`) and up to three decoders:
//!
//! - `decoder_model.onnx`: `input_ids` and `encoder_hidden_states` in; `logits` and every
//!   layer's `present.{i}.decoder.{key,value}` (self-attention) and
//!   `present.{i}.encoder.{key,value}` (cross-attention) out, each `(batch, n_head, seq,
//!   head_dim)`;
//! - `decoder_with_past_model.onnx`: the same with `past_key_values.{i}.*` in, and only the
//!   grown self-attention cache out;
//! - `decoder_model_merged.onnx`: both behind an `If` on a `use_cache_branch` input.
//!
//! The configuration is not in ONNX metadata as in hearken's own layout but in the Hugging
//! Face files beside the graphs (`config.json`, `generation_config.json`, `tokenizer.json`,
//! `preprocessor_config.json`), read here with the mapping `hearken-export`'s importer
//! uses (`export/src/whisper/import.rs`, `load_hf_dir`).
//!
//! Unlike hearken's decoder, optimum's has no batch broadcast for the cross-attention
//! keys and values: every hypothesis needs its own copy, so they are repeated when the
//! number of hypotheses changes (not at every reorder, since all rows are the same audio).
//! A directory with `decoder_model.onnx` alone (an export without `-with-past`) is run
//! without a cache, recomputing every hypothesis' whole prefix at each step.
//!
//! On tract only the split decoders run: tract cannot run `If`, and it miscomputes the
//! causal mask of `decoder_model.onnx` (see `OptimumWhisper::prefill_with_past`), so there
//! the prompt goes through the decoder with past from an empty cache.

mod cache;
mod config;
mod graphs;

pub(crate) use cache::OptimumCache;
pub(crate) use config::{ENCODER, EXPECTED};
pub(crate) use graphs::OptimumWhisper;
