//! ditto-bytecode: the ditto VM's program format.
//!
//! A [`Program`] is a header (magic, format version, SHA-256 of the body), the
//! typed registers, the declared inputs (with owners), weights and outputs,
//! and a linear list of vectorised instructions over the registers. The
//! instruction set is declared once, in [`instructions!`]; the enum, the
//! binary encoder, the validating decoder, the disassembler and the table of
//! docs/bytecode.md are all derived from that declaration.
//!
//! Decoding never panics: a short, long, tampered or ill-typed file is
//! rejected with a [`DecodeError`] saying where and why.
//!
//! Status (issue 4): the format, encoder, decoder, validator and
//! disassembler exist; the compiler's codegen and the VM that execute it do
//! not yet.

mod asm;
mod fields;
pub mod fixed;
mod validate;

pub use fields::{Field, NormKind, Pred, Trig};

pub use validate::validate;

use sha2::{Digest, Sha256};
use std::fmt::{self, Write};

pub const MAGIC: &[u8; 8] = b"DITTOBC\0";
pub const VERSION: u16 = 4;
/// Largest rank and number of elements of a register.
pub const MAX_RANK: usize = 8;
pub const MAX_ELEMENTS: u64 = 1 << 34;

/// A register index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u32);

/// A register's element kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Ring Z_2^ring with `frac` fraction bits.
    Fixed {
        ring: u8,
        frac: u8,
    },
    Bool,
}

/// A register's type: visibility, element kind, shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegType {
    pub secret: bool,
    pub kind: Kind,
    pub shape: Vec<u64>,
}

impl RegType {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

impl fmt::Display for RegType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.secret { 's' } else { 'p' };
        match self.kind {
            Kind::Fixed { ring, frac } => write!(f, "{v}{ring}.{frac}")?,
            Kind::Bool => write!(f, "{v}bool")?,
        }
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

/// Who supplies an input (or, for an output, who receives it: `None` the
/// client, `Parties` the parties themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Client,
    ModelOwner,
    /// Session state: an input the parties hold as secret shares from the
    /// previous run of a session (zero on the first), or an output they keep
    /// for the next instead of revealing it to the client.
    Parties,
}

/// A named interface register (input, weight or output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub reg: Reg,
    /// Inputs: who supplies it. Outputs: `Some(Parties)` for a value the
    /// parties keep (session state), `None` for one revealed to the client.
    pub owner: Option<Owner>,
    /// Weights only: the register holds the transpose of the stored
    /// (weights-file) matrix, so the program needs no transpose of it; the
    /// model owner deals it in this layout (rank 2 only).
    pub transposed: bool,
}

/// A decoded, validated program.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Program {
    pub regs: Vec<RegType>,
    pub inputs: Vec<Port>,
    pub weights: Vec<Port>,
    pub outputs: Vec<Port>,
    pub code: Vec<Instr>,
    /// Debug information for cost reports: scope names (e.g. the layer
    /// `encoder.layer.3`), and each instruction's scope index. Either both
    /// empty or one scope index per instruction.
    pub scopes: Vec<String>,
    pub scope_of: Vec<u32>,
    /// What the program was compiled from (`model`, `config`, `policy`,
    /// ...), for reports: key–value pairs, keys unique.
    pub meta: Vec<(String, String)>,
}

/// The metadata key listing the registers written inside `@approx` code
/// (approximations that may overflow on purpose in a branch a selection
/// discards; the run-time range guard leaves their conversions alone).
pub const APPROX_META: &str = "approx";

