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
pub enum ConvIn<'a, R: Ring> {
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
    /// Roles of the next conversion ([`Party::roles_at`]); advances the
    /// public counter.
    pub(super) fn next_roles(&mut self) -> Roles {
        let r = self.roles_at(self.st.ctr);
        self.st.ctr += 1;
        r
    }

    /// The roles of the conversion with counter value `ctr`: H = ctr mod 3,
    /// and A = H+1, B = H+2 — or, every other three calls (`mirror`), the
    /// other way round, A = H−1, B = H−2. Six consecutive calls give every
    /// party every role in both orientations, so that A's messages (to B)
    /// and H's (to A) travel to successors and predecessors alike.
    pub(super) fn roles_at(&self, ctr: u64) -> Roles {
        let h = (ctr % 3) as usize;
        let mirror = (ctr / 3) % 2 == 1;
        let (a, b) = if mirror {
            ((h + 2) % 3, (h + 1) % 3)
        } else {
            ((h + 1) % 3, (h + 2) % 3)
        };
        let role = if self.id == a {
            Role::A
        } else if self.id == b {
            Role::B
        } else {
            Role::H
        };
        Roles {
            role,
            a,
            b,
            h,
            mirror,
        }
    }

    /// In a mirrored conversion the pairs sit the other way round: the
    /// stream this party shares with its successor plays the part of the
    /// one with its predecessor and back. Called before and after a
    /// mirrored call's draws (an involution).
    pub(super) fn mirror_streams(&mut self) {
        std::mem::swap(&mut self.st.next, &mut self.st.prev);
        std::mem::swap(&mut self.st.conv_next, &mut self.st.conv_prev);
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
        let mut out = self.convert_jobs(vec![job::<Ri, Ro>(input, m)])?;
        Ok(*out
            .remove(0)
            .downcast::<AShare<Ro>>()
            .expect("a conversion returns its output ring"))
    }

    /// Several conversions — any rings, shifts and inputs — in the same two
    /// rounds: each round's messages to one peer travel as one message, the
    /// calls' parts in order (their lengths follow from the calls). Costs:
    /// the sum of the calls' bytes, 2 rounds; as the calls one after the
    /// other in every other respect (roles, streams, the offline part).
    pub fn convert_many(&mut self, jobs: Vec<ConvJob<'_>>) -> Result<Vec<ConvOut>, ProtocolError> {
        let boxed: Vec<Box<dyn Job<'_> + '_>> = jobs
            .into_iter()
            .map(|j| match j {
                ConvJob::From32(input, 32, m) => job::<u32, u32>(input, m),
                ConvJob::From32(input, _, m) => job::<u32, u64>(input, m),
                ConvJob::From64(input, 32, m) => job::<u64, u32>(input, m),
                ConvJob::From64(input, _, m) => job::<u64, u64>(input, m),
            })
            .collect();
        let outs = self.convert_jobs(boxed)?;
        Ok(outs
            .into_iter()
            .map(|o| match o.downcast::<AShare<u32>>() {
                Ok(s) => ConvOut::R32(*s),
                Err(o) => ConvOut::R64(*o.downcast::<AShare<u64>>().expect("a ring")),
            })
            .collect())
    }

    /// The conversions `jobs` in one pair of rounds ([`Party::convert`] for
    /// one, [`Party::convert_many`] for several).
    fn convert_jobs<'a>(
        &mut self,
        jobs: Vec<Box<dyn Job<'a> + 'a>>,
    ) -> Result<Vec<Box<dyn std::any::Any>>, ProtocolError> {
        // the range guard, job by job, before any role is taken
        if self.st.guard.is_some() {
            let mask = self.st.guard_mask.take();
            let mut off = 0;
            for j in &jobs {
                let n = j.len();
                if let Some(m) = &mask {
                    let part = m.get(off..off + n).ok_or_else(|| {
                        ProtocolError::Preprocessing(format!(
                            "a range-guard mask of {} for conversions of {} elements and more",
                            m.len(),
                            off + n
                        ))
                    })?;
                    self.st.guard_mask = Some(part.to_vec());
                }
                off += n;
                j.guard(self)?;
            }
            if let Some(m) = &mask {
                if m.len() != off {
                    return Err(ProtocolError::Preprocessing(format!(
                        "a range-guard mask of {} for conversions of {off} elements",
                        m.len()
                    )));
                }
            }
        }
        // a large call in six pieces, each with the next roles: every party
        // plays A, B and H on a third, in both orientations, so the six
        // links carry equal loads and the parties equal work (the same
        // rounds, the same bytes: the pieces hold whole bytes of packed bits)
        let pieces: Vec<(usize, usize, usize)> = jobs
            .iter()
            .enumerate()
            .flat_map(|(i, j)| pieces_of(j.len()).into_iter().map(move |(o, n)| (i, o, n)))
            .collect();
        // roles and the offline parts, in order
        let ctr = self.st.ctr;
        let mut roles = Vec::with_capacity(pieces.len());
        let mut msgs = Vec::with_capacity(pieces.len());
        for &(i, _, n) in &pieces {
            let call = jobs[i].call(n);
            let r = self.next_roles();
            msgs.push(self.planned(call, r.role)?);
            roles.push(r);
        }
        let msgs: Vec<Vec<u8>> = if msgs.iter().all(Option::is_some) {
            msgs.into_iter().flatten().collect()
        } else {
            let calls: Vec<ConvCall> = pieces.iter().map(|&(i, _, n)| jobs[i].call(n)).collect();
            self.prepare_conversions(&calls, ctr)?
                .into_iter()
                .map(|p| p.msg)
                .collect()
        };
        // every draw of every piece, in order, before any message
        let mut tasks: Vec<Box<dyn Staged + 'a>> = Vec::with_capacity(pieces.len());
        for ((&(i, off, n), ids), msg) in pieces.iter().zip(roles).zip(msgs) {
            tasks.push(jobs[i].start(self, ids, msg, off, n)?);
        }
        // round 1: B's masked parts (and H's product shares) to A
        let sends = tasks.iter_mut().map(|t| t.send1()).collect();
        let want = tasks.iter().map(|t| t.expect1()).collect();
        let (bufs, cuts) = self.merged_exchange(sends, want)?;
        for (t, cut) in tasks.iter_mut().zip(&cuts) {
            let got: Vec<&[u8]> = cut.iter().map(|(p, r)| &bufs[*p][r.clone()]).collect();
            if let Some(c) = t.recv1(&got)? {
                if self.comm.observing() {
                    self.comm.observe(c);
                }
            }
        }
        // round 2: c_msb to B and H, the A–B component to B
        let sends = tasks.iter_mut().map(|t| t.send2()).collect();
        let want = tasks.iter().map(|t| t.expect2()).collect();
        let (bufs, cuts) = self.merged_exchange(sends, want)?;
        let mut parts: Vec<Vec<Box<dyn std::any::Any>>> = jobs.iter().map(|_| Vec::new()).collect();
        for ((t, cut), &(i, _, _)) in tasks.into_iter().zip(&cuts).zip(&pieces) {
            let got: Vec<&[u8]> = cut.iter().map(|(p, r)| &bufs[*p][r.clone()]).collect();
            parts[i].push(t.finish(&got)?);
        }
        Ok(jobs.iter().zip(parts).map(|(j, p)| j.join(p)).collect())
    }

    /// One round for several calls: each call's messages to one peer are
    /// concatenated in call order, and what arrives is cut by the lengths
    /// the calls expect (`want[call]`: (peer, bytes), in the order the call
    /// reads them). Returns what came from each peer and, per call, where
    /// its parts lie: (peer, byte range).
    #[allow(clippy::type_complexity)]
    fn merged_exchange(
        &mut self,
        sends: Vec<Vec<(usize, Vec<u8>)>>,
        want: Vec<Vec<(usize, usize)>>,
    ) -> Result<([Vec<u8>; 3], Vec<Vec<(usize, std::ops::Range<usize>)>>), ProtocolError> {
        let mut size = [None::<usize>; 3];
        for (p, bytes) in sends.iter().flatten() {
            *size[*p].get_or_insert(0) += bytes.len();
        }
        let mut out: [Option<Vec<u8>>; 3] = size.map(|s| s.map(Vec::with_capacity));
        for (p, bytes) in sends.into_iter().flatten() {
            let o = out[p].as_mut().expect("sized above");
            if o.is_empty() && o.capacity() == bytes.len() {
                *o = bytes;
            } else {
                o.extend_from_slice(&bytes);
            }
        }
        let mut total = [None::<usize>; 3];
        for &(p, len) in want.iter().flatten() {
            *total[p].get_or_insert(0) += len;
        }
        let from: Vec<usize> = (0..3).filter(|&p| total[p].is_some()).collect();
        let sends: Vec<(usize, Vec<u8>)> = out
            .into_iter()
            .enumerate()
            .filter_map(|(p, b)| b.map(|b| (p, b)))
            .collect();
        let mut bufs: [Vec<u8>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        if !(sends.is_empty() && from.is_empty()) {
            let got = self.comm.exchange(Phase::Online, sends, &from)?;
            for (&p, g) in from.iter().zip(got) {
                let expected = total[p].unwrap_or(0);
                if g.len() != expected {
                    return Err(ProtocolError::Malformed {
                        peer: p,
                        what: "conversion message",
                        detail: format!("{} bytes, expected {expected}", g.len()),
                    });
                }
                bufs[p] = g;
            }
        }
        let mut at = [0usize; 3];
        let cuts = want
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .map(|(p, len)| {
                        let r = at[p]..at[p] + len;
                        at[p] += len;
                        (p, r)
                    })
                    .collect()
            })
            .collect();
        Ok((bufs, cuts))
    }
}

