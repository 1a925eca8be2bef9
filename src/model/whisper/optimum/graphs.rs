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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::whisper::{HfGenerationConfig, WhisperParams, first_token_id};
use crate::engine::{DType, Dim, Engine, Graph, IoSpec, Tensor, TensorData};
use crate::{Error, Result};

/// The encoder of an optimum export; its presence marks the layout.
pub(crate) const ENCODER: &str = "encoder_model.onnx";
const DECODER: &str = "decoder_model.onnx";
const WITH_PAST: &str = "decoder_with_past_model.onnx";
const MERGED: &str = "decoder_model_merged.onnx";

/// What a directory must hold to be an optimum Whisper export, for error messages.
pub(crate) const EXPECTED: &str = "an optimum export: encoder_model.onnx with \
    decoder_model.onnx + decoder_with_past_model.onnx (or decoder_model_merged.onnx, ONNX \
    Runtime only), and config.json, generation_config.json, tokenizer.json";

/// The decoder graphs of a directory, in order of preference.
enum Decoders {
    /// `decoder_model.onnx` for the first run of a window, `decoder_with_past_model.onnx`
    /// for the later ones.
    Split {
        first: DecoderGraph,
        with_past: DecoderGraph,
    },
    /// `decoder_model_merged.onnx` (ONNX Runtime only): `use_cache_branch` picks the branch.
    Merged(DecoderGraph),
    /// `decoder_model.onnx` alone: no cache, every step reruns the whole prefix.
    NoCache(DecoderGraph),
}

/// A decoder graph with the positions of its outputs, resolved once at load.
struct DecoderGraph {
    graph: Arc<dyn Graph>,
    logits: usize,
    /// `present.{i}.decoder.key`, `present.{i}.decoder.value` for each layer `i`.
    self_kv: Vec<usize>,
    /// `present.{i}.encoder.key`, `.value` for each layer; empty when the graph has none.
    cross_kv: Vec<usize>,
}

/// The shared part of an optimum Whisper: graphs and cache geometry.
pub(crate) struct OptimumWhisper {
    encoder: Arc<dyn Graph>,
    /// Position of `last_hidden_state` among the encoder's outputs.
    encoder_output: usize,
    decoders: Decoders,
    /// tract only: run the prompt through `decoder_with_past_model.onnx` from an empty
    /// cache, and `decoder_model.onnx` only for the cross-attention keys and values.
    /// tract 0.23.9's `FoldUniformMask` pass folds the causal mask of optimum's
    /// `decoder_model.onnx` (`Where(LessOrEqual(Range, Range), 0, -inf)` over `(query,
    /// key)`) into a constant of length 2 along the query axis, so that graph's logits
    /// are wrong for every length and it fails (or panics) for lengths other than 2; the
    /// cache-position mask of the decoder with past is folded correctly.
    prefill_with_past: bool,
    n_layer: usize,
    n_head: usize,
    head_dim: usize,
    d_model: usize,
    n_audio_ctx: usize,
    /// `past_key_values.{i}.decoder.key`, `.decoder.value`, `.encoder.key`,
    /// `.encoder.value` for each layer `i`, in that order.
    past_names: Vec<String>,
}

