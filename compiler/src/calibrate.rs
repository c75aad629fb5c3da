//! Calibration (NUMERICS.md, "Safe ranges"): the largest |value| of every
//! node of the elaborated graph over sample inputs, evaluated in float, kept
//! with a safety margin. Applied to a graph before the passes, it becomes the
//! nodes' bounds: `check-ranges` then checks every product and conversion
//! against calibrated ranges instead of only declared ones, and the
//! `ditto-auto` policy picks fraction bits from them.
//!
//! A calibration file names the graph it belongs to by a fingerprint of its
//! operations in node order (shapes excluded, so the token count may differ
//! between calibration and compilation; model, config and layers may not).

use crate::ir::{Graph, NodeId};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub model: String,
    pub config: String,
    pub fingerprint: String,
    /// Bounds are the observed maximum times this.
    pub margin: f64,
    pub samples: usize,
    /// Node index → (operation, observed max |value|).
    pub observed: BTreeMap<usize, (String, f64)>,
}

/// The graph's operations in node order, hashed.
pub fn fingerprint(g: &Graph) -> String {
    let mut h = Sha256::new();
    for id in g.ids() {
        h.update(id.index().to_le_bytes());
        h.update(g.node(id).op.name().as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Calibration {
    pub fn new(model: &str, config: &str, g: &Graph, margin: f64) -> Calibration {
        Calibration {
            model: model.to_string(),
            config: config.to_string(),
            fingerprint: fingerprint(g),
            margin,
            samples: 0,
            observed: BTreeMap::new(),
        }
    }

    /// Adds one sample's maxima (from `ir::eval::max_abs` on graph `g`).
    pub fn add(&mut self, g: &Graph, maxima: &HashMap<NodeId, f64>) -> Result<(), String> {
        if fingerprint(g) != self.fingerprint {
            return Err("the samples elaborate to different graphs".into());
        }
        for (id, &m) in maxima {
            let e = self
                .observed
                .entry(id.index())
                .or_insert_with(|| (g.node(*id).op.name().to_string(), 0.0));
            e.1 = e.1.max(m);
        }
        self.samples += 1;
        Ok(())
    }

    /// Sets each node's bound to min(declared, observed × margin). Returns
    /// how many nodes got a bound.
    pub fn apply(&self, g: &mut Graph) -> Result<usize, String> {
        let fp = fingerprint(g);
        if fp != self.fingerprint {
            return Err(format!(
                "the calibration is for another graph ({} config {}, fingerprint {}; this graph is {fp}): calibrate with the same model, config and --layers",
                self.model, self.config, self.fingerprint
            ));
        }
        let mut n = 0;
        for id in g.ids() {
            let Some((_, m)) = self.observed.get(&id.index()) else {
                continue;
            };
            if !m.is_finite() {
                continue;
            }
            let b = m * self.margin;
            let node = g.node_mut(id);
            node.bound = Some(node.bound.map_or(b, |d| d.min(b)));
            n += 1;
        }
        Ok(n)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .observed
            .iter()
            .map(|(id, (op, m))| {
                serde_json::json!({
                    "node": id,
                    "op": op,
                    "max": if m.is_finite() { serde_json::json!(m) } else { serde_json::json!("inf") },
                })
            })
            .collect();
        serde_json::json!({
            "model": self.model,
            "config": self.config,
            "fingerprint": self.fingerprint,
            "margin": self.margin,
            "samples": self.samples,
            "nodes": nodes,
        })
    }

    /// Parses a calibration file; errors name the field.
    pub fn from_json(text: &str) -> Result<Calibration, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let s = |k: &str| -> Result<String, String> {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or(format!("field `{k}` (a string) is missing"))
        };
        let margin = v
            .get("margin")
            .and_then(|x| x.as_f64())
            .filter(|m| *m >= 1.0)
            .ok_or("field `margin` must be a number ≥ 1")?;
        let samples = v.get("samples").and_then(|x| x.as_u64()).unwrap_or(0) as usize;
        let mut observed = BTreeMap::new();
        for (i, n) in v
            .get("nodes")
            .and_then(|x| x.as_array())
            .ok_or("field `nodes` (an array) is missing")?
            .iter()
            .enumerate()
        {
            let id = n.get("node").and_then(|x| x.as_u64());
            let op = n.get("op").and_then(|x| x.as_str());
            let max = match n.get("max") {
                Some(serde_json::Value::String(s)) if s == "inf" => Some(f64::INFINITY),
                Some(x) => x.as_f64().filter(|m| *m >= 0.0),
                None => None,
            };
            let (Some(id), Some(op), Some(max)) = (id, op, max) else {
                return Err(format!(
                    "nodes[{i}] needs `node` (an index), `op` and `max` (≥ 0)"
                ));
            };
            observed.insert(id as usize, (op.to_string(), max));
        }
        Ok(Calibration {
            model: s("model")?,
            config: s("config")?,
            fingerprint: s("fingerprint")?,
            margin,
            samples,
            observed,
        })
    }
}
