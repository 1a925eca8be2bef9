//! CTC decoding throughput: greedy and prefix beam search on a synthetic, speech-like
//! log-prob matrix.
//!
//! Groups `ctc/greedy` and `ctc/beam/<width>` (8, 16, 32), benchmarks `no_lm`, `lm3` (a
//! 3-gram LM, alpha 0.5, beta 1.0), `lm3_blank_skip` (the same, skipping frames whose
//! blank probability is above 0.999), all with the default pruning (tokens within 10 nats
//! of the frame's best, no hypothesis cutoff), and `no_lm_pyctc_pruning` and
//! `lm3_pyctc_pruning` with pyctcdecode's default pruning (tokens within 5 nats,
//! hypotheses within 10 nats of the best). Throughput is `Elements(n_frames)`, so criterion's
//! elements/s are frames/s; at Wav2Vec2's 50 frames per second of audio, divide by 50 for
//! the real-time factor.
//!
//! The inputs are deterministic (seed [`SEED`]): a Wav2Vec2-style 32-token vocabulary
//! (`<pad>`, `<s>`, `</s>`, `<unk>`, `|`, 26 letters, `'`), a 3-gram ARPA model over 300
//! random words, and 500 frames that spell random words of that model the way CTC models
//! do: runs of near-certain blanks (other tokens about 16 nats below), one or two peaked
//! frames per letter (the blank 4 to 8 nats below the letter, other tokens about 14 below),
//! and on one letter in five a rival letter 0.5 to 4 nats below. They are also written to
//! `<target>/tmp/ctc_bench/` with hearken's transcripts, for
//! `benches/peers/ctc_pyctcdecode.py` to time pyctcdecode on the same input.

use std::collections::HashSet;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use hearken::decode::ctc::{
    BeamOptions, BlankSkip, CtcDecoder, CtcSearch, CtcVocab, LmFusion, NgramLm, TokenPruning,
    log_softmax_rows,
};

/// Seed of every generator here.
pub const SEED: u64 = 0xC7C_5EED;
/// Frames in the benchmark matrix (10 s of Wav2Vec2 output).
pub const N_FRAMES: usize = 500;

/// The Wav2Vec2-base-960h vocabulary order.
const VOCAB: [&str; 32] = [
    "<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L",
    "U", "M", "W", "C", "F", "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z",
];
const FIRST_LETTER: usize = 5;
const N_LETTERS: usize = 26;

/// Knuth's MMIX LCG.
struct Lcg(u64);

impl Lcg {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as usize) % n
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

