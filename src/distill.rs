//! `ditto distill`: quantization-aware distillation of a model for a policy
//! (ditto_train). The teacher is the model's float graph with the given
//! weights; the student is the same model lowered under the policy, trained
//! with fake quantization where the fixed-point backend rounds, and written
//! as safetensors under the teacher's tensor names.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::DType;
use ditto_compiler::ir::eval::Tensor;
use ditto_train::{loss_batch, targets, Pair, Params, Recipe, Stage, Target, Trainer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StageArg {
    /// Attention scores, hidden states and outputs (MPCFormer's stage 1)
    Hidden,
    /// Outputs only
    Pred,
}

#[derive(clap::Args)]
pub struct DistillArgs {
    /// Model file, or the name of one in models/.
    file: String,
    /// The teacher: a safetensors file or folder, or a GGUF file.
    #[arg(long, required_unless_present = "random_weights")]
    weights: Option<PathBuf>,
    /// A seeded random teacher (tests and demos).
    #[arg(long, value_name = "SEED", conflicts_with = "weights")]
    random_weights: Option<u64>,
    #[arg(long)]
    config: Option<String>,
    #[arg(long)]
    layers: Option<i64>,
    #[command(flatten)]
    pipeline: crate::PipelineArgs,
    /// Training texts, one per line (tokenized with the tokenizer beside
    /// --weights).
    #[arg(long)]
    texts: Option<PathBuf>,
    /// A training sample as token ids, comma-separated (repeatable).
    #[arg(long)]
    ids: Vec<String>,
    /// The last N samples are held out: not trained on, the loss reported
    /// on them before and after.
    #[arg(long, default_value_t = 0)]
    held_out: usize,
    /// Longest sample in tokens (longer ones are cut).
    #[arg(long, default_value_t = 48)]
    seq: usize,
    /// Samples per optimiser step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    /// Passes over the training samples (unless --steps is given).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Optimiser steps in all.
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long, value_enum, default_value = "hidden")]
    stage: StageArg,
    /// Fraction of the steps with a rising learning rate.
    #[arg(long, default_value_t = 0.1)]
    warmup: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Largest global gradient norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Seed of the sample order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the student (and its log) every N steps as well as at the end.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Continue the run whose student and log are at -o (the optimiser's
    /// moments start again from zero).
    #[arg(long)]
    resume: bool,
    /// Start the student from these weights instead of the teacher's (a
    /// second stage: `--stage pred --init STAGE1_STUDENT`).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// The student: a `.safetensors` file, or a folder (model.safetensors,
    /// with the teacher's config.json and tokenizer.json copied beside it).
    #[arg(short, long)]
    output: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// One training sample at its own length: its inputs and the teacher's
/// values on them.
struct Sample {
    len: usize,
    inputs: HashMap<String, Tensor>,
    target: Target,
}

/// Where the student's tensors go, and its log.
fn paths(output: &Path) -> (PathBuf, PathBuf) {
    if output.extension().is_some_and(|e| e == "safetensors") {
        (output.to_path_buf(), output.with_extension("log.json"))
    } else {
        (
            output.join("model.safetensors"),
            output.join("distill-log.json"),
        )
    }
}

pub fn distill(args: DistillArgs) -> Result<()> {
    if args.batch == 0 || args.seq == 0 {
        bail!("--batch and --seq must be at least 1");
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        bail!("--lr must be a positive number");
    }
    if !(0.0..1.0).contains(&args.warmup) {
        bail!("--warmup is a fraction of the steps, in [0, 1)");
    }
    let model = crate::model_path(&args.file);
    let loaded = crate::run::load(
        &model,
        &args.weights,
        args.random_weights,
        &args.config,
        args.layers,
        1,
    )?;
    let policy = crate::policy(&args.pipeline)?;
    if policy.auto {
        bail!(
            "policy {} picks its formats from calibrated bounds; distil for a fixed policy (ditto, ditto-quad, ditto-2quad, a JSON file)",
            policy.name
        );
    }

    // samples: token ids, cut to --seq
    let mut samples: Vec<Vec<u32>> = Vec::new();
    if let Some(f) = &args.texts {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let tj = crate::tokens::tokenizer_beside(&args.weights)?;
        let mut tok = crate::tokens::load(&tj)?;
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| anyhow!("cannot disable truncation: {e}"))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let enc = tok
                .encode(line, true)
                .map_err(|e| anyhow!("cannot tokenize {line:?}: {e}"))?;
            samples.push(enc.get_ids().to_vec());
        }
    }
    for ids in &args.ids {
        samples.push(crate::tokens::parse_ids(ids)?);
    }
    samples.retain(|s| !s.is_empty());
    for s in &mut samples {
        s.truncate(args.seq);
    }
    if samples.len() <= args.held_out {
        bail!(
            "{} samples and {} held out: give training texts with --texts FILE or --ids",
            samples.len(),
            args.held_out
        );
    }

    // a teacher/student pair per sample length
    let mut pairs: BTreeMap<usize, Pair> = BTreeMap::new();
    for len in samples.iter().map(Vec::len) {
        if pairs.contains_key(&len) {
            continue;
        }
        let opts = ditto_compiler::elab::Options {
            seq: Some(len as i64),
            ..loaded.opts.clone()
        };
        let (sources, e) = crate::compile_reported(&model, &opts)?;
        let mut student = e.graph.clone();
        crate::lower(
            &mut student,
            &sources,
            &args.pipeline,
            crate::bounds::Check::Off,
        )?;
        pairs.insert(len, Pair::new(e.graph, student));
    }
    let any = pairs.values().next().expect("one sample at least");
    let teacher = Params::of_graph(&any.teacher, loaded.weights.as_ref(), DType::F32)
        .map_err(|e| anyhow!("{e}"))?;
    let (st_path, log_path) = paths(&args.output);
    let mut done = 0;
    let mut log: Vec<serde_json::Value> = Vec::new();
    let student = if args.resume {
        let ck = crate::checkpoint::Checkpoint::open(&st_path)
            .with_context(|| format!("--resume: no student at {}", st_path.display()))?;
        let text = std::fs::read_to_string(&log_path)
            .with_context(|| format!("--resume: no log at {}", log_path.display()))?;
        let prev: serde_json::Value = serde_json::from_str(&text)?;
        done = prev["steps_done"].as_u64().unwrap_or(0) as usize;
        log = prev["log"].as_array().cloned().unwrap_or_default();
        Params::of_graph(&any.teacher, &ck, DType::F32).map_err(|e| anyhow!("{e}"))?
    } else if let Some(init) = &args.init {
        let ck = crate::checkpoint::Checkpoint::open(init)
            .with_context(|| format!("--init: cannot open {}", init.display()))?;
        Params::of_graph(&any.teacher, &ck, DType::F32).map_err(|e| anyhow!("--init: {e}"))?
    } else {
        Params::of_graph(&any.teacher, loaded.weights.as_ref(), DType::F32)
            .map_err(|e| anyhow!("{e}"))?
    };

    // the teacher's values on every sample
    let t0 = Instant::now();
    let mut data: Vec<Option<Sample>> = (0..samples.len()).map(|_| None).collect();
    let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (k, ids) in samples.iter().enumerate() {
        by_len.entry(ids.len()).or_default().push(k);
    }
    for (len, ks) in by_len {
        let pair = &pairs[&len];
        let slots = crate::inputs::graph_slots(&pair.teacher);
        for chunk in ks.chunks(args.batch.max(16)) {
            let mut inputs = Vec::with_capacity(chunk.len());
            for &k in chunk {
                let toks = crate::inputs::Tokens {
                    ids: samples[k].clone(),
                    segments: None,
                };
                let values = crate::inputs::fill(&slots, &toks, &Default::default())
                    .with_context(|| format!("sample {}", k + 1))?;
                inputs.push(crate::inputs::tensors(&slots, &values));
            }
            let refs: Vec<_> = inputs.iter().collect();
            let ts = targets(pair, &teacher, &refs).map_err(|e| anyhow!("{e}"))?;
            for ((&k, inputs), target) in chunk.iter().zip(inputs).zip(ts) {
                data[k] = Some(Sample {
                    len,
                    inputs,
                    target,
                });
            }
        }
    }
    let mut data: Vec<Sample> = data.into_iter().map(|x| x.expect("every sample")).collect();
    let held = data.split_off(data.len() - args.held_out);
    // batches of one length each (a batch is one pass with a batch axis)
    let batches_of = |epoch: u64| -> Vec<Vec<usize>> {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ epoch.wrapping_mul(0x9E37_79B9));
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, x) in data.iter().enumerate() {
            by_len.entry(x.len).or_default().push(i);
        }
        let mut out = Vec::new();
        for (_, mut ids) in by_len {
            ids.shuffle(&mut rng);
            out.extend(ids.chunks(args.batch).map(<[usize]>::to_vec));
        }
        out.shuffle(&mut rng);
        out
    };
    let per_epoch = batches_of(0).len();
    let total = args.steps.unwrap_or(per_epoch * args.epochs.max(1));
    if done >= total {
        bail!(
            "the run at {} has done its {total} steps",
            args.output.display()
        );
    }
    let recipe = Recipe {
        lr: args.lr,
        steps: total,
        weight_decay: args.weight_decay,
        clip: args.clip,
        warmup: args.warmup,
        stage: match args.stage {
            StageArg::Hidden => Stage::Hidden,
            StageArg::Pred => Stage::Pred,
        },
    };
    let eval_held = |p: &Params| -> Result<Option<f64>> {
        if held.is_empty() {
            return Ok(None);
        }
        // per length, one batched pass; the mean over examples
        let mut by_len: BTreeMap<usize, Vec<&Sample>> = BTreeMap::new();
        for x in &held {
            by_len.entry(x.len).or_default().push(x);
        }
        let mut s = 0.0;
        for (len, xs) in by_len {
            for chunk in xs.chunks(args.batch) {
                let ins: Vec<_> = chunk.iter().map(|x| &x.inputs).collect();
                let tgs: Vec<_> = chunk.iter().map(|x| &x.target).collect();
                let l = loss_batch(&pairs[&len], p, &ins, &tgs, recipe.stage)
                    .map_err(|e| anyhow!("{e}"))?;
                s += l.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
            }
        }
        Ok(Some(s / held.len() as f64))
    };
    let before = eval_held(&student)?;
    let taps: usize = pairs.values().map(|p| p.taps.len()).max().unwrap_or(0);
    eprintln!(
        "distilling {} (config {}) for {}: {} samples ({} held out), {} lengths, {taps} taps, teacher run in {:.1} s; {total} steps of {}",
        any.teacher.name,
        loaded.opts.config.as_deref().unwrap_or("default"),
        policy.name,
        data.len(),
        held.len(),
        pairs.len(),
        t0.elapsed().as_secs_f64(),
        args.batch
    );

    let mut trainer = Trainer::new(&student, recipe.clone()).map_err(|e| anyhow!("{e}"))?;
    trainer.skip_to(done);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let start = Instant::now();
    let save = |log: &[serde_json::Value], steps: usize, held_after: Option<f64>| -> Result<()> {
        write_student(&args, &student, &st_path)?;
        let doc = serde_json::json!({
            "model": any.teacher.name,
            "policy": policy.name,
            "recipe": {
                "lr": recipe.lr, "steps": recipe.steps, "batch": args.batch,
                "weight_decay": recipe.weight_decay, "clip": recipe.clip,
                "warmup": recipe.warmup, "stage": format!("{:?}", recipe.stage).to_lowercase(),
                "seq": args.seq, "seed": args.seed,
            },
            "samples": data.len(),
            "held_out": held.len(),
            "held_out_loss_before": before,
            "held_out_loss_after": held_after,
            "steps_done": steps,
            "log": log,
        });
        std::fs::write(&log_path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", log_path.display()))
    };
    for step in done..total {
        let epoch = step / per_epoch;
        let within = step % per_epoch;
        if within == 0 || step == done {
            batches = batches_of(epoch as u64);
        }
        let batch: Vec<&Sample> = batches[within].iter().map(|&i| &data[i]).collect();
        let lr = trainer.lr_at(step);
        let ins: Vec<&HashMap<String, Tensor>> = batch.iter().map(|x| &x.inputs).collect();
        let tgs: Vec<&Target> = batch.iter().map(|x| &x.target).collect();
        // two halves at once (two cores), each one batched pass
        let halves = if batch.len() >= 2 { 2 } else { 1 };
        let cut = batch.len().div_ceil(halves);
        let l = trainer
            .step(halves, |h| {
                let r = h * cut..((h + 1) * cut).min(batch.len());
                loss_batch(
                    &pairs[&batch[0].len],
                    &student,
                    &ins[r.clone()],
                    &tgs[r],
                    recipe.stage,
                )
            })
            .map_err(|e| anyhow!("{e}"))?;
        if !l.is_finite() {
            bail!("step {}: the loss is {l}; try a smaller --lr", step + 1);
        }
        let secs = start.elapsed().as_secs_f64();
        log.push(serde_json::json!({"step": step + 1, "loss": l, "lr": lr, "seconds": secs}));
        let per = secs / (step + 1 - done) as f64;
        eprint!(
            "\rstep {}/{total}  loss {l:.4e}  lr {lr:.2e}  {:.1} s/step  ETA {:.0} s   ",
            step + 1,
            per,
            per * (total - step - 1) as f64
        );
        if args
            .checkpoint_every
            .is_some_and(|k| k > 0 && (step + 1) % k == 0 && step + 1 < total)
        {
            save(&log, step + 1, None)?;
        }
    }
    eprintln!();
    let after = eval_held(&student)?;
    save(&log, total, after)?;
    let first = log.first().and_then(|v| v["loss"].as_f64());
    let last = log.last().and_then(|v| v["loss"].as_f64());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "student": st_path, "log": log_path, "steps": total,
                "first_loss": first, "last_loss": last,
                "held_out_loss_before": before, "held_out_loss_after": after,
                "seconds": start.elapsed().as_secs_f64(),
            }))?
        );
    } else {
        println!(
            "wrote {} ({} steps in {:.1} s; training loss {} → {}{})",
            st_path.display(),
            total - done,
            start.elapsed().as_secs_f64(),
            first.map(|v| format!("{v:.4e}")).unwrap_or_default(),
            last.map(|v| format!("{v:.4e}")).unwrap_or_default(),
            match (before, after) {
                (Some(b), Some(a)) => format!("; held-out loss {b:.4e} → {a:.4e}"),
                _ => String::new(),
            }
        );
    }
    Ok(())
}

/// The student's tensors (f32, the teacher's names); for a folder, the
/// teacher's config.json and tokenizer.json beside them.
fn write_student(args: &DistillArgs, student: &Params, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let values = student.values().map_err(|e| anyhow!("{e}"))?;
    let tmp = path.with_extension("safetensors.part");
    ditto_compiler::weights::write_f32(&tmp, &values)
        .map_err(|e| anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if path.file_name().is_some_and(|n| n == "model.safetensors") {
        if let Some(w) = &args.weights {
            let from = if w.is_dir() {
                w.clone()
            } else {
                w.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            for f in ["config.json", "tokenizer.json"] {
                let src = from.join(f);
                if src.is_file() {
                    let dst = path.with_file_name(f);
                    std::fs::copy(&src, &dst).with_context(|| {
                        format!("cannot copy {} to {}", src.display(), dst.display())
                    })?;
                }
            }
        }
    }
    Ok(())
}
