//! Declared types: type annotations, their check against values, and the
//! leaves (`input`, `weight`) they type.

use super::*;

impl<'s> Elab<'s> {
    /// Resolves a type annotation: (vis or bool, optional explicit format, dims).
    pub(super) fn type_expr(
        &mut self,
        t: &TypeExpr,
    ) -> Option<(Vis, Option<Elem>, Option<Vec<usize>>)> {
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
    pub(super) fn check_declared(&mut self, v: Val, t: &TypeExpr, vspan: Span) -> Val {
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
    pub(super) fn leaf_type(&mut self, t: &TypeExpr, what: &str) -> Option<(Type, bool)> {
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
    pub(super) fn add_leaf(&mut self, op: Op, ty: Type, pinned: bool, span: Span) -> NodeId {
        let id = self.add_node(op, ty, &[], span);
        if pinned {
            self.g.node_mut(id).class = None;
        }
        id
    }

    pub(super) fn input(&mut self, name: &Ident, ty: &TypeExpr, owner: &Ident, span: Span) -> Val {
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

    pub(super) fn weight(&mut self, ty: &TypeExpr, key: &Expr, span: Span) -> Val {
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
}

pub(super) fn type_text(t: &TypeExpr) -> String {
    let mut s = t.base.name.clone();
    if let Some(f) = t.frac {
        s.push_str(&format!(".{}", f.0));
    }
    if t.dims.is_some() {
        s.push_str("[...]");
    }
    s
}

pub(super) fn bad_type(t: &TypeExpr) -> Diagnostic {
    Diagnostic::error(format!("unknown type `{}`", type_text(t)), t.base.span, "not a type")
        .with_hint("types are s/p (secret/public) + ring and fraction bits, e.g. `s32.8[S, D]`, `p64.18[D]`, `s[S, D]` (format of the region), `sbool[S, S]`")
}
