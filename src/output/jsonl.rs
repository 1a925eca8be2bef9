//! JSON lines for live events, with exactly the keys other tools rely on:
//! `{"event", "text", "start", "end", "wall"}`, plus `"label"` and `"score"` for labels
//! and `"words"` for finals that have word times.

use serde::Serialize;

use crate::stream::Emitted;
use crate::stream::Event;

#[derive(Serialize)]
struct WordOut<'a> {
    word: &'a str,
    start: f64,
    end: f64,
}

#[derive(Serialize)]
struct Line<'a> {
    event: &'static str,
    text: &'a str,
    start: f64,
    end: f64,
    wall: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<WordOut<'a>>>,
}

/// Rounds seconds to the millisecond, so lines stay short and stable.
fn ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// One event as one JSON line, newline included.
pub fn event_line(e: &Emitted) -> String {
    let (start, end) = e.event.span();
    let (label, score, words) = match &e.event {
        Event::Label { label, score, .. } => (Some(label.as_str()), Some(*score), None),
        Event::Final { words, .. } if !words.is_empty() => (
            None,
            None,
            Some(
                words
                    .iter()
                    .map(|w| WordOut {
                        word: &w.word,
                        start: ms(w.start_s),
                        end: ms(w.end_s),
                    })
                    .collect(),
            ),
        ),
        _ => (None, None, None),
    };
    let line = Line {
        event: e.event.name(),
        text: e.event.text(),
        start: ms(start),
        end: ms(end),
        wall: ms(e.wall_s),
        label,
        score,
        words,
    };
    // Serializing plain strings and finite numbers cannot fail; keep the line anyway.
    let mut s = serde_json::to_string(&line).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Word;

    #[test]
    fn lines_have_exactly_the_documented_keys() {
        let keys = |e: Event| {
            let line = event_line(&Emitted {
                event: e,
                wall_s: 1.23456,
            });
            assert!(line.ends_with('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            (k, v)
        };
        let base = ["end", "event", "start", "text", "wall"];
        let (k, v) = keys(Event::SpeechStart { start_s: 0.5 });
        assert_eq!(k, base);
        assert_eq!(v["event"], "speech_start");
        assert_eq!(v["wall"], 1.235);
        let (k, v) = keys(Event::Label {
            label: "happy".into(),
            score: 0.75,
            start_s: 0.0,
            end_s: 2.0,
        });
        assert_eq!(
            k,
            ["end", "event", "label", "score", "start", "text", "wall"]
        );
        assert_eq!(
            (v["text"].as_str(), v["label"].as_str()),
            (Some("happy"), Some("happy"))
        );
        let (k, v) = keys(Event::Final {
            text: "hi there".into(),
            start_s: 1.0,
            end_s: 2.0,
            words: vec![Word {
                word: "hi".into(),
                start_s: 1.0,
                end_s: 1.2,
            }],
            avg_logprob: None,
            no_speech_prob: None,
        });
        assert_eq!(k, ["end", "event", "start", "text", "wall", "words"]);
        assert_eq!(v["words"][0]["word"], "hi");
        let (k, _) = keys(Event::Partial {
            text: "hi".into(),
            start_s: 1.0,
            end_s: 2.0,
        });
        assert_eq!(k, base);
    }
}