fn contract(path: &Path, reason: impl Into<String>) -> Error {
    Error::Contract {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `config.json`: the fields hearken needs (upstream names).
#[derive(Debug, Deserialize)]
struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    /// OpenAI `n_mels`.
    num_mel_bins: usize,
    /// OpenAI `n_vocab`.
    vocab_size: usize,
    /// OpenAI `n_audio_ctx` (1500).
    #[serde(default = "default_source_positions")]
    max_source_positions: usize,
    /// OpenAI `n_text_ctx` (448).
    max_target_positions: usize,
    /// OpenAI `n_audio_state` = `n_text_state`.
    d_model: usize,
    /// OpenAI `n_text_layer`.
    decoder_layers: usize,
    /// OpenAI `n_text_head`.
    decoder_attention_heads: usize,
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
fn params_from_hf(dir: &Path) -> Result<(WhisperParams, HfConfig)> {
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

fn find(specs: &[IoSpec], name: &str, path: &Path) -> Result<usize> {
    specs.iter().position(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        contract(
            path,
            format!("no `{name}` in the graph (it has {names:?}): not an optimum Whisper export"),
        )
    })
}

/// Float inputs must be `f32`: `--dtype fp16` exports are not supported.
fn check_f32(graph: &dyn Graph, path: &Path) -> Result<()> {
    if let Some(s) = graph
        .inputs()
        .iter()
        .chain(graph.outputs())
        .find(|s| matches!(s.dtype, DType::F16))
    {
        return Err(contract(
            path,
            format!(
                "`{}` is float16; hearken runs float32 optimum exports (export without \
                 --dtype fp16)",
                s.name
            ),
        ));
    }
    Ok(())
}

impl DecoderGraph {
    fn load(
        engine: &dyn Engine,
        path: &Path,
        n_layer: usize,
        past_names: &[String],
    ) -> Result<Self> {
        let graph = engine.load(path)?;
        check_f32(graph.as_ref(), path)?;
        let outputs = graph.outputs();
        let present = |side: &str| -> Result<Vec<usize>> {
            let mut out = Vec::with_capacity(2 * n_layer);
            for i in 0..n_layer {
                for kv in ["key", "value"] {
                    out.push(find(outputs, &format!("present.{i}.{side}.{kv}"), path)?);
                }
            }
            Ok(out)
        };
        // Exports without the cache (`--task automatic-speech-recognition`) have neither;
        // decoder_with_past_model.onnx has no cross-attention outputs.
        let has = |name: &str| outputs.iter().any(|s| s.name == name);
        let self_kv = if has("present.0.decoder.key") {
            present("decoder")?
        } else {
            Vec::new()
        };
        let cross_kv = if has("present.0.encoder.key") {
            present("encoder")?
        } else {
            Vec::new()
        };
        let extra_layer = format!("present.{n_layer}.decoder.key");
        if outputs.iter().any(|s| s.name == extra_layer) {
            return Err(contract(
                path,
                format!("the graph has more decoder layers than config.json's {n_layer}"),
            ));
        }
        let inputs = graph.inputs();
        find(inputs, "input_ids", path)?;
        if inputs
            .iter()
            .any(|s| s.name.starts_with("past_key_values."))
        {
            for name in past_names {
                find(inputs, name, path)?;
            }
        }
        Ok(DecoderGraph {
            logits: find(outputs, "logits", path)?,
            graph,
            self_kv,
            cross_kv,
        })
    }

    fn takes(&self, name: &str) -> bool {
        self.graph.inputs().iter().any(|s| s.name == name)
    }
}

impl OptimumWhisper {
    /// Loads an optimum Whisper export from `dir` (see the module documentation for the
    /// files), preferring the split decoders over the merged one. Returns the graphs and
    /// the parameters read from the Hugging Face JSON files.
    ///
    /// Fails with [`Error::Contract`] when files are missing or inconsistent, and with
    /// [`Error::ModelLoad`] when only the merged decoder is there and the engine is tract.
    pub(crate) fn load(engine: &dyn Engine, dir: &Path) -> Result<(Self, WhisperParams)> {
        let has = |f: &str| dir.join(f).is_file();
        let (params, config) = params_from_hf(dir)?;
        let n_layer = config.decoder_layers;
        let n_head = config.decoder_attention_heads;
        let past_names: Vec<String> = (0..n_layer)
            .flat_map(|i| {
                [
                    "decoder.key",
                    "decoder.value",
                    "encoder.key",
                    "encoder.value",
                ]
                .map(|s| format!("past_key_values.{i}.{s}"))
            })
            .collect();
        let load = |file: &str| DecoderGraph::load(engine, &dir.join(file), n_layer, &past_names);
        let decoders = if has(DECODER) && has(WITH_PAST) {
            Decoders::Split {
                first: load(DECODER)?,
                with_past: load(WITH_PAST)?,
            }
        } else if has(MERGED) && engine.name() != "tract" {
            Decoders::Merged(load(MERGED)?)
        } else if has(DECODER) && engine.name() != "tract" {
            Decoders::NoCache(load(DECODER)?)
        } else if has(MERGED) {
            return Err(Error::ModelLoad {
                path: dir.join(MERGED),
                engine: "tract",
                reason: "decoder_model_merged.onnx chooses between its two decoders with an \
                         ONNX `If` node, which tract cannot run: use the ONNX Runtime engine \
                         (--engine ort), or an export that keeps decoder_model.onnx and \
                         decoder_with_past_model.onnx (optimum-cli export onnx --task \
                         automatic-speech-recognition-with-past writes both)"
                    .into(),
            });
        } else if has(DECODER) {
            return Err(Error::ModelLoad {
                path: dir.join(DECODER),
                engine: "tract",
                reason: "without decoder_with_past_model.onnx every step would rerun \
                         decoder_model.onnx, whose causal mask tract 0.23 folds wrongly: use \
                         the ONNX Runtime engine (--engine ort), or export with optimum-cli \
                         export onnx --task automatic-speech-recognition-with-past"
                    .into(),
            });
        } else {
            return Err(contract(dir, format!("no decoder: expected {EXPECTED}")));
        };
        let check = |g: &DecoderGraph, name: &str, cached: bool| -> Result<()> {
            let path = dir.join(name);
            if !g.takes("encoder_hidden_states") {
                return Err(contract(
                    &path,
                    "no encoder_hidden_states input: not an optimum Whisper decoder",
                ));
            }
            if cached && (g.self_kv.is_empty() || g.cross_kv.is_empty()) {
                return Err(contract(
                    &path,
                    "no present.{i}.decoder.* and present.{i}.encoder.* outputs: not an \
                     optimum Whisper decoder exported with its cache",
                ));
            }
            Ok(())
        };
        match &decoders {
            Decoders::Split { first, with_past } => {
                check(first, DECODER, true)?;
                if !with_past.takes(&past_names[0]) || with_past.self_kv.is_empty() {
                    return Err(contract(
                        &dir.join(WITH_PAST),
                        "no past_key_values.* inputs or present.* outputs: not a decoder \
                         with past",
                    ));
                }
            }
            Decoders::Merged(g) => {
                check(g, MERGED, true)?;
                if !g.takes("use_cache_branch") || !g.takes(&past_names[0]) {
                    return Err(contract(
                        &dir.join(MERGED),
                        "no use_cache_branch or past_key_values.* inputs: not a merged decoder",
                    ));
                }
            }
            Decoders::NoCache(g) => check(g, DECODER, false)?,
        }

        let encoder_path = dir.join(ENCODER);
        let encoder = engine.load(&encoder_path)?;
        check_f32(encoder.as_ref(), &encoder_path)?;
        let input = &encoder.inputs()[find(encoder.inputs(), "input_features", &encoder_path)?];
        if let Some(Dim::Fixed(n)) = input.shape.get(1)
            && *n != params.n_mels
        {
            return Err(contract(
                &encoder_path,
                format!(
                    "input_features has {n} mel bins, config.json's num_mel_bins is {}",
                    params.n_mels
                ),
            ));
        }
        let encoder_output = find(encoder.outputs(), "last_hidden_state", &encoder_path)?;
        let model = OptimumWhisper {
            encoder,
            encoder_output,
            prefill_with_past: engine.name() == "tract",
            decoders,
            n_layer,
            n_head,
            head_dim: config.d_model / n_head,
            d_model: config.d_model,
            n_audio_ctx: config.max_source_positions,
            past_names,
        };
        Ok((model, params))
    }

    /// Which decoder files run: `"optimum-split"`, `"optimum-merged"` or
    /// `"optimum-no-cache"`.
    pub(crate) fn layout(&self) -> &'static str {
        match self.decoders {
            Decoders::Split { .. } => "optimum-split",
            Decoders::Merged(_) => "optimum-merged",
            Decoders::NoCache(_) => "optimum-no-cache",
        }
    }

    /// Runs the encoder on `input_features` `(1, n_mels, 3000)`; returns
    /// `last_hidden_state` `(1, n_audio_ctx, d_model)`.
    pub(crate) fn encode(&self, features: &Tensor) -> Result<Tensor> {
        let out = self.encoder.run_refs(&[("input_features", features)])?;
        let hidden = take(out, self.encoder_output)?;
        let want = [1, self.n_audio_ctx, self.d_model];
        if hidden.shape() != want {
            return Err(Error::invalid(
                "encoder last_hidden_state shape",
                format!("{want:?}"),
                format!("{:?}", hidden.shape()),
            ));
        }
        Ok(hidden)
    }

    fn empty_past(&self, n_hyp: usize) -> Tensor {
        Tensor::zeros_f32([n_hyp, self.n_head, 0, self.head_dim])
    }
}

/// Per-window decoder state of an optimum Whisper: the caches of a set of hypotheses.
pub(crate) struct OptimumCache {
    /// `present.{i}.decoder.{key,value}` per layer, each `(n_hyp, n_head, n_past,
    /// head_dim)`; empty before the first run.
    self_kv: Vec<Tensor>,
    /// `present.{i}.encoder.{key,value}` per layer, each `(n_rows, n_head, n_audio_ctx,
    /// head_dim)` with identical rows; repeated to the hypothesis count when it changes.
    cross_kv: Vec<Tensor>,
    /// `encoder_hidden_states` repeated to `hidden_rows.shape()[0]` rows, for the first
    /// run and the no-cache layout with several hypotheses.
    hidden_rows: Option<Tensor>,
    /// Every hypothesis' tokens so far (no-cache layout only).
    history: Vec<Vec<u32>>,
}

/// `t` `(n, ...)` → `(rows.len(), ...)`: row `i` of the result is row `rows[i]` of `t`.
fn gather_rows(t: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let n = t.shape().first().copied().unwrap_or(0);
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::invalid("cache row", format!("< {n}"), bad));
    }
    let row_len = t.len() / n.max(1);
    let mut shape = t.shape().to_vec();
    if let Some(first) = shape.first_mut() {
        *first = rows.len();
    }
    fn pick<T: Clone>(v: &[T], rows: &[usize], row_len: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(rows.len() * row_len);
        for &r in rows {
            out.extend_from_slice(&v[r * row_len..(r + 1) * row_len]);
        }
        out
    }
    let data = match t.data() {
        TensorData::F32(v) => TensorData::F32(pick(v, rows, row_len)),
        TensorData::F16(v) => TensorData::F16(pick(v, rows, row_len)),
        _ => return Err(Error::invalid("cache dtype", "f32 or f16", t.dtype())),
    };
    Tensor::new(shape, data)
}

