//! Cost reports of VM runs: totals, and breakdowns by op kind and by scope
//! (layer), as JSON fields and as text tables.

use ditto_bytecode::Program;
use ditto_vm::{InstrCost, Report};
use indexmap::IndexMap;
use std::fmt::Write;

#[derive(Default, Clone, Copy)]
pub struct Agg {
    pub count: u64,
    pub bytes: u64,
    pub bytes_online: u64,
    pub rounds: u64,
    pub rounds_online: u64,
    pub secs: f64,
}

impl Agg {
    fn add(&mut self, c: &InstrCost) {
        self.count += 1;
        self.bytes += c.bytes_online + c.bytes_offline;
        self.bytes_online += c.bytes_online;
        self.rounds += c.rounds_online + c.rounds_offline;
        self.rounds_online += c.rounds_online;
        self.secs += c.secs;
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "bytes": self.bytes,
            "bytes_online": self.bytes_online,
            "rounds": self.rounds,
            "rounds_online": self.rounds_online,
            "seconds": self.secs,
        })
    }
}

/// Costs grouped by op kind, most bytes first.
pub fn by_kind(prog: &Program, rep: &Report) -> IndexMap<String, Agg> {
    let mut m: IndexMap<String, Agg> = IndexMap::new();
    for (ins, c) in prog.code.iter().zip(&rep.costs) {
        m.entry(ditto_vm::op_kind(prog, ins)).or_default().add(c);
    }
    m.sort_by(|_, a, _, b| {
        b.bytes.cmp(&a.bytes).then(
            b.secs
                .partial_cmp(&a.secs)
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    m
}

/// Costs grouped by scope (layer), in program order.
pub fn by_scope(prog: &Program, rep: &Report) -> IndexMap<String, Agg> {
    let mut m: IndexMap<String, Agg> = IndexMap::new();
    for (i, c) in rep.costs.iter().enumerate() {
        let name = prog
            .scope_of
            .get(i)
            .and_then(|&k| prog.scopes.get(k as usize))
            .map(String::as_str)
            .unwrap_or("(no scope)");
        m.entry(name.to_string()).or_default().add(c);
    }
    m
}

/// Adds the cost fields to a `--json` object.
pub fn add_json(obj: &mut serde_json::Value, prog: &Program, rep: &Report) {
    let kinds: serde_json::Map<String, serde_json::Value> = by_kind(prog, rep)
        .iter()
        .map(|(k, a)| (k.clone(), a.json()))
        .collect();
    let scopes: serde_json::Map<String, serde_json::Value> = by_scope(prog, rep)
        .iter()
        .map(|(k, a)| (k.clone(), a.json()))
        .collect();
    let o = obj.as_object_mut().expect("a JSON object");
    let fields = serde_json::json!({
        "comm_bytes": rep.comm.bytes(),
        "comm_bytes_online": rep.comm.bytes_online,
        "comm_bytes_offline": rep.comm.bytes_offline,
        "rounds": rep.rounds_online() + rep.rounds_offline(),
        "rounds_online": rep.rounds_online(),
        "client_bytes": rep.client_bytes,
        "vm_s": rep.wall_s,
        "instructions": prog.code.len(),
        "ops": kinds,
        "layers": scopes,
        "offline_phase": rep.offline.map(|(secs, st)| serde_json::json!({
            "seconds": secs,
            "bytes": st.bytes(),
            "rounds": st.rounds_offline,
        })),
    });
    for (k, v) in fields.as_object().expect("object") {
        o.insert(k.clone(), v.clone());
    }
}

/// `name [shape]: [v0, ..., v7, ...]`, the first values of an output.
pub fn preview(name: &str, shape: &[usize], data: &[f64]) -> String {
    let head: Vec<String> = data.iter().take(8).map(|x| format!("{x:.6}")).collect();
    format!(
        "{name} {shape:?}: [{}{}]",
        head.join(", "),
        if data.len() > 8 { ", ..." } else { "" }
    )
}

pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// One line of totals.
pub fn summary(rep: &Report) -> String {
    if rep.comm.bytes() == 0 {
        return format!("cost: cleartext run, {:.3} s in the VM\n", rep.wall_s);
    }
    format!(
        "cost: {} between the parties ({} online), {} rounds ({} online); client {}; {:.3} s in the VM\n",
        human_bytes(rep.comm.bytes()),
        human_bytes(rep.comm.bytes_online),
        rep.rounds_online() + rep.rounds_offline(),
        rep.rounds_online(),
        human_bytes(rep.client_bytes),
        rep.wall_s
    )
}

fn rows(s: &mut String, title: &str, m: &IndexMap<String, Agg>) {
    let _ = writeln!(
        s,
        "\n{title:<22} {:>7} {:>12} {:>12} {:>8} {:>8} {:>9}",
        "count", "bytes", "online", "rounds", "online", "seconds"
    );
    let mut total = Agg::default();
    for (k, a) in m {
        let _ = writeln!(
            s,
            "{k:<22} {:>7} {:>12} {:>12} {:>8} {:>8} {:>9.3}",
            a.count,
            human_bytes(a.bytes),
            human_bytes(a.bytes_online),
            a.rounds,
            a.rounds_online,
            a.secs
        );
        total.count += a.count;
        total.bytes += a.bytes;
        total.bytes_online += a.bytes_online;
        total.rounds += a.rounds;
        total.rounds_online += a.rounds_online;
        total.secs += a.secs;
    }
    let _ = writeln!(
        s,
        "{:<22} {:>7} {:>12} {:>12} {:>8} {:>8} {:>9.3}",
        "total",
        total.count,
        human_bytes(total.bytes),
        human_bytes(total.bytes_online),
        total.rounds,
        total.rounds_online,
        total.secs
    );
}

/// The `--profile` tables: by op kind, then by scope.
pub fn table(prog: &Program, rep: &Report) -> String {
    let mut s = String::new();
    rows(&mut s, "op kind", &by_kind(prog, rep));
    rows(&mut s, "layer", &by_scope(prog, rep));
    s.push_str(
        "\nbytes: all parties; rounds, seconds: the slowest party per instruction \
         (key setup not included)\n",
    );
    s
}
