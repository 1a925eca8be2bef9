//! Training data for audio tasks: from files on disk to padded, normalized batches.
//!
//! The pipeline runs one way, one stage per file:
//!
//! ```text
//! Source: JSONL manifest | CSV/TSV table | audiofolder   manifest.rs table.rs audiofolder.rs
//!   -> Vec<Example> (audio path, label, text, group)     mod.rs columns.rs
//!   -> Splits: train / eval / test, label vocabulary     split.rs
//!   -> AudioSet: decoded, resampled audio in memory      features.rs
//!   -> Epoch: plan -> crop -> augment -> normalize, pad  batching.rs augment.rs
//!   -> Batch (plain vectors) -> BatchTensors (candle)    batching.rs
//! ```
//!
//! Design:
//!
//! - **Errors name the file and line.** Every [`Example`] remembers where it came from
//!   ([`Origin`]), so a missing audio file, an undecodable one, a row without its label, or
//!   a label seen only in evaluation data is reported as
//!   [`Error::Data`] `manifest.jsonl:12: ...`. Audio files are checked
//!   to exist **up front**, when a source is read (a `stat` per row, so a typo fails before
//!   any decoding); they are decoded when an [`AudioSet`] is loaded, and a file that exists
//!   but cannot be decoded fails there, with the same file-and-line context.
//! - **Decoded audio is cached in memory.** The datasets this serves (keyword spotting,
//!   digits, a few hours of speech) fit easily: an hour of 16 kHz `f32` audio is 230 MB.
//!   Decoding once up front makes every epoch pure arithmetic, makes length bucketing
//!   exact, and surfaces every bad file before the first step. What is cached is the
//!   resampled audio only; cropping, augmentation and normalization happen per batch,
//!   since they differ per epoch.
//! - **Determinism through one seeded generator.** Splits take a `seed`; epochs take a
//!   [`rand_chacha::ChaCha8Rng`], from which the batch plan and a per-epoch seed are drawn;
//!   each batch then gets its own stream of that seed, so a batch's crops and augmentation
//!   depend only on the epoch generator and the batch's position, not on how the batches
//!   are consumed. Results are reproducible for a given `Cargo.lock` (the `rand` crate may
//!   change the values it draws between minor versions).
//! - **Upstream semantics, cited.** Feature extraction is the runtime's port of
//!   `Wav2Vec2FeatureExtractor` ([`hearken::features::WaveformConfig`]), applied as
//!   transformers' training scripts apply it; length grouping ports transformers'
//!   `get_length_grouped_indices`; the audiofolder reader follows the `datasets` library's
//!   folder-based builder. Each file says where it differs.
//!
//! # Example
//!
//! ```no_run
//! use hearken_export::train::data::{
//!     AudioSet, BatchConfig, Columns, DataSpec, Epoch, EvalSplit, FeatureConfig, Order, Source,
//! };
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//!
//! # fn main() -> hearken_export::Result<()> {
//! let spec = DataSpec {
//!     train: Source::from_path("data/train.jsonl")?,
//!     eval: None,
//!     split: EvalSplit::Ratio { eval_ratio: 0.1, seed: 42 },
//!     columns: Columns { group: Some("speaker".into()), ..Columns::default() },
//! };
//! let splits = spec.resolve()?;
//! let mut features =
//!     FeatureConfig::from_preprocessor_config("model/preprocessor_config.json".as_ref())?;
//! features.max_duration_s = Some(1.0);
//! let rate = features.sample_rate_hz();
//! let train = AudioSet::load(splits.train, &splits.labels, rate)?;
//! let eval = AudioSet::load(splits.eval, &splits.labels, rate)?;
//! let config = BatchConfig {
//!     batch_size: 32,
//!     order: Order::GroupByLength { mega_batch_mult: None },
//!     drop_last: false,
//! };
//! let mut rng = ChaCha8Rng::seed_from_u64(42);
//! for _epoch in 0..3 {
//!     for batch in Epoch::train(&train, &features, None, &config, &mut rng)? {
//!         let with_mask = features.extractor.return_attention_mask;
//!         let tensors = batch?.to_tensors(&candle_core::Device::Cpu, with_mask)?;
//!         // forward, loss, backward, step
//!     }
//!     for batch in Epoch::eval(&eval, &features, 64)? {
//!         // forward, metrics
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod audiofolder;
pub mod augment;
pub mod batching;
mod columns;
pub mod features;
pub mod fsdd;
pub mod manifest;
pub mod split;
pub mod table;

