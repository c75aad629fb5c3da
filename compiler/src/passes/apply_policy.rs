//! `apply-policy`: gives every node of a format class the format the policy
//! assigns to that class, then lets data-movement nodes take their operand's
//! format again (`ir::formats`). Nodes outside any class (explicit formats,
//! integers, booleans) keep theirs.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::formats::inherited;
use crate::ir::{Elem, Graph};

pub struct ApplyPolicy;

impl Pass for ApplyPolicy {
    fn name(&self) -> &'static str {
        "apply-policy"
    }
    fn description(&self) -> &'static str {
        "assign each format class the (ring, frac) of the chosen policy"
    }
    fn run(&self, g: &mut Graph, ctx: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let order = g.topo_order().map_err(|_| {
            vec![Diagnostic::global(
                "internal error: apply-policy on a cyclic graph",
            )]
        })?;
        let mut changed = false;
        for id in order {
            let args = g.operands(id);
            let n = g.node(id);
            let Elem::Fixed(old) = n.ty.elem else {
                continue;
            };
            let new = match inherited(g, &n.op, &args) {
                Some(f) => f,
                None => match n.class.as_ref().and_then(|c| ctx.policy.formats.get(c)) {
                    Some(f) => *f,
                    None => continue,
                },
            };
            if new != old {
                g.node_mut(id).ty.elem = Elem::Fixed(new);
                changed = true;
            }
        }
        Ok(changed)
    }
}
