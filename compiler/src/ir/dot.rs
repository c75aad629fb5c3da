//! Graphviz DOT output of an IR graph: one box per node labelled with its op,
//! DSL name and type; secret nodes filled, edges labelled by operand position
//! when an op has more than one operand.

use super::graph::Graph;
use super::types::Vis;
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn to_dot(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.ids());
    let num: std::collections::HashMap<_, _> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut out = format!(
        "digraph \"{}\" {{\n  node [shape=box, fontname=\"monospace\"];\n",
        esc(&g.name)
    );
    for &id in &order {
        let n = g.node(id);
        let mut label = format!("%{} {}", num[&id], n.op.name());
        if let Some(name) = &n.name {
            let _ = write!(label, " ({name})");
        }
        let _ = write!(label, "\\n{}", n.ty);
        if let Some(c) = &n.class {
            let _ = write!(label, "\\n[{c}]");
        }
        let style = if n.ty.vis == Vis::Secret {
            ", style=filled, fillcolor=\"#f3e0c0\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  n{} [label=\"{}\"{}];",
            num[&id],
            esc(&label).replace("\\\\n", "\\n"),
            style
        );
    }
    for &id in &order {
        let ops = g.operands(id);
        for (pos, o) in ops.iter().enumerate() {
            if ops.len() > 1 {
                let _ = writeln!(out, "  n{} -> n{} [label=\"{pos}\"];", num[o], num[&id]);
            } else {
                let _ = writeln!(out, "  n{} -> n{};", num[o], num[&id]);
            }
        }
    }
    out.push_str("}\n");
    out
}
