//! The CLI's handling of bad input: every mistake gives a clear message and a
//! failing exit status, never a panic.

mod common;
use common::{ditto, fails_with, tmp_path as tmp};

#[test]
fn bad_weights_files_are_rejected_with_the_reason() {
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--weights",
            "/nonexistent/w.safetensors",
            "--ids",
            "1",
        ],
        "cannot open weights file",
    );
    let garbage = tmp("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--weights",
            &garbage,
            "--ids",
            "1",
        ],
        "is not a valid safetensors file",
    );
    let short = tmp("short.safetensors");
    std::fs::write(&short, b"\x01\x00").unwrap();
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--weights",
            &short,
            "--ids",
            "1",
        ],
        "is not a valid safetensors file",
    );
    // Weights of another model: every missing tensor is named.
    let w = tmp("gpt2-tiny-cli.safetensors");
    let (ok, _, err) = ditto(&["gen-weights", "gpt2", "--config", "tiny", "-o", &w]);
    assert!(ok, "{err}");
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--weights",
            &w,
            "--ids",
            "1",
        ],
        "weight \"embeddings.word_embeddings.weight\" is not in the weights file",
    );
    fails_with(
        &[
            "check",
            "models/bert.ditto",
            "--config",
            "tiny",
            "--weights",
            &w,
        ],
        "is not in the weights file",
    );
}

#[test]
fn bad_inputs_are_rejected() {
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--random-weights",
            "1",
            "--text",
            "hi",
        ],
        "--text needs the tokenizer.json",
    );
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--random-weights",
            "1",
            "--ids",
            "1,x",
        ],
        "`x` is not a token id",
    );
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "tiny",
            "--random-weights",
            "1",
            "--ids",
            "1,100000",
        ],
        "outside the table",
    );
    fails_with(
        &["run", "bert", "--config", "tiny", "--random-weights", "1"],
        "--text",
    );
    fails_with(
        &[
            "run",
            "bert",
            "--config",
            "huge",
            "--random-weights",
            "1",
            "--ids",
            "1",
        ],
        "available configs: base, large, tiny",
    );
    fails_with(
        &["check", "/nonexistent.ditto"],
        "cannot read /nonexistent.ditto",
    );
    fails_with(
        &[
            "compile",
            "tests/diagnostics/unknown_name.ditto",
            "--seq",
            "4",
        ],
        "tests/diagnostics/unknown_name.ditto:3:16",
    );
    fails_with(
        &["compile", "models/bert.ditto", "--size", "S"],
        "--size takes NAME=N",
    );
}

#[test]
fn models_are_found_by_name() {
    let (ok, out, err) = ditto(&["check", "bert", "minilm"]);
    assert!(ok, "{err}");
    assert!(out.contains("models/bert.ditto: ok") && out.contains("models/minilm.ditto: ok"));
    let (ok, out, err) = ditto(&["compile", "gpt2", "--seq", "4", "--emit", "asm"]);
    assert!(ok, "{err}");
    assert!(out.contains("; model = gpt2"));
}

#[test]
fn emits_ast_ir_and_dot() {
    let (ok, out, err) = ditto(&["compile", "models/minilm.ditto", "--emit", "ast"]);
    assert!(ok, "{err}");
    let ast: serde_json::Value = serde_json::from_str(&out).expect("AST is JSON");
    assert!(ast["items"].as_array().is_some_and(|i| i.len() >= 3));
    let ir_path = tmp("minilm.ir");
    let (ok, _, err) = ditto(&[
        "compile",
        "models/minilm.ditto",
        "--emit",
        "ir",
        "--seq",
        "7",
        "--layers",
        "1",
        "-o",
        &ir_path,
    ]);
    assert!(ok, "{err}");
    let ir = std::fs::read_to_string(&ir_path).unwrap();
    let g = ditto_compiler::ir::text::parse(&ir).expect("emitted IR parses");
    assert!(ditto_compiler::ir::verify::verify(&g).is_empty());
    // --layers 1 keeps one layer's weights only.
    assert!(ir.contains("encoder.layer.0.") && !ir.contains("encoder.layer.1."));
    assert!(ir.contains("s32.0[7]"));
}