/// `t` with identical rows, as `n` rows.
fn with_rows(t: &Tensor, n: usize) -> Result<Tensor> {
    if t.shape().first() == Some(&n) {
        return Ok(t.clone());
    }
    gather_rows(t, &vec![0; n])
}

/// `input_ids` `(rows, cols)`: element `(r, c)` is `get(r, c)`.
fn token_ids(rows: usize, cols: usize, get: impl Fn(usize, usize) -> u32) -> Result<Tensor> {
    let data = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| i64::from(get(r, c)))
        .collect();
    Tensor::from_i64([rows, cols], data)
}

/// Logits `(n_hyp, n_new, n_vocab)` → each row's last position, `(n_hyp, n_vocab)`.
fn last_positions(logits: Tensor, n_hyp: usize) -> Result<Vec<f32>> {
    let shape = logits.shape().to_vec();
    let [rows, n_new, n_vocab] = shape[..] else {
        return Err(Error::invalid(
            "decoder logits shape",
            "(batch, n_new, n_vocab)",
            format!("{shape:?}"),
        ));
    };
    if rows != n_hyp || n_new == 0 {
        return Err(Error::invalid(
            "decoder logits shape",
            format!("({n_hyp}, ≥ 1, n_vocab)"),
            format!("{shape:?}"),
        ));
    }
    let all = logits.into_f32()?;
    if n_new == 1 {
        return Ok(all);
    }
    let mut last = Vec::with_capacity(n_hyp * n_vocab);
    for h in 0..n_hyp {
        let start = (h * n_new + n_new - 1) * n_vocab;
        last.extend_from_slice(&all[start..start + n_vocab]);
    }
    Ok(last)
}