use std::path::{Path, PathBuf};

pub use augment::{Augment, GainAugment, NoiseAugment, SpeedAugment};
pub use batching::{
    Batch, BatchConfig, BatchTensors, Epoch, Order, Stage, batch_rng, collate, plan_epoch,
};
pub use columns::{AUDIO_COLUMNS, Columns};
pub use features::{AudioSet, EvalCrop, FeatureConfig};
pub use split::{DataSpec, EvalSplit, LabelVocab, Splits, split_by_ratio};

use crate::{Error, Result};

/// One training or evaluation example: an audio file and what it is labelled with.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The audio file, resolved: a relative path in a manifest is taken relative to the
    /// manifest's folder.
    pub audio: PathBuf,
    /// The class label, for classification.
    pub label: Option<String>,
    /// The transcript, for speech recognition (CTC, Whisper).
    pub text: Option<String>,
    /// The group the example belongs to (usually the speaker): a ratio split keeps each
    /// group on one side.
    pub group: Option<String>,
    /// The duration the source states, in seconds (NeMo manifests' `duration`). A hint
    /// only: lengths used for batching are those of the decoded audio.
    pub duration_s: Option<f64>,
    /// Where the example was read from, for error messages.
    pub origin: Origin,
}

impl Example {
    /// An example for `audio` with no label, text or group, its origin the audio file itself.
    pub fn new(audio: impl Into<PathBuf>) -> Self {
        let audio = audio.into();
        Example {
            origin: Origin {
                path: audio.clone(),
                line: None,
            },
            audio,
            label: None,
            text: None,
            group: None,
            duration_s: None,
        }
    }
}

/// Where an [`Example`] was read from: a manifest and its line, or an audio file found by
/// listing a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The manifest, table or metadata file; or the audio file itself for folder layouts.
    pub path: PathBuf,
    /// The 1-based line in `path`, for row-based sources.
    pub line: Option<usize>,
}

impl Origin {
    /// An [`Error::Data`] at this origin.
    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::Data {
            path: self.path.clone(),
            line: self.line,
            reason: reason.into(),
        }
    }
}

/// Where examples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JSON Lines manifest, one object per line ([`manifest`]).
    Jsonl(PathBuf),
    /// A CSV (or, for a `.tsv` file, tab-separated) table with a header row ([`table`]).
    Csv(PathBuf),
    /// A Hugging Face `audiofolder` directory ([`audiofolder`]).
    AudioFolder(PathBuf),
}

impl Source {
    /// Picks the reader from the path: a directory is an audiofolder, `*.csv`/`*.tsv` a
    /// table, anything else (`*.jsonl`, `*.json`, ...) a JSONL manifest.
    ///
    /// Fails with [`Error::Io`] when the path does not exist.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Source> {
        let path = path.into();
        let meta = std::fs::metadata(&path).map_err(crate::error::io_err(&path))?;
        if meta.is_dir() {
            return Ok(Source::AudioFolder(path));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Ok(match ext.as_deref() {
            Some("csv" | "tsv") => Source::Csv(path),
            _ => Source::Jsonl(path),
        })
    }

    /// The file or folder read.
    pub fn path(&self) -> &Path {
        match self {
            Source::Jsonl(p) | Source::Csv(p) | Source::AudioFolder(p) => p,
        }
    }

