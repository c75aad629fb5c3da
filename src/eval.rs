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
    #[arg(long, required_unless_present = "labelled")]
    texts: Option<PathBuf>,
    /// A labelled test set, `label<TAB>text` per line (the WordNet gloss
    /// task of scripts/fetch-corpus.sh): also the accuracy of a linear head,
    /// fitted on --train-head's float outputs, on the float and the
    /// compiled outputs, and how often the two agree.
    #[arg(long, requires = "train_head", conflicts_with = "texts")]
    labelled: Option<PathBuf>,
    /// The head's training set (`label<TAB>text`), read through the float
    /// model with --weights.
    #[arg(long)]
    train_head: Option<PathBuf>,
    /// Use the first N lines of --train-head.
    #[arg(long, default_value_t = 3000)]
    head_samples: usize,
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

/// A compiled run's output, bytes and online rounds.
type Compiled = (Vec<f64>, u64, u64);

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
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    // (label, text) rows: labels only from --labelled
    let rows = |text: &str, labelled: bool, limit: usize| -> Result<Vec<(String, String)>> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(limit)
            .enumerate()
            .map(|(i, l)| {
                if labelled {
                    let (a, b) = l
                        .split_once('\t')
                        .ok_or_else(|| anyhow!("line {}: not `label<TAB>text`", i + 1))?;
                    Ok((a.to_string(), b.to_string()))
                } else {
                    Ok((String::new(), l.to_string()))
                }
            })
            .collect()
    };
    let (src, test) = match (&args.texts, &args.labelled) {
        (Some(t), _) => (t, rows(&read(t)?, false, args.limit)?),
        (None, Some(l)) => (l, rows(&read(l)?, true, args.limit)?),
        (None, None) => bail!("give --texts FILE or --labelled FILE"),
    };
    if test.is_empty() {
        bail!("{} has no texts", src.display());
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
    // the compiled run's weights: the student's, or the reference's own
    let own: Option<Box<dyn WeightSource + Sync>> = match &args.student {
        Some(s) => {
            let mut ck = crate::checkpoint::Checkpoint::open(s)?;
            let declared: Vec<String> = teacher
                .opts
                .weights
                .as_ref()
                .map(|w| w.keys().cloned().collect())
                .unwrap_or_default();
            let _ = ck.fit(&declared);
            Some(Box::new(ck))
        }
        None => None,
    };
    let student: &(dyn WeightSource + Sync) = match &own {
        Some(w) => w.as_ref(),
        None => teacher.weights.as_ref(),
    };
    let tj = crate::tokens::tokenizer_beside(&Some(args.weights.clone()))?;
    let mut programs: BTreeMap<usize, _> = BTreeMap::new();
    // a text's float output and the compiled one (with bytes and rounds)
    let mut run = |t: &str, compiled: bool| -> Result<(Vec<f64>, Option<Compiled>)> {
        let mut toks = crate::tokens::encode_tokens(&tj, t, None)?;
        toks.ids.truncate(args.seq);
        let n = toks.ids.len();
        if let std::collections::btree_map::Entry::Vacant(slot) = programs.entry(n) {
            let opts = ditto_compiler::elab::Options {
                seq: Some(n as i64),
                ..teacher.opts.clone()
            };
            let (sources, e) = crate::compile_reported(&path, &opts)?;
            let prog = crate::run::program(&e, &sources, &args.pipeline, student, &path)?;
            slot.insert((e, prog));
        }
        let (e, prog) = &programs[&n];
        let slots = crate::inputs::graph_slots(&e.graph);
        let values = crate::inputs::fill(&slots, &toks, &Default::default())?;
        let inputs = crate::inputs::tensors(&slots, &values);
        let want = evaluate(&e.graph, &inputs, teacher.weights.as_ref(), &|_| false)
            .map_err(|e| anyhow!("float evaluation failed: {e}"))?;
        let name = &prog
            .outputs
            .first()
            .ok_or_else(|| anyhow!("the model has no output"))?
            .name;
        let reference = want.outputs[name].data.clone();
        if !compiled {
            return Ok((reference, None));
        }
        let lookup = |name: &str| student.values(name);
        let data = ditto_vm::Data {
            inputs: crate::run::by_port(prog, &values)?,
            weights: &lookup,
        };
        let rep = match args.backend {
            crate::run::Backend::Mpc => ditto_vm::run_mpc(prog, data, &Default::default()),
            _ => ditto_vm::run_fixed(prog, data),
        }
        .map_err(|e| anyhow!("{e}"))?;
        let (b, r) = (rep.comm.bytes(), rep.rounds_online());
        let out = rep
            .outputs
            .into_iter()
            .find(|o| &o.name == name)
            .expect("same program");
        Ok((reference, Some((out.data, b, r))))
    };
    // the head, on the float outputs of its training set
    let mut head = None;
    if let (Some(_), Some(f)) = (&args.labelled, &args.train_head) {
        let train = rows(&read(f)?, true, args.head_samples)?;
        let mut names: Vec<String> = train.iter().map(|r| r.0.clone()).collect();
        names.sort();
        names.dedup();
        let mut x = Vec::with_capacity(train.len());
        for (k, (_, t)) in train.iter().enumerate() {
            x.push(
                run(t, false)
                    .with_context(|| format!("{} line {}", f.display(), k + 1))?
                    .0,
            );
            if !args.json {
                eprint!("\rhead: {}/{} float outputs", k + 1, train.len());
            }
        }
        let y: Vec<usize> = train
            .iter()
            .map(|r| names.binary_search(&r.0).expect("listed"))
            .collect();
        let h = ditto_train::head::Head::fit(&x, &y, names.len(), 300, 1e-4)
            .map_err(|e| anyhow!("fitting the head: {e}"))?;
        if !args.json {
            eprintln!(
                "\rhead: {} classes, {} samples, training accuracy {:.3}",
                names.len(),
                x.len(),
                ditto_train::head::accuracy(&h, &x, &y)
            );
        }
        head = Some((h, names));
    }
    let mut cos = Vec::with_capacity(test.len());
    let (mut bytes, mut rounds) = (0u64, 0u64);
    let (mut right_f, mut right_c, mut agree, mut known) = (0, 0, 0, 0);
    let start = std::time::Instant::now();
    for (k, (label, t)) in test.iter().enumerate() {
        let (want, got) = run(t, true).with_context(|| format!("text {}", k + 1))?;
        let (got, b, r) = got.expect("compiled");
        cos.push(cosine(&got, &want));
        bytes += b;
        rounds += r;
        if let Some((h, names)) = &head {
            let (pf, pc) = (h.predict(&want), h.predict(&got));
            agree += usize::from(pf == pc);
            if let Ok(c) = names.binary_search(label) {
                known += 1;
                right_f += usize::from(pf == c);
                right_c += usize::from(pc == c);
            }
        }
        if !args.json {
            eprint!("\r{}/{} texts", k + 1, test.len());
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
                "accuracy": head.as_ref().map(|_| serde_json::json!({
                    "float": right_f as f64 / known.max(1) as f64,
                    "compiled": right_c as f64 / known.max(1) as f64,
                    "agreement": agree as f64 / n as f64,
                    "labelled": known,
                })),
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
        if head.is_some() {
            println!(
                "accuracy of the head on {known} labelled texts: float {:.4}, {backend} {:.4}; the two agree on {:.4}",
                right_f as f64 / known.max(1) as f64,
                right_c as f64 / known.max(1) as f64,
                agree as f64 / n as f64
            );
        }
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
