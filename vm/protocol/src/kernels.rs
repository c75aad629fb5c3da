//! Local ring kernels: matrix products (blocked, rows in parallel, with AVX2
//! and AVX-512 code paths chosen at run time), batched products for attention
//! heads, and element-wise helpers. All arithmetic wraps mod 2^k.

use crate::ring::Ring;
use rayon::prelude::*;

/// Register tiles, MR rows × NR columns of C held in registers while a
/// depth block streams through, chosen per instruction set and ring so that
/// the accumulators fit the register file with room for a row of B, a
/// broadcast of A and temporaries: AVX-512 (32 registers of 512 bits) 8×32
/// words of u32 or 8×16 of u64; AVX2 (16 of 256 bits) 4×16 of either ring
/// (measured best of 4×16, 4×24, 6×16 and 8×16 for u32 and of 4×8, 4×16, 6×8
/// and 8×16 for u64, whose multiply is emulated: `ditto bench kernels`);
/// otherwise 4×8. Row counts divide the usual 128 tokens, so no rows are
/// left to the one-row loop.
///
/// A depth block of B (KB rows of one NR-wide column tile) is packed
/// contiguously first, so the inner loop reads B sequentially and indexes
/// A and B without bounds checks; KB keeps the packed block near 16 KiB
/// (in L1).
fn depth_block<R: Ring, const NR: usize>() -> usize {
    (16 * 1024 / (NR * std::mem::size_of::<R>())).max(32)
}

