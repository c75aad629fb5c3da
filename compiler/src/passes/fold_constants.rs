//! `fold-constants`: evaluates public scalar arithmetic at compile time and
//! removes identities.
//!
//! - A scalar `add`, `sub`, `mul`, `neg`, `convert`, `exp`, `reciprocal`,
//!   `rsqrt` or `tanh` whose operands are all constants becomes one constant
//!   holding the exact real result (the node keeps its type, so the value is
//!   encoded once, correctly rounded, instead of through a chain of rounded
//!   ring operations).
//! - `x · 1`, `1 · x`, `x + 0`, `0 + x` and `x − 0` become `x` when `x` has
//!   the node's type: a product by one would otherwise cost a truncation.
//!
//! Float evaluation is unchanged bit for bit (the same f64 operations run at
//! compile time); fixed-point evaluation can only become more exact.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::eval::{eval_real, Tensor};
use crate::ir::{Graph, HighOp, NodeId, Op};

pub struct FoldConstants;

fn const_value(g: &Graph, id: NodeId) -> Option<f64> {
    match g.node(id).op {
        Op::Const { value } => Some(value),
        _ => None,
    }
}

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold-constants"
    }
    fn description(&self) -> &'static str {
        "evaluate constant scalar arithmetic, drop x·1 and x+0"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let order = g.topo_order().map_err(|_| {
            vec![Diagnostic::global(
                "internal error: fold-constants on a cyclic graph",
            )]
        })?;
        let mut changed = false;
        for id in order {
            if !g.contains(id) {
                continue;
            }
            let op = g.node(id).op.clone();
            let foldable = match &op {
                Op::Add | Op::Sub | Op::Mul | Op::Neg | Op::Convert => true,
                // element-wise real functions (not GeLU: its lowering
                // differs from the exact function more than folding may)
                Op::High(h) => h.elementwise().is_some() && !matches!(h, HighOp::Gelu { .. }),
                _ => false,
            };
            if !foldable {
                continue;
            }
            let ops = g.operands(id);
            let consts: Option<Vec<f64>> = ops.iter().map(|&o| const_value(g, o)).collect();
            if let Some(vals) = consts {
                if g.node(id).ty.shape.is_empty() && g.node(id).ty.format().is_some() {
                    let args: Vec<Tensor> = vals.iter().map(|&v| Tensor::scalar(v)).collect();
                    let refs: Vec<&Tensor> = args.iter().collect();
                    if let Ok(t) = eval_real(&op, &[], &refs) {
                        let v = t.data[0];
                        if v.is_finite() {
                            let mut n = g.node(id).clone();
                            n.op = Op::Const { value: v };
                            let folded = g.add(n, &[]);
                            g.replace_uses(id, folded);
                            g.remove(id);
                            changed = true;
                            continue;
                        }
                    }
                }
            }
            // identities
            let ty = g.node(id).ty.clone();
            let keep = match (&op, ops.as_slice()) {
                (Op::Mul, [a, b]) => match (const_value(g, *a), const_value(g, *b)) {
                    (Some(1.0), _) => Some(*b),
                    (_, Some(1.0)) => Some(*a),
                    _ => None,
                },
                (Op::Add, [a, b]) => match (const_value(g, *a), const_value(g, *b)) {
                    (Some(0.0), _) => Some(*b),
                    (_, Some(0.0)) => Some(*a),
                    _ => None,
                },
                (Op::Sub, [a, b]) => match const_value(g, *b) {
                    Some(0.0) => Some(*a),
                    _ => None,
                },
                _ => None,
            };
            if let Some(x) = keep {
                if g.node(x).ty == ty {
                    g.replace_uses(id, x);
                    g.remove(id);
                    changed = true;
                }
            }
        }
        if changed {
            g.prune_dead();
        }
        Ok(changed)
    }
}
