//! `ditto generate`: text from a causal LM, one token per run, with the
//! key/value cache kept by the parties between runs.
//!
//! A model that generates declares its cache as inputs `from parties` and
//! outputs `to parties` of the same names, and a public input `pos` (the
//! position of its first new token); models/smollm2.ditto does. The prompt
//! runs once (S = its length, M = the cache's capacity); every later token
//! runs the one-token program (S = 1, same M) on the previous run's kept
//! cache, so a step costs one token's projections and FFN plus attention
//! over the cache, not the prefix again. The client sees the logits of each
//! step, picks the next token (greedy, or sampled with --temperature and
//! --top-k) and sends it secret-shared like the prompt: the servers see
//! neither the prompt nor the generated tokens, only how many there are.
//! `--no-cache` re-runs the whole prefix every step instead (the reference
//! the cache is checked against, and the cost it saves).

use crate::run::Backend;
use anyhow::{anyhow, bail, Context, Result};
use ditto_compiler::diag::Sources;
use ditto_compiler::elab::Elaborated;
use ditto_compiler::ir::eval::{evaluate, Tensor, WeightSource};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Model file, or the name of one in models/ (e.g. smollm2).
    pub file: String,
    /// A GGUF or safetensors file (a GGUF file carries its tokenizer; a
    /// safetensors file needs tokenizer.json beside it for --prompt).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seeded random weights instead of a file (with --ids).
    #[arg(long, value_name = "SEED", conflicts_with = "weights")]
    pub random_weights: Option<u64>,
    /// The prompt, tokenized with the weights' tokenizer.
    #[arg(long, conflicts_with = "ids")]
    pub prompt: Option<String>,
    /// The prompt as token ids, comma-separated.
    #[arg(long)]
    pub ids: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    #[arg(long, value_enum, default_value = "float")]
    pub backend: Backend,
    /// Sample from softmax(logits / T) instead of taking the largest (0:
    /// greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample among the K most likely tokens only (with --temperature).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop at this token (default: the GGUF tokenizer's end-of-sequence
    /// token, if any; `--eos none` never stops early).
    #[arg(long)]
    pub eos: Option<String>,
    /// Re-run the whole prefix for every token (no cache).
    #[arg(long)]
    pub no_cache: bool,
    /// Run the prompt one token per run with the one-token program, as
    /// `ditto client --generate` does through a cluster.
    #[arg(long, conflicts_with = "no_cache")]
    pub prompt_by_token: bool,
    /// INSECURE, for reproducibility tests: derive every run's randomness
    /// from this public number (`ditto_vm::insecure_seeds`), as `ditto
    /// party`, `client` and `share-weights` do when given the same one.
    #[arg(long, hide = true, value_name = "N")]
    pub insecure_seed: Option<u64>,
    #[arg(long)]
    pub config: Option<String>,
    /// Keep only the first K layers.
    #[arg(long)]
    pub layers: Option<i64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the cost of the last step by op kind and by layer (fixed and
    /// mpc backends).
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    pub pipeline: crate::PipelineArgs,
    /// After the last step, re-run its whole prefix without the cache in
    /// the same session (`bench --generate`).
    #[arg(skip)]
    pub rerun_last: bool,
}

/// The cost of one step (one run).
#[derive(Debug, Clone, Default)]
pub struct StepCost {
    /// Tokens the run took (the prompt's length, then 1; with --no-cache the
    /// whole prefix).
    pub tokens: usize,
    /// Position of its first new token.
    pub pos: usize,
    pub secs: f64,
    pub bytes: u64,
    pub bytes_online: u64,
    pub rounds: u64,
    pub rounds_online: u64,
    pub client_bytes: u64,
    /// The run's report (fixed and mpc), for network estimates.
    pub report: Option<ditto_vm::Report>,
    /// Its program (with --profile).
    pub program: Option<ditto_bytecode::Program>,
    /// The five largest logits and their tokens.
    pub top: Vec<(u32, f64)>,
}

/// A finished generation.
pub struct Generation {
    pub prompt: Vec<u32>,
    pub tokens: Vec<u32>,
    pub steps: Vec<StepCost>,
    pub policy: Option<String>,
    /// The last step's prefix re-run without the cache (`rerun_last`).
    pub rerun: Option<StepCost>,
}

/// One compiled shape of the model: its graph, and its program for the VM
/// backends.
struct Shape {
    e: Elaborated,
    prog: Option<ditto_bytecode::Program>,
}

