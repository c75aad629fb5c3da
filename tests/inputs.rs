//! Issue 15's bad-input holes, through the CLI: weights a format cannot
//! hold, several outputs, unrolling and size budgets, a policy that would
//! overflow on the shipped bounds, settings that do nothing, and model names
//! from any folder.

use ditto_compiler::ir::eval::{Tensor, WeightSource};
use ditto_compiler::weights::SafetensorsFile;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{ditto, ditto_in, fails_with};

fn ok(args: &[&str]) -> String {
    let (good, out, err) = ditto(args);
    assert!(good, "ditto {args:?} failed:\n{err}");
    out
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// BERT-tiny's seeded weights with one element of one tensor replaced.
fn poisoned(tag: &str, tensor: &str, value: f64) -> PathBuf {
    let clean = tmp("inputs-clean.safetensors");
    if !clean.exists() {
        ok(&[
            "gen-weights",
            "bert",
            "--config",
            "tiny",
            "--seed",
            "5",
            "-o",
            s(&clean),
        ]);
    }
    let f = SafetensorsFile::open(&clean).unwrap();
    let mut all = std::collections::BTreeMap::new();
    for name in f.info().keys() {
        let mut t: Tensor = f.tensor(name).unwrap();
        if name == tensor {
            t.data[3] = value;
        }
        all.insert(name.clone(), t);
    }
    let p = tmp(&format!("inputs-{tag}.safetensors"));
    ditto_compiler::weights::write_f32(&p, &all).unwrap();
    p
}

#[test]
fn weights_a_format_cannot_hold_are_refused_naming_the_tensor() {
    let name = "encoder.layer.1.intermediate.dense.weight";
    let nan = poisoned("nan", name, f64::NAN);
    for backend in ["float", "fixed", "mpc"] {
        fails_with(
            &[
                "run",
                "bert",
                "--config",
                "tiny",
                "--weights",
                s(&nan),
                "--ids",
                "1,2,3",
                "--backend",
                backend,
            ],
            name,
        );
    }
    let prog = tmp("inputs-tiny.dbc");
    ok(&[
        "compile",
        "bert",
        "--config",
        "tiny",
        "--seq",
        "8",
        "-o",
        s(&prog),
    ]);
    let out = tmp("inputs-nan-shares");
    let _ = std::fs::remove_dir_all(&out);
    fails_with(
        &[
            "share-weights",
            s(&prog),
            "--weights",
            s(&nan),
            "-o",
            s(&out),
        ],
        name,
    );
    assert!(
        !out.join("p0").exists(),
        "shares of NaN weights were written"
    );
    // 1e30 is a fine f32 but beyond what (64, 18) — let alone (32, 8) — holds
    let big = poisoned("big", "embeddings.LayerNorm.bias", 1e30);
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--weights",
            s(&big),
            "--ids",
            "1,2,3",
            "--backend",
            "fixed",
        ],
        "\"embeddings.LayerNorm.bias\": its largest |value| is 1.0000e30",
    );
    fails_with(
        &[
            "share-weights",
            s(&prog),
            "--weights",
            s(&big),
            "-o",
            s(&out),
        ],
        "is 1.0000e30",
    );
}

