//! `ditto run`: compile a model and evaluate it on token ids.

use crate::inputs::Tokens;
use anyhow::{anyhow, bail, Result};
use clap::ValueEnum;
use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::{evaluate, Tensor, WeightSource};
use ditto_compiler::ir::Op;
use ditto_compiler::weights::InMemory;
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
    /// Not needed by a model that declares no weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Use seeded random weights (as `ditto gen-weights`) instead of a file.
    #[arg(long, value_name = "SEED", conflicts_with = "weights")]
    random_weights: Option<u64>,
    /// Text to tokenize with the folder's tokenizer.json.
    #[arg(long, conflicts_with = "ids")]
    text: Option<String>,
    /// A second text: the input is the pair (text, pair), with token types
    /// 0 and 1 for a model with a `segments` input.
    #[arg(long, requires = "text")]
    pair: Option<String>,
    /// Token ids, comma-separated.
    #[arg(long)]
    ids: Option<String>,
    /// Token types for --ids (0 or 1 each), for a model with `segments`.
    #[arg(long, requires = "ids")]
    segments: Option<String>,
    /// Any other input of the model by name, as real values:
    /// `--input x=0.5,1,2` (repeatable).
    #[arg(long = "input", value_name = "NAME=V,...")]
    named: Vec<String>,
    #[arg(long)]
    config: Option<String>,
    /// Compile for N tokens and pad the input to N (id 0, masked through
    /// the model's `len` input); an input longer than N is an error.
    #[arg(long)]
    seq: Option<usize>,
    /// Keep only the first K layers.
    #[arg(long)]
    layers: Option<i64>,
    /// Keep the true length secret (the model's `len` input): the servers
    /// learn only the padded size.
    #[arg(long)]
    hide_length: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print the cost by op kind and by layer (fixed and mpc backends).
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    pipeline: crate::PipelineArgs,
}

/// A program's input values in port order, from the values by name.
pub fn by_port(
    prog: &ditto_bytecode::Program,
    values: &std::collections::HashMap<String, Vec<f64>>,
) -> Result<Vec<Vec<f64>>> {
    prog.inputs
        .iter()
        .map(|p| {
            values
                .get(&p.name)
                .cloned()
                .ok_or_else(|| anyhow!("no value for input `{}`", p.name))
        })
        .collect()
}

/// An elaborated model lowered under the pipeline's policy and compiled to
/// bytecode, stamped with its provenance.
pub fn program(
    e: &ditto_compiler::elab::Elaborated,
    sources: &ditto_compiler::diag::Sources,
    pipeline: &crate::PipelineArgs,
    weights: &(dyn WeightSource + Sync),
    path: &Path,
) -> Result<ditto_bytecode::Program> {
    let mut lowered = e.graph.clone();
    // check-ranges uses declared bounds only: propagating the weights'
    // largest |w| through matmuls overestimates by orders of magnitude
    // (docs/passes.md), so weight statistics wait for calibration.
    let check = crate::bounds::Check::Weights(weights);
    let applied = crate::lower(&mut lowered, sources, pipeline, check)?;
    let mut prog = crate::codegen_reported(&lowered, sources, path)?;
    crate::stamp(&mut prog, e, &applied, pipeline);
    Ok(prog)
}

/// Weights fitted to a model, and the compile options that go with them.
pub struct Loaded {
    pub weights: Box<dyn WeightSource + Sync>,
    /// Config, layers, the checkpoint's tensors and config.json values.
    pub opts: Options,
    /// Label names from config.json's `id2label`.
    pub labels: Option<Vec<String>>,
}