/// `n` distinct upper-case words of 2 to 8 letters.
fn synthetic_words(rng: &mut Lcg, n: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut words = Vec::new();
    while words.len() < n {
        let len = 2 + rng.below(7);
        let w: String = (0..len)
            .map(|_| VOCAB[FIRST_LETTER + rng.below(N_LETTERS)])
            .collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// A 3-gram ARPA model: every word as a unigram, 1200 bigrams, 1200 trigrams made of two
/// overlapping listed bigrams.
fn synthetic_arpa(rng: &mut Lcg, words: &[String]) -> String {
    let mut uni = vec![
        "-3.0\t<unk>".to_string(),
        "-99\t<s>\t-0.5".to_string(),
        "-1.3\t</s>".to_string(),
    ];
    for w in words {
        uni.push(format!(
            "{:.4}\t{w}\t{:.4}",
            rng.range(-4.0, -1.5),
            rng.range(-1.0, -0.1)
        ));
    }
    let pick = |rng: &mut Lcg, special: &str| -> String {
        if rng.below(10) == 0 {
            special.to_string()
        } else {
            words[rng.below(words.len())].clone()
        }
    };
    let mut seen = HashSet::new();
    let mut bigrams = Vec::new();
    let mut bi = Vec::new();
    while bigrams.len() < 1200 {
        let (a, b) = (pick(rng, "<s>"), pick(rng, "</s>"));
        if seen.insert((a.clone(), b.clone())) {
            let p = rng.range(-2.5, -0.2);
            if b == "</s>" {
                bi.push(format!("{p:.4}\t{a} {b}"));
            } else {
                bi.push(format!("{p:.4}\t{a} {b}\t{:.4}", rng.range(-0.8, -0.05)));
                bigrams.push((a, b));
            }
        }
    }
    // Every trigram's suffix is a listed bigram, as in a model estimated from text (KenLM's
    // probing tables reject too many missing suffixes).
    let mut successors: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for (a, b) in &bigrams {
        successors.entry(a.as_str()).or_default().push(b.as_str());
    }
    let extendable: Vec<&(String, String)> = bigrams
        .iter()
        .filter(|(_, b)| successors.contains_key(b.as_str()))
        .collect();
    let mut seen3 = HashSet::new();
    let mut tri = Vec::new();
    while tri.len() < 1200 {
        let (a, b) = extendable[rng.below(extendable.len())];
        let next = &successors[b.as_str()];
        let c = next[rng.below(next.len())];
        if seen3.insert((a.clone(), b.clone(), c)) {
            tri.push(format!("{:.4}\t{a} {b} {c}", rng.range(-2.0, -0.1)));
        }
    }
    format!(
        "\\data\\\nngram 1={}\nngram 2={}\nngram 3={}\n\n\\1-grams:\n{}\n\n\\2-grams:\n{}\n\n\\3-grams:\n{}\n\n\\end\\\n",
        uni.len(),
        bi.len(),
        tri.len(),
        uni.join("\n"),
        bi.join("\n"),
        tri.join("\n")
    )
}

/// `n_frames` log-prob rows spelling random words: `(n_frames, 32)`, row-major.
fn synthetic_log_probs(rng: &mut Lcg, words: &[String], n_frames: usize) -> Vec<f32> {
    let n = VOCAB.len();
    let mut path: Vec<(usize, Option<usize>)> = Vec::new();
    while path.len() < n_frames {
        let w = &words[rng.below(words.len())];
        for ch in w.chars() {
            for _ in 0..1 + rng.below(3) {
                path.push((0, None));
            }
            let id = VOCAB.iter().position(|t| t.starts_with(ch)).unwrap_or(0);
            let rival = (rng.below(5) == 0).then(|| FIRST_LETTER + rng.below(N_LETTERS));
            for _ in 0..1 + rng.below(2) {
                path.push((id, rival));
            }
        }
        path.push((0, None));
        path.push((4, None));
    }
    path.truncate(n_frames);
    let mut m = Vec::with_capacity(n_frames * n);
    for (id, rival) in path {
        let mut row: Vec<f32> = (0..n).map(|_| rng.range(-2.0, 1.0)).collect();
        if id == 0 {
            row[0] += rng.range(14.0, 18.0);
        } else {
            let peak = rng.range(12.0, 16.0);
            row[id] += peak;
            row[0] += peak - rng.range(4.0, 8.0);
            if let Some(r) = rival {
                row[r] += peak - rng.range(0.5, 4.0);
            }
        }
        m.extend(row);
    }
    if log_softmax_rows(&mut m, n).is_err() {
        unreachable!("rows of {n}");
    }
    m
}

/// The benchmark inputs.
struct Inputs {
    vocab: CtcVocab,
    arpa: String,
    lm: Arc<NgramLm>,
    log_probs: Vec<f32>,
}

fn inputs() -> Inputs {
    let mut rng = Lcg(SEED);
    let words = synthetic_words(&mut rng, 300);
    let arpa = synthetic_arpa(&mut rng, &words);
    let log_probs = synthetic_log_probs(&mut rng, &words, N_FRAMES);
    let vocab = CtcVocab::wav2vec2(VOCAB.iter().map(|s| s.to_string()).collect())
        .unwrap_or_else(|e| panic!("bench vocabulary: {e}"));
    let lm = Arc::new(NgramLm::from_arpa_str(&arpa).unwrap_or_else(|e| panic!("bench LM: {e}")));
    Inputs {
        vocab,
        arpa,
        lm,
        log_probs,
    }
}

/// The decoders of group `ctc/beam/<width>`, by benchmark name.
fn beam_decoders(inputs: &Inputs, width: usize) -> Vec<(&'static str, CtcDecoder)> {
    let build = |options: BeamOptions, lm: bool| {
        let b = CtcDecoder::builder(inputs.vocab.clone()).search(CtcSearch::Beam(options));
        let b = if lm {
            b.lm(LmFusion::new(inputs.lm.clone()).weights(0.5, 1.0))
        } else {
            b
        };
        b.build().unwrap_or_else(|e| panic!("bench decoder: {e}"))
    };
    let skip = BeamOptions {
        blank_skip: BlankSkip::Above {
            min_blank_logp: 0.999f32.ln(),
        },
        ..BeamOptions::width(width)
    };
    // pyctcdecode's defaults: tokens within 5 nats (its `token_min_logp` is -5, absolute,
    // which is the same on frames whose best token is near-certain), hypotheses within 10
    // of the best (`beam_prune_logp`).
    let pyctc = BeamOptions {
        token_pruning: TokenPruning {
            top_k: None,
            max_below_best: Some(5.0),
        },
        beam_cutoff: Some(10.0),
        ..BeamOptions::width(width)
    };
    vec![
        ("no_lm", build(BeamOptions::width(width), false)),
        ("lm3", build(BeamOptions::width(width), true)),
        ("lm3_blank_skip", build(skip, true)),
        ("no_lm_pyctc_pruning", build(pyctc, false)),
        ("lm3_pyctc_pruning", build(pyctc, true)),
    ]
}

/// Writes the inputs and hearken's transcripts for the pyctcdecode peer script.
fn write_peer_inputs(inputs: &Inputs) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ctc_bench");
    let write = || -> Result<(), String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let t =
            hearken::engine::Tensor::from_f32([N_FRAMES, VOCAB.len()], inputs.log_probs.clone())
                .map_err(|e| e.to_string())?;
        hearken::npy::write(dir.join("log_probs.npy"), &t).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("lm.arpa"), &inputs.arpa).map_err(|e| e.to_string())?;
        let vocab = serde_json::to_string(&VOCAB).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("vocab.json"), vocab).map_err(|e| e.to_string())?;
        let mut texts = serde_json::Map::new();
        let greedy = CtcDecoder::builder(inputs.vocab.clone())
            .build()
            .and_then(|d| d.decode(&inputs.log_probs))
            .map_err(|e| e.to_string())?;
        texts.insert("ctc/greedy".into(), greedy.text.into());
        for width in [8, 16, 32] {
            for (name, dec) in beam_decoders(inputs, width) {
                let r = dec.decode(&inputs.log_probs).map_err(|e| e.to_string())?;
                texts.insert(format!("ctc/beam/{width}/{name}"), r.text.into());
            }
        }
        let texts = serde_json::to_string_pretty(&texts).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("hearken_texts.json"), texts).map_err(|e| e.to_string())
    };
    if let Err(e) = write() {
        eprintln!(
            "ctc: cannot write the peer inputs to {}: {e}",
            dir.display()
        );
    }
}

fn ctc(c: &mut Criterion) {
    let inputs = inputs();
    write_peer_inputs(&inputs);
    let n_frames = inputs.log_probs.len() / VOCAB.len();

    let mut group = c.benchmark_group("ctc/greedy");
    group.throughput(Throughput::Elements(n_frames as u64));
    let greedy = CtcDecoder::builder(inputs.vocab.clone())
        .build()
        .unwrap_or_else(|e| panic!("bench decoder: {e}"));
    group.bench_function(BenchmarkId::from_parameter(format!("{n_frames}f")), |b| {
        b.iter(|| greedy.decode(black_box(&inputs.log_probs)))
    });
    group.finish();

    for width in [8, 16, 32] {
        let mut group = c.benchmark_group(format!("ctc/beam/{width}"));
        group.throughput(Throughput::Elements(n_frames as u64));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
        for (name, dec) in beam_decoders(&inputs, width) {
            group.bench_function(name, |b| {
                b.iter(|| dec.decode(black_box(&inputs.log_probs)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, ctc);
