//! The VM on hand-written programs: every communicating instruction's
//! measured bytes and rounds equal its protocol's stated cost, the `mpc`
//! backend agrees with the cleartext `fixed` backend (within the truncation's
//! ±1), costs do not depend on the seeds, and the dealt shares a party
//! receives do not depend on the secret.

mod common;
use common::{no_weights, ty, B};
use ditto_bytecode::{Instr, NormKind, Pred, Program};
use ditto_vm::{run_fixed, run_mpc, Data, MpcOptions, Report};

fn run_both<'w>(
    p: &Program,
    inputs: Vec<Vec<f64>>,
    weights: &'w ditto_vm::source::Weights<'w>,
) -> (Report, Report) {
    let fixed = run_fixed(
        p,
        Data {
            inputs: inputs.clone(),
            weights,
        },
    )
    .expect("fixed runs");
    let mpc = run_mpc(p, Data { inputs, weights }, &MpcOptions::default()).expect("mpc runs");
    (fixed, mpc)
}

/// Index of the first instruction with this mnemonic.
fn at(p: &Program, mnemonic: &str) -> usize {
    p.code
        .iter()
        .position(|i| i.mnemonic() == mnemonic)
        .expect("instruction present")
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y} (tolerance {tol})"
        );
    }
}

fn values(n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| scale * (((i * 7919) % 201) as f64 - 100.0) / 100.0)
        .collect()
}

#[test]
fn products_and_conversions_cost_what_the_protocols_state() {
    for ring in [32u8, 64] {
        let f = if ring == 32 { 8 } else { 18 };
        let k = ring as u64;
        let n = 6u64;
        let mut b = B::new();
        let x = b.input("x", ty(true, ring, f, &[2, 3]));
        let w = b.weight("w", ty(true, ring, f, &[3, 4]));
        let xx = b.op(ty(true, ring, 2 * f, &[2, 3]), |d| Instr::Mul {
            dst: d,
            a: x,
            b: x,
        });
        let t = b.op(ty(true, ring, f, &[2, 3]), |d| Instr::Convert {
            dst: d,
            a: xx,
        });
        // a second reader keeps x·x a plain (reshared) product
        let neg = b.op(ty(true, ring, 2 * f, &[2, 3]), |d| Instr::Neg {
            dst: d,
            a: xx,
        });
        let mm = b.op(ty(true, ring, 2 * f, &[2, 4]), |d| Instr::MatMul {
            dst: d,
            a: t,
            b: w,
        });
        let out = if ring == 32 {
            // truncate-then-upcast in one conversion
            b.op(ty(true, 64, 18, &[2, 4]), |d| Instr::Convert {
                dst: d,
                a: mm,
            })
        } else {
            b.op(ty(true, 64, f, &[2, 4]), |d| Instr::Convert {
                dst: d,
                a: mm,
            })
        };
        let mut p = b.output("y", out);
        p.outputs.push(ditto_bytecode::Port {
            name: "neg".into(),
            reg: neg,
            owner: None,
            transposed: false,
        });
        p.code.push(Instr::Output { port: 1, a: neg });
        let wv = values(12, 1.5);
        let weights = move |_: &str| Ok(wv.clone().into());
        let (fixed, mpc) = run_both(&p, vec![values(6, 3.0)], &weights);
        let c = |m: &str| mpc.costs[at(&p, m)];
        // mul: 1 round, 3k bits per element
        assert_eq!(
            (c("Mul").rounds_online, c("Mul").bytes_online * 8),
            (1, 3 * k * n)
        );
        // the matmul is read only by a conversion: fused with it, it is local
        assert_eq!(
            (c("MatMul").rounds_online, c("MatMul").bytes_online),
            (0, 0)
        );
        // a conversion by m = f bits: 2 online rounds, k_in + k_out bits and
        // two packed bits (c_msb to B and H) per element; 2 offline rounds of
        // three messages of w = m + 1 bits per element (the mask bit's shares)
        let conv = mpc.costs[p
            .code
            .iter()
            .position(|i| matches!(i, Instr::Convert { dst, .. } if *dst == t))
            .unwrap()];
        let f64_ = f as u64;
        assert_eq!(
            (
                conv.rounds_online,
                conv.bytes_online,
                conv.rounds_offline,
                conv.bytes_offline
            ),
            (2, 2 * k / 8 * n + 2, 2, 3 * (n * (f64_ + 1)).div_ceil(8))
        );
        // ... and the conversion takes H's additive share of the matmul in
        // its first round: 2k_in + k_out bits and c_msb twice (the product's
        // 3k and its round saved); an upcast (ring 32, m = 0) needs w = 33
        // bits offline, a truncation by 18 in Z_2^64 w = 19 (three messages)
        let last = mpc.costs[p.code.len() - 3];
        let w = if ring == 32 { 33 } else { 19 };
        assert_eq!(
            (last.rounds_online, last.bytes_online, last.bytes_offline),
            (2, (2 * k / 8 + 8) * 8 + 2, 3 * 8 * w / 8)
        );
        // the client learns the product; the parties' results agree with the
        // cleartext ring emulation up to the two truncations' ±1
        let lsb = 2f64.powi(-(f as i32));
        close(
            &mpc.outputs[0].data,
            &fixed.outputs[0].data,
            8.0 * 1.5 * lsb,
        );
    }
}

