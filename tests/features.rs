//! hearken's features against transformers' goldens.
//!
//! The goldens in `tests/fixtures/features/` are written by
//! `tests/fixtures/gen_features.py` (transformers' `WhisperFeatureExtractor` numpy path
//! and `Wav2Vec2FeatureExtractor`); `manifest.json` lists the cases. Nothing here runs
//! Python: the test reads the committed files only.
//!
//! Tolerances: log-mel max |hearken − transformers| ≤ 1e-4 (hearken runs the FFT and mel
//! product in `f32`, the reference in `f64`); normalization ≤ 1e-5.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hearken::features::{
    LogMel, MelFilterbank, MelPadding, zero_mean_unit_var, zero_mean_unit_var_batch,
};
use proptest::prelude::*;
use serde::Deserialize;

const LOGMEL_TOL: f32 = 1e-4;
const NORM_TOL: f32 = 1e-5;

#[derive(Deserialize)]
struct Manifest {
    inputs: HashMap<String, InputSpec>,
    mel_filters: Vec<FilterCase>,
    whisper: Vec<WhisperCase>,
    wav2vec2: Vec<W2vCase>,
}

/// One of: a float32 `.npy`; a 16-bit WAV (`int16 / 32768`); a snippet tiled to `n_samples`.
#[derive(Deserialize)]
struct InputSpec {
    npy: Option<String>,
    wav: Option<String>,
    tile: Option<String>,
    n_samples: Option<usize>,
}

#[derive(Deserialize)]
struct FilterCase {
    n_mels: usize,
    expected: String,
}

#[derive(Deserialize)]
struct WhisperCase {
    input: String,
    n_mels: usize,
    padded: bool,
    n_frames: usize,
    /// The columns of the reference output stored in `expected`.
    frames: Vec<usize>,
    /// Padded inputs: every frame not in `frames` equals this in every mel bin.
    tail_fill: Option<f32>,
    expected: String,
}

#[derive(Deserialize)]
struct W2vCase {
    input: Option<String>,
    batch: Option<String>,
    lengths: Option<Vec<usize>>,
    padding_value: Option<f32>,
    expected: String,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/features")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `(shape, data)` of a float32 `.npy` fixture (version 1.0, little-endian, C order, as
/// `np.save` writes them).
///
/// Parsed here rather than with `hearken::npy` so that a failure of this suite points at
/// the features code alone.
fn npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x93NUMPY\x01\x00",
        "{name}: not a version 1.0 .npy"
    );
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{name}: {header}");
    assert!(
        header.contains("'fortran_order': False"),
        "{name}: {header}"
    );
    let dims = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
    (shape, data)
}

fn load_input(spec: &InputSpec) -> Vec<f32> {
    if let Some(name) = &spec.npy {
        return npy(name).1;
    }
    if let Some(name) = &spec.wav {
        let mut reader = hound::WavReader::open(dir().join(name)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 16_000, 16)
        );
        return reader
            .samples::<i16>()
            .map(|s| f32::from(s.unwrap()) / 32768.0)
            .collect();
    }
    let snippet = npy(spec.tile.as_deref().unwrap()).1;
    let n = spec.n_samples.unwrap();
    snippet.iter().copied().cycle().take(n).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn mel_filterbanks_match_transformers() {
    for case in manifest().mel_filters {
        let (shape, want) = npy(&case.expected);
        assert_eq!(shape, [201, case.n_mels]);
        let fb = MelFilterbank::slaney(201, case.n_mels, 0.0, 8000.0, 16_000).unwrap();
        let dense = fb.to_dense(); // (n_mels, 201)
        let mut worst = 0.0f32;
        for k in 0..201 {
            for m in 0..case.n_mels {
                worst = worst.max((dense[m * 201 + k] - want[k * case.n_mels + m]).abs());
            }
        }
        // Both are the same f64 arithmetic rounded once to f32.
        assert!(worst <= 1e-9, "{} mels: max |diff| {worst:e}", case.n_mels);
    }
}

