//! Every primitive, in both rings, with all three parties in-process:
//! reconstructed outputs against plaintext (random and edge inputs), measured
//! bytes and rounds against the stated costs. Each party's view against
//! the secret: tests/privacy.rs.

use ditto_net::{run3, Channel};
use ditto_protocol::share::{deal, open, open_bits, open_bool};
use ditto_protocol::{AShare, Comm, Party, Ring, Stats};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn seed_of(base: u64, id: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&base.to_le_bytes());
    s[8] = id as u8;
    s
}

/// Runs `f` on three parties after key setup; returns each party's result and
/// the stats `f` alone caused.
fn with_parties<T: Send>(seed: u64, f: impl Fn(&mut Party) -> T + Sync) -> [(T, Stats); 3] {
    run3(|c: &mut Channel| {
        let id = c.id();
        let mut p = Party::setup(c, seed_of(seed, id)).expect("setup");
        let before = p.comm().stats();
        let out = f(&mut p);
        let st = p.comm().stats().since(&before);
        (out, st)
    })
}

fn total(r: &[(impl Sized, Stats); 3]) -> Stats {
    r.iter().fold(Stats::default(), |acc, (_, s)| acc.add(s))
}

fn max_rounds(r: &[(impl Sized, Stats); 3]) -> (u64, u64) {
    (
        r.iter().map(|x| x.1.rounds_online).max().unwrap(),
        r.iter().map(|x| x.1.rounds_offline).max().unwrap(),
    )
}

fn shares<R: Ring>(x: &[R], seed: u64) -> [AShare<R>; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    deal(x, || R::from_u64(rng.random()))
}

fn outs<T: Clone>(r: &[(T, Stats); 3]) -> [T; 3] {
    [r[0].0.clone(), r[1].0.clone(), r[2].0.clone()]
}

/// Signed values spread over ±2^bits plus the edges 0, ±1 and ±(2^bits − 1).
fn values<R: Ring>(n: usize, bits: u32, seed: u64) -> Vec<R> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let lim = 1i64 << bits;
    let mut v: Vec<i64> = vec![0, 1, -1, lim - 1, -(lim - 1), -lim];
    while v.len() < n {
        v.push(rng.random_range(-lim..lim));
    }
    v.truncate(n.max(6));
    v.into_iter().map(R::from_i64).collect()
}

// ----- multiplication, matmul, input, reveal -----

fn check_mul<R: Ring>(seed: u64) {
    let n = 50;
    let x = values::<R>(n, R::BITS / 2 - 1, seed);
    let y = values::<R>(n, R::BITS / 2 - 1, seed + 1);
    let (sx, sy) = (shares(&x, seed), shares(&y, seed + 7));
    let r = with_parties(seed, |p| p.mul(&sx[p.id], &sy[p.id]).unwrap());
    let z = open(&outs(&r)).expect("consistent shares");
    let want: Vec<R> = x.iter().zip(&y).map(|(a, b)| a.mul(*b)).collect();
    assert_eq!(z, want);
    // 1 round, k bits per party per element.
    let t = total(&r);
    assert_eq!(t.bytes_online, 3 * n as u64 * (R::BITS as u64 / 8));
    assert_eq!(max_rounds(&r), (1, 0));
}

#[test]
fn mul_both_rings() {
    check_mul::<u32>(1);
    check_mul::<u64>(2);
}

fn check_matmul<R: Ring>(seed: u64, batch: usize, m: usize, k: usize, n: usize, shared_b: bool) {
    let x = values::<R>(batch * m * k, 8, seed);
    let y = values::<R>(if shared_b { k * n } else { batch * k * n }, 8, seed + 1);
    let (sx, sy) = (shares(&x, seed), shares(&y, seed + 3));
    let r = with_parties(seed, |p| {
        p.matmul(&sx[p.id], &sy[p.id], batch, m, k, n, shared_b)
            .unwrap()
    });
    let z = open(&outs(&r)).unwrap();
    let want = ditto_protocol::kernels::matmul_batched(&x, &y, batch, m, k, n, shared_b);
    // reference: naive triple loop
    for b in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut acc = R::ZERO;
                for l in 0..k {
                    let yb = if shared_b { 0 } else { b * k * n };
                    acc = acc.add(x[b * m * k + i * k + l].mul(y[yb + l * n + j]));
                }
                assert_eq!(want[b * m * n + i * n + j], acc);
            }
        }
    }
    assert_eq!(z, want);
    assert_eq!(
        total(&r).bytes_online,
        3 * (batch * m * n) as u64 * (R::BITS as u64 / 8)
    );
    assert_eq!(max_rounds(&r), (1, 0));
}

#[test]
fn matmul_both_rings() {
    check_matmul::<u32>(3, 1, 7, 13, 5, false);
    check_matmul::<u64>(4, 1, 9, 130, 33, false);
    check_matmul::<u32>(5, 3, 4, 6, 5, false);
    check_matmul::<u64>(6, 2, 5, 3, 4, true);
    check_matmul::<u32>(7, 1, 64, 200, 70, false); // takes the parallel path
                                                   // a decode step's row against a weight (the row's shares summed: the
                                                   // smaller operand), and a logits head E·hᵀ (one column)
    check_matmul::<u64>(8, 1, 1, 300, 200, true);
    check_matmul::<u32>(9, 1, 300, 100, 1, true);
}

