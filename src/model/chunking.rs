//! How long audio is cut before a model sees it: overlapping pieces for CTC models
//! (context on both sides, dropped after the run) and sliding windows for classifiers.
//! Pure arithmetic over sample counts, shared by offline runs and live sessions.

/// One piece of a chunked run: samples `start..end` go in, and of the frames that come
/// out, `skip_frames..` are kept up to `keep_until_frame` (relative to the piece; `None`:
/// all the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// First sample, a multiple of the frame stride.
    pub start: usize,
    /// One past the last sample.
    pub end: usize,
    /// Leading frames to drop (left context).
    pub skip_frames: usize,
    /// Frames (from the piece's first) to keep up to, exclusive; `None` for the last piece.
    pub keep_until_frame: Option<usize>,
}

/// Splits `n_samples` into pieces of at most `chunk` samples, each with `context` samples
/// of overlap on both inner sides, starts aligned to `stride`, so that the kept frames of
/// consecutive pieces are consecutive frames of the whole.
///
/// `chunk` and `context` are rounded down to multiples of `stride`; a `chunk` not longer
/// than `2 * context + stride` or audio that fits in one chunk gives a single piece.
pub fn plan_chunks(n_samples: usize, chunk: usize, context: usize, stride: usize) -> Vec<Chunk> {
    let stride = stride.max(1);
    let chunk = chunk / stride * stride;
    let context = context / stride * stride;
    if n_samples <= chunk || chunk <= 2 * context + stride {
        return vec![Chunk {
            start: 0,
            end: n_samples,
            skip_frames: 0,
            keep_until_frame: None,
        }];
    }
    let step = chunk - 2 * context;
    let ctx_frames = context / stride;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let last = start + chunk >= n_samples;
        out.push(Chunk {
            start,
            end: if last { n_samples } else { start + chunk },
            skip_frames: if start == 0 { 0 } else { ctx_frames },
            keep_until_frame: (!last).then_some(chunk / stride - ctx_frames),
        });
        if last {
            return out;
        }
        start += step;
    }
}

/// Window start and end sample indices for `n_samples` of audio: windows of `window`
/// samples every `hop` samples; the last window ends at the end of the audio (it may
/// overlap its predecessor more), so no sample is left out. Audio not longer than one
/// window is one window.
pub fn window_bounds(n_samples: usize, window: usize, hop: usize) -> Vec<(usize, usize)> {
    let window = window.max(1);
    let hop = hop.max(1);
    if n_samples <= window {
        return vec![(0, n_samples)];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start + window < n_samples {
        out.push((start, start + window));
        start += hop;
    }
    let last = (n_samples - window, n_samples);
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of the standard Wav2Vec2 conv stack for `n` samples.
    fn frames(n: usize) -> usize {
        if n < 400 { 0 } else { (n - 400) / 320 + 1 }
    }

    #[test]
    fn short_audio_is_one_piece() {
        assert_eq!(
            plan_chunks(16_000, 480_000, 32_000, 320),
            vec![Chunk {
                start: 0,
                end: 16_000,
                skip_frames: 0,
                keep_until_frame: None
            }]
        );
    }

    #[test]
    fn kept_frames_tile_the_whole_exactly() {
        for n in [480_001, 500_000, 1_000_000, 1_440_000, 2_000_123] {
            let plan = plan_chunks(n, 480_000, 32_000, 320);
            assert!(plan.len() > 1, "{n}");
            let mut next = 0;
            for c in &plan {
                assert_eq!(c.start % 320, 0);
                assert!(c.end - c.start <= 480_000);
                let produced = frames(c.end - c.start);
                let keep = c.keep_until_frame.unwrap_or(produced);
                assert!(keep <= produced, "{n}: keep {keep} of {produced}");
                assert_eq!(c.start / 320 + c.skip_frames, next, "{n}: gap or overlap");
                next = c.start / 320 + keep;
            }
            assert_eq!(
                next,
                frames(n),
                "{n}: the pieces give as many frames as the whole"
            );
        }
    }

    #[test]
    fn degenerate_sizes_give_one_piece() {
        assert_eq!(plan_chunks(1_000_000, 640, 320, 320).len(), 1);
        assert_eq!(plan_chunks(0, 480_000, 32_000, 320).len(), 1);
    }
    #[test]
    fn windows_cover_the_audio_and_end_at_its_end() {
        assert_eq!(window_bounds(100, 200, 50), vec![(0, 100)]);
        assert_eq!(window_bounds(200, 200, 50), vec![(0, 200)]);
        assert_eq!(
            window_bounds(300, 200, 50),
            vec![(0, 200), (50, 250), (100, 300)]
        );
        assert_eq!(
            window_bounds(330, 200, 100),
            vec![(0, 200), (100, 300), (130, 330)]
        );
        for n in [201, 999, 16_000 * 7 + 3] {
            let w = window_bounds(n, 16_000, 4_000);
            assert_eq!(w.first().map(|b| b.0), Some(0));
            assert_eq!(w.last().map(|b| b.1), Some(n));
            assert!(w.iter().all(|&(a, b)| b - a == 16_000.min(n)));
            assert!(w.windows(2).all(|p| p[1].0 > p[0].0 && p[1].0 <= p[0].1));
        }
    }
}
