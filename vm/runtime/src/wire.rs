//! The messages of a deployed cluster (`ditto party`, `ditto client`):
//! hellos, the client's input shares, a party's result. Every decoder
//! checks lengths and tags and returns the reason and byte offset of the
//! first problem; none panics on malformed bytes.
//!
//! Also here: what a program asks its client for ([`client_requests`]), the
//! client's dealing of them ([`deal_inputs`]) and a party's [`Received`]
//! source, which serves weights from its share file and inputs from the
//! client's message.

use crate::interp::{Cost, Outcome};
use crate::source::{Data, Dealt, Digit, Source};
use crate::value::Value;
use ditto_bytecode::{Instr, Kind, Owner, Program, RegType};
use ditto_protocol::{AShare, BitShare, Ring, Stats};

/// Version of the cluster protocol (hellos, inputs, results, mesh control).
pub const PROTOCOL: u16 = 2;
pub const CLIENT_MAGIC: &[u8; 8] = b"DITTOCQ\0";
pub const PEER_MAGIC: &[u8; 8] = b"DITTOPH\0";

/// A malformed message: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {message}")]
pub struct WireError {
    pub offset: usize,
    pub message: String,
}

/// A bounds-checked little-endian reader.
pub struct Rd<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8]) -> Rd<'a> {
        Rd { b, pos: 0 }
    }
    pub fn err(&self, message: impl Into<String>) -> WireError {
        WireError {
            offset: self.pos,
            message: message.into(),
        }
    }
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        if self.b.len() - self.pos < n {
            return Err(self.err(format!("truncated in {what}")));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    pub fn f64(&mut self, what: &str) -> Result<f64, WireError> {
        Ok(f64::from_bits(self.u64(what)?))
    }
    /// A count of items of at least `min_bytes` each: refuses counts the
    /// rest of the message cannot hold (no huge allocation from a bad count).
    pub fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, WireError> {
        let n = self.u64(what)?;
        let left = (self.b.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes.max(1) as u64) > left {
            return Err(self.err(format!("{what} {n} exceeds the message")));
        }
        Ok(n as usize)
    }
    pub fn string(&mut self, what: &str) -> Result<String, WireError> {
        let n = self.count(what, 1)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    pub fn end(&self, what: &str) -> Result<(), WireError> {
        if self.pos != self.b.len() {
            return Err(self.err(format!(
                "{} unexpected bytes after {what}",
                self.b.len() - self.pos
            )));
        }
        Ok(())
    }
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u64).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_ring<R: Ring>(w: &mut Vec<u8>, xs: &[R]) {
    ditto_protocol::ring::extend_bytes(w, xs);
}

fn get_ring<R: Ring>(r: &mut Rd, n: usize) -> Result<Vec<R>, WireError> {
    let bytes = (R::BITS / 8) as usize;
    let raw = r.take(n * bytes, "ring elements")?;
    Ok(raw.chunks_exact(bytes).map(R::read_le).collect())
}

fn get_bools(r: &mut Rd, n: usize) -> Result<Vec<bool>, WireError> {
    let raw = r.take(n, "bits")?;
    raw.iter()
        .map(|&b| match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(r.err(format!("bit value {b}"))),
        })
        .collect()
}

/// Appends a register value: tag, element count, elements (both components
/// of a share).
pub fn put_value(w: &mut Vec<u8>, v: &Value) {
    let (tag, n) = match v {
        Value::P32(_) => (0u8, v.len()),
        Value::P64(_) => (1, v.len()),
        Value::PBool(_) => (2, v.len()),
        Value::S32(_) => (3, v.len()),
        Value::S64(_) => (4, v.len()),
        Value::SBool(_) => (5, v.len()),
        Value::Z32(_) => (6, v.len()),
        Value::Z64(_) => (7, v.len()),
    };
    w.push(tag);
    w.extend_from_slice(&(n as u64).to_le_bytes());
    let bools = |w: &mut Vec<u8>, b: &[bool]| w.extend(b.iter().map(|&x| x as u8));
    match v {
        Value::P32(x) | Value::Z32(x) => put_ring(w, x),
        Value::P64(x) | Value::Z64(x) => put_ring(w, x),
        Value::PBool(x) => bools(w, x),
        Value::S32(s) => {
            put_ring(w, &s.a);
            put_ring(w, &s.b)
        }
        Value::S64(s) => {
            put_ring(w, &s.a);
            put_ring(w, &s.b)
        }
        Value::SBool(s) => {
            bools(w, &s.a);
            bools(w, &s.b)
        }
    }
}

