//! Whisper's two graph calls with `models/whisper-tiny.en`: one decoder step and one
//! encoder window, on ONNX Runtime (CPU provider, default options) and tract.
//!
//! Groups `whisper_step/ort-cpu` and `whisper_step/tract`, benchmarks
//! `tiny.en/decoder_1tok_past10` (one new token appended to a self-attention cache of 10
//! past tokens: the cost of each generated token early in a window, through
//! [`WhisperStep::step`], the call the search algorithms make) and `tiny.en/encoder_30s`
//! (log-mel of a 30 s window plus the encoder, once per window; `Elements(480 000)` so
//! elements/s ÷ 16 000 is its real-time factor). The decoder step declares no throughput:
//! its time is per token. Skipped with a line on stderr when the model is absent (run
//! `bash models/setup.sh`), and the ONNX Runtime half when its library is.
//!
//! The decoder step is timed with `iter_custom`: each iteration resets the cache, prefills
//! the 10-token prompt (untimed), then times the one-token step, so every timed step sees
//! the same cache length. The audio is a 440 Hz tone: neither graph's cost depends on the
//! signal.
//!
//! Each file of `benches/` is also compiled as a bench target of its own (Cargo's
//! auto-discovery), so this one repeats the engine list of `engine.rs` rather than
//! reaching it through `crate::`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use hearken::decode::WhisperStep;
use hearken::engine::{Engine, EngineKind, OrtOptions, TractOptions};
use hearken::text::WhisperTokenizer;

/// Samples in Whisper's 30 s window at 16 kHz.
const WINDOW_SAMPLES: usize = 480_000;
/// Tokens in the cache before the timed step.
const N_PAST: usize = 10;

/// ONNX Runtime (CPU, default options) and tract, with their group suffixes; ONNX
/// Runtime is left out, with a line on stderr, when it cannot be built here.
fn engines() -> Vec<(&'static str, Arc<dyn Engine>)> {
    let mut out = Vec::new();
    match EngineKind::Ort(OrtOptions::default()).build() {
        Ok(e) => out.push(("ort-cpu", e)),
        Err(e) => eprintln!("whisper_step/ort-cpu: skipped, ONNX Runtime unavailable: {e}"),
    }
    let tract = EngineKind::Tract(TractOptions::default())
        .build()
        .expect("tract is compiled in");
    out.push(("tract", tract));
    out
}

fn whisper_step(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/whisper-tiny.en");
    if !dir.join("encoder.onnx").is_file() || !dir.join("decoder.onnx").is_file() {
        eprintln!(
            "whisper_step: skipped, {} is absent (run `bash models/setup.sh`)",
            dir.display()
        );
        return;
    }
    let tokenizer = WhisperTokenizer::from_dir(&dir).expect("tiny.en tokenizer");
    let w = 2.0 * std::f32::consts::PI * 440.0 / 16_000.0;
    let audio: Vec<f32> = (0..WINDOW_SAMPLES)
        .map(|i| 0.3 * (w * (i % 16_000) as f32).sin())
        .collect();

    for (suffix, engine) in engines() {
        let opened = hearken::model::open_with(&dir, engine.as_ref())
            .unwrap_or_else(|e| panic!("{suffix}: loading {}: {e}", dir.display()));
        let model = opened.as_whisper().expect("a Whisper model");
        let p = model.params();
        // `<|startoftranscript|> <|notimestamps|>` and the start of the Beckett quote:
        // the prompt of an English-only model, then ordinary text tokens.
        let mut tokens = vec![p.sot, p.no_timestamps];
        tokens.extend(
            tokenizer
                .encode(" Ever tried. Ever failed. No matter. Try again. Fail again.")
                .expect("encode"),
        );
        assert!(tokens.len() > N_PAST, "the bench text is long enough");
        let (prompt, next) = (&tokens[..N_PAST], tokens[N_PAST]);

        let mel = model.log_mel().compute_padded(&audio).expect("log-mel");
        let ctx = model.encode(&mel).expect("encode");

        let mut group = c.benchmark_group(format!("whisper_step/{suffix}"));
        group.measurement_time(Duration::from_secs(5));

        let mut state = model.decoder(&ctx);
        group.bench_function(format!("tiny.en/decoder_1tok_past{N_PAST}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    state.reset().expect("reset");
                    state.step(prompt, 1).expect("prefill");
                    let t = Instant::now();
                    std::hint::black_box(state.step(&[next], 1).expect("step"));
                    timed += t.elapsed();
                }
                timed
            })
        });

        // 0.1 to 1 s per window: ten samples are enough and keep the run short.
        group.sample_size(10);
        group.throughput(Throughput::Elements(WINDOW_SAMPLES as u64));
        group.bench_function("tiny.en/encoder_30s", |b| {
            b.iter(|| {
                let mel = model.log_mel().compute_padded(&audio).expect("log-mel");
                model.encode(&mel).expect("encode")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, whisper_step);
