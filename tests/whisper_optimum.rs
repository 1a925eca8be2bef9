//! Hugging Face optimum Whisper exports, run as they are.
//!
//! The fixture (`tests/fixtures/optimum/`, written by `gen_optimum.py` there) is a tiny
//! random Whisper exported by optimum with its split decoders and its merged one, and the
//! token ids that transformers' `generate` decodes greedily from a 3 s speech clip. Every
//! layout must give exactly those ids: ONNX Runtime with the split decoders, with the
//! merged one alone and with `decoder_model.onnx` alone (no cache), tract with the split
//! decoders; tract with the merged decoder only (an `If` node) must be a clear error. The
//! reference's chosen logit leads the next allowed one by at least `min_gap` (≈ 0.1) at
//! every step, so float differences between feature extractors and engines cannot flip a
//! token.
//!
//! The ONNX Runtime tests skip when its library is absent outside CI (`common::ort`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hearken::decode::WhisperStep;
use hearken::decode::whisper::{DecodeOptions, Fallback, Search, SpecialTokens, decode};
use hearken::engine::Engine;
use hearken::features::MelPadding;
use hearken::model::whisper::{AudioContext, WhisperModel};
use hearken::model::{Model, open_with};
use hearken::offline::whisper::{Language, WhisperOptions as TranscribeOptions, transcribe};
use hearken::text::WhisperTokenizer;

/// Opens `dir` as a Whisper model through the one entry point.
fn open_whisper(engine: &dyn Engine, dir: &Path) -> hearken::Result<Model> {
    let m = open_with(dir, engine)?;
    assert!(
        m.as_whisper().is_some(),
        "{} is a Whisper model",
        dir.display()
    );
    Ok(m)
}
use serde::Deserialize;

/// `expected.json`.
#[derive(Deserialize)]
struct Expected {
    audio: String,
    prompt: Vec<u32>,
    max_new_tokens: usize,
    tokens: Vec<u32>,
    ended: bool,
    first_top_logits: Vec<(u32, f32)>,
}

const SPLIT: &[&str] = &["decoder_model.onnx", "decoder_with_past_model.onnx"];
const MERGED: &[&str] = &["decoder_model_merged.onnx"];

