//! Statements: scopes and bindings, `let`, loops, conditionals, `input`,
//! `weight` and `output` declarations, and value attributes (`@bound`).

use super::*;

impl<'s> Elab<'s> {
    pub(super) fn lookup(&self, name: &str) -> Option<&Val> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name))
            .or_else(|| self.globals.get(name))
    }

    pub(super) fn bind(&mut self, name: &str, v: Val) {
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

    pub(super) fn unknown_name(&mut self, name: &str, span: Span) -> Val {
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

    pub(super) fn block_stmts(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    /// A block in its own scope; returns its tail value (or the empty tuple).
    pub(super) fn scoped_block(&mut self, b: &Block) -> Val {
        self.scopes.push(HashMap::new());
        self.block_stmts(b);
        let v = match &b.tail {
            Some(t) => self.expr(t),
            None => Val::Tuple(vec![]),
        };
        self.scopes.pop();
        v
    }

    pub(super) fn stmt(&mut self, s: &Stmt) {
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
            Stmt::Output {
                name,
                value,
                to,
                span,
            } => {
                let kept = match to {
                    None => false,
                    Some(t) if t.name == "parties" => true,
                    Some(t) => {
                        self.err(
                            Diagnostic::error(
                                format!("an output cannot go to `{}`", t.name),
                                t.span,
                                "not a receiver",
                            )
                            .with_hint("outputs go to the client (no `to`), or `to parties` to keep them as the session's state"),
                        );
                        return;
                    }
                };
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
                        // what a run keeps, the next one reads: same type
                        let read = self.g.ids().into_iter().find(|&i| {
                            matches!(&self.g.node(i).op,
                                Op::Input { name: n, owner: crate::ir::Owner::Parties } if *n == name.name)
                        });
                        if let Some(i) = read.filter(|_| kept) {
                            let want = self.g.node(i).ty.clone();
                            if want != ty {
                                self.err(
                                    Diagnostic::error(
                                        format!(
                                            "`{}` is kept as {ty} but read `from parties` as {want}: the next run could not read it",
                                            name.name
                                        ),
                                        value.as_ref().map(|e| e.span).unwrap_or(name.span),
                                        "kept here",
                                    )
                                    .with_hint("compute it in the input's format (in the same `precision` block), or convert it with `as`"),
                                );
                                return;
                            }
                        }
                        let o = self.add_node(
                            Op::Output {
                                name: name.name.clone(),
                                kept,
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

    pub(super) fn apply_value_attrs(&mut self, attrs: &[Attr], v: &Val) {
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
}
