//! ditto-protocol: rings Z_2^32 / Z_2^64, replicated secret shares and every MPC
//! primitive of `shared/design/PROTOCOLS.md`.
//!
//! Status: not built yet (issue 3). This crate deliberately exports nothing.
