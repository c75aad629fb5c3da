//! IR tests: text round-trip (property tests on random graphs and on the
//! shipped models), the verifier's invariants, and the float evaluator's ops.

use ditto_compiler::driver::compile_text;
use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::{evaluate, Tensor, WeightSource};
use ditto_compiler::ir::text::{parse, print};
use ditto_compiler::ir::verify::{verify, VerifyError};
use ditto_compiler::ir::{Format, Graph, HighOp, Loc, Node, NodeId, Op, Owner, Ring, Type, Vis};
use proptest::prelude::*;

mod common;
use common::random_graph;
use std::collections::HashMap;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_graphs_round_trip(steps in prop::collection::vec((any::<u8>(), any::<u16>(), any::<u16>(), any::<u16>()), 0..40)) {
        let g = random_graph(&steps);
        prop_assert_eq!(verify(&g), vec![]);
        let text = print(&g);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(back.same_as(&g), "parse(print(g)) differs from g:\n{}", text);
        prop_assert_eq!(print(&back), text);
        prop_assert_eq!(verify(&back), vec![]);
    }
}

fn model_graph(file: &str, config: &str, seq: i64) -> Graph {
    let path = format!("{}/../models/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("model file");
    let opts = Options {
        config: Some(config.into()),
        seq: Some(seq),
        ..Default::default()
    };
    match compile_text(&path, &text, &opts).result {
        Ok(e) => e.graph,
        Err(d) => panic!("{file} does not compile: {d:?}"),
    }
}

#[test]
fn models_round_trip() {
    for (file, config) in [
        ("bert.ditto", "tiny"),
        ("gpt2.ditto", "tiny"),
        ("minilm.ditto", "l6"),
        ("bert.ditto", "base"),
    ] {
        let g = model_graph(file, config, 5);
        assert_eq!(verify(&g), vec![], "{file}");
        let text = print(&g);
        let back = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(back.same_as(&g), "{file}: round trip differs");
        assert_eq!(print(&back), text);
    }
}

#[test]
fn parser_rejects_malformed_text() {
    let cases = [
        ("", "graph NAME"),
        (
            "graph g\n%0 = frobnicate : s32.8[2]",
            "unknown op `frobnicate`",
        ),
        (
            "graph g\n%0 = add %1, %2 : s32.8[2]",
            "used before it is defined",
        ),
        (
            "graph g\n%0 = input name=\"x\" owner=client : s33.8[2]",
            "ring must be 32 or 64",
        ),
        (
            "graph g\n%0 = input name=\"x\" owner=nobody : s32.8[2]",
            "owner",
        ),
        (
            "graph g\n%0 = const value=1.0 colour=3 : p32.8[]",
            "no attribute `colour`",
        ),
        (
            "graph g\n%0 = const value=1.0 : p32.8[] !wat=1",
            "unknown metadata",
        ),
        (
            "graph g\n%0 = const value=1.0 : p32.8[]\n%0 = const value=2.0 : p32.8[]",
            "defined twice",
        ),
        (
            "graph g\n%0 = weight name=\"w\" : s32.8[2",
            "expected `,` or `]`",
        ),
        ("graph g\nfile 1 \"x\"", "expected file 0"),
        // found by the ir_text fuzz target: a message quoting a multi-byte character
        (
            "graph g\n%0 = const value=1.0 : p32.8[] !߻",
            "expected a word",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text).expect_err(text);
        assert!(
            e.to_string().contains(want),
            "{text:?}: got {e}, wanted {want}"
        );
    }
}

fn leaf(g: &mut Graph, name: &str, vis: Vis, shape: Vec<usize>) -> NodeId {
    let op = if vis == Vis::Secret {
        Op::Input {
            name: name.into(),
            owner: Owner::Client,
        }
    } else {
        Op::Weight {
            name: name.into(),
            transposed: false,
        }
    };
    g.add(Node::new(op, Type::fixed(vis, Format::LOW, shape)), &[])
}

fn output(g: &mut Graph, name: &str, x: NodeId) {
    let ty = g.node(x).ty.clone();
    g.add(
        Node::new(
            Op::Output {
                name: name.into(),
                kept: false,
            },
            ty,
        ),
        &[x],
    );
}

#[test]
fn verifier_reports_each_invariant() {
    // Type mismatch: declared shape differs from the rule's.
    let mut g = Graph::new("t");
    let x = leaf(&mut g, "x", Vis::Secret, vec![2, 3]);
    let bad = g.add(
        Node::new(
            Op::High(HighOp::Exp),
            Type::fixed(Vis::Secret, Format::LOW, vec![3, 2]),
        ),
        &[x],
    );
    output(&mut g, "y", bad);
    assert!(
        matches!(verify(&g).as_slice(), [VerifyError::Mismatch { .. }]),
        "{:?}",
        verify(&g)
    );

    // A public node computed from a secret one.
    let mut g = Graph::new("t");
    let x = leaf(&mut g, "x", Vis::Secret, vec![2]);
    let leak = g.add(
        Node::new(Op::Neg, Type::fixed(Vis::Public, Format::LOW, vec![2])),
        &[x],
    );
    output(&mut g, "y", leak);
    assert!(matches!(
        verify(&g).as_slice(),
        [VerifyError::Mismatch { .. }]
    ));

    // Arity and operand kinds.
    let mut g = Graph::new("t");
    let x = leaf(&mut g, "x", Vis::Secret, vec![2]);
    let add = g.add(
        Node::new(Op::Add, Type::fixed(Vis::Secret, Format::LOW, vec![2])),
        &[x],
    );
    output(&mut g, "y", add);
    assert!(matches!(verify(&g).as_slice(), [VerifyError::Type { .. }]));

    // Invalid format.
    let mut g = Graph::new("t");
    let x = g.add(
        Node::new(
            Op::Input {
                name: "x".into(),
                owner: Owner::Client,
            },
            Type::fixed(
                Vis::Secret,
                Format {
                    ring: Ring::Z32,
                    frac: 30,
                },
                vec![2],
            ),
        ),
        &[],
    );
    output(&mut g, "y", x);
    let errs = verify(&g);
    assert!(
        !errs.is_empty()
            && errs
                .iter()
                .all(|e| matches!(e, VerifyError::BadFormat { .. })),
        "{errs:?}"
    );

    // Leaves: iota must be public integers of length n; const a public scalar.
    let mut g = Graph::new("t");
    let i = g.add(
        Node::new(
            Op::Iota { n: 3 },
            Type::fixed(Vis::Public, Format::LOW, vec![3]),
        ),
        &[],
    );
    output(&mut g, "y", i);
    let c = g.add(
        Node::new(
            Op::Const { value: 1.0 },
            Type::fixed(Vis::Secret, Format::LOW, vec![]),
        ),
        &[],
    );
    output(&mut g, "z", c);
    assert_eq!(
        verify(&g)
            .iter()
            .filter(|e| matches!(e, VerifyError::BadLeaf { .. }))
            .count(),
        2
    );

    // Names, missing outputs, used outputs, locations.
    let mut g = Graph::new("t");
    let x = leaf(&mut g, "x", Vis::Secret, vec![2]);
    leaf(&mut g, "x", Vis::Secret, vec![2]);
    assert!(verify(&g).contains(&VerifyError::NoOutput));
    assert!(verify(&g)
        .iter()
        .any(|e| matches!(e, VerifyError::DuplicateName { kind: "input", .. })));
    output(&mut g, "y", x);
    let out = g.outputs()[0];
    let mut neg = Node::new(Op::Neg, Type::fixed(Vis::Secret, Format::LOW, vec![2]));
    neg.loc = Some(Loc {
        file: 3,
        line: 1,
        col: 1,
        len: 1,
    });
    let n = g.add(neg, &[out]);
    output(&mut g, "z", n);
    let errs = verify(&g);
    assert!(
        errs.contains(&VerifyError::UsedOutput(out.index())),
        "{errs:?}"
    );
    assert!(errs
        .iter()
        .any(|e| matches!(e, VerifyError::BadLoc { file: 3, .. })));

    // A cycle (only reachable through graph surgery).
    let mut g = Graph::new("t");
    let x = leaf(&mut g, "x", Vis::Secret, vec![2]);
    let a = g.add(
        Node::new(Op::Neg, Type::fixed(Vis::Secret, Format::LOW, vec![2])),
        &[x],
    );
    let b = g.add(
        Node::new(Op::Neg, Type::fixed(Vis::Secret, Format::LOW, vec![2])),
        &[a],
    );
    output(&mut g, "y", b);
    g.replace_uses(x, b);
    assert!(matches!(verify(&g).as_slice(), [VerifyError::Cycle(_)]));
}

struct NoWeights;
impl WeightSource for NoWeights {
    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        Err(format!("no weight {name}"))
    }
}