/// Register numbers as ranges: `3-7,9,12-13`.
pub fn encode_regs(regs: &[u32]) -> String {
    let mut v = regs.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// The registers of [`encode_regs`]'s form; `None` if malformed.
pub fn decode_regs(s: &str) -> Option<Vec<u32>> {
    let mut out = vec![];
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 24 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

impl Program {
    /// The value of metadata `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a file was rejected, and at which byte offset of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a ditto bytecode file (bad magic)")]
    BadMagic,
    #[error("bytecode format version {0} is not supported (this VM reads version {VERSION})")]
    Version(u16),
    #[error("the program hash does not match its body: the file is corrupt or was modified")]
    HashMismatch,
    #[error("truncated at byte {offset}: needed {needed} more byte(s) for {what}")]
    Truncated {
        offset: usize,
        needed: usize,
        what: &'static str,
    },
    #[error("{extra} unexpected byte(s) after the end of the program")]
    Trailing { extra: usize },
    #[error("byte {offset}: {message}")]
    Invalid { offset: usize, message: String },
    #[error("instruction {index} ({mnemonic}): {message}")]
    Ill {
        index: usize,
        mnemonic: &'static str,
        message: String,
    },
}

/// Little-endian reader with bounds checks.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.pos < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - (self.bytes.len() - self.pos),
                what,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of items each at least `min_size` bytes long: bounded by what
    /// remains, so a corrupt count cannot make the decoder allocate.
    fn count(&mut self, min_size: usize, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size.max(1)) > self.bytes.len() - self.pos {
            return Err(DecodeError::Invalid {
                offset: at,
                message: format!("{what}: count {n} exceeds the file"),
            });
        }
        Ok(n)
    }
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let n = self.count(1, what)?;
        let at = self.pos;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid {
            offset: at,
            message: format!("{what} is not UTF-8"),
        })
    }
}

/// Declares the instruction set: opcode, name, fields (a field named `dst`
/// is the register written; every other register field is read), and a
/// one-line description.
macro_rules! instructions {
    ($( $code:literal $name:ident { $($field:ident : $fty:ty),* } $doc:literal ;)*) => {
        /// One VM instruction (see [`TABLE`]).
        #[derive(Debug, Clone, PartialEq)]
        pub enum Instr {
            $( #[doc = $doc] $name { $($field: $fty),* } ),*
        }

        /// (opcode, mnemonic, fields as (name, type), description) of every
        /// instruction, in opcode order.
        pub const TABLE: &[(u8, &str, &[(&str, &str)], &str)] = &[
            $( ($code, stringify!($name), &[$((stringify!($field), stringify!($fty))),*], $doc) ),*
        ];

        impl Instr {
            pub fn opcode(&self) -> u8 {
                match self { $( Instr::$name { .. } => $code ),* }
            }
            pub fn mnemonic(&self) -> &'static str {
                match self { $( Instr::$name { .. } => stringify!($name) ),* }
            }
            pub fn encode_into(&self, w: &mut Vec<u8>) {
                match self {
                    $( Instr::$name { $($field),* } => { w.push($code); $( Field::put($field, w); )* } ),*
                }
            }
            fn decode_from(r: &mut Reader) -> Result<Instr, DecodeError> {
                let at = r.pos;
                match r.u8("an opcode")? {
                    $( $code => Ok(Instr::$name { $($field: <$fty as Field>::get(r)?),* }), )*
                    other => Err(DecodeError::Invalid { offset: at, message: format!("unknown opcode {other:#04x}") }),
                }
            }
            /// The register written (if any) and the registers read.
            pub fn regs(&self) -> (Option<Reg>, Vec<Reg>) {
                match self {
                    $( #[allow(unused_variables, unused_mut)] Instr::$name { $($field),* } => {
                        let mut dst = None;
                        let mut src = Vec::new();
                        $( if stringify!($field) == "dst" { dst = Field::regs($field).first().copied(); } else { src.extend(Field::regs($field)); } )*
                        (dst, src)
                    } ),*
                }
            }
            /// `mnemonic field=value ...` for the disassembler.
            /// An instruction from its mnemonic and `field=value` pairs
            /// (the assembler's side of [`Instr::show`]).
            pub fn parse(mnemonic: &str, fields: &[(&str, &str)]) -> Result<Instr, String> {
                let (_, name, known, _) = TABLE
                    .iter()
                    .find(|t| t.1.eq_ignore_ascii_case(mnemonic))
                    .ok_or_else(|| format!("unknown instruction `{mnemonic}`"))?;
                if let Some((k, _)) = fields.iter().find(|(k, _)| !known.iter().any(|(f, _)| f == k)) {
                    return Err(format!("`{mnemonic}` has no field `{k}`"));
                }
                #[allow(unused_variables)]
                let get = |k: &str| {
                    fields
                        .iter()
                        .find(|(f, _)| *f == k)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| format!("`{mnemonic}` needs `{k}=...`"))
                };
                match *name {
                    $( stringify!($name) => Ok(Instr::$name { $($field: <$fty as Field>::parse(get(stringify!($field))?)
                        .map_err(|e| format!("{}: {e}", stringify!($field)))?),* }), )*
                    _ => unreachable!("TABLE lists every instruction"),
                }
            }

            pub fn show(&self) -> String {
                match self {
                    $( #[allow(unused_variables, unused_mut)] Instr::$name { $($field),* } => {
                        let mut s = stringify!($name).to_lowercase();
                        $( let _ = write!(s, " {}={}", stringify!($field), Field::show($field)); )*
                        s
                    } ),*
                }
            }
        }
    };
}