/// A product with a table given by a prefix of its rows (the rest zero):
/// the same as the product with the zero-padded table, at 1 round and 3k
/// bits per output element.
fn check_matmul_prefix<R: Ring>(seed: u64, m: usize, k: usize, n: usize, len: usize) {
    let x = values::<R>(m * k, 8, seed);
    let y = values::<R>(len, 8, seed + 1);
    let (sx, sy) = (shares(&x, seed), shares(&y, seed + 3));
    let r = with_parties(seed, |p| {
        p.matmul(&sx[p.id], &sy[p.id], 1, m, k, n, true).unwrap()
    });
    let mut padded = y.clone();
    padded.resize(k * n, R::ZERO);
    let want = ditto_protocol::kernels::matmul(&x, &padded, m, k, n);
    assert_eq!(ditto_protocol::kernels::matmul(&x, &y, m, k, n), want);
    assert_eq!(open(&outs(&r)).unwrap(), want);
    assert_eq!(
        total(&r).bytes_online,
        3 * (m * n) as u64 * (R::BITS as u64 / 8)
    );
    assert_eq!(max_rounds(&r), (1, 0));
}

#[test]
fn matmul_prefix_both_rings() {
    check_matmul_prefix::<u32>(11, 5, 7, 6, 7 * 6); // every row
    check_matmul_prefix::<u64>(12, 4, 7, 6, 6 * 6 + 1); // one element of the last row
    check_matmul_prefix::<u32>(13, 3, 9, 8, 8 * 8 + 5);
    check_matmul_prefix::<u64>(14, 2, 3, 5, 0); // an empty table
}

fn check_input_reveal<R: Ring>(seed: u64) {
    let x = values::<R>(20, R::BITS - 2, seed);
    for owner in 0..3 {
        let r = with_parties(seed, |p| {
            let mine = (p.id == owner).then_some(x.as_slice());
            let s = p.input::<R>(owner, mine, x.len()).unwrap();
            let all = p.reveal(&s).unwrap();
            let to1 = p.reveal_to(&s, 1).unwrap();
            (s, all, to1)
        });
        let s = [r[0].0 .0.clone(), r[1].0 .0.clone(), r[2].0 .0.clone()];
        assert_eq!(open(&s).unwrap(), x);
        for (out, _) in &r {
            assert_eq!(out.1, x);
        }
        assert_eq!(r[1].0 .2.as_ref(), Some(&x));
        assert!(r[0].0 .2.is_none() && r[2].0 .2.is_none());
        // input: k bits; reveal: 3k bits; reveal_to: k bits (per element).
        let w = R::BITS as u64 / 8;
        assert_eq!(total(&r).bytes_online, (1 + 3 + 1) * 20 * w);
        assert_eq!(max_rounds(&r), (3, 0));
    }
}

#[test]
fn input_and_reveal_both_rings() {
    check_input_reveal::<u32>(8);
    check_input_reveal::<u64>(9);
}

// ----- the conversion primitive -----

/// Converts values of magnitude < 2^(k_in−2) (random, and the range ends)
/// and checks y ∈ {⌊x/2^m⌋, ⌊x/2^m⌋ + 1} (exact when m = 0) in Z_2^k_out.
fn check_convert<Ri: Ring, Ro: Ring>(m: u32, seed: u64) {
    let n = 64;
    let mut bits = Ri::BITS - 3;
    if Ro::BITS < Ri::BITS {
        // the result must fit the smaller ring: |y| < 2^(k_out−2)
        bits = bits.min(Ro::BITS - 3 + m);
    }
    let x = values::<Ri>(n, bits, seed);
    let sx = shares(&x, seed);
    let r = with_parties(seed, |p| p.convert::<Ri, Ro>(&sx[p.id], m).unwrap());
    let y = open(&outs(&r)).expect("consistent");
    for (xi, yi) in x.iter().zip(&y) {
        let exact = xi.to_i64() >> m; // floor division
        let got = yi.to_i64();
        let ok = if m == 0 {
            got == exact
        } else {
            got == exact || got == exact + 1
        };
        assert!(
            ok,
            "convert {}→{} m={m}: x={} got {got}, want {exact} (+1)",
            Ri::BITS,
            Ro::BITS,
            xi.to_i64()
        );
    }
    assert_conversion_cost::<Ri, Ro, _>(&r, n, m, false);
}

/// Online 2 rounds, k_in (2·k_in fused) + k_out bits, and c_msb to B and
/// H (packed) when w = k_out − (k_in − 1 − m) > 0; offline three messages
/// of w bits in 2 rounds (none when w ≤ 0).
fn assert_conversion_cost<Ri: Ring, Ro: Ring, T>(
    r: &[(T, Stats); 3],
    n: usize,
    m: u32,
    fused: bool,
) {
    let t = total(r);
    let (bi, bo) = (Ri::BITS as u64 / 8, Ro::BITS as u64 / 8);
    let w = (Ro::BITS + m + 1).saturating_sub(Ri::BITS).min(Ro::BITS) as u64;
    let open = if fused { 2 * bi } else { bi };
    let bits = if w > 0 { 2 * (n as u64).div_ceil(8) } else { 0 };
    assert_eq!(t.bytes_online, n as u64 * (open + bo) + bits);
    assert_eq!(t.bytes_offline, 3 * (n as u64 * w).div_ceil(8));
    let off_rounds = if w > 0 { 2 } else { 0 };
    assert_eq!(max_rounds(r), (2, off_rounds));
    // the declared cost (ditto_protocol::cost) is the measured one
    let c = ditto_protocol::cost::conversion(Ri::BITS, Ro::BITS, m, fused, n as u64);
    assert_eq!(
        (c.bytes, c.rounds, c.bytes_offline, c.rounds_offline),
        (t.bytes_online, 2, t.bytes_offline, off_rounds)
    );
}

