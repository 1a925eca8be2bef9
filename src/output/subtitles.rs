//! SubRip and WebVTT subtitles: one cue per transcript segment.

use crate::result::Transcript;

/// A subtitle cue: a time span and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue<'a> {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// The text shown.
    pub text: &'a str,
}

pub(super) fn transcript(t: &Transcript, vtt: bool) -> String {
    let cues: Vec<Cue<'_>> = t
        .segments
        .iter()
        .filter(|s| !s.text.trim().is_empty())
        .map(|s| Cue {
            start_s: s.start_s,
            end_s: s.end_s,
            text: s.text.trim(),
        })
        .collect();
    render_cues(&cues, vtt)
}

/// SubRip (`00:00:01,500`, numbered cues) or WebVTT (`WEBVTT` header, `00:00:01.500`)
/// text of `cues`.
pub fn render_cues(cues: &[Cue<'_>], vtt: bool) -> String {
    let stamp = |s: f64| {
        let ms = (s.max(0.0) * 1000.0).round() as u64;
        let (h, m, sec, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        let sep = if vtt { '.' } else { ',' };
        format!("{h:02}:{m:02}:{sec:02}{sep}{milli:03}")
    };
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, c) in cues.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(c.start_s),
            stamp(c.end_s),
            c.text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_and_vtt_stamps() {
        let cues = [Cue {
            start_s: 3661.5,
            end_s: 3662.0004,
            text: "hi",
        }];
        assert_eq!(
            render_cues(&cues, false),
            "1\n01:01:01,500 --> 01:01:02,000\nhi\n\n"
        );
        assert_eq!(
            render_cues(&cues, true),
            "WEBVTT\n\n01:01:01.500 --> 01:01:02.000\nhi\n\n"
        );
    }
}
