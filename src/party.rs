//! `ditto party`: one compute party of a deployed cluster, a long-running
//! server. It links to the other two parties over mutually authenticated
//! TLS (certificates pinned by the cluster file), checks in a handshake that
//! they speak the same protocol version and run the same program, and then
//! serves clients' queries one after another.
//!
//! Connections: every party listens on its cluster address. A party dials
//! the parties with a smaller index and accepts the others; clients dial all
//! three. An acceptor thread does each TLS handshake and hello, then hands
//! party links to the mesh and clients to the queue.
//!
//! A query: P0 takes the first queued client and announces its query id to
//! P1 and P2, which pick up the same client's connection. Each party reads
//! its input shares and checks them against the program; the parties agree
//! that all three are ready; then they run the program and each sends its
//! output shares and costs to the client. Any failure on the mesh (a peer
//! that vanished, timed out or sent a bad frame) ends the query with an
//! error naming the peer, and the parties rebuild the mesh, so a restarted
//! party is taken back in.

use crate::cluster::Cluster;
use anyhow::{anyhow, Context, Result};
use ditto_net::tls::{self, ServerStream, TlsLink};
use ditto_net::{Channel, Link};
use ditto_protocol::{Comm, CommError, Party, Phase, PreCall};
use ditto_vm::wire::{self, Hello, PartyResult, Received};
use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct PartyArgs {
    /// This party's index: 0, 1 or 2.
    #[arg(long)]
    id: usize,
    #[arg(long)]
    cluster: PathBuf,
    /// The bytecode program (`ditto compile ... -o FILE.dbc`).
    #[arg(long)]
    program: PathBuf,
    /// This party's weight share file (`ditto share-weights`).
    #[arg(long)]
    shares: PathBuf,
    /// Seconds without a message from a peer before a query fails.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Clients that may wait for their turn; more are refused.
    #[arg(long, default_value_t = 8)]
    queue: usize,
    /// Exit after serving this many queries (default: serve forever).
    #[arg(long)]
    queries: Option<usize>,
    /// INSECURE, for reproducibility tests: the key seed of the k-th query
    /// served is derived from this public number (`ditto_vm::insecure_seeds`)
    /// instead of drawn from the OS.
    #[arg(long, hide = true, value_name = "N")]
    insecure_seed: Option<u64>,
}

/// Step label of the mesh's control messages (query start, readiness).
const CONTROL: u64 = ditto_protocol::comm::STEP_CONTROL;
/// Handshakes, hellos and small control messages.
const SHORT: Duration = Duration::from_secs(10);
/// The largest client message accepted (input shares).
const MAX_INPUT: u64 = 1 << 32;

struct Waiting {
    query: [u8; 16],
    client: String,
    stream: ServerStream,
    /// The client's input message, read before the query is queued: a
    /// client that stops after its hello (say, on another party's
    /// handshake) never starts a query.
    input: Vec<u8>,
    since: Instant,
}

/// Clients that said hello and wait for their query to run.
struct Board {
    q: Mutex<VecDeque<Waiting>>,
    cv: Condvar,
    limit: usize,
}

