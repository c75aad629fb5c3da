//! The offline phase: recording the conversions a program makes, preparing
//! their masks and random bits in advance, and the helper's messages.

use super::*;

/// Prepared random bits for one B2A: the boolean sharing and the
/// arithmetic one (in the call's ring, widened to 64 bits here).
pub(super) struct PreparedBits {
    pub(super) k: u32,
    pub(super) rho: BitShare,
    pub(super) r: AShare<u64>,
}

/// `n` values of `w` bits from a stream (none when w = 0).
pub(super) fn draw_width(prg: &mut Prg, n: usize, w: u32) -> Vec<u64> {
    if w == 0 {
        return Vec::new();
    }
    prg.values(n, w)
}

impl<'c> Party<'c> {
    /// Records every conversion call from now on (see [`Party::take_trace`]).
    pub fn record_conversions(&mut self) {
        self.trace = Some(Vec::new());
    }

    pub fn take_trace(&mut self) -> Vec<PreCall> {
        self.trace.take().unwrap_or_default()
    }

    /// The offline phase for the calls `all`, which the following online
    /// phase must make in this order. Conversions: each party computes its
    /// helper messages for the calls where it is H and sends them all to its
    /// predecessor (that call's B) at once — **1 round** in all, w bits per
    /// element as inline ([`crate::cost::msb_width`]). B2A: the random bits of all calls
    /// of a ring made arithmetic together — 2 rounds per ring, 3k bits per
    /// bit as inline. Afterwards every call takes its offline part from here, and
    /// a call that differs from the plan is an error.
    pub fn preprocess(&mut self, all: &[PreCall]) -> Result<(), ProtocolError> {
        let calls: Vec<ConvCall> = all
            .iter()
            .filter_map(|c| match c {
                PreCall::Conv(c) => Some(*c),
                PreCall::B2a { .. } => None,
            })
            .collect();
        let bits: Vec<(u32, usize)> = all
            .iter()
            .filter_map(|c| match c {
                PreCall::B2a { k, n } => Some((*k, *n)),
                PreCall::Conv(_) => None,
            })
            .collect();
        self.prepare_bits(&bits)?;
        let mut plan = std::collections::VecDeque::with_capacity(calls.len());
        let mut out = Vec::new();
        let mut want = 0usize;
        for (k, &call) in calls.iter().enumerate() {
            let role = self.role_at(self.st.ctr + k as u64);
            match role {
                Role::H => out.extend(match (call.kin, call.kout) {
                    (32, 32) => self.helper_message::<u32, u32>(call.n, call.m),
                    (32, _) => self.helper_message::<u32, u64>(call.n, call.m),
                    (_, 32) => self.helper_message::<u64, u32>(call.n, call.m),
                    _ => self.helper_message::<u64, u64>(call.n, call.m),
                }),
                Role::B => want += call.helper_bytes(),
                Role::A => {}
            }
            plan.push_back(Prepared {
                call,
                role,
                msg: Vec::new(),
            });
        }
        let (pred, succ) = (self.pred(), self.succ());
        let got = self
            .comm
            .exchange(Phase::Offline, vec![(pred, out)], &[succ])?;
        let got = &got[0];
        if got.len() != want {
            return Err(ProtocolError::Malformed {
                peer: succ,
                what: "preprocessed helper messages",
                detail: format!("{} bytes, expected {want}", got.len()),
            });
        }
        let mut at = 0;
        for p in plan.iter_mut().filter(|p| p.role == Role::B) {
            let len = p.call.helper_bytes();
            p.msg = got[at..at + len].to_vec();
            at += len;
        }
        self.st.plan = Some(plan);
        Ok(())
    }

    /// [`Party::preprocess`], timed: its seconds and this party's traffic.
    pub fn offline_phase(
        &mut self,
        calls: &[PreCall],
    ) -> Result<(f64, crate::Stats), ProtocolError> {
        let (t0, s0) = (std::time::Instant::now(), self.comm.stats());
        self.preprocess(calls)?;
        Ok((t0.elapsed().as_secs_f64(), self.comm.stats().since(&s0)))
    }

