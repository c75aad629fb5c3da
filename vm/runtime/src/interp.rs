//! The interpreter: executes a validated [`Program`] at one party. Values
//! are public (every party computes them in the clear) or secret (this
//! party's replicated shares); each instruction dispatches on its operands'
//! visibility and ring, computing locally what it can and calling the
//! protocols of `ditto-protocol` for the rest.
//!
//! The `fixed` backend is this interpreter with no party: every input and
//! weight is loaded as a public value, so every instruction takes its
//! cleartext path, which is the ring emulation of the protocols (truncation
//! is the floor, the u = 0 case of the conversion's ⌊x/2^m⌋ + u).
//!
//! Format semantics match the compiler's fixed-point evaluator: an operand
//! in another format than its instruction needs is converted first (a public
//! constant is re-encoded from its exact value); products keep their
//! operands' fraction bits, which add up.

use crate::source::Source;
use crate::value::{
    encode, expand, expand_share, gather_index, share_public, strides, Arg, Rv, Value,
};
use ditto_bytecode::{Instr, Kind, Program, Reg, RegType};
use ditto_protocol::{kernels, AShare, BitShare, Party, ProtocolError, Ring, Stats};
use std::borrow::Cow;
use std::time::Instant;

/// Why execution stopped.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("instruction {index} ({mnemonic}): {source}")]
    Protocol {
        index: usize,
        mnemonic: &'static str,
        #[source]
        source: ProtocolError,
    },
    #[error("instruction {index} ({mnemonic}): {message}")]
    Exec {
        index: usize,
        mnemonic: &'static str,
        message: String,
    },
    #[error("{0}")]
    Setup(String),
}

impl VmError {
    /// The peer a protocol failure names, if any.
    pub fn peer(&self) -> Option<usize> {
        match self {
            VmError::Protocol {
                source: ProtocolError::Comm(c),
                ..
            } => Some(c.peer()),
            VmError::Protocol {
                source: ProtocolError::Malformed { peer, .. },
                ..
            } => Some(*peer),
            _ => None,
        }
    }
}

/// An instruction's failure before it is tied to its index.
enum E {
    P(ProtocolError),
    M(String),
}

impl From<ProtocolError> for E {
    fn from(e: ProtocolError) -> E {
        E::P(e)
    }
}

impl From<String> for E {
    fn from(e: String) -> E {
        E::M(e)
    }
}

type Res<T> = Result<T, E>;

/// What one instruction cost this party.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub secs: f64,
    pub stats: Stats,
}

/// A party's result: its value (share, or public) of every output, and the
/// cost of every instruction.
pub struct Outcome {
    pub outputs: Vec<Value>,
    pub costs: Vec<Cost>,
}

struct St<'a, 'p, 'c> {
    prog: &'a Program,
    party: Option<&'p mut Party<'c>>,
    id: usize,
    src: &'a dyn Source,
}

impl<'c> St<'_, '_, 'c> {
    fn party(&mut self) -> Res<&mut Party<'c>> {
        match self.party.as_deref_mut() {
            Some(p) => Ok(p),
            None => Err(E::M(
                "a secret value reached the cleartext backend (internal error)".into(),
            )),
        }
    }
    fn ty(&self, r: Reg) -> &RegType {
        &self.prog.regs[r.0 as usize]
    }
    /// (ring, frac) of a fixed-point register.
    fn fmt(&self, r: Reg) -> Res<(u32, u32)> {
        match self.ty(r).kind {
            Kind::Fixed { ring, frac } => Ok((ring as u32, frac as u32)),
            Kind::Bool => Err(E::M(format!("r{} is boolean, not a number", r.0))),
        }
    }
    fn shape(&self, r: Reg) -> Vec<usize> {
        self.ty(r).shape.iter().map(|&d| d as usize).collect()
    }
}

struct Regs {
    vals: Vec<Option<Value>>,
    /// The real value of each constant (re-encoded when needed elsewhere).
    exact: Vec<Option<f64>>,
    /// The input port a register was loaded from (for secret lookups).
    from_input: Vec<Option<usize>>,
}

impl Regs {
    fn get(&self, r: Reg) -> Res<&Value> {
        self.vals[r.0 as usize]
            .as_ref()
            .ok_or_else(|| E::M(format!("r{} is not live (internal error)", r.0)))
    }
}

