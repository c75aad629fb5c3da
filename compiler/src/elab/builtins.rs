//! Built-in operations of the DSL: their signatures (parameter names, how many
//! are required) and how each becomes IR nodes or a compile-time value.

use super::{closest, Elab, Val};
use crate::diag::Diagnostic;
use crate::ir::{Format, HighOp, NodeId, Op, Type, Vis};
use crate::syntax::ast::{Arg, Ident, Span};

/// Declares the DSL's builtins once: variant, name, parameters, how many are
/// required, one line for docs and errors. [`builtin`] matches on the enum,
/// so a declared builtin without an implementation does not compile.
macro_rules! builtins {
    ($( $var:ident = $name:literal [$($p:literal),*] $req:literal $doc:literal; )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Builtin { $($var),* }

        /// (builtin, name, parameters, required count, description).
        const SIGS: &[(Builtin, &str, &[&str], usize, &str)] = &[
            $( (Builtin::$var, $name, &[$($p),*], $req, $doc) ),*
        ];
    };
}

builtins! {
    Gelu = "gelu" ["x", "tanh"] 1 "GeLU (erf form; `tanh=true` for GPT-2's tanh form)";
    Softmax = "softmax" ["x", "mask"] 1 "softmax over the last axis; `mask` (boolean) keeps entries";
    Layernorm = "layernorm" ["x", "gamma", "beta", "eps"] 3 "LayerNorm over the last axis";
    Exp = "exp" ["x"] 1 "e^x";
    Recip = "recip" ["x"] 1 "1/x";
    Rsqrt = "rsqrt" ["x"] 1 "1/sqrt(x)";
    Tanh = "tanh" ["x"] 1 "tanh(x)";
    Silu = "silu" ["x"] 1 "SiLU x·σ(x) (Llama's FFN gate)";
    Rmsnorm = "rmsnorm" ["x", "gamma", "eps"] 2 "RMSNorm over the last axis (Llama)";
    Rotary = "rotary" ["part", "n", "d", "theta", "offset"] 4 "public RoPE table [n, d]: \"cos\" or \"sin\" of (offset + i)·θ^(−2(j mod d/2)/d)";
    Embed = "embed" ["ids", "table"] 2 "rows of `table` [V, D] picked by integer `ids` [S]";
    Transpose = "transpose" ["x", "perm"] 1 "permute axes (default: swap the last two)";
    Reshape = "reshape" ["x", "shape"] 2 "same elements, new shape";
    Slice = "slice" ["x", "axis", "start", "end"] 4 "elements start..end of one axis";
    Concat = "concat" ["xs", "axis"] 2 "join a list of tensors along an axis";
    Broadcast = "broadcast" ["x", "shape"] 2 "NumPy broadcasting to a shape";
    Expand = "expand" ["x", "axis"] 2 "insert an axis of size 1";
    Sum = "sum" ["x", "axis"] 2 "sum along an axis (kept with size 1)";
    Max = "max" ["x", "axis"] 2 "maximum along an axis (kept with size 1)";
    Mean = "mean" ["x", "axis"] 2 "mean along an axis (kept with size 1)";
    Select = "select" ["cond", "a", "b"] 3 "a where cond, else b";
    Iota = "iota" ["n"] 1 "public integers 0..n";
    Dim = "dim" ["x", "axis"] 2 "compile-time size of an axis";
    Rank = "rank" ["x"] 1 "compile-time number of axes";
    NormScale = "norm_scale" ["x", "kind"] 2 "power-of-two scale from x's highest set bit (\"recip\", \"rsqrt_in\", \"rsqrt_out\")";
    Sqrt = "sqrt" ["v"] 1 "compile-time square root of a number";
    Pow2Floor = "pow2_floor" ["v"] 1 "compile-time largest power of two not above a positive number";
}

/// Every builtin's name, from the signature table.
pub fn names() -> impl Iterator<Item = &'static str> {
    SIGS.iter().map(|s| s.1)
}

pub fn is_builtin(name: &str) -> bool {
    SIGS.iter().any(|s| s.1 == name)
}

/// Name, signature text and description of every builtin (for docs).
pub fn describe() -> Vec<(String, &'static str)> {
    SIGS.iter()
        .map(|(_, n, ps, req, d)| {
            let params: Vec<String> = ps
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if i < *req {
                        p.to_string()
                    } else {
                        format!("{p}?")
                    }
                })
                .collect();
            (format!("{n}({})", params.join(", ")), *d)
        })
        .collect()
}