    /// Conversions prepared and not yet used.
    pub fn prepared_left(&self) -> usize {
        self.st.plan.as_ref().map_or(0, |p| p.len())
            + self.st.bits_plan.as_ref().map_or(0, |p| p.len())
    }

    /// Prepares the random bits of B2A calls (ring, count), batched by ring.
    pub(super) fn prepare_bits(&mut self, calls: &[(u32, usize)]) -> Result<(), ProtocolError> {
        fn widen<R: Ring>(s: AShare<R>) -> AShare<u64> {
            AShare {
                a: s.a.iter().map(|x| x.to_u64()).collect(),
                b: s.b.iter().map(|x| x.to_u64()).collect(),
            }
        }
        let mut made: [Option<(BitShare, AShare<u64>)>; 2] = [None, None];
        for (slot, k) in [(0, 32u32), (1, 64)] {
            let total: usize = calls.iter().filter(|c| c.0 == k).map(|c| c.1).sum();
            if total > 0 {
                made[slot] = Some(if k == 32 {
                    let (rho, r) = self.random_bits::<u32>(total)?;
                    (rho, widen(r))
                } else {
                    self.random_bits::<u64>(total)?
                });
            }
        }
        let mut at = [0usize; 2];
        let mut q = std::collections::VecDeque::with_capacity(calls.len());
        for &(k, n) in calls {
            let slot = (k == 64) as usize;
            let (rho, r) = made[slot].as_ref().expect("made above");
            let o = at[slot];
            q.push_back(PreparedBits {
                k,
                rho: BitShare {
                    a: rho.a[o..o + n].to_vec(),
                    b: rho.b[o..o + n].to_vec(),
                },
                r: AShare {
                    a: r.a[o..o + n].to_vec(),
                    b: r.b[o..o + n].to_vec(),
                },
            });
            at[slot] += n;
        }
        self.st.bits_plan = Some(q);
        Ok(())
    }

    /// n random bits r = ρ0 ⊕ ρ1 ⊕ ρ2 known to nobody, as a boolean sharing
    /// (ρ_j from the B2A stream of k_{j−1}: Pi holds (ρ_i, ρ_{i+1})) and an
    /// arithmetic one. P0 knows t = ρ0 ⊕ ρ1, P1 and P2 know ρ2, and
    /// r = t + ρ2 − 2·t·ρ2. The product: P0 sends P1 t + μ (μ from the P2–P0
    /// stream), so P1 has q1 = (t + μ)·ρ2 and P2 q2 = −μ·ρ2; with w and λ from
    /// the P1–P2 stream the components are c2 = w, c1 = t + μ − 2q1 + ρ2 − w − λ
    /// (P1 sends P0 all but t + μ) and c0 = −μ − 2q2 + λ (P2 sends P0 all but
    /// −μ). Offline, 2 rounds, 3k bits per bit. P1 sees t masked by μ, P0
    /// values masked by λ and w.
    pub(super) fn random_bits<R: Ring>(
        &mut self,
        n: usize,
    ) -> Result<(BitShare, AShare<R>), ProtocolError> {
        let rho_a = self.st.b2a_prev.bits(n);
        let rho_b = self.st.b2a_next.bits(n);
        let bits = BitShare {
            a: rho_a.clone(),
            b: rho_b.clone(),
        };
        let ring = bits_as_ring::<R>;
        let two = R::from_u64(2);
        let what = "b2a setup";
        let r = match self.id {
            0 => {
                let t: Vec<bool> = rho_a.iter().zip(&rho_b).map(|(x, y)| x ^ y).collect();
                let t: Vec<R> = ring(&t);
                let mut mu: Vec<R> = self.st.b2a_prev.ring(n); // P2–P0
                if leaks::on(Leak::B2aSetupMaskDropped) {
                    mu.fill(R::ZERO);
                }
                let tm = kernels::add(&t, &mu);
                let got = self
                    .comm
                    .exchange(Phase::Offline, vec![(1, to_bytes(&tm))], &[2])?;
                let m2: Vec<R> = parse(&got[0], n, 2, what)?;
                let got = self.comm.exchange(Phase::Offline, vec![], &[1])?;
                let m1: Vec<R> = parse(&got[0], n, 1, what)?;
                AShare {
                    a: kernels::sub(&m2, &mu),
                    b: kernels::add(&tm, &m1),
                }
            }
            1 => {
                let rho2: Vec<R> = ring(&rho_b);
                let w: Vec<R> = self.st.b2a_next.ring(n); // P1–P2
                let lambda: Vec<R> = self.st.b2a_next.ring(n);
                let got = self.comm.exchange(Phase::Offline, vec![], &[0])?;
                let tm: Vec<R> = parse(&got[0], n, 0, what)?;
                let m1: Vec<R> = (0..n)
                    .map(|j| {
                        let q1 = tm[j].mul(rho2[j]);
                        rho2[j].sub(q1.mul(two)).sub(w[j]).sub(lambda[j])
                    })
                    .collect();
                self.comm
                    .exchange(Phase::Offline, vec![(0, to_bytes(&m1))], &[])?;
                AShare {
                    a: kernels::add(&tm, &m1),
                    b: w,
                }
            }
            _ => {
                let rho2: Vec<R> = ring(&rho_a);
                let mut mu: Vec<R> = self.st.b2a_next.ring(n); // P2–P0
                if leaks::on(Leak::B2aSetupMaskDropped) {
                    mu.fill(R::ZERO);
                }
                let w: Vec<R> = self.st.b2a_prev.ring(n); // P1–P2
                let lambda: Vec<R> = self.st.b2a_prev.ring(n);
                // m2 = −2·q2 + λ with q2 = −μ·ρ2
                let m2: Vec<R> = (0..n)
                    .map(|j| mu[j].mul(rho2[j]).mul(two).add(lambda[j]))
                    .collect();
                self.comm
                    .exchange(Phase::Offline, vec![(0, to_bytes(&m2))], &[])?;
                AShare {
                    a: w,
                    b: kernels::sub(&m2, &mu),
                }
            }
        };
        Ok((bits, r))
    }

