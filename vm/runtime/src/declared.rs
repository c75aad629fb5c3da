//! The declared cost of one instruction run on its own (not batched with
//! others of its round), from `ditto_protocol::cost`: what the protocol the
//! VM runs for it costs, given the registers' types. tests/costs.rs checks
//! every instruction kind against the measured run.

use ditto_bytecode::{onehot_split, Instr, Kind, Pred, Program};
use ditto_protocol::cost::{self, Cost};

/// (ring, fraction bits) of a fixed-point register.
fn fixed(p: &Program, r: ditto_bytecode::Reg) -> Option<(u32, u32)> {
    match p.regs[r.0 as usize].kind {
        Kind::Fixed { ring, frac } => Some((ring as u32, frac as u32)),
        Kind::Bool => None,
    }
}

/// The declared cost of `ins` in `p`; `fused`: a product whose only reader
/// is a conversion (the VM fuses them: the product is local, the conversion
/// opens H's share too).
pub fn declared(p: &Program, ins: &Instr, fused: bool) -> Cost {
    let t = |r: &ditto_bytecode::Reg| &p.regs[r.0 as usize];
    let none = Cost::default();
    match ins {
        Instr::Mul { dst, a, b } | Instr::MatMul { dst, a, b } => match fixed(p, *dst) {
            Some((k, _)) if t(a).secret && t(b).secret && !fused => {
                cost::product(k, t(dst).numel())
            }
            _ => none,
        },
        Instr::Convert { dst, a } => match (fixed(p, *a), fixed(p, *dst)) {
            (Some((ki, fi)), Some((ko, fo))) if t(a).secret && (fo < fi || ko > ki) => {
                cost::conversion(ki, ko, fi.saturating_sub(fo), fused, t(dst).numel())
            }
            _ => none,
        },
        Instr::Cmp { a, b, pred, .. } => match fixed(p, *a) {
            Some((k, _)) if t(a).secret || t(b).secret => cost::compare(
                k,
                t(a).numel().max(t(b).numel()),
                matches!(pred, Pred::Eq | Pred::Ne),
            ),
            _ => none,
        },
        Instr::Select { dst, c, .. } => match fixed(p, *dst) {
            Some((k, _)) if t(c).secret => cost::select(k, t(dst).numel()),
            _ => none,
        },
        Instr::Max { dst, a, axis } => match fixed(p, *dst) {
            Some((k, _)) if t(a).secret => {
                cost::max_rows(k, t(dst).numel(), t(a).shape[*axis as usize])
            }
            _ => none,
        },
        Instr::Mean { dst, a, .. } => match fixed(p, *dst) {
            Some((k, f)) if t(a).secret => cost::mean(k, f, t(dst).numel()),
            _ => none,
        },
        Instr::NormScale { dst, a, kind } => match fixed(p, *dst) {
            Some((k, f)) if t(a).secret => {
                cost::norm_scale(k, kind.steps(k, f).len() as u64, t(dst).numel())
            }
            _ => none,
        },
        Instr::Embed { dst, ids, table } => match fixed(p, *dst) {
            Some((k, _)) if t(ids).secret => {
                let (rows, width) = (t(table).shape[0], t(table).shape[1]);
                let (a, _) = onehot_split(rows, width);
                cost::lookup(k, t(ids).numel(), a, width)
            }
            _ => none,
        },
        // local: no message between the parties
        Instr::Input { .. }
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
        | Instr::Output { .. }
        | Instr::Round {} => none,
    }
}
