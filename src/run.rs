//! `ditto run`: compile a model and evaluate it on token ids.

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use ditto_compiler::ir::eval::{evaluate, Tensor, WeightSource};
use ditto_compiler::ir::{Op, Owner};
use ditto_compiler::weights::{InMemory, SafetensorsFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Backend {
    /// Exact f64 evaluation of the unlowered graph (the utility reference).
    Float,
    /// Cleartext ring emulation of the lowered graph: the MPC arithmetic
    /// (formats, wrapping, truncations) without the secret sharing. Not yet
    /// lowered non-linear ops are computed exactly on quantized values.
    Fixed,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Model file, or the name of one in models/.
    file: String,
    #[arg(long, value_enum, default_value = "float")]
    backend: Backend,
    /// A safetensors file, or a folder holding model.safetensors (and
    /// tokenizer.json, needed by --text).
    #[arg(long, required_unless_present = "random_weights")]
    weights: Option<PathBuf>,
    /// Use seeded random weights (as `ditto gen-weights`) instead of a file.
    #[arg(long, value_name = "SEED", conflicts_with = "weights")]
    random_weights: Option<u64>,
    /// Text to tokenize with the folder's tokenizer.json.
    #[arg(long, conflicts_with = "ids")]
    text: Option<String>,
    /// Token ids, comma-separated.
    #[arg(long)]
    ids: Option<String>,
    #[arg(long)]
    config: Option<String>,
    /// Pad (with id 0) or cut the token sequence to N tokens.
    #[arg(long)]
    seq: Option<usize>,
    /// Keep only the first K layers.
    #[arg(long)]
    layers: Option<i64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pipeline: crate::PipelineArgs,
}

/// Opens a safetensors file, or `model.safetensors` inside a folder.
pub fn open_weights(path: &Path) -> Result<SafetensorsFile> {
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    Ok(SafetensorsFile::open(&file)?)
}

fn tokens(args: &RunArgs) -> Result<Vec<u32>> {
    let mut ids = match (&args.text, &args.ids) {
        (Some(text), _) => {
            let Some(w) = &args.weights else {
                bail!("--text needs the tokenizer.json beside --weights; with --random-weights pass --ids");
            };
            let dir = if w.is_dir() {
                w.clone()
            } else {
                w.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            let tj = dir.join("tokenizer.json");
            if !tj.exists() {
                bail!(
                    "--text needs {} (put tokenizer.json beside the weights, or pass --ids)",
                    tj.display()
                );
            }
            crate::tokens::encode(&tj, text)?
        }
        (None, Some(ids)) => crate::tokens::parse_ids(ids)?,
        (None, None) => bail!("give the input as --text \"...\" or --ids 1,2,3"),
    };
    if let Some(n) = args.seq {
        ids.resize(n, 0);
    }
    if ids.is_empty() {
        bail!("the input has no tokens");
    }
    Ok(ids)
}

pub fn run(args: RunArgs) -> Result<()> {
    let ids = tokens(&args)?;
    let path = crate::model_path(&args.file);
    let (weights, info): (Box<dyn WeightSource>, _) = match (&args.weights, args.random_weights) {
        (Some(w), _) => {
            let f = open_weights(w)?;
            let info = f.info().clone();
            (Box::new(f), Some(info))
        }
        (None, Some(seed)) => {
            let gen = crate::genweights::generate(&path, args.config.clone(), seed)?;
            (Box::new(InMemory(gen)), None)
        }
        (None, None) => bail!("give --weights PATH or --random-weights SEED"),
    };
    let opts = ditto_compiler::elab::Options {
        config: args.config.clone(),
        sizes: Default::default(),
        weights: info,
        layers: args.layers,
        seq: Some(ids.len() as i64),
    };
    let (sources, e) = crate::compile_reported(&path, &opts)?;
    let g = &e.graph;
    let client_inputs: Vec<_> = g
        .ids()
        .into_iter()
        .filter_map(|i| match &g.node(i).op {
            Op::Input {
                name,
                owner: Owner::Client,
            } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let [input] = client_inputs.as_slice() else {
        bail!(
            "the model must have exactly one client input for token ids, found {}",
            client_inputs.len()
        );
    };
    let inputs = HashMap::from([(
        input.clone(),
        Tensor::new(vec![ids.len()], ids.iter().map(|&i| i as f64).collect()),
    )]);
    let start = std::time::Instant::now();
    let (policy, (name, out)) = match args.backend {
        Backend::Float => {
            let result = evaluate(g, &inputs, weights.as_ref(), &|_| false)
                .map_err(|e| anyhow!("evaluation failed: {e}"))?;
            (
                None,
                result
                    .outputs
                    .into_iter()
                    .next()
                    .context("the model has no output")?,
            )
        }
        Backend::Fixed => {
            let mut lowered = g.clone();
            // check-ranges uses declared bounds only: propagating the weights'
            // largest |w| through matmuls overestimates by orders of magnitude
            // (docs/passes.md), so weight statistics wait for calibration.
            crate::lower(&mut lowered, &sources, &args.pipeline, None)?;
            let result =
                ditto_compiler::ir::fixed::evaluate_fixed(&lowered, &inputs, weights.as_ref())
                    .map_err(|e| anyhow!("evaluation failed: {e}"))?;
            let (n, t) = result
                .into_iter()
                .next()
                .context("the model has no output")?;
            (Some(crate::policy(&args.pipeline)?.name), (n, t.decode()))
        }
    };
    let backend = match args.backend {
        Backend::Float => "float",
        Backend::Fixed => "fixed",
    };
    let wall = start.elapsed().as_secs_f64();
    if args.json {
        let obj = serde_json::json!({
            "model": e.model,
            "config": e.config,
            "backend": backend,
            "policy": policy,
            "output_name": name,
            "output": out.data,
            "shape": out.shape,
            "tokens": ids,
            "wall_s": wall,
        });
        println!("{obj}");
    } else {
        println!(
            "model {} (config {}), backend {backend}, {} tokens, {:.3} s",
            e.model,
            e.config,
            ids.len(),
            wall
        );
        let head: Vec<String> = out.data.iter().take(8).map(|x| format!("{x:.6}")).collect();
        println!(
            "{name} {:?}: [{}{}]",
            out.shape,
            head.join(", "),
            if out.numel() > 8 { ", ..." } else { "" }
        );
    }
    Ok(())
}
