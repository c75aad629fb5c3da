//! The VM's public values mean what the bytecode says a fixed-point word
//! means (`ditto_bytecode::fixed`, the compiler's evaluator's definition
//! too): its fast `encode` agrees with the definition on random and edge
//! values in both rings.

use ditto_bytecode::fixed;
use ditto_protocol::Ring;
use ditto_vm::value::encode;
use proptest::prelude::*;

fn agree(x: f64, f: u32) {
    let a: u32 = encode(x, f);
    let b: u64 = encode(x, f);
    assert_eq!(a.to_i64(), fixed::encode(x, 32, f), "x = {x}, (32, {f})");
    assert_eq!(b.to_i64(), fixed::encode(x, 64, f), "x = {x}, (64, {f})");
}

#[test]
fn edge_values_encode_as_defined() {
    for f in [0, 8, 14, 18, 30] {
        for x in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            1e-9,
            -1e-9,
            3.999,
            1e6,
            -1e6,
            8.9e18,
            -8.9e18,
            9.1e18,
            1e30,
            -1e30,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            agree(x / (f as f64).exp2(), f);
            agree(x, f);
        }
    }
}

proptest! {
    #[test]
    fn random_values_encode_as_defined(x in any::<f64>(), f in 0u32..31) {
        agree(x, f);
    }

    #[test]
    fn halves_round_away_from_zero_as_defined(i in any::<i32>(), f in 0u32..24) {
        agree((i as f64 + 0.5) / (f as f64).exp2(), f);
    }
}
