//! One party's side of every MPC primitive. All three parties run the same
//! code (SPMD); asymmetric protocols take their roles from a public counter
//! that advances in lock-step, so the work rotates.
//!
//! Costs are stated per element, as bits summed over all parties unless said
//! otherwise; "rounds" are sequential communication steps. The counting
//! transport of `ditto-net` measures exactly these figures (tests assert it).

use crate::comm::{Comm, Phase, ProtocolError};
use crate::kernels;
use crate::prg::Prg;
use crate::ring::{
    add_from_bytes, from_bytes, pack_bits, pack_width, put_bytes, to_bytes, unpack_bits,
    unpack_width, Ring,
};
use crate::share::{AShare, BShare, BitShare};

/// Pi's protocol state: its link, its PRG keys and the role counter.
pub struct Party<'c> {
    pub id: usize,
    comm: &'c mut dyn Comm,
    st: PartyState,
    /// Calls seen, when recording (`record_conversions`).
    trace: Option<Vec<PreCall>>,
}

/// A call the offline phase prepares: a conversion, or the random bits of
/// a B2A (k: the ring, n: the number of bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreCall {
    Conv(ConvCall),
    B2a { k: u32, n: usize },
}

/// Prepared random bits for one B2A: the boolean sharing and the
/// arithmetic one (in the call's ring, widened to 64 bits here).
struct PreparedBits {
    k: u32,
    rho: BitShare,
    r: AShare<u64>,
}

/// A conversion call as the offline phase needs to know it: rings, shift
/// and length. The sequence of a program's calls does not depend on the
/// data, so one run's trace prepares the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvCall {
    pub kin: u32,
    pub kout: u32,
    pub m: u32,
    pub n: usize,
}

impl ConvCall {
    /// Bytes of H's offline message to B for this call.
    pub fn helper_bytes(&self) -> usize {
        (self.n * msb_width(self.kin, self.kout, self.m) as usize).div_ceil(8)
    }
}

/// A party's protocol state without its link: keys, streams, role counter
/// and prepared conversions. An offline phase run ahead of a query (while
/// the parties wait for one) is kept in this form and resumed on the same
/// link ([`Party::into_state`], [`Party::resume`]).
pub struct PartyState {
    id: usize,
    /// Stream of key k_{i−1}, shared with P_{i−1}.
    prev: Prg,
    /// Stream of key k_i, shared with P_{i+1}.
    next: Prg,
    /// Conversion streams, apart from the others so that the helper's part
    /// can be computed ahead (offline) without upsetting their order:
    /// `help_next`/`help_prev` when this party is H (with A = next, B =
    /// prev); `helped_prev` when it is A (H = prev), `helped_next` when it is
    /// B (H = next).
    help_next: Prg,
    help_prev: Prg,
    helped_prev: Prg,
    helped_next: Prg,
    /// The random bits of B2A and their arithmetic form, likewise apart.
    b2a_next: Prg,
    b2a_prev: Prg,
    /// This party's private stream (B's part r' of a conversion's mask).
    own: Prg,
    /// Public counter choosing the roles of conversions (the offline phase
    /// derives each prepared call's roles from it).
    ctr: u64,
    /// Public counter choosing the roles of the two-operand adder set-up.
    bits_ctr: u64,
    /// Conversions prepared by `preprocess`, in call order.
    plan: Option<std::collections::VecDeque<Prepared>>,
    /// B2A random bits prepared by `preprocess`, in call order.
    bits_plan: Option<std::collections::VecDeque<PreparedBits>>,
}

/// One prepared conversion: this party's role and, for B, H's message.
struct Prepared {
    call: ConvCall,
    role: Role,
    msg: Vec<u8>,
}

