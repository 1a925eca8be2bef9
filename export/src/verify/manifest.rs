//! Evaluation manifests: JSON lines `{"audio": path, "text": reference}`.
//!
//! The format `hearken eval` reads, so that one file measures a model in the runtime
//! and gates its export here. Relative audio paths are resolved against the manifest's
//! folder, so a manifest travels with its audio.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};

/// One utterance of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The audio file, resolved against the manifest's folder.
    pub audio: PathBuf,
    /// The reference transcript.
    pub text: String,
}

/// Reads the manifest at `path`: one entry per non-empty line, in file order. Fields
/// other than `audio` and `text` are ignored; audio files are not opened.
///
/// Fails with [`Error::Io`] when the file cannot be read, and [`Error::Manifest`] (naming
/// the line) for a line that is not JSON or lacks a string `audio` or `text`.
pub fn read_manifest(path: impl AsRef<Path>) -> Result<Vec<ManifestEntry>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| error(format!("not JSON: {e}")))?;
        let (Some(audio), Some(reference)) = (v["audio"].as_str(), v["text"].as_str()) else {
            return Err(error(r#"expected {"audio": ..., "text": ...}"#.into()));
        };
        entries.push(ManifestEntry {
            audio: base.join(audio),
            text: reference.to_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_audio_against_the_manifest_folder_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(
            &path,
            "{\"audio\": \"a.wav\", \"text\": \"one\", \"speaker\": 3}\n\n\
             {\"audio\": \"/abs/b.ogg\", \"text\": \"two\"}\n",
        )
        .unwrap();
        let entries = read_manifest(&path).unwrap();
        assert_eq!(
            entries,
            [
                ManifestEntry {
                    audio: dir.path().join("a.wav"),
                    text: "one".into()
                },
                ManifestEntry {
                    audio: "/abs/b.ogg".into(),
                    text: "two".into()
                },
            ]
        );

        std::fs::write(
            &path,
            "{\"audio\": \"a.wav\", \"text\": \"x\"}\n{\"audio\": 3}\n",
        )
        .unwrap();
        let e = read_manifest(&path).unwrap_err();
        assert!(matches!(e, Error::Manifest { line: 2, .. }), "{e}");
        std::fs::write(&path, "not json\n").unwrap();
        let e = read_manifest(&path).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:1: not JSON"), "{e}");
        let e = read_manifest(dir.path().join("absent.jsonl")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