#[test]
fn whisper_log_mel_matches_transformers() {
    let m = manifest();
    let extractors: HashMap<usize, LogMel> = [80, 128]
        .into_iter()
        .map(|n| (n, LogMel::whisper(n).unwrap()))
        .collect();
    assert!(
        m.whisper.len() >= 30,
        "manifest lists {} cases",
        m.whisper.len()
    );
    let mut worst = 0.0f32;
    for case in &m.whisper {
        let audio = load_input(&m.inputs[&case.input]);
        let lm = &extractors[&case.n_mels];
        let got = if case.padded {
            lm.compute_padded(&audio).unwrap()
        } else {
            lm.compute_unpadded(&audio).unwrap()
        };
        let label = format!(
            "{} {} {} mels",
            case.input,
            if case.padded { "padded" } else { "unpadded" },
            case.n_mels
        );
        assert_eq!(
            (got.n_mels(), got.n_frames()),
            (case.n_mels, case.n_frames),
            "{label}"
        );

        let (shape, want) = npy(&case.expected);
        assert_eq!(shape, [case.n_mels, case.frames.len()], "{label}");
        let n_stored = case.frames.len();
        let mut diff = 0.0f32;
        for mel in 0..case.n_mels {
            let row = got.row(mel).unwrap();
            for (j, &t) in case.frames.iter().enumerate() {
                diff = diff.max((row[t] - want[mel * n_stored + j]).abs());
            }
        }
        if let Some(fill) = case.tail_fill {
            let stored: std::collections::HashSet<usize> = case.frames.iter().copied().collect();
            for mel in 0..case.n_mels {
                let row = got.row(mel).unwrap();
                for t in (0..case.n_frames).filter(|t| !stored.contains(t)) {
                    diff = diff.max((row[t] - fill).abs());
                }
            }
        }
        eprintln!("{label:<32} max |diff| {diff:.2e}");
        assert!(
            diff <= LOGMEL_TOL,
            "{label}: max |diff| {diff:e} > {LOGMEL_TOL:e}"
        );
        worst = worst.max(diff);
    }
    eprintln!(
        "whisper log-mel: {} cases, worst max |diff| {worst:.2e}",
        m.whisper.len()
    );
}

#[derive(Deserialize)]
struct FwManifest {
    speech_wav: String,
    cases: Vec<FwCase>,
}

#[derive(Deserialize)]
struct FwCase {
    input: String,
    n_mels: usize,
    content_frames: usize,
    expected: String,
    npy: Option<String>,
    wav_samples: Option<usize>,
}

/// `MelPadding::Features` against faster-whisper 1.2.1's front end (`fw_manifest.json`,
/// written by `tests/fixtures/gen_fw_features.py`): the content columns match, and every
/// later column of the 3000-frame window is zero.
#[test]
fn feature_padding_matches_faster_whisper() {
    let m: FwManifest =
        serde_json::from_str(&std::fs::read_to_string(dir().join("fw_manifest.json")).unwrap())
            .unwrap();
    assert!(m.cases.len() >= 4);
    for case in &m.cases {
        let audio = match (&case.npy, case.wav_samples) {
            (Some(npy), _) => load_input(&InputSpec {
                npy: Some(npy.clone()),
                wav: None,
                tile: None,
                n_samples: None,
            }),
            (None, Some(n)) => {
                let mut a = load_input(&InputSpec {
                    npy: None,
                    wav: Some(m.speech_wav.clone()),
                    tile: None,
                    n_samples: None,
                });
                a.truncate(n);
                a
            }
            _ => panic!("{}: no input", case.input),
        };
        let lm = LogMel::whisper(case.n_mels).unwrap();
        let got = lm.compute_window(&audio, MelPadding::Features).unwrap();
        assert_eq!((got.n_mels(), got.n_frames()), (case.n_mels, 3000));
        let (shape, want) = npy(&case.expected);
        assert_eq!(shape, [case.n_mels, case.content_frames], "{}", case.input);
        let mut diff = 0.0f32;
        for mel in 0..case.n_mels {
            let row = got.row(mel).unwrap();
            for t in 0..case.content_frames {
                diff = diff.max((row[t] - want[mel * case.content_frames + t]).abs());
            }
            let tail = row[case.content_frames..]
                .iter()
                .fold(0.0f32, |a, &v| a.max(v.abs()));
            assert_eq!(
                tail, 0.0,
                "{}: padding after the content is not zero",
                case.input
            );
        }
        eprintln!(
            "faster-whisper padding {:<12} max |diff| {diff:.2e}",
            case.input
        );
        assert!(diff <= LOGMEL_TOL, "{}: max |diff| {diff:e}", case.input);
    }
}

