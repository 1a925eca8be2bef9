//! Plain text: what a person reads in a terminal.

use super::Source;
use crate::result::{Labels, Transcript};

/// The transcript's text and a newline.
pub(super) fn transcript(t: &Transcript) -> String {
    format!("{}\n", t.text)
}

/// `file<TAB>label score<TAB>…`, best first, one line.
pub(super) fn labels(l: &Labels, source: &Source, top_k: usize) -> String {
    let mut line = source.file.clone();
    for s in l.top_k(top_k) {
        line.push_str(&format!("\t{} {:.3}", s.label, s.score));
    }
    line.push('\n');
    line
}
