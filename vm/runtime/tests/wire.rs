//! The cluster's messages: values survive the round trip, the client's
//! dealing covers exactly what the program asks for and reconstructs the
//! input, and malformed messages are refused with the reason, never a panic.

use ditto_bytecode::{Instr, Kind, Owner, Port, Program, Reg, RegType};
use ditto_protocol::share::open;
use ditto_protocol::{AShare, BitShare};
use ditto_vm::wire::{
    client_requests, deal_inputs, decode_reply, decode_result, encode_inputs, get_value, put_value,
    Hello, Rd, Received, Request,
};
use ditto_vm::{Digit, Value};
use proptest::prelude::*;

/// ids (secret, 4 tokens) → a secret lookup in a 6-row table → output.
fn program() -> Program {
    let t = |secret: bool, ring: u8, frac: u8, shape: &[u64]| RegType {
        secret,
        kind: Kind::Fixed { ring, frac },
        shape: shape.to_vec(),
    };
    let p = Program {
        regs: vec![
            t(true, 32, 0, &[4]),
            t(true, 64, 12, &[6, 2]),
            t(true, 64, 12, &[4, 2]),
        ],
        inputs: vec![Port {
            name: "ids".into(),
            reg: Reg(0),
            owner: Some(Owner::Client),
            transposed: false,
        }],
        weights: vec![Port {
            name: "table".into(),
            reg: Reg(1),
            owner: None,
            transposed: false,
        }],
        outputs: vec![Port {
            name: "y".into(),
            reg: Reg(2),
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
            Instr::Embed {
                dst: Reg(2),
                ids: Reg(0),
                table: Reg(1),
            },
            Instr::Output { port: 0, a: Reg(2) },
        ],
        scopes: vec![],
        scope_of: vec![],
        meta: vec![],
    };
    Program::decode(&p.encode()).expect("a valid test program")
}

#[test]
fn requests_and_dealing_match_the_program() {
    let p = program();
    let reqs = client_requests(&p);
    // a 6-row table is looked up by one one-hot over all of it
    let whole = Digit {
        table: 6,
        div: 1,
        rows: 6,
    };
    assert_eq!(
        reqs,
        vec![
            Request::Input { port: 0 },
            Request::OneHot {
                port: 0,
                digit: whole,
                ring: 64
            }
        ]
    );
    let ids = vec![1.0, 5.0, 0.0, 2.0];
    let dealt = deal_inputs(&p, vec![ids.clone()], [3; 32]).unwrap();
    // the three parties' shares of the ids open to the ids
    let ss: [AShare<u32>; 3] = dealt
        .iter()
        .map(|items| match &items[0].1 {
            Value::S32(s) => s.clone(),
            v => panic!("ids dealt as {v:?}"),
        })
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let opened = open(&ss).expect("consistent shares");
    assert_eq!(opened, vec![1, 5, 0, 2]);
    // each party's message decodes and is accepted
    let weights = vec![Value::S64(AShare {
        a: vec![0; 12],
        b: vec![0; 12],
    })];
    for items in &dealt {
        let msg = encode_inputs(items);
        let r = Received::decode(&p, &weights, &msg).expect("accepted");
        assert!(ditto_vm::Source::onehot(&r, 0, whole, 64).is_ok());
        let other = Digit { rows: 7, ..whole };
        assert!(ditto_vm::Source::onehot(&r, 0, other, 64).is_err());
    }
    // out-of-range ids are the client's error, before anything is sent
    assert!(deal_inputs(&p, vec![vec![6.0, 0.0, 0.0, 0.0]], [3; 32]).is_err());
}

#[test]
fn malformed_input_messages_are_refused_with_the_reason() {
    let p = program();
    let weights = vec![];
    let dealt = deal_inputs(&p, vec![vec![1.0, 2.0, 3.0, 4.0]], [1; 32]).unwrap();
    let full = encode_inputs(&dealt[0]);
    let why = |m: &[u8]| {
        Received::decode(&p, &weights, m)
            .err()
            .expect("refused")
            .to_string()
    };
    // a missing item
    assert!(why(&encode_inputs(&dealt[0][..1])).contains("missing"));
    // an item twice
    let twice = [
        dealt[0][0].clone(),
        dealt[0][0].clone(),
        dealt[0][1].clone(),
    ];
    assert!(why(&encode_inputs(&twice)).contains("twice"));
    // a value of the wrong ring
    let mut wrong = dealt[0].clone();
    wrong[0].1 = Value::S64(AShare {
        a: vec![0; 4],
        b: vec![0; 4],
    });
    assert!(why(&encode_inputs(&wrong)).contains("does not have type"));
    // the wrong length
    let mut short = dealt[0].clone();
    short[0].1 = Value::S32(AShare {
        a: vec![0; 3],
        b: vec![0; 3],
    });
    assert!(why(&encode_inputs(&short)).contains("has 3 elements"));
    // a request the program does not make
    let mut other = dealt[0].clone();
    other[1].0 = Request::OneHot {
        port: 0,
        digit: Digit {
            table: 6,
            div: 1,
            rows: 9,
        },
        ring: 64,
    };
    assert!(why(&encode_inputs(&other)).contains("not an input"));
    // every truncation, and trailing bytes
    for n in 0..full.len() {
        assert!(
            Received::decode(&p, &weights, &full[..n]).is_err(),
            "cut at {n}"
        );
    }
    let mut long = full.clone();
    long.push(0);
    assert!(why(&long).contains("unexpected bytes"));
    // a huge count does not allocate
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&[0; 32]);
    assert!(why(&huge).contains("exceeds"));
}