#[test]
fn pass_pipeline_options() {
    let (ok, out, _) = ditto(&["passes"]);
    assert!(ok && out.contains("insert-conversions") && out.contains("default pipeline"));
    let (ok, _, err) = ditto(&[
        "compile",
        "models/bert.ditto",
        "--config",
        "tiny",
        "--emit",
        "lowered",
        "--stats",
        "-o",
        &tmp("bert.low"),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("policy ditto") && err.contains("insert-conversions"),
        "{err}"
    );
    // The issue's command: every pass's IR, and conversions inserted, then
    // fused into fewer calls.
    let (ok, _, err) = ditto(&[
        "compile",
        "models/bert.ditto",
        "--policy",
        "ditto",
        "--dump-after",
        "all",
        "--stats",
        "-o",
        &tmp("bert-base.dbc"),
    ]);
    assert!(ok, "{err}");
    for pass in ditto_compiler::passes::DEFAULT_PIPELINE {
        assert!(err.contains(&format!("; ---- after {pass} ----")), "{pass}");
    }
    let conv = |pass: &str| -> usize {
        let row = err
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(pass))
            .unwrap_or_else(|| panic!("a stats row for {pass}"));
        row.split_whitespace().nth(3).unwrap().parse().unwrap()
    };
    let (inserted, fused) = (conv("insert-truncations"), conv("fuse-truncations"));
    assert!(
        conv("insert-conversions") > 0 && fused < inserted,
        "{inserted} → {fused}"
    );
    let (ok, _, err) = ditto(&[
        "compile",
        "models/bert.ditto",
        "--config",
        "tiny",
        "--emit",
        "lowered",
        "--dump-after",
        "apply-policy",
        "-o",
        &tmp("bert2.low"),
    ]);
    assert!(
        ok && err.contains("; ---- after apply-policy ----\ngraph bert"),
        "{err}"
    );
    let dir = tmp("dumps");
    let (ok, _, err) = ditto(&[
        "compile",
        "models/gpt2.ditto",
        "--config",
        "tiny",
        "--emit",
        "lowered",
        "--dump-dir",
        &dir,
        "-o",
        &tmp("gpt2.low"),
    ]);
    assert!(ok, "{err}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let expected: Vec<String> = ditto_compiler::passes::DEFAULT_PIPELINE
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:02}-{p}.ir", i + 1))
        .collect();
    assert_eq!(files, expected);
    fails_with(
        &[
            "compile",
            "models/bert.ditto",
            "--emit",
            "lowered",
            "--policy",
            "ditto2",
        ],
        "unknown policy `ditto2`; policies are: uniform64, ditto, ditto-nl64, ditto-quad, ditto-2quad, ditto-auto",
    );
    fails_with(
        &[
            "compile",
            "models/bert.ditto",
            "--emit",
            "lowered",
            "--passes",
            "fuze",
        ],
        "unknown pass `fuze` (did you mean `fuse`?)",
    );
    fails_with(
        &[
            "compile",
            "models/bert.ditto",
            "--emit",
            "lowered",
            "--dump-after",
            "cse",
            "--skip",
            "cse",
        ],
        "no such pass in the pipeline",
    );
    let pf = tmp("bad-policy.json");
    std::fs::write(&pf, r#"{"name": "x", "formats": {"linear": [32, 40]}}"#).unwrap();
    fails_with(
        &[
            "compile",
            "models/bert.ditto",
            "--emit",
            "lowered",
            "--policy-file",
            &pf,
        ],
        "format of `linear`",
    );
}

#[test]
fn a_product_too_precise_for_its_ring_is_a_compile_error_at_its_line() {
    let f = tmp("precise.ditto");
    std::fs::write(
        &f,
        "model m(S) {\n    input x: s32.16[S, 4] from client;\n    precision (32, 16) {\n        let y = x * x;\n    }\n    output y;\n}\n",
    )
    .unwrap();
    fails_with(
        &["compile", &f, "--emit", "lowered"],
        "needs 32 fraction bits; the 32-bit ring holds at most 28",
    );
    fails_with(&["compile", &f, "--emit", "lowered"], "precise.ditto:4:17");
}

#[test]
fn check_ranges_refuses_an_overflowing_accumulator_at_its_line() {
    // |x| ≤ 8, |w| ≤ 1, 64 terms: the dot product may reach 512; a
    // (32,12)×(32,12) accumulator has 24 fraction bits, safe below 2^6 = 64.
    let model = |fmt: &str| {
        format!(
            "model m(S) {{\n    @bound(8)\n    input x: s32.{fmt}[S, 64] from client;\n    @bound(1)\n    weight w: s32.{fmt}[64, 64] = \"w\";\n    precision (32, {fmt}) {{\n        let h = x @ w;\n    }}\n    output h;\n}}\n"
        )
    };
    let f = tmp("overflow.ditto");
    std::fs::write(&f, model("12")).unwrap();
    fails_with(
        &["compile", &f, "--emit", "lowered"],
        "this product's accumulator may reach ±512",
    );
    fails_with(&["compile", &f, "--emit", "lowered"], "overflow.ditto:7:17");
    fails_with(&["compile", &f, "--emit", "lowered"], "safe only below ±64");
    // (32, 8): 16 fraction bits in the accumulator, safe below 2^14.
    let ok = tmp("fits.ditto");
    std::fs::write(&ok, model("8")).unwrap();
    let (passed, _, err) = ditto(&["compile", &ok, "--emit", "lowered", "-o", &tmp("fits.low")]);
    assert!(passed, "{err}");
}

#[test]
fn compile_writes_a_valid_bytecode_program() {
    for (model, config) in [
        ("models/bert.ditto", "tiny"),
        ("models/gpt2.ditto", "tiny"),
        ("models/minilm.ditto", "l6"),
    ] {
        let out = tmp(&format!("{config}-{}.dbc", model.len()));
        let (ok, _, err) = ditto(&[
            "compile", model, "--config", config, "--policy", "ditto", "-o", &out,
        ]);
        assert!(ok, "{err}");
        assert!(err.contains("program hash"), "{err}");
        let bytes = std::fs::read(&out).unwrap();
        let p = ditto_bytecode::Program::decode(&bytes).expect("the VM's decoder accepts it");
        assert!(p
            .code
            .iter()
            .any(|i| matches!(i, ditto_bytecode::Instr::MatMul { .. })));
        assert!(
            p.code
                .iter()
                .any(|i| matches!(i, ditto_bytecode::Instr::NormScale { .. })),
            "softmax/LayerNorm were lowered"
        );
        // one output for the client (GPT-2 also keeps its cache `to parties`)
        let revealed = p.outputs.iter().filter(|o| o.owner.is_none()).count();
        assert_eq!(revealed, 1);
    }
    let (ok, asm, _) = ditto(&[
        "compile",
        "models/bert.ditto",
        "--config",
        "tiny",
        "--emit",
        "asm",
    ]);
    assert!(
        ok && asm.starts_with("; ditto bytecode v4, program hash ")
            && asm.contains("; model = bert\n; config = tiny\n; policy = ditto\n")
            && asm.contains("convert dst=")
    );
    // a standalone exp has no approximation yet: codegen says so, at its line
    let f = tmp("exp.ditto");
    std::fs::write(
        &f,
        "model m(S) {\n    input x: s[S, 4] from client;\n    output y = exp(x);\n}\n",
    )
    .unwrap();
    fails_with(
        &["compile", &f, "--seq", "4"],
        "exp.ditto:3:16: `exp` has no MPC instruction",
    );
}

/// `ditto bench` on BERT tiny (8 tokens) under `policies`, as JSON results.
fn bench_tiny(policies: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "bench",
        "bert",
        "--config",
        "tiny",
        "--seq",
        "8",
        "--policies",
        policies,
        "--json",
    ];
    args.extend(extra);
    let (ok, out, err) = ditto(&args);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    v["results"].as_array().expect("results").clone()
}

