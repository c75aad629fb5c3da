//! Replicated secret shares (2-out-of-3). For a value x = x0 + x1 + x2
//! (arithmetic, mod 2^k) or x = x0 ⊕ x1 ⊕ x2 (boolean, bitwise on k-bit words,
//! or on single bits), party Pi holds (x_i, x_{i+1}), indices mod 3. Shares are
//! flat element vectors; shapes belong to the caller (the VM's registers).
//! Local operations here never communicate.

use crate::ring::Ring;

/// Pi's arithmetic share: `a` = x_i, `b` = x_{i+1}.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AShare<R: Ring> {
    pub a: Vec<R>,
    pub b: Vec<R>,
}

/// Pi's boolean share of k-bit words: `a` = x_i, `b` = x_{i+1}, XOR-shared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BShare<R: Ring> {
    pub a: Vec<R>,
    pub b: Vec<R>,
}

/// Pi's boolean share of single bits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BitShare {
    pub a: Vec<bool>,
    pub b: Vec<bool>,
}

impl<R: Ring> AShare<R> {
    pub fn len(&self) -> usize {
        self.a.len()
    }
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }
    pub fn zeros(n: usize) -> Self {
        AShare {
            a: vec![R::ZERO; n],
            b: vec![R::ZERO; n],
        }
    }
    pub fn add(&self, o: &Self) -> Self {
        AShare {
            a: crate::kernels::add(&self.a, &o.a),
            b: crate::kernels::add(&self.b, &o.b),
        }
    }
    pub fn sub(&self, o: &Self) -> Self {
        AShare {
            a: crate::kernels::sub(&self.a, &o.a),
            b: crate::kernels::sub(&self.b, &o.b),
        }
    }
    pub fn neg(&self) -> Self {
        AShare {
            a: self.a.iter().map(|x| x.neg()).collect(),
            b: self.b.iter().map(|x| x.neg()).collect(),
        }
    }
    /// Multiplication by public values (element-wise).
    pub fn mul_public(&self, c: &[R]) -> Self {
        AShare {
            a: crate::kernels::mul(&self.a, c),
            b: crate::kernels::mul(&self.b, c),
        }
    }
    pub fn mul_scalar(&self, c: R) -> Self {
        AShare {
            a: self.a.iter().map(|&x| x.mul(c)).collect(),
            b: self.b.iter().map(|&x| x.mul(c)).collect(),
        }
    }
    /// Adds public values: only to the component x_0, held by P0 (as `a`)
    /// and P2 (as `b`).
    pub fn add_public(&self, party: usize, c: &[R]) -> Self {
        let mut out = self.clone();
        match party {
            0 => crate::kernels::add_assign(&mut out.a, c),
            2 => crate::kernels::add_assign(&mut out.b, c),
            _ => {}
        }
        out
    }
    /// Selects elements by index (gathers, slices, transposes are all this).
    pub fn gather(&self, idx: &[usize]) -> Self {
        AShare {
            a: idx.iter().map(|&i| self.a[i]).collect(),
            b: idx.iter().map(|&i| self.b[i]).collect(),
        }
    }
    /// Local downcast: both components reduced mod 2^k_out. Exact for the
    /// represented value when it fits the smaller ring (PROTOCOLS.md, m = 0).
    pub fn downcast<S: Ring>(&self) -> AShare<S> {
        assert!(S::BITS <= R::BITS, "local downcast goes to a smaller ring");
        AShare {
            a: self.a.iter().map(|x| S::from_u64(x.to_u64())).collect(),
            b: self.b.iter().map(|x| S::from_u64(x.to_u64())).collect(),
        }
    }
}

