//! Whisper log-mel extraction ([`LogMel`]) on 10 s and 30 s of audio.
//!
//! Groups `logmel/80` and `logmel/128` (filters), benchmarks `padded/<len>` (Whisper's
//! 30 s encoder window, what `WhisperFeatureExtractor` computes by default) and
//! `unpadded/<len>` (the audio as given). The input is the deterministic noise of
//! [`bench_audio`], which `benches/peers/logmel.py` reproduces bit for bit to time
//! transformers on the same samples.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use hearken::features::LogMel;

/// Seed of [`bench_audio`]; `benches/peers/logmel.py` uses the same.
pub const SEED: u64 = 0x5EED;

/// `n` samples of uniform noise in [-0.25, 0.25) from a 64-bit LCG (Knuth's MMIX
/// constants): sample `i` is `((state_i >> 40) / 2^24 - 0.5) / 2`, exact in `f32`.
pub fn bench_audio(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / 16_777_216.0 - 0.5) * 0.5
        })
        .collect()
}

fn logmel(c: &mut Criterion) {
    for n_mels in [80, 128] {
        let Ok(lm) = LogMel::whisper(n_mels) else {
            eprintln!("logmel/{n_mels}: cannot build the extractor");
            continue;
        };
        let mut group = c.benchmark_group(format!("logmel/{n_mels}"));
        group.measurement_time(Duration::from_secs(4));
        for seconds in [10usize, 30] {
            let audio = bench_audio(seconds * 16_000, SEED);
            group.throughput(Throughput::Elements(audio.len() as u64));
            let len = format!("{seconds}s");
            group.bench_with_input(BenchmarkId::new("padded", &len), &audio, |b, audio| {
                b.iter(|| lm.compute_padded(black_box(audio)))
            });
            group.bench_with_input(BenchmarkId::new("unpadded", &len), &audio, |b, audio| {
                b.iter(|| lm.compute_unpadded(black_box(audio)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, logmel);