/// A product fused with its conversion: z = x·y as a masked additive
/// sharing, converted without the product's reshare.
fn check_mul_convert<Ri: Ring, Ro: Ring>(m: u32, seed: u64) {
    let n = 64;
    // |x·y| < 2^(k_in−2), and the result fits the output ring
    let half = ((Ri::BITS - 4) / 2).min((Ro::BITS - 3 + m) / 2);
    let x = values::<Ri>(n, half, seed);
    let y = values::<Ri>(n, half, seed + 1);
    let (sx, sy) = (shares(&x, seed), shares(&y, seed + 7));
    let r = with_parties(seed, |p| {
        let z = p.mul_local(&sx[p.id], &sy[p.id]);
        p.convert_additive::<Ri, Ro>(&z, m).unwrap()
    });
    let got = open(&outs(&r)).expect("consistent");
    for j in 0..n {
        let exact = x[j].mul(y[j]).to_i64() >> m;
        let g = got[j].to_i64();
        assert!(
            g == exact || (m > 0 && g == exact + 1),
            "mul-convert {}→{} m={m}: got {g}, want {exact} (+1)",
            Ri::BITS,
            Ro::BITS
        );
    }
    assert_conversion_cost::<Ri, Ro, _>(&r, n, m, true);
}

#[test]
fn mul_fused_with_conversion_both_rings() {
    for m in [0, 8, 18] {
        check_mul_convert::<u64, u64>(m, 60 + m as u64);
        check_mul_convert::<u32, u64>(m.min(8), 70 + m as u64);
    }
    check_mul_convert::<u32, u32>(8, 80);
    check_mul_convert::<u64, u32>(20, 81);
}

/// Conversions of every format, replicated and fused, in one call: each
/// value as its own call would give it, 2 online rounds (and 2 offline)
/// for all, the bytes the sum of the calls' declared costs.
#[test]
fn convert_many_mixes_formats_in_two_rounds() {
    use ditto_protocol::{ConvIn, ConvJob, ConvOut};
    let n = 40;
    let a32 = values::<u32>(n, 28, 90);
    let a64 = values::<u64>(n, 60, 91);
    let (x64, y64) = (values::<u64>(n, 28, 92), values::<u64>(n, 28, 93));
    let (x32, y32) = (values::<u32>(n, 14, 94), values::<u32>(n, 14, 95));
    let (sa32, sa64) = (shares(&a32, 90), shares(&a64, 91));
    let (sx64, sy64) = (shares(&x64, 92), shares(&y64, 93));
    let (sx32, sy32) = (shares(&x32, 94), shares(&y32, 95));
    // (k_in, k_out, m, fused)
    let specs = [
        (32u32, 32u32, 8u32, false),
        (64, 64, 18, false),
        (32, 64, 0, false),
        (64, 32, 36, true),
        (64, 64, 18, true),
        (32, 32, 8, true),
        (64, 32, 30, false),
    ];
    let r = with_parties(96, |p| {
        let z64 = p.mul_local(&sx64[p.id], &sy64[p.id]);
        let z32 = p.mul_local(&sx32[p.id], &sy32[p.id]);
        let jobs = specs
            .iter()
            .map(|&(ki, ko, m, fused)| match (ki, fused) {
                (32, false) => ConvJob::From32(ConvIn::Replicated(&sa32[p.id]), ko, m),
                (32, true) => ConvJob::From32(ConvIn::Additive(&z32), ko, m),
                (_, false) => ConvJob::From64(ConvIn::Replicated(&sa64[p.id]), ko, m),
                (_, true) => ConvJob::From64(ConvIn::Additive(&z64), ko, m),
            })
            .collect();
        p.convert_many(jobs)
            .unwrap()
            .into_iter()
            .map(|o| match o {
                ConvOut::R32(s) => (
                    s.a.iter().map(|&v| v as u64).collect(),
                    s.b.iter().map(|&v| v as u64).collect(),
                    32,
                ),
                ConvOut::R64(s) => (s.a, s.b, 64),
            })
            .collect::<Vec<(Vec<u64>, Vec<u64>, u32)>>()
    });
    let mut bytes = 0;
    let mut offline = 0;
    for (k, &(ki, ko, m, fused)) in specs.iter().enumerate() {
        assert_eq!(r[0].0[k].2, ko, "call {k}: output ring");
        let exact: Vec<i64> = (0..n)
            .map(|j| match (ki, fused) {
                (32, false) => a32[j].to_i64(),
                (32, true) => x32[j].mul(y32[j]).to_i64(),
                (_, false) => a64[j].to_i64(),
                (_, true) => x64[j].mul(y64[j]).to_i64(),
            })
            .collect();
        for j in 0..n {
            // replicated: party i holds (x_i, x_{i+1}); open from the a parts
            let sum = (0..3).fold(0u64, |acc, i| acc.wrapping_add(r[i].0[k].0[j]));
            let got = if ko == 32 {
                sum as u32 as i32 as i64
            } else {
                sum as i64
            };
            let want = exact[j] >> m;
            assert!(
                got == want || (m > 0 && got == want + 1),
                "call {k} ({ki}→{ko}, m={m}, fused {fused}) element {j}: got {got}, want {want} (+1)"
            );
            // the b parts are the next party's a parts
            assert_eq!(r[(k + j) % 3].0[k].1[j], r[(k + j + 1) % 3].0[k].0[j]);
        }
        let c = ditto_protocol::cost::conversion(ki, ko, m, fused, n as u64);
        bytes += c.bytes;
        offline += c.bytes_offline;
    }
    let t = total(&r);
    assert_eq!((t.bytes_online, t.bytes_offline), (bytes, offline));
    assert_eq!(max_rounds(&r), (2, 2));
}