/// Rescales a public element from `from` to `to` fraction bits (floor on the
/// way down) and reduces it into `Ro`.
#[inline]
fn rescale_pub<Ri: Ring, Ro: Ring>(e: Ri, from: u32, to: u32) -> Ro {
    let v = e.to_i64() as i128;
    let y = if to <= from {
        v >> (from - to)
    } else {
        v << (to - from)
    };
    Ro::from_u64(y as u64)
}

/// `x` (ring Ri, `from` fraction bits) in ring Ro with `to` fraction bits:
/// Ditto's conversion for a truncation (with or without a ring change) and
/// for an upcast; a local shift and reduction otherwise.
fn convert<Ri: Rv, Ro: Rv>(
    st: &mut St,
    x: Arg<'_, Ri>,
    from: u32,
    to: u32,
) -> Res<Arg<'static, Ro>> {
    Ok(match x {
        Arg::P(v) => Arg::P(Cow::Owned(
            v.iter()
                .map(|&e| rescale_pub::<Ri, Ro>(e, from, to))
                .collect(),
        )),
        Arg::S(s) => {
            if to < from {
                let m = from - to;
                if m + 2 > Ri::BITS {
                    return Err(E::M(format!(
                        "a truncation by {m} bits exceeds the {}-bit ring",
                        Ri::BITS
                    )));
                }
                Arg::S(Cow::Owned(st.party()?.convert::<Ri, Ro>(&s, m)?))
            } else {
                let sh = to - from;
                if Ri::BITS < Ro::BITS {
                    let y = st.party()?.convert::<Ri, Ro>(&s, 0)?;
                    Arg::S(Cow::Owned(if sh > 0 {
                        y.mul_scalar(Ro::ONE.shl(sh))
                    } else {
                        y
                    }))
                } else {
                    let y = if sh > 0 {
                        s.mul_scalar(Ri::ONE.shl(sh))
                    } else {
                        s.into_owned()
                    };
                    Arg::S(Cow::Owned(y.downcast::<Ro>()))
                }
            }
        }
    })
}

/// A value of ring `kin` with `fin` fraction bits, as an operand of ring R
/// with `fout` fraction bits.
fn conv_value<'v, R: Rv>(
    st: &mut St,
    v: &'v Value,
    kin: u32,
    fin: u32,
    fout: u32,
) -> Res<Arg<'v, R>> {
    let bad = || E::M("a register holds a value of another type (internal error)".into());
    if kin == R::BITS && fin == fout {
        return R::view(v).ok_or_else(bad);
    }
    if kin == 32 {
        convert::<u32, R>(st, u32::view(v).ok_or_else(bad)?, fin, fout)
    } else {
        convert::<u64, R>(st, u64::view(v).ok_or_else(bad)?, fin, fout)
    }
}

/// Register `r` as an operand of ring R with `frac` fraction bits.
fn arg<'r, R: Rv>(regs: &'r Regs, st: &mut St, r: Reg, frac: u32) -> Res<Arg<'r, R>> {
    if let Some(x) = regs.exact[r.0 as usize] {
        return Ok(Arg::P(Cow::Owned(vec![encode::<R>(x, frac)])));
    }
    let (kin, fin) = st.fmt(r)?;
    conv_value::<R>(st, regs.get(r)?, kin, fin, frac)
}

fn to_share<R: Ring>(id: usize, x: &Arg<'_, R>, n: usize) -> AShare<R> {
    match x {
        Arg::P(v) => share_public(id, &expand(v, n)),
        Arg::S(s) => expand_share(s, n).into_owned(),
    }
}

fn add_args<R: Ring>(id: usize, x: &Arg<'_, R>, y: &Arg<'_, R>, n: usize) -> Arg<'static, R> {
    match (x, y) {
        (Arg::P(p), Arg::P(q)) => Arg::P(Cow::Owned(kernels::add(&expand(p, n), &expand(q, n)))),
        (Arg::S(s), Arg::P(p)) | (Arg::P(p), Arg::S(s)) => {
            Arg::S(Cow::Owned(expand_share(s, n).add_public(id, &expand(p, n))))
        }
        (Arg::S(s), Arg::S(t)) => Arg::S(Cow::Owned(expand_share(s, n).add(&expand_share(t, n)))),
    }
}

