//! CTC decoding on synthetic log-prob matrices: greedy and prefix beam search, n-gram LM
//! fusion, hotwords, pruning, ARPA parsing, and streaming = offline.
//!
//! No model is involved: every matrix is written so that its best transcript (and, where
//! it matters, its score) can be computed by hand.

use std::sync::Arc;

use hearken::Error;
use hearken::decode::ctc::{
    BeamOptions, BlankSkip, CtcDecoder, CtcResult, CtcSearch, CtcVocab, Hotword, LmFusion, NgramLm,
    TokenPruning, greedy_decode, log_softmax_rows,
};
use proptest::prelude::*;

const LN_10: f32 = std::f32::consts::LN_10;
const NEG_INF: f32 = f32::NEG_INFINITY;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A Wav2Vec2-style vocabulary: `<pad>` blank, specials, `|` delimiter, letters.
fn letters_vocab() -> CtcVocab {
    let mut t = strings(&["<pad>", "<s>", "</s>", "<unk>", "|"]);
    t.extend(('a'..='z').map(String::from));
    CtcVocab::wav2vec2(t).unwrap()
}

/// Frames given as `(token, probability)` lists; unlisted tokens get probability 0 (`-inf`).
fn frames(vocab: &CtcVocab, spec: &[&[(&str, f32)]]) -> Vec<f32> {
    let n = vocab.len();
    let mut m = vec![NEG_INF; spec.len() * n];
    for (f, row) in spec.iter().enumerate() {
        for &(tok, p) in row.iter() {
            let id = vocab.tokens().iter().position(|t| t == tok).unwrap();
            m[f * n + id] = p.ln();
        }
    }
    m
}

/// One frame per character of `path`: `_` blank, `|` delimiter, letters; the character gets
/// `p`, the rest of the mass is spread over every other token (so no entry is `-inf`).
fn clear_frames(vocab: &CtcVocab, path: &str, p: f32) -> Vec<f32> {
    let n = vocab.len();
    let rest = ((1.0 - p) / (n - 1) as f32).ln();
    let mut m = vec![rest; path.chars().count() * n];
    for (f, ch) in path.chars().enumerate() {
        let tok = if ch == '_' {
            "<pad>".to_string()
        } else {
            ch.to_string()
        };
        let id = vocab.tokens().iter().position(|t| *t == tok).unwrap();
        m[f * n + id] = p.ln();
    }
    m
}

fn beam(vocab: CtcVocab, options: BeamOptions) -> CtcDecoder {
    CtcDecoder::builder(vocab)
        .search(CtcSearch::Beam(options))
        .build()
        .unwrap()
}

fn close(a: f32, b: f32, tol: f32) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn greedy_known_answer_with_word_timestamps() {
    let v = letters_vocab();
    // Special tokens separate repeats like blanks ("ll" survives through <unk>).
    let path = "_ h h _ e _ l <unk> l _ o _ _ | _ | w o _ r l d |";
    let spec: Vec<Vec<(&str, f32)>> = path
        .split(' ')
        .map(|t| vec![(if t == "_" { "<pad>" } else { t }, 1.0)])
        .collect();
    let spec: Vec<&[(&str, f32)]> = spec.iter().map(|r| r.as_slice()).collect();
    let m = frames(&v, &spec);
    let r = greedy_decode(&m, &v, 0.02).unwrap();
    assert_eq!(r.text, "hello world");
    assert_eq!(r.words.len(), 2);
    // "hello": frames 1..=10 ("o" is frame 10); "world": frames 16..=21.
    assert_eq!((r.words[0].start_frame, r.words[0].end_frame), (1, 10));
    assert_eq!((r.words[1].start_frame, r.words[1].end_frame), (16, 21));
    close(r.words[1].start_s, 0.32, 1e-6);
    close(r.words[1].end_s, 0.44, 1e-6);
    close(r.score.acoustic, 0.0, 0.0);
    // Beam search finds the same on a matrix this clear.
    let b = beam(v, BeamOptions::default()).decode(&m).unwrap();
    assert_eq!(b.text, r.text);
    assert_eq!(b.tokens, r.tokens);
    assert_eq!(b.token_spans, r.token_spans);
    assert_eq!(b.words, r.words);
}

