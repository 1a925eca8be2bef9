//! A PNG bar chart with no system dependency: own raster, own 5×8 bitmap font, PNG
//! written through `flate2` (already a dependency) as one zlib-compressed `IDAT`.
//!
//! Plotting crates render text through system fonts (fontconfig, FreeType), which an edge
//! box or a CI container may not have; a benchmark chart needs a few labels and numbers,
//! which a built-in font covers. Bars are horizontal, so long labels (file names,
//! `engine/provider`) fit on the left; each panel has its own scale because end-to-end
//! and per-token times differ by orders of magnitude.

use std::io::Write;

pub use hearken::bench::report::{Bar, Panel};

/// An RGB image, `(height, width, 3)` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub rgb: Vec<u8>,
}

/// Image width in pixels.
pub const WIDTH: usize = 1000;
/// Font scale: each font pixel is `SCALE × SCALE`.
const SCALE: usize = 2;
/// Advance per character, pixels.
const CHAR_W: usize = 6 * SCALE;
/// Line height of text, pixels.
const CHAR_H: usize = 8 * SCALE;
const MARGIN: usize = 16;
const BAR_H: usize = 20;
const BAR_GAP: usize = 4;
const GROUP_GAP: usize = 10;
const PANEL_GAP: usize = 24;
/// Left column for series labels, in characters.
const LABEL_CHARS: usize = 18;
/// Room right of the longest bar for its value, in characters.
const VALUE_CHARS: usize = 12;

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GREY: [u8; 3] = [110, 110, 110];
const AXIS: [u8; 3] = [190, 190, 190];
/// Series colours (Okabe–Ito, readable by colour-blind viewers).
const PALETTE: [[u8; 3]; 7] = [
    [0, 114, 178],
    [230, 159, 0],
    [0, 158, 115],
    [213, 94, 0],
    [204, 121, 167],
    [86, 180, 233],
    [240, 228, 66],
];

/// Groups in first-appearance order, each with its bars.
fn groups(panel: &Panel) -> Vec<(&str, Vec<&Bar>)> {
    let mut out: Vec<(&str, Vec<&Bar>)> = Vec::new();
    for bar in &panel.bars {
        match out.iter_mut().find(|(g, _)| *g == bar.group) {
            Some((_, bars)) => bars.push(bar),
            None => out.push((&bar.group, vec![bar])),
        }
    }
    out
}

/// Height of one panel: title line, then per group a header line and its bars.
fn panel_height(panel: &Panel) -> usize {
    let mut h = CHAR_H + 8;
    for (_, bars) in groups(panel) {
        h += CHAR_H + 4 + bars.len() * (BAR_H + BAR_GAP) + GROUP_GAP;
    }
    h
}

/// The image size for `panels` with a title line and `footer_lines` lines under them.
pub fn size(panels: &[Panel], footer_lines: usize) -> (usize, usize) {
    let body: usize = panels.iter().map(|p| panel_height(p) + PANEL_GAP).sum();
    let height = MARGIN + CHAR_H + 12 + body + footer_lines * (CHAR_H + 4) + MARGIN;
    (WIDTH, height)
}

