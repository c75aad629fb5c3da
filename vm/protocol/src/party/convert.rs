//! Ditto's conversion primitive (truncate, upcast, downcast) between rings
//! and fraction bits, and its cost.

use super::*;

/// The error for a message of the wrong length (`n` elements of R expected).
pub(super) fn malformed<R: Ring>(
    peer: usize,
    what: &'static str,
    bytes: &[u8],
    n: usize,
) -> ProtocolError {
    ProtocolError::Malformed {
        peer,
        what,
        detail: format!(
            "{} bytes, expected {} elements of {} bits",
            bytes.len(),
            n,
            R::BITS
        ),
    }
}

pub(super) fn parse<R: Ring>(
    bytes: &[u8],
    n: usize,
    peer: usize,
    what: &'static str,
) -> Result<Vec<R>, ProtocolError> {
    from_bytes(bytes, n).ok_or_else(|| malformed::<R>(peer, what, bytes, n))
}

/// 0/1 bits as ring elements.
pub(super) fn bits_as_ring<R: Ring>(v: &[bool]) -> Vec<R> {
    v.iter()
        .map(|&x| if x { R::ONE } else { R::ZERO })
        .collect()
}

/// The input of a conversion: this party's replicated share, or its
/// 3-out-of-3 additive share of a product not yet reshared.
#[derive(Clone, Copy)]
pub(super) enum ConvIn<'a, R: Ring> {
    Replicated(&'a AShare<R>),
    Additive(&'a [R]),
}

impl<R: Ring> ConvIn<'_, R> {
    pub(super) fn len(&self) -> usize {
        match self {
            ConvIn::Replicated(x) => x.len(),
            ConvIn::Additive(z) => z.len(),
        }
    }
}

impl<'c> Party<'c> {
    /// Roles of the next asymmetric protocol (H = ctr mod 3, A = H+1, B = H+2);
    /// advances the public counter.
    pub(super) fn next_roles(&mut self) -> (Role, usize, usize, usize) {
        let h = (self.st.ctr % 3) as usize;
        let role = self.role_at(self.st.ctr);
        self.st.ctr += 1;
        (role, (h + 1) % 3, (h + 2) % 3, h)
    }

    /// This party's role in the conversion with counter value `ctr`.
    pub(super) fn role_at(&self, ctr: u64) -> Role {
        let h = (ctr % 3) as usize;
        if self.id == (h + 1) % 3 {
            Role::A
        } else if self.id == (h + 2) % 3 {
            Role::B
        } else {
            Role::H
        }
    }

    /// The prepared part of the next conversion, if there is a plan.
    pub(super) fn planned(
        &mut self,
        call: ConvCall,
        role: Role,
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        if let Some(t) = &mut self.trace {
            t.push(PreCall::Conv(call));
        }
        let Some(plan) = &mut self.st.plan else {
            return Ok(None);
        };
        let p = plan.pop_front().ok_or_else(|| {
            ProtocolError::Preprocessing(format!("no conversion prepared for {call:?}"))
        })?;
        if p.call != call || p.role != role {
            return Err(ProtocolError::Preprocessing(format!(
                "the next conversion is {call:?} as {role:?}; {:?} as {:?} was prepared",
                p.call, p.role
            )));
        }
        Ok(Some(p.msg))
    }

