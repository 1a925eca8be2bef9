//! Whisper's ONNX export, end to end on a tiny seeded random checkpoint: the encoder and
//! decoder graphs load in both engines and agree with each other (1e-4) and with the
//! candle reference (1e-3, the parity gate); decoding step by step through the cache
//! gives the logits of one full-sequence call (1e-4), which exercises the cache, the
//! offset, the positional rows and the causal mask; one shared copy of the cross-attention
//! keys and values serves a whole beam; and the metadata is a valid hearken contract.
//!
//! The ONNX Runtime half is skipped with a printed reason when its library is absent on a
//! developer machine, and fails under CI (`CI` set), where the setup script fetches it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use hearken::engine::{EngineKind, Graph, OrtOptions, Tensor, TractOptions};
use hearken::model::contract::{Contract, FeatureSpec, Head, ModelType};
use hearken_export::onnx::pb;
use hearken_export::verify::whisper_logits_diff;
use hearken_export::whisper::onnx::{self as wonnx, N_FRAMES, Precision, WhisperOnnx};
use hearken_export::whisper::{Reference, WhisperCheckpoint, tiny_random};
use prost::Message;

/// ONNX Runtime against tract, and step-by-step against one call.
const ENGINE_TOL: f32 = 1e-4;
/// The exported graphs against candle.
const PARITY_TOL: f32 = 1e-3;

// ---------------------------------------------------------------------------------------
// Fixture: one checkpoint, exported and loaded once for every test

