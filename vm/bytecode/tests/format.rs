//! The bytecode format: encode/decode round trips, a validating decoder that
//! rejects every truncation and corruption without panicking, the validator's
//! rules, and the docs table generated from the instruction declaration.

use ditto_bytecode::*;
use proptest::prelude::*;

fn fixed(secret: bool, ring: u8, frac: u8, shape: &[u64]) -> RegType {
    RegType {
        secret,
        kind: Kind::Fixed { ring, frac },
        shape: shape.to_vec(),
    }
}

/// y = trunc(x @ w) + b, revealed.
fn sample() -> Program {
    Program {
        regs: vec![
            fixed(true, 32, 8, &[2, 4]),
            fixed(true, 32, 8, &[4, 3]),
            fixed(true, 32, 16, &[2, 3]),
            fixed(true, 32, 8, &[2, 3]),
            fixed(false, 32, 8, &[]),
            fixed(true, 32, 8, &[2, 3]),
        ],
        inputs: vec![Port {
            name: "x".into(),
            reg: Reg(0),
            owner: Some(Owner::Client),
            transposed: false,
        }],
        weights: vec![Port {
            name: "w".into(),
            reg: Reg(1),
            owner: None,
            transposed: false,
        }],
        outputs: vec![Port {
            name: "y".into(),
            reg: Reg(5),
            owner: None,
            transposed: false,
        }],
        code: vec![
            Instr::Input {
                dst: Reg(0),
                port: 0,
            },
            Instr::Weight {
                dst: Reg(1),
                port: 0,
            },
            Instr::MatMul {
                dst: Reg(2),
                a: Reg(0),
                b: Reg(1),
            },
            Instr::Round {},
            Instr::Convert {
                dst: Reg(3),
                a: Reg(2),
            },
            Instr::Const {
                dst: Reg(4),
                value: 0.5,
            },
            Instr::Add {
                dst: Reg(5),
                a: Reg(3),
                b: Reg(4),
            },
            Instr::Output { port: 0, a: Reg(5) },
        ],
        scopes: vec!["layer.0".into(), "head".into()],
        scope_of: vec![0, 0, 0, 0, 0, 1, 1, 1],
        meta: vec![
            ("model".into(), "sample".into()),
            ("policy".into(), "ditto".into()),
        ],
    }
}

#[test]
fn round_trip_and_disassembly() {
    let p = sample();
    let bytes = p.encode();
    assert_eq!(&bytes[..8], MAGIC);
    let q = Program::decode(&bytes).expect("valid");
    assert_eq!(p, q);
    assert_eq!(p.hash(), q.hash());
    let text = q.disassemble();
    assert!(text.contains("matmul dst=r2 a=r0 b=r1"), "{text}");
    assert!(text.contains("; input #0 \"x\" = r0 from client"), "{text}");
    assert!(text.contains("; r2: s32.16[2, 3]"), "{text}");
    // a weight dealt transposed round-trips and says so
    let mut p = sample();
    p.regs[1] = fixed(true, 32, 8, &[4, 3]);
    p.weights[0].transposed = true;
    let q = Program::decode(&p.encode()).expect("valid");
    assert!(q.weights[0].transposed);
    assert!(q
        .disassemble()
        .contains("; weight #0 \"w\" = r1 transposed"));
}

#[test]
fn every_truncation_and_corruption_is_rejected() {
    let bytes = sample().encode();
    for n in 0..bytes.len() {
        assert!(
            Program::decode(&bytes[..n]).is_err(),
            "a file cut at {n} bytes was accepted"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(
            Program::decode(&b).is_err(),
            "a flipped byte {i} was accepted"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        Program::decode(&long),
        Err(DecodeError::HashMismatch)
    ));
    let mut v2 = bytes.clone();
    v2[8] = 1; // version 1 had no debug scopes
    assert!(matches!(Program::decode(&v2), Err(DecodeError::Version(1))));
    assert!(matches!(
        Program::decode(b"PK\x03\x04 not bytecode"),
        Err(DecodeError::BadMagic)
    ));
}

/// Re-hashes a modified body so the decoder's structural checks are reached.
fn with_body(body: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut f = MAGIC.to_vec();
    f.extend_from_slice(&VERSION.to_le_bytes());
    f.extend_from_slice(&sha2::Sha256::digest(body));
    f.extend_from_slice(body);
    f
}

#[test]
fn validator_rules() {
    let check = |p: Program, want: &str| {
        let e = Program::decode(&p.encode()).expect_err(want);
        assert!(e.to_string().contains(want), "wanted {want:?}, got {e}");
    };
    let mut p = sample();
    p.code.swap(2, 0);
    check(p, "reads r0 before it is written");
    let mut p = sample();
    p.code.insert(
        3,
        Instr::MatMul {
            dst: Reg(2),
            a: Reg(0),
            b: Reg(1),
        },
    );
    check(p, "writes r2 a second time");
    let mut p = sample();
    p.regs[2] = fixed(true, 32, 16, &[2, 4]);
    check(p, "the operands give [2, 3]");
    let mut p = sample();
    p.regs[5].secret = false;
    check(p, "must be secret");
    let mut p = sample();
    p.code[7] = Instr::Output { port: 0, a: Reg(3) };
    check(p, "output #0 is not declared with register r3");
    let mut p = sample();
    p.code.push(Instr::Neg {
        dst: Reg(9),
        a: Reg(0),
    });
    check(p, "register r9 does not exist");
    let mut p = sample();
    p.regs[4] = fixed(true, 32, 8, &[]);
    check(p, "a constant is a public scalar");
    let mut p = sample();
    p.code[4] = Instr::Rescale {
        dst: Reg(3),
        a: Reg(2),
    };
    check(p, "rescale keeps the ring and adds fraction bits");
    let mut p = sample();
    p.inputs[0].transposed = true;
    check(
        p,
        "input \"x\" is marked transposed; only a matrix weight can be",
    );
    let mut p = sample();
    p.regs[1] = fixed(true, 32, 8, &[12]);
    p.weights[0].transposed = true;
    p.code.truncate(2);
    p.scope_of.truncate(2);
    p.outputs.clear();
    check(p, "weight \"w\" is marked transposed");
    let mut p = sample();
    p.scope_of.pop();
    check(p, "7 scope indices for 8 instructions");
    let mut p = sample();
    p.scope_of[3] = 2;
    check(p, "scope index 2 of 2 scopes");
    // structural errors behind a valid hash
    let body = &sample().encode()[42..];
    let mut b = body.to_vec();
    b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Program::decode(&with_body(&b))
        .unwrap_err()
        .to_string()
        .contains("exceeds the file"));
    // found by the fuzzer: a boolean register carrying a ring would not
    // re-encode to the same bytes; it is rejected
    let mut b = body.to_vec();
    b[4..8].copy_from_slice(&[0, 1, 224, 0]);
    assert!(Program::decode(&with_body(&b))
        .unwrap_err()
        .to_string()
        .contains("bad element type"));
    let mut b = body.to_vec();
    b[5] = 33; // first register's ring
    assert!(Program::decode(&with_body(&b))
        .unwrap_err()
        .to_string()
        .contains("bad element type"));
}