#[test]
fn wav2vec2_normalization_matches_transformers() {
    let m = manifest();
    for case in &m.wav2vec2 {
        let (_, want) = npy(&case.expected);
        if let Some(input) = &case.input {
            let mut x = load_input(&m.inputs[input]);
            zero_mean_unit_var(&mut x).unwrap();
            let diff = max_abs_diff(&x, &want);
            eprintln!("wav2vec2 {input:<10} max |diff| {diff:.2e}");
            assert!(diff <= NORM_TOL, "{input}: {diff:e}");
        } else {
            let (shape, mut batch) = npy(case.batch.as_deref().unwrap());
            let lengths = case.lengths.as_deref().unwrap();
            assert_eq!(shape[0], lengths.len());
            zero_mean_unit_var_batch(&mut batch, lengths, case.padding_value.unwrap()).unwrap();
            let diff = max_abs_diff(&batch, &want);
            eprintln!("wav2vec2 batch {lengths:?} max |diff| {diff:.2e}");
            assert!(diff <= NORM_TOL, "batch: {diff:e}");
        }
    }
}

fn whisper80() -> &'static LogMel {
    static LM: std::sync::OnceLock<LogMel> = std::sync::OnceLock::new();
    LM.get_or_init(|| LogMel::whisper(80).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Unpadded: `n_samples / 160` frames, all finite, within the 2.0 clamp range.
    #[test]
    fn unpadded_log_mel_has_documented_shape(
        audio in prop::collection::vec(-1.0f32..=1.0, 160..6000),
        gain in prop::sample::select(vec![0.0f32, 1e-6, 1e-3, 1.0, 1e4]),
    ) {
        let audio: Vec<f32> = audio.iter().map(|x| x * gain).collect();
        let f = whisper80().compute_unpadded(&audio).unwrap();
        prop_assert_eq!(f.n_mels(), 80);
        prop_assert_eq!(f.n_frames(), audio.len() / 160);
        let values = f.as_slice();
        prop_assert!(values.iter().all(|x| x.is_finite()));
        let max = values.iter().copied().fold(f32::MIN, f32::max);
        let min = values.iter().copied().fold(f32::MAX, f32::min);
        prop_assert!(max - min <= 2.0 + 1e-5, "range {} ..= {}", min, max);
    }

    /// Padded: always (80, 3000), and the audio past 30 s never matters.
    #[test]
    fn padded_log_mel_is_a_fixed_window(
        head in prop::collection::vec(-1.0f32..=1.0, 0..2000),
        extra in prop::collection::vec(-1.0f32..=1.0, 1..400),
    ) {
        let lm = whisper80();
        let f = lm.compute_padded(&head).unwrap();
        prop_assert_eq!((f.n_mels(), f.n_frames()), (80, 3000));
        prop_assert!(f.as_slice().iter().all(|x| x.is_finite()));
        // Explicit zero padding to 30 s is what the padded variant does implicitly.
        let mut padded = head.clone();
        padded.resize(480_000, 0.0);
        prop_assert_eq!(&lm.compute_padded(&padded).unwrap(), &f);
        padded.extend_from_slice(&extra);
        prop_assert_eq!(&lm.compute_padded(&padded).unwrap(), &f);
    }
}

#[test]
fn extractor_is_shared_across_threads() {
    let lm = std::sync::Arc::new(LogMel::whisper(80).unwrap());
    let audio: Vec<f32> = (0..16_000)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let want = lm.compute_padded(&audio).unwrap();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (lm, audio) = (lm.clone(), audio.clone());
            std::thread::spawn(move || lm.compute_padded(&audio).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}
