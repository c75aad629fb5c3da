//! Pass tests. Golden files: each `tests/passes/*.ir` starts with
//! `; run: PASS[,PASS...] [policy=NAME]`, holds IR text, and its expected
//! output after those passes is in the `.expected` file beside it
//! (`BLESS=1 cargo test -p ditto-compiler --test passes` rewrites them).
//! Properties: on random graphs and on every shipped model, the default
//! pipeline keeps the graph valid and its float evaluation unchanged.

mod common;

use ditto_compiler::driver::compile_text;
use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::{evaluate, Tensor};
use ditto_compiler::ir::fixed::evaluate_fixed;
use ditto_compiler::ir::text::{parse, print};
use ditto_compiler::ir::verify::verify;
use ditto_compiler::ir::{Graph, Op};
use ditto_compiler::passes::{
    plan, registry, run, stats, Ctx, DumpAfter, DEFAULT_PIPELINE, PASSES,
};
use ditto_compiler::policy::Policy;
use ditto_compiler::weights::InMemory;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn run_passes(g: &mut Graph, passes: &[&str], policy: &str) {
    let policy = Policy::builtin(policy).expect("built-in policy");
    run(
        g,
        passes,
        &Ctx {
            policy: &policy,
            sources: None,
            weight_bounds: None,
        },
        &DumpAfter::None,
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
}

#[test]
fn golden_pass_outputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/passes");
    let bless = std::env::var_os("BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/passes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ir"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected golden cases in {}",
        dir.display()
    );
    let mut failures = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let header = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("; run: "))
            .expect("`; run:` header");
        let mut words = header.split_whitespace();
        let passes: Vec<&str> = words.next().expect("passes").split(',').collect();
        let policy = words
            .find_map(|w| w.strip_prefix("policy="))
            .unwrap_or("ditto");
        let mut g = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(verify(&g), vec![], "{}: input is invalid", f.display());
        run_passes(&mut g, &passes, policy);
        let mut got = print(&g);
        if let Some(steps) = &g.schedule {
            // the schedule, in the printed numbering
            let order = g.topo_order().expect("acyclic");
            let num: HashMap<_, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
            for (i, st) in steps.iter().enumerate() {
                let nodes: Vec<String> = st.nodes.iter().map(|n| format!("%{}", num[n])).collect();
                let kind = if st.round { "round" } else { "local" };
                got.push_str(&format!("; step {i} {kind}: {}\n", nodes.join(" ")));
            }
        }
        let exp = f.with_extension("expected");
        if bless {
            std::fs::write(&exp, &got).expect("writable");
        } else if std::fs::read_to_string(&exp).unwrap_or_default() != got {
            failures.push(format!("{}:\n{got}", f.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "golden outputs differ (BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn unknown_pass_names_list_the_valid_ones() {
    let e = plan(Some(&["insert-conversion".to_string()]), &[]).unwrap_err();
    assert!(
        e.contains("unknown pass `insert-conversion`") && e.contains("insert-conversions"),
        "{e}"
    );
    let p = plan(None, &["cse".to_string()]).unwrap();
    assert!(!p.contains(&"cse") && p.contains(&"dce"));
}

#[test]
fn policies_from_json() {
    let p =
        Policy::from_json(r#"{"name": "mine", "formats": {"linear": [32, 10]}, "gelu": "quad"}"#)
            .unwrap();
    assert_eq!(p.formats["linear"].frac, 10);
    for (bad, why) in [
        ("{", "not valid JSON"),
        (r#"{"formats": {}}"#, "`name`"),
        (
            r#"{"name": "x", "formats": {"linear": [33, 8]}}"#,
            "ring must be 32 or 64",
        ),
        (
            r#"{"name": "x", "formats": {"linear": [32, 30]}}"#,
            "fraction bits",
        ),
        (r#"{"name": "x", "gelu": "exact"}"#, "`gelu`"),
        (r#"{"name": "x", "colour": 1}"#, "unknown field `colour`"),
    ] {
        let e = Policy::from_json(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

fn eval(g: &Graph, inputs: &HashMap<String, Tensor>, w: &InMemory) -> Vec<Tensor> {
    evaluate(g, inputs, w, &|_| false)
        .expect("evaluates")
        .outputs
        .into_values()
        .collect()
}

fn close(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.shape == y.shape
                && x.data.iter().zip(&y.data).all(|(p, q)| {
                    p == q || (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-9 * (1.0 + p.abs())
                })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    #[test]
    fn pipeline_keeps_random_graphs_valid_and_equal(steps in prop::collection::vec((any::<u8>(), any::<u16>(), any::<u16>(), any::<u16>()), 0..40), policy in 0usize..3) {
        let g0 = common::random_graph(&steps);
        let mut g = g0.clone();
        // Random @bound annotations make check-ranges refuse some graphs (as
        // it should); the other passes must keep every graph valid.
        // lower-nonlinear changes values on purpose (approximations): it is
        // checked for validity below, and for accuracy in tests/approx.rs.
        let passes: Vec<&str> =
            PASSES.iter().filter(|p| p.keeps_semantics && !p.check_only).map(|p| p.name).collect();
        run_passes(&mut g, &passes, ditto_compiler::policy::BUILTIN[policy]);
        let pol = Policy::builtin(ditto_compiler::policy::BUILTIN[policy]).unwrap();
        // check-ranges accepts the graph or refuses it for its ranges only
        if let Err(d) = run(&mut g.clone(), &["check-ranges"], &Ctx { policy: &pol, sources: None, weight_bounds: None }, &DumpAfter::None) {
            prop_assert!(d.iter().all(|x| x.message.contains("may reach")), "{:?}", d);
        }
        prop_assert_eq!(verify(&g), vec![]);
        let inputs = HashMap::from([("a".to_string(), Tensor::new(vec![3, 4], (0..12).map(|i| (i as f64 - 5.0) / 7.0).collect()))]);
        let w = InMemory(BTreeMap::from([("w".to_string(), Tensor::new(vec![4, 3], (0..12).map(|i| (i as f64) / 11.0 - 0.4).collect()))]));
        let (e0, e1) = (eval(&g0, &inputs, &w), eval(&g, &inputs, &w));
        prop_assert!(close(&e0, &e1), "before:\n{}\nafter:\n{}\n{:?}\n{:?}", print(&g0), print(&g), e0, e1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    /// `insert-conversions`, `insert-truncations`, `cse` and `dce` change no
    /// fixed-point value: an explicit conversion or truncation computes
    /// exactly what the implicit rescaling did.
    #[test]
    fn explicit_conversions_are_bit_exact(steps in prop::collection::vec((any::<u8>(), any::<u16>(), any::<u16>(), any::<u16>()), 0..40), policy in 0usize..3) {
        let mut g0 = common::random_graph(&steps);
        let pol = ditto_compiler::policy::BUILTIN[policy];
        run_passes(&mut g0, &["apply-policy"], pol);
        let mut g = g0.clone();
        run_passes(&mut g, &["insert-conversions", "insert-truncations", "cse", "dce"], pol);
        let inputs = HashMap::from([("a".to_string(), Tensor::new(vec![3, 4], (0..12).map(|i| (i as f64 - 5.0) / 7.0).collect()))]);
        let w = InMemory(BTreeMap::from([("w".to_string(), Tensor::new(vec![4, 3], (0..12).map(|i| (i as f64) / 11.0 - 0.4).collect()))]));
        let a = evaluate_fixed(&g0, &inputs, &w).expect("evaluates");
        let b = evaluate_fixed(&g, &inputs, &w).expect("evaluates");
        prop_assert_eq!(a, b, "before:\n{}\nafter:\n{}", print(&g0), print(&g));
    }
}

#[test]
fn rescale_floors_and_wraps() {
    use ditto_compiler::ir::fixed::{rescale, wrap};
    use ditto_compiler::ir::Format;
    let f = |k, fr| Format::new(k, fr).unwrap();
    assert_eq!(rescale(-1, f(64, 18), f(64, 8)), -1); // floor, not toward zero
    assert_eq!(rescale(1023, f(64, 18), f(64, 8)), 0);
    assert_eq!(rescale(-1024, f(64, 18), f(64, 8)), -1);
    assert_eq!(rescale(3, f(32, 8), f(64, 18)), 3 << 10); // exact upcast
    assert_eq!(rescale(1 << 40, f(64, 18), f(32, 8)), 1 << 30); // fits
    assert_eq!(rescale(1 << 41, f(64, 18), f(32, 8)), i32::MIN as i64); // wraps like the ring
    assert_eq!(rescale(1 << 42, f(64, 18), f(32, 8)), 0);
    assert_eq!(wrap(1 << 31, 32), -(1 << 31));
    assert_eq!(wrap(-1, 64), -1);
}

#[test]
fn pipeline_on_models_adds_conversions_only_at_boundaries() {
    let path = format!("{}/../models/bert.ditto", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let opts = Options {
        config: Some("tiny".into()),
        seq: Some(5),
        ..Default::default()
    };
    let g0 = compile_text(&path, &text, &opts)
        .result
        .expect("compiles")
        .graph;
    // uniform64: every class is (64, 18): the only conversions are the
    // truncations after products.
    let mut g = g0.clone();
    run_passes(&mut g, DEFAULT_PIPELINE, "uniform64");
    let s = stats(&g);
    assert!(
        s.truncations > 0 && s.conversions == s.truncations && s.upcasts == 0 && s.downcasts == 0,
        "{s:?}"
    );
    // ditto: per layer, Q/K/V and FFN-1 take converted activations (the three
    // projections share one), the scores go up to the softmax, and so on.
    let mut g = g0.clone();
    run_passes(&mut g, DEFAULT_PIPELINE, "ditto");
    let s = stats(&g);
    assert!(
        s.conversions > 0 && s.upcasts > 0 && s.downcasts > 0,
        "{s:?}"
    );
    for id in g.ids() {
        let n = g.node(id);
        if matches!(n.op, Op::Convert) {
            let src = g.node(g.operands(id)[0]).ty.format();
            assert_ne!(src, n.ty.format(), "a conversion that changes nothing");
        }
    }
    // Conversions of one value to one format are shared.
    let mut keys = std::collections::HashSet::new();
    for id in g.ids() {
        if matches!(g.node(id).op, Op::Convert) {
            assert!(
                keys.insert((g.operands(id)[0], g.node(id).ty.format())),
                "duplicate conversion"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    /// The whole default pipeline, lowering included, keeps random graphs
    /// valid (check-ranges may refuse some: their bounds are random).
    #[test]
    fn full_pipeline_keeps_random_graphs_valid(steps in prop::collection::vec((any::<u8>(), any::<u16>(), any::<u16>(), any::<u16>()), 0..30), policy in 0usize..3) {
        let mut g = common::random_graph(&steps);
        let pol = Policy::builtin(ditto_compiler::policy::BUILTIN[policy]).unwrap();
        let passes: Vec<&str> = DEFAULT_PIPELINE.iter().copied().filter(|p| *p != "check-ranges").collect();
        run(&mut g, &passes, &Ctx { policy: &pol, sources: None, weight_bounds: None }, &DumpAfter::None)
            .map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
        prop_assert_eq!(verify(&g), vec![]);
        // every high op the built-in policies lower (all but a standalone exp)
        let high_level = g.ids().iter().any(|&i| matches!(&g.node(i).op, Op::High(h) if h.name() != "exp"));
        prop_assert!(!high_level, "a high-level op was not lowered");
    }
}

#[test]
fn a_scalar_against_a_single_element_matrix_broadcasts() {
    // found by the proptest above: `[] > [1, 1]` must keep the [1, 1] shape
    let g = parse(
        "graph scalar\n\
         %0 = input name=\"a\" owner=client : s64.18[1, 1]\n\
         %1 = const value=-3.0 : p64.18[]\n\
         %2 = gt %1, %0 : sbool[1, 1]\n\
         %3 = transpose %2 perm=[1, 0] : sbool[1, 1]\n\
         %4 = output %3 name=\"out\" : sbool[1, 1]\n",
    )
    .expect("parses");
    assert_eq!(verify(&g), vec![]);
    let inputs = HashMap::from([("a".to_string(), Tensor::new(vec![1, 1], vec![-5.0]))]);
    let out = eval(&g, &inputs, &InMemory(BTreeMap::new()));
    assert_eq!(out, vec![Tensor::new(vec![1, 1], vec![1.0])]);
}

/// The registry builds the passes the declaration lists, in its order, and
/// aliases name them.
#[test]
fn passes_are_declared_once() {
    let names: Vec<&str> = registry().iter().map(|p| p.name()).collect();
    let declared: Vec<&str> = PASSES.iter().map(|p| p.name).collect();
    assert_eq!(names, declared);
    assert_eq!(DEFAULT_PIPELINE, declared.as_slice());
    let p = plan(Some(&["fuse".to_string(), "lower".to_string()]), &[]).unwrap();
    assert_eq!(p, ["fuse-truncations", "lower-nonlinear"]);
    let e = plan(Some(&["fuse-truncation".to_string()]), &[]).unwrap_err();
    assert!(e.contains("did you mean `fuse-truncations`"), "{e}");
}
