//! Local ring kernels: matrix products (blocked, rows in parallel, with AVX2
//! and AVX-512 code paths chosen at run time), batched products for attention
//! heads, and element-wise helpers. All arithmetic wraps mod 2^k.

use crate::ring::Ring;
use rayon::prelude::*;

/// Register tile: MR rows × NR columns of C stay in registers while the
/// whole depth k streams through (NR = 16 words: one 512-bit register of u32,
/// two of u64).
const MR: usize = 8;
const NR: usize = 16;

/// Depth of one pass over A: an MR×KB block of A and a KB×NR strip of B
/// stay in L1/L2 while the register tile accumulates.
const KB: usize = 256;

/// Column tiles `tiles` (each NR wide, inside n) of C = A·B, all rows, into
/// `out` (m × tiles·NR, row-major, accumulated into). Remainder rows use a
/// one-row loop.
#[inline(always)]
fn tiles_kernel<R: Ring>(
    a: &[R],
    b: &[R],
    out: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    let w = tiles.len() * NR;
    for kb in (0..k).step_by(KB) {
        let ke = (kb + KB).min(k);
        for (ti, t) in tiles.clone().enumerate() {
            let j0 = t * NR;
            let o0 = ti * NR;
            let mut i0 = 0;
            while i0 + MR <= m {
                let mut acc = [[R::ZERO; NR]; MR];
                for kk in kb..ke {
                    let brow: &[R; NR] = b[kk * n + j0..kk * n + j0 + NR]
                        .try_into()
                        .expect("NR columns");
                    for r in 0..MR {
                        let av = a[(i0 + r) * k + kk];
                        for j in 0..NR {
                            acc[r][j] = acc[r][j].add(av.mul(brow[j]));
                        }
                    }
                }
                for (r, accr) in acc.iter().enumerate() {
                    let orow = &mut out[(i0 + r) * w + o0..(i0 + r) * w + o0 + NR];
                    for j in 0..NR {
                        orow[j] = orow[j].add(accr[j]);
                    }
                }
                i0 += MR;
            }
            for i in i0..m {
                let mut acc = [R::ZERO; NR];
                for kk in kb..ke {
                    let av = a[i * k + kk];
                    let brow = &b[kk * n + j0..kk * n + j0 + NR];
                    for j in 0..NR {
                        acc[j] = acc[j].add(av.mul(brow[j]));
                    }
                }
                let orow = &mut out[i * w + o0..i * w + o0 + NR];
                for j in 0..NR {
                    orow[j] = orow[j].add(acc[j]);
                }
            }
        }
    }
}

/// The columns right of the last full tile (fewer than NR), all rows.
fn edge_kernel<R: Ring>(a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize, j0: usize) {
    for i in 0..m {
        for kk in 0..k {
            let av = a[i * k + kk];
            for j in j0..n {
                c[i * n + j] = c[i * n + j].add(av.mul(b[kk * n + j]));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn tiles_avx512<R: Ring>(
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    tiles_kernel(a, b, c, m, k, n, tiles)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tiles_avx2<R: Ring>(
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    tiles_kernel(a, b, c, m, k, n, tiles)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Generic,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                Isa::Avx512
            } else if std::arch::is_x86_feature_detected!("avx2") {
                Isa::Avx2
            } else {
                Isa::Generic
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Isa::Generic
}

fn tiles_dispatch<R: Ring>(
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    match isa() {
        // SAFETY: `isa()` checked that the CPU supports the enabled features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { tiles_avx512(a, b, c, m, k, n, tiles) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { tiles_avx2(a, b, c, m, k, n, tiles) },
        _ => tiles_kernel(a, b, c, m, k, n, tiles),
    }
}

/// C += A·B with A m×k, B k×n, C m×n (row-major). Column tiles are
/// spread over threads; each task computes its columns for all rows into a
/// local buffer, so a strip of B is reused by every row while it is in cache.
pub fn matmul_acc<R: Ring>(a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize) {
    assert_eq!(a.len(), m * k, "matmul: A is not m×k");
    assert_eq!(b.len(), k * n, "matmul: B is not k×n");
    assert_eq!(c.len(), m * n, "matmul: C is not m×n");
    if m == 0 || n == 0 {
        return;
    }
    let full = n / NR;
    let threads = rayon::current_num_threads();
    let tasks = if m * k * n < 1 << 16 {
        1
    } else {
        (threads * 3).min(full.max(1))
    };
    let per = full.div_ceil(tasks.max(1)).max(1);
    let ranges: Vec<std::ops::Range<usize>> = (0..full)
        .step_by(per)
        .map(|t| t..(t + per).min(full))
        .collect();
    let parts: Vec<(usize, Vec<R>)> = ranges
        .into_par_iter()
        .map(|tr| {
            let w = tr.len() * NR;
            let mut buf = vec![R::ZERO; m * w];
            tiles_dispatch(a, b, &mut buf, m, k, n, tr.clone());
            (tr.start * NR, buf)
        })
        .collect();
    for (j0, buf) in parts {
        let w = buf.len() / m;
        for i in 0..m {
            add_assign(&mut c[i * n + j0..i * n + j0 + w], &buf[i * w..(i + 1) * w]);
        }
    }
    if full * NR < n {
        edge_kernel(a, b, c, m, k, n, full * NR);
    }
}

/// C += A·B on the calling thread (used per head by the batched product).
fn matmul_seq<R: Ring>(a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize) {
    let full = n / NR;
    if full * NR == n {
        tiles_dispatch(a, b, c, m, k, n, 0..full);
        return;
    }
    let w = full * NR;
    let mut buf = vec![R::ZERO; m * w];
    tiles_dispatch(a, b, &mut buf, m, k, n, 0..full);
    for i in 0..m {
        add_assign(&mut c[i * n..i * n + w], &buf[i * w..(i + 1) * w]);
    }
    edge_kernel(a, b, c, m, k, n, w);
}

/// A·B.
pub fn matmul<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R> {
    let mut c = vec![R::ZERO; m * n];
    matmul_acc(a, b, &mut c, m, k, n);
    c
}

/// Batched product over the leading axes: `a` is batch×m×k, `b` batch×k×n or
/// (when `b_shared`) k×n.
pub fn matmul_batched<R: Ring>(
    a: &[R],
    b: &[R],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    b_shared: bool,
) -> Vec<R> {
    if b_shared {
        return matmul(a, b, batch * m, k, n);
    }
    let mut c = vec![R::ZERO; batch * m * n];
    c.par_chunks_mut(m * n).enumerate().for_each(|(i, cc)| {
        matmul_seq(
            &a[i * m * k..(i + 1) * m * k],
            &b[i * k * n..(i + 1) * k * n],
            cc,
            m,
            k,
            n,
        );
    });
    c
}

pub fn add<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x.add(y)).collect()
}

pub fn sub<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x.sub(y)).collect()
}

pub fn mul<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x.mul(y)).collect()
}

pub fn xor<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x.xor(y)).collect()
}

pub fn and<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| x.and(y)).collect()
}

pub fn add_assign<R: Ring>(a: &mut [R], b: &[R]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = x.add(y));
}

pub fn sub_assign<R: Ring>(a: &mut [R], b: &[R]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = x.sub(y));
}

/// Transposes an r×c matrix.
pub fn transpose<R: Ring>(a: &[R], r: usize, c: usize) -> Vec<R> {
    let mut out = vec![R::ZERO; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = a[i * c + j];
        }
    }
    out
}
