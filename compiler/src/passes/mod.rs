//! The pass manager. Each pass has a kebab-case name equal to its file name,
//! a one-line description, and reports whether it changed the graph.
//! Passes are declared once ([`PASSES`]: name, aliases, properties; the
//! default pipeline is that list); `--passes` and `--skip` edit it; unknown
//! names are errors listing the valid ones. The verifier runs
//! after every pass (always: it is cheap next to MPC), and a pass that
//! breaks an invariant is reported by name.
//!
//! Status (issue 4, in progress): every pass of [`DEFAULT_PIPELINE`] exists;
//! code generation is `crate::codegen` (run by `ditto compile` and `ditto
//! run` after the pipeline).

pub mod apply_policy;
pub mod check_ranges;
pub mod cse;
pub mod dce;
pub mod dot_products;
pub mod fold_constants;
pub mod fuse_truncations;
pub mod insert_conversions;
pub mod insert_truncations;
pub mod lower_nonlinear;
pub mod schedule;
pub mod weight_layout;

use crate::diag::Diagnostic;
use crate::ir::verify::verify;
use crate::ir::{Graph, Op, Vis};
use crate::policy::Policy;
use std::collections::HashMap;

/// What a pass can read besides the graph.
pub struct Ctx<'a> {
    pub policy: &'a Policy,
    /// The sources the graph came from, to point diagnostics at DSL lines.
    pub sources: Option<&'a crate::diag::Sources>,
    /// Largest |w| of each weight tensor, when the weights are known.
    pub weight_bounds: Option<&'a std::collections::HashMap<String, f64>>,
}

impl Ctx<'_> {
    /// An error at a node's DSL location (or without one).
    pub fn error_at(
        &self,
        g: &Graph,
        id: crate::ir::NodeId,
        message: String,
        label: &str,
    ) -> Diagnostic {
        match (g.node(id).loc, self.sources) {
            (Some(loc), Some(src)) => Diagnostic::error(message, src.span_of(loc), label),
            (Some(loc), None) => {
                let file = g
                    .files
                    .get(loc.file as usize)
                    .map(String::as_str)
                    .unwrap_or("?");
                Diagnostic::global(format!("{file}:{}:{}: {message}", loc.line, loc.col))
            }
            _ => Diagnostic::global(message),
        }
    }
}

pub trait Pass {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// Runs the pass; `Ok(true)` if the graph changed.
    fn run(&self, g: &mut Graph, ctx: &Ctx) -> Result<bool, Vec<Diagnostic>>;
}

/// What the pass manager knows of a pass besides its code.
#[derive(Debug, Clone, Copy)]
pub struct PassInfo {
    pub name: &'static str,
    /// Other names `--passes`, `--skip` and `--dump-after` accept.
    pub aliases: &'static [&'static str],
    /// Keeps the graph's exact (float) semantics: every pass but the
    /// lowering of high ops to approximations.
    pub keeps_semantics: bool,
    /// Only checks the graph (never changes it).
    pub check_only: bool,
}

/// Declares the passes once, in pipeline order: name, aliases, properties
/// and type. The default pipeline is this list; [`registry`] builds them.
macro_rules! passes {
    ($( $name:literal [$($alias:literal),*] keeps_semantics: $keeps:literal, check_only: $check:literal => $ty:expr; )*) => {
        /// Every pass's declaration, in pipeline order.
        pub const PASSES: &[PassInfo] = &[$(PassInfo {
            name: $name,
            aliases: &[$($alias),*],
            keeps_semantics: $keeps,
            check_only: $check,
        }),*];

        /// The default pipeline: every pass, in order.
        pub const DEFAULT_PIPELINE: &[&str] = &[$($name),*];

        /// Every pass, in pipeline order.
        pub fn registry() -> Vec<Box<dyn Pass>> {
            vec![$(Box::new($ty)),*]
        }
    };
}

