//! The DSL standard library, embedded in the compiler. `use std.NAME;` brings a
//! module's functions into scope; the sources live in the repository's
//! `stdlib/` folder.

/// (module name, file name, source) of every stdlib module.
pub const MODULES: &[(&str, &str, &str)] = &[
    (
        "transformer",
        "stdlib/transformer.ditto",
        include_str!("../../stdlib/transformer.ditto"),
    ),
    (
        "approx",
        "stdlib/approx.ditto",
        include_str!("../../stdlib/approx.ditto"),
    ),
];

pub fn module(name: &str) -> Option<(&'static str, &'static str)> {
    MODULES.iter().find(|m| m.0 == name).map(|m| (m.1, m.2))
}

/// The format classes the stdlib declares (`format NAME = (k, f);`), with
/// their declared formats, in declaration order: the classes a policy may
/// assign besides a model's own.
pub fn format_classes() -> Vec<(String, crate::ir::Format)> {
    let mut out = vec![];
    for (i, (_, _, text)) in MODULES.iter().enumerate() {
        let Ok(file) = crate::syntax::parse(i as u32, text) else {
            continue; // the stdlib parses (tested)
        };
        for item in file.items {
            if let crate::syntax::ast::Item::Format {
                name, ring, frac, ..
            } = item
            {
                if let Ok(f) = crate::ir::Format::new(ring.0, frac.0) {
                    out.push((name.name, f));
                }
            }
        }
    }
    out
}

pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|m| m.0).collect()
}

/// (name, file name, source) of every shipped model, built into the binary
/// so that `ditto run bert` works from any folder; a local file of the same
/// path wins.
pub const MODELS: &[(&str, &str, &str)] = &[
    (
        "bert",
        "models/bert.ditto",
        include_str!("../../models/bert.ditto"),
    ),
    (
        "bert-classifier",
        "models/bert-classifier.ditto",
        include_str!("../../models/bert-classifier.ditto"),
    ),
    (
        "gpt2",
        "models/gpt2.ditto",
        include_str!("../../models/gpt2.ditto"),
    ),
    (
        "minilm",
        "models/minilm.ditto",
        include_str!("../../models/minilm.ditto"),
    ),
];

/// The shipped model `name` (`bert`), or the one whose file is `path`
/// (`models/bert.ditto`): its file name and source.
pub fn model(name_or_path: &str) -> Option<(&'static str, &'static str)> {
    let p = name_or_path.trim_start_matches("./");
    MODELS
        .iter()
        .find(|m| m.0 == p || m.1 == p)
        .map(|m| (m.1, m.2))
}