/// What the previous run kept: tensors (float) or each party's values.
#[derive(Default)]
struct Carried {
    tensors: HashMap<String, Tensor>,
    parties: Option<[ditto_vm::State; 3]>,
    /// Runs made so far (the index of the next, for `--insecure-seed`).
    runs: u64,
    /// Seeds of the runs (`--insecure-seed`): `None` draws them from the OS.
    insecure_seed: Option<u64>,
}

impl Carried {
    /// Forgets the kept values but not the weights the parties hold (a run
    /// without the cache next).
    fn weights_only(&mut self) {
        self.tensors.clear();
        if let Some(ps) = &mut self.parties {
            for p in ps.iter_mut() {
                *p = ditto_vm::held_weights(p);
            }
        }
    }
}

/// The next token from logits: the largest, or sampled.
fn pick(logits: &[f64], temperature: f64, top_k: Option<usize>, rng: &mut impl Rng) -> u32 {
    let argmax = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap_or(0);
    if temperature <= 0.0 {
        return argmax as u32;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(top_k.unwrap_or(order.len()).max(1));
    let top = logits[order[0]];
    let w: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] - top) / temperature).exp())
        .collect();
    let mut u = rng.random::<f64>() * w.iter().sum::<f64>();
    for (i, wi) in order.iter().zip(&w) {
        if u < *wi {
            return *i as u32;
        }
        u -= wi;
    }
    order[order.len() - 1] as u32
}

/// The five largest logits and their tokens, largest first.
pub fn top5(logits: &[f64]) -> Vec<(u32, f64)> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
        .iter()
        .take(5)
        .map(|&i| (i as u32, logits[i]))
        .collect()
}

/// The end-of-sequence token: `--eos`, else the GGUF tokenizer's.
fn eos(args: &GenerateArgs) -> Result<Option<u32>> {
    match args.eos.as_deref() {
        Some("none") => Ok(None),
        Some(t) => Ok(Some(t.parse().with_context(|| {
            format!("--eos: `{t}` is not a token id (or `none`)")
        })?)),
        None => Ok(match &args.weights {
            Some(w) if crate::checkpoint::is_gguf(w) => {
                let g = ditto_compiler::gguf::Gguf::open(w).map_err(anyhow::Error::msg)?;
                g.metadata_u64("tokenizer.ggml.eos_token_id")
                    .map(|v| v as u32)
            }
            _ => None,
        }),
    }
}