instructions! {
    0x01 Input { dst: Reg, port: u32 } "load the shares of input `port`";
    0x02 Weight { dst: Reg, port: u32 } "load the shares of weight `port`";
    0x03 Const { dst: Reg, value: f64 } "public scalar, encoded in dst's format";
    0x04 Iota { dst: Reg } "public integers 0..n";
    0x05 Rotary { dst: Reg, part: Trig, theta: f64, offset: u32 } "public RoPE table [n, d]: cos or sin of (offset + i)·θ^(−2(j mod d/2)/d)";
    0x10 Add { dst: Reg, a: Reg, b: Reg } "a + b (equal shapes, or one scalar); local";
    0x11 Sub { dst: Reg, a: Reg, b: Reg } "a − b; local";
    0x12 Neg { dst: Reg, a: Reg } "−a; local";
    0x13 Mul { dst: Reg, a: Reg, b: Reg } "element-wise product, fraction bits add up; 1 round if both secret";
    0x14 MatMul { dst: Reg, a: Reg, b: Reg } "matrix product over the last two axes; 1 round if both secret";
    0x15 Rescale { dst: Reg, a: Reg } "the same words read with dst's fraction bits: a·2^(f_a − f_dst), exact; local";
    0x18 Convert { dst: Reg, a: Reg } "format change: Ditto's conversion (k_in, m, k_out) from the two register types, or a local shift/downcast";
    0x20 Cmp { dst: Reg, a: Reg, b: Reg, pred: Pred } "comparison to a boolean: pred lt (0), gt, le, ge, eq, ne (5)";
    0x21 Not { dst: Reg, a: Reg } "boolean negation; local";
    0x22 Select { dst: Reg, c: Reg, a: Reg, b: Reg } "a where c else b (B2A and one product)";
    0x30 Transpose { dst: Reg, a: Reg, perm: Vec<u32> } "permute axes; local";
    0x31 Reshape { dst: Reg, a: Reg } "same elements, dst's shape; local";
    0x32 Slice { dst: Reg, a: Reg, axis: u32, start: u32 } "elements start.. of one axis (length from dst); local";
    0x33 Concat { dst: Reg, srcs: Vec<Reg>, axis: u32 } "join along an axis; local";
    0x34 Broadcast { dst: Reg, a: Reg } "NumPy broadcasting to dst's shape; local";
    0x40 Sum { dst: Reg, a: Reg, axis: u32 } "sum along an axis (kept); local";
    0x41 Max { dst: Reg, a: Reg, axis: u32 } "maximum along an axis (kept): a tree of comparisons";
    0x42 Mean { dst: Reg, a: Reg, axis: u32 } "mean along an axis (kept): a sum, a public scaling and a truncation";
    0x50 NormScale { dst: Reg, a: Reg, kind: NormKind } "power-of-two scale from the highest set bit: kind recip (0), rsqrt_in (1), rsqrt_out (2)";
    0x60 Embed { dst: Reg, ids: Reg, table: Reg } "rows of table picked by integer ids";
    0x70 Output { port: u32, a: Reg } "reveal `a` to the client as output `port`";
    0x7f Round { } "round boundary: the instructions before it may batch their messages";
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u32).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_ports(w: &mut Vec<u8>, ports: &[Port]) {
    w.extend_from_slice(&(ports.len() as u32).to_le_bytes());
    for p in ports {
        put_str(w, &p.name);
        p.reg.put(w);
        w.push(match p.owner {
            None => 0,
            Some(Owner::Client) => 1,
            Some(Owner::ModelOwner) => 2,
            Some(Owner::Parties) => 3,
        });
        w.push(p.transposed as u8);
    }
}

