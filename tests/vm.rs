//! The VM against the compiler's fixed-point evaluator and against itself:
//! the `fixed` backend (bytecode, cleartext) is bit-identical to the IR-level
//! ring emulation, and the `mpc` backend (secret shares, three parties)
//! agrees with `fixed` within the truncation noise, on every shipped model
//! under both policies.

use ditto_compiler::driver::compile_file;
use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::{Tensor, WeightSource};
use ditto_compiler::passes::{plan, run, Ctx, DumpAfter};
use ditto_compiler::policy::Policy;
use ditto_compiler::weights::SafetensorsFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Generated weights, written under a unique name and renamed into place:
/// tests run in parallel, and rewriting a file another test has mapped
/// would fault it (SIGBUS).
fn gen(model: &str, config: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let p = dir.join(format!("{model}-{config}-vm.safetensors"));
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        "{model}-{config}-vm.{}.{n}.tmp",
        std::process::id()
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_ditto"))
        .args([
            "gen-weights",
            model,
            "--config",
            config,
            "--seed",
            "11",
            "-o",
        ])
        .arg(&tmp)
        .current_dir(root())
        .output()
        .expect("ditto runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &p).expect("rename into place");
    p
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

struct Case {
    /// The compiler's estimate of the online bytes and rounds (`--stats`).
    est_bytes: u64,
    est_rounds: u64,
    fixed_ir: Vec<f64>,
    program: ditto_bytecode::Program,
    /// The program's inputs by port: the ids and their count `len`.
    inputs: Vec<Vec<f64>>,
    weights: SafetensorsFile,
}

fn case(model: &str, config: &str, layers: Option<i64>, policy: &str, ids: &[u32]) -> Case {
    case_with(model, config, layers, policy, ids, &[])
}

fn case_with(
    model: &str,
    config: &str,
    layers: Option<i64>,
    policy: &str,
    ids: &[u32],
    skip: &[String],
) -> Case {
    let weights = SafetensorsFile::open(&gen(model, config)).expect("weights");
    let opts = Options {
        config: Some(config.into()),
        seq: Some(ids.len() as i64),
        layers,
        ..Default::default()
    };
    let mut g = compile_file(&root().join(format!("models/{model}.ditto")), &opts)
        .result
        .unwrap_or_else(|_| panic!("{model} compiles"))
        .graph;
    let policy = Policy::builtin(policy).expect("policy");
    let pipeline = plan(None, skip).expect("default pipeline");
    let ctx = Ctx {
        policy: &policy,
        sources: None,
        weight_bounds: None,
    };
    run(&mut g, &pipeline, &ctx, &DumpAfter::None).unwrap_or_else(|_| panic!("{model} lowers"));
    let ids: Vec<f64> = ids.iter().map(|&i| i as f64).collect();
    let inputs = HashMap::from([
        ("ids".to_string(), Tensor::new(vec![ids.len()], ids.clone())),
        (
            "len".to_string(),
            Tensor::new(vec![1], vec![ids.len() as f64]),
        ),
        // GPT-2's first position (it keeps a cache for generation)
        ("pos".to_string(), Tensor::new(vec![1], vec![0.0])),
    ]);
    // the first output revealed to the client (GPT-2 also keeps its cache)
    let kept = g.kept_output_names();
    let fixed_ir = ditto_compiler::ir::fixed::evaluate_fixed(&g, &inputs, &weights)
        .expect("IR fixed evaluation")
        .into_iter()
        .find(|(name, _)| !kept.contains(name))
        .expect("an output")
        .1
        .decode()
        .data;
    let program = ditto_compiler::codegen::codegen(&g, &|_| String::new()).expect("codegen");
    let inputs = program
        .inputs
        .iter()
        .map(|p| inputs[&p.name].data.clone())
        .collect();
    Case {
        est_bytes: ditto_compiler::passes::stats(&g).est_bytes,
        est_rounds: ditto_compiler::passes::stats(&g).est_rounds,
        fixed_ir,
        program,
        inputs,
        weights,
    }
}

const MODELS: &[(&str, &str, Option<i64>)] = &[
    ("bert", "tiny", None),
    ("gpt2", "tiny", None),
    ("minilm", "l6", Some(2)),
];

#[test]
fn fixed_vm_is_bit_identical_to_the_ir_evaluator_and_mpc_agrees_with_it() {
    for &(model, config, layers) in MODELS {
        for policy in ["uniform64", "ditto"] {
            let c = case(model, config, layers, policy, &[1, 17, 33, 2, 250, 9]);
            let lookup = |name: &str| c.weights.values(name);
            let data = || ditto_vm::Data {
                inputs: c.inputs.clone(),
                weights: &lookup,
            };
            let fixed = ditto_vm::run_fixed(&c.program, data()).expect("fixed runs");
            assert_eq!(
                fixed.outputs[0].data, c.fixed_ir,
                "{model} {policy}: VM fixed differs from the IR evaluator"
            );
            let mpc = ditto_vm::run_mpc(&c.program, data(), &Default::default()).expect("mpc runs");
            let (a, b) = (&mpc.outputs[0].data, &fixed.outputs[0].data);
            let cos = cosine(a, b);
            let scale = b.iter().fold(0f64, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
            eprintln!("{model} {policy}: mpc vs fixed cosine {cos:.6}, max |diff| {diff:.5} of max |out| {scale:.4}");
            assert!(cos >= 0.999, "{model} {policy}: mpc vs fixed cosine {cos}");
            assert!(
                diff <= 0.05 * scale,
                "{model} {policy}: max |diff| {diff} (max |out| {scale})"
            );
            assert!(mpc.comm.bytes() > 0 && mpc.rounds_online() > 0);
            // the compiler's estimate, from the declared cost of each
            // primitive and the schedule's batching, is the measured run
            assert_eq!(
                (c.est_bytes, c.est_rounds),
                (mpc.comm.bytes_online, mpc.rounds_online()),
                "{model} {policy}: estimated (online bytes, rounds) vs measured"
            );
        }
    }
}

#[test]
fn schedule_batches_independent_protocols_into_shared_rounds() {
    let ids = [1, 17, 33, 2, 250, 9];
    let run = |c: &Case| {
        let lookup = |name: &str| c.weights.values(name);
        let data = ditto_vm::Data {
            inputs: c.inputs.clone(),
            weights: &lookup,
        };
        ditto_vm::run_mpc(&c.program, data, &Default::default()).expect("mpc runs")
    };
    for policy in ["uniform64", "ditto"] {
        let plain = case_with(
            "bert",
            "tiny",
            None,
            policy,
            &ids,
            &["schedule".to_string()],
        );
        let sched = case("bert", "tiny", None, policy, &ids);
        assert!(!plain.program.code.iter().any(|i| i.mnemonic() == "Round"));
        assert!(sched.program.code.iter().any(|i| i.mnemonic() == "Round"));
        // each weight is read just before its first use: at most the one
        // round marker of its step in between (not all at the start)
        let code = &sched.program.code;
        for (at, i) in code.iter().enumerate() {
            if i.mnemonic() != "Weight" {
                continue;
            }
            let dst = i.regs().0.expect("a weight has a destination");
            let use_at = (at + 1..code.len())
                .find(|&j| code[j].regs().1.contains(&dst))
                .expect("every weight is used");
            let rounds = code[at..use_at]
                .iter()
                .filter(|j| j.mnemonic() == "Round")
                .count();
            assert!(
                rounds <= 1,
                "{policy}: weight at {at}, first use at {use_at}"
            );
        }
        let (a, b) = (run(&plain), run(&sched));
        eprintln!(
            "bert tiny {policy}: rounds {} unscheduled, {} scheduled; online bytes {} and {}",
            a.rounds_online() + a.rounds_offline(),
            b.rounds_online() + b.rounds_offline(),
            a.comm.bytes_online,
            b.comm.bytes_online
        );
        assert!(b.rounds_online() < a.rounds_online());
        // the same messages, concatenated (packed bits pad per message)
        let rel = (a.comm.bytes_online as f64 - b.comm.bytes_online as f64).abs()
            / a.comm.bytes_online as f64;
        assert!(rel < 1e-3);
        assert!(cosine(&a.outputs[0].data, &b.outputs[0].data) > 0.9999);
    }
}

#[test]
fn an_offline_phase_moves_every_input_independent_round_out_of_the_online_phase() {
    let ids = [1, 17, 33, 2, 250, 9];
    for (model, config, layers) in MODELS {
        let c = case(model, config, *layers, "ditto", &ids);
        let lookup = |name: &str| c.weights.values(name);
        let run = |opts: &ditto_vm::MpcOptions| {
            let data = ditto_vm::Data {
                inputs: c.inputs.clone(),
                weights: &lookup,
            };
            ditto_vm::run_mpc(&c.program, data, opts).expect("mpc runs")
        };
        let inline = run(&ditto_vm::MpcOptions {
            record: true,
            ..Default::default()
        });
        assert!(!inline.trace.is_empty());
        let pre = run(&ditto_vm::MpcOptions {
            offline: Some(&inline.trace),
            ..Default::default()
        });
        let (secs, off) = pre.offline.expect("an offline phase");
        let (ri, rp) = (
            inline.rounds_online() + inline.rounds_offline(),
            pre.rounds_online() + pre.rounds_offline(),
        );
        eprintln!(
            "{model} {config}: {ri} rounds inline; {rp} + {} with an offline phase of {} bytes ({secs:.3} s)",
            off.rounds_offline,
            off.bytes()
        );
        // two rounds for the conversions' mask bits, two per ring for B2A's
        // random bits; nothing input-independent is left in the online phase
        assert!(
            (2..=6).contains(&off.rounds_offline),
            "{}",
            off.rounds_offline
        );
        assert_eq!(pre.rounds_offline(), 0);
        // the same bytes in all, the same online bytes
        assert_eq!(pre.comm.bytes(), inline.comm.bytes());
        assert_eq!(pre.comm.bytes_online, inline.comm.bytes_online);
        assert_eq!(pre.rounds_online(), inline.rounds_online());
        assert!(rp < ri, "no rounds saved");
        assert!(cosine(&pre.outputs[0].data, &inline.outputs[0].data) > 0.999);
        // a trace of another program is refused, not run wrongly
        let other = case(model, config, *layers, "uniform64", &ids);
        let data = ditto_vm::Data {
            inputs: c.inputs.clone(),
            weights: &lookup,
        };
        let e = ditto_vm::run_mpc(
            &other.program,
            data,
            &ditto_vm::MpcOptions {
                offline: Some(&inline.trace),
                ..Default::default()
            },
        )
        .expect_err("a foreign trace");
        assert!(e.to_string().contains("preprocessing"), "{e}");
    }
}

/// The assembler reads back what the disassembler prints: every shipped
/// model's program (tiny configs, both policies) round-trips exactly.
#[test]
fn programs_round_trip_through_their_text() {
    for &(model, config, layers) in MODELS {
        for policy in ["uniform64", "ditto"] {
            let c = case(model, config, layers, policy, &[1, 17, 33, 2]);
            let text = c.program.disassemble();
            let back = ditto_bytecode::Program::assemble(&text)
                .unwrap_or_else(|e| panic!("{model} {policy}: {e}"));
            assert!(
                back == c.program,
                "{model} {policy}: assemble(disassemble(p)) differs"
            );
            assert_eq!(back.encode(), c.program.encode());
        }
    }
}