passes! {
    "apply-policy" [] keeps_semantics: true, check_only: false => apply_policy::ApplyPolicy;
    "lower-nonlinear" ["lower"] keeps_semantics: false, check_only: false => lower_nonlinear::LowerNonlinear;
    "fold-constants" ["fold"] keeps_semantics: true, check_only: false => fold_constants::FoldConstants;
    "weight-layout" [] keeps_semantics: true, check_only: false => weight_layout::WeightLayout;
    "dot-products" [] keeps_semantics: true, check_only: false => dot_products::DotProducts;
    "insert-conversions" [] keeps_semantics: true, check_only: false => insert_conversions::InsertConversions;
    "insert-truncations" [] keeps_semantics: true, check_only: false => insert_truncations::InsertTruncations;
    "cse" [] keeps_semantics: true, check_only: false => cse::Cse;
    "fuse-truncations" ["fuse"] keeps_semantics: true, check_only: false => fuse_truncations::FuseTruncations;
    "dce" [] keeps_semantics: true, check_only: false => dce::Dce;
    "check-ranges" [] keeps_semantics: true, check_only: true => check_ranges::CheckRanges;
    "schedule" [] keeps_semantics: true, check_only: false => schedule::Schedule;
}

/// The declared name of `n`, which may be an alias.
pub fn canonical(n: &str) -> Option<&'static str> {
    PASSES
        .iter()
        .find(|p| p.name == n || p.aliases.contains(&n))
        .map(|p| p.name)
}

/// Counts of one graph state, for `--stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphStats {
    pub nodes: usize,
    /// Calls of the conversion protocol (a truncation or an upcast of a
    /// secret); a chain fused into one call counts once.
    pub conversions: usize,
    /// Conversions done locally: left shifts, plain downcasts, public values.
    pub local_conversions: usize,
    pub truncations: usize,
    pub upcasts: usize,
    pub downcasts: usize,
    /// Estimated online bytes (all parties); see [`stats`].
    pub est_bytes: u64,
    pub est_rounds: u64,
}

/// Whether `id` is a secret product read only by conversion calls (one, or
/// several), directly or through rescales, reshapes, transposes and sums in
/// the same format ([`only_into_conversions`]), which the VM fuses with them
/// (`Party::convert_additive`).
pub fn fused_product(g: &Graph, id: crate::ir::NodeId) -> bool {
    let n = g.node(id);
    let ops = g.operands(id);
    let secret_product = matches!(n.op, Op::Mul | Op::MatMul)
        && ops.iter().all(|&o| g.node(o).ty.vis == Vis::Secret);
    secret_product && only_into_conversions(g, id)
}

/// Whether every reader of `x` is a conversion call, or a rescale, reshape,
/// transpose or sum in `x`'s format (and shape, for a sum) whose readers
/// are such in turn: the words (moved, or with other shares or public
/// values added) reach nothing but conversion calls, so an additive sharing
/// of `x` never needs its reshare.
fn only_into_conversions(g: &Graph, x: crate::ir::NodeId) -> bool {
    let users = g.users(x);
    let reads_once = |u: crate::ir::NodeId| g.operands(u).iter().filter(|&&o| o == x).count() == 1;
    !users.is_empty()
        && users.iter().all(|&u| {
            let n = g.node(u);
            let same = n.ty.format() == g.node(x).ty.format();
            reads_once(u)
                && match n.op {
                    Op::Convert => conversion_call(g, u),
                    Op::Rescale { .. } => only_into_conversions(g, u),
                    Op::Reshape { .. } | Op::Transpose { .. } => {
                        same && only_into_conversions(g, u)
                    }
                    Op::Add | Op::Sub => {
                        same && n.ty.shape == g.node(x).ty.shape && only_into_conversions(g, u)
                    }
                    _ => false,
                }
        })
}

/// Whether `id` is a conversion the VM runs as a protocol call: of a secret,
/// dropping fraction bits or widening the ring.
pub(crate) fn conversion_call(g: &Graph, id: crate::ir::NodeId) -> bool {
    let n = g.node(id);
    matches!(n.op, Op::Convert)
        && n.ty.vis == Vis::Secret
        && match (g.node(g.operands(id)[0]).ty.format(), n.ty.format()) {
            (Some(fi), Some(fo)) => fo.frac < fi.frac || fo.ring > fi.ring,
            _ => false,
        }
}

/// Whether a fused product feeds the conversion of `x`: `x` is one, or a
/// rescale of one, or a sum (of sums) with one among its terms.
fn fused_under(g: &Graph, x: crate::ir::NodeId) -> bool {
    match g.node(x).op {
        Op::Rescale { .. } | Op::Reshape { .. } | Op::Transpose { .. } => {
            fused_under(g, g.operands(x)[0])
        }
        Op::Add | Op::Sub => g.operands(x).iter().any(|&o| fused_under(g, o)),
        Op::Mul | Op::MatMul => fused_product(g, x),
        _ => false,
    }
}

