//! `dot-products`: a sum or mean over the last axis of an element-wise
//! product of two secrets becomes a batched matrix product, row by row:
//! `sum(a·b, −1)` over [.., D] is `a[.., 1, D] @ b[.., D, 1]`. Under MPC an
//! element-wise product reshares (and truncates) every one of its D·rows
//! elements before the sum; a matrix product sums the local products first
//! and reshares only the rows' results. LayerNorm's variance, mean((x − μ)²),
//! is the case in the transformers: 768 times fewer elements to reshare and
//! truncate per row. The value is the same; the rounding is better (one
//! truncation of the sum instead of one per term).
//!
//! A mean becomes the product times the public 1/D. The product must be
//! used only by the reduction, with both operands secret and of its shape
//! (no broadcasting).

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Graph, Node, NodeId, Op, Type, Vis};

pub struct DotProducts;

/// Adds `op` over `operands` with type `ty`, located and classed like `like`.
fn add_like(g: &mut Graph, like: NodeId, op: Op, ty: Type, operands: &[NodeId]) -> NodeId {
    let mut n = Node::new(op, ty);
    n.loc = g.node(like).loc;
    n.approx = g.node(like).approx;
    n.class = g.node(like).class.clone();
    g.add(n, operands)
}

impl Pass for DotProducts {
    fn name(&self) -> &'static str {
        "dot-products"
    }
    fn description(&self) -> &'static str {
        "turn sums over the last axis of element-wise products into matrix products"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let mut changed = false;
        for id in g.ids() {
            if !g.contains(id) {
                continue;
            }
            let n = g.node(id).clone();
            let (Op::Sum { axis } | Op::Mean { axis }) = n.op else {
                continue;
            };
            let m = g.operands(id)[0];
            let mt = g.node(m).ty.clone();
            let rank = mt.shape.len();
            if !matches!(g.node(m).op, Op::Mul) || rank == 0 || axis + 1 != rank {
                continue;
            }
            let ops = g.operands(m);
            // (a square a·a reads one node twice)
            let plain = g.users(m).len() == 1
                && mt.vis == Vis::Secret
                && ops.iter().all(|&o| {
                    let t = &g.node(o).ty;
                    t.vis == Vis::Secret && t.shape == mt.shape
                });
            if !plain {
                continue;
            }
            let lead = &mt.shape[..rank - 1];
            let d = mt.shape[rank - 1];
            let shaped = |tail: &[usize], like: &Type| {
                let mut t = like.clone();
                t.shape = lead.iter().chain(tail).copied().collect();
                t
            };
            let (ta, tb) = (&g.node(ops[0]).ty.clone(), &g.node(ops[1]).ty.clone());
            let row_shape: Vec<usize> = lead.iter().copied().chain([1, d]).collect();
            let col_shape: Vec<usize> = lead.iter().copied().chain([d, 1]).collect();
            let ra = add_like(
                g,
                m,
                Op::Reshape { shape: row_shape },
                shaped(&[1, d], ta),
                &[ops[0]],
            );
            let cb = add_like(
                g,
                m,
                Op::Reshape { shape: col_shape },
                shaped(&[d, 1], tb),
                &[ops[1]],
            );
            let mm = add_like(g, m, Op::MatMul, shaped(&[1, 1], &mt), &[ra, cb]);
            let out_shape: Vec<usize> = lead.iter().copied().chain([1]).collect();
            let mut result = add_like(g, id, Op::Reshape { shape: out_shape }, n.ty.clone(), &[mm]);
            if matches!(n.op, Op::Mean { .. }) {
                let mut ct = n.ty.clone();
                ct.vis = Vis::Public;
                ct.shape = vec![];
                let c = add_like(
                    g,
                    id,
                    Op::Const {
                        value: 1.0 / d as f64,
                    },
                    ct,
                    &[],
                );
                let summed = g.node_mut(result);
                summed.name = None;
                result = add_like(g, id, Op::Mul, n.ty.clone(), &[result, c]);
            }
            let r = g.node_mut(result);
            r.name = n.name.clone();
            r.bound = n.bound;
            g.replace_uses(id, result);
            g.remove(id);
            changed = true;
        }
        if changed {
            g.prune_dead();
        }
        Ok(changed)
    }
}
