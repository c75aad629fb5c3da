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
    /// The VM on the compiled bytecode, in the clear: the MPC arithmetic
    /// (formats, wrapping, truncations) without the secret sharing.
    Fixed,
    /// The VM on secret shares: three parties on threads over in-memory
    /// links; the client shares the input, the model owner the weights, and
    /// only the client sees the output.
    Mpc,
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
    /// Print the cost by op kind and by layer (fixed and mpc backends).
    #[arg(long)]
    profile: bool,
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

/// Weights from a file or folder, or seeded random ones for `model`'s
/// config; with the file's tensor list for elaboration (random weights have
/// none: they are made to fit).
#[allow(clippy::type_complexity)]
pub fn load_weights(
    model: &Path,
    file: &Option<PathBuf>,
    random: Option<u64>,
    config: &Option<String>,
    layers: Option<i64>,
) -> Result<(
    Box<dyn WeightSource + Sync>,
    Option<std::collections::BTreeMap<String, ditto_compiler::weights::TensorInfo>>,
)> {
    Ok(match (file, random) {
        (Some(w), _) => {
            let f = open_weights(w)?;
            let info = f.info().clone();
            (Box::new(f), Some(info))
        }
        (None, Some(seed)) => {
            let gen = crate::genweights::generate(model, config.clone(), layers, seed)?;
            (Box::new(InMemory(gen)), None)
        }
        (None, None) => bail!("give --weights PATH or --random-weights SEED"),
    })
}

fn tokens(args: &RunArgs) -> Result<Vec<u32>> {
    let mut ids = match (&args.text, &args.ids) {
        (Some(text), _) => {
            crate::tokens::encode(&crate::tokens::tokenizer_beside(&args.weights)?, text)?
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
    let (weights, info) = load_weights(
        &path,
        &args.weights,
        args.random_weights,
        &args.config,
        args.layers,
    )?;
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
    let mut report = None;
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
        Backend::Fixed | Backend::Mpc => {
            let mut lowered = g.clone();
            // check-ranges uses declared bounds only: propagating the weights'
            // largest |w| through matmuls overestimates by orders of magnitude
            // (docs/passes.md), so weight statistics wait for calibration.
            let applied = crate::lower(&mut lowered, &sources, &args.pipeline, None)?;
            let mut prog = crate::codegen_reported(&lowered, &sources, &path)?;
            crate::stamp(&mut prog, &e, &applied);
            let by_port = prog
                .inputs
                .iter()
                .map(|p| {
                    inputs
                        .get(&p.name)
                        .map(|t| t.data.clone())
                        .ok_or_else(|| anyhow!("no value for input `{}`", p.name))
                })
                .collect::<Result<Vec<_>>>()?;
            let lookup = |name: &str| weights.values(name);
            let data = ditto_vm::Data {
                inputs: by_port,
                weights: &lookup,
            };
            let progress = crate::progress::Progress::new(!args.json);
            let show = |i: usize, n: usize| progress.update(i, n);
            let rep = if args.backend == Backend::Fixed {
                ditto_vm::run_fixed(&prog, data)
            } else {
                let opts = ditto_vm::MpcOptions {
                    progress: Some(&show),
                    ..Default::default()
                };
                ditto_vm::run_mpc(&prog, data, &opts)
            };
            progress.finish();
            let rep =
                rep.map_err(|e| anyhow!("{} backend failed: {e}", backend_name(args.backend)))?;
            let o = rep
                .outputs
                .first()
                .context("the model has no output")?
                .clone();
            report = Some((prog, rep));
            (
                Some(crate::policy(&args.pipeline)?.name),
                (o.name, Tensor::new(o.shape, o.data)),
            )
        }
    };
    let backend = backend_name(args.backend);
    let wall = start.elapsed().as_secs_f64();
    if args.json {
        let mut obj = serde_json::json!({
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
        if let Some((prog, rep)) = &report {
            crate::profile::add_json(&mut obj, prog, rep);
        }
        println!("{obj}");
    } else {
        println!(
            "model {} (config {}), backend {backend}{}, {} tokens, {:.3} s",
            e.model,
            e.config,
            policy.map(|p| format!(" (policy {p})")).unwrap_or_default(),
            ids.len(),
            wall
        );
        println!("{}", crate::profile::preview(&name, &out.shape, &out.data));
        if let Some((prog, rep)) = &report {
            print!("{}", crate::profile::summary(rep));
            if args.profile {
                print!("{}", crate::profile::table(prog, rep));
            }
        }
    }
    Ok(())
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Float => "float",
        Backend::Fixed => "fixed",
        Backend::Mpc => "mpc",
    }
}