fn get_ports(r: &mut Reader, what: &'static str) -> Result<Vec<Port>, DecodeError> {
    let n = r.count(10, what)?;
    (0..n)
        .map(|_| {
            let name = r.string("a port name")?;
            let reg = Reg::get(r)?;
            let at = r.pos;
            let owner = match r.u8("a port owner")? {
                0 => None,
                1 => Some(Owner::Client),
                2 => Some(Owner::ModelOwner),
                3 => Some(Owner::Parties),
                o => {
                    return Err(DecodeError::Invalid {
                        offset: at,
                        message: format!("unknown owner {o}"),
                    })
                }
            };
            let at = r.pos;
            let transposed = match r.u8("a port layout")? {
                0 => false,
                1 => true,
                l => {
                    return Err(DecodeError::Invalid {
                        offset: at,
                        message: format!("unknown port layout {l}"),
                    })
                }
            };
            Ok(Port {
                name,
                reg,
                owner,
                transposed,
            })
        })
        .collect()
}

impl Program {
    /// The body: everything the hash covers.
    fn body(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(&(self.regs.len() as u32).to_le_bytes());
        for t in &self.regs {
            w.push(t.secret as u8);
            match t.kind {
                Kind::Fixed { ring, frac } => w.extend_from_slice(&[0, ring, frac]),
                Kind::Bool => w.extend_from_slice(&[1, 0, 0]),
            }
            w.push(t.shape.len() as u8);
            for d in &t.shape {
                w.extend_from_slice(&d.to_le_bytes());
            }
        }
        put_ports(&mut w, &self.inputs);
        put_ports(&mut w, &self.weights);
        put_ports(&mut w, &self.outputs);
        w.extend_from_slice(&(self.code.len() as u32).to_le_bytes());
        for i in &self.code {
            i.encode_into(&mut w);
        }
        w.extend_from_slice(&(self.scopes.len() as u32).to_le_bytes());
        for name in &self.scopes {
            put_str(&mut w, name);
        }
        self.scope_of.put(&mut w);
        w.extend_from_slice(&(self.meta.len() as u32).to_le_bytes());
        for (k, v) in &self.meta {
            put_str(&mut w, k);
            put_str(&mut w, v);
        }
        w
    }

