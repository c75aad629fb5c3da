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
use rand_distr::StandardNormal;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Values per independent PRG stream: tensors are filled in parallel chunks,
/// and a tensor's values depend only on the seed, its name and its size.
const CHUNK: usize = 1 << 16;

/// FNV-1a, so that a tensor's stream does not depend on the order of the
/// model's declarations or on which of them are present (`--layers`).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `out[i] = mean + sd · N(0, 1)` (ziggurat sampling).
fn fill_normal(out: &mut [f64], seed: u64, name: &str, mean: f64, sd: f64) {
    let base = seed ^ name_hash(name).rotate_left(29);
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(base);
            rng.set_stream(c as u64);
            for x in chunk {
                let z: f64 = rng.sample(StandardNormal);
                *x = mean + sd * z;
            }
        });
}

/// Random tensors for every weight the model (under `config`, and with its
/// first `layers` layers if given) declares.
pub fn generate(
    model: &Path,
    config: Option<String>,
    layers: Option<i64>,
    seed: u64,
) -> Result<BTreeMap<String, Tensor>> {
    let opts = ditto_compiler::elab::Options {
        config,
        layers,
        seq: Some(1),
        ..Default::default()
    };
    let (_, e) = crate::compile_reported(model, &opts)?;
    let mut out = BTreeMap::new();
    for id in e.graph.ids() {
        let n = e.graph.node(id);
        let Op::Weight { name, .. } = &n.op else {
            continue;
        };
        let shape = n.ty.shape.clone();
        let count: usize = shape.iter().product();
        let (mean, sd) = if shape.len() < 2 && name.ends_with(".weight") {
            (1.0, 0.05)
        } else {
            (0.0, 0.02)
        };
        let mut data = vec![0.0; count];
        fill_normal(&mut data, seed, name, mean, sd);
        out.insert(name.clone(), Tensor::new(shape, data));
    }
    Ok(out)
}

pub fn gen_weights(model: &str, config: Option<String>, seed: u64, output: &Path) -> Result<()> {
    let path = crate::model_path(model);
    let tensors = generate(&path, config, None, seed)?;
    if tensors.is_empty() {
        bail!("{} declares no weights", path.display());
    }
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
