//! The local kernels against naive loops, on shapes that hit every path:
//! full register tiles, remainder rows and columns, several depth blocks,
//! the threaded split and the batched product.

use ditto_protocol::kernels::{matmul, matmul_batched};
use ditto_protocol::Ring;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn naive<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R> {
    let mut c = vec![R::ZERO; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = R::ZERO;
            for l in 0..k {
                acc = acc.add(a[i * k + l].mul(b[l * n + j]));
            }
            c[i * n + j] = acc;
        }
    }
    c
}

fn random<R: Ring>(n: usize, seed: u64) -> Vec<R> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| R::from_u64(rng.random())).collect()
}

fn check<R: Ring>(m: usize, k: usize, n: usize, seed: u64) {
    let (a, b) = (random::<R>(m * k, seed), random::<R>(k * n, seed + 1));
    assert_eq!(
        matmul(&a, &b, m, k, n),
        naive(&a, &b, m, k, n),
        "{m}×{k}×{n}"
    );
}

#[test]
fn matmul_paths() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (8, 16, 16),
        (9, 300, 33),
        (17, 513, 47),
        (128, 64, 128),
        (3, 700, 16),
        (40, 8, 200),
    ] {
        check::<u32>(m, k, n, 1);
        check::<u64>(m, k, n, 2);
    }
}

#[test]
fn batched_matmul_paths() {
    let (bt, m, k, n) = (3, 9, 20, 18);
    let a = random::<u64>(bt * m * k, 5);
    let b = random::<u64>(bt * k * n, 6);
    let c = matmul_batched(&a, &b, bt, m, k, n, false);
    for i in 0..bt {
        let want = naive(
            &a[i * m * k..(i + 1) * m * k],
            &b[i * k * n..(i + 1) * k * n],
            m,
            k,
            n,
        );
        assert_eq!(&c[i * m * n..(i + 1) * m * n], &want[..]);
    }
    let shared = matmul_batched(&a, &b[..k * n], bt, m, k, n, true);
    assert_eq!(shared, naive(&a, &b[..k * n], bt * m, k, n));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn matmul_random_shapes(m in 1usize..40, k in 1usize..300, n in 1usize..70, seed in any::<u64>()) {
        let (a, b) = (random::<u32>(m * k, seed), random::<u32>(k * n, seed ^ 1));
        prop_assert_eq!(matmul(&a, &b, m, k, n), naive(&a, &b, m, k, n));
    }
}
