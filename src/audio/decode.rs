//! Container and codec decoding with symphonia, down to mono `f32` at the native rate.
//!
//! The probe looks at the bytes (the extension is only a hint), the default audio track is
//! decoded packet by packet, and each decoded buffer is averaged across its channels as it
//! arrives, so memory stays at one mono copy of the audio. Damage is handled the way players
//! handle it: a packet the codec rejects is skipped and counted, and a stream that ends in
//! the middle of a packet keeps what was decoded before it; but a file that yields no audio
//! at all is an error, never an empty success.

use std::fs::File;
use std::io::{Cursor, ErrorKind};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::{Pcm, check_sample_rate, check_samples};
use crate::{Error, Result};

/// The path reported in errors for in-memory audio.
const MEMORY_PATH: &str = "<memory>";

/// Decodes an audio file to mono `f32` at the file's own sample rate.
///
/// Reads WAV (8/16/24/32-bit integer PCM, 32/64-bit float, ADPCM, A-law/µ-law), FLAC, MP3
/// and OGG/Vorbis, with any number of channels; channels are averaged. The format is
/// recognised from the content; the extension only speeds up the guess.
///
/// Returns `(n_samples,)` at the native rate. Fails with [`Error::Io`] if the file cannot
/// be read, [`Error::EmptyAudio`] if it holds no samples, [`Error::UnsupportedAudio`] for
/// an unknown container or codec, [`Error::AudioDecode`] for corrupt or truncated data,
/// [`Error::InvalidSampleRate`] for a rate outside 1 Hz ..= 1 MHz and
/// [`Error::NonFiniteSample`] for NaN/∞ in a float file.
pub fn decode_file(path: impl AsRef<Path>) -> Result<Pcm> {
    let path = path.as_ref();
    let _span = tracing::debug_span!("audio.decode", path = %path.display()).entered();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
    if metadata.is_dir() {
        return Err(Error::io(path, ErrorKind::IsADirectory.into()));
    }
    if metadata.len() == 0 {
        return Err(Error::EmptyAudio { path: path.into() });
    }
    let ext = path.extension().and_then(|e| e.to_str());
    decode_source(Box::new(file), ext, path)
}

/// Decodes audio held in memory, like [`decode_file`].
///
/// `ext_hint` is a file extension (`"wav"`, `".mp3"`) used only to speed up format
/// detection; a wrong hint does no harm. Errors name the path `<memory>`.
pub fn decode_bytes(bytes: &[u8], ext_hint: Option<&str>) -> Result<Pcm> {
    let path = Path::new(MEMORY_PATH);
    let _span = tracing::debug_span!("audio.decode", path = MEMORY_PATH).entered();
    if bytes.is_empty() {
        return Err(Error::EmptyAudio { path: path.into() });
    }
    let ext = ext_hint.map(|e| e.trim_start_matches('.'));
    decode_source(Box::new(Cursor::new(bytes)), ext, path)
}

