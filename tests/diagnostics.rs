//! Snapshot tests of rendered diagnostics. Each `tests/diagnostics/*.ditto`
//! file holds one or more mistakes; its expected rendering (no colour) is in
//! the `.stderr` file beside it. Directives on `//@ ` lines set options:
//! `config: NAME`, `seq: N` (default 4), `weights: name=[d, ...][:DTYPE], ...`
//! (a weights file holding exactly those tensors).
//!
//! Re-bless with `BLESS=1 cargo test --test diagnostics`.

use ditto_compiler::diag::render;
use ditto_compiler::driver::compile_text;
use ditto_compiler::elab::Options;
use ditto_compiler::weights::TensorInfo;
use std::collections::BTreeMap;
use std::path::Path;

fn options(src: &str) -> Options {
    let mut o = Options {
        seq: Some(4),
        ..Default::default()
    };
    for line in src.lines().filter_map(|l| l.strip_prefix("//@ ")) {
        let (k, v) = line.split_once(':').expect("directive is `key: value`");
        let v = v.trim();
        match k.trim() {
            "config" => o.config = Some(v.to_string()),
            "seq" => o.seq = Some(v.parse().expect("seq is an integer")),
            "weights" => {
                let mut map = BTreeMap::new();
                // name=[a, b]:DTYPE entries separated by `;`
                for entry in v.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                    let (name, rest) = entry.split_once('=').expect("name=[dims]");
                    let (dims, dtype) = rest.split_once(':').unwrap_or((rest, "F32"));
                    let shape = dims
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .filter(|d| !d.trim().is_empty())
                        .map(|d| d.trim().parse().expect("dimension"))
                        .collect();
                    let is_float = dtype.starts_with('F') || dtype == "BF16";
                    map.insert(
                        name.trim().to_string(),
                        TensorInfo {
                            shape,
                            dtype: dtype.to_string(),
                            is_float,
                        },
                    );
                }
                o.weights = Some(map);
            }
            other => panic!("unknown directive {other}"),
        }
    }
    o
}

#[test]
fn diagnostic_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let bless = std::env::var_os("BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/diagnostics exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ditto"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "expected at least 15 diagnostic cases, found {}",
        files.len()
    );
    let mut failures = vec![];
    for f in &files {
        let src = std::fs::read_to_string(f).expect("readable");
        let name = format!(
            "tests/diagnostics/{}",
            f.file_name().unwrap().to_string_lossy()
        );
        let c = compile_text(&name, &src, &options(&src));
        let diags = match c.result {
            Ok(e) => e.warnings,
            Err(d) => d,
        };
        assert!(
            !diags.is_empty(),
            "{name}: expected at least one diagnostic"
        );
        let got = render(&c.sources, &diags, false);
        let expected_path = f.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &got).expect("writable");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if want != got {
            failures.push(format!("--- {name}: expected\n{want}\n--- got\n{got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ (BLESS=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