/// Column tiles `tiles` (each NR wide, inside n) of C = A·B, all rows, into
/// `out` (m × tiles·NR, row-major, accumulated into). Remainder rows use a
/// one-row loop.
#[inline(always)]
fn tiles_kernel<R: Ring, const MR: usize, const NR: usize>(
    a: &[R],
    b: &[R],
    out: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    let w = tiles.len() * NR;
    let kbs = depth_block::<R, NR>();
    let mut packed = vec![R::ZERO; kbs * NR];
    for kb in (0..k).step_by(kbs) {
        let ke = (kb + kbs).min(k);
        let kl = ke - kb;
        for (ti, t) in tiles.clone().enumerate() {
            let j0 = t * NR;
            let o0 = ti * NR;
            let bp = &mut packed[..kl * NR];
            for (kk, dst) in bp.chunks_exact_mut(NR).enumerate() {
                let src = (kb + kk) * n + j0;
                dst.copy_from_slice(&b[src..src + NR]);
            }
            let bp = &packed[..kl * NR];
            let mut i0 = 0;
            while i0 + MR <= m {
                let rows: [&[R]; MR] = std::array::from_fn(|r| {
                    let s = (i0 + r) * k + kb;
                    &a[s..s + kl]
                });
                let mut acc = [[R::ZERO; NR]; MR];
                for (kk, brow) in bp.chunks_exact(NR).enumerate() {
                    let brow: &[R; NR] = brow.try_into().expect("NR columns");
                    for r in 0..MR {
                        let av = rows[r][kk];
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
                let row = &a[i * k + kb..i * k + ke];
                let mut acc = [R::ZERO; NR];
                for (&av, brow) in row.iter().zip(bp.chunks_exact(NR)) {
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
unsafe fn tiles_avx512<R: Ring, const MR: usize, const NR: usize>(
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    tiles_kernel::<R, MR, NR>(a, b, c, m, k, n, tiles)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tiles_avx2<R: Ring, const MR: usize, const NR: usize>(
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    tiles_kernel::<R, MR, NR>(a, b, c, m, k, n, tiles)
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

/// The instruction set the matmul kernels use on this machine: `avx512`,
/// `avx2` or `portable` (for benchmark records).
pub fn kernel_isa() -> &'static str {
    match isa() {
        Isa::Avx512 => "avx512",
        Isa::Avx2 => "avx2",
        Isa::Generic => "portable",
    }
}

/// The tile kernel for the ISA, with its register tile.
#[allow(clippy::too_many_arguments)]
fn tiles_dispatch<R: Ring, const MR: usize, const NR: usize>(
    isa: Isa,
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    tiles: std::ops::Range<usize>,
) {
    match isa {
        // SAFETY: `isa()` checked that the CPU supports the enabled features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { tiles_avx512::<R, MR, NR>(a, b, c, m, k, n, tiles) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { tiles_avx2::<R, MR, NR>(a, b, c, m, k, n, tiles) },
        _ => tiles_kernel::<R, MR, NR>(a, b, c, m, k, n, tiles),
    }
}

/// Calls `$f::<R, MR, NR>(isa, args...)` with the register tile of the
/// machine's instruction set and R's width.
macro_rules! with_tile {
    ($f:ident, $r:ty, $($arg:expr),*) => {{
        let isa = isa();
        match (isa, <$r>::BITS) {
            (Isa::Avx512, 32) => $f::<$r, 8, 32>(isa, $($arg),*),
            (Isa::Avx512, _) => $f::<$r, 8, 16>(isa, $($arg),*),
            (Isa::Avx2, 32) => $f::<$r, 4, 16>(isa, $($arg),*),
            _ => $f::<$r, 4, 8>(isa, $($arg),*),
        }
    }};
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
    with_tile!(acc_by_shape, R, a, b, c, m, k, n)
}

/// The kernel for the shape, given the machine's register tile MR × NR:
/// fewer rows than a tile, fewer columns than a tile, or the tiled one.
#[allow(clippy::too_many_arguments)]
fn acc_by_shape<R: Ring, const MR: usize, const NR: usize>(
    isa: Isa,
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
) {
    if m < MR && n >= NR {
        few_rows(isa, a, b, c, m, k, n);
    } else if n < NR && m >= MR {
        few_columns(isa, a, b, c, m, k, n);
    } else {
        acc_tiled::<R, MR, NR>(isa, a, b, c, m, k, n)
    }
}

/// Runs `f` compiled for the machine's vector instructions (the closure is
/// inlined into a function with those target features).
#[inline(always)]
fn vectorized<T>(isa: Isa, f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
        unsafe fn avx512<T>(f: impl FnOnce() -> T) -> T {
            f()
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T>(f: impl FnOnce() -> T) -> T {
            f()
        }
        match isa {
            // SAFETY: `isa()` checked that the CPU supports the features.
            Isa::Avx512 => unsafe { avx512(f) },
            // SAFETY: as above.
            Isa::Avx2 => unsafe { avx2(f) },
            Isa::Generic => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        f()
    }
}

/// C += A·B for fewer rows of A than a register tile (a decode step's one
/// token, a lookup's one-hot): B is streamed once, row by row, with no
/// packing; the depth is split over threads, each adding into its own
/// m×n accumulator, summed at the end. Memory-bound, so it reads each
/// element of B exactly once.
fn few_rows<R: Ring>(isa: Isa, a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize) {
    let tasks = if m * k * n < 1 << 16 {
        1
    } else {
        (rayon::current_num_threads() * 2).min(k)
    };
    let per = k.div_ceil(tasks.max(1)).max(1);
    let starts: Vec<usize> = (0..k).step_by(per).collect();
    let parts: Vec<Vec<R>> = starts
        .into_par_iter()
        .map(|k0| {
            let mut acc = vec![R::ZERO; m * n];
            vectorized(isa, || {
                for kk in k0..(k0 + per).min(k) {
                    let brow = &b[kk * n..(kk + 1) * n];
                    for (i, arow) in acc.chunks_exact_mut(n).enumerate() {
                        let av = a[i * k + kk];
                        for (x, &y) in arow.iter_mut().zip(brow) {
                            *x = x.add(av.mul(y));
                        }
                    }
                }
            });
            acc
        })
        .collect();
    for p in parts {
        add_assign(c, &p);
    }
}

/// C += A·B for fewer columns of B than a register tile (a logits head
/// E·hᵀ over a vocabulary): B's columns transposed (small), then each
/// element of C a dot product of a row of A, rows spread over threads.
fn few_columns<R: Ring>(isa: Isa, a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize) {
    let bt = transpose(b, k, n);
    let rows = if m * k * n < 1 << 16 {
        m
    } else {
        m.div_ceil(rayon::current_num_threads() * 4).max(1)
    };
    c.par_chunks_mut(rows * n).enumerate().for_each(|(t, cc)| {
        vectorized(isa, || {
            for (r, crow) in cc.chunks_exact_mut(n).enumerate() {
                let i = t * rows + r;
                let arow = &a[i * k..(i + 1) * k];
                for (cj, bcol) in crow.iter_mut().zip(bt.chunks_exact(k)) {
                    let dot = arow
                        .iter()
                        .zip(bcol)
                        .fold(R::ZERO, |s, (&x, &y)| s.add(x.mul(y)));
                    *cj = cj.add(dot);
                }
            }
        })
    });
}

#[allow(clippy::too_many_arguments)]
fn acc_tiled<R: Ring, const MR: usize, const NR: usize>(
    isa: Isa,
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
) {
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
            tiles_dispatch::<R, MR, NR>(isa, a, b, &mut buf, m, k, n, tr.clone());
            (tr.start * NR, buf)
        })
        .collect();
    for (j0, buf) in parts {
        add_columns(c, n, j0, &buf, m);
    }
    if full * NR < n {
        edge_kernel(a, b, c, m, k, n, full * NR);
    }
}

/// C += A·B on the calling thread (used per head by the batched product).
fn matmul_seq<R: Ring>(a: &[R], b: &[R], c: &mut [R], m: usize, k: usize, n: usize) {
    with_tile!(seq_tiled, R, a, b, c, m, k, n)
}

#[allow(clippy::too_many_arguments)]
fn seq_tiled<R: Ring, const MR: usize, const NR: usize>(
    isa: Isa,
    a: &[R],
    b: &[R],
    c: &mut [R],
    m: usize,
    k: usize,
    n: usize,
) {
    let full = n / NR;
    if full * NR == n {
        tiles_dispatch::<R, MR, NR>(isa, a, b, c, m, k, n, 0..full);
        return;
    }
    let w = full * NR;
    let mut buf = vec![R::ZERO; m * w];
    tiles_dispatch::<R, MR, NR>(isa, a, b, &mut buf, m, k, n, 0..full);
    add_columns(c, n, 0, &buf, m);
    edge_kernel(a, b, c, m, k, n, w);
}

/// Adds the m-row block `buf` (its width: `buf.len() / m`) into columns
/// j0.. of the m×n matrix `c`.
fn add_columns<R: Ring>(c: &mut [R], n: usize, j0: usize, buf: &[R], m: usize) {
    let w = buf.len() / m;
    if w == 0 {
        return;
    }
    for (i, row) in buf.chunks_exact(w).enumerate() {
        add_assign(&mut c[i * n + j0..i * n + j0 + w], row);
    }
}

/// A·B for A [m, k] and B [k, n], row-major. B may be given by its first
/// `b.len()` < k·n elements, the rest zero — a lookup table whose rows end
/// inside the product's depth (docs/protocols.md, *Lookup of secret ids*):
/// its complete rows then make one product and the partial last row an
/// outer product, with no copy of B.
pub fn matmul<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R> {
    let mut c = vec![R::ZERO; m * n];
    if b.len() >= k * n {
        matmul_acc(a, b, &mut c, m, k, n);
        return c;
    }
    assert!(a.len() == m * k, "matmul: A is not {m}×{k}");
    let full = b.len() / n;
    let head: Vec<R> = (0..m)
        .flat_map(|i| a[i * k..i * k + full].iter().copied())
        .collect();
    matmul_acc(&head, &b[..full * n], &mut c, m, full, n);
    let tail = &b[full * n..];
    for i in 0..m {
        let x = a[i * k + full];
        for (cj, &bj) in c[i * n..i * n + tail.len()].iter_mut().zip(tail) {
            *cj = cj.add(x.mul(bj));
        }
    }
    c
}

/// Batched product over the leading axes: `a` is batch×m×k, `b` batch×k×n or
/// (when `b_shared`) k×n, or a prefix of it as [`matmul`] takes.
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

#[cfg(test)]
mod tests {
    use super::*;

    type Tiled<R> = fn(Isa, &[R], &[R], &mut [R], usize, usize, usize);

    fn naive<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R> {
        let mut c = vec![R::ZERO; m * n];
        for i in 0..m {
            for l in 0..k {
                for j in 0..n {
                    c[i * n + j] = c[i * n + j].add(a[i * k + l].mul(b[l * n + j]));
                }
            }
        }
        c
    }

    /// Ring elements of a xorshift stream from `seed`, `len` at a time.
    fn drawer<R: Ring>(seed: u64) -> impl FnMut(usize) -> Vec<R> {
        let mut x = seed;
        move |len| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    R::from_u64(x)
                })
                .collect()
        }
    }

    /// Every register tile any machine may pick, run by the portable
    /// kernel here, on shapes with remainder rows, columns and depth blocks.
    fn every_tile<R: Ring>() {
        let mut draw = drawer::<R>(0x9E37_79B9_7F4A_7C15);
        for (m, k, n) in [(13, 300, 70), (128, 64, 64), (5, 1100, 33), (1, 7, 3)] {
            let (a, b) = (draw(m * k), draw(k * n));
            let want = naive(&a, &b, m, k, n);
            let runs: [(&str, Tiled<R>); 5] = [
                ("8x32", acc_tiled::<R, 8, 32>),
                ("8x16", acc_tiled::<R, 8, 16>),
                ("4x16", acc_tiled::<R, 4, 16>),
                ("4x8", acc_tiled::<R, 4, 8>),
                ("4x16 seq", seq_tiled::<R, 4, 16>),
            ];
            for (name, f) in runs {
                let mut c = vec![R::ZERO; m * n];
                f(Isa::Generic, &a, &b, &mut c, m, k, n);
                assert!(c == want, "{name} tile, {m}×{k}×{n}, {} bits", R::BITS);
            }
        }
    }

    /// The thin-shape kernels (few rows of A, few columns of B), portable
    /// and with this machine's instruction set, one task and several.
    fn thin_shapes<R: Ring>() {
        let mut draw = drawer::<R>(0x2545_F491_4F6C_DD1D);
        for isa in [Isa::Generic, isa()] {
            for (m, k, n) in [(1, 7, 40), (3, 300, 33), (1, 5000, 70), (2, 4099, 129)] {
                let (a, b) = (draw(m * k), draw(k * n));
                let mut c = draw(m * n);
                let mut want = naive(&a, &b, m, k, n);
                add_assign(&mut want, &c);
                few_rows(isa, &a, &b, &mut c, m, k, n);
                assert!(c == want, "few rows, {m}×{k}×{n}, {} bits", R::BITS);
            }
            for (m, k, n) in [(9, 7, 1), (100, 300, 1), (4099, 70, 3), (33, 1100, 2)] {
                let (a, b) = (draw(m * k), draw(k * n));
                let mut c = draw(m * n);
                let mut want = naive(&a, &b, m, k, n);
                add_assign(&mut want, &c);
                few_columns(isa, &a, &b, &mut c, m, k, n);
                assert!(c == want, "few columns, {m}×{k}×{n}, {} bits", R::BITS);
            }
        }
    }

    #[test]
    fn thin_kernels_are_exact() {
        thin_shapes::<u32>();
        thin_shapes::<u64>();
    }

    #[test]
    fn every_register_tile_is_exact() {
        every_tile::<u32>();
        every_tile::<u64>();
    }
}
