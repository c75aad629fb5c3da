//! `ditto client`: a query to a deployed cluster. It shares the input
//! between the three parties (each gets two pseudo-random vectors), waits
//! for their output shares, reconstructs the output (checking that the
//! replicated copies agree) and prints it with its cost, like `ditto run`.

use crate::cluster::Cluster;
use anyhow::{anyhow, bail, Context, Result};
use ditto_net::tls;
use ditto_vm::wire::{self, Hello, PartyResult};
use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ClientArgs {
    #[arg(long)]
    cluster: PathBuf,
    /// The bytecode program the parties serve.
    #[arg(long)]
    program: PathBuf,
    /// Token ids, comma-separated.
    #[arg(long, conflicts_with = "text")]
    ids: Option<String>,
    /// Token types for --ids (0 or 1 each), for a model with `segments`.
    #[arg(long, requires = "ids")]
    segments: Option<String>,
    /// Text, tokenized with --tokenizer.
    #[arg(long, requires = "tokenizer")]
    text: Option<String>,
    /// A second text: the input is the pair (text, pair).
    #[arg(long, requires = "text")]
    pair: Option<String>,
    /// Any other client input of the program by name: `--input x=0.5,1`.
    #[arg(long = "input", value_name = "NAME=V,...")]
    named: Vec<String>,
    /// A HuggingFace tokenizer.json, or a GGUF file (its metadata's tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Which client of the cluster file this is (default: the first).
    #[arg(long = "as", value_name = "NAME")]
    name: Option<String>,
    /// Seconds to wait for the answer (the query's run time included).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[arg(long)]
    json: bool,
    /// Print the cost by op kind and by layer.
    #[arg(long)]
    profile: bool,
    /// Generate N tokens (greedy) with a one-token program that keeps its
    /// key/value cache `to parties` (`ditto compile smollm2 --seq 1 --size
    /// M=…`): the prompt goes one token per query, then each token picked
    /// from the logits; the parties keep the cache between the queries of
    /// this session.
    #[arg(long, value_name = "N")]
    generate: Option<usize>,
    /// INSECURE, for reproducibility tests: the input shares of the k-th
    /// query are dealt from this public number (`ditto_vm::insecure_seeds`)
    /// instead of a seed drawn from the OS.
    #[arg(long, hide = true, value_name = "N")]
    insecure_seed: Option<u64>,
}

impl ClientArgs {
    /// The dealing seed of query `k` (of a generation; 0 for one query).
    fn seed(&self, k: usize) -> [u8; 32] {
        match self.insecure_seed {
            Some(m) => ditto_vm::insecure_seeds(m, k as u64)[3],
            None => rand::random(),
        }
    }
}

/// One party's side of the query, on its own thread: the hello, then (once
/// `go` says all three parties accepted theirs) the input shares and the
/// wait for the result.
#[allow(clippy::too_many_arguments)]
fn ask(
    cluster: &Cluster,
    i: usize,
    me: &tls::Identity,
    hello: &[u8],
    inputs: &[u8],
    timeout: Duration,
    said_hello: std::sync::mpsc::Sender<(usize, Result<(), String>)>,
    go: std::sync::mpsc::Receiver<bool>,
) -> Result<PartyResult, String> {
    let r = hello_to(cluster, i, me, hello);
    let failed = r.as_ref().err().cloned();
    let _ = said_hello.send((i, r.as_ref().map(|_| ()).map_err(Clone::clone)));
    let mut s = r?;
    if !go.recv().unwrap_or(false) {
        return Err(failed.unwrap_or_else(|| "another party refused the query".into()));
    }
    let gone = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("P{i} closed the connection (did it stop?)")
        } else if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            format!(
                "no answer from P{i} within this client's --timeout of {} s (a query of this \
                 size may need longer: raise --timeout)",
                timeout.as_secs()
            )
        } else {
            format!("P{i}: {}", tls::explain(&e))
        }
    };
    let _ = s.sock.set_write_timeout(Some(timeout));
    let _ = s.sock.set_read_timeout(Some(timeout));
    tls::write_msg(&mut s, inputs).map_err(gone)?;
    let m = tls::read_msg(&mut s, 1 << 34).map_err(gone)?;
    match wire::decode_result(&m) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!("P{i} sent a malformed result: {e}")),
    }
}

