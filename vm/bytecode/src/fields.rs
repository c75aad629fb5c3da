//! The field types of instructions: how each is encoded, decoded (with the
//! reason when it is malformed) and shown by the disassembler; typed codes
//! (`Pred`, `NormKind`) instead of raw bytes.

use crate::{DecodeError, Reader, Reg};

/// Encoding, decoding and display of one instruction field type.
pub trait Field: Sized {
    fn put(&self, w: &mut Vec<u8>);
    fn get(r: &mut Reader) -> Result<Self, DecodeError>;
    fn show(&self) -> String;
    /// The field from its [`Field::show`] text (the assembler's side).
    fn parse(s: &str) -> Result<Self, String>;
    /// Registers this field names.
    fn regs(&self) -> Vec<Reg> {
        vec![]
    }
}

impl Field for Reg {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.0.to_le_bytes());
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Reg(r.u32("a register")?))
    }
    fn show(&self) -> String {
        format!("r{}", self.0)
    }
    fn parse(s: &str) -> Result<Self, String> {
        s.strip_prefix('r')
            .and_then(|n| n.parse().ok())
            .map(Reg)
            .ok_or_else(|| format!("`{s}` is not a register (r0, r1, ...)"))
    }
    fn regs(&self) -> Vec<Reg> {
        vec![*self]
    }
}

impl Field for u32 {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        r.u32("an integer operand")
    }
    fn show(&self) -> String {
        self.to_string()
    }
    fn parse(s: &str) -> Result<Self, String> {
        s.parse()
            .map_err(|_| format!("`{s}` is not a non-negative integer"))
    }
}

/// The field of a small code held in one byte: the enum's discriminant on
/// the wire (checked against `ALL` when decoded), its `as_str` name in text.
macro_rules! byte_code_field {
    ($t:ty, $what:literal, $names:literal) => {
        impl Field for $t {
            fn put(&self, w: &mut Vec<u8>) {
                w.push(*self as u8);
            }
            fn get(r: &mut Reader) -> Result<Self, DecodeError> {
                let at = r.pos;
                let c = r.u8(concat!("a ", $what))?;
                <$t>::ALL
                    .get(c as usize)
                    .copied()
                    .ok_or(DecodeError::Invalid {
                        offset: at,
                        message: format!(concat!("unknown ", $what, " {}"), c),
                    })
            }
            fn show(&self) -> String {
                self.as_str().into()
            }
            fn parse(s: &str) -> Result<Self, String> {
                <$t>::ALL
                    .into_iter()
                    .find(|p| p.as_str() == s)
                    .ok_or_else(|| format!(concat!("`{}` is not ", $names), s))
            }
        }
    };
}

/// A comparison's predicate (the `pred` field of `cmp`), encoded as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pred {
    Lt = 0,
    Gt = 1,
    Le = 2,
    Ge = 3,
    Eq = 4,
    Ne = 5,
}

impl Pred {
    pub const ALL: [Pred; 6] = [Pred::Lt, Pred::Gt, Pred::Le, Pred::Ge, Pred::Eq, Pred::Ne];
    /// Whether `a pred b` holds.
    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Pred::Lt => a < b,
            Pred::Gt => a > b,
            Pred::Le => a <= b,
            Pred::Ge => a >= b,
            Pred::Eq => a == b,
            Pred::Ne => a != b,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Pred::Lt => "lt",
            Pred::Gt => "gt",
            Pred::Le => "le",
            Pred::Ge => "ge",
            Pred::Eq => "eq",
            Pred::Ne => "ne",
        }
    }
}

byte_code_field!(Pred, "predicate", "a predicate (lt, gt, le, ge, eq, ne)");

/// Which function of the highest set bit `norm_scale` computes (the `kind`
/// field of `norm_scale`, one byte; the IR's `norm_scale` attribute). With
/// e = ⌊log2 x⌋ for x > 0 (the scale is 0 for x ≤ 0):
/// - `recip`: 2^(−e−1), so x·s ∈ [0.5, 1);
/// - `rsqrt_in`: 2^(−e−2), so x·s ∈ [0.25, 0.5);
/// - `rsqrt_out`: 2^(−(e+2)/2), so rsqrt(x) = rsqrt(x·2^(−e−2))·s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NormKind {
    Recip = 0,
    RsqrtIn = 1,
    RsqrtOut = 2,
}

