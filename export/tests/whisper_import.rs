//! Whisper import: the CTranslate2 reader on synthetic files, Hugging Face and
//! CTranslate2 round trips of the seeded tiny model, and (`*_real_*`, skipped with a
//! printed reason when the weights are absent) the real tiny.en and base conversions,
//! down to a greedy transcription of `beckett.wav` by the candle reference.
//!
//! Real weights are looked for in `models/ct2/whisper-{tiny.en,base}` (models/setup.sh): a
//! CTranslate2 directory with `model.bin`, `config.json` and `vocabulary.txt`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hearken_export::Error;
use hearken_export::ct2::{self, Ct2Model, DType, VarRef};
use hearken_export::whisper::import;
use hearken_export::whisper::{
    Reference, WhisperCheckpoint, load_ct2_dir, load_dir, load_hf_dir, save_ct2_dir, save_hf_dir,
    tiny_random,
};

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A small but complete `model.bin` of `version`.
fn synthetic(version: u32) -> Vec<u8> {
    let w = f32_bytes(&[0.5, -1.5, 2.0, 4.0]);
    let b: Vec<u8> = [1.0f32, -0.25]
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let heads = 4i16.to_le_bytes();
    let flag = [1u8];
    let vars = [
        VarRef {
            name: "decoder/embeddings/weight",
            shape: &[2, 2],
            dtype: DType::F32,
            bytes: &w,
        },
        VarRef {
            name: "decoder/layer_norm/beta",
            shape: &[2],
            dtype: DType::BF16,
            bytes: &b,
        },
        VarRef {
            name: "decoder/num_heads",
            shape: &[],
            dtype: DType::I16,
            bytes: &heads,
        },
        VarRef {
            name: "decoder/pre_norm",
            shape: &[],
            dtype: DType::I8,
            bytes: &flag,
        },
    ];
    ct2::write_model(
        version,
        "WhisperSpec",
        3,
        &vars,
        &[("decoder/projection/weight", "decoder/embeddings/weight")],
    )
    .unwrap()
}

#[test]
fn ct2_reader_reads_v5_and_v6_files() {
    let dir = tempfile::tempdir().unwrap();
    for version in [5, 6] {
        let path = dir.path().join(format!("v{version}.bin"));
        std::fs::write(&path, synthetic(version)).unwrap();
        let m = Ct2Model::open(&path).unwrap();
        assert_eq!(m.binary_version(), version);
        assert_eq!(m.spec_name(), "WhisperSpec");
        assert_eq!(m.variables().count(), 4);
        assert_eq!(m.aliases().len(), 1);
        let proj = m.require("decoder/projection/weight").unwrap();
        assert_eq!(proj.name, "decoder/embeddings/weight");
        assert_eq!(proj.to_f32(), vec![0.5, -1.5, 2.0, 4.0]);
        assert_eq!(
            m.to_f32("decoder/layer_norm/beta").unwrap(),
            (vec![2], vec![1.0, -0.25])
        );
        assert_eq!(m.require("decoder/num_heads").unwrap().to_i64().unwrap(), 4);
        assert_eq!(m.require("decoder/pre_norm").unwrap().to_i64().unwrap(), 1);
    }
}

#[test]
fn ct2_reader_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let bytes = synthetic(6);
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let err = Ct2Model::open(&path).unwrap_err();
    assert!(matches!(err, Error::Ct2Truncated { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("model.bin") && msg.contains("truncated"),
        "{msg}"
    );

    let mut bad = bytes.clone();
    bad[..4].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    let err = Ct2Model::open(&path).unwrap_err();
    assert!(matches!(
        err,
        Error::Ct2UnsupportedVersion { version: 9, .. }
    ));

    let missing = dir.path().join("absent.bin");
    assert!(matches!(Ct2Model::open(&missing), Err(Error::Io { .. })));

    // Truncations at every length are errors, never panics.
    for len in 0..bytes.len() {
        assert!(Ct2Model::from_bytes(bytes[..len].to_vec()).is_err());
    }
}

fn assert_same(a: &WhisperCheckpoint, b: &WhisperCheckpoint, tolerance: f32) {
    assert_eq!(a.dims, b.dims);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &a.tensors {
        let u = &b.tensors[name];
        assert_eq!(t.dims(), u.dims(), "{name}");
        let diff = (t - u)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff <= tolerance, "{name}: differs by {diff}");
    }
}

