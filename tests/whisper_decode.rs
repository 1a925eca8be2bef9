//! Whisper decoding against scripted models: greedy, beam search, timestamp rules,
//! suppression, temperature fallback, length limits and long-form splitting.
//!
//! The models are tiny vocabularies (40 ids) with logits computed from the token history
//! (`hearken::decode::whisper::testing`), so the best sequence is known in advance.

use hearken::decode::whisper::testing::{Call, Query, ScriptedStep, hashed_logits};
use hearken::decode::whisper::{
    DecodeOptions, DecodingResult, Fallback, Search, SpecialTokens, decode, decode_with_fallback,
    split_segments,
};
use proptest::prelude::*;

const V: usize = 40;
const EOT: u32 = 20;
const SOT: u32 = 21;
const NO_SPEECH: u32 = 28;
const NO_TIMESTAMPS: u32 = 29;
const TB: u32 = 30;
const LOW: f32 = -30.0;

/// Text 0..20 (0 is the blank " "), then eot 20, sot 21, languages 22 and 23, translate 24,
/// transcribe 25, sot_lm 26, sot_prev 27, no_speech 28, notimestamps 29, timestamps 30..40.
fn layout(multilingual: bool) -> SpecialTokens {
    SpecialTokens {
        n_vocab: V,
        eot: EOT,
        sot: SOT,
        language_begin: 22,
        n_languages: 2,
        translate: 24,
        transcribe: 25,
        sot_lm: Some(26),
        sot_prev: 27,
        no_speech: Some(NO_SPEECH),
        no_timestamps: NO_TIMESTAMPS,
        timestamp_begin: TB,
        multilingual,
    }
}

fn options(timestamps: bool) -> DecodeOptions {
    DecodeOptions {
        timestamps,
        blank_tokens: vec![0],
        language: Some(22),
        ..DecodeOptions::default()
    }
}

/// The sampled part of a history: what follows the last prompt special (sot … notimestamps).
fn sampled(tokens: &[u32]) -> &[u32] {
    let start = tokens
        .iter()
        .rposition(|&t| (SOT..=NO_TIMESTAMPS).contains(&t))
        .map_or(0, |i| i + 1);
    &tokens[start..]
}

