//! What the threading layer of a session tells the synchronous pipeline about real time.

/// What the session's threading layer tells the pipeline about real time.
pub(crate) trait Budget {
    /// Compute is behind real time: skip optional work (partials).
    fn lagging(&self) -> bool;
    /// Far behind: abandon a partial decode in progress.
    fn abort(&self) -> bool;
    /// Records that a partial was skipped or abandoned.
    fn skipped_partial(&self);
    /// Audio arrives in real time and compute keeps up: worth decoding ahead when a
    /// pause begins, in case it is the end of speech.
    fn speculate(&self) -> bool;
    /// Audio arrives in real time: work may be paced by how long it takes.
    fn realtime(&self) -> bool;
}

/// No real-time pressure: every partial is decoded (files, tests).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Unhurried;

impl Budget for Unhurried {
    fn lagging(&self) -> bool {
        false
    }
    fn abort(&self) -> bool {
        false
    }
    fn skipped_partial(&self) {}
    fn speculate(&self) -> bool {
        false
    }
    fn realtime(&self) -> bool {
        false
    }
}