/// Draws the chart: `title` on top, the panels, then `footer` lines (machine, date).
pub fn render(title: &str, panels: &[Panel], footer: &[String]) -> Image {
    let (width, height) = size(panels, footer.len());
    let mut img = Image {
        width,
        height,
        rgb: WHITE.repeat(width * height),
    };
    let mut series: Vec<&str> = Vec::new();
    for bar in panels.iter().flat_map(|p| &p.bars) {
        if !series.contains(&bar.series.as_str()) {
            series.push(&bar.series);
        }
    }
    let colour = |s: &str| {
        let i = series.iter().position(|x| *x == s).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };

    let mut y = MARGIN;
    img.text(MARGIN, y, title, BLACK);
    y += CHAR_H + 12;
    let bar_x = MARGIN + LABEL_CHARS * CHAR_W;
    let bar_max_w = width.saturating_sub(bar_x + VALUE_CHARS * CHAR_W + MARGIN);
    for panel in panels {
        img.text(MARGIN, y, &panel.title, BLACK);
        y += CHAR_H + 8;
        let max = panel
            .bars
            .iter()
            .map(|b| b.value)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        for (group, bars) in groups(panel) {
            img.text(MARGIN, y, group, GREY);
            y += CHAR_H + 4;
            let group_top = y;
            for bar in bars {
                let label: String = bar.series.chars().take(LABEL_CHARS - 1).collect();
                img.text(MARGIN + CHAR_W, y + (BAR_H - CHAR_H) / 2, &label, BLACK);
                let w = if max > 0.0 && bar.value.is_finite() && bar.value > 0.0 {
                    ((bar.value / max) * bar_max_w as f64).round().max(1.0) as usize
                } else {
                    0
                };
                img.fill(bar_x, y, w, BAR_H, colour(&bar.series));
                img.text(
                    bar_x + w + 6,
                    y + (BAR_H - CHAR_H) / 2,
                    &format_value(bar.value),
                    BLACK,
                );
                y += BAR_H + BAR_GAP;
            }
            // The zero line, beside the bars only: group names may run across it.
            img.fill(bar_x - 1, group_top, 1, y - group_top - BAR_GAP, AXIS);
            y += GROUP_GAP;
        }
        y += PANEL_GAP;
    }
    for line in footer {
        img.text(MARGIN, y, line, GREY);
        y += CHAR_H + 4;
    }
    img
}

/// `1234.5` → `1234 ms`, `12.34` → `12.3 ms`, `0.123` → `0.123 ms`: three significant
/// digits at least, no exponent.
fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let digits = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    format!("{v:.digits$} ms")
}

impl Image {
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                let i = (yy * self.width + xx) * 3;
                self.rgb[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// Draws `s` with its top-left corner at `(x, y)`, clipped at the right edge.
    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let gx = x + i * CHAR_W;
            if gx + CHAR_W > self.width {
                break;
            }
            for (row, bits) in glyph(ch).iter().enumerate() {
                for (col, px) in bits.bytes().enumerate() {
                    if px == b'#' {
                        self.fill(gx + col * SCALE, y + row * SCALE, SCALE, SCALE, c);
                    }
                }
            }
        }
    }

    /// The image as a PNG file: 8-bit RGB, no interlace, every row with filter 0.
    // https://www.w3.org/TR/png-3/#5DataRep (signature, IHDR, IDAT, IEND chunks)
    pub fn to_png(&self) -> std::io::Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(self.height * (1 + self.width * 3));
        for row in self.rgb.chunks_exact(self.width * 3) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw)?;
        let idat = z.finish()?;
        let too_big = || std::io::Error::other("image too large for PNG");
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(
            &u32::try_from(self.width)
                .map_err(|_| too_big())?
                .to_be_bytes(),
        );
        ihdr.extend_from_slice(
            &u32::try_from(self.height)
                .map_err(|_| too_big())?
                .to_be_bytes(),
        );
        // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &idat), (b"IEND", &Vec::new())] {
            let len = u32::try_from(data.len()).map_err(|_| too_big())?;
            png.extend_from_slice(&len.to_be_bytes());
            png.extend_from_slice(kind);
            png.extend_from_slice(data);
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            png.extend_from_slice(&crc.sum().to_be_bytes());
        }
        Ok(png)
    }
}

/// The 5×8 glyph of `c` (rows of `#` and `.`; row 6 is the baseline, row 7 holds
/// descenders); `?` for characters the font lacks.
fn glyph(c: char) -> &'static [&'static str; 8] {
    FONT.iter()
        .find(|(ch, _)| *ch == c)
        .or_else(|| FONT.iter().find(|(ch, _)| *ch == '?'))
        .map(|(_, g)| g)
        .unwrap_or(&BLANK)
}

const BLANK: [&str; 8] = ["....."; 8];

