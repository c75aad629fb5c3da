//! IR operations. Each op has a kebab-case name used by the text format, an
//! operand count, and typed attributes. [`Op::attrs`] and [`Op::from_parts`]
//! are inverse: the printer writes the former, the parser calls the latter.

use std::collections::BTreeMap;
use std::fmt;

/// Which function of the highest set bit `norm_scale` computes. With
/// e = ⌊log2 x⌋ for x > 0 (the scale is 0 for x ≤ 0):
/// - `recip`: 2^(−e−1), so x·s ∈ [0.5, 1);
/// - `rsqrt_in`: 2^(−e−2), so x·s ∈ [0.25, 0.5);
/// - `rsqrt_out`: 2^(−(e+2)/2), so rsqrt(x) = rsqrt(x·2^(−e−2))·s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NormKind {
    Recip,
    RsqrtIn,
    RsqrtOut,
}

impl NormKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NormKind::Recip => "recip",
            NormKind::RsqrtIn => "rsqrt_in",
            NormKind::RsqrtOut => "rsqrt_out",
        }
    }
    pub fn parse(s: &str) -> Option<NormKind> {
        match s {
            "recip" => Some(NormKind::Recip),
            "rsqrt_in" => Some(NormKind::RsqrtIn),
            "rsqrt_out" => Some(NormKind::RsqrtOut),
            _ => None,
        }
    }
    /// The scale for a real x > 0 whose highest set bit is 2^e.
    pub fn scale(self, e: i32) -> f64 {
        match self {
            NormKind::Recip => (-(e as f64) - 1.0).exp2(),
            NormKind::RsqrtIn => (-(e as f64) - 2.0).exp2(),
            NormKind::RsqrtOut => (-(e as f64 + 2.0) / 2.0).exp2(),
        }
    }
}

/// Who supplies an input's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Client,
    ModelOwner,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Client => "client",
            Owner::ModelOwner => "model_owner",
        }
    }
    pub fn parse(s: &str) -> Option<Owner> {
        match s {
            "client" => Some(Owner::Client),
            "model_owner" | "owner" => Some(Owner::ModelOwner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A tensor supplied at run time by `owner`.
    Input {
        name: String,
        owner: Owner,
    },
    /// A model parameter, bound by name to a tensor of the weights file;
    /// `transposed`: the node is that (matrix) tensor's transpose, dealt in
    /// this layout (the `weight-layout` pass).
    Weight {
        name: String,
        transposed: bool,
    },
    /// A public scalar (rank 0).
    Const {
        value: f64,
    },
    /// Public integers 0..n (shape [n]).
    Iota {
        n: usize,
    },
    Add,
    Sub,
    Mul,
    Neg,
    /// Matrix product over the last two axes; leading axes are batch axes
    /// (equal on both sides, or absent on the right-hand side).
    MatMul,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Not,
    /// `select(c, a, b)`: a where c, else b.
    Select,
    Transpose {
        perm: Vec<usize>,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    Concat {
        axis: usize,
    },
    /// NumPy broadcasting of the operand to `shape`.
    Broadcast {
        shape: Vec<usize>,
    },
    /// Reductions keep the reduced axis with size 1.
    Sum {
        axis: usize,
    },
    Max {
        axis: usize,
    },
    Mean {
        axis: usize,
    },
    /// GeLU: erf form, or the tanh form GPT-2 uses when `tanh`.
    Gelu {
        tanh: bool,
    },
    /// Softmax over the last axis; with `masked`, a second boolean operand
    /// marks the entries that take part (others get probability 0).
    Softmax {
        masked: bool,
    },
    /// LayerNorm over the last axis: operands x, gamma, beta.
    LayerNorm {
        eps: f64,
    },
    Exp,
    Recip,
    Rsqrt,
    Tanh,
    /// Row lookup: operands ids [S] (integers) and table [V, D] → [S, D].
    Embed,
    /// A power-of-two scale derived from the highest set bit of a positive
    /// operand (the normalisation of reciprocal and rsqrt); see [`NormKind`].
    NormScale {
        kind: NormKind,
    },
    /// Explicit format conversion written with `as` in the DSL.
    Convert,
    /// x·2^−bits, exactly and for free: the same ring words read with `bits`
    /// more fraction bits (`fuse-truncations` makes products by a constant
    /// power of two into this).
    Rescale {
        bits: usize,
    },
    /// A result revealed to the client under `name`.
    Output {
        name: String,
    },
}

/// Every op name of the text format (kept in sync with [`Op::name`] by a test).
pub const OP_NAMES: &[&str] = &[
    "input",
    "weight",
    "const",
    "iota",
    "add",
    "sub",
    "mul",
    "neg",
    "matmul",
    "lt",
    "gt",
    "le",
    "ge",
    "eq",
    "ne",
    "not",
    "select",
    "transpose",
    "reshape",
    "slice",
    "concat",
    "broadcast",
    "sum",
    "max",
    "mean",
    "gelu",
    "softmax",
    "layernorm",
    "exp",
    "recip",
    "rsqrt",
    "tanh",
    "embed",
    "norm_scale",
    "convert",
    "rescale",
    "output",
];

/// Attribute values of the text format.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrVal {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    List(Vec<i64>),
    Flag,
}

impl fmt::Display for AttrVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrVal::Int(i) => write!(f, "{i}"),
            AttrVal::Float(x) => write!(f, "{}", fmt_f64(*x)),
            AttrVal::Str(s) => write!(f, "{}", quote(s)),
            AttrVal::Ident(s) => write!(f, "{s}"),
            AttrVal::List(v) => {
                let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                write!(f, "[{}]", items.join(", "))
            }
            AttrVal::Flag => Ok(()),
        }
    }
}

