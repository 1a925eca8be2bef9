//! A tiny, seeded, random Whisper, and writers that put any checkpoint on disk in the
//! layouts the importers read.
//!
//! Export and runtime tests need a Whisper that is cheap to run and needs no download, yet
//! exercises everything a real one does: the same tensor names, 30 s inputs (1500 encoder
//! positions, so the runtime's padding to 3000 mel frames applies unchanged; a small
//! `d_model` keeps that cheap), and a vocabulary laid out like OpenAI's, scaled down:
//!
//! ```text
//! 0..=255      the 256 byte symbols of GPT-2's byte-level BPE (id 220 is "Ġ", a space)
//! 256          <|endoftext|>
//! 257          <|startoftranscript|>
//! 258..=261    <|en|> <|zh|> <|de|> <|es|>      (multilingual only)
//! then         <|translate|> <|transcribe|> <|startoflm|> <|startofprev|> <|nospeech|>
//!              <|notimestamps|> and the 1501 timestamps <|0.00|> ..= <|30.00|>
//! ```
//!
//! (1769 tokens multilingual, 1765 English-only.) Weights come from a fixed PRNG in a
//! fixed order, so a seed names one model forever; they are scaled like a trained model's
//! (fan-in variance for projections, LayerNorm gains near 1, OpenAI's exact sinusoids for
//! encoder positions) so activations stay in a sane range and greedy decoding is not
//! dominated by ties.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use super::import::{ct2_layout, hf_tensor_shapes};
use super::{WhisperCheckpoint, WhisperDims, WhisperTokens};
use crate::ct2::{self, VarRef};
use crate::error::{Error, Result, candle_err};

/// Languages of the multilingual tiny vocabulary, in OpenAI's order.
const TINY_LANGUAGES: [&str; 4] = ["en", "zh", "de", "es"];

/// Timestamp tokens: 0.00 s to 30.00 s in steps of 20 ms.
const N_TIMESTAMPS: usize = 1501;

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and identical on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// OpenAI's sinusoidal positions: `(length, channels)` row-major, sines in the first
/// half of each row, cosines in the second.
// `sinusoids` in https://github.com/openai/whisper/blob/f572f2161ba831bae131364c3bffdead7af6d210/whisper/model.py
pub fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let increment = (10000f32).ln() / (half.max(2) - 1) as f32;
    let inv: Vec<f32> = (0..half).map(|i| (-increment * i as f32).exp()).collect();
    let mut out = Vec::with_capacity(length * channels);
    for t in 0..length {
        out.extend(inv.iter().map(|f| (t as f32 * f).sin()));
        out.extend(inv.iter().map(|f| (t as f32 * f).cos()));
        out.extend(std::iter::repeat_n(0.0, channels - 2 * half));
    }
    out
}

/// The tokens of [`tiny_random`]'s vocabulary by id: GPT-2's 256 byte symbols, then the
/// special tokens.
pub fn tiny_vocabulary(multilingual: bool) -> Vec<String> {
    let mut v: Vec<String> = (0..256).map(byte_symbol).collect();
    v.push("<|endoftext|>".into());
    v.push("<|startoftranscript|>".into());
    if multilingual {
        v.extend(TINY_LANGUAGES.iter().map(|l| format!("<|{l}|>")));
    }
    for t in [
        "translate",
        "transcribe",
        "startoflm",
        "startofprev",
        "nospeech",
        "notimestamps",
    ] {
        v.push(format!("<|{t}|>"));
    }
    v.extend((0..N_TIMESTAMPS).map(|i| format!("<|{:.2}|>", i as f64 * 0.02)));
    v
}

/// GPT-2's printable symbol for byte-level token `id` (0..=255): the printable bytes
/// first, in order, then the others shifted to U+0100 onwards.
// `bytes_to_unicode` in https://github.com/openai/gpt-2/blob/9b63575ef42771a015060c964af2c3da4cf7c8ab/src/encoder.py
fn byte_symbol(id: usize) -> String {
    let printable = |b: usize| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let bytes: Vec<usize> = (0..256)
        .filter(|&b| printable(b))
        .chain((0..256).filter(|&b| !printable(b)))
        .collect();
    let b = bytes[id % 256];
    let code = if printable(b) {
        b as u32
    } else {
        256 + (0..b).filter(|&x| !printable(x)).count() as u32
    };
    char::from_u32(code).map(String::from).unwrap_or_default()
}