pub fn get_value(r: &mut Rd) -> Result<Value, WireError> {
    let tag = r.u8("a value tag")?;
    let per = match tag {
        0 | 6 => 4,
        1 | 7 => 8,
        2 => 1,
        3 => 8,
        4 => 16,
        5 => 2,
        t => return Err(r.err(format!("unknown value tag {t}"))),
    };
    let n = r.count("an element count", per)?;
    Ok(match tag {
        0 => Value::P32(get_ring(r, n)?),
        1 => Value::P64(get_ring(r, n)?),
        2 => Value::PBool(get_bools(r, n)?),
        3 => Value::S32(AShare {
            a: get_ring(r, n)?,
            b: get_ring(r, n)?,
        }),
        4 => Value::S64(AShare {
            a: get_ring(r, n)?,
            b: get_ring(r, n)?,
        }),
        5 => Value::SBool(BitShare {
            a: get_bools(r, n)?,
            b: get_bools(r, n)?,
        }),
        6 => Value::Z32(get_ring(r, n)?),
        _ => Value::Z64(get_ring(r, n)?),
    })
}

/// The opening of a connection to a party: who speaks, which protocol
/// version, which program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub magic: [u8; 8],
    pub version: u16,
    pub program: [u8; 32],
    /// A client's query id, or a party's index (first byte) and dealing id.
    pub tag: [u8; 16],
}

impl Hello {
    pub fn client(program: [u8; 32], query: [u8; 16]) -> Hello {
        Hello {
            magic: *CLIENT_MAGIC,
            version: PROTOCOL,
            program,
            tag: query,
        }
    }
    /// A party's hello to a peer: its index, then the first 15 bytes of
    /// its share file's dealing id, which the peer compares with its own.
    pub fn peer(program: [u8; 32], id: usize, dealing: &[u8; 16]) -> Hello {
        let mut tag = [0u8; 16];
        tag[0] = id as u8;
        tag[1..].copy_from_slice(&dealing[..15]);
        Hello {
            magic: *PEER_MAGIC,
            version: PROTOCOL,
            program,
            tag,
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut w = self.magic.to_vec();
        w.extend_from_slice(&self.version.to_le_bytes());
        w.extend_from_slice(&self.program);
        w.extend_from_slice(&self.tag);
        w
    }
    pub fn decode(b: &[u8]) -> Result<Hello, WireError> {
        let mut r = Rd::new(b);
        let magic: [u8; 8] = r.take(8, "the magic")?.try_into().expect("8");
        if &magic != CLIENT_MAGIC && &magic != PEER_MAGIC {
            return Err(WireError {
                offset: 0,
                message: "not a ditto hello (bad magic)".into(),
            });
        }
        let version = r.u16("the protocol version")?;
        let program = r.take(32, "the program hash")?.try_into().expect("32");
        let tag = r.take(16, "the tag")?.try_into().expect("16");
        r.end("the hello")?;
        Ok(Hello {
            magic,
            version,
            program,
            tag,
        })
    }
    /// Why this hello cannot be served by a party running `program`.
    pub fn check(&self, program: &[u8; 32]) -> Result<(), String> {
        if self.version != PROTOCOL {
            return Err(format!(
                "protocol version {} is not supported (this party speaks version {PROTOCOL})",
                self.version
            ));
        }
        if &self.program != program {
            return Err(format!(
                "program {} was asked for, this party runs {}",
                short_hash(&self.program),
                short_hash(program)
            ));
        }
        Ok(())
    }
}

pub fn short_hash(h: &[u8]) -> String {
    h.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A party's answer to a hello: accepted (with a note), or refused.
pub fn reply(ok: Result<&str, &str>) -> Vec<u8> {
    let mut w = Vec::new();
    let (tag, s) = match ok {
        Ok(s) => (0u8, s),
        Err(s) => (1, s),
    };
    w.push(tag);
    put_str(&mut w, s);
    w
}

pub fn decode_reply(b: &[u8]) -> Result<Result<String, String>, WireError> {
    let mut r = Rd::new(b);
    let tag = r.u8("the reply tag")?;
    let s = r.string("the reply text")?;
    r.end("the reply")?;
    match tag {
        0 => Ok(Ok(s)),
        1 => Ok(Err(s)),
        t => Err(WireError {
            offset: 0,
            message: format!("unknown reply tag {t}"),
        }),
    }
}

/// Something a party asks its client for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// Client input `port`.
    Input { port: usize },
    /// One digit's one-hot matrix of input `port`'s ids, in ring `ring`.
    OneHot { port: usize, digit: Digit, ring: u8 },
}

/// The last byte of a query id that continues a session (a generation):
/// bytes 0..8 are the session, 8..15 its step (little-endian).
const SESSION_MARK: u8 = 0xA5;

/// The query id of step `step` of session `session`.
pub fn session_tag(session: [u8; 8], step: u64) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&session);
    t[8..15].copy_from_slice(&step.to_le_bytes()[..7]);
    t[15] = SESSION_MARK;
    t
}

