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
                config_name = "config.json".into();
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
            let given = self.opts.sizes.get(&p.name).copied().or(if pi == 0 {
                self.opts.seq.or(max_pos).or(self.opts.seq_default)
            } else {
                None
            });
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
            if !model.params.iter().any(|p| &p.name == name) {
                let names: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
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

    /// Pushes the region of a `@precision(...)` attribute; reports others.
    fn apply_fn_attrs(&mut self, attrs: &[Attr]) -> bool {
        let mut pushed = false;
        for a in attrs {
            if a.name.name == "approx" && a.args.is_empty() {
                continue; // see `is_approx`
            }
            if a.name.name == "precision" && a.args.len() == 1 && !pushed {
                let fr = match &a.args[0].kind {
                    ExprKind::Var(n) => Some(FormatRef::Class(Ident {
                        name: n.clone(),
                        span: a.args[0].span,
                    })),
                    _ => None,
                };
                match fr.and_then(|fr| self.resolve_format(&fr)) {
                    Some(r) => {
                        self.regions.push(r);
                        pushed = true;
                    }
                    None => {
                        self.err(Diagnostic::error(
                            "`@precision` takes one declared format class",
                            a.span,
                            "expected e.g. `@precision(linear)`",
                        ));
                    }
                }
            } else {
                self.err(
                    Diagnostic::error(
                        format!("unknown function attribute `@{}`", a.name.name),
                        a.name.span,
                        "here",
                    )
                    .with_hint(
                        "functions and models accept `@precision(CLASS)`; functions `@approx`",
                    ),
                );
            }
        }
        pushed
    }

    fn resolve_format(&mut self, fr: &FormatRef) -> Option<Region> {
        match fr {
            FormatRef::Class(id) => match self.formats.iter().find(|(n, _)| *n == id.name) {
                Some((n, f)) => Some(Region {
                    class: Some(n.clone()),
                    format: *f,
                }),
                None => {
                    let names: Vec<&str> = self.formats.iter().map(|(n, _)| n.as_str()).collect();
                    let mut d = Diagnostic::error(
                        format!("unknown format class `{}`", id.name),
                        id.span,
                        "not declared",
                    );
                    d = match closest(&id.name, names.iter().copied()) {
                        Some(c) => d.with_hint(format!("did you mean `{c}`?")),
                        None => d.with_hint(format!(
                            "declare it with `format {} = (32, 8);` or write a literal `(k, f)`",
                            id.name
                        )),
                    };
                    self.err(d);
                    None
                }
            },
            FormatRef::Literal { ring, frac, .. } => match Format::new(ring.0, frac.0) {
                Ok(f) => Some(Region {
                    class: None,
                    format: f,
                }),
                Err(m) => {
                    self.err(format_error(m, *ring, *frac));
                    None
                }
            },
        }
    }

    pub(crate) fn region_format(&self) -> Format {
        self.regions
            .last()
            .map(|r| r.format)
            .unwrap_or(Format::HIGH)
    }

    pub(crate) fn loc(&self, span: Span) -> Loc {
        let (line, col) = self.sources.line_col(span.file, span.start);
        Loc {
            file: span.file,
            line,
            col,
            len: span.end.saturating_sub(span.start),
        }
    }

    /// Adds a node whose type follows from its operands (via the type rule),
    /// in the current region's format; a rule violation becomes a diagnostic.
    pub(crate) fn op(&mut self, op: Op, args: &[NodeId], span: Span) -> Val {
        self.op_fmt(op, args, span, self.region_format())
    }

    pub(crate) fn op_fmt(&mut self, op: Op, args: &[NodeId], span: Span, format: Format) -> Val {
        // Data movement keeps its operand's format (see `ir::formats`).
        let format = crate::ir::formats::inherited(&self.g, &op, args).unwrap_or(format);
        let types: Vec<&Type> = args.iter().map(|&a| &self.g.node(a).ty).collect();
        match infer(&op, &types) {
            Ok(Some(inf)) => {
                let ty = with_elem(inf, Elem::Fixed(format));
                Val::Tensor(self.add_node(op, ty, args, span))
            }
            Ok(None) => unreachable!("leaf ops are built with add_node"),
            Err(m) => self.err(Diagnostic::error(
                m,
                span,
                format!("in this `{}`", op_label(&op)),
            )),
        }
    }

    pub(crate) fn add_node(&mut self, op: Op, ty: Type, args: &[NodeId], span: Span) -> NodeId {
        let numel = ty
            .shape
            .iter()
            .try_fold(1u128, |m, &d| m.checked_mul(d as u128));
        if numel.is_none_or(|n| n > MAX_ELEMENTS) {
            let shape: Vec<String> = ty.shape.iter().map(|d| d.to_string()).collect();
            self.err(
                Diagnostic::error(
                    format!(
                        "a tensor of shape [{}] has {} elements (limit 2^32)",
                        shape.join(", "),
                        numel
                            .map(|n| n.to_string())
                            .unwrap_or("more than 2^128".into())
                    ),
                    span,
                    "too large",
                )
                .with_hint("no machine could hold it; check the dimensions"),
            );
            self.exhausted = true;
        }
        if self.g.len() == MAX_NODES {
            self.err(
                Diagnostic::error(
                    format!("the model elaborates to more than {MAX_NODES} nodes"),
                    span,
                    "while elaborating this",
                )
                .with_hint("loops and inlined calls multiply; a transformer needs a few thousand"),
            );
            self.exhausted = true;
        }
        let mut n = Node::new(op, ty);
        n.loc = Some(self.loc(span));
        n.class = self.regions.last().and_then(|r| r.class.clone());
        n.approx = self.approx > 0;
        self.g.add(n, args)
    }

    /// A public scalar node; a non-finite value is reported (and replaced by 0
    /// so elaboration can go on).
    pub(crate) fn constant(&mut self, mut value: f64, span: Span) -> NodeId {
        if !value.is_finite() {
            self.err(Diagnostic::error(
                format!("the constant {value} is not a finite number"),
                span,
                "computed here",
            ));
            value = 0.0;
        }
        let ty = Type::fixed(Vis::Public, self.region_format(), vec![]);
        self.add_node(Op::Const { value }, ty, &[], span)
    }

    fn lookup(&self, name: &str) -> Option<&Val> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name))
            .or_else(|| self.globals.get(name))
    }

    fn bind(&mut self, name: &str, v: Val) {
        if let Val::Tensor(id) = v {
            let n = self.g.node_mut(id);
            if n.name.is_none() && !matches!(n.op, Op::Const { .. }) {
                n.name = Some(name.to_string());
            }
        }
        self.scopes
            .last_mut()
            .expect("a scope is open")
            .insert(name.to_string(), v);
    }

    fn unknown_name(&mut self, name: &str, span: Span) -> Val {
        let mut cands: Vec<&str> = self
            .scopes
            .iter()
            .flat_map(|s| s.keys())
            .map(|s| s.as_str())
            .collect();
        cands.extend(self.globals.keys().map(|s| s.as_str()));
        let mut d = Diagnostic::error(
            format!("unknown name `{name}`"),
            span,
            "not found in this scope",
        );
        if let Some(c) = closest(name, cands.into_iter()) {
            d = d.with_hint(format!("did you mean `{c}`?"));
        } else if self.fns.contains_key(name) || builtins::is_builtin(name) {
            d = d.with_hint(format!(
                "`{name}` is a function: call it with `{name}(...)`"
            ));
        }
        self.err(d)
    }

    // ----- statements -----

    fn block_stmts(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    /// A block in its own scope; returns its tail value (or the empty tuple).
    fn scoped_block(&mut self, b: &Block) -> Val {
        self.scopes.push(HashMap::new());
        self.block_stmts(b);
        let v = match &b.tail {
            Some(t) => self.expr(t),
            None => Val::Tuple(vec![]),
        };
        self.scopes.pop();
        v
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Let {
                attrs,
                pat,
                ty,
                value,
                span,
            } => {
                let mut v = self.expr(value);
                if let Some(t) = ty {
                    v = self.check_declared(v, t, value.span);
                }
                self.apply_value_attrs(attrs, &v);
                match pat {
                    Pattern::Name(n) => self.bind(&n.name, v),
                    Pattern::Tuple(names, pspan) => match v {
                        Val::Tuple(items) if items.len() == names.len() => {
                            for (n, it) in names.iter().zip(items) {
                                self.bind(&n.name, it);
                            }
                        }
                        Val::Poison => {
                            for n in names {
                                self.bind(&n.name, Val::Poison);
                            }
                        }
                        other => {
                            let got = match &other {
                                Val::Tuple(i) => format!("a tuple of {}", i.len()),
                                o => o.kind().to_string(),
                            };
                            self.err(
                                Diagnostic::error(
                                    format!("cannot unpack {got} into {} names", names.len()),
                                    *pspan,
                                    "pattern",
                                )
                                .with_label(value.span, "value"),
                            );
                            for n in names {
                                self.bind(&n.name, Val::Poison);
                            }
                        }
                    },
                }
                let _ = span;
            }
            Stmt::Assign { name, value, .. } => {
                let v = self.expr(value);
                match self
                    .scopes
                    .iter_mut()
                    .rev()
                    .find(|s| s.contains_key(&name.name))
                {
                    Some(scope) => {
                        scope.insert(name.name.clone(), v);
                    }
                    None => {
                        let d = if self.globals.contains_key(&name.name) {
                            Diagnostic::error(
                                format!(
                                    "`{}` is a config value or size and cannot be assigned",
                                    name.name
                                ),
                                name.span,
                                "read-only",
                            )
                        } else {
                            Diagnostic::error(
                                format!("assignment to undeclared `{}`", name.name),
                                name.span,
                                "not declared",
                            )
                            .with_hint(format!("declare it first with `let {} = ...;`", name.name))
                        };
                        self.err(d);
                    }
                }
            }
            Stmt::Input {
                attrs,
                name,
                ty,
                owner,
                span,
            } => {
                let v = self.input(name, ty, owner, *span);
                self.apply_value_attrs(attrs, &v);
                self.bind(&name.name, v);
            }
            Stmt::Weight {
                attrs,
                name,
                ty,
                key,
                span,
            } => {
                let v = self.weight(ty, key, *span);
                self.apply_value_attrs(attrs, &v);
                self.bind(&name.name, v);
            }
            Stmt::Output { name, value, span } => {
                let v = match value {
                    Some(e) => self.expr(e),
                    None => match self.lookup(&name.name).cloned() {
                        Some(v) => v,
                        None => self.unknown_name(&name.name, name.span),
                    },
                };
                if let Some(prev) = self.outputs.get(&name.name) {
                    let d = Diagnostic::error(
                        format!("output `{}` is declared twice", name.name),
                        name.span,
                        "second output",
                    )
                    .with_label(*prev, "first output");
                    self.err(d);
                    return;
                }
                self.outputs.insert(name.name.clone(), name.span);
                match v {
                    Val::Tensor(id) => {
                        let ty = self.g.node(id).ty.clone();
                        let o = self.add_node(
                            Op::Output {
                                name: name.name.clone(),
                            },
                            ty,
                            &[id],
                            *span,
                        );
                        self.g.node_mut(o).class = self.g.node(id).class.clone();
                    }
                    Val::Poison => {}
                    other => {
                        self.err(Diagnostic::error(
                            format!("an output must be a tensor, not {}", other.kind()),
                            value.as_ref().map(|e| e.span).unwrap_or(name.span),
                            "here",
                        ));
                    }
                }
            }
            Stmt::For {
                var,
                lo,
                hi,
                body,
                span,
            } => {
                let (lo_v, hi_v) = (self.expr(lo), self.expr(hi));
                let (Val::Int(a), Val::Int(mut b)) = (lo_v.clone(), hi_v.clone()) else {
                    for (v, e) in [(lo_v, lo), (hi_v, hi)] {
                        if !matches!(v, Val::Int(_) | Val::Poison) {
                            self.err(
                                Diagnostic::error(
                                    format!(
                                        "loop bounds must be compile-time integers, not {}",
                                        v.kind()
                                    ),
                                    e.span,
                                    "here",
                                )
                                .with_hint(
                                    "`for` loops are unrolled at compile time (layers, heads)",
                                ),
                            );
                        }
                    }
                    return;
                };
                if let (Some(k), ExprKind::Var(n)) = (self.opts.layers, &hi.kind) {
                    if n == "layers" {
                        b = b.min(a + k.max(0));
                    }
                }
                if b - a > MAX_UNROLL - self.unrolled {
                    let d = if self.unrolled == 0 {
                        Diagnostic::error(
                            format!(
                                "this loop would unroll {} times (limit {MAX_UNROLL})",
                                b - a
                            ),
                            *span,
                            "too long",
                        )
                    } else {
                        Diagnostic::error(
                            format!(
                                "loops would unroll more than {MAX_UNROLL} iterations in all \
                                 ({} so far, {} more here)",
                                self.unrolled,
                                b - a
                            ),
                            *span,
                            "this loop exceeds the budget",
                        )
                        .with_hint("nested loops multiply: every iteration of the outer loop unrolls the inner one")
                    };
                    self.err(d);
                    self.exhausted = true;
                    return;
                }
                self.unrolled += (b - a).max(0);
                for i in a..b {
                    if self.exhausted {
                        break;
                    }
                    self.scopes
                        .push(HashMap::from([(var.name.clone(), Val::Int(i))]));
                    self.block_stmts(body);
                    if let Some(t) = &body.tail {
                        self.expr(t);
                    }
                    self.scopes.pop();
                    if self.diags.iter().filter(|d| d.is_error()).count() > 50 {
                        break;
                    }
                }
            }
            Stmt::If {
                cond, then, els, ..
            } => {
                match self.expr(cond) {
                    Val::Bool(c) => {
                        if c {
                            self.scoped_block(then);
                        } else if let Some(e) = els {
                            self.scoped_block(e);
                        }
                    }
                    Val::Poison => {}
                    Val::Tensor(_) => {
                        self.err(
                        Diagnostic::error("`if` needs a compile-time condition, not a tensor", cond.span, "data-dependent")
                            .with_hint("choose between tensors element by element with `select(cond, a, b)`"),
                    );
                    }
                    other => {
                        self.err(Diagnostic::error(
                            format!("`if` needs a boolean, not {}", other.kind()),
                            cond.span,
                            "here",
                        ));
                    }
                }
            }
            Stmt::Precision { format, body, .. } => {
                // An unknown format is reported once; the body is still
                // elaborated (in the enclosing format) so that its names exist.
                let pushed = match self.resolve_format(format) {
                    Some(r) => {
                        self.regions.push(r);
                        true
                    }
                    None => false,
                };
                self.block_stmts(body);
                if let Some(t) = &body.tail {
                    self.expr(t);
                }
                if pushed {
                    self.regions.pop();
                }
            }
            Stmt::Expr(e) => {
                self.expr(e);
            }
        }
    }

    fn apply_value_attrs(&mut self, attrs: &[Attr], v: &Val) {
        for a in attrs {
            match a.name.name.as_str() {
                "bound" => {
                    let b = match a.args.as_slice() {
                        [e] => match self.expr(e) {
                            Val::Int(i) if i > 0 => Some(i as f64),
                            Val::Float(x) if x > 0.0 => Some(x),
                            _ => None,
                        },
                        _ => None,
                    };
                    match (b, v) {
                        (Some(b), Val::Tensor(id)) => self.g.node_mut(*id).bound = Some(b),
                        (None, _) => {
                            self.err(Diagnostic::error(
                                "`@bound` takes one positive number: the largest |value|",
                                a.span,
                                "expected e.g. `@bound(16)`",
                            ));
                        }
                        (_, Val::Poison) => {}
                        (_, other) => {
                            self.err(Diagnostic::error(
                                format!("`@bound` applies to tensors, not {}", other.kind()),
                                a.span,
                                "here",
                            ));
                        }
                    }
                }
                other => {
                    self.err(
                        Diagnostic::error(
                            format!("unknown attribute `@{other}`"),
                            a.name.span,
                            "here",
                        )
                        .with_hint("`let`, `input` and `weight` accept `@bound(B)`"),
                    );
                }
            }
        }
    }

    /// Resolves a type annotation: (vis or bool, optional explicit format, dims).
    fn type_expr(&mut self, t: &TypeExpr) -> Option<(Vis, Option<Elem>, Option<Vec<usize>>)> {
        let base = t.base.name.as_str();
        let (vis, rest) = if let Some(r) = base.strip_prefix('s') {
            (Vis::Secret, r)
        } else if let Some(r) = base.strip_prefix('p') {
            (Vis::Public, r)
        } else {
            self.err(bad_type(t));
            return None;
        };
        let elem = match (rest, t.frac) {
            ("", None) => None,
            ("bool", None) => Some(Elem::Bool),
            ("32" | "64", f) => {
                let bits: i64 = rest.parse().expect("matched digits");
                let frac = f.map(|f| f.0).unwrap_or(0);
                match Format::new(bits, frac) {
                    Ok(fm) => Some(Elem::Fixed(fm)),
                    Err(m) => {
                        self.err(Diagnostic::error(
                            format!("invalid format: {m}"),
                            t.span,
                            "in this type",
                        ));
                        return None;
                    }
                }
            }
            _ => {
                self.err(bad_type(t));
                return None;
            }
        };
        let dims = match &t.dims {
            None => None,
            Some(ds) => {
                let mut out = vec![];
                for d in ds {
                    match self.expr(d) {
                        Val::Int(i) if i > 0 => out.push(i as usize),
                        Val::Poison => return None,
                        Val::Int(i) => {
                            self.err(
                                Diagnostic::error(
                                    format!("a dimension must be at least 1, not {i}"),
                                    d.span,
                                    "here",
                                )
                                .with_hint("empty tensors are not supported"),
                            );
                            return None;
                        }
                        other => {
                            self.err(Diagnostic::error(
                                format!(
                                    "a dimension must be a positive integer, not {}",
                                    other.kind()
                                ),
                                d.span,
                                "here",
                            ));
                            return None;
                        }
                    }
                }
                Some(out)
            }
        };
        Some((vis, elem, dims))
    }

    /// Checks a value against a declared type (`let x: T = v`, typed
    /// parameters and return types).
    fn check_declared(&mut self, v: Val, t: &TypeExpr, vspan: Span) -> Val {
        let Some((vis, elem, dims)) = self.type_expr(t) else {
            return Val::Poison;
        };
        let id = match v {
            Val::Tensor(id) => id,
            Val::Poison => return Val::Poison,
            other => {
                return self.err(
                    Diagnostic::error(
                        format!(
                            "expected a tensor of type `{}`, found {}",
                            type_text(t),
                            other.kind()
                        ),
                        vspan,
                        "here",
                    )
                    .with_label(t.span, "declared here"),
                )
            }
        };
        let ty = self.g.node(id).ty.clone();
        if vis == Vis::Public && ty.vis == Vis::Secret {
            return self.err(
                Diagnostic::error(
                    "a secret value cannot be declared public",
                    vspan,
                    format!("this is {ty}"),
                )
                .with_label(t.span, "declared public here")
                .with_hint("declassifying needs an explicit reveal; declare it `s...`"),
            );
        }
        if let Some(d) = dims {
            if d != ty.shape {
                return self.err(
                    Diagnostic::error(
                        format!(
                            "shape mismatch: declared {}, found {}",
                            crate::ir::types::shape_str(&d),
                            crate::ir::types::shape_str(&ty.shape)
                        ),
                        vspan,
                        format!("this is {ty}"),
                    )
                    .with_label(t.span, "declared here"),
                );
            }
        }
        match (elem, ty.elem) {
            (Some(Elem::Bool), Elem::Fixed(_)) | (Some(Elem::Fixed(_)), Elem::Bool) => self.err(
                Diagnostic::error("boolean and number types do not mix", vspan, format!("this is {ty}"))
                    .with_label(t.span, "declared here"),
            ),
            (Some(Elem::Fixed(want)), Elem::Fixed(got)) if want != got => self.err(
                Diagnostic::error(format!("format mismatch: declared {want}, found {got}"), vspan, format!("this is {ty}"))
                    .with_label(t.span, "declared here")
                    .with_hint(format!(
                        "convert explicitly with `... as ({}, {})`, or compute it inside `precision ({}, {}) {{ ... }}`",
                        want.ring.bits(),
                        want.frac,
                        want.ring.bits(),
                        want.frac
                    )),
            ),
            _ => Val::Tensor(id),
        }
    }

    /// The declared type of an input or weight, and whether its format was
    /// written explicitly (then it is pinned: policies do not change it).
    fn leaf_type(&mut self, t: &TypeExpr, what: &str) -> Option<(Type, bool)> {
        let (vis, elem, dims) = self.type_expr(t)?;
        let Some(shape) = dims else {
            self.err(
                Diagnostic::error(format!("{what} type needs a shape"), t.span, "no `[...]`")
                    .with_hint(format!("write e.g. `{}[S, D]`", t.base.name)),
            );
            return None;
        };
        let elem = match elem {
            Some(Elem::Bool) => {
                self.err(Diagnostic::error(
                    format!("{what}s are numbers, not booleans"),
                    t.span,
                    "here",
                ));
                return None;
            }
            Some(e) => (e, true),
            None => (Elem::Fixed(self.region_format()), false),
        };
        Some((
            Type {
                vis,
                elem: elem.0,
                shape,
            },
            elem.1,
        ))
    }

    /// Adds a leaf; a pinned (explicitly formatted) leaf belongs to no class.
    fn add_leaf(&mut self, op: Op, ty: Type, pinned: bool, span: Span) -> NodeId {
        let id = self.add_node(op, ty, &[], span);
        if pinned {
            self.g.node_mut(id).class = None;
        }
        id
    }

    fn input(&mut self, name: &Ident, ty: &TypeExpr, owner: &Ident, span: Span) -> Val {
        let Some(owner_v) = Owner::parse(&owner.name) else {
            return self.err(
                Diagnostic::error(
                    format!("unknown input owner `{}`", owner.name),
                    owner.span,
                    "not an owner",
                )
                .with_hint("inputs come `from client` or `from model_owner`"),
            );
        };
        let Some((mut ty, pinned)) = self.leaf_type(ty, "an input") else {
            return Val::Poison;
        };
        if self.opts.secret_inputs.contains(&name.name) {
            ty.vis = Vis::Secret;
        }
        if let Some(prev) = self.inputs.get(&name.name) {
            let d = Diagnostic::error(
                format!("input `{}` is declared twice", name.name),
                name.span,
                "second declaration",
            )
            .with_label(*prev, "first declaration");
            return self.err(d);
        }
        self.inputs.insert(name.name.clone(), name.span);
        let op = Op::Input {
            name: name.name.clone(),
            owner: owner_v,
        };
        Val::Tensor(self.add_leaf(op, ty, pinned, span))
    }

    fn weight(&mut self, ty: &TypeExpr, key: &Expr, span: Span) -> Val {
        let key_v = self.expr(key);
        let key_s = match key_v {
            Val::Str(s) => s,
            Val::Poison => return Val::Poison,
            other => {
                return self.err(
                    Diagnostic::error(format!("a weight is bound by its tensor name, a string, not {}", other.kind()), key.span, "here")
                        .with_hint("write e.g. `weight w: s[D, D] = \"encoder.layer.{i}.attention.self.query.weight\";`"),
                )
            }
        };
        let Some((ty, pinned)) = self.leaf_type(ty, "a weight") else {
            return Val::Poison;
        };
        if let Some(&prev) = self.weights.get(&key_s) {
            // Tied weights (e.g. GPT-2's wte used as lm_head) share one node.
            let pt = self.g.node(prev).ty.clone();
            if pt != ty {
                return self.err(Diagnostic::error(
                    format!("weight \"{key_s}\" is declared again with type {ty}, first with {pt}"),
                    span,
                    "conflicting declaration",
                ));
            }
            return Val::Tensor(prev);
        }
        if let Some(info) = &self.opts.weights {
            match info.get(&key_s) {
                None => {
                    let mut d = Diagnostic::error(
                        format!("weight \"{key_s}\" is not in the weights file"),
                        key.span,
                        "no such tensor",
                    );
                    if let Some(c) = closest(&key_s, info.keys().map(|s| s.as_str())) {
                        d = d.with_hint(format!("did you mean \"{c}\"?"));
                    }
                    return self.err(d);
                }
                Some(ti) if !ti.is_float => {
                    return self.err(
                        Diagnostic::error(
                            format!("weight \"{key_s}\" is stored as {} in the file", ti.dtype),
                            key.span,
                            "not floating point",
                        )
                        .with_hint("weights must be F64, F32, F16 or BF16 tensors"),
                    )
                }
                Some(ti) if ti.shape != ty.shape => {
                    let mut d = Diagnostic::error(
                        format!(
                            "weight \"{key_s}\" has shape {} in the file, but is declared {}",
                            crate::ir::types::shape_str(&ti.shape),
                            crate::ir::types::shape_str(&ty.shape)
                        ),
                        span,
                        "shape differs from the file",
                    );
                    let mut rev = ti.shape.clone();
                    rev.reverse();
                    if rev == ty.shape {
                        d = d.with_hint("the file stores the transpose: declare the file's shape and use `transpose(w)`");
                    }
                    return self.err(d);
                }
                Some(_) => {}
            }
        }
        let id = self.add_leaf(
            Op::Weight {
                name: key_s.clone(),
                transposed: false,
            },
            ty,
            pinned,
            span,
        );
        self.weights.insert(key_s, id);
        Val::Tensor(id)
    }

    // ----- expressions -----

    pub(crate) fn expr(&mut self, e: &Expr) -> Val {
        match &e.kind {
            ExprKind::Int(i) => Val::Int(*i),
            ExprKind::Float(x) => Val::Float(*x),
            ExprKind::Bool(b) => Val::Bool(*b),
            ExprKind::Str(s) => self.interpolate(s, e.span),
            ExprKind::Var(n) => match self.lookup(n) {
                Some(v) => v.clone(),
                None => self.unknown_name(n, e.span),
            },
            ExprKind::Tuple(items) => Val::Tuple(items.iter().map(|i| self.expr(i)).collect()),
            ExprKind::List(items) => Val::List(items.iter().map(|i| self.expr(i)).collect()),
            ExprKind::Unary(op, x) => {
                let v = self.expr(x);
                self.unary(*op, v, e.span)
            }
            ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.expr(a), self.expr(b));
                self.binary(*op, va, vb, e.span, a.span, b.span)
            }
            ExprKind::As(x, fr) => {
                let v = self.expr(x);
                let Some(r) = self.resolve_format(fr) else {
                    return Val::Poison;
                };
                match v {
                    Val::Tensor(id) => {
                        if self.g.node(id).ty.is_bool() {
                            return self.err(Diagnostic::error(
                                "a boolean has no number format",
                                x.span,
                                "boolean",
                            ));
                        }
                        let saved = std::mem::replace(&mut self.regions, vec![r]);
                        let out = self.op(Op::Convert, &[id], e.span);
                        self.regions = saved;
                        out
                    }
                    Val::Poison => Val::Poison,
                    other => self.err(Diagnostic::error(
                        format!("`as` converts tensors, not {}", other.kind()),
                        x.span,
                        "here",
                    )),
                }
            }
            ExprKind::Call(f, args) => self.call(f, args, e.span),
        }
    }

    fn interpolate(&mut self, s: &str, span: Span) -> Val {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find('}') else {
                return self.err(
                    Diagnostic::error("unclosed `{` in string", span, "here")
                        .with_hint("interpolate with `{name}`"),
                );
            };
            let name = &rest[i + 1..i + j];
            match self.lookup(name).cloned() {
                Some(Val::Int(v)) => out.push_str(&v.to_string()),
                Some(Val::Str(v)) => out.push_str(&v),
                Some(Val::Poison) => return Val::Poison,
                Some(other) => {
                    return self.err(Diagnostic::error(
                        format!(
                            "cannot interpolate {} (`{name}`) into a string",
                            other.kind()
                        ),
                        span,
                        "here",
                    ))
                }
                None => {
                    return self.err(
                        Diagnostic::error(
                            format!("unknown name `{name}` in string interpolation"),
                            span,
                            "in this string",
                        )
                        .with_hint("`{name}` inserts an integer or string variable"),
                    )
                }
            }
            rest = &rest[i + j + 1..];
        }
        out.push_str(rest);
        Val::Str(out)
    }

    fn unary(&mut self, op: UnOp, v: Val, span: Span) -> Val {
        match (op, v) {
            (_, Val::Poison) => Val::Poison,
            (UnOp::Neg, Val::Int(i)) => Val::Int(-i),
            (UnOp::Neg, Val::Float(x)) => Val::Float(-x),
            (UnOp::Not, Val::Bool(b)) => Val::Bool(!b),
            (UnOp::Neg, Val::Tensor(id)) => self.op(Op::Neg, &[id], span),
            (UnOp::Not, Val::Tensor(id)) => self.op(Op::Not, &[id], span),
            (op, other) => self.err(Diagnostic::error(
                format!(
                    "cannot apply `{}` to {}",
                    if op == UnOp::Neg { "-" } else { "!" },
                    other.kind()
                ),
                span,
                "here",
            )),
        }
    }

    fn binary(&mut self, op: BinOp, a: Val, b: Val, span: Span, sa: Span, sb: Span) -> Val {
        use Val::*;
        match (a, b) {
            (Poison, _) | (_, Poison) => Poison,
            (Int(x), Int(y)) => match op {
                BinOp::Add => Int(x.wrapping_add(y)),
                BinOp::Sub => Int(x.wrapping_sub(y)),
                BinOp::Mul => Int(x.wrapping_mul(y)),
                BinOp::Div | BinOp::Rem if y == 0 => {
                    self.err(Diagnostic::error("division by zero", sb, "this is 0"))
                }
                BinOp::Div if x % y == 0 => Int(x / y),
                BinOp::Div => Float(x as f64 / y as f64),
                BinOp::Rem => Int(x.rem_euclid(y)),
                BinOp::MatMul => self.err(Diagnostic::error(
                    "`@` multiplies tensors, not integers",
                    span,
                    "here",
                )),
                cmp => Bool(compare(cmp, x as f64, y as f64)),
            },
            (x @ (Int(_) | Float(_)), y @ (Int(_) | Float(_))) => {
                let (x, y) = (num(&x), num(&y));
                match op {
                    BinOp::Add => Float(x + y),
                    BinOp::Sub => Float(x - y),
                    BinOp::Mul => Float(x * y),
                    BinOp::Div if y == 0.0 => {
                        self.err(Diagnostic::error("division by zero", sb, "this is 0"))
                    }
                    BinOp::Div => Float(x / y),
                    BinOp::Rem | BinOp::MatMul => self.err(Diagnostic::error(
                        format!("`{}` is not defined on numbers", op.symbol()),
                        span,
                        "here",
                    )),
                    cmp => Bool(compare(cmp, x, y)),
                }
            }
            (Bool(x), Bool(y)) if matches!(op, BinOp::Eq | BinOp::Ne) => {
                Bool((x == y) == (op == BinOp::Eq))
            }
            (Str(x), Str(y)) if matches!(op, BinOp::Eq | BinOp::Ne) => {
                Bool((x == y) == (op == BinOp::Eq))
            }
            (Str(x), Str(y)) if op == BinOp::Add => Str(x + &y),
            (Tensor(x), Tensor(y)) => self.tensor_binary(op, x, y, span, sa, sb),
            (Tensor(x), s @ (Int(_) | Float(_))) => {
                let mut c = num(&s);
                let op = match op {
                    BinOp::Div => {
                        if c == 0.0 {
                            return self.err(Diagnostic::error(
                                "division by zero",
                                sb,
                                "this is 0",
                            ));
                        }
                        c = 1.0 / c;
                        BinOp::Mul
                    }
                    o => o,
                };
                let k = self.constant(c, sb);
                self.tensor_binary(op, x, k, span, sa, sb)
            }
            (s @ (Int(_) | Float(_)), Tensor(y)) => {
                if op == BinOp::Div {
                    return self.err(
                        Diagnostic::error("division by a tensor", sb, "divisor is a tensor")
                            .with_hint(
                                "write `c * recip(x)`: reciprocal is an approximation under MPC",
                            ),
                    );
                }
                let k = self.constant(num(&s), sa);
                self.tensor_binary(op, k, y, span, sa, sb)
            }
            (x, y) => self.err(Diagnostic::error(
                format!(
                    "`{}` is not defined between {} and {}",
                    op.symbol(),
                    x.kind(),
                    y.kind()
                ),
                span,
                "here",
            )),
        }
    }

    fn tensor_binary(
        &mut self,
        op: BinOp,
        x: NodeId,
        y: NodeId,
        span: Span,
        sa: Span,
        sb: Span,
    ) -> Val {
        let irop = match op {
            BinOp::Add => Op::Add,
            BinOp::Sub => Op::Sub,
            BinOp::Mul => Op::Mul,
            BinOp::MatMul => return self.op(Op::MatMul, &[x, y], span),
            BinOp::Lt => Op::Lt,
            BinOp::Gt => Op::Gt,
            BinOp::Le => Op::Le,
            BinOp::Ge => Op::Ge,
            BinOp::Eq => Op::Eq,
            BinOp::Ne => Op::Ne,
            BinOp::Div => {
                return self.err(
                    Diagnostic::error("division by a tensor", sb, "divisor is a tensor").with_hint(
                        "write `x * recip(y)`: reciprocal is an approximation under MPC",
                    ),
                )
            }
            BinOp::Rem => {
                return self.err(Diagnostic::error(
                    "`%` is not defined on tensors",
                    span,
                    "here",
                ))
            }
        };
        let (sx, sy) = (
            self.g.node(x).ty.shape.clone(),
            self.g.node(y).ty.shape.clone(),
        );
        if sx == sy || sx.is_empty() || sy.is_empty() {
            return self.op(irop, &[x, y], span);
        }
        let Some(to) = broadcast_shapes(&sx, &sy) else {
            return self.err(
                Diagnostic::error(
                    format!(
                        "shapes {} and {} do not broadcast",
                        crate::ir::types::shape_str(&sx),
                        crate::ir::types::shape_str(&sy)
                    ),
                    span,
                    format!("in this `{}`", op.symbol()),
                )
                .with_label(sa, crate::ir::types::shape_str(&sx))
                .with_label(sb, crate::ir::types::shape_str(&sy))
                .with_hint("trailing dimensions must be equal or 1 (NumPy broadcasting)"),
            );
        };
        let bx = self.broadcast_to(x, &to, sa);
        let by = self.broadcast_to(y, &to, sb);
        self.op(irop, &[bx, by], span)
    }

    pub(crate) fn broadcast_to(&mut self, x: NodeId, to: &[usize], span: Span) -> NodeId {
        let n = self.g.node(x);
        if n.ty.shape == to {
            return x;
        }
        let mut ty = n.ty.clone();
        ty.shape = to.to_vec();
        self.add_node(Op::Broadcast { shape: to.to_vec() }, ty, &[x], span)
    }

    fn call(&mut self, f: &Ident, args: &[Arg], span: Span) -> Val {
        if let Some(def) = self.fns.get(&f.name).cloned() {
            return self.call_user(&def, args, span);
        }
        if builtins::is_builtin(&f.name) {
            return builtins::call(self, f, args, span);
        }
        let mut cands: Vec<&str> = self.fns.keys().map(|s| s.as_str()).collect();
        for n in builtins::names() {
            cands.push(n);
        }
        let mut d = Diagnostic::error(
            format!("unknown function `{}`", f.name),
            f.span,
            "not defined",
        );
        if let Some(c) = closest(&f.name, cands.into_iter()) {
            d = d.with_hint(format!("did you mean `{c}`?"));
        } else {
            d = d.with_hint("stdlib functions need `use std.MODULE;` at the top of the file");
        }
        self.err(d)
    }

    fn call_user(&mut self, def: &FnDef, args: &[Arg], span: Span) -> Val {
        if self.exhausted {
            return Val::Poison;
        }
        if self.depth >= MAX_DEPTH {
            return self.err(
                Diagnostic::error(
                    format!("calls nest deeper than {MAX_DEPTH} levels"),
                    span,
                    "in this call",
                )
                .with_hint("functions are inlined; recursion cannot terminate"),
            );
        }
        // Bind arguments (positional, then named) to parameters.
        let mut bound: Vec<Option<(Val, Span)>> = vec![None; def.params.len()];
        let mut pos = 0;
        for a in args {
            match a {
                Arg::Pos(e) => {
                    let v = self.expr(e);
                    if pos >= def.params.len() {
                        return self.err(
                            Diagnostic::error(
                                format!(
                                    "`{}` takes {} argument(s), but more were given",
                                    def.name.name,
                                    def.params.len()
                                ),
                                e.span,
                                "extra argument",
                            )
                            .with_label(def.name.span, "defined here"),
                        );
                    }
                    bound[pos] = Some((v, e.span));
                    pos += 1;
                }
                Arg::Named(n, e) => {
                    let v = self.expr(e);
                    match def.params.iter().position(|p| p.name.name == n.name) {
                        Some(i) if bound[i].is_none() => bound[i] = Some((v, e.span)),
                        Some(_) => {
                            return self.err(Diagnostic::error(
                                format!("argument `{}` is given twice", n.name),
                                n.span,
                                "again",
                            ))
                        }
                        None => {
                            return self.err(
                                Diagnostic::error(
                                    format!("`{}` has no parameter `{}`", def.name.name, n.name),
                                    n.span,
                                    "unknown",
                                )
                                .with_label(def.name.span, "defined here"),
                            )
                        }
                    }
                }
            }
        }
        let missing: Vec<&str> = def
            .params
            .iter()
            .zip(&bound)
            .filter(|(_, b)| b.is_none())
            .map(|(p, _)| p.name.name.as_str())
            .collect();
        if !missing.is_empty() {
            return self.err(
                Diagnostic::error(
                    format!(
                        "`{}` takes {} argument(s), got {}; missing: {}",
                        def.name.name,
                        def.params.len(),
                        def.params.len() - missing.len(),
                        missing.join(", ")
                    ),
                    span,
                    "in this call",
                )
                .with_label(def.name.span, "defined here"),
            );
        }
        let mut scope = HashMap::new();
        for (p, b) in def.params.iter().zip(bound) {
            let (mut v, vspan) = b.expect("all bound (checked above)");
            if let Some(t) = &p.ty {
                v = self.check_declared(v, t, vspan);
            }
            scope.insert(p.name.name.clone(), v);
        }
        self.invoke(def, scope)
    }

    /// Runs a function body with its parameters bound in `scope`.
    fn invoke(&mut self, def: &FnDef, scope: HashMap<String, Val>) -> Val {
        let saved = std::mem::replace(&mut self.scopes, vec![scope]);
        self.depth += 1;
        let pushed = self.apply_fn_attrs(&def.attrs);
        let approx = is_approx(def);
        self.approx += usize::from(approx);
        self.block_stmts(&def.body);
        let mut v = match &def.body.tail {
            Some(t) => self.expr(t),
            None => Val::Tuple(vec![]),
        };
        if let Some(rt) = &def.ret {
            let tspan = def
                .body
                .tail
                .as_ref()
                .map(|t| t.span)
                .unwrap_or(def.body.span);
            v = self.check_declared(v, rt, tspan);
        }
        if pushed {
            self.regions.pop();
        }
        self.approx -= usize::from(approx);
        self.depth -= 1;
        self.scopes = saved;
        v
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

fn num(v: &Val) -> f64 {
    match v {
        Val::Int(i) => *i as f64,
        Val::Float(x) => *x,
        _ => f64::NAN,
    }
}

fn compare(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Lt => x < y,
        BinOp::Gt => x > y,
        BinOp::Le => x <= y,
        BinOp::Ge => x >= y,
        BinOp::Eq => x == y,
        _ => x != y,
    }
}