/// The TLS connection to party `i` and its accepted hello.
fn hello_to(
    cluster: &Cluster,
    i: usize,
    me: &tls::Identity,
    hello: &[u8],
) -> Result<tls::ClientStream, String> {
    let addr = cluster.address(i).map_err(|e| e.to_string())?;
    let mut s = tls::dial(
        &addr,
        me,
        cluster.party_certs[i].clone(),
        Duration::from_secs(10),
    )
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut => {
            format!("P{i} at {addr} is unreachable: {e}")
        }
        _ => format!("P{i} at {addr}: TLS handshake failed: {}", tls::explain(&e)),
    })?;
    let r = tls::request(&mut s, hello, 1 << 16).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("P{i} closed the connection (did it stop?)"),
        _ => format!("P{i}: {}", tls::explain(&e)),
    })?;
    match wire::decode_reply(&r) {
        Ok(Ok(_)) => Ok(s),
        Ok(Err(why)) => Err(format!("P{i} refused the query: {why}")),
        Err(e) => Err(format!("P{i} sent a malformed reply: {e}")),
    }
}

/// One query: the hellos, the input shares, the three answers assembled
/// into a report (with the bytes on the wire between the parties and each
/// party's seconds).
fn run_query(
    cluster: &std::sync::Arc<Cluster>,
    me: &std::sync::Arc<tls::Identity>,
    prog: &ditto_bytecode::Program,
    by_port: Vec<Vec<f64>>,
    query: [u8; 16],
    timeout: Duration,
    seed: [u8; 32],
) -> Result<(ditto_vm::Report, u64, [f64; 3])> {
    let hello = Hello::client(prog.hash(), query).encode();
    let dealt = wire::deal_inputs(prog, by_port, seed).map_err(|e| anyhow!("{e}"))?;
    let (tx, rx) = channel();
    let (hello_tx, hello_rx) = channel();
    let mut gos = vec![];
    for (i, items) in dealt.into_iter().enumerate() {
        let (tx, cluster, me, hello) = (tx.clone(), cluster.clone(), me.clone(), hello.clone());
        let hello_tx = hello_tx.clone();
        let (go_tx, go_rx) = channel();
        gos.push(go_tx);
        std::thread::spawn(move || {
            let inputs = wire::encode_inputs(&items);
            drop(items);
            let r = ask(&cluster, i, &me, &hello, &inputs, timeout, hello_tx, go_rx);
            let _ = tx.send((i, r));
        });
    }
    drop((tx, hello_tx));
    // the inputs go out only when all three parties accepted the hello, so
    // a refusal by one leaves no query started at the others
    let mut accepted = 0;
    for _ in 0..3 {
        match hello_rx.recv_timeout(Duration::from_secs(30)) {
            Ok((_, Ok(()))) => accepted += 1,
            Ok((_, Err(e))) => {
                for g in &gos {
                    let _ = g.send(false);
                }
                bail!("query failed: {e}");
            }
            Err(_) => bail!("query failed: the parties did not answer the hello within 30 s"),
        }
    }
    for g in &gos {
        let _ = g.send(accepted == 3);
    }
    // a failure ends the query; the others' answers are awaited briefly,
    // so that a party seen gone is named first (the survivors report only
    // the link that closed under them, which may be each other's)
    let mut got: [Option<PartyResult>; 3] = [None, None, None];
    let mut failures: Vec<String> = vec![];
    for _ in 0..3 {
        let wait = if failures.is_empty() {
            timeout + Duration::from_secs(30)
        } else {
            Duration::from_secs(2)
        };
        match rx.recv_timeout(wait) {
            Ok((i, Ok(r))) => got[i] = Some(r),
            Ok((_, Err(e))) => failures.push(e),
            Err(_) if failures.is_empty() => {
                bail!("no answer from the parties within {timeout:?}")
            }
            Err(_) => break,
        }
    }
    if !failures.is_empty() {
        failures.sort_by_key(|e| !e.contains("closed the connection"));
        bail!("query failed: {}", failures.join("; "));
    }
    let [a, b, c] = got.map(|r| r.expect("three answers"));
    let wire_bytes = a.wire_bytes + b.wire_bytes + c.wire_bytes;
    let secs = [a.secs, b.secs, c.secs];
    let rep = ditto_vm::assemble(
        prog,
        [a, b, c].map(|p| ditto_vm::PartyOutcome {
            outcome: p.outcome,
            stats: p.stats,
            client_bytes: p.client_bytes,
            offline: p.offline,
        }),
        secs.iter().cloned().fold(0.0, f64::max),
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok((rep, wire_bytes, secs))
}

pub fn client(args: ClientArgs) -> Result<()> {
    let bytes = std::fs::read(&args.program)
        .with_context(|| format!("cannot read {}", args.program.display()))?;
    let prog = ditto_bytecode::Program::decode(&bytes)
        .map_err(|e| anyhow!("{}: {e}", args.program.display()))?;
    let cluster = Cluster::load(&args.cluster)?;
    let me = std::sync::Arc::new(cluster.client_identity(args.name.as_deref())?);
    let cluster = std::sync::Arc::new(cluster);
    let timeout = Duration::from_secs(args.timeout);
    if let Some(n) = args.generate {
        return generate(&args, &cluster, &me, &prog, n, timeout);
    }
    let toks = match (&args.text, &args.tokenizer) {
        (Some(t), Some(tj)) => crate::tokens::encode_tokens(tj, t, args.pair.as_deref())?,
        _ => crate::run::tokens(&None, &None, &args.ids, &args.segments, &None)?,
    };
    let named = crate::inputs::parse_named(&args.named)?;
    let slots = crate::inputs::program_slots(&prog);
    let values = crate::inputs::fill(&slots, &toks, &named)?;
    let by_port: Vec<Vec<f64>> = slots.iter().map(|s| values[&s.name].clone()).collect();
    let ids: Vec<u64> = values
        .get("ids")
        .map(|v| v.iter().map(|&x| x as u64).collect())
        .unwrap_or_default();
    let start = Instant::now();
    let (rep, wire_bytes, secs) = run_query(
        &cluster,
        &me,
        &prog,
        by_port,
        wire::single_tag(),
        timeout,
        args.seed(0),
    )?;
    let outs: crate::run::Outputs = rep
        .outputs
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                ditto_compiler::ir::eval::Tensor::new(o.shape.clone(), o.data.clone()),
            )
        })
        .collect();
    if outs.is_empty() {
        bail!("the program has no output");
    }
    let wall = start.elapsed().as_secs_f64();
    let seq = ids.len();
    if args.json {
        let mut obj = serde_json::json!({
            "model": prog.meta("model"),
            "config": prog.meta("config"),
            "policy": prog.meta("policy"),
            "program": wire::short_hash(&prog.hash()),
            "backend": "cluster",
            "tokens": ids,
            "len": toks.ids.len(),
            "wall_s": wall,
            "wire_bytes": wire_bytes,
            "party_s": secs,
        });
        crate::run::add_outputs_json(&mut obj, &outs);
        crate::profile::add_json(&mut obj, &prog, &rep);
        println!("{obj}");
    } else {
        println!(
            "model {} (config {}), policy {}, program {}, cluster {}, {}, {wall:.3} s",
            prog.meta("model").unwrap_or("?"),
            prog.meta("config").unwrap_or("?"),
            prog.meta("policy").unwrap_or("?"),
            wire::short_hash(&prog.hash()),
            args.cluster.display(),
            crate::run::token_count(toks.ids.len(), seq)
        );
        for (name, o) in &outs {
            println!("{}", crate::profile::preview(name, &o.shape, &o.data));
        }
        print!("{}", crate::profile::summary(&rep));
        println!(
            "on the wire between the parties (TLS): {} bytes",
            wire_bytes
        );
        if let Some((secs, st)) = rep.offline {
            println!(
                "offline phase (prepared between queries or before this one): {secs:.3} s, {} bytes, {} rounds",
                st.bytes(),
                st.rounds_offline
            );
        }
        if args.profile {
            print!("{}", crate::profile::table(&prog, &rep));
        }
    }
    Ok(())
}