    /// Ditto's conversion (PROTOCOLS.md): from x shared in Z_2^k_in with
    /// |x| < 2^(k_in−2), a sharing in Z_2^k_out of y = ⌊x / 2^m⌋ + u, u ∈ {0, 1}
    /// (u = 0 when m = 0). Covers probabilistic truncation (k_out = k_in),
    /// exact upcast (m = 0, k_out > k_in), downcast with truncation and
    /// truncate-then-upcast. Requires m ≤ k_in − 2.
    ///
    /// The mask r = r' + r_msb·2^(k_in−1): r' < 2^(k_in−1) from the B–H
    /// stream (B and H know it), r_msb = e ⊕ g ⊕ v from the A–H, A–B and B–H
    /// conversion streams, known to nobody, with a replicated sharing mod
    /// 2^w ([`crate::cost::msb_width`]) made offline (3w bits, 2 rounds:
    /// [`Party::prepare_conversions`]). Online, 2 rounds,
    /// k_in + k_out (+ 2 packed bits when w > 0):
    /// 1. B sends A its component x_h + r' + v·2^(k_in−1); A alone opens
    ///    c = x + 2^(k_in−2) + r (adding (e ⊕ g)·2^(k_in−1)).
    /// 2. With c' = c mod 2^(k_in−1), y = ⌊c'/2^m⌋ − 2^(k_in−2−m) −
    ///    ⌊r'/2^m⌋ plus b·2^(k_in−1−m), where b = c_msb ⊕ r_msb =
    ///    c_msb + (1 − 2c_msb)·r_msb is linear in r_msb's shares once c_msb is public. A sends c_msb to
    ///    B and H and the A–B component, ⌊c'/2^m⌋ − 2^(k_in−2−m) + c_msb·K +
    ///    (1 − 2c_msb)·R_AB·K + w_AH (K = 2^(k_in−1−m), w_AH from the A–H
    ///    stream), to B. The A–H component is −w_AH + (1 − 2c_msb)·R_AH·K and
    ///    the B–H one −⌊r'/2^m⌋ + (1 − 2c_msb)·R_BH·K, each known to both
    ///    its holders without a message.
    ///
    /// A sees c (uniform); B sees c_msb (masked by e) and a component masked
    /// by w_AH; H sees c_msb (masked by g).
    pub fn convert<Ri: Ring, Ro: Ring>(
        &mut self,
        x: &AShare<Ri>,
        m: u32,
    ) -> Result<AShare<Ro>, ProtocolError> {
        self.convert_core(ConvIn::Replicated(x), m)
    }

    /// The conversion of a 3-out-of-3 additive sharing z (z_i at Pi, masked
    /// by a zero-sharing: the output of [`Party::mul_local`] or
    /// [`Party::matmul_local`]), fusing a product with its truncation. H
    /// sends its z_h to A in the round where B sends its part, so the
    /// product's reshare round disappears.
    /// Online: 2 rounds, 2·k_in + k_out bits (+ 2 packed bits when w > 0);
    /// a product then a conversion: 3 rounds, 3·k_in + k_in + k_out.
    /// Offline: as [`Party::convert`].
    pub fn convert_additive<Ri: Ring, Ro: Ring>(
        &mut self,
        z: &[Ri],
        m: u32,
    ) -> Result<AShare<Ro>, ProtocolError> {
        self.convert_core(ConvIn::Additive(z), m)
    }

