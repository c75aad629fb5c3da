//! `ditto bench kernels`: throughput of the local ring kernels. A multiply-add
//! counts as two operations (as in GFLOP/s). Measure, never assert: numbers go
//! to the terminal or to JSON for docs/bench/.

use anyhow::Result;
use ditto_protocol::kernels::matmul;
use ditto_protocol::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// GOP/s of one m×k by k×n product in ring `R` (best of several runs, at
/// least ~1 s of work after a warm-up).
fn matmul_gops<R: Ring>(m: usize, k: usize, n: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let a: Vec<R> = (0..m * k).map(|_| R::from_u64(rng.random())).collect();
    let b: Vec<R> = (0..k * n).map(|_| R::from_u64(rng.random())).collect();
    let ops = 2.0 * (m * k * n) as f64;
    std::hint::black_box(matmul(&a, &b, m, k, n));
    let mut best = f64::INFINITY;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed().as_secs_f64() < 1.0 {
        let t = Instant::now();
        std::hint::black_box(matmul(&a, &b, m, k, n));
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    ops / best / 1e9
}

pub fn kernels(json: bool) -> Result<()> {
    let shapes = [(128, 768, 768), (128, 768, 3072)];
    let mut rows = vec![];
    for &(m, k, n) in &shapes {
        rows.push((32, m, k, n, matmul_gops::<u32>(m, k, n)));
        rows.push((64, m, k, n, matmul_gops::<u64>(m, k, n)));
    }
    let threads = rayon::current_num_threads();
    if json {
        let arr: Vec<_> = rows
            .iter()
            .map(|&(ring, m, k, n, gops)| {
                serde_json::json!({"kernel": "matmul", "ring": ring, "m": m, "k": k, "n": n, "gops": gops, "threads": threads})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
    } else {
        println!(
            "{:<8} {:>5} {:>16} {:>10}   ({threads} threads)",
            "kernel", "ring", "m×k×n", "GOP/s"
        );
        for (ring, m, k, n, gops) in rows {
            println!(
                "{:<8} {:>5} {:>16} {:>10.1}",
                "matmul",
                ring,
                format!("{m}×{k}×{n}"),
                gops
            );
        }
    }
    Ok(())
}