/// One conversion of a batch ([`Party::convert_many`]): its input in
/// Z_2^32 or Z_2^64, the output ring's bits (32 or 64) and the shift m.
pub enum ConvJob<'a> {
    From32(ConvIn<'a, u32>, u32, u32),
    From64(ConvIn<'a, u64>, u32, u32),
}

/// A conversion's result, in its output ring.
pub enum ConvOut {
    R32(AShare<u32>),
    R64(AShare<u64>),
}

/// A conversion's roles: this party's, the parties playing A, B and H, and
/// the orientation ([`Party::roles_at`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Roles {
    pub(super) role: Role,
    pub(super) a: usize,
    pub(super) b: usize,
    pub(super) h: usize,
    pub(super) mirror: bool,
}

/// A conversion before its roles are taken (the rings erased, so that calls
/// of several formats run together).
trait Job<'a> {
    fn len(&self) -> usize;
    /// The call of a piece of `n` elements.
    fn call(&self, n: usize) -> ConvCall;
    fn guard(&self, p: &mut Party<'_>) -> Result<(), ProtocolError>;
    /// Draws everything the piece [off, off + n) needs (all of it, so that
    /// every stream moves in call order at both of its holders) and becomes
    /// a task.
    fn start(
        &self,
        p: &mut Party<'_>,
        roles: Roles,
        msg: Vec<u8>,
        off: usize,
        n: usize,
    ) -> Result<Box<dyn Staged + 'a>, ProtocolError>;
    /// The pieces' results, in order, as one.
    fn join(&self, parts: Vec<Box<dyn std::any::Any>>) -> Box<dyn std::any::Any>;
}

