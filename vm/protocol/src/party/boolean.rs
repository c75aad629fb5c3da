//! Boolean circuits: ANDs, bit decomposition by a prefix adder, the sign
//! (less than zero), the highest set bit; bit columns and their transposes.

use super::*;

pub(super) fn parse_bits(
    bytes: &[u8],
    n: usize,
    peer: usize,
    what: &'static str,
) -> Result<Vec<bool>, ProtocolError> {
    unpack_bits(bytes, n).ok_or_else(|| ProtocolError::Malformed {
        peer,
        what,
        detail: format!("{} bytes, expected {} packed bits", bytes.len(), n),
    })
}

/// One bit position of n shared words, packed 64 elements per u64
/// (replicated: this party's two components).
#[derive(Clone)]
pub(super) struct Col {
    pub(super) a: Vec<u64>,
    pub(super) b: Vec<u64>,
}

impl Col {
    pub(super) fn xor(&self, o: &Col) -> Col {
        Col {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x ^ y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x ^ y).collect(),
        }
    }
    pub(super) fn to_bits(&self, n: usize) -> BitShare {
        let bit = |v: &[u64], j: usize| v[j / 64] >> (j % 64) & 1 == 1;
        BitShare {
            a: (0..n).map(|j| bit(&self.a, j)).collect(),
            b: (0..n).map(|j| bit(&self.b, j)).collect(),
        }
    }
}

/// Bit columns 0..bits of boolean-shared words.
pub(super) struct Cols;

impl Cols {
    pub(super) fn of<R: Ring>(w: &BShare<R>, bits: u32) -> Vec<Col> {
        let n = w.len();
        let words = n.div_ceil(64);
        let mut cols = vec![
            Col {
                a: vec![0u64; words],
                b: vec![0u64; words],
            };
            bits as usize
        ];
        // 64 elements at a time: a 64×64 bit-matrix transpose; for at most
        // 32 bits, 128 at a time, element r + 64 in the high half of row r
        let per = if bits <= 32 { 2 } else { 1 };
        let mut block = [0u64; 64];
        for word in (0..words).step_by(per) {
            for (src, pick) in [(&w.a, 0), (&w.b, 1)] {
                let at = |i: usize| src.get(i).map_or(0, |v| v.to_u64());
                for (r, row) in block.iter_mut().enumerate() {
                    let e = word * 64 + r;
                    *row = if per == 2 {
                        at(e) & 0xFFFF_FFFF | at(e + 64) << 32
                    } else {
                        at(e)
                    };
                }
                transpose64(&mut block);
                for (i, col) in cols.iter_mut().enumerate() {
                    let dst = if pick == 0 { &mut col.a } else { &mut col.b };
                    dst[word] = block[i];
                    if per == 2 && word + 1 < words {
                        dst[word + 1] = block[32 + i];
                    }
                }
            }
        }
        cols
    }
}

/// In-place transpose of a 64×64 bit matrix (row r = `a[r]`, bit c of a row
/// = column c): afterwards bit j of `a[i]` is what bit i of `a[j]` was.
pub(super) fn transpose64(a: &mut [u64; 64]) {
    // one swap stage per power of two, each with a constant stride so that
    // its inner loop vectorises
    #[inline(always)]
    fn stage<const J: usize>(a: &mut [u64; 64], m: u64) {
        for base in (0..64).step_by(2 * J) {
            for k in base..base + J {
                let t = ((a[k] >> J) ^ a[k + J]) & m;
                a[k + J] ^= t;
                a[k] ^= t << J;
            }
        }
    }
    stage::<32>(a, 0x0000_0000_FFFF_FFFF);
    stage::<16>(a, 0x0000_FFFF_0000_FFFF);
    stage::<8>(a, 0x00FF_00FF_00FF_00FF);
    stage::<4>(a, 0x0F0F_0F0F_0F0F_0F0F);
    stage::<2>(a, 0x3333_3333_3333_3333);
    stage::<1>(a, 0x5555_5555_5555_5555);
}

