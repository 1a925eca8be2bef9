//! hearken's criterion benchmarks: one module per pipeline stage.
//!
//! Group names start with the stage (and, for graph runs, the engine and provider), and
//! every benchmark declares `Throughput::Elements(n_samples)` of 16 kHz audio, so
//! criterion's elements/s divided by 16 000 is the real-time factor. Add a stage by
//! adding a module with a `benches` group and listing it in `criterion_main!`.
//!
//! Run: `cargo bench --bench bench_main` (all) or `cargo bench --bench bench_main -- logmel`.
//! `benches/peers/` holds the same measurements for reference implementations.

mod ctc;
mod engine;
mod logmel;
mod resample;
mod whisper_step;

criterion::criterion_main!(
    logmel::benches,
    ctc::benches,
    resample::benches,
    engine::benches,
    whisper_step::benches
);
