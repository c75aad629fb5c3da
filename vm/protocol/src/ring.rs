//! The rings Z_2^32 and Z_2^64 behind one trait, with fixed-point encoding.
//!
//! Elements are unsigned words with wrapping arithmetic; a signed value is its
//! two's-complement representative. A real v in format (k, f) is stored as
//! round(v·2^f) mod 2^k.

use std::fmt::Debug;

pub trait Ring:
    Copy + Clone + Default + Debug + PartialEq + Eq + Send + Sync + 'static + std::hash::Hash
{
    const BITS: u32;
    const ZERO: Self;
    const ONE: Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn neg(self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn not(self) -> Self;
    fn shl(self, n: u32) -> Self;
    /// Logical right shift.
    fn shr(self, n: u32) -> Self;
    fn from_u64(v: u64) -> Self;
    fn to_u64(self) -> u64;
    /// The element ≡ v (mod 2^k).
    fn from_i64(v: i64) -> Self {
        Self::from_u64(v as u64)
    }
    /// The signed (two's-complement) value.
    fn to_i64(self) -> i64;
    fn bit(self, i: u32) -> bool {
        self.shr(i).to_u64() & 1 == 1
    }
    /// The element from its `BITS / 8` little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
    /// Writes the `BITS / 8` little-endian bytes into `out` (exactly that long).
    fn put_le(self, out: &mut [u8]);
    /// Fixed-point encoding of `v` with `frac` fraction bits (round to nearest).
    fn encode(v: f64, frac: u32) -> Self {
        Self::from_i64((v * (frac as f64).exp2()).round() as i64)
    }
    fn decode(self, frac: u32) -> f64 {
        self.to_i64() as f64 / (frac as f64).exp2()
    }
}

macro_rules! impl_ring {
    ($t:ty, $s:ty) => {
        impl Ring for $t {
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline(always)]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline(always)]
            fn not(self) -> Self {
                !self
            }
            #[inline(always)]
            fn shl(self, n: u32) -> Self {
                self.checked_shl(n).unwrap_or(0)
            }
            #[inline(always)]
            fn shr(self, n: u32) -> Self {
                self.checked_shr(n).unwrap_or(0)
            }
            #[inline(always)]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as $s as i64
            }
            #[inline(always)]
            fn put_le(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn read_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(&bytes[..std::mem::size_of::<$t>()]);
                <$t>::from_le_bytes(b)
            }
        }
    };
}

impl_ring!(u32, i32);
impl_ring!(u64, i64);

/// Serialises ring elements (little-endian).
pub fn to_bytes<R: Ring>(xs: &[R]) -> Vec<u8> {
    let w = R::BITS as usize / 8;
    let mut out = vec![0u8; xs.len() * w];
    put_bytes(xs, &mut out);
    out
}

/// Appends the serialised elements to `w`.
pub fn extend_bytes<R: Ring>(w: &mut Vec<u8>, xs: &[R]) {
    let start = w.len();
    w.resize(start + xs.len() * (R::BITS as usize / 8), 0);
    put_bytes(xs, &mut w[start..]);
}

/// Serialises ring elements into `out` (exactly `xs.len()·BITS/8` bytes).
pub fn put_bytes<R: Ring>(xs: &[R], out: &mut [u8]) {
    let w = R::BITS as usize / 8;
    assert_eq!(out.len(), xs.len() * w, "put_bytes: wrong buffer length");
    for (c, &x) in out.chunks_exact_mut(w).zip(xs) {
        x.put_le(c);
    }
}

/// Parses exactly `n` ring elements; `None` if the length is wrong.
pub fn from_bytes<R: Ring>(bytes: &[u8], n: usize) -> Option<Vec<R>> {
    let w = R::BITS as usize / 8;
    if bytes.len() != n * w {
        return None;
    }
    Some(bytes.chunks_exact(w).map(R::read_le).collect())
}

/// Adds the serialised elements in `bytes` to `acc`; false (and `acc`
/// untouched) if the length is not `acc.len()` elements.
pub fn add_from_bytes<R: Ring>(acc: &mut [R], bytes: &[u8]) -> bool {
    let w = R::BITS as usize / 8;
    if bytes.len() != acc.len() * w {
        return false;
    }
    for (x, c) in acc.iter_mut().zip(bytes.chunks_exact(w)) {
        *x = x.add(R::read_le(c));
    }
    true
}

/// Packs bits (one per element) into bytes, LSB first.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

pub fn unpack_bits(bytes: &[u8], n: usize) -> Option<Vec<bool>> {
    if bytes.len() != n.div_ceil(8) {
        return None;
    }
    Some((0..n).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect())
}

/// The low `w` bits set (w ≤ 64).
pub fn low_mask(w: u32) -> u64 {
    u64::MAX.checked_shr(64 - w).unwrap_or(0)
}

/// Packs the low `w` bits (1 ≤ w ≤ 64) of each value, LSB first, into
/// ⌈n·w/8⌉ bytes: a share that only matters mod 2^w travels as w bits.
/// (Bits gather in a 128-bit accumulator that is flushed 64 at a time.)
pub fn pack_width(vals: &[u64], w: u32) -> Vec<u8> {
    debug_assert!((1..=64).contains(&w));
    let mask = low_mask(w);
    let total = (vals.len() * w as usize).div_ceil(8);
    let mut out = Vec::with_capacity(total + 8);
    let (mut acc, mut have) = (0u128, 0u32);
    for &v in vals {
        acc |= ((v & mask) as u128) << have;
        have += w;
        if have >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            have -= 64;
        }
    }
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..have.div_ceil(8) as usize]);
    debug_assert_eq!(out.len(), total);
    out
}

/// Reads `n` values of `w` bits written by [`pack_width`]; `None` if the
/// length is wrong.
pub fn unpack_width(bytes: &[u8], n: usize, w: u32) -> Option<Vec<u64>> {
    if !(1..=64).contains(&w) || bytes.len() != (n * w as usize).div_ceil(8) {
        return None;
    }
    let mask = low_mask(w);
    let mut out = Vec::with_capacity(n);
    let (mut acc, mut have) = (0u128, 0u32);
    let mut words = bytes.chunks(8);
    for _ in 0..n {
        if have < w {
            let chunk = words.next()?;
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            acc |= (u64::from_le_bytes(b) as u128) << have;
            have += 64;
        }
        out.push(acc as u64 & mask);
        acc >>= w;
        have -= w;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_widths_round_trip() {
        let vals: Vec<u64> = (0..37u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for w in [1, 7, 9, 19, 33, 63, 64] {
            let bytes = pack_width(&vals, w);
            assert_eq!(bytes.len(), (37 * w as usize).div_ceil(8));
            let mask = low_mask(w);
            let back = unpack_width(&bytes, 37, w).unwrap();
            assert!(vals.iter().zip(&back).all(|(a, b)| a & mask == *b), "w={w}");
            assert!(unpack_width(&bytes[1..], 37, w).is_none());
        }
    }
}