fn neg_arg<R: Ring>(x: &Arg<'_, R>) -> Arg<'static, R> {
    match x {
        Arg::P(p) => Arg::P(Cow::Owned(p.iter().map(|v| v.neg()).collect())),
        Arg::S(s) => Arg::S(Cow::Owned(s.neg())),
    }
}

fn sub_args<R: Ring>(id: usize, x: &Arg<'_, R>, y: &Arg<'_, R>, n: usize) -> Arg<'static, R> {
    add_args(id, x, &neg_arg(y), n)
}

fn mul_args<R: Rv>(st: &mut St, x: &Arg<'_, R>, y: &Arg<'_, R>, n: usize) -> Res<Arg<'static, R>> {
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

/// `z` with `from` fraction bits rescaled to `to` in the same ring.
fn refmt<R: Rv>(st: &mut St, z: Arg<'static, R>, from: u32, to: u32) -> Res<Arg<'static, R>> {
    if from == to {
        Ok(z)
    } else {
        convert::<R, R>(st, z, from, to)
    }
}

fn concat_shares<R: Ring>(parts: &[&AShare<R>]) -> AShare<R> {
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

fn split_bits(s: &BitShare, at: usize) -> (BitShare, BitShare) {
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

/// The real scale `norm_scale` gives for a highest set bit 2^e.
fn norm_scale(kind: u8, e: i32) -> f64 {
    match kind {
        0 => (-(e as f64) - 1.0).exp2(),
        1 => (-(e as f64) - 2.0).exp2(),
        _ => (-(e as f64 + 2.0) / 2.0).exp2(),
    }
}

/// Selects the ring type from a register's ring width.
macro_rules! by_ring {
    ($ring:expr, $R:ident => $e:expr) => {
        if $ring == 32 {
            type $R = u32;
            $e
        } else {
            type $R = u64;
            $e
        }
    };
}

/// (outer, len, inner) of a reduction along `axis`.
fn axis_split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn reduce_sum<R: Ring>(v: &[R], outer: usize, len: usize, inner: usize) -> Vec<R> {
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
fn rows_last(outer: usize, len: usize, inner: usize) -> Vec<usize> {
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

#[allow(clippy::too_many_arguments)]
fn matmul_args<R: Rv>(
    st: &mut St,
    x: Arg<'_, R>,
    y: Arg<'_, R>,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    shared: bool,
) -> Res<Arg<'static, R>> {
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

/// Executes one fixed-point instruction whose result ring is R.
fn exec_num<R: Rv>(regs: &Regs, st: &mut St, ins: &Instr, dst: Reg) -> Res<Value> {
    let (_, fd) = st.fmt(dst)?;
    let n = st.ty(dst).numel() as usize;
    let id = st.id;
    let out: Arg<'static, R> = match ins {
        Instr::Add { a, b, .. } | Instr::Sub { a, b, .. } => {
            let x = arg::<R>(regs, st, *a, fd)?;
            let y = arg::<R>(regs, st, *b, fd)?;
            if matches!(ins, Instr::Add { .. }) {
                add_args(id, &x, &y, n)
            } else {
                sub_args(id, &x, &y, n)
            }
        }
        Instr::Neg { a, .. } => neg_arg(&arg::<R>(regs, st, *a, fd)?),
        Instr::Convert { a, .. } => arg::<R>(regs, st, *a, fd)?.into_owned(),
        Instr::Mul { a, b, .. } | Instr::MatMul { a, b, .. } => {
            // an operand in the product's ring keeps its fraction bits
            let own = |st: &St, r: Reg| -> Res<u32> {
                let (k, f) = st.fmt(r)?;
                Ok(if k == R::BITS { f } else { fd })
            };
            let (fa, fb) = (own(st, *a)?, own(st, *b)?);
            let x = arg::<R>(regs, st, *a, fa)?;
            let y = arg::<R>(regs, st, *b, fb)?;
            let z = if matches!(ins, Instr::Mul { .. }) {
                mul_args(st, &x, &y, n)?
            } else {
                let (sa, sb) = (st.shape(*a), st.shape(*b));
                let (ra, rb) = (sa.len(), sb.len());
                let batch = sa[..ra - 2].iter().product();
                matmul_args(st, x, y, batch, sa[ra - 2], sa[ra - 1], sb[rb - 1], rb == 2)?
            };
            refmt(st, z, fa + fb, fd)?
        }
        Instr::Select { c, a, b, .. } => {
            let x = arg::<R>(regs, st, *a, fd)?;
            let y = arg::<R>(regs, st, *b, fd)?;
            match regs.get(*c)? {
                Value::PBool(cv) => match (&x, &y) {
                    (Arg::P(p), Arg::P(q)) => {
                        let (p, q) = (expand(p, n), expand(q, n));
                        Arg::P(Cow::Owned(
                            (0..n).map(|i| if cv[i] { p[i] } else { q[i] }).collect(),
                        ))
                    }
                    _ => {
                        let (p, q) = (to_share(id, &x, n), to_share(id, &y, n));
                        let pick = |u: &[R], v: &[R]| -> Vec<R> {
                            (0..n).map(|i| if cv[i] { u[i] } else { v[i] }).collect()
                        };
                        Arg::S(Cow::Owned(AShare {
                            a: pick(&p.a, &q.a),
                            b: pick(&p.b, &q.b),
                        }))
                    }
                },
                Value::SBool(cs) => {
                    let s = st.party()?.b2a::<R>(cs)?;
                    let t = match sub_args(id, &x, &y, n) {
                        Arg::P(d) => s.mul_public(&d),
                        Arg::S(d) => st.party()?.mul(&s, &d)?,
                    };
                    add_args(id, &Arg::S(Cow::Owned(t)), &y, n)
                }
                _ => return Err(E::M("the condition is not boolean".into())),
            }
        }
        Instr::Sum { a, axis, .. } | Instr::Mean { a, axis, .. } | Instr::Max { a, axis, .. } => {
            let x = arg::<R>(regs, st, *a, fd)?;
            let (outer, len, inner) = axis_split(&st.shape(*a), *axis as usize);
            match ins {
                Instr::Max { .. } => match x {
                    Arg::P(v) => {
                        let mut out = vec![R::ZERO; outer * inner];
                        for o in 0..outer {
                            for i in 0..inner {
                                out[o * inner + i] = (0..len)
                                    .map(|l| v[(o * len + l) * inner + i])
                                    .max_by_key(|e| e.to_i64())
                                    .unwrap_or(R::ZERO);
                            }
                        }
                        Arg::P(Cow::Owned(out))
                    }
                    Arg::S(s) => {
                        let g = if inner == 1 {
                            s
                        } else {
                            Cow::Owned(s.gather(&rows_last(outer, len, inner)))
                        };
                        Arg::S(Cow::Owned(st.party()?.max_rows(&g, outer * inner, len)?))
                    }
                },
                _ => {
                    let sum = match x {
                        Arg::P(v) => Arg::P(Cow::Owned(reduce_sum(&v, outer, len, inner))),
                        Arg::S(s) => Arg::S(Cow::Owned(AShare {
                            a: reduce_sum(&s.a, outer, len, inner),
                            b: reduce_sum(&s.b, outer, len, inner),
                        })),
                    };
                    if matches!(ins, Instr::Sum { .. }) {
                        sum
                    } else {
                        // multiply by the public 1/len, then truncate
                        let inv = encode::<R>(1.0 / len as f64, fd);
                        match sum {
                            Arg::P(v) => Arg::P(Cow::Owned(
                                v.iter()
                                    .map(|e| {
                                        let p = e.to_i64() as i128 * inv.to_i64() as i128;
                                        R::from_u64((p >> fd) as u64)
                                    })
                                    .collect(),
                            )),
                            Arg::S(s) => {
                                let scaled = s.mul_scalar(inv);
                                Arg::S(Cow::Owned(st.party()?.convert::<R, R>(&scaled, fd)?))
                            }
                        }
                    }
                }
            }
        }
        Instr::NormScale { a, kind, .. } => {
            let x = arg::<R>(regs, st, *a, fd)?;
            // coefficient of each highest-bit position; the sign bit gives 0
            let coef: Vec<R> = (0..R::BITS - 1)
                .map(|j| encode::<R>(norm_scale(*kind, j as i32 - fd as i32), fd))
                .collect();
            match x {
                Arg::P(v) => Arg::P(Cow::Owned(
                    v.iter()
                        .map(|e| {
                            let s = e.to_i64();
                            if s > 0 {
                                coef[63 - s.leading_zeros() as usize]
                            } else {
                                R::ZERO
                            }
                        })
                        .collect(),
                )),
                Arg::S(s) => {
                    let p = st.party()?;
                    let bits = p.bit_decompose(&s)?;
                    let hi = p.highest_bit(&bits)?;
                    let used: Vec<u32> = (0..R::BITS - 1)
                        .filter(|&j| coef[j as usize] != R::ZERO)
                        .collect();
                    let mut cat = BitShare::default();
                    for &j in &used {
                        let b = hi.bit(j);
                        cat.a.extend(b.a);
                        cat.b.extend(b.b);
                    }
                    let ar = p.b2a::<R>(&cat)?;
                    let m = s.len();
                    let mut out = AShare::<R>::zeros(m);
                    for (t, &j) in used.iter().enumerate() {
                        let c = coef[j as usize];
                        for i in 0..m {
                            out.a[i] = out.a[i].add(ar.a[t * m + i].mul(c));
                            out.b[i] = out.b[i].add(ar.b[t * m + i].mul(c));
                        }
                    }
                    Arg::S(Cow::Owned(out))
                }
            }
        }
        Instr::Embed { ids, table, .. } => {
            let shape = st.shape(*table);
            let (rows, d) = (shape[0], shape[1]);
            let (_, ft) = st.fmt(*table)?;
            let tab = arg::<R>(regs, st, *table, ft)?;
            let z = match regs.get(*ids)? {
                Value::P32(_) | Value::P64(_) => {
                    let ids: Vec<i64> = match regs.get(*ids)? {
                        Value::P32(v) => v.iter().map(|e| e.to_i64()).collect(),
                        Value::P64(v) => v.iter().map(|e| e.to_i64()).collect(),
                        _ => unreachable!("matched above"),
                    };
                    let mut idx = Vec::with_capacity(ids.len() * d);
                    for &i in &ids {
                        if i < 0 || i as usize >= rows {
                            return Err(E::M(format!(
                                "token id {i} is out of range for a table of {rows} rows"
                            )));
                        }
                        idx.extend(i as usize * d..(i as usize + 1) * d);
                    }
                    match tab {
                        Arg::P(v) => Arg::P(Cow::Owned(idx.iter().map(|&i| v[i]).collect())),
                        Arg::S(s) => Arg::S(Cow::Owned(s.gather(&idx))),
                    }
                }
                _ => {
                    let port = regs.from_input[ids.0 as usize].ok_or_else(|| {
                        E::M("a lookup of secret ids needs the ids to be a client input".into())
                    })?;
                    let oh = st.src.onehot(port, rows, R::BITS as u8)?;
                    let x = R::view(&oh).ok_or_else(|| E::M("one-hot of another ring".into()))?;
                    let s = st.shape(*ids)[0];
                    matmul_args(st, x.into_owned(), tab, 1, s, rows, d, true)?
                }
            };
            refmt(st, z, ft, fd)?
        }
        Instr::Const { value, .. } => Arg::P(Cow::Owned(vec![encode::<R>(*value, fd)])),
        Instr::Iota { .. } => Arg::P(Cow::Owned(
            (0..n as u64).map(|i| R::from_u64(i << fd)).collect(),
        )),
        Instr::Concat { srcs, axis, .. } => {
            let parts: Vec<Arg<R>> = srcs
                .iter()
                .map(|r| arg::<R>(regs, st, *r, fd))
                .collect::<Res<_>>()?;
            let pieces: Vec<(usize, Arg<R>)> = srcs
                .iter()
                .zip(parts)
                .map(|(r, p)| (st.shape(*r)[*axis as usize..].iter().product(), p))
                .collect();
            let outer: usize = st.shape(dst)[..*axis as usize].iter().product();
            let interleave = |vs: Vec<(usize, &[R])>| -> Vec<R> {
                let mut out = Vec::with_capacity(n);
                for o in 0..outer {
                    for (inner, v) in &vs {
                        out.extend_from_slice(&v[o * inner..(o + 1) * inner]);
                    }
                }
                out
            };
            if pieces.iter().all(|(_, p)| matches!(p, Arg::P(_))) {
                let vs = pieces
                    .iter()
                    .map(|(i, p)| match p {
                        Arg::P(v) => (*i, &v[..]),
                        Arg::S(_) => unreachable!("all public"),
                    })
                    .collect();
                Arg::P(Cow::Owned(interleave(vs)))
            } else {
                let shares: Vec<(usize, AShare<R>)> = pieces
                    .iter()
                    .map(|(i, p)| (*i, to_share(id, p, p.len())))
                    .collect();
                let a = interleave(shares.iter().map(|(i, s)| (*i, &s.a[..])).collect());
                let b = interleave(shares.iter().map(|(i, s)| (*i, &s.b[..])).collect());
                Arg::S(Cow::Owned(AShare { a, b }))
            }
        }
        _ => {
            return Err(E::M(
                "not a fixed-point instruction (internal error)".into(),
            ))
        }
    };
    Ok(R::wrap(out))
}

/// The source element of each element of a data-movement result.
fn movement_index(st: &St, ins: &Instr, dst: Reg) -> Option<Vec<usize>> {
    let out = st.shape(dst);
    match ins {
        Instr::Transpose { a, perm, .. } => {
            let s = strides(&st.shape(*a));
            let src: Vec<usize> = perm.iter().map(|&p| s[p as usize]).collect();
            Some(gather_index(&out, &src))
        }
        Instr::Broadcast { a, .. } => {
            let from = st.shape(*a);
            let off = out.len() - from.len();
            let s = strides(&from);
            let src: Vec<usize> = (0..out.len())
                .map(|i| {
                    if i < off || from[i - off] == 1 {
                        0
                    } else {
                        s[i - off]
                    }
                })
                .collect();
            Some(gather_index(&out, &src))
        }
        Instr::Slice { a, axis, start, .. } => {
            let s = strides(&st.shape(*a));
            let base = *start as usize * s[*axis as usize];
            Some(
                gather_index(&out, &s)
                    .into_iter()
                    .map(|i| i + base)
                    .collect(),
            )
        }
        _ => None,
    }
}

fn exec(regs: &Regs, st: &mut St, ins: &Instr, dst: Reg) -> Res<Value> {
    let dt = st.ty(dst).clone();
    match ins {
        Instr::Input { port, .. } => {
            let v = st.src.input(*port as usize)?;
            check_value(&dt, &v, st.party.is_none())?;
            Ok(v)
        }
        Instr::Weight { port, .. } => {
            let v = st.src.weight(*port as usize)?;
            check_value(&dt, &v, st.party.is_none())?;
            Ok(v)
        }
        Instr::Transpose { a, .. }
        | Instr::Broadcast { a, .. }
        | Instr::Slice { a, .. }
        | Instr::Reshape { a, .. } => {
            let v = regs.get(*a)?;
            let moved = match movement_index(st, ins, dst) {
                Some(idx) => Cow::Owned(v.gather(&idx)),
                None => Cow::Borrowed(v),
            };
            // a result in another format than its operand (hand-written code)
            match (st.ty(*a).kind, dt.kind) {
                (Kind::Fixed { ring, frac }, Kind::Fixed { ring: ro, frac: fo })
                    if (ring, frac) != (ro, fo) =>
                {
                    by_ring!(ro, R => {
                        let x = conv_value::<R>(st, &moved, ring as u32, frac as u32, fo as u32)?;
                        Ok(R::wrap(x))
                    })
                }
                _ => Ok(moved.into_owned()),
            }
        }
        Instr::Not { a, .. } => match regs.get(*a)? {
            Value::PBool(v) => Ok(Value::PBool(v.iter().map(|b| !b).collect())),
            Value::SBool(s) => Ok(Value::SBool(s.not(st.id))),
            _ => Err(E::M("not of a number".into())),
        },
        Instr::Cmp { a, b, pred, .. } => {
            let (ring, fa) = st.fmt(*a)?;
            by_ring!(ring, R => compare::<R>(regs, st, *a, *b, fa, *pred, dt.numel() as usize))
        }
        Instr::Concat { srcs, .. } if dt.kind == Kind::Bool => {
            let vals: Vec<&Value> = srcs.iter().map(|r| regs.get(*r)).collect::<Res<_>>()?;
            concat_bools(st, &vals, srcs, ins, dst)
        }
        _ => match dt.kind {
            Kind::Fixed { ring, .. } => by_ring!(ring, R => exec_num::<R>(regs, st, ins, dst)),
            Kind::Bool => Err(E::M("a boolean result of a numeric instruction".into())),
        },
    }
}

fn concat_bools(st: &St, vals: &[&Value], srcs: &[Reg], ins: &Instr, dst: Reg) -> Res<Value> {
    let Instr::Concat { axis, .. } = ins else {
        unreachable!("called for concat")
    };
    let outer: usize = st.shape(dst)[..*axis as usize].iter().product();
    let inners: Vec<usize> = srcs
        .iter()
        .map(|r| st.shape(*r)[*axis as usize..].iter().product())
        .collect();
    let interleave = |vs: Vec<&[bool]>| -> Vec<bool> {
        let mut out = Vec::new();
        for o in 0..outer {
            for (v, inner) in vs.iter().zip(&inners) {
                out.extend_from_slice(&v[o * inner..(o + 1) * inner]);
            }
        }
        out
    };
    if vals.iter().all(|v| matches!(v, Value::PBool(_))) {
        let vs = vals
            .iter()
            .map(|v| match v {
                Value::PBool(b) => &b[..],
                _ => unreachable!("all public"),
            })
            .collect();
        return Ok(Value::PBool(interleave(vs)));
    }
    let id = st.id;
    let shares: Vec<BitShare> = vals
        .iter()
        .map(|v| match v {
            Value::SBool(s) => Ok(s.clone()),
            Value::PBool(b) => Ok(BitShare {
                a: if id == 0 {
                    b.clone()
                } else {
                    vec![false; b.len()]
                },
                b: if id == 2 {
                    b.clone()
                } else {
                    vec![false; b.len()]
                },
            }),
            _ => Err(E::M("concatenation of booleans and numbers".into())),
        })
        .collect::<Res<_>>()?;
    Ok(Value::SBool(BitShare {
        a: interleave(shares.iter().map(|s| &s.a[..]).collect()),
        b: interleave(shares.iter().map(|s| &s.b[..]).collect()),
    }))
}

/// Comparison of a and b in a's format: the sign of a difference.
fn compare<R: Rv>(
    regs: &Regs,
    st: &mut St,
    a: Reg,
    b: Reg,
    fa: u32,
    pred: u8,
    n: usize,
) -> Res<Value> {
    let x = arg::<R>(regs, st, a, fa)?;
    let y = arg::<R>(regs, st, b, fa)?;
    if let (Arg::P(p), Arg::P(q)) = (&x, &y) {
        let (p, q) = (expand(p, n), expand(q, n));
        return Ok(Value::PBool(
            (0..n)
                .map(|i| {
                    let (u, v) = (p[i].to_i64(), q[i].to_i64());
                    match pred {
                        0 => u < v,
                        1 => u > v,
                        2 => u <= v,
                        3 => u >= v,
                        4 => u == v,
                        _ => u != v,
                    }
                })
                .collect(),
        ));
    }
    let id = st.id;
    let share = |d: Arg<R>| match d {
        Arg::S(s) => s.into_owned(),
        Arg::P(p) => share_public(id, &p),
    };
    let d1 = share(sub_args(id, &x, &y, n)); // x − y
    let d2 = share(sub_args(id, &y, &x, n)); // y − x
    let p = st.party()?;
    let bits = match pred {
        0 => p.ltz(&d1)?,
        1 => p.ltz(&d2)?,
        2 => p.ltz(&d2)?.not(id),
        3 => p.ltz(&d1)?.not(id),
        _ => {
            // x ≠ y ⇔ (x < y) ⊕ (y < x): one decomposition of both
            let both = p.ltz(&concat_shares(&[&d1, &d2]))?;
            let (l, g) = split_bits(&both, n);
            let ne = l.xor(&g);
            if pred == 4 {
                ne.not(id)
            } else {
                ne
            }
        }
    };
    Ok(Value::SBool(bits))
}

/// Checks a loaded value against its register type; `clear` (the `fixed`
/// backend) holds secret registers as public values.
fn check_value(t: &RegType, v: &Value, clear: bool) -> Res<()> {
    let secret = t.secret && !clear;
    let ok = matches!(
        (secret, t.kind, v),
        (false, Kind::Fixed { ring: 32, .. }, Value::P32(_))
            | (false, Kind::Fixed { ring: 64, .. }, Value::P64(_))
            | (false, Kind::Bool, Value::PBool(_))
            | (true, Kind::Fixed { ring: 32, .. }, Value::S32(_))
            | (true, Kind::Fixed { ring: 64, .. }, Value::S64(_))
            | (true, Kind::Bool, Value::SBool(_))
    );
    if !ok {
        return Err(E::M(format!("the supplied value does not have type {t}")));
    }
    if v.len() as u64 != t.numel() {
        return Err(E::M(format!(
            "the supplied value has {} elements, {t} has {}",
            v.len(),
            t.numel()
        )));
    }
    Ok(())
}

/// Runs `prog` at one party (`party` is `None` for the cleartext `fixed`
/// backend). `progress(i, n)` is called after each instruction.
pub fn execute(
    prog: &Program,
    party: Option<&mut Party>,
    src: &dyn Source,
    progress: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> Result<Outcome, VmError> {
    let nregs = prog.regs.len();
    let mut last_use = vec![usize::MAX; nregs];
    for (i, ins) in prog.code.iter().enumerate() {
        for r in ins.regs().1 {
            last_use[r.0 as usize] = i;
        }
    }
    let mut regs = Regs {
        vals: vec![None; nregs],
        exact: vec![None; nregs],
        from_input: vec![None; nregs],
    };
    let id = party.as_ref().map(|p| p.id).unwrap_or(0);
    let mut st = St {
        prog,
        party,
        id,
        src,
    };
    let mut outputs: Vec<Option<Value>> = vec![None; prog.outputs.len()];
    let mut costs = Vec::with_capacity(prog.code.len());
    let total = prog.code.len();
    for (i, ins) in prog.code.iter().enumerate() {
        let t0 = Instant::now();
        let s0 = match st.party.as_deref_mut() {
            Some(p) => {
                p.comm().set_step(i as u64 + 1);
                p.comm().stats()
            }
            None => Stats::default(),
        };
        let wrap = |e: E| match e {
            E::P(source) => VmError::Protocol {
                index: i,
                mnemonic: ins.mnemonic(),
                source,
            },
            E::M(message) => VmError::Exec {
                index: i,
                mnemonic: ins.mnemonic(),
                message,
            },
        };
        let (dst, reads) = ins.regs();
        match (ins, dst) {
            (Instr::Output { port, a }, _) => {
                outputs[*port as usize] = Some(regs.get(*a).map_err(wrap)?.clone());
            }
            (Instr::Round {}, _) => {}
            (_, Some(d)) => {
                let v = exec(&regs, &mut st, ins, d).map_err(wrap)?;
                let di = d.0 as usize;
                if let Instr::Const { value, .. } = ins {
                    regs.exact[di] = Some(*value);
                }
                if let Instr::Input { port, .. } = ins {
                    regs.from_input[di] = Some(*port as usize);
                }
                if last_use[di] != usize::MAX {
                    regs.vals[di] = Some(v);
                }
            }
            (_, None) => {}
        }
        for r in reads {
            if last_use[r.0 as usize] == i {
                regs.vals[r.0 as usize] = None;
            }
        }
        let stats = match st.party.as_deref_mut() {
            Some(p) => p.comm().stats().since(&s0),
            None => Stats::default(),
        };
        costs.push(Cost {
            secs: t0.elapsed().as_secs_f64(),
            stats,
        });
        if let Some(f) = progress {
            f(i + 1, total);
        }
    }
    let outputs = outputs
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| {
                VmError::Setup(format!(
                    "output {:?} was never written",
                    prog.outputs[i].name
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Outcome { outputs, costs })
}