#[test]
fn beam_sums_alignments_where_greedy_does_not() {
    let v = letters_vocab();
    // Greedy: "a" then "b" (0.4 is the best single token); beam: the prefix "a" has
    // 0.3 (blank) + 0.3 (repeat) = 0.6 > 0.4, even with a single hypothesis.
    let m = frames(
        &v,
        &[&[("a", 1.0)], &[("<pad>", 0.3), ("a", 0.3), ("b", 0.4)]],
    );
    assert_eq!(greedy_decode(&m, &v, 0.02).unwrap().text, "ab");
    for width in [1, 4] {
        let r = beam(v.clone(), BeamOptions::width(width))
            .decode(&m)
            .unwrap();
        assert_eq!(r.text, "a");
        close(r.score.acoustic, 0.6f32.ln(), 1e-6);
    }
}

/// `over ther?` with the ambiguous frames `[i | r]`, `[r | e]`, then optionally `| car`.
fn their_there(
    vocab: &CtcVocab,
    prefix_over: bool,
    p_i: f32,
    p_r2: f32,
    suffix_car: bool,
) -> Vec<f32> {
    let mut spec: Vec<Vec<(&str, f32)>> = Vec::new();
    if prefix_over {
        for c in ["o", "v", "e", "r", "|"] {
            spec.push(vec![(c, 1.0)]);
        }
    }
    for c in ["t", "h", "e"] {
        spec.push(vec![(c, 1.0)]);
    }
    spec.push(vec![("i", p_i), ("r", 1.0 - p_i)]);
    spec.push(vec![("r", p_r2), ("e", 1.0 - p_r2)]);
    if suffix_car {
        for c in ["|", "c", "a", "r"] {
            spec.push(vec![(c, 1.0)]);
        }
    }
    let spec: Vec<&[(&str, f32)]> = spec.iter().map(|r| r.as_slice()).collect();
    frames(vocab, &spec)
}

const THEIR_THERE_ARPA: &str = "\\data\\
ngram 1=7
ngram 2=3

\\1-grams:
-3.0\t<unk>
-99\t<s>\t-0.5
-1.0\t</s>
-1.0\tover\t-0.3
-1.5\ttheir\t-0.2
-1.5\tthere\t-0.2
-1.0\tcar\t-0.1

\\2-grams:
-0.2\t<s> over
-0.3\tover there
-0.4\ttheir car

\\end\\
";