impl<'c> Party<'c> {
    /// AND of boolean-shared words: z_i = x_i·y_i ⊕ x_i·y_{i+1} ⊕ x_{i+1}·y_i ⊕ α_i,
    /// then reshare. 1 round, 3k bits per word.
    pub fn and<R: Ring>(
        &mut self,
        x: &BShare<R>,
        y: &BShare<R>,
    ) -> Result<BShare<R>, ProtocolError> {
        let mut r = self.and_many(&[(x, y)])?;
        Ok(r.pop().expect("one pair in, one out"))
    }

    /// Several independent ANDs in one round.
    pub(super) fn and_many<R: Ring>(
        &mut self,
        pairs: &[(&BShare<R>, &BShare<R>)],
    ) -> Result<Vec<BShare<R>>, ProtocolError> {
        let mut z = Vec::new();
        let mut lens = Vec::new();
        for (x, y) in pairs {
            let n = x.len();
            let mut alpha = self.zero_share_bool::<R>(n);
            if leaks::on(Leak::AndZeroReused) {
                let first = alpha.first().copied().unwrap_or(R::ZERO);
                alpha.fill(first);
            }
            z.extend((0..n).map(|j| {
                x.a[j]
                    .and(y.a[j])
                    .xor(x.a[j].and(y.b[j]))
                    .xor(x.b[j].and(y.a[j]))
                    .xor(alpha[j])
            }));
            lens.push(n);
        }
        let total = z.len();
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), to_bytes(&z))],
            &[self.succ()],
        )?;
        let zb: Vec<R> = parse(&got[0], total, self.succ(), "and")?;
        let mut out = Vec::new();
        let mut off = 0;
        for n in lens {
            out.push(BShare {
                a: z[off..off + n].to_vec(),
                b: zb[off..off + n].to_vec(),
            });
            off += n;
        }
        Ok(out)
    }

    /// AND of bit shares, packed on the wire: 1 round, 3 bits per element.
    pub fn and_bits(&mut self, x: &BitShare, y: &BitShare) -> Result<BitShare, ProtocolError> {
        let n = x.len();
        let alpha = self.zero_share_bits(n);
        let z: Vec<bool> = (0..n)
            .map(|j| (x.a[j] & y.a[j]) ^ (x.a[j] & y.b[j]) ^ (x.b[j] & y.a[j]) ^ alpha[j])
            .collect();
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), pack_bits(&z))],
            &[self.succ()],
        )?;
        let b = parse_bits(&got[0], n, self.succ(), "and")?;
        Ok(BitShare { a: z, b })
    }

    /// The adder's inputs with two operands instead of three: x = a + x_h,
    /// where A = h+1 holds a = x_{h+1} + x_{h+2} and x_h is the component B and
    /// H share (roles rotate with their own public counter). Returns boolean
    /// sharings of the propagate word p = a ⊕ x_h and the generate word
    /// g = a ∧ x_h:
    /// - p: components (a ⊕ t, t, x_h) for (A–B, A–H, B–H), t from the A–H
    ///   stream; A sends B a ⊕ t.
    /// - g = g_B ⊕ g_H with g_B = (a ⊕ t) ∧ x_h (B) and g_H = t ∧ x_h (H):
    ///   components (g_B ⊕ u ⊕ u', g_H ⊕ u', u), u and u' from the B–H
    ///   stream; H sends A its part in round 1, B in round 2.
    ///
    /// 2 rounds, 3k bits per element (a carry-save layer and a generate AND
    /// over the three components cost 6k in the same 2 rounds). B sees a
    /// masked by t, A sees values masked by u and u'. H is `h`
    /// ([`Party::next_adder_helper`]).
    pub(super) fn add_setup<R: Ring>(
        &mut self,
        x: &AShare<R>,
        h: usize,
    ) -> Result<(BShare<R>, BShare<R>), ProtocolError> {
        let n = x.len();
        let (a_id, b_id) = ((h + 1) % 3, (h + 2) % 3);
        if self.id == a_id {
            let a: Vec<R> = kernels::add(&x.a, &x.b);
            let mut t: Vec<R> = self.st.prev.ring(n); // A–H
            if leaks::on(Leak::AdderMaskDropped) {
                t.fill(R::ZERO);
            }
            let at = kernels::xor(&a, &t);
            let got = self
                .comm
                .exchange(Phase::Online, vec![(b_id, to_bytes(&at))], &[h])?;
            let gh: Vec<R> = parse(&got[0], n, h, "adder set-up")?;
            let got = self.comm.exchange(Phase::Online, vec![], &[b_id])?;
            let gb: Vec<R> = parse(&got[0], n, b_id, "adder set-up")?;
            Ok((BShare { a: t, b: at }, BShare { a: gh, b: gb }))
        } else if self.id == b_id {
            let xh = &x.b;
            let u: Vec<R> = self.st.next.ring(n); // B–H
            let u2: Vec<R> = self.st.next.ring(n);
            let got = self.comm.exchange(Phase::Online, vec![], &[a_id])?;
            let at: Vec<R> = parse(&got[0], n, a_id, "adder set-up")?;
            let gb: Vec<R> = (0..n)
                .map(|j| at[j].and(xh[j]).xor(u[j]).xor(u2[j]))
                .collect();
            self.comm
                .exchange(Phase::Online, vec![(a_id, to_bytes(&gb))], &[])?;
            Ok((
                BShare {
                    a: at,
                    b: xh.clone(),
                },
                BShare { a: gb, b: u },
            ))
        } else {
            let xh = &x.a;
            let mut t: Vec<R> = self.st.next.ring(n); // A–H
            if leaks::on(Leak::AdderMaskDropped) {
                t.fill(R::ZERO);
            }
            let u: Vec<R> = self.st.prev.ring(n); // B–H
            let u2: Vec<R> = self.st.prev.ring(n);
            let gh: Vec<R> = (0..n).map(|j| t[j].and(xh[j]).xor(u2[j])).collect();
            self.comm
                .exchange(Phase::Online, vec![(a_id, to_bytes(&gh))], &[])?;
            Ok((
                BShare {
                    a: xh.clone(),
                    b: t,
                },
                BShare { a: u, b: gh },
            ))
        }
    }

    /// The helper of the next adder set-up; advances its public counter.
    /// A protocol that runs several adders in sequence (the row maximum)
    /// keeps one helper throughout, so every party takes part in every
    /// round it counts.
    pub(super) fn next_adder_helper(&mut self) -> usize {
        let h = (self.st.bits_ctr % 3) as usize;
        self.st.bits_ctr += 1;
        h
    }

    /// Boolean sharing of x's bits: the two-operand set-up
    /// ([`Party::add_setup`]: propagate and generate words, 2 rounds), then
    /// a Kogge–Stone prefix over L = ⌈log2(k−1)⌉ levels. Rounds: 2 + L (7 for
    /// k = 32, 8 for k = 64). Bits: 3k + 3k·(2L − 1) = 6kL per element (the
    /// last prefix level needs no propagate term).
    pub fn bit_decompose<R: Ring>(&mut self, x: &AShare<R>) -> Result<BShare<R>, ProtocolError> {
        let h = self.next_adder_helper();
        let (p0, g0) = self.add_setup(x, h)?;
        let mut p = p0.clone();
        let mut g = g0;
        let levels = crate::cost::prefix_levels(R::BITS);
        for l in 0..levels {
            let d = 1u32 << l;
            let gs = g.shl(d);
            if l + 1 < levels {
                let ps = p.shl(d);
                let mut r = self.and_many(&[(&p, &gs), (&p, &ps)])?;
                let pp = r.pop().expect("two results");
                let pg = r.pop().expect("two results");
                g = g.xor(&pg);
                p = pp;
            } else {
                let pg = self.and(&p, &gs)?;
                g = g.xor(&pg);
            }
        }
        // sum bit i = p_i ⊕ carry into i = p ⊕ (G << 1)
        Ok(p0.xor(&g.shl(1)))
    }

    /// The sign bit [x < 0] as a bit share. Only the carry into the top bit
    /// is needed: x = a + x_h (a = x_{h+1} + x_{h+2} known to A, x_h to B and
    /// H), and the carry into bit k − 1 is a tree over bits 0..k−2. Its
    /// first two levels come with the set-up ([`Party::sign_setup`]: the
    /// generate and propagate bits of groups of four bits, 2 rounds), the
    /// rest from a tree over the groups: per level, G = G_hi ⊕ P_hi·G_lo and
    /// P = P_hi·P_lo for each pair, all pairs in one packed AND. Rounds:
    /// 2 + ⌈log2 ⌈(k−1)/4⌉⌉ (5 for k = 32, 6 for k = 64). Bits per element:
    /// [`crate::cost::ltz`] (204 for k = 32, 444 for k = 64).
    pub fn ltz<R: Ring>(&mut self, x: &AShare<R>) -> Result<BitShare, ProtocolError> {
        let h = self.next_adder_helper();
        self.ltz_with(x, h)
    }

    /// [`Party::ltz`] with the set-up's helper given.
    pub(super) fn ltz_with<R: Ring>(
        &mut self,
        x: &AShare<R>,
        h: usize,
    ) -> Result<BitShare, ProtocolError> {
        let n = x.len();
        let (mut gs, mut ps, top) = self.sign_setup(x, h)?;
        while gs.len() > 1 {
            let pairs = gs.len() / 2;
            let mut xs = Vec::with_capacity(2 * pairs);
            let mut ys = Vec::with_capacity(2 * pairs);
            for t in 0..pairs {
                let (lo, hi) = (2 * t, 2 * t + 1);
                xs.push(&ps[hi]);
                ys.push(&gs[lo]);
                xs.push(&ps[hi]);
                ys.push(&ps[lo]);
            }
            let z = self.and_cols(&xs, &ys, n)?;
            let mut ng = Vec::with_capacity(gs.len().div_ceil(2));
            let mut np = Vec::with_capacity(gs.len().div_ceil(2));
            let mut z = z.into_iter();
            for t in 0..pairs {
                let pg = z.next().expect("two results per pair");
                let pp = z.next().expect("two results per pair");
                ng.push(gs[2 * t + 1].xor(&pg));
                np.push(pp);
            }
            if gs.len() % 2 == 1 {
                ng.push(gs.pop().expect("odd one out"));
                np.push(ps.pop().expect("odd one out"));
            }
            gs = ng;
            ps = np;
        }
        // top bit = p ⊕ carry into it
        let carry = gs.pop().expect("at least one group");
        Ok(top.xor(&carry).to_bits(n))
    }

    /// The set-up of [`Party::ltz`]: for each group of up to four bits of
    /// 0..k−2 (lowest first), boolean sharings of its generate bit
    /// G = ⊕_i g_i·Π_{j>i} p_j and propagate bit P = Π_j p_j, with
    /// g_i = a_i·x_i and p_i = a_i ⊕ x_i; and of the top bit p_{k−1}. As
    /// polynomials in A's bits and x_h's bits, G and P are sums
    /// ⊕_S a_S·β_S(x) over products a_S of A's bits ([`group_terms`]): A
    /// sends B every a_S ⊕ t_S (t_S from the A–H stream; 15 per group of
    /// four); for each output, H sends A τ_H ⊕ u' with τ_H = ⊕ t_S·β_S(x)
    /// (round 1) and B sends A τ_B ⊕ u ⊕ u' with τ_B = ⊕ (a_S ⊕ t_S)·β_S(x)
    /// (round 2), u and u' from the B–H stream. Components: B–H
    /// u ⊕ β_∅(x), A–H τ_H ⊕ u', A–B τ_B ⊕ u ⊕ u'. B sees A's products
    /// masked by t; A sees values masked by u and u'. 2 rounds; the first
    /// two levels of the carry tree cost nothing more.
    #[allow(clippy::type_complexity)]
    pub(super) fn sign_setup<R: Ring>(
        &mut self,
        x: &AShare<R>,
        h: usize,
    ) -> Result<(Vec<Col>, Vec<Col>, Col), ProtocolError> {
        let k = R::BITS;
        let n = x.len();
        let words = n.div_ceil(64);
        let nbytes = n.div_ceil(8);
        let (a_id, b_id) = ((h + 1) % 3, (h + 2) % 3);
        let groups = group_terms(k - 1);
        let alphas: usize = groups.iter().map(|g| g.alphas.len()).sum::<usize>() + 1;
        let outputs = 2 * groups.len();
        let tail = tail_mask(n);
        let pack = |cols: &[Vec<u64>]| -> Vec<u8> {
            let mut msg = Vec::with_capacity(cols.len() * nbytes);
            for c in cols {
                let bytes: Vec<u8> = c.iter().flat_map(|w| w.to_le_bytes()).collect();
                msg.extend_from_slice(&bytes[..nbytes]);
            }
            msg
        };
        let unpack =
            |msg: &[u8], count: usize, peer: usize| -> Result<Vec<Vec<u64>>, ProtocolError> {
                if msg.len() != count * nbytes {
                    return Err(ProtocolError::Malformed {
                        peer,
                        what: "sign set-up",
                        detail: format!(
                            "{} bytes, expected {count} packed columns of {n} bits",
                            msg.len()
                        ),
                    });
                }
                Ok(msg
                    .chunks(nbytes.max(1))
                    .take(count)
                    .map(|chunk| {
                        let mut c = vec![0u64; words];
                        for (i, &b) in chunk.iter().enumerate() {
                            c[i / 8] |= (b as u64) << (8 * (i % 8));
                        }
                        if let Some(l) = c.last_mut() {
                            *l &= tail;
                        }
                        c
                    })
                    .collect())
            };
        let col = |a: Vec<u64>, b: Vec<u64>| Col { a, b };
        if self.id == a_id {
            let a: Vec<R> = kernels::add(&x.a, &x.b);
            let acols = plain_cols(&a, k);
            // a_S for every term of every group, then a_{k−1}
            let mut masked = Vec::with_capacity(alphas);
            let mut ts = Vec::with_capacity(alphas);
            for (g, terms) in groups.iter().enumerate() {
                for &sa in &terms.alphas {
                    masked.push(monomial(&acols, 4 * g, sa, words, tail));
                }
            }
            masked.push(acols[k as usize - 1].clone());
            for m in masked.iter_mut() {
                let mut t = self.st.prev.words(words); // A–H
                if leaks::on(Leak::AdderMaskDropped) {
                    t.fill(0);
                }
                t.iter_mut()
                    .zip(tail_words(words, tail))
                    .for_each(|(w, m)| *w &= m);
                m.iter_mut().zip(&t).for_each(|(w, t)| *w ^= t);
                ts.push(t);
            }
            let got = self
                .comm
                .exchange(Phase::Online, vec![(b_id, pack(&masked))], &[h])?;
            let from_h = unpack(&got[0], outputs, h)?;
            let got = self.comm.exchange(Phase::Online, vec![], &[b_id])?;
            let from_b = unpack(&got[0], outputs, b_id)?;
            let mut gs = Vec::with_capacity(groups.len());
            let mut ps = Vec::with_capacity(groups.len());
            for (o, (ah, ab)) in from_h.into_iter().zip(from_b).enumerate() {
                let c = col(ah, ab);
                if o % 2 == 0 {
                    gs.push(c)
                } else {
                    ps.push(c)
                }
            }
            let top = col(ts.pop().expect("top"), masked.pop().expect("top"));
            Ok((gs, ps, top))
        } else {
            let is_b = self.id == b_id;
            let xh = if is_b { &x.b } else { &x.a };
            let xcols = plain_cols(xh, k);
            // B: the masked products from A; H: the masks t
            let ms: Vec<Vec<u64>> = if is_b {
                let got = self.comm.exchange(Phase::Online, vec![], &[a_id])?;
                unpack(&got[0], alphas, a_id)?
            } else {
                (0..alphas)
                    .map(|_| {
                        let mut t = self.st.next.words(words); // A–H
                        if leaks::on(Leak::AdderMaskDropped) {
                            t.fill(0);
                        }
                        t.iter_mut()
                            .zip(tail_words(words, tail))
                            .for_each(|(w, m)| *w &= m);
                        t
                    })
                    .collect()
            };
            let mut mine = Vec::with_capacity(outputs); // τ_B or τ_H, masked
            let mut bh = Vec::with_capacity(outputs); // the B–H components
            let mut at = 0;
            for (g, terms) in groups.iter().enumerate() {
                for out in [&terms.g, &terms.p] {
                    // β_∅ goes to the B–H component; every other term
                    // pairs a (masked) product of A's bits with β_S(x)
                    let mut tau = vec![0u64; words];
                    let mut base = vec![0u64; words];
                    for (sa, sxs) in out {
                        let beta = poly(&xcols, 4 * g, sxs, words, tail);
                        if *sa == 0 {
                            base = beta;
                            continue;
                        }
                        let idx = at + terms.alphas.iter().position(|s| s == sa).expect("listed");
                        for j in 0..words {
                            tau[j] ^= ms[idx][j] & beta[j];
                        }
                    }
                    let (u, u2) = if is_b {
                        (self.st.next.words(words), self.st.next.words(words)) // B–H
                    } else {
                        (self.st.prev.words(words), self.st.prev.words(words))
                    };
                    for (j, keep) in tail_words(words, tail).enumerate() {
                        base[j] ^= u[j] & keep;
                        tau[j] ^= u2[j] & keep;
                        if is_b {
                            tau[j] ^= u[j] & keep;
                        }
                    }
                    mine.push(tau);
                    bh.push(base);
                }
                at += terms.alphas.len();
            }
            // the top bit's components: B–H x_{k−1}, A–B/A–H from A
            let top_x = xcols[k as usize - 1].clone();
            let top_m = ms[alphas - 1].clone();
            let mut gs = Vec::with_capacity(groups.len());
            let mut ps = Vec::with_capacity(groups.len());
            let sent = pack(&mine);
            if is_b {
                self.comm.exchange(Phase::Online, vec![(a_id, sent)], &[])?;
                for (o, (ab, bhc)) in mine.into_iter().zip(bh).enumerate() {
                    let c = col(ab, bhc);
                    if o % 2 == 0 {
                        gs.push(c)
                    } else {
                        ps.push(c)
                    }
                }
                Ok((gs, ps, col(top_m, top_x)))
            } else {
                self.comm.exchange(Phase::Online, vec![(a_id, sent)], &[])?;
                for (o, (ah, bhc)) in mine.into_iter().zip(bh).enumerate() {
                    let c = col(bhc, ah);
                    if o % 2 == 0 {
                        gs.push(c)
                    } else {
                        ps.push(c)
                    }
                }
                Ok((gs, ps, col(top_x, top_m)))
            }
        }
    }

    /// Several ANDs of packed bit columns in one round; each column travels
    /// as ⌈n/8⌉ bytes.
    pub(super) fn and_cols(
        &mut self,
        xs: &[&Col],
        ys: &[&Col],
        n: usize,
    ) -> Result<Vec<Col>, ProtocolError> {
        let words = n.div_ceil(64);
        let nbytes = n.div_ceil(8);
        let mut zs = Vec::with_capacity(xs.len());
        let mut msg = Vec::with_capacity(xs.len() * nbytes);
        let mut first: Option<(Vec<u64>, Vec<u64>)> = None;
        for (x, y) in xs.iter().zip(ys) {
            let mut nx = self.st.next.words(words);
            let mut pv = self.st.prev.words(words);
            if leaks::on(Leak::AndColsZeroReused) {
                let (n0, p0) = first.get_or_insert_with(|| (nx.clone(), pv.clone()));
                nx.clone_from(n0);
                pv.clone_from(p0);
            }
            let z: Vec<u64> = (0..words)
                .map(|j| (x.a[j] & y.a[j]) ^ (x.a[j] & y.b[j]) ^ (x.b[j] & y.a[j]) ^ nx[j] ^ pv[j])
                .collect();
            let mut bytes: Vec<u8> = z.iter().flat_map(|w| w.to_le_bytes()).collect();
            bytes.truncate(nbytes);
            msg.extend_from_slice(&bytes);
            zs.push(z);
        }
        let got = self
            .comm
            .exchange(Phase::Online, vec![(self.pred(), msg)], &[self.succ()])?;
        let peer = self.succ();
        if got[0].len() != xs.len() * nbytes {
            return Err(ProtocolError::Malformed {
                peer,
                what: "and",
                detail: format!(
                    "{} bytes, expected {} packed columns of {n} bits",
                    got[0].len(),
                    xs.len()
                ),
            });
        }
        let tail_mask = if n.is_multiple_of(64) {
            u64::MAX
        } else {
            (1u64 << (n % 64)) - 1
        };
        Ok(zs
            .into_iter()
            .zip(got[0].chunks(nbytes.max(1)))
            .map(|(mut a, chunk)| {
                let mut b = vec![0u64; words];
                for (i, &byte) in chunk.iter().enumerate().take(nbytes) {
                    b[i / 8] |= (byte as u64) << (8 * (i % 8));
                }
                if let Some(last) = b.last_mut() {
                    *last &= tail_mask;
                }
                if let Some(last) = a.last_mut() {
                    *last &= tail_mask;
                }
                Col { a, b }
            })
            .collect())
    }

    /// Highest set bit of boolean-shared words, one-hot: prefix-OR from the
    /// top (y |= y >> 2^l for l < ⌈log2 k⌉, OR = a ⊕ b ⊕ ab), then y ⊕ (y >> 1).
    /// Rounds: log2 k; bits: 3k·log2 k per word.
    pub fn highest_bit<R: Ring>(&mut self, w: &BShare<R>) -> Result<BShare<R>, ProtocolError> {
        let mut y = w.clone();
        let levels = R::BITS.trailing_zeros();
        for l in 0..levels {
            let sh = y.shr(1 << l);
            let both = self.and(&y, &sh)?;
            y = y.xor(&sh).xor(&both);
        }
        Ok(y.xor(&y.shr(1)))
    }
}