    /// Reads every example, checking that each audio file exists.
    ///
    /// A manifest or table has no splits: all its rows are in [`SourceSplits::train`].
    /// Errors are [`Error::Data`] naming the file and line (see [`manifest::read`],
    /// [`table::read`], [`audiofolder::read`]).
    pub fn read(&self, columns: &Columns) -> Result<SourceSplits> {
        match self {
            Source::Jsonl(p) => Ok(SourceSplits::unsplit(manifest::read(p, columns)?)),
            Source::Csv(p) => Ok(SourceSplits::unsplit(table::read(p, columns)?)),
            Source::AudioFolder(p) => audiofolder::read(p, columns),
        }
    }
}

/// The examples of one [`Source`], by the splits it defines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceSplits {
    /// The `train` split, or every row of a source without splits.
    pub train: Vec<Example>,
    /// The `validation` split, when the source has one.
    pub validation: Option<Vec<Example>>,
    /// The `test` split, when the source has one.
    pub test: Option<Vec<Example>>,
}

impl SourceSplits {
    /// A source without splits.
    pub fn unsplit(rows: Vec<Example>) -> Self {
        SourceSplits {
            train: rows,
            validation: None,
            test: None,
        }
    }

    /// `true` when the source named no `validation` or `test` split.
    pub fn is_unsplit(&self) -> bool {
        self.validation.is_none() && self.test.is_none()
    }
}

/// An [`Error::Data`] about a whole file or folder.
pub(crate) fn data_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        line: None,
        reason: reason.into(),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Fixtures: 16-bit PCM WAV files written by hand (no dependency on `hound` needed
    //! for these few bytes), in temporary folders.

    use std::path::Path;

    /// Writes a mono 16-bit PCM WAV of `samples` (in [-1, 1]) at `sample_rate_hz`.
    pub fn write_wav(path: &Path, samples: &[f32], sample_rate_hz: u32) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let data_len = (samples.len() * 2) as u32;
        let mut b = Vec::with_capacity(44 + samples.len() * 2);
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data_len).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes()); // PCM
        b.extend_from_slice(&1u16.to_le_bytes()); // mono
        b.extend_from_slice(&sample_rate_hz.to_le_bytes());
        b.extend_from_slice(&(sample_rate_hz * 2).to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_len.to_le_bytes());
        for &s in samples {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            b.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, b).unwrap();
    }

    /// A short tone of `n` samples, distinct per `seed`.
    pub fn tone(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * ((i as f32) * 0.05 * (1.0 + seed as f32)).sin())
            .collect()
    }

    /// Writes `write_wav(dir/rel, tone(n, seed), 16 kHz)`.
    pub fn wav(dir: &Path, rel: &str, n: usize, seed: u32) {
        write_wav(&dir.join(rel), &tone(n, seed), 16_000);
    }

    /// The message of an error, for assertions.
    pub fn msg<T: std::fmt::Debug>(r: crate::Result<T>) -> String {
        r.unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn source_from_path_picks_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("m.jsonl"), "").unwrap();
        std::fs::write(d.join("t.CSV"), "").unwrap();
        std::fs::write(d.join("t.tsv"), "").unwrap();
        assert_eq!(
            Source::from_path(d.join("m.jsonl")).unwrap(),
            Source::Jsonl(d.join("m.jsonl"))
        );
        assert_eq!(
            Source::from_path(d.join("t.CSV")).unwrap(),
            Source::Csv(d.join("t.CSV"))
        );
        assert!(matches!(
            Source::from_path(d.join("t.tsv")).unwrap(),
            Source::Csv(_)
        ));
        assert_eq!(
            Source::from_path(d).unwrap(),
            Source::AudioFolder(d.to_path_buf())
        );
        assert!(matches!(
            Source::from_path(d.join("nope.jsonl")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn data_error_message_names_file_and_line() {
        let o = Origin {
            path: "a/m.jsonl".into(),
            line: Some(7),
        };
        assert_eq!(o.error("bad").to_string(), "a/m.jsonl:7: bad");
        assert_eq!(
            data_err(Path::new("dir"), "empty").to_string(),
            "dir: empty"
        );
        let e = Example::new("x.wav");
        assert_eq!(e.origin.path, Path::new("x.wav"));
        assert!(msg::<()>(Err(e.origin.error("r"))).starts_with("x.wav: r"));
    }
}
