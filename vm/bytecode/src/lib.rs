//! ditto-bytecode: the instruction set of the ditto VM, its binary and JSON
//! encodings, validating decoder and disassembler.
//!
//! Status: not built yet (issue 4). This crate deliberately exports nothing, so
//! that no caller can mistake it for a working encoder.
