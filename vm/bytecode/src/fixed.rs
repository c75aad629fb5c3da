//! What a fixed-point register's words mean, in the clear: one definition
//! for the compiler's fixed-point evaluator (`ir/fixed.rs`) and the VM's
//! public values. A value x in format (k, f) is the integer round(x·2^f)
//! (half away from zero) reduced into Z_2^k, held as its signed
//! representative in [−2^(k−1), 2^(k−1)).

/// Reduces into Z_2^bits and returns the signed representative.
#[inline]
pub fn wrap(v: i128, bits: u32) -> i64 {
    let s = 128 - bits;
    ((v << s) >> s) as i64
}

/// x in format (ring bits k, f fraction bits): round(x·2^f), saturated into
/// the i128 range (a NaN is 0), then reduced into Z_2^k.
#[inline]
pub fn encode(x: f64, k: u32, f: u32) -> i64 {
    let v = (x * (f as f64).exp2()).round();
    wrap(v.clamp(-1.7e38, 1.7e38) as i128, k)
}

/// The real value of a word with f fraction bits.
#[inline]
pub fn decode(v: i64, f: u32) -> f64 {
    v as f64 / (f as f64).exp2()
}

/// A word with `from` fraction bits read with `to` (floor on the way down,
/// exact on the way up), reduced into Z_2^k.
#[inline]
pub fn rescale(v: i64, from: u32, k: u32, to: u32) -> i64 {
    let x = v as i128;
    let y = if to <= from {
        x >> (from - to)
    } else {
        x << (to - from)
    };
    wrap(y, k)
}

/// The rotary position embedding's angle (RoPE, in the HuggingFace layout
/// where dimension j pairs with j ± d/2) at row i of a table of width d
/// whose first row is position `offset`: (offset + i)·θ^(−2(j mod d/2)/d).
/// One definition for the compiler's evaluators and the VM.
#[inline]
pub fn rotary_angle(i: usize, j: usize, d: usize, theta: f64, offset: usize) -> f64 {
    let half = (d / 2).max(1);
    let e = (2 * (j % half)) as f64 / d as f64;
    (offset + i) as f64 * theta.powf(-e)
}

/// The whole table [n, d] of `part` of the angles, row-major.
pub fn rotary_table(part: crate::Trig, n: usize, d: usize, theta: f64, offset: usize) -> Vec<f64> {
    (0..n * d)
        .map(|x| part.apply(rotary_angle(x / d, x % d, d, theta, offset)))
        .collect()
}
