//! Elaboration: from the AST of a model file (and the stdlib modules it uses)
//! to the typed IR graph.
//!
//! The elaborator is an interpreter over compile-time values: configs, sizes,
//! loop indices and strings are evaluated here; functions are inlined; `for`
//! loops are unrolled; every tensor operation becomes an IR node whose type is
//! given by [`crate::ir::infer`] and whose format is the one of the innermost
//! `precision` region (or the declared type). NumPy-style broadcasting in
//! binary operations becomes explicit `broadcast` nodes.
//!
//! Errors never stop elaboration: a failed expression yields a poison value
//! that silences follow-on errors, so one run reports many independent
//! mistakes.

pub mod builtins;
mod decls;
mod exprs;
mod inline;
mod nodes;
mod stmts;

pub use inline::{functions, inline, InlineArg, Source};

use crate::diag::{Diagnostic, Sources};
use crate::ir::infer::{broadcast_shapes, infer, with_elem};
use crate::ir::{Elem, Format, Graph, Loc, Node, NodeId, Op, Owner, Type, Vis};
use crate::syntax::ast::*;
use crate::weights::TensorInfo;
use std::collections::{BTreeMap, HashMap};

/// What the driver supplies besides the source.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Config to use; `None` takes the first one declared.
    pub config: Option<String>,
    /// Values of the model's size parameters (e.g. `S`).
    pub sizes: BTreeMap<String, i64>,
    /// Tensors of the weights file, to check declared weights against.
    pub weights: Option<BTreeMap<String, TensorInfo>>,
    /// Keep only the first K iterations of loops over the config's `layers`.
    pub layers: Option<i64>,
    /// Value of the model's first size parameter when `sizes` does not name it
    /// (the number of tokens, `--seq`).
    pub seq: Option<i64>,
    /// The token count when neither `seq` nor the config's `max_pos` gives
    /// it (`ditto check` uses 8; compiling a program needs a real one).
    pub seq_default: Option<i64>,
    /// Inputs declared public that this compilation makes secret
    /// (`--hide-length` names `len`: the servers then learn only S).
    pub secret_inputs: Vec<String>,
    /// Values that replace the chosen config's (e.g. from a checkpoint's
    /// config.json); only names the config declares are replaced.
    pub values: BTreeMap<String, ConfigValue>,
    /// Where `values` come from, reported as the config's name (default
    /// "config.json").
    pub values_source: Option<String>,
}

/// A config value given from outside the model file.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// A compiled model: its graph and what it was compiled with.
#[derive(Debug, Clone)]
pub struct Elaborated {
    pub graph: Graph,
    pub model: String,
    pub config: String,
    /// Declared format classes with their formats, in declaration order.
    pub formats: Vec<(String, Format)>,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Tensor(NodeId),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    /// The result of an expression that already reported an error.
    Poison,
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Tensor(_) => "a tensor",
            Val::Int(_) => "an integer",
            Val::Float(_) => "a number",
            Val::Bool(_) => "a boolean",
            Val::Str(_) => "a string",
            Val::Tuple(_) => "a tuple",
            Val::List(_) => "a list",
            Val::Poison => "an invalid value",
        }
    }
}

/// Compiles the file `main` of `sources` (stdlib modules it uses are added to
/// `sources`). Returns the graph, or every error found.
pub fn elaborate(
    sources: &mut Sources,
    main: u32,
    opts: &Options,
) -> Result<Elaborated, Vec<Diagnostic>> {
    let file = crate::syntax::parse(main, sources.text(main))?;
    let mut items: Vec<(u32, Item)> = file.items.into_iter().map(|i| (main, i)).collect();
    let mut diags = vec![];
    // Load `use`d stdlib modules (transitively, each once).
    let mut loaded: HashMap<String, u32> = HashMap::new();
    let mut i = 0;
    while i < items.len() {
        if let Item::Use { path, span } = &items[i].1 {
            let (path, span) = (path.clone(), *span);
            let names: Vec<&str> = path.iter().map(|p| p.name.as_str()).collect();
            if names.len() != 2 || names[0] != "std" {
                diags.push(
                    Diagnostic::error(
                        "`use` names a stdlib module",
                        span,
                        "not of the form `std.NAME`",
                    )
                    .with_hint(format!("available modules: {}", module_list())),
                );
            } else if !loaded.contains_key(names[1]) {
                match crate::stdlib::module(names[1]) {
                    None => diags.push(
                        Diagnostic::error(
                            format!("unknown stdlib module `{}`", names[1]),
                            path[1].span,
                            "no such module",
                        )
                        .with_hint(
                            match closest(names[1], crate::stdlib::names().into_iter()) {
                                Some(c) => format!(
                                    "did you mean `std.{c}`? (available modules: {})",
                                    module_list()
                                ),
                                None => format!("available modules: {}", module_list()),
                            },
                        ),
                    ),
                    Some((fname, text)) => {
                        let fid = sources.add(fname, text);
                        loaded.insert(names[1].to_string(), fid);
                        match crate::syntax::parse(fid, text) {
                            Ok(f) => items.extend(f.items.into_iter().map(|it| (fid, it))),
                            Err(d) => diags.extend(d),
                        }
                    }
                }
            }
        }
        i += 1;
    }
    let mut e = Elab::new(sources, opts);
    e.diags = diags;
    let result = e.run(main, &items);
    let (errors, warnings): (Vec<_>, Vec<_>) = e.diags.into_iter().partition(|d| d.is_error());
    match result {
        Some(mut r) if errors.is_empty() => {
            r.warnings = warnings;
            Ok(r)
        }
        _ => {
            let mut all = errors;
            all.extend(warnings);
            Err(all)
        }
    }
}

