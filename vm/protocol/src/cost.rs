//! The cost of every primitive, declared once: bytes (summed over the three
//! parties) and rounds, online and offline, of one call over n elements in
//! Z_2^k. The counting transport measures exactly these (the VM's
//! tests/costs.rs checks every instruction against them); the compiler's
//! estimates (`passes::stats`) are built from them. Bits that travel packed
//! (openings of boolean values, the conversion's c_msb, bit columns) are
//! rounded up to whole bytes per message.

use std::ops::Add;

/// Bytes and rounds of one protocol call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub bytes: u64,
    pub rounds: u64,
    pub bytes_offline: u64,
    pub rounds_offline: u64,
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            bytes: self.bytes + o.bytes,
            rounds: self.rounds + o.rounds,
            bytes_offline: self.bytes_offline + o.bytes_offline,
            rounds_offline: self.rounds_offline + o.rounds_offline,
        }
    }
}

/// Bytes of n words of k bits, one message per party.
fn words(k: u32, n: u64) -> u64 {
    3 * (k as u64 / 8) * n
}

/// Bytes of n packed bits, one message per party.
fn packed(n: u64) -> u64 {
    3 * n.div_ceil(8)
}

/// A product of two secrets (element-wise or matrix; n = result elements):
/// each party reshares its 3-out-of-3 sum to its predecessor. 1 round.
pub fn product(k: u32, n: u64) -> Cost {
    Cost {
        bytes: words(k, n),
        rounds: 1,
        ..Cost::default()
    }
}

/// Ditto's conversion (k_in → k_out, dropping m fraction bits) of n
/// elements: B's masked part to A (k_in bits; H's product share too when
/// `fused` with the product it reads), then the A–B component to B (k_out)
/// and c_msb to B and H (1 bit each, packed; not sent when w = 0); 2 rounds.
/// Offline: the mask bit's replicated sharing, three messages of
/// w = [`msb_width`] bits packed, 2 rounds (none when w = 0).
pub fn conversion(kin: u32, kout: u32, m: u32, fused: bool, n: u64) -> Cost {
    let open = (kin as u64 / 8) * n * if fused { 2 } else { 1 };
    let w = msb_width(kin, kout, m) as u64;
    let bits = if w > 0 { 2 * n.div_ceil(8) } else { 0 };
    Cost {
        bytes: open + (kout as u64 / 8) * n + bits,
        rounds: 2,
        bytes_offline: 3 * (n * w).div_ceil(8),
        rounds_offline: if w > 0 { 2 } else { 0 },
    }
}

/// What the range guard adds to a conversion of n elements from Z_2^k
/// (`Party::guard_ranges`): the sign of x + 2^(k−2), after a reshare when
/// the input is a product's additive sharing (`fused`).
pub fn range_guard(k: u32, fused: bool, n: u64) -> Cost {
    let reshare = if fused {
        product(k, n)
    } else {
        Cost::default()
    };
    reshare + ltz(k, n)
}

/// The range guard's verdict over `flags` flags: an AND tree of packed
/// bits (⌈log2 flags⌉ rounds, 3·(flags − 1) bits in all, packed per level),
/// then the opening of one bit (1 round).
pub fn range_verdict(flags: u64) -> Cost {
    let mut c = Cost::default();
    let mut m = flags;
    while m > 1 {
        c = c + Cost {
            bytes: packed(m / 2),
            rounds: 1,
            ..Cost::default()
        };
        m = m.div_ceil(2);
    }
    if flags > 0 {
        c = c + Cost {
            bytes: packed(1),
            rounds: 1,
            ..Cost::default()
        };
    }
    c
}

/// The bits of r_msb's shares that matter in a conversion (k_in, k_out, m):
/// r_msb enters the result as r_msb·2^(k_in−1−m) in Z_2^k_out, so only its
/// shares mod 2^w count, w = k_out − (k_in − 1 − m); none when that is ≤ 0
/// (a downcast by enough bits).
pub fn msb_width(kin: u32, kout: u32, m: u32) -> u32 {
    (kout + m + 1).saturating_sub(kin).min(kout)
}

/// Levels of the parallel-prefix adder over k-bit words: ⌈log2(k − 1)⌉.
pub fn prefix_levels(k: u32) -> u32 {
    32 - (k - 2).leading_zeros()
}