#[test]
fn bench_runs_every_policy_and_reports_costs_and_estimates() {
    let rs = bench_tiny("uniform64,ditto", &["--net", "lan"]);
    assert_eq!(rs.len(), 2);
    for r in &rs {
        for f in [
            "wall_s",
            "est_lan_s",
            "est_wan_s",
            "net_s",
            "comm_bytes",
            "rounds",
        ] {
            assert!(r[f].as_f64().is_some_and(|x| x > 0.0), "{f}: {r}");
        }
        assert!(r["ops"].as_object().is_some_and(|o| !o.is_empty()));
        assert!(r["layers"]["encoder.layer.1"]["bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(rs[0]["policy"], "uniform64");
    assert!(rs[1]["comm_bytes"].as_u64() < rs[0]["comm_bytes"].as_u64());
    let (ok, out, err) = ditto(&["bench", "kernels", "--json"]);
    assert!(ok, "{err}");
    let k: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        k["results"][0]["gops"].as_f64().is_some_and(|g| g > 0.0),
        "{k}"
    );
    // the record says what it was measured on
    let isa = k["machine"]["kernel_isa"].as_str().unwrap_or_default();
    assert!(["avx512", "avx2", "portable"].contains(&isa), "{k}");
    assert!(
        k["machine"]["rustc"]
            .as_str()
            .is_some_and(|v| v.starts_with("rustc")),
        "{k}"
    );
}

#[test]
fn policies_order_by_what_they_keep_in_the_low_ring() {
    // ditto (exp and GeLU low) < exp back in (64, 18) < NUMERICS.md's table
    // < everything in (64, 18); a policy file is labelled by its name
    let rs = bench_tiny(
        "uniform64,ditto-nl64,models/policies/ditto-exp64.json,ditto",
        &[],
    );
    let names: Vec<&str> = rs.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(names, ["uniform64", "ditto-nl64", "ditto-exp64", "ditto"]);
    let bytes: Vec<u64> = rs
        .iter()
        .map(|r| r["comm_bytes"].as_u64().unwrap())
        .collect();
    assert!(
        bytes.windows(2).all(|w| w[1] < w[0]),
        "{names:?}: {bytes:?}"
    );
}

#[test]
fn share_weights_writes_one_file_per_party() {
    let w = tmp("share-w.safetensors");
    let prog = tmp("share.dbc");
    let dir = tmp("shares");
    let _ = std::fs::remove_dir_all(&dir);
    let run = |args: &[&str]| {
        let (ok, _, err) = ditto(args);
        assert!(ok, "{args:?}: {err}");
    };
    run(&[
        "gen-weights",
        "bert",
        "--config",
        "tiny",
        "--seed",
        "3",
        "-o",
        &w,
    ]);
    run(&[
        "compile",
        "models/bert.ditto",
        "--config",
        "tiny",
        "-o",
        &prog,
    ]);
    run(&["share-weights", &prog, "--weights", &w, "-o", &dir]);
    let sizes: Vec<u64> = (0..3)
        .map(|i| std::fs::metadata(format!("{dir}/p{i}")).unwrap().len())
        .collect();
    assert!(
        sizes[0] > 100_000 && sizes.iter().all(|&s| s == sizes[0]),
        "{sizes:?}"
    );
    // files of an earlier dealing are not replaced without --force
    fails_with(
        &["share-weights", &prog, "--weights", &w, "-o", &dir],
        "pass --force",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{dir}/p1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "share files are private");
    }
    // a file that is not a weights file is refused by name
    fails_with(
        &[
            "share-weights",
            &prog,
            "--weights",
            "models/bert.ditto",
            "-o",
            &dir,
            "--force",
        ],
        "models/bert.ditto",
    );
}

#[test]
fn cluster_commands_reject_bad_setups_with_the_reason() {
    let dir = tmp("cli-cluster");
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = format!("{dir}/cluster.toml");
    let (ok, _, err) = ditto(&["keygen", "--cluster", &cluster]);
    assert!(ok, "{err}");
    fails_with(&["keygen", "--cluster", &cluster], "pass --force");
    fails_with(
        &["keygen", "--cluster", &cluster, "--force", "--hosts", "a,b"],
        "three hosts",
    );
    for (hosts, want) in [
        ("a b,c,d", "neither an IP address nor a host name"),
        ("a,c:99999,d", "is not a port"),
        (
            "10.0.0.1,10.0.0.2,10.0.0.1",
            "P0 and P2 have the same address",
        ),
    ] {
        fails_with(
            &["keygen", "--cluster", &cluster, "--force", "--hosts", hosts],
            want,
        );
    }
    let prog = format!("{dir}/bert.dbc");
    let w = format!("{dir}/w.safetensors");
    let shares = format!("{dir}/shares");
    for args in [
        vec![
            "compile",
            "models/bert.ditto",
            "--config",
            "tiny",
            "--seq",
            "4",
            "-o",
            &prog,
        ],
        vec!["gen-weights", "bert", "--config", "tiny", "-o", &w],
        vec!["share-weights", &prog, "--weights", &w, "-o", &shares],
    ] {
        let (ok, _, err) = ditto(&args);
        assert!(ok, "{args:?}: {err}");
    }
    let party = |id: &str, cl: &str, sh: &str| {
        vec![
            "party".to_string(),
            "--id".into(),
            id.into(),
            "--cluster".into(),
            cl.into(),
            "--program".into(),
            prog.clone(),
            "--shares".into(),
            sh.into(),
        ]
    };
    let run = |a: Vec<String>, want: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails_with(&a, want)
    };
    run(party("3", &cluster, &format!("{shares}/p0")), "0, 1 or 2");
    run(party("1", &cluster, &format!("{shares}/p0")), "not P1");
    run(
        party("0", &format!("{dir}/none.toml"), &format!("{shares}/p0")),
        "cannot read cluster file",
    );
    std::fs::write(
        format!("{dir}/bad.toml"),
        "protocol = 2\n[[party]]\ncert = \"p0.crt\"\nkey = \"p0.key\"\n",
    )
    .unwrap();
    run(
        party("0", &format!("{dir}/bad.toml"), &format!("{shares}/p0")),
        "exactly 3",
    );
    fails_with(
        &[
            "client",
            "--cluster",
            &cluster,
            "--program",
            &prog,
            "--ids",
            "1,2,3,4,5",
        ],
        "compiled for at most 4",
    );
}

