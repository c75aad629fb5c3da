//! Register values: public tensors (in the clear, known to every party) and
//! secret ones (this party's replicated shares), in Z_2^32, Z_2^64 or as bits.
//! Shapes live in the program's register types, not here.

use ditto_protocol::{AShare, BitShare, Ring};
use std::borrow::Cow;

/// A register's contents at one party.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    P32(Vec<u32>),
    P64(Vec<u64>),
    PBool(Vec<bool>),
    S32(AShare<u32>),
    S64(AShare<u64>),
    SBool(BitShare),
    /// A product not yet reshared: this party's masked 3-out-of-3 additive
    /// share, consumed only by the conversion that truncates it.
    Z32(Vec<u32>),
    Z64(Vec<u64>),
}

impl Value {
    pub fn len(&self) -> usize {
        match self {
            Value::P32(v) => v.len(),
            Value::P64(v) => v.len(),
            Value::PBool(v) => v.len(),
            Value::S32(s) => s.len(),
            Value::S64(s) => s.len(),
            Value::SBool(s) => s.len(),
            Value::Z32(z) => z.len(),
            Value::Z64(z) => z.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Value::S32(_) | Value::S64(_) | Value::SBool(_) | Value::Z32(_) | Value::Z64(_)
        )
    }
    /// The same data movement applied to each of the value's vectors (both
    /// components of a share).
    fn moved(&self, m: &impl Movement) -> Value {
        match self {
            Value::P32(v) => Value::P32(m.apply(v)),
            Value::P64(v) => Value::P64(m.apply(v)),
            Value::PBool(v) => Value::PBool(m.apply(v)),
            Value::S32(s) => Value::S32(AShare {
                a: m.apply(&s.a),
                b: m.apply(&s.b),
            }),
            Value::S64(s) => Value::S64(AShare {
                a: m.apply(&s.a),
                b: m.apply(&s.b),
            }),
            Value::SBool(s) => Value::SBool(BitShare {
                a: m.apply(&s.a),
                b: m.apply(&s.b),
            }),
            Value::Z32(z) => Value::Z32(m.apply(z)),
            Value::Z64(z) => Value::Z64(m.apply(z)),
        }
    }
    /// Swaps the last two axes of `batch` matrices of `r`×`c` (blocked for
    /// the cache; the common weight transpose).
    pub fn transpose_last2(&self, batch: usize, r: usize, c: usize) -> Value {
        struct T(usize, usize, usize);
        impl Movement for T {
            fn apply<E: Copy + Default>(&self, v: &[E]) -> Vec<E> {
                transpose_batched(v, self.0, self.1, self.2)
            }
        }
        self.moved(&T(batch, r, c))
    }
    /// A strided view of the value, copied ([`strided`]): every other data
    /// movement (slice, transpose, broadcast), local on shares.
    pub fn strided(&self, out_shape: &[usize], strides: &[usize], base: usize) -> Value {
        struct S<'a>(&'a [usize], &'a [usize], usize);
        impl Movement for S<'_> {
            fn apply<E: Copy + Default>(&self, v: &[E]) -> Vec<E> {
                strided(v, self.0, self.1, self.2)
            }
        }
        self.moved(&S(out_shape, strides, base))
    }
}

/// A data movement: the same rearrangement of any vector of elements.
trait Movement {
    fn apply<E: Copy + Default>(&self, v: &[E]) -> Vec<E>;
}