/// A query id that is no session's (random, marked as such).
pub fn single_tag() -> [u8; 16] {
    let mut t: [u8; 16] = rand::random();
    t[15] = 0;
    t
}

/// The session and step of a query id, if it continues one.
pub fn session_of(tag: &[u8; 16]) -> Option<([u8; 8], u64)> {
    if tag[15] != SESSION_MARK {
        return None;
    }
    let mut step = [0u8; 8];
    step[..7].copy_from_slice(&tag[8..15]);
    Some((tag[..8].try_into().expect("8"), u64::from_le_bytes(step)))
}

/// Replaces a party's values of the outputs the program keeps `to
/// parties` (session state) by an empty public value before its result
/// goes to the client: the client never receives a share of them (and
/// `run::assemble` skips them). Returns them, by output name: the party's
/// session state for the next step.
pub fn withhold_kept(prog: &Program, outputs: &mut [Value]) -> crate::State {
    outputs
        .iter_mut()
        .zip(&prog.outputs)
        .filter(|(_, p)| p.owner == Some(Owner::Parties))
        .map(|(o, p)| {
            let v = std::mem::replace(o, Value::P32(vec![]));
            (p.name.clone(), std::sync::Arc::new(v))
        })
        .collect()
}

/// What a program needs from its client, in program order.
pub fn client_requests(prog: &Program) -> Vec<Request> {
    let mut from_input = std::collections::HashMap::new();
    let mut out = Vec::new();
    for ins in &prog.code {
        match ins {
            Instr::Input { dst, port } => {
                from_input.insert(dst.0, *port as usize);
                // session state is the parties' own, never the client's
                if prog.inputs[*port as usize].owner == Some(Owner::Parties) {
                    continue;
                }
                let r = Request::Input {
                    port: *port as usize,
                };
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            Instr::Embed { dst, ids, table } if prog.regs[ids.0 as usize].secret => {
                let Some(&port) = from_input.get(&ids.0) else {
                    continue;
                };
                let ring = match prog.regs[dst.0 as usize].kind {
                    Kind::Fixed { ring, .. } => ring,
                    Kind::Bool => continue,
                };
                let shape = &prog.regs[table.0 as usize].shape;
                let (rows, width) = (
                    shape.first().copied().unwrap_or(0) as usize,
                    shape.get(1).copied().unwrap_or(0) as usize,
                );
                for digit in Digit::of_lookup(rows, width) {
                    let r = Request::OneHot { port, digit, ring };
                    if !out.contains(&r) {
                        out.push(r);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The type a request's value must have.
fn request_type(prog: &Program, req: &Request) -> RegType {
    match *req {
        Request::Input { port } => prog.regs[prog.inputs[port].reg.0 as usize].clone(),
        Request::OneHot { port, digit, ring } => {
            let ids = &prog.regs[prog.inputs[port].reg.0 as usize];
            RegType {
                secret: true,
                kind: Kind::Fixed { ring, frac: 0 },
                shape: vec![ids.numel(), digit.rows as u64],
            }
        }
    }
}

/// Whether `v` fits type `t` (kind, secrecy, ring, element count).
pub fn fits(t: &RegType, v: &Value) -> Result<(), String> {
    crate::interp::value_fits(t, v, false)
}

/// The client's dealing: each party's share of every request, from the
/// client's `seed` (fresh per query). `inputs` are by input port.
pub fn deal_inputs(
    prog: &Program,
    inputs: Vec<Vec<f64>>,
    seed: [u8; 32],
) -> Result<[Vec<(Request, Value)>; 3], String> {
    if let Some(p) = prog
        .inputs
        .iter()
        .find(|p| p.owner == Some(Owner::ModelOwner))
    {
        return Err(format!(
            "input {:?} belongs to the model owner; a cluster takes client inputs only",
            p.name
        ));
    }
    let no_weights = |name: &str| -> Result<std::borrow::Cow<'_, [f64]>, String> {
        Err(format!("the client has no weight {name:?}"))
    };
    let reqs = client_requests(prog);
    let mut out: [Vec<(Request, Value)>; 3] = Default::default();
    for (party, items) in out.iter_mut().enumerate() {
        let src = Dealt {
            program: prog,
            data: Data {
                inputs: inputs.clone(),
                weights: &no_weights,
            },
            party,
            client_seed: seed,
            owner_seed: [0; 32],
            client_bytes: Default::default(),
        };
        for req in &reqs {
            let v = match *req {
                Request::Input { port } => src.input(port)?,
                Request::OneHot { port, digit, ring } => src.onehot(port, digit, ring)?,
            };
            items.push((*req, v));
        }
    }
    Ok(out)
}

pub fn encode_inputs(items: &[(Request, Value)]) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for (req, v) in items {
        let (kind, port, d, ring) = match *req {
            Request::Input { port } => (0u8, port, [0; 3], 0),
            Request::OneHot { port, digit, ring } => {
                (1, port, [digit.table, digit.div, digit.rows], ring)
            }
        };
        w.push(kind);
        w.extend_from_slice(&(port as u32).to_le_bytes());
        for x in d {
            w.extend_from_slice(&(x as u64).to_le_bytes());
        }
        w.push(ring);
        put_value(&mut w, v);
    }
    w
}

/// A party's source for one query: its weight shares, and the client's
/// input shares checked against the program.
pub struct Received<'a> {
    pub program: &'a Program,
    pub weights: &'a [Value],
    items: Vec<(Request, Value)>,
    bytes: u64,
}

impl<'a> Received<'a> {
    /// Decodes and checks the client's input message: exactly the requests
    /// of [`client_requests`], each of the right type.
    pub fn decode(
        program: &'a Program,
        weights: &'a [Value],
        msg: &[u8],
    ) -> Result<Received<'a>, WireError> {
        let mut r = Rd::new(msg);
        let n = r.count("the item count", 30)?;
        let want = client_requests(program);
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos;
            let kind = r.u8("an item kind")?;
            let port = r.u32("a port")? as usize;
            let table = r.u64("a table's row count")? as usize;
            let div = r.u64("a digit's divisor")? as usize;
            let rows = r.u64("a digit's row count")? as usize;
            let ring = r.u8("a ring")?;
            let req = match kind {
                0 => Request::Input { port },
                1 => Request::OneHot {
                    port,
                    digit: Digit { table, div, rows },
                    ring,
                },
                k => return Err(r.err(format!("unknown item kind {k}"))),
            };
            let bad = |message: String| WireError {
                offset: at,
                message,
            };
            if !want.contains(&req) {
                return Err(bad(format!("{req:?} is not an input of this program")));
            }
            if items.iter().any(|(q, _)| *q == req) {
                return Err(bad(format!("{req:?} sent twice")));
            }
            let v = get_value(&mut r)?;
            fits(&request_type(program, &req), &v).map_err(|m| bad(format!("{req:?}: {m}")))?;
            items.push((req, v));
        }
        r.end("the inputs")?;
        if let Some(m) = want.iter().find(|q| !items.iter().any(|(p, _)| p == *q)) {
            return Err(r.err(format!("{m:?} is missing")));
        }
        Ok(Received {
            program,
            weights,
            items,
            bytes: msg.len() as u64,
        })
    }

    fn get(&self, req: Request) -> Result<Value, String> {
        self.items
            .iter()
            .find(|(q, _)| *q == req)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("the client did not send {req:?}"))
    }
}

impl Source for Received<'_> {
    fn input(&self, port: usize) -> Result<Value, String> {
        self.get(Request::Input { port })
    }
    fn weight(&self, port: usize) -> Result<Value, String> {
        self.weights
            .get(port)
            .cloned()
            .ok_or_else(|| format!("no share of weight {port}"))
    }
    fn onehot(&self, port: usize, digit: Digit, ring: u8) -> Result<Value, String> {
        self.get(Request::OneHot { port, digit, ring })
    }
    fn client_bytes(&self) -> u64 {
        self.bytes
    }
}