#[test]
fn every_output_comes_back_in_order_and_the_same_on_every_backend() {
    // `second` reads a weight only, so the schedule computes it first: the
    // order must come from the declarations, not the evaluation
    let f = tmp("two-outputs.ditto");
    std::fs::write(
        &f,
        "use std.transformer;\n\
         config c { vocab = 512, hidden = 64, max_pos = 128, eps = 1e-12 }\n\
         model two(S) {\n\
             input ids: s32.0[S] from client;\n\
             input len: p32.0[1] from client;\n\
             let x = bert_embeddings(ids, vocab, max_pos, hidden, eps);\n\
             output first = mean_kept(x, key_mask(S, len), len);\n\
             weight t: s[2, hidden] = \"embeddings.token_type_embeddings.weight\";\n\
             output second = t * 2.0;\n\
         }\n",
    )
    .unwrap();
    let w = tmp("two-outputs.safetensors");
    ok(&["gen-weights", s(&f), "--seed", "3", "-o", s(&w)]);
    let run = |backend: &str| -> serde_json::Value {
        let out = ok(&[
            "run",
            s(&f),
            "--weights",
            s(&w),
            "--ids",
            "7,9,11",
            "--seq",
            "8",
            "--backend",
            backend,
            "--json",
        ]);
        serde_json::from_str(out.trim()).unwrap()
    };
    let float = run("float");
    let names: Vec<&String> = float["outputs"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["first", "second"], "declaration order");
    for backend in ["fixed", "mpc"] {
        let r = run(backend);
        let got: Vec<&String> = r["outputs"].as_object().unwrap().keys().collect();
        assert_eq!(got, names, "{backend}");
        for n in ["first", "second"] {
            let (a, b) = (&r["outputs"][n], &float["outputs"][n]);
            assert_eq!(a["shape"], b["shape"], "{backend} {n}");
            let d = a["values"]
                .as_array()
                .unwrap()
                .iter()
                .zip(b["values"].as_array().unwrap())
                .map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs())
                .fold(0.0, f64::max);
            assert!(d < 2e-2, "{backend} {n}: off by {d}");
        }
    }
}

#[test]
fn unrolling_and_sizes_have_budgets() {
    let f = tmp("nested-loops.ditto");
    std::fs::write(
        &f,
        "model m(S) {\n    input x: s[S, 4] from client;\n    let y = x;\n    for i in 0..100000 {\n        for j in 0..100000 {\n            y = y + 1.0;\n        }\n    }\n    output y;\n}\n",
    )
    .unwrap();
    let start = Instant::now();
    fails_with(&["check", s(&f)], "nested-loops.ditto:5:9");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let f = tmp("huge-weight.ditto");
    std::fs::write(
        &f,
        "model m(S) {\n    input x: s[S, 4] from client;\n    weight w: s[100000000, 100000000] = \"w\";\n    output y = x + sum(sum(w, 0), 1);\n}\n",
    )
    .unwrap();
    fails_with(
        &["compile", s(&f), "--seq", "2", "-o", s(&tmp("huge.dbc"))],
        "huge-weight.ditto:3:5",
    );
    fails_with(
        &["run", s(&f), "--random-weights", "1", "--ids", "1,2"],
        "limit 2^32",
    );
}

#[test]
fn a_policy_that_overflows_on_the_shipped_bounds_is_refused_at_compile_time() {
    let p = tmp("linear-32-14.json");
    std::fs::write(
        &p,
        r#"{"name": "linear-14", "formats": {"linear": [32, 14], "scores": [32, 8]},
            "gelu": "sym", "softmax": "puma", "exp": "quad", "exp_squarings": 4}"#,
    )
    .unwrap();
    // no weights given: the bounds calibrated on all-MiniLM-L6-v2 apply,
    // and the error points at the DSL line of the product
    let (good, _, err) = ditto(&[
        "compile",
        "minilm",
        "--seq",
        "16",
        "--policy-file",
        s(&p),
        "-o",
        s(&tmp("l14.dbc")),
    ]);
    assert!(!good, "a (32, 14) linear policy compiled");
    assert!(
        err.contains("may overflow its ring") && err.contains("stdlib/transformer.ditto:"),
        "{err}"
    );
    // the built-in policies pass the same check
    for policy in [
        "ditto",
        "uniform64",
        "ditto-nl64",
        "ditto-quad",
        "ditto-2quad",
        "ditto-auto",
    ] {
        let (good, _, err) = ditto(&[
            "compile",
            "minilm",
            "--seq",
            "16",
            "--policy",
            policy,
            "--stats",
            "-o",
            s(&tmp("ok.dbc")),
        ]);
        assert!(good, "{policy}: {err}");
        assert!(
            err.contains("bounds: calibrated on all-MiniLM-L6-v2"),
            "{policy}: {err}"
        );
    }
    // a misspelled class is an error, not a silent no-op
    let typo = tmp("typo.json");
    std::fs::write(
        &typo,
        r#"{"name": "typo", "formats": {"linaer": [32, 8]}, "gelu": "sym", "softmax": "puma",
            "exp": "quad", "exp_squarings": 4}"#,
    )
    .unwrap();
    fails_with(
        &[
            "compile",
            "bert",
            "--config",
            "tiny",
            "--seq",
            "4",
            "--policy-file",
            s(&typo),
            "-o",
            s(&tmp("t.dbc")),
        ],
        "did you mean `linear`?",
    );
}

