//! `ditto bench kernels`: throughput of the local ring kernels. A multiply-add
//! counts as two operations (as in GFLOP/s). Measure, never assert: numbers go
//! to the terminal or to JSON for docs/bench/.

use anyhow::Result;
use ditto_protocol::kernels::matmul;
use ditto_protocol::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// GOP/s of one m×k by k×n product in ring `R` (best of several runs, at
/// least ~1 s of work after a warm-up).
fn matmul_gops<R: Ring>(m: usize, k: usize, n: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let a: Vec<R> = (0..m * k).map(|_| R::from_u64(rng.random())).collect();
    let b: Vec<R> = (0..k * n).map(|_| R::from_u64(rng.random())).collect();
    let ops = 2.0 * (m * k * n) as f64;
    std::hint::black_box(matmul(&a, &b, m, k, n));
    let mut best = f64::INFINITY;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed().as_secs_f64() < 1.0 {
        let t = Instant::now();
        std::hint::black_box(matmul(&a, &b, m, k, n));
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    ops / best / 1e9
}

pub fn kernels(json: bool) -> Result<()> {
    // BERT-base's products at 128 tokens; a decode step's one row against
    // SmolLM2's FFN weight, its vocabulary lookup (the one-hot of the high
    // digit against the table as [3781, 13·576]) and its logits head
    let shapes = [
        (128, 768, 768),
        (128, 768, 3072),
        (1, 576, 1536),
        (1, 3781, 7488),
        (49152, 576, 1),
    ];
    let mut rows = vec![];
    for &(m, k, n) in &shapes {
        rows.push((32, m, k, n, matmul_gops::<u32>(m, k, n)));
        rows.push((64, m, k, n, matmul_gops::<u64>(m, k, n)));
    }
    let threads = rayon::current_num_threads();
    if json {
        let arr: Vec<_> = rows
            .iter()
            .map(|&(ring, m, k, n, gops)| {
                serde_json::json!({"kernel": "matmul", "ring": ring, "m": m, "k": k, "n": n, "gops": gops, "threads": threads})
            })
            .collect();
        let obj = serde_json::json!({"machine": machine(), "results": arr});
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!(
            "{:<8} {:>5} {:>16} {:>10}   ({threads} threads)",
            "kernel", "ring", "m×k×n", "GOP/s"
        );
        for (ring, m, k, n, gops) in rows {
            println!(
                "{:<8} {:>5} {:>16} {:>10.1}",
                "matmul",
                ring,
                format!("{m}×{k}×{n}"),
                gops
            );
        }
    }
    Ok(())
}

/// What the numbers were measured on, for the JSON records in docs/bench/:
/// CPU model, cores, memory and kernel from /proc where Linux has them, the
/// matmul kernels' instruction set and the compiler that built this binary.
pub fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            ["sse4_2", "avx", "avx2", "fma", "bmi2", "aes", "sha_ni"].contains(f)
                || f.starts_with("avx512")
        })
        .collect();
    let mem_gib = read("/proc/meminfo").lines().find_map(|l| {
        let kb: f64 = l
            .strip_prefix("MemTotal:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some((kb / (1024.0 * 1024.0) * 10.0).round() / 10.0)
    });
    serde_json::json!({
        "cpu": field("model name"),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "threads": rayon::current_num_threads(),
        "cpu_flags": simd,
        "kernel_isa": ditto_protocol::kernels::kernel_isa(),
        "memory_gib": mem_gib,
        "os": std::env::consts::OS,
        "os_release": read("/proc/sys/kernel/osrelease").trim(),
        "arch": std::env::consts::ARCH,
        "rustc": env!("DITTO_RUSTC"),
    })
}

/// Network profile of `ditto bench --net`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Net {
    /// In-memory links, no delay.
    None,
    /// Links shaped to 5 Gbps and 0.4 ms round trip.
    Lan,
    /// Links shaped to 400 Mbps and 40 ms round trip.
    Wan,
}

/// Where the secure computation starts.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputAt {
    Ids,
    Embeddings,
}

