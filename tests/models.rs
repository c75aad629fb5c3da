//! End-to-end tests of the shipped models through the `ditto` CLI and the
//! library: generated weights for BERT and GPT-2, the causal mask, and the
//! real all-MiniLM-L6-v2 against an independent float64 reference.

use ditto_compiler::driver::compile_file;
use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::{evaluate, Tensor};
use ditto_compiler::weights::SafetensorsFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ditto(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ditto"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("ditto runs");
    assert!(
        out.status.success(),
        "ditto {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Generates seeded weights for a model config;
/// `tag` keeps files of tests running in parallel apart.
fn gen(model: &str, config: &str, tag: &str) -> PathBuf {
    let p =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{model}-{config}-{tag}.safetensors"));
    ditto(&[
        "gen-weights",
        model,
        "--config",
        config,
        "--seed",
        "7",
        "-o",
        p.to_str().unwrap(),
    ]);
    p
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).expect("one JSON object")
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn bert_and_gpt2_check_compile_and_run_on_generated_weights() {
    let out = ditto(&[
        "check",
        "models/bert.ditto",
        "models/gpt2.ditto",
        "models/minilm.ditto",
    ]);
    assert_eq!(
        out.lines().filter(|l| l.contains(": ok")).count(),
        3,
        "{out}"
    );
    for (model, config, dim) in [
        ("bert", "tiny", 64usize),
        ("gpt2", "tiny", 512),
        ("bert", "base", 768),
    ] {
        let ir = ditto(&[
            "compile",
            &format!("models/{model}.ditto"),
            "--config",
            config,
            "--emit",
            "ir",
        ]);
        assert!(ir.starts_with(&format!("graph {model}\n")));
        let dot = ditto(&[
            "compile",
            &format!("models/{model}.ditto"),
            "--config",
            config,
            "--emit",
            "dot",
        ]);
        assert!(dot.starts_with("digraph"));
        if config == "base" {
            continue; // full-size runs belong to benchmarks
        }
        let w = gen(model, config, "run");
        let r = json(&ditto(&[
            "run",
            model,
            "--config",
            config,
            "--weights",
            w.to_str().unwrap(),
            "--ids",
            "1,5,9,13,2",
            "--json",
        ]));
        assert_eq!(r["backend"], "float");
        assert_eq!(r["model"], model);
        assert_eq!(r["shape"], serde_json::json!([dim]));
        assert_eq!(r["tokens"], serde_json::json!([1, 5, 9, 13, 2]));
        let o = floats(&r["output"]);
        assert_eq!(o.len(), dim);
        assert!(
            o.iter().all(|x| x.is_finite()) && o.iter().any(|x| x.abs() > 1e-3),
            "{model}: {o:?}"
        );
        if model == "bert" {
            // the pooler ends in tanh
            assert!(o.iter().all(|x| x.abs() < 1.0));
        }
    }
}

#[test]
fn gpt2_causal_mask_hides_later_tokens() {
    let w = gen("gpt2", "tiny", "causal");
    let weights = SafetensorsFile::open(&w).expect("weights open");
    let opts = Options {
        config: Some("tiny".into()),
        seq: Some(6),
        ..Default::default()
    };
    let g = compile_file(&root().join("models/gpt2.ditto"), &opts)
        .result
        .expect("compiles")
        .graph;
    // The final LayerNorm's output holds every position's state.
    let hf = g
        .ids()
        .into_iter()
        .find(|&i| g.node(i).name.as_deref() == Some("hf"))
        .expect("node named hf");
    let run = |ids: [f64; 6]| {
        let inputs = HashMap::from([
            ("ids".to_string(), Tensor::new(vec![6], ids.to_vec())),
            ("len".to_string(), Tensor::new(vec![1], vec![6.0])),
            // the first token's position (the prompt: 0)
            ("pos".to_string(), Tensor::new(vec![1], vec![0.0])),
        ]);
        let e = evaluate(&g, &inputs, &weights, &|n| n == hf).expect("evaluates");
        (e.kept[&hf].clone(), e.outputs["logits"].clone())
    };
    let (a, la) = run([3.0, 14.0, 15.0, 92.0, 65.0, 35.0]);
    let (b, lb) = run([3.0, 14.0, 15.0, 92.0, 65.0, 400.0]);
    let (c, _) = run([3.0, 14.0, 15.0, 7.0, 65.0, 35.0]);
    let d = 64;
    // Changing the last token leaves positions 0..5 unchanged, bit for bit.
    assert_eq!(a.data[..5 * d], b.data[..5 * d]);
    assert_ne!(a.data[5 * d..], b.data[5 * d..]);
    assert_ne!(la.data, lb.data);
    // Changing token 3 leaves positions 0..3 unchanged and changes the rest.
    assert_eq!(a.data[..3 * d], c.data[..3 * d]);
    for pos in 3..6 {
        assert_ne!(
            a.data[pos * d..(pos + 1) * d],
            c.data[pos * d..(pos + 1) * d],
            "position {pos}"
        );
    }
}

#[test]
fn minilm_float_matches_independent_reference() {
    let folder = root().join("models/cache/all-minilm-l6-v2");
    assert!(
        folder.join("model.safetensors").exists(),
        "MiniLM weights missing: run scripts/fetch-models.sh (the README's test command does)"
    );
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/minilm_reference.json"))
            .expect("fixture"),
    )
    .expect("fixture is JSON");
    let sentences = fixture["sentences"].as_array().expect("sentences");
    assert!(sentences.len() >= 5);
    for s in sentences {
        let text = s["text"].as_str().expect("text");
        let r = json(&ditto(&[
            "run",
            "models/minilm.ditto",
            "--backend",
            "float",
            "--weights",
            folder.to_str().unwrap(),
            "--text",
            text,
            "--json",
        ]));
        assert_eq!(r["tokens"], s["tokens"], "{text}: tokenization differs");
        assert_eq!(r["shape"], serde_json::json!([384]));
        let cos = cosine(&floats(&r["output"]), &floats(&s["embedding"]));
        assert!(cos >= 0.99999, "{text}: cosine {cos}");
        // Fixed point: the formats and the stdlib approximations (exp by 8
        // squarings, PUMA GeLU, Goldschmidt, rsqrt polynomial), i.e. all of
        // the secure computation's arithmetic but the sharing. The issue's
        // targets for the secure run: ≥ 0.998 (uniform64), ≥ 0.995 (ditto).
        for (policy, min) in [("uniform64", 0.998), ("ditto", 0.995)] {
            let r = json(&ditto(&[
                "run",
                "models/minilm.ditto",
                "--backend",
                "fixed",
                "--policy",
                policy,
                "--weights",
                folder.to_str().unwrap(),
                "--text",
                text,
                "--json",
            ]));
            assert_eq!(r["policy"], policy);
            let cos = cosine(&floats(&r["output"]), &floats(&s["embedding"]));
            assert!(cos >= min, "{text}: fixed {policy} cosine {cos}");
        }
    }
}

/// Eight English sentences of 5 to 60 tokens.
const SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Secure inference keeps both the model and the query private.",
    "I love Rust.",
    "Three servers compute on secret shares without learning the input or the weights of the transformer model that they evaluate together.",
    "What is the capital of France?",
    "The hospital wants to classify patient notes with a language model, but privacy law forbids sending the notes to the model provider, and the provider will not hand over its weights; secure multi-party computation lets both sides keep their secrets while the three servers produce the answer.",
    "Rain is expected tomorrow afternoon.",
    "She sold the old bicycle to a neighbour who repairs them for children in the village.",
];

