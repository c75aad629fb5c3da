//! `ditto gen-weights`: seeded random weights under a model's tensor names, so
//! that tests and benchmarks run without downloads and real checkpoints drop in
//! unchanged. Matrices ~ N(0, 0.02²) (BERT's initialiser); vectors named
//! `*.weight` (LayerNorm gains) ~ 1 + N(0, 0.05²); other vectors (biases)
//! ~ N(0, 0.02²).

use anyhow::{bail, Result};
use ditto_compiler::ir::eval::Tensor;
use ditto_compiler::ir::Op;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 - u keeps the logarithm finite.
    let u: f64 = rng.random();
    let v: f64 = rng.random();
    (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Random tensors for every weight the model (under `config`) declares.
pub fn generate(
    model: &Path,
    config: Option<String>,
    seed: u64,
) -> Result<BTreeMap<String, Tensor>> {
    let opts = ditto_compiler::elab::Options {
        config,
        seq: Some(1),
        ..Default::default()
    };
    let (_, e) = crate::compile_reported(model, &opts)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    let mut ids = e.graph.ids();
    ids.sort_by_key(|&i| match &e.graph.node(i).op {
        Op::Weight { name, .. } => name.clone(),
        _ => String::new(),
    });
    for id in ids {
        let n = e.graph.node(id);
        let Op::Weight { name, .. } = &n.op else {
            continue;
        };
        let shape = n.ty.shape.clone();
        let count: usize = shape.iter().product();
        let data: Vec<f64> = if shape.len() >= 2 {
            (0..count).map(|_| 0.02 * normal(&mut rng)).collect()
        } else if name.ends_with(".weight") {
            (0..count).map(|_| 1.0 + 0.05 * normal(&mut rng)).collect()
        } else {
            (0..count).map(|_| 0.02 * normal(&mut rng)).collect()
        };
        out.insert(name.clone(), Tensor::new(shape, data));
    }
    if out.is_empty() {
        bail!("{} declares no weights", model.display());
    }
    Ok(out)
}

pub fn gen_weights(model: &str, config: Option<String>, seed: u64, output: &Path) -> Result<()> {
    let path = crate::model_path(model);
    let tensors = generate(&path, config, seed)?;
    ditto_compiler::weights::write_f32(output, &tensors)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
    let params: usize = tensors.values().map(|t| t.numel()).sum();
    eprintln!(
        "wrote {} tensors ({params} parameters) to {}",
        tensors.len(),
        output.display()
    );
    Ok(())
}
