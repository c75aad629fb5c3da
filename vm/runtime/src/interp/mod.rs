//! The interpreter: executes a validated [`Program`] at one party. Values
//! are public (every party computes them in the clear) or secret (this
//! party's replicated shares); each instruction dispatches on its operands'
//! visibility and ring, computing locally what it can and calling the
//! protocols of `ditto-protocol` for the rest.
//!
//! The `fixed` backend is this interpreter with no party: every input and
//! weight is loaded as a public value, so every instruction takes its
//! cleartext path, which is the ring emulation of the protocols (truncation
//! is the floor, the u = 0 case of the conversion's ⌊x/2^m⌋ + u).
//!
//! Format semantics match the compiler's fixed-point evaluator: an operand
//! in another format than its instruction needs is converted first (a public
//! constant is re-encoded from its exact value); products keep their
//! operands' fraction bits, which add up.

use crate::source::Source;
use crate::value::{encode, expand, expand_share, share_public, strides, Arg, Rv, Value};
use ditto_bytecode::{Instr, Kind, Pred, Program, Reg, RegType};
use ditto_protocol::{kernels, AShare, BitShare, Operand, Party, ProtocolError, Ring, Stats};
use std::borrow::Cow;
use std::time::Instant;

/// Why execution stopped.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("instruction {index} ({mnemonic}): {source}")]
    Protocol {
        index: usize,
        mnemonic: &'static str,
        #[source]
        source: ProtocolError,
    },
    #[error("instruction {index} ({mnemonic}): {message}")]
    Exec {
        index: usize,
        mnemonic: &'static str,
        message: String,
    },
    #[error("{0}")]
    Setup(String),
    /// The range guard found a conversion input beyond its precondition.
    #[error(
        "the range guard found a value outside its format's range (a conversion's input \
         |x| ≥ 2^(k−2)): the policy's formats overflow on this input, and the answer would have \
         been wrong. Compile with fewer fraction bits where it overflows, or with calibrated \
         bounds for check-ranges (docs/passes.md)"
    )]
    OutOfRange,
}

/// The program metadata key that turns the range guard on.
pub const GUARD_RANGES: &str = "guard-ranges";

impl VmError {
    /// The peer a protocol failure names, if any.
    pub fn peer(&self) -> Option<usize> {
        match self {
            VmError::Protocol {
                source: ProtocolError::Comm(c),
                ..
            } => Some(c.peer()),
            VmError::Protocol {
                source: ProtocolError::Malformed { peer, .. },
                ..
            } => Some(*peer),
            _ => None,
        }
    }
}

/// An instruction's failure before it is tied to its index.
enum E {
    P(ProtocolError),
    M(String),
}

impl From<ProtocolError> for E {
    fn from(e: ProtocolError) -> E {
        E::P(e)
    }
}

impl From<String> for E {
    fn from(e: String) -> E {
        E::M(e)
    }
}

type Res<T> = Result<T, E>;

/// What one instruction cost this party.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub secs: f64,
    pub stats: Stats,
}

/// A party's result: its value (share, or public) of every output, and the
/// cost of every instruction.
pub struct Outcome {
    pub outputs: Vec<Value>,
    pub costs: Vec<Cost>,
}

struct St<'a, 'p, 'c> {
    prog: &'a Program,
    party: Option<&'p mut Party<'c>>,
    id: usize,
    src: &'a dyn Source,
    /// The current product's only reader is a conversion call: leave it as
    /// an additive share for [`Party::convert_additive`] (no reshare round).
    additive_out: bool,
}

impl<'c> St<'_, '_, 'c> {
    fn party(&mut self) -> Res<&mut Party<'c>> {
        match self.party.as_deref_mut() {
            Some(p) => Ok(p),
            None => Err(E::M(
                "a secret value reached the cleartext backend (internal error)".into(),
            )),
        }
    }
    fn ty(&self, r: Reg) -> &RegType {
        &self.prog.regs[r.0 as usize]
    }
    /// (ring, frac) of a fixed-point register.
    fn fmt(&self, r: Reg) -> Res<(u32, u32)> {
        match self.ty(r).kind {
            Kind::Fixed { ring, frac } => Ok((ring as u32, frac as u32)),
            Kind::Bool => Err(E::M(format!("r{} is boolean, not a number", r.0))),
        }
    }
    fn shape(&self, r: Reg) -> Vec<usize> {
        self.ty(r).shape.iter().map(|&d| d as usize).collect()
    }
}