/// The pieces of a call of n elements: from 96 elements on six (all but
/// the last a whole number of bytes of packed bits), whose consecutive
/// counters give every party every role in both orientations
/// ([`Party::roles_at`]); one below.
fn pieces_of(n: usize) -> Vec<(usize, usize)> {
    if n < 96 {
        return vec![(0, n)];
    }
    let sixth = n / 6 / 8 * 8;
    (0..6)
        .map(|i| (i * sixth, if i == 5 { n - 5 * sixth } else { sixth }))
        .collect()
}

/// A conversion of `input` by `m` bits into Ro, rings erased.
fn job<'a, Ri: Ring, Ro: Ring>(input: ConvIn<'a, Ri>, m: u32) -> Box<dyn Job<'a> + 'a> {
    Box::new(TypedJob::<Ri, Ro> {
        input,
        m,
        out: std::marker::PhantomData,
    })
}

struct TypedJob<'a, Ri: Ring, Ro: Ring> {
    input: ConvIn<'a, Ri>,
    m: u32,
    out: std::marker::PhantomData<Ro>,
}

impl<'a, Ri: Ring, Ro: Ring> Job<'a> for TypedJob<'a, Ri, Ro> {
    fn len(&self) -> usize {
        self.input.len()
    }
    fn call(&self, n: usize) -> ConvCall {
        ConvCall {
            kin: Ri::BITS,
            kout: Ro::BITS,
            m: self.m,
            n,
        }
    }
    fn guard(&self, p: &mut Party<'_>) -> Result<(), ProtocolError> {
        p.guard_input(&self.input)
    }
    fn join(&self, parts: Vec<Box<dyn std::any::Any>>) -> Box<dyn std::any::Any> {
        let mut parts = parts.into_iter().map(|p| {
            *p.downcast::<AShare<Ro>>()
                .expect("a piece in the output ring")
        });
        let mut out = parts.next().unwrap_or_else(|| AShare::zeros(0));
        for p in parts {
            out.a.extend_from_slice(&p.a);
            out.b.extend_from_slice(&p.b);
        }
        Box::new(out)
    }
    fn start(
        &self,
        p: &mut Party<'_>,
        roles: Roles,
        msg: Vec<u8>,
        off: usize,
        n: usize,
    ) -> Result<Box<dyn Staged + 'a>, ProtocolError> {
        let (role, a_id, b_id, h_id) = (roles.role, roles.a, roles.b, roles.h);
        let (kin, m) = (Ri::BITS, self.m);
        assert!(m + 2 <= kin, "conversion shift {m} exceeds k_in − 2");
        let w = self.call(n).width();
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
        if roles.mirror {
            p.mirror_streams();
        }
        let d = p.conv_draws(role, n, w);
        // r' from the B–H stream (B: next, H: prev); w_AH from the A–H one
        // (A: prev, H: next) — in the call's orientation
        let (rp, wa): (Vec<Ri>, Vec<Ro>) = match role {
            Role::H => {
                let rp = p.st.prev.ring(n);
                (rp, p.st.next.ring(n))
            }
            Role::A => (Vec::new(), p.st.prev.ring(n)),
            Role::B => (p.st.next.ring(n), Vec::new()),
        };
        if roles.mirror {
            p.mirror_streams();
        }
        let mut rp = rp;
        if leaks::on(Leak::ConvMaskDropped) {
            rp.fill(Ri::ZERO);
        }
        Ok(Box::new(Task::<'a, Ri, Ro> {
            input: self.input,
            mirror: roles.mirror,
            off,
            m,
            n,
            w,
            role,
            a_id,
            b_id,
            h_id,
            prep,
            d,
            rp,
            wa,
            out: None,
            bits_len: if w > 0 { n.div_ceil(8) } else { 0 },
        }))
    }
}

