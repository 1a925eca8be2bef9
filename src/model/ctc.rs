//! CTC acoustic models (Wav2Vec2 / HuBERT `*ForCTC` exported by `hearken-export`):
//! waveform → per-frame log-probabilities → text through [`crate::decode::ctc`].
//!
//! [`CtcModel`] is the shared part (graph, vocabulary), `Send + Sync`; decoding state
//! lives in the [`CtcDecoder`]'s streams, so one model serves many threads.
//!
//! Long audio is run in overlapping chunks (attention cost grows with the square of the
//! length): each chunk sees [`ChunkOptions::context_s`] of extra audio on both sides,
//! whose frames are dropped, and the kept frames are concatenated — the stride scheme of
//! Hugging Face's ASR pipeline (`chunk_length_s`, `stride_length_s`).

use std::path::Path;
use std::time::Instant;

use crate::decode::ctc::{
    CtcDecoder, CtcDecoderBuilder, CtcResult, CtcVocab, check_rows, log_softmax_rows,
};
use crate::engine::Engine;
use crate::model::waveform::{MIN_SAMPLES, WaveformGraph};
use crate::model::{Head, ModelType};
use crate::{Error, Result};

/// How long audio is split before the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkOptions {
    /// Longest piece run at once, seconds, context included (default 30 s). Audio up to
    /// this length runs in one piece.
    pub chunk_s: f32,
    /// Audio seen on each side of a piece whose frames are dropped (default 2 s).
    pub context_s: f32,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            chunk_s: 30.0,
            context_s: 2.0,
        }
    }
}

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

/// Per-frame log-probabilities: `data: (n_frames, n_vocab)`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LogProbs {
    /// The values, natural-log probabilities (each row's `exp` sums to 1).
    pub data: Vec<f32>,
    /// Frames.
    pub n_frames: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
}

/// Where the time of one transcription went.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct CtcTiming {
    /// Normalization and model forward passes, milliseconds.
    pub forward_ms: f64,
    /// The CTC search, milliseconds.
    pub decode_ms: f64,
    /// Everything, milliseconds.
    pub total_ms: f64,
    /// Audio length, seconds.
    pub audio_s: f64,
    /// `total / audio` (below 1 is faster than real time).
    pub real_time_factor: f64,
}

/// A CTC transcription with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcTranscript {
    /// Text, tokens, word timings and score.
    pub result: CtcResult,
    /// Frames the model produced.
    pub n_frames: usize,
    /// Where the time went.
    pub timing: CtcTiming,
}

/// A CTC model: `model.onnx` taking `waveform (1, n_samples)` to
/// `logits (1, n_frames, vocab)`, with its vocabulary.
pub struct CtcModel {
    inner: WaveformGraph,
    vocab: CtcVocab,
    frame_stride_samples: usize,
}

impl std::fmt::Debug for CtcModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtcModel")
            .field("path", &self.inner.path)
            .field("vocab_size", &self.vocab.len())
            .field("frame_stride_samples", &self.frame_stride_samples)
            .finish()
    }
}

impl CtcModel {
    /// Loads a CTC model: a hearken model directory with `model.onnx`, or the file.
    ///
    /// Fails with [`Error::Contract`] when the model is not a CTC model taking 16 kHz
    /// waveforms or its vocabulary is unusable.
    pub fn load(engine: &dyn Engine, path: &Path) -> Result<Self> {
        let inner = WaveformGraph::load(engine, path, ModelType::Ctc)?;
        let Head::Ctc {
            vocab,
            blank_id,
            word_delimiter,
            frame_stride_samples,
        } = inner.contract.head.clone()
        else {
            return Err(Error::Contract {
                path: inner.path.clone(),
                reason: "not a CTC model".into(),
            });
        };
        let delimiter_id = word_delimiter
            .as_ref()
            .and_then(|d| vocab.iter().position(|t| t == d))
            .map(|i| i as u32);
        let vocab = CtcVocab::new(vocab, blank_id, delimiter_id).map_err(|e| Error::Contract {
            path: inner.path.clone(),
            reason: format!("unusable vocabulary: {e}"),
        })?;
        Ok(CtcModel {
            inner,
            vocab,
            frame_stride_samples: frame_stride_samples as usize,
        })
    }

