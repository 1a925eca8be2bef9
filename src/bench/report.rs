//! The outputs: an aligned table for people, CSV with flattened statistics, and the
//! chart's panels (drawn by the command line). JSON is the rows' own serialization (see
//! [`Row`]).

use std::path::Path;

use super::machine::Machine;
use super::{Row, Stats, Status, status_name};

/// One chart bar: which input (`group`), which configuration (`series`), its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The input it was measured on; bars of one group are drawn together.
    pub group: String,
    /// The configuration (`ort/cpu`); one colour per series across panels.
    pub series: String,
    /// The value, in the panel's unit.
    pub value: f64,
}

/// One chart panel: a title and its bars, on a common scale starting at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title, including the unit (`end-to-end p50 (ms)`).
    pub title: String,
    /// Bars in drawing order; groups keep their first-appearance order.
    pub bars: Vec<Bar>,
}

/// The machine summary cut into chart-footer lines of at most 80 characters.
pub fn footer_lines(m: &Machine) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in m.summary().split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > 80 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A real-time factor: three decimals, or two significant digits below 0.001.
fn rtf(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

/// Milliseconds: one decimal below 100, none above.
fn ms(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// The human table: machine line, aligned columns, then notes on rows that need them.
pub fn table(machine: &Machine, model: &Path, rows: &[Row]) -> String {
    type Cell = fn(&Row) -> Option<String>;
    let columns: Vec<(&str, Cell, bool)> = vec![
        ("engine", |r| Some(r.engine.clone()), true),
        ("provider", |r| Some(r.provider.clone()), true),
        ("input", |r| Some(r.input.clone()), true),
        ("audio s", |r| Some(format!("{:.1}", r.audio_s)), true),
        ("status", |r| Some(status_name(r.status).into()), false),
        ("load ms", |r| r.load_ms.map(ms), false),
        ("feat p50", |r| r.features_ms.map(|s| ms(s.p50)), false),
        ("enc p50", |r| r.encoder_ms.map(|s| ms(s.p50)), false),
        ("fwd p50", |r| r.forward_ms.map(|s| ms(s.p50)), false),
        ("tok p50", |r| r.decoder_token_ms.map(|s| ms(s.p50)), false),
        (
            "1st tok p50",
            |r| r.first_token_ms.map(|s| ms(s.p50)),
            false,
        ),
        ("total p50", |r| r.total_ms.map(|s| ms(s.p50)), false),
        ("p90", |r| r.total_ms.map(|s| ms(s.p90)), false),
        ("p99", |r| r.total_ms.map(|s| ms(s.p99)), false),
        ("min", |r| r.total_ms.map(|s| ms(s.min)), false),
        ("max", |r| r.total_ms.map(|s| ms(s.max)), false),
        ("RTF p50", |r| r.rtf.map(|s| rtf(s.p50)), false),
        (
            "RSS MiB",
            |r| r.peak_rss_mb.map(|v| format!("{v:.0}")),
            false,
        ),
        ("threads", |r| r.threads.map(|n| n.to_string()), false),
    ];
    let all_ok = rows.iter().all(|r| r.status == Status::Ok);
    // Drop columns no row has a value for (encoder vs forward), and status when all ok.
    let columns: Vec<(&str, Cell, bool)> = columns
        .into_iter()
        .filter(|(name, cell, keep)| {
            *keep
                || (*name == "status" && !all_ok)
                || (*name != "status" && rows.iter().any(|r| cell(r).is_some()))
        })
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|(_, cell, _)| cell(r).unwrap_or_else(|| "-".into()))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| -> String {
        values
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (v, w))| {
                // Text columns left-aligned, numbers right-aligned.
                if i < 3 || columns[i].0 == "status" {
                    format!("{v:<w$}")
                } else {
                    format!("{v:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&format!("model: {}\n", model.display()));
    out.push_str(&format!("machine: {}\n", machine.summary()));
    let n_runs = rows.iter().map(|r| r.runs).max().unwrap_or(0);
    match rows.first().map(|r| r.search.as_str()) {
        Some(search) if search != "none" => out.push_str(&format!(
            "search: {search}; times in ms over {n_runs} timed run(s); tok: decoder time per \
             call; 1st tok: first window's features + encoder + prompt step\n\n"
        )),
        _ => out.push_str(&format!("times in ms over {n_runs} timed run(s)\n\n")),
    }
    out.push_str(&line(columns.iter().map(|(n, _, _)| *n).collect()));
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    let mut notes: Vec<String> = Vec::new();
    for r in rows {
        if let Some(reason) = &r.reason {
            let note = format!("{}: {}: {reason}", r.config(), status_name(r.status));
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One header line, one line per row; statistics flattened as `<metric>_<stat>`.
pub fn csv(machine: &Machine, rows: &[Row]) -> String {
    type Metric = fn(&Row) -> Option<Stats>;
    let metrics: [(&str, Metric); 7] = [
        ("features_ms", |r| r.features_ms),
        ("encoder_ms", |r| r.encoder_ms),
        ("forward_ms", |r| r.forward_ms),
        ("decoder_token_ms", |r| r.decoder_token_ms),
        ("first_token_ms", |r| r.first_token_ms),
        ("total_ms", |r| r.total_ms),
        ("rtf", |r| r.rtf),
    ];
    let stats = ["p50", "p90", "p99", "min", "max", "mean"];
    let mut header: Vec<String> = [
        "engine",
        "provider",
        "input",
        "status",
        "audio_s",
        "load_ms",
        "peak_rss_mb",
        "threads",
        "search",
        "runs",
        "n_tokens",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (m, _) in &metrics {
        header.extend(stats.iter().map(|s| format!("{m}_{s}")));
    }
    header.extend(
        [
            "fallback_nodes",
            "reason",
            "text",
            "cpu",
            "logical_cores",
            "gpu",
            "os",
            "onnxruntime",
            "tract",
            "date",
        ]
        .map(String::from),
    );
    let opt = |v: Option<String>| v.unwrap_or_default();
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        let mut f: Vec<String> = vec![
            r.engine.clone(),
            r.provider.clone(),
            r.input.clone(),
            status_name(r.status).into(),
            format!("{}", r.audio_s),
            opt(r.load_ms.map(|v| format!("{v:.3}"))),
            opt(r.peak_rss_mb.map(|v| format!("{v:.1}"))),
            opt(r.threads.map(|v| v.to_string())),
            r.search.clone(),
            r.runs.to_string(),
            opt(r.n_tokens.map(|v| v.to_string())),
        ];
        for (_, get) in &metrics {
            match get(r) {
                Some(s) => {
                    f.extend([s.p50, s.p90, s.p99, s.min, s.max, s.mean].map(|v| format!("{v:.4}")))
                }
                None => f.extend(stats.iter().map(|_| String::new())),
            }
        }
        f.push(r.fallback_nodes.len().to_string());
        f.push(opt(r.reason.clone()));
        f.push(opt(r.text.clone()));
        f.push(machine.cpu.clone());
        f.push(machine.logical_cores.to_string());
        f.push(opt(machine.gpu.clone()));
        f.push(machine.os.clone());
        f.push(machine.onnxruntime.clone());
        f.push(machine.tract.clone());
        f.push(machine.date.clone());
        out.push_str(&f.iter().map(|s| csv_field(s)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// Chart title and panels from the measured rows: end-to-end p50, then per-token and
/// first-token p50 (Whisper) or forward p50 (waveform models).
pub fn chart_panels(model: &Path, rows: &[Row], search: &str) -> (String, Vec<Panel>) {
    type Metric = fn(&Row) -> Option<Stats>;
    let specs: [(&str, Metric); 4] = [
        ("end-to-end p50 (ms)", |r| r.total_ms),
        ("decoder per-token p50 (ms)", |r| r.decoder_token_ms),
        ("time to first token p50 (ms)", |r| r.first_token_ms),
        ("forward pass p50 (ms)", |r| r.forward_ms),
    ];
    let panels = specs
        .iter()
        .map(|(title, get)| Panel {
            title: title.to_string(),
            bars: rows
                .iter()
                .filter(|r| r.status == Status::Ok)
                .filter_map(|r| {
                    get(r).map(|s| Bar {
                        group: format!("{} ({:.1} s)", r.input, r.audio_s),
                        series: r.config(),
                        value: s.p50,
                    })
                })
                .collect(),
        })
        .filter(|p| !p.bars.is_empty())
        .collect();
    let name = model.file_name().map_or_else(
        || model.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    (format!("hearken bench: {name}, {search}"), panels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tests::row;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn table_and_csv_show_every_row() {
        let m = Machine {
            cpu: "Test CPU".into(),
            logical_cores: 2,
            gpu: None,
            os: "Linux".into(),
            kernel: None,
            arch: "x86_64".into(),
            onnxruntime: "1.31.1".into(),
            tract: "0.23.0".into(),
            hearken: "0.1.0".into(),
            date: "2025-01-01T00:00:00Z".into(),
        };
        let mut ok = row(Status::Ok, None);
        ok.provider = "cpu".into();
        ok.total_ms = Stats::of(&[100.0, 200.0]);
        let un = row(Status::Unavailable, Some("no CUDA"));
        let t = table(&m, Path::new("models/x"), &[ok.clone(), un.clone()]);
        assert!(t.contains("machine: Test CPU (2 logical cores)"), "{t}");
        assert!(t.contains("unavailable"), "{t}");
        assert!(t.contains("ort/cuda: unavailable: no CUDA"), "{t}");
        assert!(t.contains("150"), "{t}");
        let c = csv(&m, &[ok, un]);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("engine,provider,input,status,"));
        let n = lines[0].split(',').count();
        assert_eq!(lines[1].split(',').count(), n);
    }
}
