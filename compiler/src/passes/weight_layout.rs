//! `weight-layout`: a matrix weight that the program reads only through its
//! transpose — `x @ transpose(w)` with HuggingFace's [out, in] Linear
//! layout — becomes a weight dealt transposed (`weight transposed`). The
//! model owner transposes the cleartext once, before sharing it (the
//! bytecode port says so), and the parties do no transpose of shares at run
//! time.
//!
//! Applies when every user of the weight is the same swap of its two axes
//! in the weight's own format (a transpose whose format differs waits for
//! a conversion, so it is left alone).

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Graph, Op};

pub struct WeightLayout;

impl Pass for WeightLayout {
    fn name(&self) -> &'static str {
        "weight-layout"
    }
    fn description(&self) -> &'static str {
        "deal a weight read only through its transpose transposed"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let mut changed = false;
        for id in g.ids() {
            if !g.contains(id) {
                continue; // a transpose removed below
            }
            let n = g.node(id);
            if !matches!(
                n.op,
                Op::Weight {
                    transposed: false,
                    ..
                }
            ) || n.ty.shape.len() != 2
            {
                continue;
            }
            let users = g.users(id);
            let swaps = |u: &crate::ir::NodeId| {
                let m = g.node(*u);
                matches!(&m.op, Op::Transpose { perm } if perm == &[1, 0])
                    && m.ty.elem == n.ty.elem
                    && m.ty.vis == n.ty.vis
            };
            if users.is_empty() || !users.iter().all(swaps) {
                continue;
            }
            let node = g.node_mut(id);
            node.ty.shape.reverse();
            if let Op::Weight { transposed, .. } = &mut node.op {
                *transposed = true;
            }
            for u in users {
                if g.contains(u) {
                    g.replace_uses(u, id);
                    g.remove(u);
                }
            }
            changed = true;
        }
        Ok(changed)
    }
}
