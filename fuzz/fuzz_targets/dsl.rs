//! Fuzzes the whole front end (`ditto_compiler::fuzzing::dsl`, which
//! compiler/tests/fuzz_smoke.rs also runs briefly under `cargo test`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ditto_compiler::fuzzing::dsl(data));