/// A numeric operand in ring `R`: public or this party's share, borrowed
/// when no conversion was needed.
pub enum Arg<'a, R: Ring + Clone> {
    P(Cow<'a, [R]>),
    S(Cow<'a, AShare<R>>),
}

impl<R: Ring> Arg<'_, R> {
    pub fn len(&self) -> usize {
        match self {
            Arg::P(v) => v.len(),
            Arg::S(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn into_owned(self) -> Arg<'static, R> {
        match self {
            Arg::P(v) => Arg::P(Cow::Owned(v.into_owned())),
            Arg::S(s) => Arg::S(Cow::Owned(s.into_owned())),
        }
    }
}

/// The two rings, tied to the [`Value`] variants.
pub trait Rv: Ring {
    fn view(v: &Value) -> Option<Arg<'_, Self>>;
    /// An additive (not yet reshared) share in this ring.
    fn additive(v: &Value) -> Option<&[Self]>;
    fn wrap_additive(z: Vec<Self>) -> Value;
    fn public(v: Vec<Self>) -> Value;
    fn secret(s: AShare<Self>) -> Value;
    fn wrap(a: Arg<'_, Self>) -> Value {
        match a {
            Arg::P(v) => Self::public(v.into_owned()),
            Arg::S(s) => Self::secret(s.into_owned()),
        }
    }
}

impl Rv for u32 {
    fn view(v: &Value) -> Option<Arg<'_, u32>> {
        match v {
            Value::P32(x) => Some(Arg::P(Cow::Borrowed(x))),
            Value::S32(s) => Some(Arg::S(Cow::Borrowed(s))),
            _ => None,
        }
    }
    fn additive(v: &Value) -> Option<&[u32]> {
        match v {
            Value::Z32(z) => Some(z),
            _ => None,
        }
    }
    fn wrap_additive(z: Vec<u32>) -> Value {
        Value::Z32(z)
    }
    fn public(v: Vec<u32>) -> Value {
        Value::P32(v)
    }
    fn secret(s: AShare<u32>) -> Value {
        Value::S32(s)
    }
}

impl Rv for u64 {
    fn view(v: &Value) -> Option<Arg<'_, u64>> {
        match v {
            Value::P64(x) => Some(Arg::P(Cow::Borrowed(x))),
            Value::S64(s) => Some(Arg::S(Cow::Borrowed(s))),
            _ => None,
        }
    }
    fn additive(v: &Value) -> Option<&[u64]> {
        match v {
            Value::Z64(z) => Some(z),
            _ => None,
        }
    }
    fn wrap_additive(z: Vec<u64>) -> Value {
        Value::Z64(z)
    }
    fn public(v: Vec<u64>) -> Value {
        Value::P64(v)
    }
    fn secret(s: AShare<u64>) -> Value {
        Value::S64(s)
    }
}

/// Fixed-point encoding of a real: round(x·2^frac), saturated, then reduced
/// into the ring (as the compiler's fixed-point evaluator does).
pub fn encode<R: Ring>(x: f64, frac: u32) -> R {
    encode_scaled(x, (frac as f64).exp2())
}

/// [`encode`] with the scale 2^frac given (hoisted out of loops).
pub fn encode_scaled<R: Ring>(x: f64, scale: f64) -> R {
    let y = x * scale;
    if y.abs() < 9.0e18 {
        // the common case, without 128-bit arithmetic or a call to `round`:
        // y − trunc(y) is exact, so this rounds half away from zero as
        // `f64::round` does
        let i = y as i64;
        let f = y - i as f64;
        R::from_u64((i + (f >= 0.5) as i64 - (f <= -0.5) as i64) as u64)
    } else {
        R::from_u64(y.round().clamp(-1.7e38, 1.7e38) as i128 as u64)
    }
}

/// A public tensor as a (trivial) sharing: the value sits in component x_0.
pub fn share_public<R: Ring>(party: usize, c: &[R]) -> AShare<R> {
    AShare::zeros(c.len()).add_public(party, c)
}

/// `v` repeated to `n` elements if it is a scalar.
pub fn expand<R: Ring>(v: &[R], n: usize) -> Cow<'_, [R]> {
    if v.len() == n {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(vec![v[0]; n])
    }
}

/// Share `s` repeated to `n` elements if it is a scalar.
pub fn expand_share<R: Ring>(s: &AShare<R>, n: usize) -> Cow<'_, AShare<R>> {
    if s.len() == n {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.gather(&vec![0; n]))
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * shape[i + 1];
    }
    st
}

/// The elements of `v` at offsets `base + Σ idx[i]·strides[i]` over the
/// row-major indices of `out_shape` (a transpose, broadcast or slice), copied
/// by runs of the last axis: a `memcpy` where that axis is contiguous, a
/// fill where it repeats one element.
pub fn strided<T: Copy>(v: &[T], out_shape: &[usize], strides: &[usize], base: usize) -> Vec<T> {
    let n: usize = out_shape.iter().product();
    let Some((&len, outer)) = out_shape.split_last() else {
        return vec![v[base]];
    };
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let step = strides[outer.len()];
    let mut idx = vec![0usize; outer.len()];
    let mut off = base;
    loop {
        match step {
            1 => out.extend_from_slice(&v[off..off + len]),
            0 => out.extend(std::iter::repeat_n(v[off], len)),
            _ => out.extend((0..len).map(|j| v[off + j * step])),
        }
        // next run: an odometer over the outer axes
        let mut d = outer.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            off += strides[d];
            if idx[d] < outer[d] {
                break;
            }
            off -= strides[d] * outer[d];
            idx[d] = 0;
        }
    }
}

