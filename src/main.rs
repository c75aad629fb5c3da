//! The `ditto` command line: check, compile, run models; generate weights.

mod bench;
mod bench_generate;
mod bounds;
mod calibrate;
mod checkpoint;
mod client;
mod cluster;
mod distill;
mod eval;
mod generate;
mod genweights;
mod inputs;
mod party;
mod profile;
mod progress;
mod run;
mod tokens;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ditto_compiler::diag::{render, Diagnostic, Sources};
use ditto_compiler::driver::{compile_file, Compiled};
use ditto_compiler::elab::{Elaborated, Options};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ditto",
    version,
    about = "Compile and run quantized transformers under 3-party computation"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options that decide the compiled graph's shapes.
#[derive(clap::Args, Clone, Default)]
pub struct ShapeArgs {
    /// Config of the model file (default: the first one declared).
    #[arg(long)]
    config: Option<String>,
    /// Value of the model's first size parameter (the number of tokens).
    /// Default: the config's `max_pos` (512 for BERT, 1024 for GPT-2); a
    /// program serves any input up to it, padding masked by `len`.
    #[arg(long)]
    seq: Option<i64>,
    /// Values of size parameters by name, e.g. `--size S=16`.
    #[arg(long = "size", value_name = "NAME=N")]
    sizes: Vec<String>,
    /// Keep only the first K layers (loops up to the config's `layers`).
    #[arg(long)]
    layers: Option<i64>,
    /// Keep the input's true length secret (the model's `len` input): the
    /// servers learn only the padded size S, for a few masked products per
    /// attention layer (docs/deployment.md).
    #[arg(long)]
    hide_length: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse, elaborate and verify model files; report every error.
    Check {
        /// Model files, or names of models in models/ (`bert`).
        files: Vec<PathBuf>,
        #[command(flatten)]
        shape: ShapeArgs,
        /// Also check declared weights against this safetensors file or folder.
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Compile a model and print one of its stages.
    Compile {
        /// A model file, or the name of one in models/ (`bert`).
        file: PathBuf,
        /// What to print; without it, the bytecode program is written to
        /// `-o FILE` (default: the model file's name with `.dbc`).
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        shape: ShapeArgs,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// List the compiler passes and the default pipeline.
    Passes,
    /// Run a model on an input.
    Run(run::RunArgs),
    /// Generate text with a causal LM (models/smollm2.ditto), its key/value
    /// cache kept by the parties between tokens.
    Generate(generate::GenerateArgs),
    /// Measure performance (`ditto bench kernels`).
    /// Benchmark: `ditto bench kernels`, or `ditto bench MODEL` to run each
    /// policy under mpc and compare costs (docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// The model owner's step: deal a program's weights into one share file
    /// per party (DIR/p0, DIR/p1, DIR/p2), each alone uniformly random.
    ShareWeights {
        /// A bytecode program (`ditto compile ... -o FILE.dbc`).
        program: PathBuf,
        /// A safetensors file or a folder holding model.safetensors.
        #[arg(long)]
        weights: PathBuf,
        /// The folder for p0, p1, p2 (written 0600: each is one party's secret).
        #[arg(short, long)]
        output: PathBuf,
        /// Replace the share files of an earlier dealing in that folder.
        #[arg(long)]
        force: bool,
        /// INSECURE, for reproducibility tests: deal from this public number
        /// (`ditto_vm::insecure_seeds`) instead of a seed drawn from the OS.
        #[arg(long, hide = true, value_name = "N")]
        insecure_seed: Option<u64>,
    },
    /// Record the largest |value| of every node over sample inputs (float
    /// evaluation), for `--bounds` (check-ranges, the ditto-auto policy).
    Calibrate(calibrate::CalibrateArgs),
    /// Quantization-aware distillation: fine-tune the model so that it keeps
    /// the float model's outputs under a policy's approximations and
    /// formats (docs/distillation.md).
    Distill(distill::DistillArgs),
    /// A policy's utility on your texts: the compiled model (fixed or mpc,
    /// optionally with distilled weights) against the float model, text by
    /// text (cosine of the outputs).
    Eval(eval::EvalArgs),
    /// Keys and self-signed certificates: this host's (`--party I`,
    /// `--client NAME`), or a whole cluster with its file on one machine for
    /// tests and demos (`--cluster`) (docs/deployment.md).
    Keygen(cluster::KeygenArgs),
    /// The cluster file from the three parties' and the clients'
    /// certificates (each made on its own host by `keygen --party` or
    /// `--client`); reads no private key.
    Combine(cluster::CombineArgs),
    /// Run one compute party of a cluster: a server that links to the other
    /// two over mutual TLS and serves clients' queries.
    Party(party::PartyArgs),
    /// Send a query to a cluster and print the result and its cost.
    Client(client::ClientArgs),
    /// Write seeded random weights under the model's (HuggingFace) tensor names.
    GenWeights {
        /// A model file, or the name of one in models/ (bert, gpt2, minilm).
        model: String,
        #[arg(long)]
        config: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Options of the pass pipeline.
#[derive(clap::Args, Clone, Default)]
pub struct PipelineArgs {
    /// Precision policy: uniform64, ditto (the default), ditto-nl64,
    /// ditto-quad, ditto-2quad, ditto-auto.
    #[arg(long)]
    policy: Option<String>,
    /// A policy of your own (JSON; see docs/passes.md). Overrides --policy.
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// Run exactly these passes (comma-separated) instead of the default pipeline.
    #[arg(long, value_delimiter = ',')]
    passes: Option<Vec<String>>,
    /// Leave these passes out (comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Print the IR after this pass (`name`, `name.N` for a repeat, or `all`).
    #[arg(long)]
    dump_after: Option<String>,
    /// Write the IR after every pass to DIR, one numbered file per pass.
    #[arg(long)]
    dump_dir: Option<PathBuf>,
    /// Per pass: nodes, conversions by kind, estimated bits and rounds.
    #[arg(long)]
    stats: bool,
    /// Calibrated bounds (`ditto calibrate`): check-ranges checks against
    /// them and the ditto-auto policy picks fraction bits from them.
    #[arg(long)]
    bounds: Option<PathBuf>,
    /// Set when the caller applied calibrated bounds to the graph itself.
    #[arg(skip)]
    calibrated: bool,
    /// A run-time range guard (mpc): the parties check, secretly, that
    /// every conversion's input keeps its precondition |x| < 2^(k−2), and
    /// the run fails with an error instead of a wrong answer if one did not
    /// (recorded in the program, so all parties agree; docs/security.md
    /// gives its cost).
    #[arg(long)]
    pub guard_ranges: bool,
}

impl PipelineArgs {
    /// The options that only matter to a compiled (fixed or mpc) run, if
    /// any was given.
    pub fn compile_only_option(&self) -> Option<&'static str> {
        if self.policy.is_some() {
            Some("--policy")
        } else if self.policy_file.is_some() {
            Some("--policy-file")
        } else if self.passes.is_some() {
            Some("--passes")
        } else if !self.skip.is_empty() {
            Some("--skip")
        } else if self.bounds.is_some() {
            Some("--bounds")
        } else if self.guard_ranges {
            Some("--guard-ranges")
        } else if self.dump_after.is_some() || self.dump_dir.is_some() || self.stats {
            Some("--dump-after/--dump-dir/--stats")
        } else {
            None
        }
    }

    /// The default pipeline under a built-in policy, or under the policy
    /// file `name` when it ends in `.json`.
    pub fn for_policy(name: &str) -> PipelineArgs {
        PipelineArgs {
            policy: Some(name.to_string()),
            policy_file: name.ends_with(".json").then(|| PathBuf::from(name)),
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// The syntax tree (JSON).
    Ast,
    /// The elaborated IR, before any pass.
    Ir,
    /// The IR after the pass pipeline.
    Lowered,
    /// Graphviz of the elaborated IR.
    Dot,
    /// The disassembled bytecode program.
    Asm,
    /// The bytecode program, written to `-o FILE` (the default)
    Bytecode,
}

/// Output piped into `head` and the like ends the process quietly, as with
/// other Unix tools, instead of a panic in `println!`. Not for the parties
/// and the client, whose sockets must report a vanished peer as an error.
fn quiet_on_closed_pipe(cmd: &Cmd) {
    #[cfg(unix)]
    if !matches!(cmd, Cmd::Party(_) | Cmd::Client(_)) {
        // SAFETY: runs before any other thread exists and only restores the
        // signal's default action.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

/// glibc's allocator returns every freed block above its mmap threshold to
/// the kernel, and moves that threshold with the largest block freed so
/// far: a run's speed then depends on which buffers happened to be freed
/// first (a 31 MB one then made every later layer of BERT-base 10% faster
/// than a run without it, through fewer page faults and TLB shootdowns
/// across the party threads). A fixed threshold at glibc's maximum and a
/// high trim threshold keep the shares' buffers in the heap.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    quiet_on_closed_pipe(&cli.cmd);
    let r = match cli.cmd {
        Cmd::Check {
            files,
            shape,
            weights,
        } => check(&files, &shape, weights.as_deref()),
        Cmd::Compile {
            file,
            emit,
            output,
            shape,
            pipeline,
        } => compile(
            &model_path(&file.to_string_lossy()),
            emit,
            output.as_deref(),
            &shape,
            &pipeline,
        ),
        Cmd::Passes => {
            list_passes();
            Ok(())
        }
        Cmd::Run(args) => run::run(args),
        Cmd::Generate(args) => generate::generate(args),
        Cmd::Bench(args) => bench::bench(args),
        Cmd::ShareWeights {
            program,
            weights,
            output,
            force,
            insecure_seed,
        } => share_weights(&program, &weights, &output, force, insecure_seed),
        Cmd::Keygen(a) => cluster::keygen_cmd(a),
        Cmd::Combine(a) => cluster::combine(a),
        Cmd::Party(a) => party::party(a),
        Cmd::Calibrate(a) => calibrate::calibrate(a),
        Cmd::Distill(a) => distill::distill(a),
        Cmd::Eval(a) => eval::eval(a),
        Cmd::Client(a) => client::client(a),
        Cmd::GenWeights {
            model,
            config,
            seed,
            output,
        } => genweights::gen_weights(&model, config, seed, &output),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints diagnostics to stderr (coloured on a terminal).
pub fn report(sources: &Sources, diags: &[Diagnostic]) {
    if !diags.is_empty() {
        eprint!(
            "{}",
            render(sources, diags, std::io::stderr().is_terminal())
        );
    }
}

/// Resolves `bert` to `models/bert.ditto` when no such file exists.
pub fn model_path(model: &str) -> PathBuf {
    let p = PathBuf::from(model);
    if p.exists() {
        return p;
    }
    let in_models = Path::new("models").join(format!("{model}.ditto"));
    if in_models.exists() {
        return in_models;
    }
    // a shipped model: compile_file reads it from the binary
    match ditto_compiler::stdlib::model(model) {
        Some((file, _)) => PathBuf::from(file),
        None => p,
    }
}

impl ShapeArgs {
    pub fn options(&self) -> Result<Options> {
        let mut sizes = BTreeMap::new();
        for s in &self.sizes {
            let (k, v) = s.split_once('=').context("--size takes NAME=N")?;
            let v: i64 = v
                .trim()
                .parse()
                .with_context(|| format!("--size {s}: not an integer"))?;
            sizes.insert(k.trim().to_string(), v);
        }
        Ok(Options {
            config: self.config.clone(),
            sizes,
            weights: None,
            layers: self.layers,
            seq: self.seq,
            secret_inputs: secret_length(self.hide_length),
            ..Default::default()
        })
    }
}

/// The inputs `--hide-length` makes secret.
pub fn secret_length(hide: bool) -> Vec<String> {
    if hide {
        vec!["len".to_string()]
    } else {
        vec![]
    }
}

/// Compiles and reports; `Err` when there were errors.
pub fn compile_reported(file: &Path, opts: &Options) -> Result<(Sources, Elaborated)> {
    let Compiled { sources, result } = compile_file(file, opts);
    match result {
        Ok(e) => {
            report(&sources, &e.warnings);
            Ok((sources, e))
        }
        Err(diags) => {
            report(&sources, &diags);
            let n = diags.iter().filter(|d| d.is_error()).count();
            bail!("{}: {n} error(s)", file.display())
        }
    }
}

fn check(files: &[PathBuf], shape: &ShapeArgs, weights: Option<&Path>) -> Result<()> {
    if files.is_empty() {
        bail!("no files given: `ditto check models/*.ditto`");
    }
    let mut opts = shape.options()?;
    opts.seq_default = Some(8);
    if let Some(w) = weights {
        let st = checkpoint::Checkpoint::open(w)?;
        opts.weights = Some(st.info().clone());
    }
    let mut failed = 0;
    for f in files {
        let f = &model_path(&f.to_string_lossy());
        match compile_reported(f, &opts) {
            Ok((_, e)) => println!(
                "{}: ok ({} nodes, model {}, config {})",
                f.display(),
                e.graph.len(),
                e.model,
                e.config
            ),
            Err(err) => {
                eprintln!("{err:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) failed", files.len());
    }
    Ok(())
}

fn list_passes() {
    println!("passes (default pipeline order):");
    for (p, info) in ditto_compiler::passes::registry()
        .iter()
        .zip(ditto_compiler::passes::PASSES)
    {
        let mark = if ditto_compiler::passes::DEFAULT_PIPELINE.contains(&p.name()) {
            "*"
        } else {
            " "
        };
        let aliases = if info.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also `{}`)", info.aliases.join("`, `"))
        };
        println!("  {mark} {:<20} {}{aliases}", p.name(), p.description());
    }
    println!(
        "  then codegen            lowered IR to a bytecode program (round markers from schedule)"
    );
    println!(
        "default pipeline: {}",
        ditto_compiler::passes::DEFAULT_PIPELINE.join(", ")
    );
    println!("policies (--policy NAME, or --policy-file FILE; docs/passes.md):");
    for name in ditto_compiler::policy::BUILTIN {
        if let Some(p) = ditto_compiler::policy::Policy::builtin(name) {
            println!("  {name:<12} {}", p.description);
        }
    }
}

fn share_weights(
    program: &Path,
    weights: &Path,
    out: &Path,
    force: bool,
    insecure_seed: Option<u64>,
) -> Result<()> {
    use ditto_compiler::ir::eval::WeightSource;
    let bytes =
        std::fs::read(program).with_context(|| format!("cannot read {}", program.display()))?;
    let prog = ditto_bytecode::Program::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", program.display()))?;
    let paths: Vec<PathBuf> = (0..3).map(|i| out.join(format!("p{i}"))).collect();
    if !force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            bail!(
                "{} exists (the share files of an earlier dealing): pass --force to replace all \
                 three, and give every party its new file — parties refuse to mix dealings",
                p.display()
            );
        }
    }
    let mut w = checkpoint::Checkpoint::open(weights)?;
    let declared: Vec<String> = prog.weights.iter().map(|p| p.name.clone()).collect();
    if let Some(p) = w.fit(&declared) {
        eprintln!("note: the checkpoint's tensor names carry the prefix `{p}`");
    }
    let lookup = |name: &str| w.values(name);
    let seed: [u8; 32] = match insecure_seed {
        Some(m) => {
            eprintln!("INSECURE: dealt from a public number (--insecure-seed); for tests only");
            ditto_vm::insecure_seeds(m, 0)[4]
        }
        None => rand::random(),
    };
    let files = ditto_vm::shares::write_share_files(&prog, &lookup, &seed)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (p, f) in paths.iter().zip(&files) {
        cluster::write(p, f, true)?;
    }
    eprintln!(
        "wrote {}: {} weights, {} bytes per party, dealing {}…",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        prog.weights.len(),
        files[0].len(),
        ditto_vm::wire::short_hash(&ditto_vm::shares::dealing_id(&seed))
    );
    Ok(())
}

/// The policy named by the pipeline options.
pub fn policy(args: &PipelineArgs) -> Result<ditto_compiler::policy::Policy> {
    use ditto_compiler::policy::{Policy, BUILTIN};
    if let Some(f) = &args.policy_file {
        return Policy::from_file(f).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let name = args.policy.as_deref().unwrap_or("ditto");
    Policy::builtin(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown policy `{}`; policies are: {}",
            name,
            BUILTIN.join(", ")
        )
    })
}

/// Runs the pass pipeline on `g` as the options say; prints stats and dumps.
/// Sets the nodes' bounds from a calibration file (`ditto calibrate`).
pub fn apply_bounds(g: &mut ditto_compiler::ir::Graph, f: &Path) -> Result<()> {
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("cannot read bounds file {}", f.display()))?;
    let cal = ditto_compiler::calibrate::Calibration::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
    cal.apply(g)
        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
    Ok(())
}

pub fn lower(
    g: &mut ditto_compiler::ir::Graph,
    sources: &Sources,
    args: &PipelineArgs,
    shipped: bounds::Check<'_>,
) -> Result<ditto_compiler::policy::Policy> {
    use ditto_compiler::passes::{plan, DumpAfter};
    let policy = policy(args)?;
    let pipeline = plan(args.passes.as_deref(), &args.skip).map_err(|e| anyhow::anyhow!(e))?;
    let dump = match (&args.dump_after, &args.dump_dir) {
        (_, Some(_)) => DumpAfter::All,
        (Some(a), None) if a == "all" => DumpAfter::All,
        (Some(a), None) => {
            let (base, rest) = a.split_at(a.find('.').unwrap_or(a.len()));
            let base = ditto_compiler::passes::canonical(base).unwrap_or(base);
            if !pipeline.contains(&base) {
                bail!(
                    "--dump-after {a}: no such pass in the pipeline ({})",
                    pipeline.join(", ")
                );
            }
            DumpAfter::Pass(format!("{base}{rest}"))
        }
        (None, None) => DumpAfter::None,
    };
    let shipped = args.bounds.is_none() && bounds::default_bounds(g, shipped, args.stats)?;
    if let Some(f) = &args.bounds {
        apply_bounds(g, f)?;
    } else if policy.auto && !args.calibrated && !shipped {
        bail!(
            "policy {} picks formats from calibrated bounds: pass --bounds FILE (from `ditto calibrate`)",
            policy.name
        );
    }
    let before = ditto_compiler::passes::stats(g);
    let lowered = match ditto_compiler::driver::lower(g, sources, &policy, &pipeline, &dump) {
        Ok(l) => l,
        Err(d) => {
            report(sources, &d);
            bail!("the pass pipeline failed");
        }
    };
    if policy.auto {
        eprintln!("policy {}", lowered.policy.describe());
    }
    let (policy, records) = (lowered.policy, lowered.records);
    if args.stats {
        eprintln!("policy {}", policy.describe());
        eprintln!(
            "{:<4} {:<22} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>12} {:>7}",
            "#", "after", "nodes", "conv", "trunc", "up", "down", "local", "est. bytes", "rounds"
        );
        let row =
            |i: String, label: &str, s: &ditto_compiler::passes::GraphStats, changed: &str| {
                eprintln!(
                    "{:<4} {:<22} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>12} {:>7}{}",
                    i,
                    label,
                    s.nodes,
                    s.conversions,
                    s.truncations,
                    s.upcasts,
                    s.downcasts,
                    s.local_conversions,
                    s.est_bytes,
                    s.est_rounds,
                    changed
                )
            };
        row("0".into(), "(elaborated)", &before, "");
        for (i, r) in records.iter().enumerate() {
            row(
                (i + 1).to_string(),
                &r.label,
                &r.stats,
                if r.changed { "" } else { "  (unchanged)" },
            );
        }
    }
    if let Some(dir) = &args.dump_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Remove the dumps of an earlier run so the folder shows this one only.
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let numbered = name.len() > 3
                && name[..2].bytes().all(|b| b.is_ascii_digit())
                && &name[2..3] == "-";
            if numbered && name.ends_with(".ir") {
                std::fs::remove_file(e.path())?;
            }
        }
        for (i, r) in records.iter().enumerate() {
            if let Some(text) = &r.dump {
                let p = dir.join(format!("{:02}-{}.ir", i + 1, r.label));
                std::fs::write(&p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
    } else {
        for r in &records {
            if let Some(text) = &r.dump {
                eprintln!("; ---- after {} ----", r.label);
                eprint!("{text}");
            }
        }
    }
    Ok(policy)
}

/// Compiles through the pipeline and generates the bytecode program.
pub fn program(
    file: &Path,
    opts: &Options,
    pipeline: &PipelineArgs,
) -> Result<ditto_bytecode::Program> {
    let (sources, mut e) = compile_reported(file, opts)?;
    let policy = lower(&mut e.graph, &sources, pipeline, bounds::Check::Graph)?;
    let mut p = codegen_reported(&e.graph, &sources, file)?;
    stamp(&mut p, &e, &policy, pipeline);
    Ok(p)
}

/// Records in a program what it was compiled from and, with
/// `--guard-ranges`, that its parties run the range guard.
pub fn stamp(
    p: &mut ditto_bytecode::Program,
    e: &ditto_compiler::elab::Elaborated,
    policy: &ditto_compiler::policy::Policy,
    pipeline: &PipelineArgs,
) {
    ditto_compiler::driver::stamp(p, e, policy);
    if pipeline.guard_ranges {
        p.meta
            .push((ditto_vm::GUARD_RANGES.to_string(), "on".to_string()));
    }
}

/// Code generation for a lowered graph, with errors reported at DSL lines.
pub fn codegen_reported(
    g: &ditto_compiler::ir::Graph,
    sources: &Sources,
    file: &Path,
) -> Result<ditto_bytecode::Program> {
    ditto_compiler::driver::codegen_located(g).map_err(|d| {
        report(sources, &d);
        anyhow::anyhow!("{}: code generation failed", file.display())
    })
}

fn compile(
    file: &Path,
    emit: Option<Emit>,
    output: Option<&Path>,
    shape: &ShapeArgs,
    pipeline: &PipelineArgs,
) -> Result<()> {
    let mut opts = shape.options()?;
    // a program needs its real token count; a printed stage can show 8
    if emit.is_some() {
        opts.seq_default = Some(8);
    }
    if matches!(emit, None | Some(Emit::Bytecode)) {
        let p = program(file, &opts, pipeline)?;
        let out = output
            .map(Path::to_path_buf)
            .unwrap_or_else(|| file.with_extension("dbc"));
        let bytes = p.encode();
        std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        let hash: String = p
            .hash()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        eprintln!(
            "wrote {} ({} bytes, {} registers, {} instructions, program hash {hash}…)",
            out.display(),
            bytes.len(),
            p.regs.len(),
            p.code.len()
        );
        return Ok(());
    }
    let text = match emit.expect("handled above") {
        Emit::Bytecode => unreachable!("written above"),
        Emit::Ast => {
            let src = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut sources = Sources::default();
            let id = sources.add(file.display().to_string(), src.clone());
            match ditto_compiler::syntax::parse(id, &src) {
                Ok(ast) => serde_json::to_string_pretty(&ast)? + "\n",
                Err(d) => {
                    report(&sources, &d);
                    bail!("{}: syntax errors", file.display());
                }
            }
        }
        Emit::Ir => ditto_compiler::ir::text::print(&compile_reported(file, &opts)?.1.graph),
        Emit::Lowered => {
            let (sources, mut e) = compile_reported(file, &opts)?;
            lower(&mut e.graph, &sources, pipeline, bounds::Check::Graph)?;
            ditto_compiler::ir::text::print(&e.graph)
        }
        Emit::Dot => ditto_compiler::ir::dot::to_dot(&compile_reported(file, &opts)?.1.graph),
        Emit::Asm => program(file, &opts, pipeline)?.disassemble(),
    };
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
