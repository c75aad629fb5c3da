//! Shared by the training backend's tests: shipped models compiled at a
//! tiny config, lowered under a policy, with seeded weights and inputs.

#![allow(dead_code)]

use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::Tensor;
use ditto_compiler::ir::{Graph, Op};
use ditto_compiler::weights::InMemory;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub fn model_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(format!("{name}.ditto"))
}

/// The float graph of a shipped model (config `tiny`, S tokens), and its
/// sources.
pub fn float_graph(model: &str, seq: i64) -> (Graph, ditto_compiler::diag::Sources) {
    let opts = Options {
        config: Some("tiny".into()),
        seq: Some(seq),
        ..Default::default()
    };
    let c = ditto_compiler::driver::compile_file(&model_path(model), &opts);
    match c.result {
        Ok(e) => (e.graph, c.sources),
        Err(d) => panic!("{model}: {d:?}"),
    }
}

/// The graph lowered under `policy` by the default pipeline.
pub fn lowered(model: &str, seq: i64, policy: &str) -> Graph {
    let (mut g, sources) = float_graph(model, seq);
    let p = ditto_compiler::policy::Policy::builtin(policy).expect("built-in policy");
    let pipeline = ditto_compiler::passes::DEFAULT_PIPELINE;
    if let Err(d) = ditto_compiler::driver::lower(
        &mut g,
        &sources,
        &p,
        pipeline,
        &ditto_compiler::passes::DumpAfter::None,
    ) {
        panic!("{model} under {policy}: {d:?}");
    }
    g
}

/// Seeded weights for every weight `g` reads, in stored layout: matrices
/// ~ N(0, sd²), gains 1 + N(0, 0.05²), biases N(0, sd²).
pub fn weights(g: &Graph, seed: u64, sd: f64) -> InMemory {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    for id in g.ids() {
        let n = g.node(id);
        let Op::Weight { name, transposed } = &n.op else {
            continue;
        };
        let mut shape = n.ty.shape.clone();
        if *transposed {
            shape.reverse();
        }
        let count: usize = shape.iter().product();
        let gain = shape.len() < 2 && name.ends_with(".weight");
        let data = (0..count)
            .map(|_| {
                let z: f64 = rng.random::<f64>() * 2.0 - 1.0;
                if gain {
                    1.0 + 0.05 * z
                } else {
                    sd * z * 1.7
                }
            })
            .collect();
        out.insert(name.clone(), Tensor::new(shape, data));
    }
    InMemory(out)
}

/// Inputs for every input node: token ids below `vocab`, `len` = all real,
/// `pos` 0, a kept cache zero, anything else small reals.
pub fn inputs(g: &Graph, vocab: usize, seed: u64) -> HashMap<String, Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    let ids_len = g
        .ids()
        .into_iter()
        .find_map(|id| match &g.node(id).op {
            Op::Input { name, .. } if name == "ids" => Some(g.node(id).ty.shape[0]),
            _ => None,
        })
        .unwrap_or(1);
    for id in g.ids() {
        let n = g.node(id);
        let Op::Input { name, .. } = &n.op else {
            continue;
        };
        let count: usize = n.ty.shape.iter().product();
        let data = match name.as_str() {
            "ids" => (0..count)
                .map(|_| rng.random_range(0..vocab) as f64)
                .collect(),
            "len" => vec![ids_len as f64],
            "pos" => vec![0.0],
            n if n.starts_with("cache") => vec![0.0; count],
            _ => (0..count).map(|_| rng.random::<f64>() - 0.5).collect(),
        };
        out.insert(name.clone(), Tensor::new(n.ty.shape.clone(), data));
    }
    out
}