#[test]
fn convert_every_combination() {
    for m in [0, 1, 8, 12, 18, 20] {
        check_convert::<u32, u32>(m, 10 + m as u64);
        check_convert::<u64, u64>(m, 20 + m as u64);
        check_convert::<u32, u64>(m, 30 + m as u64);
        check_convert::<u64, u32>(m.max(10), 40 + m as u64);
    }
    // the compiler's favourites: (32,16)→(32,8), (64,36)→(64,18), (32,8)↑(64,18)
    check_convert::<u32, u32>(8, 50);
    check_convert::<u64, u64>(18, 51);
    check_convert::<u64, u64>(30, 52);
    check_convert::<u64, u32>(10, 53);
}

#[test]
fn local_downcast_is_exact_when_the_value_fits() {
    let x = values::<u64>(40, 29, 60);
    let sx = shares(&x, 60);
    let y = open(&[
        sx[0].downcast::<u32>(),
        sx[1].downcast::<u32>(),
        sx[2].downcast::<u32>(),
    ])
    .unwrap();
    for (a, b) in x.iter().zip(&y) {
        assert_eq!(a.to_i64(), b.to_i64());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn convert_random_values(xs in prop::collection::vec(-(1i64 << 29)..(1i64 << 29), 1..40), m in 0u32..20, seed in any::<u64>()) {
        let x: Vec<u32> = xs.iter().map(|&v| u32::from_i64(v)).collect();
        let sx = shares(&x, seed);
        let r = with_parties(seed, |p| p.convert::<u32, u64>(&sx[p.id], m).unwrap());
        let y = open(&outs(&r)).unwrap();
        for (v, yi) in xs.iter().zip(&y) {
            let d = yi.to_i64() - (v >> m);
            prop_assert!(d == 0 || (m > 0 && d == 1), "x={v} m={m} y={}", yi.to_i64());
        }
    }

    #[test]
    fn mul_and_select_random_values(xs in prop::collection::vec((any::<u32>(), any::<u32>(), any::<bool>()), 1..40), seed in any::<u64>()) {
        let x: Vec<u32> = xs.iter().map(|v| v.0).collect();
        let y: Vec<u32> = xs.iter().map(|v| v.1).collect();
        let s: Vec<u32> = xs.iter().map(|v| v.2 as u32).collect();
        let (sx, sy, ss) = (shares(&x, seed), shares(&y, seed ^ 5), shares(&s, seed ^ 9));
        let r = with_parties(seed, |p| (p.mul(&sx[p.id], &sy[p.id]).unwrap(), p.select(&ss[p.id], &sx[p.id], &sy[p.id]).unwrap()));
        let prod = open(&[r[0].0 .0.clone(), r[1].0 .0.clone(), r[2].0 .0.clone()]).unwrap();
        let sel = open(&[r[0].0 .1.clone(), r[1].0 .1.clone(), r[2].0 .1.clone()]).unwrap();
        for (j, v) in xs.iter().enumerate() {
            prop_assert_eq!(prod[j], v.0.wrapping_mul(v.1));
            prop_assert_eq!(sel[j], if v.2 { v.0 } else { v.1 });
        }
    }

    #[test]
    fn row_max_random_values(xs in prop::collection::vec(-(1i64 << 40)..(1i64 << 40), 1..24), rows in 1usize..4, seed in any::<u64>()) {
        let cols = xs.len();
        let x: Vec<u64> = (0..rows).flat_map(|r| xs.iter().map(move |&v| u64::from_i64(v - r as i64))).collect();
        let sx = shares(&x, seed);
        let r = with_parties(seed, |p| p.max_rows(&sx[p.id], rows, cols).unwrap());
        let m = open(&outs(&r)).unwrap();
        let top = *xs.iter().max().unwrap();
        for (row, v) in m.iter().enumerate() {
            prop_assert_eq!(v.to_i64(), top - row as i64);
        }
    }

    #[test]
    fn ltz_random_values(xs in prop::collection::vec(any::<i64>(), 1..30), seed in any::<u64>()) {
        let x: Vec<u64> = xs.iter().map(|&v| v as u64).collect();
        let sx = shares(&x, seed);
        let r = with_parties(seed, |p| p.ltz(&sx[p.id]).unwrap());
        let bits = open_bits(&outs(&r)).unwrap();
        for (v, b) in xs.iter().zip(bits) {
            prop_assert_eq!(b, *v < 0);
        }
    }
}

// ----- comparison, bits, select, max -----

fn check_bits<R: Ring>(seed: u64, n: usize) {
    let mut x = values::<R>(n, R::BITS - 2, seed);
    x.push(R::ONE.shl(R::BITS - 1)); // the most negative value
    x.push(R::ONE.shl(R::BITS - 1).sub(R::ONE)); // the most positive
    let n = x.len();
    let sx = shares(&x, seed);
    let r = with_parties(seed, |p| p.bit_decompose(&sx[p.id]).unwrap());
    assert_eq!(open_bool(&outs(&r)).unwrap(), x);
    let l = ditto_protocol::cost::prefix_levels(R::BITS) as u64;
    assert_eq!(max_rounds(&r), (2 + l, 0));
    assert_eq!(
        total(&r).bytes_online,
        3 * n as u64 * (R::BITS as u64 / 8) * (2 * l)
    );
    let c = ditto_protocol::cost::decompose(R::BITS, n as u64);
    assert_eq!((c.bytes, c.rounds), (total(&r).bytes_online, 2 + l));
    let r = with_parties(seed, |p| p.ltz(&sx[p.id]).unwrap());
    let b = open_bits(&outs(&r)).unwrap();
    for (xi, bi) in x.iter().zip(&b) {
        assert_eq!(*bi, xi.to_i64() < 0);
    }
    // the sign alone: the set-up (A's products for groups of four bits —
    // 15 per group of four, 7 for the last group of three — and the top
    // bit to B, each group's generate and propagate bit from H and from B:
    // packed columns, 2 rounds), then a carry tree over the groups (per
    // level: 3 messages of 2·pairs columns of ⌈n/8⌉ bytes)
    let col = (n as u64).div_ceil(8);
    let groups = (R::BITS as u64 - 1).div_ceil(4);
    let (mut tree_bytes, mut levels, mut m) = (0, 0, groups);
    while m > 1 {
        tree_bytes += 3 * 2 * (m / 2) * col;
        m = m.div_ceil(2);
        levels += 1;
    }
    assert_eq!(max_rounds(&r), (2 + levels, 0));
    assert_eq!(levels, if R::BITS == 32 { 3 } else { 4 });
    let setup = col * ((groups - 1) * 15 + 7 + 1 + 4 * groups);
    assert_eq!(total(&r).bytes_online, setup + tree_bytes);
    let c = ditto_protocol::cost::ltz(R::BITS, n as u64);
    assert_eq!((c.bytes, c.rounds), (total(&r).bytes_online, 2 + levels));
    // highest set bit of the decomposed words
    let r = with_parties(seed, |p| {
        let w = p.bit_decompose(&sx[p.id]).unwrap();
        let before = p.comm().stats();
        let h = p.highest_bit(&w).unwrap();
        (h, p.comm().stats().since(&before))
    });
    let h = open_bool(&[r[0].0 .0.clone(), r[1].0 .0.clone(), r[2].0 .0.clone()]).unwrap();
    for (xi, hi) in x.iter().zip(&h) {
        let v = xi.to_u64();
        let want = if v == 0 {
            0
        } else {
            1u64 << (63 - v.leading_zeros())
        };
        assert_eq!(hi.to_u64(), want, "x = {v:#x}");
    }
    let levels = R::BITS.trailing_zeros() as u64;
    assert_eq!(r[0].0 .1.rounds_online, levels);
}

#[test]
fn bit_decomposition_ltz_and_highest_bit_both_rings() {
    check_bits::<u32>(70, 40);
    check_bits::<u64>(71, 40);
    // several 64-element words of bit columns, the last one partial (the
    // 32-bit ring transposes 128 elements at a time)
    check_bits::<u32>(72, 200);
    check_bits::<u64>(73, 200);
}

fn check_b2a_select_max<R: Ring>(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 33;
    let bits: Vec<bool> = (0..n).map(|_| rng.random()).collect();
    // bit shares from a dealer: three random components XOR to the bit
    let c0: Vec<bool> = (0..n).map(|_| rng.random()).collect();
    let c1: Vec<bool> = (0..n).map(|_| rng.random()).collect();
    let c2: Vec<bool> = (0..n).map(|j| bits[j] ^ c0[j] ^ c1[j]).collect();
    let comps = [c0, c1, c2];
    let bs: [ditto_protocol::BitShare; 3] = [0, 1, 2].map(|i| ditto_protocol::BitShare {
        a: comps[i].clone(),
        b: comps[(i + 1) % 3].clone(),
    });
    let r = with_parties(seed, |p| p.b2a::<R>(&bs[p.id]).unwrap());
    let a = open(&outs(&r)).unwrap();
    assert_eq!(
        a,
        bits.iter()
            .map(|&b| if b { R::ONE } else { R::ZERO })
            .collect::<Vec<_>>()
    );
    // offline: the random bit made arithmetic, 3k bits in 2 rounds; online
    // 3 bits packed.
    let t = total(&r);
    assert_eq!(t.bytes_offline, 3 * n as u64 * (R::BITS as u64 / 8));
    assert_eq!(t.bytes_online, 3 * n.div_ceil(8) as u64);
    assert_eq!(max_rounds(&r), (1, 2));

    // select with the converted bits
    let x = values::<R>(n, 20, seed + 1);
    let y = values::<R>(n, 20, seed + 2);
    let (sa, sx, sy) = (outs(&r), shares(&x, seed + 3), shares(&y, seed + 4));
    let r = with_parties(seed, |p| p.select(&sa[p.id], &sx[p.id], &sy[p.id]).unwrap());
    let z = open(&outs(&r)).unwrap();
    for j in 0..n {
        assert_eq!(z[j], if bits[j] { x[j] } else { y[j] });
    }
    assert_eq!(max_rounds(&r), (1, 0));

    // the bits times secret and public operands in one round (the
    // selection of a secret condition): B2A's opening and the product's
    // reshare share the round and the message
    let d = values::<R>(20, 20, seed + 5);
    let public = values::<R>(13, 20, seed + 6);
    let sd = shares(&d, seed + 7);
    let r = with_parties(seed, |p| {
        let ds = [
            ditto_protocol::Operand::Secret(&sd[p.id]),
            ditto_protocol::Operand::Public(&public),
        ];
        p.mul_bits(&bs[p.id], &ds).unwrap()
    });
    let parts: [Vec<AShare<R>>; 3] = outs(&r);
    for (k, want) in [d.clone(), public.clone()].iter().enumerate() {
        let z = open(&[
            parts[0][k].clone(),
            parts[1][k].clone(),
            parts[2][k].clone(),
        ])
        .unwrap();
        let off = if k == 0 { 0 } else { 20 };
        for j in 0..want.len() {
            let b = bits[off + j];
            assert_eq!(
                z[j],
                if b { want[j] } else { R::ZERO },
                "operand {k} element {j}"
            );
        }
    }
    let t = total(&r);
    assert_eq!(
        t.bytes_online,
        3 * (n.div_ceil(8) as u64 + 20 * (R::BITS as u64 / 8))
    );
    assert_eq!(t.bytes_offline, 3 * n as u64 * (R::BITS as u64 / 8));
    assert_eq!(max_rounds(&r), (1, 2));
    let c = ditto_protocol::cost::mul_bits(R::BITS, n as u64, 20);
    assert_eq!(
        (c.bytes, c.rounds, c.bytes_offline, c.rounds_offline),
        (t.bytes_online, 1, t.bytes_offline, 2)
    );

    // row max, odd and even widths, negative values
    for (rows, cols) in [(3, 8), (2, 7), (4, 1), (1, 13), (2, 4), (1, 3), (5, 128)] {
        let x = values::<R>(rows * cols, 20, seed + cols as u64);
        let x = x[..rows * cols].to_vec();
        let sx = shares(&x, seed + 9);
        let r = with_parties(seed, |p| p.max_rows(&sx[p.id], rows, cols).unwrap());
        let m = open(&outs(&r)).unwrap();
        for i in 0..rows {
            let want = x[i * cols..(i + 1) * cols]
                .iter()
                .map(|v| v.to_i64())
                .max()
                .unwrap();
            assert_eq!(m[i].to_i64(), want, "row {i} of {rows}×{cols}");
        }
        // levels: the whole row up to eight, else groups of four; each a
        // sign call, an AND tree over m − 1 bits, a product of bits
        let (mut w, mut rounds, mut levels) = (cols as u64, 0, 0);
        let sign = ditto_protocol::cost::ltz(R::BITS, 1).rounds;
        while w > 1 {
            let m = if w <= 8 { w } else { 4 };
            rounds += sign + (m - 1).next_power_of_two().trailing_zeros() as u64 + 1;
            w = w / m + w % m;
            levels += 1;
        }
        assert_eq!(max_rounds(&r), (rounds, levels * 2));
        let c = ditto_protocol::cost::max_rows(R::BITS, rows as u64, cols as u64);
        let t = total(&r);
        assert_eq!((c.bytes, c.rounds), (t.bytes_online, max_rounds(&r).0));
        assert_eq!(c.bytes_offline, t.bytes_offline);
    }
}

#[test]
fn b2a_select_and_row_max_both_rings() {
    check_b2a_select_max::<u32>(80);
    check_b2a_select_max::<u64>(81);
}

#[test]
fn roles_rotate_across_conversions() {
    // Three conversions in a row: each party plays each role once, so its
    // online rounds are those of H (1), A (2) and B (2) in some order.
    let x = values::<u64>(10, 40, 90);
    let sx = shares(&x, 90);
    let r = with_parties(90, |p| {
        let mut rounds = vec![];
        for _ in 0..3 {
            let before = p.comm().stats();
            p.trunc(&sx[p.id], 5).unwrap();
            rounds.push(p.comm().stats().since(&before).rounds_online);
        }
        rounds
    });
    for (rounds, _) in &r {
        let mut sorted = rounds.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 2, 2], "{rounds:?}");
    }
}

