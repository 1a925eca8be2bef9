//! LocalAgreement-2: which words of a re-decoded, growing speech buffer are safe to
//! commit.
//!
//! Whisper sees the whole buffer at every step, so each hypothesis may rewrite what the
//! previous one said. ufal/whisper_streaming (Macháček et al., 2023, "Turning Whisper into
//! Real-Time Transcription System") commits the longest common prefix of the last two
//! hypotheses: words two consecutive decodes agree on rarely change later. Committed
//! words are never revised and never emitted twice.
//!
//! This is pure code over words. Two hypotheses are compared after normalization
//! ([`word_key`]: case and punctuation do not count), and each new hypothesis is first
//! aligned against the words already committed ([`align_committed`], a word-level edit
//! distance) so that a decode that rephrases the committed part slightly does not shift
//! everything after it. whisper_streaming does that alignment with word timestamps and an
//! n-gram overlap test; hearken's Whisper decodes carry segment, not word, timestamps, so
//! the alignment is by content.
//! Reference: <https://github.com/ufal/whisper_streaming/blob/main/whisper_online.py>
//! (`HypothesisBuffer.insert`, `flush`).

/// A word's comparison key: lowercase letters and digits only, so `Hello,` and `hello`
/// agree.
pub fn word_key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Splits text into words at whitespace.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Joins words with spaces, except before a word that starts with punctuation that
/// closes a phrase (`,` `.` `;` `:` `!` `?` `%` `)`), which a decode that begins there
/// (after a forced prefix) gives as a word of its own.
pub fn join(words: &[String]) -> String {
    let mut out = String::new();
    for w in words {
        let attach = w
            .chars()
            .next()
            .is_some_and(|c| matches!(c, ',' | '.' | ';' | ':' | '!' | '?' | '%' | ')'));
        if !out.is_empty() && !attach {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Length of the longest common prefix of `a` and `b`, comparing [`word_key`]s.
pub fn common_prefix_len(a: &[String], b: &[String]) -> usize {
    a.iter()
        .zip(b)
        .take_while(|(x, y)| word_key(x) == word_key(y))
        .count()
}

/// Where the `committed` words end in a new hypothesis `hyp` of the same audio: the `j`
/// for which `hyp[..j]` is closest to `committed` by word edit distance (keys compared).
///
/// A substitution costs 3 and an insertion or deletion 2, so a decode that drops a
/// committed word aligns by deleting it rather than by swallowing the next new word as
/// its substitute; remaining ties go to the longer prefix, so a word is consumed rather
/// than emitted twice.
///
/// `O(committed.len() * hyp.len())`; both are bounded by the buffer (≈15 s of speech).
pub fn align_committed(committed: &[String], hyp: &[String]) -> usize {
    if committed.is_empty() {
        return 0;
    }
    let c: Vec<String> = committed.iter().map(|w| word_key(w)).collect();
    let h: Vec<String> = hyp.iter().map(|w| word_key(w)).collect();
    // prev[j] = distance(c[..i], h[..j]); row by row over i.
    const SUB: usize = 3;
    const INDEL: usize = 2;
    let mut prev: Vec<usize> = (0..=h.len()).map(|j| j * INDEL).collect();
    let mut cur = vec![0; h.len() + 1];
    for (i, ci) in c.iter().enumerate() {
        cur[0] = (i + 1) * INDEL;
        for (j, hj) in h.iter().enumerate() {
            let sub = prev[j] + if ci == hj { 0 } else { SUB };
            cur[j + 1] = sub.min(prev[j + 1] + INDEL).min(cur[j] + INDEL);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let mut best = 0;
    for j in 0..=h.len() {
        if prev[j] <= prev[best] {
            best = j;
        }
    }
    best
}

/// The LocalAgreement-2 state of one speech buffer.
#[derive(Debug, Clone, Default)]
pub struct Agreement {
    /// Committed words still inside the buffer (not yet finalized).
    committed: Vec<String>,
    /// The previous hypothesis past its committed prefix.
    tentative: Vec<String>,
    /// Whether a hypothesis was inserted since the last reset.
    seen: bool,
}

impl Agreement {
    /// An empty buffer.
    pub fn new() -> Self {
        Agreement::default()
    }

    /// Takes the hypothesis of a new decode of the whole buffer and returns the words it
    /// commits: the common prefix of this and the previous hypothesis, past what was
    /// already committed.
    pub fn insert(&mut self, hyp: &[String]) -> Vec<String> {
        let j = align_committed(&self.committed, hyp);
        let tail = &hyp[j..];
        let n = if self.seen {
            common_prefix_len(&self.tentative, tail)
        } else {
            0
        };
        let newly = tail[..n].to_vec();
        self.committed.extend(newly.iter().cloned());
        self.tentative = tail[n..].to_vec();
        self.seen = true;
        newly
    }

    /// The words of a last decode (end of speech): everything past the committed words,
    /// committed as is. Returns them.
    pub fn finish(&mut self, hyp: &[String]) -> Vec<String> {
        let j = align_committed(&self.committed, hyp);
        let rest = hyp[j..].to_vec();
        self.committed.extend(rest.iter().cloned());
        self.tentative.clear();
        rest
    }

    /// Committed words still in the buffer.
    pub fn committed(&self) -> &[String] {
        &self.committed
    }

    /// The latest hypothesis past the committed words.
    pub fn tentative(&self) -> &[String] {
        &self.tentative
    }

    /// The first `n` committed words left the buffer (they were finalized and their audio
    /// cut off); later hypotheses will not contain them.
    pub fn drop_committed(&mut self, n: usize) {
        let n = n.min(self.committed.len());
        self.committed.drain(..n);
    }

    /// Forgets everything (a new speech segment).
    pub fn reset(&mut self) {
        *self = Agreement::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn punctuation_attaches_to_the_previous_word() {
        assert_eq!(join(&w("drop box , because the")), "drop box, because the");
        assert_eq!(join(&w(". Then")), ". Then");
        assert_eq!(join(&[]), "");
    }

    #[test]
    fn keys_ignore_case_and_punctuation() {
        assert_eq!(word_key("Hello,"), "hello");
        assert_eq!(word_key("don't"), "dont");
        assert_eq!(
            common_prefix_len(&w("Hello, world again"), &w("hello world. now")),
            2
        );
    }

    #[test]
    fn commits_the_common_prefix_of_two_hypotheses() {
        let mut a = Agreement::new();
        assert!(a.insert(&w("the cat")).is_empty());
        assert_eq!(a.insert(&w("the cat sat on")), w("the cat"));
        assert_eq!(a.tentative(), w("sat on").as_slice());
        // A rewrite of the tentative part commits only what agrees.
        assert_eq!(a.insert(&w("The cat sat in the")), w("sat"));
        assert_eq!(a.committed(), w("the cat sat").as_slice());
        // Committed words are never emitted again, even when a later decode changes them.
        assert_eq!(a.insert(&w("A cat sat in the hat")), w("in the"));
        assert_eq!(a.finish(&w("a cat sat in the hat.")), w("hat."));
        assert_eq!(a.committed(), w("the cat sat in the hat.").as_slice());
    }

    #[test]
    fn alignment_tolerates_small_rewrites() {
        assert_eq!(
            align_committed(&w("the cat sat"), &w("the cat sat on the mat")),
            3
        );
        assert_eq!(
            align_committed(&w("the cat sat"), &w("a cat sat on the mat")),
            3
        );
        assert_eq!(
            align_committed(&w("the cat sat"), &w("the cat on the mat")),
            2
        );
        assert_eq!(
            align_committed(&w("the cat sat"), &w("the cat sat sat down")),
            3
        );
        assert_eq!(align_committed(&[], &w("x y")), 0);
        assert_eq!(align_committed(&w("x y"), &[]), 0);
    }

    #[test]
    fn dropping_finalized_words_keeps_the_rest_aligned() {
        let mut a = Agreement::new();
        a.insert(&w("one two three"));
        a.insert(&w("one two three four"));
        assert_eq!(a.committed(), w("one two three").as_slice());
        // The buffer is cut after "one two": the next decode starts at "three".
        a.drop_committed(2);
        assert_eq!(a.insert(&w("three four five")), w("four"));
        assert_eq!(a.committed(), w("three four").as_slice());
    }
}
