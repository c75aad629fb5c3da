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
