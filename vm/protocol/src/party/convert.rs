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
    /// The mask r = r' + r_msb·2^(k_in−1): r' < 2^(k_in−1) is B's own
    /// randomness, r_msb = e ⊕ v is known to H alone (e from the A–H stream,
    /// v from the B–H stream), and A and B hold additive shares of r_msb mod
    /// 2^w ([`crate::cost::msb_width`]): A's from the A–H stream, B's sent by H offline
    /// (w bits). Online, 3 rounds, k_in + 1 + 2·k_out bits:
    /// 1. B sends A its component x_h + r' − v·2^(k_in−1); A alone opens
    ///    c = x + 2^(k_in−2) + r (adding e·2^(k_in−1)).
    /// 2. A forms its share of y = ⌊c'/2^m⌋ − r_mid + (r_msb ⊕ c_msb)·2^(k_in−1−m)
    ///    − 2^(k_in−2−m) and sends B c_msb (1 bit) and the A–B component,
    ///    masked by the A–H and A–B streams.
    /// 3. B forms its share, −r_mid + (1 − 2c_msb)·ρ_B·2^(k_in−1−m) (it knows
    ///    r_mid = ⌊r'/2^m⌋), and sends H the B–H component masked by the A–B
    ///    stream.
    ///
    /// A sees c (uniform), B sees c_msb (uniform: r_msb is hidden from it) and
    /// masked values, H a masked value.
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
    /// Online: 3 rounds, 2·k_in + 1 + 2·k_out bits (a product then a
    /// conversion: 4 rounds, 3·k_in + k_in + 1 + 2·k_out). Offline: as
    /// [`Party::convert`].
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
        let (role, a_id, b_id, h_id) = self.next_roles();
        let call = ConvCall {
            kin,
            kout: Ro::BITS,
            m,
            n,
        };
        let planned = self.planned(call, role)?;
        let w = msb_width(kin, Ro::BITS, m);
        let top = Ri::ONE.shl(kin - 1);
        // K = 2^(k_in−1−m) in Z_2^k_out (0 when the shift leaves the ring)
        let scale = Ro::ONE.shl(kin - 1 - m);
        let fused = matches!(input, ConvIn::Additive(_));
        match role {
            Role::H => {
                if planned.is_none() {
                    let msg = self.helper_message::<Ri, Ro>(n, m);
                    if w > 0 {
                        self.comm.exchange(Phase::Offline, vec![(b_id, msg)], &[])?;
                    }
                }
                if let ConvIn::Additive(z) = input {
                    // H's share of the product joins A's opening of c
                    self.comm
                        .exchange(Phase::Online, vec![(a_id, to_bytes(z))], &[])?;
                }
                // Round 3: B's masked part of the result, component x_h.
                let wa: Vec<Ro> = self.st.next.ring(n); // A–H key: x_{h+1}
                let got = self.comm.exchange(Phase::Online, vec![], &[b_id])?;
                let sbh: Vec<Ro> = parse(&got[0], n, b_id, "conversion reshare")?;
                Ok(AShare { a: sbh, b: wa })
            }
            Role::A => {
                let mut e = self.st.helped_prev.bits(n);
                if leaks::on(Leak::ConvAHelperBitFixed) {
                    e.fill(false);
                }
                // ρ_A, A's share of r_msb (mod 2^w)
                let rho = draw_width(&mut self.st.helped_prev, n, w);
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
                if self.comm.observing() {
                    // the opened c = x + 2^(k_in−2) + r
                    let opened: Vec<Ri> = (0..n)
                        .map(|j| c[j].add(bias).add(if e[j] { top } else { Ri::ZERO }))
                        .collect();
                    self.comm.observe(to_bytes(&opened));
                }
                let low = top.sub(Ri::ONE);
                let offset = Ro::ONE.shl(kin - 2 - m);
                // Round 2: c_msb and the A–B component, masked, to B.
                let wa: Vec<Ro> = self.st.prev.ring(n); // A–H key: x_{h+1}
                let mut sab: Vec<Ro> = self.st.next.ring(n); // A–B key, then the component
                let split = n.div_ceil(8);
                let mut msg = vec![0u8; split + n * (Ro::BITS as usize / 8)];
                for j in 0..n {
                    let mut cj = c[j].add(bias);
                    if e[j] {
                        cj = cj.add(top);
                    }
                    let c_msb = cj.bit(kin - 1);
                    msg[j / 8] |= (c_msb as u8) << (j % 8);
                    // A's share of b = r_msb ⊕ c_msb = c_msb + (1 − 2c_msb)·r_msb
                    let r = rho.get(j).map_or(Ro::ZERO, |&r| Ro::from_u64(r));
                    let b = if c_msb { Ro::ONE.sub(r) } else { r };
                    let y = Ro::from_u64(cj.and(low).shr(m).to_u64())
                        .sub(offset)
                        .add(b.mul(scale));
                    sab[j] = y.sub(wa[j]).sub(sab[j]);
                }
                put_bytes(&sab, &mut msg[split..]);
                self.comm.exchange(Phase::Online, vec![(b_id, msg)], &[])?;
                Ok(AShare { a: wa, b: sab })
            }
            Role::B => {
                let mut v = self.st.helped_next.bits(n);
                if leaks::on(Leak::ConvHelperBitFixed) {
                    v.fill(false);
                }
                let rho: Vec<u64> = if w > 0 {
                    let msg = match planned {
                        Some(msg) => msg,
                        None => self
                            .comm
                            .exchange(Phase::Offline, vec![], &[h_id])?
                            .remove(0),
                    };
                    unpack_width(&msg, n, w).ok_or_else(|| ProtocolError::Malformed {
                        peer: h_id,
                        what: "conversion helper message",
                        detail: format!("{} bytes, expected {} values of {w} bits", msg.len(), n),
                    })?
                } else {
                    Vec::new()
                };
                // r' < 2^(k_in−1): B's own randomness; r = r' + r_msb·2^(k_in−1)
                let mut rp: Vec<Ri> = self.st.own.ring(n);
                let low = top.sub(Ri::ONE);
                rp.iter_mut().for_each(|r| *r = r.and(low));
                if leaks::on(Leak::ConvMaskDropped) {
                    rp.fill(Ri::ZERO);
                }
                let ib = Ri::BITS as usize / 8;
                let mut out = vec![0u8; n * ib];
                for (j, o) in out.chunks_exact_mut(ib).enumerate() {
                    let mine = match input {
                        ConvIn::Replicated(x) => x.b[j],
                        ConvIn::Additive(z) => z[j],
                    };
                    let masked = mine.add(rp[j]);
                    let masked = if v[j] { masked.sub(top) } else { masked };
                    masked.put_le(o);
                }
                self.comm.exchange(Phase::Online, vec![(a_id, out)], &[])?;
                let got = self.comm.exchange(Phase::Online, vec![], &[a_id])?;
                let split = n.div_ceil(8);
                if got[0].len() != split + n * (Ro::BITS as usize / 8) {
                    return Err(ProtocolError::Malformed {
                        peer: a_id,
                        what: "conversion reshare",
                        detail: format!(
                            "{} bytes, expected {n} bits and {n} elements of {} bits",
                            got[0].len(),
                            Ro::BITS
                        ),
                    });
                }
                let (bits, body) = got[0].split_at(split);
                let sab: Vec<Ro> = from_bytes(body, n).expect("length checked");
                // B's share: −r_mid + (1 − 2c_msb)·ρ_B·K, masked by t (A–B key)
                let mut sbh: Vec<Ro> = self.st.prev.ring(n);
                for (j, t) in sbh.iter_mut().enumerate() {
                    let r = rho.get(j).map_or(Ro::ZERO, |&r| Ro::from_u64(r));
                    let b = if bits[j / 8] >> (j % 8) & 1 == 1 {
                        r.neg()
                    } else {
                        r
                    };
                    let r_mid = Ro::from_u64(rp[j].shr(m).to_u64());
                    *t = b.mul(scale).sub(r_mid).add(*t);
                }
                // Round 3: the B–H component to H.
                self.comm
                    .exchange(Phase::Online, vec![(h_id, to_bytes(&sbh))], &[])?;
                Ok(AShare { a: sab, b: sbh })
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
