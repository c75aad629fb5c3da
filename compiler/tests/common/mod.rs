//! Shared test helpers: a generator of random valid IR graphs that draws its
//! ops from the declarations (`ops::table()`), so a new op is generated as soon
//! as it is declared.
#![allow(dead_code)]

use ditto_compiler::ir::eval::{evaluate, Tensor};
use ditto_compiler::ir::fixed::evaluate_fixed;
use ditto_compiler::ir::infer::{infer, with_elem};
use ditto_compiler::ir::ops::{table, Arity, AttrVal, OpInfo};
use ditto_compiler::ir::verify::{verify, VerifyError};
use ditto_compiler::ir::{Elem, Format, Graph, Loc, Node, NodeId, Op, Owner, Type, Vis};
use ditto_compiler::weights::InMemory;
use std::collections::{BTreeMap, HashMap};

/// The values of the generated graphs' input `a` [3, 4].
pub fn inputs() -> HashMap<String, Tensor> {
    HashMap::from([(
        "a".to_string(),
        Tensor::new(
            vec![3, 4],
            (0..12).map(|i| (i as f64 - 5.0) / 7.0).collect(),
        ),
    )])
}

/// The values of the generated graphs' weight `w` [4, 3].
pub fn weights() -> InMemory {
    InMemory(BTreeMap::from([(
        "w".to_string(),
        Tensor::new(
            vec![4, 3],
            (0..12).map(|i| (i as f64) / 11.0 - 0.4).collect(),
        ),
    )]))
}

/// A value for an attribute of kind `kind` (`AttrField::KIND`) from the bits
/// of `p`; `slot` tells the attributes of one op apart.
fn attr(key: &str, kind: &str, p: u16, slot: usize, i: usize) -> AttrVal {
    let bits = (p as usize).rotate_right(3 * slot as u32);
    match kind {
        "integer" => AttrVal::Int((bits % 4) as i64 + i64::from(key == "end" || key == "n")),
        "number" => AttrVal::Float(p as f64 / 7.0 - 3.0),
        "string" => AttrVal::Str(format!("v{i}")),
        "integer list" => {
            const LISTS: &[&[i64]] = &[
                &[1, 0],
                &[2, 6],
                &[12],
                &[3, 4],
                &[4, 3],
                &[1, 3, 4],
                &[3, 1],
                &[4],
                &[3],
            ];
            AttrVal::List(LISTS[bits % LISTS.len()].to_vec())
        }
        "flag" => AttrVal::Flag,
        // identifiers: "x, y or z"
        alts => {
            let names: Vec<&str> = alts
                .split([',', ' '])
                .filter(|w| !w.is_empty() && *w != "or")
                .collect();
            AttrVal::Ident(names[bits % names.len()].to_string())
        }
    }
}