/// Replaces the model's embedding block by a client input holding its
/// output: the node of the `embedding` format class (not a weight) whose
/// value leaves the class. Returns the new graph and the input's value.
fn cut_at_embeddings(
    g: &ditto_compiler::ir::Graph,
    inputs: &std::collections::HashMap<String, ditto_compiler::ir::eval::Tensor>,
    weights: &dyn ditto_compiler::ir::eval::WeightSource,
) -> Result<(ditto_compiler::ir::Graph, ditto_compiler::ir::eval::Tensor)> {
    use ditto_compiler::ir::{Node, Op, Owner};
    let emb = |id| g.node(id).class.as_deref() == Some("embedding");
    let cuts: Vec<_> = g
        .ids()
        .into_iter()
        .filter(|&id| {
            emb(id)
                && !matches!(g.node(id).op, Op::Weight { .. })
                && g.users(id).iter().any(|&u| !emb(u))
        })
        .collect();
    let [cut] = cuts.as_slice() else {
        anyhow::bail!(
            "cannot find the model's embedding output (a value of the `embedding` class used outside it); found {}",
            cuts.len()
        );
    };
    // only the embedding block is evaluated: the cut becomes the sole output
    let mut front = g.clone();
    for o in front.outputs() {
        front.remove(o);
    }
    let out = Node::new(
        Op::Output {
            name: "embeddings".into(),
            kept: false,
        },
        g.node(*cut).ty.clone(),
    );
    front.add(out, &[*cut]);
    front.prune_dead();
    let value = ditto_compiler::ir::eval::evaluate(&front, inputs, weights, &|_| false)
        .map_err(|e| anyhow::anyhow!("evaluating the embeddings: {e}"))?
        .outputs
        .shift_remove("embeddings")
        .ok_or_else(|| anyhow::anyhow!("the embedding output was not computed"))?;
    let mut g2 = g.clone();
    let mut n = Node::new(
        Op::Input {
            name: "embeddings".into(),
            owner: Owner::Client,
        },
        g.node(*cut).ty.clone(),
    );
    n.class = Some("embedding".into());
    n.loc = g.node(*cut).loc;
    let inp = g2.add(n, &[]);
    g2.replace_uses(*cut, inp);
    g2.prune_dead();
    Ok((g2, value))
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// `kernels` (the ring matmul kernels), or a model file / name in models/.
    target: String,
    #[arg(long)]
    config: Option<String>,
    /// Tokens (padded input ids).
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Keep only the first K layers.
    #[arg(long)]
    layers: Option<i64>,
    /// Policies to run, comma-separated: built-in names, or policy files
    /// (JSON, docs/passes.md) ending in `.json`.
    #[arg(long, value_delimiter = ',', default_value = "uniform64,ditto")]
    policies: Vec<String>,
    /// Also run over links shaped like this network, to check the estimate.
    #[arg(long, value_enum, default_value = "none")]
    net: Net,
    /// The secret input: token ids (the embedding lookup runs in MPC), or
    /// the embedding output computed by the client (PUMA's benchmark
    /// setting).
    #[arg(long, value_enum, default_value = "ids")]
    input: InputAt,
    /// A safetensors file or folder; seeded random weights otherwise.
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 7)]
    random_weights: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Calibrated bounds (`ditto calibrate`, same model, config and
    /// layers), for check-ranges and the ditto-auto policy.
    #[arg(long)]
    bounds: Option<std::path::PathBuf>,
    /// Run the input-independent messages (the conversions' mask-bit
    /// shares, B2A's random bits) as a separate offline phase before the
    /// online phase; the calls are recorded by a first, ordinary run, so
    /// this takes twice as long.
    #[arg(long)]
    offline: bool,
    /// Generate N tokens after a prompt of --seq tokens (a causal LM with a
    /// key/value cache, e.g. smollm2): each step's cost, and the last
    /// step's prefix re-run without the cache.
    #[arg(long, value_name = "N")]
    generate: Option<usize>,
}

struct PolicyResult {
    policy: String,
    prog: ditto_bytecode::Program,
    rep: ditto_vm::Report,
    est_lan: f64,
    est_wan: f64,
    shaped_s: Option<f64>,
}

