//! A long silent stream keeps memory flat. In a test binary of its own: RSS is a
//! process-wide figure, and other tests running beside it in one process would move it.

mod common;

use std::path::Path;

use hearken::model::open_with;
use hearken::offline::whisper::Language;
use hearken::stream::{Event, Pacing, Recognizer, StreamOptions, Vad, VadChoice};

/// VmRSS of this process, MiB.
fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Four simulated minutes of hiss with short clicks: no text, and memory flat after the
/// first minute (buffers are bounded, nothing accumulates per frame).
#[test]
fn real_whisper_long_silent_stream_keeps_memory_flat() {
    let Some(dir) = common::model_dir("whisper-tiny.en", "decoder.onnx") else {
        return;
    };
    let engine = common::ort().unwrap_or_else(common::tract);
    let model = open_with(&dir, engine.as_ref()).unwrap();
    let vad = Vad::load(
        &VadChoice::Silero(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/silero-vad/silero_vad.onnx"),
        ),
        &Default::default(),
    )
    .unwrap();
    let mut opts = StreamOptions {
        pacing: Pacing::AsFastAsPossible { max_queue_s: 2.0 },
        ..StreamOptions::default()
    };
    opts.transcribe.whisper.language = Language::Code("en".into());
    let rec = Recognizer::new(model, vad, opts).unwrap();
    let mut session = rec.session().unwrap();
    let mut state = 11u64;
    let mut minute = |click: bool| -> Vec<f32> {
        (0..16_000 * 60)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let n = ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0;
                let c = if click && i % 16_000 < 16 { 0.5 } else { 0.0 };
                0.003 * n + c
            })
            .collect()
    };
    let mut rss = Vec::new();
    for m in 0..4 {
        let audio = minute(m % 2 == 1);
        for piece in audio.chunks(1600) {
            session.push_audio(piece, 16_000).unwrap();
        }
        session.flush().unwrap();
        rss.push(rss_mb());
    }
    let events: Vec<Event> = session.events().map(|e| e.event).collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Partial { .. } | Event::Final { .. })),
        "{events:?}"
    );
    eprintln!("RSS after each minute: {rss:?} MiB");
    assert!(rss[3] - rss[1] < 8.0, "memory grew: {rss:?} MiB");
}
