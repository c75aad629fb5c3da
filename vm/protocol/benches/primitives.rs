//! Criterion benches of the MPC primitives: three parties on threads over
//! in-memory links, one call per iteration (key setup excluded).
//! `cargo bench -p ditto-protocol --bench primitives`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ditto_net::{run3, Channel};
use ditto_protocol::share::deal;
use ditto_protocol::{AShare, Comm, Party, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn shares<R: Ring>(n: usize, bits: u32) -> [AShare<R>; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<R> = (0..n)
        .map(|_| R::from_i64(rng.random_range(-(1i64 << bits)..(1i64 << bits))))
        .collect();
    deal(&x, || R::from_u64(rng.random()))
}

/// Times `iters` calls of `f` inside one three-party session.
fn timed(iters: u64, f: &(dyn Fn(&mut Party) + Sync)) -> std::time::Duration {
    let r = run3(|c: &mut Channel| {
        let id = c.id();
        let mut p = Party::setup(c, [id as u8; 32]).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..iters {
            f(&mut p);
        }
        t.elapsed()
    });
    r.into_iter().max().unwrap()
}

fn primitives(c: &mut Criterion) {
    let n = 128 * 768;
    let s64 = shares::<u64>(n, 40);
    let s32 = shares::<u32>(n, 20);
    let mut g = c.benchmark_group("primitives");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("mul/u64/98304", |b| {
        b.iter_custom(|it| timed(it, &|p| drop(p.mul(&s64[p.id], &s64[p.id]).unwrap())))
    });
    g.bench_function("trunc/u64/98304", |b| {
        b.iter_custom(|it| timed(it, &|p| drop(p.trunc(&s64[p.id], 18).unwrap())))
    });
    g.bench_function("trunc/u32/98304", |b| {
        b.iter_custom(|it| timed(it, &|p| drop(p.trunc(&s32[p.id], 8).unwrap())))
    });
    g.bench_function("upcast/u32→u64/98304", |b| {
        b.iter_custom(|it| timed(it, &|p| drop(p.convert::<u32, u64>(&s32[p.id], 0).unwrap())))
    });
    g.bench_function("downcast/u64→u32/98304", |b| {
        b.iter_custom(|it| {
            timed(it, &|p| {
                drop(p.convert::<u64, u32>(&s64[p.id], 10).unwrap())
            })
        })
    });
    g.bench_function("ltz/u64/98304", |b| {
        b.iter_custom(|it| timed(it, &|p| drop(p.ltz(&s64[p.id]).unwrap())))
    });
    g.bench_function("ltz/u32/98304", |b| {
        b.iter_custom(|it| timed(it, &|p| drop(p.ltz(&s32[p.id]).unwrap())))
    });
    g.finish();
    let (m, k, nn) = (128, 768, 768);
    let x = shares::<u64>(m * k, 20);
    let w = shares::<u64>(k * nn, 20);
    let mut g = c.benchmark_group("matmul-3pc");
    g.sample_size(10);
    g.throughput(Throughput::Elements((2 * m * k * nn) as u64));
    g.bench_function("u64/128x768x768", |b| {
        b.iter_custom(|it| {
            timed(it, &|p| {
                drop(p.matmul(&x[p.id], &w[p.id], 1, m, k, nn, false).unwrap())
            })
        })
    });
    let x = shares::<u32>(m * k, 10);
    let w = shares::<u32>(k * nn, 10);
    g.bench_function("u32/128x768x768", |b| {
        b.iter_custom(|it| {
            timed(it, &|p| {
                drop(p.matmul(&x[p.id], &w[p.id], 1, m, k, nn, false).unwrap())
            })
        })
    });
    g.finish();
}

criterion_group!(benches, primitives);
criterion_main!(benches);
