//! ditto-net: `Comm` implementations (in-memory, TCP, TLS) with byte and round
//! counting.
//!
//! Status: not built yet (issue 3). This crate deliberately exports nothing.