    /// SHA-256 of the body: the identity parties and clients agree on.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.body()).into()
    }

    /// The file: magic, version, hash, body.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.body();
        let mut w = Vec::with_capacity(body.len() + 42);
        w.extend_from_slice(MAGIC);
        w.extend_from_slice(&VERSION.to_le_bytes());
        w.extend_from_slice(&Sha256::digest(&body));
        w.extend_from_slice(&body);
        w
    }

    /// Decodes and validates a file; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Program, DecodeError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes.len() < 42 {
            return Err(DecodeError::Truncated {
                offset: 0,
                needed: 42 - bytes.len(),
                what: "the header",
            });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let body = &bytes[42..];
        if Sha256::digest(body).as_slice() != &bytes[10..42] {
            return Err(DecodeError::HashMismatch);
        }
        let mut r = Reader {
            bytes: body,
            pos: 0,
        };
        let nregs = r.count(6, "registers")?;
        let mut regs = Vec::with_capacity(nregs);
        for _ in 0..nregs {
            let at = r.pos;
            let secret = match r.u8("a visibility")? {
                0 => false,
                1 => true,
                v => {
                    return Err(DecodeError::Invalid {
                        offset: at,
                        message: format!("visibility {v} is neither 0 nor 1"),
                    })
                }
            };
            let at = r.pos;
            let (k, ring, frac) = (r.u8("a kind")?, r.u8("a ring")?, r.u8("fraction bits")?);
            let kind = match k {
                0 if (ring == 32 || ring == 64) && frac as u32 + 4 <= ring as u32 => {
                    Kind::Fixed { ring, frac }
                }
                // canonical: a boolean register has no ring or fraction bits
                1 if ring == 0 && frac == 0 => Kind::Bool,
                _ => {
                    return Err(DecodeError::Invalid {
                        offset: at,
                        message: format!("bad element type (kind {k}, ring {ring}, frac {frac})"),
                    })
                }
            };
            let at = r.pos;
            let rank = r.u8("a rank")? as usize;
            if rank > MAX_RANK {
                return Err(DecodeError::Invalid {
                    offset: at,
                    message: format!("rank {rank} exceeds {MAX_RANK}"),
                });
            }
            let shape = (0..rank)
                .map(|_| r.u64("a dimension"))
                .collect::<Result<Vec<_>, _>>()?;
            let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            if numel.is_none_or(|n| n > MAX_ELEMENTS) {
                return Err(DecodeError::Invalid {
                    offset: at,
                    message: format!("shape {shape:?} is too large"),
                });
            }
            regs.push(RegType {
                secret,
                kind,
                shape,
            });
        }
        let inputs = get_ports(&mut r, "inputs")?;
        let weights = get_ports(&mut r, "weights")?;
        let outputs = get_ports(&mut r, "outputs")?;
        let n = r.count(1, "instructions")?;
        let mut code = Vec::with_capacity(n);
        for _ in 0..n {
            code.push(Instr::decode_from(&mut r)?);
        }
        let ns = r.count(4, "scopes")?;
        let scopes = (0..ns)
            .map(|_| r.string("a scope name"))
            .collect::<Result<Vec<_>, _>>()?;
        let scope_of = <Vec<u32>>::get(&mut r)?;
        let nm = r.count(8, "metadata entries")?;
        let mut meta: Vec<(String, String)> = Vec::with_capacity(nm);
        for _ in 0..nm {
            let at = r.pos;
            let k = r.string("a metadata key")?;
            let v = r.string("a metadata value")?;
            if k.is_empty() || meta.iter().any(|(m, _)| *m == k) {
                return Err(DecodeError::Invalid {
                    offset: at,
                    message: format!("metadata key {k:?} is empty or repeated"),
                });
            }
            meta.push((k, v));
        }
        if r.pos != body.len() {
            return Err(DecodeError::Trailing {
                extra: body.len() - r.pos,
            });
        }
        let p = Program {
            regs,
            inputs,
            weights,
            outputs,
            code,
            scopes,
            scope_of,
            meta,
        };
        validate(&p)?;
        Ok(p)
    }

    /// Human-readable listing.
    pub fn disassemble(&self) -> String {
        let mut s = String::new();
        let hash: String = self.hash().iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(s, "; ditto bytecode v{VERSION}, program hash {hash}");
        for (k, v) in &self.meta {
            let _ = writeln!(s, "; {k} = {v}");
        }
        let ports = |s: &mut String, kind: &str, ps: &[Port]| {
            for (i, p) in ps.iter().enumerate() {
                let owner = match p.owner {
                    Some(Owner::Client) => " from client",
                    Some(Owner::ModelOwner) => " from model_owner",
                    Some(Owner::Parties) if kind == "output" => " to parties",
                    Some(Owner::Parties) => " from parties",
                    None => "",
                };
                let layout = if p.transposed { " transposed" } else { "" };
                let _ = writeln!(
                    s,
                    "; {kind} #{i} {:?} = r{}{owner}{layout}",
                    p.name, p.reg.0
                );
            }
        };
        ports(&mut s, "input", &self.inputs);
        ports(&mut s, "weight", &self.weights);
        ports(&mut s, "output", &self.outputs);
        for (i, t) in self.regs.iter().enumerate() {
            let _ = writeln!(s, "; r{i}: {t}");
        }
        for (i, name) in self.scopes.iter().enumerate() {
            let _ = writeln!(s, "; scope #{i} {name:?}");
        }
        let mut scope = None;
        for (i, ins) in self.code.iter().enumerate() {
            let here = self.scope_of.get(i).copied();
            if here != scope {
                if let Some(name) = here.and_then(|k| self.scopes.get(k as usize)) {
                    let _ = writeln!(s, "; scope {name}");
                }
                scope = here;
            }
            let _ = writeln!(s, "{i:>6}: {}", ins.show());
        }
        s
    }
}

