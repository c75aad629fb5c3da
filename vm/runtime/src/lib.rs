//! ditto-vm: the interpreter over a bytecode `Program` with the `fixed` and
//! `rss3` backends.
//!
//! Status: not built yet (issue 4). This crate deliberately exports nothing.