impl NormKind {
    pub const ALL: [NormKind; 3] = [NormKind::Recip, NormKind::RsqrtIn, NormKind::RsqrtOut];
    pub fn as_str(self) -> &'static str {
        match self {
            NormKind::Recip => "recip",
            NormKind::RsqrtIn => "rsqrt_in",
            NormKind::RsqrtOut => "rsqrt_out",
        }
    }
    pub fn parse(s: &str) -> Option<NormKind> {
        NormKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The positions j < k − 1 where the encoded scale of a (k, frac) value
    /// whose highest set bit is j differs from that of position j − 1 (0
    /// before position 0), encodings being round(scale(j − frac)·2^frac)
    /// mod 2^k. The scale of x > 0 is the sum over these positions of
    /// [x ≥ 2^j]·(scale_j − scale_{j−1}): the VM compares x with each 2^j.
    pub fn steps(self, k: u32, frac: u32) -> Vec<u32> {
        let enc = |j: i32| -> i128 {
            if j < 0 {
                return 0;
            }
            let v = (self.scale(j - frac as i32) * (frac as f64).exp2()).round() as i128;
            v & ((1i128 << k) - 1)
        };
        (0..k as i32 - 1)
            .filter(|&j| enc(j) != enc(j - 1))
            .map(|j| j as u32)
            .collect()
    }

    /// The scale for a real x > 0 whose highest set bit is 2^e (one
    /// definition for the IR evaluators and the VM).
    pub fn scale(self, e: i32) -> f64 {
        match self {
            NormKind::Recip => (-(e as f64) - 1.0).exp2(),
            NormKind::RsqrtIn => (-(e as f64) - 2.0).exp2(),
            NormKind::RsqrtOut => (-(e as f64 + 2.0) / 2.0).exp2(),
        }
    }
}

byte_code_field!(NormKind, "normalisation", "recip, rsqrt_in or rsqrt_out");

/// Which half of a rotary position table `rotary` builds (the `part` field,
/// one byte; the IR's `rotary` attribute): the cosines or the sines of
/// the angles of [`crate::fixed::rotary_angle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trig {
    Cos = 0,
    Sin = 1,
}

impl Trig {
    pub const ALL: [Trig; 2] = [Trig::Cos, Trig::Sin];
    pub fn as_str(self) -> &'static str {
        match self {
            Trig::Cos => "cos",
            Trig::Sin => "sin",
        }
    }
    pub fn parse(s: &str) -> Option<Trig> {
        Trig::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Trig::Cos => x.cos(),
            Trig::Sin => x.sin(),
        }
    }
}

byte_code_field!(Trig, "trigonometric part", "cos or sin");

impl Field for f64 {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(f64::from_bits(r.u64("a constant")?))
    }
    fn show(&self) -> String {
        format!("{self:?}")
    }
    fn parse(s: &str) -> Result<Self, String> {
        s.parse().map_err(|_| format!("`{s}` is not a number"))
    }
}

impl Field for Vec<u32> {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for x in self {
            x.put(w);
        }
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count(4, "a list")?;
        (0..n).map(|_| u32::get(r)).collect()
    }
    fn show(&self) -> String {
        let v: Vec<String> = self.iter().map(|x| x.to_string()).collect();
        format!("[{}]", v.join(", "))
    }
    fn parse(s: &str) -> Result<Self, String> {
        list(s)?.into_iter().map(u32::parse).collect()
    }
}

impl Field for Vec<Reg> {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for x in self {
            x.put(w);
        }
    }
    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count(4, "a register list")?;
        (0..n).map(|_| Reg::get(r)).collect()
    }
    fn show(&self) -> String {
        let v: Vec<String> = self.iter().map(|x| x.show()).collect();
        format!("[{}]", v.join(", "))
    }
    fn parse(s: &str) -> Result<Self, String> {
        list(s)?.into_iter().map(Reg::parse).collect()
    }
    fn regs(&self) -> Vec<Reg> {
        self.clone()
    }
}

/// The items of a bracketed list `[a, b, c]`.
fn list(s: &str) -> Result<Vec<&str>, String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("`{s}` is not a list [a, b, ...]"))?;
    Ok(inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect())
}
