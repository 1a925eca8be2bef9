//! Subcommands of the `hearken` binary, one file each, plus the flags they share
//! ([`options`]) and stdout that survives a closed pipe ([`out`]). The library does the
//! work; a subcommand parses, calls and prints.

/// `writeln!` into a `String` (which cannot fail), for commands that build their output
/// before printing it through [`out::print`].
macro_rules! outln {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($arg)*);
    }};
}

pub mod bench;
pub mod classify;
pub mod devices;
pub mod engines;
pub mod eval;
pub mod features;
pub mod inspect;
pub mod listen;
pub mod options;
pub mod out;
pub mod transcribe;
pub mod vad;
