//! Decoders: from logits to tokens, as pure code over slices.
//!
//! Search is where speech runtimes quietly disagree with their reference: a timestamp
//! rule applied one step late, a beam that keeps the wrong candidates, a fallback that
//! triggers on a different threshold. So nothing here touches an engine. A decoder sees a
//! model only through a small trait ([`whisper::WhisperStep`]: "give me the next logits for
//! these hypotheses"), logit filters are functions of `(tokens: &[u32], logits: &mut [f32])`,
//! and every rule is tested against scripted models whose optimum is known.
//!
//! - [`whisper`]: OpenAI Whisper decoding (logit filters, greedy, best-of-N sampling, beam
//!   search, temperature fallback, long-form segment splitting).
//! - [`ctc`]: CTC greedy and prefix beam search over per-frame log-probabilities.
//!
//! Both share one arg-max tie rule, log-sum-exp and seeded PRNG (`math`).

pub mod ctc;
pub(crate) mod math;
pub mod whisper;

pub use whisper::{
    DecodeOptions, DecodingResult, Detokenize, Fallback, Search, SpecialTokens, Task, WhisperStep,
};
