//! The `hearken` command line: thin wiring over the library.
//!
//! Every failure prints one `error: ...` line on stderr and exits non-zero; nothing here
//! panics on user input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Speech models on devices: features, engines, transcription.
#[derive(Parser)]
#[command(name = "hearken", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the inference engines, the ONNX Runtime library and its execution providers.
    Engines(cli::engines::Args),
    /// Show a model's inputs, outputs, shapes and metadata.
    Inspect(cli::inspect::Args),
    /// Compute features of an audio file and save them as .npy.
    Features(cli::features::Args),
    /// Find speech in an audio file with a Silero VAD model.
    Vad(cli::vad::Args),
    /// Transcribe audio files with a Whisper (or translate) or CTC (Wav2Vec2 / HuBERT)
    /// model directory.
    Transcribe(cli::transcribe::Args),
    /// Classify audio files (emotion, speaker traits, ...) with an audio-classification
    /// model, over sliding windows for long audio.
    Classify(cli::classify::Args),
    /// Word and character error rates of a Whisper model over a JSONL manifest.
    Eval(cli::eval::Args),
    /// Latency, real-time factor and peak memory per engine, execution provider and input.
    Bench(cli::bench::Args),
    /// Live transcription or classification from a microphone, or a file read as one.
    Listen(cli::listen::Args),
    /// List the audio input devices (`listen --mic`).
    Devices(cli::devices::Args),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Engines(a) => cli::engines::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Features(a) => cli::features::run(a),
        Command::Vad(a) => cli::vad::run(a),
        Command::Transcribe(a) => cli::transcribe::run(a),
        Command::Classify(a) => cli::classify::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Listen(a) => cli::listen::run(a),
        Command::Devices(a) => cli::devices::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output is gone (`hearken … | head`): it has what it wanted.
        Err(e) if e.downcast_ref::<cli::out::StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined by ": ".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