/// The mask of the valid bits in the last word of a packed column of n.
pub(super) fn tail_mask(n: usize) -> u64 {
    if n.is_multiple_of(64) {
        u64::MAX
    } else {
        (1u64 << (n % 64)) - 1
    }
}

/// Per-word masks of a column of `words` words whose last keeps `tail`.
fn tail_words(words: usize, tail: u64) -> impl Iterator<Item = u64> {
    (0..words).map(move |j| if j + 1 == words { tail } else { u64::MAX })
}

/// The bit columns 0..k of plain words (one party's value).
fn plain_cols<R: Ring>(v: &[R], k: u32) -> Vec<Vec<u64>> {
    Cols::of(
        &BShare {
            a: v.to_vec(),
            b: Vec::new(),
        },
        k,
    )
    .into_iter()
    .map(|c| c.a)
    .collect()
}

/// The product of the columns `base + i` for the bits i of `mask` (all
/// ones, within the tail, for the empty mask).
fn monomial(cols: &[Vec<u64>], base: usize, mask: u8, words: usize, tail: u64) -> Vec<u64> {
    let mut out: Vec<u64> = tail_words(words, tail).collect();
    for i in 0..8 {
        if mask >> i & 1 == 1 {
            for (o, c) in out.iter_mut().zip(&cols[base + i]) {
                *o &= c;
            }
        }
    }
    out
}