/// Runs the generation `args` asks for.
pub fn run_generation(args: &GenerateArgs) -> Result<Generation> {
    let path = crate::model_path(&args.file);
    let prompt: Vec<u32> = match (&args.prompt, &args.ids) {
        (Some(p), _) => crate::tokens::encode(&crate::tokens::tokenizer_beside(&args.weights)?, p)?,
        (None, Some(ids)) => crate::tokens::parse_ids(ids)?,
        (None, None) => bail!("give the prompt: --prompt TEXT, or --ids"),
    };
    if prompt.is_empty() {
        bail!("the prompt has no tokens");
    }
    if args.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    let n0 = prompt.len();
    // the last token generated is not run: positions 0..n0 + N − 1
    let m = n0 + args.max_new_tokens - 1;
    let loaded = crate::run::load(
        &path,
        &args.weights,
        args.random_weights,
        &args.config,
        args.layers,
        n0 as i64,
    )?;
    let weights = loaded.weights.as_ref();
    let build = |s: usize, m: usize| -> Result<Shape> {
        let mut o = loaded.opts.clone();
        o.seq = Some(s as i64);
        o.sizes.insert("M".into(), m as i64);
        let (sources, e): (Sources, Elaborated) = crate::compile_reported(&path, &o)?;
        let prog = match args.backend {
            Backend::Float => None,
            _ => Some(crate::run::program(
                &e,
                &sources,
                &args.pipeline,
                weights,
                &path,
            )?),
        };
        Ok(Shape { e, prog })
    };
    let first = if args.prompt_by_token {
        build(1, m)?
    } else {
        build(n0, if args.no_cache { n0 } else { m })?
    };
    let g = &first.e.graph;
    let has = |name: &str| crate::inputs::graph_slots(g).iter().any(|s| s.name == name);
    if !args.no_cache && (g.kept_output_names().is_empty() || !has("pos")) {
        bail!(
            "{} keeps no cache (no `output … to parties` and `pos` input): pass --no-cache to \
             re-run the prefix for every token",
            path.display()
        );
    }
    let step = if args.no_cache || args.prompt_by_token || args.max_new_tokens == 1 {
        None
    } else {
        Some(build(1, m)?)
    };
    let policy = match args.backend {
        Backend::Float => None,
        _ => Some(crate::policy(&args.pipeline)?.name),
    };
    let eos = eos(args)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut carried = Carried {
        insecure_seed: args.insecure_seed,
        ..Default::default()
    };
    let mut tokens: Vec<u32> = vec![];
    let mut steps = vec![];
    let progress = crate::progress::Progress::new(!args.json);
    // (--prompt-by-token: the prompt's tokens but the last, one run each)
    let fed = if args.prompt_by_token { n0 - 1 } else { 0 };
    for pos in 0..fed {
        let (logits, mut cost) = run_step(
            args.backend,
            &first,
            &prompt[pos..=pos],
            pos,
            &mut carried,
            weights,
        )?;
        cost.top = top5(&logits);
        steps.push(cost);
    }
    for k in 0..args.max_new_tokens {
        progress.update(k, args.max_new_tokens);
        let rebuilt;
        let (shape, ids, pos): (&Shape, Vec<u32>, usize) = if k == 0 && args.prompt_by_token {
            (&first, vec![prompt[n0 - 1]], n0 - 1)
        } else if k == 0 {
            (&first, prompt.clone(), 0)
        } else if args.no_cache {
            let all: Vec<u32> = prompt.iter().chain(&tokens).copied().collect();
            rebuilt = build(all.len(), all.len())?;
            (&rebuilt, all, 0)
        } else {
            // (--prompt-by-token: `first` is the one-token program)
            let s = step.as_ref().unwrap_or(&first);
            (s, vec![tokens[k - 1]], n0 + k - 1)
        };
        if args.no_cache {
            carried.weights_only();
        }
        let (logits, mut cost) = run_step(args.backend, shape, &ids, pos, &mut carried, weights)?;
        if args.profile {
            cost.program = shape.prog.clone();
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        cost.top = order
            .iter()
            .take(5)
            .map(|&i| (i as u32, logits[i]))
            .collect();
        let t = pick(&logits, args.temperature, args.top_k, &mut rng);
        steps.push(cost);
        tokens.push(t);
        if Some(t) == eos {
            break;
        }
    }
    let rerun = if args.rerun_last {
        let all: Vec<u32> = prompt
            .iter()
            .chain(&tokens[..tokens.len() - 1])
            .copied()
            .collect();
        let shape = build(all.len(), all.len())?;
        carried.weights_only();
        Some(run_step(args.backend, &shape, &all, 0, &mut carried, weights)?.1)
    } else {
        None
    };
    progress.finish();
    Ok(Generation {
        prompt,
        tokens,
        steps,
        policy,
        rerun,
    })
}

/// One run: `ids` at positions pos.., the previous run's kept values in,
/// this run's out; returns the logits.
fn run_step(
    backend: Backend,
    shape: &Shape,
    ids: &[u32],
    pos: usize,
    carried: &mut Carried,
    weights: &(dyn WeightSource + Sync),
) -> Result<(Vec<f64>, StepCost)> {
    let g = &shape.e.graph;
    let toks = crate::inputs::Tokens {
        ids: ids.to_vec(),
        segments: None,
    };
    let slots = crate::inputs::graph_slots(g);
    let mut named = std::collections::BTreeMap::new();
    if slots.iter().any(|s| s.name == "pos") {
        named.insert("pos".to_string(), vec![pos as f64]);
    }
    let values = crate::inputs::fill(&slots, &toks, &named)?;
    let kept = g.kept_output_names();
    let start = std::time::Instant::now();
    let mut cost = StepCost {
        tokens: ids.len(),
        pos,
        ..Default::default()
    };
    let logits = match (&shape.prog, backend) {
        (None, _) | (_, Backend::Float) => {
            let mut inputs = crate::inputs::tensors(&slots, &values);
            for (name, t) in carried.tensors.drain() {
                inputs.insert(name, t);
            }
            let out = evaluate(g, &inputs, weights, &|_| false)
                .map_err(|e| anyhow!("evaluation failed: {e}"))?;
            let mut logits = None;
            for (name, t) in out.outputs {
                if kept.contains(&name) {
                    carried.tensors.insert(name, t);
                } else if logits.is_none() {
                    logits = Some(t.data);
                }
            }
            cost.secs = start.elapsed().as_secs_f64();
            logits.ok_or_else(|| anyhow!("the model reveals no output"))?
        }
        (Some(prog), _) => {
            let by_port = crate::run::by_port(prog, &values)?;
            let lookup = |name: &str| weights.values(name);
            let data = ditto_vm::Data {
                inputs: by_port,
                weights: &lookup,
            };
            let mut rep = if backend == Backend::Fixed {
                let st = carried.parties.as_ref().map(|s| &s[0]);
                ditto_vm::run_fixed_with(prog, data, st, true)
            } else {
                let opts = ditto_vm::MpcOptions {
                    state: carried.parties.as_ref(),
                    session: true,
                    seeds: carried
                        .insecure_seed
                        .map(|m| ditto_vm::insecure_seeds(m, carried.runs)),
                    ..Default::default()
                };
                ditto_vm::run_mpc(prog, data, &opts)
            }
            .map_err(|e| anyhow!("{} backend failed: {e}", crate::run::backend_name(backend)))?;
            cost.secs = rep.wall_s;
            cost.bytes = rep.comm.bytes_online + rep.comm.bytes_offline;
            cost.bytes_online = rep.comm.bytes_online;
            cost.rounds = rep.rounds_online() + rep.rounds_offline();
            cost.rounds_online = rep.rounds_online();
            cost.client_bytes = rep.client_bytes;
            let logits = rep
                .outputs
                .first()
                .map(|o| o.data.clone())
                .ok_or_else(|| anyhow!("the model reveals no output"))?;
            carried.parties = Some(std::mem::take(&mut rep.state));
            carried.runs += 1;
            cost.report = Some(rep);
            logits
        }
    };
    Ok((logits, cost))
}

/// `ditto generate`.
pub fn generate(args: GenerateArgs) -> Result<()> {
    let gen = run_generation(&args)?;
    // (built once: from a GGUF file that is the whole vocabulary and merges)
    let tokenizer = args.weights.as_ref().and_then(|w| {
        let tj = crate::tokens::tokenizer_beside(&Some(w.clone())).ok()?;
        crate::tokens::load(&tj).ok()
    });
    let text = |ids: &[u32]| -> Option<String> { tokenizer.as_ref()?.decode(ids, false).ok() };
    let backend = crate::run::backend_name(args.backend);
    if args.json {
        let steps: Vec<serde_json::Value> = gen
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "tokens": s.tokens, "pos": s.pos, "secs": s.secs, "bytes": s.bytes,
                    "bytes_online": s.bytes_online, "rounds": s.rounds,
                    "rounds_online": s.rounds_online, "client_bytes": s.client_bytes,
                    "top": s.top,
                })
            })
            .collect();
        let obj = serde_json::json!({
            "model": args.file,
            "backend": backend,
            "policy": gen.policy,
            "cache": !args.no_cache,
            "prompt_ids": gen.prompt,
            "tokens": gen.tokens,
            "text": text(&gen.tokens),
            "steps": steps,
        });
        println!("{obj}");
        return Ok(());
    }
    println!(
        "{} tokens of {} after a prompt of {} ({backend}{}{})",
        gen.tokens.len(),
        args.file,
        gen.prompt.len(),
        gen.policy
            .as_ref()
            .map(|p| format!(", policy {p}"))
            .unwrap_or_default(),
        if args.no_cache { ", no cache" } else { "" }
    );
    match (text(&gen.prompt), text(&gen.tokens)) {
        (Some(p), Some(t)) => println!("{p}\x1b[1m{t}\x1b[0m"),
        _ => println!("tokens: {:?}", gen.tokens),
    }
    for (i, s) in gen.steps.iter().enumerate() {
        let cost = match &s.report {
            Some(_) if args.backend == Backend::Mpc => format!(
                ", {} bytes ({} online), {} rounds ({} online)",
                s.bytes, s.bytes_online, s.rounds, s.rounds_online
            ),
            _ => String::new(),
        };
        println!(
            "  step {i:>2}: {} token(s) at position {}, {:.3} s{cost}",
            s.tokens, s.pos, s.secs
        );
    }
    if let Some(s) = gen.steps.last() {
        if let (Some(prog), Some(rep)) = (&s.program, &s.report) {
            println!("\nlast step:\n{}", crate::profile::table(prog, rep));
        }
    }
    Ok(())
}
