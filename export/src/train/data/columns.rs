//! Which columns of a manifest or table hold what, and the one place a row becomes an
//! [`Example`], so the JSONL, CSV and audiofolder-metadata readers check rows identically.

use std::path::Path;

use super::{Example, Origin};
use crate::Result;

/// The audio column names tried, in order, when [`Columns::audio`] is `None`: the
/// manifest convention, Hugging Face audiofolder metadata, a common CSV name, and NeMo's.
pub const AUDIO_COLUMNS: [&str; 4] = ["audio", "file_name", "path", "audio_filepath"];

/// Column names, and which of them every row must have.
///
/// The default suits classification: audio from the first of [`AUDIO_COLUMNS`] present,
/// a required `label`, an optional `text` and `duration`, no group column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// The audio path column; `None` tries [`AUDIO_COLUMNS`] in order.
    pub audio: Option<String>,
    /// The class label column.
    pub label: String,
    /// The transcript column.
    pub text: String,
    /// The group (speaker) column. When set, every row must have it, so that a ratio
    /// split can never leave one speaker's rows ungrouped.
    pub group: Option<String>,
    /// The duration column, in seconds (a hint, see [`Example::duration_s`]).
    pub duration: String,
    /// Every row must have a label (classification).
    pub require_label: bool,
    /// Every row must have a transcript (speech recognition).
    pub require_text: bool,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            audio: None,
            label: "label".into(),
            text: "text".into(),
            group: None,
            duration: "duration".into(),
            require_label: true,
            require_text: false,
        }
    }
}

impl Columns {
    /// The audio column names to try, in order.
    pub(crate) fn audio_candidates(&self) -> Vec<&str> {
        match &self.audio {
            Some(name) => vec![name.as_str()],
            None => AUDIO_COLUMNS.to_vec(),
        }
    }

    /// The audio column names tried, for messages: `` `audio`, `file_name` ``.
    pub(crate) fn audio_names(&self) -> String {
        self.audio_candidates()
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One row of a manifest or table, by column name.
pub(crate) trait Row {
    /// The cell's text: `Ok(None)` when the column is absent, null or empty, `Err(why)`
    /// when it holds something that is not a scalar.
    fn get(&self, column: &str) -> std::result::Result<Option<String>, String>;
}

/// Turns a row into an [`Example`]: finds the audio path (relative to `base_dir`), checks
/// that the file exists, and reads label, text, group and duration, enforcing what
/// `columns` requires. Every error names `origin`.
pub(crate) fn example_from_row(
    row: &dyn Row,
    columns: &Columns,
    base_dir: &Path,
    origin: Origin,
) -> Result<Example> {
    let get = |column: &str| row.get(column).map_err(|why| origin.error(why));
    let mut audio = None;
    for candidate in columns.audio_candidates() {
        if let Some(value) = get(candidate)? {
            audio = Some(value);
            break;
        }
    }
    let Some(audio) = audio else {
        return Err(origin.error(format!(
            "no audio path (looked for {})",
            columns.audio_names()
        )));
    };
    let audio = base_dir.join(audio);
    match std::fs::metadata(&audio) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(origin.error(format!("audio path `{}` is not a file", audio.display())));
        }
        Err(e) => {
            return Err(origin.error(format!(
                "audio file `{}` cannot be read: {e}",
                audio.display()
            )));
        }
    }
    let label = get(&columns.label)?;
    if columns.require_label && label.is_none() {
        return Err(origin.error(format!("no `{}` (the label column)", columns.label)));
    }
    let text = get(&columns.text)?;
    if columns.require_text && text.is_none() {
        return Err(origin.error(format!("no `{}` (the transcript column)", columns.text)));
    }
    let group = match &columns.group {
        None => None,
        Some(name) => match get(name)? {
            Some(g) => Some(g),
            None => return Err(origin.error(format!("no `{name}` (the group column)"))),
        },
    };
    let duration_s = match get(&columns.duration)? {
        None => None,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(d) if d.is_finite() && d >= 0.0 => Some(d),
            _ => {
                return Err(origin.error(format!(
                    "`{}` is `{s}`, not a duration in seconds",
                    columns.duration
                )));
            }
        },
    };
    Ok(Example {
        audio,
        label,
        text,
        group,
        duration_s,
        origin,
    })
}