/// A double-quoted string literal of the text format: `\\`, `\"`, `\n`,
/// `\t` and `\u{HEX}` for every other control character.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Shortest text that parses back to exactly `x`, always with a `.` or `e`.
pub fn fmt_f64(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// How many operands an op takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "{k}"),
            Arity::AtLeast(k) => write!(f, "at least {k}"),
        }
    }
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Weight { .. } => "weight",
            Op::Const { .. } => "const",
            Op::Iota { .. } => "iota",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Neg => "neg",
            Op::MatMul => "matmul",
            Op::Lt => "lt",
            Op::Gt => "gt",
            Op::Le => "le",
            Op::Ge => "ge",
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Not => "not",
            Op::Select => "select",
            Op::Transpose { .. } => "transpose",
            Op::Reshape { .. } => "reshape",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Broadcast { .. } => "broadcast",
            Op::Sum { .. } => "sum",
            Op::Max { .. } => "max",
            Op::Mean { .. } => "mean",
            Op::Gelu { .. } => "gelu",
            Op::Softmax { .. } => "softmax",
            Op::LayerNorm { .. } => "layernorm",
            Op::Exp => "exp",
            Op::Recip => "recip",
            Op::Rsqrt => "rsqrt",
            Op::Tanh => "tanh",
            Op::Embed => "embed",
            Op::NormScale { .. } => "norm_scale",
            Op::Convert => "convert",
            Op::Rescale { .. } => "rescale",
            Op::Output { .. } => "output",
        }
    }

    pub fn arity(&self) -> Arity {
        use Arity::*;
        match self {
            Op::Input { .. } | Op::Weight { .. } | Op::Const { .. } | Op::Iota { .. } => Exactly(0),
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::MatMul
            | Op::Lt
            | Op::Gt
            | Op::Le
            | Op::Ge
            | Op::Eq
            | Op::Ne
            | Op::Embed => Exactly(2),
            Op::Select | Op::LayerNorm { .. } => Exactly(3),
            Op::Softmax { masked } => Exactly(if *masked { 2 } else { 1 }),
            Op::Concat { .. } => AtLeast(1),
            _ => Exactly(1),
        }
    }

    /// Attributes in printing order.
    pub fn attrs(&self) -> Vec<(&'static str, AttrVal)> {
        let list = |v: &[usize]| AttrVal::List(v.iter().map(|&x| x as i64).collect());
        match self {
            Op::Input { name, owner } => vec![
                ("name", AttrVal::Str(name.clone())),
                ("owner", AttrVal::Ident(owner.as_str().into())),
            ],
            Op::Weight {
                name,
                transposed: true,
            } => vec![
                ("name", AttrVal::Str(name.clone())),
                ("transposed", AttrVal::Flag),
            ],
            Op::Weight { name, .. } | Op::Output { name } => {
                vec![("name", AttrVal::Str(name.clone()))]
            }
            Op::Const { value } => vec![("value", AttrVal::Float(*value))],
            Op::Iota { n } => vec![("n", AttrVal::Int(*n as i64))],
            Op::Transpose { perm } => vec![("perm", list(perm))],
            Op::Reshape { shape } | Op::Broadcast { shape } => vec![("shape", list(shape))],
            Op::Slice { axis, start, end } => vec![
                ("axis", AttrVal::Int(*axis as i64)),
                ("start", AttrVal::Int(*start as i64)),
                ("end", AttrVal::Int(*end as i64)),
            ],
            Op::Concat { axis } | Op::Sum { axis } | Op::Max { axis } | Op::Mean { axis } => {
                vec![("axis", AttrVal::Int(*axis as i64))]
            }
            Op::Gelu { tanh: true } => vec![("tanh", AttrVal::Flag)],
            Op::Softmax { masked: true } => vec![("masked", AttrVal::Flag)],
            Op::LayerNorm { eps } => vec![("eps", AttrVal::Float(*eps))],
            Op::NormScale { kind } => vec![("kind", AttrVal::Ident(kind.as_str().into()))],
            Op::Rescale { bits } => vec![("bits", AttrVal::Int(*bits as i64))],
            _ => vec![],
        }
    }

    /// Rebuilds an op from its name and attributes (the parser's side).
    pub fn from_parts(name: &str, attrs: &BTreeMap<String, AttrVal>) -> Result<Op, String> {
        let get = |k: &str| {
            attrs
                .get(k)
                .ok_or_else(|| format!("`{name}` needs attribute `{k}`"))
        };
        let int = |k: &str| -> Result<usize, String> {
            match get(k)? {
                AttrVal::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(format!("attribute `{k}` must be a non-negative integer")),
            }
        };
        let float = |k: &str| -> Result<f64, String> {
            match get(k)? {
                AttrVal::Float(x) => Ok(*x),
                AttrVal::Int(i) => Ok(*i as f64),
                _ => Err(format!("attribute `{k}` must be a number")),
            }
        };
        let string = |k: &str| -> Result<String, String> {
            match get(k)? {
                AttrVal::Str(s) => Ok(s.clone()),
                _ => Err(format!("attribute `{k}` must be a string")),
            }
        };
        let list = |k: &str| -> Result<Vec<usize>, String> {
            match get(k)? {
                AttrVal::List(v) if v.iter().all(|&x| x >= 0) => {
                    Ok(v.iter().map(|&x| x as usize).collect())
                }
                _ => Err(format!(
                    "attribute `{k}` must be a list of non-negative integers"
                )),
            }
        };
        let flag = |k: &str| attrs.contains_key(k);
        let op = match name {
            "input" => {
                let owner = match get("owner")? {
                    AttrVal::Ident(s) => Owner::parse(s),
                    _ => None,
                }
                .ok_or("attribute `owner` must be `client` or `model_owner`")?;
                Op::Input {
                    name: string("name")?,
                    owner,
                }
            }
            "weight" => Op::Weight {
                name: string("name")?,
                transposed: flag("transposed"),
            },
            "output" => Op::Output {
                name: string("name")?,
            },
            "const" => Op::Const {
                value: float("value")?,
            },
            "iota" => Op::Iota { n: int("n")? },
            "add" => Op::Add,
            "sub" => Op::Sub,
            "mul" => Op::Mul,
            "neg" => Op::Neg,
            "matmul" => Op::MatMul,
            "lt" => Op::Lt,
            "gt" => Op::Gt,
            "le" => Op::Le,
            "ge" => Op::Ge,
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "not" => Op::Not,
            "select" => Op::Select,
            "transpose" => Op::Transpose {
                perm: list("perm")?,
            },
            "reshape" => Op::Reshape {
                shape: list("shape")?,
            },
            "broadcast" => Op::Broadcast {
                shape: list("shape")?,
            },
            "slice" => Op::Slice {
                axis: int("axis")?,
                start: int("start")?,
                end: int("end")?,
            },
            "concat" => Op::Concat { axis: int("axis")? },
            "sum" => Op::Sum { axis: int("axis")? },
            "max" => Op::Max { axis: int("axis")? },
            "mean" => Op::Mean { axis: int("axis")? },
            "gelu" => Op::Gelu { tanh: flag("tanh") },
            "softmax" => Op::Softmax {
                masked: flag("masked"),
            },
            "layernorm" => Op::LayerNorm { eps: float("eps")? },
            "exp" => Op::Exp,
            "recip" => Op::Recip,
            "rsqrt" => Op::Rsqrt,
            "tanh" => Op::Tanh,
            "embed" => Op::Embed,
            "norm_scale" => {
                let kind = match get("kind")? {
                    AttrVal::Ident(k) => NormKind::parse(k),
                    _ => None,
                }
                .ok_or("attribute `kind` must be recip, rsqrt_in or rsqrt_out")?;
                Op::NormScale { kind }
            }
            "convert" => Op::Convert,
            "rescale" => Op::Rescale { bits: int("bits")? },
            other => return Err(format!("unknown op `{other}`")),
        };
        // Reject attributes the op does not have (typos must not pass silently).
        let known: Vec<&str> = op.attrs().iter().map(|(k, _)| *k).collect();
        for k in attrs.keys() {
            if !known.contains(&k.as_str()) {
                return Err(format!("`{name}` has no attribute `{k}`"));
            }
        }
        Ok(op)
    }

    /// Ops whose result is boolean.
    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne | Op::Not
        )
    }

    /// Leaves: ops with no operands whose type is declared, not inferred.
    pub fn is_leaf(&self) -> bool {
        self.arity() == Arity::Exactly(0)
    }
}