impl<R: Ring> BShare<R> {
    pub fn len(&self) -> usize {
        self.a.len()
    }
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }
    pub fn xor(&self, o: &Self) -> Self {
        BShare {
            a: crate::kernels::xor(&self.a, &o.a),
            b: crate::kernels::xor(&self.b, &o.b),
        }
    }
    pub fn shl(&self, n: u32) -> Self {
        BShare {
            a: self.a.iter().map(|x| x.shl(n)).collect(),
            b: self.b.iter().map(|x| x.shl(n)).collect(),
        }
    }
    pub fn shr(&self, n: u32) -> Self {
        BShare {
            a: self.a.iter().map(|x| x.shr(n)).collect(),
            b: self.b.iter().map(|x| x.shr(n)).collect(),
        }
    }
    /// Bit `i` of every word, as bit shares.
    pub fn bit(&self, i: u32) -> BitShare {
        BitShare {
            a: self.a.iter().map(|x| x.bit(i)).collect(),
            b: self.b.iter().map(|x| x.bit(i)).collect(),
        }
    }
    /// XOR with public words: component 0 only (like `AShare::add_public`).
    pub fn xor_public(&self, party: usize, c: &[R]) -> Self {
        let mut out = self.clone();
        match party {
            0 => out.a = crate::kernels::xor(&out.a, c),
            2 => out.b = crate::kernels::xor(&out.b, c),
            _ => {}
        }
        out
    }
}

impl BitShare {
    pub fn len(&self) -> usize {
        self.a.len()
    }
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }
    pub fn xor(&self, o: &Self) -> Self {
        BitShare {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x ^ y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x ^ y).collect(),
        }
    }
    /// NOT: flips component 0.
    pub fn not(&self, party: usize) -> Self {
        let mut out = self.clone();
        match party {
            0 => out.a.iter_mut().for_each(|x| *x = !*x),
            2 => out.b.iter_mut().for_each(|x| *x = !*x),
            _ => {}
        }
        out
    }
}

/// An outside owner's sharing of `x` (client or model owner): the three
/// parties' shares, from the owner's randomness `rand` (3 draws per element).
pub fn deal<R: Ring>(x: &[R], mut rand: impl FnMut() -> R) -> [AShare<R>; 3] {
    let n = x.len();
    let mut comps = [vec![R::ZERO; n], vec![R::ZERO; n], vec![R::ZERO; n]];
    for (j, &v) in x.iter().enumerate() {
        let r0 = rand();
        let r1 = rand();
        comps[0][j] = r0;
        comps[1][j] = r1;
        comps[2][j] = v.sub(r0).sub(r1);
    }
    [0, 1, 2].map(|i| AShare {
        a: comps[i].clone(),
        b: comps[(i + 1) % 3].clone(),
    })
}

/// Reconstructs from the three parties' shares, checking that the replicated
/// copies agree (`None` if they do not).
pub fn open<R: Ring>(s: &[AShare<R>; 3]) -> Option<Vec<R>> {
    for i in 0..3 {
        if s[i].b != s[(i + 1) % 3].a {
            return None;
        }
    }
    Some(
        (0..s[0].len())
            .map(|j| s[0].a[j].add(s[1].a[j]).add(s[2].a[j]))
            .collect(),
    )
}

/// Reconstructs boolean words from the three parties' shares.
pub fn open_bool<R: Ring>(s: &[BShare<R>; 3]) -> Option<Vec<R>> {
    for i in 0..3 {
        if s[i].b != s[(i + 1) % 3].a {
            return None;
        }
    }
    Some(
        (0..s[0].len())
            .map(|j| s[0].a[j].xor(s[1].a[j]).xor(s[2].a[j]))
            .collect(),
    )
}

/// Reconstructs bits from the three parties' shares.
pub fn open_bits(s: &[BitShare; 3]) -> Option<Vec<bool>> {
    for i in 0..3 {
        if s[i].b != s[(i + 1) % 3].a {
            return None;
        }
    }
    Some(
        (0..s[0].len())
            .map(|j| s[0].a[j] ^ s[1].a[j] ^ s[2].a[j])
            .collect(),
    )
}
