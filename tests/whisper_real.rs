//! Real Whisper models on real and synthesized speech, on both engines.
//!
//! The models are the project's exports of OpenAI Whisper tiny.en and base
//! (`models/setup.sh` fetches and converts them). Without them these tests print why and
//! skip; under CI (`CI` set) the setup has run, so a missing model fails instead.
//!
//! Word error rates are measured after Whisper's English normalizer, and the thresholds
//! were set from measured values with a margin (see each test).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearken::decode::whisper::Search;
use hearken::engine::Engine;
use hearken::model::{Model, open_with};
use hearken::offline::whisper::{Language, WhisperOptions as TranscribeOptions, transcribe};
use hearken::result::Transcript;
use hearken::text::{EnglishTextNormalizer, wer};

const BECKETT: &str = "Ever tried ever failed, no matter try again, fail again, fail better.";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Whisper model directory, or `None` when absent outside CI.
fn model_dir(name: &str) -> Option<PathBuf> {
    common::model_dir(name, "decoder.onnx")
}

fn engines() -> Vec<Arc<dyn Engine>> {
    let mut out = vec![common::tract()];
    out.extend(common::ort());
    out
}

fn run(engine: &dyn Engine, dir: &Path, audio: &[f32], opts: &TranscribeOptions) -> Transcript {
    let model: Model = open_with(dir, engine).unwrap();
    transcribe(model.as_whisper().unwrap(), audio, opts, &mut |_| {}).unwrap()
}

fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let n = EnglishTextNormalizer;
    let (errors, n_ref) = wer(&n.normalize(reference), &n.normalize(hypothesis));
    errors as f64 / n_ref as f64
}

fn beckett() -> Vec<f32> {
    hearken::audio::load(root().join("models/assets/beckett.wav"))
        .unwrap()
        .samples
}

