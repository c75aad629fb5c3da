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
use crate::ring::{from_bytes, pack_bits, to_bytes, unpack_bits, Ring};
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
    /// Public counter choosing the roles of asymmetric protocols.
    ctr: u64,
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

fn parse<R: Ring>(
    bytes: &[u8],
    n: usize,
    peer: usize,
    what: &'static str,
) -> Result<Vec<R>, ProtocolError> {
    from_bytes(bytes, n).ok_or_else(|| ProtocolError::Malformed {
        peer,
        what,
        detail: format!(
            "{} bytes, expected {} elements of {} bits",
            bytes.len(),
            n,
            R::BITS
        ),
    })
}

/// 0/1 bits as ring elements.
fn bits_as_ring<R: Ring>(v: &[bool]) -> Vec<R> {
    v.iter()
        .map(|&x| if x { R::ONE } else { R::ZERO })
        .collect()
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
        // 64 elements at a time: a 64×64 bit-matrix transpose
        let mut block = [0u64; 64];
        for word in 0..words {
            for (src, pick) in [(&w.a, 0), (&w.b, 1)] {
                block.fill(0);
                for (r, v) in src[word * 64..n.min(word * 64 + 64)].iter().enumerate() {
                    block[r] = v.to_u64();
                }
                transpose64(&mut block);
                for (i, col) in cols.iter_mut().enumerate() {
                    if pick == 0 {
                        col.a[word] = block[i];
                    } else {
                        col.b[word] = block[i];
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
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
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
                ctr: 0,
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
    /// predecessor (that call's B) at once — **1 round** in all, 2·k_out bits
    /// per element as before. B2A: the random bits of all calls of a ring
    /// made arithmetic together — 2 rounds per ring, 6k bits per bit as
    /// before. Afterwards every call takes its offline part from here, and
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
                Role::B => want += 2 * call.n * (call.kout as usize / 8),
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
            let len = 2 * p.call.n * (p.call.kout as usize / 8);
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
    /// (ρ_j = F(k_{j−1}): Pi holds (ρ_i, ρ_{i+1})) and, after two
    /// multiplications, an arithmetic one. 2 rounds, 6k bits per bit.
    fn random_bits<R: Ring>(&mut self, n: usize) -> Result<(BitShare, AShare<R>), ProtocolError> {
        let rho_a = self.st.b2a_prev.bits(n);
        let rho_b = self.st.b2a_next.bits(n);
        let as_ring = bits_as_ring::<R>;
        let zero = vec![R::ZERO; n];
        let comp = |j: usize, me: usize| -> AShare<R> {
            AShare {
                a: if j == me {
                    as_ring(&rho_a)
                } else {
                    zero.clone()
                },
                b: if j == (me + 1) % 3 {
                    as_ring(&rho_b)
                } else {
                    zero.clone()
                },
            }
        };
        let (p0, p1, p2) = (comp(0, self.id), comp(1, self.id), comp(2, self.id));
        let t = self.xor_arith(&p0, &p1)?;
        let r = self.xor_arith(&t, &p2)?;
        Ok((BitShare { a: rho_a, b: rho_b }, r))
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

    /// H's message to B for one conversion of `n` elements by `m` bits:
    /// B's additive shares of r_msb and r_mid (A's come from the A–H stream).
    fn helper_message<Ri: Ring, Ro: Ring>(&mut self, n: usize, m: u32) -> Vec<u8> {
        let kin = Ri::BITS;
        let half = Ri::ONE.shl(kin - 1);
        let ra: Vec<Ri> = self.st.help_next.ring(n);
        let rb: Vec<Ri> = self.st.help_prev.ring(n);
        let msb_a: Vec<Ro> = self.st.help_next.ring(n);
        let mid_a: Vec<Ro> = self.st.help_next.ring(n);
        let mut msb_b = Vec::with_capacity(n);
        let mut mid_b = Vec::with_capacity(n);
        for j in 0..n {
            let r = ra[j].add(rb[j]);
            let r_msb = Ro::from_u64(r.shr(kin - 1).to_u64());
            let r_mid = Ro::from_u64(r.and(half.sub(Ri::ONE)).shr(m).to_u64());
            msb_b.push(r_msb.sub(msb_a[j]));
            mid_b.push(r_mid.sub(mid_a[j]));
        }
        let mut msg = to_bytes(&msb_b);
        msg.extend(to_bytes(&mid_b));
        msg
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
    /// Offline: H → B two k_out-bit elements (B's shares of r_msb and r_mid;
    /// r's shares and A's parts come from the A–H and B–H keys).
    /// Online: 2 rounds (A and B only), 2·k_in + 2·k_out bits:
    /// A and B open c = x + 2^(k_in−2) + r to each other, compute
    /// y = ⌊c'/2^m⌋ − r_mid + (r_msb ⊕ c_msb)·2^(k_in−1−m) − 2^(k_in−2−m) as a
    /// 2-out-of-2 sharing, and reshare it (A–H key gives y_a, B–H key y_{a+2},
    /// A and B exchange the masked rest).
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
    /// sends its z_h to A and B in the round where A and B open c, so the
    /// product's reshare round disappears.
    /// Online: 2 rounds, 4·k_in + 2·k_out bits (a product then a conversion
    /// cost 3·k_in + 2·k_in + 2·k_out bits in 3 rounds). Offline: as
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
        let half = Ri::ONE.shl(kin - 1);
        let low = |v: Ri| v.and(half.sub(Ri::ONE));
        match role {
            Role::H => {
                if planned.is_none() {
                    let msg = self.helper_message::<Ri, Ro>(n, m);
                    self.comm.exchange(Phase::Offline, vec![(b_id, msg)], &[])?;
                }
                if let ConvIn::Additive(z) = input {
                    // H's share joins the opening of c
                    let zb = to_bytes(z);
                    self.comm
                        .exchange(Phase::Online, vec![(a_id, zb.clone()), (b_id, zb)], &[])?;
                }
                // Reshare: y_a from the A–H key, y_{a+2} from the B–H key.
                let ya: Vec<Ro> = self.st.next.ring(n);
                let yc: Vec<Ro> = self.st.prev.ring(n);
                Ok(AShare { a: yc, b: ya })
            }
            Role::A | Role::B => {
                let is_a = role == Role::A;
                let (r_share, msb_s, mid_s): (Vec<Ri>, Vec<Ro>, Vec<Ro>) = if is_a {
                    let r = self.st.helped_prev.ring(n);
                    let ms = self.st.helped_prev.ring(n);
                    let md = self.st.helped_prev.ring(n);
                    (r, ms, md)
                } else {
                    let r = self.st.helped_next.ring(n);
                    let msg = match planned {
                        Some(m) => m,
                        None => self
                            .comm
                            .exchange(Phase::Offline, vec![], &[h_id])?
                            .remove(0),
                    };
                    let both: Vec<Ro> = parse(&msg, 2 * n, h_id, "conversion helper message")?;
                    let (ms, md) = both.split_at(n);
                    (r, ms.to_vec(), md.to_vec())
                };
                // Online round 1: open c between A and B.
                let bias = Ri::ONE.shl(kin - 2);
                let c_mine: Vec<Ri> = (0..n)
                    .map(|j| {
                        // A holds x_a + x_b (or its additive z_a), B x_h (or z_b)
                        let xs = match input {
                            ConvIn::Replicated(x) if is_a => x.a[j].add(x.b[j]),
                            ConvIn::Replicated(x) => x.b[j],
                            ConvIn::Additive(z) => z[j],
                        };
                        let xs = if is_a { xs.add(bias) } else { xs };
                        xs.add(r_share[j])
                    })
                    .collect();
                let peer = if is_a { b_id } else { a_id };
                let (c_peer, z_h): (Vec<Ri>, Option<Vec<Ri>>) = match input {
                    ConvIn::Replicated(_) => {
                        let got = self.comm.exchange(
                            Phase::Online,
                            vec![(peer, to_bytes(&c_mine))],
                            &[peer],
                        )?;
                        (parse(&got[0], n, peer, "conversion opening")?, None)
                    }
                    ConvIn::Additive(_) => {
                        let got = self.comm.exchange(
                            Phase::Online,
                            vec![(peer, to_bytes(&c_mine))],
                            &[peer, h_id],
                        )?;
                        (
                            parse(&got[0], n, peer, "conversion opening")?,
                            Some(parse(&got[1], n, h_id, "conversion helper share")?),
                        )
                    }
                };
                let scale = Ro::ONE.shl(kin - 1 - m);
                let offset = Ro::ONE.shl(kin - 2 - m);
                let y: Vec<Ro> = (0..n)
                    .map(|j| {
                        let mut c = c_mine[j].add(c_peer[j]);
                        if let Some(zh) = &z_h {
                            c = c.add(zh[j]);
                        }
                        let c_msb = c.shr(kin - 1).to_u64();
                        // b = r_msb ⊕ c_msb = r_msb·(1 − 2c_msb) + c_msb, linear in r_msb's share.
                        let flip = if c_msb == 1 { Ro::ONE.neg() } else { Ro::ONE };
                        let mut bshare = msb_s[j].mul(flip);
                        let mut v = mid_s[j].neg();
                        if is_a {
                            bshare = bshare.add(Ro::from_u64(c_msb));
                            v = v.add(Ro::from_u64(low(c).shr(m).to_u64())).sub(offset);
                        }
                        v.add(bshare.mul(scale))
                    })
                    .collect();
                // Online round 2: reshare the 2-out-of-2 result.
                if is_a {
                    let ya: Vec<Ro> = self.st.prev.ring(n); // A–H key
                    let t: Vec<Ro> = kernels::sub(&y, &ya);
                    let got =
                        self.comm
                            .exchange(Phase::Online, vec![(b_id, to_bytes(&t))], &[b_id])?;
                    let tb: Vec<Ro> = parse(&got[0], n, b_id, "conversion reshare")?;
                    Ok(AShare {
                        a: ya,
                        b: kernels::add(&t, &tb),
                    })
                } else {
                    let yc: Vec<Ro> = self.st.next.ring(n); // B–H key
                    let t: Vec<Ro> = kernels::sub(&y, &yc);
                    let got =
                        self.comm
                            .exchange(Phase::Online, vec![(a_id, to_bytes(&t))], &[a_id])?;
                    let ta: Vec<Ro> = parse(&got[0], n, a_id, "conversion reshare")?;
                    Ok(AShare {
                        a: kernels::add(&t, &ta),
                        b: yc,
                    })
                }
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

    /// The three components x_0, x_1, x_2 of an arithmetic sharing as trivial
    /// boolean sharings (component j of word j is x_j, the others 0). Local.
    fn components<R: Ring>(&self, x: &AShare<R>) -> [BShare<R>; 3] {
        let n = x.len();
        let zero = vec![R::ZERO; n];
        [0, 1, 2].map(|j| BShare {
            a: if j == self.id {
                x.a.clone()
            } else {
                zero.clone()
            },
            b: if j == (self.id + 1) % 3 {
                x.b.clone()
            } else {
                zero.clone()
            },
        })
    }

    /// The carry-save layer: x0 + x1 + x2 = s + c as boolean-shared words,
    /// with s = x0 ⊕ x1 ⊕ x2 and c = majority(x0, x1, x2) ≪ 1, where
    /// majority = ((x0 ⊕ x2) ∧ (x1 ⊕ x2)) ⊕ x2. 1 round, 3k bits.
    fn carry_save<R: Ring>(
        &mut self,
        x: &AShare<R>,
    ) -> Result<(BShare<R>, BShare<R>), ProtocolError> {
        let [w0, w1, w2] = self.components(x);
        let s = w0.xor(&w1).xor(&w2);
        let maj = self.and(&w0.xor(&w2), &w1.xor(&w2))?.xor(&w2);
        Ok((s, maj.shl(1)))
    }

    /// Levels of the parallel-prefix adder: ⌈log2(k − 1)⌉.
    pub fn prefix_levels(bits: u32) -> u32 {
        32 - (bits - 2).leading_zeros()
    }

    /// Boolean sharing of x's bits (ABY3 §5.3): a carry-save layer turns
    /// x0 + x1 + x2 into s + c (1 round of AND), then a Kogge–Stone adder
    /// computes every carry (1 round for generate, then L = ⌈log2(k−1)⌉
    /// rounds of prefix combination). Rounds: 2 + L (7 for k = 32, 8 for
    /// k = 64). Bits: 3k·(2L + 1) per element (the last prefix level needs no
    /// propagate term).
    pub fn bit_decompose<R: Ring>(&mut self, x: &AShare<R>) -> Result<BShare<R>, ProtocolError> {
        let (s, c) = self.carry_save(x)?;
        let mut p = s.xor(&c);
        let mut g = self.and(&s, &c)?;
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
        // sum bit i = s_i ⊕ c_i ⊕ carry into i = s ⊕ c ⊕ (G << 1)
        Ok(s.xor(&c).xor(&g.shl(1)))
    }

    /// The sign bit [x < 0] as a bit share. Only the carry into the top bit
    /// is needed, so after the carry-save layer and the generate word (2
    /// word ANDs), the carry comes from a tree over single bits instead of
    /// a full prefix over words: per level, G = G_hi ⊕ P_hi·G_lo and
    /// P = P_hi·P_lo for each pair of groups, all pairs in one packed AND.
    /// Rounds: 2 + ⌈log2(k−1)⌉ (7 for k = 32, 8 for k = 64), as the full
    /// decomposition. Bits per element: 3k·2 + 3·2·Σ pairs =
    /// [`Party::ltz_bits`] (372 for k = 32, 756 for k = 64, against
    /// 3k(2L+1) = 1056 and 2496 for the decomposition).
    pub fn ltz<R: Ring>(&mut self, x: &AShare<R>) -> Result<BitShare, ProtocolError> {
        let k = R::BITS;
        let n = x.len();
        let (s, c) = self.carry_save(x)?;
        let g = self.and(&s, &c)?;
        let p = s.xor(&c);
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
        // top bit = s ⊕ c ⊕ carry into it
        let top = s.bit(k - 1).xor(&c.bit(k - 1));
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
        2 * 3 * k as u64 + 3 * ands
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
    /// r = ρ0 ⊕ ρ1 ⊕ ρ2 from the three keys, known to nobody, is computed in
    /// arithmetic form with two multiplications (2 rounds, 6k bits).
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

    /// x ⊕ y = x + y − 2xy for arithmetic shares of bits; one offline
    /// multiplication, masked by a zero-sharing of the B2A streams.
    fn xor_arith<R: Ring>(
        &mut self,
        x: &AShare<R>,
        y: &AShare<R>,
    ) -> Result<AShare<R>, ProtocolError> {
        let alpha = zero_from(&mut self.st.b2a_next, &mut self.st.b2a_prev, x.len());
        let z = masked_product(x, y, &alpha);
        let xy = self.reshare(z, Phase::Offline, "b2a setup")?;
        Ok(x.add(y).sub(&xy.mul_scalar(R::from_u64(2))))
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
            let lt = self.ltz(&a.sub(&b))?;
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
