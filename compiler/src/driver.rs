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

/// A lowered graph's policy (an `auto` policy resolved from the graph's
/// calibrated bounds) and the record of every pass.
pub struct Lowered {
    pub policy: crate::policy::Policy,
    pub records: Vec<crate::passes::PassRecord>,
}

/// Runs `pipeline` (pass names, [`crate::passes::plan`]) on `g` under
/// `policy`: an `auto` policy is first resolved against the graph's bounds
/// ([`crate::passes::resolve_auto`]). The front end's last step before
/// code generation; the CLI adds flags, bound files and printing.
pub fn lower(
    g: &mut crate::ir::Graph,
    sources: &Sources,
    policy: &crate::policy::Policy,
    pipeline: &[&str],
    dump: &crate::passes::DumpAfter,
) -> Result<Lowered, Vec<Diagnostic>> {
    use crate::passes::{resolve_auto, run, Ctx};
    let ctx = |p| Ctx {
        policy: p,
        sources: Some(sources),
        weight_bounds: None,
    };
    let policy = if policy.auto {
        resolve_auto(g, policy, &ctx(policy))
    } else {
        policy.clone()
    };
    let records = run(g, pipeline, &ctx(&policy), dump)?;
    Ok(Lowered { policy, records })
}

/// Code generation with errors located at DSL lines (`file:line:col`).
pub fn codegen_located(g: &crate::ir::Graph) -> Result<ditto_bytecode::Program, Vec<Diagnostic>> {
    let where_ = |id: crate::ir::NodeId| match g.node(id).loc {
        Some(l) => format!(
            "{}:{}:{}",
            g.files
                .get(l.file as usize)
                .map(String::as_str)
                .unwrap_or("?"),
            l.line,
            l.col
        ),
        None => "(no location)".into(),
    };
    crate::codegen::codegen(g, &where_)
}

/// Records in a program what it was compiled from: model, config, policy
/// (with its formats when not a plain built-in), compiler version.
pub fn stamp(p: &mut ditto_bytecode::Program, e: &Elaborated, policy: &crate::policy::Policy) {
    let mut meta = vec![
        ("model".to_string(), e.model.clone()),
        ("config".to_string(), e.config.clone()),
        ("policy".to_string(), policy.name.clone()),
    ];
    if policy.name == "ditto-auto" || !crate::policy::BUILTIN.contains(&policy.name.as_str()) {
        meta.push(("formats".to_string(), policy.describe()));
    }
    meta.push((
        "compiler".to_string(),
        format!("ditto {}", env!("CARGO_PKG_VERSION")),
    ));
    // what codegen recorded stays
    let old = std::mem::take(&mut p.meta);
    meta.extend(old.into_iter().filter(|(k, _)| {
        !["model", "config", "policy", "formats", "compiler"].contains(&k.as_str())
    }));
    p.meta = meta;
}
