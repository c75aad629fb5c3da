//! Operands: public or secret arguments in a wanted format, and the local
//! arithmetic, reductions and matmul shapes on them.

use super::*;

/// Register `r` as an operand of ring R with `frac` fraction bits.
pub(super) fn arg<'r, R: Rv>(regs: &'r Regs, st: &mut St, r: Reg, frac: u32) -> Res<Arg<'r, R>> {
    if let Some(x) = regs.exact[r.0 as usize] {
        return Ok(Arg::P(Cow::Owned(vec![encode::<R>(x, frac)])));
    }
    let (kin, fin) = st.fmt(r)?;
    conv_value::<R>(st, regs.get(r)?, kin, fin, frac)
}

pub(super) fn to_share<R: Ring>(id: usize, x: &Arg<'_, R>, n: usize) -> AShare<R> {
    match x {
        Arg::P(v) => share_public(id, &expand(v, n)),
        Arg::S(s) => expand_share(s, n).into_owned(),
    }
}

pub(super) fn add_args<R: Ring>(
    id: usize,
    x: &Arg<'_, R>,
    y: &Arg<'_, R>,
    n: usize,
) -> Arg<'static, R> {
    match (x, y) {
        (Arg::P(p), Arg::P(q)) => Arg::P(Cow::Owned(kernels::add(&expand(p, n), &expand(q, n)))),
        (Arg::S(s), Arg::P(p)) | (Arg::P(p), Arg::S(s)) => {
            Arg::S(Cow::Owned(expand_share(s, n).add_public(id, &expand(p, n))))
        }
        (Arg::S(s), Arg::S(t)) => Arg::S(Cow::Owned(expand_share(s, n).add(&expand_share(t, n)))),
    }
}

pub(super) fn neg_arg<R: Ring>(x: &Arg<'_, R>) -> Arg<'static, R> {
    match x {
        Arg::P(p) => Arg::P(Cow::Owned(p.iter().map(|v| v.neg()).collect())),
        Arg::S(s) => Arg::S(Cow::Owned(s.neg())),
    }
}

pub(super) fn sub_args<R: Ring>(
    id: usize,
    x: &Arg<'_, R>,
    y: &Arg<'_, R>,
    n: usize,
) -> Arg<'static, R> {
    add_args(id, x, &neg_arg(y), n)
}

pub(super) fn mul_args<R: Rv>(
    st: &mut St,
    x: &Arg<'_, R>,
    y: &Arg<'_, R>,
    n: usize,
) -> Res<Arg<'static, R>> {
    Ok(match (x, y) {
        (Arg::P(p), Arg::P(q)) => Arg::P(Cow::Owned(kernels::mul(&expand(p, n), &expand(q, n)))),
        (Arg::S(s), Arg::P(p)) | (Arg::P(p), Arg::S(s)) => {
            let s = expand_share(s, n);
            Arg::S(Cow::Owned(if p.len() == 1 {
                s.mul_scalar(p[0])
            } else {
                s.mul_public(p)
            }))
        }
        (Arg::S(s), Arg::S(t)) => {
            let (s, t) = (expand_share(s, n), expand_share(t, n));
            Arg::S(Cow::Owned(st.party()?.mul(&s, &t)?))
        }
    })
}

pub(super) fn concat_shares<R: Ring>(parts: &[&AShare<R>]) -> AShare<R> {
    let mut out = AShare {
        a: Vec::new(),
        b: Vec::new(),
    };
    for p in parts {
        out.a.extend_from_slice(&p.a);
        out.b.extend_from_slice(&p.b);
    }
    out
}

pub(super) fn split_bits(s: &BitShare, at: usize) -> (BitShare, BitShare) {
    (
        BitShare {
            a: s.a[..at].to_vec(),
            b: s.b[..at].to_vec(),
        },
        BitShare {
            a: s.a[at..].to_vec(),
            b: s.b[at..].to_vec(),
        },
    )
}

/// (outer, len, inner) of a reduction along `axis`.
pub(super) fn axis_split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

pub(super) fn reduce_sum<R: Ring>(v: &[R], outer: usize, len: usize, inner: usize) -> Vec<R> {
    let mut out = vec![R::ZERO; outer * inner];
    for o in 0..outer {
        for l in 0..len {
            let row = &v[(o * len + l) * inner..(o * len + l + 1) * inner];
            kernels::add_assign(&mut out[o * inner..(o + 1) * inner], row);
        }
    }
    out
}

/// Indices putting axis `len` last: rows (o, i), columns l.
pub(super) fn rows_last(outer: usize, len: usize, inner: usize) -> Vec<usize> {
    let mut idx = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        for i in 0..inner {
            for l in 0..len {
                idx.push((o * len + l) * inner + i);
            }
        }
    }
    idx
}

/// The shape of a (batched) matrix product: `batch` products of m×k by k×n,
/// the right-hand side shared by all when `shared`.
#[derive(Clone, Copy)]
pub(super) struct MatDims {
    pub(super) batch: usize,
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) shared: bool,
}

impl MatDims {
    /// The product of registers `a` and `b` (MatMul's operand rule).
    pub(super) fn of(st: &St, a: Reg, b: Reg) -> MatDims {
        let (sa, sb) = (st.shape(a), st.shape(b));
        let (ra, rb) = (sa.len(), sb.len());
        MatDims {
            batch: sa[..ra - 2].iter().product(),
            m: sa[ra - 2],
            k: sa[ra - 1],
            n: sb[rb - 1],
            shared: rb == 2,
        }
    }
}

pub(super) fn matmul_args<R: Rv>(
    st: &mut St,
    x: Arg<'_, R>,
    y: Arg<'_, R>,
    d: MatDims,
) -> Res<Arg<'static, R>> {
    let MatDims {
        batch,
        m,
        k,
        n,
        shared,
    } = d;
    let mm = |a: &[R], b: &[R]| kernels::matmul_batched(a, b, batch, m, k, n, shared);
    Ok(match (x, y) {
        (Arg::P(x), Arg::P(y)) => Arg::P(Cow::Owned(mm(&x, &y))),
        (Arg::S(x), Arg::P(y)) => Arg::S(Cow::Owned(AShare {
            a: mm(&x.a, &y),
            b: mm(&x.b, &y),
        })),
        (Arg::P(x), Arg::S(y)) => Arg::S(Cow::Owned(AShare {
            a: mm(&x, &y.a),
            b: mm(&x, &y.b),
        })),
        (Arg::S(x), Arg::S(y)) => Arg::S(Cow::Owned(
            st.party()?.matmul(&x, &y, batch, m, k, n, shared)?,
        )),
    })
}