struct Args {
    vals: Vec<Option<(Val, Span)>>,
    call: Span,
}

impl Args {
    fn get(&self, i: usize) -> Option<&(Val, Span)> {
        self.vals.get(i).and_then(|v| v.as_ref())
    }
}

pub(super) fn call(e: &mut Elab, f: &Ident, args: &[Arg], span: Span) -> Val {
    let Some(&(which, _, params, required, _)) = SIGS.iter().find(|s| s.1 == f.name) else {
        return e.err(Diagnostic::error(
            format!("`{}` is not a builtin (internal error)", f.name),
            f.span,
            "here",
        ));
    };
    let mut vals: Vec<Option<(Val, Span)>> = vec![None; params.len()];
    let mut pos = 0;
    for a in args {
        match a {
            Arg::Pos(x) => {
                let v = e.expr(x);
                if pos >= params.len() {
                    return e.err(
                        Diagnostic::error(
                            format!("`{}` takes at most {} argument(s)", f.name, params.len()),
                            x.span,
                            "extra argument",
                        )
                        .with_hint(format!(
                            "signature: {}({})",
                            f.name,
                            params.join(", ")
                        )),
                    );
                }
                vals[pos] = Some((v, x.span));
                pos += 1;
            }
            Arg::Named(n, x) => {
                let v = e.expr(x);
                match params.iter().position(|p| *p == n.name) {
                    Some(i) if vals[i].is_none() => vals[i] = Some((v, x.span)),
                    Some(_) => {
                        return e.err(Diagnostic::error(
                            format!("argument `{}` is given twice", n.name),
                            n.span,
                            "again",
                        ))
                    }
                    None => {
                        let mut d = Diagnostic::error(
                            format!("`{}` has no parameter `{}`", f.name, n.name),
                            n.span,
                            "unknown",
                        );
                        d = match closest(&n.name, params.iter().copied()) {
                            Some(c) => d.with_hint(format!("did you mean `{c}`?")),
                            None => {
                                d.with_hint(format!("signature: {}({})", f.name, params.join(", ")))
                            }
                        };
                        return e.err(d);
                    }
                }
            }
        }
    }
    let given = vals.iter().take(required).filter(|v| v.is_some()).count();
    if given < required {
        return e.err(
            Diagnostic::error(
                format!(
                    "`{}` takes {} required argument(s), got {given}",
                    f.name, required
                ),
                span,
                "in this call",
            )
            .with_hint(format!("signature: {}({})", f.name, params.join(", "))),
        );
    }
    if vals.iter().flatten().any(|(v, _)| matches!(v, Val::Poison)) {
        return Val::Poison;
    }
    let a = Args { vals, call: span };
    builtin(e, which, &a).unwrap_or(Val::Poison)
}

fn tensor(e: &mut Elab, a: &Args, i: usize, what: &str) -> Option<NodeId> {
    match a.get(i)? {
        (Val::Tensor(id), _) => Some(*id),
        (other, s) => {
            e.err(Diagnostic::error(
                format!("{what} must be a tensor, not {}", other.kind()),
                *s,
                "here",
            ));
            None
        }
    }
}

fn int(e: &mut Elab, a: &Args, i: usize, what: &str) -> Option<i64> {
    match a.get(i)? {
        (Val::Int(v), _) => Some(*v),
        (other, s) => {
            e.err(Diagnostic::error(
                format!(
                    "{what} must be a compile-time integer, not {}",
                    other.kind()
                ),
                *s,
                "here",
            ));
            None
        }
    }
}

fn number(e: &mut Elab, a: &Args, i: usize, what: &str) -> Option<f64> {
    match a.get(i)? {
        (Val::Int(v), _) => Some(*v as f64),
        (Val::Float(v), _) => Some(*v),
        (other, s) => {
            e.err(Diagnostic::error(
                format!("{what} must be a number, not {}", other.kind()),
                *s,
                "here",
            ));
            None
        }
    }
}

fn int_list(e: &mut Elab, a: &Args, i: usize, what: &str) -> Option<Vec<i64>> {
    match a.get(i)? {
        (Val::List(items), s) => {
            let mut out = vec![];
            for it in items {
                match it {
                    Val::Int(v) => out.push(*v),
                    other => {
                        e.err(Diagnostic::error(
                            format!(
                                "{what} must list compile-time integers, found {}",
                                other.kind()
                            ),
                            *s,
                            "here",
                        ));
                        return None;
                    }
                }
            }
            Some(out)
        }
        (other, s) => {
            e.err(Diagnostic::error(
                format!("{what} must be a list like `[S, D]`, not {}", other.kind()),
                *s,
                "here",
            ));
            None
        }
    }
}