fn put_stats(w: &mut Vec<u8>, s: &Stats) {
    for x in [
        s.bytes_online,
        s.bytes_offline,
        s.rounds_online,
        s.rounds_offline,
        s.messages,
        s.bytes_to[0],
        s.bytes_to[1],
        s.bytes_to[2],
    ] {
        w.extend_from_slice(&x.to_le_bytes());
    }
}

fn get_stats(r: &mut Rd) -> Result<Stats, WireError> {
    let mut x = [0u64; 8];
    for v in x.iter_mut() {
        *v = r.u64("statistics")?;
    }
    Ok(Stats {
        bytes_online: x[0],
        bytes_offline: x[1],
        rounds_online: x[2],
        rounds_offline: x[3],
        messages: x[4],
        bytes_to: [x[5], x[6], x[7]],
    })
}

/// A party's answer to a query.
pub struct PartyResult {
    pub outcome: Outcome,
    /// The party's traffic during the query (key setup included).
    pub stats: Stats,
    /// Bytes its links put on the wire (TLS records included).
    pub wire_bytes: u64,
    /// Bytes of the client's input message.
    pub client_bytes: u64,
    pub secs: f64,
    /// The offline phase, when the query had one: seconds and traffic.
    pub offline: Option<(f64, Stats)>,
}