impl Board {
    /// P0: the first waiting client, if one comes within `wait`.
    fn first(&self, wait: Duration) -> Option<Waiting> {
        let q = self.q.lock().unwrap_or_else(|p| p.into_inner());
        let (mut q, _) = self
            .cv
            .wait_timeout_while(q, wait, |q| q.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        q.pop_front()
    }
    /// P1, P2: the client of query `id`, if it comes within `wait`.
    fn take(&self, id: &[u8; 16], wait: Duration) -> Option<Waiting> {
        let q = self.q.lock().unwrap_or_else(|p| p.into_inner());
        let (mut q, _) = self
            .cv
            .wait_timeout_while(q, wait, |q| !q.iter().any(|w| &w.query == id))
            .unwrap_or_else(|p| p.into_inner());
        let i = q.iter().position(|w| &w.query == id)?;
        q.remove(i)
    }
}

struct Ctx {
    id: usize,
    hash: [u8; 32],
    /// The dealing id of this party's share file, compared with each peer's.
    dealing: [u8; 16],
    cluster: Cluster,
    server: Arc<rustls::ServerConfig>,
    board: Board,
    peers: Mutex<Sender<(usize, TlsLink)>>,
    /// Each client's open session (a generation), by client name.
    sessions: Mutex<HashMap<String, Session>>,
}

/// A client's open session: its id, the last step run, and this party's
/// shares of what that step kept `to parties`.
type Session = ([u8; 8], u64, ditto_vm::State);

fn log(id: usize, msg: impl std::fmt::Display) {
    eprintln!("P{id}: {msg}");
}

/// Why a query loop ended.
enum End {
    /// The mesh is unusable: rebuild it.
    Broken(String),
}

pub fn party(args: PartyArgs) -> Result<()> {
    let id = args.id;
    if id > 2 {
        anyhow::bail!("--id is 0, 1 or 2");
    }
    let bytes = std::fs::read(&args.program)
        .with_context(|| format!("cannot read {}", args.program.display()))?;
    let prog = ditto_bytecode::Program::decode(&bytes)
        .map_err(|e| anyhow!("{}: {e}", args.program.display()))?;
    let cluster = Cluster::load(&args.cluster)?;
    let share_bytes = std::fs::read(&args.shares)
        .with_context(|| format!("cannot read {}", args.shares.display()))?;
    let file = ditto_vm::shares::read_share_file(&share_bytes, &prog, id as u8)
        .map_err(|e| anyhow!("{}: {e}", args.shares.display()))?;
    let (dealing, weights) = (file.dealing, file.weights);
    drop(share_bytes);
    let me = cluster.party_identity(id)?;
    let mut allowed: Vec<_> = cluster.party_certs.to_vec();
    allowed.extend(cluster.client_certs.iter().map(|(_, c)| c.clone()));
    let server = tls::server_config(&me, allowed).map_err(|e| anyhow!("TLS setup: {e}"))?;
    let addr = cluster.address(id)?;
    let listener =
        TcpListener::bind(addr).with_context(|| format!("P{id} cannot listen on {addr}"))?;
    let (peer_tx, peer_rx) = channel();
    let hash = prog.hash();
    let ctx = Arc::new(Ctx {
        id,
        hash,
        dealing,
        cluster,
        server,
        board: Board {
            q: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
            limit: args.queue,
        },
        peers: Mutex::new(peer_tx),
        sessions: Mutex::new(HashMap::new()),
    });
    log(
        id,
        format!(
            "listening on {addr}, program {} ({} config {}, policy {}), {} weight shares",
            wire::short_hash(&hash),
            prog.meta("model").unwrap_or("?"),
            prog.meta("config").unwrap_or("?"),
            prog.meta("policy").unwrap_or("?"),
            weights.len()
        ),
    );
    let c2 = ctx.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(sock) = conn else { continue };
            let c = c2.clone();
            std::thread::spawn(move || arrive(&c, sock));
        }
    });
    let timeout = Duration::from_secs(args.timeout);
    if args.insecure_seed.is_some() {
        log(
            id,
            "INSECURE: key seeds derived from a public number (--insecure-seed); for tests only",
        );
    }
    // the key seed of the query with this index
    let seed_of = |q: usize| match args.insecure_seed {
        Some(m) => ditto_vm::insecure_seeds(m, q as u64)[id],
        None => rand::random(),
    };
    let mut served = 0usize;
    // the conversion calls of the program, recorded by the first query: the
    // later ones prepare their offline phase while they wait
    let mut trace: Option<Vec<PreCall>> = None;
    loop {
        let links = establish(&ctx, &me, &peer_rx)?;
        let mut chan = Channel::new(id, links, timeout);
        let mut prepared: Option<Ahead> = None;
        log(id, "mesh up: linked to the other two parties");
        loop {
            match query(
                &ctx,
                &prog,
                &weights,
                &mut chan,
                timeout,
                &mut trace,
                &mut prepared,
                seed_of(served),
            ) {
                Ok(true) => {
                    served += 1;
                    if args.queries == Some(served) {
                        log(id, format!("served {served} queries; exiting"));
                        return Ok(());
                    }
                    // all three finished the same query and hold the same
                    // trace: prepare the next query's offline phase now
                    if let Some(t) = &trace {
                        match prepare(&mut chan, t, seed_of(served)) {
                            Ok(p) => prepared = Some(p),
                            Err(e) => {
                                log(
                                    id,
                                    format!("preparing the next query: {e}; rebuilding the mesh"),
                                );
                                break;
                            }
                        }
                    }
                }
                Ok(false) => {}
                Err(End::Broken(why)) => {
                    log(id, format!("{why}; rebuilding the mesh"));
                    break;
                }
            }
        }
    }
}

