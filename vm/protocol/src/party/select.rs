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
        if leaks::on(Leak::SelectOpensSelector) {
            let s = self.reveal(s)?;
            return Ok(x.sub(y).mul_public(&s).add(y));
        }
        Ok(self.mul(s, &x.sub(y))?.add(y))
    }

    /// Maximum of each row of a rows×cols matrix: a tree of ⌈log2 cols⌉
    /// levels of (a − b < 0, B2A, select). Per level: 2 + L + 1 + 1 online
    /// rounds (decomposition, B2A opening, select) and 2 offline rounds.
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
            let s = self.b2a_opening::<R>(&lt, leaks::on(Leak::MaxOpensComparison))?;
            let m = self.select(&s, &b, &a)?;
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