/// Dimensions of [`tiny_random`]: d_model 64, 4 heads, 2 encoder + 2 decoder layers,
/// feed-forward 256, 1500 encoder and 448 decoder positions.
pub fn tiny_dims(n_mels: usize, multilingual: bool) -> WhisperDims {
    WhisperDims {
        num_mel_bins: n_mels,
        vocab_size: tiny_vocabulary(multilingual).len(),
        max_source_positions: 1500,
        max_target_positions: 448,
        d_model: 64,
        encoder_attention_heads: 4,
        decoder_attention_heads: 4,
        encoder_layers: 2,
        decoder_layers: 2,
        encoder_ffn_dim: 256,
        decoder_ffn_dim: 256,
    }
}

/// Special tokens of [`tiny_random`]'s vocabulary (see the module documentation), with
/// suppression lists shaped like OpenAI's: a few punctuation-like ids plus the task and
/// control tokens at every step, a space and `<|endoftext|>` at the first.
pub fn tiny_tokens(multilingual: bool) -> WhisperTokens {
    let vocab = tiny_vocabulary(multilingual);
    let id = |name: &str| vocab.iter().position(|t| t == name).unwrap_or(0) as u32;
    let lang_ids = if multilingual {
        TINY_LANGUAGES
            .iter()
            .map(|l| (l.to_string(), id(&format!("<|{l}|>"))))
            .collect()
    } else {
        BTreeMap::new()
    };
    let t = WhisperTokens {
        sot: id("<|startoftranscript|>"),
        eot: id("<|endoftext|>"),
        transcribe: id("<|transcribe|>"),
        translate: id("<|translate|>"),
        no_timestamps: id("<|notimestamps|>"),
        timestamp_begin: id("<|0.00|>"),
        no_speech: Some(id("<|nospeech|>")),
        sot_prev: id("<|startofprev|>"),
        sot_lm: Some(id("<|startoflm|>")),
        lang_ids,
        suppress_tokens: vec![],
        begin_suppress_tokens: vec![],
        alignment_heads: vec![(1, 0), (1, 2)],
    };
    WhisperTokens {
        suppress_tokens: vec![
            1,
            2,
            7,
            8,
            9,
            10,
            14,
            25,
            t.sot,
            t.translate,
            t.transcribe,
            t.sot_lm.unwrap_or(t.sot),
            t.sot_prev,
            t.no_speech.unwrap_or(t.sot),
        ],
        begin_suppress_tokens: vec![220, t.eot],
        ..t
    }
}