#[rustfmt::skip]
const FONT: &[(char, [&str; 8])] = &[
    (' ', [".....", ".....", ".....", ".....", ".....", ".....", ".....", "....."]),
    ('0', [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", "....."]),
    ('1', ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('2', [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", "....."]),
    ('3', ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", "....."]),
    ('4', ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", "....."]),
    ('5', ["#####", "#....", "####.", "....#", "....#", "#...#", ".###.", "....."]),
    ('6', ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", "....."]),
    ('7', ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", "....."]),
    ('8', [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", "....."]),
    ('9', [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", "....."]),
    ('A', [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."]),
    ('B', ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.", "....."]),
    ('C', [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.", "....."]),
    ('D', ["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..", "....."]),
    ('E', ["#####", "#....", "#....", "####.", "#....", "#....", "#####", "....."]),
    ('F', ["#####", "#....", "#....", "####.", "#....", "#....", "#....", "....."]),
    ('G', [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####", "....."]),
    ('H', ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."]),
    ('I', [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('J', ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..", "....."]),
    ('K', ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#", "....."]),
    ('L', ["#....", "#....", "#....", "#....", "#....", "#....", "#####", "....."]),
    ('M', ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#", "....."]),
    ('N', ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "....."]),
    ('O', [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....."]),
    ('P', ["####.", "#...#", "#...#", "####.", "#....", "#....", "#....", "....."]),
    ('Q', [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#", "....."]),
    ('R', ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#", "....."]),
    ('S', [".####", "#....", "#....", ".###.", "....#", "....#", "####.", "....."]),
    ('T', ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."]),
    ('U', ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", "....."]),
    ('V', ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."]),
    ('W', ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.", "....."]),
    ('X', ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#", "....."]),
    ('Y', ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..", "....."]),
    ('Z', ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####", "....."]),
    ('a', [".....", ".....", ".###.", "....#", ".####", "#...#", ".####", "....."]),
    ('b', ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", "....."]),
    ('c', [".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", "....."]),
    ('d', ["....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", "....."]),
    ('e', [".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", "....."]),
    ('f', ["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", "....."]),
    ('g', [".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."]),
    ('h', ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."]),
    ('i', ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('j', ["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
    ('k', ["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "....."]),
    ('l', [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."]),
    ('m', [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", "....."]),
    ('n', [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", "....."]),
    ('o', [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", "....."]),
    ('p', [".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#...."]),
    ('q', [".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "....#"]),
    ('r', [".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", "....."]),
    ('s', [".....", ".....", ".###.", "#....", ".###.", "....#", "####.", "....."]),
    ('t', [".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", "....."]),
    ('u', [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....."]),
    ('v', [".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", "....."]),
    ('w', [".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", "....."]),
    ('x', [".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."]),
    ('y', [".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", ".###."]),
    ('z', [".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", "....."]),
    ('.', [".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "....."]),
    (',', [".....", ".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."]),
    ('-', [".....", ".....", ".....", "#####", ".....", ".....", ".....", "....."]),
    ('_', [".....", ".....", ".....", ".....", ".....", ".....", "#####", "....."]),
    (':', [".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....", "....."]),
    (';', [".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#...", "....."]),
    ('/', ["....#", "....#", "...#.", "..#..", ".#...", "#....", "#....", "....."]),
    ('(', ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", "....."]),
    (')', [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", "....."]),
    ('[', [".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###.", "....."]),
    (']', [".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###.", "....."]),
    ('%', ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##", "....."]),
    ('+', [".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", "....."]),
    ('=', [".....", ".....", "#####", ".....", "#####", ".....", ".....", "....."]),
    ('#', [".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#.", "....."]),
    ('*', [".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", ".....", "....."]),
    ('<', ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", "....."]),
    ('>', [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", "....."]),
    ('\'', ["..#..", "..#..", ".#...", ".....", ".....", ".....", ".....", "....."]),
    ('"', [".#.#.", ".#.#.", ".....", ".....", ".....", ".....", ".....", "....."]),
    ('?', [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..", "....."]),
    ('!', ["..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#..", "....."]),
    ('@', [".###.", "#...#", "#.###", "#.#.#", "#.###", "#....", ".###.", "....."]),
    ('&', [".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#", "....."]),
    ('|', ["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "....."]),
    ('~', [".....", ".....", ".#...", "#.#.#", "...#.", ".....", ".....", "....."]),
    ('×', [".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", ".....", "....."]),
    ('µ', [".....", ".....", "#...#", "#...#", "#...#", "##.##", "#.#.#", "#...."]),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn panels(n_inputs: usize) -> Vec<Panel> {
        let bars = |scale: f64| {
            (0..n_inputs)
                .flat_map(|i| {
                    ["ort/cpu", "tract/cpu"].map(|s| Bar {
                        group: format!("input-{i}.wav"),
                        series: s.into(),
                        value: scale * (i + 1) as f64,
                    })
                })
                .collect()
        };
        vec![
            Panel {
                title: "end-to-end p50 (ms)".into(),
                bars: bars(1000.0),
            },
            Panel {
                title: "decoder per-token p50 (ms)".into(),
                bars: bars(10.0),
            },
        ]
    }

    /// Splits a PNG into chunks, checking every CRC.
    fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut out = Vec::new();
        let mut at = 8;
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
            let data = png[at + 8..at + 8 + len].to_vec();
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            let mut c = flate2::Crc::new();
            c.update(&kind);
            c.update(&data);
            assert_eq!(c.sum(), crc, "CRC of {}", String::from_utf8_lossy(&kind));
            out.push((kind, data));
            at += 12 + len;
        }
        out
    }

    #[test]
    fn writes_a_valid_png_of_the_expected_size() {
        let p = panels(2);
        let footer = vec!["machine: test".to_string()];
        let img = render("hearken bench", &p, &footer);
        let (w, h) = size(&p, 1);
        assert_eq!((img.width, img.height), (w, h));
        assert_eq!(w, WIDTH);
        // Title, two panels of two groups of two bars, footer.
        let panel = CHAR_H + 8 + 2 * (CHAR_H + 4 + 2 * (BAR_H + BAR_GAP) + GROUP_GAP);
        assert_eq!(
            h,
            MARGIN + CHAR_H + 12 + 2 * (panel + PANEL_GAP) + CHAR_H + 4 + MARGIN
        );

        let png = img.to_png().unwrap();
        let chunks = chunks(&png);
        let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"IHDR", b"IDAT", b"IEND"]);
        let ihdr = &chunks[0].1;
        assert_eq!(
            u32::from_be_bytes(ihdr[0..4].try_into().unwrap()) as usize,
            w
        );
        assert_eq!(
            u32::from_be_bytes(ihdr[4..8].try_into().unwrap()) as usize,
            h
        );
        assert_eq!(&ihdr[8..], &[8, 2, 0, 0, 0]);
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&chunks[1].1[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), h * (1 + w * 3));
        // Something was drawn in each series colour.
        for c in &PALETTE[..2] {
            assert!(img.rgb.chunks_exact(3).any(|px| px == c));
        }
    }

    #[test]
    fn longer_bars_for_larger_values() {
        let p = panels(1);
        let img = render("t", &p, &[]);
        // Count pixels of each series' colour: tract's bar is the same value here, so
        // make the second series twice as long and compare.
        let mut p2 = p.clone();
        p2[0].bars[1].value *= 2.0;
        p2[1].bars[1].value *= 2.0;
        let img2 = render("t", &p2, &[]);
        let count = |img: &Image, c: [u8; 3]| img.rgb.chunks_exact(3).filter(|px| *px == c).count();
        assert!(count(&img2, PALETTE[0]) < count(&img, PALETTE[0]));
        assert_eq!(count(&img, PALETTE[0]), count(&img, PALETTE[1]));
    }

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(format_value(1234.56), "1235 ms");
        assert_eq!(format_value(12.345), "12.3 ms");
        assert_eq!(format_value(1.2345), "1.23 ms");
        assert_eq!(format_value(0.12345), "0.123 ms");
        assert_eq!(format_value(f64::NAN), "n/a");
    }

    #[test]
    fn every_glyph_is_five_by_eight() {
        for (c, g) in FONT {
            assert!(
                g.iter()
                    .all(|r| r.len() == 5 && r.bytes().all(|b| b == b'#' || b == b'.')),
                "{c}"
            );
        }
        assert_eq!(glyph('\u{2603}'), glyph('?'));
    }
}
