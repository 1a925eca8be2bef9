//! `hearken features`: dump model inputs for diffing against the Python references.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use hearken::engine::Tensor;
use hearken::features::{LogMel, zero_mean_unit_var};

/// Flags of `hearken features`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Audio file (WAV, FLAC, MP3, OGG/Vorbis), resampled to 16 kHz mono.
    audio: PathBuf,
    /// Output .npy file.
    #[arg(long)]
    out: PathBuf,
    /// Mel bins of the log-mel spectrogram (80: Whisper up to large-v2; 128: large-v3).
    #[arg(long, default_value_t = 80, value_parser = parse_n_mels)]
    n_mels: usize,
    /// Write the Wav2Vec2/HuBERT normalized waveform `(n_samples,)` instead of log-mel.
    #[arg(long)]
    normalize_waveform: bool,
}

pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    let pcm = hearken::audio::load(&args.audio)?;
    let tensor = if args.normalize_waveform {
        let mut x = pcm.samples.clone();
        zero_mean_unit_var(&mut x)?;
        Tensor::from_f32([x.len()], x)?
    } else {
        LogMel::whisper(args.n_mels)?
            .compute_padded(&pcm.samples)?
            .into_tensor()?
    };
    hearken::npy::write(&args.out, &tensor)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "{}: {:.2} s of audio -> {:?} float32 in {:.1} ms -> {}",
        args.audio.display(),
        pcm.samples.len() as f64 / 16_000.0,
        tensor.shape(),
        t0.elapsed().as_secs_f64() * 1e3,
        args.out.display()
    );
    Ok(())
}

fn parse_n_mels(s: &str) -> Result<usize, String> {
    match s {
        "80" => Ok(80),
        "128" => Ok(128),
        _ => Err(format!("`{s}` is not a Whisper mel size (80 or 128)")),
    }
}