/// A tiny Whisper with seeded random weights (see the module documentation): about
/// 0.55 M parameters, 2.2 MB in f32. `n_mels` is 80 or 128 in real models; any value
/// works. The same arguments give the same checkpoint on every platform.
pub fn tiny_random(seed: u64, n_mels: usize, multilingual: bool) -> WhisperCheckpoint {
    let dims = tiny_dims(n_mels, multilingual);
    let mut rng = SplitMix64(seed ^ 0x5748_4953_5045_5221); // "WHISPER!"
    let mut tensors = BTreeMap::new();
    for (name, shape) in hf_tensor_shapes(&dims) {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
        let mut uniform =
            |scale: f32| -> Vec<f32> { (0..n).map(|_| scale * rng.uniform()).collect() };
        // Uniform(-a, a) has standard deviation a / √3.
        let std = |s: f32| s * 3f32.sqrt();
        let data = if name == "model.encoder.embed_positions.weight" {
            sinusoids(shape[0], shape[1])
        } else if name.contains("layer_norm") && name.ends_with(".weight") {
            uniform(0.1).into_iter().map(|x| 1.0 + x).collect()
        } else if name == "model.decoder.embed_tokens.weight" {
            uniform(std(1.0))
        } else if name == "model.decoder.embed_positions.weight" {
            uniform(std(0.3))
        } else if name.ends_with(".bias") {
            uniform(0.05)
        } else {
            uniform(std(1.0 / (fan_in as f32).sqrt()))
        };
        let t = Tensor::from_vec(data, shape.as_slice(), &Device::Cpu)
            .expect("data has the shape's element count by construction");
        tensors.insert(name, t);
    }
    WhisperCheckpoint {
        dims,
        tokens: tiny_tokens(multilingual),
        tensors,
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    write(path, text.as_bytes())
}

/// Names of the special tokens of `ckpt`, id -> name (timestamps included).
fn special_names(t: &WhisperTokens, vocab_size: usize) -> BTreeMap<u32, String> {
    let mut names = BTreeMap::new();
    let mut put = |id: u32, name: String| {
        names.insert(id, name);
    };
    put(t.eot, "<|endoftext|>".into());
    put(t.sot, "<|startoftranscript|>".into());
    for (code, &id) in &t.lang_ids {
        put(id, format!("<|{code}|>"));
    }
    put(t.translate, "<|translate|>".into());
    put(t.transcribe, "<|transcribe|>".into());
    if let Some(id) = t.sot_lm {
        put(id, "<|startoflm|>".into());
    }
    put(t.sot_prev, "<|startofprev|>".into());
    if let Some(id) = t.no_speech {
        put(id, "<|nospeech|>".into());
    }
    put(t.no_timestamps, "<|notimestamps|>".into());
    let n_timestamps = vocab_size.saturating_sub(t.timestamp_begin as usize);
    for i in 0..n_timestamps.min(N_TIMESTAMPS) {
        put(
            t.timestamp_begin + i as u32,
            format!("<|{:.2}|>", i as f64 * 0.02),
        );
    }
    names
}

/// The vocabulary written next to a checkpoint, by id: special names where known, GPT-2
/// byte symbols below 256, and `tok{id}` for any other id (a larger random model).
fn vocabulary_for(ckpt: &WhisperCheckpoint) -> Vec<String> {
    let specials = special_names(&ckpt.tokens, ckpt.dims.vocab_size);
    (0..ckpt.dims.vocab_size)
        .map(|id| match specials.get(&(id as u32)) {
            Some(name) => name.clone(),
            None if id < 256 => byte_symbol(id),
            None => format!("tok{id}"),
        })
        .collect()
}

/// Writes `ckpt` as a Hugging Face Whisper directory that [`super::import::load_hf_dir`]
/// (and transformers) can read: `config.json`, `generation_config.json`,
/// `model.safetensors` (f32, `proj_out` tied so not stored), `added_tokens.json` (the
/// special tokens) and `vocab.json` (every id; see [`tiny_vocabulary`] for what ordinary
/// tokens are called). Creates `dir` if needed.
///
/// Fails with [`Error::Io`] when a file cannot be written, [`Error::Candle`] when the
/// safetensors cannot be serialized.
pub fn save_hf_dir(ckpt: &WhisperCheckpoint, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let d = &ckpt.dims;
    let t = &ckpt.tokens;
    write_json(
        &dir.join("config.json"),
        &json!({
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "activation_function": "gelu",
            "num_mel_bins": d.num_mel_bins,
            "vocab_size": d.vocab_size,
            "max_source_positions": d.max_source_positions,
            "max_target_positions": d.max_target_positions,
            "d_model": d.d_model,
            "encoder_attention_heads": d.encoder_attention_heads,
            "decoder_attention_heads": d.decoder_attention_heads,
            "encoder_layers": d.encoder_layers,
            "decoder_layers": d.decoder_layers,
            "encoder_ffn_dim": d.encoder_ffn_dim,
            "decoder_ffn_dim": d.decoder_ffn_dim,
            "num_hidden_layers": d.encoder_layers,
            "scale_embedding": false,
            "tie_word_embeddings": true,
            "bos_token_id": t.eot,
            "eos_token_id": t.eot,
            "pad_token_id": t.eot,
            "decoder_start_token_id": t.sot,
            "torch_dtype": "float32",
        }),
    )?;
    let lang_to_id: BTreeMap<String, u32> = t
        .lang_ids
        .iter()
        .map(|(code, &id)| (format!("<|{code}|>"), id))
        .collect();
    write_json(
        &dir.join("generation_config.json"),
        &json!({
            "alignment_heads": t.alignment_heads,
            "begin_suppress_tokens": t.begin_suppress_tokens,
            "suppress_tokens": t.suppress_tokens,
            "bos_token_id": t.eot,
            "eos_token_id": t.eot,
            "pad_token_id": t.eot,
            "decoder_start_token_id": t.sot,
            "is_multilingual": !t.lang_ids.is_empty(),
            "lang_to_id": lang_to_id,
            "task_to_id": {"transcribe": t.transcribe, "translate": t.translate},
            "no_timestamps_token_id": t.no_timestamps,
            "prev_sot_token_id": t.sot_prev,
            "max_length": d.max_target_positions,
        }),
    )?;
    let specials: BTreeMap<String, u32> = special_names(t, d.vocab_size)
        .into_iter()
        .map(|(id, name)| (name, id))
        .collect();
    write_json(&dir.join("added_tokens.json"), &json!(specials))?;
    let vocab: BTreeMap<String, usize> = vocabulary_for(ckpt)
        .into_iter()
        .enumerate()
        .map(|(id, name)| (name, id))
        .collect();
    write_json(&dir.join("vocab.json"), &json!(vocab))?;
    let tensors: HashMap<&str, Tensor> = ckpt
        .tensors
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path)
        .map_err(candle_err(format!("writing {}", path.display())))
}