fn decode_source<'s>(
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    path: &Path,
) -> Result<Pcm> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| map_error(path, e))?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| unsupported(path, "the container holds no audio track"))?;
    let track_id = track.id;
    let n_frames_declared = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| unsupported(path, "the audio track has no codec parameters"))?
        .clone();
    let sample_rate_hz = params
        .sample_rate
        .ok_or_else(|| decode_error(path, "the stream does not state its sample rate"))?;
    check_sample_rate(sample_rate_hz)?;

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| codec_error(path, params.codec, e))?;

    let mut samples: Vec<f32> = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut n_bad_packets = 0usize;
    let mut first_bad: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A chained OGG stream starting a new logical stream: speech files are one
            // stream, so the first one is the audio.
            Err(SymphoniaError::ResetRequired) => {
                tracing::warn!(path = %path.display(), "stopped at a chained stream");
                break;
            }
            // Truncated in the middle of a packet: keep what came before it.
            Err(SymphoniaError::IoError(e))
                if e.kind() == ErrorKind::UnexpectedEof && !samples.is_empty() =>
            {
                tracing::warn!(path = %path.display(), "file ends inside a packet; tail dropped");
                break;
            }
            Err(e) => return Err(map_error(path, e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                if buf.frames() == 0 {
                    continue;
                }
                let rate = buf.spec().rate();
                if rate != sample_rate_hz {
                    n_bad_packets += 1;
                    first_bad.get_or_insert_with(|| {
                        format!("sample rate changes from {sample_rate_hz} Hz to {rate} Hz")
                    });
                    continue;
                }
                buf.copy_to_vecs_planar::<f32>(&mut planes);
                downmix_into(&planes, &mut samples);
            }
            // Per symphonia's contract these reject only this packet; decoding goes on.
            Err(e @ (SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))) => {
                n_bad_packets += 1;
                first_bad.get_or_insert_with(|| e.to_string());
            }
            Err(e) => return Err(map_error(path, e)),
        }
    }

    if let Some(reason) = first_bad {
        if samples.is_empty() {
            return Err(decode_error(path, reason));
        }
        tracing::warn!(
            path = %path.display(),
            n_bad_packets,
            first = %reason,
            "skipped undecodable packets"
        );
    }
    if samples.is_empty() {
        return Err(match n_frames_declared {
            Some(n) if n > 0 => decode_error(
                path,
                format!("no complete packet (the header promises {n} frames; truncated file?)"),
            ),
            _ => Error::EmptyAudio { path: path.into() },
        });
    }
    if let Some(n) = n_frames_declared.filter(|&n| n > samples.len() as u64) {
        tracing::warn!(
            path = %path.display(),
            n_declared = n,
            n_decoded = samples.len(),
            "stream is shorter than its header says (truncated?)"
        );
    }
    check_samples(&samples)?;
    tracing::debug!(n_samples = samples.len(), sample_rate_hz, "decoded");
    Ok(Pcm {
        samples,
        sample_rate_hz,
    })
}

/// Appends the mean over `planes` (one `Vec` per channel, equal lengths) to `out`.
fn downmix_into(planes: &[Vec<f32>], out: &mut Vec<f32>) {
    let Some((first, rest)) = planes.split_first() else {
        return;
    };
    let start = out.len();
    out.extend_from_slice(first);
    if rest.is_empty() {
        return;
    }
    let mixed = &mut out[start..];
    for plane in rest {
        for (m, x) in mixed.iter_mut().zip(plane) {
            *m += x;
        }
    }
    let n_channels = planes.len() as f32;
    for m in mixed {
        *m /= n_channels;
    }
}

fn unsupported(path: &Path, what: impl Into<String>) -> Error {
    Error::UnsupportedAudio {
        path: PathBuf::from(path),
        what: what.into(),
    }
}

fn decode_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::AudioDecode {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

/// Maps a symphonia error from probing or demuxing onto ours.
fn map_error(path: &Path, e: SymphoniaError) -> Error {
    match e {
        SymphoniaError::Unsupported(what) => unsupported(
            path,
            format!("not a WAV, FLAC, MP3 or OGG/Vorbis stream this build reads ({what})"),
        ),
        SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            decode_error(path, "unexpected end of data (truncated file?)")
        }
        // Real I/O failures only come from files; in memory every read succeeds.
        SymphoniaError::IoError(e) => Error::io(path, e),
        other => decode_error(path, other.to_string()),
    }
}

fn codec_error(path: &Path, codec: AudioCodecId, e: SymphoniaError) -> Error {
    match e {
        SymphoniaError::Unsupported(what) => {
            unsupported(path, format!("audio codec {codec} ({what})"))
        }
        other => map_error(path, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        let mut out = vec![9.0];
        downmix_into(&[vec![1.0, 0.5], vec![0.0, -0.5]], &mut out);
        assert_eq!(out, [9.0, 0.5, 0.0]);
        downmix_into(&[vec![0.25]], &mut out);
        assert_eq!(out, [9.0, 0.5, 0.0, 0.25]);
        downmix_into(&[], &mut out);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn empty_and_garbage_bytes() {
        assert!(matches!(
            decode_bytes(&[], Some("wav")),
            Err(Error::EmptyAudio { .. })
        ));
        let err = decode_bytes(b"definitely not audio, just some text", None).unwrap_err();
        assert!(matches!(err, Error::UnsupportedAudio { .. }), "{err}");
        assert!(err.to_string().starts_with("<memory>: "), "{err}");
    }
}