#[test]
fn lm_resolves_their_and_there_by_context() {
    let v = letters_vocab();
    let lm = Arc::new(NgramLm::from_arpa_str(THEIR_THERE_ARPA).unwrap());
    let fusion = LmFusion::new(lm).weights(0.5, 1.0).oov_penalty(0.0);
    let with_lm = CtcDecoder::builder(v.clone())
        .search(CtcSearch::Beam(BeamOptions::width(8)))
        .lm(fusion)
        .build()
        .unwrap();
    let without = beam(v.clone(), BeamOptions::width(8));

    // "over their" is acoustically best (0.55 * 0.55 against 0.45 * 0.45 for "there").
    let m = their_there(&v, true, 0.55, 0.55, false);
    assert_eq!(without.decode(&m).unwrap().text, "over their");
    // With the LM (log10): there = p(over|<s>) + p(there|over) + p(</s>|there)
    //   = -0.2 + -0.3 + (bow(there) -0.2 + p(</s>) -1.0) = -1.7;
    // their = -0.2 + (bow(over) -0.3 + p(their) -1.5) + (-0.2 + -1.0) = -3.2.
    // Totals: ln(0.2025) + 0.5 * -1.7 ln10 + 2 = -1.554 against
    //         ln(0.3025) + 0.5 * -3.2 ln10 + 2 = -2.880.
    let r = with_lm.decode(&m).unwrap();
    assert_eq!(r.text, "over there");
    close(r.score.acoustic, 0.2025f32.ln(), 1e-5);
    close(r.score.lm, -1.7 * LN_10, 1e-5);
    close(r.score.word_insertion, 2.0, 0.0);
    close(r.score.total, 0.2025f32.ln() - 0.85 * LN_10 + 2.0, 1e-5);

    // "there car" is acoustically best; the LM prefers "their car":
    // their car = (bow(<s>) -0.5 + -1.5) + p(car|their) -0.4 + (bow(car) -0.1 + -1.0) = -3.5;
    // there car = -2.0 + (bow(there) -0.2 + p(car) -1.0) + -1.1 = -4.3.
    // ln(0.2025) - 1.75 ln10 = -5.627 beats ln(0.3025) - 2.15 ln10 = -6.146 (+ 2 each).
    let m = their_there(&v, false, 0.45, 0.45, true);
    assert_eq!(without.decode(&m).unwrap().text, "there car");
    let r = with_lm.decode(&m).unwrap();
    assert_eq!(r.text, "their car");
    close(r.score.lm, -3.5 * LN_10, 1e-5);
    close(r.score.total, 0.2025f32.ln() - 1.75 * LN_10 + 2.0, 1e-5);
    assert_eq!(r.score.oov, 0.0);

    // "ther" (0.95 * 0.85) is 5.7 times as likely as "there" (0.95 * 0.15): more than the
    // LM's preference (1.3 log10 * alpha = 1.50 nats < ln 5.7 = 1.73) when an OOV word only
    // pays p(<unk>); an OOV penalty steers away from spellings that are no LM word.
    let m = their_there(&v, false, 0.05, 0.85, false);
    assert_eq!(without.decode(&m).unwrap().text, "ther");
    assert_eq!(with_lm.decode(&m).unwrap().text, "ther");
    let strict = CtcDecoder::builder(v.clone())
        .search(CtcSearch::Beam(BeamOptions::width(8)))
        .lm(LmFusion::new(Arc::new(
            NgramLm::from_arpa_str(THEIR_THERE_ARPA).unwrap(),
        )))
        .build()
        .unwrap();
    let r = strict.decode(&m).unwrap();
    assert_eq!(r.text, "there");
    assert_eq!(r.score.oov, 0.0);
}

#[test]
fn hotword_changes_the_best_path_and_partial_matches_are_taken_back() {
    let v = letters_vocab();
    let m = frames(
        &v,
        &[&[("c", 1.0)], &[("a", 0.4), ("u", 0.6)], &[("t", 1.0)]],
    );
    let plain = beam(v.clone(), BeamOptions::width(4));
    assert_eq!(plain.decode(&m).unwrap().text, "cut");

    let boosted = CtcDecoder::builder(v.clone())
        .search(CtcSearch::Beam(BeamOptions::width(4)))
        .hotwords(vec![Hotword::parse("cat:1.0", 1.5).unwrap()])
        .build()
        .unwrap();
    // ln 0.4 + 3 * 1.0 = 2.08 > ln 0.6.
    let r = boosted.decode(&m).unwrap();
    assert_eq!(r.text, "cat");
    close(r.score.hotwords, 3.0, 1e-6);
    close(r.score.total, 0.4f32.ln() + 3.0, 1e-6);

    // "cab" matches "ca" for two tokens (bonus 10), then fails on "t": the bonus goes.
    let tempting = CtcDecoder::builder(v.clone())
        .search(CtcSearch::Beam(BeamOptions::width(4)))
        .hotwords(vec![Hotword::new("cab", 5.0)])
        .build()
        .unwrap();
    let mut s = tempting.stream();
    s.push(&m[..2 * v.len()]).unwrap();
    let partial = s.partial();
    assert_eq!(partial.text, "ca");
    close(partial.score.hotwords, 10.0, 1e-6);
    s.push(&m[2 * v.len()..]).unwrap();
    let r = s.finish();
    assert_eq!(r.text, "cut");
    close(r.score.hotwords, 0.0, 0.0);
    close(r.score.total, 0.6f32.ln(), 1e-6);

    // Whole words only: "at" inside "cat" earns nothing.
    let inside = CtcDecoder::builder(v.clone())
        .search(CtcSearch::Beam(BeamOptions::width(4)))
        .hotwords(vec![Hotword::new("at", 5.0)])
        .build()
        .unwrap();
    assert_eq!(inside.decode(&m).unwrap().text, "cut");
}

