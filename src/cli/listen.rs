//! `hearken listen`: live transcription or classification from a microphone, or from a
//! file read as if it were one (how tests and benchmarks drive it: these machines have no
//! sound card).
//!
//! The command only moves audio and prints: capture (or the file) → `Session::push_audio`
//! → events → `hearken::output`. Latency is measured on the events themselves: each
//! carries the wall-clock time it was emitted at and the audio-clock span it covers, and
//! with audio pushed in real time `wall − end` is what a user waits.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearken::model::Family;
use hearken::output;
use hearken::stream::{
    ClassifyStreamOptions, Emitted, EndpointConfig, Event, Pacing, Recognizer, Session,
    StreamOptions, VadChoice, WhisperStreamOptions,
};

use super::options::{DecodeArgs, EngineArgs};
use super::out;

/// Flags of `hearken listen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (Whisper, CTC or audio classifier).
    #[arg(long, default_value = "models/whisper-base")]
    model: PathBuf,
    /// Capture from a microphone: the default input device, or one whose name contains
    /// this (see `hearken devices`). Needs a build with `--features mic`.
    #[arg(long, num_args = 0..=1, default_missing_value = "", conflicts_with = "input")]
    mic: Option<String>,
    /// Read this audio file as if it were a microphone.
    #[arg(long, required_unless_present = "mic")]
    input: Option<PathBuf>,
    /// With --input: pace the file at real time (as a microphone delivers it); without,
    /// read it as fast as the model keeps up, with identical output on every run.
    #[arg(long)]
    realtime: bool,
    /// With --input: milliseconds of audio per push.
    #[arg(long, default_value_t = 20)]
    chunk_ms: u32,
    /// Output: txt (finals one per line; on a terminal the partial is redrawn in place)
    /// or jsonl (one JSON object per event).
    #[arg(long, default_value = "txt")]
    format: String,
    /// Voice-activity detector: a Silero VAD ONNX file (needs ONNX Runtime), or `energy`.
    #[arg(long, default_value = "models/silero-vad/silero_vad.onnx")]
    vad: String,
    /// Speech probability that starts speech.
    #[arg(long, default_value_t = 0.5)]
    vad_threshold: f32,
    /// Silence that ends speech, milliseconds.
    #[arg(long, default_value_t = 300)]
    min_silence_ms: u32,
    /// Whisper: re-decode the speech buffer after this much new speech, milliseconds.
    #[arg(long, default_value_t = 1000)]
    step_ms: u32,
    /// Whisper: finals only, no partial hypotheses.
    #[arg(long)]
    no_partials: bool,
    /// Whisper: do not decode ahead when a pause begins (real time; saves compute on slow
    /// models, costs final latency).
    #[arg(long)]
    no_speculation: bool,
    /// Classifier: window length, seconds.
    #[arg(long, default_value_t = 2.0)]
    window_s: f32,
    /// Classifier: distance between windows, seconds.
    #[arg(long, default_value_t = 0.5)]
    hop_s: f32,
    /// Classifier: classify only speech (VAD segments).
    #[arg(long)]
    speech_only: bool,
    /// Stop after this many seconds of audio (microphone).
    #[arg(long)]
    duration_s: Option<f64>,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// What the summary is computed from.
#[derive(Default)]
struct Tally {
    finals: usize,
    partials: usize,
    labels: usize,
    /// `wall − end` of each final, seconds.
    final_latency_s: Vec<f64>,
    /// From each speech start (audio clock) to its first partial (wall), seconds.
    first_partial_s: Vec<f64>,
    speech_start: Option<f64>,
    awaiting_partial: bool,
}

