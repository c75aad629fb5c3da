//! The IR verifier. It runs after elaboration, after parsing IR text, and
//! after every pass of the pipeline (`passes::run`).
//!
//! Invariants checked, each with its own [`VerifyError`] variant:
//!
//! 1. **Acyclic**: the graph has a topological order.
//! 2. **Arity**: every node has the operand count its op requires.
//! 3. **Types**: every non-leaf node's shape, visibility and element kind
//!    (boolean or fixed-point) equal what [`super::infer::infer`] derives from
//!    its operands; in particular a public node never depends on a secret one.
//! 4. **Formats**: every fixed-point format has ring 32 or 64 and
//!    0 ≤ frac ≤ k − 4.
//! 5. **Leaves**: `iota n` has type `p?.0[n]` (public integers); `const` is a
//!    public rank-0 fixed-point value; inputs and weights are fixed-point.
//! 6. **Names**: input names, weight names and output names are each unique;
//!    there is at least one output; outputs have no users.
//! 7. **Locations**: every `!loc` names a file of the graph's file table.
//! 8. **Rescales**: `rescale bits=j` keeps its operand's ring and adds j
//!    fraction bits.

use super::graph::{Graph, NodeId};
use super::infer::infer;
use super::ops::Op;
use super::types::{Elem, Format, Vis};
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("the graph has a cycle through node {0}")]
    Cycle(usize),
    #[error("node {node} ({op}): {message}")]
    Type {
        node: usize,
        op: &'static str,
        message: String,
    },
    #[error("node {node} ({op}): declared type {declared} but its operands give {derived}")]
    Mismatch {
        node: usize,
        op: &'static str,
        declared: String,
        derived: String,
    },
    #[error("node {node}: invalid format {format}")]
    BadFormat { node: usize, format: String },
    #[error("node {node} ({op}): {message}")]
    BadLeaf {
        node: usize,
        op: &'static str,
        message: String,
    },
    #[error("{kind} name {name:?} is used twice")]
    DuplicateName { kind: &'static str, name: String },
    #[error("the graph has no output")]
    NoOutput,
    #[error("state {name:?}: kept as {kept} but read `from parties` as {read}: the next run could not read it")]
    StateType {
        name: String,
        kept: String,
        read: String,
    },
    #[error("node {0}: an output must not be used by other nodes")]
    UsedOutput(usize),
    #[error("node {node}: location names file {file}, but the graph lists {files} file(s)")]
    BadLoc {
        node: usize,
        file: u32,
        files: usize,
    },
}

/// Checks every invariant; returns all violations found (empty when valid).
pub fn verify(g: &Graph) -> Vec<VerifyError> {
    let mut errs = vec![];
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(n) => return vec![VerifyError::Cycle(n.index())],
    };
    let mut names: [HashSet<String>; 3] = Default::default();
    let mut outputs = 0;
    for &id in &order {
        check_node(g, id, &mut errs);
        let n = g.node(id);
        let (slot, kind, name) = match &n.op {
            Op::Input { name, .. } => (0, "input", name),
            Op::Weight { name, .. } => (1, "weight", name),
            Op::Output { name, .. } => {
                outputs += 1;
                if !g.users(id).is_empty() {
                    errs.push(VerifyError::UsedOutput(id.index()));
                }
                (2, "output", name)
            }
            _ => continue,
        };
        if !names[slot].insert(name.clone()) {
            errs.push(VerifyError::DuplicateName {
                kind,
                name: name.clone(),
            });
        }
    }
    if outputs == 0 {
        errs.push(VerifyError::NoOutput);
    }
    // session state: what a run keeps is what the next one reads
    for &id in &order {
        let Op::Output { name, kept: true } = &g.node(id).op else {
            continue;
        };
        let read = order.iter().find(|&&i| {
            matches!(&g.node(i).op, Op::Input { name: n, owner: super::ops::Owner::Parties } if n == name)
        });
        if let Some(&i) = read {
            let (kept, read) = (&g.node(id).ty, &g.node(i).ty);
            if kept != read {
                errs.push(VerifyError::StateType {
                    name: name.clone(),
                    kept: kept.to_string(),
                    read: read.to_string(),
                });
            }
        }
    }
    errs
}

fn check_node(g: &Graph, id: NodeId, errs: &mut Vec<VerifyError>) {
    let n = g.node(id);
    let node = id.index();
    let op = n.op.name();
    if let Elem::Fixed(f) = n.ty.elem {
        if Format::new(f.ring.bits() as i64, f.frac as i64).is_err() {
            errs.push(VerifyError::BadFormat {
                node,
                format: f.to_string(),
            });
        }
    }
    if let Some(l) = n.loc {
        if l.file as usize >= g.files.len() {
            errs.push(VerifyError::BadLoc {
                node,
                file: l.file,
                files: g.files.len(),
            });
        }
    }
    let operands = g.operands(id);
    if let (Op::Rescale { bits }, Some(&x)) = (&n.op, operands.first()) {
        let (have, got) = (g.node(x).ty.format(), n.ty.format());
        let ok = matches!((have, got), (Some(a), Some(b)) if a.ring == b.ring && b.frac as usize == a.frac as usize + bits);
        if !ok {
            errs.push(VerifyError::Type {
                node,
                op,
                message: format!(
                    "a rescale by {bits} bits keeps the ring and adds {bits} fraction bits ({} to {})",
                    g.node(x).ty,
                    n.ty
                ),
            });
        }
    }
    let types: Vec<_> = operands.iter().map(|&o| &g.node(o).ty).collect();
    match infer(&n.op, &types) {
        Err(message) => errs.push(VerifyError::Type { node, op, message }),
        Ok(Some(inf)) => {
            if inf.vis != n.ty.vis || inf.is_bool != n.ty.is_bool() || inf.shape != n.ty.shape {
                let derived = format!(
                    "{}{}{}",
                    inf.vis.letter(),
                    if inf.is_bool { "bool" } else { "<fixed>" },
                    super::types::shape_str(&inf.shape)
                );
                errs.push(VerifyError::Mismatch {
                    node,
                    op,
                    declared: n.ty.to_string(),
                    derived,
                });
            }
        }
        Ok(None) => {
            let bad = |message: &str| VerifyError::BadLeaf {
                node,
                op,
                message: message.into(),
            };
            if let Err(e) = crate::ir::infer::no_empty_axis(&n.ty.shape) {
                errs.push(bad(&e));
            }
            match &n.op {
                Op::Iota { n: len } => {
                    let ok = n.ty.vis == Vis::Public
                        && n.ty.format().map(|f| f.frac) == Some(0)
                        && n.ty.shape == [*len];
                    if !ok {
                        errs.push(bad(&format!("iota {len} must have type p?.0[{len}]")));
                    }
                }
                Op::Rotary { theta, .. } => {
                    let ok = theta.is_finite()
                        && *theta > 0.0
                        && n.ty.vis == Vis::Public
                        && n.ty.format().is_some()
                        && n.ty.shape.len() == 2
                        && n.ty.shape[1].is_multiple_of(2);
                    if !ok {
                        errs.push(bad(
                            "a rotary table must be a public fixed-point matrix of even width",
                        ));
                    }
                }
                Op::Const { .. } => {
                    if n.ty.vis != Vis::Public || n.ty.is_bool() || n.ty.rank() != 0 {
                        errs.push(bad("a constant must be a public fixed-point scalar"));
                    }
                }
                _ => {
                    if n.ty.is_bool() {
                        errs.push(bad("inputs and weights must be fixed-point"));
                    }
                }
            }
        }
    }
}
