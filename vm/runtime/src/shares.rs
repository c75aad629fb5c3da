//! Weight share files: the model owner deals each weight once and writes one
//! file per party; `ditto party` (issue 6) loads its own.
//!
//! Layout, little-endian: magic `DITTOSH\0`, format version (u16), the
//! program hash (32 bytes), the party index (u8), the dealing id (16 bytes,
//! the same in the three files of one dealing: the parties compare it when
//! they link up, so files of two dealings are never mixed), the number of
//! weights (u32); per weight its port (u32), ring (u8), element count (u64), then
//! the party's two components x_i and x_{i+1}; finally the SHA-256 of
//! everything before it. A file alone is two pseudo-random vectors per
//! weight: it says nothing about the weights (P0's file does not even depend
//! on them).

use crate::source::{deal_three, encode_all, weight_values};
use crate::value::{Rv, Value};
use crate::wire::{Rd, WireError};
use ditto_bytecode::{Kind, Program};
use ditto_protocol::{AShare, Ring};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"DITTOSH\0";
pub const VERSION: u16 = 2;

/// The id of the dealing from `seed`: a hash, so it tells nothing of the
/// seed, and the same in the three files.
pub fn dealing_id(seed: &[u8; 32]) -> [u8; 16] {
    let h = Sha256::new()
        .chain_update(b"ditto dealing id")
        .chain_update(seed)
        .finalize();
    h[..16].try_into().expect("16 bytes")
}

/// A party's share file, read and checked.
#[derive(Debug)]
pub struct ShareFile {
    /// Which dealing the file comes from ([`dealing_id`]).
    pub dealing: [u8; 16],
    /// The party's share of each weight, by port.
    pub weights: Vec<Value>,
}

/// Why a share file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("not a ditto share file (bad magic)")]
    BadMagic,
    #[error("share file format version {0} is not supported (this build reads version {VERSION})")]
    Version(u16),
    #[error("the file is corrupt or truncated (checksum mismatch)")]
    Checksum,
    #[error("the shares are for another program (hash {got}, this program is {want})")]
    WrongProgram { got: String, want: String },
    #[error("the shares are for P{got}, not P{want}")]
    WrongParty { got: u8, want: u8 },
    #[error("byte {offset}: {message}")]
    Invalid { offset: usize, message: String },
    #[error("weight {name:?}: {message}")]
    Weight { name: String, message: String },
    /// A weight's values refused (the message names it).
    #[error("{0}")]
    Values(String),
}

fn hex(h: &[u8]) -> String {
    crate::wire::short_hash(h) + "…"
}

fn put_share<R: Ring>(w: &mut Vec<u8>, s: &AShare<R>) {
    ditto_protocol::ring::extend_bytes(w, &s.a);
    ditto_protocol::ring::extend_bytes(w, &s.b);
}

/// The three parties' share files of `prog`'s weights, dealt from `seed`
/// (the owner's secret; draw it from the OS). `weights` gives each weight's
/// values by name.
pub fn write_share_files(
    prog: &Program,
    weights: &crate::source::Weights<'_>,
    seed: &[u8; 32],
) -> Result<[Vec<u8>; 3], ShareError> {
    let hash = prog.hash();
    let mut files: [Vec<u8>; 3] = Default::default();
    for (party, w) in files.iter_mut().enumerate() {
        w.extend_from_slice(MAGIC);
        w.extend_from_slice(&VERSION.to_le_bytes());
        w.extend_from_slice(&hash);
        w.push(party as u8);
        w.extend_from_slice(&dealing_id(seed));
        w.extend_from_slice(&(prog.weights.len() as u32).to_le_bytes());
    }
    for (port, p) in prog.weights.iter().enumerate() {
        let t = &prog.regs[p.reg.0 as usize];
        let err = |message: String| ShareError::Weight {
            name: p.name.clone(),
            message,
        };
        let Kind::Fixed { ring, frac } = t.kind else {
            return Err(err("a boolean weight cannot be shared".into()));
        };
        let values = weight_values(prog, port, weights).map_err(ShareError::Values)?;
        let n = t.numel() as usize;
        for w in files.iter_mut() {
            w.extend_from_slice(&(port as u32).to_le_bytes());
            w.push(ring);
            w.extend_from_slice(&(n as u64).to_le_bytes());
        }
        // dealt once for the three files
        if ring == 32 {
            let s = deal_three::<u32>(seed, "weight", port, encode_all(&values, frac));
            for (w, s) in files.iter_mut().zip(&s) {
                put_share(w, s);
            }
        } else {
            let s = deal_three::<u64>(seed, "weight", port, encode_all(&values, frac));
            for (w, s) in files.iter_mut().zip(&s) {
                put_share(w, s);
            }
        }
    }
    // the three checksums (1 GB each for BERT-base) in parallel
    std::thread::scope(|s| {
        for w in files.iter_mut() {
            s.spawn(move || {
                let sum = Sha256::digest(&w[..]);
                w.extend_from_slice(&sum);
            });
        }
    });
    Ok(files)
}

