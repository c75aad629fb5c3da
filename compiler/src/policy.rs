//! Precision policies as data (docs/passes.md): which format each format
//! class gets, which `@approx` DSL function each non-linear op is lowered to,
//! and the parameters those functions take. The built-in policies are policy
//! files shipped in the binary (`stdlib/policies/*.json`); users write their
//! own the same way (`--policy-file`):
//!
//! ```json
//! { "name": "mine", "extends": "ditto",
//!   "formats": { "linear": [32, 10] },
//!   "lowerings": { "gelu": "gelu_cubic" },
//!   "parameters": { "t": 5 },
//!   "sources": ["my_approx.ditto"] }
//! ```
//!
//! - `formats`: class → [ring, frac]. Classes a policy does not name keep the
//!   format the model declares; the known classes are the stdlib's and the
//!   model's `format` items.
//! - `lowerings`: op → function. A key is an op name, optionally with a flag
//!   the op carries (`softmax.masked`) and a ring (`gelu@32`); the most
//!   specific key that matches a node wins. The function must be marked
//!   `@approx`; it takes the node's operands, then parameters bound by name
//!   from the op's attributes (`eps`) or the policy's `parameters`.
//! - `extends`: a built-in policy whose formats, lowerings and parameters
//!   this one starts from (default `base`: PUMA's approximations, no
//!   formats).
//! - `sources`: DSL files (relative to the policy file) with more `@approx`
//!   functions, so a new approximation needs no change to ditto.
//! - `auto` (with `auto_keep`): calibrated bounds refine the 32-bit classes'
//!   fraction bits ([`crate::passes::resolve_auto`]), except those listed.
//! - Shorthands of earlier versions: `gelu` ("puma", "sym", "quad"),
//!   `softmax` ("puma", "2quad"), `exp` ("puma", "quad"), `exp_squarings`.

use crate::ir::Format;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A value of a policy parameter, passed to an approximation function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Param::Int(i) => write!(f, "{i}"),
            Param::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A DSL source of approximation functions a policy brings along.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The name diagnostics and `!loc` use.
    pub file: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub description: String,
    pub formats: BTreeMap<String, Format>,
    /// Lowering key (`op`, `op.flag`, `op@ring`, `op.flag@ring`) → function.
    pub lowerings: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, Param>,
    /// Extra approximation functions (the policy file's `sources`).
    pub modules: Vec<Module>,
    /// Pick fraction bits (and lower `probs_v`) from calibrated bounds
    /// ([`crate::passes::resolve_auto`]); needs `--bounds`.
    pub auto: bool,
    /// Classes `auto` leaves alone: their low-ring formats are bounded by the
    /// approximation they hold rather than by the model (GeLU's polynomials
    /// on bounded domains, exp's squarings in [0, 1]).
    pub auto_keep: Vec<String>,
}

/// The built-in policies: (name, policy file), in listing order. `base` is
/// the parent of the others, not a policy of its own.
const FILES: &[(&str, &str)] = &[
    ("base", include_str!("../../stdlib/policies/base.json")),
    (
        "uniform64",
        include_str!("../../stdlib/policies/uniform64.json"),
    ),
    ("ditto", include_str!("../../stdlib/policies/ditto.json")),
    (
        "ditto-nl64",
        include_str!("../../stdlib/policies/ditto-nl64.json"),
    ),
    (
        "ditto-quad",
        include_str!("../../stdlib/policies/ditto-quad.json"),
    ),
    (
        "ditto-2quad",
        include_str!("../../stdlib/policies/ditto-2quad.json"),
    ),
    (
        "ditto-auto",
        include_str!("../../stdlib/policies/ditto-auto.json"),
    ),
];

/// The built-in policies' names.
pub const BUILTIN: &[&str] = &[
    "uniform64",
    "ditto",
    "ditto-nl64",
    "ditto-quad",
    "ditto-2quad",
    "ditto-auto",
];

const FIELDS: &[&str] = &[
    "name",
    "description",
    "extends",
    "formats",
    "lowerings",
    "parameters",
    "sources",
    "auto",
    "auto_keep",
    "gelu",
    "softmax",
    "exp",
    "exp_squarings",
];

impl Policy {
    /// A built-in policy (docs/passes.md lists them; `ditto passes` too).
    pub fn builtin(name: &str) -> Option<Policy> {
        if !BUILTIN.contains(&name) {
            return None;
        }
        let (_, text) = FILES.iter().find(|(n, _)| *n == name)?;
        Some(Policy::from_json(text).expect("built-in policies parse (tested)"))
    }

