//! `schedule`: orders the graph for execution so that independent
//! communication shares rounds. Each node gets a level: a node that
//! communicates — whose declared cost has rounds (`passes::node_cost`: a
//! secret product not fused into its conversion, a conversion call, a
//! comparison, a select on a secret condition, a row max, a mean, a
//! normalisation, a lookup of secret ids) — sits one level above its deepest
//! operand; a local node at its deepest operand's level. Weights, constants and local nodes of them alone
//! then sink to the latest level their users allow (a weight is read just
//! before its first use). The schedule is then, level by level, the
//! communicating nodes of that level — independent of each other, so the VM
//! runs each kind of them as one batched protocol call — followed by the
//! local nodes of that level. Codegen emits a `round` marker after each step.
//!
//! The number of communicating steps is the graph's communication depth (the
//! critical path), the least any order can reach one instruction kind at a
//! time. Rounds per step are those of the costliest kind in it, summed over
//! the kinds present (the VM runs different kinds one after the other).

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Graph, NodeId, Op, Step};
use std::collections::HashMap;

pub struct Schedule;

/// Whether the VM runs a protocol (communicates) for this node: whether its
/// declared cost has rounds (`passes::node_cost`; a product fused into the
/// conversion that reads it is local, the conversion communicates).
pub fn communicates(g: &Graph, id: NodeId) -> bool {
    super::node_cost(g, id).rounds > 0
}

/// The schedule of `g` (see the module doc).
pub fn schedule(g: &Graph) -> Result<Vec<Step>, Vec<Diagnostic>> {
    let order = g.topo_order().map_err(|_| {
        vec![Diagnostic::global(
            "internal error: schedule on a cyclic graph",
        )]
    })?;
    let mut level: HashMap<NodeId, usize> = HashMap::new();
    let mut comm: HashMap<NodeId, bool> = HashMap::new();
    let mut top = 0;
    for &id in &order {
        let d = g.operands(id).iter().map(|o| level[o]).max().unwrap_or(0);
        let c = communicates(g, id);
        let l = d + usize::from(c);
        top = top.max(l);
        level.insert(id, l);
        comm.insert(id, c);
    }
    // Weights, constants and local nodes computed from them alone sink to
    // the latest level their users allow, so the VM reads each weight just
    // before it is used (and may deal it while earlier layers run) instead
    // of all at the start.
    let mut sinkable: HashMap<NodeId, bool> = HashMap::new();
    for &id in &order {
        let s = match g.node(id).op {
            Op::Weight { .. } | Op::Const { .. } => true,
            Op::Input { .. } | Op::Output { .. } => false,
            _ => {
                !comm[&id] && {
                    let ops = g.operands(id);
                    !ops.is_empty() && ops.iter().all(|o| sinkable[o])
                }
            }
        };
        sinkable.insert(id, s);
    }
    for &id in order.iter().rev() {
        if !sinkable[&id] {
            continue;
        }
        // a communicating user runs in its level's first half: be ready in
        // the level before; a local user may share its level
        let latest = g
            .users(id)
            .iter()
            .map(|u| level[u] - usize::from(comm[u]))
            .min();
        if let Some(l) = latest {
            level.insert(id, l);
        }
    }
    let mut steps = Vec::new();
    for l in 0..=top {
        for round in [true, false] {
            let nodes: Vec<NodeId> = order
                .iter()
                .copied()
                .filter(|id| level[id] == l && comm[id] == round)
                .collect();
            if !nodes.is_empty() {
                steps.push(Step { round, nodes });
            }
        }
    }
    Ok(steps)
}

impl Pass for Schedule {
    fn name(&self) -> &'static str {
        "schedule"
    }
    fn description(&self) -> &'static str {
        "order nodes by communication level so independent protocols share rounds"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let s = schedule(g)?;
        let changed = g.schedule.as_ref() != Some(&s);
        g.schedule = Some(s);
        Ok(changed)
    }
}