fn module_list() -> String {
    crate::stdlib::names()
        .iter()
        .map(|n| format!("std.{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= name.len().max(c.len()) / 3)
        .min()
        .map(|(_, c)| c)
}

struct Region {
    class: Option<String>,
    format: Format,
}

pub(crate) struct Elab<'s> {
    sources: &'s Sources,
    opts: &'s Options,
    pub(crate) g: Graph,
    pub(crate) diags: Vec<Diagnostic>,
    globals: HashMap<String, Val>,
    scopes: Vec<HashMap<String, Val>>,
    fns: HashMap<String, FnDef>,
    formats: Vec<(String, Format)>,
    regions: Vec<Region>,
    weights: HashMap<String, NodeId>,
    inputs: HashMap<String, Span>,
    outputs: HashMap<String, Span>,
    depth: usize,
    /// How many `@approx` functions are being invoked.
    approx: usize,
    /// When inlining: the format of a class the policy does not name.
    class_default: Option<Format>,
    /// Loop iterations unrolled so far, nested loops included.
    unrolled: i64,
    /// Set once a budget (iterations, nodes) is exhausted: elaboration stops.
    exhausted: bool,
}

const MAX_DEPTH: usize = 64;
/// Loop iterations in all, nested loops included (BERT-large unrolls ~100).
const MAX_UNROLL: i64 = 100_000;
/// IR nodes in all (BERT-large has ~1 500 before lowering).
const MAX_NODES: usize = 1_000_000;
/// Elements of one tensor (2^32: 32 GiB as f64).
const MAX_ELEMENTS: u128 = 1 << 32;

impl<'s> Elab<'s> {
    fn new(sources: &'s Sources, opts: &'s Options) -> Self {
        Elab {
            sources,
            opts,
            g: Graph::new(""),
            diags: vec![],
            globals: HashMap::new(),
            scopes: vec![],
            fns: HashMap::new(),
            formats: vec![],
            regions: vec![],
            weights: HashMap::new(),
            inputs: HashMap::new(),
            outputs: HashMap::new(),
            depth: 0,
            approx: 0,
            class_default: None,
            unrolled: 0,
            exhausted: false,
        }
    }

    pub(crate) fn err(&mut self, d: Diagnostic) -> Val {
        self.diags.push(d);
        Val::Poison
    }

    fn run(&mut self, main: u32, items: &[(u32, Item)]) -> Option<Elaborated> {
        self.g.files = self.sources.files.iter().map(|f| f.0.clone()).collect();
        let mut configs: Vec<(&Ident, &Vec<(Ident, Expr)>)> = vec![];
        let mut models: Vec<&ModelDef> = vec![];
        for (fid, item) in items {
            match item {
                Item::Use { .. } => {}
                Item::Config { name, entries, .. } if *fid == main => {
                    if configs.iter().any(|(n, _)| n.name == name.name) {
                        self.err(Diagnostic::error(
                            format!("config `{}` is declared twice", name.name),
                            name.span,
                            "second declaration",
                        ));
                    }
                    configs.push((name, entries));
                }
                Item::Config { name, .. } => {
                    self.err(Diagnostic::error(
                        "configs belong in the model file",
                        name.span,
                        "config in a stdlib module",
                    ));
                }
                Item::Format {
                    name,
                    ring,
                    frac,
                    span,
                } => match Format::new(ring.0, frac.0) {
                    Err(m) => {
                        self.err(format_error(m, *ring, *frac));
                    }
                    Ok(f) => {
                        if self.formats.iter().any(|(n, _)| *n == name.name) {
                            self.err(Diagnostic::error(
                                format!("format `{}` is declared twice", name.name),
                                *span,
                                "second declaration",
                            ));
                        } else {
                            self.formats.push((name.name.clone(), f));
                        }
                    }
                },
                Item::Fn(f) => {
                    if builtins::is_builtin(&f.name.name) {
                        self.err(
                            Diagnostic::error(
                                format!("`{}` is a built-in operation", f.name.name),
                                f.name.span,
                                "cannot be redefined",
                            )
                            .with_hint("choose another name for the function"),
                        );
                    } else if let Some(prev) = self.fns.get(&f.name.name) {
                        let d = Diagnostic::error(
                            format!("function `{}` is defined twice", f.name.name),
                            f.name.span,
                            "second definition",
                        )
                        .with_label(prev.name.span, "first definition");
                        self.err(d);
                    } else {
                        self.fns.insert(f.name.name.clone(), f.clone());
                    }
                }
                Item::Model(m) if *fid == main => models.push(m),
                Item::Model(m) => {
                    self.err(Diagnostic::error(
                        "a stdlib module cannot declare a model",
                        m.name.span,
                        "here",
                    ));
                }
            }
        }
        let model = match models.as_slice() {
            [m] => *m,
            [] => {
                let span = Span::new(main, 0, 0);
                self.err(
                    Diagnostic::error(
                        "no model in this file",
                        span,
                        "expected `model NAME(S) { ... }`",
                    )
                    .with_hint("a model file declares exactly one `model`"),
                );
                return None;
            }
            [first, rest @ ..] => {
                for m in rest {
                    let d =
                        Diagnostic::error("a file declares one model", m.name.span, "second model")
                            .with_label(first.name.span, "first model");
                    self.err(d);
                }
                return None;
            }
        };
        self.g.name = model.name.name.clone();
        // The config.
        let config_name = match (&self.opts.config, configs.first()) {
            (Some(want), _) => match configs.iter().find(|(n, _)| &n.name == want) {
                Some((_, entries)) => {
                    self.bind_config(entries);
                    want.clone()
                }
                None => {
                    let avail: Vec<&str> = configs.iter().map(|(n, _)| n.name.as_str()).collect();
                    let mut d = Diagnostic::error(
                        format!("unknown config `{want}`"),
                        model.name.span,
                        format!("model `{}` has no such config", model.name.name),
                    );
                    d = if avail.is_empty() {
                        d.with_hint("this file declares no config")
                    } else {
                        d.with_hint(format!("available configs: {}", avail.join(", ")))
                    };
                    self.err(d);
                    return None;
                }
            },
            (None, Some((name, entries))) => {
                self.bind_config(entries);
                name.name.clone()
            }
            (None, None) => String::new(),
        };
        let mut config_name = config_name;
        for (k, v) in &self.opts.values {
            if self.globals.contains_key(k) {
                config_name = self
                    .opts
                    .values_source
                    .clone()
                    .unwrap_or_else(|| "config.json".into());
                let v = match v {
                    ConfigValue::Int(i) => Val::Int(*i),
                    ConfigValue::Float(f) => Val::Float(*f),
                    ConfigValue::Bool(b) => Val::Bool(*b),
                    ConfigValue::Str(s) => Val::Str(s.clone()),
                };
                self.globals.insert(k.clone(), v);
            }
        }
        if let Some(k) = self.opts.layers {
            match self.globals.get("layers").cloned() {
                Some(Val::Int(l)) if k > l || k < 1 => {
                    self.err(
                        Diagnostic::error(
                            format!("--layers {k}: the model has {l} layers"),
                            model.name.span,
                            format!("config `{config_name}`"),
                        )
                        .with_hint(format!("keep between 1 and {l} layers")),
                    );
                }
                Some(Val::Int(_)) => {}
                _ => {
                    self.err(Diagnostic::error(
                        format!("--layers {k}: the config has no `layers` to cut"),
                        model.name.span,
                        format!("config `{config_name}`"),
                    ));
                }
            }
        }
        // Size parameters.
        for (pi, p) in model.params.iter().enumerate() {
            let max_pos = match self.globals.get("max_pos") {
                Some(Val::Int(m)) if pi == 0 => Some(*m),
                _ => None,
            };
            // the token count defaults to the model's maximum (`max_pos`)
            let mut given = self.opts.sizes.get(&p.name.name).copied().or(if pi == 0 {
                self.opts.seq.or(max_pos).or(self.opts.seq_default)
            } else {
                None
            });
            if let (None, Some(d)) = (given, &p.default) {
                match self.expr(d) {
                    Val::Int(v) => given = Some(v),
                    Val::Poison => continue,
                    other => {
                        self.err(Diagnostic::error(
                            format!("a size's default must be an integer, not {}", other.kind()),
                            d.span,
                            "here",
                        ));
                        continue;
                    }
                }
            }
            let p = &p.name;
            match given.as_ref() {
                Some(&v) if max_pos.is_some_and(|m| v > m) => {
                    let m = max_pos.unwrap_or_default();
                    self.err(
                        Diagnostic::error(
                            format!("this model takes at most {m} tokens, not {v}"),
                            p.span,
                            format!("`{}` is at most the config's `max_pos`", p.name),
                        )
                        .with_hint(format!("shorten the input to {m} tokens or fewer")),
                    );
                }
                Some(&v) if v > 0 => {
                    self.globals.insert(p.name.clone(), Val::Int(v));
                }
                Some(&v) => {
                    self.err(Diagnostic::error(
                        format!("size `{}` must be positive, got {v}", p.name),
                        p.span,
                        "model parameter",
                    ));
                }
                None => {
                    self.err(
                        Diagnostic::error(
                            format!("no value for the model's size parameter `{}`", p.name),
                            p.span,
                            "needs a value at compile time",
                        )
                        .with_hint(format!(
                            "pass `--size {}=N` (or `--seq N` for the first parameter)",
                            p.name
                        )),
                    );
                }
            }
        }
        for name in self.opts.sizes.keys() {
            if !model.params.iter().any(|p| &p.name.name == name) {
                let names: Vec<&str> = model.params.iter().map(|p| p.name.name.as_str()).collect();
                self.err(
                    Diagnostic::error(
                        format!("`--size {name}=…`: the model has no size parameter `{name}`"),
                        model.name.span,
                        format!("model `{}`", model.name.name),
                    )
                    .with_hint(format!("its size parameters are: {}", names.join(", "))),
                );
            }
        }
        if self.diags.iter().any(|d| d.is_error()) {
            return None;
        }
        // The outermost region: `format default` if declared, else (64, 18).
        let default = self
            .formats
            .iter()
            .find(|(n, _)| n == "default")
            .map(|x| x.1);
        self.regions.push(Region {
            class: default.map(|_| "default".to_string()),
            format: default.unwrap_or(Format::HIGH),
        });
        self.scopes.push(HashMap::new());
        let pushed = self.apply_fn_attrs(&model.attrs);
        self.block_stmts(&model.body);
        if let Some(t) = &model.body.tail {
            let v = self.expr(t);
            if !matches!(v, Val::Poison | Val::Tuple(_)) {
                self.diags.push(
                    Diagnostic::warning(
                        "the model's final expression is unused",
                        t.span,
                        "its value is discarded",
                    )
                    .with_hint("results leave a model through `output NAME = ...;`"),
                );
            }
        }
        if pushed {
            self.regions.pop();
        }
        if self.outputs.is_empty() && !self.diags.iter().any(|d| d.is_error()) {
            self.err(
                Diagnostic::error(
                    "the model has no output",
                    model.name.span,
                    "declares nothing to reveal",
                )
                .with_hint("add `output NAME = EXPR;`"),
            );
        }
        // Unused declarations are legitimate (e.g. layers cut by --layers):
        // they are pruned silently.
        self.g.prune_dead();
        Some(Elaborated {
            graph: std::mem::take(&mut self.g),
            model: model.name.name.clone(),
            config: config_name,
            formats: self.formats.clone(),
            warnings: vec![],
        })
    }

    fn bind_config(&mut self, entries: &[(Ident, Expr)]) {
        for (k, v) in entries {
            let val = self.expr(v);
            match val {
                Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::Str(_) => {
                    self.globals.insert(k.name.clone(), val);
                }
                Val::Poison => {}
                other => {
                    self.err(Diagnostic::error(
                        format!(
                            "config values are numbers, booleans or strings, not {}",
                            other.kind()
                        ),
                        v.span,
                        "here",
                    ));
                }
            }
        }
    }
}

/// Whether a function is marked `@approx`: an MPC approximation that a
/// policy may name as a lowering, whose nodes carry the `approx` mark.
pub fn is_approx(def: &FnDef) -> bool {
    def.attrs.iter().any(|a| a.name.name == "approx")
}

/// An invalid `(k, f)` written in source, pointing at the wrong number.
fn format_error(message: String, ring: (i64, Span), frac: (i64, Span)) -> Diagnostic {
    let at = if Format::new(ring.0, 0).is_err() {
        ring.1
    } else {
        frac.1
    };
    Diagnostic::error(format!("invalid format: {message}"), at, "here")
}