#[test]
fn hf_round_trip_is_exact() {
    for (multilingual, n_mels) in [(true, 80), (false, 128)] {
        let ckpt = tiny_random(11, n_mels, multilingual);
        let dir = tempfile::tempdir().unwrap();
        save_hf_dir(&ckpt, dir.path()).unwrap();
        let back = load_hf_dir(dir.path()).unwrap();
        assert_same(&ckpt, &back, 0.0);
        assert_same(&ckpt, &load_dir(dir.path()).unwrap(), 0.0);
    }
}

#[test]
fn hf_sharded_round_trip_is_exact() {
    // `save_pretrained` past `max_shard_size`: the weights split over two files, found
    // through `model.safetensors.index.json`.
    let ckpt = tiny_random(17, 80, true);
    let dir = tempfile::tempdir().unwrap();
    save_hf_dir(&ckpt, dir.path()).unwrap();
    let single = dir.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&single, &candle_core::Device::Cpu).unwrap();
    std::fs::remove_file(&single).unwrap();
    let (encoder, decoder): (HashMap<_, _>, HashMap<_, _>) = tensors
        .into_iter()
        .partition(|(name, _)| name.starts_with("model.encoder."));
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &encoder),
        ("model-00002-of-00002.safetensors", &decoder),
    ] {
        assert!(!part.is_empty());
        candle_core::safetensors::save(part, dir.path().join(file)).unwrap();
        for name in part.keys() {
            weight_map.insert(name.clone(), file.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert_same(&ckpt, &load_hf_dir(dir.path()).unwrap(), 0.0);
    assert_same(&ckpt, &load_dir(dir.path()).unwrap(), 0.0);
}

#[test]
fn hf_import_without_generation_config_uses_names_and_defaults() {
    let ckpt = tiny_random(12, 80, true);
    let dir = tempfile::tempdir().unwrap();
    save_hf_dir(&ckpt, dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("generation_config.json")).unwrap();
    let back = load_hf_dir(dir.path()).unwrap();
    assert_eq!(back.tokens.sot, ckpt.tokens.sot);
    assert_eq!(back.tokens.no_speech, ckpt.tokens.no_speech);
    assert_eq!(back.tokens.lang_ids, ckpt.tokens.lang_ids);
    // OpenAI's default alignment heads: all heads of the second half of the decoder.
    assert_eq!(
        back.tokens.alignment_heads,
        vec![(1, 0), (1, 1), (1, 2), (1, 3)]
    );
    assert!(back.tokens.suppress_tokens.is_empty());
}

#[test]
fn ct2_round_trip() {
    for multilingual in [true, false] {
        let ckpt = tiny_random(13, 80, multilingual);
        let dir = tempfile::tempdir().unwrap();
        save_ct2_dir(&ckpt, dir.path(), DType::F32).unwrap();
        assert_same(&ckpt, &load_ct2_dir(dir.path()).unwrap(), 0.0);
        assert_same(&ckpt, &load_dir(dir.path()).unwrap(), 0.0);

        // f16 weights: equal to f16 rounding (values here stay below 4).
        let dir = tempfile::tempdir().unwrap();
        save_ct2_dir(&ckpt, dir.path(), DType::F16).unwrap();
        assert_same(
            &ckpt,
            &load_ct2_dir(dir.path()).unwrap(),
            4.0 * 2f32.powi(-11),
        );
    }
}

/// Rewrites `dir/model.bin` with the output projection stored as its own variable
/// (older converters) instead of an alias, scaled by `scale`.
fn store_projection(dir: &Path, scale: f32) {
    let bin = dir.join("model.bin");
    let m = Ct2Model::open(&bin).unwrap();
    let proj: Vec<u8> = m
        .require("decoder/embeddings/weight")
        .unwrap()
        .to_f32()
        .iter()
        .flat_map(|x| (x * scale).to_le_bytes())
        .collect();
    let embed = m.require("decoder/embeddings/weight").unwrap();
    let mut vars: Vec<VarRef<'_>> = m
        .variables()
        .filter(|v| v.name != "decoder/projection/weight")
        .collect();
    vars.push(VarRef {
        name: "decoder/projection/weight",
        shape: embed.shape,
        dtype: DType::F32,
        bytes: &proj,
    });
    let bytes = ct2::write_model(6, "WhisperSpec", 3, &vars, &[]).unwrap();
    std::fs::write(&bin, bytes).unwrap();
}

#[test]
fn ct2_projection_must_be_tied() {
    let ckpt = tiny_random(16, 80, false);
    let dir = tempfile::tempdir().unwrap();
    save_ct2_dir(&ckpt, dir.path(), DType::F32).unwrap();
    store_projection(dir.path(), 1.0);
    assert_same(&ckpt, &load_ct2_dir(dir.path()).unwrap(), 0.0);
    store_projection(dir.path(), 2.0);
    let err = load_ct2_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn import_errors() {
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_dir(empty.path()),
        Err(Error::UnknownLayout { .. })
    ));

    // A CTranslate2 directory whose model.bin was cut short.
    let ckpt = tiny_random(14, 80, true);
    let dir = tempfile::tempdir().unwrap();
    save_ct2_dir(&ckpt, dir.path(), DType::F16).unwrap();
    let bin = dir.path().join("model.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Ct2Truncated { .. }), "{err}");

    // A Hugging Face directory whose config disagrees with the weights.
    let dir = tempfile::tempdir().unwrap();
    save_hf_dir(&ckpt, dir.path()).unwrap();
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"decoder_layers\": 2", "\"decoder_layers\": 1"),
    )
    .unwrap();
    let err = load_hf_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnexpectedTensor { .. }), "{err}");
    std::fs::write(&config, text.replace("\"d_model\": 64", "\"d_model\": 32")).unwrap();
    let err = load_hf_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");

    // Special tokens that no file names.
    let dir = tempfile::tempdir().unwrap();
    save_hf_dir(&ckpt, dir.path()).unwrap();
    for f in ["added_tokens.json", "vocab.json", "generation_config.json"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let err = load_hf_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::SpecialToken { .. }), "{err}");
}