/// Weights from a file or folder, or seeded random ones for `model`'s
/// config. A checkpoint is fitted to the model: its config.json replaces
/// the config's values unless `--config` is given, and a tensor-name prefix
/// the model's names lack (`bert.`) is detected.
pub fn load(
    model: &Path,
    file: &Option<PathBuf>,
    random: Option<u64>,
    config: &Option<String>,
    layers: Option<i64>,
    seq: i64,
) -> Result<Loaded> {
    let mut opts = Options {
        config: config.clone(),
        layers,
        seq: Some(seq),
        ..Default::default()
    };
    match (file, random) {
        (Some(w), _) => {
            let mut ck = crate::checkpoint::Checkpoint::open(w)?;
            let mut labels = None;
            if let Some(hf) = crate::checkpoint::hf_config(w)? {
                labels = hf.labels;
                if config.is_none() {
                    opts.values = hf.values;
                    opts.values_source = Some(hf.source);
                }
            }
            // the model's weight names, from an elaboration without the file
            let (_, e) = crate::compile_reported(model, &opts)?;
            let declared: Vec<String> = e
                .graph
                .ids()
                .into_iter()
                .filter_map(|i| match &e.graph.node(i).op {
                    Op::Weight { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect();
            if let Some(p) = ck.fit(&declared) {
                eprintln!("note: the checkpoint's tensor names carry the prefix `{p}`");
            }
            opts.weights = Some(ck.info());
            Ok(Loaded {
                weights: Box::new(ck),
                opts,
                labels,
            })
        }
        (None, Some(seed)) => {
            let gen = crate::genweights::generate(model, config.clone(), layers, seed)?;
            Ok(Loaded {
                weights: Box::new(InMemory(gen)),
                opts,
                labels: None,
            })
        }
        (None, None) => {
            // a model without weights needs no file
            if !crate::genweights::generate(model, config.clone(), layers, 0)?.is_empty() {
                bail!("the model has weights: give --weights PATH or --random-weights SEED");
            }
            Ok(Loaded {
                weights: Box::new(InMemory(Default::default())),
                opts,
                labels: None,
            })
        }
    }
}

pub fn tokens(
    text: &Option<String>,
    pair: &Option<String>,
    ids: &Option<String>,
    segments: &Option<String>,
    weights: &Option<PathBuf>,
) -> Result<Tokens> {
    let t = match (text, ids) {
        (Some(text), _) => crate::tokens::encode_tokens(
            &crate::tokens::tokenizer_beside(weights)?,
            text,
            pair.as_deref(),
        )?,
        (None, Some(ids)) => {
            let ids = crate::tokens::parse_ids(ids)?;
            let segments = match segments {
                Some(s) => {
                    let s = crate::tokens::parse_ids(s)?;
                    if s.len() != ids.len() || s.iter().any(|&t| t > 1) {
                        bail!(
                            "--segments takes one 0 or 1 per token ({} tokens)",
                            ids.len()
                        );
                    }
                    Some(s)
                }
                None => None,
            };
            Tokens { ids, segments }
        }
        (None, None) => bail!("give the input as --text \"...\" or --ids 1,2,3"),
    };
    if t.ids.is_empty() {
        bail!("the input has no tokens");
    }
    Ok(t)
}

/// A model's outputs, in declaration order: name and value.
pub type Outputs = Vec<(String, Tensor)>;

pub fn run(args: RunArgs) -> Result<()> {
    if args.backend == Backend::Float {
        if let Some(opt) = args.pipeline.compile_only_option() {
            bail!("{opt} applies to compiled programs: add --backend fixed or --backend mpc");
        }
        if args.profile {
            bail!("--profile reports the cost of a compiled run: add --backend fixed or --backend mpc");
        }
    }
    let named = crate::inputs::parse_named(&args.named)?;
    // a model whose inputs are all given by name needs no tokens
    let toks = if args.text.is_none() && args.ids.is_none() && !named.is_empty() {
        crate::inputs::Tokens::default()
    } else {
        tokens(
            &args.text,
            &args.pair,
            &args.ids,
            &args.segments,
            &args.weights,
        )?
    };
    let seq = crate::inputs::seq_for(&toks, args.seq)?;
    let path = crate::model_path(&args.file);
    let Loaded {
        weights,
        mut opts,
        labels,
    } = load(
        &path,
        &args.weights,
        args.random_weights,
        &args.config,
        args.layers,
        seq as i64,
    )?;
    opts.secret_inputs = crate::secret_length(args.hide_length);
    let (sources, e) = crate::compile_reported(&path, &opts)?;
    let g = &e.graph;
    let slots = crate::inputs::graph_slots(g);
    let values = crate::inputs::fill(&slots, &toks, &named)?;
    let inputs = crate::inputs::tensors(&slots, &values);
    let start = std::time::Instant::now();
    let mut report = None;
    let (policy, outs): (_, Outputs) = match args.backend {
        Backend::Float => {
            let result = evaluate(g, &inputs, weights.as_ref(), &|_| false)
                .map_err(|e| anyhow!("evaluation failed: {e}"))?;
            // what the parties would keep is not the client's
            let kept = g.kept_output_names();
            let outs = result.outputs.into_iter();
            (None, outs.filter(|(n, _)| !kept.contains(n)).collect())
        }
        Backend::Fixed | Backend::Mpc => {
            let prog = program(&e, &sources, &args.pipeline, weights.as_ref(), &path)?;
            let by_port = by_port(&prog, &values)?;
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
            let outs = rep
                .outputs
                .iter()
                .map(|o| (o.name.clone(), Tensor::new(o.shape.clone(), o.data.clone())))
                .collect();
            report = Some((prog, rep));
            (Some(crate::policy(&args.pipeline)?.name), outs)
        }
    };
    if outs.is_empty() {
        bail!("the model has no output");
    }
    let backend = backend_name(args.backend);
    let wall = start.elapsed().as_secs_f64();
    if args.json {
        let mut obj = serde_json::json!({
            "model": e.model,
            "config": e.config,
            "backend": backend,
            "policy": policy,
            "tokens": values
                .get("ids")
                .map(|v| v.iter().map(|&x| x as u64).collect::<Vec<_>>()),
            "len": toks.ids.len(),
            "wall_s": wall,
        });
        add_outputs_json(&mut obj, &outs);
        add_labels_json(&mut obj, &outs, labels.as_deref());
        if let Some((prog, rep)) = &report {
            crate::profile::add_json(&mut obj, prog, rep);
        }
        println!("{obj}");
    } else {
        println!(
            "model {} (config {}), backend {backend}{}, {}, {:.3} s",
            e.model,
            e.config,
            policy.map(|p| format!(" (policy {p})")).unwrap_or_default(),
            token_count(toks.ids.len(), seq),
            wall
        );
        for (name, out) in &outs {
            println!("{}", crate::profile::preview(name, &out.shape, &out.data));
        }
        if let Some((label, p)) = top_label(&outs, labels.as_deref()) {
            println!("label: {label} ({p:.4})");
        }
        if let Some((prog, rep)) = &report {
            print!("{}", crate::profile::summary(rep));
            if args.profile {
                print!("{}", crate::profile::table(prog, rep));
            }
        }
    }
    Ok(())
}

/// The argmax label of the first output, when it has one value per label.
pub fn top_label(outs: &Outputs, labels: Option<&[String]>) -> Option<(String, f64)> {
    let (labels, (_, t)) = (labels?, outs.first()?);
    if t.data.len() != labels.len() {
        return None;
    }
    let (i, p) = t
        .data
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    Some((labels[i].clone(), *p))
}

/// `labels` and the argmax `label` into a JSON report, when the first
/// output has one value per label.
pub fn add_labels_json(obj: &mut serde_json::Value, outs: &Outputs, labels: Option<&[String]>) {
    if let Some((label, _)) = top_label(outs, labels) {
        obj["labels"] = serde_json::json!(labels);
        obj["label"] = serde_json::json!(label);
    }
}

/// "5 tokens" or "5 tokens (padded to 128)".
pub fn token_count(n: usize, seq: usize) -> String {
    if n == 0 {
        return "inputs by name".into();
    }
    let t = if n == 1 { "token" } else { "tokens" };
    if seq > n {
        format!("{n} {t} (padded to {seq})")
    } else {
        format!("{n} {t}")
    }
}

/// Every output into a JSON report: `outputs` maps each name (declaration
/// order) to its shape and values; `output`, `output_name` and `shape`
/// repeat the first, for one-output models.
pub fn add_outputs_json(obj: &mut serde_json::Value, outs: &Outputs) {
    let mut m = serde_json::Map::new();
    for (name, t) in outs {
        m.insert(
            name.clone(),
            serde_json::json!({ "shape": t.shape, "values": t.data }),
        );
    }
    obj["outputs"] = serde_json::Value::Object(m);
    if let Some((name, t)) = outs.first() {
        obj["output_name"] = serde_json::json!(name);
        obj["output"] = serde_json::json!(t.data);
        obj["shape"] = serde_json::json!(t.shape);
    }
}

pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Float => "float",
        Backend::Fixed => "fixed",
        Backend::Mpc => "mpc",
    }
}
