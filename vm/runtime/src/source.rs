//! Where a party's inputs and weights come from. The client shares its
//! input and the model owner its weights as replicated sharings, dealt from
//! the dealer's own seed: components x_0 and x_1 are pseudo-random streams of
//! that seed and x_2 = x − x_0 − x_1, so Pi receives (x_i, x_{i+1}) — two
//! uniformly random vectors whatever x is. The `fixed` backend instead
//! loads everything in the clear, as public values.

use crate::value::{encode_scaled, Rv, Value};
use ditto_bytecode::{Kind, Program, RegType};
use ditto_protocol::prg::Prg;
use ditto_protocol::{AShare, Ring};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// A party's view of the program's inputs: values in the register's type
/// (public, or this party's share).
pub trait Source: Sync {
    fn input(&self, port: usize) -> Result<Value, String>;
    fn weight(&self, port: usize) -> Result<Value, String>;
    /// The same, shared: a session's held weights are read without a copy.
    fn weight_shared(&self, port: usize) -> Result<std::sync::Arc<Value>, String> {
        self.weight(port).map(std::sync::Arc::new)
    }
    /// Shares of the one-hot matrix [ids, digit.rows] of one digit of input
    /// `port`'s integer ids, in ring `ring` with no fraction bits: the client
    /// builds it, so a lookup of secret ids is one or two matrix products
    /// ([`Digit::of_lookup`]).
    fn onehot(&self, port: usize, digit: Digit, ring: u8) -> Result<Value, String>;
    /// Bytes the client sent this party (inputs and one-hot matrices).
    fn client_bytes(&self) -> u64 {
        0
    }
}

/// A weight's values by name: borrowed where the caller holds them as f64
/// already (dealing then copies nothing), owned where it converts them.
pub type Weights<'a> = dyn Fn(&str) -> Result<Cow<'a, [f64]>, String> + Sync + 'a;

/// Cleartext data behind a source: input values by port and a weight lookup
/// by name.
pub struct Data<'a> {
    pub inputs: Vec<Vec<f64>>,
    pub weights: &'a Weights<'a>,
}

impl Data<'_> {
    /// The values of input `port`, which a lookup reads as token ids.
    fn ids(&self, port: usize) -> Result<&[f64], String> {
        self.inputs
            .get(port)
            .map(|v| &v[..])
            .ok_or_else(|| "no value for the ids input".into())
    }
}

pub(crate) fn check_len(what: &str, got: usize, t: &RegType) -> Result<(), String> {
    if got as u64 != t.numel() {
        return Err(format!(
            "{what} has {got} elements, the program expects shape {:?}",
            t.shape
        ));
    }
    Ok(())
}

/// Weight `port`'s values in the program's layout: as the weights give
/// them, or transposed when the port says so (the compiler's
/// `weight-layout` pass moved a transpose of the weight into its dealing).
pub fn weight_values<'a>(
    program: &Program,
    port: usize,
    weights: &Weights<'a>,
) -> Result<Cow<'a, [f64]>, String> {
    let x = checked_weight(program, port, weights)?;
    Ok(match stored_layout(program, port) {
        Some((r, c)) => Cow::Owned(crate::value::transpose_batched(&x, 1, r, c)),
        None => x,
    })
}

/// Weight `port`'s values as the weights give them, refused when their
/// count differs from the program's, or when one is NaN, infinite, or
/// beyond what the weight's format holds (it would wrap in the ring): the
/// error names the tensor and its largest |value|.
pub fn checked_weight<'a>(
    program: &Program,
    port: usize,
    weights: &Weights<'a>,
) -> Result<Cow<'a, [f64]>, String> {
    let p = &program.weights[port];
    let x = weights(&p.name)?;
    let t = &program.regs[p.reg.0 as usize];
    check_len("the tensor", x.len(), t)?;
    check_values(&format!("weight {:?}", p.name), &x, t)?;
    Ok(x)
}

