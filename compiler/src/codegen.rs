//! Code generation: a lowered IR graph becomes a bytecode [`Program`]. One
//! register per node, in the graph's deterministic topological order, typed
//! from the node's type; ports in order of appearance. High-level operations
//! that `lower-nonlinear` did not replace (standalone `exp`) have no
//! instruction and are reported at their DSL line.
//!
//! When the `schedule` pass ran, nodes follow its order and a `round`
//! marker ends each step: the VM batches the communicating instructions
//! between two markers. Registers are not reused (the VM frees each after
//! its last read).

use crate::diag::Diagnostic;
use crate::ir::{Elem, Graph, NodeId, Op, Owner as IrOwner};
use ditto_bytecode::{Instr, Kind, Owner, Port, Pred, Program, Reg, RegType};
use std::collections::HashMap;

fn reg_type(t: &crate::ir::Type) -> RegType {
    RegType {
        secret: t.vis == crate::ir::Vis::Secret,
        kind: match t.elem {
            Elem::Fixed(f) => Kind::Fixed {
                ring: f.ring.bits() as u8,
                frac: f.frac,
            },
            Elem::Bool => Kind::Bool,
        },
        shape: t.shape.iter().map(|&d| d as u64).collect(),
    }
}

/// Declares a port; returns its index.
fn add_port(ports: &mut Vec<Port>, name: &str, reg: Reg, owner: Option<Owner>) -> u32 {
    ports.push(Port {
        name: name.to_string(),
        reg,
        owner,
        transposed: false,
    });
    ports.len() as u32 - 1
}

/// Output ports in the order the model declares its outputs (node order),
/// whatever order the schedule computes them in.
fn declaration_order(g: &Graph, p: &mut Program) {
    let names = g.output_names();
    let rank = |name: &str| names.iter().position(|n| n == name).unwrap_or(usize::MAX);
    let mut order: Vec<usize> = (0..p.outputs.len()).collect();
    order.sort_by_key(|&i| rank(&p.outputs[i].name));
    let mut new_port = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_port[old] = new as u32;
    }
    p.outputs = order.iter().map(|&i| p.outputs[i].clone()).collect();
    for ins in &mut p.code {
        if let Instr::Output { port, .. } = ins {
            *port = new_port[*port as usize];
        }
    }
}

/// Whether `steps` orders every node of `g` exactly once, after its operands.
fn schedule_fits(g: &Graph, steps: &[crate::ir::Step], topo: &[NodeId]) -> bool {
    let mut pos: HashMap<NodeId, usize> = HashMap::new();
    for (i, id) in steps.iter().flat_map(|s| s.nodes.iter()).enumerate() {
        if !g.contains(*id) || pos.insert(*id, i).is_some() {
            return false;
        }
    }
    pos.len() == topo.len()
        && topo
            .iter()
            .all(|&id| g.operands(id).iter().all(|o| pos[o] < pos[&id]))
}

/// The scope of a weight: its name up to the first numeric component
/// (`encoder.layer.3.attention.self.query.weight` → `encoder.layer.3`,
/// `h.0.mlp.c_fc.weight` → `h.0`), or its first component
/// (`pooler.dense.weight` → `pooler`).
pub fn weight_scope(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    match parts
        .iter()
        .position(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Some(i) => parts[..=i].join("."),
        None => parts[0].to_string(),
    }
}

/// Each node's scope for cost reports: a weight's own; a node using a weight
/// directly, that weight's; otherwise the latest-opened scope among its
/// operands ("inputs" for nodes without any).
fn scopes(g: &Graph, order: &[NodeId]) -> HashMap<NodeId, String> {
    let mut scope: HashMap<NodeId, String> = HashMap::new();
    let mut opened: HashMap<String, usize> = HashMap::new();
    for &id in order {
        let s = match &g.node(id).op {
            Op::Weight { name, .. } => weight_scope(name),
            _ => {
                let ops = g.operands(id);
                let direct = ops.iter().find_map(|o| match &g.node(*o).op {
                    Op::Weight { name, .. } => Some(weight_scope(name)),
                    _ => None,
                });
                direct.unwrap_or_else(|| {
                    ops.iter()
                        .filter_map(|o| scope.get(o))
                        .max_by_key(|s| opened.get(*s).copied().unwrap_or(0))
                        .cloned()
                        .unwrap_or_else(|| "inputs".to_string())
                })
            }
        };
        let n = opened.len();
        opened.entry(s.clone()).or_insert(n);
        scope.insert(id, s);
    }
    scope
}

