//! `ditto bench MODEL --generate N`: the cost of generating N tokens under
//! `mpc` with the key/value cache, per step (the prompt, then each token),
//! beside one run that re-computes the last step's whole prefix without a
//! cache — what each token would cost without it.

use crate::generate::{run_generation, GenerateArgs, StepCost};
use crate::run::Backend;
use anyhow::Result;
use std::path::PathBuf;

/// What `bench --generate` needs of the bench command line.
pub struct Plan<'a> {
    pub target: &'a str,
    pub config: &'a Option<String>,
    pub layers: Option<i64>,
    pub weights: &'a Option<PathBuf>,
    pub random_weights: u64,
    pub policies: &'a [String],
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub json: bool,
}

fn args(plan: &Plan, policy: &str, ids: &str, n: usize) -> GenerateArgs {
    GenerateArgs {
        file: plan.target.to_string(),
        weights: plan.weights.clone(),
        random_weights: plan.weights.is_none().then_some(plan.random_weights),
        prompt: None,
        ids: Some(ids.to_string()),
        max_new_tokens: n,
        backend: Backend::Mpc,
        temperature: 0.0,
        top_k: None,
        seed: 0,
        // every step runs, whatever the tokens
        eos: Some("none".into()),
        no_cache: false,
        prompt_by_token: false,
        insecure_seed: None,
        config: plan.config.clone(),
        layers: plan.layers,
        json: true,
        profile: false,
        pipeline: crate::PipelineArgs::for_policy(policy),
        rerun_last: true,
    }
}

fn step_json(s: &StepCost) -> serde_json::Value {
    let (lan, wan) = match &s.report {
        Some(r) => (
            ditto_vm::estimate(r, r.wall_s, ditto_vm::Shape::LAN),
            ditto_vm::estimate(r, r.wall_s, ditto_vm::Shape::WAN),
        ),
        None => (0.0, 0.0),
    };
    serde_json::json!({
        "tokens": s.tokens, "pos": s.pos, "secs": s.secs, "bytes": s.bytes,
        "bytes_online": s.bytes_online, "rounds": s.rounds, "rounds_online": s.rounds_online,
        "client_bytes": s.client_bytes, "lan_s": lan, "wan_s": wan,
    })
}

pub fn bench_generate(plan: Plan) -> Result<()> {
    anyhow::ensure!(plan.new_tokens >= 2, "--generate needs at least 2 tokens");
    // a fixed prompt: ids 100, 101, …
    let ids: Vec<String> = (0..plan.prompt_len)
        .map(|i| (100 + i).to_string())
        .collect();
    let ids = ids.join(",");
    let mut out = vec![];
    for policy in plan.policies {
        // then the last step's prefix in one run without the cache, in the
        // same session (the parties hold the weights either way)
        let cached = run_generation(&args(&plan, policy, &ids, plan.new_tokens))?;
        let last = cached.steps.last().expect("steps");
        let again = cached.rerun.as_ref().expect("asked for");
        let steps: Vec<serde_json::Value> = cached.steps.iter().map(step_json).collect();
        out.push(serde_json::json!({
            "policy": policy,
            "prompt_tokens": plan.prompt_len,
            "steps": steps,
            "rerun_prefix": step_json(again),
            "last_over_rerun": {
                "bytes": last.bytes as f64 / again.bytes as f64,
                "secs": last.secs / again.secs,
            },
        }));
        if !plan.json {
            println!(
                "{} under {policy}: a prompt of {} tokens, then {} generated with the cache",
                plan.target,
                plan.prompt_len,
                cached.tokens.len()
            );
            println!(
                "{:>5} {:>6} {:>5} {:>13} {:>13} {:>7} {:>8} {:>8} {:>8}",
                "step", "tokens", "pos", "bytes", "online", "rounds", "secs", "LAN s", "WAN s"
            );
            let row = |name: String, s: &StepCost| {
                let j = step_json(s);
                println!(
                    "{name:>5} {:>6} {:>5} {:>13} {:>13} {:>7} {:>8.3} {:>8.2} {:>8.2}",
                    s.tokens,
                    s.pos,
                    s.bytes,
                    s.bytes_online,
                    s.rounds_online,
                    s.secs,
                    j["lan_s"].as_f64().unwrap_or(0.0),
                    j["wan_s"].as_f64().unwrap_or(0.0)
                );
            };
            for (i, s) in cached.steps.iter().enumerate() {
                row(i.to_string(), s);
            }
            row("rerun".into(), again);
            println!(
                "step {} with the cache / the {}-token prefix re-run: bytes {:.3}, seconds {:.3}",
                cached.steps.len() - 1,
                again.tokens,
                last.bytes as f64 / again.bytes as f64,
                last.secs / again.secs
            );
        }
    }
    if plan.json {
        println!(
            "{}",
            serde_json::json!({ "model": plan.target, "generate": out })
        );
    }
    Ok(())
}