impl OptimumCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        OptimumCache {
            self_kv: Vec::new(),
            cross_kv: Vec::new(),
            hidden_rows: None,
            history: Vec::new(),
        }
    }

    /// `hidden` `(1, n_audio_ctx, d_model)` as `n` rows, kept for the next call.
    fn hidden(&mut self, hidden: &Tensor, n: usize) -> Result<Tensor> {
        if n == 1 {
            return Ok(hidden.clone());
        }
        match &self.hidden_rows {
            Some(t) if t.shape().first() == Some(&n) => Ok(t.clone()),
            _ => {
                let t = with_rows(hidden, n)?;
                self.hidden_rows = Some(t.clone());
                Ok(t)
            }
        }
    }

    /// Appends `tokens` (`n_hyp` rows of `n_new`, row-major) after `n_past` cached ones and
    /// returns each row's last logits `(n_hyp, n_vocab)`.
    pub(crate) fn step(
        &mut self,
        model: &OptimumWhisper,
        hidden: &Tensor,
        tokens: &[u32],
        n_hyp: usize,
        n_past: usize,
    ) -> Result<Vec<f32>> {
        let n_new = tokens.len() / n_hyp;
        match &model.decoders {
            Decoders::NoCache(g) => {
                if n_past == 0 {
                    self.history = tokens.chunks(n_new).map(<[u32]>::to_vec).collect();
                } else {
                    if self.history.len() != n_hyp {
                        return Err(Error::invalid(
                            "decoder hypotheses",
                            self.history.len().to_string(),
                            n_hyp,
                        ));
                    }
                    for (row, new) in self.history.iter_mut().zip(tokens.chunks(n_new)) {
                        row.extend_from_slice(new);
                    }
                }
                let history = &self.history;
                let input = token_ids(n_hyp, n_past + n_new, |r, c| history[r][c])?;
                let hidden = self.hidden(hidden, n_hyp)?;
                let out = g
                    .graph
                    .run_refs(&[("input_ids", &input), ("encoder_hidden_states", &hidden)])?;
                last_positions(take(out, g.logits)?, n_hyp)
            }
            Decoders::Split { first, with_past } if n_past == 0 && model.prefill_with_past => {
                if self.cross_kv.is_empty() {
                    // Only the cross-attention keys and values are read from this run: they
                    // depend on the audio alone, and two tokens stay clear of the tract bug
                    // (see `OptimumWhisper::prefill_with_past`). They outlive `reset`.
                    let input = token_ids(1, 2, |_, _| tokens[0])?;
                    let out = first
                        .graph
                        .run_refs(&[("input_ids", &input), ("encoder_hidden_states", hidden)])?;
                    self.cross_kv = split_outputs(out, first)?.2;
                }
                self.self_kv = vec![model.empty_past(n_hyp); 2 * model.n_layer];
                self.step_with_past(model, with_past, hidden, tokens, n_hyp, 0)
            }
            Decoders::Split { first, .. } | Decoders::Merged(first) if n_past == 0 => {
                let input = token_ids(n_hyp, n_new, |r, c| tokens[r * n_new + c])?;
                let hidden = self.hidden(hidden, n_hyp)?;
                let empty = model.empty_past(n_hyp);
                let no_cache = Tensor::from_bool([1], vec![false])?;
                let mut inputs: Vec<(&str, &Tensor)> =
                    vec![("input_ids", &input), ("encoder_hidden_states", &hidden)];
                if matches!(model.decoders, Decoders::Merged(_)) {
                    inputs.push(("use_cache_branch", &no_cache));
                    inputs.extend(model.past_names.iter().map(|n| (n.as_str(), &empty)));
                }
                let out = first.graph.run_refs(&inputs)?;
                let (logits, self_kv, cross_kv) = split_outputs(out, first)?;
                self.check_self_kv(model, &self_kv, n_hyp, n_new)?;
                self.self_kv = self_kv;
                self.cross_kv = cross_kv;
                last_positions(logits, n_hyp)
            }
            Decoders::Split { with_past: g, .. } | Decoders::Merged(g) => {
                self.step_with_past(model, g, hidden, tokens, n_hyp, n_past)
            }
        }
    }

    /// [`Self::step`] through `decoder_with_past_model.onnx` or the merged decoder's cache
    /// branch, one token per run: exports made before transformers built the causal mask
    /// from the cache position have none for several new tokens after a past. Only the
    /// prompt has more than one token per row.
    fn step_with_past(
        &mut self,
        model: &OptimumWhisper,
        g: &DecoderGraph,
        hidden: &Tensor,
        tokens: &[u32],
        n_hyp: usize,
        n_past: usize,
    ) -> Result<Vec<f32>> {
        let n_new = tokens.len() / n_hyp;
        if self.cross_kv.first().and_then(|t| t.shape().first()) != Some(&n_hyp) {
            self.cross_kv = self
                .cross_kv
                .iter()
                .map(|t| with_rows(t, n_hyp))
                .collect::<Result<_>>()?;
        }
        let merged = matches!(model.decoders, Decoders::Merged(_));
        let use_cache = Tensor::from_bool([1], vec![true])?;
        let mut last = Vec::new();
        for col in 0..n_new {
            let input = token_ids(n_hyp, 1, |r, _| tokens[r * n_new + col])?;
            let mut inputs: Vec<(&str, &Tensor)> = vec![("input_ids", &input)];
            for (i, name) in model.past_names.iter().enumerate() {
                let (layer, part) = (i / 4, i % 4);
                let t = if part < 2 {
                    self.self_kv.get(2 * layer + part)
                } else {
                    self.cross_kv.get(2 * layer + part - 2)
                };
                let t = t.ok_or_else(|| Error::invalid("decoder cache", name, "none"))?;
                inputs.push((name.as_str(), t));
            }
            if merged {
                // Read by the other branch only; its batch is not checked.
                inputs.push(("encoder_hidden_states", hidden));
                inputs.push(("use_cache_branch", &use_cache));
            }
            let out = g.graph.run_refs(&inputs)?;
            let (logits, self_kv, _) = split_outputs(out, g)?;
            self.check_self_kv(model, &self_kv, n_hyp, n_past + col + 1)?;
            self.self_kv = self_kv;
            last = last_positions(logits, n_hyp)?;
        }
        Ok(last)
    }

    fn check_self_kv(
        &self,
        model: &OptimumWhisper,
        self_kv: &[Tensor],
        n_hyp: usize,
        n_seq: usize,
    ) -> Result<()> {
        let want = [n_hyp, model.n_head, n_seq, model.head_dim];
        match self_kv.iter().find(|t| t.shape() != want) {
            Some(t) => Err(Error::invalid(
                "decoder cache shape",
                format!("{want:?}"),
                format!("{:?}", t.shape()),
            )),
            None => Ok(()),
        }
    }

    /// Rebuilds the rows: new row `i` continues old row `src[i]`. The cross-attention rows
    /// are all the same; they are resized at the next step if the count changed.
    pub(crate) fn reorder(&mut self, src: &[usize]) -> Result<()> {
        self.self_kv = self
            .self_kv
            .iter()
            .map(|t| gather_rows(t, src))
            .collect::<Result<_>>()?;
        if !self.history.is_empty() {
            self.history = src
                .iter()
                .map(|&s| self.history.get(s).cloned().unwrap_or_default())
                .collect();
        }
        Ok(())
    }

    /// Forgets the decoded tokens; the next step is a first run again.
    pub(crate) fn reset(&mut self) {
        self.self_kv.clear();
        self.history.clear();
    }
}

fn take(out: Vec<Tensor>, index: usize) -> Result<Tensor> {
    let n = out.len();
    out.into_iter()
        .nth(index)
        .ok_or_else(|| Error::invalid("graph outputs", format!("> {index}"), n))
}

/// A decoder run's outputs as (logits, self-attention cache, cross-attention cache).
fn split_outputs(out: Vec<Tensor>, g: &DecoderGraph) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
    let n = out.len();
    let mut slots: Vec<Option<Tensor>> = out.into_iter().map(Some).collect();
    let mut pick = |i: usize| {
        slots
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| Error::invalid("decoder outputs", format!("> {i}"), n))
    };
    let logits = pick(g.logits)?;
    let self_kv = g.self_kv.iter().map(|&i| pick(i)).collect::<Result<_>>()?;
    let cross_kv = g.cross_kv.iter().map(|&i| pick(i)).collect::<Result<_>>()?;
    Ok((logits, self_kv, cross_kv))
}
