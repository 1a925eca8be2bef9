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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::decode::ctc::{
    CtcDecoder, CtcDecoderBuilder, CtcResult, CtcSearch, CtcVocab, Hotword, LmFusion, check_rows,
    log_softmax_rows,
};
use crate::engine::{ExecutionProvider, Graph};
use crate::model::chunking::plan_chunks;
use crate::model::waveform::{MIN_SAMPLES, WaveformGraph};
use crate::model::{Contract, Head, ModelType};
use crate::result::{Segment, Timing, Transcript, Word};
use crate::{Error, Result};

/// A new segment (subtitle cue) starts after a pause longer than this, seconds.
const SEGMENT_PAUSE_S: f64 = 0.6;
/// A segment holds at most this many words.
const SEGMENT_MAX_WORDS: usize = 12;

/// How a CTC model's output is searched (the decoder built from these per call is cheap:
/// the language model is shared through its `Arc`).
#[derive(Debug, Clone, Default)]
pub struct CtcOptions {
    /// Greedy or prefix beam search.
    pub search: CtcSearch,
    /// Shallow fusion with an n-gram language model (beam search only).
    pub lm: Option<LmFusion>,
    /// Words and phrases to boost (beam search only).
    pub hotwords: Vec<Hotword>,
    /// How long audio is cut into pieces.
    pub chunks: ChunkOptions,
}

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
    /// A CTC model over an already loaded graph and its contract.
    /// Reached through [`crate::model::open`].
    pub(crate) fn from_graph(
        graph: Arc<dyn Graph>,
        contract: Contract,
        path: PathBuf,
    ) -> Result<Self> {
        Self::from_waveform(WaveformGraph::new(graph, contract, path, ModelType::Ctc)?)
    }

    fn from_waveform(inner: WaveformGraph) -> Result<Self> {
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

    /// Input samples per output frame (320 for Wav2Vec2 / HuBERT).
    pub fn frame_stride_samples(&self) -> usize {
        self.frame_stride_samples
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The execution providers the graph really runs on.
    pub fn providers(&self) -> Vec<ExecutionProvider> {
        self.inner.graph.providers().to_vec()
    }

    /// A decoder builder set up for this model's vocabulary and frame stride; choose the
    /// search, language model and hotwords on it.
    pub fn decoder_builder(&self) -> CtcDecoderBuilder {
        CtcDecoder::builder(self.vocab.clone()).frame_stride_s(self.frame_stride_s())
    }

    /// The decoder `opts` describe.
    pub fn decoder(&self, opts: &CtcOptions) -> Result<CtcDecoder> {
        let mut b = self.decoder_builder().search(opts.search.clone());
        if let Some(lm) = &opts.lm {
            b = b.lm(lm.clone());
        }
        if !opts.hotwords.is_empty() {
            b = b.hotwords(opts.hotwords.clone());
        }
        b.build()
    }

    /// Log-probabilities of one piece of audio in one run, no chunking: `(n_frames,
    /// n_vocab)`. Live sessions call this on their own pieces (context included).
    pub fn forward(&self, samples: &[f32]) -> Result<LogProbs> {
        self.log_probs(
            samples,
            &ChunkOptions {
                chunk_s: f32::INFINITY,
                context_s: 0.0,
            },
        )
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
    /// [`CtcModel::decoder_builder`] or [`CtcModel::decoder`]).
    pub fn transcribe(
        &self,
        samples: &[f32],
        decoder: &CtcDecoder,
        chunks: &ChunkOptions,
    ) -> Result<Transcript> {
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
        let mut timing = Timing {
            encoder_ms: forward_ms,
            decoder_ms: decode_ms,
            audio_s: samples.len() as f64 / f64::from(crate::audio::SAMPLE_RATE_HZ),
            ..Timing::default()
        };
        timing.finish(t0.elapsed().as_secs_f64() * 1e3);
        Ok(Transcript {
            text: result.text.clone(),
            language: None,
            segments: segments(&result, 0.0),
            score: Some(result.score),
            timing,
        })
    }
}

/// Words with times of a CTC result whose frame 0 is at `offset_s`.
pub fn words(result: &CtcResult, offset_s: f64) -> Vec<Word> {
    result
        .words
        .iter()
        .map(|w| Word {
            word: w.word.clone(),
            start_s: offset_s + f64::from(w.start_s),
            end_s: offset_s + f64::from(w.end_s),
        })
        .collect()
}

/// A CTC result as transcript segments (subtitle cues): a new segment after a pause of
/// more than 0.6 s or 12 words; each keeps its words and the tokens from its first word
/// up to the next segment's. Frame 0 of the result is at `offset_s`.
pub fn segments(result: &CtcResult, offset_s: f64) -> Vec<Segment> {
    let words = words(result, offset_s);
    let mut groups: Vec<Vec<Word>> = Vec::new();
    let mut prev_end = f64::NEG_INFINITY;
    for w in words {
        let new = match groups.last() {
            None => true,
            Some(g) => g.len() >= SEGMENT_MAX_WORDS || w.start_s - prev_end > SEGMENT_PAUSE_S,
        };
        prev_end = w.end_s;
        if new {
            groups.push(vec![w]);
        } else if let Some(g) = groups.last_mut() {
            g.push(w);
        }
    }
    let word_frames: Vec<usize> = result.words.iter().map(|w| w.start_frame).collect();
    let mut first_word = 0;
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let next_first = first_word + g.len();
        let from = if i == 0 {
            0
        } else {
            word_frames.get(first_word).copied().unwrap_or(0)
        };
        let to = if i + 1 < groups.len() {
            word_frames.get(next_first).copied().unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let tokens = result
            .tokens
            .iter()
            .zip(&result.token_spans)
            .filter(|(_, s)| s.start_frame >= from && s.start_frame < to)
            .map(|(&t, _)| t)
            .collect();
        out.push(Segment {
            start_s: g.first().map_or(offset_s, |w| w.start_s),
            end_s: g.last().map_or(offset_s, |w| w.end_s),
            text: g
                .iter()
                .map(|w| w.word.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            tokens,
            words: g.clone(),
            ..Segment::default()
        });
        first_word = next_first;
    }
    out
}
