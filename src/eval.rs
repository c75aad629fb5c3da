//! `ditto eval`: a policy's utility on a user's texts before deploying —
//! the compiled model (`fixed` or `mpc`, optionally with distilled weights)
//! against the float model with the original weights, text by text: the
//! cosine of their outputs (min, 5th percentile, median, mean).

use anyhow::{anyhow, bail, Context, Result};
use ditto_compiler::ir::eval::{evaluate, WeightSource};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Model file, or the name of one in models/.
    file: String,
    /// The float reference's weights (and the tokenizer beside them).
    #[arg(long)]
    weights: PathBuf,
    /// Weights for the compiled run (a `ditto distill` student); default:
    /// --weights.
    #[arg(long)]
    student: Option<PathBuf>,
    /// Texts, one per line.
    #[arg(long)]
    texts: PathBuf,
    /// Use the first N texts.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Longest text in tokens (longer ones are cut).
    #[arg(long, default_value_t = 128)]
    seq: usize,
    #[arg(long, value_enum, default_value = "fixed")]
    backend: crate::run::Backend,
    #[arg(long)]
    config: Option<String>,
    #[command(flatten)]
    pipeline: crate::PipelineArgs,
    #[arg(long)]
    json: bool,
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na * nb)
}

pub fn eval(args: EvalArgs) -> Result<()> {
    if args.backend == crate::run::Backend::Float {
        bail!("--backend float is the reference itself: evaluate fixed or mpc");
    }
    let text = std::fs::read_to_string(&args.texts)
        .with_context(|| format!("cannot read {}", args.texts.display()))?;
    let texts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(args.limit)
        .collect();
    if texts.is_empty() {
        bail!("{} has no texts", args.texts.display());
    }
    let path = crate::model_path(&args.file);
    let teacher = crate::run::load(
        &path,
        &Some(args.weights.clone()),
        None,
        &args.config,
        None,
        1,
    )?;
    let student: Box<dyn WeightSource + Sync> = match &args.student {
        Some(s) => {
            let mut ck = crate::checkpoint::Checkpoint::open(s)?;
            let declared: Vec<String> = teacher
                .opts
                .weights
                .as_ref()
                .map(|w| w.keys().cloned().collect())
                .unwrap_or_default();
            let _ = ck.fit(&declared);
            Box::new(ck)
        }
        None => {
            crate::run::load(
                &path,
                &Some(args.weights.clone()),
                None,
                &args.config,
                None,
                1,
            )?
            .weights
        }
    };
    let tj = crate::tokens::tokenizer_beside(&Some(args.weights.clone()))?;
    let mut programs: BTreeMap<usize, _> = BTreeMap::new();
    let mut cos = Vec::with_capacity(texts.len());
    let (mut bytes, mut rounds) = (0u64, 0u64);
    let start = std::time::Instant::now();
    for (k, t) in texts.iter().enumerate() {
        let mut toks = crate::tokens::encode_tokens(&tj, t, None)?;
        toks.ids.truncate(args.seq);
        let n = toks.ids.len();
        if let std::collections::btree_map::Entry::Vacant(slot) = programs.entry(n) {
            let opts = ditto_compiler::elab::Options {
                seq: Some(n as i64),
                ..teacher.opts.clone()
            };
            let (sources, e) = crate::compile_reported(&path, &opts)?;
            let prog = crate::run::program(&e, &sources, &args.pipeline, student.as_ref(), &path)?;
            slot.insert((e, prog));
        }
        let (e, prog) = &programs[&n];
        let slots = crate::inputs::graph_slots(&e.graph);
        let values = crate::inputs::fill(&slots, &toks, &Default::default())?;
        let inputs = crate::inputs::tensors(&slots, &values);
        let want = evaluate(&e.graph, &inputs, teacher.weights.as_ref(), &|_| false)
            .map_err(|e| anyhow!("text {}: float evaluation failed: {e}", k + 1))?;
        let lookup = |name: &str| student.values(name);
        let data = ditto_vm::Data {
            inputs: crate::run::by_port(prog, &values)?,
            weights: &lookup,
        };
        let rep = match args.backend {
            crate::run::Backend::Mpc => ditto_vm::run_mpc(prog, data, &Default::default()),
            _ => ditto_vm::run_fixed(prog, data),
        }
        .map_err(|e| anyhow!("text {}: {e}", k + 1))?;
        let out = rep
            .outputs
            .first()
            .ok_or_else(|| anyhow!("the model has no output"))?;
        let reference = &want.outputs[&out.name];
        cos.push(cosine(&out.data, &reference.data));
        bytes += rep.comm.bytes();
        rounds += rep.rounds_online();
        if !args.json {
            eprint!("\r{}/{} texts", k + 1, texts.len());
        }
    }
    if !args.json {
        eprintln!();
    }
    let mut sorted = cos.clone();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    let policy = crate::policy(&args.pipeline)?.name;
    let backend = crate::run::backend_name(args.backend);
    let n = cos.len() as u64;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": args.file, "policy": policy, "backend": backend,
                "student": args.student, "texts": cos.len(),
                "cosine": {"min": sorted[0], "p5": pick(0.05), "median": pick(0.5), "mean": mean},
                "per_text": cos,
                "bytes_per_text": bytes / n, "rounds_per_text": rounds / n,
                "seconds": start.elapsed().as_secs_f64(),
            })
        );
    } else {
        println!(
            "{} under {policy} ({backend}{}) against the float model, {} texts: cosine min {:.5}, 5% {:.5}, median {:.5}, mean {:.5}",
            args.file,
            args.student
                .as_ref()
                .map(|s| format!(", weights {}", s.display()))
                .unwrap_or_default(),
            cos.len(),
            sorted[0],
            pick(0.05),
            pick(0.5),
            mean
        );
        if args.backend == crate::run::Backend::Mpc {
            println!(
                "per text: {} bytes, {} online rounds",
                bytes / n,
                rounds / n
            );
        }
    }
    Ok(())
}