/// `--generate N` (see [`ClientArgs::generate`]).
fn generate(
    args: &ClientArgs,
    cluster: &std::sync::Arc<Cluster>,
    me: &std::sync::Arc<tls::Identity>,
    prog: &ditto_bytecode::Program,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let prompt: Vec<u32> = match (&args.text, &args.tokenizer) {
        (Some(t), Some(tj)) => crate::tokens::encode(tj, t)?,
        _ => crate::tokens::parse_ids(args.ids.as_deref().unwrap_or(""))?,
    };
    if prompt.is_empty() || n == 0 {
        bail!("--generate needs a prompt (--ids or --text) and N ≥ 1");
    }
    let slots = crate::inputs::program_slots(prog);
    let one = |name: &str| slots.iter().any(|s| s.name == name && s.shape == [1]);
    // the cache's places: the positions a session may reach
    let places = prog
        .inputs
        .iter()
        .find(|p| p.owner == Some(ditto_bytecode::Owner::Parties))
        .and_then(|p| prog.regs[p.reg.0 as usize].shape.get(2).copied());
    let Some(places) = places.filter(|_| one("ids") && one("pos")) else {
        bail!(
            "{}: --generate needs a one-token program that keeps its cache (`ditto compile \
             smollm2 --seq 1 --size M=PLACES`)",
            args.program.display()
        );
    };
    let last = prompt.len() + n - 1;
    if last > places as usize {
        bail!(
            "a prompt of {} tokens and {n} new ones reach position {}; the program's cache has \
             {places} places (compile with --size M={last} or more)",
            prompt.len(),
            last - 1
        );
    }
    let session: [u8; 8] = rand::random();
    let named = crate::inputs::parse_named(&args.named)?;
    let mut tokens: Vec<u32> = vec![];
    let mut steps = vec![];
    for k in 0..last {
        let t = if k < prompt.len() {
            prompt[k]
        } else {
            tokens[k - prompt.len()]
        };
        let toks = crate::inputs::Tokens {
            ids: vec![t],
            segments: None,
        };
        let mut named = named.clone();
        named.insert("pos".into(), vec![k as f64]);
        let values = crate::inputs::fill(&slots, &toks, &named)?;
        let by_port = slots.iter().map(|s| values[&s.name].clone()).collect();
        let start = Instant::now();
        let (rep, _, _) = run_query(
            cluster,
            me,
            prog,
            by_port,
            wire::session_tag(session, k as u64),
            timeout,
            args.seed(k),
        )
        .with_context(|| format!("token {k} of the session"))?;
        let logits = &rep
            .outputs
            .first()
            .context("the program reveals no output")?
            .data;
        let top = crate::generate::top5(logits);
        if k + 1 >= prompt.len() {
            tokens.push(top[0].0);
        }
        steps.push(serde_json::json!({
            "pos": k, "secs": start.elapsed().as_secs_f64(),
            "bytes": rep.comm.bytes(), "rounds": rep.rounds_online() + rep.rounds_offline(),
            "rounds_online": rep.rounds_online(), "top": top,
        }));
    }
    let text = args
        .tokenizer
        .as_ref()
        .and_then(|tj| crate::tokens::load(tj).ok())
        .and_then(|t| t.decode(&tokens, false).ok());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "backend": "cluster", "program": wire::short_hash(&prog.hash()),
                "prompt_ids": prompt, "tokens": tokens, "text": text, "steps": steps,
            })
        );
    } else {
        println!(
            "{} tokens after a prompt of {} (cluster {}, one query per token): {}",
            tokens.len(),
            prompt.len(),
            args.cluster.display(),
            text.unwrap_or_else(|| format!("{tokens:?}"))
        );
    }
    Ok(())
}