/// Refuses values that the register's format cannot hold: NaN, ±∞, or
/// |x| ≥ 2^(k−1−f) for ring k with f fraction bits.
pub fn check_values(what: &str, x: &[f64], t: &RegType) -> Result<(), String> {
    // one pass: the first non-finite value, else the largest |value|
    let mut big = (0, 0.0f64);
    for (i, v) in x.iter().enumerate() {
        if !v.is_finite() {
            return Err(format!(
                "{what}: element {i} is {v}; weights and inputs must be finite numbers"
            ));
        }
        if v.abs() > big.1 {
            big = (i, v.abs());
        }
    }
    if let Kind::Fixed { ring, frac } = t.kind {
        let limit = ((ring - 1 - frac) as f64).exp2();
        let (i, big) = big;
        if big >= limit {
            return Err(format!(
                "{what}: its largest |value| is {big:.4e} (element {i}), beyond the ±{limit:.4e} \
                 that its format ({ring}, {frac}) holds: the ring would wrap it"
            ));
        }
    }
    Ok(())
}

pub(crate) fn encode_all<R: Ring>(x: &[f64], frac: u8) -> Vec<R> {
    let scale = (frac as f64).exp2();
    x.iter().map(|&v| encode_scaled::<R>(v, scale)).collect()
}

/// [`encode_all`] of the transpose of the r×c matrix `x`, in one pass.
fn encode_transposed<R: Ring>(x: &[f64], frac: u8, r: usize, c: usize) -> Vec<R> {
    let scale = (frac as f64).exp2();
    crate::value::transpose_map(x, r, c, |&v| encode_scaled::<R>(v, scale))
}

/// The stored r×c layout of a weight port's matrix, when the program reads
/// it transposed.
fn stored_layout(program: &Program, port: usize) -> Option<(usize, usize)> {
    let p = &program.weights[port];
    let t = &program.regs[p.reg.0 as usize];
    p.transposed
        .then(|| (t.shape[1] as usize, t.shape[0] as usize))
}

fn public(t: &RegType, x: &[f64]) -> Result<Value, String> {
    check_len("the value", x.len(), t)?;
    match t.kind {
        Kind::Fixed { ring: 32, frac } => Ok(Value::P32(encode_all(x, frac))),
        Kind::Fixed { frac, .. } => Ok(Value::P64(encode_all(x, frac))),
        Kind::Bool => Ok(Value::PBool(x.iter().map(|&v| v != 0.0).collect())),
    }
}

/// One factor of the one-hot a lookup of secret ids takes: over `rows`
/// rows, the one-hot of (id / div) mod rows, for ids below `table` (the
/// looked-up table's rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit {
    pub table: usize,
    pub div: usize,
    pub rows: usize,
}

impl Digit {
    /// The factors of a lookup in a table of `table` rows of `width`
    /// values ([`ditto_bytecode::onehot_split`]): the one-hot over the whole
    /// table, or, for id = h·A + l, the high digit h (over B rows) then the
    /// low digit l (over A rows) — so the table's own row-major layout is
    /// the [B, A·width] matrix the first product needs.
    pub fn of_lookup(table: usize, width: usize) -> Vec<Digit> {
        let (a, b) = ditto_bytecode::onehot_split(table as u64, width as u64);
        let (a, b) = (a as usize, b as usize);
        if a == 1 {
            vec![Digit {
                table,
                div: 1,
                rows: table,
            }]
        } else {
            vec![
                Digit {
                    table,
                    div: a,
                    rows: b,
                },
                Digit {
                    table,
                    div: 1,
                    rows: a,
                },
            ]
        }
    }
}

fn onehot_rows(ids: &[f64], d: Digit) -> Result<Vec<f64>, String> {
    let mut m = vec![0.0; ids.len() * d.rows];
    for (i, &id) in ids.iter().enumerate() {
        if id < 0.0 || id.fract() != 0.0 || id as usize >= d.table {
            return Err(format!(
                "token id {id} is out of range for a table of {} rows",
                d.table
            ));
        }
        m[i * d.rows + (id as usize / d.div.max(1)) % d.rows] = 1.0;
    }
    Ok(m)
}

