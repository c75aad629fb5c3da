//! `lower-nonlinear`: replaces the high-level non-linear operations by the
//! `std.approx` functions the policy names, instantiated on the graph
//! (`elab::inline`), so that the following passes place conversions and
//! truncations inside them:
//!
//! | op | becomes |
//! |---|---|
//! | `gelu` | `gelu_puma(x)` (`gelu_puma_half(x)` in Z_2^32), `gelu_sym(x)` under a Sym policy, or `gelu_quad(x)` under a Quad policy |
//! | `softmax` | `softmax_puma(x, t, base)` (masked: `softmax_puma_masked(x, m, t, base)`), t = the policy's exp squarings, base 1 (PUMA's) or 2 (quadratic); or `softmax_2quad(x)` under a 2Quad policy |
//! | `layernorm` | `layernorm_mpc(x, γ, β, ε)` |
//! | `recip` | `recip_goldschmidt(x, 5)` |
//! | `rsqrt` | `rsqrt_poly(x)` |
//! | `tanh` | `tanh_exp(x, t)` |
//!
//! `exp` on its own (its input is not known to be ≤ 0) has no approximation
//! yet and is left as it is; the fixed backend computes it exactly.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::elab::{inline, InlineArg};
use crate::ir::{Graph, Op, Ring};
use crate::policy::{ExpApprox, GeluApprox, SoftmaxApprox};

pub struct LowerNonlinear;

impl Pass for LowerNonlinear {
    fn name(&self) -> &'static str {
        "lower-nonlinear"
    }
    fn description(&self) -> &'static str {
        "replace gelu, softmax, layernorm, recip, rsqrt by the policy's stdlib approximations"
    }
    fn run(&self, g: &mut Graph, ctx: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let mut changed = false;
        for id in g.ids() {
            let n = g.node(id);
            let ops = g.operands(id);
            let node = |i: usize| InlineArg::Node(ops[i]);
            let t = ctx.policy.exp_squarings as i64;
            let base = InlineArg::Int(match ctx.policy.exp {
                ExpApprox::Puma => 1,
                ExpApprox::Quad => 2,
            });
            let (func, args): (&str, Vec<InlineArg>) = match &n.op {
                Op::Gelu { .. } => match ctx.policy.gelu {
                    // in Z_2^32 the polynomials in x/2 keep their coefficients' precision
                    GeluApprox::Puma if n.ty.format().is_some_and(|f| f.ring == Ring::Z32) => {
                        ("gelu_puma_half", vec![node(0)])
                    }
                    GeluApprox::Puma => ("gelu_puma", vec![node(0)]),
                    GeluApprox::Quad => ("gelu_quad", vec![node(0)]),
                    GeluApprox::Sym => ("gelu_sym", vec![node(0)]),
                },
                Op::Softmax { masked } => match (ctx.policy.softmax, masked) {
                    (SoftmaxApprox::Puma, false) => {
                        ("softmax_puma", vec![node(0), InlineArg::Int(t), base])
                    }
                    (SoftmaxApprox::Puma, true) => (
                        "softmax_puma_masked",
                        vec![node(0), node(1), InlineArg::Int(t), base],
                    ),
                    (SoftmaxApprox::TwoQuad, false) => ("softmax_2quad", vec![node(0)]),
                    (SoftmaxApprox::TwoQuad, true) => {
                        ("softmax_2quad_masked", vec![node(0), node(1)])
                    }
                },
                Op::LayerNorm { eps } => (
                    "layernorm_mpc",
                    vec![node(0), node(1), node(2), InlineArg::Float(*eps)],
                ),
                Op::Recip => ("recip_goldschmidt", vec![node(0), InlineArg::Int(5)]),
                Op::Rsqrt => ("rsqrt_poly", vec![node(0)]),
                Op::Tanh => ("tanh_exp", vec![node(0), InlineArg::Int(t)]),
                _ => continue,
            };
            let Some(format) = n.ty.format() else {
                continue;
            };
            let mut classes = ctx.policy.formats.clone();
            // a policy that does not name `scores` or `exp` keeps the row max
            // and exp's squarings in the node's format
            classes.entry("scores".into()).or_insert(format);
            classes.entry("exp".into()).or_insert(format);
            classes.entry("gelu_poly".into()).or_insert(format);
            let (class, name, bound) = (n.class.clone(), n.name.clone(), n.bound);
            let result = inline(g, "approx", func, &args, format, class, &classes)?;
            let r = g.node_mut(result);
            if r.name.is_none() {
                r.name = name;
            }
            r.bound = r.bound.or(bound);
            g.replace_uses(id, result);
            g.remove(id);
            changed = true;
        }
        if changed {
            g.prune_dead();
            // users that keep their operand's format follow the result's
            crate::ir::formats::refresh_inherited(g);
        }
        Ok(changed)
    }
}
