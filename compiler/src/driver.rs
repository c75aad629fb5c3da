//! Entry points that tie the front end together for the CLI and tests:
//! read a model file, elaborate it, verify the graph.

use crate::diag::{Diagnostic, Sources};
use crate::elab::{elaborate, Elaborated, Options};
use crate::ir::verify::verify;
use std::path::Path;

/// A compilation's sources and its result (the graph or the diagnostics).
pub struct Compiled {
    pub sources: Sources,
    pub result: Result<Elaborated, Vec<Diagnostic>>,
}

/// Compiles DSL `text` named `name`.
pub fn compile_text(name: &str, text: &str, opts: &Options) -> Compiled {
    let mut sources = Sources::default();
    let main = sources.add(name, text);
    let result = elaborate(&mut sources, main, opts).and_then(|e| {
        let errs = verify(&e.graph);
        if errs.is_empty() {
            Ok(e)
        } else {
            // A verifier failure after elaboration is a compiler bug; report it
            // as a diagnostic rather than panicking.
            Err(errs
                .into_iter()
                .map(|v| {
                    Diagnostic::global(format!("internal error: elaborated graph is invalid: {v}"))
                })
                .collect())
        }
    });
    Compiled { sources, result }
}

/// Compiles the file at `path`.
pub fn compile_file(path: &Path, opts: &Options) -> Compiled {
    match std::fs::read_to_string(path) {
        Ok(text) => compile_text(&path.display().to_string(), &text, opts),
        // a shipped model, built into the binary (no local file of that path)
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && crate::stdlib::model(&path.to_string_lossy()).is_some() =>
        {
            let (file, text) = crate::stdlib::model(&path.to_string_lossy()).expect("checked");
            compile_text(file, text, opts)
        }
        Err(e) => Compiled {
            sources: Sources::default(),
            result: Err(vec![Diagnostic::global(format!(
                "cannot read {}: {e}",
                path.display()
            ))]),
        },
    }
}