    /// Parses a policy file's text; `sources` are not allowed (no folder to
    /// read them from: see [`Policy::from_file`]). Errors say which field is
    /// wrong.
    pub fn from_json(text: &str) -> Result<Policy, String> {
        Policy::parse(text, None)
    }

    /// Reads a policy file; its `sources` are read relative to its folder.
    pub fn from_file(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Policy::parse(&text, Some(dir)).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(text: &str, dir: Option<&Path>) -> Result<Policy, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let obj = v.as_object().ok_or("a policy file holds one JSON object")?;
        for k in obj.keys() {
            if !FIELDS.contains(&k.as_str()) {
                return Err(format!(
                    "unknown field `{k}` (expected {})",
                    FIELDS.join(", ")
                ));
            }
        }
        let name = obj
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("field `name` (a string) is missing")?
            .to_string();
        let parent = match obj.get("extends") {
            None if name == "base" => None,
            None => Some("base"),
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err("`extends` names a built-in policy".into()),
        };
        let mut p = match parent {
            None => Policy {
                name: String::new(),
                description: String::new(),
                formats: BTreeMap::new(),
                lowerings: BTreeMap::new(),
                parameters: BTreeMap::new(),
                modules: vec![],
                auto: false,
                auto_keep: vec![],
            },
            Some(parent) => {
                let (_, text) = FILES.iter().find(|(n, _)| *n == parent).ok_or_else(|| {
                    format!(
                        "`extends`: no built-in policy `{parent}` (there are base, {})",
                        BUILTIN.join(", ")
                    )
                })?;
                let mut p = Policy::from_json(text)?;
                p.auto = false;
                p.auto_keep.clear();
                p
            }
        };
        p.name = name;
        p.description = match obj.get("description") {
            None => String::new(),
            Some(Value::String(d)) => d.clone(),
            Some(_) => return Err("`description` must be a string".into()),
        };
        if let Some(f) = obj.get("formats") {
            let f = f
                .as_object()
                .ok_or("`formats` maps class names to [ring, frac] pairs")?;
            for (class, pair) in f {
                let pf = pair
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .and_then(|p| Some((p[0].as_i64()?, p[1].as_i64()?)));
                let (k, fr) = pf.ok_or_else(|| {
                    format!("format of `{class}` must be [ring, frac], e.g. [32, 8]")
                })?;
                p.formats.insert(
                    class.clone(),
                    Format::new(k, fr).map_err(|e| format!("format of `{class}`: {e}"))?,
                );
            }
        }
        shorthands(obj, &mut p)?;
        if let Some(l) = obj.get("lowerings") {
            let l = l
                .as_object()
                .ok_or("`lowerings` maps op names to @approx function names")?;
            for (key, f) in l {
                check_key(key)?;
                let f = f
                    .as_str()
                    .ok_or_else(|| format!("lowering of `{key}` must be a function name"))?;
                p.lowerings.insert(key.clone(), f.to_string());
            }
        }
        if let Some(ps) = obj.get("parameters") {
            let ps = ps.as_object().ok_or("`parameters` maps names to numbers")?;
            for (k, v) in ps {
                let v = match (v.as_i64(), v.as_f64()) {
                    (Some(i), _) => Param::Int(i),
                    (None, Some(x)) if x.is_finite() => Param::Float(x),
                    _ => return Err(format!("parameter `{k}` must be a number")),
                };
                p.parameters.insert(k.clone(), v);
            }
        }
        if let Some(Param::Int(t)) = p.parameters.get("t") {
            if !(1..=16).contains(t) {
                return Err("exp's squarings `t` must be an integer in 1..=16".into());
            }
        }
        if let Some(s) = obj.get("sources") {
            let list = s
                .as_array()
                .ok_or("`sources` lists DSL files of @approx functions")?;
            let Some(dir) = dir else {
                return Err("`sources` needs a policy file (its folder)".into());
            };
            for f in list {
                let f = f.as_str().ok_or("`sources` lists file names")?;
                let path = dir.join(f);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("source {}: {e}", path.display()))?;
                p.modules.push(Module {
                    file: path.display().to_string(),
                    text,
                });
            }
        }
        if let Some(a) = obj.get("auto") {
            p.auto = a.as_bool().ok_or("`auto` must be true or false")?;
        }
        if let Some(k) = obj.get("auto_keep") {
            p.auto_keep = k
                .as_array()
                .and_then(|k| {
                    k.iter()
                        .map(|c| c.as_str().map(String::from))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or("`auto_keep` lists class names")?;
        }
        crate::passes::lower_nonlinear::check_policy(&p)?;
        Ok(p)
    }

    /// The function a node of `op` (name), with the flags it carries, in a
    /// ring of `ring` bits is lowered to, if the policy lowers it.
    pub fn lowering(&self, op: &str, flags: &[&str], ring: Option<u32>) -> Option<&str> {
        let mut keys = vec![];
        for f in flags {
            if let Some(r) = ring {
                keys.push(format!("{op}.{f}@{r}"));
            }
            keys.push(format!("{op}.{f}"));
        }
        if let Some(r) = ring {
            keys.push(format!("{op}@{r}"));
        }
        keys.push(op.to_string());
        keys.iter()
            .find_map(|k| self.lowerings.get(k))
            .map(String::as_str)
    }

    /// One line for reports and dumps: formats, lowerings, parameters.
    pub fn describe(&self) -> String {
        let join = |v: Vec<String>| v.join(" ");
        format!(
            "{}: {}; lowerings {}; parameters {}{}",
            self.name,
            join(
                self.formats
                    .iter()
                    .map(|(c, f)| format!("{c}={f}"))
                    .collect()
            ),
            join(
                self.lowerings
                    .iter()
                    .map(|(k, f)| format!("{k}={f}"))
                    .collect()
            ),
            join(
                self.parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            ),
            if self.auto {
                "; auto (from calibrated bounds)"
            } else {
                ""
            }
        )
    }
}

/// A lowering key names a declared op, optionally a flag and a ring.
fn check_key(key: &str) -> Result<(), String> {
    let (rest, ring) = match key.split_once('@') {
        Some((r, k)) => (r, Some(k)),
        None => (key, None),
    };
    if ring.is_some_and(|r| r != "32" && r != "64") {
        return Err(format!("lowering `{key}`: the ring after `@` is 32 or 64"));
    }
    let (op, flag) = match rest.split_once('.') {
        Some((o, f)) => (o, Some(f)),
        None => (rest, None),
    };
    let Some(info) = crate::ir::ops::table().find(|i| i.name == op) else {
        let hint = crate::elab::closest(op, crate::ir::ops::op_names())
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        return Err(format!("lowering `{key}`: no op `{op}`{hint}"));
    };
    if let Some(f) = flag {
        if !info
            .attrs
            .iter()
            .any(|(k, kind)| *k == f && *kind == "flag")
        {
            return Err(format!("lowering `{key}`: `{op}` has no flag `{f}`"));
        }
    }
    Ok(())
}

/// The shorthand fields of earlier policy files, as lowerings and parameters.
fn shorthands(obj: &Map<String, Value>, p: &mut Policy) -> Result<(), String> {
    let mut set = |k: &str, f: &str| {
        p.lowerings.insert(k.to_string(), f.to_string());
    };
    match obj.get("gelu").map(|g| g.as_str()) {
        None => {}
        Some(Some("puma")) => {
            set("gelu", "gelu_puma");
            set("gelu@32", "gelu_puma_half");
        }
        Some(Some("sym")) => {
            set("gelu", "gelu_sym");
            set("gelu@32", "gelu_sym");
        }
        Some(Some("quad")) => {
            set("gelu", "gelu_quad");
            set("gelu@32", "gelu_quad");
        }
        _ => return Err("`gelu` must be \"puma\", \"sym\" or \"quad\"".into()),
    }
    match obj.get("softmax").map(|g| g.as_str()) {
        None => {}
        Some(Some("puma")) => {
            set("softmax", "softmax_puma");
            set("softmax.masked", "softmax_puma_masked");
        }
        Some(Some("2quad")) => {
            set("softmax", "softmax_2quad");
            set("softmax.masked", "softmax_2quad_masked");
        }
        _ => return Err("`softmax` must be \"puma\" or \"2quad\"".into()),
    }
    let quad = match obj.get("exp").map(|g| g.as_str()) {
        None => None,
        Some(Some("puma")) => Some(false),
        Some(Some("quad")) => Some(true),
        _ => return Err("`exp` must be \"puma\" or \"quad\"".into()),
    };
    if let Some(q) = quad {
        p.parameters
            .insert("base".into(), Param::Int(if q { 2 } else { 1 }));
        p.parameters
            .insert("t".into(), Param::Int(if q { 4 } else { 8 }));
    }
    if let Some(x) = obj.get("exp_squarings") {
        let t = x
            .as_u64()
            .filter(|&t| (1..=16).contains(&t))
            .ok_or("`exp_squarings` must be an integer in 1..=16")?;
        p.parameters.insert("t".into(), Param::Int(t as i64));
    }
    Ok(())
}