#[test]
fn reference_runs_the_tiny_model_deterministically() {
    let ckpt = tiny_random(15, 80, true);
    let r = Reference::new(&ckpt).unwrap();
    let mel: Vec<f32> = (0..80 * 3000)
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    let t = &ckpt.tokens;
    let prompt = [t.sot, t.lang_ids["en"], t.transcribe, t.no_timestamps];
    let logits = r.logits(&mel, &prompt).unwrap();
    assert_eq!(logits.len(), prompt.len() * ckpt.dims.vocab_size);
    assert!(logits.iter().all(|x| x.is_finite()));
    let a = r.greedy(&mel, &prompt, 8).unwrap();
    let b = r.greedy(&mel, &prompt, 8).unwrap();
    assert_eq!(a, b);
    assert!(a.len() <= 8);
    assert!(a.iter().all(|id| !t.suppress_tokens.contains(id)));
}

// ---------------------------------------------------------------------------------------
// Real weights.

fn real_dir(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [root.join("models/ct2").join(format!("whisper-{name}"))];
    let found = candidates.iter().find(|d| d.join("model.bin").is_file());
    if found.is_none() {
        println!(
            "skipped: no CTranslate2 Whisper {name} in {} (unpack a conversion there)",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    found.cloned()
}

fn beckett_mel(n_mels: usize) -> Option<Vec<f32>> {
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/assets/beckett.wav");
    if !wav.is_file() {
        println!("skipped: {} is absent (run models/setup.sh)", wav.display());
        return None;
    }
    let pcm = hearken::audio::load(&wav).unwrap();
    let mel = hearken::features::LogMel::whisper(n_mels)
        .unwrap()
        .compute_padded(&pcm.samples)
        .unwrap();
    Some(mel.into_vec())
}

/// Token ids -> text through `vocabulary.txt` and GPT-2's byte-level symbols.
fn decode(dir: &Path, ids: &[u32]) -> String {
    let text = std::fs::read_to_string(dir.join("vocabulary.txt")).unwrap();
    let vocab: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .collect();
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut byte_of = HashMap::new();
    let mut shifted = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            shifted += 1;
            255 + shifted
        };
        byte_of.insert(char::from_u32(c).unwrap(), b as u8);
    }
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|&id| vocab[id as usize].chars())
        .filter_map(|c| byte_of.get(&c).copied())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Word-level Levenshtein distance.
