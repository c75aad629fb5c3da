//! The pass manager. Each pass has a kebab-case name equal to its file name,
//! a one-line description, and reports whether it changed the graph.
//! Pipelines are data ([`DEFAULT_PIPELINE`]); `--passes` and `--skip` edit
//! them; unknown names are errors listing the valid ones. The verifier runs
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

/// Every pass, in pipeline order.
pub fn registry() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(apply_policy::ApplyPolicy),
        Box::new(lower_nonlinear::LowerNonlinear),
        Box::new(fold_constants::FoldConstants),
        Box::new(weight_layout::WeightLayout),
        Box::new(dot_products::DotProducts),
        Box::new(insert_conversions::InsertConversions),
        Box::new(insert_truncations::InsertTruncations),
        Box::new(cse::Cse),
        Box::new(fuse_truncations::FuseTruncations),
        Box::new(dce::Dce),
        Box::new(check_ranges::CheckRanges),
        Box::new(schedule::Schedule),
    ]
}

pub const DEFAULT_PIPELINE: &[&str] = &[
    "apply-policy",
    "lower-nonlinear",
    "fold-constants",
    "weight-layout",
    "dot-products",
    "insert-conversions",
    "insert-truncations",
    "cse",
    "fuse-truncations",
    "dce",
    "check-ranges",
    "schedule",
];

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
    /// Estimated online bits (all parties); see [`stats`].
    pub est_bits: u64,
    pub est_rounds: u64,
}

/// Online bits (all parties, per element) and rounds of the sign of a value
/// in Z_2^k (`Party::ltz`): two word ANDs and a carry tree over single bits.
fn ltz_cost(k: u64) -> (u64, u64) {
    (
        ditto_protocol::Party::ltz_bits(k as u32),
        decompose_cost(k).1,
    )
}

/// Online bits (all parties, per element) and rounds of one conversion call
/// (`Party::convert`, or `convert_additive` when `fused`).
fn conversion_cost(kin: u32, kout: u32, m: u32, fused: bool) -> (u64, u64) {
    (
        ditto_protocol::party::conversion_bits(kin, kout, m, fused).0,
        CONVERSION_ROUNDS,
    )
}

/// Online rounds of a conversion call (docs/protocols.md).
const CONVERSION_ROUNDS: u64 = 3;

/// Whether `id` is a secret product whose only reader is a conversion call,
/// directly or through a `rescale` and/or a sum in the same format, each read
/// only by the next, which the VM fuses with it (`Party::convert_additive`).
pub fn fused_product(g: &Graph, id: crate::ir::NodeId) -> bool {
    let n = g.node(id);
    let ops = g.operands(id);
    let secret_product = matches!(n.op, Op::Mul | Op::MatMul)
        && ops.iter().all(|&o| g.node(o).ty.vis == Vis::Secret);
    let only_reader = |x: crate::ir::NodeId| {
        let users = g.users(x);
        (users.len() == 1 && g.operands(users[0]).iter().filter(|&&o| o == x).count() == 1)
            .then(|| users[0])
    };
    let mut reader = only_reader(id);
    let mut from = id;
    if let Some(r) = reader.filter(|&r| matches!(g.node(r).op, Op::Rescale { .. })) {
        from = r;
        reader = only_reader(r);
    }
    while let Some(s) = reader.filter(|&s| matches!(g.node(s).op, Op::Add | Op::Sub)) {
        let same = g.node(from).ty.format() == g.node(s).ty.format()
            && g.node(from).ty.shape == g.node(s).ty.shape;
        reader = if same { only_reader(s) } else { None };
    }
    secret_product
        && reader
            .is_some_and(|r| matches!(g.node(r).op, Op::Convert) && schedule::communicates(g, r))
}

/// Whether a fused product feeds the conversion of `x`: `x` is one, or a
/// rescale of one, or a sum (of sums) with one among its terms.
fn fused_under(g: &Graph, x: crate::ir::NodeId) -> bool {
    match g.node(x).op {
        Op::Rescale { .. } => fused_under(g, g.operands(x)[0]),
        Op::Add | Op::Sub => g.operands(x).iter().any(|&o| fused_under(g, o)),
        Op::Mul | Op::MatMul => fused_product(g, x),
        _ => false,
    }
}

/// Online bits (all parties, per element) and rounds of a bit decomposition
/// in Z_2^k (docs/protocols.md): 6kL bits, 2 + L rounds.
fn decompose_cost(k: u64) -> (u64, u64) {
    let k = k as u32;
    (
        ditto_protocol::Party::decompose_bits(k),
        2 + ditto_protocol::Party::prefix_levels(k) as u64,
    )
}