#[test]
fn minilm_under_mpc_matches_the_float_model() {
    let folder = root().join("models/cache/all-minilm-l6-v2");
    let w = folder.to_str().unwrap();
    let mut lens = vec![];
    for text in SENTENCES {
        let float = json(&ditto(&[
            "run",
            "minilm",
            "--weights",
            w,
            "--text",
            text,
            "--json",
        ]));
        let want = floats(&float["output"]);
        lens.push(float["tokens"].as_array().unwrap().len());
        for (policy, min) in [("uniform64", 0.998), ("ditto", 0.995)] {
            let r = json(&ditto(&[
                "run",
                "minilm",
                "--backend",
                "mpc",
                "--policy",
                policy,
                "--weights",
                w,
                "--text",
                text,
                "--json",
            ]));
            assert_eq!(r["backend"], "mpc");
            assert_eq!(r["policy"], policy);
            let cos = cosine(&floats(&r["output"]), &want);
            eprintln!(
                "{policy} {:>2} tokens: cosine {cos:.5}",
                lens.last().unwrap()
            );
            assert!(cos >= min, "{text}: mpc {policy} cosine {cos}");
            for field in ["comm_bytes", "comm_bytes_online", "rounds", "wall_s"] {
                assert!(r[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {r}");
            }
            let ops = r["ops"].as_object().expect("ops by kind");
            let bytes: u64 = ops.values().map(|o| o["bytes"].as_u64().unwrap()).sum();
            let setup = 3 * 32; // key setup: 32 bytes per party
            assert_eq!(bytes + setup, r["comm_bytes"].as_u64().unwrap());
            // the linear layers run in the policy's ring
            let ring = if policy == "ditto" {
                "matmul@32"
            } else {
                "matmul@64"
            };
            assert!(
                r["ops"][ring]["count"].as_u64().unwrap_or(0) >= 36,
                "{ops:?}"
            );
        }
    }
    lens.sort();
    assert!(
        lens[0] >= 5 && lens[lens.len() - 1] <= 60,
        "token counts {lens:?}"
    );
}

#[test]
fn bert_and_gpt2_base_run_under_mpc_with_both_policies() {
    // Full sizes (12 layers, 128 tokens) are for `ditto bench`; tests keep 2
    // layers and 32 tokens.
    for (model, dim) in [("bert", 768usize), ("gpt2", 50257)] {
        let mut bytes = HashMap::new();
        for policy in ["uniform64", "ditto"] {
            let r = json(&ditto(&[
                "run",
                model,
                "--random-weights",
                "3",
                "--ids",
                "101,2023,2003,1037,3231,102",
                "--seq",
                "32",
                "--layers",
                "2",
                "--backend",
                "mpc",
                "--policy",
                policy,
                "--json",
            ]));
            assert_eq!(r["shape"].as_array().unwrap().last().unwrap(), dim);
            let o = floats(&r["output"]);
            assert!(o.iter().all(|x| x.is_finite()) && o.iter().any(|x| *x != 0.0));
            let layers = r["layers"].as_object().expect("cost by layer");
            assert!(
                layers.keys().filter(|k| k.contains('1')).count() >= 1,
                "{layers:?}"
            );
            bytes.insert(policy, r["comm_bytes"].as_u64().unwrap());
        }
        eprintln!(
            "{model}: ditto/uniform64 bytes = {:.3}",
            bytes["ditto"] as f64 / bytes["uniform64"] as f64
        );
        assert!(bytes["ditto"] < bytes["uniform64"], "{bytes:?}");
    }
}

/// Calibration sentences: none of them is in SENTENCES.
const CALIBRATION: &[&str] = &[
    "A man is playing a guitar on the stage.",
    "Researchers published a new method for training language models efficiently.",
    "The stock market fell sharply after the announcement of new tariffs.",
    "My grandmother bakes bread every Sunday morning for the whole family.",
    "Encryption protects data both at rest and in transit across networks.",
];

#[test]
fn ditto_auto_reaches_uniform64_accuracy_from_calibrated_bounds() {
    let folder = root().join("models/cache/all-minilm-l6-v2");
    let w = folder.to_str().unwrap();
    let bounds = std::env::temp_dir().join(format!("minilm-bounds-{}.json", std::process::id()));
    let b = bounds.to_str().unwrap();
    let mut args = vec!["calibrate", "minilm", "--weights", w, "-o", b];
    for t in CALIBRATION {
        args.extend(["--text", t]);
    }
    ditto(&args);
    // the test sentences of the mpc test, on the cleartext rings
    for (k, text) in SENTENCES.iter().enumerate() {
        let want = floats(
            &json(&ditto(&[
                "run",
                "minilm",
                "--weights",
                w,
                "--text",
                text,
                "--json",
            ]))["output"],
        );
        let cos = |policy: &str, backend: &str| {
            let mut a = vec![
                "run",
                "minilm",
                "--weights",
                w,
                "--text",
                text,
                "--json",
                "--backend",
                backend,
                "--policy",
                policy,
            ];
            if policy == "ditto-auto" {
                a.extend(["--bounds", b]);
            }
            cosine(&floats(&json(&ditto(&a))["output"]), &want)
        };
        let (auto, plain) = (cos("ditto-auto", "fixed"), cos("ditto", "fixed"));
        eprintln!("{text:?}: ditto-auto {auto:.5}, ditto {plain:.5}");
        assert!(auto >= 0.999, "ditto-auto cosine {auto} on {text:?}");
        assert!(
            auto > plain,
            "ditto-auto ({auto}) not better than ditto ({plain})"
        );
        // and on secret shares, for two of them
        if k < 2 {
            let m = cos("ditto-auto", "mpc");
            assert!(m >= 0.999, "ditto-auto under mpc: cosine {m} on {text:?}");
        }
    }
    let _ = std::fs::remove_file(&bounds);
}

/// all-MiniLM-L6-v2 saved as a HuggingFace `BertForSequenceClassification`
/// checkpoint would be: every tensor under `bert.`, a 3-label head
/// `classifier.*` whose f32 values follow scripts/classifier_reference.py's
/// formula, and a config.json with `id2label`.
fn classifier_folder() -> PathBuf {
    use ditto_compiler::ir::eval::WeightSource;
    let src = root().join("models/cache/all-minilm-l6-v2");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("minilm-classifier");
    std::fs::create_dir_all(&dir).unwrap();
    let st = SafetensorsFile::open(&src.join("model.safetensors")).expect("MiniLM weights");
    let mut out = std::collections::BTreeMap::new();
    for (name, info) in st.info() {
        if info.is_float {
            out.insert(format!("bert.{name}"), st.tensor(name).unwrap());
        }
    }
    let hidden = 384;
    let w: Vec<f64> = (0..3)
        .flat_map(|j| (0..hidden).map(move |i| (0.37 * i as f64 + 1.3 * j as f64 + 0.2).sin()))
        .collect();
    out.insert("classifier.weight".into(), Tensor::new(vec![3, hidden], w));
    out.insert("classifier.bias".into(), Tensor::new(vec![3], vec![0.0; 3]));
    ditto_compiler::weights::write_f32(&dir.join("model.safetensors"), &out).unwrap();
    std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    config["id2label"] = serde_json::json!({"0": "negative", "1": "neutral", "2": "positive"});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn bert_classifier_matches_an_independent_reference_on_texts_and_pairs() {
    let dir = classifier_folder();
    let w = dir.to_str().unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/classifier_reference.json"))
            .expect("fixture"),
    )
    .unwrap();
    let inputs = fixture["inputs"].as_array().unwrap();
    assert!(
        inputs.iter().any(|i| i["pair"].is_string()),
        "a pair is tested"
    );
    for (k, inp) in inputs.iter().enumerate() {
        let mut args = vec![
            "run",
            "bert-classifier",
            "--weights",
            w,
            "--text",
            inp["text"].as_str().unwrap(),
            "--json",
        ];
        if let Some(b) = inp["pair"].as_str() {
            args.extend(["--pair", b]);
        }
        let r = json(&ditto(&args));
        assert_eq!(r["tokens"], inp["tokens"]);
        assert_eq!(r["config"], "config.json", "{r}");
        let probs = floats(&r["outputs"]["probs"]["values"]);
        let want = floats(&inp["probs"]);
        for (p, q) in probs.iter().zip(&want) {
            assert!(
                (p - q).abs() < 1e-5,
                "{:?}: float {probs:?}, reference {want:?}",
                inp["text"]
            );
        }
        assert_eq!(r["label"], inp["label"]);
        assert_eq!(
            r["labels"],
            serde_json::json!(["negative", "neutral", "positive"])
        );
        // under MPC (padded to 32 tokens): the same label
        if k == 0 || inp["pair"].is_string() {
            args.extend(["--backend", "mpc", "--seq", "32"]);
            let m = json(&ditto(&args));
            let got = floats(&m["outputs"]["probs"]["values"]);
            eprintln!("{:?}: mpc {got:?}, reference {want:?}", inp["text"]);
            assert_eq!(m["label"], inp["label"], "mpc {got:?} vs {want:?}");
            // `ditto` rounds the encoder in (32, 8): probabilities move by a few 1e-2
            assert!(got.iter().zip(&want).all(|(p, q)| (p - q).abs() < 0.05));
        }
    }
}

/// A program compiled for 128 tokens, given 2 to 30 real ones: the answer
/// of the unpadded model (the numpy reference of the fixture, computed on
/// the sentence alone), because `len` masks attention to the padding and
/// keeps it out of the mean.
#[test]
fn minilm_padded_to_128_under_mpc_matches_the_unpadded_reference() {
    let folder = root().join("models/cache/all-minilm-l6-v2");
    let w = folder.to_str().unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/minilm_reference.json"))
            .expect("fixture"),
    )
    .unwrap();
    let mut cases: Vec<(String, Vec<f64>)> = fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["text"].as_str().unwrap().to_string(),
                floats(&s["embedding"]),
            )
        })
        .collect();
    // `ditto run minilm --text TEXT --json` with `extra` options
    let run = |text: &str, extra: &[&str]| {
        let base = ["run", "minilm", "--weights", w, "--text", text, "--json"];
        json(&ditto(&[&base[..], extra].concat()))
    };
    // the shortest input there is: [CLS] [SEP], against the float model
    let empty = run("", &[]);
    assert_eq!(empty["len"], 2);
    cases.push((String::new(), floats(&empty["output"])));
    // negative control: the same padding treated as real tokens (`len` set
    // to 128 by hand) is far from the reference: the check can fail
    let (text, want) = &cases[2];
    let unmasked = run(text, &["--seq", "128", "--input", "len=128"]);
    let cos = cosine(&floats(&unmasked["output"]), want);
    assert!(cos < 0.9, "padding without the mask: cosine {cos}");
    for (text, want) in &cases {
        let r = run(text, &["--seq", "128", "--backend", "mpc"]);
        assert_eq!(r["tokens"].as_array().unwrap().len(), 128);
        let n = r["len"].as_u64().unwrap();
        let cos = cosine(&floats(&r["output"]), want);
        eprintln!("{n:>2} of 128 tokens: cosine {cos:.5}");
        assert!(cos >= 0.995, "{text:?} ({n} tokens): cosine {cos}");
        // the client uploads two one-hot digits per token, not a 30522-wide row
        let up = r["client_bytes"].as_u64().unwrap();
        assert!(up * 6 <= 187_527_168, "client bytes {up}");
    }
}

/// GPT-2 padded to 16 tokens returns the logits of its last *real* token:
/// equal to the unpadded run's (causal attention keeps the padding after
/// it out of every real position), and not those of the last pad.
#[test]
fn gpt2_padded_returns_the_last_real_tokens_logits() {
    let run = |extra: &[&str]| {
        let base = [
            "run",
            "gpt2",
            "--config",
            "tiny",
            "--random-weights",
            "3",
            "--ids",
            "5,9,13,2",
            "--json",
        ];
        floats(&json(&ditto(&[&base[..], extra].concat()))["output"])
    };
    let unpadded = run(&[]);
    let padded = run(&["--seq", "16"]);
    let diff = unpadded
        .iter()
        .zip(&padded)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-9, "padded logits differ by {diff}");
    // negative control: the last pad's logits (all 16 positions counted)
    let last_pad = run(&["--seq", "16", "--input", "len=16"]);
    assert!(cosine(&last_pad, &unpadded) < 0.99);
}