fn model_dir() -> PathBuf {
    common::fixture("optimum/whisper-tiny-random")
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(common::fixture("optimum/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn audio(e: &Expected) -> Vec<f32> {
    hearken::audio::load(common::fixture(&e.audio))
        .unwrap()
        .samples
}

/// A copy of the fixture without the files in `drop`.
fn copy_without(drop: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !drop.contains(&name.as_str()) {
            std::fs::copy(&path, tmp.path().join(&name)).unwrap();
        }
    }
    tmp
}

struct Loaded {
    opened: Model,
    tokenizer: WhisperTokenizer,
    special: SpecialTokens,
    audio: AudioContext,
}

fn load(engine: &dyn Engine, dir: &Path, layout: &str) -> Loaded {
    let e = expected();
    let opened = open_whisper(engine, dir).unwrap();
    let model = opened.as_whisper().unwrap();
    assert_eq!(model.layout(), layout, "{}", engine.name());
    let tokenizer = WhisperTokenizer::from_dir(dir).unwrap();
    let special = tokenizer.special_tokens().unwrap();
    let mel = model.log_mel().compute_padded(&audio(&e)).unwrap();
    let audio = model.encode(&mel).unwrap();
    Loaded {
        opened,
        tokenizer,
        special,
        audio,
    }
}

impl Loaded {
    fn model(&self) -> &WhisperModel {
        self.opened.as_whisper().unwrap()
    }
}

/// The reference's decoding options: no timestamps, the model's suppression lists.
fn options(l: &Loaded, search: Search, max_tokens: usize) -> DecodeOptions {
    DecodeOptions {
        timestamps: false,
        search,
        max_tokens,
        n_text_ctx: l.model().params().n_text_ctx,
        suppress_tokens: l.model().params().suppress_tokens.clone(),
        blank_tokens: l.tokenizer.blank_tokens().unwrap(),
        ..DecodeOptions::default()
    }
}

/// Greedy decoding gives transformers' tokens, and the first sampled position's logits
/// are transformers' within the feature extractors' difference.
fn check_greedy(engine: &dyn Engine, dir: &Path, layout: &str) {
    let e = expected();
    let l = load(engine, dir, layout);
    let mut state = l.model().decoder(&l.audio);
    let opts = options(&l, Search::Greedy, e.max_new_tokens);
    let text = |t: &[u32]| l.tokenizer.decode(t, true);
    let r = decode(&mut state, &l.special, &opts, &text).unwrap();
    assert_eq!(r.tokens, e.tokens, "{} {layout}", engine.name());
    assert_eq!(r.tokens.len() < e.max_new_tokens, e.ended);

    state.reset().unwrap();
    let logits = state.step(&e.prompt, 1).unwrap();
    for &(id, want) in &e.first_top_logits {
        let got = logits[id as usize];
        assert!(
            (got - want).abs() < 1e-4,
            "{} {layout}: logit {id} is {got}, transformers {want}",
            engine.name()
        );
    }
}

#[test]
fn ort_split_decoders_match_transformers() {
    let Some(ort) = common::ort() else { return };
    check_greedy(ort.as_ref(), &model_dir(), "optimum-split");
}

#[test]
fn ort_merged_decoder_matches_transformers() {
    let Some(ort) = common::ort() else { return };
    let dir = copy_without(SPLIT);
    check_greedy(ort.as_ref(), dir.path(), "optimum-merged");
}

#[test]
fn ort_decoder_without_past_matches_transformers() {
    let Some(ort) = common::ort() else { return };
    let dir = copy_without(&["decoder_with_past_model.onnx", MERGED[0]]);
    check_greedy(ort.as_ref(), dir.path(), "optimum-no-cache");
}

#[test]
fn tract_split_decoders_match_transformers() {
    check_greedy(common::tract().as_ref(), &model_dir(), "optimum-split");
}

/// tract cannot run `If`: a directory with only the merged decoder is refused at load,
/// naming the way out; so is `decoder_model.onnx` alone, whose causal mask tract
/// miscomputes.
#[test]
fn tract_without_split_decoders_is_a_clear_error() {
    let tract = common::tract();
    let dir = copy_without(SPLIT);
    let err = open_whisper(tract.as_ref(), dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("decoder_model_merged.onnx")
            && err.contains("`If`")
            && err.contains("--engine ort")
            && err.contains("decoder_with_past_model.onnx"),
        "{err}"
    );
    let dir = copy_without(&["decoder_with_past_model.onnx", MERGED[0]]);
    let err = open_whisper(tract.as_ref(), dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("decoder_with_past_model.onnx") && err.contains("--engine ort"),
        "{err}"
    );
}

/// The split decoders are preferred when the merged one is there too.
#[test]
fn split_decoders_are_preferred() {
    let Some(ort) = common::ort() else { return };
    let model = open_whisper(ort.as_ref(), &model_dir()).unwrap();
    assert_eq!(model.as_whisper().unwrap().layout(), "optimum-split");
    let dir = copy_without(&["decoder_with_past_model.onnx"]);
    let model = open_whisper(ort.as_ref(), dir.path()).unwrap();
    assert_eq!(model.as_whisper().unwrap().layout(), "optimum-merged");
}

/// Every layout available on this machine, with its name.
fn layouts() -> Vec<(Arc<dyn Engine>, tempfile::TempDir, &'static str)> {
    let mut out = vec![(common::tract(), copy_without(MERGED), "optimum-split")];
    if let Some(ort) = common::ort() {
        out.push((ort.clone(), copy_without(MERGED), "optimum-split"));
        out.push((ort.clone(), copy_without(SPLIT), "optimum-merged"));
        let no_past = copy_without(&["decoder_with_past_model.onnx", MERGED[0]]);
        out.push((ort, no_past, "optimum-no-cache"));
    }
    out
}

/// A prompt sent in one call, in two, or token by token gives the same logits; so do
/// hypotheses after a reorder that repeats and drops rows.
#[test]
fn steps_and_reorders_agree_with_one_call() {
    let e = expected();
    let tokens: Vec<u32> = e.prompt.iter().chain(&e.tokens[..3]).copied().collect();
    for (engine, dir, layout) in layouts() {
        let l = load(engine.as_ref(), dir.path(), layout);
        let mut state = l.model().decoder(&l.audio);
        let whole = state.step(&tokens, 1).unwrap();
        assert_eq!(state.n_past(), tokens.len());

        state.reset().unwrap();
        state.step(&tokens[..1], 1).unwrap();
        let split = state.step(&tokens[1..], 1).unwrap();

        state.reset().unwrap();
        let mut one_by_one = Vec::new();
        for &t in &tokens {
            one_by_one = state.step(&[t], 1).unwrap();
        }
        let name = format!("{} {layout}", engine.name());
        assert!(common::max_abs_diff(&whole, &split) < 1e-4, "{name}");
        assert!(common::max_abs_diff(&whole, &one_by_one) < 1e-4, "{name}");

        // Three rows from one, then rows 2 and 1 of those, which saw different tokens.
        state.reset().unwrap();
        state.step(&tokens[..tokens.len() - 1], 1).unwrap();
        state.reorder(&[0, 0, 0]).unwrap();
        let last = tokens[tokens.len() - 1];
        let three = state.step(&[last, 7, last], 3).unwrap();
        let n_vocab = l.model().params().n_vocab;
        assert!(
            common::max_abs_diff(&three[..n_vocab], &whole) < 1e-4,
            "{name}"
        );
        assert!(
            common::max_abs_diff(&three[2 * n_vocab..], &whole) < 1e-4,
            "{name}"
        );
        state.reorder(&[2, 1]).unwrap();
        let two = state.step(&[9, 9], 2).unwrap();
        assert!(
            common::max_abs_diff(&two[..n_vocab], &two[n_vocab..]) > 1e-3,
            "{name}: rows continuing different tokens must differ"
        );
        // Row 1 continued old row 1: the prefix, 7, 9; row 0 old row 2: all tokens, 9.
        state.reset().unwrap();
        state.step(&tokens[..tokens.len() - 1], 1).unwrap();
        state.step(&[7], 1).unwrap();
        let direct = state.step(&[9], 1).unwrap();
        assert!(
            common::max_abs_diff(&two[n_vocab..], &direct) < 1e-4,
            "{name}"
        );
        state.reset().unwrap();
        state.step(&tokens, 1).unwrap();
        let direct = state.step(&[9], 1).unwrap();
        assert!(
            common::max_abs_diff(&two[..n_vocab], &direct) < 1e-4,
            "{name}"
        );
    }
}

/// Beam search (reorders every step) runs on every layout and agrees across them.
#[test]
fn beam_search_runs_on_every_layout() {
    let e = expected();
    let mut results = Vec::new();
    for (engine, dir, layout) in layouts() {
        let l = load(engine.as_ref(), dir.path(), layout);
        let mut state = l.model().decoder(&l.audio);
        let search = Search::Beam {
            beam_size: 2,
            patience: 1.0,
        };
        let opts = options(&l, search, e.max_new_tokens);
        let text = |t: &[u32]| l.tokenizer.decode(t, true);
        let r = decode(&mut state, &l.special, &opts, &text).unwrap();
        assert!(!r.tokens.is_empty(), "{} {layout}", engine.name());
        results.push((format!("{} {layout}", engine.name()), r.tokens));
    }
    for (name, tokens) in &results[1..] {
        assert_eq!(tokens, &results[0].1, "{name} vs {}", results[0].0);
    }
}

/// The long-form driver, as the CLI calls it, with the fallback disabled: its greedy
/// decode of the one window starts with the reference tokens.
#[test]
fn transcribe_starts_with_the_reference_tokens() {
    let e = expected();
    let mut engines = vec![common::tract()];
    engines.extend(common::ort());
    for engine in engines {
        let model = open_whisper(engine.as_ref(), &model_dir()).unwrap();
        let opts = TranscribeOptions {
            language: Language::Code("en".into()),
            timestamps: false,
            fallback: Fallback {
                temperatures: vec![0.0],
                no_speech_threshold: None,
                ..Fallback::default()
            },
            // transformers pads the waveform; the reference tokens come from there.
            mel_padding: MelPadding::Waveform,
            ..TranscribeOptions::default()
        };
        let t = transcribe(model.as_whisper().unwrap(), &audio(&e), &opts, &mut |_| {}).unwrap();
        assert_eq!(t.segments.len(), 1, "{}", engine.name());
        let tokens = &t.segments[0].tokens;
        if e.ended {
            assert_eq!(tokens, &e.tokens, "{}", engine.name());
        } else {
            assert_eq!(tokens[..e.tokens.len()], e.tokens, "{}", engine.name());
        }
        assert!(!t.text.is_empty());
    }
}

/// `WhisperParams` come from the Hugging Face files and agree with the tokenizer.
#[test]
fn parameters_come_from_the_hugging_face_files() {
    let tract = common::tract();
    let opened = open_whisper(tract.as_ref(), &model_dir()).unwrap();
    let model = opened.as_whisper().unwrap();
    let p = model.params();
    assert_eq!(
        (p.n_mels, p.n_vocab, p.n_audio_ctx, p.n_text_ctx),
        (80, 1766, 1500, 448)
    );
    assert_eq!(
        (p.n_audio_state, p.n_text_state, p.n_text_layer),
        (16, 16, 2)
    );
    let tokenizer = WhisperTokenizer::from_dir(model_dir()).unwrap();
    let s = tokenizer.special_tokens().unwrap();
    assert_eq!(
        (p.eot, p.sot, p.translate, p.transcribe),
        (s.eot, s.sot, s.translate, s.transcribe)
    );
    assert_eq!(
        (p.sot_lm, p.sot_prev, p.no_speech, p.no_timestamps),
        (s.sot_lm, s.sot_prev, s.no_speech, s.no_timestamps)
    );
    assert_eq!(p.timestamp_begin, s.timestamp_begin);
    assert_eq!(p.n_vocab, s.n_vocab);
    assert!(!p.is_multilingual() && !s.multilingual);
    let generation: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir().join("generation_config.json")).unwrap(),
    )
    .unwrap();
    let list = |key: &str| -> Vec<u32> { serde_json::from_value(generation[key].clone()).unwrap() };
    assert_eq!(p.suppress_tokens, list("suppress_tokens"));
    assert_eq!(p.begin_suppress_tokens, list("begin_suppress_tokens"));
    assert_eq!(model.log_mel().n_mels(), 80);
}