/// The error for a message of the wrong length (`n` elements of R expected).
fn malformed<R: Ring>(peer: usize, what: &'static str, bytes: &[u8], n: usize) -> ProtocolError {
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

fn parse<R: Ring>(
    bytes: &[u8],
    n: usize,
    peer: usize,
    what: &'static str,
) -> Result<Vec<R>, ProtocolError> {
    from_bytes(bytes, n).ok_or_else(|| malformed::<R>(peer, what, bytes, n))
}

/// 0/1 bits as ring elements.
fn bits_as_ring<R: Ring>(v: &[bool]) -> Vec<R> {
    v.iter()
        .map(|&x| if x { R::ONE } else { R::ZERO })
        .collect()
}

/// The bits of r_msb's shares that matter in a conversion (k_in, k_out, m):
/// r_msb enters the result as r_msb·2^(k_in−1−m) in Z_2^k_out, so only its
/// shares mod 2^w count, w = k_out − (k_in − 1 − m); none when that is ≤ 0
/// (a downcast by enough bits).
pub fn msb_width(kin: u32, kout: u32, m: u32) -> u32 {
    (kout + m + 1).saturating_sub(kin).min(kout)
}

/// Bits (all parties, per element) of one conversion (k_in, k_out, m):
/// (online, offline). Online: B's masked part to A (k_in; H's product share
/// too when `fused`), c_msb and a component to B (1 + k_out), a component
/// to H (k_out). Offline: B's share of r_msb (w bits). Bytes are these bits
/// packed per call, so a call of n elements moves ⌈n/8⌉ bytes of c_msb and
/// ⌈n·w/8⌉ of r_msb shares.
pub fn conversion_bits(kin: u32, kout: u32, m: u32, fused: bool) -> (u64, u64) {
    let open = kin as u64 * if fused { 2 } else { 1 };
    (open + 1 + 2 * kout as u64, msb_width(kin, kout, m) as u64)
}

/// `n` values of `w` bits from a stream (none when w = 0).
fn draw_width(prg: &mut Prg, n: usize, w: u32) -> Vec<u64> {
    if w == 0 {
        return Vec::new();
    }
    prg.values(n, w)
}

/// This party's additive share of x·y (replicated x and y), masked by its
/// component α of a zero-sharing: x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i.
fn masked_product<R: Ring>(x: &AShare<R>, y: &AShare<R>, alpha: &[R]) -> Vec<R> {
    (0..x.len())
        .map(|j| {
            x.a[j]
                .mul(y.a[j])
                .add(x.a[j].mul(y.b[j]))
                .add(x.b[j].mul(y.a[j]))
                .add(alpha[j])
        })
        .collect()
}

/// A zero-sharing component F(next) − F(prev) from a pair of streams.
fn zero_from<R: Ring>(next: &mut Prg, prev: &mut Prg, n: usize) -> Vec<R> {
    let nx: Vec<R> = next.ring(n);
    let pv: Vec<R> = prev.ring(n);
    kernels::sub(&nx, &pv)
}

fn parse_bits(
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
struct Col {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl Col {
    fn xor(&self, o: &Col) -> Col {
        Col {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x ^ y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x ^ y).collect(),
        }
    }
    fn to_bits(&self, n: usize) -> BitShare {
        let bit = |v: &[u64], j: usize| v[j / 64] >> (j % 64) & 1 == 1;
        BitShare {
            a: (0..n).map(|j| bit(&self.a, j)).collect(),
            b: (0..n).map(|j| bit(&self.b, j)).collect(),
        }
    }
}

/// Bit columns 0..bits of boolean-shared words.
struct Cols;

impl Cols {
    fn of<R: Ring>(w: &BShare<R>, bits: u32) -> Vec<Col> {
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
fn transpose64(a: &mut [u64; 64]) {
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

/// The input of a conversion: this party's replicated share, or its
/// 3-out-of-3 additive share of a product not yet reshared.
#[derive(Clone, Copy)]
enum ConvIn<'a, R: Ring> {
    Replicated(&'a AShare<R>),
    Additive(&'a [R]),
}

impl<R: Ring> ConvIn<'_, R> {
    fn len(&self) -> usize {
        match self {
            ConvIn::Replicated(x) => x.len(),
            ConvIn::Additive(z) => z.len(),
        }
    }
}

/// Roles of a conversion: A holds two shares, B one, H helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    A,
    B,
    H,
}

impl<'c> Party<'c> {
    /// Key setup: Pi draws k_i from `seed` and sends it to P_{i+1} (one offline
    /// round, 32 bytes per party). In deployment `seed` comes from the OS.
    pub fn setup(comm: &'c mut dyn Comm, seed: [u8; 32]) -> Result<Party<'c>, ProtocolError> {
        let id = comm.id();
        let mut own = Prg::new(seed);
        let k_next = own.key();
        let got = comm.exchange(
            Phase::Offline,
            vec![((id + 1) % 3, k_next.to_vec())],
            &[(id + 2) % 3],
        )?;
        let k_prev: [u8; 32] =
            got[0]
                .as_slice()
                .try_into()
                .map_err(|_| ProtocolError::Malformed {
                    peer: (id + 2) % 3,
                    what: "key setup",
                    detail: format!("{} bytes, expected 32", got[0].len()),
                })?;
        // Sub-streams of each pair key, drawn in the same order by both
        // holders: P_i's (help_next, helped_next) are P_{i+1}'s
        // (helped_prev, help_prev).
        let mut kn = Prg::new(k_next);
        let mut kp = Prg::new(k_prev);
        let (next, help_next, helped_next, b2a_next) = (kn.key(), kn.key(), kn.key(), kn.key());
        let (prev, helped_prev, help_prev, b2a_prev) = (kp.key(), kp.key(), kp.key(), kp.key());
        Ok(Party {
            id,
            comm,
            st: PartyState {
                id,
                prev: Prg::new(prev),
                next: Prg::new(next),
                help_next: Prg::new(help_next),
                help_prev: Prg::new(help_prev),
                helped_prev: Prg::new(helped_prev),
                helped_next: Prg::new(helped_next),
                b2a_next: Prg::new(b2a_next),
                b2a_prev: Prg::new(b2a_prev),
                own: Prg::new(own.key()),
                ctr: 0,
                bits_ctr: 0,
                plan: None,
                bits_plan: None,
            },
            trace: None,
        })
    }

    /// Detaches the state from the link (a recording in progress is dropped).
    pub fn into_state(self) -> PartyState {
        self.st
    }

    /// Continues from a detached state on a link of the same party (the
    /// other two must resume theirs, from the same point).
    pub fn resume(comm: &'c mut dyn Comm, st: PartyState) -> Result<Party<'c>, ProtocolError> {
        if comm.id() != st.id {
            return Err(ProtocolError::Preprocessing(format!(
                "the state of P{} resumed on the link of P{}",
                st.id,
                comm.id()
            )));
        }
        Ok(Party {
            id: st.id,
            comm,
            st,
            trace: None,
        })
    }

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
    /// element as inline ([`msb_width`]). B2A: the random bits of all calls
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
    fn prepare_bits(&mut self, calls: &[(u32, usize)]) -> Result<(), ProtocolError> {
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
    fn random_bits<R: Ring>(&mut self, n: usize) -> Result<(BitShare, AShare<R>), ProtocolError> {
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
                let mu: Vec<R> = self.st.b2a_prev.ring(n); // P2–P0
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
                let mu: Vec<R> = self.st.b2a_next.ring(n); // P2–P0
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
    fn bits_for<R: Ring>(&mut self, n: usize) -> Result<(BitShare, AShare<R>), ProtocolError> {
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
    fn helper_message<Ri: Ring, Ro: Ring>(&mut self, n: usize, m: u32) -> Vec<u8> {
        let w = msb_width(Ri::BITS, Ro::BITS, m);
        let e = self.st.help_next.bits(n);
        let rho_a = draw_width(&mut self.st.help_next, n, w);
        let v = self.st.help_prev.bits(n);
        if w == 0 {
            return Vec::new();
        }
        let rho_b: Vec<u64> = (0..n)
            .map(|j| ((e[j] ^ v[j]) as u64).wrapping_sub(rho_a[j]))
            .collect();
        pack_width(&rho_b, w)
    }

    pub fn comm(&mut self) -> &mut dyn Comm {
        self.comm
    }

    fn succ(&self) -> usize {
        (self.id + 1) % 3
    }

    fn pred(&self) -> usize {
        (self.id + 2) % 3
    }

    // ----- free randomness -----

    /// A zero-sharing α_i = F(k_i) − F(k_{i−1}); Σα = 0. No communication.
    pub fn zero_share<R: Ring>(&mut self, n: usize) -> Vec<R> {
        zero_from(&mut self.st.next, &mut self.st.prev, n)
    }

    /// A boolean zero-sharing of words.
    fn zero_share_bool<R: Ring>(&mut self, n: usize) -> Vec<R> {
        let nx: Vec<R> = self.st.next.ring(n);
        let pv: Vec<R> = self.st.prev.ring(n);
        kernels::xor(&nx, &pv)
    }

    fn zero_share_bits(&mut self, n: usize) -> Vec<bool> {
        let nx = self.st.next.bits(n);
        let pv = self.st.prev.bits(n);
        nx.iter().zip(&pv).map(|(a, b)| a ^ b).collect()
    }

    /// A random shared value r with component r_i = F(k_{i−1}): Pi holds
    /// (F(k_{i−1}), F(k_i)). No communication; nobody knows r.
    pub fn rand_share<R: Ring>(&mut self, n: usize) -> AShare<R> {
        let a = self.st.prev.ring(n);
        let b = self.st.next.ring(n);
        AShare { a, b }
    }

    // ----- inputs and outputs -----

    /// Sharing of a value known to party `owner` (`x` is `Some` there).
    /// Components: x_{o−1} = 0, x_o = F(k_{o−1}), x_{o+1} = x − x_o, which the
    /// owner sends to P_{o+1}. 1 round, k bits (one element to one neighbour).
    pub fn input<R: Ring>(
        &mut self,
        owner: usize,
        x: Option<&[R]>,
        n: usize,
    ) -> Result<AShare<R>, ProtocolError> {
        let o = owner % 3;
        if self.id == o {
            let x = x.expect("the owner supplies its input");
            assert_eq!(x.len(), n, "input length");
            let xo: Vec<R> = self.st.prev.ring(n);
            let rest = kernels::sub(x, &xo);
            self.comm
                .exchange(Phase::Online, vec![(self.succ(), to_bytes(&rest))], &[])?;
            Ok(AShare { a: xo, b: rest })
        } else if self.id == (o + 1) % 3 {
            let got = self.comm.exchange(Phase::Online, vec![], &[o])?;
            Ok(AShare {
                a: parse(&got[0], n, o, "input")?,
                b: vec![R::ZERO; n],
            })
        } else {
            let xo: Vec<R> = self.st.next.ring(n);
            Ok(AShare {
                a: vec![R::ZERO; n],
                b: xo,
            })
        }
    }

    /// Reveal to all: P_{i+1} sends x_{i+2} to Pi. 1 round, 3k bits.
    pub fn reveal<R: Ring>(&mut self, x: &AShare<R>) -> Result<Vec<R>, ProtocolError> {
        let n = x.len();
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), to_bytes(&x.b))],
            &[self.succ()],
        )?;
        let third: Vec<R> = parse(&got[0], n, self.succ(), "reveal")?;
        Ok((0..n).map(|j| x.a[j].add(x.b[j]).add(third[j])).collect())
    }

    /// Reveal to party `to` only: P_{to+1} sends x_{to+2}. 1 round, k bits.
    pub fn reveal_to<R: Ring>(
        &mut self,
        x: &AShare<R>,
        to: usize,
    ) -> Result<Option<Vec<R>>, ProtocolError> {
        let to = to % 3;
        let n = x.len();
        if self.id == to {
            let got = self.comm.exchange(Phase::Online, vec![], &[self.succ()])?;
            let third: Vec<R> = parse(&got[0], n, self.succ(), "reveal")?;
            Ok(Some(
                (0..n).map(|j| x.a[j].add(x.b[j]).add(third[j])).collect(),
            ))
        } else if self.id == (to + 1) % 3 {
            self.comm
                .exchange(Phase::Online, vec![(to, to_bytes(&x.b))], &[])?;
            Ok(None)
        } else {
            Ok(None)
        }
    }

    /// Turns a 3-out-of-3 additive sharing (z_i at Pi, already masked by a
    /// zero-sharing) into RSS: Pi sends z_i to P_{i−1}. 1 round, 3k bits.
    fn reshare<R: Ring>(
        &mut self,
        z: Vec<R>,
        phase: Phase,
        what: &'static str,
    ) -> Result<AShare<R>, ProtocolError> {
        let n = z.len();
        let got = self
            .comm
            .exchange(phase, vec![(self.pred(), to_bytes(&z))], &[self.succ()])?;
        let b = parse(&got[0], n, self.succ(), what)?;
        Ok(AShare { a: z, b })
    }

    /// Element-wise product (Araki et al. CCS'16):
    /// z_i = x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i, then reshare.
    /// 1 round, 3k bits per element. No truncation: fraction bits add up.
    pub fn mul<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
    ) -> Result<AShare<R>, ProtocolError> {
        let z = self.mul_local(x, y);
        self.reshare(z, Phase::Online, "mul")
    }

    /// Matrix product, optionally batched: x is batch×m×k, y batch×k×n (or
    /// k×n when `y_shared`). Z_i = X_i·(Y_i + Y_{i+1}) + X_{i+1}·Y_i + α_i:
    /// two local products per party; 1 round, 3k bits per *output* element.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        y_shared: bool,
    ) -> Result<AShare<R>, ProtocolError> {
        let z = self.matmul_local(x, y, batch, m, k, n, y_shared);
        self.reshare(z, Phase::Online, "matmul")
    }

    /// Several independent matrix products in one round: the local products
    /// of each (x, y, batch, m, k, n, y_shared), masked, then one reshare of
    /// all of them. Same bits as separate calls, 1 round in total.
    #[allow(clippy::type_complexity)]
    pub fn matmul_many<R: Ring>(
        &mut self,
        items: &[(&AShare<R>, &AShare<R>, usize, usize, usize, usize, bool)],
    ) -> Result<Vec<AShare<R>>, ProtocolError> {
        let mut z = Vec::new();
        let mut lens = Vec::new();
        for &(x, y, batch, m, k, n, shared) in items {
            let zi = self.matmul_local(x, y, batch, m, k, n, shared);
            lens.push(zi.len());
            z.extend(zi);
        }
        let all = self.reshare(z, Phase::Online, "matmul")?;
        let mut out = Vec::with_capacity(lens.len());
        let mut off = 0;
        for l in lens {
            out.push(AShare {
                a: all.a[off..off + l].to_vec(),
                b: all.b[off..off + l].to_vec(),
            });
            off += l;
        }
        Ok(out)
    }

    // ----- the conversion primitive -----

    /// Roles of the next asymmetric protocol (H = ctr mod 3, A = H+1, B = H+2);
    /// advances the public counter.
    fn next_roles(&mut self) -> (Role, usize, usize, usize) {
        let h = (self.st.ctr % 3) as usize;
        let role = self.role_at(self.st.ctr);
        self.st.ctr += 1;
        (role, (h + 1) % 3, (h + 2) % 3, h)
    }

    /// This party's role in the conversion with counter value `ctr`.
    fn role_at(&self, ctr: u64) -> Role {
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
    fn planned(&mut self, call: ConvCall, role: Role) -> Result<Option<Vec<u8>>, ProtocolError> {
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
    /// 2^w ([`msb_width`]): A's from the A–H stream, B's sent by H offline
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

    /// The local half of [`Party::mul`]: this party's masked additive share
    /// z_i of x·y. No communication.
    pub fn mul_local<R: Ring>(&mut self, x: &AShare<R>, y: &AShare<R>) -> Vec<R> {
        let alpha = self.zero_share::<R>(x.len());
        masked_product(x, y, &alpha)
    }

    /// The local half of [`Party::matmul`]: this party's masked additive
    /// share of X·Y. No communication.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_local<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        y_shared: bool,
    ) -> Vec<R> {
        let ysum = kernels::add(&y.a, &y.b);
        let mut z = kernels::matmul_batched(&x.a, &ysum, batch, m, k, n, y_shared);
        let z2 = kernels::matmul_batched(&x.b, &y.a, batch, m, k, n, y_shared);
        kernels::add_assign(&mut z, &z2);
        let alpha = self.zero_share::<R>(z.len());
        kernels::add_assign(&mut z, &alpha);
        z
    }

    fn convert_core<Ri: Ring, Ro: Ring>(
        &mut self,
        input: ConvIn<'_, Ri>,
        m: u32,
    ) -> Result<AShare<Ro>, ProtocolError> {
        let kin = Ri::BITS;
        assert!(m + 2 <= kin, "conversion shift {m} exceeds k_in − 2");
        let n = input.len();
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
                let e = self.st.helped_prev.bits(n);
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
                let v = self.st.helped_next.bits(n);
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

    /// Probabilistic truncation by m bits in the same ring (a conversion).
    pub fn trunc<R: Ring>(&mut self, x: &AShare<R>, m: u32) -> Result<AShare<R>, ProtocolError> {
        self.convert::<R, R>(x, m)
    }

    // ----- boolean circuits -----

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
    fn and_many<R: Ring>(
        &mut self,
        pairs: &[(&BShare<R>, &BShare<R>)],
    ) -> Result<Vec<BShare<R>>, ProtocolError> {
        let mut z = Vec::new();
        let mut lens = Vec::new();
        for (x, y) in pairs {
            let n = x.len();
            let alpha = self.zero_share_bool::<R>(n);
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
    fn add_setup<R: Ring>(
        &mut self,
        x: &AShare<R>,
        h: usize,
    ) -> Result<(BShare<R>, BShare<R>), ProtocolError> {
        let n = x.len();
        let (a_id, b_id) = ((h + 1) % 3, (h + 2) % 3);
        if self.id == a_id {
            let a: Vec<R> = kernels::add(&x.a, &x.b);
            let t: Vec<R> = self.st.prev.ring(n); // A–H
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
            let t: Vec<R> = self.st.next.ring(n); // A–H
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
    fn next_adder_helper(&mut self) -> usize {
        let h = (self.st.bits_ctr % 3) as usize;
        self.st.bits_ctr += 1;
        h
    }

    /// Levels of the parallel-prefix adder: ⌈log2(k − 1)⌉.
    pub fn prefix_levels(bits: u32) -> u32 {
        32 - (bits - 2).leading_zeros()
    }

    /// Online bits per element of [`Party::bit_decompose`] in Z_2^k: 6kL.
    pub fn decompose_bits(k: u32) -> u64 {
        6 * k as u64 * Self::prefix_levels(k) as u64
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
        let levels = Self::prefix_levels(R::BITS);
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
    /// is needed, so after the two-operand set-up ([`Party::add_setup`]: 3k
    /// bits, 2 rounds) the carry comes from a tree over single bits instead
    /// of a full prefix over words: per level, G = G_hi ⊕ P_hi·G_lo and
    /// P = P_hi·P_lo for each pair of groups, all pairs in one packed AND.
    /// Rounds: 2 + ⌈log2(k−1)⌉ (7 for k = 32, 8 for k = 64), as the full
    /// decomposition. Bits per element: 3k + 3·2·Σ pairs =
    /// [`Party::ltz_bits`] (276 for k = 32, 564 for k = 64, against
    /// 6kL = 960 and 2304 for the decomposition).
    pub fn ltz<R: Ring>(&mut self, x: &AShare<R>) -> Result<BitShare, ProtocolError> {
        let h = self.next_adder_helper();
        self.ltz_with(x, h)
    }

    /// [`Party::ltz`] with the adder set-up's helper given.
    fn ltz_with<R: Ring>(&mut self, x: &AShare<R>, h: usize) -> Result<BitShare, ProtocolError> {
        let k = R::BITS;
        let n = x.len();
        let (p, g) = self.add_setup(x, h)?;
        // groups over bits 0..k−2, lowest first, as bit columns packed in u64s
        let mut gs = Cols::of(&g, k - 1);
        let mut ps = Cols::of(&p, k - 1);
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
        let top = p.bit(k - 1);
        Ok(match gs.pop() {
            Some(carry) => top.xor(&carry.to_bits(n)),
            None => top,
        })
    }

    /// Several ANDs of packed bit columns in one round; each column travels
    /// as ⌈n/8⌉ bytes.
    fn and_cols(&mut self, xs: &[&Col], ys: &[&Col], n: usize) -> Result<Vec<Col>, ProtocolError> {
        let words = n.div_ceil(64);
        let nbytes = n.div_ceil(8);
        let mut zs = Vec::with_capacity(xs.len());
        let mut msg = Vec::with_capacity(xs.len() * nbytes);
        for (x, y) in xs.iter().zip(ys) {
            let nx = self.st.next.words(words);
            let pv = self.st.prev.words(words);
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

    /// Online bits per element of [`Party::ltz`] in Z_2^k (before the byte
    /// padding of packed bits): two word ANDs and the carry tree.
    pub fn ltz_bits(k: u32) -> u64 {
        let mut m = (k - 1) as u64;
        let mut ands = 0;
        while m > 1 {
            ands += 2 * (m / 2);
            m = m.div_ceil(2);
        }
        3 * k as u64 + 3 * ands
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

    /// Bit to arithmetic. Offline (input-independent, or prepared by
    /// [`Party::preprocess`]): a random bit
    /// r = ρ0 ⊕ ρ1 ⊕ ρ2 from the three keys, known to nobody, is made
    /// arithmetic (`random_bits`: 2 rounds, 3k bits).
    /// Online: open c = b ⊕ r to all (1 round, 3 bits packed), then
    /// b = c + r − 2·c·r locally.
    pub fn b2a<R: Ring>(&mut self, bits: &BitShare) -> Result<AShare<R>, ProtocolError> {
        let n = bits.len();
        let (rb, r) = self.bits_for::<R>(n)?;
        // Online: open c = b ⊕ r (boolean) to everyone.
        let masked = bits.xor(&rb);
        let got = self.comm.exchange(
            Phase::Online,
            vec![(self.pred(), pack_bits(&masked.b))],
            &[self.succ()],
        )?;
        let third = parse_bits(&got[0], n, self.succ(), "b2a opening")?;
        let c: Vec<bool> = (0..n)
            .map(|j| masked.a[j] ^ masked.b[j] ^ third[j])
            .collect();
        // b = c + r − 2cr = r·(1 − 2c) + c
        let coef: Vec<R> = c
            .iter()
            .map(|&ci| if ci { R::ONE.neg() } else { R::ONE })
            .collect();
        let cvals = bits_as_ring::<R>(&c);
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
            let s = self.b2a::<R>(&lt)?;
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

#[cfg(test)]
mod tests {
    use super::transpose64;

    #[test]
    fn transpose64_swaps_rows_and_columns() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut a = [0u64; 64];
        for r in a.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *r = x;
        }
        let mut t = a;
        transpose64(&mut t);
        for (i, row) in t.iter().enumerate() {
            for (j, src) in a.iter().enumerate() {
                assert_eq!(row >> j & 1, src >> i & 1, "bit {j} of row {i}");
            }
        }
        transpose64(&mut t);
        assert_eq!(t, a, "an involution");
    }
}