/// `ditto bench MODEL`: each policy under `mpc` on the same input, one table.
pub fn bench(args: BenchArgs) -> Result<()> {
    if args.target == "kernels" {
        return kernels(args.json);
    }
    use anyhow::{anyhow, bail};
    if let Some(n) = args.generate {
        return crate::bench_generate::bench_generate(crate::bench_generate::Plan {
            target: &args.target,
            config: &args.config,
            layers: args.layers,
            weights: &args.weights,
            random_weights: args.random_weights,
            policies: &args.policies,
            prompt_len: args.seq,
            new_tokens: n,
            json: args.json,
        });
    }
    let path = crate::model_path(&args.target);
    if args.seq < 2 {
        bail!("--seq must be at least 2");
    }
    let crate::run::Loaded { weights, opts, .. } = crate::run::load(
        &path,
        &args.weights,
        Some(args.random_weights),
        &args.config,
        args.layers,
        args.seq as i64,
    )?;
    let (sources, e) = crate::compile_reported(&path, &opts)?;
    let shape = match args.net {
        Net::None => None,
        Net::Lan => Some(ditto_vm::Shape::LAN),
        Net::Wan => Some(ditto_vm::Shape::WAN),
    };
    // ids spread over the smallest embedding table the input indexes
    let rows = e
        .graph
        .ids()
        .into_iter()
        .filter_map(|i| match &e.graph.node(i).op {
            ditto_compiler::ir::Op::Embed => e
                .graph
                .node(e.graph.operands(i)[1])
                .ty
                .shape
                .first()
                .copied(),
            _ => None,
        })
        .min()
        .unwrap_or(1000);
    let toks = crate::inputs::Tokens {
        ids: (0..args.seq)
            .map(|i| ((101 + i * 37) % rows.max(1)) as u32)
            .collect(),
        segments: None,
    };
    let slots = crate::inputs::graph_slots(&e.graph);
    let values = crate::inputs::fill(&slots, &toks, &Default::default())?;
    let inputs = crate::inputs::tensors(&slots, &values);
    // calibrated bounds go on before the embedding cut renumbers the graph
    let mut base = e.graph.clone();
    let calibrated = match (&args.bounds, &args.weights, args.input) {
        (Some(f), _, _) => {
            crate::apply_bounds(&mut base, f)?;
            true
        }
        // shipped bounds, checked once against real weights (seeded ones
        // are not the calibrated ones; a graph cut at the embeddings is
        // not the calibrated graph)
        (None, Some(_), InputAt::Ids) => crate::bounds::default_bounds(
            &mut base,
            crate::bounds::Check::Weights(weights.as_ref()),
            false,
        )?,
        _ => false,
    };
    // the client's embedding output is the same under every policy
    let embedded = match args.input {
        InputAt::Ids => None,
        InputAt::Embeddings => Some(cut_at_embeddings(&base, &inputs, weights.as_ref())?),
    };
    let mut results = vec![];
    for policy in &args.policies {
        let mut g = match &embedded {
            Some((g2, _)) => g2.clone(),
            None => base.clone(),
        };
        let mut pipeline = crate::PipelineArgs::for_policy(policy);
        pipeline.calibrated = calibrated;
        let applied = crate::lower(&mut g, &sources, &pipeline, crate::bounds::Check::Off)?;
        let mut prog = crate::codegen_reported(&g, &sources, &path)?;
        crate::stamp(&mut prog, &e, &applied, &pipeline);
        let by_port: Vec<Vec<f64>> = prog
            .inputs
            .iter()
            .map(|p| match (&embedded, values.get(&p.name)) {
                (Some((_, v)), _) if p.name == "embeddings" => Ok(v.data.clone()),
                (_, Some(v)) => Ok(v.clone()),
                _ => Err(anyhow!("no value for input `{}`", p.name)),
            })
            .collect::<Result<_>>()?;
        let lookup = |name: &str| weights.values(name);
        let run = |net, record: bool, offline: Option<&[ditto_protocol::PreCall]>| {
            let data = ditto_vm::Data {
                inputs: by_port.clone(),
                weights: &lookup,
            };
            let progress = crate::progress::Progress::new(!args.json);
            let show = |i: usize, n: usize| progress.update(i, n);
            let opts = ditto_vm::MpcOptions {
                progress: Some(&show),
                net,
                record,
                offline,
                ..Default::default()
            };
            let r = ditto_vm::run_mpc(&prog, data, &opts);
            progress.finish();
            r.map_err(|e| anyhow!("{policy}: {e}"))
        };
        if !args.json {
            eprintln!("running {} under {policy} ...", e.model);
        }
        let trace = if args.offline {
            Some(run(None, true, None)?.trace)
        } else {
            None
        };
        let rep = run(None, false, trace.as_deref())?;
        let shaped_s = match shape {
            Some(s) => Some(run(Some(s), false, trace.as_deref())?.wall_s),
            None => None,
        };
        let est_lan = ditto_vm::estimate(&rep, rep.wall_s, ditto_vm::Shape::LAN);
        let est_wan = ditto_vm::estimate(&rep, rep.wall_s, ditto_vm::Shape::WAN);
        results.push(PolicyResult {
            policy: applied.name.clone(),
            prog,
            rep,
            est_lan,
            est_wan,
            shaped_s,
        });
    }
    let net_name = match args.net {
        Net::None => "none",
        Net::Lan => "lan",
        Net::Wan => "wan",
    };
    if args.json {
        let rs: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                let mut o = serde_json::json!({
                    "policy": r.policy,
                    "wall_s": r.rep.wall_s,
                    "est_lan_s": r.est_lan,
                    "est_wan_s": r.est_wan,
                    "net_s": r.shaped_s,
                });
                crate::profile::add_json(&mut o, &r.prog, &r.rep);
                o
            })
            .collect();
        let obj = serde_json::json!({
            "model": e.model,
            "config": e.config,
            "seq": args.seq,
            "layers": args.layers,
            "net": net_name,
            "input": if args.input == InputAt::Ids { "ids" } else { "embeddings" },
            "machine": machine(),
            "results": rs,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
        return Ok(());
    }
    let m = machine();
    let memory = m["memory_gib"]
        .as_f64()
        .map(|g| format!(", {g} GiB"))
        .unwrap_or_default();
    println!(
        "{} (config {}), {} tokens{}, secret input: {}, three parties in one process\non {} ({} threads, {} kernels{memory})\n",
        e.model,
        e.config,
        args.seq,
        args.layers
            .map(|k| format!(", first {k} layers"))
            .unwrap_or_default(),
        if args.input == InputAt::Ids {
            "token ids (embedding lookup in MPC)"
        } else {
            "the embedding output"
        },
        m["cpu"].as_str().unwrap_or(std::env::consts::ARCH),
        m["threads"],
        m["kernel_isa"].as_str().unwrap_or("?"),
    );
    println!(
        "{:<12} {:>9} {:>12} {:>12} {:>12} {:>12} {:>8} {:>10} {:>10}{}",
        "policy",
        "wall s",
        "bytes",
        "online",
        "offline",
        "client",
        "rounds",
        "LAN est s",
        "WAN est s",
        if shape.is_some() {
            format!(" {:>10}", format!("{net_name} s"))
        } else {
            String::new()
        }
    );
    let base = results
        .first()
        .map(|r| r.rep.comm.bytes())
        .unwrap_or(1)
        .max(1);
    for r in &results {
        println!(
            "{:<12} {:>9.2} {:>12} {:>12} {:>12} {:>12} {:>8} {:>10.2} {:>10.2}{}   ({:.3}× the bytes of {})",
            r.policy,
            r.rep.wall_s,
            crate::profile::human_bytes(r.rep.comm.bytes()),
            crate::profile::human_bytes(r.rep.comm.bytes_online),
            crate::profile::human_bytes(r.rep.comm.bytes_offline),
            crate::profile::human_bytes(r.rep.client_bytes),
            r.rep.rounds_online() + r.rep.rounds_offline(),
            r.est_lan,
            r.est_wan,
            r.shaped_s
                .map(|s| format!(" {s:>10.2}"))
                .unwrap_or_default(),
            r.rep.comm.bytes() as f64 / base as f64,
            results[0].policy
        );
    }
    println!(
        "\nbytes: between the parties (online + offline); client: the client's upload and download\n\
         estimates: measured compute + rounds × one-way delay + busiest link's bytes / bandwidth \
         (LAN 5 Gbps, 0.4 ms RTT; WAN 400 Mbps, 40 ms RTT)"
    );
    for r in &results {
        if let Some((secs, st)) = r.rep.offline {
            println!(
                "{}: offline phase {:.2} s, {}, {} round; online phase {:.2} s, {} rounds",
                r.policy,
                secs,
                crate::profile::human_bytes(st.bytes()),
                st.rounds_offline,
                r.rep.wall_s - secs,
                r.rep.rounds_online() + r.rep.rounds_offline()
            );
        }
    }
    for r in &results {
        println!("\n== {} ==", r.policy);
        print!("{}", crate::profile::table(&r.prog, &r.rep));
    }
    Ok(())
}