struct Regs {
    /// Shared so that a weight the session holds is read without a copy.
    vals: Vec<Option<std::sync::Arc<Value>>>,
    /// The real value of each constant (re-encoded when needed elsewhere).
    exact: Vec<Option<f64>>,
    /// The input port a register was loaded from (for secret lookups).
    from_input: Vec<Option<usize>>,
}

impl Regs {
    fn get(&self, r: Reg) -> Res<&Value> {
        self.vals[r.0 as usize]
            .as_deref()
            .ok_or_else(|| E::M(format!("r{} is not live (internal error)", r.0)))
    }
}

/// Selects the ring type from a register's ring width.
macro_rules! by_ring {
    ($ring:expr, $R:ident => $e:expr) => {
        if $ring == 32 {
            type $R = u32;
            $e
        } else {
            type $R = u64;
            $e
        }
    };
}

mod args;
mod batch;
mod convert;
mod exec;

use args::*;
use batch::*;
use convert::*;
pub(crate) use exec::value_fits;
use exec::*;

/// Whether every reader of `x` is a conversion call, or a rescale, reshape,
/// transpose (same format) or sum (same format and shape; the other operand
/// a share, a public value or another fused product) whose readers are such
/// in turn: an additive share of `x` then reaches nothing that needs it
/// reshared (the compiler's `passes::fused_product` says the same).
fn only_into_conversions(prog: &Program, readers: &[Vec<usize>], x: Reg) -> bool {
    let t = |r: &Reg| &prog.regs[r.0 as usize];
    let rs = &readers[x.0 as usize];
    !rs.is_empty()
        && rs.iter().all(|&i| {
            let ins = &prog.code[i];
            let (_, reads) = ins.regs();
            if reads.iter().filter(|&&r| r == x).count() != 1 {
                return false;
            }
            match ins {
                Instr::Convert { dst, a } => match (t(a).kind, t(dst).kind) {
                    (Kind::Fixed { ring: ki, frac: fi }, Kind::Fixed { ring: ko, frac: fo }) => {
                        t(a).secret && (fo < fi || ko > ki)
                    }
                    _ => false,
                },
                Instr::Rescale { dst, .. } => only_into_conversions(prog, readers, *dst),
                Instr::Reshape { a, dst } | Instr::Transpose { a, dst, .. } => {
                    t(a).kind == t(dst).kind && only_into_conversions(prog, readers, *dst)
                }
                Instr::Add { dst, .. } | Instr::Sub { dst, .. } => {
                    t(dst).kind == t(&x).kind
                        && t(dst).shape == t(&x).shape
                        && only_into_conversions(prog, readers, *dst)
                }
                _ => false,
            }
        })
}