fn word_errors(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, wa) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(wa != wb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

const BECKETT: &str = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.";

#[test]
fn ct2_real_tiny_en_import() {
    let Some(dir) = real_dir("tiny.en") else {
        return;
    };
    let m = Ct2Model::open(dir.join("model.bin")).unwrap();
    assert_eq!(m.spec_name(), "WhisperSpec");
    let ckpt = load_ct2_dir(&dir).unwrap();
    let d = &ckpt.dims;
    assert_eq!(
        (
            d.d_model,
            d.encoder_layers,
            d.decoder_layers,
            d.vocab_size,
            d.num_mel_bins
        ),
        (384, 4, 4, 51864, 80)
    );
    assert_eq!(
        (d.encoder_attention_heads, d.decoder_attention_heads),
        (6, 6)
    );
    assert_eq!(
        (d.max_source_positions, d.max_target_positions),
        (1500, 448)
    );
    assert_eq!((d.encoder_ffn_dim, d.decoder_ffn_dim), (1536, 1536));
    let t = &ckpt.tokens;
    assert_eq!(
        (t.sot, t.eot, t.no_timestamps, t.timestamp_begin),
        (50257, 50256, 50362, 50363)
    );
    assert_eq!(
        (t.translate, t.transcribe, t.sot_prev),
        (50357, 50358, 50360)
    );
    assert_eq!((t.sot_lm, t.no_speech), (Some(50359), Some(50361)));
    assert!(t.lang_ids.is_empty(), "English-only: {:?}", t.lang_ids);
    assert_eq!(t.begin_suppress_tokens, vec![220, 50256]);
    assert_eq!(t.alignment_heads.len(), 8);
    import::validate(&ckpt).unwrap();
}

#[test]
fn ct2_real_base_import() {
    let Some(dir) = real_dir("base") else { return };
    let m = Ct2Model::open(dir.join("model.bin")).unwrap();
    assert_eq!(m.binary_version(), 6);
    let start = Instant::now();
    let ckpt = load_ct2_dir(&dir).unwrap();
    println!("imported base in {:.2?}", start.elapsed());
    let d = &ckpt.dims;
    assert_eq!(
        (
            d.d_model,
            d.encoder_layers,
            d.decoder_layers,
            d.vocab_size,
            d.num_mel_bins
        ),
        (512, 6, 6, 51865, 80)
    );
    assert_eq!(
        (d.encoder_attention_heads, d.decoder_attention_heads),
        (8, 8)
    );
    let t = &ckpt.tokens;
    assert_eq!(
        (t.sot, t.eot, t.transcribe, t.translate),
        (50258, 50257, 50359, 50358)
    );
    assert_eq!((t.no_timestamps, t.timestamp_begin), (50363, 50364));
    assert_eq!(
        (t.sot_prev, t.sot_lm, t.no_speech),
        (50361, Some(50360), Some(50362))
    );
    assert_eq!(t.lang_ids.len(), 99);
    assert_eq!(t.lang_ids["en"], 50259);
    assert_eq!(t.lang_ids["zh"], 50260);
    assert_eq!(t.lang_ids["su"], 50357);
    assert_eq!(t.begin_suppress_tokens, vec![220, 50257]);
    assert!(t.suppress_tokens.contains(&50362));
    assert_eq!(t.alignment_heads[0], (3, 1));
    // The CTranslate2 key bias is zero: q, k, v came from one fused matrix.
    let k = &ckpt.tensors["model.encoder.layers.0.self_attn.k_proj.weight"];
    assert_eq!(k.dims(), &[512, 512]);
}

fn greedy_beckett(name: &str, english_only: bool) {
    let Some(dir) = real_dir(name) else { return };
    let ckpt = load_ct2_dir(&dir).unwrap();
    let Some(mel) = beckett_mel(ckpt.dims.num_mel_bins) else {
        return;
    };
    let t = ckpt.tokens.clone();
    let prompt = if english_only {
        vec![t.sot, t.no_timestamps]
    } else {
        vec![t.sot, t.lang_ids["en"], t.transcribe, t.no_timestamps]
    };
    let r = Reference::new(&ckpt).unwrap();
    let start = Instant::now();
    let encoded = r.encode(&mel).unwrap();
    let encode_time = start.elapsed();
    let start = Instant::now();
    let ids = r.greedy_encoded(&encoded, &prompt, 64).unwrap();
    let text = decode(&dir, &ids);
    println!(
        "{name}: encoder {encode_time:.2?}, greedy {:.2?} for {} tokens: {text:?} {ids:?}",
        start.elapsed(),
        ids.len()
    );
    // Whisper base hears "Never tried" for the first words; a wrong import gives garbage.
    let errors = word_errors(&words(&text), &words(BECKETT));
    assert!(errors <= 2, "{errors} word errors in {text:?}");
}

#[test]
fn ct2_real_tiny_en_beckett_greedy() {
    greedy_beckett("tiny.en", true);
}

#[test]
fn ct2_real_base_beckett_greedy() {
    greedy_beckett("base", false);
}
