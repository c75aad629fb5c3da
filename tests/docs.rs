//! The documentation's examples are tested: every ```ditto block of docs/*.md
//! must compile, every ```ditto-error block must fail to compile with the
//! messages its `// error: …` and `// hint: …` comments state; and the
//! DSL reference lists every built-in operation.

use ditto_compiler::diag::render;
use ditto_compiler::driver::compile_text;
use ditto_compiler::elab::Options;
use std::path::Path;

fn blocks(md: &str) -> Vec<(String, usize, String)> {
    let mut out = vec![];
    let mut cur: Option<(String, usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match (&mut cur, line.trim_start().strip_prefix("```")) {
            (None, Some(tag)) if tag.starts_with("ditto") => {
                cur = Some((tag.to_string(), i + 1, String::new()))
            }
            (Some(_), Some("")) => out.push(cur.take().expect("open block")),
            (Some((_, _, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn dsl_reference_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let md = std::fs::read_to_string(&path).expect("readable");
        for (tag, line, body) in blocks(&md) {
            let name = format!("{}:{line}", path.display());
            let c = compile_text(
                &name,
                &body,
                &Options {
                    seq: Some(4),
                    ..Default::default()
                },
            );
            match (tag.as_str(), &c.result) {
                ("ditto", Err(d)) => {
                    panic!("{name}: example fails:\n{}", render(&c.sources, d, false))
                }
                ("ditto-error", Ok(_)) => panic!("{name}: example should fail to compile"),
                ("ditto-error", Err(d)) => {
                    // the block states what the compiler says: `// error: …`
                    // (and `// hint: …`) comments, each found in the
                    // diagnostics' messages and hints (not in the quoted source)
                    let out: String = d
                        .iter()
                        .map(|x| format!("{}\n{}\n", x.message, x.hint.clone().unwrap_or_default()))
                        .collect();
                    let said: Vec<&str> = body
                        .lines()
                        .filter_map(|l| l.split_once("// error: ").or(l.split_once("// hint: ")))
                        .map(|(_, m)| m.trim())
                        .collect();
                    assert!(
                        !said.is_empty(),
                        "{name}: a ditto-error example states its `// error: …`"
                    );
                    for m in said {
                        assert!(out.contains(m), "{name}: expected {m:?} in:\n{out}");
                    }
                    checked += 1;
                }
                ("ditto", Ok(_)) => checked += 1,
                (other, _) => panic!("{name}: unknown block tag {other}"),
            }
        }
    }
    assert!(checked >= 8, "only {checked} examples found");
}

#[test]
fn dsl_reference_lists_every_builtin() {
    let md = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dsl.md"))
        .expect("dsl.md");
    for name in ditto_compiler::elab::builtins::names() {
        assert!(
            md.contains(&format!("`{name}(")),
            "docs/dsl.md does not document `{name}`"
        );
    }
}