    pub(super) fn convert_core<Ri: Ring, Ro: Ring>(
        &mut self,
        input: ConvIn<'_, Ri>,
        m: u32,
    ) -> Result<AShare<Ro>, ProtocolError> {
        let kin = Ri::BITS;
        assert!(m + 2 <= kin, "conversion shift {m} exceeds k_in − 2");
        let n = input.len();
        if self.st.guard.is_some() {
            self.guard_input(&input)?;
        }
        let ctr = self.st.ctr;
        let (role, a_id, b_id, h_id) = self.next_roles();
        let call = ConvCall {
            kin,
            kout: Ro::BITS,
            m,
            n,
        };
        let msg = match self.planned(call, role)? {
            Some(msg) => msg,
            None => self.prepare_conversions(&[call], ctr)?.remove(0).msg,
        };
        let w = call.width();
        let peer = match role {
            Role::A => h_id,
            Role::B => a_id,
            Role::H => b_id,
        };
        let prep = if w > 0 {
            unpack_width(&msg, n, w).ok_or_else(|| ProtocolError::Malformed {
                peer,
                what: "conversion preparation",
                detail: format!("{} bytes, expected {n} values of {w} bits", msg.len()),
            })?
        } else {
            Vec::new()
        };
        let d = self.conv_draws(role, n, w);
        let top = Ri::ONE.shl(kin - 1);
        let low = top.sub(Ri::ONE);
        // K = 2^(k_in−1−m) in Z_2^k_out (0 when the shift leaves the ring)
        let scale = Ro::ONE.shl(kin - 1 - m);
        let fused = matches!(input, ConvIn::Additive(_));
        let bits_len = if w > 0 { n.div_ceil(8) } else { 0 };
        // (1 − 2c_msb)·R·K, the share of b·K past its public part
        let signed = |c_msb: bool, r: u64| {
            let r = Ro::from_u64(r);
            if c_msb { r.neg() } else { r }.mul(scale)
        };
        match role {
            Role::H => {
                // r' from the B–H stream, w_AH from the A–H one
                let mut rp: Vec<Ri> = self.st.prev.ring(n);
                if leaks::on(Leak::ConvMaskDropped) {
                    rp.fill(Ri::ZERO);
                }
                let wa: Vec<Ro> = self.st.next.ring(n);
                if let ConvIn::Additive(z) = input {
                    // H's share of the product joins A's opening of c
                    self.comm
                        .exchange(Phase::Online, vec![(a_id, to_bytes(z))], &[])?;
                }
                let bits = if w > 0 {
                    let got = self.comm.exchange(Phase::Online, vec![], &[a_id])?;
                    parse_bits(&got[0], n, a_id, "conversion c_msb")?
                } else {
                    vec![false; n]
                };
                // R_AH = s − 2(s·v + z), R_BH = v + 2z − 2·prep
                let (s, z) = (&d.v1, &d.v2);
                let mut xah = wa;
                let mut xbh = vec![Ro::ZERO; n];
                for j in 0..n {
                    let r_mid = Ro::from_u64(rp[j].and(low).shr(m).to_u64());
                    let (mut rah, mut rbh) = (0u64, 0u64);
                    if w > 0 {
                        let v = bit_of(&d.b2, j);
                        let sv = (s[j] * v).wrapping_add(z[j]);
                        rah = s[j].wrapping_sub(sv.wrapping_mul(2));
                        rbh = v
                            .wrapping_add(z[j].wrapping_mul(2))
                            .wrapping_sub(prep[j].wrapping_mul(2));
                    }
                    xah[j] = signed(bits[j], rah).sub(xah[j]);
                    xbh[j] = signed(bits[j], rbh).sub(r_mid);
                }
                Ok(AShare { a: xbh, b: xah })
            }
            Role::A => {
                // u = e ⊕ g: A's part of the mask's top bit (packed)
                let u: Vec<u64> = d.b1.iter().zip(&d.b2).map(|(e, g)| e ^ g).collect();
                // Round 1: B's masked part (and H's product share) reach A.
                let from = if fused { vec![b_id, h_id] } else { vec![b_id] };
                let got = self.comm.exchange(Phase::Online, vec![], &from)?;
                // c = x + 2^(k_in−2) + r: A's view of x, B's masked part, H's share
                let mut c: Vec<Ri> = match input {
                    ConvIn::Replicated(x) => kernels::add(&x.a, &x.b),
                    ConvIn::Additive(z) => z.to_vec(),
                };
                if !add_from_bytes(&mut c, &got[0]) {
                    return Err(malformed::<Ri>(b_id, "conversion opening", &got[0], n));
                }
                if fused && !add_from_bytes(&mut c, &got[1]) {
                    return Err(malformed::<Ri>(h_id, "conversion helper share", &got[1], n));
                }
                let bias = Ri::ONE.shl(kin - 2);
                for (j, cj) in c.iter_mut().enumerate() {
                    *cj = cj.add(bias);
                    if bit_of(&u, j) == 1 {
                        *cj = cj.add(top);
                    }
                }
                if self.comm.observing() {
                    // the opened c = x + 2^(k_in−2) + r
                    self.comm.observe(to_bytes(&c));
                }
                let offset = Ro::ONE.shl(kin - 2 - m);
                // Round 2: c_msb to B and H, the A–B component to B.
                let wa: Vec<Ro> = self.st.prev.ring(n); // A–H key
                let (s, y) = (&d.v1, &d.v2);
                let mut xah = vec![Ro::ZERO; n];
                let mut msg = vec![0u8; bits_len + n * (Ro::BITS as usize / 8)];
                let mut xab = vec![Ro::ZERO; n];
                for j in 0..n {
                    let c_msb = w > 0 && c[j].bit(kin - 1);
                    if c_msb {
                        msg[j / 8] |= 1 << (j % 8);
                    }
                    let (mut rah, mut rab) = (0u64, 0u64);
                    if w > 0 {
                        // R_AH = s − 2·(s·v + z) (H's message), R_AB = (u − s) + 2y
                        rah = s[j].wrapping_sub(prep[j].wrapping_mul(2));
                        rab = bit_of(&u, j)
                            .wrapping_sub(s[j])
                            .wrapping_add(y[j].wrapping_mul(2));
                    }
                    let public = Ro::from_u64(c[j].and(low).shr(m).to_u64()).sub(offset);
                    let public = if c_msb { public.add(scale) } else { public };
                    xab[j] = public.add(signed(c_msb, rab)).add(wa[j]);
                    xah[j] = signed(c_msb, rah).sub(wa[j]);
                }
                put_bytes(&xab, &mut msg[bits_len..]);
                let mut sends = vec![(b_id, msg)];
                if w > 0 {
                    sends.push((h_id, sends[0].1[..bits_len].to_vec()));
                }
                self.comm.exchange(Phase::Online, sends, &[])?;
                Ok(AShare { a: xah, b: xab })
            }
            Role::B => {
                // r' < 2^(k_in−1) from the B–H stream; r = r' + r_msb·2^(k_in−1)
                let mut rp: Vec<Ri> = self.st.next.ring(n);
                if leaks::on(Leak::ConvMaskDropped) {
                    rp.fill(Ri::ZERO);
                }
                let (y, z) = (&d.v1, &d.v2);
                let ib = Ri::BITS as usize / 8;
                let mut out = vec![0u8; n * ib];
                for (j, o) in out.chunks_exact_mut(ib).enumerate() {
                    let mine = match input {
                        ConvIn::Replicated(x) => x.b[j],
                        ConvIn::Additive(z) => z[j],
                    };
                    let masked = mine.add(rp[j].and(low));
                    let masked = if bit_of(&d.b2, j) == 1 {
                        masked.add(top)
                    } else {
                        masked
                    };
                    masked.put_le(o);
                }
                // Round 1: the masked part to A; round 2: c_msb and the A–B
                // component from A.
                self.comm.exchange(Phase::Online, vec![(a_id, out)], &[])?;
                let got = self.comm.exchange(Phase::Online, vec![], &[a_id])?;
                if got[0].len() != bits_len + n * (Ro::BITS as usize / 8) {
                    return Err(ProtocolError::Malformed {
                        peer: a_id,
                        what: "conversion reshare",
                        detail: format!(
                            "{} bytes, expected {} packed bits and {n} elements of {} bits",
                            got[0].len(),
                            bits_len,
                            Ro::BITS
                        ),
                    });
                }
                let (bits, body) = got[0].split_at(bits_len);
                let xab: Vec<Ro> = from_bytes(body, n).expect("length checked");
                let mut xbh = vec![Ro::ZERO; n];
                for j in 0..n {
                    let c_msb = w > 0 && bits[j / 8] >> (j % 8) & 1 == 1;
                    let mut rbh = 0u64;
                    if w > 0 {
                        // R_BH = v + 2z − 2·((u − s)·v + y)
                        let v = bit_of(&d.b2, j);
                        let t = (prep[j] * v).wrapping_add(y[j]);
                        rbh = v
                            .wrapping_add(z[j].wrapping_mul(2))
                            .wrapping_sub(t.wrapping_mul(2));
                    }
                    let r_mid = Ro::from_u64(rp[j].and(low).shr(m).to_u64());
                    xbh[j] = signed(c_msb, rbh).sub(r_mid);
                }
                Ok(AShare { a: xab, b: xbh })
            }
        }
    }