impl Tally {
    fn add(&mut self, e: &Emitted) {
        match &e.event {
            Event::SpeechStart { start_s } => {
                self.speech_start = Some(*start_s);
                self.awaiting_partial = true;
            }
            Event::Partial { .. } => {
                self.partials += 1;
                if self.awaiting_partial
                    && let Some(s) = self.speech_start
                {
                    self.first_partial_s.push(e.wall_s - s);
                    self.awaiting_partial = false;
                }
            }
            Event::Final { end_s, .. } => {
                self.finals += 1;
                self.final_latency_s.push(e.wall_s - end_s);
            }
            Event::Label { .. } => self.labels += 1,
            _ => {}
        }
    }
}

/// Percentile of unsorted values (nearest-rank interpolation as `hearken bench`).
fn pct(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(hearken::bench::percentile(&v, p))
}

/// Prints events: JSON lines, or text with the partial redrawn in place on a terminal.
struct Printer {
    jsonl: bool,
    tty: bool,
    partial_shown: bool,
}

impl Printer {
    fn print(&mut self, e: &Emitted) -> Result<()> {
        if self.jsonl {
            return out::print(&output::event_line(e));
        }
        let clear = if self.partial_shown { "\r\x1b[K" } else { "" };
        match &e.event {
            Event::Partial { text, .. } if self.tty => {
                self.partial_shown = true;
                out::print(&format!("\r\x1b[K{text}"))
            }
            Event::Final { text, .. } => {
                self.partial_shown = false;
                out::print(&format!("{clear}{text}\n"))
            }
            Event::Label {
                label,
                score,
                start_s,
                end_s,
            } => {
                self.partial_shown = false;
                out::print(&format!(
                    "{clear}{label} {score:.3} ({start_s:.2}-{end_s:.2} s)\n"
                ))
            }
            _ => Ok(()),
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let jsonl = match args.format.parse::<output::Format>()? {
        output::Format::Txt => false,
        output::Format::Jsonl => true,
        other => bail!("listen prints txt or jsonl, not {other}"),
    };
    let engine = args.engine.options()?;
    let vad = if args.vad == "energy" {
        VadChoice::Energy
    } else {
        VadChoice::Silero(PathBuf::from(&args.vad))
    };
    let realtime = args.realtime || args.mic.is_some();
    let options = StreamOptions {
        transcribe: args.decode.options(true)?,
        whisper: WhisperStreamOptions {
            step_ms: args.step_ms,
            partials: !args.no_partials,
            speculative_finals: !args.no_speculation,
            ..WhisperStreamOptions::default()
        },
        classify: ClassifyStreamOptions {
            window_s: args.window_s,
            hop_s: args.hop_s,
            speech_only: args.speech_only,
            ..ClassifyStreamOptions::default()
        },
        endpoint: EndpointConfig {
            threshold: args.vad_threshold,
            neg_threshold: (args.vad_threshold - 0.15).max(0.0),
            min_silence_ms: args.min_silence_ms,
            ..EndpointConfig::default()
        },
        pacing: if realtime {
            Pacing::RealTime { max_queue_s: 10.0 }
        } else {
            Pacing::AsFastAsPossible { max_queue_s: 5.0 }
        },
        ..StreamOptions::default()
    };
    let recognizer = Recognizer::builder()
        .model_dir(&args.model)
        .engine(engine)
        .vad(vad)
        .options(options)
        .build()?;
    let model = recognizer.model();
    args.decode.check_family(model.family(), &args.model)?;
    eprintln!(
        "listen: {} ({} model on {}), {}",
        args.model.display(),
        model.family().name(),
        model.engine_name(),
        recognizer.vad().describe()
    );
    if model.family() == Family::Whisper && !recognizer.vad().is_silero() {
        eprintln!("listen: note: the energy VAD is a fallback; Silero VAD is more robust to noise");
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // A second Ctrl-C while flushing ends the process the usual way.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let mut session = recognizer.session()?;
    let mut printer = Printer {
        jsonl,
        tty: std::io::stdout().is_terminal(),
        partial_shown: false,
    };
    let mut tally = Tally::default();
    let drain = |session: &Session, printer: &mut Printer, tally: &mut Tally| -> Result<()> {
        for e in session.events() {
            tally.add(&e);
            printer.print(&e)?;
        }
        Ok(())
    };
    let t0 = Instant::now();
    match (&args.input, &args.mic) {
        (Some(file), _) => {
            let pcm = hearken::audio::decode_file(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let chunk = ((u64::from(pcm.sample_rate_hz) * u64::from(args.chunk_ms.max(1))) / 1000)
                .max(1) as usize;
            for (i, piece) in pcm.samples.chunks(chunk).enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if args.realtime {
                    // Chunk i is complete at (i + 1) chunks of audio time.
                    let due = Duration::from_secs_f64(
                        ((i + 1) * chunk) as f64 / f64::from(pcm.sample_rate_hz),
                    );
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                session.push_audio(piece, pcm.sample_rate_hz)?;
                drain(&session, &mut printer, &mut tally)?;
            }
        }
        (None, Some(device)) => capture(&args, device, &stop, &mut session, &mut |s| {
            drain(s, &mut printer, &mut tally)
        })?,
        (None, None) => bail!("give --mic or --input"),
    }
    session.flush()?;
    drain(&session, &mut printer, &mut tally)?;
    if printer.partial_shown {
        out::print("\n")?;
    }
    summary(&session, &tally, t0.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(feature = "mic")]
fn capture(
    args: &Args,
    device: &str,
    stop: &AtomicBool,
    session: &mut Session,
    drain: &mut dyn FnMut(&Session) -> Result<()>,
) -> Result<()> {
    use hearken::audio::capture::{Capture, CaptureOptions};
    let cap = Capture::start(&CaptureOptions {
        device: (!device.is_empty()).then(|| device.to_string()),
        ..CaptureOptions::default()
    })?;
    eprintln!(
        "listen: capturing from `{}` at {} Hz, {} channel(s); Ctrl-C ends",
        cap.device_name(),
        cap.sample_rate_hz(),
        cap.channels()
    );
    let mut captured_s = 0.0;
    while !stop.load(Ordering::SeqCst) {
        if let Some(chunk) = cap.recv_timeout(Duration::from_millis(100))? {
            captured_s += chunk.len() as f64 / f64::from(cap.sample_rate_hz());
            session.push_audio(&chunk, cap.sample_rate_hz())?;
        }
        drain(session)?;
        if args.duration_s.is_some_and(|d| captured_s >= d) {
            break;
        }
    }
    let dropped = cap.dropped_samples();
    if dropped > 0 {
        eprintln!(
            "listen: the capture queue dropped {:.2} s of audio (compute fell behind)",
            dropped as f64 / f64::from(cap.sample_rate_hz())
        );
    }
    Ok(())
}

#[cfg(not(feature = "mic"))]
fn capture(
    _: &Args,
    _: &str,
    _: &AtomicBool,
    _: &mut Session,
    _: &mut dyn FnMut(&Session) -> Result<()>,
) -> Result<()> {
    bail!(
        "microphone capture is not in this build: rebuild with `--features mic` (needs \
         Debian's libasound2-dev), or read a file with --input"
    )
}

fn summary(session: &Session, t: &Tally, elapsed_s: f64) {
    let s = session.stats();
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0} ms", v * 1e3));
    eprintln!(
        "listen: {} final(s), {} partial(s){}; final latency (wall − end) p50 {}, p95 {}; \
         first partial after speech start p50 {}; {:.1} s of audio in {:.1} s, compute RTF \
         {:.3}; lag max {:.2} s; partials skipped {}; dropped {:.2} s",
        t.finals,
        t.partials,
        if t.labels > 0 {
            format!(", {} label(s)", t.labels)
        } else {
            String::new()
        },
        ms(pct(&t.final_latency_s, 50.0)),
        ms(pct(&t.final_latency_s, 95.0)),
        ms(pct(&t.first_partial_s, 50.0)),
        s.audio_in_s,
        elapsed_s,
        s.real_time_factor,
        s.max_lag_s,
        s.partials_skipped,
        s.dropped_s,
    );
}
