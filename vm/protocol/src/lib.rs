//! ditto-protocol: the 3-party replicated-secret-sharing engine of
//! `shared/design/PROTOCOLS.md` — rings Z_2^32 / Z_2^64 ([`ring`]), local
//! kernels ([`kernels`]), shares ([`share`]), correlated randomness ([`prg`])
//! and every primitive ([`party`]). Synchronous and transport-agnostic: it
//! talks through the [`comm::Comm`] trait and never opens a socket.

pub mod comm;
pub mod cost;
pub mod kernels;
pub mod leaks;
pub mod party;
pub mod prg;
pub mod ring;
pub mod share;

pub use comm::{Comm, CommError, Phase, ProtocolError, Stats};
pub use party::{ConvCall, ConvIn, ConvJob, ConvOut, Operand, Party, PartyState, PreCall};
pub use ring::Ring;
pub use share::{AShare, BShare, BitShare};
