//! `hearken transcribe` with a CTC model (Wav2Vec2 / HuBERT): greedy or prefix beam search,
//! with an optional n-gram language model and hotwords.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hearken::decode::ctc::{
    BeamOptions, CtcSearch, DEFAULT_HOTWORD_BONUS, Hotword, LmFusion, NgramLm,
};
use hearken::model::ctc::{ChunkOptions, CtcModel, CtcTiming};
use serde::Serialize;

use super::transcribe::{Args, Format, emit, render_cues};

/// Beam width when a language model or hotwords are given without `--beam`.
const DEFAULT_LM_BEAM: usize = 16;

/// A subtitle cue ends at a pause longer than this, seconds.
const CUE_PAUSE_S: f32 = 0.6;
/// A subtitle cue holds at most this many words.
const CUE_MAX_WORDS: usize = 12;

#[derive(Serialize)]
struct Word<'a> {
    word: &'a str,
    start_s: f32,
    end_s: f32,
}

#[derive(Serialize)]
struct Score {
    acoustic: f32,
    lm: f32,
    word_insertion: f32,
    hotwords: f32,
    total: f32,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    file: String,
    model: String,
    engine: &'a str,
    architecture: Option<&'a str>,
    search: String,
    load_ms: f64,
    text: &'a str,
    words: Vec<Word<'a>>,
    tokens: &'a [u32],
    n_frames: usize,
    score: Score,
    timing: CtcTiming,
}

/// Runs `hearken transcribe` for a model directory holding a CTC `model.onnx`.
pub fn run(args: &Args) -> Result<()> {
    let engine = args.engine.build()?;
    let t_load = Instant::now();
    let model = CtcModel::load(engine.as_ref(), &args.model)?;

    let hotwords = args
        .hotword
        .iter()
        .map(|h| Hotword::parse(h, DEFAULT_HOTWORD_BONUS))
        .collect::<hearken::Result<Vec<_>>>()?;
    let lm = match &args.lm {
        Some(path) => Some(Arc::new(
            NgramLm::from_arpa_file(path).with_context(|| format!("loading {}", path.display()))?,
        )),
        None => None,
    };
    let beam = match args.beam {
        Some(0) => bail!("--beam must be at least 1"),
        Some(b) => Some(b),
        None if lm.is_some() || !hotwords.is_empty() => Some(DEFAULT_LM_BEAM),
        None => None,
    };
    let mut builder = model.decoder_builder();
    let search = match beam {
        None => "greedy".to_string(),
        Some(width) => {
            builder = builder.search(CtcSearch::Beam(BeamOptions::width(width)));
            if let Some(lm) = lm {
                builder = builder.lm(LmFusion::new(lm).weights(args.alpha, args.beta));
            }
            if !hotwords.is_empty() {
                builder = builder.hotwords(hotwords);
            }
            format!("beam {width}")
        }
    };
    let decoder = builder.build()?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    for file in &args.files {
        let pcm = hearken::audio::load(file)?;
        let t = model.transcribe(&pcm.samples, &decoder, &ChunkOptions::default())?;
        let r = &t.result;
        let rendered = match args.format {
            Format::Txt => format!("{}\n", r.text),
            Format::Json => {
                let out = JsonOut {
                    file: file.display().to_string(),
                    model: args.model.display().to_string(),
                    engine: engine.name(),
                    architecture: model.architecture(),
                    search: search.clone(),
                    load_ms,
                    text: &r.text,
                    words: r
                        .words
                        .iter()
                        .map(|w| Word {
                            word: &w.word,
                            start_s: w.start_s,
                            end_s: w.end_s,
                        })
                        .collect(),
                    tokens: &r.tokens,
                    n_frames: t.n_frames,
                    score: Score {
                        acoustic: r.score.acoustic,
                        lm: r.score.lm,
                        word_insertion: r.score.word_insertion,
                        hotwords: r.score.hotwords,
                        total: r.score.total,
                    },
                    timing: t.timing,
                };
                format!("{}\n", serde_json::to_string_pretty(&out)?)
            }
            Format::Srt | Format::Vtt => {
                let cues = cues(&r.words);
                let cues: Vec<(f64, f64, &str)> =
                    cues.iter().map(|(a, b, s)| (*a, *b, s.as_str())).collect();
                render_cues(&cues, args.format == Format::Vtt)
            }
        };
        emit(file, &rendered, args.out.as_deref(), args.format)?;
        let tm = &t.timing;
        eprintln!(
            "{}: {:.2} s audio, {} frames, {search}, load {:.0} ms, forward {:.0} ms, decode {:.1} ms, total {:.0} ms, RTF {:.3} ({})",
            file.display(),
            tm.audio_s,
            t.n_frames,
            load_ms,
            tm.forward_ms,
            tm.decode_ms,
            tm.total_ms,
            tm.real_time_factor,
            engine.name()
        );
    }
    Ok(())
}

/// Groups words into subtitle cues: a new cue after a pause or a full line.
fn cues(words: &[hearken::decode::ctc::WordTiming]) -> Vec<(f64, f64, String)> {
    let mut out: Vec<(f64, f64, String)> = Vec::new();
    let mut n_in_cue = 0;
    let mut prev_end = f32::NEG_INFINITY;
    for w in words {
        let new_cue =
            out.is_empty() || n_in_cue >= CUE_MAX_WORDS || w.start_s - prev_end > CUE_PAUSE_S;
        if new_cue {
            out.push((f64::from(w.start_s), f64::from(w.end_s), w.word.clone()));
            n_in_cue = 1;
        } else if let Some(last) = out.last_mut() {
            last.1 = f64::from(w.end_s);
            last.2.push(' ');
            last.2.push_str(&w.word);
            n_in_cue += 1;
        }
        prev_end = w.end_s;
    }
    out
}
