//! Regions, formats and node construction: the `@precision`/`@approx`
//! attributes, format classes, and every node the elaborator adds.

use super::exprs::op_label;
use super::*;

impl<'s> Elab<'s> {
    /// Pushes the region of a `@precision(...)` attribute; reports others.
    pub(super) fn apply_fn_attrs(&mut self, attrs: &[Attr]) -> bool {
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

    pub(super) fn resolve_format(&mut self, fr: &FormatRef) -> Option<Region> {
        match fr {
            FormatRef::Class(id) => match self.formats.iter().find(|(n, _)| *n == id.name) {
                Some((n, f)) => Some(Region {
                    class: Some(n.clone()),
                    format: *f,
                }),
                None if self.class_default.is_some() => Some(Region {
                    class: Some(id.name.clone()),
                    format: self.class_default?,
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
}