#[test]
fn settings_that_would_do_nothing_are_errors() {
    let base = [
        "run",
        "bert",
        "--config",
        "tiny",
        "--random-weights",
        "1",
        "--ids",
        "101,7,102",
    ];
    for (extra, want) in [
        (&["--layers", "99"][..], "the model has 2 layers"),
        (
            &["--policy", "uniform64"],
            "--policy applies to compiled programs",
        ),
        (&["--seq", "2"], "more than --seq 2"),
        (&["--seq", "600"], "at most 128 tokens"),
        (&["--input", "x=1"], "no such input"),
    ] {
        fails_with(&[&base[..], extra].concat(), want);
    }
    fails_with(&["check", "bert", "--size", "Q=4"], "no size parameter `Q`");
}

#[test]
fn shipped_models_run_from_any_folder_and_a_local_file_wins() {
    let dir = tmp("empty-folder");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (good, out, err) = ditto_in(
        &dir,
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--random-weights",
            "7",
            "--ids",
            "101,72,102",
        ],
    );
    assert!(good, "{err}");
    assert!(out.contains("pooled [64]"), "{out}");
    let (good, _, err) = ditto_in(&dir, &["compile", "minilm", "--seq", "8", "-o", "m.dbc"]);
    assert!(good && dir.join("m.dbc").exists(), "{err}");
    // a file named like a shipped model in the folder is the one compiled
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(
        dir.join("models/bert.ditto"),
        "model mine(S) {\n    input ids: s32.0[S] from client;\n    weight t: s[8, 2] = \"t\";\n    output y = embed(ids, t);\n}\n",
    )
    .unwrap();
    let (good, out, err) = ditto_in(
        &dir,
        &["run", "bert", "--random-weights", "1", "--ids", "3,4"],
    );
    assert!(good, "{err}");
    assert!(out.contains("model mine"), "{out}");
}

#[test]
fn a_hidden_length_gives_the_same_answer_for_a_few_more_rounds() {
    let run = |extra: &[&str]| -> serde_json::Value {
        let base = [
            "run",
            "bert",
            "--config",
            "tiny",
            "--random-weights",
            "3",
            "--ids",
            "101,7,9,102",
            "--json",
        ];
        serde_json::from_str(ok(&[&base[..], extra].concat()).trim()).unwrap()
    };
    let want = run(&[]);
    let public = run(&["--seq", "16", "--backend", "mpc"]);
    let hidden = run(&["--seq", "16", "--backend", "mpc", "--hide-length"]);
    for r in [&public, &hidden] {
        let d = r["output"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["output"].as_array().unwrap())
            .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        assert!(d < 2e-2, "off by {d}");
    }
    let rounds = |r: &serde_json::Value| r["rounds"].as_u64().unwrap();
    assert!(rounds(&hidden) > rounds(&public));
    // the program takes `len` as a secret input
    let prog = tmp("hidden.dbc");
    ok(&[
        "compile",
        "bert",
        "--config",
        "tiny",
        "--seq",
        "16",
        "--hide-length",
        "-o",
        s(&prog),
    ]);
    let p = ditto_bytecode::Program::decode(&std::fs::read(&prog).unwrap()).unwrap();
    let len = p
        .inputs
        .iter()
        .find(|i| i.name == "len")
        .expect("a len input");
    assert!(p.regs[len.reg.0 as usize].secret);
}