/// A large conversion runs in six pieces with the roles rotating and the
/// orientation turning, so every link carries the same bytes (to within a
/// piece's rounding) and the totals and rounds are those of one call.
#[test]
fn a_large_conversion_loads_every_link_alike() {
    // six equal pieces of 496
    let n = 2976;
    let x = values::<u32>(n, 28, 97);
    let sx = shares(&x, 97);
    let r = with_parties(97, |p| p.convert::<u32, u64>(&sx[p.id], 8).unwrap());
    let y = open(&outs(&r)).expect("consistent");
    for (xi, yi) in x.iter().zip(&y) {
        let d = yi.to_i64() - (xi.to_i64() >> 8);
        assert!(d == 0 || d == 1);
    }
    assert_conversion_cost::<u32, u64, _>(&r, n, 8, false);
    // A sends B k_out bits, B sends A k_in: with the orientation turning
    // every third piece, each of the six links carries a sixth of both
    let links: Vec<u64> = (0..3)
        .flat_map(|i| [1, 2].map(|s| r[i].1.bytes_to[(i + s) % 3]))
        .collect();
    let (lo, hi) = (*links.iter().min().unwrap(), *links.iter().max().unwrap());
    assert!(hi > 0 && hi - lo <= hi / 100, "bytes per link: {links:?}");
}

