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
pub mod gguf;
pub mod ir;
pub mod passes;
pub mod policy;
pub mod stdlib;
pub mod syntax;
pub mod weights;

/// The bodies of the fuzz targets (`fuzz/`), callable from ordinary tests so
/// that a short run of each is part of `cargo test` (tests/fuzz_smoke.rs):
/// nothing may panic, and what compiles must round-trip.
#[doc(hidden)]
pub mod fuzzing {
    use crate::driver::compile_text;
    use crate::elab::Options;

    /// The whole front end: lexing, parsing, elaboration (including the stdlib
    /// it may `use`), verification and, when it compiles, IR printing and
    /// re-parsing.
    pub fn dsl(data: &[u8]) {
        let Ok(src) = std::str::from_utf8(data) else {
            return;
        };
        let opts = Options {
            seq: Some(3),
            ..Default::default()
        };
        let c = compile_text("fuzz.ditto", src, &opts);
        match c.result {
            Ok(e) => {
                let text = crate::ir::text::print(&e.graph);
                let back = crate::ir::text::parse(&text).expect("printed IR parses");
                assert!(back.same_as(&e.graph), "printed IR round-trips");
            }
            Err(d) => {
                let _ = crate::diag::render(&c.sources, &d, false);
            }
        }
    }

    /// The IR text parser and the verifier: arbitrary text is rejected with
    /// an error or parses to a graph the verifier can judge.
    pub fn ir_text(data: &[u8]) {
        let Ok(src) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(g) = crate::ir::text::parse(src) {
            let _ = crate::ir::verify::verify(&g);
            let _ = crate::ir::text::print(&g);
        }
    }
}
