//! Hugging Face `audiofolder` directories, read as the `datasets` library's folder-based
//! builder reads them.
//!
//! ```text
//! DIR/train/yes/a.wav         labels from folder names        DIR/train/metadata.csv
//! DIR/train/no/b.wav                                          DIR/train/clips/a.wav
//! DIR/validation/yes/c.wav    or, with metadata files:        DIR/test/metadata.jsonl
//! DIR/test/no/d.wav                                           DIR/test/d.wav
//! ```
//!
//! The rules, after `datasets`' `FolderBasedBuilder._split_generators` and
//! `data_files.py` (huggingface/datasets@002f5f6c, `SPLIT_KEYWORDS`,
//! `KEYWORDS_IN_DIR_NAME_BASE_PATTERNS`):
//!
//! - **Splits** are the top-level folders named after a split keyword, exactly or followed
//!   by one of `-._ 0-9` and anything else (`train`, `train-clean`, `dev`): `train` or
//!   `training` → train; `validation`, `valid`, `dev` or `val` → validation; `test`,
//!   `testing`, `eval` or `evaluation` → test. When there are such folders, files
//!   outside them are ignored; when there are none, everything under `DIR` is train.
//!   (`datasets` also finds split keywords deeper in the tree and in file names; only
//!   top-level folders are recognized here.)
//! - **Audio files** are those with a `wav`, `flac`, `mp3`, `ogg` or `oga` extension (any
//!   case), the formats `hearken::audio` decodes; other files are ignored. Folders are
//!   walked in sorted order, so the example order is the same on every machine.
//! - **Metadata**: when any split holds a `metadata.csv` or `metadata.jsonl` (at any
//!   depth), examples come from metadata rows only: the `file_name` column (or the one
//!   [`Columns::audio`] names) is relative to the metadata file's folder, other columns as
//!   [`Columns`] says. Every split must then have metadata, all in one format.
//! - **Labels from folders**: without metadata, an audio file's label is the name of the
//!   folder it sits in, provided (as in `datasets`) there is more than one such name and
//!   every audio file is at the same depth; otherwise there are no labels, which is an
//!   error when labels are required.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Columns, Example, Origin, SourceSplits, data_err};
use crate::Result;
use crate::error::io_err;

/// Audio file extensions read, lowercase.
pub const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "oga"];

/// Metadata file names, as in `datasets`' `METADATA_FILENAMES` (less `metadata.parquet`,
/// which this crate does not read).
pub const METADATA_FILE_NAMES: [&str; 2] = ["metadata.csv", "metadata.jsonl"];

/// Folder-name keywords of each split, as in `datasets`' `SPLIT_KEYWORDS`.
const SPLIT_KEYWORDS: [(SplitName, &[&str]); 3] = [
    (SplitName::Train, &["train", "training"]),
    (
        SplitName::Validation,
        &["validation", "valid", "dev", "val"],
    ),
    (SplitName::Test, &["test", "testing", "eval", "evaluation"]),
];

/// One of the three splits an audiofolder can define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SplitName {
    /// `train`.
    Train,
    /// `validation`.
    Validation,
    /// `test`.
    Test,
}

/// The split a top-level folder name denotes, if any.
pub fn split_of_folder(name: &str) -> Option<SplitName> {
    for (split, keywords) in SPLIT_KEYWORDS {
        for keyword in keywords {
            if let Some(rest) = name.strip_prefix(keyword)
                && rest
                    .chars()
                    .next()
                    .is_none_or(|c| matches!(c, '-' | '.' | '_' | ' ' | '0'..='9'))
            {
                return Some(split);
            }
        }
    }
    None
}

/// What one split's folders hold.
#[derive(Default)]
struct Listing {
    /// The split's top-level folders (or `DIR` itself), for messages.
    roots: Vec<PathBuf>,
    /// Audio files, with their depth below `DIR`.
    audio: Vec<(PathBuf, usize)>,
    /// Metadata files.
    metadata: Vec<PathBuf>,
}

