//! Whole runs: the `fixed` backend (one cleartext interpreter) and the `mpc`
//! backend (three parties on threads over in-memory links, the client and
//! model owner simulated by dealt shares). Outputs are revealed to the client
//! only: each party hands its shares to the client, which reconstructs and
//! checks that the replicated copies agree.

use crate::interp::{execute, Cost, Outcome, VmError};
use crate::source::{held_weights, Clear, Data, Dealt, Source, State, Stateful};
use crate::value::Value;
use ditto_bytecode::{Instr, Kind, Program};
use ditto_protocol::share::{open, open_bits};
use ditto_protocol::{Party, PreCall, Ring, Stats};
use std::time::{Duration, Instant};

/// An output, decoded to reals.
#[derive(Debug, Clone)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// One instruction's cost over all parties: bytes summed, rounds and
/// seconds the maximum over the parties (they run in lock-step).
#[derive(Debug, Clone, Copy, Default)]
pub struct InstrCost {
    pub secs: f64,
    pub bytes_online: u64,
    pub bytes_offline: u64,
    pub rounds_online: u64,
    pub rounds_offline: u64,
}

/// A run's result and cost.
#[derive(Debug, Clone)]
pub struct Report {
    pub outputs: Vec<Output>,
    /// Per instruction, in program order.
    pub costs: Vec<InstrCost>,
    /// Bytes the parties sent each other, all phases, including key setup.
    pub comm: Stats,
    /// Each party's own traffic (`bytes_to` gives every directed link).
    pub party_stats: [Stats; 3],
    /// Bytes the client sent the parties (input shares) and received
    /// (output shares).
    pub client_bytes: u64,
    pub wall_s: f64,
    /// The separate offline phase, when the run had one: seconds (slowest
    /// party) and traffic (bytes of all parties; rounds of one).
    pub offline: Option<(f64, Stats)>,
    /// The conversion calls of the run, when recorded (`MpcOptions::record`).
    pub trace: Vec<PreCall>,
    /// What each party kept (`output … to parties`): the session's state
    /// for its next run, never revealed (the `fixed` backend's cleartext
    /// values at every index).
    pub state: [State; 3],
}

impl Report {
    pub fn rounds_online(&self) -> u64 {
        self.costs.iter().map(|c| c.rounds_online).sum()
    }
    pub fn rounds_offline(&self) -> u64 {
        self.costs.iter().map(|c| c.rounds_offline).sum()
    }
}

fn decode<R: Ring>(v: &[R], frac: u8) -> Vec<f64> {
    let s = (frac as f64).exp2();
    v.iter().map(|e| e.to_i64() as f64 / s).collect()
}