    /// The vocabulary (blank, delimiter, tokens).
    pub fn vocab(&self) -> &CtcVocab {
        &self.vocab
    }

    /// Seconds between output frames (0.02 for Wav2Vec2 / HuBERT).
    pub fn frame_stride_s(&self) -> f32 {
        self.frame_stride_samples as f32 / crate::audio::SAMPLE_RATE_HZ as f32
    }

    /// A decoder builder set up for this model's vocabulary and frame stride; choose the
    /// search, language model and hotwords on it.
    pub fn decoder_builder(&self) -> CtcDecoderBuilder {
        CtcDecoder::builder(self.vocab.clone()).frame_stride_s(self.frame_stride_s())
    }

    /// The upstream architecture named in the contract (`wav2vec2`, `hubert`), if any.
    pub fn architecture(&self) -> Option<&str> {
        self.inner.contract.architecture.as_deref()
    }

    /// Per-frame log-probabilities of `samples` (16 kHz mono), run in pieces as `chunks`
    /// says.
    pub fn log_probs(&self, samples: &[f32], chunks: &ChunkOptions) -> Result<LogProbs> {
        let sr = crate::audio::SAMPLE_RATE_HZ as f32;
        let plan = plan_chunks(
            samples.len(),
            (chunks.chunk_s.max(0.0) * sr) as usize,
            (chunks.context_s.max(0.0) * sr) as usize,
            self.frame_stride_samples,
        );
        let n_vocab = self.vocab.len();
        let mut data = Vec::new();
        for c in &plan {
            let logits = self.inner.run(
                &samples[c.start..c.end],
                MIN_SAMPLES.max(2 * self.frame_stride_samples),
            )?;
            let shape = logits.shape().to_vec();
            if shape.len() != 3 || shape[0] != 1 || shape[2] != n_vocab {
                return Err(Error::invalid(
                    format!("logits of {}", self.inner.path.display()),
                    format!("shape (1, n_frames, {n_vocab})"),
                    format!("{shape:?}"),
                ));
            }
            let mut rows = logits.to_f32_vec();
            check_rows(&rows, n_vocab)?;
            let n = shape[1];
            let keep = c.keep_until_frame.unwrap_or(n).min(n);
            let skip = c.skip_frames.min(keep);
            rows.truncate(keep * n_vocab);
            data.extend_from_slice(&rows[skip * n_vocab..]);
        }
        log_softmax_rows(&mut data, n_vocab)?;
        Ok(LogProbs {
            n_frames: data.len() / n_vocab,
            data,
            n_vocab,
        })
    }

    /// Transcribes `samples` (16 kHz mono) with `decoder` (from
    /// [`CtcModel::decoder_builder`]).
    pub fn transcribe(
        &self,
        samples: &[f32],
        decoder: &CtcDecoder,
        chunks: &ChunkOptions,
    ) -> Result<CtcTranscript> {
        if decoder.vocab().len() != self.vocab.len() {
            return Err(Error::invalid(
                "CTC decoder vocabulary",
                format!("{} tokens, the model's", self.vocab.len()),
                decoder.vocab().len(),
            ));
        }
        let t0 = Instant::now();
        let lp = self.log_probs(samples, chunks)?;
        let forward_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let result = decoder.decode(&lp.data)?;
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        let total_ms = t0.elapsed().as_secs_f64() * 1e3;
        let audio_s = samples.len() as f64 / f64::from(crate::audio::SAMPLE_RATE_HZ);
        Ok(CtcTranscript {
            result,
            n_frames: lp.n_frames,
            timing: CtcTiming {
                forward_ms,
                decode_ms,
                total_ms,
                audio_s,
                real_time_factor: if audio_s > 0.0 {
                    total_ms / 1e3 / audio_s
                } else {
                    0.0
                },
            },
        })
    }
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
}
