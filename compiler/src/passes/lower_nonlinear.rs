//! `lower-nonlinear`: replaces each node the policy lowers (`lowerings`:
//! op → `@approx` function, docs/passes.md) by that function instantiated on
//! the graph (`elab::inline`), so that the following passes place
//! conversions and truncations inside it. The function takes the node's
//! operands, then parameters bound by name: the op's attributes (`eps` of
//! `layernorm`) first, then the policy's `parameters`. The built-in policies
//! lower:
//!
//! | op | to |
//! |---|---|
//! | `gelu` | `gelu_puma` (`gelu_puma_half` in Z_2^32), `gelu_sym` (ditto), `gelu_quad` (ditto-quad) |
//! | `softmax` | `softmax_puma(x, t, base)`, masked `softmax_puma_masked(x, mask, t, base)` |
//! | `layernorm` | `layernorm_mpc(x, γ, β, eps)` |
//! | `recip` | `recip_goldschmidt(x, iters)` |
//! | `rsqrt` | `rsqrt_poly(x)` |
//! | `tanh` | `tanh_exp(x, t)` |
//!
//! An op the policy does not lower is left as it is (`exp` on its own, whose
//! input is not known to be ≤ 0); codegen refuses one without an MPC
//! instruction, naming it.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::elab::{functions, inline, InlineArg, Source};
use crate::ir::ops::AttrVal;
use crate::ir::Graph;
use crate::policy::{Param, Policy};

pub struct LowerNonlinear;

/// The sources of a policy's approximations: the stdlib's `approx` module
/// and the policy's own.
fn sources(p: &Policy) -> Vec<Source<'_>> {
    let (file, text) = crate::stdlib::module("approx").expect("stdlib has approx");
    std::iter::once((file, text))
        .chain(p.modules.iter().map(|m| (m.file.as_str(), m.text.as_str())))
        .collect()
}

/// Checks a policy's lowerings against its sources: every function exists
/// and is marked `@approx`.
pub fn check_policy(p: &Policy) -> Result<(), String> {
    if p.lowerings.is_empty() {
        return Ok(());
    }
    let mut g = Graph::new("policy");
    let srcs = sources(p);
    let (fns, _) =
        functions(&mut g, &srcs).map_err(|d| crate::diag::render(&texts_of(&srcs), &d, false))?;
    for (key, f) in &p.lowerings {
        match fns.get(f) {
            None => {
                let hint = crate::elab::closest(f, fns.keys().map(String::as_str))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(format!("lowering `{key}`: no function `{f}`{hint}"));
            }
            Some(def) if !crate::elab::is_approx(def) => {
                return Err(format!("lowering `{key}`: `{f}` is not marked `@approx`"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn texts_of(srcs: &[Source]) -> crate::diag::Sources {
    let mut s = crate::diag::Sources::default();
    for (f, t) in srcs {
        s.add(*f, *t);
    }
    s
}

impl Pass for LowerNonlinear {
    fn name(&self) -> &'static str {
        "lower-nonlinear"
    }
    fn description(&self) -> &'static str {
        "replace the ops the policy lowers (gelu, softmax, layernorm, ...) by its @approx functions"
    }
    fn run(&self, g: &mut Graph, ctx: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let policy = ctx.policy;
        // the nodes to lower, and their functions
        let plan: Vec<(crate::ir::NodeId, String)> = g
            .ids()
            .into_iter()
            .filter_map(|id| {
                let n = g.node(id);
                let ring = n.ty.format()?.ring.bits();
                let attrs = n.op.attrs();
                let flags: Vec<&str> = attrs
                    .iter()
                    .filter(|(_, v)| *v == AttrVal::Flag)
                    .map(|(k, _)| *k)
                    .collect();
                let func = policy.lowering(n.op.name(), &flags, Some(ring))?;
                Some((id, func.to_string()))
            })
            .collect();
        if plan.is_empty() {
            return Ok(false);
        }
        // parsed once, against `g` (their nodes' `!loc` name these files)
        let srcs = sources(policy);
        let (fns, texts) = functions(g, &srcs)?;
        for (id, func) in plan {
            let func = func.as_str();
            let n = g.node(id);
            let format = n.ty.format().expect("planned nodes are fixed-point");
            let attrs = n.op.attrs();
            let def = fns.get(func).ok_or_else(|| {
                vec![Diagnostic::global(format!(
                    "policy `{}`: no function `{func}`",
                    policy.name
                ))]
            })?;
            let ops = g.operands(id);
            if def.params.len() < ops.len() {
                return Err(vec![Diagnostic::global(format!(
                    "policy `{}` lowers `{}` to `{func}`, which takes {} parameters: fewer than the op's {} operands",
                    policy.name,
                    n.op.name(),
                    def.params.len(),
                    ops.len()
                ))]);
            }
            let mut args: Vec<InlineArg> = ops.iter().map(|&o| InlineArg::Node(o)).collect();
            for p in &def.params[ops.len()..] {
                let name = p.name.name.as_str();
                let from_attr = attrs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| match v {
                        AttrVal::Int(i) => Some(InlineArg::Int(*i)),
                        AttrVal::Float(x) => Some(InlineArg::Float(*x)),
                        _ => None,
                    });
                let from_policy = || match policy.parameters.get(name)? {
                    Param::Int(i) => Some(InlineArg::Int(*i)),
                    Param::Float(x) => Some(InlineArg::Float(*x)),
                };
                let arg = from_attr.or_else(from_policy).ok_or_else(|| {
                    vec![Diagnostic::global(format!(
                        "policy `{}` lowers `{}` to `{func}`, whose parameter `{name}` is neither an attribute of the op nor one of the policy's `parameters`",
                        policy.name,
                        n.op.name()
                    ))]
                })?;
                args.push(arg);
            }
            let (class, name, bound) = (n.class.clone(), n.name.clone(), n.bound);
            let result = inline(g, &fns, &texts, func, &args, format, class, &policy.formats)?;
            let r = g.node_mut(result);
            if r.name.is_none() {
                r.name = name;
            }
            r.bound = r.bound.or(bound);
            g.replace_uses(id, result);
            g.remove(id);
        }
        g.prune_dead();
        // users that keep their operand's format follow the result's
        crate::ir::formats::refresh_inherited(g);
        Ok(true)
    }
}
