//! `fuse-truncations`: fewer, cheaper conversion calls. Rules, applied until
//! nothing changes:
//!
//! 1. **identity** — a `convert` to its operand's own format is removed;
//! 2. **chain** — `convert(convert(x))` whose inner conversion has no other
//!    user becomes one conversion of x (and an exact widening followed by its
//!    inverse cancels even when the widened value has other users) (truncate-then-downcast,
//!    truncate-then-upcast, upcast-then-downcast cancelling). Each piece of
//!    Ditto's primitive handles both a shift and a ring change, so the chain
//!    costs one call; its rounding is never worse (one floor instead of two),
//!    and its range conditions are those of the first and last links, which
//!    the chain already had to meet;
//! 3. **sum** — `add`/`sub` of two truncations from formats of one ring, or
//!    of a truncation and a value already in the target format, becomes one
//!    truncation of the sum taken at the finer (product) scale: the other
//!    operand is shifted up to it, which is local — biases are added
//!    before truncating (shifting a value left is local, free under MPC), and
//!    a scalar constant is re-encoded at that scale (a polynomial
//!    c0 + c1·x + c2·x² is truncated once).
//!    The sum must stay inside the ring at the larger scale; `check-ranges`
//!    is where that is proved;
//! 4. **select** — a narrowing conversion (truncation and/or downcast) of a
//!    `select` used only there moves into the branches when that costs
//!    nothing extra: every branch is a constant (re-encoded), already in the
//!    target format, a conversion used only by this select (which then fuses
//!    with it by rule 2), a widening of a value in the target format (which
//!    cancels), or such a select itself. The select then runs in the
//!    narrower format (a B2A and a product in Z_2^32 instead of Z_2^64), and
//!    the fixed-point result is the same: floor(floor(x/2^a)/2^b) =
//!    floor(x/2^(a+b));
//! 5. **narrow sums** — `a' ± b'` where a' and b' are exact widenings
//!    (upcasts, left shifts) of values in one format, at least one used only
//!    here, becomes the widening of `a ± b` taken in the narrow format: one
//!    conversion instead of two (softmax's x − max under `ditto`). The
//!    difference must fit the narrow ring's safe range, as the operands did
//!    within a factor of two; `check-ranges` proves it where bounds are known;
//! 6. **narrow comparisons** — a comparison of an exact widening with a
//!    constant that the narrow format represents exactly compares the narrow
//!    value instead: the same result, at the narrow ring's cost (softmax's
//!    x > −14 in Z_2^32 under `ditto`);
//! 7. **powers of two** — a product of a secret by the constant 2^−j is a
//!    `rescale`: the same words read with j more fraction bits, exact and
//!    local (x/2^t and the /2 in exp, 1/√d in the attention scores);
//! 8. **rescale first** — a `rescale` of a conversion used only there
//!    becomes the conversion of the rescaled source: the words are the same,
//!    and the conversion then chains with its neighbours by rule 2 (exp's
//!    x/2^t under `ditto` costs nothing: it joins the upcast of x);
//! 9. **convert before broadcasting** — a conversion call (truncation or
//!    ring change) of a `broadcast` used only there converts the broadcast's
//!    operand instead: the same values,
//!    one conversion per source element instead of one per copy (softmax's
//!    1/Σe, one per row, is converted before it meets the row's entries);
//! 10. **narrow products** — a product of two left shifts within one ring
//!     (each used only there) multiplies the unshifted values and shifts the
//!     product: the same value at a smaller raw scale, so the truncation after
//!     it drops fewer bits (fewer offline bits) and powers of two that follow
//!     fit the ring as rescales (exp's (1 + x/2^t)² under `ditto`: 1 + x/2^t
//!     has 12 fraction bits of information in a 14-bit class). Rule 5 also
//!     takes a shift plus a constant the narrow format holds exactly
//!     (1 + shift(y) = shift(1 + y)) when the shift stays in one ring;
//! 11. **reshape first** — a `reshape` or `transpose` of a conversion used
//!     only there becomes the conversion of the moved source (conversions
//!     act element by element), so that sums, rescales and conversions after
//!     the movement see the conversion (LayerNorm's Σxc² from its dot
//!     product, plus ε, over P: one truncation; attention's P·V truncated in
//!     the 64-bit ring, its heads merged, then downcast: one call);
//! 12. **siblings** — a truncation (and/or downcast) of a truncation that
//!     has other users reads the first truncation's source instead: the two
//!     conversions run side by side in one step (the VM runs conversions of
//!     every format as one call) rather than one after the other, with one
//!     floor instead of two (LayerNorm's output, kept in (64, 18) for the
//!     residual and taken to (32, 8) for the next matmul). The source met
//!     the first conversion's range condition, and the result is the same
//!     value. A product read by both stays fused with both.