/// Builds a random valid graph from a list of choices: each step picks an op
/// of the declaration, attribute values and operands among the nodes so far;
/// steps whose types, formats or values do not fit (the verifier refuses the
/// node, or the float or fixed-point evaluator fails on it) are skipped, so
/// every graph produced is valid and evaluates. Inputs, weights and outputs
/// are the frame: input `a`, weight `w`, and one output of the last node.
pub fn random_graph(steps: &[(u8, u16, u16, u16)]) -> Graph {
    let mut g = Graph::new("random");
    g.files.push("random.ditto".into());
    let fm = |k: u16| {
        if k.is_multiple_of(2) {
            Format::LOW
        } else {
            Format::HIGH
        }
    };
    let a = g.add(
        Node::new(
            Op::Input {
                name: "a".into(),
                owner: Owner::Client,
            },
            Type::fixed(Vis::Secret, Format::HIGH, vec![3, 4]),
        ),
        &[],
    );
    let w = g.add(
        Node::new(
            Op::Weight {
                name: "w".into(),
                transposed: false,
            },
            Type::fixed(Vis::Secret, Format::LOW, vec![4, 3]),
        ),
        &[],
    );
    let (ins, ws) = (inputs(), weights());
    let mut nodes = vec![a, w];
    let decls: Vec<&OpInfo> = table().collect();
    for (i, &(kind, x, y, p)) in steps.iter().enumerate() {
        let info = decls[kind as usize % decls.len()];
        if matches!(info.name, "input" | "weight" | "output") {
            continue; // the frame's
        }
        let mut attrs = BTreeMap::new();
        for (slot, (key, k)) in info.attrs.iter().enumerate() {
            // a flag is on for odd p (bit `slot`)
            if *k == "flag" && (p >> slot) & 1 == 0 {
                continue;
            }
            attrs.insert(key.to_string(), attr(key, k, p, slot, i));
        }
        let Ok(op) = Op::from_parts(info.name, &attrs) else {
            continue;
        };
        let pick = |k: u16| nodes[k as usize % nodes.len()];
        // a few operand choices, the first whose types fit
        let choice = |t: u16| {
            let (p, x, y) = (
                p.wrapping_add(7 * t),
                x.wrapping_add(13 * t),
                y.wrapping_add(31 * t),
            );
            match op.arity() {
                Arity::Exactly(0) => vec![],
                Arity::Exactly(1) => vec![pick(x)],
                Arity::Exactly(2) => vec![pick(x), pick(y)],
                Arity::Exactly(_) => vec![pick(p), pick(x), pick(y)],
                Arity::AtLeast(_) => vec![pick(x), pick(y)],
            }
        };
        let typed = |args: &[NodeId]| -> Option<Type> {
            match &op {
                Op::Const { .. } => Some(Type::fixed(Vis::Public, fm(p), vec![])),
                Op::Iota { n } => Some(Type::fixed(
                    Vis::Public,
                    Format::new(fm(p).ring.bits() as i64, 0).unwrap(),
                    vec![*n],
                )),
                // a table as wide as the input
                Op::Rotary { .. } => Some(Type::fixed(Vis::Public, fm(p), vec![3, 4])),
                _ => {
                    let types: Vec<&Type> = args.iter().map(|&n| &g.node(n).ty).collect();
                    let mut fmt = fm(p);
                    if let Op::Rescale { bits } = op {
                        // the same words with `bits` more fraction bits
                        let f = types[0].format()?;
                        fmt =
                            Format::new(f.ring.bits() as i64, f.frac as i64 + bits as i64).ok()?;
                    }
                    match infer(&op, &types) {
                        Ok(Some(inf)) => Some(with_elem(inf, Elem::Fixed(fmt))),
                        _ => None,
                    }
                }
            }
        };
        let Some((args, ty)) = (0..8).map(choice).find_map(|a| typed(&a).map(|t| (a, t))) else {
            continue;
        };
        let mut n = Node::new(op, ty);
        if p.is_multiple_of(3) {
            n.name = Some(format!("v{i}"));
        }
        if p.is_multiple_of(11) {
            n.name = Some(format!("odd\u{0}\"\\\n\t\u{7f}é{i}"));
        }
        if p.is_multiple_of(5) {
            n.class = Some("linear".into());
        }
        if p.is_multiple_of(7) {
            n.bound = Some(p as f64 / 4.0);
        }
        n.loc = Some(Loc {
            file: 0,
            line: i as u32 + 1,
            col: 5,
            len: p as u32,
        });
        let id = g.add(n, &args);
        // (the output comes last)
        let fits = verify(&g)
            .iter()
            .all(|e| matches!(e, VerifyError::NoOutput))
            && evaluate(&g, &ins, &ws, &|_| false).is_ok()
            && evaluate_fixed(&g, &ins, &ws).is_ok();
        if fits {
            nodes.push(id);
        } else {
            g.remove(id);
        }
    }
    let last = *nodes.last().expect("at least the inputs");
    let ty = g.node(last).ty.clone();
    g.add(
        Node::new(
            Op::Output {
                name: "out".into(),
                kept: false,
            },
            ty,
        ),
        &[last],
    );
    g
}