#[test]
fn values_and_hellos_round_trip() {
    let vals = [
        Value::P32(vec![1, 2, u32::MAX]),
        Value::P64(vec![u64::MAX, 0]),
        Value::PBool(vec![true, false]),
        Value::S32(AShare {
            a: vec![7],
            b: vec![9],
        }),
        Value::S64(AShare {
            a: vec![1, 2],
            b: vec![3, 4],
        }),
        Value::SBool(BitShare {
            a: vec![true],
            b: vec![false],
        }),
    ];
    for v in vals {
        let mut w = Vec::new();
        put_value(&mut w, &v);
        let mut r = Rd::new(&w);
        assert_eq!(get_value(&mut r).unwrap(), v);
        r.end("v").unwrap();
    }
    let h = Hello::client([5; 32], [6; 16]);
    assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
    assert!(h.check(&[5; 32]).is_ok());
    assert!(h.check(&[4; 32]).unwrap_err().contains("this party runs"));
    let mut old = h.clone();
    old.version = 0;
    assert!(old
        .check(&[5; 32])
        .unwrap_err()
        .contains("protocol version 0"));
    assert!(Hello::decode(b"DITTOXX\0").is_err());
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let p = program();
        let _ = Received::decode(&p, &[], &bytes);
        let _ = decode_result(&bytes);
        let _ = decode_reply(&bytes);
        let _ = Hello::decode(&bytes);
        let mut r = Rd::new(&bytes);
        let _ = get_value(&mut r);
    }
}

/// A party's values of outputs kept `to parties` (session state) never go
/// to the client: `withhold_kept` empties them; revealed outputs stay.
#[test]
fn kept_outputs_are_withheld_from_the_client() {
    let share = || {
        Value::S64(AShare {
            a: vec![7; 3],
            b: vec![9; 3],
        })
    };
    let revealed = program();
    let mut outs = vec![share()];
    ditto_vm::wire::withhold_kept(&revealed, &mut outs);
    assert_eq!(outs[0], share());
    let mut kept = program();
    kept.outputs[0].owner = Some(ditto_bytecode::Owner::Parties);
    ditto_vm::wire::withhold_kept(&kept, &mut outs);
    assert_eq!(outs[0].len(), 0);
}
