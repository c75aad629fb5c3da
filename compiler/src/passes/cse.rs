//! `cse`: merges nodes that compute the same thing — same op and attributes,
//! same operands, same type. Inputs, weights and outputs are never merged
//! (they are named interfaces); constants merge by value and type.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Graph, NodeId, Op};
use std::collections::HashMap;

pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }
    fn description(&self) -> &'static str {
        "merge nodes computing the same value"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let order = g
            .topo_order()
            .map_err(|_| vec![Diagnostic::global("internal error: cse on a cyclic graph")])?;
        let mut seen: HashMap<String, NodeId> = HashMap::new();
        let mut changed = false;
        for id in order {
            let n = g.node(id);
            if matches!(
                n.op,
                Op::Input { .. } | Op::Weight { .. } | Op::Output { .. }
            ) {
                continue;
            }
            // The key: op text with attributes, operand ids and type. Constants
            // compare by the bits of their value.
            let attrs: Vec<String> =
                n.op.attrs()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
            let value_bits = match n.op {
                Op::Const { value } => value.to_bits(),
                _ => 0,
            };
            let ops: Vec<usize> = g.operands(id).iter().map(|o| o.index()).collect();
            let key = format!(
                "{}|{}|{value_bits}|{ops:?}|{}",
                n.op.name(),
                attrs.join(","),
                n.ty
            );
            match seen.get(&key) {
                Some(&first) => {
                    g.replace_uses(id, first);
                    g.remove(id);
                    changed = true;
                }
                None => {
                    seen.insert(key, id);
                }
            }
        }
        Ok(changed)
    }
}
