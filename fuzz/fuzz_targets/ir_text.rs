//! Fuzzes the IR text parser and the verifier
//! (`ditto_compiler::fuzzing::ir_text`, which compiler/tests/fuzz_smoke.rs
//! also runs briefly under `cargo test`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ditto_compiler::fuzzing::ir_text(data));