/// Everything in the clear (the `fixed` backend).
pub struct Clear<'a, 'w> {
    pub program: &'a Program,
    pub data: Data<'w>,
}

impl Source for Clear<'_, '_> {
    fn input(&self, port: usize) -> Result<Value, String> {
        let p = &self.program.inputs[port];
        let x = self
            .data
            .inputs
            .get(port)
            .ok_or_else(|| format!("no value for input {:?}", p.name))?;
        public(&self.program.regs[p.reg.0 as usize], x)
    }
    fn weight(&self, port: usize) -> Result<Value, String> {
        let p = &self.program.weights[port];
        let x = weight_values(self.program, port, self.data.weights)?;
        public(&self.program.regs[p.reg.0 as usize], &x)
    }
    fn onehot(&self, port: usize, digit: Digit, ring: u8) -> Result<Value, String> {
        let m = onehot_rows(self.data.ids(port)?, digit)?;
        Ok(if ring == 32 {
            Value::P32(encode_all(&m, 0))
        } else {
            Value::P64(encode_all(&m, 0))
        })
    }
}

/// The share party `party` receives from the client and the model owner,
/// dealt from their seeds (the in-process simulation of both).
pub struct Dealt<'a, 'w> {
    pub program: &'a Program,
    pub data: Data<'w>,
    pub party: usize,
    pub client_seed: [u8; 32],
    pub owner_seed: [u8; 32],
    pub client_bytes: std::sync::atomic::AtomicU64,
}

/// The dealer's stream for component `c` of item (`tag`, `port`).
fn stream(seed: &[u8; 32], tag: &str, port: usize, c: usize) -> Prg {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(tag.as_bytes());
    h.update((port as u64).to_le_bytes());
    h.update([c as u8]);
    Prg::new(h.finalize().into())
}

/// Party `party`'s share (x_i, x_{i+1}) of a dealt vector of `n` elements;
/// `x` is evaluated only when x_2 is needed. Each stream is drawn once.
pub fn deal_share<R: Ring>(
    seed: &[u8; 32],
    tag: &str,
    port: usize,
    party: usize,
    n: usize,
    x: &dyn Fn() -> Result<Vec<R>, String>,
) -> Result<AShare<R>, String> {
    let s = |c: usize| stream(seed, tag, port, c).ring::<R>(n);
    // x_2 = x − x_0 − x_1, given the component of x_0, x_1 already drawn
    let third = |drawn: &[R], other: usize| -> Result<Vec<R>, String> {
        let mut v = x()?;
        if v.len() != n {
            return Err(format!("{} values for {n} elements", v.len()));
        }
        ditto_protocol::kernels::sub_assign(&mut v, drawn);
        stream(seed, tag, port, other).sub_from(&mut v);
        Ok(v)
    };
    Ok(match party {
        0 => AShare { a: s(0), b: s(1) },
        1 => {
            let a = s(1);
            let b = third(&a, 0)?;
            AShare { a, b }
        }
        _ => {
            let b = s(0);
            let a = third(&b, 1)?;
            AShare { a, b }
        }
    })
}