// ----- privacy -----

// (privacy: tests/privacy.rs)

// ----- the offline phase -----

/// A mixed sequence of conversions (every ring pair, a fused product): the
/// values, and the bits each call would move.
fn conversions(p: &mut Party, x64: &[AShare<u64>; 3], x32: &[AShare<u32>; 3]) -> [Vec<i64>; 5] {
    let id = p.id;
    let a = p.convert::<u64, u64>(&x64[id], 18).unwrap();
    let b = p.convert::<u32, u64>(&x32[id], 0).unwrap();
    let c = p.convert::<u64, u32>(&x64[id], 12).unwrap();
    let z = p.mul_local(&x32[id], &x32[id]);
    let d = p.convert_additive::<u32, u32>(&z, 8).unwrap();
    // calls without offline shares (w = 0) between ones with, so that each
    // party plays every role in both kinds: the offline phase must keep
    // every stream in step (their truncations summed, ±3)
    let mut e = AShare::<u64> {
        a: vec![0; x64[id].len()],
        b: vec![0; x64[id].len()],
    };
    for _ in 0..3 {
        let _ = p.convert::<u64, u32>(&x64[id], 12).unwrap();
        let t = p.convert::<u64, u64>(&x64[id], 18).unwrap();
        e = AShare {
            a: e.a
                .iter()
                .zip(&t.a)
                .map(|(x, y)| x.wrapping_add(*y))
                .collect(),
            b: e.b
                .iter()
                .zip(&t.b)
                .map(|(x, y)| x.wrapping_add(*y))
                .collect(),
        };
    }
    // and a B2A in each ring (the sign bits of the inputs)
    let s64 = p.ltz(&x64[id]).unwrap();
    let b64 = p.b2a::<u64>(&s64).unwrap();
    let s32 = p.ltz(&x32[id]).unwrap();
    let b32 = p.b2a::<u32>(&s32).unwrap();
    let d = AShare {
        a: d.a
            .iter()
            .zip(&b32.a)
            .map(|(x, y)| x.wrapping_add(y.wrapping_shl(20)))
            .collect(),
        b: d.b
            .iter()
            .zip(&b32.b)
            .map(|(x, y)| x.wrapping_add(y.wrapping_shl(20)))
            .collect(),
    };
    let a = AShare {
        a: a.a
            .iter()
            .zip(&b64.a)
            .map(|(x, y)| x.wrapping_add(y.wrapping_shl(40)))
            .collect(),
        b: a.b
            .iter()
            .zip(&b64.b)
            .map(|(x, y)| x.wrapping_add(y.wrapping_shl(40)))
            .collect(),
    };
    let v64 = |s: &AShare<u64>| s.a.iter().map(|e| e.to_i64()).collect::<Vec<_>>();
    let v32 = |s: &AShare<u32>| s.a.iter().map(|e| e.to_i64()).collect::<Vec<_>>();
    // (the first component only: enough to rebuild the value with the others)
    [v64(&a), v64(&b), v32(&c), v32(&d), v64(&e)]
}