/// Incomplete or foreign directories are refused with what was expected.
#[test]
fn incomplete_directories_are_refused() {
    let tract = common::tract();
    let empty = tempfile::tempdir().unwrap();
    let err = open_whisper(tract.as_ref(), empty.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("encoder.onnx") && err.contains("hearken-export convert"),
        "{err}"
    );
    assert!(
        err.contains("encoder_model.onnx") && err.contains("decoder_with_past_model.onnx"),
        "{err}"
    );

    let no_decoders = copy_without(&[SPLIT[0], SPLIT[1], MERGED[0]]);
    let err = open_whisper(tract.as_ref(), no_decoders.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no decoder") && err.contains("decoder_model.onnx"),
        "{err}"
    );

    let no_config = copy_without(&["config.json"]);
    let err = open_whisper(tract.as_ref(), no_config.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json"), "{err}");

    // Another architecture's config.
    let foreign = copy_without(&[]);
    let config = foreign.path().join("config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"whisper\"", "\"wav2vec2\"");
    std::fs::write(&config, text).unwrap();
    let err = open_whisper(tract.as_ref(), foreign.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wav2vec2"), "{err}");

    // A feature extractor hearken does not compute.
    let odd = copy_without(&[]);
    let pre = odd.path().join("preprocessor_config.json");
    let text = std::fs::read_to_string(&pre)
        .unwrap()
        .replace("\"hop_length\": 160", "\"hop_length\": 320");
    std::fs::write(&pre, text).unwrap();
    let err = open_whisper(tract.as_ref(), odd.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hop_length"), "{err}");
}

/// `hearken transcribe FILE --model DIR` works on the export as it is.
#[test]
fn cli_transcribes_an_optimum_directory() {
    let e = expected();
    let engine = if common::ort().is_some() {
        "ort"
    } else {
        "tract"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .arg("transcribe")
        .arg(common::fixture(&e.audio))
        .arg("--model")
        .arg(model_dir())
        .args(["--language", "en", "--engine", engine])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!out.stdout.is_empty(), "{stderr}");
}