#[test]
fn comparison_select_and_max_cost_what_the_protocols_state() {
    for ring in [32u8, 64] {
        let f = if ring == 32 { 8 } else { 18 };
        let k = ring as u64;
        let levels = if ring == 32 { 3 } else { 4 };
        let mut b = B::new();
        let x = b.input("x", ty(true, ring, f, &[4, 5]));
        let y = b.input("y", ty(true, ring, f, &[4, 5]));
        let lt = b.op(ty(true, 0, 0, &[4, 5]), |d| Instr::Cmp {
            dst: d,
            a: x,
            b: y,
            pred: Pred::Lt,
        });
        let s = b.op(ty(true, ring, f, &[4, 5]), |d| Instr::Select {
            dst: d,
            c: lt,
            a: x,
            b: y,
        });
        let m = b.op(ty(true, ring, f, &[4, 1]), |d| Instr::Max {
            dst: d,
            a: s,
            axis: 1,
        });
        let p = b.output("m", m);
        let (xs, ys) = (
            values(20, 50.0),
            values(20, 40.0).into_iter().rev().collect::<Vec<_>>(),
        );
        let (fixed, mpc) = run_both(&p, vec![xs.clone(), ys.clone()], &no_weights);
        let n = 20u64;
        let cmp = mpc.costs[at(&p, "Cmp")];
        // the sign of a − b: the set-up (A's products of groups of four
        // bits and the top bit, then two bits per group from H and from B,
        // packed columns of ⌈n/8⌉ bytes) and a carry tree over the groups
        // (per level 3 messages of 2·pairs columns)
        let groups = (k - 1).div_ceil(4);
        let col = n.div_ceil(8);
        let mut m = groups;
        let mut tree = 0;
        while m > 1 {
            tree += 3 * 2 * (m / 2) * col;
            m = m.div_ceil(2);
        }
        assert_eq!(
            (cmp.rounds_online, cmp.bytes_online),
            (
                2 + levels,
                col * ((groups - 1) * 15 + 8 + 4 * groups) + tree
            )
        );
        let sel = mpc.costs[at(&p, "Select")];
        // B2A's opening (3 bits, packed: 3 messages of ⌈n/8⌉ bytes) and the
        // product's reshare (3k bits) in one online round; B2A's random bits
        // offline, 2 rounds, 3k bits in all
        assert_eq!(
            (
                sel.rounds_online,
                sel.bytes_online,
                sel.rounds_offline,
                sel.bytes_offline * 8
            ),
            (1, 3 * n.div_ceil(8) + 3 * k * n / 8, 2, 3 * k * n)
        );
        // exact: min then max per row, as in the clear
        assert_eq!(mpc.outputs[0].data, fixed.outputs[0].data);
        let want: Vec<f64> = (0..4)
            .map(|r| {
                (0..5)
                    .map(|c| xs[r * 5 + c].min(ys[r * 5 + c]))
                    .fold(f64::MIN, f64::max)
            })
            .collect();
        close(&mpc.outputs[0].data, &want, 2f64.powi(-(f as i32)));
    }
}