/// A conversion's rounds, driven by [`Party::convert_jobs`].
trait Staged {
    fn send1(&mut self) -> Vec<(usize, Vec<u8>)>;
    fn expect1(&self) -> Vec<(usize, usize)>;
    /// Takes round 1's messages; A returns the opened c (for a recorded view).
    fn recv1(&mut self, got: &[&[u8]]) -> Result<Option<Vec<u8>>, ProtocolError>;
    fn send2(&mut self) -> Vec<(usize, Vec<u8>)>;
    fn expect2(&self) -> Vec<(usize, usize)>;
    fn finish(self: Box<Self>, got: &[&[u8]]) -> Result<Box<dyn std::any::Any>, ProtocolError>;
}

struct Task<'a, Ri: Ring, Ro: Ring> {
    input: ConvIn<'a, Ri>,
    /// the orientation ([`Party::roles_at`])
    mirror: bool,
    /// the piece [off, off + n) of the input
    off: usize,
    m: u32,
    n: usize,
    w: u32,
    role: Role,
    a_id: usize,
    b_id: usize,
    h_id: usize,
    /// the offline message (w-bit values)
    prep: Vec<u64>,
    d: Draws,
    /// r' (B, H)
    rp: Vec<Ri>,
    /// w_AH (A, H)
    wa: Vec<Ro>,
    /// A's result and round-2 message, once c is open
    out: Option<(AShare<Ro>, Vec<u8>)>,
    bits_len: usize,
}

impl<Ri: Ring, Ro: Ring> Task<'_, Ri, Ro> {
    fn fused(&self) -> bool {
        matches!(self.input, ConvIn::Additive(_))
    }
    /// K = 2^(k_in−1−m) in Z_2^k_out (0 when the shift leaves the ring)
    fn scale(&self) -> Ro {
        Ro::ONE.shl(Ri::BITS - 1 - self.m)
    }
    /// (1 − 2c_msb)·R·K, the share of b·K past its public part
    fn signed(&self, c_msb: bool, r: u64) -> Ro {
        let r = Ro::from_u64(r);
        if c_msb { r.neg() } else { r }.mul(self.scale())
    }
    fn low() -> Ri {
        Ri::ONE.shl(Ri::BITS - 1).sub(Ri::ONE)
    }
    fn out_len(&self) -> usize {
        self.bits_len + self.n * (Ro::BITS as usize / 8)
    }
}