/// A shape argument: a list of non-negative compile-time integers.
fn shape_arg(e: &mut Elab, a: &Args, i: usize) -> Option<Vec<usize>> {
    let s = int_list(e, a, i, "the shape")?;
    if s.iter().any(|&d| d < 0) {
        e.err(Diagnostic::error(
            "dimensions must be non-negative",
            a.get(i)?.1,
            "here",
        ));
        return None;
    }
    Some(s.into_iter().map(|d| d as usize).collect())
}

/// Resolves a possibly negative axis against a rank.
fn axis(e: &mut Elab, a: &Args, i: usize, rank: usize) -> Option<usize> {
    let v = int(e, a, i, "the axis")?;
    let r = rank as i64;
    let ax = if v < 0 { v + r } else { v };
    if (0..r).contains(&ax) {
        Some(ax as usize)
    } else {
        let s = a.get(i).map(|x| x.1).unwrap_or(a.call);
        e.err(Diagnostic::error(
            format!("axis {v} is out of range for a tensor of rank {rank}"),
            s,
            "bad axis",
        ));
        None
    }
}

fn shape_of(e: &Elab, id: NodeId) -> Vec<usize> {
    e.g.node(id).ty.shape.clone()
}

/// A reduction `op(axis)` of operand 0 along the axis of argument 1.
fn reduce(e: &mut Elab, a: &Args, op: impl Fn(usize) -> Op) -> Option<Val> {
    let x = tensor(e, a, 0, "the operand")?;
    let ax = axis(e, a, 1, shape_of(e, x).len())?;
    Some(e.op(op(ax), &[x], a.call))
}