#[test]
fn preprocessed_conversions_and_b2a_equal_inline_ones() {
    let x64: Vec<u64> = values(50, 40, 90);
    let x32: Vec<u32> = values(50, 12, 91);
    let (s64, s32) = (shares(&x64, 92), shares(&x32, 93));
    // inline, recording the calls
    let inline = run3(|c: &mut Channel| {
        let id = c.id();
        let mut p = Party::setup(c, seed_of(94, id)).unwrap();
        p.record_conversions();
        let before = p.comm().stats();
        let out = conversions(&mut p, &s64, &s32);
        (out, p.take_trace(), p.comm().stats().since(&before))
    });
    let trace = inline[0].1.clone();
    // each conversion of 50 elements is one piece (six from 96 on)
    assert_eq!(trace.len(), 12, "ten conversions and two B2As");
    assert!(
        inline.iter().all(|r| r.1 == trace),
        "every party sees the same calls"
    );
    // preprocessed: one offline round for all helper messages
    let pre = run3(|c: &mut Channel| {
        let id = c.id();
        let mut p = Party::setup(c, seed_of(95, id)).unwrap();
        let s0 = p.comm().stats();
        p.preprocess(&trace).unwrap();
        let s1 = p.comm().stats();
        // the prepared state survives detaching from the link (a cluster
        // prepares while it waits for a query)
        let st = p.into_state();
        c.set_step(7);
        let mut p = Party::resume(c, st).unwrap();
        let out = conversions(&mut p, &s64, &s32);
        assert_eq!(p.prepared_left(), 0);
        (out, s1.since(&s0), p.comm().stats().since(&s1))
    });
    let open_all = |rs: [&[Vec<i64>; 5]; 3], k: usize| -> Vec<i64> {
        // the three first components are the three additive parts
        (0..rs[0][k].len())
            .map(|j| {
                rs[0][k][j]
                    .wrapping_add(rs[1][k][j])
                    .wrapping_add(rs[2][k][j])
            })
            .collect()
    };
    for k in 0..5 {
        let a = open_all([&inline[0].0, &inline[1].0, &inline[2].0], k);
        let b = open_all([&pre[0].0, &pre[1].0, &pre[2].0], k);
        for (j, (u, v)) in a.iter().zip(&b).enumerate() {
            let (u, v) = if k == 2 || k == 3 {
                (*u as i32 as i64, *v as i32 as i64)
            } else {
                (*u, *v)
            };
            let tolerance = if k == 4 { 3 } else { 1 };
            assert!(
                (u - v).abs() <= tolerance,
                "call {k} element {j}: inline {u}, preprocessed {v}"
            );
        }
    }
    let inl: Stats = inline.iter().fold(Stats::default(), |s, r| s.add(&r.2));
    let off: Stats = pre.iter().fold(Stats::default(), |s, r| s.add(&r.1));
    let on: Stats = pre.iter().fold(Stats::default(), |s, r| s.add(&r.2));
    // the same bytes; the helper messages all in one offline round
    assert_eq!(off.bytes_offline + on.bytes_offline, inl.bytes_offline);
    assert_eq!(on.bytes_offline, 0);
    assert_eq!(on.bytes_online, inl.bytes_online);
    // two rounds for the mask bits' shares, two per ring for the random bits
    assert_eq!(pre.iter().map(|r| r.1.rounds_offline).max(), Some(6));
    assert_eq!(pre.iter().map(|r| r.2.rounds_offline).max(), Some(0));
    assert_eq!(
        pre.iter().map(|r| r.2.rounds_online).max(),
        inline.iter().map(|r| r.2.rounds_online).max()
    );
}

