//! The offline phase: recording the conversions a program makes, preparing
//! their mask bits' shares and random bits in advance.

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
    /// phase must make in this order. Conversions: the arithmetic sharing of
    /// every call's mask bit, made for all calls together in **2 rounds**
    /// (every party sends to its successor in each; 3·w bits per element as
    /// inline, [`crate::cost::msb_width`]; none when no call has w > 0). B2A:
    /// the random bits of all calls of a ring made arithmetic together — 2
    /// rounds per ring, 3k bits per bit as inline. Afterwards every call
    /// takes its offline part from here, and a call that differs from the
    /// plan is an error.
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
        let plan = self.prepare_conversions(&calls, self.st.ctr)?;
        self.st.plan = Some(plan.into());
        Ok(())
    }

    /// The offline part of the conversions `calls`, the first with role
    /// counter `ctr`: each call's mask bit r_msb = e ⊕ g ⊕ v (e from the
    /// A–H conversion stream, g from A–B, v from B–H: nobody knows it) as a
    /// replicated sharing mod 2^w. With u = e ⊕ g (A's), r_msb = u + v − 2uv
    /// and uv = s·v + (u − s)·v, s from A–H:
    /// round 1, A → B: u − s; H → A: s·v + z (z from B–H);
    /// round 2, B → H: (u − s)·v + y (y from A–B).
    /// Components: R_AH = s − 2(s·v + z), R_AB = (u − s) + 2y,
    /// R_BH = v + 2z − 2((u − s)·v + y). Each message is masked by a draw its
    /// receiver lacks (s, z, y). The streams are left where they were: the
    /// online phase draws the same values again ([`Party::conv_draws`]), so
    /// a prepared call keeps only the message it received.
    pub(super) fn prepare_conversions(
        &mut self,
        calls: &[ConvCall],
        ctr: u64,
    ) -> Result<Vec<Prepared>, ProtocolError> {
        let roles: Vec<Roles> = (0..calls.len())
            .map(|k| self.roles_at(ctr + k as u64))
            .collect();
        let mut plan: Vec<Prepared> = calls
            .iter()
            .zip(&roles)
            .map(|(&call, r)| Prepared {
                call,
                role: r.role,
                msg: Vec::new(),
            })
            .collect();
        if calls.iter().all(|c| c.width() == 0) {
            // no shares to make; the mask bits are drawn online
            return Ok(plan);
        }
        let saved = (self.st.conv_next.clone(), self.st.conv_prev.clone());
        // every message goes one step along the call's orientation: to the
        // successor, or (mirrored) to the predecessor; [forward, mirrored]
        // round 1: as A, u − s to B; as H, s·v + z to A
        let mut out = [Vec::new(), Vec::new()];
        let mut want = [0, 0];
        for (call, r) in calls.iter().zip(&roles) {
            let (n, w) = (call.n, call.width());
            let o = usize::from(r.mirror);
            if r.role == Role::B {
                // B sends nothing in this round: its streams move on
                self.conv_skip(n, w);
                if w > 0 {
                    want[o] += call.prep_bytes();
                }
                continue;
            }
            if r.mirror {
                self.mirror_streams();
            }
            let d = self.conv_draws(r.role, n, w);
            if r.mirror {
                self.mirror_streams();
            }
            if w == 0 {
                continue;
            }
            let mask = low_mask(w);
            match r.role {
                Role::A => {
                    let vals: Vec<u64> = (0..n)
                        .map(|j| (bit_of(&d.b1, j) ^ bit_of(&d.b2, j)).wrapping_sub(d.v1[j]) & mask)
                        .collect();
                    out[o].extend(pack_width(&vals, w));
                    want[o] += call.prep_bytes();
                }
                Role::H => {
                    let vals: Vec<u64> = (0..n)
                        .map(|j| (d.v1[j] * bit_of(&d.b2, j)).wrapping_add(d.v2[j]) & mask)
                        .collect();
                    out[o].extend(pack_width(&vals, w));
                }
                Role::B => unreachable!("skipped above"),
            }
        }
        let got1 = self.prep_exchange(out, want)?;
        // round 2: as B, (u − s)·v + y to H
        (self.st.conv_next, self.st.conv_prev) = saved.clone();
        let mut out = [Vec::new(), Vec::new()];
        let mut want = [0, 0];
        let mut at = [0, 0];
        for (p, r) in plan.iter_mut().zip(&roles) {
            let (n, w) = (p.call.n, p.call.width());
            let o = usize::from(r.mirror);
            if r.role != Role::B || w == 0 {
                // only B sends in this round, and only when w > 0
                self.conv_skip(n, w);
            }
            if w == 0 {
                continue;
            }
            let len = p.call.prep_bytes();
            match r.role {
                Role::A => {
                    p.msg = got1[o][at[o]..at[o] + len].to_vec();
                    at[o] += len;
                }
                Role::B => {
                    if r.mirror {
                        self.mirror_streams();
                    }
                    let d = self.conv_draws(r.role, n, w);
                    if r.mirror {
                        self.mirror_streams();
                    }
                    p.msg = got1[o][at[o]..at[o] + len].to_vec();
                    at[o] += len;
                    let us = unpack_width(&p.msg, n, w).expect("length checked");
                    let vals: Vec<u64> = (0..n)
                        .map(|j| (us[j] * bit_of(&d.b2, j)).wrapping_add(d.v1[j]) & low_mask(w))
                        .collect();
                    out[o].extend(pack_width(&vals, w));
                }
                Role::H => want[o] += len,
            }
        }
        let got2 = self.prep_exchange(out, want)?;
        let mut at = [0, 0];
        for (p, r) in plan.iter_mut().zip(&roles) {
            if r.role != Role::H || p.call.width() == 0 {
                continue;
            }
            let o = usize::from(r.mirror);
            let len = p.call.prep_bytes();
            p.msg = got2[o][at[o]..at[o] + len].to_vec();
            at[o] += len;
        }
        (self.st.conv_next, self.st.conv_prev) = saved;
        Ok(plan)
    }

    /// One offline round of the conversions' preparation: `out[0]` to the
    /// successor and `out[1]` to the predecessor; `want[0]` bytes from the
    /// predecessor and `want[1]` from the successor (any may be empty; both
    /// sides know the lengths from the public calls). Returns what came
    /// from the predecessor and from the successor.
    fn prep_exchange(
        &mut self,
        out: [Vec<u8>; 2],
        want: [usize; 2],
    ) -> Result<[Vec<u8>; 2], ProtocolError> {
        let (pred, succ) = (self.pred(), self.succ());
        let [to_succ, to_pred] = out;
        let mut sends = vec![];
        if !to_succ.is_empty() {
            sends.push((succ, to_succ));
        }
        if !to_pred.is_empty() {
            sends.push((pred, to_pred));
        }
        let from: Vec<usize> = [(pred, want[0]), (succ, want[1])]
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(p, _)| *p)
            .collect();
        if sends.is_empty() && from.is_empty() {
            return Ok([Vec::new(), Vec::new()]);
        }
        let mut got = self
            .comm
            .exchange(Phase::Offline, sends, &from)?
            .into_iter();
        let mut res = [Vec::new(), Vec::new()];
        for (slot, (peer, w)) in [(pred, want[0]), (succ, want[1])].into_iter().enumerate() {
            if w == 0 {
                continue;
            }
            let g = got.next().unwrap_or_default();
            if g.len() != w {
                return Err(ProtocolError::Malformed {
                    peer,
                    what: "conversion preparation",
                    detail: format!("{} bytes, expected {w}", g.len()),
                });
            }
            res[slot] = g;
        }
        Ok(res)
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

    /// Moves this party's conversion streams past one call's draws
    /// ([`Party::conv_draws`]: the same bytes from both streams, whatever
    /// the role) without computing them.
    pub(super) fn conv_skip(&mut self, n: usize, w: u32) {
        let bytes = 8 * n.div_ceil(64) as u64 + Prg::values_bytes(n, w);
        self.st.conv_next.skip(bytes);
        self.st.conv_prev.skip(bytes);
    }

    /// What this party draws from its conversion streams for one call of n
    /// elements, w = [`crate::cost::msb_width`], in role `role` — the same at
    /// preparation and online. `b1`/`v1` come from the stream shared with
    /// the party before it in the order A → B → H → A, `b2`/`v2` from the one after it:
    /// A: (e, s) from A–H and (g, y) from A–B; B: (g, y) from A–B and (v, z)
    /// from B–H; H: (e, s) from A–H and (v, z) from B–H. Bits first, then w-bit
    /// values (none when w = 0).
    pub(super) fn conv_draws(&mut self, role: Role, n: usize, w: u32) -> Draws {
        // which stream holds which pair: A = H+1, B = H+2
        let (first, second) = match role {
            Role::A => (&mut self.st.conv_prev, &mut self.st.conv_next), // A–H, A–B
            Role::B => (&mut self.st.conv_prev, &mut self.st.conv_next), // A–B, B–H
            Role::H => (&mut self.st.conv_next, &mut self.st.conv_prev), // A–H, B–H
        };
        let words = n.div_ceil(64);
        let mut b1 = first.words(words);
        let mut v1 = draw_width(first, n, w);
        let mut b2 = second.words(words);
        let v2 = draw_width(second, n, w);
        // seeded leaks, applied by both holders of the value
        let (e, g, v) = match role {
            Role::A => (Some(&mut b1), Some(&mut b2), None),
            Role::B => (None, Some(&mut b1), Some(&mut b2)),
            Role::H => (Some(&mut b1), None, Some(&mut b2)),
        };
        if let Some(e) = e {
            if leaks::on(Leak::ConvAHelperBitFixed) {
                e.fill(0);
            }
        }
        if let Some(g) = g {
            if leaks::on(Leak::ConvPairBitFixed) {
                g.fill(0);
            }
        }
        if let Some(v) = v {
            if leaks::on(Leak::ConvHelperBitFixed) {
                v.fill(0);
            }
        }
        if role != Role::B && leaks::on(Leak::ConvPrepMaskDropped) {
            v1.iter_mut().for_each(|s| *s = 0);
        }
        Draws { b1, v1, b2, v2 }
    }
}

/// A conversion's draws from the conversion streams ([`Party::conv_draws`]):
/// bits packed 64 to a word (the stream's words, as `Prg::bits` reads them).
pub(super) struct Draws {
    pub(super) b1: Vec<u64>,
    pub(super) v1: Vec<u64>,
    pub(super) b2: Vec<u64>,
    pub(super) v2: Vec<u64>,
}

/// Bit j of packed words, as 0 or 1.
#[inline(always)]
pub(super) fn bit_of(words: &[u64], j: usize) -> u64 {
    words[j >> 6] >> (j & 63) & 1
}