/// Counts conversion calls by kind (one call may be several kinds at once:
/// truncate-and-downcast counts as both; local conversions are counted
/// apart) and estimates the online bytes and rounds from the declared cost
/// of each primitive (`ditto_protocol::cost`): a secret product, a
/// conversion (fused with the product it reads when the VM fuses them),
/// a comparison, a select on a secret condition, a row max, a mean, a
/// normalisation, a lookup of secret ids — each node as one call. Rounds
/// are summed along the graph's critical path. High ops not yet lowered
/// count nothing. (The VM batches independent calls of a round into one,
/// which packs their bits together: the measured bytes are within a byte
/// per call of these.)
pub fn stats(g: &Graph) -> GraphStats {
    let mut s = GraphStats {
        nodes: g.len(),
        ..Default::default()
    };
    let order = g.topo_order().unwrap_or_else(|_| g.ids());
    let mut depth = HashMap::new();
    let mut rounds_of = HashMap::new();
    let secret = |id: crate::ir::NodeId| g.node(id).ty.vis == Vis::Secret;
    for id in order {
        let n = g.node(id);
        let ops = g.operands(id);
        let d_in = ops
            .iter()
            .map(|o| depth.get(o).copied().unwrap_or(0))
            .max()
            .unwrap_or(0u64);
        let convert = matches!(n.op, Op::Convert);
        if let (true, Some(fi), Some(fo)) = (
            convert,
            ops.first().and_then(|&o| g.node(o).ty.format()),
            n.ty.format(),
        ) {
            if secret(id) && (fo.frac < fi.frac || fo.ring > fi.ring) {
                s.conversions += 1;
                s.truncations += usize::from(fo.frac < fi.frac);
                s.upcasts += usize::from(fo.ring > fi.ring);
                s.downcasts += usize::from(fo.ring < fi.ring);
            } else {
                s.local_conversions += 1;
            }
        }
        let c = node_cost(g, id);
        s.est_bytes += c.bytes;
        depth.insert(id, d_in + c.rounds);
        rounds_of.insert(id, c.rounds);
    }
    s.est_rounds = match &g.schedule {
        Some(steps) => steps
            .iter()
            .map(|st| step_rounds(g, &st.nodes, &rounds_of))
            .sum(),
        None => depth.values().copied().max().unwrap_or(0),
    };
    s
}

/// What the VM batches into one protocol call within a round (its
/// `classify`): conversions of every format (fused or not: one
/// `convert_many` call), secret
/// products of one ring whose formats fit, comparisons of one ring,
/// selections of one ring, normalisation scales of one ring. Other
/// communicating nodes are calls of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BatchKey {
    Conv,
    Mul(u32),
    MatMul(u32),
    Cmp(u32),
    Sel(u32),
    Norm(u32),
}

fn batch_key(g: &Graph, id: crate::ir::NodeId) -> Option<BatchKey> {
    let n = g.node(id);
    let ops = g.operands(id);
    let ty = |i: usize| &g.node(ops[i]).ty;
    let (fmt, secret) = (n.ty.format(), |i: usize| ty(i).vis == Vis::Secret);
    match &n.op {
        Op::Convert => {
            ty(0).format()?;
            fmt?;
            Some(BatchKey::Conv)
        }
        Op::Mul | Op::MatMul if secret(0) && secret(1) && !fused_product(g, id) => {
            let (fa, fb, fd) = (ty(0).format()?, ty(1).format()?, fmt?);
            let fits = fa.ring == fd.ring && fb.ring == fd.ring && fa.frac + fb.frac == fd.frac;
            match n.op {
                Op::Mul => (fits && ty(0).shape == n.ty.shape && ty(1).shape == n.ty.shape)
                    .then_some(BatchKey::Mul(fd.ring.bits())),
                _ => fits.then_some(BatchKey::MatMul(fd.ring.bits())),
            }
        }
        Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne => {
            let fa = ty(0).format()?;
            (!secret(1) || ty(1).format() == Some(fa)).then_some(BatchKey::Cmp(fa.ring.bits()))
        }
        Op::Select if secret(0) => Some(BatchKey::Sel(fmt?.ring.bits())),
        Op::NormScale { .. } if secret(0) => Some(BatchKey::Norm(fmt?.ring.bits())),
        _ => None,
    }
}