/// An engine's name with the encoder and decoder it loaded.
type Loaded = (&'static str, Arc<dyn Graph>, Arc<dyn Graph>);

struct Fixture {
    ckpt: WhisperCheckpoint,
    onnx: WhisperOnnx,
    /// (engine name, encoder, decoder), tract first.
    engines: Vec<Loaded>,
    /// (n_mels, 3000) row-major.
    mel: Vec<f32>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ckpt = tiny_random(11, 80, true);
        let onnx = wonnx::export(&ckpt, Precision::F32).unwrap();
        let mut kinds = vec![EngineKind::Tract(TractOptions::default())];
        match EngineKind::Ort(OrtOptions::default()).build() {
            Ok(_) => kinds.push(EngineKind::Ort(OrtOptions::default())),
            Err(hearken::Error::OrtLibraryNotFound { .. }) if std::env::var_os("CI").is_none() => {
                eprintln!(
                    "skipping the ONNX Runtime half: library absent (run `bash models/setup.sh` \
                     or set ORT_DYLIB_PATH)"
                );
            }
            Err(e) => panic!("ONNX Runtime engine unavailable: {e}"),
        }
        let engines = kinds
            .iter()
            .map(|kind| {
                let engine = kind.build().unwrap();
                let load = |what: &str, bytes: &[u8]| {
                    engine
                        .load_bytes(bytes)
                        .unwrap_or_else(|e| panic!("{}: loading {what}: {e}", kind.name()))
                };
                (
                    kind.name(),
                    load("encoder", &onnx.encoder),
                    load("decoder", &onnx.decoder),
                )
            })
            .collect();
        let mel = values(80 * N_FRAMES, 5);
        Fixture {
            ckpt,
            onnx,
            engines,
            mel,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Deterministic values in [-1, 1) (a 32-bit LCG), so the tests need no RNG crate.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts same shape and values within `tol`; returns the max |diff|.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> f32 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let d = max_abs_diff(&got.to_f32_vec(), &want.to_f32_vec());
    assert!(d <= tol, "{what}: max |diff| {d} > {tol}");
    d
}

/// Runs the encoder on `batch` copies of the fixture's mel: `[cross_k, cross_v]`.
fn encode(encoder: &dyn Graph, batch: usize) -> [Tensor; 2] {
    let mel = fixture().mel.repeat(batch);
    let mel = Tensor::from_f32([batch, 80, N_FRAMES], mel).unwrap();
    let out = encoder.run(&[("mel", mel)]).unwrap();
    <[Tensor; 2]>::try_from(out).unwrap()
}

/// An empty self-attention cache for `batch` sequences.
fn empty_cache(batch: usize) -> Tensor {
    let d = &fixture().ckpt.dims;
    Tensor::from_f32([d.decoder_layers, batch, 0, d.d_model], vec![]).unwrap()
}

/// One decoder call: `tokens` is `batch` rows of equal length; returns
/// `[logits, new_self_k, new_self_v]`.
fn decode(
    decoder: &dyn Graph,
    tokens: &[Vec<u32>],
    cache: (&Tensor, &Tensor),
    cross: (&Tensor, &Tensor),
) -> [Tensor; 3] {
    let n_past = cache.0.shape()[2];
    let ids: Vec<i64> = tokens.iter().flatten().map(|&t| i64::from(t)).collect();
    let tokens = Tensor::from_i64([tokens.len(), tokens[0].len()], ids).unwrap();
    let out = decoder
        .run(&[
            ("tokens", tokens),
            ("self_k", cache.0.clone()),
            ("self_v", cache.1.clone()),
            ("cross_k", cross.0.clone()),
            ("cross_v", cross.1.clone()),
            ("offset", Tensor::scalar_i64(n_past as i64)),
        ])
        .unwrap();
    <[Tensor; 3]>::try_from(out).unwrap()
}

/// The logits row of sequence `b`, position `i`, from `(batch, n, n_vocab)` logits.
fn row(logits: &Tensor, b: usize, i: usize) -> Vec<f32> {
    let &[_, n, v] = logits.shape() else {
        panic!("logits of shape {:?}", logits.shape())
    };
    logits.to_f32_vec()[(b * n + i) * v..][..v].to_vec()
}

/// A prompt like the runtime's (`sot`, language, task) followed by ordinary tokens.
fn sequence(len: usize, salt: u32) -> Vec<u32> {
    let t = &fixture().ckpt.tokens;
    let mut s = vec![t.sot, t.lang_ids["en"], t.transcribe];
    s.extend((0..len.saturating_sub(3) as u32).map(|i| (i * 37 + salt * 101 + 5) % 256));
    s.truncate(len);
    s
}

fn model(bytes: &[u8]) -> pb::ModelProto {
    pb::ModelProto::decode(bytes).unwrap()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn graphs_have_the_contracted_interface() {
    let f = fixture();
    let io = |g: &pb::GraphProto| {
        let names = |v: &[pb::ValueInfoProto]| v.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        (names(&g.input), names(&g.output))
    };
    for (what, bytes, inputs, outputs, model_type) in [
        (
            "encoder",
            &f.onnx.encoder,
            &["mel"][..],
            &["cross_k", "cross_v"][..],
            ModelType::WhisperEncoder,
        ),
        (
            "decoder",
            &f.onnx.decoder,
            &["tokens", "self_k", "self_v", "cross_k", "cross_v", "offset"][..],
            &["logits", "new_self_k", "new_self_v"][..],
            ModelType::WhisperDecoder,
        ),
    ] {
        let m = model(bytes);
        assert_eq!(m.opset_import[0].version, 17, "{what}: opset");
        let g = m.graph.as_ref().unwrap();
        assert_eq!(
            io(g),
            (
                inputs.iter().map(|s| s.to_string()).collect(),
                outputs.iter().map(|s| s.to_string()).collect()
            )
        );
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &g.node {
            *ops.entry(n.op_type.as_str()).or_default() += 1;
        }
        for control in ["If", "Loop", "Scan"] {
            assert!(!ops.contains_key(control), "{what}: has a {control} node");
        }
        eprintln!(
            "{what}: {} nodes, {} initializers, {} bytes: {ops:?}",
            g.node.len(),
            g.initializer.len(),
            bytes.len()
        );

        let meta: BTreeMap<String, String> = m
            .metadata_props
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let c = Contract::from_metadata(format!("{what}.onnx"), &meta).unwrap();
        assert_eq!(c.model_type, model_type);
        assert_eq!(c.architecture.as_deref(), Some("whisper"));
        assert_eq!(
            c.features,
            FeatureSpec::LogMel {
                sample_rate_hz: 16_000,
                n_mels: 80,
                n_fft: 400,
                hop_length: 160,
                chunk_length_s: 30,
            }
        );
        let Head::Whisper { params } = &c.head else {
            panic!("{what}: head {:?}", c.head)
        };
        let d = &f.ckpt.dims;
        let t = &f.ckpt.tokens;
        for (key, want) in [
            ("n_mels", d.num_mel_bins),
            ("n_vocab", d.vocab_size),
            ("n_audio_ctx", d.max_source_positions),
            ("n_audio_state", d.d_model),
            ("n_audio_head", d.encoder_attention_heads),
            ("n_audio_layer", d.encoder_layers),
            ("n_text_ctx", d.max_target_positions),
            ("n_text_state", d.d_model),
            ("n_text_head", d.decoder_attention_heads),
            ("n_text_layer", d.decoder_layers),
            ("sot", t.sot as usize),
            ("eot", t.eot as usize),
            ("timestamp_begin", t.timestamp_begin as usize),
        ] {
            assert_eq!(params[key], want, "{what}: hearken.whisper.{key}");
        }
        let tokens: hearken_export::whisper::WhisperTokens =
            serde_json::from_value(params.clone()).unwrap();
        assert_eq!(&tokens, t, "{what}: token fields round-trip");
        // The engines read the same metadata back.
        for (engine, encoder, decoder) in &f.engines {
            let g = if what == "encoder" { encoder } else { decoder };
            assert_eq!(g.metadata(), &meta, "{engine} {what} metadata");
        }
    }
}

#[test]
fn ort_and_tract_agree() {
    let f = fixture();
    let [(_, enc_a, dec_a), (name_b, enc_b, dec_b)] = &f.engines[..] else {
        eprintln!("only one engine available: nothing to compare");
        return;
    };
    let cross_a = encode(enc_a.as_ref(), 1);
    let cross_b = encode(enc_b.as_ref(), 1);
    assert_eq!(cross_a[0].shape(), &[2, 1, 1500, 64]);
    let dk = assert_close(
        &format!("cross_k tract vs {name_b}"),
        &cross_a[0],
        &cross_b[0],
        ENGINE_TOL,
    );
    let dv = assert_close(
        &format!("cross_v tract vs {name_b}"),
        &cross_a[1],
        &cross_b[1],
        ENGINE_TOL,
    );

    let tokens = vec![sequence(6, 1), sequence(6, 2)];
    let cross_a2 = encode(enc_a.as_ref(), 2);
    let empty = empty_cache(2);
    let out_a = decode(
        dec_a.as_ref(),
        &tokens,
        (&empty, &empty),
        (&cross_a2[0], &cross_a2[1]),
    );
    let out_b = decode(
        dec_b.as_ref(),
        &tokens,
        (&empty, &empty),
        (&cross_a2[0], &cross_a2[1]),
    );
    assert_eq!(out_a[0].shape(), &[2, 6, f.ckpt.dims.vocab_size]);
    assert_eq!(out_a[1].shape(), &[2, 2, 6, 64]);
    let mut dl = 0.0f32;
    for (i, what) in ["logits", "new_self_k", "new_self_v"].iter().enumerate() {
        let d = assert_close(
            &format!("{what} tract vs {name_b}"),
            &out_a[i],
            &out_b[i],
            ENGINE_TOL,
        );
        dl = dl.max(d);
    }
    eprintln!("tract vs {name_b}: cross_k {dk:e}, cross_v {dv:e}, decoder outputs {dl:e}");
}

#[test]
fn step_by_step_decoding_matches_one_call() {
    let f = fixture();
    let n_prompt = 3;
    let n_steps = 5;
    // Two sequences that differ, so a mix-up between batch rows shows.
    let full: Vec<Vec<u32>> = (0..2)
        .map(|s| sequence(n_prompt + n_steps, s + 3))
        .collect();
    for (engine, encoder, decoder) in &f.engines {
        let [ck, cv] = encode(encoder.as_ref(), 2);
        let empty = empty_cache(2);
        let [want, want_k, want_v] = decode(decoder.as_ref(), &full, (&empty, &empty), (&ck, &cv));

        let prompt: Vec<Vec<u32>> = full.iter().map(|s| s[..n_prompt].to_vec()).collect();
        let [logits, mut k, mut v] =
            decode(decoder.as_ref(), &prompt, (&empty, &empty), (&ck, &cv));
        let mut worst = 0.0f32;
        for b in 0..2 {
            for i in 0..n_prompt {
                worst = worst.max(max_abs_diff(&row(&logits, b, i), &row(&want, b, i)));
            }
        }
        for step in 0..n_steps {
            let pos = n_prompt + step;
            let next: Vec<Vec<u32>> = full.iter().map(|s| vec![s[pos]]).collect();
            let [logits, k2, v2] = decode(decoder.as_ref(), &next, (&k, &v), (&ck, &cv));
            assert_eq!(
                k2.shape(),
                &[2, 2, pos + 1, 64],
                "{engine}: cache grows by one"
            );
            for b in 0..2 {
                let d = max_abs_diff(&row(&logits, b, 0), &row(&want, b, pos));
                assert!(
                    d <= ENGINE_TOL,
                    "{engine}: step {step}, sequence {b}: max |diff| {d}"
                );
                worst = worst.max(d);
            }
            (k, v) = (k2, v2);
        }
        assert_close(&format!("{engine}: final self_k"), &k, &want_k, ENGINE_TOL);
        assert_close(&format!("{engine}: final self_v"), &v, &want_v, ENGINE_TOL);
        eprintln!("{engine}: step-by-step vs one call: max |diff| {worst:e}");
    }
}

#[test]
fn shared_cross_kv_serves_a_beam() {
    let f = fixture();
    let beam = 3;
    for (engine, encoder, decoder) in &f.engines {
        let [ck1, cv1] = encode(encoder.as_ref(), 1);
        let [ck3, cv3] = encode(encoder.as_ref(), beam);
        // A prompt shared by the beam, then one different token per hypothesis.
        let prompt: Vec<Vec<u32>> = vec![sequence(4, 0); beam];
        let empty = empty_cache(beam);
        let shared = decode(decoder.as_ref(), &prompt, (&empty, &empty), (&ck1, &cv1));
        let repeated = decode(decoder.as_ref(), &prompt, (&empty, &empty), (&ck3, &cv3));
        let mut worst = 0.0f32;
        for (i, what) in ["logits", "new_self_k", "new_self_v"].iter().enumerate() {
            let d = assert_close(
                &format!("{engine}: prompt {what}"),
                &shared[i],
                &repeated[i],
                ENGINE_TOL,
            );
            worst = worst.max(d);
        }
        let next: Vec<Vec<u32>> = (0..beam as u32).map(|b| vec![40 + b]).collect();
        let step_shared = decode(
            decoder.as_ref(),
            &next,
            (&shared[1], &shared[2]),
            (&ck1, &cv1),
        );
        let step_repeated = decode(
            decoder.as_ref(),
            &next,
            (&repeated[1], &repeated[2]),
            (&ck3, &cv3),
        );
        assert_eq!(step_shared[0].shape(), &[beam, 1, f.ckpt.dims.vocab_size]);
        for (i, what) in ["logits", "new_self_k", "new_self_v"].iter().enumerate() {
            let d = assert_close(
                &format!("{engine}: step {what}"),
                &step_shared[i],
                &step_repeated[i],
                ENGINE_TOL,
            );
            worst = worst.max(d);
        }
        eprintln!("{engine}: cross_batch 1 vs {beam}: max |diff| {worst:e}");
    }
}

/// Item `i` of a `(n_layer, batch, ...)` cache or cross tensor, as `(n_layer, 1, ...)`.
fn item(t: &Tensor, i: usize) -> Tensor {
    let s = t.shape();
    let per_layer: usize = s[1..].iter().product();
    let per_item = per_layer / s[1];
    let v = t.to_f32_vec();
    let data = (0..s[0])
        .flat_map(|l| v[l * per_layer + i * per_item..][..per_item].to_vec())
        .collect();
    let mut shape = s.to_vec();
    shape[1] = 1;
    Tensor::from_f32(shape, data).unwrap()
}

#[test]
fn each_sequence_reads_its_own_window() {
    let f = fixture();
    // Two different windows decoded side by side (cross_batch = batch = 2) must give what
    // each gives alone: sequence i attends to window i only.
    let mut mel = f.mel.clone();
    mel.extend(values(80 * N_FRAMES, 6));
    let mel = Tensor::from_f32([2, 80, N_FRAMES], mel).unwrap();
    let tokens: Vec<Vec<u32>> = (0..2).map(|s| sequence(4, s + 20)).collect();
    for (engine, encoder, decoder) in &f.engines {
        let [ck, cv] =
            <[Tensor; 2]>::try_from(encoder.run(&[("mel", mel.clone())]).unwrap()).unwrap();
        let empty = empty_cache(2);
        let both = decode(decoder.as_ref(), &tokens, (&empty, &empty), (&ck, &cv));
        let next: Vec<Vec<u32>> = vec![vec![65], vec![66]];
        let both_step = decode(decoder.as_ref(), &next, (&both[1], &both[2]), (&ck, &cv));
        let mut worst = 0.0f32;
        for i in 0..2 {
            let (cki, cvi) = (item(&ck, i), item(&cv, i));
            let empty = empty_cache(1);
            let alone = decode(
                decoder.as_ref(),
                &tokens[i..=i],
                (&empty, &empty),
                (&cki, &cvi),
            );
            let alone_step = decode(
                decoder.as_ref(),
                &next[i..=i],
                (&alone[1], &alone[2]),
                (&cki, &cvi),
            );
            for pos in 0..4 {
                worst = worst.max(max_abs_diff(
                    &row(&both[0], i, pos),
                    &row(&alone[0], 0, pos),
                ));
            }
            worst = worst.max(max_abs_diff(
                &row(&both_step[0], i, 0),
                &row(&alone_step[0], 0, 0),
            ));
            assert_close(
                &format!("{engine}: cache of sequence {i}"),
                &item(&both_step[1], i),
                &alone_step[1],
                ENGINE_TOL,
            );
        }
        assert!(
            worst <= ENGINE_TOL,
            "{engine}: batched windows vs alone: max |diff| {worst}"
        );
        // The windows differ, so mixing them up would show.
        let d = max_abs_diff(&row(&both[0], 0, 3), &row(&both[0], 1, 3));
        assert!(d > 1e-2, "{engine}: the two sequences gave the same logits");
        eprintln!("{engine}: per-sequence windows vs alone: max |diff| {worst:e}");
    }
}

#[test]
fn logits_match_the_candle_reference() {
    let f = fixture();
    let tokens = sequence(7, 9);
    // The gate as the convert command runs it (tract).
    let tract = EngineKind::Tract(TractOptions::default()).build().unwrap();
    let d = whisper_logits_diff(tract.as_ref(), &f.ckpt, &f.onnx, &f.mel, &tokens).unwrap();
    assert!(d <= PARITY_TOL, "parity: max |diff| {d} > {PARITY_TOL}");
    eprintln!("parity (tract vs candle): max |diff| {d:e}");

    let want = Reference::new(&f.ckpt)
        .unwrap()
        .logits(&f.mel, &tokens)
        .unwrap();
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for (engine, encoder, decoder) in &f.engines {
        let [ck, cv] = encode(encoder.as_ref(), 1);
        let empty = empty_cache(1);
        let [logits, _, _] = decode(
            decoder.as_ref(),
            std::slice::from_ref(&tokens),
            (&empty, &empty),
            (&ck, &cv),
        );
        let d = max_abs_diff(&logits.to_f32_vec(), &want);
        assert!(
            d <= PARITY_TOL,
            "{engine} vs candle: max |diff| {d} > {PARITY_TOL}"
        );
        eprintln!("{engine} vs candle: max |diff| {d:e} (max |logit| {scale})");
    }

    // A wrong-sized mel is an error, not a panic.
    let e = whisper_logits_diff(tract.as_ref(), &f.ckpt, &f.onnx, &f.mel[..80], &tokens);
    assert!(
        matches!(e, Err(hearken_export::Error::InvalidInput { .. })),
        "{e:?}"
    );
}

#[test]
fn f16_weights_halve_the_file_and_keep_the_logits() {
    let f = fixture();
    let half = wonnx::export(&f.ckpt, Precision::F16).unwrap();
    for (what, h, full) in [
        ("encoder", &half.encoder, &f.onnx.encoder),
        ("decoder", &half.decoder, &f.onnx.decoder),
    ] {
        let ratio = h.len() as f64 / full.len() as f64;
        eprintln!("f16 {what}: {} bytes, {ratio:.2} of f32", h.len());
        for t in &model(h).graph.unwrap().initializer {
            if t.dims.len() >= 2 {
                assert_ne!(t.data_type, 1, "{what}: matrix `{}` stored in f32", t.name);
            }
        }
    }
    let tokens = sequence(7, 9);
    let want = Reference::new(&f.ckpt)
        .unwrap()
        .logits(&f.mel, &tokens)
        .unwrap();
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for kind in [
        EngineKind::Tract(TractOptions::default()),
        EngineKind::Ort(OrtOptions::default()),
    ]
    .iter()
    .take(f.engines.len())
    {
        let engine = kind.build().unwrap();
        let encoder = engine.load_bytes(&half.encoder).unwrap();
        let decoder = engine.load_bytes(&half.decoder).unwrap();
        let [ck, cv] = encode(encoder.as_ref(), 1);
        let empty = empty_cache(1);
        let [logits, _, _] = decode(
            decoder.as_ref(),
            std::slice::from_ref(&tokens),
            (&empty, &empty),
            (&ck, &cv),
        );
        let d = max_abs_diff(&logits.to_f32_vec(), &want);
        eprintln!(
            "f16 {} vs candle f32: max |diff| {d:e} (max |logit| {scale})",
            kind.name()
        );
        assert!(d <= 2e-3 * scale, "f16 {}: max |diff| {d}", kind.name());
    }
}

#[test]
fn bad_checkpoints_are_errors() {
    let mut ckpt = fixture().ckpt.clone();
    ckpt.tensors.remove("model.decoder.layers.1.fc2.bias");
    let e = wonnx::export(&ckpt, Precision::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.decoder.layers.1.fc2.bias"), "{e}");

    let mut ckpt = fixture().ckpt.clone();
    ckpt.dims.max_source_positions = 750;
    assert!(wonnx::export(&ckpt, Precision::F32).is_err());
}

#[test]
fn write_dir_writes_both_graphs() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    wonnx::write_dir(&f.ckpt, &out, Precision::F32).unwrap();
    assert_eq!(
        std::fs::read(out.join("encoder.onnx")).unwrap(),
        f.onnx.encoder
    );
    assert_eq!(
        std::fs::read(out.join("decoder.onnx")).unwrap(),
        f.onnx.decoder
    );
    // And the runtime's loader accepts them with their contract.
    let engine = EngineKind::Tract(TractOptions::default()).build().unwrap();
    let (_, c) = hearken::model::load(engine.as_ref(), &out.join("decoder.onnx")).unwrap();
    assert_eq!(c.model_type, ModelType::WhisperDecoder);
}

// ---------------------------------------------------------------------------------------
// CLI

/// Runs `hearken-export convert` on `src` into `out` with `extra` flags; returns
/// (success, stderr).
fn convert(src: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hearken-export"))
        .arg("convert")
        .arg(src)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cli_converts_whisper_with_the_parity_gate_on_synthetic_audio() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hf");
    hearken_export::whisper::save_hf_dir(&fixture().ckpt, &src).unwrap();
    let out = dir.path().join("model");
    // No --parity-audio: the gate runs on the synthetic signal, nothing read from disk.
    let (ok, stderr) = convert(&src, &out, &[]);
    assert!(ok, "convert failed:\n{stderr}");
    let parity = stderr
        .lines()
        .find(|l| l.starts_with("parity"))
        .unwrap_or_else(|| panic!("no parity line in:\n{stderr}"));
    assert!(parity.contains("max |candle - tract| = "), "{parity}");
    assert!(parity.contains("tolerance 1e-3"), "{parity}");
    assert_eq!(
        std::fs::read(out.join("encoder.onnx")).unwrap(),
        fixture().onnx.encoder
    );
    assert!(out.join("decoder.onnx").is_file());

    // An impossible tolerance fails the gate, and nothing is written.
    let refused = dir.path().join("refused");
    let (ok, stderr) = convert(&src, &refused, &["--parity-tolerance", "1e-12"]);
    assert!(!ok, "a 1e-12 tolerance passed:\n{stderr}");
    assert!(stderr.contains("parity gate failed"), "{stderr}");
    assert!(!refused.exists(), "nothing is written after a failed gate");
}

#[test]
fn cli_whisper_int8_needs_a_wer_manifest_or_no_wer_gate() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hf");
    hearken_export::whisper::save_hf_dir(&fixture().ckpt, &src).unwrap();
    let out = dir.path().join("model");
    let int8 = ["--precision", "int8"];

    let (ok, stderr) = convert(&src, &out, &int8);
    assert!(!ok, "int8 without a WER manifest passed:\n{stderr}");
    assert!(
        stderr.contains("--wer-manifest") && stderr.contains("--no-wer-gate"),
        "{stderr}"
    );
    assert!(!out.exists());

    // A manifest whose audio is all missing is refused too, before any export.
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, "{\"audio\": \"absent.wav\", \"text\": \"hi\"}\n").unwrap();
    let (ok, stderr) = convert(
        &src,
        &out,
        &[&int8[..], &["--wer-manifest", manifest.to_str().unwrap()]].concat(),
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("no utterance with its audio present"),
        "{stderr}"
    );
    assert!(!stderr.contains("exported"), "{stderr}");

    let (ok, stderr) = convert(&src, &out, &[&int8[..], &["--no-wer-gate"]].concat());
    assert!(ok, "int8 --no-wer-gate failed:\n{stderr}");
    assert!(stderr.contains("int8 parity (tract)"), "{stderr}");
    assert!(
        stderr.contains("WER change of int8 against fp32 was NOT measured"),
        "{stderr}"
    );
    assert!(out.join("decoder.onnx").is_file());

    // The two are exclusive.
    let (ok, stderr) = convert(
        &src,
        &dir.path().join("both"),
        &[
            &int8[..],
            &[
                "--no-wer-gate",
                "--wer-manifest",
                manifest.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(!ok, "{stderr}");
}