pub fn encode_result(r: Result<&PartyResult, &str>) -> Vec<u8> {
    let mut w = Vec::new();
    match r {
        Err(e) => {
            w.push(1);
            put_str(&mut w, e);
        }
        Ok(p) => {
            w.push(0);
            w.extend_from_slice(&(p.outcome.outputs.len() as u64).to_le_bytes());
            for v in &p.outcome.outputs {
                put_value(&mut w, v);
            }
            w.extend_from_slice(&(p.outcome.costs.len() as u64).to_le_bytes());
            for c in &p.outcome.costs {
                w.extend_from_slice(&c.secs.to_bits().to_le_bytes());
                put_stats(&mut w, &c.stats);
            }
            put_stats(&mut w, &p.stats);
            w.extend_from_slice(&p.wire_bytes.to_le_bytes());
            w.extend_from_slice(&p.client_bytes.to_le_bytes());
            w.extend_from_slice(&p.secs.to_bits().to_le_bytes());
            match &p.offline {
                None => w.push(0),
                Some((secs, st)) => {
                    w.push(1);
                    w.extend_from_slice(&secs.to_bits().to_le_bytes());
                    put_stats(&mut w, st);
                }
            }
        }
    }
    w
}

/// A party's result, or the error it reported.
pub fn decode_result(b: &[u8]) -> Result<Result<PartyResult, String>, WireError> {
    let mut r = Rd::new(b);
    match r.u8("the result tag")? {
        1 => {
            let e = r.string("the error")?;
            r.end("the error")?;
            Ok(Err(e))
        }
        0 => {
            let n = r.count("the output count", 9)?;
            let outputs = (0..n)
                .map(|_| get_value(&mut r))
                .collect::<Result<_, _>>()?;
            let n = r.count("the cost count", 72)?;
            let costs = (0..n)
                .map(|_| {
                    Ok(Cost {
                        secs: r.f64("seconds")?,
                        stats: get_stats(&mut r)?,
                    })
                })
                .collect::<Result<_, WireError>>()?;
            let stats = get_stats(&mut r)?;
            let wire_bytes = r.u64("the wire bytes")?;
            let client_bytes = r.u64("the client bytes")?;
            let secs = r.f64("seconds")?;
            let offline = match r.u8("the offline flag")? {
                0 => None,
                1 => Some((r.f64("offline seconds")?, get_stats(&mut r)?)),
                f => return Err(r.err(format!("offline flag {f}"))),
            };
            r.end("the result")?;
            Ok(Ok(PartyResult {
                outcome: Outcome { outputs, costs },
                stats,
                wire_bytes,
                client_bytes,
                secs,
                offline,
            }))
        }
        t => Err(r.err(format!("unknown result tag {t}"))),
    }
}
