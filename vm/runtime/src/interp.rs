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
use crate::value::{encode, expand, expand_share, share_public, strides, Arg, Rv, Value};
use ditto_bytecode::{Instr, Kind, Pred, Program, Reg, RegType};
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
    /// The current product's only reader is a conversion call: leave it as
    /// an additive share for [`Party::convert_additive`] (no reshare round).
    additive_out: bool,
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

/// The shift of a truncation from `from` to `to` fraction bits, which the
/// conversion protocol allows up to k_in − 2.
fn trunc_bits<Ri: Ring>(from: u32, to: u32) -> Res<u32> {
    let m = from - to;
    if m + 2 > Ri::BITS {
        return Err(E::M(format!(
            "a truncation by {m} bits exceeds the {}-bit ring",
            Ri::BITS
        )));
    }
    Ok(m)
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
                let m = trunc_bits::<Ri>(from, to)?;
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

/// The conversion of an additive share of a product (see
/// [`Party::convert_additive`]) from `from` to `to` fraction bits.
fn convert_z<Ri: Rv, Ro: Rv>(st: &mut St, z: &[Ri], from: u32, to: u32) -> Res<AShare<Ro>> {
    if to < from {
        let m = trunc_bits::<Ri>(from, to)?;
        Ok(st.party()?.convert_additive::<Ri, Ro>(z, m)?)
    } else {
        let y = st.party()?.convert_additive::<Ri, Ro>(z, 0)?;
        Ok(if to > from {
            y.mul_scalar(Ro::ONE.shl(to - from))
        } else {
            y
        })
    }
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

/// The shape of a (batched) matrix product: `batch` products of m×k by k×n,
/// the right-hand side shared by all when `shared`.
#[derive(Clone, Copy)]
struct MatDims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    shared: bool,
}

impl MatDims {
    /// The product of registers `a` and `b` (MatMul's operand rule).
    fn of(st: &St, a: Reg, b: Reg) -> MatDims {
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

fn matmul_args<R: Rv>(
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

/// Executes one fixed-point instruction whose result ring is R.
fn exec_num<R: Rv>(regs: &Regs, st: &mut St, ins: &Instr, dst: Reg) -> Res<Value> {
    let (_, fd) = st.fmt(dst)?;
    let n = st.ty(dst).numel() as usize;
    let id = st.id;
    let out: Arg<'static, R> = match ins {
        Instr::Add { a, b, .. } | Instr::Sub { a, b, .. }
            if R::additive(regs.get(*a)?).is_some() || R::additive(regs.get(*b)?).is_some() =>
        {
            // a fused product's additive share plus a share or a public
            // value stays an additive share (party i adds its component x_i;
            // party 0 adds a public value): local, converted by the reader
            let mut part = |r: Reg| -> Res<Vec<R>> {
                if let Some(z) = R::additive(regs.get(r)?) {
                    return Ok(z.to_vec());
                }
                Ok(match arg::<R>(regs, st, r, fd)? {
                    Arg::S(s) => expand_share(&s, n).a.clone(),
                    Arg::P(p) if id == 0 => expand(&p, n).into_owned(),
                    Arg::P(_) => vec![R::ZERO; n],
                })
            };
            let (x, y) = (part(*a)?, part(*b)?);
            let z = if matches!(ins, Instr::Add { .. }) {
                kernels::add(&x, &y)
            } else {
                kernels::sub(&x, &y)
            };
            return Ok(R::wrap_additive(z));
        }
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
            if let (true, Arg::S(xs), Arg::S(ys)) = (st.additive_out && fa + fb == fd, &x, &y) {
                // fused with the conversion that reads it: no reshare here
                let p = st.party()?;
                let z = if matches!(ins, Instr::Mul { .. }) {
                    p.mul_local(&expand_share(xs, n), &expand_share(ys, n))
                } else {
                    let d = MatDims::of(st, *a, *b);
                    let p = st.party()?;
                    p.matmul_local(xs, ys, d.batch, d.m, d.k, d.n, d.shared)
                };
                return Ok(R::wrap_additive(z));
            }
            let z = if matches!(ins, Instr::Mul { .. }) {
                mul_args(st, &x, &y, n)?
            } else {
                let d = MatDims::of(st, *a, *b);
                matmul_args(st, x, y, d)?
            };
            refmt(st, z, fa + fb, fd)?
        }
        Instr::Select { c, a, b, .. } => {
            if let Value::SBool(_) = regs.get(*c)? {
                // a secret condition: the batched path with one member
                return single(exec_batch::<R>(regs, st, Key::Sel { k: R::BITS }, &[ins])?);
            }
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
                .map(|j| encode::<R>(kind.scale(j as i32 - fd as i32), fd))
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
                    let s = st.shape(*ids)[0];
                    let digits = crate::source::Digit::of_lookup(rows, d);
                    let mut oh = vec![];
                    for dg in &digits {
                        let v = st.src.onehot(port, *dg, R::BITS as u8)?;
                        let x = R::view(&v)
                            .ok_or_else(|| E::M("one-hot of another ring".into()))?
                            .into_owned();
                        oh.push(x);
                    }
                    let dims = |m, k, n| MatDims {
                        batch: 1,
                        m,
                        k,
                        n,
                        shared: true,
                    };
                    match (oh.pop(), oh.pop()) {
                        // one one-hot over the whole table
                        (Some(x), None) => matmul_args(st, x, tab, dims(s, rows, d))?,
                        // id = h·A + l: the table read in place as the
                        // [B, A·d] matrix of its rows (zero past its end),
                        // U = onehot(h)·T, then each token's onehot(l) row
                        // times its [A, d] block of U
                        (Some(low), Some(high)) => {
                            let (a, b) = (digits[1].rows, digits[0].rows);
                            // a table of fewer than A·B rows is a prefix
                            // of that matrix (kernels::matmul)
                            let u = matmul_args(st, high, tab, dims(s, b, a * d))?;
                            matmul_args(
                                st,
                                low,
                                u,
                                MatDims {
                                    batch: s,
                                    m: 1,
                                    k: a,
                                    n: d,
                                    shared: false,
                                },
                            )?
                        }
                        _ => return Err(E::M("a lookup without one-hots (internal error)".into())),
                    }
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

/// A data-movement result as a strided view of its operand: the source
/// strides of each output axis and the offset of the first element.
fn movement_strides(st: &St, ins: &Instr) -> Option<(Vec<usize>, usize)> {
    match ins {
        Instr::Transpose { a, perm, .. } => {
            let s = strides(&st.shape(*a));
            Some((perm.iter().map(|&p| s[p as usize]).collect(), 0))
        }
        Instr::Broadcast { a, dst } => {
            let shape = st.shape(*dst);
            let from = st.shape(*a);
            let off = shape.len() - from.len();
            let s = strides(&from);
            let src = (0..shape.len())
                .map(|i| {
                    if i < off || from[i - off] == 1 {
                        0
                    } else {
                        s[i - off]
                    }
                })
                .collect();
            Some((src, 0))
        }
        Instr::Slice { a, axis, start, .. } => {
            let s = strides(&st.shape(*a));
            let base = *start as usize * s[*axis as usize];
            Some((s, base))
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
            let shape = st.shape(*a);
            let rank = shape.len();
            let swap_last2 = match ins {
                Instr::Transpose { perm, .. } => {
                    rank >= 2
                        && perm[..rank - 2]
                            .iter()
                            .enumerate()
                            .all(|(i, &p)| p as usize == i)
                        && perm[rank - 2] as usize == rank - 1
                        && perm[rank - 1] as usize == rank - 2
                }
                _ => false,
            };
            let moved = if swap_last2 {
                let batch = shape[..rank - 2].iter().product();
                Cow::Owned(v.transpose_last2(batch, shape[rank - 2], shape[rank - 1]))
            } else {
                match movement_strides(st, ins) {
                    Some((src, base)) => Cow::Owned(v.strided(&st.shape(dst), &src, base)),
                    None => Cow::Borrowed(v),
                }
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
        // the words stay; only the register type (its fraction bits) differs
        Instr::Rescale { a, .. } => Ok(regs.get(*a)?.clone()),
        Instr::Not { a, .. } => match regs.get(*a)? {
            Value::PBool(v) => Ok(Value::PBool(v.iter().map(|b| !b).collect())),
            Value::SBool(s) => Ok(Value::SBool(s.not(st.id))),
            _ => Err(E::M("not of a number".into())),
        },
        Instr::Cmp { a, .. } => {
            let (ring, _) = st.fmt(*a)?;
            by_ring!(ring, R => compare::<R>(regs, st, ins))
        }
        Instr::Convert { a, .. } if matches!(regs.get(*a)?, Value::Z32(_) | Value::Z64(_)) => {
            let ((ki, fi), (ko, fo)) = (st.fmt(*a)?, st.fmt(dst)?);
            let v = regs.get(*a)?;
            by_ring!(ko, Ro => {
                let y = if ki == 32 {
                    convert_z::<u32, Ro>(st, u32::additive(v).expect("checked"), fi, fo)?
                } else {
                    convert_z::<u64, Ro>(st, u64::additive(v).expect("checked"), fi, fo)?
                };
                Ok(Ro::secret(y))
            })
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

/// Comparison of a and b in a's format: in the clear when both are public,
/// otherwise the sign of a difference (the batched path with one member).
fn compare<R: Rv>(regs: &Regs, st: &mut St, ins: &Instr) -> Res<Value> {
    let Instr::Cmp { dst, a, b, pred } = ins else {
        unreachable!("called for cmp")
    };
    let public = |r: &Reg| -> Res<bool> { Ok(!regs.get(*r)?.is_secret()) };
    if !(public(a)? && public(b)?) {
        return single(exec_batch::<R>(regs, st, Key::Cmp { k: R::BITS }, &[ins])?);
    }
    let n = st.ty(*dst).numel() as usize;
    let (_, fa) = st.fmt(*a)?;
    let x = arg::<R>(regs, st, *a, fa)?;
    let y = arg::<R>(regs, st, *b, fa)?;
    let (Arg::P(p), Arg::P(q)) = (&x, &y) else {
        unreachable!("public operands stay public")
    };
    let (p, q) = (expand(p, n), expand(q, n));
    Ok(Value::PBool(
        (0..n)
            .map(|i| pred.holds(p[i].to_i64(), q[i].to_i64()))
            .collect(),
    ))
}

/// The only result of a one-member batch.
fn single(mut v: Vec<Value>) -> Res<Value> {
    v.pop()
        .ok_or_else(|| E::M("a batch returned no result (internal error)".into()))
}

/// Checks a loaded value against its register type; `clear` (the `fixed`
/// backend) holds secret registers as public values.
fn check_value(t: &RegType, v: &Value, clear: bool) -> Res<()> {
    value_fits(t, v, clear).map_err(E::M)
}

/// Whether `v` can be a value of type `t` (kind, secrecy, ring, element
/// count); `clear`: the fixed backend, where secret types hold public values.
pub(crate) fn value_fits(t: &RegType, v: &Value, clear: bool) -> Result<(), String> {
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
        return Err(format!("the supplied value does not have type {t}"));
    }
    if v.len() as u64 != t.numel() {
        return Err(format!(
            "the supplied value has {} elements, {t} has {}",
            v.len(),
            t.numel()
        ));
    }
    Ok(())
}

/// A class of instructions the VM runs as one protocol call when they are
/// independent (between two `round` markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Conv {
        ki: u32,
        ko: u32,
        fi: u32,
        fo: u32,
        additive: bool,
    },
    Mul {
        k: u32,
    },
    MatMul {
        k: u32,
    },
    Cmp {
        k: u32,
    },
    Sel {
        k: u32,
    },
}

impl Key {
    fn ring(self) -> u32 {
        match self {
            Key::Conv { ko, .. } => ko,
            Key::Mul { k } | Key::MatMul { k } | Key::Cmp { k } | Key::Sel { k } => k,
        }
    }
}

/// The batch class of an instruction, if it has one.
fn classify(st: &St, regs: &Regs, fusable: &[bool], ins: &Instr) -> Option<Key> {
    let secret = |r: &Reg| st.ty(*r).secret && regs.exact[r.0 as usize].is_none();
    let fmt = |r: &Reg| st.fmt(*r).ok();
    match ins {
        Instr::Convert { dst, a } if secret(a) => {
            let ((ki, fi), (ko, fo)) = (fmt(a)?, fmt(dst)?);
            let additive = matches!(regs.get(*a).ok()?, Value::Z32(_) | Value::Z64(_));
            (fo < fi || ko > ki).then_some(Key::Conv {
                ki,
                ko,
                fi,
                fo,
                additive,
            })
        }
        Instr::Mul { dst, .. } | Instr::MatMul { dst, .. } if fusable[dst.0 as usize] => None,
        Instr::Mul { dst, a, b } | Instr::MatMul { dst, a, b } if secret(a) && secret(b) => {
            let ((ka, fa), (kb, fb), (kd, fd)) = (fmt(a)?, fmt(b)?, fmt(dst)?);
            let fits = ka == kd && kb == kd && fa + fb == fd;
            match ins {
                Instr::Mul { .. } => (fits
                    && st.ty(*a).shape == st.ty(*dst).shape
                    && st.ty(*b).shape == st.ty(*dst).shape)
                    .then_some(Key::Mul { k: kd }),
                _ => fits.then_some(Key::MatMul { k: kd }),
            }
        }
        Instr::Cmp { a, b, .. } if secret(a) || secret(b) => {
            let (ka, fa) = fmt(a)?;
            (!secret(b) || fmt(b)? == (ka, fa)).then_some(Key::Cmp { k: ka })
        }
        Instr::Select { dst, c, .. } if st.ty(*c).secret => Some(Key::Sel { k: fmt(dst)?.0 }),
        _ => None,
    }
}

fn split_share<R: Ring>(s: &AShare<R>, lens: &[usize]) -> Vec<AShare<R>> {
    let mut out = Vec::with_capacity(lens.len());
    let mut off = 0;
    for &l in lens {
        out.push(AShare {
            a: s.a[off..off + l].to_vec(),
            b: s.b[off..off + l].to_vec(),
        });
        off += l;
    }
    out
}

fn secret_of<R: Rv>(v: &Value) -> Res<&AShare<R>> {
    match R::view(v) {
        Some(Arg::S(Cow::Borrowed(s))) => Ok(s),
        _ => Err(E::M("expected a secret value (internal error)".into())),
    }
}

/// Runs the members of one batch class (independent instructions) as one
/// protocol call; returns each member's result.
fn exec_batch<R: Rv>(regs: &Regs, st: &mut St, key: Key, members: &[&Instr]) -> Res<Vec<Value>> {
    let id = st.id;
    match key {
        Key::Conv {
            ki,
            fi,
            fo,
            additive,
            ..
        } => {
            if ki == 32 {
                conv_batch::<u32, R>(st, regs, members, fi, fo, additive)
            } else {
                conv_batch::<u64, R>(st, regs, members, fi, fo, additive)
            }
        }
        Key::Mul { .. } => {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for ins in members {
                let Instr::Mul { a, b, .. } = ins else {
                    unreachable!("class Mul")
                };
                xs.push(secret_of::<R>(regs.get(*a)?)?);
                ys.push(secret_of::<R>(regs.get(*b)?)?);
            }
            let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
            let z = st.party()?.mul(&concat_shares(&xs), &concat_shares(&ys))?;
            Ok(split_share(&z, &lens).into_iter().map(R::secret).collect())
        }
        Key::MatMul { .. } => {
            let mut items = Vec::new();
            for ins in members {
                let Instr::MatMul { a, b, .. } = ins else {
                    unreachable!("class MatMul")
                };
                let d = MatDims::of(st, *a, *b);
                items.push((
                    secret_of::<R>(regs.get(*a)?)?,
                    secret_of::<R>(regs.get(*b)?)?,
                    d.batch,
                    d.m,
                    d.k,
                    d.n,
                    d.shared,
                ));
            }
            let out = st.party()?.matmul_many(&items)?;
            Ok(out.into_iter().map(R::secret).collect())
        }
        Key::Cmp { .. } => {
            // the differences every member needs, decomposed in one call
            let mut pieces: Vec<AShare<R>> = Vec::new();
            let mut plan = Vec::new();
            for ins in members {
                let Instr::Cmp { dst, a, b, pred } = ins else {
                    unreachable!("class Cmp")
                };
                let n = st.ty(*dst).numel() as usize;
                let (_, fa) = st.fmt(*a)?;
                let x = arg::<R>(regs, st, *a, fa)?;
                let y = arg::<R>(regs, st, *b, fa)?;
                let share = |d: Arg<R>| match d {
                    Arg::S(s) => s.into_owned(),
                    Arg::P(p) => share_public(id, &p),
                };
                let first = pieces.len();
                // x < y is the sign of x − y; ≥ its negation; equality
                // needs both signs
                match pred {
                    Pred::Lt | Pred::Ge => pieces.push(share(sub_args(id, &x, &y, n))),
                    Pred::Gt | Pred::Le => pieces.push(share(sub_args(id, &y, &x, n))),
                    Pred::Eq | Pred::Ne => {
                        pieces.push(share(sub_args(id, &x, &y, n)));
                        pieces.push(share(sub_args(id, &y, &x, n)));
                    }
                }
                plan.push((first, *pred, n));
            }
            let lens: Vec<usize> = pieces.iter().map(|p| p.len()).collect();
            let refs: Vec<&AShare<R>> = pieces.iter().collect();
            let bits = st.party()?.ltz(&concat_shares(&refs))?;
            let mut parts = Vec::with_capacity(lens.len());
            let mut rest = bits;
            for &l in &lens {
                let (head, tail) = split_bits(&rest, l);
                parts.push(head);
                rest = tail;
            }
            Ok(plan
                .into_iter()
                .map(|(first, pred, _)| {
                    let b = match pred {
                        Pred::Lt | Pred::Gt => parts[first].clone(),
                        Pred::Le | Pred::Ge => parts[first].not(id),
                        Pred::Ne => parts[first].xor(&parts[first + 1]),
                        Pred::Eq => parts[first].xor(&parts[first + 1]).not(id),
                    };
                    Value::SBool(b)
                })
                .collect())
        }
        Key::Sel { .. } => {
            let mut conds = BitShare::default();
            let mut lens = Vec::new();
            for ins in members {
                let Instr::Select { c, .. } = ins else {
                    unreachable!("class Sel")
                };
                let Value::SBool(cs) = regs.get(*c)? else {
                    return Err(E::M("the condition is not a secret boolean".into()));
                };
                conds.a.extend_from_slice(&cs.a);
                conds.b.extend_from_slice(&cs.b);
                lens.push(cs.len());
            }
            let s_all = st.party()?.b2a::<R>(&conds)?;
            let s = split_share(&s_all, &lens);
            // products: public differences locally, secret ones in one call
            let mut ys = Vec::new();
            let mut prods: Vec<Option<AShare<R>>> = Vec::new();
            let mut lhs = Vec::new();
            let mut rhs = Vec::new();
            let mut which = Vec::new();
            for (i, ins) in members.iter().enumerate() {
                let Instr::Select { dst, a, b, .. } = ins else {
                    unreachable!("class Sel")
                };
                let (_, fd) = st.fmt(*dst)?;
                let n = st.ty(*dst).numel() as usize;
                let x = arg::<R>(regs, st, *a, fd)?;
                let y = arg::<R>(regs, st, *b, fd)?.into_owned();
                match sub_args(id, &x, &y, n) {
                    Arg::P(d) => prods.push(Some(s[i].mul_public(&d))),
                    Arg::S(d) => {
                        prods.push(None);
                        lhs.push(s[i].clone());
                        rhs.push(d.into_owned());
                        which.push(i);
                    }
                }
                ys.push((y, n));
            }
            if !lhs.is_empty() {
                let l: Vec<&AShare<R>> = lhs.iter().collect();
                let r: Vec<&AShare<R>> = rhs.iter().collect();
                let lens: Vec<usize> = lhs.iter().map(|x| x.len()).collect();
                let z = st.party()?.mul(&concat_shares(&l), &concat_shares(&r))?;
                for (i, t) in which.into_iter().zip(split_share(&z, &lens)) {
                    prods[i] = Some(t);
                }
            }
            Ok(prods
                .into_iter()
                .zip(ys)
                .map(|(t, (y, n))| {
                    let t = t.expect("every product computed");
                    R::wrap(add_args(id, &Arg::S(Cow::Owned(t)), &y, n))
                })
                .collect())
        }
    }
}

fn conv_batch<Ri: Rv, Ro: Rv>(
    st: &mut St,
    regs: &Regs,
    members: &[&Instr],
    fi: u32,
    fo: u32,
    additive: bool,
) -> Res<Vec<Value>> {
    if additive {
        let mut z: Vec<Ri> = Vec::new();
        let mut lens = Vec::new();
        for ins in members {
            let Instr::Convert { a, .. } = ins else {
                unreachable!("class Conv")
            };
            let zi = Ri::additive(regs.get(*a)?)
                .ok_or_else(|| E::M("expected an additive share (internal error)".into()))?;
            lens.push(zi.len());
            z.extend_from_slice(zi);
        }
        let y = convert_z::<Ri, Ro>(st, &z, fi, fo)?;
        return Ok(split_share(&y, &lens).into_iter().map(Ro::secret).collect());
    }
    let mut xs = Vec::new();
    for ins in members {
        let Instr::Convert { a, .. } = ins else {
            unreachable!("class Conv")
        };
        xs.push(secret_of::<Ri>(regs.get(*a)?)?);
    }
    let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
    let all = concat_shares(&xs);
    match convert::<Ri, Ro>(st, Arg::S(Cow::Owned(all)), fi, fo)? {
        Arg::S(z) => Ok(split_share(&z, &lens).into_iter().map(Ro::secret).collect()),
        Arg::P(_) => Err(E::M("a conversion of shares gave a public value".into())),
    }
}

/// Runs `prog` at one party (`party` is `None` for the cleartext `fixed`
/// backend). `progress(i, n)` is called as instructions complete.
///
/// Instructions between two `round` markers that do not read each other's
/// results run as groups: those of one batch class (conversions with the
/// same formats, products in one ring, comparisons in one ring, selects on
/// secret conditions in one ring) as one protocol call over their
/// concatenated operands, so they share rounds. A group whose members depend
/// on each other runs one instruction at a time.
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
        additive_out: false,
    };
    // products whose only reader is a conversion call (directly, or through
    // a rescale and/or a sum, each read only by the next) are fused with it
    let mut reads = vec![0usize; nregs];
    let mut reader = vec![usize::MAX; nregs];
    let mut writer = vec![usize::MAX; nregs];
    for (i, ins) in prog.code.iter().enumerate() {
        let (d, rs) = ins.regs();
        for r in rs {
            reads[r.0 as usize] += 1;
            reader[r.0 as usize] = i;
        }
        if let Some(d) = d {
            writer[d.0 as usize] = i;
        }
    }
    let fusable: Vec<bool> = (0..nregs)
        .map(|r| {
            if st.party.is_none() || reads[r] != 1 {
                return false;
            }
            let t = |x: &Reg| &prog.regs[x.0 as usize];
            // the single reader of `ins`'s result
            let next = |ins: &Instr| {
                let d = ins.regs().0?.0 as usize;
                (reads[d] == 1).then(|| prog.code.get(reader[d])).flatten()
            };
            let mut conv = prog.code.get(reader[r]);
            let mut from = Reg(r as u32);
            if let Some(i @ Instr::Rescale { dst, .. }) = conv {
                from = *dst;
                conv = next(i);
            }
            // sums in the same format and shape (the other operand is a
            // share, a public value or another fused product)
            while let Some(i @ (Instr::Add { dst, .. } | Instr::Sub { dst, .. })) = conv {
                if t(dst).kind != t(&from).kind || t(dst).shape != t(&from).shape {
                    return false;
                }
                conv = next(i);
            }
            let Some(Instr::Convert { dst, a }) = conv else {
                return false;
            };
            let t = |x: &Reg| &prog.regs[x.0 as usize];
            let (Kind::Fixed { ring: ki, frac: fi }, Kind::Fixed { ring: ko, frac: fo }) =
                (t(a).kind, t(dst).kind)
            else {
                return false;
            };
            let protocol = t(a).secret && (fo < fi || ko > ki);
            protocol
                && match prog.code.get(writer[r]) {
                    Some(Instr::Mul { a, b, .. }) | Some(Instr::MatMul { a, b, .. }) => {
                        t(a).secret && t(b).secret
                    }
                    _ => false,
                }
        })
        .collect();
    let mut outputs: Vec<Option<Value>> = vec![None; prog.outputs.len()];
    let total = prog.code.len();
    let mut costs = vec![Cost::default(); total];
    let wrap_at = |i: usize, e: E| match e {
        E::P(source) => VmError::Protocol {
            index: i,
            mnemonic: prog.code[i].mnemonic(),
            source,
        },
        E::M(message) => VmError::Exec {
            index: i,
            mnemonic: prog.code[i].mnemonic(),
            message,
        },
    };
    let stats_now = |st: &mut St| match st.party.as_deref_mut() {
        Some(p) => p.comm().stats(),
        None => Stats::default(),
    };
    let mut i = 0;
    while i < total {
        let end = (i..total)
            .find(|&t| matches!(prog.code[t], Instr::Round {}))
            .unwrap_or(total);
        let group: Vec<usize> = (i..end).collect();
        // batch only independent groups of more than one instruction
        let mut written = std::collections::HashSet::new();
        let mut independent = st.party.is_some() && group.len() > 1;
        for &t in &group {
            let (d, reads) = prog.code[t].regs();
            if reads.iter().any(|r| written.contains(r)) {
                independent = false;
            }
            if let Some(d) = d {
                written.insert(d);
            }
        }
        let mut done = vec![false; group.len()];
        if independent {
            // classes in order of first appearance
            let keys: Vec<Option<Key>> = group
                .iter()
                .map(|&t| classify(&st, &regs, &fusable, &prog.code[t]))
                .collect();
            let mut seen: Vec<Key> = Vec::new();
            for k in keys.iter().flatten() {
                if !seen.contains(k) {
                    seen.push(*k);
                }
            }
            for key in seen {
                let idx: Vec<usize> = (0..group.len()).filter(|&g| keys[g] == Some(key)).collect();
                if idx.len() < 2 {
                    continue;
                }
                let members: Vec<&Instr> = idx.iter().map(|&g| &prog.code[group[g]]).collect();
                let first = group[idx[0]];
                if let Some(p) = st.party.as_deref_mut() {
                    p.comm().set_step(first as u64 + 1);
                }
                let t0 = Instant::now();
                let s0 = stats_now(&mut st);
                let vals =
                    by_ring!(key.ring(), R => exec_batch::<R>(&regs, &mut st, key, &members))
                        .map_err(|e| wrap_at(first, e))?;
                let delta = stats_now(&mut st).since(&s0);
                let secs = t0.elapsed().as_secs_f64();
                // attribute the call's cost by element count; rounds to the first
                let sizes: Vec<u64> = idx
                    .iter()
                    .map(|&g| {
                        let d = prog.code[group[g]].regs().0.expect("a result");
                        prog.regs[d.0 as usize].numel()
                    })
                    .collect();
                let sum: u64 = sizes.iter().sum::<u64>().max(1);
                let mut given = Stats::default();
                for (j, (&g, v)) in idx.iter().zip(vals).enumerate() {
                    let t = group[g];
                    let share = |x: u64| x * sizes[j] / sum;
                    let mut c = Stats {
                        bytes_online: share(delta.bytes_online),
                        bytes_offline: share(delta.bytes_offline),
                        rounds_online: 0,
                        rounds_offline: 0,
                        messages: 0,
                        bytes_to: delta.bytes_to.map(share),
                    };
                    if j == 0 {
                        c.rounds_online = delta.rounds_online;
                        c.rounds_offline = delta.rounds_offline;
                        c.messages = delta.messages;
                    }
                    if j + 1 == idx.len() {
                        // the remainder of the integer division
                        c.bytes_online = delta.bytes_online - given.bytes_online;
                        c.bytes_offline = delta.bytes_offline - given.bytes_offline;
                        c.bytes_to = [0, 1, 2].map(|p| delta.bytes_to[p] - given.bytes_to[p]);
                    }
                    given = given.add(&c);
                    costs[t] = Cost {
                        secs: secs * sizes[j] as f64 / sum as f64,
                        stats: c,
                    };
                    let d = prog.code[t].regs().0.expect("a result");
                    regs.vals[d.0 as usize] = Some(v);
                    done[g] = true;
                }
            }
        }
        for (g, &t) in group.iter().enumerate() {
            if done[g] {
                continue;
            }
            let ins = &prog.code[t];
            let t0 = Instant::now();
            if let Some(p) = st.party.as_deref_mut() {
                p.comm().set_step(t as u64 + 1);
            }
            let s0 = stats_now(&mut st);
            let (dst, _) = ins.regs();
            st.additive_out = dst.is_some_and(|d| fusable[d.0 as usize]);
            match (ins, dst) {
                (Instr::Output { port, a }, _) => {
                    outputs[*port as usize] =
                        Some(regs.get(*a).map_err(|e| wrap_at(t, e))?.clone());
                }
                (_, Some(d)) => {
                    let v = exec(&regs, &mut st, ins, d).map_err(|e| wrap_at(t, e))?;
                    let di = d.0 as usize;
                    if let Instr::Const { value, .. } = ins {
                        regs.exact[di] = Some(*value);
                    }
                    if let Instr::Input { port, .. } = ins {
                        regs.from_input[di] = Some(*port as usize);
                    }
                    regs.vals[di] = Some(v);
                }
                (_, None) => {}
            }
            costs[t] = Cost {
                secs: t0.elapsed().as_secs_f64(),
                stats: stats_now(&mut st).since(&s0),
            };
            if !independent {
                // free as we go: later members of a dependent group may
                // still need what earlier ones read, which last_use covers
                for r in ins.regs().1 {
                    if last_use[r.0 as usize] == t {
                        regs.vals[r.0 as usize] = None;
                    }
                }
            }
        }
        // free the registers read for the last time in this group, and
        // results nobody reads
        for &t in &group {
            let (d, reads) = prog.code[t].regs();
            for r in reads {
                if last_use[r.0 as usize] == t {
                    regs.vals[r.0 as usize] = None;
                }
            }
            if let Some(d) = d {
                if last_use[d.0 as usize] == usize::MAX {
                    regs.vals[d.0 as usize] = None;
                }
            }
        }
        if let Some(f) = progress {
            f(end.min(total), total);
        }
        i = end + 1;
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
