//! Fuzzes the IR text parser and the verifier: arbitrary text must be
//! rejected with an error or parse to a graph the verifier can judge.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    if let Ok(g) = ditto_compiler::ir::text::parse(src) {
        let _ = ditto_compiler::ir::verify::verify(&g);
        let _ = ditto_compiler::ir::text::print(&g);
    }
});
