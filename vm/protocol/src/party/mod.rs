//! One party's side of every MPC primitive. All three parties run the same
//! code (SPMD); asymmetric protocols take their roles from a public counter
//! that advances in lock-step, so the work rotates.
//!
//! Costs are stated per element, as bits summed over all parties unless said
//! otherwise; "rounds" are sequential communication steps. The counting
//! transport of `ditto-net` measures exactly these figures (tests assert it).

use crate::comm::{Comm, Phase, ProtocolError};
use crate::kernels;
use crate::leaks::{self, Leak};
use crate::prg::Prg;
use crate::ring::{
    add_from_bytes, extend_bytes, from_bytes, low_mask, pack_bits, pack_width, put_bytes, to_bytes,
    unpack_bits, unpack_width, Ring,
};
use crate::share::{AShare, BShare, BitShare};

mod arith;
mod boolean;
mod convert;
mod offline;
mod select;

use arith::*;
use boolean::*;
use convert::*;
pub use convert::{ConvIn, ConvJob, ConvOut};
use offline::*;
pub use select::Operand;

use crate::cost::msb_width;

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
    /// Bytes of each of the three offline messages of this call (A → B,
    /// H → A, B → H): n values of w = [`msb_width`] bits, packed.
    pub fn prep_bytes(&self) -> usize {
        (self.n * self.width() as usize).div_ceil(8)
    }

    /// w: the bits of the mask's top bit's shares that matter.
    pub fn width(&self) -> u32 {
        msb_width(self.kin, self.kout, self.m)
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
    /// Conversion streams of the two pair keys, apart from the others so
    /// that the offline phase can draw every prepared call's mask bits ahead
    /// (and the online phase draw them again) without upsetting their order.
    conv_next: Prg,
    conv_prev: Prg,
    /// The random bits of B2A and their arithmetic form, likewise apart.
    b2a_next: Prg,
    b2a_prev: Prg,
    /// Public counter choosing the roles of conversions (the offline phase
    /// derives each prepared call's roles from it).
    ctr: u64,
    /// Public counter choosing the roles of the two-operand adder set-up.
    bits_ctr: u64,
    /// Conversions prepared by `preprocess`, in call order.
    plan: Option<std::collections::VecDeque<Prepared>>,
    /// B2A random bits prepared by `preprocess`, in call order.
    bits_plan: Option<std::collections::VecDeque<PreparedBits>>,
    /// The range guard, when on: each conversion's out-of-range flags
    /// ([`Party::guard_ranges`]).
    guard: Option<Vec<BitShare>>,
    /// Conversions the guard leaves alone for now ([`Party::guard_pause`]).
    guard_paused: bool,
    /// The elements the next conversion's guard checks
    /// ([`Party::guard_mask`]).
    guard_mask: Option<Vec<bool>>,
}

/// One prepared conversion: this party's role and the offline message it
/// received for it (A: H's, B: A's, H: B's; empty when w = 0).
struct Prepared {
    call: ConvCall,
    role: Role,
    msg: Vec<u8>,
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
        // holders: P_i's (next, conv_next, b2a_next) are P_{i+1}'s
        // (prev, conv_prev, b2a_prev).
        let mut kn = Prg::new(k_next);
        let mut kp = Prg::new(k_prev);
        let (next, conv_next, b2a_next) = (kn.key(), kn.key(), kn.key());
        let (prev, conv_prev, b2a_prev) = (kp.key(), kp.key(), kp.key());
        Ok(Party {
            id,
            comm,
            st: PartyState {
                id,
                prev: Prg::new(prev),
                next: Prg::new(next),
                conv_next: Prg::new(conv_next),
                conv_prev: Prg::new(conv_prev),
                b2a_next: Prg::new(b2a_next),
                b2a_prev: Prg::new(b2a_prev),
                ctr: 0,
                bits_ctr: 0,
                plan: None,
                bits_plan: None,
                guard: None,
                guard_paused: false,
                guard_mask: None,
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

    // ----- the conversion primitive -----

    // ----- boolean circuits -----
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