/// Emits the program for `g`; `where_` renders a node's location for errors.
pub fn codegen(g: &Graph, where_: &dyn Fn(NodeId) -> String) -> Result<Program, Vec<Diagnostic>> {
    let topo = g.topo_order().map_err(|_| {
        vec![Diagnostic::global(
            "internal error: codegen on a cyclic graph",
        )]
    })?;
    // the schedule's order with a round marker after each step, when the
    // `schedule` pass ran and its schedule still fits the graph
    let (order, breaks) = match g.schedule.as_ref().filter(|s| schedule_fits(g, s, &topo)) {
        Some(steps) => {
            let mut order = Vec::with_capacity(topo.len());
            let mut breaks = std::collections::HashSet::new();
            for (i, st) in steps.iter().enumerate() {
                order.extend_from_slice(&st.nodes);
                if i + 1 < steps.len() {
                    breaks.insert(*st.nodes.last().expect("steps are not empty"));
                }
            }
            (order, breaks)
        }
        None => (topo, Default::default()),
    };
    let mut reg: HashMap<NodeId, Reg> = HashMap::new();
    let mut p = Program::default();
    let scope = scopes(g, &order);
    let mut scope_index: HashMap<&str, u32> = HashMap::new();
    let mut errors = vec![];
    // registers written inside @approx code (for the run-time range guard)
    let mut approx: Vec<u32> = vec![];
    for id in order.iter().copied() {
        let name = scope[&id].as_str();
        let k = match scope_index.get(name) {
            Some(&k) => k,
            None => {
                p.scopes.push(name.to_string());
                scope_index.insert(name, p.scopes.len() as u32 - 1);
                p.scopes.len() as u32 - 1
            }
        };
        let n = g.node(id);
        // operands skipped after an error have no register: skip their users
        let Some(ops) = g
            .operands(id)
            .iter()
            .map(|o| reg.get(o).copied())
            .collect::<Option<Vec<Reg>>>()
        else {
            continue;
        };
        let dst = Reg(p.regs.len() as u32);
        let a = || ops[0];
        let cmp = |pred| Instr::Cmp {
            dst,
            a: ops[0],
            b: ops[1],
            pred,
        };
        let instr = match &n.op {
            Op::Input { name, owner } => {
                let owner = match owner {
                    IrOwner::Client => Owner::Client,
                    IrOwner::ModelOwner => Owner::ModelOwner,
                    IrOwner::Parties => Owner::Parties,
                };
                let port = add_port(&mut p.inputs, name, dst, Some(owner));
                Instr::Input { dst, port }
            }
            Op::Weight { name, transposed } => {
                let port = add_port(&mut p.weights, name, dst, None);
                p.weights[port as usize].transposed = *transposed;
                Instr::Weight { dst, port }
            }
            Op::Output { name, kept } => {
                let to = kept.then_some(Owner::Parties);
                let port = add_port(&mut p.outputs, name, a(), to);
                p.code.push(Instr::Output { port, a: a() });
                p.scope_of.push(k);
                if breaks.contains(&id) {
                    p.code.push(Instr::Round {});
                    p.scope_of.push(k);
                }
                continue;
            }
            Op::Const { value } => Instr::Const { dst, value: *value },
            Op::Iota { .. } => Instr::Iota { dst },
            Op::Rotary {
                part,
                theta,
                offset,
            } => Instr::Rotary {
                dst,
                part: *part,
                theta: *theta,
                offset: *offset as u32,
            },
            Op::Add => Instr::Add {
                dst,
                a: ops[0],
                b: ops[1],
            },
            Op::Sub => Instr::Sub {
                dst,
                a: ops[0],
                b: ops[1],
            },
            Op::Mul => Instr::Mul {
                dst,
                a: ops[0],
                b: ops[1],
            },
            Op::Neg => Instr::Neg { dst, a: a() },
            Op::MatMul => Instr::MatMul {
                dst,
                a: ops[0],
                b: ops[1],
            },
            Op::Lt => cmp(Pred::Lt),
            Op::Gt => cmp(Pred::Gt),
            Op::Le => cmp(Pred::Le),
            Op::Ge => cmp(Pred::Ge),
            Op::Eq => cmp(Pred::Eq),
            Op::Ne => cmp(Pred::Ne),
            Op::Not => Instr::Not { dst, a: a() },
            Op::Select => Instr::Select {
                dst,
                c: ops[0],
                a: ops[1],
                b: ops[2],
            },
            Op::Transpose { perm } => Instr::Transpose {
                dst,
                a: a(),
                perm: perm.iter().map(|&x| x as u32).collect(),
            },
            Op::Reshape { .. } => Instr::Reshape { dst, a: a() },
            Op::Slice { axis, start, .. } => Instr::Slice {
                dst,
                a: a(),
                axis: *axis as u32,
                start: *start as u32,
            },
            Op::Concat { axis } => Instr::Concat {
                dst,
                srcs: ops.clone(),
                axis: *axis as u32,
            },
            Op::Broadcast { .. } => Instr::Broadcast { dst, a: a() },
            Op::Sum { axis } => Instr::Sum {
                dst,
                a: a(),
                axis: *axis as u32,
            },
            Op::Max { axis } => Instr::Max {
                dst,
                a: a(),
                axis: *axis as u32,
            },
            Op::Mean { axis } => Instr::Mean {
                dst,
                a: a(),
                axis: *axis as u32,
            },
            Op::NormScale { kind } => Instr::NormScale {
                dst,
                a: a(),
                kind: *kind,
            },
            Op::Embed => Instr::Embed {
                dst,
                ids: ops[0],
                table: ops[1],
            },
            Op::Convert => Instr::Convert { dst, a: a() },
            Op::Rescale { .. } => Instr::Rescale { dst, a: a() },
            Op::High(_) => {
                errors.push(Diagnostic::global(format!(
                    "{}: `{}` has no MPC instruction; it must be lowered first (lower-nonlinear has no approximation for a standalone `{}`)",
                    where_(id),
                    n.op.name(),
                    n.op.name()
                )));
                continue;
            }
        };
        p.regs.push(reg_type(&n.ty));
        reg.insert(id, dst);
        if n.approx {
            approx.push(dst.0);
        }
        p.code.push(instr);
        p.scope_of.push(k);
        if breaks.contains(&id) {
            p.code.push(Instr::Round {});
            p.scope_of.push(k);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    declaration_order(g, &mut p);
    if !approx.is_empty() {
        p.meta.push((
            ditto_bytecode::APPROX_META.to_string(),
            ditto_bytecode::encode_regs(&approx),
        ));
    }
    ditto_bytecode::validate(&p).map_err(|e| {
        vec![Diagnostic::global(format!(
            "internal error: codegen produced an invalid program: {e}"
        ))]
    })?;
    Ok(p)
}
