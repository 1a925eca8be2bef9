//! Long-form transcription bookkeeping: how one window's tokens become segments, and how
//! far the next window starts (OpenAI's `seek`).
//!
//! Positions are in mel frames (10 ms, `HOP_LENGTH / SAMPLE_RATE`), as OpenAI's `seek`;
//! timestamp tokens count 0.02 s, two frames, from the window start.

use std::ops::Range;

/// Mel frames per second (`SAMPLE_RATE / HOP_LENGTH` = 16000 / 160).
pub const FRAMES_PER_SECOND: usize = 100;
/// Mel frames in a 30 s window (`N_FRAMES`).
pub const N_FRAMES: usize = 3000;
/// Mel frames per timestamp step (`N_FRAMES / n_audio_ctx` = 2).
pub const INPUT_STRIDE: usize = 2;

/// One segment of a window: a token range with its start and end time.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSegment {
    /// Start, in seconds from the start of the audio.
    pub start_s: f64,
    /// End, in seconds from the start of the audio.
    pub end_s: f64,
    /// The segment's tokens, as a range of the window's tokens (timestamps included).
    pub tokens: Range<usize>,
}

/// The segments of one window and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSplit {
    /// Segments in order.
    pub segments: Vec<WindowSegment>,
    /// Mel frames to advance `seek` by.
    pub seek_advance_frames: usize,
    /// Whether the tokens end with a lone timestamp (no speech after it): the whole window
    /// was consumed.
    pub single_timestamp_ending: bool,
}

/// Splits a window's sampled tokens at timestamp pairs, as `transcribe.py`.
///
/// `tokens`: [`DecodingResult::tokens`](super::DecodingResult::tokens) of a decode with
/// timestamps; `seek_frames`: where the window starts; `segment_size_frames`: how many
/// frames of it hold audio (`min(N_FRAMES, remaining)`); `frame_s`: seconds per mel frame
/// (`hop_length / sampling_rate`, 0.01 for Whisper). A timestamp token counts
/// [`INPUT_STRIDE`] frames.
///
/// With at least one pair of adjacent timestamps, each pair ends a segment; an unfinished
/// last segment is dropped and the next window starts at the last complete timestamp,
/// unless the tokens end with a single timestamp (then the whole window is consumed).
/// Without such a pair, the window is one segment ending at its last timestamp (or at the
/// window's end) and the whole window is consumed.
// https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L323-L383
pub fn split_segments(
    tokens: &[u32],
    timestamp_begin: u32,
    seek_frames: usize,
    segment_size_frames: usize,
    frame_s: f64,
) -> WindowSplit {
    let is_ts = |t: u32| t >= timestamp_begin;
    let time_offset = seek_frames as f64 * frame_s;
    let time_precision = INPUT_STRIDE as f64 * frame_s;
    let position = |t: u32| t as i64 - timestamp_begin as i64;
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let consecutive: Vec<usize> = (1..n)
        .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
        .collect();

    let mut segments = Vec::new();
    let seek_advance_frames;
    if !consecutive.is_empty() {
        let mut slices = consecutive;
        if single_timestamp_ending {
            slices.push(n);
        }
        let mut last_slice = 0;
        for &current in &slices {
            let start = position(tokens[last_slice]);
            let end = position(tokens[current - 1]);
            segments.push(WindowSegment {
                start_s: time_offset + start as f64 * time_precision,
                end_s: time_offset + end as f64 * time_precision,
                tokens: last_slice..current,
            });
            last_slice = current;
        }
        seek_advance_frames = if single_timestamp_ending {
            segment_size_frames
        } else {
            // Continue from the last complete segment's end.
            (position(tokens[last_slice - 1]).max(0) as usize) * INPUT_STRIDE
        };
    } else {
        let mut duration = segment_size_frames as f64 * frame_s;
        if let Some(&last) = tokens.iter().rev().find(|&&t| is_ts(t))
            && last != timestamp_begin
        {
            duration = position(last) as f64 * time_precision;
        }
        segments.push(WindowSegment {
            start_s: time_offset,
            end_s: time_offset + duration,
            tokens: 0..n,
        });
        seek_advance_frames = segment_size_frames;
    }
    WindowSplit {
        segments,
        seek_advance_frames,
        single_timestamp_ending,
    }
}

/// Whether the next window's prompt starts afresh: always without
/// `condition_on_previous_text`, and after a window decoded above temperature 0.5 (its text
/// is unreliable context).
// https://github.com/openai/whisper/blob/v20240930/whisper/transcribe.py#L487-L489
pub fn resets_prompt(condition_on_previous_text: bool, temperature: f32) -> bool {
    !condition_on_previous_text || temperature > 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: u32 = 100;

    fn ts(seconds: f64) -> u32 {
        TB + (seconds / 0.02).round() as u32
    }

    #[test]
    fn pairs_split_segments_and_seek_to_the_last_complete_one() {
        // <0.00> a b <1.00><1.00> c <2.00><2.00> d   (unfinished last segment)
        let tokens = [ts(0.0), 1, 2, ts(1.0), ts(1.0), 3, ts(2.0), ts(2.0), 4];
        let split = split_segments(&tokens, TB, 1000, 3000, 0.01);
        assert_eq!(split.segments.len(), 2);
        assert_eq!(split.segments[0].tokens, 0..4);
        assert_eq!(split.segments[1].tokens, 4..7);
        assert!((split.segments[0].start_s - 10.0).abs() < 1e-9);
        assert!((split.segments[0].end_s - 11.0).abs() < 1e-9);
        assert!((split.segments[1].end_s - 12.0).abs() < 1e-9);
        assert!(!split.single_timestamp_ending);
        assert_eq!(split.seek_advance_frames, 200);
    }

    #[test]
    fn single_timestamp_ending_consumes_the_window() {
        // <0.00> a <1.00><1.00> b <2.50>
        let tokens = [ts(0.0), 1, ts(1.0), ts(1.0), 2, ts(2.5)];
        let split = split_segments(&tokens, TB, 0, 2400, 0.01);
        assert!(split.single_timestamp_ending);
        assert_eq!(split.segments.len(), 2);
        assert_eq!(split.segments[1].tokens, 3..6);
        assert!((split.segments[1].end_s - 2.5).abs() < 1e-9);
        assert_eq!(split.seek_advance_frames, 2400);
    }

    #[test]
    fn no_pair_is_one_segment_to_the_last_timestamp() {
        let tokens = [ts(0.0), 1, 2, ts(3.2)];
        let split = split_segments(&tokens, TB, 300, 3000, 0.01);
        assert_eq!(split.segments.len(), 1);
        assert!((split.segments[0].start_s - 3.0).abs() < 1e-9);
        assert!((split.segments[0].end_s - 6.2).abs() < 1e-9);
        assert_eq!(split.seek_advance_frames, 3000);
        // Without timestamps: the whole (partial) window.
        let split = split_segments(&[1, 2, 3], TB, 0, 1234, 0.01);
        assert!((split.segments[0].end_s - 12.34).abs() < 1e-9);
        assert_eq!(split.seek_advance_frames, 1234);
        // A lone <|0.00|> does not count as an end time.
        let split = split_segments(&[TB, 1, 2], TB, 0, 500, 0.01);
        assert!((split.segments[0].end_s - 5.0).abs() < 1e-9);
    }

    #[test]
    fn prompt_reset_rule() {
        assert!(resets_prompt(false, 0.0));
        assert!(resets_prompt(true, 0.6));
        assert!(!resets_prompt(true, 0.4));
    }
}