    /// Turns the range guard on: from now on every conversion also flags,
    /// secretly, the elements of its input outside its precondition
    /// |x| < 2^(k_in−2) (the sign of x + 2^(k_in−2), [`Party::ltz`]; an
    /// additive input is first reshared with a fresh zero-sharing, 1 round
    /// and 3·k_in bits more), and [`Party::range_verdict`] opens whether any
    /// was. Cost per element converted: [`crate::cost::ltz`] bits and its
    /// rounds.
    pub fn guard_ranges(&mut self) {
        self.st.guard.get_or_insert_with(Vec::new);
    }

    /// Whether the range guard is on.
    pub fn guarding(&self) -> bool {
        self.st.guard.is_some()
    }

    /// Leaves the following conversions unchecked (or checks them again):
    /// for approximations that overflow on purpose in a branch a selection
    /// then discards. Public: the program says where (all parties agree).
    pub fn guard_pause(&mut self, paused: bool) {
        self.st.guard_paused = paused;
    }

    /// Checks only the elements marked `true` of the next conversion (a
    /// batch of several instructions, some inside approximations).
    pub fn guard_mask(&mut self, mask: Vec<bool>) {
        self.st.guard_mask = Some(mask);
    }

    fn guard_input<Ri: Ring>(&mut self, input: &ConvIn<'_, Ri>) -> Result<(), ProtocolError> {
        let mask = self.st.guard_mask.take();
        if self.st.guard_paused {
            return Ok(());
        }
        // the elements checked (all, or those the mask keeps)
        let keep: Option<Vec<usize>> = match &mask {
            Some(m) if m.len() == input.len() => Some((0..m.len()).filter(|&j| m[j]).collect()),
            Some(m) => {
                return Err(ProtocolError::Preprocessing(format!(
                    "a range-guard mask of {} for a conversion of {}",
                    m.len(),
                    input.len()
                )))
            }
            None => None,
        };
        if keep.as_ref().is_some_and(|k| k.is_empty()) {
            return Ok(());
        }
        let x = match input {
            ConvIn::Replicated(x) => match &keep {
                Some(k) => x.gather(k),
                None => (*x).clone(),
            },
            ConvIn::Additive(z) => {
                // a fresh mask: z_i itself also travels to A in the fused
                // conversion, and two parties seeing it would open x
                let mut z = match &keep {
                    Some(k) => k.iter().map(|&j| z[j]).collect(),
                    None => z.to_vec(),
                };
                let alpha = self.zero_share::<Ri>(z.len());
                if !leaks::on(Leak::GuardFreshMaskDropped) {
                    kernels::add_assign(&mut z, &alpha);
                }
                self.reshare(z, Phase::Online, "range guard")?
            }
        };
        let bias = vec![Ri::ONE.shl(Ri::BITS - 2); x.len()];
        let flags = self.ltz(&x.add_public(self.id, &bias))?;
        if let Some(g) = &mut self.st.guard {
            g.push(flags);
        }
        Ok(())
    }

