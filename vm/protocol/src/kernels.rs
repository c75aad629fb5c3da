//! Local ring kernels: matrix products (blocked, rows in parallel, with AVX2
//! and AVX-512 code paths chosen at run time), batched products for attention
//! heads, and element-wise helpers. All arithmetic wraps mod 2^k.

use crate::ring::Ring;
use rayon::prelude::*;

/// Rows of A processed together (B's rows are reused across them).
const MR: usize = 4;
/// Depth and width of one cache block.
const KB: usize = 128;
const NB: usize = 512;

#[inline(always)]
fn block<R: Ring>(a: &[R], b: &[R], c: &mut [R], rows: usize, k: usize, n: usize) {
    // c: rows×n (this row block of C), a: rows×k
    for kb in (0..k).step_by(KB) {
        let ke = (kb + KB).min(k);
        for nb in (0..n).step_by(NB) {
            let ne = (nb + NB).min(n);
            let w = ne - nb;
            let mut r = 0;
            while r + MR <= rows {
                let (c0, rest) = c[r * n..].split_at_mut(n);
                let (c1, rest) = rest.split_at_mut(n);
                let (c2, c3) = rest.split_at_mut(n);
                let (c0, c1, c2, c3) = (
                    &mut c0[nb..ne],
                    &mut c1[nb..ne],
                    &mut c2[nb..ne],
                    &mut c3[nb..ne],
                );
                for kk in kb..ke {
                    let a0 = a[r * k + kk];
                    let a1 = a[(r + 1) * k + kk];
                    let a2 = a[(r + 2) * k + kk];
                    let a3 = a[(r + 3) * k + kk];
                    let brow = &b[kk * n + nb..kk * n + ne];
                    for j in 0..w {
                        let bv = brow[j];
                        c0[j] = c0[j].add(a0.mul(bv));
                        c1[j] = c1[j].add(a1.mul(bv));
                        c2[j] = c2[j].add(a2.mul(bv));
                        c3[j] = c3[j].add(a3.mul(bv));
                    }
                }
                r += MR;
            }
            while r < rows {
                let crow = &mut c[r * n + nb..r * n + ne];
                for kk in kb..ke {
                    let av = a[r * k + kk];
                    let brow = &b[kk * n + nb..kk * n + ne];
                    for j in 0..w {
                        crow[j] = crow[j].add(av.mul(brow[j]));
                    }
                }
                r += 1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn block_avx512<R: Ring>(a: &[R], b: &[R], c: &mut [R], rows: usize, k: usize, n: usize) {
    block(a, b, c, rows, k, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2<R: Ring>(a: &[R], b: &[R], c: &mut [R], rows: usize, k: usize, n: usize) {
    block(a, b, c, rows, k, n)
}

fn block_dispatch<R: Ring>(a: &[R], b: &[R], c: &mut [R], rows: usize, k: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: the CPU supports every feature the function enables.
            return unsafe { block_avx512(a, b, c, rows, k, n) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { block_avx2(a, b, c, rows, k, n) };
        }
    }
    block(a, b, c, rows, k, n)
}

/// C += A·B with A m×k, B k×n, C m×n (row-major), rows in parallel.
pub fn matmul_acc<R: Ring>(a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize) {
    assert_eq!(a.len(), m * k, "matmul: A is not m×k");
    assert_eq!(b.len(), k * n, "matmul: B is not k×n");
    assert_eq!(c.len(), m * n, "matmul: C is not m×n");
    if m == 0 || n == 0 {
        return;
    }
    let rows_per_task = (m.div_ceil(rayon::current_num_threads() * 4))
        .max(MR)
        .next_multiple_of(MR);
    if m * k * n < 1 << 15 {
        block_dispatch(a, b, c, m, k, n);
        return;
    }
    c.par_chunks_mut(rows_per_task * n)
        .enumerate()
        .for_each(|(t, cc)| {
            let r0 = t * rows_per_task;
            let rows = cc.len() / n;
            block_dispatch(&a[r0 * k..(r0 + rows) * k], b, cc, rows, k, n);
        });
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
        block_dispatch(
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
