//! From bits back to the ring and what builds on it: B2A, selection, row
//! maxima.

use super::*;

impl<'c> Party<'c> {
    /// Bit to arithmetic. Offline (input-independent, or prepared by
    /// [`Party::preprocess`]): a random bit
    /// r = ρ0 ⊕ ρ1 ⊕ ρ2 from the three keys, known to nobody, is made
    /// arithmetic (`random_bits`: 2 rounds, 3k bits).
    /// Online: open c = b ⊕ r to all (1 round, 3 bits packed), then
    /// b = c + r − 2·c·r locally.
    pub fn b2a<R: Ring>(&mut self, bits: &BitShare) -> Result<AShare<R>, ProtocolError> {
        self.b2a_opening(bits, leaks::on(Leak::B2aOpenUnmasked))
    }

    /// [`Party::b2a`]; `unmasked` is a seeded leak (the bits opened as they
    /// are).
    fn b2a_opening<R: Ring>(
        &mut self,
        bits: &BitShare,
        unmasked: bool,
    ) -> Result<AShare<R>, ProtocolError> {
        let n = bits.len();
        let (rb, r) = self.bits_for::<R>(n)?;
        // Online: open c = b ⊕ r (boolean) to everyone.
        let masked = if unmasked {
            bits.clone()
        } else {
            bits.xor(&rb)
        };
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), pack_bits(&masked.b))],
            &[self.succ()],
        )?;
        let third = parse_bits(&got[0], n, self.succ(), "b2a opening")?;
        let c: Vec<bool> = (0..n)
            .map(|j| masked.a[j] ^ masked.b[j] ^ third[j])
            .collect();
        if self.comm.observing() {
            self.comm.observe(pack_bits(&c));
        }
        // b = c + r − 2cr = r·(1 − 2c) + c
        let coef: Vec<R> = c
            .iter()
            .map(|&ci| if ci { R::ONE.neg() } else { R::ONE })
            .collect();
        let cvals = bits_as_ring::<R>(&c);
        if unmasked {
            return Ok(AShare::zeros(n).add_public(self.id, &cvals));
        }
        Ok(r.mul_public(&coef).add_public(self.id, &cvals))
    }

    /// select(s, x, y) = s·(x − y) + y for an arithmetic 0/1 selector s.
    /// One multiplication: 1 round, 3k bits; exact (no truncation).
    pub fn select<R: Ring>(
        &mut self,
        s: &AShare<R>,
        x: &AShare<R>,
        y: &AShare<R>,
    ) -> Result<AShare<R>, ProtocolError> {
        Ok(self.mul(s, &x.sub(y))?.add(y))
    }

    /// Products s·d of boolean-shared bits s with ring values d (each
    /// operand a run of s, in order; public or secret), in **one round**:
    /// with a random bit r made arithmetic offline (as for [`Party::b2a`]),
    /// c = s ⊕ r is opened to all while r·d is reshared (secret d; local for
    /// public d), and s·d = c·d + (1 − 2c)·(r·d) locally. Bytes as B2A then
    /// a product (3 packed bits and 3k bits per secret element), one round
    /// fewer. The selection s·(x − y) + y of a secret condition is this.
    pub fn mul_bits<R: Ring>(
        &mut self,
        s: &BitShare,
        ds: &[Operand<'_, R>],
    ) -> Result<Vec<AShare<R>>, ProtocolError> {
        self.mul_bits_opening(s, ds, leaks::on(Leak::SelectOpensSelector))
    }

    /// [`Party::mul_bits`]; `unmasked` is a seeded leak (the bits opened as
    /// they are, the products then local).
    fn mul_bits_opening<R: Ring>(
        &mut self,
        s: &BitShare,
        ds: &[Operand<'_, R>],
        unmasked: bool,
    ) -> Result<Vec<AShare<R>>, ProtocolError> {
        let n = s.len();
        assert_eq!(
            ds.iter().map(|d| d.len()).sum::<usize>(),
            n,
            "mul_bits: one bit per element"
        );
        let (rb, r) = self.bits_for::<R>(n)?;
        let masked = if unmasked { s.clone() } else { s.xor(&rb) };
        // r·d: reshared for secret operands, local for public ones
        let mut z: Vec<R> = Vec::new();
        let mut at = 0;
        for d in ds {
            let len = d.len();
            if let Operand::Secret(x) = d {
                let ri = AShare {
                    a: r.a[at..at + len].to_vec(),
                    b: r.b[at..at + len].to_vec(),
                };
                z.extend(self.mul_local(&ri, x));
            }
            at += len;
        }
        let split = n.div_ceil(8);
        let mut msg = pack_bits(&masked.b);
        let zn = z.len();
        if !unmasked {
            extend_bytes(&mut msg, &z);
        }
        let got = self
            .comm
            .exchange(Phase::Online, vec![(self.pred(), msg)], &[self.succ()])?;
        let want = split
            + if unmasked {
                0
            } else {
                zn * (R::BITS as usize / 8)
            };
        if got[0].len() != want {
            return Err(ProtocolError::Malformed {
                peer: self.succ(),
                what: "selection",
                detail: format!("{} bytes, expected {want}", got[0].len()),
            });
        }
        let third = unpack_bits(&got[0][..split], n).expect("length checked");
        let c: Vec<bool> = (0..n)
            .map(|j| masked.a[j] ^ masked.b[j] ^ third[j])
            .collect();
        if self.comm.observing() {
            self.comm.observe(pack_bits(&c));
        }
        let zb: Vec<R> = if unmasked {
            Vec::new()
        } else {
            from_bytes(&got[0][split..], zn).expect("length checked")
        };
        let mut out = Vec::with_capacity(ds.len());
        let (mut at, mut zat) = (0, 0);
        for d in ds {
            let len = d.len();
            let cj = &c[at..at + len];
            let cv = bits_as_ring::<R>(cj);
            let sgn: Vec<R> = cj
                .iter()
                .map(|&b| if b { R::ONE.neg() } else { R::ONE })
                .collect();
            let ri = AShare {
                a: r.a[at..at + len].to_vec(),
                b: r.b[at..at + len].to_vec(),
            };
            let y = match d {
                Operand::Public(v) => {
                    let cd: Vec<R> = (0..len).map(|j| cv[j].mul(v[j])).collect();
                    if unmasked {
                        AShare::zeros(len).add_public(self.id, &cd)
                    } else {
                        ri.mul_public(v).mul_public(&sgn).add_public(self.id, &cd)
                    }
                }
                Operand::Secret(x) => {
                    if unmasked {
                        x.mul_public(&cv)
                    } else {
                        let rd = AShare {
                            a: z[zat..zat + len].to_vec(),
                            b: zb[zat..zat + len].to_vec(),
                        };
                        zat += len;
                        rd.mul_public(&sgn).add(&x.mul_public(&cv))
                    }
                }
            };
            out.push(y);
            at += len;
        }
        Ok(out)
    }

    /// Maximum of each row of a rows×cols matrix: a tournament of groups.
    /// A row of at most eight elements is one group; a longer row is cut
    /// into groups of four (elements left over go up unchanged). A group of
    /// m becomes its maximum in one level: the signs c_ij = [x_i < x_j] of
    /// all m(m−1)/2 differences in one call; element i ≥ 1 wins when it
    /// beats every other (x_i > x_j, or equal and i < j), an AND of m − 1
    /// bits in ⌈log2(m − 1)⌉ rounds of packed ANDs; then
    /// x_0 + Σ_{i≥1} w_i·(x_i − x_0) by [`Party::mul_bits`] (1 round). In
    /// Z_2^32 a level of two takes 5 + 1 rounds, of four 5 + 2 + 1, of eight
    /// 5 + 3 + 1: a row of 128 takes 4, 4, 8 (25 rounds) where pairs took 7
    /// levels of 6. Offline, 2 rounds per level (B2A's random bits).
    /// Cost: [`crate::cost::max_rows`].
    pub fn max_rows<R: Ring>(
        &mut self,
        x: &AShare<R>,
        rows: usize,
        cols: usize,
    ) -> Result<AShare<R>, ProtocolError> {
        assert_eq!(x.len(), rows * cols, "max_rows shape");
        let mut cur = x.clone();
        let mut w = cols;
        let h = self.next_adder_helper();
        let leak = leaks::on(Leak::MaxOpensComparison);
        let id = self.id;
        while w > 1 {
            let arity = crate::cost::max_arity(w as u64) as usize;
            let groups = w / arity;
            let nw = groups + w % arity;
            let g = rows * groups;
            // element i of group t of row r, as a gather
            let xs: Vec<AShare<R>> = (0..arity)
                .map(|i| {
                    let idx: Vec<usize> = (0..rows)
                        .flat_map(|r| (0..groups).map(move |t| r * w + arity * t + i))
                        .collect();
                    cur.gather(&idx)
                })
                .collect();
            // c_ij = [x_i < x_j] for i < j, in one sign call
            let pairs: Vec<(usize, usize)> = (0..arity)
                .flat_map(|i| (i + 1..arity).map(move |j| (i, j)))
                .collect();
            let mut diffs = AShare::<R>::zeros(0);
            for &(i, j) in &pairs {
                let d = xs[i].sub(&xs[j]);
                diffs.a.extend(d.a);
                diffs.b.extend(d.b);
            }
            let c = self.ltz_with(&diffs, h)?;
            let cmp = |i: usize, j: usize| -> BitShare {
                let k = pairs.iter().position(|&p| p == (i, j)).expect("a pair");
                BitShare {
                    a: c.a[k * g..(k + 1) * g].to_vec(),
                    b: c.b[k * g..(k + 1) * g].to_vec(),
                }
            };
            // i beats j: c_ji for j < i (x_j < x_i), ¬c_ij for j > i (ties
            // go to the lower index); the terms of each winner i ≥ 1
            let mut terms: Vec<Vec<BitShare>> = (1..arity)
                .map(|i| {
                    (0..arity)
                        .filter(|&j| j != i)
                        .map(|j| if j < i { cmp(j, i) } else { cmp(i, j).not(id) })
                        .collect()
                })
                .collect();
            // AND the terms pairwise, all winners in one call per level
            while terms[0].len() > 1 {
                let half = terms[0].len() / 2;
                let (mut l, mut r) = (BitShare::default(), BitShare::default());
                for t in &terms {
                    for q in 0..half {
                        l.a.extend_from_slice(&t[2 * q].a);
                        l.b.extend_from_slice(&t[2 * q].b);
                        r.a.extend_from_slice(&t[2 * q + 1].a);
                        r.b.extend_from_slice(&t[2 * q + 1].b);
                    }
                }
                let z = self.and_bits(&l, &r)?;
                let mut at = 0;
                for t in terms.iter_mut() {
                    let mut next: Vec<BitShare> = (0..half)
                        .map(|q| {
                            let o = at + q * g;
                            BitShare {
                                a: z.a[o..o + g].to_vec(),
                                b: z.b[o..o + g].to_vec(),
                            }
                        })
                        .collect();
                    at += half * g;
                    if t.len() % 2 == 1 {
                        next.push(t.pop().expect("odd one out"));
                    }
                    *t = next;
                }
            }
            let wins = BitShare {
                a: terms.iter().flat_map(|t| t[0].a.iter().copied()).collect(),
                b: terms.iter().flat_map(|t| t[0].b.iter().copied()).collect(),
            };
            let ds: Vec<AShare<R>> = (1..arity).map(|i| xs[i].sub(&xs[0])).collect();
            let ops: Vec<Operand<'_, R>> = ds.iter().map(Operand::Secret).collect();
            let prods = self.mul_bits_opening(&wins, &ops, leak)?;
            let m = prods.iter().fold(xs[0].clone(), |acc, p| acc.add(p));
            let mut next = AShare::zeros(rows * nw);
            for r in 0..rows {
                for t in 0..groups {
                    next.a[r * nw + t] = m.a[r * groups + t];
                    next.b[r * nw + t] = m.b[r * groups + t];
                }
                // elements left over go up unchanged
                for e in 0..w % arity {
                    let k = r * w + arity * groups + e;
                    next.a[r * nw + groups + e] = cur.a[k];
                    next.b[r * nw + groups + e] = cur.b[k];
                }
            }
            cur = next;
            w = nw;
        }
        Ok(cur)
    }
}

/// An operand of [`Party::mul_bits`].
pub enum Operand<'a, R: Ring> {
    Public(&'a [R]),
    Secret(&'a AShare<R>),
}

impl<R: Ring> Operand<'_, R> {
    pub fn len(&self) -> usize {
        match self {
            Operand::Public(v) => v.len(),
            Operand::Secret(x) => x.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