#[test]
fn a_conversion_that_was_not_prepared_is_refused() {
    let x: Vec<u64> = values(20, 30, 96);
    let s = shares(&x, 97);
    let trace = [ditto_protocol::PreCall::Conv(ditto_protocol::ConvCall {
        kin: 64,
        kout: 64,
        m: 18,
        n: 19,
    })];
    let r = with_parties(98, |p| {
        p.preprocess(&trace).unwrap();
        p.convert::<u64, u64>(&s[p.id], 18).map(|_| ())
    });
    for (e, _) in r {
        let e = e.expect_err("a different length");
        assert!(e.to_string().contains("preprocessing out of step"), "{e}");
    }
}

// ----- the range guard -----

/// The range guard: conversions whose inputs keep the precondition give the
/// same values as without it and the verdict "in range"; one element beyond
/// 2^(k−2) (plain or in a fused product) makes the verdict "out of range" at
/// all three parties. Measured bytes and rounds = the declared cost.
fn check_range_guard<R: Ring>(seed: u64) {
    let n = 40;
    let lim = R::BITS - 3;
    let x = values::<R>(n, lim, seed);
    let run = |x: &[R], fused: bool| {
        let sx = shares(x, seed);
        let one = shares(&vec![R::ONE; n], seed + 1);
        let r = with_parties(seed, |p| {
            p.guard_ranges();
            let y = if fused {
                let z = p.mul_local(&sx[p.id], &one[p.id]);
                p.convert_additive::<R, R>(&z, 4).unwrap()
            } else {
                p.convert::<R, R>(&sx[p.id], 4).unwrap()
            };
            let mid = p.comm().stats();
            let bad = p.range_verdict().unwrap();
            (y, bad, p.comm().stats().since(&mid))
        });
        let verdicts: Vec<bool> = r.iter().map(|(o, _)| o.1).collect();
        assert!(verdicts.iter().all(|&v| v == verdicts[0]), "{verdicts:?}");
        let verdict_cost = r.iter().fold(Stats::default(), |a, (o, _)| a.add(&o.2));
        (r, verdicts[0], verdict_cost)
    };
    for fused in [false, true] {
        let (r, bad, vc) = run(&x, fused);
        assert!(
            !bad,
            "{}-bit values in range flagged (fused {fused})",
            R::BITS
        );
        let y = open(&[r[0].0 .0.clone(), r[1].0 .0.clone(), r[2].0 .0.clone()]).unwrap();
        for (xi, yi) in x.iter().zip(&y) {
            let d = yi.to_i64() - (xi.to_i64() >> 4);
            assert!(d == 0 || d == 1, "x={} y={}", xi.to_i64(), yi.to_i64());
        }
        let t = total(&r);
        let want = ditto_protocol::cost::conversion(R::BITS, R::BITS, 4, fused, n as u64)
            + ditto_protocol::cost::range_guard(R::BITS, fused, n as u64)
            + ditto_protocol::cost::range_verdict(n as u64);
        assert_eq!(t.bytes_online, want.bytes, "bytes (fused {fused})");
        assert_eq!(max_rounds(&r).0, want.rounds, "rounds (fused {fused})");
        let v = ditto_protocol::cost::range_verdict(n as u64);
        assert_eq!((vc.bytes_online, vc.rounds_online / 3), (v.bytes, v.rounds));
        // one element past the precondition, at either end
        for edge in [1i64 << (R::BITS - 2), -(1i64 << (R::BITS - 2)) - 5] {
            let mut out = x.clone();
            out[n / 2] = R::from_i64(edge);
            assert!(run(&out, fused).1, "{edge} not flagged (fused {fused})");
        }
    }
    // without the guard, no verdict to give
    let r = with_parties(seed, |p| p.range_verdict().unwrap());
    assert!(r.iter().all(|(b, s)| !b && s.bytes() == 0));
}

#[test]
fn the_range_guard_flags_a_conversion_input_out_of_range() {
    check_range_guard::<u32>(61);
    check_range_guard::<u64>(62);
}