#[test]
fn pruning_and_blank_skip_keep_a_clear_result() {
    let v = letters_vocab();
    let path = "__hh_e_ll_lo____|__wwo_r_l_dd___|_";
    let mut m = clear_frames(&v, path, 0.97);
    // Near-certain blanks on blank frames, as speech models give.
    let n = v.len();
    for (f, ch) in path.chars().enumerate() {
        if ch == '_' {
            let rest = (0.0005f32 / (n - 1) as f32).ln();
            m[f * n..(f + 1) * n].fill(rest);
            m[f * n] = 0.9995f32.ln();
        }
    }
    let exact = beam(
        v.clone(),
        BeamOptions {
            token_pruning: TokenPruning::NONE,
            ..BeamOptions::width(16)
        },
    )
    .decode(&m)
    .unwrap();
    assert_eq!(exact.text, "hello world");
    let fast = beam(
        v.clone(),
        BeamOptions {
            beam_width: 16,
            token_pruning: TokenPruning {
                top_k: Some(4),
                max_below_best: Some(6.0),
            },
            blank_skip: BlankSkip::Above {
                min_blank_logp: 0.999f32.ln(),
            },
            beam_cutoff: Some(10.0),
        },
    )
    .decode(&m)
    .unwrap();
    assert_eq!(fast.text, exact.text);
    assert_eq!(fast.tokens, exact.tokens);
    assert_eq!(fast.token_spans, exact.token_spans);
    assert_eq!(fast.words, exact.words);
    // Pruned tokens and skipped frames only drop alignments (here about 0.3 % of the mass).
    assert!(fast.score.total <= exact.score.total + 1e-6);
    close(fast.score.total, exact.score.total, 1e-2);
    assert_eq!(greedy_decode(&m, &v, 0.02).unwrap().words, exact.words);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ctc")
        .join(name)
}

