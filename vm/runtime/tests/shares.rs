//! Weight share files: the three files reconstruct the encoded weights, one
//! file alone does not depend on them (P0's) or masks them (P1's and P2's
//! component x_2), and malformed files are refused with the reason.

use ditto_bytecode::{Instr, Kind, Port, Program, Reg, RegType};
use ditto_protocol::share::open;
use ditto_vm::shares::{read_share_file, write_share_files, ShareError};
use ditto_vm::Value;
use std::borrow::Cow;

fn program() -> Program {
    let t = |ring: u8, frac: u8, shape: &[u64]| RegType {
        secret: true,
        kind: Kind::Fixed { ring, frac },
        shape: shape.to_vec(),
    };
    let p = Program {
        regs: vec![t(32, 8, &[2, 3]), t(64, 18, &[4]), t(64, 18, &[4])],
        inputs: vec![],
        weights: vec![
            Port {
                name: "w".into(),
                reg: Reg(0),
                owner: None,
                transposed: false,
            },
            Port {
                name: "b".into(),
                reg: Reg(1),
                owner: None,
                transposed: false,
            },
        ],
        outputs: vec![Port {
            name: "y".into(),
            reg: Reg(2),
            owner: None,
            transposed: false,
        }],
        code: vec![
            Instr::Weight {
                dst: Reg(0),
                port: 0,
            },
            Instr::Weight {
                dst: Reg(1),
                port: 1,
            },
            Instr::Neg {
                dst: Reg(2),
                a: Reg(1),
            },
            Instr::Output { port: 0, a: Reg(2) },
        ],
        scopes: vec![],
        scope_of: vec![],
        meta: vec![],
    };
    ditto_bytecode::validate(&p).expect("valid");
    p
}

fn weights(scale: f64) -> impl Fn(&str) -> Result<Cow<'static, [f64]>, String> + Sync {
    move |name: &str| match name {
        "w" => Ok((0..6).map(|i| scale * (i as f64 - 2.5)).collect()),
        "b" => Ok((0..4).map(|i| scale * 0.125 * i as f64).collect()),
        _ => Err(format!("no weight {name}")),
    }
}

#[test]
fn files_reconstruct_the_weights_and_hide_them() {
    let p = program();
    let seed = [9u8; 32];
    let files = write_share_files(&p, &weights(1.0), &seed).expect("written");
    let read: Vec<_> = (0..3)
        .map(|i| read_share_file(&files[i], &p, i as u8).expect("reads"))
        .collect();
    // one dealing id in the three files, another for another dealing
    assert!(read.iter().all(|f| f.dealing == read[0].dealing));
    let again = write_share_files(&p, &weights(1.0), &[8u8; 32]).expect("written");
    let d2 = read_share_file(&again[1], &p, 1).expect("reads").dealing;
    assert_ne!(d2, read[0].dealing);
    let got: Vec<Vec<Value>> = read.into_iter().map(|f| f.weights).collect();
    match (&got[0][0], &got[1][0], &got[2][0]) {
        (Value::S32(a), Value::S32(b), Value::S32(c)) => {
            let v = open(&[a.clone(), b.clone(), c.clone()]).expect("consistent");
            let want: Vec<u32> = (0..6).map(|i| ((i - 2) * 256 - 128) as u32).collect();
            assert_eq!(v, want);
        }
        other => panic!("wrong kinds {other:?}"),
    }
    match (&got[0][1], &got[1][1], &got[2][1]) {
        (Value::S64(a), Value::S64(b), Value::S64(c)) => {
            let v = open(&[a.clone(), b.clone(), c.clone()]).expect("consistent");
            assert_eq!(v, vec![0, 1 << 15, 2 << 15, 3 << 15]);
        }
        other => panic!("wrong kinds {other:?}"),
    }
    // the same dealer seed, other weights: P0's file is byte-identical
    let other = write_share_files(&p, &weights(3.0), &seed).expect("written");
    assert_eq!(files[0], other[0]);
    assert_ne!(files[1], other[1]);
}

#[test]
fn malformed_files_are_refused_with_the_reason() {
    let p = program();
    let files = write_share_files(&p, &weights(1.0), &[1u8; 32]).expect("written");
    let f = &files[1];
    assert_eq!(
        read_share_file(&f[..5], &p, 1).unwrap_err(),
        ShareError::BadMagic
    );
    for n in 8..f.len() {
        assert!(
            read_share_file(&f[..n], &p, 1).is_err(),
            "cut at {n} accepted"
        );
    }
    for i in 10..f.len() {
        let mut b = f.clone();
        b[i] ^= 1;
        assert!(read_share_file(&b, &p, 1).is_err(), "flip at {i} accepted");
    }
    let mut v2 = f.clone();
    v2[8] = 3;
    assert_eq!(
        read_share_file(&v2, &p, 1).unwrap_err(),
        ShareError::Version(3)
    );
    assert!(matches!(
        read_share_file(f, &p, 2).unwrap_err(),
        ShareError::WrongParty { got: 1, want: 2 }
    ));
    let mut q = program();
    q.weights[1].name = "bias".into();
    let e = read_share_file(f, &q, 1).unwrap_err();
    assert!(matches!(e, ShareError::WrongProgram { .. }), "{e}");
    let e = write_share_files(&q, &weights(1.0), &[1u8; 32]).unwrap_err();
    assert!(e.to_string().contains("no weight bias"), "{e}");
}
