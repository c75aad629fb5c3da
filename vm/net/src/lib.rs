//! ditto-net: implementations of `ditto_protocol::Comm`.
//!
//! A [`Channel`] is one party's end of the three-party mesh. It frames every
//! message with its length, the sender's step label and a per-link sequence
//! number, checks all three on receipt, and counts bytes and rounds by phase.
//! Links are in-memory ([`mem`], for tests and benchmarks), TCP ([`tcp`]) or
//! mutually authenticated TLS with pinned certificates ([`tls`], the cluster).
//! [`harness`] runs the same party code on three threads over either.

pub mod channel;
pub mod harness;
pub mod mem;
pub mod tcp;
pub mod tls;

pub use channel::{Channel, Link, LinkEvent, HEADER_LEN, MAX_FRAME};
pub use harness::{run3, run3_tcp, Transport};