fn builtin(e: &mut Elab, which: Builtin, a: &Args) -> Option<Val> {
    let span = a.call;
    let unary = |op: Op, e: &mut Elab| -> Option<Val> {
        let x = tensor(e, a, 0, "the operand")?;
        Some(e.op(op, &[x], span))
    };
    Some(match which {
        Builtin::Gelu => {
            let tanh = match a.get(1) {
                None => false,
                Some((Val::Bool(b), _)) => *b,
                Some((other, s)) => {
                    e.err(Diagnostic::error(
                        format!("`tanh` must be true or false, not {}", other.kind()),
                        *s,
                        "here",
                    ));
                    return None;
                }
            };
            unary(Op::High(HighOp::Gelu { tanh }), e)?
        }
        Builtin::Exp => unary(Op::High(HighOp::Exp), e)?,
        Builtin::Recip => unary(Op::High(HighOp::Recip), e)?,
        Builtin::Rsqrt => unary(Op::High(HighOp::Rsqrt), e)?,
        Builtin::Tanh => unary(Op::High(HighOp::Tanh), e)?,
        Builtin::Silu => unary(Op::High(HighOp::Silu), e)?,
        Builtin::Rmsnorm => {
            let x = tensor(e, a, 0, "the operand")?;
            let g = tensor(e, a, 1, "gamma")?;
            let eps = if a.get(2).is_some() {
                number(e, a, 2, "eps")?
            } else {
                1e-5
            };
            e.op(Op::High(HighOp::RmsNorm { eps }), &[x, g], span)
        }
        Builtin::Rotary => {
            let part = match a.get(0)? {
                (Val::Str(k), s) => match crate::ir::ops::Trig::parse(k) {
                    Some(p) => p,
                    None => {
                        e.err(
                            Diagnostic::error(format!("unknown table `{k}`"), *s, "here")
                                .with_hint("a rotary table is \"cos\" or \"sin\""),
                        );
                        return None;
                    }
                },
                (other, s) => {
                    e.err(
                        Diagnostic::error(
                            format!("the part must be a string, not {}", other.kind()),
                            *s,
                            "here",
                        )
                        .with_hint("a rotary table is \"cos\" or \"sin\""),
                    );
                    return None;
                }
            };
            let n = int(e, a, 1, "the number of positions")?;
            let d = int(e, a, 2, "the width")?;
            let theta = number(e, a, 3, "the base θ")?;
            let offset = if a.get(4).is_some() {
                int(e, a, 4, "the first position")?
            } else {
                0
            };
            let bad = if n <= 0 {
                Some((
                    1,
                    format!("a rotary table needs at least one position, got {n}"),
                ))
            } else if d <= 0 || d % 2 != 0 {
                Some((
                    2,
                    format!("a rotary table's width must be even and positive, got {d}"),
                ))
            } else if !(theta.is_finite() && theta > 0.0) {
                Some((3, format!("the base θ must be positive, got {theta}")))
            } else if offset < 0 || offset > u32::MAX as i64 {
                Some((
                    4,
                    format!("the first position must be in 0..2^32, got {offset}"),
                ))
            } else {
                None
            };
            if let Some((i, msg)) = bad {
                e.err(Diagnostic::error(msg, a.get(i)?.1, "here"));
                return None;
            }
            let ty = Type::fixed(Vis::Public, e.region_format(), vec![n as usize, d as usize]);
            let op = Op::Rotary {
                part,
                theta,
                offset: offset as usize,
            };
            Val::Tensor(e.add_node(op, ty, &[], span))
        }
        Builtin::Softmax => {
            let x = tensor(e, a, 0, "the operand")?;
            match a.get(1) {
                None => e.op(Op::High(HighOp::Softmax { masked: false }), &[x], span),
                Some(_) => {
                    let m = tensor(e, a, 1, "the mask")?;
                    e.op(Op::High(HighOp::Softmax { masked: true }), &[x, m], span)
                }
            }
        }
        Builtin::Layernorm => {
            let x = tensor(e, a, 0, "the operand")?;
            let g = tensor(e, a, 1, "gamma")?;
            let b = tensor(e, a, 2, "beta")?;
            let eps = if a.get(3).is_some() {
                number(e, a, 3, "eps")?
            } else {
                1e-5
            };
            e.op(Op::High(HighOp::LayerNorm { eps }), &[x, g, b], span)
        }
        Builtin::Embed => {
            let ids = tensor(e, a, 0, "the ids")?;
            let table = tensor(e, a, 1, "the table")?;
            e.op(Op::Embed, &[ids, table], span)
        }
        Builtin::Transpose => {
            let x = tensor(e, a, 0, "the operand")?;
            let r = shape_of(e, x).len();
            let perm: Vec<usize> = if a.get(1).is_some() {
                let p = int_list(e, a, 1, "the axis order")?;
                if p.iter().any(|&v| v < 0) {
                    e.err(Diagnostic::error(
                        "axis order entries must be non-negative",
                        a.get(1)?.1,
                        "here",
                    ));
                    return None;
                }
                p.into_iter().map(|v| v as usize).collect()
            } else if r < 2 {
                e.err(Diagnostic::error(
                    format!("transpose needs rank ≥ 2, got rank {r}"),
                    span,
                    "here",
                ));
                return None;
            } else {
                let mut p: Vec<usize> = (0..r).collect();
                p.swap(r - 1, r - 2);
                p
            };
            e.op(Op::Transpose { perm }, &[x], span)
        }
        Builtin::Reshape => {
            let x = tensor(e, a, 0, "the operand")?;
            let shape = shape_arg(e, a, 1)?;
            e.op(Op::Reshape { shape }, &[x], span)
        }
        Builtin::Slice => {
            let x = tensor(e, a, 0, "the operand")?;
            let ax = axis(e, a, 1, shape_of(e, x).len())?;
            let start = int(e, a, 2, "the start")?;
            let end = int(e, a, 3, "the end")?;
            if start < 0 || end < 0 {
                e.err(Diagnostic::error(
                    "slice bounds must be non-negative",
                    span,
                    "here",
                ));
                return None;
            }
            e.op(
                Op::Slice {
                    axis: ax,
                    start: start as usize,
                    end: end as usize,
                },
                &[x],
                span,
            )
        }
        Builtin::Concat => {
            let items = match a.get(0)? {
                (Val::List(v), _) => v.clone(),
                (other, s) => {
                    e.err(Diagnostic::error(
                        format!("concat takes a list of tensors, not {}", other.kind()),
                        *s,
                        "here",
                    ));
                    return None;
                }
            };
            let mut ids = vec![];
            for it in items {
                match it {
                    Val::Tensor(id) => ids.push(id),
                    Val::Poison => return None,
                    other => {
                        e.err(Diagnostic::error(
                            format!("concat takes tensors, found {}", other.kind()),
                            a.get(0)?.1,
                            "here",
                        ));
                        return None;
                    }
                }
            }
            if ids.is_empty() {
                e.err(Diagnostic::error(
                    "concat needs at least one tensor",
                    a.get(0)?.1,
                    "empty list",
                ));
                return None;
            }
            let ax = axis(e, a, 1, shape_of(e, ids[0]).len())?;
            e.op(Op::Concat { axis: ax }, &ids, span)
        }
        Builtin::Broadcast => {
            let x = tensor(e, a, 0, "the operand")?;
            let shape = shape_arg(e, a, 1)?;
            e.op(Op::Broadcast { shape }, &[x], span)
        }
        Builtin::Expand => {
            let x = tensor(e, a, 0, "the operand")?;
            let mut s = shape_of(e, x);
            let ax = axis(e, a, 1, s.len() + 1)?;
            s.insert(ax, 1);
            e.op(Op::Reshape { shape: s }, &[x], span)
        }
        Builtin::Sum => reduce(e, a, |axis| Op::Sum { axis })?,
        Builtin::Max => reduce(e, a, |axis| Op::Max { axis })?,
        Builtin::Mean => reduce(e, a, |axis| Op::Mean { axis })?,
        Builtin::Select => {
            let c = tensor(e, a, 0, "the condition")?;
            let mut br = vec![];
            for i in 1..3 {
                let id = match a.get(i)? {
                    (Val::Tensor(id), _) => *id,
                    (v @ (Val::Int(_) | Val::Float(_)), s) => {
                        let x = match v {
                            Val::Int(i) => *i as f64,
                            Val::Float(f) => *f,
                            _ => unreachable!(),
                        };
                        e.constant(x, *s)
                    }
                    (other, s) => {
                        e.err(Diagnostic::error(
                            format!(
                                "select branches are tensors or numbers, not {}",
                                other.kind()
                            ),
                            *s,
                            "here",
                        ));
                        return None;
                    }
                };
                br.push(id);
            }
            // Branches broadcast to the condition's shape.
            let cs = shape_of(e, c);
            for (i, b) in br.iter_mut().enumerate() {
                let bs = shape_of(e, *b);
                if !bs.is_empty() && bs != cs {
                    match crate::ir::infer::broadcast_shapes(&cs, &bs) {
                        Some(to) if to == cs => *b = e.broadcast_to(*b, &cs, a.get(i + 1)?.1),
                        _ => {}
                    }
                }
            }
            e.op(Op::Select, &[c, br[0], br[1]], span)
        }
        Builtin::Iota => {
            let n = int(e, a, 0, "the length")?;
            if n <= 0 {
                e.err(Diagnostic::error(
                    format!("iota needs a positive length, got {n}"),
                    a.get(0)?.1,
                    "here",
                ));
                return None;
            }
            let ring = e.region_format().ring;
            let ty = Type::fixed(Vis::Public, Format { ring, frac: 0 }, vec![n as usize]);
            let id = e.add_node(Op::Iota { n: n as usize }, ty, &[], span);
            // integers are not real values: no policy applies to them
            e.g.node_mut(id).class = None;
            Val::Tensor(id)
        }
        Builtin::NormScale => {
            let x = tensor(e, a, 0, "the operand")?;
            let kind = match a.get(1)? {
                (Val::Str(k), s) => match crate::ir::ops::NormKind::parse(k) {
                    Some(kind) => kind,
                    None => {
                        e.err(
                            Diagnostic::error(format!("unknown normalisation `{k}`"), *s, "here")
                                .with_hint("kinds are \"recip\", \"rsqrt_in\" and \"rsqrt_out\""),
                        );
                        return None;
                    }
                },
                (other, s) => {
                    e.err(Diagnostic::error(
                        format!("the kind must be a string, not {}", other.kind()),
                        *s,
                        "here",
                    ));
                    return None;
                }
            };
            e.op(Op::NormScale { kind }, &[x], span)
        }
        Builtin::Dim => {
            let x = tensor(e, a, 0, "the operand")?;
            let s = shape_of(e, x);
            let ax = axis(e, a, 1, s.len())?;
            Val::Int(s[ax] as i64)
        }
        Builtin::Rank => {
            let x = tensor(e, a, 0, "the operand")?;
            Val::Int(shape_of(e, x).len() as i64)
        }
        Builtin::Sqrt => {
            let v = number(e, a, 0, "the operand")?;
            if v < 0.0 {
                e.err(Diagnostic::error(
                    "sqrt of a negative number",
                    a.get(0)?.1,
                    "here",
                ));
                return None;
            }
            Val::Float(v.sqrt())
        }
        Builtin::Pow2Floor => {
            let v = number(e, a, 0, "the operand")?;
            if v <= 0.0 || !v.is_finite() {
                e.err(Diagnostic::error(
                    "pow2_floor of a number that is not positive",
                    a.get(0)?.1,
                    "here",
                ));
                return None;
            }
            Val::Float(v.log2().floor().exp2())
        }
    })
}
