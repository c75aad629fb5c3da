//! Fuzzes the bytecode decoder and validator (`ditto_bytecode::fuzz_decode`,
//! which tests/format.rs also runs briefly under `cargo test`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ditto_bytecode::fuzz_decode(data));