#[test]
fn rescales_and_sums_keep_products_fused() {
    for ring in [32u8, 64] {
        let f = if ring == 32 { 8 } else { 18 };
        let mut b = B::new();
        let x = b.input("x", ty(true, ring, f, &[2, 3]));
        let r = b.op(ty(true, ring, f + 3, &[2, 3]), |d| Instr::Rescale {
            dst: d,
            a: x,
        });
        let p = b.output("y", r);
        let xs = values(6, 5.0);
        let (fixed, mpc) = run_both(&p, vec![xs.clone()], &no_weights);
        assert_eq!(mpc.outputs[0].data, fixed.outputs[0].data);
        // exactly x/8: the words of x encoded at f bits, read at f + 3
        let want: Vec<f64> = xs
            .iter()
            .map(|&v| (v * (f as f64).exp2()).round() / (f as f64 + 3.0).exp2())
            .collect();
        assert_eq!(mpc.outputs[0].data, want);
        let c = mpc.costs[at(&p, "Rescale")];
        assert_eq!(
            (c.rounds_online, c.bytes_online, c.bytes_offline),
            (0, 0, 0)
        );
    }
    // a product read by a rescale read by a conversion (Q·Kᵀ/√d) is still
    // fused with the conversion: the product sends nothing, the conversion
    // costs 2·k_in + 1 + 2·k_out bits per element
    for ring in [32u8, 64] {
        let f = if ring == 32 { 8 } else { 18 };
        let k = ring as u64;
        let mut b = B::new();
        let x = b.input("x", ty(true, ring, f, &[2, 3]));
        let xx = b.op(ty(true, ring, 2 * f, &[2, 3]), |d| Instr::Mul {
            dst: d,
            a: x,
            b: x,
        });
        let r = b.op(ty(true, ring, 2 * f + 3, &[2, 3]), |d| Instr::Rescale {
            dst: d,
            a: xx,
        });
        let y = b.op(ty(true, ring, f, &[2, 3]), |d| Instr::Convert {
            dst: d,
            a: r,
        });
        let p = b.output("y", y);
        let xs = values(6, 3.0);
        let (fixed, mpc) = run_both(&p, vec![xs.clone()], &no_weights);
        close(
            &mpc.outputs[0].data,
            &fixed.outputs[0].data,
            2f64.powi(-(f as i32)),
        );
        let want: Vec<f64> = xs.iter().map(|v| v * v / 8.0).collect();
        close(&mpc.outputs[0].data, &want, 3.0 * 2f64.powi(-(f as i32)));
        let m = mpc.costs[at(&p, "Mul")];
        assert_eq!((m.rounds_online, m.bytes_online), (0, 0));
        let conv = mpc.costs[at(&p, "Convert")];
        // (the 6 c_msb bits travel packed in one byte, to B and to H)
        assert_eq!(conv.bytes_online * 8, 6 * 3 * k + 16);
    }
    // a product plus a bias (x·W + b), plus a public constant, read by its
    // conversion: the sums stay additive shares, the product sends nothing
    for ring in [32u8, 64] {
        let f = if ring == 32 { 8 } else { 18 };
        let k = ring as u64;
        let mut b = B::new();
        let x = b.input("x", ty(true, ring, f, &[2, 3]));
        let w = b.weight("w", ty(true, ring, f, &[3, 4]));
        let bias = b.weight("b", ty(true, ring, 2 * f, &[2, 4]));
        let mm = b.op(ty(true, ring, 2 * f, &[2, 4]), |d| Instr::MatMul {
            dst: d,
            a: x,
            b: w,
        });
        let s1 = b.op(ty(true, ring, 2 * f, &[2, 4]), |d| Instr::Add {
            dst: d,
            a: mm,
            b: bias,
        });
        let c = b.op(ty(false, ring, 2 * f, &[]), |d| Instr::Const {
            dst: d,
            value: 0.75,
        });
        let s2 = b.op(ty(true, ring, 2 * f, &[2, 4]), |d| Instr::Sub {
            dst: d,
            a: s1,
            b: c,
        });
        let y = b.op(ty(true, ring, f, &[2, 4]), |d| Instr::Convert {
            dst: d,
            a: s2,
        });
        let p = b.output("y", y);
        let (xs, ws, bs) = (values(6, 2.0), values(12, 1.5), values(8, 4.0));
        let data = {
            let (ws, bs) = (ws.clone(), bs.clone());
            move |name: &str| Ok(if name == "w" { ws.clone() } else { bs.clone() }.into())
        };
        let (fixed, mpc) = run_both(&p, vec![xs.clone()], &data);
        close(
            &mpc.outputs[0].data,
            &fixed.outputs[0].data,
            2f64.powi(-(f as i32)),
        );
        let want: Vec<f64> = (0..8)
            .map(|i| {
                let (r, j) = (i / 4, i % 4);
                (0..3).map(|t| xs[r * 3 + t] * ws[t * 4 + j]).sum::<f64>() + bs[i] - 0.75
            })
            .collect();
        close(&mpc.outputs[0].data, &want, 0.05);
        let m = mpc.costs[at(&p, "MatMul")];
        assert_eq!((m.rounds_online, m.bytes_online), (0, 0));
        let conv = mpc.costs[at(&p, "Convert")];
        assert_eq!(conv.bytes_online * 8, 8 * 3 * k + 16);
    }
}

