//! IR types: ring, fixed-point format, visibility, element kind and shape.
//! Text forms: `s32.8[7, 384]`, `p64.18[]`, `sbool[7, 7]`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ring {
    Z32,
    Z64,
}

impl Ring {
    pub fn bits(self) -> u32 {
        match self {
            Ring::Z32 => 32,
            Ring::Z64 => 64,
        }
    }
    pub fn from_bits(bits: i64) -> Option<Ring> {
        match bits {
            32 => Some(Ring::Z32),
            64 => Some(Ring::Z64),
            _ => None,
        }
    }
}

/// A fixed-point format (k, f): ring Z_2^k with f fraction bits. Integers are
/// (k, 0). Valid when 0 ≤ f ≤ k − 4 (NUMERICS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Format {
    pub ring: Ring,
    pub frac: u8,
}

impl Format {
    pub const LOW: Format = Format {
        ring: Ring::Z32,
        frac: 8,
    };
    pub const HIGH: Format = Format {
        ring: Ring::Z64,
        frac: 18,
    };
    /// Checks (k, f) against the DSL's rules; the error says what is allowed.
    pub fn new(ring_bits: i64, frac: i64) -> Result<Format, String> {
        let ring = Ring::from_bits(ring_bits)
            .ok_or_else(|| format!("ring must be 32 or 64 bits, not {ring_bits}"))?;
        let max = ring.bits() as i64 - 4;
        if !(0..=max).contains(&frac) {
            return Err(format!(
                "fraction bits must be between 0 and {max} in a {}-bit ring, not {frac}",
                ring.bits()
            ));
        }
        Ok(Format {
            ring,
            frac: frac as u8,
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.ring.bits(), self.frac)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vis {
    Public,
    Secret,
}

impl Vis {
    pub fn join(self, other: Vis) -> Vis {
        if self == Vis::Secret || other == Vis::Secret {
            Vis::Secret
        } else {
            Vis::Public
        }
    }
    pub fn letter(self) -> char {
        match self {
            Vis::Public => 'p',
            Vis::Secret => 's',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    Fixed(Format),
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Type {
    pub vis: Vis,
    pub elem: Elem,
    pub shape: Vec<usize>,
}

impl Type {
    pub fn fixed(vis: Vis, format: Format, shape: Vec<usize>) -> Type {
        Type {
            vis,
            elem: Elem::Fixed(format),
            shape,
        }
    }
    pub fn is_bool(&self) -> bool {
        self.elem == Elem::Bool
    }
    pub fn format(&self) -> Option<Format> {
        match self.elem {
            Elem::Fixed(f) => Some(f),
            Elem::Bool => None,
        }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

pub fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.elem {
            Elem::Fixed(fm) => write!(f, "{}{}.{}", self.vis.letter(), fm.ring.bits(), fm.frac)?,
            Elem::Bool => write!(f, "{}bool", self.vis.letter())?,
        }
        write!(f, "{}", shape_str(&self.shape))
    }
}
