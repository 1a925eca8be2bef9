//! The graphs of an optimum export: which decoder files exist, where their outputs are,
//! and the checks that they are what `config.json` says.

use std::path::Path;
use std::sync::Arc;

use super::config::{DECODER, ENCODER, EXPECTED, MERGED, WITH_PAST, contract, params_from_hf};
use crate::engine::{DType, Dim, Engine, Graph, IoSpec, Tensor};
use crate::model::whisper::params::WhisperParams;
use crate::{Error, Result};

/// The decoder graphs of a directory, in order of preference.
pub(super) enum Decoders {
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
pub(super) struct DecoderGraph {
    pub(super) graph: Arc<dyn Graph>,
    pub(super) logits: usize,
    /// `present.{i}.decoder.key`, `present.{i}.decoder.value` for each layer `i`.
    pub(super) self_kv: Vec<usize>,
    /// `present.{i}.encoder.key`, `.value` for each layer; empty when the graph has none.
    pub(super) cross_kv: Vec<usize>,
}

/// The shared part of an optimum Whisper: graphs and cache geometry.
pub(crate) struct OptimumWhisper {
    pub(super) encoder: Arc<dyn Graph>,
    /// Position of `last_hidden_state` among the encoder's outputs.
    pub(super) encoder_output: usize,
    pub(super) decoders: Decoders,
    /// tract only: run the prompt through `decoder_with_past_model.onnx` from an empty
    /// cache, and `decoder_model.onnx` only for the cross-attention keys and values.
    /// tract 0.23.9's `FoldUniformMask` pass folds the causal mask of optimum's
    /// `decoder_model.onnx` (`Where(LessOrEqual(Range, Range), 0, -inf)` over `(query,
    /// key)`) into a constant of length 2 along the query axis, so that graph's logits
    /// are wrong for every length and it fails (or panics) for lengths other than 2; the
    /// cache-position mask of the decoder with past is folded correctly.
    pub(super) prefill_with_past: bool,
    pub(super) n_layer: usize,
    pub(super) n_head: usize,
    pub(super) head_dim: usize,
    pub(super) d_model: usize,
    pub(super) n_audio_ctx: usize,
    /// `past_key_values.{i}.decoder.key`, `.decoder.value`, `.encoder.key`,
    /// `.encoder.value` for each layer `i`, in that order.
    pub(super) past_names: Vec<String>,
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

    /// The execution providers the encoder really runs on.
    pub(crate) fn providers(&self) -> Vec<crate::engine::ExecutionProvider> {
        self.encoder.providers().to_vec()
    }

    pub(super) fn empty_past(&self, n_hyp: usize) -> Tensor {
        Tensor::zeros_f32([n_hyp, self.n_head, 0, self.head_dim])
    }
}

/// Output `index` of a run.
pub(super) fn take(out: Vec<Tensor>, index: usize) -> Result<Tensor> {
    let n = out.len();
    out.into_iter()
        .nth(index)
        .ok_or_else(|| Error::invalid("graph outputs", format!("> {index}"), n))
}