/// Counts conversion calls by kind (one call may be several kinds at once:
/// truncate-and-downcast counts as both; local conversions are counted
/// apart) and estimates communication from
/// the cost model of docs/protocols.md and docs/vm.md, online bits only: a
/// secret product or matmul costs 3k bits per output element and 1 round; a
/// secret conversion k_in + 1 + 2·k_out bits (2·k_in + 1 + 2·k_out fused
/// with its product) and 3 rounds; comparisons, selects on secret
/// conditions, row maxima, means, normalisations and secret
/// lookups what the VM's protocols cost. Rounds are summed along the graph's
/// critical path. Non-linear operations not yet lowered count nothing.
pub fn stats(g: &Graph) -> GraphStats {
    let mut s = GraphStats {
        nodes: g.len(),
        ..Default::default()
    };
    let order = g.topo_order().unwrap_or_else(|_| g.ids());
    let mut depth = std::collections::HashMap::new();
    for id in order {
        let n = g.node(id);
        let ops = g.operands(id);
        let d_in = ops
            .iter()
            .map(|o| depth.get(o).copied().unwrap_or(0))
            .max()
            .unwrap_or(0u64);
        let secret = n.ty.vis == Vis::Secret;
        let mut rounds = 0;
        match &n.op {
            Op::Convert => {
                if let (Some(fi), Some(fo)) = (g.node(ops[0]).ty.format(), n.ty.format()) {
                    let primitive = secret && (fo.frac < fi.frac || fo.ring > fi.ring);
                    if primitive {
                        s.conversions += 1;
                        s.truncations += usize::from(fo.frac < fi.frac);
                        s.upcasts += usize::from(fo.ring > fi.ring);
                        s.downcasts += usize::from(fo.ring < fi.ring);
                        // a product read only here is fused: H's share joins
                        // the opening (k_in more bits, the product's round saved)
                        let fused = fused_under(g, ops[0]);
                        let m = fi.frac.saturating_sub(fo.frac) as u32;
                        let (bits, r) = conversion_cost(fi.ring.bits(), fo.ring.bits(), m, fused);
                        s.est_bits += n.ty.numel() as u64 * bits;
                        rounds = r;
                    } else {
                        s.local_conversions += 1;
                    }
                }
            }
            Op::Mul | Op::MatMul => {
                let both_secret = ops.iter().all(|&o| g.node(o).ty.vis == Vis::Secret);
                if secret && both_secret && !fused_product(g, id) {
                    let k = n.ty.format().map(|f| f.ring.bits()).unwrap_or(64) as u64;
                    s.est_bits += 3 * k * n.ty.numel() as u64;
                    rounds = 1;
                }
            }
            Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne if !secret => {}
            Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne => {
                let k = g
                    .node(ops[0])
                    .ty
                    .format()
                    .map(|f| f.ring.bits())
                    .unwrap_or(64) as u64;
                let m = n.ty.numel() as u64
                    * if matches!(n.op, Op::Eq | Op::Ne) {
                        2
                    } else {
                        1
                    };
                let (bits, r) = ltz_cost(k);
                s.est_bits += bits * m;
                rounds = r;
            }
            Op::Select if g.node(ops[0]).ty.vis != Vis::Secret => {}
            Op::Select => {
                // B2A opening (3 bits) and one product (3k bits)
                let k = n.ty.format().map(|f| f.ring.bits()).unwrap_or(64) as u64;
                s.est_bits += (3 + 3 * k) * n.ty.numel() as u64;
                rounds = 2;
            }
            Op::Max { .. } | Op::Mean { .. } | Op::NormScale { .. } if !secret => {}
            Op::Max { axis } => {
                let k = n.ty.format().map(|f| f.ring.bits()).unwrap_or(64) as u64;
                let shape = &g.node(ops[0]).ty.shape;
                let rows = n.ty.numel() as u64;
                let (dbits, dr) = ltz_cost(k);
                let mut w = shape[*axis] as u64;
                while w > 1 {
                    let pairs = rows * (w / 2);
                    s.est_bits += pairs * (dbits + 3 + 3 * k);
                    rounds += dr + 2;
                    w = w / 2 + w % 2;
                }
            }
            Op::Mean { .. } => {
                // a sum times the public 1/n, then one truncation by f bits
                if let Some(f) = n.ty.format() {
                    let k = f.ring.bits();
                    let (bits, r) = conversion_cost(k, k, f.frac as u32, false);
                    s.est_bits += bits * n.ty.numel() as u64;
                    rounds = r;
                }
            }
            Op::NormScale { kind } => {
                // decomposition, prefix-OR (3k bits per level), then B2A of
                // the bits whose scale is representable (the VM skips zeros)
                if let Some(f) = n.ty.format() {
                    let k = f.ring.bits() as u64;
                    let (dbits, dr) = decompose_cost(k);
                    let levels = k.trailing_zeros() as u64;
                    let used = (0..k as i32 - 1)
                        .filter(|&j| {
                            let v =
                                (kind.scale(j - f.frac as i32) * (f.frac as f64).exp2()).round();
                            v != 0.0
                        })
                        .count() as u64;
                    s.est_bits += n.ty.numel() as u64 * (dbits + 3 * k * levels + 3 * used);
                    rounds = dr + levels + 1;
                }
            }
            Op::Embed if g.node(ops[0]).ty.vis != Vis::Secret => {}
            Op::Embed => {
                // one reshare of the result, after one of onehot(h)·T when
                // the table is looked up by two digits (onehot_split)
                let k = n.ty.format().map(|f| f.ring.bits()).unwrap_or(64) as u64;
                let t = &g.node(ops[1]).ty.shape;
                let (a, _) = ditto_bytecode::onehot_split(t[0] as u64, t[1] as u64);
                let tokens = g.node(ops[0]).ty.numel() as u64;
                s.est_bits += 3 * k * n.ty.numel() as u64;
                rounds = 1;
                if a > 1 {
                    s.est_bits += 3 * k * tokens * a * t[1] as u64;
                    rounds = 2;
                }
            }
            // local, or (not yet lowered) without an MPC instruction
            Op::Input { .. }
            | Op::Weight { .. }
            | Op::Const { .. }
            | Op::Iota { .. }
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
            | Op::High(_) => {}
        }
        depth.insert(id, d_in + rounds);
    }
    s.est_rounds = depth.values().copied().max().unwrap_or(0);
    s
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
    let known: Vec<&'static str> = registry().iter().map(|p| p.name()).collect();
    let check = |n: &str| -> Result<&'static str, String> {
        known
            .iter()
            .copied()
            .find(|k| *k == n)
            .ok_or_else(|| format!("unknown pass `{n}`; passes are: {}", known.join(", ")))
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
