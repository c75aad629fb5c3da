//! ditto-vm: the interpreter of bytecode [`Program`](ditto_bytecode::Program)s,
//! with two backends — `fixed` (cleartext ring emulation) and `mpc` (three
//! parties on secret shares) — and a cost profile per instruction.
//!
//! - [`interp`]: one party's interpreter; instruction semantics.
//! - [`source`]: where a party's inputs and weights come from (dealt shares,
//!   or cleartext values for `fixed`).
//! - [`run`]: whole runs in process, output reconstruction, cost reports.
//! - [`value`]: register values (public or shared, 32/64-bit, booleans).
//! - [`shares`]: the model owner's weight share files, one per party.
//! - [`wire`]: the messages of a deployed cluster (hellos, input shares,
//!   results) and a party's source of received shares.

pub mod declared;
pub mod interp;
pub mod run;
pub mod shares;
pub mod source;
pub mod value;
pub mod wire;

pub use ditto_net::mem::Shape;
pub use interp::{execute, Cost, Outcome, VmError, GUARD_RANGES};
pub use run::{
    assemble, estimate, insecure_seeds, op_kind, run_fixed, run_fixed_with, run_mpc, InstrCost,
    MpcOptions, Output, PartyOutcome, Report,
};
pub use source::{held_weights, Clear, Data, Dealt, Digit, Source, State, Stateful};
pub use value::Value;
