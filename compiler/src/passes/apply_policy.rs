//! `apply-policy`: gives every node of a format class the format the policy
//! assigns to that class, then lets data-movement nodes take their operand's
//! format again (`ir::formats`). Nodes outside any class (explicit formats,
//! integers, booleans) keep theirs.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::formats::inherited;
use crate::ir::{Elem, Graph, Op};

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
        // a class the policy names but neither the graph nor the stdlib
        // knows is a misspelling: it would silently change nothing
        let stdlib = crate::stdlib::format_classes();
        let classes: std::collections::BTreeSet<&str> = g
            .ids()
            .into_iter()
            .filter_map(|i| g.node(i).class.as_deref())
            .chain(stdlib.iter().map(|(c, _)| c.as_str()))
            .collect();
        let unknown: Vec<Diagnostic> = ctx
            .policy
            .formats
            .keys()
            .filter(|c| !classes.contains(c.as_str()))
            .map(|c| {
                let d = Diagnostic::global(format!(
                    "policy `{}` assigns a format to class `{c}`, which neither this model nor \
                     the stdlib declares",
                    ctx.policy.name
                ));
                match crate::elab::closest(c, classes.iter().copied()) {
                    Some(near) => d.with_hint(format!("did you mean `{near}`?")),
                    None => d.with_hint(format!(
                        "classes here: {}",
                        classes.iter().copied().collect::<Vec<_>>().join(", ")
                    )),
                }
            })
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut changed = false;
        for id in order {
            let args = g.operands(id);
            let n = g.node(id);
            let Elem::Fixed(old) = n.ty.elem else {
                continue;
            };
            if matches!(n.op, Op::Iota { .. }) {
                continue; // integers keep their format
            }
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