#[test]
fn arpa_trigram_backs_off_as_computed_by_hand() {
    let lm = NgramLm::from_arpa_file(fixture("trigram.arpa")).unwrap();
    assert_eq!(lm.order(), 3);
    assert_eq!(lm.ngram_counts(), [6, 4, 3]);
    let log10 = |words: &[&str], bos: bool, eos: bool| lm.sentence_score(words, bos, eos) / LN_10;
    // Listed n-grams: p(a|<s>) + p(b|<s> a) + p(c|a b), then p(</s>|b c) backs off twice:
    // bow(b c) -0.05 + bow(c) -0.1 + p(</s>) -0.8.
    close(log10(&["a", "b", "c"], true, false), -0.3 - 0.1 - 0.2, 1e-6);
    close(log10(&["a", "b", "c"], true, true), -0.6 - 0.95, 1e-6);
    // Step by step: the state after "a b c" is "b c" (a 3-gram is no context).
    let s = lm.begin_sentence();
    let (lp, s) = lm.score_word(s, "a");
    close(lp / LN_10, -0.3, 1e-6);
    let (lp, s1) = lm.score_word(s, "c");
    // p(c | <s> a) = bow(<s> a) -0.25 + bow(a) -0.3 + p(c) -1.1.
    close(lp / LN_10, -1.65, 1e-6);
    let (_, s) = lm.score_word(s, "b");
    let (_, s) = lm.score_word(s, "c");
    let (lp, _) = lm.score_word(s, "a");
    close(lp / LN_10, -0.05 - 0.1 - 0.7, 1e-6);
    // p(b | a c): "a c" is not listed, the state is "c": bow(c) + p(b).
    close(lm.score_word(s1, "b").0 / LN_10, -1.0, 1e-6);
    // p(a | a b) = bow(a b) -0.15 + p(a | b) -0.5.
    close(
        log10(&["a", "b", "a"], false, false) - log10(&["a", "b"], false, false),
        -0.65,
        1e-6,
    );
    // p(b | <s>) = bow(<s>) -0.4 + p(b) -0.9; OOV words are <unk>.
    close(log10(&["b"], true, false), -1.3, 1e-6);
    close(log10(&["a", "zzz"], false, false), -0.7 - 0.3 - 1.2, 1e-6);
    // "c b a" is listed without its prefix "c b": p(c|<s>) -1.5, p(b|c) = -0.1 - 0.9,
    // p(a|c b) -0.05, p(</s>|b a) = bow(b a) 0 + bow(a) -0.3 + p(</s>) -0.8.
    close(
        log10(&["c", "b", "a"], true, true),
        -1.5 - 1.0 - 0.05 - 1.1,
        1e-6,
    );
}