/// Reads an audiofolder directory into its splits, checking that every audio file a
/// metadata row names exists.
///
/// Fails with [`Error::Io`](crate::Error::Io) when a folder cannot be listed, and with
/// [`Error::Data`](crate::Error::Data) when a split has no audio (naming its folder),
/// metadata files mix formats or are missing from one split, a metadata row is bad (file
/// and line, as [`manifest::read`](super::manifest::read) and
/// [`table::read`](super::table::read)), or labels are required but cannot be inferred
/// from the folder names (naming `dir`).
pub fn read(dir: &Path, columns: &Columns) -> Result<SourceSplits> {
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(data_err(dir, "an audiofolder must be a directory"));
    }
    let mut splits: Vec<(SplitName, Listing)> = Vec::new();
    for entry in sorted_entries(dir)? {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(split) = split_of_folder(name)
            && entry.is_dir()
        {
            match splits.iter_mut().find(|(s, _)| *s == split) {
                Some((_, listing)) => listing.roots.push(entry),
                None => splits.push((
                    split,
                    Listing {
                        roots: vec![entry],
                        ..Listing::default()
                    },
                )),
            }
        }
    }
    if splits.is_empty() {
        splits.push((
            SplitName::Train,
            Listing {
                roots: vec![dir.to_path_buf()],
                ..Listing::default()
            },
        ));
    }
    splits.sort_by_key(|(s, _)| *s);
    for (_, listing) in &mut splits {
        for root in listing.roots.clone() {
            let depth = if root == dir { 0 } else { 1 };
            walk(&root, depth, listing)?;
        }
    }

    let with_metadata = splits.iter().any(|(_, l)| !l.metadata.is_empty());
    let mut out = SourceSplits::default();
    if with_metadata {
        let formats: BTreeSet<&str> = splits
            .iter()
            .flat_map(|(_, l)| &l.metadata)
            .filter_map(|p| p.extension().and_then(|e| e.to_str()))
            .collect();
        if formats.len() > 1 {
            return Err(data_err(
                dir,
                "metadata files mix formats (metadata.csv and metadata.jsonl); use one",
            ));
        }
        let columns = Columns {
            audio: Some(columns.audio.clone().unwrap_or_else(|| "file_name".into())),
            ..columns.clone()
        };
        for (split, listing) in &splits {
            if listing.metadata.is_empty() {
                return Err(data_err(
                    &listing.roots[0],
                    "this split has no metadata.csv or metadata.jsonl, while another has",
                ));
            }
            let mut rows = Vec::new();
            for file in &listing.metadata {
                if file.extension().is_some_and(|e| e == "csv") {
                    rows.extend(super::table::read(file, &columns)?);
                } else {
                    rows.extend(super::manifest::read(file, &columns)?);
                }
            }
            set_split(&mut out, *split, rows);
        }
        return Ok(out);
    }

    // Labels from folder names: more than one name, every file at the same depth.
    let names: BTreeSet<&str> = splits
        .iter()
        .flat_map(|(_, l)| &l.audio)
        .filter_map(|(p, _)| parent_name(p))
        .collect();
    let depths: BTreeSet<usize> = splits
        .iter()
        .flat_map(|(_, l)| l.audio.iter().map(|(_, d)| *d))
        .collect();
    let add_labels = names.len() > 1 && depths.len() == 1;
    for (split, listing) in &splits {
        if listing.audio.is_empty() {
            let folder = &listing.roots[0];
            return Err(data_err(
                folder,
                format!(
                    "no audio files ({}) in this split",
                    AUDIO_EXTENSIONS.join(", ")
                ),
            ));
        }
        if columns.require_label && !add_labels {
            return Err(data_err(
                dir,
                format!(
                    "labels cannot be taken from folder names: audio files must sit in one \
                     folder per label, all at the same depth, with at least two labels \
                     (found {} folder name(s) at {} depth(s)); or add a metadata.csv with \
                     `file_name` and `{}` columns",
                    names.len(),
                    depths.len(),
                    columns.label
                ),
            ));
        }
        let rows = listing
            .audio
            .iter()
            .map(|(path, _)| Example {
                label: add_labels.then(|| parent_name(path).unwrap_or("").to_owned()),
                origin: Origin {
                    path: path.clone(),
                    line: None,
                },
                ..Example::new(path.clone())
            })
            .collect();
        set_split(&mut out, *split, rows);
    }
    Ok(out)
}