use super::{conversion_call, Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::{Elem, Format, Graph, Node, NodeId, Op, Vis};
use std::collections::HashSet;

/// How far (in operand and user hops) a rewrite can change what the rules
/// see at other nodes.
const RADIUS: usize = 3;

pub struct FuseTruncations;

fn convert_src(g: &Graph, id: NodeId) -> Option<NodeId> {
    matches!(g.node(id).op, Op::Convert).then(|| g.operands(id)[0])
}

fn fmt(g: &Graph, id: NodeId) -> Option<Format> {
    g.node(id).ty.format()
}

/// A truncation within one ring: (k, f_in) → (k, f) with f < f_in.
fn is_trunc(g: &Graph, id: NodeId) -> Option<(NodeId, Format)> {
    let src = convert_src(g, id)?;
    let (fi, fo) = (fmt(g, src)?, fmt(g, id)?);
    (fi.ring == fo.ring && fo.frac < fi.frac).then_some((src, fi))
}

fn single_user(g: &Graph, id: NodeId) -> bool {
    g.users(id).len() == 1
        && g.operands(g.users(id)[0])
            .iter()
            .filter(|&&o| o == id)
            .count()
            == 1
}

/// Replaces node `id` by a conversion of `inner` to `id`'s type, which takes
/// over `id`'s location, class, name and bound.
fn replace_by_conversion(g: &mut Graph, id: NodeId, inner: NodeId) {
    let node = g.node(id).clone();
    let mut t = Node::new(Op::Convert, node.ty);
    t.loc = node.loc;
    t.approx = node.approx;
    t.class = node.class;
    t.name = node.name;
    t.bound = node.bound;
    let tid = g.add(t, &[inner]);
    g.replace_uses(id, tid);
    g.remove(id);
    g.prune_dead();
}

/// If `x` is an exact widening (a conversion to more fraction bits and an
/// equal or larger ring), its source.
fn widening_src(g: &Graph, x: NodeId) -> Option<NodeId> {
    let src = convert_src(g, x)?;
    let (a, w) = (fmt(g, src)?, fmt(g, x)?);
    (w.frac >= a.frac && w.ring >= a.ring && w != a).then_some(src)
}

/// Adds `op` over `operands`, typed like `like` but in format `f`, with
/// `like`'s location and class.
fn add_like(g: &mut Graph, like: NodeId, op: Op, f: Format, operands: &[NodeId]) -> NodeId {
    let mut n = Node::new(op, g.node(like).ty.clone());
    n.ty.elem = Elem::Fixed(f);
    n.loc = g.node(like).loc;
    n.approx = g.node(like).approx;
    n.class = g.node(like).class.clone();
    g.add(n, operands)
}

/// j if `value` is 2^−j with j ≥ 1.
fn inverse_pow2(value: f64) -> Option<u32> {
    (value > 0.0 && value < 1.0)
        .then(|| -value.log2())
        .filter(|j| j.fract() == 0.0)
        .map(|j| j as u32)
}

/// A `rescale` of `x` by `bits`, typed like `x` with `bits` more fraction
/// bits, if that format is valid.
fn add_rescale(g: &mut Graph, x: NodeId, bits: u32, like: NodeId) -> Option<NodeId> {
    let f = fmt(g, x)?;
    let to = Format::new(f.ring.bits() as i64, (f.frac as u32 + bits) as i64).ok()?;
    let mut ty = g.node(x).ty.clone();
    ty.elem = Elem::Fixed(to);
    let mut r = Node::new(
        Op::Rescale {
            bits: bits as usize,
        },
        ty,
    );
    r.loc = g.node(like).loc;
    r.approx = g.node(like).approx;
    r.class = g.node(like).class.clone();
    Some(g.add(r, &[x]))
}

/// If `x` is a left shift within one ring (a conversion to more fraction
/// bits, same ring), its source.
fn shift_src(g: &Graph, x: NodeId) -> Option<NodeId> {
    let src = convert_src(g, x)?;
    let (a, w) = (fmt(g, src)?, fmt(g, x)?);
    (w.ring == a.ring && w.frac > a.frac && g.node(src).ty.vis == Vis::Secret).then_some(src)
}

/// The constant `value` is exactly representable in `f` (well inside the ring).
fn representable(value: f64, f: Format) -> bool {
    let v = value * (f.frac as f64).exp2();
    v.fract() == 0.0 && v.abs() < (((f.ring.bits() - 2) as f64).exp2())
}

/// Whether converting select `sel`'s branches to `to` instead of its result
/// costs no extra conversion call (rule 4).
fn sink_is_free(g: &Graph, sel: NodeId, to: Format) -> bool {
    let ops = g.operands(sel);
    ops[1..].iter().all(|&b| {
        let n = g.node(b);
        if fmt(g, b) == Some(to) || (matches!(n.op, Op::Const { .. }) && n.ty.shape.is_empty()) {
            return true;
        }
        if let Some(src) = convert_src(g, b) {
            let widening = matches!((fmt(g, src), fmt(g, b)), (Some(a), Some(w)) if w.frac >= a.frac && w.ring >= a.ring);
            if (widening && fmt(g, src) == Some(to)) || single_user(g, b) {
                return true;
            }
        }
        matches!(n.op, Op::Select) && single_user(g, b) && sink_is_free(g, b, to)
    })
}

/// Moves the conversion `conv` of select `sel` into its branches (rule 4).
fn sink_into_select(g: &mut Graph, conv: NodeId, sel: NodeId, to: Format) {
    let ops = g.operands(sel);
    let mut new_ops = vec![ops[0]];
    for &b in &ops[1..] {
        let n = g.node(b).clone();
        let nb = if fmt(g, b) == Some(to) {
            b
        } else if matches!(n.op, Op::Const { .. }) {
            let mut c = n;
            c.ty.elem = Elem::Fixed(to);
            g.add(c, &[])
        } else {
            let mut ty = n.ty.clone();
            ty.elem = Elem::Fixed(to);
            let mut c = Node::new(Op::Convert, ty);
            c.loc = n.loc;
            c.approx = n.approx;
            c.class = g.node(conv).class.clone();
            g.add(c, &[b])
        };
        new_ops.push(nb);
    }
    let mut s = g.node(sel).clone();
    s.ty = g.node(conv).ty.clone();
    s.name = g.node(conv).name.clone().or(s.name);
    let ns = g.add(s, &new_ops);
    g.replace_uses(conv, ns);
    g.remove(conv);
    g.prune_dead();
}

impl FuseTruncations {
    /// One sweep over the graph in topological order: every node not known
    /// to be clean (checked since its neighbourhood last changed) gets the
    /// first rule that matches; a rewrite makes the nodes within [`RADIUS`]
    /// of it unknown again (the rules look at most that far: operands, their
    /// operands, their users), and new nodes are unknown. Returns whether
    /// anything was rewritten; sweeps repeat until nothing is.
    fn sweep(&self, g: &mut Graph, clean: &mut HashSet<NodeId>) -> bool {
        let Ok(order) = g.topo_order() else {
            return false;
        };
        let mut any = false;
        for id in order {
            if !g.contains(id) || clean.contains(&id) {
                continue;
            }
            let mut near: Vec<NodeId> = g.operands(id);
            near.extend(g.users(id));
            near.push(id);
            if self.rewrite(g, id) {
                any = true;
                let mut seen: HashSet<NodeId> = HashSet::new();
                let mut frontier: Vec<NodeId> =
                    near.into_iter().filter(|&n| g.contains(n)).collect();
                for _ in 0..=RADIUS {
                    let mut next = vec![];
                    for n in frontier {
                        if seen.insert(n) {
                            clean.remove(&n);
                            next.extend(g.operands(n));
                            next.extend(g.users(n));
                        }
                    }
                    next.retain(|&n| g.contains(n));
                    frontier = next;
                }
            } else {
                clean.insert(id);
            }
        }
        any
    }

    /// Applies the first rule that matches at `id`; whether one did.
    fn rewrite(&self, g: &mut Graph, id: NodeId) -> bool {
        {
            // 1. identity
            if let Some(src) = convert_src(g, id) {
                if g.node(src).ty == g.node(id).ty {
                    g.replace_uses(id, src);
                    g.remove(id);
                    return true;
                }
                // 2. chain (with other users of the inner conversion only when
                // the pair cancels: an exact widening undone)
                if let Some(inner_src) = convert_src(g, src) {
                    let widening = matches!((fmt(g, inner_src), fmt(g, src)), (Some(a), Some(b)) if b.frac >= a.frac && b.ring >= a.ring);
                    if !single_user(g, src) && widening && g.node(inner_src).ty == g.node(id).ty {
                        g.replace_uses(id, inner_src);
                        g.remove(id);
                        return true;
                    }
                    if single_user(g, src) {
                        g.set_operand(id, 0, inner_src);
                        g.remove(src);
                        return true;
                    }
                    // 12. siblings: a truncation of a truncation that others
                    // read too converts the first one's source itself
                    if let (Some(a), Some(b), Some(c)) =
                        (fmt(g, inner_src), fmt(g, src), fmt(g, id))
                    {
                        let narrowing = b.frac < a.frac
                            && b.ring <= a.ring
                            && c.frac < b.frac
                            && c.ring <= b.ring
                            && g.node(inner_src).ty.vis == Vis::Secret;
                        if narrowing {
                            g.set_operand(id, 0, inner_src);
                            return true;
                        }
                    }
                }
            }
            // 7. powers of two
            if matches!(g.node(id).op, Op::Mul) && g.node(id).ty.vis == Vis::Secret {
                let ops = g.operands(id);
                for (x, c) in [(ops[0], ops[1]), (ops[1], ops[0])] {
                    let (Op::Const { value }, Some(fc), Some(fx), Some(fo)) =
                        (&g.node(c).op, fmt(g, c), fmt(g, x), fmt(g, id))
                    else {
                        continue;
                    };
                    let Some(j) = inverse_pow2(*value) else {
                        continue;
                    };
                    let plain = g.node(x).ty.vis == Vis::Secret
                        && g.node(x).ty.shape == g.node(id).ty.shape
                        && fx.ring == fo.ring
                        && fc.frac as u32 >= j;
                    if !plain {
                        continue;
                    }
                    if let Some(r) = add_rescale(g, x, j, id) {
                        replace_by_conversion(g, id, r);
                        return true;
                    }
                }
            }
            // 8. rescale first
            if let Op::Rescale { bits } = g.node(id).op {
                let x = g.operands(id)[0];
                let inner = match &g.node(x).op {
                    Op::Rescale { bits: b } => Some((g.operands(x)[0], *b as u32)),
                    Op::Convert if single_user(g, x) => Some((g.operands(x)[0], 0)),
                    _ => None,
                };
                if let Some((src, more)) = inner {
                    if let Some(r) = add_rescale(g, src, bits as u32 + more, id) {
                        if matches!(g.node(x).op, Op::Rescale { .. }) {
                            g.replace_uses(id, r);
                            g.remove(id);
                            g.prune_dead();
                        } else {
                            replace_by_conversion(g, id, r);
                        }
                        return true;
                    }
                }
            }
            // 11. reshape (or transpose) first
            if let Op::Reshape { .. } | Op::Transpose { .. } = g.node(id).op {
                let x = g.operands(id)[0];
                if matches!(g.node(x).op, Op::Convert) && single_user(g, x) {
                    let src = g.operands(x)[0];
                    let mut nr = g.node(id).clone();
                    nr.ty = g.node(src).ty.clone();
                    nr.ty.shape = g.node(id).ty.shape.clone();
                    nr.name = None;
                    let rid = g.add(nr, &[src]);
                    replace_by_conversion(g, id, rid);
                    return true;
                }
            }
            // 10. narrow products
            if matches!(g.node(id).op, Op::Mul) && g.node(id).ty.vis == Vis::Secret {
                let ops = g.operands(id);
                let only_here = |x: NodeId| g.users(x).iter().all(|&u| u == id);
                let srcs = (shift_src(g, ops[0]), shift_src(g, ops[1]));
                if let (Some(sa), Some(sb)) = srcs {
                    if only_here(ops[0]) && only_here(ops[1]) {
                        let (fa, fb) = (fmt(g, sa), fmt(g, sb));
                        if let (Some(fa), Some(fb), Some(fo)) = (fa, fb, fmt(g, id)) {
                            let frac = fa.frac as i64 + fb.frac as i64;
                            if let Ok(raw) = Format::new(fo.ring.bits() as i64, frac) {
                                if raw.frac < fo.frac {
                                    let mid = add_like(g, id, Op::Mul, raw, &[sa, sb]);
                                    replace_by_conversion(g, id, mid);
                                    return true;
                                }
                            }
                        }
                    }
                }
            }
            // 5b. a shift plus a constant
            if matches!(g.node(id).op, Op::Add | Op::Sub) && g.node(id).ty.vis == Vis::Secret {
                let ops = g.operands(id);
                for (pos, other) in [(0usize, 1usize), (1, 0)] {
                    let (w, c) = (ops[pos], ops[other]);
                    let Some(src) = shift_src(g, w) else { continue };
                    let Op::Const { value } = g.node(c).op else {
                        continue;
                    };
                    let Some(nf) = fmt(g, src) else { continue };
                    let fits = g.node(c).ty.shape.is_empty()
                        && representable(value, nf)
                        && single_user(g, w)
                        && g.node(src).ty.shape == g.node(id).ty.shape
                        && fmt(g, w) == fmt(g, id);
                    if !fits {
                        continue;
                    }
                    let mut cn = g.node(c).clone();
                    cn.ty.elem = Elem::Fixed(nf);
                    let cid = g.add(cn, &[]);
                    let operands = if pos == 0 { [src, cid] } else { [cid, src] };
                    let op = g.node(id).op.clone();
                    let nid = add_like(g, id, op, nf, &operands);
                    replace_by_conversion(g, id, nid);
                    return true;
                }
            }
            // 9. convert before broadcasting
            if let Some(b) = convert_src(g, id) {
                // (a local shift stays where it is: rule 5 may narrow a sum
                // of shifted values, a broadcast one among them)
                if matches!(g.node(b).op, Op::Broadcast { .. })
                    && single_user(g, b)
                    && g.node(id).ty.vis == Vis::Secret
                    && super::schedule::communicates(g, id)
                {
                    let src = g.operands(b)[0];
                    let mut ty = g.node(id).ty.clone();
                    ty.shape = g.node(src).ty.shape.clone();
                    let mut c = Node::new(Op::Convert, ty);
                    c.loc = g.node(id).loc;
                    c.approx = g.node(id).approx;
                    c.class = g.node(id).class.clone();
                    let cid = g.add(c, &[src]);
                    let mut nb = g.node(b).clone();
                    nb.ty = g.node(id).ty.clone();
                    nb.name = g.node(id).name.clone().or(nb.name);
                    let bid = g.add(nb, &[cid]);
                    g.replace_uses(id, bid);
                    g.remove(id);
                    g.prune_dead();
                    return true;
                }
            }
            // 4. select
            if let Some(sel) = convert_src(g, id) {
                if matches!(g.node(sel).op, Op::Select) && single_user(g, sel) {
                    if let (Some(fi), Some(fo)) = (fmt(g, sel), fmt(g, id)) {
                        let narrowing = fo != fi && fo.frac <= fi.frac && fo.ring <= fi.ring;
                        if narrowing && sink_is_free(g, sel, fo) {
                            sink_into_select(g, id, sel, fo);
                            return true;
                        }
                    }
                }
            }
            // 5. narrow sums
            if matches!(g.node(id).op, Op::Add | Op::Sub) {
                let ops = g.operands(id);
                if let (Some(sa), Some(sb)) = (widening_src(g, ops[0]), widening_src(g, ops[1])) {
                    let same = fmt(g, sa) == fmt(g, sb)
                        && g.node(sa).ty.shape == g.node(id).ty.shape
                        && g.node(sb).ty.shape == g.node(id).ty.shape
                        && fmt(g, ops[0]) == fmt(g, id)
                        && fmt(g, ops[1]) == fmt(g, id);
                    if same
                        && ops[0] != ops[1]
                        && (single_user(g, ops[0]) || single_user(g, ops[1]))
                    {
                        let node = g.node(id).clone();
                        let mut narrow = Node::new(node.op.clone(), node.ty.clone());
                        narrow.ty.elem = g.node(sa).ty.elem;
                        narrow.loc = node.loc;
                        narrow.approx = node.approx;
                        narrow.class = g.node(sa).class.clone();
                        let nid = g.add(narrow, &[sa, sb]);
                        replace_by_conversion(g, id, nid);
                        return true;
                    }
                }
            }
            // 6. narrow comparisons
            if matches!(
                g.node(id).op,
                Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne
            ) {
                let ops = g.operands(id);
                for (pos, other) in [(0usize, 1usize), (1, 0)] {
                    let Some(src) = widening_src(g, ops[pos]) else {
                        continue;
                    };
                    let Op::Const { value } = g.node(ops[other]).op else {
                        continue;
                    };
                    let Some(nf) = fmt(g, src) else { continue };
                    if !g.node(ops[other]).ty.shape.is_empty() || !representable(value, nf) {
                        continue;
                    }
                    let mut c = g.node(ops[other]).clone();
                    c.ty.elem = Elem::Fixed(nf);
                    let cid = g.add(c, &[]);
                    g.set_operand(id, pos, src);
                    g.set_operand(id, other, cid);
                    g.prune_dead();
                    return true;
                }
            }
            // 3. sum
            if matches!(g.node(id).op, Op::Add | Op::Sub) && g.node(id).ty.vis == g.node(id).ty.vis
            {
                let ops = g.operands(id);
                let (a, b) = (ops[0], ops[1]);
                // equal shapes, or a scalar constant (re-encoded at the raw scale)
                let scalar_const = |x: NodeId| {
                    matches!(g.node(x).op, Op::Const { .. }) && g.node(x).ty.shape.is_empty()
                };
                if a == b
                    || (g.node(a).ty.shape != g.node(b).ty.shape
                        && !scalar_const(a)
                        && !scalar_const(b))
                {
                    return false;
                }
                let (ta, tb) = (
                    is_trunc(g, a).filter(|_| single_user(g, a)),
                    is_trunc(g, b).filter(|_| single_user(g, b)),
                );
                let Some(out) = fmt(g, id) else { return false };
                let plan = match (ta, tb) {
                    // from two scales of one ring: the finer one is the raw
                    // scale, the other truncation's source is shifted up to it
                    (Some((pa, fa)), Some((pb, fb))) if fa.ring == fb.ring => {
                        Some((if fa.frac >= fb.frac { fa } else { fb }, pa, pb))
                    }
                    // not when the other operand is a conversion call's
                    // result: the truncation would wait for that call
                    (Some((pa, fa)), None) if fmt(g, b) == Some(out) && !conversion_call(g, b) => {
                        Some((fa, pa, b))
                    }
                    (None, Some((pb, fb))) if fmt(g, a) == Some(out) && !conversion_call(g, a) => {
                        Some((fb, a, pb))
                    }
                    _ => None,
                };
                let Some((raw, na, nb)) = plan else {
                    return false;
                };
                // operands at the raw scale: a value in `out` is shifted left (local)
                let lift = |g: &mut Graph, x: NodeId| -> NodeId {
                    if fmt(g, x) == Some(raw) {
                        return x;
                    }
                    let src = g.node(x);
                    if let Op::Const { .. } = src.op {
                        // a constant is re-encoded exactly at the raw scale
                        let mut c = src.clone();
                        c.ty.elem = Elem::Fixed(raw);
                        return g.add(c, &[]);
                    }
                    let mut ty = src.ty.clone();
                    ty.elem = Elem::Fixed(raw);
                    let mut n = Node::new(Op::Convert, ty);
                    n.loc = src.loc;
                    n.approx = src.approx;
                    n.class = src.class.clone();
                    g.add(n, &[x])
                };
                let (la, lb) = (lift(g, na), lift(g, nb));
                let op = g.node(id).op.clone();
                let sid = add_like(g, id, op, raw, &[la, lb]);
                replace_by_conversion(g, id, sid);
                return true;
            }
        }
        false
    }
}

impl Pass for FuseTruncations {
    fn name(&self) -> &'static str {
        "fuse-truncations"
    }
    fn description(&self) -> &'static str {
        "merge conversion chains into single calls; truncate sums of products once"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        let mut changed = false;
        let mut clean = HashSet::new();
        while self.sweep(g, &mut clean) {
            changed = true;
        }
        if changed {
            g.prune_dead();
        }
        Ok(changed)
    }
}
