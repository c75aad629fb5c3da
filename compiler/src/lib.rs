//! ditto-compiler: the DSL front end, the typed IR with its printer, parser,
//! verifier, float evaluator and DOT output, and weight loading.
//!
//! Data flow: source text → [`syntax::parse`] → AST → [`elab::elaborate`] → IR
//! [`ir::Graph`] → [`passes`] (under a [`policy`]) → lowered IR, evaluated
//! exactly ([`ir::eval`]) or on cleartext rings ([`ir::fixed`]); codegen to
//! bytecode for the VM is not built yet.

pub mod calibrate;
pub mod codegen;
pub mod diag;
pub mod driver;
pub mod elab;
pub mod ir;
pub mod passes;
pub mod policy;
pub mod stdlib;
pub mod syntax;
pub mod weights;
