//! CSV tables with a header row (tab-separated for a `.tsv` file, as Common Voice ships).
//!
//! ```text
//! file_name,label,speaker
//! clips/yes_001.wav,yes,s01
//! ```
//!
//! The audio column is the first of `audio`, `file_name`, `path`, `audio_filepath` in the
//! header (or the one [`Columns::audio`] names); a relative path is taken relative to the
//! table's folder. Cells are trimmed and an empty cell counts as absent. The header is
//! checked first, so a table without its audio or required label column fails at line 1
//! rather than at every row. Lines are the file's physical lines (a quoted cell spanning
//! lines advances them), as the `csv` crate counts them.

use std::path::Path;

use super::columns::{Row, example_from_row};
use super::{Columns, Example, Origin, data_err};
use crate::Result;
use crate::error::io_err;

/// Reads a CSV (or `.tsv`) table into examples, in row order.
///
/// Fails with [`Error::Io`](crate::Error::Io) when the file cannot be opened, and with
/// [`Error::Data`](crate::Error::Data) naming the file and line when the header lacks the
/// audio column or a required column, a row is malformed (wrong number of cells, not
/// UTF-8) or lacks a required value, or an audio file does not exist (checked here, up
/// front); naming the file alone when it has no rows.
pub fn read(path: &Path, columns: &Columns) -> Result<Vec<Example>> {
    let is_tsv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(if is_tsv { b'\t' } else { b',' })
        .trim(csv::Trim::All)
        .from_reader(file);
    let at = |line: Option<u64>| Origin {
        path: path.to_path_buf(),
        line: line.and_then(|l| usize::try_from(l).ok()),
    };
    let csv_err = |e: csv::Error| {
        let line = e.position().map(csv::Position::line);
        at(line).error(format!("not a valid table row: {e}"))
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_owned)
        .collect();
    let header_at = at(Some(1));
    if !columns
        .audio_candidates()
        .iter()
        .any(|c| header.iter().any(|h| h == c))
    {
        return Err(header_at.error(format!(
            "the header has no audio column (looked for {})",
            columns.audio_names()
        )));
    }
    let mut required = Vec::new();
    if columns.require_label {
        required.push(&columns.label);
    }
    if columns.require_text {
        required.push(&columns.text);
    }
    required.extend(&columns.group);
    if let Some(missing) = required.iter().find(|c| !header.contains(c)) {
        return Err(header_at.error(format!("the header has no `{missing}` column")));
    }

    let base_dir = path.parent().unwrap_or(Path::new(""));
    let mut examples = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let origin = at(record.position().map(csv::Position::line));
        let row = CsvRow {
            header: &header,
            record: &record,
        };
        examples.push(example_from_row(&row, columns, base_dir, origin)?);
    }
    if examples.is_empty() {
        return Err(data_err(path, "no examples: the table has no rows"));
    }
    Ok(examples)
}

/// A table row with its header.
struct CsvRow<'a> {
    header: &'a [String],
    record: &'a csv::StringRecord,
}

impl Row for CsvRow<'_> {
    fn get(&self, column: &str) -> std::result::Result<Option<String>, String> {
        Ok(self
            .header
            .iter()
            .position(|h| h == column)
            .and_then(|i| self.record.get(i))
            .filter(|v| !v.is_empty())
            .map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn reads_csv_and_tsv() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "clips/a.wav", 10, 0);
        wav(d, "clips/b.wav", 10, 1);
        let t = d.join("t.csv");
        std::fs::write(
            &t,
            "file_name, label ,speaker,text\nclips/a.wav,yes,s1,\"yes, sir\"\nclips/b.wav, no ,s2,\n",
        )
        .unwrap();
        let columns = Columns {
            group: Some("speaker".into()),
            ..Columns::default()
        };
        let rows = read(&t, &columns).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].audio, d.join("clips/a.wav"));
        assert_eq!(rows[0].text.as_deref(), Some("yes, sir"));
        assert_eq!(rows[1].label.as_deref(), Some("no"), "cells are trimmed");
        assert_eq!(rows[1].group.as_deref(), Some("s2"));
        assert_eq!(rows[1].text, None, "an empty cell is absent");
        assert_eq!(rows[0].origin.line, Some(2));
        assert_eq!(rows[1].origin.line, Some(3));

        let t = d.join("t.tsv");
        std::fs::write(&t, "path\tlabel\nclips/a.wav\tyes\n").unwrap();
        let rows = read(&t, &Columns::default()).unwrap();
        assert_eq!(rows[0].label.as_deref(), Some("yes"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        wav(d, "a.wav", 10, 0);
        let t = d.join("t.csv");
        let check = |body: &str, line: usize, needle: &str| {
            std::fs::write(&t, body).unwrap();
            let err = msg(read(&t, &Columns::default()));
            let want = format!("{}:{line}: ", t.display());
            assert!(err.starts_with(&want), "{err:?} should start with {want:?}");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        };
        check("wav,label\na.wav,x\n", 1, "no audio column");
        check("audio,class\na.wav,x\n", 1, "no `label` column");
        check("audio,label\na.wav,x\na.wav\n", 3, "not a valid table row");
        check("audio,label\na.wav,x\na.wav,\n", 3, "no `label`");
        check("audio,label\na.wav,x\n,x\n", 3, "no audio path");
        check("audio,label\n\"a\nb.wav\",x\nc.wav,y\n", 2, "b.wav");
        check("audio,label\na.wav,x\nc.wav,y\n", 3, "c.wav");
        std::fs::write(&t, "audio,label\n").unwrap();
        assert!(msg(read(&t, &Columns::default())).contains("no examples"));
        let grouped = Columns {
            group: Some("speaker".into()),
            ..Columns::default()
        };
        std::fs::write(&t, "audio,label\na.wav,x\n").unwrap();
        assert!(msg(read(&t, &grouped)).contains(":1: the header has no `speaker` column"));
    }
}
