//! Integration tests for `hearken::audio`: decoding every supported container, downmixing,
//! resampling accuracy, streaming = offline, and errors (never panics) on bad input.
//!
//! WAV cases are written on the fly with hound (or by hand, for headers hound refuses to
//! write); FLAC, MP3 and OGG/Vorbis come from `tests/fixtures/audio/`, made by `make.sh`
//! there.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use hearken::Error;
use hearken::audio::{
    self, Pcm, SAMPLE_RATE_HZ, StreamResampler, check_samples, decode_bytes, decode_file, load,
    resample,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

/// Writes interleaved integer samples with hound.
fn write_wav_int(path: &Path, channels: u16, rate: u32, bits: u16, interleaved: &[i32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in interleaved {
        if bits == 8 {
            w.write_sample(s as i8).unwrap();
        } else {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// Writes interleaved f32 samples with hound.
fn write_wav_f32(path: &Path, channels: u16, rate: u32, interleaved: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in interleaved {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// A canonical 44-byte-header WAV, for headers hound will not write (64-bit float, bad
/// rates, unknown codecs).
fn wav_bytes(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate.wrapping_mul(u32::from(block_align))).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

fn pcm16_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn sine(freq_hz: f64, rate: u32, n: usize, amplitude: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amplitude * (2.0 * PI * freq_hz * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Frequency of a steady tone from its rising zero crossings (linearly interpolated),
/// ignoring the first and last 10% where codecs ramp in and out.
fn tone_hz(x: &[f32], rate: u32) -> f64 {
    let (a, b) = (x.len() / 10, x.len() - x.len() / 10);
    let mut first = None;
    let mut last = 0.0;
    let mut n = 0usize;
    for i in a + 1..b {
        let (p, c) = (f64::from(x[i - 1]), f64::from(x[i]));
        if p < 0.0 && c >= 0.0 {
            let t = (i - 1) as f64 + (-p) / (c - p);
            first.get_or_insert(t);
            last = t;
            n += 1;
        }
    }
    let first = first.expect("no zero crossings");
    (n - 1) as f64 * f64::from(rate) / (last - first)
}

/// Asserts a one-line error message that names `name`.
fn assert_names(err: &Error, name: &str) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg:?}");
    assert!(msg.contains(name), "message does not name {name:?}: {msg}");
}

// ---------------------------------------------------------------------------------------
// WAV decoding
// ---------------------------------------------------------------------------------------

#[test]
fn wav_integer_depths_decode_to_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [8u16, 16, 24, 32] {
        let max = (1i64 << (bits - 1)) - 1;
        let min = -(1i64 << (bits - 1));
        let values: Vec<i32> = [0, 1, -1, max, min, max / 2, min / 2, 12, -77]
            .iter()
            .map(|&v| v as i32)
            .collect();
        let path = dir.path().join(format!("int{bits}.wav"));
        write_wav_int(&path, 1, 16_000, bits, &values);
        let pcm = decode_file(&path).unwrap();
        assert_eq!(pcm.sample_rate_hz, 16_000);
        let scale = (1u64 << (bits - 1)) as f64;
        let expected: Vec<f32> = values
            .iter()
            .map(|&v| (f64::from(v) / scale) as f32)
            .collect();
        assert_eq!(pcm.samples, expected, "{bits}-bit");
        assert_eq!(pcm.samples[4], -1.0, "{bits}-bit full scale");
    }
}

#[test]
fn wav_float32_passes_through() {
    let dir = tempfile::tempdir().unwrap();
    let values = [0.0f32, 0.123, -0.75, 1.0, -1.0, 1e-7, 0.999_999];
    let path = dir.path().join("f32.wav");
    write_wav_f32(&path, 1, 44_100, &values);
    let pcm = decode_file(&path).unwrap();
    assert_eq!(pcm.sample_rate_hz, 44_100);
    assert_eq!(pcm.samples, values);
}

#[test]
fn wav_float64_decodes() {
    let values = [0.5f64, -0.25, 0.1, -1.0];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let pcm = decode_bytes(&wav_bytes(3, 1, 8_000, 64, &data), Some("wav")).unwrap();
    assert_eq!(pcm.sample_rate_hz, 8_000);
    let expected: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    assert_eq!(pcm.samples, expected);
}

#[test]
fn wav_stereo_downmix_is_mean() {
    let dir = tempfile::tempdir().unwrap();
    let left = [1000i32, -32768, 32767, 0, 5];
    let right = [3000i32, 32767, 32767, -2, -5];
    let interleaved: Vec<i32> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let path = dir.path().join("stereo.wav");
    write_wav_int(&path, 2, 22_050, 16, &interleaved);
    let pcm = decode_file(&path).unwrap();
    assert_eq!(pcm.sample_rate_hz, 22_050);
    let expected: Vec<f32> = left
        .iter()
        .zip(&right)
        .map(|(&l, &r)| (l as f32 / 32768.0 + r as f32 / 32768.0) / 2.0)
        .collect();
    assert_eq!(pcm.samples, expected);
}

#[test]
fn wav_five_channels_downmix_is_mean() {
    let dir = tempfile::tempdir().unwrap();
    let n_frames = 100;
    let interleaved: Vec<i32> = (0..n_frames)
        .flat_map(|i| (0..5).map(move |c| (i * 37 + c * 1000) as i32 - 2500))
        .collect();
    for bits in [16u16, 24] {
        let path = dir.path().join(format!("five{bits}.wav"));
        write_wav_int(&path, 5, 48_000, bits, &interleaved);
        let pcm = decode_file(&path).unwrap();
        assert_eq!(pcm.sample_rate_hz, 48_000);
        assert_eq!(pcm.samples.len(), n_frames);
        let scale = (1u64 << (bits - 1)) as f64;
        for (i, frame) in interleaved.chunks(5).enumerate() {
            let mean = frame.iter().map(|&v| f64::from(v) / scale).sum::<f64>() / 5.0;
            assert!(
                (f64::from(pcm.samples[i]) - mean).abs() < 1e-6,
                "frame {i}: {} vs {mean}",
                pcm.samples[i]
            );
        }
    }
}

#[test]
fn wav_stereo_float_downmix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo_f32.wav");
    write_wav_f32(&path, 2, 16_000, &[0.5, 0.25, -1.0, 1.0, 0.75, -0.25]);
    assert_eq!(decode_file(&path).unwrap().samples, [0.375, 0.0, 0.25]);
}

#[test]
fn decode_bytes_matches_decode_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let values: Vec<i32> = (0..500).map(|i| (i * 61) % 20_000 - 10_000).collect();
    write_wav_int(&path, 1, 11_025, 16, &values);
    let bytes = std::fs::read(&path).unwrap();
    let from_file = decode_file(&path).unwrap();
    assert_eq!(decode_bytes(&bytes, Some("wav")).unwrap(), from_file);
    // The hint is only a hint: none, or a wrong one, decodes the same.
    assert_eq!(decode_bytes(&bytes, None).unwrap(), from_file);
    assert_eq!(decode_bytes(&bytes, Some(".mp3")).unwrap(), from_file);
}

#[test]
fn wav_with_wrong_extension_is_probed_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("really_a_wav.ogg");
    write_wav_int(&path, 1, 16_000, 16, &[1, 2, 3]);
    assert_eq!(decode_file(&path).unwrap().samples.len(), 3);
}

// ---------------------------------------------------------------------------------------
// Compressed fixtures (tests/fixtures/audio/make.sh)
// ---------------------------------------------------------------------------------------

/// Checks a decoded 1 kHz, half-amplitude tone.
fn assert_tone(pcm: &Pcm, rate: u32, what: &str) {
    // LAME at 64 kbit/s keeps a pure tone about 5% quieter (FFmpeg decodes the fixture to
    // the same RMS, 0.3359); the other codecs keep the level within 1%.
    let level_tol = if what.contains("mp3") { 0.07 } else { 0.02 };
    assert_eq!(pcm.sample_rate_hz, rate, "{what}");
    let hz = tone_hz(&pcm.samples, rate);
    assert!((hz - 1000.0).abs() < 1.0, "{what}: tone at {hz} Hz");
    let n = pcm.samples.len();
    let level = rms(&pcm.samples[n / 10..n - n / 10]);
    let expected = 0.5 / 2f64.sqrt();
    assert!(
        (level / expected - 1.0).abs() < level_tol,
        "{what}: rms {level}, expected {expected}"
    );
    check_samples(&pcm.samples).unwrap();
}

#[test]
fn flac_fixture_decodes() {
    let pcm = decode_file(fixture("tone_1k_22050_stereo.flac")).unwrap();
    // Lossless: exactly 0.5 s.
    assert_eq!(pcm.samples.len(), 11_025);
    assert_tone(&pcm, 22_050, "flac");
}

#[test]
fn mp3_fixture_decodes() {
    let pcm = decode_file(fixture("tone_1k_44100.mp3")).unwrap();
    // The LAME header gives the encoder delay and padding: exactly 0.5 s comes back.
    assert_eq!(pcm.samples.len(), 22_050);
    assert_tone(&pcm, 44_100, "mp3");
}

#[test]
fn ogg_vorbis_fixture_decodes() {
    let pcm = decode_file(fixture("tone_1k_48000.ogg")).unwrap();
    // OGG carries the exact end position: gapless, 0.5 s.
    assert_eq!(pcm.samples.len(), 24_000);
    assert_tone(&pcm, 48_000, "ogg");
}

#[test]
fn load_gives_16k_for_every_fixture() {
    for name in [
        "tone_1k_22050_stereo.flac",
        "tone_1k_44100.mp3",
        "tone_1k_48000.ogg",
    ] {
        let native = decode_file(fixture(name)).unwrap();
        let pcm = load(fixture(name)).unwrap();
        let expected_len = (native.samples.len() as f64 * 16_000.0
            / f64::from(native.sample_rate_hz))
        .round() as usize;
        assert_eq!(pcm.samples.len(), expected_len, "{name}");
        assert_tone(&pcm, SAMPLE_RATE_HZ, name);
    }
}

// ---------------------------------------------------------------------------------------
// Resampling
// ---------------------------------------------------------------------------------------

#[test]
fn resample_to_16k_keeps_frequency_amplitude_and_phase() {
    for (from, freq) in [
        (44_100u32, 440.0),
        (48_000, 1000.0),
        (8_000, 1000.0),
        (22_050, 3000.0),
    ] {
        let n = from as usize; // 1 s
        let input = Pcm {
            samples: sine(freq, from, n, 0.8),
            sample_rate_hz: from,
        };
        let out = resample(&input, 16_000).unwrap();
        assert_eq!(out.sample_rate_hz, 16_000);
        assert_eq!(out.samples.len(), 16_000, "{from} Hz");
        // Away from the edges (where the filter sees the signal start/stop), the output
        // is the same sine sampled at 16 kHz: same frequency, amplitude and phase.
        let mid = &out.samples[1000..15_000];
        let ideal = sine(freq, 16_000, 16_000, 0.8);
        let max_err = mid
            .iter()
            .zip(&ideal[1000..15_000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 2e-3, "{from} Hz: max error {max_err}");
        let ratio = rms(mid) / rms(&ideal[1000..15_000]);
        assert!((ratio - 1.0).abs() < 0.01, "{from} Hz: rms ratio {ratio}");
        let hz = tone_hz(&out.samples, 16_000);
        assert!((hz / freq - 1.0).abs() < 1e-3, "{from} Hz: tone at {hz}");
    }
}

#[test]
fn resample_filters_above_the_new_nyquist() {
    // 48 kHz -> 16 kHz: 6 kHz is in the passband, 9 and 12 kHz would alias to 7 and
    // 4 kHz without the anti-aliasing filter.
    let n = 48_000 / 2;
    for (freq, pass) in [(6_000.0, true), (9_000.0, false), (12_000.0, false)] {
        let input = Pcm {
            samples: sine(freq, 48_000, n, 0.5),
            sample_rate_hz: 48_000,
        };
        let out = resample(&input, 16_000).unwrap().samples;
        let level = rms(&out[1000..out.len() - 1000]) / rms(&input.samples);
        if pass {
            assert!((level - 1.0).abs() < 0.01, "{freq} Hz: level {level}");
        } else {
            assert!(level < 1e-3, "{freq} Hz leaks through at {level}");
        }
    }
}

#[test]
fn resample_from_16k_and_odd_rates() {
    // Upsampling, and a ratio with no small fraction (cubic-interpolated path).
    for (from, to) in [
        (16_000u32, 44_100u32),
        (16_000, 48_000),
        (44_101, 16_000),
        (16_000, 15_999),
    ] {
        let n = from as usize / 2;
        let input = Pcm {
            samples: sine(500.0, from, n, 0.5),
            sample_rate_hz: from,
        };
        let out = resample(&input, to).unwrap();
        let expected_len = (n as f64 * f64::from(to) / f64::from(from)).round() as usize;
        assert_eq!(out.samples.len(), expected_len, "{from} -> {to}");
        let m = out.samples.len();
        let ideal = sine(500.0, to, m, 0.5);
        let (a, b) = (m / 10, m - m / 10);
        // The cubic path is aligned to within half an output sample.
        let tol = if from == 44_101 || to == 15_999 {
            0.05
        } else {
            2e-3
        };
        let max_err = out.samples[a..b]
            .iter()
            .zip(&ideal[a..b])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < tol, "{from} -> {to}: max error {max_err}");
    }
}

#[test]
fn resample_same_rate_is_identity() {
    let pcm = Pcm {
        samples: vec![0.1, -0.2, 0.3],
        sample_rate_hz: 16_000,
    };
    assert_eq!(resample(&pcm, 16_000).unwrap(), pcm);
}

#[test]
fn resample_length_is_rounded_ratio() {
    for (from, to) in [
        (44_100u32, 16_000u32),
        (48_000, 16_000),
        (8_000, 16_000),
        (16_000, 22_050),
    ] {
        for n in [0usize, 1, 2, 3, 7, 100, 1023, 1024, 1025, 4410] {
            let pcm = Pcm {
                samples: vec![0.25; n],
                sample_rate_hz: from,
            };
            let out = resample(&pcm, to).unwrap();
            let expected =
                ((2 * n as u64 * u64::from(to) + u64::from(from)) / (2 * u64::from(from))) as usize;
            assert_eq!(out.samples.len(), expected, "{n} samples {from} -> {to}");
        }
    }
}

#[test]
fn resample_extreme_rates_do_not_panic() {
    for (from, to, n) in [
        (1u32, 100u32, 50usize),
        (100, 1, 500),
        (1_000_000, 16_000, 100_000),
        (16_000, 1_000_000, 200),
        (1_000_000, 1, 2_000_000),
        (999_983, 16_000, 5_000),
    ] {
        let pcm = Pcm {
            samples: sine(0.01 * f64::from(from.min(to)), from, n, 0.5),
            sample_rate_hz: from,
        };
        let out = resample(&pcm, to).unwrap();
        let expected = (n as f64 * f64::from(to) / f64::from(from)).round() as usize;
        assert_eq!(out.samples.len(), expected, "{from} -> {to}");
        check_samples(&out.samples).unwrap();
    }
}

#[test]
fn stream_resampler_is_reusable_after_finish() {
    let x = sine(440.0, 44_100, 5000, 0.5);
    let mut r = StreamResampler::new(44_100, 16_000).unwrap();
    let mut first = r.push(&x).unwrap();
    first.extend(r.finish().unwrap());
    let mut second = r.push(&x[..1234]).unwrap();
    second.extend(r.push(&x[1234..]).unwrap());
    second.extend(r.finish().unwrap());
    assert_eq!(first, second);
    // reset() drops a half-pushed stream.
    r.push(&x[..777]).unwrap();
    r.reset().unwrap();
    let mut third = r.push(&x).unwrap();
    third.extend(r.finish().unwrap());
    assert_eq!(first, third);
}

const RATES: [u32; 9] = [
    8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 44_101, 96_000,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Streaming equals offline: any chunking gives bit-identical output.
    #[test]
    fn stream_chunking_matches_offline(
        from in prop::sample::select(RATES.to_vec()),
        to in prop::sample::select(vec![16_000u32, 8_000, 44_100]),
        samples in prop::collection::vec(-1.0f32..1.0, 0..6000),
        cuts in prop::collection::vec(0usize..2500, 0..12),
    ) {
        let offline = resample(&Pcm { samples: samples.clone(), sample_rate_hz: from }, to)
            .unwrap()
            .samples;
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut streamed = Vec::new();
        let mut rest = &samples[..];
        for cut in cuts {
            let (chunk, tail) = rest.split_at(cut.min(rest.len()));
            streamed.extend(r.push(chunk).unwrap());
            rest = tail;
        }
        streamed.extend(r.push(rest).unwrap());
        streamed.extend(r.finish().unwrap());
        prop_assert_eq!(streamed.len(), offline.len());
        prop_assert!(streamed.iter().zip(&offline).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn missing_file_is_io_error() {
    let err = decode_file("/no/such/dir/speech.wav").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, "/no/such/dir/speech.wav");
    assert!(matches!(load("/no/such/file.flac"), Err(Error::Io { .. })));
}

#[test]
fn directory_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = decode_file(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &dir.path().display().to_string());
}

#[test]
fn empty_file_and_empty_wav_are_empty_audio() {
    let dir = tempfile::tempdir().unwrap();
    let zero_bytes = dir.path().join("zero.wav");
    std::fs::write(&zero_bytes, b"").unwrap();
    let err = decode_file(&zero_bytes).unwrap_err();
    assert!(matches!(err, Error::EmptyAudio { .. }), "{err:?}");
    assert_names(&err, "zero.wav");

    let no_frames = dir.path().join("no_frames.wav");
    write_wav_int(&no_frames, 1, 16_000, 16, &[]);
    let err = decode_file(&no_frames).unwrap_err();
    assert!(matches!(err, Error::EmptyAudio { .. }), "{err:?}");
    assert_names(&err, "no_frames.wav");

    let err = decode_bytes(&wav_bytes(1, 2, 16_000, 16, &[]), None).unwrap_err();
    assert!(matches!(err, Error::EmptyAudio { .. }), "{err:?}");
    assert_names(&err, "<memory>");
}

#[test]
fn unknown_container_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wav");
    std::fs::write(&path, "these are meeting notes, not audio\n".repeat(20)).unwrap();
    let err = decode_file(&path).unwrap_err();
    assert!(matches!(err, Error::UnsupportedAudio { .. }), "{err:?}");
    assert_names(&err, "notes.wav");
}

#[test]
fn unknown_wav_codec_is_unsupported() {
    // Format tag 0x0031 is GSM 6.10, which no enabled decoder reads.
    let bytes = wav_bytes(0x0031, 1, 8_000, 16, &[0; 650]);
    let err = decode_bytes(&bytes, Some("wav")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedAudio { .. }), "{err:?}");
    assert_names(&err, "<memory>");
}

#[test]
fn out_of_range_wav_rates_are_invalid_sample_rate() {
    let data = pcm16_bytes(&[0, 100, -100, 0]);
    for rate in [0u32, 4_000_000_000, 1_000_001] {
        let err = decode_bytes(&wav_bytes(1, 1, rate, 16, &data), Some("wav")).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSampleRate { sample_rate_hz } if sample_rate_hz == rate),
            "{rate} Hz: {err:?}"
        );
        assert!(!err.to_string().contains('\n'));
    }
    // The range is inclusive.
    for rate in [1u32, 1_000_000] {
        let pcm = decode_bytes(&wav_bytes(1, 1, rate, 16, &data), Some("wav")).unwrap();
        assert_eq!(pcm.sample_rate_hz, rate);
    }
}

