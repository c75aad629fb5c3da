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
//!
//! Before that, a weight that every reader would convert to one other
//! format (a `linear` weight read by a pooler or classifier in the `head`
//! class, say) takes that format: the model owner encodes it so, and the
//! conversion — an upcast per element and query — never runs.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Elem, Graph, NodeId, Op};

/// Gives each weight the one format all its readers (through transposes)
/// convert it to, if there is one. Returns whether any changed.
fn reformat(g: &mut Graph) -> bool {
    let mut changed = false;
    for id in g.ids() {
        let n = g.node(id);
        let (Op::Weight { .. }, Elem::Fixed(have)) = (&n.op, n.ty.elem) else {
            continue;
        };
        // (reader, operand position, the value it reads: the weight or a transpose)
        let mut moves: Vec<NodeId> = vec![];
        let mut reads: Vec<(NodeId, usize, NodeId)> = vec![];
        let mut read = |r: NodeId, v: NodeId| {
            for (pos, o) in g.operands(r).into_iter().enumerate() {
                if o == v {
                    reads.push((r, pos, v));
                }
            }
        };
        for u in g.users(id) {
            let m = g.node(u);
            if matches!(m.op, Op::Transpose { .. }) && m.ty.elem == n.ty.elem {
                moves.push(u);
                for r in g.users(u) {
                    read(r, u);
                }
            } else {
                read(u, id);
            }
        }
        let wanted: Vec<Option<crate::ir::Format>> = reads
            .iter()
            .map(|&(r, pos, v)| super::insert_conversions::required(g, r, pos, v))
            .collect();
        let Some(Some(to)) = wanted.first().copied() else {
            continue;
        };
        if to == have || wanted.iter().any(|w| *w != Some(to)) {
            continue;
        }
        for v in std::iter::once(id).chain(moves) {
            g.node_mut(v).ty.elem = Elem::Fixed(to);
        }
        changed = true;
    }
    changed
}

pub struct WeightLayout;

impl Pass for WeightLayout {
    fn name(&self) -> &'static str {
        "weight-layout"
    }
    fn description(&self) -> &'static str {
        "deal a weight in the format its readers convert it to, and transposed if read only so"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let mut changed = reformat(g);
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
