//! JSON Lines manifests: one JSON object per line.
//!
//! ```text
//! {"audio": "clips/yes_001.wav", "label": "yes", "speaker": "s01"}
//! {"audio": {"path": "clips/no_004.wav"}, "label": "no", "speaker": "s02", "duration": 0.91}
//! ```
//!
//! The audio path is a string, or an object with a `path` string (the shape of a Hugging
//! Face `Audio` value); a relative path is taken relative to the manifest's folder. Label,
//! text and group may be strings, numbers or booleans and are read as their text (`3` is
//! the label `"3"`); `null` counts as absent. Blank lines are skipped; any other line that
//! is not a JSON object fails, naming the manifest and the line.

use std::path::Path;

use serde_json::Value;

use super::columns::{Row, example_from_row};
use super::{Columns, Example, Origin, data_err};
use crate::Result;
use crate::error::io_err;

/// Reads a JSONL manifest into examples, in line order.
///
/// Fails with [`Error::Io`](crate::Error::Io) when the file cannot be read, and with
/// [`Error::Data`](crate::Error::Data) naming the file and line when a line is not a JSON
/// object, lacks the audio path or a required column, or names an audio file that does
/// not exist (checked here, up front), and naming the file alone when it has no rows.
pub fn read(path: &Path, columns: &Columns) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = Origin {
            path: path.to_path_buf(),
            line: Some(i + 1),
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| origin.error(format!("not valid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(origin.error("not a JSON object"));
        };
        examples.push(example_from_row(
            &JsonRow(object),
            columns,
            base_dir,
            origin,
        )?);
    }
    if examples.is_empty() {
        return Err(data_err(path, "no examples: the manifest has no rows"));
    }
    Ok(examples)
}

/// A manifest line, parsed.
struct JsonRow(serde_json::Map<String, Value>);

impl Row for JsonRow {
    fn get(&self, column: &str) -> std::result::Result<Option<String>, String> {
        let value = match self.0.get(column) {
            None | Some(Value::Null) => return Ok(None),
            // The `datasets` library's `Audio` feature: {"path": ..., "bytes": ...}.
            Some(Value::Object(o)) => match o.get("path") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(format!("`{column}` is an object without a `path` string"));
                }
            },
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Array(_)) => return Err(format!("`{column}` is a list, not a value")),
        };
        Ok((!value.is_empty()).then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn reads_rows_with_relative_and_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "clips/a.wav", 100, 0);
        wav(d, "clips/b.wav", 100, 1);
        let abs = d.join("clips/b.wav");
        let manifest = d.join("sub/m.jsonl");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(
            &manifest,
            format!(
                "{{\"audio\": \"../clips/a.wav\", \"label\": \"yes\", \"text\": \"yes please\", \"spk\": \"s1\"}}\n\
                 \n\
                 {{\"audio\": {{\"path\": \"{}\"}}, \"label\": 3, \"spk\": 7, \"duration\": 0.5}}\n",
                abs.display()
            ),
        )
        .unwrap();
        let columns = Columns {
            group: Some("spk".into()),
            ..Columns::default()
        };
        let rows = read(&manifest, &columns).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].audio, d.join("sub/../clips/a.wav"));
        assert!(rows[0].audio.is_file());
        assert_eq!(rows[0].label.as_deref(), Some("yes"));
        assert_eq!(rows[0].text.as_deref(), Some("yes please"));
        assert_eq!(rows[0].group.as_deref(), Some("s1"));
        assert_eq!(rows[0].origin.line, Some(1));
        assert_eq!(rows[1].audio, abs);
        assert_eq!(rows[1].label.as_deref(), Some("3"));
        assert_eq!(rows[1].group.as_deref(), Some("7"));
        assert_eq!(rows[1].duration_s, Some(0.5));
        assert_eq!(rows[1].origin.line, Some(3), "blank lines still count");
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "a.wav", 10, 0);
        let m = d.join("m.jsonl");
        let check = |body: &str, line: usize, needle: &str| {
            std::fs::write(&m, body).unwrap();
            let err = msg(read(&m, &Columns::default()));
            let want = format!("{}:{line}: ", m.display());
            assert!(err.starts_with(&want), "{err:?} should start with {want:?}");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        };
        let ok = "{\"audio\": \"a.wav\", \"label\": \"x\"}\n";
        check(
            &format!("{ok}{{\"audio\": \"a.wav\", "),
            2,
            "not valid JSON",
        );
        check(&format!("{ok}[1, 2]\n"), 2, "not a JSON object");
        check(
            &format!("{ok}{ok}{{\"label\": \"x\"}}\n"),
            3,
            "no audio path",
        );
        check("{\"audio\": \"a.wav\"}\n", 1, "no `label`");
        check("{\"audio\": \"a.wav\", \"label\": null}\n", 1, "no `label`");
        check(
            &format!("{ok}{{\"audio\": \"missing.wav\", \"label\": \"x\"}}\n"),
            2,
            "missing.wav",
        );
        check("{\"audio\": \"a.wav\", \"label\": [1]}\n", 1, "is a list");
        check(
            "{\"audio\": {\"bytes\": 1}, \"label\": \"x\"}\n",
            1,
            "without a `path`",
        );
        check(
            "{\"audio\": \"a.wav\", \"label\": \"x\", \"duration\": -1}\n",
            1,
            "not a duration",
        );
        check("{\"audio\": \".\", \"label\": \"x\"}\n", 1, "not a file");

        // A group column, once named, is required.
        std::fs::write(&m, ok).unwrap();
        let grouped = Columns {
            group: Some("speaker".into()),
            ..Columns::default()
        };
        assert!(msg(read(&m, &grouped)).contains(":1: no `speaker`"));
        // An empty manifest is an empty split.
        std::fs::write(&m, "\n\n").unwrap();
        let err = msg(read(&m, &Columns::default()));
        assert!(
            err.starts_with(&format!("{}: no examples", m.display())),
            "{err}"
        );
    }

    #[test]
    fn labels_optional_text_required_for_asr() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "a.wav", 10, 0);
        let m = d.join("m.jsonl");
        std::fs::write(&m, "{\"path\": \"a.wav\", \"sentence\": \"hello\"}\n").unwrap();
        let asr = Columns {
            text: "sentence".into(),
            require_label: false,
            require_text: true,
            ..Columns::default()
        };
        let rows = read(&m, &asr).unwrap();
        assert_eq!(rows[0].text.as_deref(), Some("hello"));
        assert_eq!(rows[0].label, None);
        let named = Columns {
            audio: Some("audio".into()),
            ..asr
        };
        assert!(msg(read(&m, &named)).contains("no audio path (looked for `audio`)"));
    }
}
