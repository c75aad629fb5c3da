//! Fuzzes the whole front end: lexing, parsing, elaboration (including the
//! stdlib it may `use`), verification and, when it compiles, IR printing and
//! re-parsing. Nothing may panic; a compiled graph must round-trip.
#![no_main]
use ditto_compiler::driver::compile_text;
use ditto_compiler::elab::Options;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let opts = Options { seq: Some(3), ..Default::default() };
    let c = compile_text("fuzz.ditto", src, &opts);
    match c.result {
        Ok(e) => {
            let text = ditto_compiler::ir::text::print(&e.graph);
            let back = ditto_compiler::ir::text::parse(&text).expect("printed IR parses");
            assert!(back.same_as(&e.graph));
        }
        Err(d) => {
            let _ = ditto_compiler::diag::render(&c.sources, &d, false);
        }
    }
});