/// Compiles a DSL snippet whose inputs are named in `inputs` and evaluates it.
fn eval_dsl(src: &str, inputs: &[(&str, Tensor)]) -> Tensor {
    let c = compile_text(
        "t.ditto",
        src,
        &Options {
            seq: Some(2),
            ..Default::default()
        },
    );
    let e = c
        .result
        .unwrap_or_else(|d| panic!("{}", ditto_compiler::diag::render(&c.sources, &d, false)));
    let map: HashMap<String, Tensor> = inputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let out = evaluate(&e.graph, &map, &NoWeights, &|_| false).expect("evaluates");
    out.outputs.into_values().next().expect("one output")
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn evaluator_ops() {
    let x = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]);
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = transpose(x) @ x; }",
        &[("x", x.clone())],
    );
    assert_eq!(t.shape, vec![3, 3]);
    close(&t.data, &[2.0, 2.0, 2.0, 2.0, 4.0, 6.0, 2.0, 6.0, 10.0]);

    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = softmax(x); }",
        &[("x", x.clone())],
    );
    let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let s: f64 = e.iter().sum();
    close(&t.data[..3], &e.iter().map(|v| v / s).collect::<Vec<_>>());

    // A masked softmax gives masked entries probability 0.
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = softmax(x, x > 0.5); }",
        &[("x", x.clone())],
    );
    close(&t.data[3..], &[0.0, 0.0, 1.0]);

    // Broadcasting, reductions (kept axes), slices, concat, select.
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = x - max(x, -1) + sum(x, 0); }",
        &[("x", x.clone())],
    );
    close(&t.data, &[-2.0, 1.0, 4.0, -2.0, 1.0, 4.0]);
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = concat([slice(x, 1, 2, 3), slice(x, 1, 0, 1)], 1); }",
        &[("x", x.clone())],
    );
    close(&t.data, &[3.0, 1.0, 1.0, -1.0]);
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = select(x > 0.0, x, 7); }",
        &[("x", x.clone())],
    );
    close(&t.data, &[1.0, 2.0, 3.0, 7.0, 7.0, 1.0]);

    // LayerNorm with unit gain, zero bias equals the normalised row.
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; input g: s[3] from model_owner; input b: s[3] from model_owner;
          output y = layernorm(x, g, b, 0.0); }",
        &[("x", x.clone()), ("g", Tensor::new(vec![3], vec![1.0; 3])), ("b", Tensor::new(vec![3], vec![0.0; 3]))],
    );
    let r = 1.0 / (2.0f64 / 3.0).sqrt();
    close(&t.data[..3], &[-r, 0.0, r]);

    // The same value used twice by one node (a regression: it was freed early).
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = x * x; }",
        &[("x", x.clone())],
    );
    close(&t.data, &[1.0, 4.0, 9.0, 1.0, 0.0, 1.0]);

    // Exact GeLU at known points; rsqrt, recip, tanh, embed.
    let t = eval_dsl(
        "model m(S) { input x: s[S, 3] from client; output y = gelu(x); }",
        &[("x", x.clone())],
    );
    assert!((t.data[0] - 0.8413447460685429).abs() < 1e-15);
    let t = eval_dsl(
        "model m(S) { input ids: s32.0[S] from client; input t: s[4, 2] from model_owner; output y = embed(ids, t); }",
        &[("ids", Tensor::new(vec![2], vec![3.0, 1.0])), ("t", Tensor::new(vec![4, 2], (0..8).map(f64::from).collect()))],
    );
    close(&t.data, &[6.0, 7.0, 2.0, 3.0]);
}

