//! Resampling 10 s of audio from 44.1 kHz and 48 kHz to Whisper's 16 kHz with
//! [`hearken::audio::resample`] (offline) and [`StreamResampler`] fed 20 ms chunks.
//!
//! Groups `resample/44100-16000` and `resample/48000-16000`, benchmarks `offline/10s`
//! (one call, filter tables built inside, as a file load pays) and `stream_20ms/10s` (one
//! resampler reused across iterations, 500 pushes of 20 ms then `finish`, as a live
//! capture pays once its stream is set up). Unlike the other stages, throughput here is
//! `Elements(n_input_samples)`: criterion's elements/s are *input* samples per second, so
//! divide by the input rate (44 100 or 48 000) for the real-time factor. The input is two
//! sines ([`tones`]): a windowed-sinc resampler's cost does not depend on the signal.
//!
//! Each file of `benches/` is also compiled as a bench target of its own (Cargo's
//! auto-discovery), so this one shares no code with its siblings through `crate::`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use hearken::audio::{Pcm, StreamResampler, resample};

/// Whisper's (and most speech models') input rate.
const TO_HZ: u32 = 16_000;
/// Seconds of audio per iteration.
const SECONDS: usize = 10;
/// Chunk length of the streaming benchmark: a typical capture callback period.
const CHUNK_MS: usize = 20;

/// `n` samples at `rate_hz` of a 440 Hz and a 3 kHz sine, amplitudes 0.3 and 0.1.
pub fn tones(n: usize, rate_hz: u32) -> Vec<f32> {
    let w = 2.0 * std::f64::consts::PI / f64::from(rate_hz);
    (0..n)
        .map(|i| {
            let t = i as f64 * w;
            (0.3 * (440.0 * t).sin() + 0.1 * (3000.0 * t).sin()) as f32
        })
        .collect()
}

fn resample_benches(c: &mut Criterion) {
    for from_hz in [44_100u32, 48_000] {
        let samples = tones(SECONDS * from_hz as usize, from_hz);
        let pcm = Pcm::new(samples, from_hz).expect("bench audio is finite");
        let len = format!("{SECONDS}s");
        let mut group = c.benchmark_group(format!("resample/{from_hz}-{TO_HZ}"));
        group.measurement_time(Duration::from_secs(4));
        // Input samples, not 16 kHz output samples: see the module doc.
        group.throughput(Throughput::Elements(pcm.samples.len() as u64));
        group.bench_with_input(BenchmarkId::new("offline", &len), &pcm, |b, pcm| {
            b.iter(|| resample(black_box(pcm), TO_HZ).expect("resample"))
        });

        let chunk = from_hz as usize * CHUNK_MS / 1000;
        let mut stream = StreamResampler::new(from_hz, TO_HZ).expect("valid rates");
        group.bench_with_input(
            BenchmarkId::new(format!("stream_{CHUNK_MS}ms"), &len),
            &pcm.samples,
            |b, samples| {
                b.iter(|| {
                    let mut n_out = 0;
                    for c in samples.chunks(chunk) {
                        n_out += stream.push(black_box(c)).expect("push").len();
                    }
                    // `finish` also resets the stream for the next iteration.
                    n_out + stream.finish().expect("finish").len()
                })
            },
        );
        group.finish();
    }
}

criterion_group!(benches, resample_benches);