/// Online rounds of one step of the schedule as the VM runs it: each batch
/// of calls with one key is one call (the rounds of its deepest member),
/// the kinds one after the other, and every other call on its own.
fn step_rounds(
    g: &Graph,
    nodes: &[crate::ir::NodeId],
    rounds_of: &HashMap<crate::ir::NodeId, u64>,
) -> u64 {
    let mut batches: HashMap<BatchKey, u64> = HashMap::new();
    let mut rounds = 0;
    for id in nodes {
        let r = rounds_of.get(id).copied().unwrap_or(0);
        if r == 0 {
            continue;
        }
        match batch_key(g, *id) {
            Some(k) => {
                let b = batches.entry(k).or_insert(0);
                *b = (*b).max(r);
            }
            None => rounds += r,
        }
    }
    rounds + batches.values().sum::<u64>()
}

/// The declared cost (`ditto_protocol::cost`) of the protocol call the VM
/// makes for node `id` on its own: nothing for local nodes, for a product
/// fused into the conversion that reads it, and for high ops (not yet
/// lowered).
pub fn node_cost(g: &Graph, id: crate::ir::NodeId) -> ditto_protocol::cost::Cost {
    use ditto_protocol::cost;
    let n = g.node(id);
    let ops = g.operands(id);
    let secret = |id: crate::ir::NodeId| g.node(id).ty.vis == Vis::Secret;
    let ring = |id: crate::ir::NodeId| g.node(id).ty.format().map_or(64, |f| f.ring.bits());
    let numel = n.ty.numel() as u64;
    match &n.op {
        Op::Convert => match (g.node(ops[0]).ty.format(), n.ty.format()) {
            (Some(fi), Some(fo)) if secret(id) && (fo.frac < fi.frac || fo.ring > fi.ring) => {
                // a product read only here is fused: H's share joins
                // the opening (k_in more bits, the product's round saved)
                let m = fi.frac.saturating_sub(fo.frac) as u32;
                let fused = fused_under(g, ops[0]);
                cost::conversion(fi.ring.bits(), fo.ring.bits(), m, fused, numel)
            }
            _ => cost::Cost::default(),
        },
        Op::Mul | Op::MatMul => {
            if ops.iter().all(|&o| secret(o)) && !fused_product(g, id) {
                cost::product(ring(id), numel)
            } else {
                cost::Cost::default()
            }
        }
        Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne => {
            if secret(id) {
                cost::compare(ring(ops[0]), numel, matches!(n.op, Op::Eq | Op::Ne))
            } else {
                cost::Cost::default()
            }
        }
        Op::Select => {
            if secret(ops[0]) {
                cost::select(ring(id), numel)
            } else {
                cost::Cost::default()
            }
        }
        Op::Max { axis } => {
            if secret(id) {
                let width = g.node(ops[0]).ty.shape[*axis] as u64;
                cost::max_rows(ring(id), numel, width)
            } else {
                cost::Cost::default()
            }
        }
        Op::Mean { .. } => match n.ty.format() {
            // a sum times the public 1/n, then one truncation by f bits
            Some(f) if secret(id) => cost::mean(f.ring.bits(), f.frac as u32, numel),
            _ => cost::Cost::default(),
        },
        Op::NormScale { kind } => match n.ty.format() {
            // a comparison with 2^j wherever the scale changes
            Some(f) if secret(id) => {
                let steps = kind.steps(f.ring.bits(), f.frac as u32).len() as u64;
                cost::norm_scale(f.ring.bits(), steps, numel)
            }
            _ => cost::Cost::default(),
        },
        Op::Embed => {
            if secret(ops[0]) {
                let t = &g.node(ops[1]).ty.shape;
                let (a, _) = ditto_bytecode::onehot_split(t[0] as u64, t[1] as u64);
                let tokens = g.node(ops[0]).ty.numel() as u64;
                cost::lookup(ring(id), tokens, a, t[1] as u64)
            } else {
                cost::Cost::default()
            }
        }
        // local, or (high ops, not yet lowered) without an MPC instruction
        Op::Input { .. }
        | Op::Weight { .. }
        | Op::Const { .. }
        | Op::Iota { .. }
        | Op::Rotary { .. }
        | Op::Add
        | Op::Sub
        | Op::Neg
        | Op::Not
        | Op::Transpose { .. }
        | Op::Reshape { .. }
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Broadcast { .. }
        | Op::Sum { .. }
        | Op::Rescale { .. }
        | Op::Output { .. }
        | Op::High(_) => cost::Cost::default(),
    }
}

/// Which passes' results to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DumpAfter {
    #[default]
    None,
    All,
    Pass(String),
}