    /// The range guard's verdict, opened to all three parties: whether any
    /// conversion since the guard was turned on (or since the last verdict)
    /// had an input outside its precondition — and nothing else. The OR of
    /// all N flags as an AND tree of their negations: ⌈log2 N⌉ rounds and
    /// 3·(N − 1) bits, then 1 round and 3 bits to open it.
    pub fn range_verdict(&mut self) -> Result<bool, ProtocolError> {
        let Some(flags) = self.st.guard.replace(Vec::new()) else {
            return Ok(false);
        };
        let mut cur = BitShare {
            a: flags.iter().flat_map(|f| f.a.iter().copied()).collect(),
            b: flags.iter().flat_map(|f| f.b.iter().copied()).collect(),
        }
        .not(self.id);
        if cur.is_empty() {
            return Ok(false);
        }
        while cur.len() > 1 {
            let half = cur.len() / 2;
            let lo = BitShare {
                a: cur.a[..half].to_vec(),
                b: cur.b[..half].to_vec(),
            };
            let hi = BitShare {
                a: cur.a[half..2 * half].to_vec(),
                b: cur.b[half..2 * half].to_vec(),
            };
            let mut next = self.and_bits(&lo, &hi)?;
            if cur.len() % 2 == 1 {
                next.a.push(cur.a[2 * half]);
                next.b.push(cur.b[2 * half]);
            }
            cur = next;
        }
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), pack_bits(&cur.b))],
            &[self.succ()],
        )?;
        let third = parse_bits(&got[0], 1, self.succ(), "range verdict")?;
        let none = cur.a[0] ^ cur.b[0] ^ third[0];
        Ok(!none)
    }

    /// Probabilistic truncation by m bits in the same ring (a conversion).
    pub fn trunc<R: Ring>(&mut self, x: &AShare<R>, m: u32) -> Result<AShare<R>, ProtocolError> {
        self.convert::<R, R>(x, m)
    }
}
