//! Round batching: instructions of one kind that the schedule put in the same
//! round run as one protocol call (`classify`, `exec_batch`).

use super::*;

/// A class of instructions the VM runs as one protocol call when they are
/// independent (between two `round` markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
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
    Norm {
        k: u32,
    },
}

impl Key {
    pub(super) fn ring(self) -> u32 {
        match self {
            Key::Conv { ko, .. } => ko,
            Key::Mul { k }
            | Key::MatMul { k }
            | Key::Cmp { k }
            | Key::Sel { k }
            | Key::Norm { k } => k,
        }
    }
}

/// The batch class of an instruction, if it has one.
pub(super) fn classify(st: &St, regs: &Regs, fusable: &[bool], ins: &Instr) -> Option<Key> {
    let secret = |r: &Reg| st.ty(*r).secret && regs.exact[r.0 as usize].is_none();
    let fmt = |r: &Reg| st.fmt(*r).ok();
    match ins {
        Instr::Convert { a, .. } if secret(a) => conv_key(st, regs, ins),
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
        Instr::NormScale { dst, a, .. } if secret(a) => Some(Key::Norm { k: fmt(dst)?.0 }),
        // local, public, or (max, mean, lookup) one protocol call per
        // instruction
        Instr::Convert { .. }
        | Instr::Mul { .. }
        | Instr::MatMul { .. }
        | Instr::Cmp { .. }
        | Instr::Select { .. }
        | Instr::Input { .. }
        | Instr::Weight { .. }
        | Instr::Const { .. }
        | Instr::Iota { .. }
        | Instr::Rotary { .. }
        | Instr::Add { .. }
        | Instr::Sub { .. }
        | Instr::Neg { .. }
        | Instr::Rescale { .. }
        | Instr::Not { .. }
        | Instr::Transpose { .. }
        | Instr::Reshape { .. }
        | Instr::Slice { .. }
        | Instr::Concat { .. }
        | Instr::Broadcast { .. }
        | Instr::Sum { .. }
        | Instr::Max { .. }
        | Instr::Mean { .. }
        | Instr::NormScale { .. }
        | Instr::Embed { .. }
        | Instr::Output { .. }
        | Instr::Round {} => None,
    }
}

/// The class of a conversion call: its formats and whether it reads a fused
/// product's additive share (none for a local conversion).
pub(super) fn conv_key(st: &St, regs: &Regs, ins: &Instr) -> Option<Key> {
    let Instr::Convert { dst, a } = ins else {
        return None;
    };
    let ((ki, fi), (ko, fo)) = (st.fmt(*a).ok()?, st.fmt(*dst).ok()?);
    let additive = matches!(regs.get(*a).ok()?, Value::Z32(_) | Value::Z64(_));
    (fo < fi || ko > ki).then_some(Key::Conv {
        ki,
        ko,
        fi,
        fo,
        additive,
    })
}

impl Key {
    /// What runs as one protocol call: conversions of every format together
    /// ([`Party::convert_many`]), the other classes each on its own.
    pub(super) fn batch(self) -> Key {
        match self {
            Key::Conv { .. } => Key::Conv {
                ki: 0,
                ko: 0,
                fi: 0,
                fo: 0,
                additive: false,
            },
            k => k,
        }
    }
}