#[test]
fn malformed_arpa_reports_path_and_line() {
    let good = std::fs::read_to_string(fixture("trigram.arpa")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, usize)> = vec![
        (
            "bad probability",
            good.replace("-0.9\tb\t-0.2", "x\tb\t-0.2"),
            15,
        ),
        (
            "missing word",
            good.replace("-0.4\ta b\t-0.15", "-0.4\ta"),
            20,
        ),
        ("count mismatch", good.replace("-0.5\tb a\n", ""), 23),
        ("unknown word", good.replace("-0.5\tb a", "-0.5\tb q"), 22),
        (
            "duplicate",
            good.replace("-1.1\tc\t-0.1", "-1.1\tb\t-0.1"),
            16,
        ),
        ("no end", good.replace("\\end\\\n", ""), 28),
        ("bad header", good.replace("ngram 2=4", "ngram 2 4"), 7),
        ("no data", "just text\n".to_string(), 1),
    ];
    for (name, text, line) in cases {
        let path = dir.path().join(format!("{}.arpa", name.replace(' ', "_")));
        std::fs::write(&path, text).unwrap();
        let err = NgramLm::from_arpa_file(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidInput { .. }), "{name}: {msg}");
        let at = format!("{}:{line}:", path.display());
        assert!(msg.contains(&at), "{name}: `{msg}` does not name `{at}`");
    }
    let missing = NgramLm::from_arpa_file(dir.path().join("absent.arpa")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

#[test]
fn bad_inputs_are_errors() {
    let v = letters_vocab();
    let n = v.len();
    let dec = beam(v.clone(), BeamOptions::default());
    assert!(dec.decode(&vec![0.0; n + 1]).is_err());
    let mut nan = vec![0.0; 2 * n];
    nan[n + 3] = f32::NAN;
    let err = dec.decode(&nan).unwrap_err().to_string();
    assert!(err.contains("frame 1, token 3"), "{err}");
    assert!(greedy_decode(&nan, &v, 0.02).is_err());
    let lm = Arc::new(NgramLm::from_arpa_str(THEIR_THERE_ARPA).unwrap());
    assert!(
        CtcDecoder::builder(v.clone())
            .lm(LmFusion::new(lm))
            .build()
            .is_err()
    );
    assert!(
        CtcDecoder::builder(v.clone())
            .frame_stride_s(0.0)
            .build()
            .is_err()
    );
    assert!(
        CtcDecoder::builder(v.clone())
            .search(CtcSearch::Beam(BeamOptions::default()))
            .hotwords(vec![Hotword::new("cat!", 1.0)])
            .build()
            .is_err()
    );
    // An empty input decodes to nothing.
    for search in [CtcSearch::Greedy, CtcSearch::Beam(BeamOptions::default())] {
        let r = CtcDecoder::builder(v.clone())
            .search(search)
            .build()
            .unwrap()
            .decode(&[])
            .unwrap();
        assert_eq!(r.text, "");
        assert!(r.tokens.is_empty());
    }
}

#[test]
fn decoders_are_shared_and_streams_are_sendable() {
    fn shared<T: Send + Sync + Clone>() {}
    fn sendable<T: Send>() {}
    shared::<CtcDecoder>();
    sendable::<hearken::decode::ctc::CtcStream>();
}

// --- Property tests -------------------------------------------------------------------

/// Vocabulary of the property tests: blank, specials, delimiter, four letters.
fn small_vocab() -> CtcVocab {
    CtcVocab::wav2vec2(strings(&["<pad>", "<s>", "<unk>", "|", "a", "b", "c", "d"])).unwrap()
}

const SMALL_ARPA: &str = "\\data\\
ngram 1=8
ngram 2=5

\\1-grams:
-2.0\t<unk>
-99\t<s>\t-0.3
-1.0\t</s>
-1.2\tab\t-0.2
-1.4\tba\t-0.1
-1.1\tc\t-0.4
-1.6\tabc\t-0.2
-1.3\td\t-0.3

\\2-grams:
-0.4\t<s> ab
-0.3\tab c
-0.5\tc ba
-0.2\tba </s>
-0.6\td d

\\end\\
";

/// Random log-prob matrices of the small vocabulary: `(n_frames, 8)` after log-softmax.
fn matrix() -> impl Strategy<Value = Vec<f32>> {
    (0usize..40).prop_flat_map(|n_frames| {
        prop::collection::vec(-4.0f32..4.0, n_frames * 8).prop_map(|mut m| {
            log_softmax_rows(&mut m, 8).unwrap();
            m
        })
    })
}

/// A matrix and frame cut points (empty chunks included).
fn chunked() -> impl Strategy<Value = (Vec<f32>, Vec<usize>)> {
    matrix().prop_flat_map(|m| {
        let n_frames = m.len() / 8;
        (Just(m), prop::collection::vec(0..=n_frames, 0..6))
    })
}

fn decode_in_chunks(dec: &CtcDecoder, m: &[f32], cuts: &[usize]) -> CtcResult {
    let n_vocab = dec.vocab().len();
    let mut cuts = cuts.to_vec();
    cuts.push(0);
    cuts.push(m.len() / n_vocab);
    cuts.sort_unstable();
    let mut stream = dec.stream();
    for w in cuts.windows(2) {
        stream.push(&m[w[0] * n_vocab..w[1] * n_vocab]).unwrap();
        // Looking at the partial result must not disturb the state.
        let _ = stream.partial();
    }
    assert_eq!(stream.n_frames(), m.len() / n_vocab);
    stream.finish()
}

fn decoders() -> Vec<(&'static str, CtcDecoder)> {
    let lm = Arc::new(NgramLm::from_arpa_str(SMALL_ARPA).unwrap());
    let beam_opts = BeamOptions {
        beam_width: 6,
        token_pruning: TokenPruning {
            top_k: Some(5),
            max_below_best: Some(6.0),
        },
        blank_skip: BlankSkip::Above {
            min_blank_logp: 0.9f32.ln(),
        },
        beam_cutoff: Some(12.0),
    };
    vec![
        (
            "greedy",
            CtcDecoder::builder(small_vocab()).build().unwrap(),
        ),
        ("beam", beam(small_vocab(), BeamOptions::width(5))),
        ("beam pruned", beam(small_vocab(), beam_opts)),
        (
            "beam lm hotwords",
            CtcDecoder::builder(small_vocab())
                .search(CtcSearch::Beam(BeamOptions::width(8)))
                .lm(LmFusion::new(lm.clone()).weights(0.8, 0.5))
                .hotwords(vec![Hotword::new("ab", 1.0), Hotword::new("c ba", 0.7)])
                .build()
                .unwrap(),
        ),
        (
            "beam pruned lm",
            CtcDecoder::builder(small_vocab())
                .search(CtcSearch::Beam(beam_opts))
                .lm(LmFusion::new(lm).oov_penalty(-2.0))
                .build()
                .unwrap(),
        ),
    ]
}

/// Rows whose best token has probability >= 10 / 11: the arg-max is drawn first, the
/// others' logits in [-3, 0], and the best logit is `ln(10 * sum(exp(others))) + u`.
fn clear_matrix() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        (
            0usize..8,
            prop::collection::vec(-3.0f32..0.0, 8),
            0.0f32..2.0,
        ),
        0..40,
    )
    .prop_map(|rows| {
        let mut m = Vec::new();
        for (best, mut logits, u) in rows {
            let others: f32 = logits
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != best)
                .map(|(_, x)| x.exp())
                .sum();
            logits[best] = (10.0 * others).ln() + u;
            m.extend(logits);
        }
        log_softmax_rows(&mut m, 8).unwrap();
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Streaming equals offline, bit for bit, for every decoder configuration.
    #[test]
    fn chunked_decoding_equals_offline((m, cuts) in chunked()) {
        for (name, dec) in decoders() {
            let offline = dec.decode(&m).unwrap();
            let streamed = decode_in_chunks(&dec, &m, &cuts);
            prop_assert_eq!(&streamed, &offline, "{}", name);
        }
    }

    /// Beam search with one hypothesis and no pruning is greedy decoding when every frame's
    /// best token has probability q >= 0.9.
    ///
    /// Sketch: call f the share of the hypothesis' mass held by the state (`p_b` or `p_nb`)
    /// that greedy's path is in. A new token c wins with mass >= q against <= 1 - q for any
    /// other candidate. A blank or a repeat keeps the prefix with mass >= f q against <= (1 - f)
    /// + (1 - q) for growing it. After each frame f >= min(q, f q / (f q + 1 - q)), whose
    /// fixed point is (2q - 1) / q >= 0.89 for q = 0.9, and 0.89 * 0.9 > 0.1 + 0.11. The same
    /// dominance makes the path greedy follows the most probable contribution, so the timings
    /// agree too.
    #[test]
    fn beam_width_one_equals_greedy_on_clear_frames(m in clear_matrix()) {
        let v = small_vocab();
        let greedy = greedy_decode(&m, &v, 0.02).unwrap();
        let options = BeamOptions { token_pruning: TokenPruning::NONE, ..BeamOptions::width(1) };
        let b = beam(v, options).decode(&m).unwrap();
        prop_assert_eq!(&b.text, &greedy.text);
        prop_assert_eq!(&b.tokens, &greedy.tokens);
        prop_assert_eq!(&b.token_spans, &greedy.token_spans);
        prop_assert_eq!(&b.words, &greedy.words);
    }

    /// The chosen transcript's score parts add up to its total.
    #[test]
    fn score_parts_add_up(m in matrix()) {
        let dec = &decoders()[3].1;
        let r = dec.decode(&m).unwrap();
        let s = r.score;
        let sum = s.acoustic + 0.8 * s.lm + s.word_insertion + s.hotwords + s.oov;
        prop_assert!((sum - s.total).abs() <= 1e-3 * s.total.abs().max(1.0), "{:?}", s);
        prop_assert!(s.acoustic <= 1e-4);
    }
}
