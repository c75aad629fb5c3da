//! `insert-truncations`: a fixed-point product has the sum of its operands'
//! fraction bits. This pass gives every `mul` and `matmul` that raw format
//! and puts the truncation to the node's format in an explicit `convert`
//! after it, which is what the MPC backend executes (Ditto's conversion
//! primitive with m = f_a + f_b − f). A raw format the ring cannot hold
//! (more than k − 4 fraction bits) is a compile error at the product's line.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::formats::product_operand;
use crate::ir::{Elem, Format, Graph, Node, Op};

pub struct InsertTruncations;

impl Pass for InsertTruncations {
    fn name(&self) -> &'static str {
        "insert-truncations"
    }
    fn description(&self) -> &'static str {
        "give products their raw format and truncate explicitly after them"
    }
    fn run(&self, g: &mut Graph, ctx: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let mut errors = vec![];
        let mut changed = false;
        for id in g.ids() {
            let n = g.node(id);
            if !matches!(n.op, Op::Mul | Op::MatMul) {
                continue;
            }
            let Some(target) = n.ty.format() else {
                continue;
            };
            let ops = g.operands(id);
            let (Some(fa), Some(fb)) = (g.node(ops[0]).ty.format(), g.node(ops[1]).ty.format())
            else {
                continue;
            };
            let (fa, fb) = (product_operand(fa, target), product_operand(fb, target));
            let frac = fa.frac as i64 + fb.frac as i64;
            if frac == target.frac as i64 {
                continue;
            }
            let raw = match Format::new(target.ring.bits() as i64, frac) {
                Ok(f) => f,
                Err(_) => {
                    errors.push(
                        ctx.error_at(
                            g,
                            id,
                            format!(
                                "this product of {fa} and {fb} values needs {frac} fraction bits; the {}-bit ring holds at most {}",
                                target.ring.bits(),
                                target.ring.bits() - 4
                            ),
                            "product too precise for its ring",
                        )
                        .with_hint("use fewer fraction bits for its operands, or compute it in the 64-bit ring"),
                    );
                    continue;
                }
            };
            // The truncation takes over the product's place (users, name).
            let mut t = Node::new(Op::Convert, n.ty.clone());
            t.loc = n.loc;
            t.approx = n.approx;
            t.class = n.class.clone();
            t.name = n.name.clone();
            t.bound = n.bound;
            let users = g.users(id);
            let tid = g.add(t, &[id]);
            for u in users {
                for (pos, o) in g.operands(u).into_iter().enumerate() {
                    if o == id {
                        g.set_operand(u, pos, tid);
                    }
                }
            }
            let p = g.node_mut(id);
            p.ty.elem = Elem::Fixed(raw);
            p.name = None;
            // the raw product is the same real value: its bound still holds
            changed = true;
        }
        if errors.is_empty() {
            Ok(changed)
        } else {
            Err(errors)
        }
    }
}