#[test]
fn calibrated_bounds_are_checked_and_refused_with_the_reason() {
    let dir = tmp("cli-calibrate");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let b = format!("{dir}/bounds.json");
    let (ok, _, err) = ditto(&[
        "calibrate",
        "bert",
        "--config",
        "tiny",
        "--random-weights",
        "7",
        "--ids",
        "101,7,99,102",
        "--ids",
        "101,300,5,42,17,102",
        "-o",
        &b,
    ]);
    assert!(ok, "{err}");
    let compile = |policy: &str, bounds: &str| {
        let mut a = vec![
            "compile",
            "models/bert.ditto",
            "--config",
            "tiny",
            "--seq",
            "8",
            "--policy",
            policy,
            "--emit",
            "asm",
        ];
        if !bounds.is_empty() {
            a.extend(["--bounds", bounds]);
        }
        ditto(&a)
    };
    // the calibrated model passes check-ranges under both policies
    let (ok, _, err) = compile("ditto", &b);
    assert!(ok, "{err}");
    let (ok, _, err) = compile("ditto-auto", &b);
    assert!(ok, "{err}");
    assert!(err.contains("policy ditto-auto: "), "{err}");
    // ditto-auto needs bounds
    let (ok, _, err) = compile("ditto-auto", "");
    assert!(!ok && err.contains("pass --bounds"), "{err}");
    // bounds of another model
    fails_with(
        &[
            "compile",
            "models/gpt2.ditto",
            "--config",
            "tiny",
            "--bounds",
            &b,
            "--emit",
            "asm",
        ],
        "calibration is for another graph",
    );
    // values 10^5 times larger than calibrated overflow the 32-bit ring:
    // refused at the line of the linear layer
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    for n in v["nodes"].as_array_mut().unwrap() {
        if let Some(m) = n["max"].as_f64() {
            n["max"] = serde_json::json!(m * 1e5);
        }
    }
    let bad = format!("{dir}/bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let (ok, _, err) = compile("ditto", &bad);
    assert!(!ok);
    let stdlib = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib/transformer.ditto"),
    )
    .unwrap();
    let line = 1 + stdlib
        .lines()
        .position(|l| l.trim() == "x @ transpose(w) + b")
        .expect("linear's product");
    let at = format!("stdlib/transformer.ditto:{line}");
    assert!(
        err.contains("may overflow its ring") && err.contains(&at),
        "{at}: {err}"
    );
    // malformed files
    std::fs::write(&bad, "{\"model\": 1}").unwrap();
    let (ok, _, err) = compile("ditto", &bad);
    assert!(!ok && err.contains("margin"), "{err}");
}
