//! Running the `ditto` binary from the CLI tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs ditto in `dir` to completion: (success, stdout, stderr). A panic is
/// a test failure whatever the exit status.
pub fn ditto_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ditto"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ditto runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "ditto {args:?} panicked:\n{stderr}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// [`ditto_in`] the repository's root.
pub fn ditto(args: &[&str]) -> (bool, String, String) {
    ditto_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// The first output's values of a `--json` report (`output`).
pub fn output_floats(v: &serde_json::Value) -> Vec<f64> {
    v["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Runs ditto and expects it to fail with `want` in its stderr.
pub fn fails_with(args: &[&str], want: &str) {
    let (ok, _, err) = ditto(args);
    assert!(!ok, "ditto {args:?} should fail");
    assert!(
        err.contains(want),
        "ditto {args:?}: wanted {want:?} in:\n{err}"
    );
}

/// A path in the tests' scratch folder (not removed).
pub fn tmp_path(name: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(name)
        .to_string_lossy()
        .into_owned()
}
