//! The Free Spoken Digit Dataset's layout: one folder of `{digit}_{speaker}_{index}.wav`.
//!
//! The digit benchmark and tests train on it, so its convention lives here once: the label
//! is the digit, the group is the speaker, and takes `0`–`4` of every digit and speaker are
//! the test split (the dataset's own rule), `5` and up the training split. Recordings are
//! 8 kHz mono; [`AudioSet::load`](super::AudioSet::load) resamples them.

use std::path::Path;

use super::{Example, data_err};
use crate::Result;
use crate::error::io_err;

/// Takes below this index are the test split.
pub const TEST_TAKES: u32 = 5;

/// The parts of an FSDD file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsddName {
    /// The spoken digit, 0–9.
    pub digit: u8,
    /// The speaker's name.
    pub speaker: String,
    /// The take number.
    pub index: u32,
}

/// Parses `{digit}_{speaker}_{index}.wav`; `None` for any other name.
pub fn parse_name(file_name: &str) -> Option<FsddName> {
    let stem = file_name.strip_suffix(".wav")?;
    let mut parts = stem.split('_');
    let digit = parts.next()?;
    let speaker = parts.next()?;
    let index = parts.next()?;
    if parts.next().is_some() || digit.len() != 1 || speaker.is_empty() {
        return None;
    }
    let digit = digit.parse::<u8>().ok()?;
    let index = index.parse::<u32>().ok()?;
    Some(FsddName {
        digit,
        speaker: speaker.to_owned(),
        index,
    })
}

/// The FSDD examples of a folder, split by the dataset's convention.
#[derive(Debug, Clone, PartialEq)]
pub struct FsddSplits {
    /// Takes `5` and up, sorted by file name.
    pub train: Vec<Example>,
    /// Takes `0`–`4`, sorted by file name.
    pub test: Vec<Example>,
}

/// Lists `dir` (the dataset's `recordings` folder): label = digit, group = speaker.
///
/// Fails with [`Error::Io`](crate::Error::Io) when the folder cannot be listed and with
/// [`Error::Data`](crate::Error::Data) naming a `.wav` file whose name does not follow the
/// pattern, or the folder when either split is empty.
pub fn read(dir: &Path) -> Result<FsddSplits> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "wav") {
            files.push(path);
        }
    }
    files.sort();
    let mut out = FsddSplits {
        train: Vec::new(),
        test: Vec::new(),
    };
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(parsed) = parse_name(name) else {
            return Err(data_err(
                &path,
                "not an FSDD recording name (`{digit}_{speaker}_{index}.wav`)",
            ));
        };
        let example = Example {
            label: Some(parsed.digit.to_string()),
            group: Some(parsed.speaker),
            ..Example::new(path)
        };
        if parsed.index < TEST_TAKES {
            out.test.push(example);
        } else {
            out.train.push(example);
        }
    }
    if out.train.is_empty() || out.test.is_empty() {
        return Err(data_err(
            dir,
            format!(
                "no FSDD recordings for the {} split",
                if out.train.is_empty() {
                    "train"
                } else {
                    "test"
                }
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::testutil::*;
    use super::super::{AudioSet, Columns, LabelVocab, Source};
    use super::*;

    /// The shared FSDD copy, `../shared/data/fsdd/recordings` from the repository root.
    fn recordings() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/fsdd/recordings");
        if dir.is_dir() {
            Some(dir)
        } else {
            println!(
                "skipped: {} is absent (see /work/shared/data/fsdd/README.md)",
                dir.display()
            );
            None
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            parse_name("7_theo_12.wav"),
            Some(FsddName {
                digit: 7,
                speaker: "theo".into(),
                index: 12
            })
        );
        for bad in [
            "7_theo.wav",
            "77_theo_1.wav",
            "x_theo_1.wav",
            "7__1.wav",
            "7_theo_1_2.wav",
            "7_theo_1.flac",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_a_synthetic_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["0_ann_0.wav", "0_ann_5.wav", "1_bob_4.wav", "1_bob_49.wav"] {
            write_wav(&d.join(name), &tone(80, 0), 8_000);
        }
        std::fs::write(d.join("README.md"), "ignored").unwrap();
        let s = read(d).unwrap();
        assert_eq!(s.train.len(), 2);
        assert_eq!(s.test.len(), 2);
        assert_eq!(s.train[1].label.as_deref(), Some("1"));
        assert_eq!(s.train[1].group.as_deref(), Some("bob"));
        write_wav(&d.join("oops.wav"), &tone(80, 0), 8_000);
        assert!(msg(read(d)).contains("oops.wav: not an FSDD"));
    }

    #[test]
    fn real_recordings_via_fsdd_layout() {
        let Some(dir) = recordings() else { return };
        let s = read(&dir).unwrap();
        assert!(s.test.len() * 9 == s.train.len(), "5 of 50 takes are test");
        let speakers: std::collections::BTreeSet<_> =
            s.train.iter().map(|e| e.group.clone()).collect();
        assert!(speakers.len() >= 2);
        assert!(s.test.iter().all(|e| {
            parse_name(e.audio.file_name().unwrap().to_str().unwrap())
                .unwrap()
                .index
                < TEST_TAKES
        }));
    }

    #[test]
    fn real_recordings_via_manifest_resampled_to_16k() {
        let Some(dir) = recordings() else { return };
        let names = [
            "0_jackson_0.wav",
            "3_theo_7.wav",
            "9_yweweler_42.wav",
            "5_nicolas_3.wav",
        ];
        let tmp = tempfile::tempdir().unwrap();
        let manifest = tmp.path().join("fsdd.jsonl");
        let mut body = String::new();
        for n in names {
            let parsed = parse_name(n).unwrap();
            body += &format!(
                "{{\"audio\": \"{}\", \"label\": \"{}\", \"speaker\": \"{}\"}}\n",
                dir.join(n).display(),
                parsed.digit,
                parsed.speaker
            );
        }
        std::fs::write(&manifest, body).unwrap();
        let columns = Columns {
            group: Some("speaker".into()),
            ..Columns::default()
        };
        let rows = Source::Jsonl(manifest).read(&columns).unwrap().train;
        let vocab = LabelVocab::from_examples(&rows);
        assert_eq!(vocab.labels(), ["0", "3", "5", "9"]);
        let set = AudioSet::load(rows, &vocab, 16_000).unwrap();
        for (i, n) in names.iter().enumerate() {
            let native = hound::WavReader::open(dir.join(n)).unwrap();
            assert_eq!(native.spec().sample_rate, 8_000);
            let n_native = native.duration() as usize;
            assert_eq!(
                set.lengths()[i],
                2 * n_native,
                "{n}: 8 kHz -> 16 kHz doubles the length"
            );
            let peak = set
                .samples(i)
                .unwrap()
                .iter()
                .fold(0f32, |m, x| m.max(x.abs()));
            assert!(peak > 0.01 && peak < 1.5, "{n}: peak {peak}");
        }
        assert_eq!(set.label_ids(), Some(&[0, 1, 3, 2][..]));
    }
}