fn op_label(op: &Op) -> &'static str {
    match op {
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::MatMul => "@",
        other => other.name(),
    }
}

fn type_text(t: &TypeExpr) -> String {
    let mut s = t.base.name.clone();
    if let Some(f) = t.frac {
        s.push_str(&format!(".{}", f.0));
    }
    if t.dims.is_some() {
        s.push_str("[...]");
    }
    s
}

fn bad_type(t: &TypeExpr) -> Diagnostic {
    Diagnostic::error(format!("unknown type `{}`", type_text(t)), t.base.span, "not a type")
        .with_hint("types are s/p (secret/public) + ring and fraction bits, e.g. `s32.8[S, D]`, `p64.18[D]`, `s[S, D]` (format of the region), `sbool[S, S]`")
}

/// An argument of [`inline`].
#[derive(Debug, Clone)]
pub enum InlineArg {
    Node(NodeId),
    Int(i64),
    Float(f64),
}

/// Instantiates the stdlib function `module::func` on nodes of an existing
/// graph (the mechanism of `lower-nonlinear`): the function's nodes are
/// added to `g` in `format` and `class` (the region of the node being
/// replaced); `classes` gives the formats of the class names the function
/// uses in its own `precision` blocks (the policy's). Returns the node
/// holding the result.
pub fn inline(
    g: &mut Graph,
    module: &str,
    func: &str,
    args: &[InlineArg],
    format: Format,
    class: Option<String>,
    classes: &BTreeMap<String, Format>,
) -> Result<NodeId, Vec<Diagnostic>> {
    let (fname, text) = crate::stdlib::module(module).ok_or_else(|| {
        vec![Diagnostic::global(format!(
            "internal error: no stdlib module `{module}`"
        ))]
    })?;
    let fid = match g.files.iter().position(|f| f == fname) {
        Some(i) => i,
        None => {
            g.files.push(fname.to_string());
            g.files.len() - 1
        }
    };
    let mut sources = Sources::default();
    for (i, f) in g.files.iter().enumerate() {
        sources.add(f.clone(), if i == fid { text } else { "" });
    }
    let file = crate::syntax::parse(fid as u32, text)?;
    let opts = Options::default();
    let mut e = Elab::new(&sources, &opts);
    e.g = std::mem::take(g);
    for item in &file.items {
        if let Item::Fn(f) = item {
            e.fns.insert(f.name.name.clone(), f.clone());
        }
    }
    e.formats = classes.iter().map(|(c, f)| (c.clone(), *f)).collect();
    e.regions.push(Region { class, format });
    let result = match e.fns.get(func).cloned() {
        None => Err(vec![Diagnostic::global(format!(
            "internal error: `{module}` has no function `{func}`"
        ))]),
        Some(def) if def.params.len() != args.len() => Err(vec![Diagnostic::global(format!(
            "internal error: `{func}` takes {} arguments, not {}",
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