/// Runs `prog` at one party (`party` is `None` for the cleartext `fixed`
/// backend). `progress(i, n)` is called as instructions complete.
///
/// Instructions between two `round` markers that do not read each other's
/// results run as groups: those of one batch class (conversions with the
/// same formats, products in one ring, comparisons in one ring, selects on
/// secret conditions in one ring) as one protocol call over their
/// concatenated operands, so they share rounds. A group whose members depend
/// on each other runs one instruction at a time.
pub fn execute(
    prog: &Program,
    party: Option<&mut Party>,
    src: &dyn Source,
    progress: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> Result<Outcome, VmError> {
    let nregs = prog.regs.len();
    let mut last_use = vec![usize::MAX; nregs];
    for (i, ins) in prog.code.iter().enumerate() {
        for r in ins.regs().1 {
            last_use[r.0 as usize] = i;
        }
    }
    let mut regs = Regs {
        vals: vec![None; nregs],
        exact: vec![None; nregs],
        from_input: vec![None; nregs],
    };
    let id = party.as_ref().map(|p| p.id).unwrap_or(0);
    let guard = prog.meta(GUARD_RANGES) == Some("on");
    let mut party = party;
    if let (true, Some(p)) = (guard, party.as_mut()) {
        p.guard_ranges();
    }
    // registers written inside approximations: the guard leaves them alone
    let mut approx = vec![false; nregs];
    if guard {
        let regs =
            ditto_bytecode::decode_regs(prog.meta(ditto_bytecode::APPROX_META).unwrap_or(""))
                .ok_or_else(|| VmError::Setup("malformed `approx` metadata".into()))?;
        for r in regs {
            if let Some(a) = approx.get_mut(r as usize) {
                *a = true;
            }
        }
    }
    let mut st = St {
        prog,
        party,
        id,
        src,
        additive_out: false,
    };
    // products read only by conversion calls (one or several; directly, or
    // through rescales, reshapes, transposes and sums) are fused with them
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nregs];
    let mut writer = vec![usize::MAX; nregs];
    for (i, ins) in prog.code.iter().enumerate() {
        let (d, rs) = ins.regs();
        for r in rs {
            readers[r.0 as usize].push(i);
        }
        if let Some(d) = d {
            writer[d.0 as usize] = i;
        }
    }
    let fusable: Vec<bool> = (0..nregs)
        .map(|r| {
            st.party.is_some()
                && match prog.code.get(writer[r]) {
                    Some(Instr::Mul { a, b, .. }) | Some(Instr::MatMul { a, b, .. }) => {
                        prog.regs[a.0 as usize].secret && prog.regs[b.0 as usize].secret
                    }
                    _ => false,
                }
                && only_into_conversions(prog, &readers, Reg(r as u32))
        })
        .collect();
    let mut outputs: Vec<Option<Value>> = vec![None; prog.outputs.len()];
    let total = prog.code.len();
    let mut costs = vec![Cost::default(); total];
    let wrap_at = |i: usize, e: E| match e {
        E::P(source) => VmError::Protocol {
            index: i,
            mnemonic: prog.code[i].mnemonic(),
            source,
        },
        E::M(message) => VmError::Exec {
            index: i,
            mnemonic: prog.code[i].mnemonic(),
            message,
        },
    };
    let stats_now = |st: &mut St| match st.party.as_deref_mut() {
        Some(p) => p.comm().stats(),
        None => Stats::default(),
    };
    let mut i = 0;
    while i < total {
        let end = (i..total)
            .find(|&t| matches!(prog.code[t], Instr::Round {}))
            .unwrap_or(total);
        let group: Vec<usize> = (i..end).collect();
        // batch only independent groups of more than one instruction
        let mut written = std::collections::HashSet::new();
        let mut independent = st.party.is_some() && group.len() > 1;
        for &t in &group {
            let (d, reads) = prog.code[t].regs();
            if reads.iter().any(|r| written.contains(r)) {
                independent = false;
            }
            if let Some(d) = d {
                written.insert(d);
            }
        }
        let mut done = vec![false; group.len()];
        if independent {
            // classes in order of first appearance
            let keys: Vec<Option<Key>> = group
                .iter()
                .map(|&t| classify(&st, &regs, &fusable, &prog.code[t]))
                .collect();
            // the classes of one batch (conversions of every format) together
            let mut seen: Vec<Key> = Vec::new();
            for k in keys.iter().flatten() {
                if !seen.contains(&k.batch()) {
                    seen.push(k.batch());
                }
            }
            for key in seen {
                let idx: Vec<usize> = (0..group.len())
                    .filter(|&g| keys[g].map(Key::batch) == Some(key))
                    .collect();
                if idx.len() < 2 {
                    continue;
                }
                let members: Vec<&Instr> = idx.iter().map(|&g| &prog.code[group[g]]).collect();
                let first = group[idx[0]];
                if let Some(p) = st.party.as_deref_mut() {
                    p.comm().set_step(first as u64 + 1);
                    let dsts: Vec<usize> = members
                        .iter()
                        .filter_map(|m| m.regs().0)
                        .map(|d| d.0 as usize)
                        .collect();
                    if guard && !matches!(key, Key::Conv { .. }) {
                        p.guard_pause(dsts.iter().all(|&d| approx[d]));
                    } else if guard {
                        // each member's elements, checked unless approximate
                        p.guard_pause(false);
                        p.guard_mask(
                            dsts.iter()
                                .flat_map(|&d| {
                                    std::iter::repeat_n(!approx[d], prog.regs[d].numel() as usize)
                                })
                                .collect(),
                        );
                    }
                }
                let t0 = Instant::now();
                let s0 = stats_now(&mut st);
                let vals =
                    by_ring!(key.ring(), R => exec_batch::<R>(&regs, &mut st, key, &members))
                        .map_err(|e| wrap_at(first, e))?;
                let delta = stats_now(&mut st).since(&s0);
                let secs = t0.elapsed().as_secs_f64();
                // attribute the call's cost by element count; rounds to the first
                let sizes: Vec<u64> = idx
                    .iter()
                    .map(|&g| {
                        let d = prog.code[group[g]].regs().0.expect("a result");
                        prog.regs[d.0 as usize].numel()
                    })
                    .collect();
                let sum: u64 = sizes.iter().sum::<u64>().max(1);
                let mut given = Stats::default();
                for (j, (&g, v)) in idx.iter().zip(vals).enumerate() {
                    let t = group[g];
                    let share = |x: u64| x * sizes[j] / sum;
                    let mut c = Stats {
                        bytes_online: share(delta.bytes_online),
                        bytes_offline: share(delta.bytes_offline),
                        rounds_online: 0,
                        rounds_offline: 0,
                        messages: 0,
                        bytes_to: delta.bytes_to.map(share),
                    };
                    if j == 0 {
                        c.rounds_online = delta.rounds_online;
                        c.rounds_offline = delta.rounds_offline;
                        c.messages = delta.messages;
                    }
                    if j + 1 == idx.len() {
                        // the remainder of the integer division
                        c.bytes_online = delta.bytes_online - given.bytes_online;
                        c.bytes_offline = delta.bytes_offline - given.bytes_offline;
                        c.bytes_to = [0, 1, 2].map(|p| delta.bytes_to[p] - given.bytes_to[p]);
                    }
                    given = given.add(&c);
                    costs[t] = Cost {
                        secs: secs * sizes[j] as f64 / sum as f64,
                        stats: c,
                    };
                    let d = prog.code[t].regs().0.expect("a result");
                    regs.vals[d.0 as usize] = Some(std::sync::Arc::new(v));
                    done[g] = true;
                }
            }
        }
        for (g, &t) in group.iter().enumerate() {
            if done[g] {
                continue;
            }
            let ins = &prog.code[t];
            let t0 = Instant::now();
            let (dst, _) = ins.regs();
            if let Some(p) = st.party.as_deref_mut() {
                p.comm().set_step(t as u64 + 1);
                if guard {
                    p.guard_pause(dst.is_some_and(|d| approx[d.0 as usize]));
                }
            }
            let s0 = stats_now(&mut st);
            st.additive_out = dst.is_some_and(|d| fusable[d.0 as usize]);
            match (ins, dst) {
                (Instr::Output { port, a }, _) => {
                    outputs[*port as usize] =
                        Some(regs.get(*a).map_err(|e| wrap_at(t, e))?.clone());
                }
                (Instr::Weight { port, .. }, Some(d)) => {
                    let v = st
                        .src
                        .weight_shared(*port as usize)
                        .map_err(E::M)
                        .and_then(|v| {
                            exec::check_value(st.ty(d), &v, st.party.is_none())?;
                            Ok(v)
                        })
                        .map_err(|e| wrap_at(t, e))?;
                    regs.vals[d.0 as usize] = Some(v);
                }
                (_, Some(d)) => {
                    let v = exec(&regs, &mut st, ins, d).map_err(|e| wrap_at(t, e))?;
                    let di = d.0 as usize;
                    if let Instr::Const { value, .. } = ins {
                        regs.exact[di] = Some(*value);
                    }
                    if let Instr::Input { port, .. } = ins {
                        regs.from_input[di] = Some(*port as usize);
                    }
                    regs.vals[di] = Some(std::sync::Arc::new(v));
                }
                (_, None) => {}
            }
            costs[t] = Cost {
                secs: t0.elapsed().as_secs_f64(),
                stats: stats_now(&mut st).since(&s0),
            };
            if !independent {
                // free as we go: later members of a dependent group may
                // still need what earlier ones read, which last_use covers
                for r in ins.regs().1 {
                    if last_use[r.0 as usize] == t {
                        regs.vals[r.0 as usize] = None;
                    }
                }
            }
        }
        // free the registers read for the last time in this group, and
        // results nobody reads
        for &t in &group {
            let (d, reads) = prog.code[t].regs();
            for r in reads {
                if last_use[r.0 as usize] == t {
                    regs.vals[r.0 as usize] = None;
                }
            }
            if let Some(d) = d {
                if last_use[d.0 as usize] == usize::MAX {
                    regs.vals[d.0 as usize] = None;
                }
            }
        }
        if let Some(f) = progress {
            f(end.min(total), total);
        }
        i = end + 1;
    }
    let outputs = outputs
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| {
                VmError::Setup(format!(
                    "output {:?} was never written",
                    prog.outputs[i].name
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if let (true, Some(p)) = (guard, st.party.as_mut()) {
        let bad = p.range_verdict().map_err(|source| VmError::Protocol {
            index: prog.code.len(),
            mnemonic: "range verdict",
            source,
        })?;
        if bad {
            return Err(VmError::OutOfRange);
        }
    }
    Ok(Outcome { outputs, costs })
}