/// The instruction table of docs/bytecode.md, generated from [`TABLE`].
pub fn docs_table() -> String {
    let mut s = String::from("| opcode | instruction | operands | meaning |\n|---|---|---|---|\n");
    for (code, name, fields, doc) in TABLE {
        let f: Vec<String> = fields.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        let _ = writeln!(
            s,
            "| `{code:#04x}` | `{}` | {} | {doc} |",
            name.to_lowercase(),
            f.join(", ")
        );
    }
    s
}

/// How a lookup of secret ids (`Embed`) in a table of `rows` rows of
/// `width` values is split: id = h·A + l with one-hots of l over `A` rows and
/// of h over `B` rows, A·B ≥ rows. The client sends both one-hots (2·(A + B)
/// ring elements per token and party, instead of 2·rows for one one-hot over
/// the whole table); the parties compute U = onehot(h)·T, the table read as
/// [B, A·width] ([S, A·width], one reshare of A·width per token), then
/// onehot(l)·U per token (one reshare of width).
/// A is chosen to minimise the elements moved: 6(A + B) + 3·A·width against
/// 6·rows for the direct one-hot, which `(1, rows)` means (small tables such
/// as token types).
pub fn onehot_split(rows: u64, width: u64) -> (u64, u64) {
    let direct = 6 * rows;
    let mut best = (direct, 1, rows);
    let mut a = 2;
    while a * a <= 4 * rows && a <= rows {
        let b = rows.div_ceil(a);
        let cost = 6 * (a + b) + 3 * a * width;
        if cost < best.0 {
            best = (cost, a, b);
        }
        a += 1;
    }
    (best.1, best.2)
}

/// The body of the bytecode fuzz target (`fuzz/`), callable from ordinary
/// tests (tests/format.rs runs it briefly): arbitrary bytes as a file, and as
/// a body behind a valid header (to get past the hash). The decoder must
/// never panic, and what it accepts must re-encode identically.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let _ = Program::decode(data);
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.extend_from_slice(&Sha256::digest(data));
    file.extend_from_slice(data);
    if let Ok(p) = Program::decode(&file) {
        assert_eq!(
            p.encode(),
            file,
            "an accepted program re-encodes identically"
        );
        let _ = p.disassemble();
    }
}

#[cfg(test)]
mod split_tests {
    use super::onehot_split;

    #[test]
    fn large_tables_split_small_ones_do_not() {
        let (a, b) = onehot_split(30522, 384);
        assert!((10..=16).contains(&a) && a * b >= 30522, "{a} × {b}");
        assert_eq!(onehot_split(2, 384), (1, 2));
        assert_eq!(onehot_split(1, 8), (1, 1));
        let (a, b) = onehot_split(50257, 768);
        assert!(a > 1 && a * b >= 50257 && 6 * (a + b) + 3 * a * 768 < 6 * 50257);
    }
}