/// Writes `ckpt` as a CTranslate2 Whisper directory (what `ct2-transformers-converter`
/// produces) that [`super::import::load_ct2_dir`] can read: `model.bin` (binary version
/// 6, `WhisperSpec` revision 3, weights in `dtype`: `F32`, `F16` or `BF16`, the output
/// projection an alias of the embedding), `config.json` and `vocabulary.txt`.
///
/// Fails with [`Error::Unsupported`] for an integer `dtype`, [`Error::Io`] when a file
/// cannot be written.
pub fn save_ct2_dir(
    ckpt: &WhisperCheckpoint,
    dir: impl AsRef<Path>,
    dtype: ct2::DType,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let encode: fn(f32) -> Vec<u8> = match dtype {
        ct2::DType::F32 => |x| x.to_le_bytes().to_vec(),
        ct2::DType::F16 => |x| half::f16::from_f32(x).to_le_bytes().to_vec(),
        ct2::DType::BF16 => |x| half::bf16::from_f32(x).to_le_bytes().to_vec(),
        other => {
            return Err(Error::Unsupported {
                path: dir.to_owned(),
                reason: format!("cannot write weights as {other}"),
            });
        }
    };
    let d = &ckpt.dims;
    let mut owned: Vec<(String, Vec<usize>, ct2::DType, Vec<u8>)> = Vec::new();
    for var in ct2_layout(d.encoder_layers, d.decoder_layers) {
        let parts = var
            .parts
            .iter()
            .map(|p| match p {
                Some(name) => {
                    let t = ckpt
                        .tensors
                        .get(name)
                        .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
                    let values = t
                        .flatten_all()
                        .and_then(|t| t.to_vec1::<f32>())
                        .map_err(candle_err(format!("reading `{name}`")))?;
                    Ok(Some((t.dims().to_vec(), values)))
                }
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let Some((part_shape, _)) = parts.iter().flatten().next().cloned() else {
            continue;
        };
        let part_len: usize = part_shape.iter().product();
        let mut shape = part_shape.clone();
        shape[0] *= parts.len();
        let mut bytes = Vec::with_capacity(part_len * parts.len() * dtype.size_in_bytes());
        for part in &parts {
            match part {
                Some((_, values)) => values.iter().for_each(|&x| bytes.extend(encode(x))),
                None => (0..part_len).for_each(|_| bytes.extend(encode(0.0))),
            }
        }
        owned.push((var.ct2, shape, dtype, bytes));
    }
    let heads = |h: usize| (h as i16).to_le_bytes().to_vec();
    let scalars: [(&str, ct2::DType, Vec<u8>); 9] = [
        ("decoder/activation", ct2::DType::I8, vec![3]),
        ("decoder/alibi", ct2::DType::I8, vec![0]),
        ("decoder/alignment_heads", ct2::DType::I16, heads(1)),
        (
            "decoder/alignment_layer",
            ct2::DType::I16,
            (-1i16).to_le_bytes().to_vec(),
        ),
        (
            "decoder/num_heads",
            ct2::DType::I16,
            heads(d.decoder_attention_heads),
        ),
        ("decoder/pre_norm", ct2::DType::I8, vec![1]),
        ("decoder/scale_embeddings", ct2::DType::I8, vec![0]),
        ("decoder/start_from_zero_embedding", ct2::DType::I8, vec![0]),
        (
            "encoder/num_heads",
            ct2::DType::I16,
            heads(d.encoder_attention_heads),
        ),
    ];
    for (name, dt, bytes) in scalars {
        owned.push((name.into(), vec![], dt, bytes));
    }
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<VarRef<'_>> = owned
        .iter()
        .map(|(name, shape, dtype, bytes)| VarRef {
            name,
            shape,
            dtype: *dtype,
            bytes,
        })
        .collect();
    let model = ct2::write_model(
        6,
        "WhisperSpec",
        3,
        &refs,
        &[("decoder/projection/weight", "decoder/embeddings/weight")],
    )?;
    write(&dir.join("model.bin"), &model)?;

    let t = &ckpt.tokens;
    write_json(
        &dir.join("config.json"),
        &json!({
            "alignment_heads": t.alignment_heads,
            "lang_ids": t.lang_ids.values().collect::<Vec<_>>(),
            "suppress_ids": t.suppress_tokens,
            "suppress_ids_begin": t.begin_suppress_tokens,
        }),
    )?;
    let mut vocabulary = vocabulary_for(ckpt).join("\n");
    vocabulary.push('\n');
    write(&dir.join("vocabulary.txt"), vocabulary.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_symbols_match_gpt2() {
        assert_eq!(byte_symbol(0), "!");
        assert_eq!(byte_symbol(93), "~");
        assert_eq!(byte_symbol(94), "¡");
        assert_eq!(byte_symbol(187), "ÿ");
        assert_eq!(byte_symbol(188), "Ā");
        assert_eq!(byte_symbol(220), "Ġ");
        assert_eq!(byte_symbol(255), "Ń");
    }

    #[test]
    fn vocabulary_layout() {
        for (multilingual, n) in [(true, 1769), (false, 1765)] {
            let v = tiny_vocabulary(multilingual);
            assert_eq!(v.len(), n);
            let t = tiny_tokens(multilingual);
            assert_eq!(t.eot, 256);
            assert_eq!(t.sot, 257);
            assert_eq!(v[t.timestamp_begin as usize], "<|0.00|>");
            assert_eq!(t.timestamp_begin, t.no_timestamps + 1);
            assert_eq!(v.last().map(String::as_str), Some("<|30.00|>"));
            assert_eq!(t.lang_ids.len(), if multilingual { 4 } else { 0 });
        }
    }

    #[test]
    fn seeded_and_valid() {
        let a = tiny_random(3, 80, true);
        let b = tiny_random(3, 80, true);
        let c = tiny_random(4, 80, true);
        super::super::import::validate(&a).unwrap();
        let w = |ckpt: &WhisperCheckpoint| {
            ckpt.tensors["model.decoder.layers.1.fc1.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
        let n_params: usize = a.tensors.values().map(|t| t.elem_count()).sum();
        assert!((400_000..800_000).contains(&n_params), "{n_params}");
        let pos = sinusoids(3, 4);
        // Row 1: sin(1), sin(1e-4), cos(1), cos(1e-4).
        let want = [1f32.sin(), 1e-4f32.sin(), 1f32.cos(), 1e-4f32.cos()];
        for (a, b) in pos[4..8].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