    /// The next B2A call's random bits: prepared, or made now.
    pub(super) fn bits_for<R: Ring>(
        &mut self,
        n: usize,
    ) -> Result<(BitShare, AShare<R>), ProtocolError> {
        if let Some(t) = &mut self.trace {
            t.push(PreCall::B2a { k: R::BITS, n });
        }
        let Some(plan) = &mut self.st.bits_plan else {
            return self.random_bits::<R>(n);
        };
        let p = plan.pop_front().ok_or_else(|| {
            ProtocolError::Preprocessing(format!("no random bits prepared for a B2A of {n}"))
        })?;
        if p.k != R::BITS || p.rho.len() != n {
            return Err(ProtocolError::Preprocessing(format!(
                "the next B2A is {n} bits in Z_2^{}; {} in Z_2^{} were prepared",
                R::BITS,
                p.rho.len(),
                p.k
            )));
        }
        let narrow = |v: Vec<u64>| v.into_iter().map(R::from_u64).collect();
        Ok((
            p.rho,
            AShare {
                a: narrow(p.r.a),
                b: narrow(p.r.b),
            },
        ))
    }

    /// H's part of one conversion of `n` elements by `m` bits. The mask's
    /// top bit is r_msb = e ⊕ v, with e from the A–H stream and v from the
    /// B–H stream, so only H knows it; A's share ρ_A of r_msb (mod 2^w) comes
    /// from the A–H stream and B's, ρ_B = r_msb − ρ_A, is this message: w bits
    /// per element, nothing when w = 0. H draws what A and B draw.
    pub(super) fn helper_message<Ri: Ring, Ro: Ring>(&mut self, n: usize, m: u32) -> Vec<u8> {
        let w = msb_width(Ri::BITS, Ro::BITS, m);
        let mut e = self.st.help_next.bits(n);
        let rho_a = draw_width(&mut self.st.help_next, n, w);
        let mut v = self.st.help_prev.bits(n);
        if leaks::on(Leak::ConvAHelperBitFixed) {
            e.fill(false);
        }
        if leaks::on(Leak::ConvHelperBitFixed) {
            v.fill(false);
        }
        if w == 0 {
            return Vec::new();
        }
        let rho_b: Vec<u64> = (0..n)
            .map(|j| ((e[j] ^ v[j]) as u64).wrapping_sub(rho_a[j]))
            .collect();
        pack_width(&rho_b, w)
    }
}
