//! `hearken vad`: speech segments of an audio file with Silero VAD.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use hearken::features::LogMel;
use hearken::model::vad::{SileroVad, WINDOW_SAMPLES};
use hearken::stream::endpoint::{EndpointConfig, frame_rms, segments};

use hearken::engine::EngineChoice;

use super::options::EngineArgs;

/// Flags of `hearken vad`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Audio file (WAV, FLAC, MP3, OGG/Vorbis).
    audio: PathBuf,
    /// Silero VAD v5+ ONNX model (models/setup.sh installs one here).
    #[arg(long, default_value = "models/silero-vad/silero_vad.onnx")]
    model: PathBuf,
    /// Speech probability threshold (speech ends below it minus 0.15).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Silence that ends a segment, milliseconds.
    #[arg(long, default_value_t = 100)]
    min_silence_ms: u32,
    /// Shortest segment kept, milliseconds.
    #[arg(long, default_value_t = 250)]
    min_speech_ms: u32,
    /// Audio kept before each segment's first speech frame, milliseconds.
    #[arg(long, default_value_t = 0)]
    pre_roll_ms: u32,
    /// Engine flags. The default engine here is ONNX Runtime: Silero's graph selects its
    /// 8/16 kHz branch with data-dependent `If` nodes that tract 0.23 cannot type.
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: Args) -> Result<()> {
    let mut o = String::new();
    let t0 = Instant::now();
    let pcm = hearken::audio::load(&args.audio)?;
    let t_audio = t0.elapsed();
    let duration_s = pcm.samples.len() as f64 / 16_000.0;

    // The log-mel a Whisper model would see, to show the feature front-end on real audio.
    let t1 = Instant::now();
    let mel = LogMel::whisper(80)?.compute_padded(&pcm.samples)?;
    let t_mel = t1.elapsed();

    let engine = args.engine.options_preferring(EngineChoice::Ort)?.build()?;
    let t2 = Instant::now();
    let vad = SileroVad::load(engine.as_ref(), &args.model)?;
    let t_load = t2.elapsed();
    let t3 = Instant::now();
    let probs = vad.probabilities(&pcm.samples)?;
    let t_run = t3.elapsed();

    // The endpointer `hearken listen` uses, over the whole file.
    let rms: Vec<f32> = pcm.samples.chunks(WINDOW_SAMPLES).map(frame_rms).collect();
    let config = EndpointConfig {
        threshold: args.threshold,
        neg_threshold: (args.threshold - 0.15).max(0.0),
        min_silence_ms: args.min_silence_ms,
        min_speech_ms: args.min_speech_ms,
        pre_roll_ms: args.pre_roll_ms,
        ..EndpointConfig::default()
    };
    let segs = segments(&probs, &rms, &config, WINDOW_SAMPLES, 16_000)?;
    outln!(
        o,
        "{}: {duration_s:.2} s, 16 kHz mono",
        args.audio.display()
    );
    outln!(
        o,
        "log-mel {}x{} in {:.1} ms; VAD on {} ({}) over {} windows in {:.1} ms (RTF {:.4})",
        mel.n_mels(),
        mel.n_frames(),
        t_mel.as_secs_f64() * 1e3,
        engine.name(),
        args.model.display(),
        probs.len(),
        t_run.as_secs_f64() * 1e3,
        t_run.as_secs_f64() / duration_s.max(1e-9)
    );
    eprintln!(
        "(decode {:.1} ms, model load {:.1} ms)",
        t_audio.as_secs_f64() * 1e3,
        t_load.as_secs_f64() * 1e3
    );
    if segs.is_empty() {
        outln!(o, "no speech found");
    }
    let to_s = |frame: u64| (frame * WINDOW_SAMPLES as u64) as f64 / 16_000.0;
    for &(a, b) in &segs {
        outln!(
            o,
            "speech {:7.2} s - {:7.2} s",
            to_s(a),
            to_s(b).min(duration_s)
        );
    }
    super::out::print(&o)
}