/// Resolves an `auto` policy into a concrete one for graph `g` (whose nodes
/// carry calibrated bounds): each class the policy puts in the 32-bit ring
/// gets the most fraction bits (up to 14) with which the pipeline's
/// `check-ranges` still proves every product and conversion safe, and
/// `probs_v` moves to the 32-bit ring when that is proven safe too. More
/// fraction bits cost nothing (same ring) and shrink the quantisation and
/// truncation errors. Each candidate is checked by running the pipeline up
/// to `check-ranges` on a copy of the graph.
pub fn resolve_auto(g: &Graph, policy: &Policy, ctx: &Ctx) -> Policy {
    use crate::ir::Format;
    let mut p = policy.clone();
    p.auto = false;
    let upto: Vec<&str> = DEFAULT_PIPELINE
        .iter()
        .copied()
        .take_while(|n| *n != "schedule")
        .collect();
    let safe = |cand: &Policy| {
        let mut h = g.clone();
        let c = Ctx {
            policy: cand,
            sources: ctx.sources,
            weight_bounds: ctx.weight_bounds,
        };
        run(&mut h, &upto, &c, &DumpAfter::None).is_ok()
    };
    let low: Vec<String> = p
        .formats
        .iter()
        .filter(|(c, f)| f.ring == Format::LOW.ring && !policy.auto_keep.contains(c))
        .map(|(c, _)| c.clone())
        .collect();
    let mut classes = low;
    if p.formats
        .get("probs_v")
        .is_some_and(|f| f.ring != Format::LOW.ring)
    {
        classes.push("probs_v".to_string());
    }
    for class in classes {
        let base = p.formats.get(&class).copied();
        for frac in (Format::LOW.frac..=14).rev() {
            let Ok(f) = Format::new(Format::LOW.ring.bits() as i64, frac as i64) else {
                continue;
            };
            if base == Some(f) {
                break;
            }
            let mut cand = p.clone();
            cand.formats.insert(class.clone(), f);
            if safe(&cand) {
                p = cand;
                break;
            }
        }
    }
    p
}

/// One executed pass.
#[derive(Debug, Clone)]
pub struct PassRecord {
    /// `name` or `name.N` when the pass runs more than once.
    pub label: String,
    pub changed: bool,
    pub stats: GraphStats,
    pub dump: Option<String>,
}

/// Resolves the pipeline: `passes` replaces the default, `skip` removes.
/// Unknown names are an error listing the valid ones.
pub fn plan(passes: Option<&[String]>, skip: &[String]) -> Result<Vec<&'static str>, String> {
    let check = |n: &str| -> Result<&'static str, String> {
        canonical(n).ok_or_else(|| {
            let names = PASSES
                .iter()
                .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()));
            let hint = crate::elab::closest(n, names)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            format!(
                "unknown pass `{n}`{hint}; passes are: {}",
                DEFAULT_PIPELINE.join(", ")
            )
        })
    };
    let mut out: Vec<&'static str> = match passes {
        Some(list) => list.iter().map(|n| check(n)).collect::<Result<_, _>>()?,
        None => DEFAULT_PIPELINE.to_vec(),
    };
    for s in skip {
        let s = check(s)?;
        out.retain(|p| *p != s);
    }
    Ok(out)
}

/// Runs `pipeline` on `g`, verifying after each pass.
pub fn run(
    g: &mut Graph,
    pipeline: &[&str],
    ctx: &Ctx,
    dump: &DumpAfter,
) -> Result<Vec<PassRecord>, Vec<Diagnostic>> {
    let reg = registry();
    let mut records = vec![];
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    for &name in pipeline {
        let pass = reg
            .iter()
            .find(|p| p.name() == name)
            .expect("plan() checked the name");
        let count = seen.entry(name).or_insert(0);
        *count += 1;
        let label = if *count == 1 {
            name.to_string()
        } else {
            format!("{name}.{count}")
        };
        let changed = pass.run(g, ctx)?;
        if changed && name != "schedule" {
            // a schedule describes the graph it was made for
            g.schedule = None;
        }
        let errs = verify(g);
        if !errs.is_empty() {
            let msg: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            return Err(vec![Diagnostic::global(format!(
                "internal error: pass `{label}` produced an invalid graph: {}",
                msg.join("; ")
            ))]);
        }
        let want = match dump {
            DumpAfter::All => true,
            DumpAfter::Pass(p) => p == name || *p == label,
            DumpAfter::None => false,
        };
        records.push(PassRecord {
            label,
            changed,
            stats: stats(g),
            dump: want.then(|| crate::ir::text::print(g)),
        });
    }
    Ok(records)
}