#[test]
fn secret_lookup_and_norm_scale_match_the_clear() {
    let mut b = B::new();
    let ids = b.input("ids", ty(true, 32, 0, &[3]));
    let table = b.weight("table", ty(true, 64, 18, &[10, 4]));
    let e = b.op(ty(true, 64, 18, &[3, 4]), |d| Instr::Embed {
        dst: d,
        ids,
        table,
    });
    let ns = b.op(ty(true, 64, 18, &[3, 4]), |d| Instr::NormScale {
        dst: d,
        a: e,
        kind: NormKind::Recip,
    });
    let cat = b.op(ty(true, 64, 18, &[3, 8]), |d| Instr::Concat {
        dst: d,
        srcs: vec![e, ns],
        axis: 1,
    });
    let p = b.output("y", cat);
    let tv: Vec<f64> = (0..40).map(|i| (i as f64 - 13.0) * 0.37).collect();
    let weights = move |_: &str| Ok(tv.clone().into());
    let (fixed, mpc) = run_both(&p, vec![vec![7.0, 0.0, 9.0]], &weights);
    assert_eq!(mpc.outputs[0].data, fixed.outputs[0].data);
    // row 7 of the table, then 2^(−e−1) of each positive entry
    let row: Vec<f64> = (28..32).map(|i| (i as f64 - 13.0) * 0.37).collect();
    for (j, &v) in row.iter().enumerate() {
        assert!((mpc.outputs[0].data[j] - v).abs() < 1e-5);
        let s = mpc.outputs[0].data[4 + j];
        assert!((0.5..1.0).contains(&(v * s)), "{v} · {s}");
    }
    // a lookup of secret ids is one product with the client's one-hot rows
    let emb = mpc.costs[at(&p, "Embed")];
    assert_eq!((emb.rounds_online, emb.bytes_online * 8), (1, 3 * 64 * 12));
    // an out-of-range id is refused by the client, not looked up
    let bad = run_mpc(
        &p,
        Data {
            inputs: vec![vec![10.0, 0.0, 1.0]],
            weights: &|_: &str| Ok(vec![0.0; 40].into()),
        },
        &MpcOptions::default(),
    );
    let msg = bad.expect_err("refused").to_string();
    assert!(msg.contains("out of range"), "{msg}");
}

#[test]
fn costs_do_not_depend_on_the_seeds_and_shares_hide_the_secret() {
    let mut b = B::new();
    let x = b.input("x", ty(true, 64, 18, &[8]));
    let xx = b.op(ty(true, 64, 36, &[8]), |d| Instr::Mul {
        dst: d,
        a: x,
        b: x,
    });
    let t = b.op(ty(true, 64, 18, &[8]), |d| Instr::Convert { dst: d, a: xx });
    let lt = b.op(ty(true, 0, 0, &[8]), |d| Instr::Cmp {
        dst: d,
        a: t,
        b: x,
        pred: Pred::Lt,
    });
    let s = b.op(ty(true, 64, 18, &[8]), |d| Instr::Select {
        dst: d,
        c: lt,
        a: t,
        b: x,
    });
    let p = b.output("y", s);
    let go = |seed: u8, xs: Vec<f64>| {
        run_mpc(
            &p,
            Data {
                inputs: vec![xs],
                weights: &no_weights,
            },
            &MpcOptions {
                seeds: Some([
                    [seed; 32],
                    [seed + 1; 32],
                    [seed + 2; 32],
                    [seed + 3; 32],
                    [seed + 4; 32],
                ]),
                ..Default::default()
            },
        )
        .expect("runs")
    };
    let a = go(1, values(8, 2.0));
    let c = go(9, values(8, 0.5));
    assert_eq!(a.comm, c.comm);
    for (x, y) in a.costs.iter().zip(&c.costs) {
        assert_eq!(
            (
                x.bytes_online,
                x.bytes_offline,
                x.rounds_online,
                x.rounds_offline
            ),
            (
                y.bytes_online,
                y.bytes_offline,
                y.rounds_online,
                y.rounds_offline
            )
        );
    }
    // dealt shares: with the dealer's seed fixed, P0's share does not depend
    // on the value at all, and P1's and P2's carry it only in the component
    // masked by a stream the other two never see
    use ditto_vm::source::deal_share;
    let seed = [5u8; 32];
    let x1: Vec<u64> = vec![1, 2, 3];
    let x2: Vec<u64> = vec![1000, 2000, 3000];
    let s0a = deal_share::<u64>(&seed, "input", 0, 0, 3, &|| Ok(x1.clone())).unwrap();
    let s0b = deal_share::<u64>(&seed, "input", 0, 0, 3, &|| Ok(x2.clone())).unwrap();
    assert_eq!(s0a, s0b);
    let s1a = deal_share::<u64>(&seed, "input", 0, 1, 3, &|| Ok(x1.clone())).unwrap();
    let s2a = deal_share::<u64>(&seed, "input", 0, 2, 3, &|| Ok(x1.clone())).unwrap();
    assert_eq!(
        ditto_protocol::share::open(&[s0a, s1a, s2a]).expect("consistent"),
        x1
    );
}