/// The client's reconstruction of output `port` from the parties' values.
fn reveal(prog: &Program, port: usize, vals: [&Value; 3]) -> Result<Output, VmError> {
    let p = &prog.outputs[port];
    let t = &prog.regs[p.reg.0 as usize];
    let frac = match t.kind {
        Kind::Fixed { frac, .. } => frac,
        Kind::Bool => 0,
    };
    let bad = || {
        VmError::Setup(format!(
            "output {:?}: the parties' shares disagree (a party misbehaved)",
            p.name
        ))
    };
    let data = match vals {
        [Value::S32(a), Value::S32(b), Value::S32(c)] => decode(
            &open(&[a.clone(), b.clone(), c.clone()]).ok_or_else(bad)?,
            frac,
        ),
        [Value::S64(a), Value::S64(b), Value::S64(c)] => decode(
            &open(&[a.clone(), b.clone(), c.clone()]).ok_or_else(bad)?,
            frac,
        ),
        [Value::SBool(a), Value::SBool(b), Value::SBool(c)] => {
            open_bits(&[a.clone(), b.clone(), c.clone()])
                .ok_or_else(bad)?
                .iter()
                .map(|&b| b as u8 as f64)
                .collect()
        }
        [Value::P32(a), _, _] => decode(a, frac),
        [Value::P64(a), _, _] => decode(a, frac),
        [Value::PBool(a), _, _] => a.iter().map(|&b| b as u8 as f64).collect(),
        _ => return Err(bad()),
    };
    Ok(Output {
        name: p.name.clone(),
        shape: t.shape.iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Whether output `port` stays with the parties (session state).
fn kept(prog: &Program, port: usize) -> bool {
    prog.outputs[port].owner == Some(ditto_bytecode::Owner::Parties)
}

/// Runs `prog` in the clear (the `fixed` backend).
pub fn run_fixed(prog: &Program, data: Data) -> Result<Report, VmError> {
    run_fixed_with(prog, data, None, false)
}

/// [`run_fixed`] as one run of a session (`session`): `from parties`
/// inputs read `state` (the previous run's `Report::state[0]`), and the
/// weights are kept in the new state for the next run.
pub fn run_fixed_with(
    prog: &Program,
    data: Data,
    state: Option<&State>,
    session: bool,
) -> Result<Report, VmError> {
    let start = Instant::now();
    let clear = Clear {
        program: prog,
        data,
    };
    let src = Stateful::new(&clear, prog, state, false, session);
    let Outcome { outputs, costs } = execute(prog, None, &src, None)?;
    let mut kept_state = carry_weights(state, src);
    let mut revealed = vec![];
    for (i, v) in outputs.into_iter().enumerate() {
        if kept(prog, i) {
            kept_state.insert(prog.outputs[i].name.clone(), std::sync::Arc::new(v));
        } else {
            revealed.push(reveal(prog, i, [&v, &v, &v])?);
        }
    }
    let outputs = revealed;
    Ok(Report {
        outputs,
        costs: costs
            .iter()
            .map(|c| InstrCost {
                secs: c.secs,
                ..Default::default()
            })
            .collect(),
        comm: Stats::default(),
        party_stats: Default::default(),
        client_bytes: 0,
        wall_s: start.elapsed().as_secs_f64(),
        offline: None,
        trace: Vec::new(),
        state: [kept_state.clone(), kept_state.clone(), kept_state],
    })
}

/// A run's new state begins with the weights of the session: those held
/// before and those dealt in this run.
fn carry_weights(before: Option<&State>, src: Stateful) -> State {
    let mut st = before.map(held_weights).unwrap_or_default();
    st.extend(src.dealt.into_inner().unwrap_or_default());
    st
}

/// Options of an in-process MPC run.
pub struct MpcOptions<'a> {
    /// Receive timeout of the links.
    pub timeout: Duration,
    /// Seeds: the parties' key seeds, then the client's and the owner's.
    /// `None` draws them from the OS.
    pub seeds: Option<[[u8; 32]; 5]>,
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    /// Shape the in-memory links like a network (`--net lan|wan`).
    pub net: Option<ditto_net::mem::Shape>,
    /// Record the conversion calls (`Report::trace`).
    pub record: bool,
    /// Run an offline phase for these conversion calls (a recorded trace of
    /// the same program) before the online phase.
    pub offline: Option<&'a [PreCall]>,
    /// The session's state at each party (the previous run's
    /// `Report::state`), read by `from parties` inputs; `None` on a
    /// session's first run.
    pub state: Option<&'a [State; 3]>,
    /// A run of a session: the parties keep the weights they were dealt in
    /// the report's state, and read them from `state` in later runs instead
    /// of a new dealing (as deployed parties read their share files).
    pub session: bool,
}

impl Default for MpcOptions<'_> {
    fn default() -> Self {
        MpcOptions {
            timeout: Duration::from_secs(300),
            seeds: None,
            progress: None,
            net: None,
            record: false,
            offline: None,
            state: None,
            session: false,
        }
    }
}

/// **Insecure, for reproducibility tests only**: every seed of run `run`
/// (the parties' key seeds, the client's, and the owner's — the same for
/// all runs) derived from one public number, so that two executions of the
/// same runs — in process, or through a cluster whose parties, client and
/// `share-weights` are given the same number — exchange the same messages
/// and reconstruct the same outputs bit for bit. Anyone who knows `master`
/// can recompute every share: never use it on real data.
pub fn insecure_seeds(master: u64, run: u64) -> [[u8; 32]; 5] {
    use sha2::{Digest, Sha256};
    let mut s = [[0u8; 32]; 5];
    for (role, k) in s.iter_mut().enumerate() {
        let mut h = Sha256::new();
        h.update(b"ditto insecure seeds");
        h.update(master.to_le_bytes());
        h.update([role as u8]);
        // the owner deals the weights once for every run
        h.update((if role == 4 { 0 } else { run }).to_le_bytes());
        *k = h.finalize().into();
    }
    s
}

/// Runs `prog` on secret shares: three parties on threads over in-memory
/// links (the `mpc` backend).
pub fn run_mpc(prog: &Program, data: Data, opts: &MpcOptions) -> Result<Report, VmError> {
    let seeds = opts.seeds.unwrap_or_else(|| {
        let mut s = [[0u8; 32]; 5];
        for k in s.iter_mut() {
            *k = rand::random();
        }
        s
    });
    let start = Instant::now();
    let data = &data;
    // weights the parties hold from an earlier run of the session
    let held = |port: usize| {
        let key = crate::source::weight_key(prog, port);
        opts.state
            .is_some_and(|s| s.iter().all(|st| st.contains_key(&key)))
    };
    let results = crate::source::with_owner_skipping(prog, data, seeds[4], &held, |feeds| {
        let feeds = feeds.map(|f| std::sync::Mutex::new(Some(f)));
        ditto_net::harness::run3_shaped(opts.timeout, opts.net, |chan| {
            let id = ditto_protocol::Comm::id(chan);
            // taken first, so that it is dropped (and the owner stops feeding
            // this party) however the party ends
            let feed = feeds[id]
                .lock()
                .ok()
                .and_then(|mut f| f.take())
                .ok_or_else(|| VmError::Setup(format!("P{id}: no weight feed")))?;
            let src = Dealt {
                program: prog,
                data: Data {
                    inputs: data.inputs.clone(),
                    weights: data.weights,
                },
                party: id,
                client_seed: seeds[3],
                owner_seed: seeds[4],
                client_bytes: Default::default(),
            };
            let mut party = Party::setup(chan, seeds[id])
                .map_err(|e| VmError::Setup(format!("P{id}: key setup failed: {e}")))?;
            if opts.record {
                party.record_conversions();
            }
            let offline = match opts.offline {
                None => None,
                Some(calls) => Some(
                    party
                        .offline_phase(calls)
                        .map_err(|e| VmError::Setup(format!("P{id}: offline phase: {e}")))?,
                ),
            };
            let progress = if id == 0 { opts.progress } else { None };
            let fed = crate::source::Fed::new(&src, feed);
            let st = opts.state.map(|s| &s[id]);
            let stateful = Stateful::new(&fed, prog, st, true, opts.session);
            let out = execute(prog, Some(&mut party), &stateful, progress)?;
            let weights = carry_weights(opts.state.map(|s| &s[id]), stateful);
            drop(fed);
            if party.prepared_left() > 0 {
                return Err(VmError::Setup(format!(
                "P{id}: {} prepared conversions were not used (the trace is of another program)",
                party.prepared_left()
            )));
            }
            let trace = party.take_trace();
            let stats = ditto_protocol::Comm::stats(chan);
            Ok::<_, VmError>(((out, stats, src.client_bytes()), offline, trace, weights))
        })
    });
    let wall_s = start.elapsed().as_secs_f64();
    // the first failure in party order, preferring one that names a peer
    let mut oks = Vec::new();
    let mut errs = Vec::new();
    for r in results {
        match r {
            Ok(v) => oks.push(v),
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        let pick = errs.iter().position(|e| e.peer().is_none()).unwrap_or(0);
        return Err(errs.swap_remove(pick));
    }
    let mut trace = Vec::new();
    let mut parts = Vec::new();
    let mut held = Vec::new();
    for ((out, stats, client), off, t, w) in oks {
        trace = t; // the same at every party
        held.push(w);
        parts.push(PartyOutcome {
            outcome: out,
            stats,
            client_bytes: client,
            offline: off,
        });
    }
    let parts: [PartyOutcome; 3] = parts
        .try_into()
        .map_err(|_| VmError::Setup("a party returned no result".into()))?;
    let mut rep = assemble(prog, parts, wall_s)?;
    rep.trace = trace;
    for (st, w) in rep.state.iter_mut().zip(held) {
        st.extend(w);
    }
    Ok(rep)
}

/// What one party hands the client: its output values and per-instruction
/// costs, its traffic, the bytes its client sent it, and its offline phase
/// (seconds, traffic) if it ran one.
pub struct PartyOutcome {
    pub outcome: Outcome,
    pub stats: Stats,
    pub client_bytes: u64,
    pub offline: Option<(f64, Stats)>,
}

/// Bytes the client receives for these outputs (all three parties' shares).
fn output_bytes(outputs: &[Value]) -> u64 {
    outputs
        .iter()
        .map(|v| {
            let per = match v {
                Value::S32(_) => 4,
                Value::S64(_) => 8,
                Value::SBool(_) => 1,
                _ => 0,
            };
            3 * 2 * per * v.len() as u64
        })
        .sum()
}

/// The client's side of a finished query: reconstructs the outputs from
/// the three parties' values (checking the replicated copies) and sums
/// their costs; the client's bytes include the output shares it receives.
pub fn assemble(
    prog: &Program,
    parties: [PartyOutcome; 3],
    wall_s: f64,
) -> Result<Report, VmError> {
    // an offline phase counts when all three ran it: the slowest party's
    // seconds, everyone's bytes, one party's rounds (they run in lock-step)
    let offline = match [
        &parties[0].offline,
        &parties[1].offline,
        &parties[2].offline,
    ] {
        [Some(a), Some(b), Some(c)] => {
            let mut st = a.1.add(&b.1).add(&c.1);
            st.rounds_offline =
                a.1.rounds_offline
                    .max(b.1.rounds_offline)
                    .max(c.1.rounds_offline);
            Some((a.0.max(b.0).max(c.0), st))
        }
        _ => None,
    };
    let [p0, p1, p2] = parties.map(|p| (p.outcome, p.stats, p.client_bytes));
    for p in [&p0, &p1, &p2] {
        if p.0.outputs.len() != prog.outputs.len() || p.0.costs.len() != prog.code.len() {
            return Err(VmError::Setup(
                "a party's result does not match the program".into(),
            ));
        }
    }
    let outputs = (0..prog.outputs.len())
        .filter(|&i| !kept(prog, i))
        .map(|i| {
            reveal(
                prog,
                i,
                [&p0.0.outputs[i], &p1.0.outputs[i], &p2.0.outputs[i]],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let state = [&p0, &p1, &p2].map(|p| {
        (0..prog.outputs.len())
            .filter(|&i| kept(prog, i))
            .map(|i| {
                let v = std::sync::Arc::new(p.0.outputs[i].clone());
                (prog.outputs[i].name.clone(), v)
            })
            .collect::<State>()
    });
    let revealed: Vec<Value> = (0..prog.outputs.len())
        .filter(|&i| !kept(prog, i))
        .map(|i| p0.0.outputs[i].clone())
        .collect();
    let costs = (0..prog.code.len())
        .map(|i| {
            let cs: [&Cost; 3] = [&p0.0.costs[i], &p1.0.costs[i], &p2.0.costs[i]];
            InstrCost {
                secs: cs.iter().map(|c| c.secs).fold(0.0, f64::max),
                bytes_online: cs.iter().map(|c| c.stats.bytes_online).sum(),
                bytes_offline: cs.iter().map(|c| c.stats.bytes_offline).sum(),
                rounds_online: cs.iter().map(|c| c.stats.rounds_online).max().unwrap_or(0),
                rounds_offline: cs.iter().map(|c| c.stats.rounds_offline).max().unwrap_or(0),
            }
        })
        .collect();
    Ok(Report {
        outputs,
        costs,
        comm: p0.1.add(&p1.1).add(&p2.1),
        party_stats: [p0.1, p1.1, p2.1],
        client_bytes: p0.2 + p1.2 + p2.2 + output_bytes(&revealed),
        wall_s,
        offline,
        trace: Vec::new(),
        state,
    })
}

/// Estimated wall time of a run over a network: the measured compute time
/// plus one one-way delay per round plus the busiest directed link's bytes
/// at the link bandwidth. (`compute_s` is the run's time without shaping.)
pub fn estimate(rep: &Report, compute_s: f64, shape: ditto_net::mem::Shape) -> f64 {
    let pre = rep.offline.map_or(0, |(_, s)| s.rounds_offline);
    let rounds = (rep.rounds_online() + rep.rounds_offline() + pre) as f64;
    let busiest = rep
        .party_stats
        .iter()
        .flat_map(|s| s.bytes_to.iter().copied())
        .max()
        .unwrap_or(0) as f64;
    compute_s + rounds * shape.one_way.as_secs_f64() + busiest / shape.bytes_per_sec
}

/// The cost-report category of an instruction: its mnemonic, with
/// conversions split by what they do and products by who holds the operands
/// (`mul` is secret × secret, `mul_public` involves a public one); kinds
/// that communicate carry their ring (`compare@64`, `truncate@32`,
/// `upcast@32→64`).
pub fn op_kind(prog: &Program, ins: &Instr) -> String {
    let t = |r: &ditto_bytecode::Reg| &prog.regs[r.0 as usize];
    let fmt = |r| match t(r).kind {
        Kind::Fixed { ring, frac } => (ring, frac),
        Kind::Bool => (0, 0),
    };
    let (dst, srcs) = ins.regs();
    let secret = srcs.iter().any(|r| t(r).secret);
    let ring = |r: &ditto_bytecode::Reg| match t(r).kind {
        Kind::Fixed { ring, .. } => ring,
        Kind::Bool => 0,
    };
    let at = |name: &str, k: u8| format!("{name}@{k}");
    match ins {
        Instr::Convert { dst, a } => {
            if !t(a).secret {
                return "convert_public".into();
            }
            let ((ki, fi), (ko, fo)) = (fmt(a), fmt(dst));
            let trunc = fo < fi;
            let name = match (ko.cmp(&ki), trunc) {
                (std::cmp::Ordering::Equal, true) => "truncate",
                (std::cmp::Ordering::Equal, false) => return "shift_local".into(),
                (std::cmp::Ordering::Greater, true) => "truncate_upcast",
                (std::cmp::Ordering::Greater, false) => "upcast",
                (std::cmp::Ordering::Less, true) => "truncate_downcast",
                (std::cmp::Ordering::Less, false) => return "downcast_local".into(),
            };
            if ki == ko {
                at(name, ki)
            } else {
                format!("{name}@{ki}→{ko}")
            }
        }
        Instr::Mul { a, b, .. } | Instr::MatMul { a, b, .. } => {
            let base = ins.mnemonic().to_lowercase();
            if t(a).secret && t(b).secret {
                at(&base, ring(&dst.expect("a product has a result")))
            } else {
                format!("{base}_public")
            }
        }
        Instr::Select { c, .. } if !t(c).secret => "select_public".into(),
        Instr::Cmp { a, .. } if secret => at("compare", ring(a)),
        Instr::Cmp { .. } => "compare_public".into(),
        Instr::Select { .. }
        | Instr::Max { .. }
        | Instr::Mean { .. }
        | Instr::NormScale { .. }
        | Instr::Embed { .. }
            if secret =>
        {
            at(
                &ins.mnemonic().to_lowercase(),
                ring(&dst.expect("these have a result")),
            )
        }
        _ => ins.mnemonic().to_lowercase(),
    }
}