impl Dealt<'_, '_> {
    /// This party's share of `x()` (public as it is when `t` is public);
    /// `stored`: a secret matrix given in its stored r×c layout, dealt
    /// transposed.
    fn share<'x>(
        &self,
        t: &RegType,
        seed: &[u8; 32],
        tag: &str,
        port: usize,
        stored: Option<(usize, usize)>,
        x: &dyn Fn() -> Result<Cow<'x, [f64]>, String>,
    ) -> Result<Value, String> {
        if !t.secret {
            return public(t, &x()?);
        }
        let n = t.numel() as usize;
        let checked = || -> Result<Cow<'x, [f64]>, String> {
            let v = x()?;
            check_len("the value", v.len(), t)?;
            Ok(v)
        };
        #[allow(clippy::too_many_arguments)]
        fn dealt<'x, R: Rv>(
            seed: &[u8; 32],
            tag: &str,
            port: usize,
            party: usize,
            n: usize,
            frac: u8,
            stored: Option<(usize, usize)>,
            x: &dyn Fn() -> Result<Cow<'x, [f64]>, String>,
        ) -> Result<Value, String> {
            let share = deal_share::<R>(seed, tag, port, party, n, &|| {
                let v = x()?;
                Ok(match stored {
                    Some((r, c)) => encode_transposed(&v, frac, r, c),
                    None => encode_all(&v, frac),
                })
            })?;
            Ok(R::secret(share))
        }
        match t.kind {
            Kind::Fixed { ring: 32, frac } => {
                dealt::<u32>(seed, tag, port, self.party, n, frac, stored, &checked)
            }
            Kind::Fixed { frac, .. } => {
                dealt::<u64>(seed, tag, port, self.party, n, frac, stored, &checked)
            }
            Kind::Bool => Err("secret boolean inputs are not supported".into()),
        }
    }

    fn count(&self, t: &RegType) {
        let bits = match t.kind {
            Kind::Fixed { ring, .. } => ring as u64,
            Kind::Bool => 1,
        };
        self.client_bytes.fetch_add(
            2 * t.numel() * bits / 8,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Source for Dealt<'_, '_> {
    fn input(&self, port: usize) -> Result<Value, String> {
        let p = &self.program.inputs[port];
        let t = &self.program.regs[p.reg.0 as usize];
        let x = || {
            self.data
                .inputs
                .get(port)
                .map(|v| Cow::Borrowed(&v[..]))
                .ok_or_else(|| format!("no value for input {:?}", p.name))
        };
        // the model owner's inputs are dealt with its seed, the client's with the client's
        let (seed, tag) = match p.owner {
            Some(ditto_bytecode::Owner::ModelOwner) => (&self.owner_seed, "owner-input"),
            _ => (&self.client_seed, "input"),
        };
        if t.secret && tag == "input" {
            self.count(t);
        }
        self.share(t, seed, tag, port, None, &x)
    }
    fn weight(&self, port: usize) -> Result<Value, String> {
        let p = &self.program.weights[port];
        let t = &self.program.regs[p.reg.0 as usize];
        if !t.secret {
            return public(t, &weight_values(self.program, port, self.data.weights)?);
        }
        // secret: the transpose, if any, is fused with the encoding
        let stored = stored_layout(self.program, port);
        self.share(t, &self.owner_seed, "weight", port, stored, &|| {
            checked_weight(self.program, port, self.data.weights)
        })
    }
    fn onehot(&self, port: usize, digit: Digit, ring: u8) -> Result<Value, String> {
        let ids = self.data.ids(port)?;
        let t = RegType {
            secret: true,
            kind: Kind::Fixed { ring, frac: 0 },
            shape: vec![ids.len() as u64, digit.rows as u64],
        };
        self.count(&t);
        // each digit from its own streams
        let tag = format!("onehot/{}/{}", digit.div, digit.rows);
        self.share(&t, &self.client_seed, &tag, port, None, &|| {
            onehot_rows(ids, digit).map(Cow::Owned)
        })
    }
    fn client_bytes(&self) -> u64 {
        self.client_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How many dealt weights may wait for a party's instruction.
pub const AHEAD: usize = 3;

/// Weight ports in the order the program's instructions first read them.
pub fn weight_order(program: &Program) -> Vec<usize> {
    let mut seen = vec![false; program.weights.len()];
    let mut order = vec![];
    for i in &program.code {
        if let ditto_bytecode::Instr::Weight { port, .. } = i {
            let p = *port as usize;
            if p < seen.len() && !seen[p] {
                seen[p] = true;
                order.push(p);
            }
        }
    }
    order
}

/// The three parties' shares of weight `port`, dealt once as the model
/// owner would: x_0, x_1 from the owner seed's streams (those
/// [`deal_share`] draws), x_2 = x − x_0 − x_1; Pi gets (x_i, x_{i+1}).
fn deal_weight(
    program: &Program,
    data: &Data<'_>,
    seed: &[u8; 32],
    port: usize,
) -> Result<[Value; 3], String> {
    let p = &program.weights[port];
    let t = &program.regs[p.reg.0 as usize];
    if !t.secret {
        let v = public(t, &weight_values(program, port, data.weights)?)?;
        return Ok([v.clone(), v.clone(), v]);
    }
    let x = checked_weight(program, port, data.weights)?;
    let stored = stored_layout(program, port);
    fn three<R: Rv>(
        seed: &[u8; 32],
        port: usize,
        frac: u8,
        stored: Option<(usize, usize)>,
        x: &[f64],
    ) -> [Value; 3] {
        let x = match stored {
            Some((r, c)) => encode_transposed(x, frac, r, c),
            None => encode_all(x, frac),
        };
        deal_three::<R>(seed, "weight", port, x).map(R::secret)
    }
    match t.kind {
        Kind::Fixed { ring: 32, frac } => Ok(three::<u32>(seed, port, frac, stored, &x)),
        Kind::Fixed { frac, .. } => Ok(three::<u64>(seed, port, frac, stored, &x)),
        Kind::Bool => Err("a boolean weight cannot be shared".into()),
    }
}

/// The three parties' shares of the encoded `x`, dealt once: x_0, x_1 are
/// the streams [`deal_share`] draws, x_2 = x − x_0 − x_1, and Pi gets
/// (x_i, x_{i+1}).
pub(crate) fn deal_three<R: Ring>(
    seed: &[u8; 32],
    tag: &str,
    port: usize,
    mut x: Vec<R>,
) -> [AShare<R>; 3] {
    let x0 = stream(seed, tag, port, 0).ring::<R>(x.len());
    let x1 = stream(seed, tag, port, 1).ring::<R>(x.len());
    ditto_protocol::kernels::sub_assign(&mut x, &x0);
    ditto_protocol::kernels::sub_assign(&mut x, &x1);
    [
        AShare {
            a: x0.clone(),
            b: x1.clone(),
        },
        AShare {
            a: x1,
            b: x.clone(),
        },
        AShare { a: x, b: x0 },
    ]
}

/// What the in-process model owner sends one party: weight ports and their
/// shares, in the program's reading order.
pub type Feed = std::sync::mpsc::Receiver<(usize, Result<Value, String>)>;

/// Runs `body` beside the model owner of an in-process run: a thread that
/// deals every weight once (not once per party that needs x_2), in the
/// order the program reads them, each party at most [`AHEAD`] weights ahead
/// of its `weight` instruction — so dealing overlaps the parties' work and
/// waits, as the owner's does in a deployment. `body` gets each party's
/// feed; the owner stops when every feed is dropped.
pub fn with_owner<T>(
    program: &Program,
    data: &Data<'_>,
    seed: [u8; 32],
    body: impl FnOnce([Feed; 3]) -> T,
) -> T {
    with_owner_skipping(program, data, seed, &|_| false, body)
}

/// [`with_owner`] without the weight ports `held` says the parties hold
/// already (dealt in an earlier run of the session).
pub fn with_owner_skipping<T>(
    program: &Program,
    data: &Data<'_>,
    seed: [u8; 32],
    held: &dyn Fn(usize) -> bool,
    body: impl FnOnce([Feed; 3]) -> T,
) -> T {
    let mut order = weight_order(program);
    order.retain(|&p| !held(p));
    std::thread::scope(|s| {
        let [(t0, r0), (t1, r1), (t2, r2)] = [(); 3].map(|_| std::sync::mpsc::sync_channel(AHEAD));
        let txs = [t0, t1, t2];
        s.spawn(move || {
            let mut open = [true; 3];
            for port in order {
                let dealt = deal_weight(program, data, &seed, port);
                let shares: [Result<Value, String>; 3] = match dealt {
                    Ok(vs) => vs.map(Ok),
                    Err(e) => [Err(e.clone()), Err(e.clone()), Err(e)],
                };
                for ((tx, v), live) in txs.iter().zip(shares).zip(open.iter_mut()) {
                    // a party that stopped (finished or failed) no longer reads
                    *live = *live && tx.send((port, v)).is_ok();
                }
                if open.iter().all(|o| !o) {
                    break;
                }
            }
        });
        body([r0, r1, r2])
    })
}

/// One party's session state: the values it kept (`output … to parties`)
/// in the previous run of a session, by output name — its shares, or the
/// cleartext values of the `fixed` backend — and the weights it was dealt
/// (under [`weight_key`]), which later runs read instead of a new dealing,
/// as a deployed party reads its share file.
pub type State = std::collections::BTreeMap<String, std::sync::Arc<Value>>;

const WEIGHT_KEY: &str = "weight ";

/// The weights a state holds (those of [`weight_key`]), without the values
/// a run kept.
pub fn held_weights(state: &State) -> State {
    state
        .iter()
        .filter(|(k, _)| k.starts_with(WEIGHT_KEY))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The state key of a dealt weight: its tensor name and register type.
pub fn weight_key(program: &Program, port: usize) -> String {
    let p = &program.weights[port];
    format!(
        "{WEIGHT_KEY}{} {}{}",
        p.name,
        program.regs[p.reg.0 as usize],
        if p.transposed { " transposed" } else { "" }
    )
}

/// A source whose `from parties` inputs come from the party's session
/// state: the value kept under the same name, or zero on a session's first
/// run (a sharing of zero is all-zero words: nothing to send). Every other
/// read goes to `inner`.
pub struct Stateful<'s> {
    pub inner: &'s dyn Source,
    pub program: &'s Program,
    pub state: Option<&'s State>,
    /// Whether values are secret shares (`mpc`) or cleartext (`fixed`).
    pub shared: bool,
    /// Record the weights this run reads from `inner` in `dealt` (a run of
    /// a session: later runs read them from the state).
    pub record: bool,
    pub dealt: std::sync::Mutex<State>,
}

impl<'s> Stateful<'s> {
    pub fn new(
        inner: &'s dyn Source,
        program: &'s Program,
        state: Option<&'s State>,
        shared: bool,
        record: bool,
    ) -> Stateful<'s> {
        Stateful {
            inner,
            program,
            state,
            shared,
            record,
            dealt: Default::default(),
        }
    }
}

impl Source for Stateful<'_> {
    fn input(&self, port: usize) -> Result<Value, String> {
        let p = &self.program.inputs[port];
        if p.owner != Some(ditto_bytecode::Owner::Parties) {
            return self.inner.input(port);
        }
        let t = &self.program.regs[p.reg.0 as usize];
        let n = t.numel() as usize;
        let ring = match t.kind {
            Kind::Fixed { ring, .. } => ring,
            Kind::Bool => return Err(format!("state `{}` is boolean (not supported)", p.name)),
        };
        let Some(v) = self.state.and_then(|s| s.get(&p.name)) else {
            return Ok(match (self.shared && t.secret, ring) {
                (true, 32) => Value::S32(AShare::zeros(n)),
                (true, _) => Value::S64(AShare::zeros(n)),
                (false, 32) => Value::P32(vec![0; n]),
                (false, _) => Value::P64(vec![0; n]),
            });
        };
        let fits = match &**v {
            Value::S32(_) | Value::P32(_) => ring == 32,
            Value::S64(_) | Value::P64(_) => ring == 64,
            _ => false,
        };
        if !fits || v.len() != n {
            return Err(format!(
                "state `{}` kept by the previous run does not fit this program's input {t}",
                p.name
            ));
        }
        Ok((**v).clone())
    }
    fn weight(&self, port: usize) -> Result<Value, String> {
        self.weight_shared(port).map(|v| (*v).clone())
    }
    fn weight_shared(&self, port: usize) -> Result<std::sync::Arc<Value>, String> {
        let key = weight_key(self.program, port);
        if let Some(v) = self.state.and_then(|s| s.get(&key)) {
            return Ok(v.clone());
        }
        let v = std::sync::Arc::new(self.inner.weight(port)?);
        if self.record {
            if let Ok(mut d) = self.dealt.lock() {
                d.insert(key, v.clone());
            }
        }
        Ok(v)
    }
    fn onehot(&self, port: usize, digit: Digit, ring: u8) -> Result<Value, String> {
        self.inner.onehot(port, digit, ring)
    }
    fn client_bytes(&self) -> u64 {
        self.inner.client_bytes()
    }
}

/// A party's source with its weights from the model owner's feed and
/// everything else from `inner`. The party reads weights in program order,
/// which is the owner's order; a port read a second time is dealt again by
/// `inner`.
pub struct Fed<'s> {
    pub inner: &'s dyn Source,
    rx: std::sync::Mutex<Feed>,
    taken: std::sync::Mutex<std::collections::HashSet<usize>>,
}

impl<'s> Fed<'s> {
    pub fn new(inner: &'s dyn Source, feed: Feed) -> Fed<'s> {
        Fed {
            inner,
            rx: std::sync::Mutex::new(feed),
            taken: Default::default(),
        }
    }
}

impl Source for Fed<'_> {
    fn input(&self, port: usize) -> Result<Value, String> {
        self.inner.input(port)
    }
    fn weight(&self, port: usize) -> Result<Value, String> {
        fn poisoned<E>(_: E) -> String {
            "a party thread panicked while reading weights".into()
        }
        if !self.taken.lock().map_err(poisoned)?.insert(port) {
            return self.inner.weight(port);
        }
        match self.rx.lock().map_err(poisoned)?.recv() {
            Ok((p, v)) if p == port => v,
            Ok((p, _)) => Err(format!(
                "internal error: the model owner sent weight {p} where {port} was read"
            )),
            // the owner stopped early: deal it here
            Err(_) => self.inner.weight(port),
        }
    }
    fn onehot(&self, port: usize, digit: Digit, ring: u8) -> Result<Value, String> {
        self.inner.onehot(port, digit, ring)
    }
    fn client_bytes(&self) -> u64 {
        self.inner.client_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ditto_bytecode::{Instr, Port, Reg};

    /// The in-process owner deals exactly the shares each party's own
    /// dealer (and so a share file) gives it, transposed or not, in both
    /// rings.
    #[test]
    fn the_owner_deals_what_each_party_would() {
        let reg = |ring, shape: Vec<u64>| RegType {
            secret: true,
            kind: Kind::Fixed { ring, frac: 8 },
            shape,
        };
        let port = |name: &str, r: u32, transposed| Port {
            name: name.into(),
            reg: Reg(r),
            owner: None,
            transposed,
        };
        let prog = Program {
            regs: vec![reg(32, vec![3, 2]), reg(64, vec![5]), reg(32, vec![2, 3])],
            inputs: vec![],
            weights: vec![port("m", 0, true), port("v", 1, false), port("m", 2, false)],
            outputs: vec![],
            code: (0..3)
                .map(|p| Instr::Weight {
                    dst: Reg(p),
                    port: p,
                })
                .collect(),
            scopes: vec![],
            scope_of: vec![],
            meta: vec![],
        };
        let m: Vec<f64> = (0..6).map(|i| i as f64 * 0.75 - 2.0).collect();
        let v: Vec<f64> = (0..5).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let weights = |name: &str| -> Result<Cow<'_, [f64]>, String> {
            Ok(Cow::Borrowed(if name == "m" { &m[..] } else { &v[..] }))
        };
        let data = || Data {
            inputs: vec![],
            weights: &weights,
        };
        let seed = [9u8; 32];
        for w in weight_order(&prog) {
            let all = deal_weight(&prog, &data(), &seed, w).unwrap();
            for (party, got) in all.iter().enumerate() {
                let own = Dealt {
                    program: &prog,
                    data: data(),
                    party,
                    client_seed: [0; 32],
                    owner_seed: seed,
                    client_bytes: Default::default(),
                };
                assert_eq!(*got, own.weight(w).unwrap(), "port {w}, P{party}");
            }
        }
    }
}
