//! Instantiating `@approx` functions on an existing graph: the mechanism of
//! `lower-nonlinear`.

use super::{Elab, Options, Region, Val};
use crate::diag::{Diagnostic, Sources};
use crate::ir::{Format, Graph, NodeId};
use crate::syntax::ast::{FnDef, Item};
use std::collections::{BTreeMap, HashMap};

/// An argument of [`inline`].
#[derive(Debug, Clone)]
pub enum InlineArg {
    Node(NodeId),
    Int(i64),
    Float(f64),
}

/// A DSL source of functions: (file name, text).
pub type Source<'a> = (&'a str, &'a str);

/// The file index of `name` in `g.files`, added if new.
fn file_id(g: &mut Graph, name: &str) -> usize {
    match g.files.iter().position(|f| f == name) {
        Some(i) => i,
        None => {
            g.files.push(name.to_string());
            g.files.len() - 1
        }
    }
}

/// The functions defined in `sources`, parsed with the file indices they
/// would get in `g` (for the `!loc` of the nodes they build). A name defined
/// twice is an error naming both files.
pub fn functions(
    g: &mut Graph,
    sources: &[Source],
) -> Result<(HashMap<String, FnDef>, Sources), Vec<Diagnostic>> {
    let ids: Vec<usize> = sources.iter().map(|(f, _)| file_id(g, f)).collect();
    let mut texts = Sources::default();
    for f in &g.files {
        let text = sources.iter().find(|(n, _)| n == f).map_or("", |s| s.1);
        texts.add(f.clone(), text);
    }
    let mut fns: HashMap<String, FnDef> = HashMap::new();
    for ((name, text), id) in sources.iter().zip(ids) {
        let file = crate::syntax::parse(id as u32, text)?;
        for item in file.items {
            if let Item::Fn(f) = item {
                if fns.contains_key(&f.name.name) {
                    return Err(vec![Diagnostic::error(
                        format!("function `{}` is defined twice", f.name.name),
                        f.name.span,
                        format!("again in {name}"),
                    )]);
                }
                fns.insert(f.name.name.clone(), f);
            }
        }
    }
    Ok((fns, texts))
}

/// Instantiates `func` of `fns` (parsed by [`functions`] against `g`, with
/// the sources they came from in `texts`) on nodes of `g`: the function's nodes
/// are added to `g` in `format` and `class` (the region of the node being
/// replaced); `classes` gives the formats of the class names the function
/// uses in its own `precision` blocks (the policy's), and a class it does
/// not name takes `format`. Returns the node holding the result.
#[allow(clippy::too_many_arguments)]
pub fn inline(
    g: &mut Graph,
    fns: &HashMap<String, FnDef>,
    texts: &Sources,
    func: &str,
    args: &[InlineArg],
    format: Format,
    class: Option<String>,
    classes: &BTreeMap<String, Format>,
) -> Result<NodeId, Vec<Diagnostic>> {
    let opts = Options::default();
    let mut e = Elab::new(texts, &opts);
    e.g = std::mem::take(g);
    e.fns = fns.clone();
    e.formats = classes.iter().map(|(c, f)| (c.clone(), *f)).collect();
    e.class_default = Some(format);
    e.regions.push(Region { class, format });
    let result = match e.fns.get(func).cloned() {
        None => Err(vec![Diagnostic::global(format!(
            "no function `{func}` to inline"
        ))]),
        Some(def) if def.params.len() != args.len() => Err(vec![Diagnostic::global(format!(
            "`{func}` takes {} arguments, not {}",
            def.params.len(),
            args.len()
        ))]),
        Some(def) => {
            let scope = def
                .params
                .iter()
                .zip(args)
                .map(|(p, a)| {
                    let v = match a {
                        InlineArg::Node(n) => Val::Tensor(*n),
                        InlineArg::Int(i) => Val::Int(*i),
                        InlineArg::Float(x) => Val::Float(*x),
                    };
                    (p.name.name.clone(), v)
                })
                .collect();
            match e.invoke(&def, scope) {
                Val::Tensor(id) if e.diags.iter().all(|d| !d.is_error()) => Ok(id),
                _ => Err(std::mem::take(&mut e.diags)),
            }
        }
    };
    *g = std::mem::take(&mut e.g);
    result
}