impl From<WireError> for ShareError {
    fn from(e: WireError) -> ShareError {
        ShareError::Invalid {
            offset: e.offset,
            message: e.message,
        }
    }
}

fn get_share<R: Rv>(r: &mut Rd, n: usize) -> Result<Value, ShareError> {
    let bytes = (R::BITS / 8) as usize;
    let raw = r.take(2 * n * bytes, "the share elements")?;
    let mut v: Vec<R> = raw.chunks_exact(bytes).map(R::read_le).collect();
    let b = v.split_off(n);
    Ok(R::secret(AShare { a: v, b }))
}

/// Party `party`'s weight values (shares, by weight port) from its file,
/// checked against `prog`. Never panics on a malformed file.
pub fn read_share_file(bytes: &[u8], prog: &Program, party: u8) -> Result<ShareFile, ShareError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(ShareError::BadMagic);
    }
    if bytes.len() < 10 + 32 + 1 + 16 + 4 + 32 {
        return Err(ShareError::Invalid {
            offset: bytes.len(),
            message: "truncated header".into(),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(ShareError::Version(version));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(ShareError::Checksum);
    }
    let want = prog.hash();
    if body[10..42] != want {
        return Err(ShareError::WrongProgram {
            got: hex(&body[10..42]),
            want: hex(&want),
        });
    }
    if body[42] != party {
        return Err(ShareError::WrongParty {
            got: body[42],
            want: party,
        });
    }
    let dealing: [u8; 16] = body[43..59].try_into().expect("16 bytes");
    let mut r = Rd { b: body, pos: 59 };
    let count = r.u32("the weight count")? as usize;
    if count != prog.weights.len() {
        return Err(ShareError::Invalid {
            offset: 59,
            message: format!("{count} weights, the program has {}", prog.weights.len()),
        });
    }
    let mut out = Vec::with_capacity(count);
    for (port, p) in prog.weights.iter().enumerate() {
        let at = r.pos;
        let got_port = r.u32("a weight port")? as usize;
        let ring = r.take(1, "a ring")?[0];
        let n = r.u64("an element count")?;
        let t = &prog.regs[p.reg.0 as usize];
        let want_ring = match t.kind {
            Kind::Fixed { ring, .. } => ring,
            Kind::Bool => 0,
        };
        if got_port != port || ring != want_ring || n != t.numel() {
            return Err(ShareError::Invalid {
                offset: at,
                message: format!(
                    "weight {:?}: found port {got_port}, ring {ring}, {n} elements; the program wants port {port}, ring {want_ring}, {} elements",
                    p.name,
                    t.numel()
                ),
            });
        }
        out.push(if ring == 32 {
            get_share::<u32>(&mut r, n as usize)?
        } else {
            get_share::<u64>(&mut r, n as usize)?
        });
    }
    if r.pos != body.len() {
        return Err(ShareError::Invalid {
            offset: r.pos,
            message: format!(
                "{} unexpected bytes after the last weight",
                body.len() - r.pos
            ),
        });
    }
    Ok(ShareFile {
        dealing,
        weights: out,
    })
}