#[test]
fn evaluator_rejects_bad_ids_and_inputs() {
    let c = compile_text(
        "t.ditto",
        "model m(S) { input ids: s32.0[S] from client; input t: s[4, 2] from model_owner; output y = embed(ids, t); }",
        &Options { seq: Some(1), ..Default::default() },
    );
    let g = c.result.expect("compiles").graph;
    let t = Tensor::new(vec![4, 2], vec![0.0; 8]);
    let bad = HashMap::from([
        ("ids".to_string(), Tensor::new(vec![1], vec![4.0])),
        ("t".to_string(), t.clone()),
    ]);
    assert!(evaluate(&g, &bad, &NoWeights, &|_| false)
        .unwrap_err()
        .to_string()
        .contains("outside the table"));
    let short = HashMap::from([("t".to_string(), t)]);
    assert!(evaluate(&g, &short, &NoWeights, &|_| false)
        .unwrap_err()
        .to_string()
        .contains("not supplied"));
}

/// docs/ir.md's op table is the one generated from the declaration
/// (`ops!`): an op missing from the document, or documented but not
/// declared, fails here. `BLESS=1` rewrites the table.
#[test]
fn op_table_is_declared_once_and_documented() {
    use ditto_compiler::ir::ops::{docs_table, op_names};
    use std::collections::BTreeMap;
    let path = format!("{}/../docs/ir.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).expect("docs/ir.md");
    let table = docs_table();
    let start = doc
        .find("| op | operands |")
        .expect("docs/ir.md has an op table");
    let end = start
        + doc[start..]
            .find("\n\n")
            .expect("the table ends with a blank line")
        + 1;
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, format!("{}{}{}", &doc[..start], table, &doc[end..])).unwrap();
    } else {
        assert_eq!(
            &doc[start..end],
            table,
            "docs/ir.md's op table is stale: run with BLESS=1"
        );
    }
    assert_eq!(op_names().count(), ditto_compiler::ir::ops::table().count());
    for name in op_names() {
        // Every listed name is an op of the parser (missing attributes are fine).
        match Op::from_parts(name, &BTreeMap::new()) {
            Ok(op) => assert_eq!(op.name(), name),
            Err(e) => assert!(e.contains("needs attribute"), "{name}: {e}"),
        }
    }
    assert!(Op::from_parts("frobnicate", &BTreeMap::new()).is_err());
}

/// The random-graph generator produces every declared op (it draws from the
/// declaration), so the property tests over random graphs see every op.
#[test]
fn random_graphs_cover_every_declared_op() {
    use ditto_compiler::ir::ops::op_names;
    use std::collections::BTreeSet;
    let mut seen = BTreeSet::new();
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u16
    };
    for _ in 0..200 {
        let steps: Vec<(u8, u16, u16, u16)> = (0..40)
            .map(|_| (next() as u8, next(), next(), next()))
            .collect();
        let g = random_graph(&steps);
        assert_eq!(verify(&g), vec![]);
        seen.extend(g.ids().iter().map(|&i| g.node(i).op.name()));
    }
    let missing: Vec<&str> = op_names().filter(|n| !seen.contains(*n)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}