pub(super) fn split_share<R: Ring>(s: &AShare<R>, lens: &[usize]) -> Vec<AShare<R>> {
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

pub(super) fn secret_of<R: Rv>(v: &Value) -> Res<&AShare<R>> {
    match R::view(v) {
        Some(Arg::S(Cow::Borrowed(s))) => Ok(s),
        _ => Err(E::M("expected a secret value (internal error)".into())),
    }
}

/// Runs the members of one batch class (independent instructions) as one
/// protocol call; returns each member's result.
pub(super) fn exec_batch<R: Rv>(
    regs: &Regs,
    st: &mut St,
    key: Key,
    members: &[&Instr],
) -> Res<Vec<Value>> {
    let id = st.id;
    match key {
        Key::Conv { .. } => {
            let keys = members
                .iter()
                .map(|ins| {
                    conv_key(st, regs, ins).ok_or_else(|| {
                        E::M("a conversion batch holds a local conversion (internal error)".into())
                    })
                })
                .collect::<Res<Vec<Key>>>()?;
            conv_batch(st, regs, members, &keys)
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
        Key::Norm { .. } => norm_batch::<R>(regs, st, members),
        Key::Sel { .. } => {
            let mut conds = BitShare::default();
            for ins in members {
                let Instr::Select { c, .. } = ins else {
                    unreachable!("class Sel")
                };
                let Value::SBool(cs) = regs.get(*c)? else {
                    return Err(E::M("the condition is not a secret boolean".into()));
                };
                conds.a.extend_from_slice(&cs.a);
                conds.b.extend_from_slice(&cs.b);
            }
            // s·(x − y) + y: the B2A of every condition and the products
            // with secret differences in one round ([`Party::mul_bits`])
            let mut ys = Vec::new();
            let mut diffs = Vec::new();
            for ins in members {
                let Instr::Select { dst, a, b, .. } = ins else {
                    unreachable!("class Sel")
                };
                let (_, fd) = st.fmt(*dst)?;
                let n = st.ty(*dst).numel() as usize;
                let x = arg::<R>(regs, st, *a, fd)?;
                let y = arg::<R>(regs, st, *b, fd)?.into_owned();
                diffs.push(sub_args(id, &x, &y, n));
                ys.push((y, n));
            }
            let ops: Vec<Operand<'_, R>> = diffs
                .iter()
                .map(|d| match d {
                    Arg::P(v) => Operand::Public(v),
                    Arg::S(x) => Operand::Secret(x),
                })
                .collect();
            let prods = st.party()?.mul_bits(&conds, &ops)?;
            Ok(prods
                .into_iter()
                .zip(ys)
                .map(|(t, (y, n))| R::wrap(add_args(id, &Arg::S(Cow::Owned(t)), &y, n)))
                .collect())
        }
    }
}

/// Normalisation scales of several instructions in one sign call and one
/// B2A: for each, Σ_j [x ≥ 2^j]·(coef_j − coef_{j−1}) over the positions
/// where its coefficient changes ([`ditto_bytecode::NormKind::steps`]),
/// telescoping to the coefficient of x's highest bit (0 for x ≤ 0).
fn norm_batch<R: Rv>(regs: &Regs, st: &mut St, members: &[&Instr]) -> Res<Vec<Value>> {
    let id = st.id;
    let mut cat = AShare::<R>::zeros(0);
    let mut plan = Vec::new();
    for ins in members {
        let Instr::NormScale { dst, a, kind } = ins else {
            unreachable!("class Norm")
        };
        let (_, fd) = st.fmt(*dst)?;
        let x = secret_of::<R>(regs.get(*a)?)?;
        let m = x.len();
        // the positions the declared cost counts (NormKind::steps), with
        // each one's change of coefficient
        let coef = norm_coefficients::<R>(*kind, fd);
        let steps: Vec<(u32, R)> = kind
            .steps(R::BITS, fd)
            .into_iter()
            .map(|j| {
                let prev = if j == 0 {
                    R::ZERO
                } else {
                    coef[j as usize - 1]
                };
                (j, coef[j as usize].sub(prev))
            })
            .collect();
        for &(j, _) in &steps {
            let d = x.add_public(id, &vec![R::ONE.shl(j).neg(); m]);
            cat.a.extend(d.a);
            cat.b.extend(d.b);
        }
        plan.push((m, steps));
    }
    let p = st.party()?;
    let lt = p.ltz(&cat)?;
    let ar = p.b2a::<R>(&lt)?;
    // Σ_j d_j − Σ_j d_j·[x < 2^j]
    let mut at = 0;
    let mut out = Vec::with_capacity(plan.len());
    for (m, steps) in plan {
        let mut y = AShare::<R>::zeros(m);
        let mut total = R::ZERO;
        for (_, d) in steps {
            total = total.add(d);
            for i in 0..m {
                y.a[i] = y.a[i].sub(ar.a[at + i].mul(d));
                y.b[i] = y.b[i].sub(ar.b[at + i].mul(d));
            }
            at += m;
        }
        out.push(R::secret(y.add_public(id, &vec![total; m])));
    }
    Ok(out)
}

/// The coefficient of each highest-bit position 0..k−2 of a normalisation
/// in a format with `frac` fraction bits (the sign bit gives 0).
pub(super) fn norm_coefficients<R: Ring>(kind: ditto_bytecode::NormKind, frac: u32) -> Vec<R> {
    (0..R::BITS - 1)
        .map(|j| encode::<R>(kind.scale(j as i32 - frac as i32), frac))
        .collect()
}
