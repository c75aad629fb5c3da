//! `ditto distill` end to end on tiny BERT with a seeded teacher: the
//! student it writes is read by `ditto run` and `ditto eval` like any
//! weights, its log records every step, a run resumes where it stopped, and
//! bad settings are refused with the reason.

use std::path::Path;

mod common;
use common::{ditto, fails_with, tmp_path as tmp_keep};

/// A fresh path in the tests' folder (whatever was there removed).
fn tmp(name: &str) -> String {
    let p = tmp_keep(name);
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

/// 24 samples of 3 lengths.
fn ids() -> Vec<String> {
    (0..24)
        .map(|i| {
            let n = 4 + i % 3;
            (0..n)
                .map(|j| ((i * 37 + j * 101) % 500 + 5).to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn distill(out: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "distill",
        "bert",
        "--config",
        "tiny",
        "--random-weights",
        "7",
        "--policy",
        "ditto-quad",
        "--held-out",
        "4",
        "--batch",
        "4",
        "--lr",
        "2e-3",
        "--seed",
        "3",
        "--json",
        "-o",
        out,
    ];
    let ids = ids();
    for s in &ids {
        args.extend(["--ids", s.as_str()]);
    }
    args.extend(extra);
    let (ok, stdout, stderr) = ditto(&args);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).expect("--json prints one object")
}

#[test]
fn a_distilled_student_is_weights_like_any_other() {
    let out = tmp("student.safetensors");
    let r = distill(&out, &["--steps", "40"]);
    let (before, after) = (
        r["held_out_loss_before"].as_f64().unwrap(),
        r["held_out_loss_after"].as_f64().unwrap(),
    );
    assert!(after < before / 2.0, "held-out loss {before} → {after}");
    // the log: one entry per step, the recipe, the held-out losses
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp_keep("student.log.json")).unwrap())
            .unwrap();
    assert_eq!(log["steps_done"], 40);
    assert_eq!(log["log"].as_array().unwrap().len(), 40);
    assert_eq!(log["policy"], "ditto-quad");
    // `ditto run` reads the student under the model's names
    let (ok, stdout, stderr) = ditto(&[
        "run",
        "bert",
        "--config",
        "tiny",
        "--weights",
        &out,
        "--ids",
        "5,6,7,8",
        "--backend",
        "fixed",
        "--policy",
        "ditto-quad",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"outputs\""), "{stdout}");
    // the same seed gives the same student
    let again = tmp("again.safetensors");
    let r2 = distill(&again, &["--steps", "40"]);
    assert_eq!(r["last_loss"], r2["last_loss"]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn a_run_resumes_where_its_checkpoint_stopped() {
    let out = tmp("resumed");
    let r = distill(&out, &["--steps", "10", "--checkpoint-every", "4"]);
    assert_eq!(r["steps"], 10);
    let log = format!("{out}/distill-log.json");
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(first["steps_done"], 10);
    // more steps on the same run: the log continues from step 11
    let r = distill(&out, &["--steps", "16", "--resume"]);
    assert_eq!(r["steps"], 16);
    let done: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    let steps: Vec<u64> = done["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=16).collect::<Vec<_>>());
    // nothing left to do
    let (ok, _, err) = ditto(&[
        "distill",
        "bert",
        "--config",
        "tiny",
        "--random-weights",
        "7",
        "--ids",
        "5,6,7",
        "--ids",
        "5,6,8",
        "--steps",
        "16",
        "--resume",
        "-o",
        &out,
    ]);
    assert!(!ok && err.contains("has done its 16 steps"), "{err}");
}

/// `ditto distill` on tiny BERT with `extra` fails, saying `want`.
fn refused(extra: &[&str], want: &str) {
    let out = tmp("bad.safetensors");
    let mut args = vec![
        "distill",
        "bert",
        "--config",
        "tiny",
        "--random-weights",
        "7",
        "--ids",
        "5,6",
        "-o",
        &out,
    ];
    args.extend(extra);
    fails_with(&args, want);
}

#[test]
fn bad_distillation_settings_are_refused() {
    refused(&["--lr", "0"], "--lr must be a positive number");
    refused(&["--held-out", "1"], "1 samples and 1 held out");
    refused(&["--policy", "ditto-auto"], "distil for a fixed policy");
}

fn minilm() -> String {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/all-minilm-l6-v2");
    assert!(
        folder.join("model.safetensors").exists(),
        "MiniLM weights missing: run scripts/fetch-models.sh (the README's test command does)"
    );
    folder.to_string_lossy().into_owned()
}

/// `ditto eval` on real MiniLM: `ditto` keeps the float embeddings, Quad
/// GeLU without distillation does not (the negative control), and a
/// labelled set gets a head fitted on the float outputs and its accuracy.
#[test]
fn eval_measures_a_policy_against_the_float_model() {
    let w = minilm();
    let texts = tmp("eval-texts.txt");
    std::fs::write(
        &texts,
        "a small domesticated carnivorous mammal\nthe capital of France\nan edible fruit with a red skin\n",
    )
    .unwrap();
    let cos = |policy: &str| -> f64 {
        let (ok, out, err) = ditto(&[
            "eval",
            "minilm",
            "--weights",
            &w,
            "--texts",
            &texts,
            "--policy",
            policy,
            "--json",
        ]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["texts"], 3);
        v["cosine"]["min"].as_f64().unwrap()
    };
    let (good, bad) = (cos("ditto"), cos("ditto-quad"));
    assert!(good > 0.999, "ditto: {good}");
    assert!(bad < 0.5, "undistilled ditto-quad: {bad}");
    // a two-class task: animals against fruit
    let train = tmp("head-train.tsv");
    let test = tmp("head-test.tsv");
    let animals = [
        "a large wild cat",
        "a small dog",
        "a bird that sings",
        "a horse",
        "a grey wolf",
        "a brown bear",
    ];
    let fruit = [
        "a sweet apple",
        "a ripe banana",
        "a sour lemon",
        "a juicy orange",
        "a red cherry",
        "a green pear",
    ];
    let mut tr = String::new();
    for (a, f) in animals.iter().zip(&fruit).take(4) {
        tr += &format!("noun.animal\t{a}\nnoun.food\t{f}\n");
    }
    let mut te = String::new();
    for (a, f) in animals.iter().zip(&fruit).skip(4) {
        te += &format!("noun.animal\t{a}\nnoun.food\t{f}\n");
    }
    std::fs::write(&train, tr).unwrap();
    std::fs::write(&test, te).unwrap();
    let (ok, out, err) = ditto(&[
        "eval",
        "minilm",
        "--weights",
        &w,
        "--labelled",
        &test,
        "--train-head",
        &train,
        "--policy",
        "ditto",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["accuracy"]["labelled"], 4);
    assert_eq!(v["accuracy"]["float"], 1.0, "{v}");
    assert_eq!(v["accuracy"]["agreement"], 1.0, "{v}");
}
