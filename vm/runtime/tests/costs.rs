//! One cost model: for every instruction kind of the bytecode, in both
//! rings, the measured bytes and rounds (online and offline) of a run equal
//! the declared cost (`ditto_vm::declared`, built on
//! `ditto_protocol::cost`). An instruction kind without a case here fails
//! the test.

mod common;
use common::{ty, B};
use ditto_bytecode::{Instr, NormKind, Pred, Program, Trig, TABLE};
use ditto_vm::{declared::declared, run_mpc, Data, MpcOptions};
use std::collections::BTreeSet;

/// Test values in [−scale, scale], none zero.
fn values(n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| scale * ((((i * 7919) % 199) as f64) - 99.5) / 100.0)
        .collect()
}

/// A program exercising every instruction kind in ring `k` with secret
/// operands; `fused` lists the instructions the VM fuses (a product read
/// only by a conversion, and that conversion).
fn program(k: u8) -> (Program, Vec<Vec<f64>>, Vec<usize>) {
    let f = if k == 32 { 8 } else { 18 };
    let mut b = B::new();
    let x = b.input("x", ty(true, k, f, &[4, 6]));
    let ids = b.input("ids", ty(true, k, 0, &[3]));
    let w = b.weight("w", ty(true, k, f, &[6, 5]));
    let table = b.weight("t", ty(true, k, f, &[40, 4]));
    let c = b.op(ty(false, k, f, &[]), |d| Instr::Const {
        dst: d,
        value: 0.5,
    });
    let _iota = b.op(ty(false, k, 0, &[4]), |d| Instr::Iota { dst: d });
    let rot = b.op(ty(false, k, f, &[4, 6]), |d| Instr::Rotary {
        dst: d,
        part: Trig::Sin,
        theta: 10000.0,
        offset: 3,
    });
    let add = b.op(ty(true, k, f, &[4, 6]), |d| Instr::Add {
        dst: d,
        a: x,
        b: c,
    });
    let sub = b.op(ty(true, k, f, &[4, 6]), |d| Instr::Sub {
        dst: d,
        a: add,
        b: rot,
    });
    let neg = b.op(ty(true, k, f, &[4, 6]), |d| Instr::Neg { dst: d, a: sub });
    // a plain product (two readers) and a fused one (read by a conversion only)
    let mul = b.op(ty(true, k, 2 * f, &[4, 6]), |d| Instr::Mul {
        dst: d,
        a: x,
        b: neg,
    });
    let conv = b.op(ty(true, k, f, &[4, 6]), |d| Instr::Convert {
        dst: d,
        a: mul,
    });
    let _mul2 = b.op(ty(true, k, 2 * f, &[4, 6]), |d| Instr::Neg {
        dst: d,
        a: mul,
    });
    let mm = b.op(ty(true, k, 2 * f, &[4, 5]), |d| Instr::MatMul {
        dst: d,
        a: conv,
        b: w,
    });
    let mmc = b.op(ty(true, k, f, &[4, 5]), |d| Instr::Convert {
        dst: d,
        a: mm,
    });
    let fused = vec![b.p.code.len() - 2, b.p.code.len() - 1];
    // an upcast (32 → 64) or a downcast-and-truncate (64 → 32)
    let other = if k == 32 { 64 } else { 32 };
    let _cast = b.op(ty(true, other, 8, &[4, 5]), |d| Instr::Convert {
        dst: d,
        a: mmc,
    });
    let resc = b.op(ty(true, k, f + 2, &[4, 5]), |d| Instr::Rescale {
        dst: d,
        a: mmc,
    });
    let lt = b.op(ty(true, 0, 0, &[4, 6]), |d| Instr::Cmp {
        dst: d,
        a: x,
        b: conv,
        pred: Pred::Lt,
    });
    let _eq = b.op(ty(true, 0, 0, &[4, 6]), |d| Instr::Cmp {
        dst: d,
        a: x,
        b: c,
        pred: Pred::Eq,
    });
    let not = b.op(ty(true, 0, 0, &[4, 6]), |d| Instr::Not { dst: d, a: lt });
    let sel = b.op(ty(true, k, f, &[4, 6]), |d| Instr::Select {
        dst: d,
        c: not,
        a: x,
        b: conv,
    });
    let tr = b.op(ty(true, k, f, &[6, 4]), |d| Instr::Transpose {
        dst: d,
        a: sel,
        perm: vec![1, 0],
    });
    let rs = b.op(ty(true, k, f, &[3, 8]), |d| Instr::Reshape {
        dst: d,
        a: tr,
    });
    let sl = b.op(ty(true, k, f, &[3, 5]), |d| Instr::Slice {
        dst: d,
        a: rs,
        axis: 1,
        start: 2,
    });
    let cat = b.op(ty(true, k, f, &[3, 10]), |d| Instr::Concat {
        dst: d,
        srcs: vec![sl, sl],
        axis: 1,
    });
    let _bc = b.op(ty(true, k, f + 2, &[2, 4, 5]), |d| Instr::Broadcast {
        dst: d,
        a: resc,
    });
    let _sum = b.op(ty(true, k, f, &[3, 1]), |d| Instr::Sum {
        dst: d,
        a: cat,
        axis: 1,
    });
    let _max = b.op(ty(true, k, f, &[3, 1]), |d| Instr::Max {
        dst: d,
        a: cat,
        axis: 1,
    });
    let _mean = b.op(ty(true, k, f, &[1, 10]), |d| Instr::Mean {
        dst: d,
        a: cat,
        axis: 0,
    });
    for kind in NormKind::ALL {
        let _ = b.op(ty(true, k, f, &[4, 6]), |d| Instr::NormScale {
            dst: d,
            a: x,
            kind,
        });
    }
    let _emb = b.op(ty(true, k, f, &[3, 4]), |d| Instr::Embed {
        dst: d,
        ids,
        table,
    });
    b.p.code.push(Instr::Round {});
    let p = b.output("y", cat);
    let inputs = vec![
        values(24, 3.0).iter().map(|v| v.abs() + 0.25).collect(),
        vec![0.0, 17.0, 39.0],
    ];
    (p, inputs, fused)
}

#[test]
fn every_instruction_costs_what_is_declared() {
    let (wv, tv) = (values(30, 1.0), values(160, 2.0));
    let weights = move |name: &str| Ok(if name == "w" { wv.clone() } else { tv.clone() }.into());
    let mut seen = BTreeSet::new();
    for k in [32u8, 64] {
        let (p, inputs, fused) = program(k);
        let run = run_mpc(
            &p,
            Data {
                inputs,
                weights: &weights,
            },
            &MpcOptions::default(),
        )
        .expect("mpc runs");
        for (i, ins) in p.code.iter().enumerate() {
            seen.insert(ins.mnemonic());
            let want = declared(&p, ins, fused.contains(&i));
            let got = &run.costs[i];
            assert_eq!(
                (got.bytes_online, got.rounds_online, got.bytes_offline, got.rounds_offline),
                (want.bytes, want.rounds, want.bytes_offline, want.rounds_offline),
                "ring {k}, instruction {i} ({}): measured (bytes, rounds, offline bytes, offline rounds) vs declared",
                ins.mnemonic()
            );
        }
    }
    let all: BTreeSet<&str> = TABLE.iter().map(|t| t.1).collect();
    let missing: Vec<&&str> = all.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "instruction kinds with no cost case: {missing:?}"
    );
}