/// An incoming connection: TLS handshake, identity, hello.
fn arrive(ctx: &Ctx, sock: std::net::TcpStream) {
    let id = ctx.id;
    let from = sock
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut s = match tls::accept(sock, ctx.server.clone(), SHORT) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            log(
                id,
                format!("a connection from {from} closed during the TLS handshake"),
            );
            return;
        }
        Err(e) => {
            log(
                id,
                format!("refused a connection from {from}: {}", tls::explain(&e)),
            );
            return;
        }
    };
    let cert = tls::peer_cert(&s.conn);
    let party = ctx
        .cluster
        .party_certs
        .iter()
        .position(|c| Some(c) == cert.as_ref());
    let client = ctx
        .cluster
        .client_certs
        .iter()
        .find(|(_, c)| Some(c) == cert.as_ref())
        .map(|(n, _)| n.clone());
    let hello = match tls::read_msg(&mut s, 1024)
        .map_err(|e| e.to_string())
        .and_then(|m| Hello::decode(&m).map_err(|e| format!("malformed hello: {e}")))
    {
        Ok(h) => h,
        Err(e) => {
            log(id, format!("{from}: {e}"));
            let _ = tls::write_msg(&mut s, &wire::reply(Err(&e)));
            return;
        }
    };
    let refuse = |s: &mut ServerStream, why: String| {
        log(id, format!("refused {from}: {why}"));
        let _ = tls::write_msg(s, &wire::reply(Err(&why)));
    };
    if let Err(why) = hello.check(&ctx.hash) {
        return refuse(&mut s, why);
    }
    match (party, client, &hello.magic) {
        (Some(j), _, m) if m == wire::PEER_MAGIC => {
            if hello.tag[0] as usize != j || j <= id {
                return refuse(
                    &mut s,
                    format!("P{j}'s certificate with a hello for P{}", hello.tag[0]),
                );
            }
            if hello.tag[1..] != ctx.dealing[..15] {
                return refuse(
                    &mut s,
                    format!(
                        "P{j}'s weight shares come from another dealing (dealing {}…) than P{id}'s \
                         (dealing {}…): give the three parties the files of one `ditto share-weights` run",
                        wire::short_hash(&hello.tag[1..]),
                        wire::short_hash(&ctx.dealing)
                    ),
                );
            }
            if tls::write_msg(&mut s, &wire::reply(Ok("linked"))).is_err() {
                return;
            }
            match TlsLink::from_server(s) {
                Ok(l) => {
                    let tx = ctx.peers.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = tx.send((j, l));
                }
                Err(e) => log(id, format!("link to P{j}: {e}")),
            }
        }
        (_, Some(name), m) if m == wire::CLIENT_MAGIC => {
            let mut q = ctx.board.q.lock().unwrap_or_else(|p| p.into_inner());
            q.retain(|w| w.since.elapsed() < Duration::from_secs(600));
            if q.len() >= ctx.board.limit {
                let n = q.len();
                drop(q);
                return refuse(
                    &mut s,
                    format!("busy: {n} queries are waiting (the limit); try again later"),
                );
            }
            let note = format!("queued behind {} other queries", q.len());
            drop(q);
            if tls::write_msg(&mut s, &wire::reply(Ok(&note))).is_err() {
                return;
            }
            // the inputs follow once the client has all three hellos answered
            let _ = s.sock.set_read_timeout(Some(SHORT * 3));
            let input = match tls::read_msg(&mut s, MAX_INPUT) {
                Ok(m) => m,
                Err(e) => {
                    log(
                        id,
                        format!(
                            "client {name} left before sending its inputs ({}); nothing was queued",
                            tls::explain(&e)
                        ),
                    );
                    return;
                }
            };
            let mut q = ctx.board.q.lock().unwrap_or_else(|p| p.into_inner());
            q.push_back(Waiting {
                query: hello.tag,
                client: name,
                stream: s,
                input,
                since: Instant::now(),
            });
            ctx.board.cv.notify_all();
        }
        _ => refuse(&mut s, "a hello that does not match its certificate".into()),
    }
}