#[test]
fn docs_table_is_generated_from_the_declaration() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/bytecode.md");
    let doc = std::fs::read_to_string(path).expect("docs/bytecode.md");
    let start =
        doc.find("<!-- table:begin -->\n").expect("begin marker") + "<!-- table:begin -->\n".len();
    let end = doc.find("<!-- table:end -->").expect("end marker");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(
            path,
            format!("{}{}{}", &doc[..start], docs_table(), &doc[end..]),
        )
        .expect("writable");
        return;
    }
    assert_eq!(
        &doc[start..end],
        docs_table(),
        "docs/bytecode.md's table is stale (BLESS=1 regenerates it)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Arbitrary bodies behind a valid header never panic the decoder, and
    /// whatever it accepts re-encodes to the same bytes: the fuzz target's
    /// body (`fuzz_decode`), on a valid program's body with bytes flipped
    /// and random bytes appended.
    #[test]
    fn decoder_never_panics(body in prop::collection::vec(any::<u8>(), 0..300), seed_prefix in any::<bool>(), flips in prop::collection::vec((any::<u16>(), any::<u8>()), 0..4)) {
        let mut b = if seed_prefix { sample().encode()[42..].to_vec() } else { vec![] };
        for (at, x) in flips {
            if !b.is_empty() {
                let i = at as usize % b.len();
                b[i] ^= x;
            }
        }
        b.extend(body);
        ditto_bytecode::fuzz_decode(&b);
        if let Ok(p) = Program::decode(&with_body(&b)) {
            prop_assert_eq!(p.encode(), with_body(&b));
        }
    }

    /// Random chains of element-wise instructions round-trip.
    #[test]
    fn programs_round_trip(ops in prop::collection::vec(0u8..4, 1..30), frac in 0u8..20) {
        let mut regs = vec![fixed(true, 64, frac, &[3])];
        let mut code = vec![Instr::Input { dst: Reg(0), port: 0 }];
        for (i, op) in ops.iter().enumerate() {
            let (a, d) = (Reg(i as u32), Reg(i as u32 + 1));
            regs.push(fixed(true, 64, frac, &[3]));
            code.push(match op {
                0 => Instr::Add { dst: d, a, b: a },
                1 => Instr::Neg { dst: d, a },
                2 => Instr::Mul { dst: d, a, b: a },
                _ => Instr::Convert { dst: d, a },
            });
        }
        let last = Reg(ops.len() as u32);
        code.push(Instr::Output { port: 0, a: last });
        let p = Program {
            regs,
            inputs: vec![Port { name: "x".into(), reg: Reg(0), owner: Some(Owner::Client), transposed: false }],
            weights: vec![],
            outputs: vec![Port { name: "y".into(), reg: last, owner: None, transposed: false }],
            code,
            scopes: vec![],
            scope_of: vec![],
            meta: vec![],
        };
        prop_assert_eq!(Program::decode(&p.encode()).expect("valid"), p);
    }
}

#[test]
fn metadata_round_trips_and_repeated_keys_are_refused() {
    let p = sample();
    let q = Program::decode(&p.encode()).expect("decodes");
    assert_eq!(q.meta("model"), Some("sample"));
    assert_eq!(q.meta("policy"), Some("ditto"));
    assert!(q.disassemble().contains("; model = sample"));
    let mut bad = sample();
    bad.meta.push(("model".into(), "again".into()));
    let e = Program::decode(&bad.encode()).expect_err("a repeated key");
    assert!(e.to_string().contains("repeated"), "{e}");
}

#[test]
fn register_lists_round_trip_as_ranges() {
    let regs = [9, 3, 4, 5, 12, 7, 13, 5];
    let s = ditto_bytecode::encode_regs(&regs);
    assert_eq!(s, "3-5,7,9,12-13");
    assert_eq!(
        ditto_bytecode::decode_regs(&s),
        Some(vec![3, 4, 5, 7, 9, 12, 13])
    );
    assert_eq!(ditto_bytecode::decode_regs(""), Some(vec![]));
    for bad in ["x", "5-3", "1-", "-2", "0-99999999"] {
        assert_eq!(ditto_bytecode::decode_regs(bad), None, "{bad}");
    }
}