#[test]
fn truncated_header_is_decode_error() {
    let full = wav_bytes(1, 1, 16_000, 16, &pcm16_bytes(&[1; 100]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wav");
    std::fs::write(&path, &full[..30]).unwrap();
    let err = decode_file(&path).unwrap_err();
    assert!(matches!(err, Error::AudioDecode { .. }), "{err:?}");
    assert_names(&err, "cut.wav");
}

#[test]
fn wav_truncated_in_data_keeps_the_decoded_part() {
    let samples: Vec<i16> = (0..1000).map(|i| i * 3).collect();
    let full = wav_bytes(1, 1, 16_000, 16, &pcm16_bytes(&samples));
    // Cut in the middle of a sample: the header still claims 1000 samples.
    let pcm = decode_bytes(&full[..44 + 2 * 600 + 1], Some("wav")).unwrap();
    assert!(
        !pcm.samples.is_empty() && pcm.samples.len() <= 600,
        "{}",
        pcm.samples.len()
    );
    for (i, &s) in pcm.samples.iter().enumerate() {
        assert_eq!(s, f32::from(samples[i]) / 32768.0);
    }
}

#[test]
fn truncated_compressed_files_decode_a_prefix_or_fail_cleanly() {
    for name in [
        "tone_1k_22050_stereo.flac",
        "tone_1k_44100.mp3",
        "tone_1k_48000.ogg",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let full = decode_bytes(&bytes, None).unwrap();
        let mut n_prefixes = 0;
        for percent in [10, 25, 50, 75, 90, 99] {
            match decode_bytes(&bytes[..bytes.len() * percent / 100], None) {
                Ok(part) => {
                    assert!(
                        part.samples.len() < full.samples.len(),
                        "{name} at {percent}%"
                    );
                    assert_eq!(part.sample_rate_hz, full.sample_rate_hz);
                    n_prefixes += 1;
                }
                // Cut inside the first (or, for this short OGG, the only) audio packet.
                Err(err @ Error::AudioDecode { .. }) => assert_names(&err, "<memory>"),
                Err(err) => panic!("{name} at {percent}%: {err:?}"),
            }
        }
        // FLAC (4096-sample frames) and MP3 (1152) keep the frames before the cut; the OGG
        // fixture holds all its audio in one page, so any cut loses all of it.
        if !name.ends_with(".ogg") {
            assert!(n_prefixes >= 3, "{name}: only {n_prefixes} cuts decoded");
        }
    }
}

#[test]
fn nan_in_float_wav_is_non_finite_sample() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.wav");
    write_wav_f32(&path, 1, 16_000, &[0.0, 0.5, f32::NAN, 0.1]);
    let err = decode_file(&path).unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteSample { index: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn resample_rejects_bad_rates_and_samples() {
    let ok = Pcm {
        samples: vec![0.0; 10],
        sample_rate_hz: 16_000,
    };
    assert!(matches!(
        resample(&ok, 0),
        Err(Error::InvalidSampleRate { sample_rate_hz: 0 })
    ));
    assert!(matches!(
        resample(&ok, 2_000_000),
        Err(Error::InvalidSampleRate {
            sample_rate_hz: 2_000_000
        })
    ));
    let zero_rate = Pcm {
        samples: vec![0.0; 10],
        sample_rate_hz: 0,
    };
    assert!(matches!(
        resample(&zero_rate, 16_000),
        Err(Error::InvalidSampleRate { sample_rate_hz: 0 })
    ));
    let nan = Pcm {
        samples: vec![0.0, 0.0, f32::NAN],
        sample_rate_hz: 44_100,
    };
    assert!(matches!(
        resample(&nan, 16_000),
        Err(Error::NonFiniteSample { index: 2, .. })
    ));
    // Same rates still validate.
    let inf = Pcm {
        samples: vec![f32::INFINITY],
        sample_rate_hz: 16_000,
    };
    assert!(matches!(
        resample(&inf, 16_000),
        Err(Error::NonFiniteSample { index: 0, .. })
    ));
    assert!(matches!(
        StreamResampler::new(16_000, 0),
        Err(Error::InvalidSampleRate { .. })
    ));
    assert!(matches!(
        StreamResampler::new(u32::MAX, 16_000),
        Err(Error::InvalidSampleRate { .. })
    ));
}

#[test]
fn stream_push_reports_stream_index_of_non_finite() {
    let mut r = StreamResampler::new(48_000, 16_000).unwrap();
    r.push(&[0.0; 100]).unwrap();
    let err = r.push(&[0.0, f32::NEG_INFINITY]).unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteSample { index: 101, .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Robustness: arbitrary bytes never panic
// ---------------------------------------------------------------------------------------

/// Decoding must return, Ok or Err, and any Ok must be valid audio.
fn decode_never_panics(bytes: &[u8], hint: Option<&str>) {
    if let Ok(pcm) = decode_bytes(bytes, hint) {
        assert!(!pcm.samples.is_empty());
        audio::check_sample_rate(pcm.sample_rate_hz).unwrap();
        check_samples(&pcm.samples).unwrap();
    }
}

fn valid_files() -> Vec<Vec<u8>> {
    let mut files: Vec<Vec<u8>> = [
        "tone_1k_22050_stereo.flac",
        "tone_1k_44100.mp3",
        "tone_1k_48000.ogg",
    ]
    .iter()
    .map(|name| std::fs::read(fixture(name)).unwrap())
    .collect();
    let samples: Vec<i16> = (0..400).map(|i| (i * 97 % 2000) as i16).collect();
    files.push(wav_bytes(1, 2, 16_000, 16, &pcm16_bytes(&samples)));
    files
}

const HINTS: [Option<&str>; 5] = [None, Some("wav"), Some("mp3"), Some("flac"), Some("ogg")];
const MAGICS: [&[u8]; 6] = [
    b"",
    b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00",
    b"fLaC",
    b"OggS\x00\x02",
    b"ID3\x03\x00",
    b"\xff\xfb\x90\x64",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        magic in 0..MAGICS.len(),
        tail in prop::collection::vec(any::<u8>(), 0..3000),
        hint in 0..HINTS.len(),
    ) {
        let mut bytes = MAGICS[magic].to_vec();
        bytes.extend(tail);
        decode_never_panics(&bytes, HINTS[hint]);
    }

    #[test]
    fn truncated_or_corrupted_files_never_panic(
        file in 0usize..4,
        cut in 0.0f64..1.0,
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..8),
    ) {
        let mut bytes = valid_files().swap_remove(file);
        for (at, value) in flips {
            let i = (at * bytes.len() as f64) as usize;
            bytes[i] = value;
        }
        bytes.truncate((cut * bytes.len() as f64) as usize);
        decode_never_panics(&bytes, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// WAV headers with arbitrary field values (zero channels, odd bit depths, unknown
    /// codecs, absurd rates) give an error or valid audio, never a panic.
    #[test]
    fn arbitrary_wav_headers_never_panic(
        format_tag in prop::sample::select(vec![0u16, 1, 2, 3, 6, 7, 0x11, 0x31, 0xfffe, 0xffff]),
        channels in prop::sample::select(vec![0u16, 1, 2, 3, 8, 255, 65_535]),
        rate in any::<u32>(),
        bits in prop::sample::select(vec![0u16, 1, 4, 8, 12, 16, 20, 24, 32, 64, 65_535]),
        data in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        decode_never_panics(&wav_bytes(format_tag, channels, rate, bits, &data), Some("wav"));
    }
}
