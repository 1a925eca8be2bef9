//! Subcommands of `hearken-export` that live in their own files: parse, wire, print; the
//! work is in the library.

pub mod train;
