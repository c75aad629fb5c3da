//! `insert-conversions`: makes every format change explicit. For each
//! operand whose format differs from what its user needs, a `convert` node
//! is inserted (one per value and target format, shared by all users);
//! public constants are re-encoded instead, which is free.
//!
//! What a user needs:
//! - products (`mul`, `matmul`): an operand already in the product's ring
//!   keeps its fraction bits (the truncation after the product is derived from
//!   them, by `insert-truncations`, not built yet); one from the other ring is
//!   converted to the product's format, so a (64, 18) activation entering a
//!   (32, 8) layer is truncated and downcast in one conversion;
//! - comparisons: the second operand in the first operand's format;
//! - data movement (`ir::formats`) and `embed`'s ids: no conversion;
//! - everything else: operands in the node's own format.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::formats::inherits_from;
use crate::ir::{Elem, Format, Graph, Node, NodeId, Op};
use std::collections::HashMap;

pub struct InsertConversions;

/// The format operand `pos` of `user` must have, if it must have one.
pub(crate) fn required(g: &Graph, user: NodeId, pos: usize, operand: NodeId) -> Option<Format> {
    let u = g.node(user);
    let have = g.node(operand).ty.format()?;
    if inherits_from(&u.op).is_some() || matches!(u.op, Op::Convert) {
        return None;
    }
    match &u.op {
        Op::Mul | Op::MatMul => Some(crate::ir::formats::product_operand(have, u.ty.format()?)),
        Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne => {
            let first = g.node(g.operands(user)[0]).ty.format()?;
            (pos == 1).then_some(first)
        }
        _ => u.ty.format(),
    }
}

impl Pass for InsertConversions {
    fn name(&self) -> &'static str {
        "insert-conversions"
    }
    fn description(&self) -> &'static str {
        "insert explicit conversions at every format boundary"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let order = g.topo_order().map_err(|_| {
            vec![Diagnostic::global(
                "internal error: insert-conversions on a cyclic graph",
            )]
        })?;
        let mut made: HashMap<(NodeId, Format), NodeId> = HashMap::new();
        let mut changed = false;
        for user in order {
            for (pos, operand) in g.operands(user).into_iter().enumerate() {
                let Some(want) = required(g, user, pos, operand) else {
                    continue;
                };
                if g.node(operand).ty.format() == Some(want) {
                    continue;
                }
                let conv = match made.get(&(operand, want)) {
                    Some(&c) => c,
                    None => {
                        let src = g.node(operand);
                        let mut ty = src.ty.clone();
                        ty.elem = Elem::Fixed(want);
                        let u = g.node(user);
                        let (loc, class, approx) = (u.loc, u.class.clone(), u.approx);
                        let c = if let Op::Const { value } = src.op {
                            // re-encoding a public constant costs nothing
                            let mut n = Node::new(Op::Const { value }, ty);
                            n.loc = src.loc;
                            n.approx = src.approx;
                            n.class = class;
                            g.add(n, &[])
                        } else {
                            let mut n = Node::new(Op::Convert, ty);
                            n.loc = loc;
                            n.approx = approx;
                            n.class = class;
                            g.add(n, &[operand])
                        };
                        made.insert((operand, want), c);
                        c
                    }
                };
                g.set_operand(user, pos, conv);
                changed = true;
            }
        }
        if changed {
            g.prune_dead();
        }
        Ok(changed)
    }
}