fn set_split(out: &mut SourceSplits, split: SplitName, rows: Vec<Example>) {
    match split {
        SplitName::Train => out.train = rows,
        SplitName::Validation => out.validation = Some(rows),
        SplitName::Test => out.test = Some(rows),
    }
}

/// The name of the folder a file sits in.
fn parent_name(path: &Path) -> Option<&str> {
    path.parent()?.file_name()?.to_str()
}

/// A folder's entries, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        entries.push(entry.map_err(io_err(dir))?.path());
    }
    entries.sort();
    Ok(entries)
}

/// Collects the audio and metadata files under `folder`, which is `depth` levels below
/// the audiofolder root.
fn walk(folder: &Path, depth: usize, listing: &mut Listing) -> Result<()> {
    for path in sorted_entries(folder)? {
        // Follows symlinks, as `datasets`' glob does.
        if path.is_dir() {
            walk(&path, depth + 1, listing)?;
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if METADATA_FILE_NAMES.contains(&name) {
            listing.metadata.push(path);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            listing.audio.push((path, depth + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn split_keywords() {
        assert_eq!(split_of_folder("train"), Some(SplitName::Train));
        assert_eq!(split_of_folder("training"), Some(SplitName::Train));
        assert_eq!(split_of_folder("train-clean-100"), Some(SplitName::Train));
        assert_eq!(split_of_folder("dev"), Some(SplitName::Validation));
        assert_eq!(split_of_folder("val"), Some(SplitName::Validation));
        assert_eq!(split_of_folder("validation"), Some(SplitName::Validation));
        assert_eq!(split_of_folder("eval"), Some(SplitName::Test));
        assert_eq!(split_of_folder("test_2"), Some(SplitName::Test));
        assert_eq!(split_of_folder("trainee"), None);
        assert_eq!(split_of_folder("yes"), None);
        assert_eq!(split_of_folder("devices"), None);
    }

    #[test]
    fn labels_from_folders_with_splits() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "train/yes/b.wav", 10, 0);
        wav(d, "train/yes/a.WAV", 10, 1);
        wav(d, "train/no/c.flac.wav", 10, 2);
        std::fs::write(d.join("train/no/notes.txt"), "ignored").unwrap();
        wav(d, "validation/no/d.wav", 10, 3);
        wav(d, "test/yes/e.wav", 10, 4);
        wav(d, "stray/x.wav", 10, 5); // outside any split: ignored
        let s = read(d, &Columns::default()).unwrap();
        let names = |rows: &[Example]| {
            rows.iter()
                .map(|e| {
                    (
                        e.audio
                            .strip_prefix(d)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_owned(),
                        e.label.clone().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&s.train),
            [
                ("train/no/c.flac.wav".to_owned(), "no".to_owned()),
                ("train/yes/a.WAV".to_owned(), "yes".to_owned()),
                ("train/yes/b.wav".to_owned(), "yes".to_owned()),
            ]
        );
        assert_eq!(names(s.validation.as_deref().unwrap()).len(), 1);
        assert_eq!(names(s.test.as_deref().unwrap())[0].1, "yes");
        assert_eq!(s.train[0].origin.path, s.train[0].audio);
    }

    #[test]
    fn without_split_folders_everything_trains() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "yes/a.wav", 10, 0);
        wav(d, "no/b.wav", 10, 1);
        let s = read(d, &Columns::default()).unwrap();
        assert!(s.is_unsplit());
        assert_eq!(s.train.len(), 2);
        assert_eq!(s.train[0].label.as_deref(), Some("no"));
    }

    #[test]
    fn labels_need_two_folders_at_one_depth() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "yes/a.wav", 10, 0);
        wav(d, "yes/b.wav", 10, 1);
        let err = msg(read(d, &Columns::default()));
        assert!(
            err.starts_with(&format!("{}: labels cannot", d.display())),
            "{err}"
        );
        // Unlabelled data is fine when labels are not required.
        let asr = Columns {
            require_label: false,
            ..Columns::default()
        };
        let s = read(d, &asr).unwrap();
        assert_eq!(s.train.len(), 2);
        assert_eq!(s.train[0].label, None);
        // Two names but mixed depths: no labels either, as in `datasets`.
        wav(d, "no/deeper/c.wav", 10, 2);
        assert!(msg(read(d, &Columns::default())).contains("same depth"));
    }

    #[test]
    fn metadata_files_per_split() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "train/clips/a.wav", 10, 0);
        wav(d, "train/clips/b.wav", 10, 1);
        wav(d, "train/clips/unlisted.wav", 10, 2);
        wav(d, "test/c.wav", 10, 3);
        std::fs::write(
            d.join("train/metadata.csv"),
            "file_name,label,transcription\nclips/a.wav,yes,yes\nclips/b.wav,no,no\n",
        )
        .unwrap();
        std::fs::write(d.join("test/metadata.csv"), "file_name,label\nc.wav,yes\n").unwrap();
        let s = read(d, &Columns::default()).unwrap();
        assert_eq!(s.train.len(), 2, "only metadata rows are examples");
        assert_eq!(s.train[1].audio, d.join("train/clips/b.wav"));
        assert_eq!(s.train[1].label.as_deref(), Some("no"));
        assert_eq!(s.train[1].origin.path, d.join("train/metadata.csv"));
        assert_eq!(s.train[1].origin.line, Some(3));
        assert_eq!(s.test.as_ref().unwrap()[0].audio, d.join("test/c.wav"));
        assert_eq!(s.validation, None);

        // A bad row names the metadata file and line.
        std::fs::write(
            d.join("test/metadata.csv"),
            "file_name,label\nc.wav,yes\nz.wav,no\n",
        )
        .unwrap();
        let err = msg(read(d, &Columns::default()));
        assert!(
            err.starts_with(&format!("{}:3: ", d.join("test/metadata.csv").display())),
            "{err}"
        );
        // Mixed formats.
        std::fs::remove_file(d.join("test/metadata.csv")).unwrap();
        std::fs::write(
            d.join("test/metadata.jsonl"),
            "{\"file_name\": \"c.wav\", \"label\": \"x\"}\n",
        )
        .unwrap();
        assert!(msg(read(d, &Columns::default())).contains("mix formats"));
        // One split without metadata.
        std::fs::remove_file(d.join("test/metadata.jsonl")).unwrap();
        let err = msg(read(d, &Columns::default()));
        assert!(
            err.starts_with(&format!("{}: ", d.join("test").display())),
            "{err}"
        );
        assert!(err.contains("no metadata"), "{err}");
    }

    #[test]
    fn metadata_jsonl_at_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "a.wav", 10, 0);
        std::fs::write(
            d.join("metadata.jsonl"),
            "{\"file_name\": \"a.wav\", \"label\": \"on\", \"speaker_id\": 4}\n",
        )
        .unwrap();
        let columns = Columns {
            group: Some("speaker_id".into()),
            ..Columns::default()
        };
        let s = read(d, &columns).unwrap();
        assert_eq!(s.train[0].group.as_deref(), Some("4"));
    }

    #[test]
    fn empty_split_names_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "train/yes/a.wav", 10, 0);
        wav(d, "train/no/b.wav", 10, 1);
        std::fs::create_dir_all(d.join("validation/yes")).unwrap();
        let err = msg(read(d, &Columns::default()));
        assert!(
            err.starts_with(&format!(
                "{}: no audio files",
                d.join("validation").display()
            )),
            "{err}"
        );
        assert!(read(&d.join("nope"), &Columns::default()).is_err());
    }
}
