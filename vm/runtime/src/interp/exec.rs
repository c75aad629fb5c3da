//! One instruction at a time: arithmetic in a ring (`exec_num`), data
//! movement, booleans, comparisons in the clear, and the type check of
//! every result.

use super::*;

/// Executes one fixed-point instruction whose result ring is R.
pub(super) fn exec_num<R: Rv>(regs: &Regs, st: &mut St, ins: &Instr, dst: Reg) -> Res<Value> {
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
            if regs.get(*a)?.is_secret() {
                // the batched path with one member
                return single(exec_batch::<R>(regs, st, Key::Norm { k: R::BITS }, &[ins])?);
            }
            let x = arg::<R>(regs, st, *a, fd)?;
            let coef = norm_coefficients::<R>(*kind, fd);
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
                Arg::S(_) => unreachable!("secret inputs take the batched path"),
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
        Instr::Rotary {
            part,
            theta,
            offset,
            ..
        } => {
            let sh = st.shape(dst);
            let (rows, width) = (sh[0], sh[1]);
            let table =
                ditto_bytecode::fixed::rotary_table(*part, rows, width, *theta, *offset as usize);
            Arg::P(Cow::Owned(
                table.into_iter().map(|v| encode::<R>(v, fd)).collect(),
            ))
        }
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
        // handled by `exec` before it reaches the ring arithmetic
        Instr::Input { .. }
        | Instr::Weight { .. }
        | Instr::Output { .. }
        | Instr::Round {}
        | Instr::Transpose { .. }
        | Instr::Broadcast { .. }
        | Instr::Slice { .. }
        | Instr::Reshape { .. }
        | Instr::Rescale { .. }
        | Instr::Not { .. }
        | Instr::Cmp { .. } => {
            return Err(E::M(format!(
                "`{}` is not ring arithmetic (internal error)",
                ins.mnemonic()
            )))
        }
    };
    Ok(R::wrap(out))
}

/// A data-movement result as a strided view of its operand: the source
/// strides of each output axis and the offset of the first element.
pub(super) fn movement_strides(st: &St, ins: &Instr) -> Option<(Vec<usize>, usize)> {
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

pub(super) fn exec(regs: &Regs, st: &mut St, ins: &Instr, dst: Reg) -> Res<Value> {
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

pub(super) fn concat_bools(
    st: &St,
    vals: &[&Value],
    srcs: &[Reg],
    ins: &Instr,
    dst: Reg,
) -> Res<Value> {
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
pub(super) fn compare<R: Rv>(regs: &Regs, st: &mut St, ins: &Instr) -> Res<Value> {
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
pub(super) fn single(mut v: Vec<Value>) -> Res<Value> {
    v.pop()
        .ok_or_else(|| E::M("a batch returned no result (internal error)".into()))
}

/// Checks a loaded value against its register type; `clear` (the `fixed`
/// backend) holds secret registers as public values.
pub(super) fn check_value(t: &RegType, v: &Value, clear: bool) -> Res<()> {
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
