//! Criterion benches of the local ring kernels (matmul at transformer shapes,
//! element-wise products). `cargo bench -p ditto-protocol --bench kernels`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ditto_protocol::kernels::{matmul, mul};
use ditto_protocol::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random<R: Ring>(n: usize) -> Vec<R> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n).map(|_| R::from_u64(rng.random())).collect()
}

fn bench_matmul<R: Ring>(c: &mut Criterion, name: &str) {
    let mut g = c.benchmark_group(format!("matmul/{name}"));
    g.sample_size(10);
    for (m, k, n) in [(128, 768, 768), (128, 768, 3072), (128, 64, 128)] {
        let (a, b) = (random::<R>(m * k), random::<R>(k * n));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{m}x{k}x{n}")),
            &(),
            |bch, _| bch.iter(|| matmul(&a, &b, m, k, n)),
        );
    }
    g.finish();
}

fn kernels(c: &mut Criterion) {
    bench_matmul::<u32>(c, "u32");
    bench_matmul::<u64>(c, "u64");
    let (x, y) = (random::<u64>(1 << 20), random::<u64>(1 << 20));
    c.bench_function("mul/u64/1M", |b| b.iter(|| mul(&x, &y)));
}

criterion_group!(benches, kernels);
criterion_main!(benches);
