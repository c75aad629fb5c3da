//! Format rules shared by elaboration and the passes: which ops carry an
//! operand's format rather than their region's. Data movement (transpose,
//! reshape, slice, broadcast, concatenation, row lookup) and negation never
//! rescale values, so converting around them would only cost communication;
//! they keep the format of the operand they move. A `rescale` reads its
//! operand's words with `bits` more fraction bits.

use super::graph::{Graph, NodeId};
use super::ops::Op;
use super::types::Format;

/// The operand whose format `op` keeps, if it keeps one.
pub fn inherits_from(op: &Op) -> Option<usize> {
    match op {
        Op::Transpose { .. }
        | Op::Reshape { .. }
        | Op::Slice { .. }
        | Op::Broadcast { .. }
        | Op::Concat { .. }
        | Op::Neg
        | Op::Output { .. }
        | Op::Rescale { .. } => Some(0),
        Op::Embed => Some(1),
        Op::Input { .. }
        | Op::Weight { .. }
        | Op::Const { .. }
        | Op::Iota { .. }
        | Op::Rotary { .. }
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::MatMul
        | Op::Lt
        | Op::Gt
        | Op::Le
        | Op::Ge
        | Op::Eq
        | Op::Ne
        | Op::Not
        | Op::Select
        | Op::Sum { .. }
        | Op::Max { .. }
        | Op::Mean { .. }
        | Op::High(_)
        | Op::NormScale { .. }
        | Op::Convert => None,
    }
}

/// The format a node of `op` over `args` inherits, if any. A concatenation
/// inherits only when all its operands agree.
pub fn inherited(g: &Graph, op: &Op, args: &[NodeId]) -> Option<Format> {
    let i = inherits_from(op)?;
    let f = g.node(*args.get(i)?).ty.format()?;
    if let Op::Rescale { bits } = op {
        // the same words with `bits` more fraction bits
        return Format::new(f.ring.bits() as i64, f.frac as i64 + *bits as i64).ok();
    }
    if matches!(op, Op::Concat { .. }) && args.iter().any(|&a| g.node(a).ty.format() != Some(f)) {
        return None;
    }
    Some(f)
}

/// The format an operand of a product (`mul`, `matmul`) is used in: an
/// operand already in the product's ring keeps its fraction bits (the
/// product's fraction bits are their sum, truncated afterwards); one from the
/// other ring is converted to the product's own format.
pub fn product_operand(have: Format, product: Format) -> Format {
    if have.ring == product.ring {
        have
    } else {
        product
    }
}

/// Gives every node that keeps an operand's format (see [`inherits_from`])
/// that format again, in topological order; for passes that replace a node
/// by one in another format. Returns whether anything changed.
pub fn refresh_inherited(g: &mut Graph) -> bool {
    let mut changed = false;
    for id in g.topo_order().unwrap_or_default() {
        let args = g.operands(id);
        let Some(f) = inherited(g, &g.node(id).op, &args) else {
            continue;
        };
        let n = g.node_mut(id);
        if n.ty.format().is_some_and(|old| old != f) {
            n.ty.elem = crate::ir::Elem::Fixed(f);
            changed = true;
        }
    }
    changed
}
