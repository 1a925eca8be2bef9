//! Training curves as PNG, from `metrics.jsonl`.
//!
//! plotters draws into an RGB buffer (its bitmap backend, without its `image` encoder) and
//! the `png` crate encodes it. Text goes through plotters' `ab_glyph` renderer with a font
//! compiled into the binary (Ubuntu Light, from `epaint_default_fonts`, under the Ubuntu
//! Font Licence), registered once as `sans-serif`: a CI machine without any system font
//! draws the same labels as a desktop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::backend::{BitMapBackend, RGBPixel};
use plotters::prelude::*;

use crate::error::{Error, Result, io_err};
use crate::train::checkpoint::LogEntry;

/// Width of every chart, in pixels.
pub const PLOT_WIDTH: u32 = 900;
/// Height of every chart, in pixels.
pub const PLOT_HEIGHT: u32 = 540;

/// One curve: its legend and its (step, value) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Registers the embedded font once; plotters looks it up by family name.
fn ensure_font() -> std::result::Result<(), String> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .map_err(|_| "the embedded Ubuntu Light font could not be parsed".to_string())
    })
    .clone()
}

/// Reads `metrics.jsonl` (one JSON object per line; blank lines skipped).
pub fn read_metrics(path: &Path) -> Result<Vec<LogEntry>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// The finite (step, value) points of `key` in `entries`.
fn points(entries: &[LogEntry], key: &str) -> Vec<(f64, f64)> {
    entries
        .iter()
        .filter_map(|e| Some((e.get("step")?.as_f64()?, e.get(key)?.as_f64()?)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// Writes the curves of a `metrics.jsonl` into `out_dir`: `loss.png` (training `loss` and
/// `eval_loss`) and, when evaluations logged other metrics, `metrics.png` (every other
/// `eval_*` value). Returns the files written.
pub fn plot_metrics(metrics_jsonl: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = read_metrics(metrics_jsonl)?;
    let mut written = Vec::new();
    let loss: Vec<Series> = [("loss", "train loss"), ("eval_loss", "eval loss")]
        .iter()
        .map(|(key, label)| (label.to_string(), points(&entries, key)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if !loss.is_empty() {
        let path = out_dir.join("loss.png");
        plot_series(&path, "loss", "loss", &loss)?;
        written.push(path);
    }
    let mut keys = BTreeMap::new();
    for e in &entries {
        for (k, v) in e {
            if k.starts_with("eval_") && k != "eval_loss" && v.is_number() {
                keys.insert(k.clone(), ());
            }
        }
    }
    let metrics: Vec<Series> = keys
        .keys()
        .map(|k| (k.clone(), points(&entries, k)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if !metrics.is_empty() {
        let path = out_dir.join("metrics.png");
        plot_series(&path, "evaluation", "value", &metrics)?;
        written.push(path);
    }
    Ok(written)
}

/// Draws `series` against the update step into a `PLOT_WIDTH` × `PLOT_HEIGHT` PNG at `path`.
pub fn plot_series(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let plot_err = |reason: String| Error::Plot {
        path: path.to_path_buf(),
        reason,
    };
    ensure_font().map_err(plot_err)?;
    let (w, h) = (PLOT_WIDTH, PLOT_HEIGHT);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buf, (w, h))
            .map_err(|e| plot_err(e.to_string()))?;
        draw(backend.into_drawing_area(), title, y_desc, series)
            .map_err(|e| plot_err(e.to_string()))?;
    }
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| plot_err(e.to_string()))?;
    writer
        .write_image_data(&buf)
        .map_err(|e| plot_err(e.to_string()))?;
    writer.finish().map_err(|e| plot_err(e.to_string()))
}

/// The axis range of `values`, padded by 5% (and widened when all values are equal).
fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad)..(hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let x = range(all().map(|p| p.0));
    let y = range(all().map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        // Evaluations are sparse: mark each point so a single one still shows.
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width, info.height, buf)
    }

    /// Dark pixels in the band of rows `rows`: text drawn there means the font rendered.
    fn dark_pixels(buf: &[u8], rows: std::ops::Range<u32>) -> usize {
        let row_bytes = PLOT_WIDTH as usize * 3;
        buf[rows.start as usize * row_bytes..rows.end as usize * row_bytes]
            .chunks(3)
            .filter(|p| p.iter().all(|&c| c < 100))
            .count()
    }

    #[test]
    fn train_plot_writes_decodable_pngs_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("metrics.jsonl");
        let mut lines = String::new();
        for step in 1..=20 {
            let loss = 2.0 / step as f64;
            let mut line = format!(
                r#"{{"step":{step},"epoch":{},"loss":{loss},"lr":1e-3"#,
                step as f64 / 10.0
            );
            if step % 10 == 0 {
                line += &format!(
                    r#","eval_loss":{},"eval_accuracy":{}"#,
                    loss * 1.1,
                    0.5 + step as f64 / 50.0
                );
            }
            lines += &(line + "}\n");
        }
        std::fs::write(&jsonl, lines).unwrap();
        let written = plot_metrics(&jsonl, dir.path()).unwrap();
        assert_eq!(
            written,
            vec![dir.path().join("loss.png"), dir.path().join("metrics.png")]
        );
        for path in &written {
            let (w, h, buf) = decode(path);
            assert_eq!((w, h), (PLOT_WIDTH, PLOT_HEIGHT));
            // The caption sits in the top rows; nothing else is drawn there.
            assert!(
                dark_pixels(&buf, 0..40) > 50,
                "no caption text in {}",
                path.display()
            );
        }
    }

    #[test]
    fn train_plot_without_eval_writes_loss_only() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("metrics.jsonl");
        std::fs::write(
            &jsonl,
            "{\"step\":1,\"loss\":0.5}\n\n{\"step\":2,\"loss\":\"NaN\"}\n",
        )
        .unwrap();
        let written = plot_metrics(&jsonl, dir.path()).unwrap();
        assert_eq!(written, vec![dir.path().join("loss.png")]);
        std::fs::write(&jsonl, "{\"step\":1,\n").unwrap();
        assert!(plot_metrics(&jsonl, dir.path()).is_err());
    }
}
