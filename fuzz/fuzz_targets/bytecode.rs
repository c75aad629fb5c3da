//! Fuzzes the bytecode decoder and validator: arbitrary bytes as a file, and
//! as a body behind a valid header (so the fuzzer gets past the hash). The
//! decoder must never panic, and what it accepts must re-encode identically.
#![no_main]
use ditto_bytecode::{Program, MAGIC, VERSION};
use libfuzzer_sys::fuzz_target;
use sha2::Digest;

fuzz_target!(|data: &[u8]| {
    let _ = Program::decode(data);
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.extend_from_slice(&sha2::Sha256::digest(data));
    file.extend_from_slice(data);
    if let Ok(p) = Program::decode(&file) {
        assert_eq!(p.encode(), file);
        let _ = p.disassemble();
    }
});
