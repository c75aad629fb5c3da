//! Shared test helpers: a generator of random valid IR graphs.
#![allow(dead_code)]

use ditto_compiler::ir::infer::{infer, with_elem};
use ditto_compiler::ir::{Elem, Format, Graph, Loc, Node, NodeId, Op, Owner, Type, Vis};

/// Builds a random valid graph from a list of choices: each step picks an op
/// kind and operands among the nodes so far; steps whose types do not fit are
/// skipped, so every graph produced passes the verifier.
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
    let mut nodes = vec![a, w];
    for (i, &(kind, x, y, p)) in steps.iter().enumerate() {
        let pick = |k: u16| nodes[k as usize % nodes.len()];
        let (op, args): (Op, Vec<NodeId>) = match kind % 14 {
            0 => (Op::Add, vec![pick(x), pick(y)]),
            1 => (Op::Mul, vec![pick(x), pick(y)]),
            2 => (Op::MatMul, vec![pick(x), pick(y)]),
            3 => (Op::Transpose { perm: vec![1, 0] }, vec![pick(x)]),
            4 => (Op::Exp, vec![pick(x)]),
            5 => (Op::Softmax { masked: false }, vec![pick(x)]),
            6 => (
                Op::Sum {
                    axis: (p % 2) as usize,
                },
                vec![pick(x)],
            ),
            7 => (Op::Gt, vec![pick(x), pick(y)]),
            8 => (Op::Select, vec![pick(p), pick(x), pick(y)]),
            9 => (
                Op::Const {
                    value: p as f64 / 7.0 - 3.0,
                },
                vec![],
            ),
            10 => (Op::Reshape { shape: vec![2, 6] }, vec![pick(x)]),
            11 => (
                Op::Gelu {
                    tanh: p.is_multiple_of(2),
                },
                vec![pick(x)],
            ),
            12 => (
                Op::Concat {
                    axis: (p % 2) as usize,
                },
                vec![pick(x), pick(y)],
            ),
            _ => (
                Op::Slice {
                    axis: 0,
                    start: 0,
                    end: 1 + (p % 3) as usize,
                },
                vec![pick(x)],
            ),
        };
        let ty = if let Op::Const { .. } = op {
            Type::fixed(Vis::Public, fm(p), vec![])
        } else {
            let types: Vec<&Type> = args.iter().map(|&n| &g.node(n).ty).collect();
            match infer(&op, &types) {
                Ok(Some(inf)) => with_elem(inf, Elem::Fixed(fm(p))),
                _ => continue,
            }
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
        nodes.push(g.add(n, &args));
    }
    let last = *nodes.last().expect("at least the inputs");
    let ty = g.node(last).ty.clone();
    g.add(Node::new(Op::Output { name: "out".into() }, ty), &[last]);
    g
}
