//! VM tests written as files: every `tests/programs/*.dasm` is assembled
//! (`Program::assemble`) and run on the `fixed` and `mpc` backends; its
//! `; test input NAME = v, ...`, `; test expect NAME = v, ...` and
//! `; test tolerance T` comment lines say what goes in and what must come
//! out (within T of the expected value, on both backends).

use ditto_bytecode::Program;
use ditto_vm::{run_fixed, run_mpc, Data, MpcOptions};
use std::collections::HashMap;

fn directives(text: &str, what: &str) -> HashMap<String, Vec<f64>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("; test ")?.strip_prefix(what))
        .filter_map(|l| {
            let (name, vals) = l.split_once('=')?;
            let v = vals
                .split(',')
                .map(|x| x.trim().parse().expect("a number"))
                .collect();
            Some((name.trim().to_string(), v))
        })
        .collect()
}

#[test]
fn programs_written_as_files_run_as_their_tests_say() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/programs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dasm"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "expected programs in {}", dir.display());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let p = Program::assemble(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let inputs = directives(&text, "input ");
        let expect = directives(&text, "expect ");
        let tol: f64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("; test tolerance "))
            .map_or(0.0, |t| t.trim().parse().expect("a tolerance"));
        let values: Vec<Vec<f64>> = p
            .inputs
            .iter()
            .map(|port| {
                inputs
                    .get(&port.name)
                    .cloned()
                    .unwrap_or_else(|| panic!("{}: no input {}", f.display(), port.name))
            })
            .collect();
        let no_weights = |n: &str| Err(format!("no weight {n}"));
        let data = || Data {
            inputs: values.clone(),
            weights: &no_weights,
        };
        let fixed = run_fixed(&p, data()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let mpc = run_mpc(&p, data(), &MpcOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (i, port) in p.outputs.iter().enumerate() {
            let want = &expect[&port.name];
            for (backend, got) in [
                ("fixed", &fixed.outputs[i].data),
                ("mpc", &mpc.outputs[i].data),
            ] {
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (g - w).abs() <= tol,
                        "{} {backend}: {} = {got:?}, expected {want:?}",
                        f.display(),
                        port.name
                    );
                }
            }
        }
    }
}
