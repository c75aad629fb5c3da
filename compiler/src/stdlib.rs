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
