//! IR operations, declared once in [`ops!`]: each op has a name used by the
//! text format, an operand count, typed attributes and a line of docs.
//! [`Op::attrs`] and [`Op::from_parts`] are inverse: the printer writes the
//! former, the parser calls the latter.

pub use super::high::HighOp;
use std::collections::BTreeMap;
use std::fmt;

/// Which function of the highest set bit `norm_scale` computes (declared
/// with the bytecode's field of the same name: one definition of its scale).
pub use ditto_bytecode::NormKind;
/// Which part (cos or sin) of a rotary table `rotary` builds.
pub use ditto_bytecode::Trig;

/// Who supplies an input's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Client,
    ModelOwner,
    /// The parties themselves: a value kept as secret shares from the
    /// previous run of a session (`output … to parties`), zero on the first.
    Parties,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Client => "client",
            Owner::ModelOwner => "model_owner",
            Owner::Parties => "parties",
        }
    }
    pub fn parse(s: &str) -> Option<Owner> {
        match s {
            "client" => Some(Owner::Client),
            "model_owner" | "owner" => Some(Owner::ModelOwner),
            "parties" => Some(Owner::Parties),
            _ => None,
        }
    }
}

/// Declares a family of ops once: for each, its variant and attributes
/// (typed fields), its text name, its operands (as documented) and arity,
/// and one line of documentation. The enum, `name`, `arity`, `attrs`,
/// `from_table` and the family's table (docs/ir.md's rows, [`docs_table`])
/// are derived from it. Two families use it: [`Op`], the core ops, each with
/// an MPC instruction, and [`HighOp`](super::high::HighOp), the ops a policy
/// lowers to `@approx` functions. What a core op means (its type rule, its
/// float and fixed-point semantics, its MPC code, its cost) is written in
/// exhaustive matches (`infer`, `eval`, `fixed`, `props`, `codegen`), so a
/// new op is a compile error everywhere it must be handled
/// (docs/contributing.md); a high op's meaning is all in `ir/high.rs`.
macro_rules! declare_ops {
    ($enum:ident, $table:ident, $( $extra:ident($inner:ty) )?; $( $(#[$meta:meta])* $var:ident $({ $($f:ident : $t:ty),* $(,)? })? = $name:literal ($operands:literal) [$ar:expr] $doc:literal; )*) => {
        #[derive(Debug, Clone, PartialEq)]
        pub enum $enum {
            $( #[doc = $doc] $(#[$meta])* $var $({ $($f: $t),* })?, )*
            $( /// An op a policy lowers (see [`HighOp`](super::high::HighOp)).
               $extra($inner), )?
        }

        /// The family's declarations: name, operands, attributes (name,
        /// kind) and documentation, in declaration order.
        pub const $table: &[OpInfo] = &[$(OpInfo {
            name: $name,
            operands: $operands,
            attrs: &[$($((stringify!($f), <$t as AttrField>::KIND)),*)?],
            doc: $doc,
        }),*];

        impl $enum {
            pub fn name(&self) -> &'static str {
                match self {
                    $( $enum::$var { .. } => $name, )*
                    $( $enum::$extra(h) => h.name(), )?
                }
            }

            /// How many operands the op takes.
            #[allow(unused_variables)]
            pub fn arity(&self) -> Arity {
                match self {
                    $( $enum::$var $({ $($f),* })? => $ar, )*
                    $( $enum::$extra(h) => h.arity(), )?
                }
            }

            /// Attributes in printing order (flags that are off are left out).
            pub fn attrs(&self) -> Vec<(&'static str, AttrVal)> {
                match self {
                    $( $enum::$var $({ $($f),* })? => {
                        #[allow(unused_mut)]
                        let mut v = Vec::new();
                        $($( if let Some(a) = AttrField::put($f) { v.push((stringify!($f), a)); } )*)?
                        v
                    } )*
                    $( $enum::$extra(h) => h.attrs(), )?
                }
            }

            /// The family's op `opname` from its attributes (`None`: not of
            /// this family); unknown attributes, missing or ill-typed values
            /// are errors.
            pub fn from_table(opname: &str, attrs: &BTreeMap<String, AttrVal>) -> Option<Result<$enum, String>> {
                let info = $table.iter().find(|i| i.name == opname)?;
                // typos must not pass silently
                for k in attrs.keys() {
                    if !info.attrs.iter().any(|(a, _)| a == k) {
                        return Some(Err(format!("`{opname}` has no attribute `{k}`")));
                    }
                }
                let build = || -> Result<$enum, String> {
                    Ok(match opname {
                        $( $name => $enum::$var $({ $($f: <$t as AttrField>::take(opname, stringify!($f), attrs.get(stringify!($f)))?),* })?, )*
                        _ => unreachable!("the table lists every op"),
                    })
                };
                Some(build())
            }
        }
    };
}
pub(crate) use declare_ops;

/// One op's declaration (see [`TABLE`]).
#[derive(Debug, Clone, Copy)]
pub struct OpInfo {
    pub name: &'static str,
    /// The operands as documented (`a, b`; `x, y, ...`).
    pub operands: &'static str,
    /// Attribute names and what values they take.
    pub attrs: &'static [(&'static str, &'static str)],
    pub doc: &'static str,
}

use Arity::{AtLeast, Exactly};

declare_ops! { Op, CORE, High(HighOp);
    Input { name: String, owner: Owner } = "input" ("") [Exactly(0)]
        "a tensor supplied at run time by `owner`; its type is declared";
    /// `transposed`: the node is that (matrix) tensor's transpose, dealt in
    /// this layout (the `weight-layout` pass).
    Weight { name: String, transposed: bool } = "weight" ("") [Exactly(0)]
        "a model parameter, bound by name to a tensor of the weights file (`transposed`: the stored matrix's transpose, set by `weight-layout`); its type is declared";
    Const { value: f64 } = "const" ("") [Exactly(0)] "a public scalar (rank 0)";
    Iota { n: usize } = "iota" ("") [Exactly(0)] "public integers 0..n (shape [n])";
    /// Rotary position embedding's table (see `ditto_bytecode::fixed::rotary_angle`).
    Rotary { part: Trig, theta: f64, offset: usize } = "rotary" ("") [Exactly(0)]
        "public RoPE table [n, d] (its type's shape): `part` (cos or sin) of (offset + i)·θ^(−2(j mod d/2)/d), the HuggingFace layout";
    Add = "add" ("a, b") [Exactly(2)] "a + b, element-wise: equal shapes or one scalar";
    Sub = "sub" ("a, b") [Exactly(2)] "a − b, element-wise";
    Mul = "mul" ("a, b") [Exactly(2)] "a·b, element-wise";
    Neg = "neg" ("x") [Exactly(1)] "−x";
    MatMul = "matmul" ("a, b") [Exactly(2)]
        "matrix product over the last two axes; leading axes are batch axes (equal on both sides, or absent on b)";
    Lt = "lt" ("a, b") [Exactly(2)] "a < b, boolean";
    Gt = "gt" ("a, b") [Exactly(2)] "a > b, boolean";
    Le = "le" ("a, b") [Exactly(2)] "a ≤ b, boolean";
    Ge = "ge" ("a, b") [Exactly(2)] "a ≥ b, boolean";
    Eq = "eq" ("a, b") [Exactly(2)] "a = b, boolean";
    Ne = "ne" ("a, b") [Exactly(2)] "a ≠ b, boolean";
    Not = "not" ("c") [Exactly(1)] "boolean negation";
    Select = "select" ("c, a, b") [Exactly(3)] "a where c, else b";
    Transpose { perm: Vec<usize> } = "transpose" ("x") [Exactly(1)] "x with its axes permuted";
    Reshape { shape: Vec<usize> } = "reshape" ("x") [Exactly(1)] "the same elements in another shape";
    Slice { axis: usize, start: usize, end: usize } = "slice" ("x") [Exactly(1)]
        "elements start..end of one axis";
    Concat { axis: usize } = "concat" ("x, y, ...") [AtLeast(1)] "the operands joined along an axis";
    Broadcast { shape: Vec<usize> } = "broadcast" ("x") [Exactly(1)] "NumPy broadcasting of x to `shape`";
    Sum { axis: usize } = "sum" ("x") [Exactly(1)] "sum along an axis, kept with size 1";
    Max { axis: usize } = "max" ("x") [Exactly(1)] "maximum along an axis, kept with size 1";
    Mean { axis: usize } = "mean" ("x") [Exactly(1)] "mean along an axis, kept with size 1";
    Embed = "embed" ("ids, table") [Exactly(2)] "row lookup: integer ids [S] and a table [V, D] give [S, D]";
    /// See [`NormKind`].
    NormScale { kind: NormKind } = "norm_scale" ("x") [Exactly(1)]
        "a power-of-two scale from the highest set bit of a positive x (the normalisation of reciprocal and rsqrt)";
    Convert = "convert" ("x") [Exactly(1)] "explicit format change (`as` in the DSL)";
    /// (`fuse-truncations` makes products by a constant power of two into
    /// this.)
    Rescale { bits: usize } = "rescale" ("x") [Exactly(1)]
        "x·2^−bits, exactly and locally: the same ring words read with `bits` more fraction bits";
    Output { name: String, kept: bool } = "output" ("x") [Exactly(1)]
        "a result revealed to the client under `name` (`kept`: kept by the parties as secret shares for the session's next run instead)";
}

/// A value of an attribute field: how it is printed, parsed, described.
pub trait AttrField: Sized {
    /// What values the attribute takes (docs/ir.md).
    const KIND: &'static str;
    /// The printed value; `None` leaves the attribute out (a flag that is off).
    fn put(&self) -> Option<AttrVal>;
    /// The field from attribute `key` of op `op` (`None`: not written).
    fn take(op: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String>;
}

fn need<'a>(op: &str, key: &str, v: Option<&'a AttrVal>) -> Result<&'a AttrVal, String> {
    v.ok_or_else(|| format!("`{op}` needs attribute `{key}`"))
}

impl AttrField for String {
    const KIND: &'static str = "string";
    fn put(&self) -> Option<AttrVal> {
        Some(AttrVal::Str(self.clone()))
    }
    fn take(op: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String> {
        match need(op, key, v)? {
            AttrVal::Str(s) => Ok(s.clone()),
            _ => Err(format!("attribute `{key}` must be a string")),
        }
    }
}

impl AttrField for bool {
    const KIND: &'static str = "flag";
    fn put(&self) -> Option<AttrVal> {
        self.then_some(AttrVal::Flag)
    }
    fn take(_: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String> {
        match v {
            None => Ok(false),
            Some(AttrVal::Flag) => Ok(true),
            Some(_) => Err(format!("attribute `{key}` is a flag: write `{key}` alone")),
        }
    }
}

impl AttrField for usize {
    const KIND: &'static str = "integer";
    fn put(&self) -> Option<AttrVal> {
        Some(AttrVal::Int(*self as i64))
    }
    fn take(op: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String> {
        match need(op, key, v)? {
            AttrVal::Int(i) if *i >= 0 => Ok(*i as usize),
            _ => Err(format!("attribute `{key}` must be a non-negative integer")),
        }
    }
}

impl AttrField for f64 {
    const KIND: &'static str = "number";
    fn put(&self) -> Option<AttrVal> {
        Some(AttrVal::Float(*self))
    }
    fn take(op: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String> {
        match need(op, key, v)? {
            AttrVal::Float(x) => Ok(*x),
            AttrVal::Int(i) => Ok(*i as f64),
            _ => Err(format!("attribute `{key}` must be a number")),
        }
    }
}

impl AttrField for Vec<usize> {
    const KIND: &'static str = "integer list";
    fn put(&self) -> Option<AttrVal> {
        Some(AttrVal::List(self.iter().map(|&x| x as i64).collect()))
    }
    fn take(op: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String> {
        match need(op, key, v)? {
            AttrVal::List(v) if v.iter().all(|&x| x >= 0) => {
                Ok(v.iter().map(|&x| x as usize).collect())
            }
            _ => Err(format!(
                "attribute `{key}` must be a list of non-negative integers"
            )),
        }
    }
}

/// An attribute that is one of a few identifiers: its type's `as_str` and
/// `parse`, and the words for docs and errors.
macro_rules! ident_attr {
    ($t:ty, $words:literal) => {
        impl AttrField for $t {
            const KIND: &'static str = $words;
            fn put(&self) -> Option<AttrVal> {
                Some(AttrVal::Ident(self.as_str().into()))
            }
            fn take(op: &str, key: &str, v: Option<&AttrVal>) -> Result<Self, String> {
                match need(op, key, v)? {
                    AttrVal::Ident(k) => <$t>::parse(k),
                    _ => None,
                }
                .ok_or_else(|| format!(concat!("attribute `{}` must be ", $words), key))
            }
        }
    };
}

ident_attr!(Owner, "client, model_owner or parties");
ident_attr!(NormKind, "recip, rsqrt_in or rsqrt_out");
ident_attr!(Trig, "cos or sin");

/// The op table of docs/ir.md, generated from the declarations (a test keeps
/// the document equal to it).
pub fn docs_table() -> String {
    let mut s = String::from(
        "| op | operands | attributes | meaning | under MPC |\n|---|---|---|---|---|\n",
    );
    let high: Vec<&str> = super::high::HIGH.iter().map(|i| i.name).collect();
    for i in table() {
        let attrs: Vec<String> = i
            .attrs
            .iter()
            .map(|(k, kind)| format!("`{k}` ({kind})"))
            .collect();
        let operands = if i.operands.is_empty() {
            "—"
        } else {
            i.operands
        };
        let mpc = if high.contains(&i.name) {
            "lowered by the policy"
        } else {
            "instruction"
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {mpc} |\n",
            i.name,
            operands,
            attrs.join(", "),
            i.doc
        ));
    }
    s
}

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

/// Every op's declaration, the core ops' then the high ops'.
pub fn table() -> impl Iterator<Item = &'static OpInfo> {
    CORE.iter().chain(super::high::HIGH)
}

/// Every op name of the text format.
pub fn op_names() -> impl Iterator<Item = &'static str> {
    table().map(|i| i.name)
}

impl Op {
    /// Rebuilds an op from its name and attributes (the parser's side);
    /// unknown ops and attributes, missing or ill-typed values are errors.
    pub fn from_parts(opname: &str, attrs: &BTreeMap<String, AttrVal>) -> Result<Op, String> {
        if let Some(op) = Op::from_table(opname, attrs) {
            return op;
        }
        match HighOp::from_table(opname, attrs) {
            Some(h) => h.map(Op::High),
            None => Err(format!("unknown op `{opname}`")),
        }
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
