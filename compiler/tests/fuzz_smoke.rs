//! A short run of the front end's fuzz targets (`fuzz/`, whose bodies are
//! `ditto_compiler::fuzzing`) under `cargo test`: mutations of the shipped
//! models, the stdlib and small programs, and of their printed IR. Nothing
//! may panic; what compiles must round-trip. (`cargo fuzz` runs them for
//! long on a nightly toolchain.)

use ditto_compiler::fuzzing;
use proptest::prelude::*;

fn seeds() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut v: Vec<String> = [
        "stdlib/approx.ditto",
        "stdlib/transformer.ditto",
        "models/policies/gelu_even.ditto",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(root.join(f)).expect("seed"))
    .collect();
    v.push(
        "model m(S) { input x: s32.8[S, 4] from client; let y = x * 2.0; output z = softmax(y); }"
            .into(),
    );
    v.push("use std.transformer;\nconfig c { d: 4 }\nmodel m(S) { input x: s[S, d] from client; weight w: s[d, d] = \"w\"; output y = gelu(x @ w); }".into());
    v.push("fn f(a) { for i in 0..3 { a = a + 1.0; } a }\nmodel m() { input x: p[2] from client; output y = f(x) as (32, 8); }".into());
    v
}

/// `text` with a few byte-level edits: replace, delete, or insert a byte or
/// a fragment of DSL syntax.
fn mutate(text: &str, edits: &[(u16, u8, u8)]) -> Vec<u8> {
    const FRAGMENTS: &[&[u8]] = &[
        b"(",
        b")",
        b"{",
        b"}",
        b";",
        b"[S, 0]",
        b"@",
        b"as (32, 40)",
        b"for i in 0..99999999 {",
        b"\"",
        b"0.0",
        b"-",
        b"model",
        b"fn g(x) { g(x) }",
        b"s64.70",
    ];
    let mut b = text.as_bytes().to_vec();
    for &(at, kind, x) in edits {
        let i = if b.is_empty() {
            0
        } else {
            at as usize % b.len()
        };
        match kind % 3 {
            0 if !b.is_empty() => b[i] = x,
            1 if !b.is_empty() => {
                b.remove(i);
            }
            _ => {
                let f = FRAGMENTS[x as usize % FRAGMENTS.len()];
                b.splice(i..i, f.iter().copied());
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn dsl_target(seed in 0usize..6, edits in prop::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..4)) {
        let s = &seeds()[seed];
        fuzzing::dsl(&mutate(s, &edits));
    }

    #[test]
    fn ir_text_target(seed in 3usize..6, edits in prop::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..4)) {
        // the printed IR of a small program, mutated
        let src = &seeds()[seed];
        let c = ditto_compiler::driver::compile_text("s.ditto", src, &ditto_compiler::elab::Options { seq: Some(2), ..Default::default() });
        let text = match c.result {
            Ok(e) => ditto_compiler::ir::text::print(&e.graph),
            Err(_) => src.clone(),
        };
        fuzzing::ir_text(&mutate(&text, &edits));
    }
}