/// The transposes of `batch` row-major r×c matrices stored one after the
/// other, in cache-sized blocks.
pub fn transpose_batched<T: Copy + Default>(v: &[T], batch: usize, r: usize, c: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for m in 0..batch {
        out.extend(transpose_map(&v[m * r * c..(m + 1) * r * c], r, c, |&x| x));
    }
    out
}

/// f of every element of the transpose of the row-major r×c matrix `v`, in
/// cache-sized blocks (one pass: a transpose fused with an encoding).
pub fn transpose_map<T, U: Copy + Default>(
    v: &[T],
    r: usize,
    c: usize,
    f: impl Fn(&T) -> U,
) -> Vec<U> {
    const B: usize = 32;
    let mut out = vec![U::default(); r * c];
    for i0 in (0..r).step_by(B) {
        for j0 in (0..c).step_by(B) {
            for i in i0..(i0 + B).min(r) {
                for j in j0..(j0 + B).min(c) {
                    out[j * r + i] = f(&v[i * c + j]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{encode_scaled, strided, strides};

    /// Element by element: the offset of every output index.
    fn naive(v: &[u32], out: &[usize], st: &[usize], base: usize) -> Vec<u32> {
        let n: usize = out.iter().product();
        (0..n)
            .map(|mut flat| {
                let mut off = base;
                for d in (0..out.len()).rev() {
                    off += (flat % out[d]) * st[d];
                    flat /= out[d];
                }
                v[off]
            })
            .collect()
    }

    #[test]
    fn strided_views_match_elementwise_gathers() {
        let v: Vec<u32> = (0..720).collect();
        let src = [2usize, 3, 4, 5];
        let s = strides(&src);
        // transposes
        for perm in [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 3, 2], [2, 0, 3, 1]] {
            let out: Vec<usize> = perm.iter().map(|&p| src[p]).collect();
            let st: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
            assert_eq!(
                strided(&v, &out, &st, 0),
                naive(&v, &out, &st, 0),
                "{perm:?}"
            );
        }
        // broadcasts: a row repeated, a column repeated, a scalar
        for (out, st) in [
            (vec![4, 5], vec![0, 1]),
            (vec![4, 5], vec![1, 0]),
            (vec![3, 4, 5], vec![0, 5, 1]),
            (vec![2, 3], vec![0, 0]),
        ] {
            assert_eq!(
                strided(&v, &out, &st, 0),
                naive(&v, &out, &st, 0),
                "{out:?}"
            );
        }
        // a slice of the third axis, and shapes with no or one axis
        let out = [2, 3, 2, 5];
        assert_eq!(strided(&v, &out, &s, 10), naive(&v, &out, &s, 10));
        assert_eq!(strided(&v, &[], &[], 7), vec![7]);
        assert_eq!(strided(&v, &[6], &[3], 1), naive(&v, &[6], &[3], 1));
        assert!(strided(&v, &[3, 0, 2], &[1, 1, 1], 0).is_empty());
    }

    #[test]
    fn encoding_rounds_half_away_from_zero_like_f64_round() {
        let below_half = 0.5f64.next_down();
        for y in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            below_half,
            -below_half,
            1.5,
            -1.5,
            2.5,
            -2.5,
            2.5f64.next_down(),
            -(2.5f64.next_up()),
            4503599627370495.5,
            -4503599627370495.5,
            9.0e15 + 1.0,
            -7.25e17,
            8.9e18,
            9.5e18,
            -9.5e18,
            1.0e30,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            let want = {
                let v = y.round();
                if v.abs() < 9.0e18 {
                    v as i64 as u64
                } else {
                    v.clamp(-1.7e38, 1.7e38) as i128 as u64
                }
            };
            assert_eq!(encode_scaled::<u64>(y, 1.0), want, "{y}");
            assert_eq!(encode_scaled::<u32>(y, 1.0), want as u32, "{y}");
        }
    }
}