fn words(tokens: &[u32]) -> String {
    tokens
        .iter()
        .filter(|&&t| t < EOT)
        .map(|t| format!("w{t}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Logits from a list of `(token, log-probability)`; everything else far less likely.
fn set(out: &mut [f32], entries: &[(u32, f32)]) {
    out.fill(LOW);
    for &(t, lp) in entries {
        out[t as usize] = lp;
    }
}

#[test]
fn greedy_follows_the_most_likely_token() {
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| {
        let next = match sampled(q.tokens) {
            [] => 5,
            [5] => 6,
            [5, 6] => 7,
            _ => EOT,
        };
        set(out, &[(next, 0.0), (3, -1.0)]);
    });
    let r = decode(&mut model, &layout(false), &options(false), &words).unwrap();
    assert_eq!(r.tokens, vec![5, 6, 7]);
    assert_eq!(r.text, "w5 w6 w7");
    assert_eq!(r.temperature, 0.0);
    let lp = -(1.0f32 + (-1.0f32).exp()).ln();
    assert!((r.sum_logprob - 4.0 * lp).abs() < 1e-4, "{}", r.sum_logprob);
    assert!((r.avg_logprob - lp).abs() < 1e-4);
    // English-only prompt without timestamps: [sot, notimestamps], split at sot for the
    // no-speech probability, then one token per step.
    assert_eq!(
        model.calls[..3],
        [
            Call::Reset,
            Call::Step { n_new: 1, n_hyp: 1 },
            Call::Step { n_new: 1, n_hyp: 1 }
        ]
    );
    assert_eq!(model.n_steps(), 1 + 4);
    assert!(r.no_speech_prob.unwrap() < 1e-6);
}

/// First step: 1 (p 0.6) or 2 (p 0.4). After 1: six equally likely words, then the end;
/// after 2: the end with p 0.95. Greedy takes 1 and pays for the flat step; beam search
/// finds [2], which is likelier per token.
fn fork(q: Query, out: &mut [f32]) {
    match sampled(q.tokens) {
        [] => set(out, &[(1, 0.6f32.ln()), (2, 0.4f32.ln())]),
        [1] => set(
            out,
            &[(3, 0.0), (4, 0.0), (5, 0.0), (6, 0.0), (7, 0.0), (8, 0.0)],
        ),
        [2] => set(out, &[(EOT, 0.95f32.ln()), (9, 0.05f32.ln())]),
        _ => set(out, &[(EOT, 0.0)]),
    }
}

#[test]
fn beam_search_beats_greedy_on_a_fork() {
    let special = layout(false);
    let mut model = ScriptedStep::new(V, fork);
    let greedy = decode(&mut model, &special, &options(false), &words).unwrap();
    assert_eq!(greedy.tokens, vec![1, 3]);

    let mut model = ScriptedStep::new(V, fork);
    let opts = DecodeOptions {
        search: Search::Beam {
            beam_size: 2,
            patience: 1.0,
        },
        ..options(false)
    };
    let beam = decode(&mut model, &special, &opts, &words).unwrap();
    assert_eq!(beam.tokens, vec![2]);
    assert!(beam.avg_logprob > greedy.avg_logprob);
    assert!((beam.sum_logprob - (0.4f32.ln() + 0.95f32.ln())).abs() < 1e-3);
    // One prompt row fans out to two beams, then the caches follow the beams.
    assert!(model.calls.contains(&Call::Reorder(vec![0, 0])));
    assert!(model.calls.contains(&Call::Step { n_new: 1, n_hyp: 2 }));
}

#[test]
fn beam_patience_collects_more_finished_candidates() {
    // Patience 2 keeps searching after [2] and [1, x] end; the ranking is unchanged.
    let mut model = ScriptedStep::new(V, fork);
    let opts = DecodeOptions {
        search: Search::Beam {
            beam_size: 2,
            patience: 2.0,
        },
        ..options(false)
    };
    let r = decode(&mut model, &layout(false), &opts, &words).unwrap();
    assert_eq!(r.tokens, vec![2]);
    // With alpha = 0 (raw sums), [2] still wins: it is the likelier sequence outright.
    let opts = DecodeOptions {
        length_penalty: Some(0.0),
        ..opts
    };
    let mut model = ScriptedStep::new(V, fork);
    assert_eq!(
        decode(&mut model, &layout(false), &opts, &words)
            .unwrap()
            .tokens,
        vec![2]
    );
}

fn random_model(seed: u64, scale: f32) -> ScriptedStep<impl Fn(Query, &mut [f32])> {
    ScriptedStep::new(V, move |q: Query, out: &mut [f32]| {
        hashed_logits(seed, q.tokens, scale, out);
        // Make the end reachable but not certain.
        out[EOT as usize] += 0.5;
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn beam_size_one_is_greedy(
        seed in any::<u64>(),
        scale in 0.5f32..6.0,
        timestamps in any::<bool>(),
        multilingual in any::<bool>(),
        max_tokens in 1usize..40,
        prompt_len in 0usize..4,
        suppress in proptest::collection::vec(0u32..20, 0..3),
    ) {
        let special = layout(multilingual);
        let opts = DecodeOptions {
            max_tokens,
            prompt: (1..=prompt_len as u32).collect(),
            suppress_tokens: suppress,
            ..options(timestamps)
        };
        let greedy = decode(&mut random_model(seed, scale), &special, &opts, &words).unwrap();
        let beam_opts = DecodeOptions { search: Search::Beam { beam_size: 1, patience: 1.0 }, ..opts };
        let beam = decode(&mut random_model(seed, scale), &special, &beam_opts, &words).unwrap();
        prop_assert_eq!(&beam.tokens, &greedy.tokens);
        prop_assert_eq!(beam.sum_logprob.to_bits(), greedy.sum_logprob.to_bits());
        prop_assert_eq!(beam.avg_logprob.to_bits(), greedy.avg_logprob.to_bits());
        prop_assert!(greedy.tokens.len() <= max_tokens);
    }

    #[test]
    fn sampled_timestamps_follow_the_grammar(
        seed in any::<u64>(),
        scale in 0.5f32..6.0,
        beam in any::<bool>(),
    ) {
        let search = if beam { Search::Beam { beam_size: 3, patience: 1.0 } } else { Search::Greedy };
        let opts = DecodeOptions {
            search,
            max_initial_timestamp_s: Some(0.1), // index 5
            // The language tokens are not special to the timestamp rules (nor suppressed
            // by OpenAI): keep them out so that every sampled id is text or a timestamp.
            suppress_tokens: vec![22, 23],
            ..options(true)
        };
        let r = decode(&mut random_model(seed, scale), &layout(false), &opts, &words).unwrap();
        check_timestamp_grammar(&r.tokens, 5)?;
    }

    #[test]
    fn listed_and_special_tokens_are_never_sampled(seed in any::<u64>()) {
        let mut model = ScriptedStep::new(V, move |q: Query, out: &mut [f32]| {
            hashed_logits(seed, q.tokens, 1.0, out);
            // The forbidden tokens are the most likely ones.
            for t in FORBIDDEN {
                out[t as usize] = 10.0;
            }
        });
        let opts = DecodeOptions { suppress_tokens: vec![4, 9], max_tokens: 20, ..options(false) };
        let r = decode(&mut model, &layout(true), &opts, &words).unwrap();
        prop_assert!(r.tokens.iter().all(|t| !FORBIDDEN.contains(t)), "{:?}", r.tokens);
    }
}

/// The listed tokens of `listed_and_special_tokens_are_never_sampled` and the tokens OpenAI
/// always suppresses (sot, translate, transcribe, sot_lm, sot_prev, no_speech).
const FORBIDDEN: [u32; 8] = [4, 9, SOT, 24, 25, 26, 27, NO_SPEECH];

fn check_timestamp_grammar(tokens: &[u32], max_initial: u32) -> Result<(), TestCaseError> {
    let is_ts = |t: u32| t >= TB;
    if let Some(&first) = tokens.first() {
        prop_assert!(
            is_ts(first) && first <= TB + max_initial,
            "first {first} in {tokens:?}"
        );
    }
    let mut last_ts = None;
    for (i, &t) in tokens.iter().enumerate() {
        if is_ts(t) {
            if let Some(prev) = last_ts {
                prop_assert!(t >= prev, "timestamps decrease in {tokens:?}");
            }
            last_ts = Some(t);
        }
        if i >= 2 {
            prop_assert!(
                !(is_ts(tokens[i - 2]) && is_ts(tokens[i - 1]) && is_ts(t)),
                "three timestamps in {tokens:?}"
            );
        }
        // text, timestamp → the pair closes (another timestamp) or the output ends.
        if i >= 1 && !is_ts(tokens[i - 1]) && is_ts(t) && i + 1 < tokens.len() {
            prop_assert!(
                is_ts(tokens[i + 1]),
                "unpaired timestamp at {i} in {tokens:?}"
            );
        }
    }
    // Every segment has a positive length: its closing timestamp is after its opening one.
    let mut open = None;
    for w in tokens.windows(2) {
        match (is_ts(w[0]), is_ts(w[1])) {
            (true, false) => open = Some(w[0]),
            (false, true) => {
                if let Some(o) = open {
                    prop_assert!(w[1] > o, "empty segment in {tokens:?}");
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn blank_and_end_are_suppressed_at_the_first_step_only() {
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| match sampled(q.tokens) {
        [] => set(out, &[(0, 5.0), (EOT, 4.0), (7, 0.0)]),
        _ => set(out, &[(EOT, 5.0), (0, 4.0)]),
    });
    let r = decode(&mut model, &layout(false), &options(false), &words).unwrap();
    assert_eq!(r.tokens, vec![7]);
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| match sampled(q.tokens) {
        [] => set(out, &[(0, 5.0), (EOT, 4.0), (7, 0.0)]),
        _ => set(out, &[(EOT, 5.0)]),
    });
    let opts = DecodeOptions {
        suppress_blank: false,
        ..options(false)
    };
    assert_eq!(
        decode(&mut model, &layout(false), &opts, &words)
            .unwrap()
            .tokens,
        vec![0]
    );
}

#[test]
fn timestamps_open_close_and_end() {
    // The model wants: <0.02> w5 w6 <0.10> <0.10> w7 <0.16> end.
    let script = [TB + 1, 5, 6, TB + 5, TB + 5, 7, TB + 8, EOT];
    let mut model = ScriptedStep::new(V, move |q: Query, out: &mut [f32]| {
        let next = script.get(sampled(q.tokens).len()).copied().unwrap_or(EOT);
        set(out, &[(next, 3.0), (3, 1.0)]);
    });
    let r = decode(&mut model, &layout(false), &options(true), &words).unwrap();
    assert_eq!(r.tokens, &script[..7]);
    assert_eq!(r.text, "w5 w6 w7");
    let split = split_segments(&r.tokens, TB, 0, 3000, 0.01);
    assert_eq!(split.segments.len(), 2);
    assert!((split.segments[0].end_s - 0.10).abs() < 1e-9);
    assert!((split.segments[1].end_s - 0.16).abs() < 1e-9);
    assert_eq!(split.seek_advance_frames, 3000);
}

#[test]
fn late_first_timestamp_is_clamped_and_text_forced_into_a_timestamp() {
    // The model's favourite first token is a late timestamp (index 9 > 5) and then text
    // forever; the rules start at the latest allowed timestamp.
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| match sampled(q.tokens) {
        [] => set(
            out,
            &[(TB + 9, 5.0), (TB + 5, 1.0), (TB + 2, 0.0), (3, 6.0)],
        ),
        s if s.len() < 3 => set(out, &[(3 + s.len() as u32, 2.0)]),
        // The four timestamps still allowed (≥ TB + 6), at 1.0 each, outweigh the text
        // token at 2.0.
        _ => {
            set(out, &[(8, 2.0)]);
            out[TB as usize..].fill(1.0);
        }
    });
    let opts = DecodeOptions {
        max_initial_timestamp_s: Some(0.1),
        ..options(true)
    };
    let r = decode(&mut model, &layout(false), &opts, &words).unwrap();
    assert_eq!(r.tokens[0], TB + 5);
    assert_eq!(&r.tokens[1..3], &[4, 5]);
    assert!(r.tokens[3] >= TB + 6, "{:?}", r.tokens);
}

#[test]
fn output_stops_at_max_tokens() {
    let endless = |q: Query, out: &mut [f32]| set(out, &[(1 + (q.tokens.len() % 7) as u32, 0.0)]);
    for search in [
        Search::Greedy,
        Search::Beam {
            beam_size: 3,
            patience: 1.0,
        },
    ] {
        let mut model = ScriptedStep::new(V, endless);
        let opts = DecodeOptions {
            max_tokens: 13,
            search,
            ..options(false)
        };
        let r = decode(&mut model, &layout(false), &opts, &words).unwrap();
        assert_eq!(r.tokens.len(), 13);
        assert_eq!(model.n_steps(), 2 + 12, "{search:?}");
    }
}

#[test]
fn output_stops_at_the_decoder_context() {
    // A 223-token previous-text prompt + sot, language, task = 227 positions; the model
    // refuses position 449, so at most 222 tokens can be sampled (the last never fed).
    let endless = |q: Query, out: &mut [f32]| set(out, &[(1 + (q.tokens.len() % 7) as u32, 0.0)]);
    for search in [
        Search::Greedy,
        Search::Beam {
            beam_size: 2,
            patience: 1.0,
        },
    ] {
        let mut model = ScriptedStep::new(V, endless);
        let opts = DecodeOptions {
            prompt: vec![3; 300],
            search,
            ..options(true)
        };
        let r = decode(&mut model, &layout(true), &opts, &words).unwrap();
        assert_eq!(r.tokens.len(), 448 - 227 + 1, "{search:?}");
    }
}

#[test]
fn language_is_detected_when_not_given() {
    let seen = std::sync::Mutex::new(Vec::new());
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| {
        seen.lock().unwrap().push(q.tokens.to_vec());
        if q.tokens == [SOT] {
            set(out, &[(23, 3.0), (22, 1.0), (5, 9.0)]);
        } else if sampled(q.tokens).is_empty() {
            set(out, &[(4, 0.0)]);
        } else {
            set(out, &[(EOT, 0.0)]);
        }
    });
    let opts = DecodeOptions {
        language: None,
        ..options(false)
    };
    let r = decode(&mut model, &layout(true), &opts, &words).unwrap();
    assert_eq!(r.language, Some(23));
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|t| t == &[SOT, 23, 25, NO_TIMESTAMPS])
    );
    drop(model);

    // With previous text the detection is a separate `[sot]` pass.
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| {
        if q.tokens == [SOT] {
            set(out, &[(23, 3.0)]);
        } else {
            set(out, &[(EOT, 0.0), (4, 1.0)]);
        }
    });
    let opts = DecodeOptions {
        language: None,
        prompt: vec![1, 2],
        ..options(false)
    };
    let r = decode(&mut model, &layout(true), &opts, &words).unwrap();
    assert_eq!(r.language, Some(23));
    assert_eq!(
        model.calls[..5],
        [
            Call::Reset,
            Call::Reset,
            Call::Step { n_new: 1, n_hyp: 1 },
            Call::Reset,
            Call::Step { n_new: 4, n_hyp: 1 }
        ]
    );
}

#[test]
fn best_of_sampling_is_seeded() {
    let run = |seed: u64| {
        let mut model = random_model(1234, 1.5);
        let opts = DecodeOptions {
            search: Search::Sample {
                temperature: 1.0,
                best_of: 4,
            },
            seed,
            max_tokens: 12,
            ..options(false)
        };
        let r = decode(&mut model, &layout(false), &opts, &words).unwrap();
        assert!(model.calls.contains(&Call::Reorder(vec![0, 0, 0, 0])));
        r
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_eq!(a.temperature, 1.0);
    assert!((1..20).any(|s| run(s).tokens != a.tokens));
}

/// Attempt 1 loops on "w1 w2"; later attempts say "w3 w4".
fn repetitive_then_fine(q: Query, out: &mut [f32]) {
    let s = sampled(q.tokens);
    if q.n_resets == 1 {
        set(out, &[(1 + (s.len() % 2) as u32, 0.0)]);
    } else {
        let next = [3, 4].get(s.len()).copied().unwrap_or(EOT);
        set(out, &[(next, 0.0)]);
    }
}

#[test]
fn fallback_retries_a_repetition_loop_hotter() {
    let mut model = ScriptedStep::new(V, repetitive_then_fine);
    let r = decode_with_fallback(
        &mut model,
        &layout(false),
        &options(false),
        &Fallback::default(),
        &words,
    )
    .unwrap();
    assert_eq!(r.tokens, vec![3, 4]);
    assert_eq!(r.temperature, 0.2);
    assert_eq!(model.n_resets(), 2);

    // The first attempt alone: a compression ratio above 2.4.
    let mut model = ScriptedStep::new(V, repetitive_then_fine);
    let first = decode(&mut model, &layout(false), &options(false), &words).unwrap();
    assert_eq!(first.tokens.len(), 224);
    assert!(first.compression_ratio > 2.4, "{}", first.compression_ratio);
}

#[test]
fn fallback_retries_low_confidence() {
    // Attempt 1: five distinct words, each barely ahead of 38 others.
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| {
        let s = sampled(q.tokens);
        if q.n_resets == 1 {
            out.fill(0.0);
            out[[5, 6, 7, 8, 9, EOT as usize]
                .get(s.len())
                .copied()
                .unwrap_or(EOT as usize)] = 0.5;
        } else {
            set(out, &[([3, 4].get(s.len()).copied().unwrap_or(EOT), 0.0)]);
        }
    });
    let r = decode_with_fallback(
        &mut model,
        &layout(false),
        &options(false),
        &Fallback::default(),
        &words,
    )
    .unwrap();
    assert_eq!(r.tokens, vec![3, 4]);
    assert_eq!(r.temperature, 0.2);
}

#[test]
fn silent_window_is_accepted_then_skipped() {
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| {
        out.fill(0.0);
        if q.tokens.last() == Some(&SOT) {
            out[NO_SPEECH as usize] = 10.0;
        }
    });
    let fallback = Fallback::default();
    let opts = DecodeOptions {
        max_tokens: 5,
        ..options(false)
    };
    let r = decode_with_fallback(&mut model, &layout(false), &opts, &fallback, &words).unwrap();
    assert_eq!(model.n_resets(), 1, "no retry for silence");
    assert!(r.no_speech_prob.unwrap() > 0.6);
    assert!(r.avg_logprob < -1.0);
    assert!(fallback.should_skip(&r));
}

#[test]
fn hopeless_window_returns_the_last_attempt() {
    let mut model = ScriptedStep::new(V, |q: Query, out: &mut [f32]| {
        hashed_logits(q.n_resets as u64, q.tokens, 0.1, out);
    });
    let r: DecodingResult = decode_with_fallback(
        &mut model,
        &layout(false),
        &options(false),
        &Fallback::default(),
        &words,
    )
    .unwrap();
    assert_eq!(r.temperature, 1.0);
    assert_eq!(model.n_resets(), 6);
}

#[test]
fn protocol_violations_are_errors_not_panics() {
    struct Short;
    impl hearken::decode::WhisperStep for Short {
        fn n_vocab(&self) -> usize {
            V
        }
        fn step(&mut self, _: &[u32], _: usize) -> hearken::Result<Vec<f32>> {
            Ok(vec![0.0; 3])
        }
        fn reorder(&mut self, _: &[usize]) -> hearken::Result<()> {
            Ok(())
        }
        fn reset(&mut self) -> hearken::Result<()> {
            Ok(())
        }
    }
    assert!(decode(&mut Short, &layout(false), &options(false), &words).is_err());
    let mut wrong_width = ScriptedStep::new(V + 1, |_: Query, _: &mut [f32]| {});
    assert!(decode(&mut wrong_width, &layout(false), &options(false), &words).is_err());
}
