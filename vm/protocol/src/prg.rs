//! Correlated randomness without communication (PRSS). Each adjacent pair
//! (Pi, Pi+1) shares a key k_i; Pi holds k_{i−1} ("prev", shared with Pi−1) and
//! k_i ("next", shared with Pi+1). Both holders of a key draw from it in
//! lock-step: every protocol consumes the same number of elements of the same
//! width from a key on both sides, whatever roles the parties play.

use crate::ring::Ring;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// A keyed stream (ChaCha12).
#[derive(Clone)]
pub struct Prg(ChaCha12Rng);

impl Prg {
    pub fn new(key: [u8; 32]) -> Prg {
        Prg(ChaCha12Rng::from_seed(key))
    }
    pub fn ring<R: Ring>(&mut self, n: usize) -> Vec<R> {
        // whole blocks at a time: the same stream as n calls of next_u32 /
        // next_u64 (little-endian words), without the per-word calls
        let w = (R::BITS / 8) as usize;
        let mut bytes = vec![0u8; n * w];
        self.0.fill_bytes(&mut bytes);
        if w == 4 {
            bytes
                .chunks_exact(4)
                .map(|c| R::from_u64(u32::from_le_bytes(c.try_into().expect("4 bytes")) as u64))
                .collect()
        } else {
            bytes
                .chunks_exact(8)
                .map(|c| R::from_u64(u64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect()
        }
    }
    pub fn key(&mut self) -> [u8; 32] {
        let mut k = [0u8; 32];
        self.0.fill_bytes(&mut k);
        k
    }
    /// `n` raw 64-bit words (the same stream `bits` draws from, 64 bits per
    /// word).
    pub fn words(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.0.next_u64()).collect()
    }
    pub fn bits(&mut self, n: usize) -> Vec<bool> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let w = self.0.next_u64();
            out.extend((0..64.min(n - out.len())).map(|i| w >> i & 1 == 1));
        }
        out
    }
}
