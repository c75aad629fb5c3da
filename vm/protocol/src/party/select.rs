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

    /// Maximum of each row of a rows×cols matrix: a tree of ⌈log2 cols⌉
    /// levels of (a − b < 0, then b + [a − b < 0]·(... ) by [`Party::mul_bits`]).
    /// Per level: 2 + L + 1 online rounds (sign, selection) and 2 offline
    /// rounds.
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
        while w > 1 {
            let half = w / 2;
            let (mut ia, mut ib) = (vec![], vec![]);
            for r in 0..rows {
                for j in 0..half {
                    ia.push(r * w + 2 * j);
                    ib.push(r * w + 2 * j + 1);
                }
            }
            let (a, b) = (cur.gather(&ia), cur.gather(&ib));
            let lt = self.ltz_with(&a.sub(&b), h)?;
            // a < b: take b, else a
            let d = b.sub(&a);
            let m = self
                .mul_bits_opening(
                    &lt,
                    &[Operand::Secret(&d)],
                    leaks::on(Leak::MaxOpensComparison),
                )?
                .remove(0)
                .add(&a);
            let nw = half + w % 2;
            let mut next = AShare::zeros(rows * nw);
            for r in 0..rows {
                for j in 0..half {
                    next.a[r * nw + j] = m.a[r * half + j];
                    next.b[r * nw + j] = m.b[r * half + j];
                }
                if w % 2 == 1 {
                    // an odd element out goes up unchanged
                    let k = r * w + w - 1;
                    next.a[r * nw + half] = cur.a[k];
                    next.b[r * nw + half] = cur.b[k];
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