/// One clip of real or synthesized speech with its reference text and, per model, the
/// highest word error rate a correct implementation stays under.
struct Clip {
    name: &'static str,
    audio: Vec<f32>,
    reference: String,
    max_wer: [(&'static str, f64); 2],
}

fn clips() -> Vec<Clip> {
    vec![
        // Measured (ort and tract agree): tiny.en 0/12 words wrong, greedy and beam 5;
        // base 1/12 ("Never tried" for "Ever tried", the model's own error, also made by
        // the candle reference), greedy and beam 5.
        Clip {
            name: "beckett.wav",
            audio: beckett(),
            reference: BECKETT.into(),
            max_wer: [("whisper-tiny.en", 0.09), ("whisper-base", 0.17)],
        },
        // 14.5 s of Piper TTS (tests/fixtures/speech/make_piper.sh). Measured, both engines
        // and both searches alike: tiny.en 2/55 ("greenhouse" for "green house"), base
        // 4/55 (also "water report", "meet plenty").
        Clip {
            name: "piper.ogg",
            audio: hearken::audio::load(common::fixture("speech/piper.ogg"))
                .unwrap()
                .samples,
            reference: std::fs::read_to_string(common::fixture("speech/piper.txt")).unwrap(),
            max_wer: [("whisper-tiny.en", 0.08), ("whisper-base", 0.12)],
        },
    ]
}

#[test]
fn real_whisper_speech_both_engines_greedy_and_beam() {
    for clip in clips() {
        for (name, max_wer) in clip.max_wer {
            let Some(dir) = model_dir(name) else { return };
            for engine in engines() {
                for search in [
                    Search::Greedy,
                    Search::Beam {
                        beam_size: 5,
                        patience: 1.0,
                    },
                ] {
                    let opts = TranscribeOptions {
                        search,
                        language: Language::Code("en".into()),
                        ..TranscribeOptions::default()
                    };
                    let t = run(engine.as_ref(), &dir, &clip.audio, &opts);
                    let w = word_error_rate(&clip.reference, &t.text);
                    eprintln!(
                        "{} {name} {} {search:?}: WER {w:.3}: {}",
                        clip.name,
                        engine.name(),
                        t.text
                    );
                    assert!(
                        w <= max_wer,
                        "{} with {name} on {} with {search:?}: WER {w:.3} > {max_wer}: {}",
                        clip.name,
                        engine.name(),
                        t.text
                    );
                    assert_eq!(
                        t.language.as_deref(),
                        if name.ends_with(".en") {
                            None
                        } else {
                            Some("en")
                        }
                    );
                }
            }
        }
    }
}

/// Language detection on the multilingual model finds English.
#[test]
fn real_whisper_base_detects_english() {
    let Some(dir) = model_dir("whisper-base") else {
        return;
    };
    let t = run(
        common::tract().as_ref(),
        &dir,
        &beckett(),
        &TranscribeOptions::default(),
    );
    assert_eq!(t.language.as_deref(), Some("en"));
}

/// 73 s of espeak-ng speech (tests/fixtures/speech): three windows, timestamps
/// monotonic, nothing repeated, every sentence found. Measured WER: tiny.en 0.15 (the
/// robotic voice, e.g. "Franceville" for "France built").
#[test]
fn real_whisper_longform_is_monotonic_without_repeats() {
    let Some(dir) = model_dir("whisper-tiny.en") else {
        return;
    };
    let audio = hearken::audio::load(common::fixture("speech/longform.ogg"))
        .unwrap()
        .samples;
    let reference = std::fs::read_to_string(common::fixture("speech/longform.txt")).unwrap();
    for engine in engines() {
        let t = run(engine.as_ref(), &dir, &audio, &TranscribeOptions::default());
        assert!(t.segments.len() >= 6, "{} segments", t.segments.len());
        let mut last_end = 0.0;
        for s in &t.segments {
            assert!(
                s.start_s >= last_end - 1e-6 && s.end_s > s.start_s,
                "non-monotonic segment {s:?}"
            );
            last_end = s.end_s;
        }
        assert!(
            last_end > 60.0,
            "transcript stops at {last_end} s of 72.7 s"
        );
        for pair in t.segments.windows(2) {
            assert_ne!(pair[0].text.trim(), pair[1].text.trim(), "repeated segment");
        }
        let w = word_error_rate(&reference, &t.text);
        eprintln!(
            "long-form {}: WER {w:.3}, {} segments, RTF {:.3}",
            engine.name(),
            t.segments.len(),
            t.timing.real_time_factor
        );
        assert!(w <= 0.30, "{}: WER {w:.3}: {}", engine.name(), t.text);
    }
}

/// Silence and white noise: no hallucinated text. Digital silence is caught before the
/// model (`TranscribeOptions::silence_peak`); white noise by the model's own no-speech
/// rule. (Known gap: faint hiss around -70 dBFS still yields " you" from base.)
#[test]
fn real_whisper_silence_and_noise_give_no_text() {
    let Some(dir) = model_dir("whisper-base") else {
        return;
    };
    let silence = vec![0.0f32; 16_000 * 10];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<f32> = (0..16_000 * 10)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect();
    let engine = common::tract();
    for (what, audio) in [("silence", &silence), ("noise", &noise)] {
        let opts = TranscribeOptions {
            language: Language::Code("en".into()),
            ..TranscribeOptions::default()
        };
        let t = run(engine.as_ref(), &dir, audio, &opts);
        assert!(
            t.text.trim().is_empty(),
            "{what} produced text: {:?}",
            t.text
        );
    }
}

/// A directory that is incomplete or mixes exports is refused with a clear error.
#[test]
fn real_whisper_incomplete_or_inconsistent_directory_is_refused() {
    let Some(dir) = model_dir("whisper-tiny.en") else {
        return;
    };
    let engine = common::tract();
    let tmp = tempfile::tempdir().unwrap();
    let err = open_with(tmp.path(), engine.as_ref())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("encoder.onnx") && err.contains("hearken-export convert"),
        "{err}"
    );

    // An encoder where the decoder should be.
    std::fs::copy(dir.join("encoder.onnx"), tmp.path().join("encoder.onnx")).unwrap();
    std::fs::copy(dir.join("encoder.onnx"), tmp.path().join("decoder.onnx")).unwrap();
    let err = open_with(tmp.path(), engine.as_ref())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("expected a whisper-decoder graph"), "{err}");

    // Encoder and decoder of different models.
    if let Some(base) = model_dir("whisper-base") {
        std::fs::copy(base.join("decoder.onnx"), tmp.path().join("decoder.onnx")).unwrap();
        let err = open_with(tmp.path(), engine.as_ref())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("different exports"), "{err}");
    }
}

/// `hearken eval` reads a manifest, transcribes every line and reports corpus WER.
#[test]
fn real_whisper_eval_reports_corpus_wer() {
    let Some(dir) = model_dir("whisper-tiny.en") else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args(["eval", "--model", dir.to_str().unwrap(), "--manifest"])
        .arg(common::fixture("speech/manifest.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap();
    assert!(summary.starts_with("3 utterances"), "{summary}");
    let wer: f64 = summary
        .split("WER ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Measured 12.1% over 3 utterances (tiny.en on the robotic long-form voice dominates).
    assert!(wer < 30.0, "{summary}");
}
