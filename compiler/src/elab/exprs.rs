//! Expressions: compile-time values, operators on tensors (with NumPy
//! broadcasting), calls of builtins and of user functions (inlined).

use super::*;

impl<'s> Elab<'s> {
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

    pub(super) fn interpolate(&mut self, s: &str, span: Span) -> Val {
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

    pub(super) fn unary(&mut self, op: UnOp, v: Val, span: Span) -> Val {
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

    pub(super) fn binary(
        &mut self,
        op: BinOp,
        a: Val,
        b: Val,
        span: Span,
        sa: Span,
        sb: Span,
    ) -> Val {
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

    pub(super) fn tensor_binary(
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

    pub(super) fn call(&mut self, f: &Ident, args: &[Arg], span: Span) -> Val {
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

    pub(super) fn call_user(&mut self, def: &FnDef, args: &[Arg], span: Span) -> Val {
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
    pub(super) fn invoke(&mut self, def: &FnDef, scope: HashMap<String, Val>) -> Val {
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

pub(super) fn num(v: &Val) -> f64 {
    match v {
        Val::Int(i) => *i as f64,
        Val::Float(x) => *x,
        _ => f64::NAN,
    }
}

pub(super) fn compare(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Lt => x < y,
        BinOp::Gt => x > y,
        BinOp::Le => x <= y,
        BinOp::Ge => x >= y,
        BinOp::Eq => x == y,
        _ => x != y,
    }
}

pub(super) fn op_label(op: &Op) -> &'static str {
    match op {
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::MatMul => "@",
        other => other.name(),
    }
}