/// The sign (x < 0) of n elements ([`crate::Party::ltz`]): the set-up's
/// packed columns — A's products for groups of four of the k − 1 low bits
/// (15 per group of four, 2^m − 1 per group of m) and the top bit, then the
/// generate and propagate bit of each group from H and from B — in 2 rounds,
/// then a carry tree over the groups, each level one round of packed
/// bit-column ANDs (2 columns per pair).
pub fn ltz(k: u32, n: u64) -> Cost {
    let bits = (k - 1) as u64;
    let groups = bits.div_ceil(4);
    let alphas: u64 = (0..groups)
        .map(|g| (1u64 << (bits - 4 * g).min(4)) - 1)
        .sum::<u64>()
        + 1;
    let col = n.div_ceil(8);
    let mut bytes = col * (alphas + 2 * 2 * groups);
    let mut rounds = 2;
    let mut m = groups;
    while m > 1 {
        bytes += packed(n) * 2 * (m / 2);
        m = m.div_ceil(2);
        rounds += 1;
    }
    Cost {
        bytes,
        rounds,
        ..Cost::default()
    }
}

/// Bit decomposition of n elements (boolean shares of every bit): the adder
/// set-up and a Kogge–Stone prefix of word ANDs, 6kL bits per element,
/// 2 + L rounds.
pub fn decompose(k: u32, n: u64) -> Cost {
    let l = prefix_levels(k) as u64;
    Cost {
        bytes: 6 * l * (k as u64 / 8) * n,
        rounds: 2 + l,
        ..Cost::default()
    }
}

/// A comparison of n pairs: the sign of one difference, or of both (= and ≠)
/// in one call.
pub fn compare(k: u32, n: u64, equality: bool) -> Cost {
    ltz(k, if equality { 2 * n } else { n })
}

/// Bit to arithmetic of n bits: open b ⊕ r (packed, 1 round); offline, a
/// random bit made arithmetic (3k bits, 2 rounds).
pub fn b2a(k: u32, n: u64) -> Cost {
    Cost {
        bytes: packed(n),
        rounds: 1,
        bytes_offline: words(k, n),
        rounds_offline: 2,
    }
}

/// Products of n boolean-shared bits with ring operands, `secret` of them
/// secret ([`crate::Party::mul_bits`]): B2A's opening and the product's
/// reshare in one round and one message; offline, B2A's random bits.
pub fn mul_bits(k: u32, n: u64, secret: u64) -> Cost {
    Cost {
        bytes: packed(n) + words(k, secret),
        rounds: 1,
        ..b2a(k, n)
    }
}

/// A selection on n secret conditions: s·(x − y) + y by [`mul_bits`].
pub fn select(k: u32, n: u64) -> Cost {
    mul_bits(k, n, n)
}

/// The size of the groups of a row maximum's level over `w` elements: the
/// whole row up to eight, else four.
pub fn max_arity(w: u64) -> u64 {
    if w <= 8 {
        w
    } else {
        4
    }
}

/// Row maxima of rows × width ([`crate::Party::max_rows`]): per level,
/// groups of m = [`max_arity`] — the signs of m(m−1)/2 differences, an AND
/// of m − 1 bits for each of m − 1 winners (packed, one round per level of
/// the AND tree), m − 1 products of bits.
pub fn max_rows(k: u32, rows: u64, width: u64) -> Cost {
    let mut c = Cost::default();
    let mut w = width;
    while w > 1 {
        let m = max_arity(w);
        let g = rows * (w / m);
        c = c + ltz(k, g * m * (m - 1) / 2);
        let mut terms = m - 1;
        while terms > 1 {
            c = c + Cost {
                bytes: packed((m - 1) * g * (terms / 2)),
                rounds: 1,
                ..Cost::default()
            };
            terms = terms / 2 + terms % 2;
        }
        c = c + mul_bits(k, (m - 1) * g, (m - 1) * g);
        w = w / m + w % m;
    }
    c
}

/// A mean of n results: a sum (local), a public scaling, a truncation by
/// the fraction bits.
pub fn mean(k: u32, frac: u32, n: u64) -> Cost {
    conversion(k, k, frac, false, n)
}

/// The power-of-two scale from the highest set bit of n elements: the
/// signs of x − 2^j for the `steps` positions j where the scale changes, in
/// one call, then their B2A.
pub fn norm_scale(k: u32, steps: u64, n: u64) -> Cost {
    ltz(k, steps * n) + b2a(k, steps * n)
}

/// A lookup of `tokens` secret ids in a public-shaped table rows × width by
/// two one-hot digits (id = h·A + l, A from `onehot_split`): when A > 1, a
/// product onehot(h)·T of tokens × A × width reshared (1 round), then the
/// result's reshare (1 round).
pub fn lookup(k: u32, tokens: u64, a: u64, width: u64) -> Cost {
    let out = product(k, tokens * width);
    if a > 1 {
        product(k, tokens * a * width) + out
    } else {
        out
    }
}