/// Dials party `j` (< this party) until it answers the hello.
fn dial_peer(ctx: &Ctx, me: &tls::Identity, j: usize) -> Result<TlsLink> {
    let id = ctx.id;
    let addr = ctx.cluster.address(j)?;
    let mut said = false;
    loop {
        let attempt =
            tls::dial(&addr, me, ctx.cluster.party_certs[j].clone(), SHORT).and_then(|mut s| {
                let m = tls::request(
                    &mut s,
                    &Hello::peer(ctx.hash, id, &ctx.dealing).encode(),
                    1 << 16,
                )?;
                Ok((s, m))
            });
        let why = match attempt {
            Ok((s, m)) => match wire::decode_reply(&m) {
                Ok(Ok(_)) => return Ok(TlsLink::from_client(s)?),
                Ok(Err(why)) => anyhow::bail!("P{j} refused this party: {why}"),
                Err(e) => anyhow::bail!("P{j} answered with a malformed reply: {e}"),
            },
            Err(e) => tls::explain(&e),
        };
        if why.contains("pinned") {
            anyhow::bail!("P{j} at {addr}: {why}");
        }
        if !said {
            log(id, format!("waiting for P{j} at {addr} ({why})"));
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Links to the other two parties: dials the smaller indices, takes the
/// larger ones from the acceptor. Waits as long as it takes; fails only on
/// a configuration error (a refused hello or an unpinned certificate).
fn establish(
    ctx: &Ctx,
    me: &tls::Identity,
    peer_rx: &Receiver<(usize, TlsLink)>,
) -> Result<[Option<Box<dyn Link>>; 3]> {
    let id = ctx.id;
    let mut links: [Option<Box<dyn Link>>; 3] = [None, None, None];
    for (j, slot) in links.iter_mut().enumerate().take(id) {
        *slot = Some(Box::new(dial_peer(ctx, me, j)?));
    }
    let mut said = false;
    while links[id + 1..]
        .iter()
        .any(|l| l.as_ref().is_none_or(|l| !l.alive()))
    {
        match peer_rx.recv_timeout(Duration::from_millis(500)) {
            Ok((j, l)) => links[j] = Some(Box::new(l)),
            Err(_) => {
                if !said {
                    let missing: Vec<String> = (id + 1..3)
                        .filter(|&j| links[j].is_none())
                        .map(|j| format!("P{j}"))
                        .collect();
                    if !missing.is_empty() {
                        log(id, format!("waiting for {}", missing.join(" and ")));
                    }
                    said = true;
                }
            }
        }
    }
    Ok(links)
}

/// An offline phase run while waiting for the next query.
struct Ahead {
    state: ditto_protocol::PartyState,
    secs: f64,
    stats: ditto_protocol::Stats,
    wire: u64,
}

/// Step label of the offline phase run between queries.
const PREPARE: u64 = ditto_protocol::comm::STEP_PREPARE;

/// Key setup and the offline phase for `calls`, detached from the link
/// until the next query resumes it.
fn prepare(chan: &mut Channel, calls: &[PreCall], seed: [u8; 32]) -> Result<Ahead, String> {
    chan.set_step(PREPARE);
    chan.set_timeout(SHORT * 6);
    let (t0, s0, w0) = (Instant::now(), chan.stats(), chan.link_wire_bytes());
    let mut party = Party::setup(chan, seed).map_err(|e| e.to_string())?;
    party.preprocess(calls).map_err(|e| e.to_string())?;
    let state = party.into_state();
    Ok(Ahead {
        state,
        secs: t0.elapsed().as_secs_f64(),
        stats: chan.stats().since(&s0),
        wire: chan.link_wire_bytes() - w0,
    })
}

/// What binds a query to its client: a hash of its id and the name of the
/// client (from its pinned certificate) this party has it from.
fn binding(qid: &[u8; 16], client: Option<&str>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"ditto query binding");
    h.update(qid);
    h.update(client.unwrap_or("").as_bytes());
    h.finalize().into()
}

/// A digest of a conversion trace (never 0), for the parties to check that
/// they prepare the same calls.
fn trace_digest(calls: &[PreCall]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in calls {
        match c {
            PreCall::Conv(c) => (0u8, c.kin, c.kout, c.m, c.n).hash(&mut h),
            PreCall::B2a { k, n } => (1u8, *k, 0u32, 0u32, *n).hash(&mut h),
        }
    }
    h.finish() | 1
}

fn send_answer(ctx: &Ctx, w: &mut Waiting, msg: &[u8]) {
    if let Err(e) = tls::write_msg(&mut w.stream, msg) {
        log(ctx.id, format!("could not answer client {}: {e}", w.client));
    }
}

/// Serves one query. `Ok(true)` when it ran, `Ok(false)` when it was
/// refused without harm to the mesh. `seed` is the key seed of this query.
#[allow(clippy::too_many_arguments)]
fn query(
    ctx: &Ctx,
    prog: &ditto_bytecode::Program,
    weights: &[ditto_vm::Value],
    chan: &mut Channel,
    timeout: Duration,
    trace: &mut Option<Vec<PreCall>>,
    prepared: &mut Option<Ahead>,
    seed: [u8; 32],
) -> Result<bool, End> {
    let id = ctx.id;
    let broken = |what: &str, e: CommError| End::Broken(format!("{what}: {e}"));
    chan.set_step(CONTROL);
    // 1. which query
    let (qid, mut waiting) = if id == 0 {
        let w = loop {
            if let Some(w) = ctx.board.first(Duration::from_millis(200)) {
                break w;
            }
            if !chan.alive() {
                return Err(End::Broken("a peer left".into()));
            }
        };
        chan.set_timeout(SHORT);
        if let Err(e) = chan.exchange(
            Phase::Online,
            vec![(1, w.query.to_vec()), (2, w.query.to_vec())],
            &[],
        ) {
            let mut w = w;
            let msg = format!("P0: the cluster is not complete ({e}); try again");
            send_answer(ctx, &mut w, &wire::encode_result(Err(&msg)));
            return Err(broken("announcing a query", e));
        }
        (w.query, Some(w))
    } else {
        chan.set_timeout(Duration::from_millis(200));
        let m = loop {
            match chan.exchange(Phase::Online, vec![], &[0]) {
                Ok(mut m) => break m.remove(0),
                Err(CommError::Timeout { .. }) if chan.alive() => continue,
                Err(e) => return Err(broken("waiting for a query", e)),
            }
        };
        let qid: [u8; 16] = m
            .try_into()
            .map_err(|_| End::Broken("P0 sent a malformed query announcement".into()))?;
        (qid, ctx.board.take(&qid, SHORT))
    };
    log(id, format!("query {} started", wire::short_hash(&qid)));
    // 2. this party's input shares, and its state of the client's session
    let session = wire::session_of(&qid);
    let mut state: Option<ditto_vm::State> = None;
    let mut status: Result<Received, String> = match &mut waiting {
        None => Err(format!(
            "P{id}: the client of query {} did not connect to P{id}",
            wire::short_hash(&qid)
        )),
        Some(w) => Received::decode(prog, weights, &w.input)
            .map_err(|e| format!("P{id}: malformed input message: {e}")),
    };
    if let (Some((sid, step)), Some(w)) = (session, &waiting) {
        if step > 0 {
            let mut ss = ctx.sessions.lock().unwrap_or_else(|p| p.into_inner());
            match ss.remove(&w.client) {
                Some((s, last, st)) if s == sid && last + 1 == step => state = Some(st),
                _ => {
                    status = status.and(Err(format!(
                        "P{id}: session {} of {} has no step {} here (a party restarted, or a step was skipped): start the generation again",
                        wire::short_hash(&sid),
                        w.client,
                        step - 1
                    )))
                }
            }
        }
    }
    // 3. all ready?
    // (with a digest of the recorded conversion calls: an offline phase
    // runs only when all three hold the same trace)
    chan.set_timeout(SHORT * 6);
    let digest = trace.as_deref().map_or(0, trace_digest);
    let mut mine = vec![status.is_ok() as u8];
    mine.extend_from_slice(&digest.to_le_bytes());
    mine.push(prepared.is_some() as u8);
    // the query bound to its client: the three must have it from the same
    // client certificate before any share is used
    let bound = binding(&qid, waiting.as_ref().map(|w| w.client.as_str()));
    mine.extend_from_slice(&bound);
    let others: Vec<usize> = (0..3).filter(|&j| j != id).collect();
    let theirs = chan
        .exchange(
            Phase::Online,
            others.iter().map(|&j| (j, mine.clone())).collect(),
            &others,
        )
        .map_err(|e| broken("agreeing to start", e))?;
    if let Some(k) = others
        .iter()
        .zip(&theirs)
        .find(|(_, m)| m.len() != mine.len() || m[0] != 1)
    {
        status = status.and(Err(format!("P{} could not take this query", k.0)));
    } else if let Some(k) = others
        .iter()
        .zip(&theirs)
        .find(|(_, m)| m[10..] != mine[10..])
    {
        status = status.and(Err(format!(
            "P{id}: query {} came from {} here and from another client at P{}: refused",
            wire::short_hash(&qid),
            waiting.as_ref().map_or("nobody", |w| w.client.as_str()),
            k.0
        )));
    }
    let offline = digest != 0 && theirs.iter().all(|m| m.get(1..9) == Some(&mine[1..9]));
    // prepared while waiting: used only if all three are
    let ready_ahead = offline && prepared.is_some() && theirs.iter().all(|m| m.get(9) == Some(&1));
    let received = match status {
        Ok(r) => r,
        Err(why) => {
            log(id, format!("query refused: {why}"));
            if let Some(w) = &mut waiting {
                send_answer(ctx, w, &wire::encode_result(Err(&why)));
            }
            return Ok(false);
        }
    };
    // 4. run
    chan.set_timeout(timeout);
    let start = Instant::now();
    let s0 = chan.stats();
    let w0 = chan.link_wire_bytes();
    // prepared while waiting, or now, or (first query) recorded for later
    let ahead = prepared.take().filter(|_| ready_ahead);
    let (extra, extra_wire) = ahead
        .as_ref()
        .map_or((Default::default(), 0), |p| (p.stats, p.wire));
    let mut pre = ahead.as_ref().map(|p| (p.secs, p.stats));
    let run = (|| {
        let mut party = match ahead {
            Some(p) => Party::resume(chan, p.state).map_err(|e| format!("P{id}: {e}"))?,
            None => {
                Party::setup(chan, seed).map_err(|e| format!("P{id}: key setup failed: {e}"))?
            }
        };
        match trace.as_deref() {
            _ if pre.is_some() => {}
            Some(calls) if offline => {
                pre = Some(
                    party
                        .offline_phase(calls)
                        .map_err(|e| format!("P{id}: offline phase: {e}"))?,
                );
            }
            _ => party.record_conversions(),
        }
        // state inputs read the session's previous step (zero on a first)
        let src = ditto_vm::Stateful::new(&received, prog, state.as_ref(), true, false);
        let mut out = ditto_vm::execute(prog, Some(&mut party), &src, None)
            .map_err(|e| format!("P{id}: {e}"))?;
        // what the program keeps `to parties` never leaves this party:
        // withheld from the client, kept for the session's next step
        let kept = wire::withhold_kept(prog, &mut out.outputs);
        if let (Some((sid, step)), Some(w)) = (session, &waiting) {
            let mut ss = ctx.sessions.lock().unwrap_or_else(|p| p.into_inner());
            ss.insert(w.client.clone(), (sid, step, kept));
        }
        if !offline {
            *trace = Some(party.take_trace());
        }
        Ok::<_, String>(out)
    })();
    let result = run.map(|outcome| PartyResult {
        outcome,
        stats: chan.stats().since(&s0).add(&extra),
        wire_bytes: chan.link_wire_bytes() - w0 + extra_wire,
        client_bytes: ditto_vm::Source::client_bytes(&received),
        secs: start.elapsed().as_secs_f64(),
        offline: pre,
    });
    let w = waiting.as_mut().expect("checked by the readiness step");
    match &result {
        Ok(r) => {
            send_answer(ctx, w, &wire::encode_result(Ok(r)));
            log(
                id,
                format!(
                    "query {} done in {:.3} s, {} bytes sent",
                    wire::short_hash(&qid),
                    r.secs,
                    r.stats.bytes()
                ),
            );
            Ok(true)
        }
        Err(e) => {
            send_answer(ctx, w, &wire::encode_result(Err(e)));
            Err(End::Broken(format!("query failed: {e}")))
        }
    }
}