impl<Ri: Ring, Ro: Ring> Staged for Task<'_, Ri, Ro> {
    fn send1(&mut self) -> Vec<(usize, Vec<u8>)> {
        let n = self.n;
        match self.role {
            Role::A => Vec::new(),
            Role::H => match self.input {
                // H's share of the product joins A's opening of c
                ConvIn::Additive(z) => vec![(self.a_id, to_bytes(&z[self.off..self.off + n]))],
                ConvIn::Replicated(_) => Vec::new(),
            },
            Role::B => {
                let (top, low) = (Ri::ONE.shl(Ri::BITS - 1), Self::low());
                let ib = Ri::BITS as usize / 8;
                let mut out = vec![0u8; n * ib];
                for (j, o) in out.chunks_exact_mut(ib).enumerate() {
                    // the component B shares with H: B's second one, or
                    // (mirrored: H is B's predecessor) its first
                    let mine = match self.input {
                        ConvIn::Replicated(x) if self.mirror => x.a[self.off + j],
                        ConvIn::Replicated(x) => x.b[self.off + j],
                        ConvIn::Additive(z) => z[self.off + j],
                    };
                    let masked = mine.add(self.rp[j].and(low));
                    let masked = if bit_of(&self.d.b2, j) == 1 {
                        masked.add(top)
                    } else {
                        masked
                    };
                    masked.put_le(o);
                }
                vec![(self.a_id, out)]
            }
        }
    }

    fn expect1(&self) -> Vec<(usize, usize)> {
        let len = self.n * (Ri::BITS as usize / 8);
        match self.role {
            Role::A if self.fused() => vec![(self.b_id, len), (self.h_id, len)],
            Role::A => vec![(self.b_id, len)],
            Role::B | Role::H => Vec::new(),
        }
    }

    fn recv1(&mut self, got: &[&[u8]]) -> Result<Option<Vec<u8>>, ProtocolError> {
        if self.role != Role::A {
            return Ok(None);
        }
        let (n, m, w, kin) = (self.n, self.m, self.w, Ri::BITS);
        let (top, low) = (Ri::ONE.shl(kin - 1), Self::low());
        // u = e ⊕ g: A's part of the mask's top bit (packed)
        let u: Vec<u64> = self
            .d
            .b1
            .iter()
            .zip(&self.d.b2)
            .map(|(e, g)| e ^ g)
            .collect();
        // c = x + 2^(k_in−2) + r: A's view of x, B's masked part, H's share
        let r = self.off..self.off + n;
        let mut c: Vec<Ri> = match self.input {
            ConvIn::Replicated(x) => kernels::add(&x.a[r.clone()], &x.b[r]),
            ConvIn::Additive(z) => z[r].to_vec(),
        };
        if !add_from_bytes(&mut c, got[0]) {
            return Err(malformed::<Ri>(self.b_id, "conversion opening", got[0], n));
        }
        if self.fused() && !add_from_bytes(&mut c, got[1]) {
            return Err(malformed::<Ri>(
                self.h_id,
                "conversion helper share",
                got[1],
                n,
            ));
        }
        let bias = Ri::ONE.shl(kin - 2);
        for (j, cj) in c.iter_mut().enumerate() {
            *cj = cj.add(bias);
            if bit_of(&u, j) == 1 {
                *cj = cj.add(top);
            }
        }
        let offset = Ro::ONE.shl(kin - 2 - m);
        let scale = self.scale();
        let (s, y) = (&self.d.v1, &self.d.v2);
        let mut xah = vec![Ro::ZERO; n];
        let mut msg = vec![0u8; self.out_len()];
        let mut xab = vec![Ro::ZERO; n];
        for j in 0..n {
            let c_msb = w > 0 && c[j].bit(kin - 1);
            if c_msb {
                msg[j / 8] |= 1 << (j % 8);
            }
            let (mut rah, mut rab) = (0u64, 0u64);
            if w > 0 {
                // R_AH = s − 2·(s·v + z) (H's message), R_AB = (u − s) + 2y
                rah = s[j].wrapping_sub(self.prep[j].wrapping_mul(2));
                rab = bit_of(&u, j)
                    .wrapping_sub(s[j])
                    .wrapping_add(y[j].wrapping_mul(2));
            }
            let public = Ro::from_u64(c[j].and(low).shr(m).to_u64()).sub(offset);
            let public = if c_msb { public.add(scale) } else { public };
            xab[j] = public.add(self.signed(c_msb, rab)).add(self.wa[j]);
            xah[j] = self.signed(c_msb, rah).sub(self.wa[j]);
        }
        put_bytes(&xab, &mut msg[self.bits_len..]);
        self.out = Some((AShare { a: xah, b: xab }, msg));
        // the opened c = x + 2^(k_in−2) + r
        Ok(Some(to_bytes(&c)))
    }

    fn send2(&mut self) -> Vec<(usize, Vec<u8>)> {
        match (&mut self.out, self.role) {
            (Some((_, msg)), Role::A) => {
                let msg = std::mem::take(msg);
                let mut sends = Vec::new();
                if self.w > 0 {
                    sends.push((self.h_id, msg[..self.bits_len].to_vec()));
                }
                sends.insert(0, (self.b_id, msg));
                sends
            }
            _ => Vec::new(),
        }
    }

    fn expect2(&self) -> Vec<(usize, usize)> {
        match self.role {
            Role::A => Vec::new(),
            Role::B => vec![(self.a_id, self.out_len())],
            Role::H if self.w > 0 => vec![(self.a_id, self.bits_len)],
            Role::H => Vec::new(),
        }
    }

    fn finish(self: Box<Self>, got: &[&[u8]]) -> Result<Box<dyn std::any::Any>, ProtocolError> {
        let (n, m, w) = (self.n, self.m, self.w);
        let low = Self::low();
        let out: AShare<Ro> = match self.role {
            Role::A => self.out.expect("A opened c in round 1").0,
            Role::H => {
                let bits = if w > 0 {
                    parse_bits(got[0], n, self.a_id, "conversion c_msb")?
                } else {
                    vec![false; n]
                };
                // R_AH = s − 2(s·v + z), R_BH = v + 2z − 2·prep
                let (s, z) = (&self.d.v1, &self.d.v2);
                let mut xah = self.wa.clone();
                let mut xbh = vec![Ro::ZERO; n];
                for j in 0..n {
                    let r_mid = Ro::from_u64(self.rp[j].and(low).shr(m).to_u64());
                    let (mut rah, mut rbh) = (0u64, 0u64);
                    if w > 0 {
                        let v = bit_of(&self.d.b2, j);
                        let sv = (s[j] * v).wrapping_add(z[j]);
                        rah = s[j].wrapping_sub(sv.wrapping_mul(2));
                        rbh = v
                            .wrapping_add(z[j].wrapping_mul(2))
                            .wrapping_sub(self.prep[j].wrapping_mul(2));
                    }
                    xah[j] = self.signed(bits[j], rah).sub(xah[j]);
                    xbh[j] = self.signed(bits[j], rbh).sub(r_mid);
                }
                AShare { a: xbh, b: xah }
            }
            Role::B => {
                let body = got[0];
                if body.len() != self.out_len() {
                    return Err(ProtocolError::Malformed {
                        peer: self.a_id,
                        what: "conversion reshare",
                        detail: format!(
                            "{} bytes, expected {} packed bits and {n} elements of {} bits",
                            body.len(),
                            self.bits_len,
                            Ro::BITS
                        ),
                    });
                }
                let (bits, body) = body.split_at(self.bits_len);
                let xab: Vec<Ro> = from_bytes(body, n).expect("length checked");
                let (y, z) = (&self.d.v1, &self.d.v2);
                let mut xbh = vec![Ro::ZERO; n];
                for j in 0..n {
                    let c_msb = w > 0 && bits[j / 8] >> (j % 8) & 1 == 1;
                    let mut rbh = 0u64;
                    if w > 0 {
                        // R_BH = v + 2z − 2·((u − s)·v + y)
                        let v = bit_of(&self.d.b2, j);
                        let t = (self.prep[j] * v).wrapping_add(y[j]);
                        rbh = v
                            .wrapping_add(z[j].wrapping_mul(2))
                            .wrapping_sub(t.wrapping_mul(2));
                    }
                    let r_mid = Ro::from_u64(self.rp[j].and(low).shr(m).to_u64());
                    xbh[j] = self.signed(c_msb, rbh).sub(r_mid);
                }
                AShare { a: xab, b: xbh }
            }
        };
        // a party's first component is the one it shares with its
        // predecessor: mirrored, every role's neighbours trade places
        let out = if self.mirror {
            AShare { a: out.b, b: out.a }
        } else {
            out
        };
        Ok(Box::new(out))
    }
}

impl<'c> Party<'c> {
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
