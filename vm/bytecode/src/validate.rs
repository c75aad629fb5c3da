//! Validation of a decoded program, so the VM can execute it without
//! checking anything again. Invariants:
//!
//! 1. every register index is in range; every port names a register;
//! 2. registers are written once, and read only after they are written;
//! 3. `input`/`weight` write their port's register; `output` reads its port's;
//! 4. every instruction's operand and result types fit its rule: element
//!    kinds (boolean or fixed-point), shapes, and visibility (a public result
//!    never depends on a secret operand);
//! 5. the debug scopes are absent, or there is one valid scope index per
//!    instruction.

use crate::{DecodeError, Instr, Kind, Program, Reg, RegType};

fn broadcastable(from: &[u64], to: &[u64]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(f, t)| f == t || *f == 1)
}

/// Checks every invariant of the module doc.
pub fn validate(p: &Program) -> Result<(), DecodeError> {
    let n = p.regs.len();
    let mut written = vec![false; n];
    for (idx, ins) in p.code.iter().enumerate() {
        let ill = |message: String| DecodeError::Ill {
            index: idx,
            mnemonic: ins.mnemonic(),
            message,
        };
        let (dst, srcs) = ins.regs();
        for r in dst.iter().chain(&srcs) {
            if r.0 as usize >= n {
                return Err(ill(format!(
                    "register r{} does not exist ({n} registers)",
                    r.0
                )));
            }
        }
        for r in &srcs {
            if !written[r.0 as usize] {
                return Err(ill(format!("reads r{} before it is written", r.0)));
            }
        }
        let t = |r: &Reg| -> &RegType { &p.regs[r.0 as usize] };
        let fixed = |r: &Reg| matches!(t(r).kind, Kind::Fixed { .. });
        let secret_of = |rs: &[Reg]| rs.iter().any(|r| t(r).secret);
        if let Some(d) = dst {
            if written[d.0 as usize] {
                return Err(ill(format!("writes r{} a second time", d.0)));
            }
            let dt = t(&d);
            let needs_fixed = !matches!(ins, Instr::Cmp { .. } | Instr::Not { .. })
                && !matches!(
                    ins,
                    Instr::Transpose { .. }
                        | Instr::Reshape { .. }
                        | Instr::Slice { .. }
                        | Instr::Concat { .. }
                        | Instr::Broadcast { .. }
                );
            if needs_fixed && !fixed(&d) {
                return Err(ill(format!(
                    "the result r{} must be fixed-point, not {dt}",
                    d.0
                )));
            }
            if !srcs.is_empty()
                && dt.secret != secret_of(&srcs)
                && !matches!(ins, Instr::Embed { .. })
            {
                let want = if secret_of(&srcs) { "secret" } else { "public" };
                return Err(ill(format!("the result r{} must be {want}: {dt}", d.0)));
            }
            check(ins, dt, &t).map_err(ill)?;
            written[d.0 as usize] = true;
        }
        match ins {
            Instr::Input { dst, port } => {
                let ok = p.inputs.get(*port as usize).is_some_and(|q| q.reg == *dst);
                if !ok {
                    return Err(ill(format!(
                        "input #{port} is not declared with register r{}",
                        dst.0
                    )));
                }
            }
            Instr::Weight { dst, port } => {
                let ok = p.weights.get(*port as usize).is_some_and(|q| q.reg == *dst);
                if !ok {
                    return Err(ill(format!(
                        "weight #{port} is not declared with register r{}",
                        dst.0
                    )));
                }
            }
            Instr::Output { port, a } => {
                let ok = p.outputs.get(*port as usize).is_some_and(|q| q.reg == *a);
                if !ok {
                    return Err(ill(format!(
                        "output #{port} is not declared with register r{}",
                        a.0
                    )));
                }
            }
            _ => {}
        }
    }
    if !(p.scopes.is_empty() && p.scope_of.is_empty()) {
        if p.scope_of.len() != p.code.len() {
            return Err(DecodeError::Invalid {
                offset: 0,
                message: format!(
                    "{} scope indices for {} instructions",
                    p.scope_of.len(),
                    p.code.len()
                ),
            });
        }
        if let Some(k) = p.scope_of.iter().find(|&&k| k as usize >= p.scopes.len()) {
            return Err(DecodeError::Invalid {
                offset: 0,
                message: format!("scope index {k} of {} scopes", p.scopes.len()),
            });
        }
    }
    for (kind, ports) in [
        ("input", &p.inputs),
        ("weight", &p.weights),
        ("output", &p.outputs),
    ] {
        for q in ports.iter() {
            if q.reg.0 as usize >= n {
                return Err(DecodeError::Invalid {
                    offset: 0,
                    message: format!("{kind} {:?} names register r{} of {n}", q.name, q.reg.0),
                });
            }
            if q.transposed && (kind != "weight" || p.regs[q.reg.0 as usize].shape.len() != 2) {
                return Err(DecodeError::Invalid {
                    offset: 0,
                    message: format!(
                        "{kind} {:?} is marked transposed; only a matrix weight can be",
                        q.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The shape and kind rule of one instruction, given its result type.
fn check<'a>(ins: &Instr, d: &RegType, t: &dyn Fn(&Reg) -> &'a RegType) -> Result<(), String> {
    let fixed = |r: &Reg| matches!(t(r).kind, Kind::Fixed { .. });
    let same_or_scalar = |a: &Reg, b: &Reg| -> Result<Vec<u64>, String> {
        let (x, y) = (&t(a).shape, &t(b).shape);
        if x == y || y.is_empty() {
            Ok(x.clone())
        } else if x.is_empty() {
            Ok(y.clone())
        } else {
            Err(format!("operand shapes {x:?} and {y:?} differ"))
        }
    };
    let want = |shape: Vec<u64>| -> Result<(), String> {
        if d.shape == shape {
            Ok(())
        } else {
            Err(format!(
                "the result has shape {:?}, the operands give {shape:?}",
                d.shape
            ))
        }
    };
    let need_fixed = |r: &Reg| {
        if fixed(r) {
            Ok(())
        } else {
            Err(format!("r{} must be fixed-point", r.0))
        }
    };
    match ins {
        Instr::Input { .. } | Instr::Weight { .. } | Instr::Output { .. } | Instr::Round {} => {
            Ok(())
        }
        Instr::Const { .. } => {
            if d.secret || !d.shape.is_empty() {
                Err("a constant is a public scalar".into())
            } else {
                Ok(())
            }
        }
        Instr::Iota { .. } => match (d.secret, d.kind, d.shape.len()) {
            (false, Kind::Fixed { frac: 0, .. }, 1) => Ok(()),
            _ => Err("iota is a public integer vector".into()),
        },
        Instr::Rotary { theta, .. } => match (d.secret, d.kind, d.shape.as_slice()) {
            _ if !(theta.is_finite() && *theta > 0.0) => Err(format!(
                "rotary's base θ must be a positive number, not {theta}"
            )),
            (false, Kind::Fixed { .. }, [_, w]) if w % 2 == 0 => Ok(()),
            _ => Err("rotary is a public fixed-point matrix of even width".into()),
        },
        Instr::Add { a, b, .. } | Instr::Sub { a, b, .. } | Instr::Mul { a, b, .. } => {
            need_fixed(a)?;
            need_fixed(b)?;
            want(same_or_scalar(a, b)?)
        }
        Instr::Cmp { a, b, .. } => {
            need_fixed(a)?;
            need_fixed(b)?;
            if d.kind != Kind::Bool {
                return Err("a comparison yields booleans".into());
            }
            want(same_or_scalar(a, b)?)
        }
        Instr::Neg { a, .. } | Instr::Convert { a, .. } | Instr::NormScale { a, .. } => {
            need_fixed(a)?;
            want(t(a).shape.clone())
        }
        Instr::Not { a, .. } => {
            if t(a).kind != Kind::Bool || d.kind != Kind::Bool {
                return Err("not takes and yields booleans".into());
            }
            want(t(a).shape.clone())
        }
        Instr::Select { c, a, b, .. } => {
            if t(c).kind != Kind::Bool {
                return Err("the condition must be boolean".into());
            }
            need_fixed(a)?;
            need_fixed(b)?;
            for r in [a, b] {
                if !t(r).shape.is_empty() && t(r).shape != t(c).shape {
                    return Err("branches must have the condition's shape or be scalars".into());
                }
            }
            want(t(c).shape.clone())
        }
        Instr::MatMul { a, b, .. } => {
            need_fixed(a)?;
            need_fixed(b)?;
            let (x, y) = (&t(a).shape, &t(b).shape);
            if x.len() < 2 || y.len() < 2 || x[x.len() - 1] != y[y.len() - 2] {
                return Err(format!("cannot multiply {x:?} by {y:?}"));
            }
            if y.len() > 2 && x[..x.len() - 2] != y[..y.len() - 2] {
                return Err(format!("batch axes of {x:?} and {y:?} differ"));
            }
            let mut s = x[..x.len() - 2].to_vec();
            s.extend([x[x.len() - 2], y[y.len() - 1]]);
            want(s)
        }
        Instr::Transpose { a, perm, .. } => {
            let x = &t(a).shape;
            let mut sorted = perm.clone();
            sorted.sort();
            if sorted != (0..x.len() as u32).collect::<Vec<_>>() {
                return Err(format!("{perm:?} is not a permutation of {} axes", x.len()));
            }
            want(perm.iter().map(|&i| x[i as usize]).collect())
        }
        Instr::Rescale { a, .. } => {
            need_fixed(a)?;
            match (t(a).kind, d.kind) {
                (Kind::Fixed { ring, frac }, Kind::Fixed { ring: ro, frac: fo })
                    if ring == ro && fo >= frac => {}
                _ => {
                    return Err(format!(
                        "rescale keeps the ring and adds fraction bits: {} to {d}",
                        t(a)
                    ))
                }
            }
            want(t(a).shape.clone())
        }
        Instr::Reshape { a, .. } => {
            if t(a).numel() != d.numel() {
                Err(format!("cannot reshape {:?} to {:?}", t(a).shape, d.shape))
            } else {
                Ok(())
            }
        }
        Instr::Slice { a, axis, start, .. } => {
            let x = &t(a).shape;
            let ax = *axis as usize;
            let ok = ax < x.len()
                && d.shape.len() == x.len()
                && (0..x.len()).all(|i| i == ax || d.shape[i] == x[i])
                && (*start as u64)
                    .checked_add(d.shape[ax])
                    .is_some_and(|e| e <= x[ax] && d.shape[ax] > 0);
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "slice {start}.. of axis {axis} of {x:?} cannot give {:?}",
                    d.shape
                ))
            }
        }
        Instr::Concat { srcs, axis, .. } => {
            let first = srcs.first().ok_or("concat needs a source")?;
            let x = &t(first).shape;
            let ax = *axis as usize;
            if ax >= x.len() {
                return Err(format!("axis {axis} out of range"));
            }
            let mut s = x.clone();
            s[ax] = 0;
            for r in srcs {
                let y = &t(r).shape;
                if y.len() != x.len() || (0..x.len()).any(|i| i != ax && y[i] != x[i]) {
                    return Err(format!("cannot concatenate {x:?} and {y:?}"));
                }
                s[ax] += y[ax];
            }
            want(s)
        }
        Instr::Broadcast { a, .. } => {
            if broadcastable(&t(a).shape, &d.shape) {
                Ok(())
            } else {
                Err(format!(
                    "cannot broadcast {:?} to {:?}",
                    t(a).shape,
                    d.shape
                ))
            }
        }
        Instr::Sum { a, axis, .. } | Instr::Max { a, axis, .. } | Instr::Mean { a, axis, .. } => {
            need_fixed(a)?;
            let mut s = t(a).shape.clone();
            let ax = *axis as usize;
            if ax >= s.len() {
                return Err(format!("axis {axis} out of range"));
            }
            s[ax] = 1;
            want(s)
        }
        Instr::Embed { ids, table, .. } => {
            let (i, tb) = (t(ids), t(table));
            if !matches!(i.kind, Kind::Fixed { frac: 0, .. })
                || i.shape.len() != 1
                || tb.shape.len() != 2
            {
                return Err("embed takes integer ids [S] and a table [V, D]".into());
            }
            need_fixed(table)?;
            want(vec![i.shape[0], tb.shape[1]])
        }
    }
}
