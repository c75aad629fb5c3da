//! `check-ranges`: interval analysis of |value| from declared bounds
//! (`@bound(B)` on inputs, weights and lets), weight statistics (the largest
//! |w| of each tensor, when the weights are given to the compiler) and
//! constants, propagated through the graph. Every place where the MPC
//! arithmetic could overflow is then checked against its ring (NUMERICS.md,
//! "Safe ranges"):
//!
//! - a product's raw value (the accumulator of a whole dot product):
//!   |v|·2^f_raw < 2^(k−2);
//! - the input of a conversion call (truncation, upcast, downcast with
//!   truncation): |v|·2^f_in < 2^(k_in−2);
//! - a conversion's result in a narrower ring: |v|·2^f_out < 2^(k_out−2).
//!
//! A violation is a compile error at the DSL line of the offending node,
//! naming the bound, where it came from, and the ring's limit. Values whose
//! bound cannot be derived (no annotation upstream, reciprocals, ...) are not
//! checked; `ditto calibrate` supplies such bounds (`--bounds FILE`). Nodes
//! inside an inlined stdlib approximation are not checked (see
//! `inside_approximation`).

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Graph, NodeId, Op};
use std::collections::HashMap;

pub struct CheckRanges;

/// Largest |value| of each node (None: unknown).
pub fn bounds(g: &Graph, weights: Option<&HashMap<String, f64>>) -> HashMap<NodeId, f64> {
    let mut b: HashMap<NodeId, f64> = HashMap::new();
    for id in g.topo_order().unwrap_or_default() {
        let n = g.node(id);
        let ops = g.operands(id);
        let get = |i: usize| ops.get(i).and_then(|o| b.get(o)).copied();
        let derived = match &n.op {
            Op::Const { value } => Some(value.abs()),
            Op::Iota { n } => Some(n.saturating_sub(1) as f64),
            Op::Rotary { .. } => Some(1.0),
            Op::Weight { name, .. } => weights.and_then(|w| w.get(name)).copied(),
            Op::Input { .. } => None,
            Op::Add | Op::Sub => get(0).zip(get(1)).map(|(x, y)| x + y),
            Op::Mul => get(0).zip(get(1)).map(|(x, y)| x * y),
            Op::MatMul => {
                let k = *g.node(ops[0]).ty.shape.last().unwrap_or(&1) as f64;
                get(0).zip(get(1)).map(|(x, y)| k * x * y)
            }
            Op::Neg
            | Op::Transpose { .. }
            | Op::Reshape { .. }
            | Op::Slice { .. }
            | Op::Broadcast { .. }
            | Op::Convert
            | Op::Output { .. }
            | Op::Max { .. }
            | Op::Mean { .. } => get(0),
            Op::Rescale { bits } => get(0).map(|x| x * (-(*bits as f64)).exp2()),
            Op::Sum { axis } => get(0).map(|x| x * g.node(ops[0]).ty.shape[*axis] as f64),
            Op::Concat { .. } => ops
                .iter()
                .map(|o| b.get(o).copied())
                .try_fold(0.0f64, |m, x| x.map(|x| m.max(x))),
            Op::Select => get(1).zip(get(2)).map(|(x, y)| x.max(y)),
            Op::Embed => get(1),
            Op::High(h) => h.bound(&get, *n.ty.shape.last().unwrap_or(&1)),
            Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne | Op::Not => Some(1.0),
            Op::NormScale { .. } => None,
        };
        let v = match (derived, n.bound) {
            (Some(d), Some(decl)) => Some(d.min(decl)),
            (d, decl) => d.or(decl),
        };
        if let Some(v) = v {
            b.insert(id, v);
        }
    }
    b
}

/// Whether a node is inside an approximation (a function marked `@approx`).
/// Interval propagation cannot see their invariants (exp's argument is ≤ 0
/// after the row max, so (1 + x/2^t) stays in [0, 1] however often it is
/// squared) and would refuse every one of them; their ranges are
/// established by their own tests over their input ranges
/// (docs/approximations.md) instead.
fn inside_approximation(g: &Graph, id: NodeId) -> bool {
    g.node(id).approx
}

impl Pass for CheckRanges {
    fn name(&self) -> &'static str {
        "check-ranges"
    }
    fn description(&self) -> &'static str {
        "prove from declared bounds that no product or conversion overflows its ring"
    }
    fn run(&self, g: &mut Graph, ctx: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let b = bounds(g, ctx.weight_bounds);
        let mut errors = vec![];
        for id in g.topo_order().unwrap_or_default() {
            let n = g.node(id);
            if n.ty.vis == crate::ir::Vis::Public {
                continue;
            }
            let Some(f) = n.ty.format() else { continue };
            if inside_approximation(g, id) {
                continue;
            }
            let mut check = |what: &str, v: f64, frac: u8, ring_bits: u32, node: NodeId| {
                let limit = ((ring_bits - 2) as f64 - frac as f64).exp2();
                if v >= limit {
                    errors.push(
                        ctx.error_at(
                            g,
                            node,
                            format!(
                                "{what} may reach ±{v}, but with {frac} fraction bits the {ring_bits}-bit ring is safe only below ±{limit} (2^({ring_bits}−2−{frac}))",
                            ),
                            "may overflow its ring",
                        )
                        .with_hint("use fewer fraction bits here, compute it in the 64-bit ring, or tighten the @bound annotations upstream"),
                    );
                }
            };
            match n.op {
                Op::Mul | Op::MatMul => {
                    if let Some(&v) = b.get(&id) {
                        check("this product's accumulator", v, f.frac, f.ring.bits(), id);
                    }
                }
                Op::Convert => {
                    let src = g.operands(id)[0];
                    let (Some(fi), Some(&v)) = (g.node(src).ty.format(), b.get(&src)) else {
                        continue;
                    };
                    let call = f.frac < fi.frac || f.ring > fi.ring;
                    if call && !matches!(g.node(src).op, Op::Mul | Op::MatMul) {
                        check(
                            "the value entering this conversion",
                            v,
                            fi.frac,
                            fi.ring.bits(),
                            id,
                        );
                    }
                    if f.ring < fi.ring {
                        check("this downcast's result", v, f.frac, f.ring.bits(), id);
                    }
                }
                // no accumulator and no conversion call: nothing can wrap
                // that the operands' own checks do not cover
                Op::Input { .. }
                | Op::Weight { .. }
                | Op::Const { .. }
                | Op::Iota { .. }
                | Op::Rotary { .. }
                | Op::Add
                | Op::Sub
                | Op::Neg
                | Op::Lt
                | Op::Gt
                | Op::Le
                | Op::Ge
                | Op::Eq
                | Op::Ne
                | Op::Not
                | Op::Select
                | Op::Transpose { .. }
                | Op::Reshape { .. }
                | Op::Slice { .. }
                | Op::Concat { .. }
                | Op::Broadcast { .. }
                | Op::Sum { .. }
                | Op::Max { .. }
                | Op::Mean { .. }
                | Op::High(_)
                | Op::Embed
                | Op::NormScale { .. }
                | Op::Rescale { .. }
                | Op::Output { .. } => {}
            }
        }
        if errors.is_empty() {
            Ok(false)
        } else {
            Err(errors)
        }
    }
}