/// The sum (XOR) of the monomials `masks` of the columns from `base`.
fn poly(cols: &[Vec<u64>], base: usize, masks: &[u8], words: usize, tail: u64) -> Vec<u64> {
    let mut out = vec![0u64; words];
    for &m in masks {
        for (o, c) in out.iter_mut().zip(monomial(cols, base, m, words, tail)) {
            *o ^= c;
        }
    }
    out
}

/// The terms of one group's generate and propagate bits as polynomials
/// over GF(2) in A's bits a_i and x_h's bits x_i (i within the group):
/// each output is a list of (a-monomial, x-monomials) — the output is
/// ⊕ over the list of a_S·(⊕ x_T) — and `alphas` the nonzero a-monomials
/// either uses, in a fixed order.
pub(super) struct GroupTerms {
    pub(super) g: Vec<(u8, Vec<u8>)>,
    pub(super) p: Vec<(u8, Vec<u8>)>,
    pub(super) alphas: Vec<u8>,
}

/// [`GroupTerms`] of the groups of four bits (the last may be smaller)
/// covering bits 0..bits.
pub(super) fn group_terms(bits: u32) -> Vec<GroupTerms> {
    use std::collections::BTreeSet;
    // a polynomial: the set of its monomials (a-mask, x-mask); XOR toggles
    type Poly = BTreeSet<(u8, u8)>;
    fn mul(x: &Poly, y: &Poly) -> Poly {
        let mut out = Poly::new();
        for &(a1, x1) in x {
            for &(a2, x2) in y {
                let m = (a1 | a2, x1 | x2);
                if !out.remove(&m) {
                    out.insert(m);
                }
            }
        }
        out
    }
    fn add(x: &mut Poly, y: &Poly) {
        for m in y {
            if !x.remove(m) {
                x.insert(*m);
            }
        }
    }
    fn by_alpha(p: &Poly) -> Vec<(u8, Vec<u8>)> {
        let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
        for &(sa, sx) in p {
            match out.iter_mut().find(|(a, _)| *a == sa) {
                Some((_, xs)) => xs.push(sx),
                None => out.push((sa, vec![sx])),
            }
        }
        out
    }
    (0..bits.div_ceil(4))
        .map(|grp| {
            let m = (bits - 4 * grp).min(4) as usize;
            let g_i = |i: usize| Poly::from([(1u8 << i, 1u8 << i)]);
            let p_i = |i: usize| Poly::from([(1u8 << i, 0), (0, 1u8 << i)]);
            let mut gen = Poly::new();
            let mut prop = Poly::from([(0, 0)]);
            for i in 0..m {
                // (G, P) of bits 0..=i from those of 0..i and bit i
                let mut ng = g_i(i);
                add(&mut ng, &mul(&p_i(i), &gen));
                gen = ng;
                prop = mul(&prop, &p_i(i));
            }
            let (g, p) = (by_alpha(&gen), by_alpha(&prop));
            let alphas: BTreeSet<u8> = g
                .iter()
                .chain(&p)
                .map(|t| t.0)
                .filter(|&a| a != 0)
                .collect();
            GroupTerms {
                g,
                p,
                alphas: alphas.into_iter().collect(),
            }
        })
        .collect()
}
