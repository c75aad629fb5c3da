//! Framing, validation and accounting over raw links.
//!
//! Frame: `len: u64 | step: u64 | seq: u64` (little-endian) then `len` bytes.
//! `step` is the sender's label ([`Comm::set_step`]); `seq` counts frames on
//! the link from 0. The receiver rejects a frame whose step or sequence
//! number is not the one it expects, a frame shorter than its header says,
//! and a length above [`MAX_FRAME`] — each as a typed error naming the peer.

use ditto_protocol::{Comm, CommError, Phase, Stats};
use std::time::Duration;

pub const HEADER_LEN: usize = 24;
/// Largest payload accepted (1 GiB): a corrupt length cannot exhaust memory.
pub const MAX_FRAME: u64 = 1 << 30;

/// What a link delivers.
#[derive(Debug)]
pub enum LinkEvent {
    /// A complete frame: its header and its payload (the header's length
    /// field is checked against the payload by the receiver).
    Frame {
        header: [u8; HEADER_LEN],
        payload: Vec<u8>,
    },
    /// The peer closed the link (or vanished).
    Closed,
    /// The stream ended inside a frame.
    Short(usize),
    /// The header announced a payload above the limit.
    Oversized(u64),
    Io(String),
}

/// A bidirectional byte link to one peer that moves whole frames.
pub trait Link: Send {
    /// Sends a frame (header, then payload: no copy to join them); a peer
    /// that is gone is reported as [`LinkEvent::Closed`], other failures as
    /// [`LinkEvent::Io`].
    fn send(&mut self, header: [u8; HEADER_LEN], payload: Vec<u8>) -> Result<(), LinkEvent>;
    /// Sends raw bytes as they are (fault tests: malformed frames).
    fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), LinkEvent>;
    /// The next frame, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<LinkEvent>;
    /// False once the link is known to be gone (its reader saw the end).
    fn alive(&self) -> bool {
        true
    }
    /// Bytes written to the wire, encryption included (0 if not counted).
    fn wire_out(&self) -> u64 {
        0
    }
}

pub fn frame(step: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = header(payload.len() as u64, step, seq).to_vec();
    f.extend_from_slice(payload);
    f
}

/// A frame's header: `len | step | seq`.
pub fn header(len: u64, step: u64, seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&step.to_le_bytes());
    h[16..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// The length field of a header.
pub fn header_len(h: &[u8; HEADER_LEN]) -> u64 {
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// One party's end of the mesh.
pub struct Channel {
    id: usize,
    links: [Option<Box<dyn Link>>; 3],
    step: u64,
    seq_out: [u64; 3],
    seq_in: [u64; 3],
    stats: Stats,
    wire_bytes: u64,
    timeout: Duration,
    /// Received payloads, kept when recording (privacy tests).
    view: Option<Vec<Vec<u8>>>,
}

impl Channel {
    /// `links[j]` is the link to party j (`None` at `id`).
    pub fn new(id: usize, links: [Option<Box<dyn Link>>; 3], timeout: Duration) -> Channel {
        Channel {
            id,
            links,
            step: 0,
            seq_out: [0; 3],
            seq_in: [0; 3],
            stats: Stats::default(),
            wire_bytes: 0,
            timeout,
            view: None,
        }
    }

    /// Keeps every received payload from now on (see [`Channel::take_view`]).
    pub fn record_view(&mut self) {
        self.view = Some(Vec::new());
    }

    pub fn take_view(&mut self) -> Vec<Vec<u8>> {
        self.view.take().unwrap_or_default()
    }

    /// Bytes sent including frame headers.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// Sends raw bytes on the link to `peer`, bypassing framing and
    /// accounting (fault-injection tests only; an error is ignored).
    pub fn send_raw(&mut self, peer: usize, bytes: Vec<u8>) {
        if let Ok(l) = self.link(peer) {
            let _ = l.send_raw(bytes);
        }
    }

    /// Whether every link still stands (a peer that vanished while idle is
    /// noticed here).
    pub fn alive(&self) -> bool {
        self.links.iter().flatten().all(|l| l.alive())
    }

    /// Bytes the links put on the wire (TLS records included), if counted.
    pub fn link_wire_bytes(&self) -> u64 {
        self.links.iter().flatten().map(|l| l.wire_out()).sum()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    fn link(&mut self, peer: usize) -> Result<&mut Box<dyn Link>, CommError> {
        let step = self.step;
        self.links
            .get_mut(peer)
            .and_then(|l| l.as_mut())
            .ok_or(CommError::Io {
                peer,
                message: format!("no link to P{peer} (step {step})"),
            })
    }

    fn recv_one(&mut self, peer: usize) -> Result<Vec<u8>, CommError> {
        let step = self.step;
        let timeout = self.timeout;
        let ev = self.link(peer)?.recv(timeout);
        let f = match ev {
            None => {
                return Err(CommError::Timeout {
                    peer,
                    step,
                    millis: timeout.as_millis() as u64,
                })
            }
            Some(LinkEvent::Closed) => return Err(CommError::Closed { peer, step }),
            Some(LinkEvent::Short(got)) => return Err(CommError::ShortFrame { peer, step, got }),
            Some(LinkEvent::Oversized(len)) => {
                return Err(CommError::Oversized {
                    peer,
                    step,
                    len,
                    limit: MAX_FRAME,
                })
            }
            Some(LinkEvent::Io(message)) => return Err(CommError::Io { peer, message }),
            Some(LinkEvent::Frame { header, payload }) => (header, payload),
        };
        let (h, payload) = f;
        let word = |i: usize| u64::from_le_bytes(h[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let (len, their_step, seq) = (word(0), word(1), word(2));
        if len > MAX_FRAME {
            return Err(CommError::Oversized {
                peer,
                step,
                len,
                limit: MAX_FRAME,
            });
        }
        if payload.len() as u64 != len {
            return Err(CommError::ShortFrame {
                peer,
                step,
                got: HEADER_LEN + payload.len(),
            });
        }
        if their_step != step {
            return Err(CommError::WrongStep {
                peer,
                expected: step,
                got: their_step,
            });
        }
        if seq != self.seq_in[peer] {
            return Err(CommError::OutOfOrder {
                peer,
                step,
                expected: self.seq_in[peer],
                got: seq,
            });
        }
        self.seq_in[peer] += 1;
        Ok(payload)
    }
}

impl Comm for Channel {
    fn observing(&self) -> bool {
        self.view.is_some()
    }

    fn observe(&mut self, opened: Vec<u8>) {
        if let Some(v) = &mut self.view {
            v.push(opened);
        }
    }

    fn id(&self) -> usize {
        self.id
    }

    fn exchange(
        &mut self,
        phase: Phase,
        sends: Vec<(usize, Vec<u8>)>,
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, CommError> {
        if sends.is_empty() && from.is_empty() {
            return Ok(vec![]);
        }
        for (to, payload) in sends {
            let n = payload.len() as u64;
            let h = header(n, self.step, self.seq_out[to]);
            self.seq_out[to] += 1;
            self.wire_bytes += (HEADER_LEN + payload.len()) as u64;
            let step = self.step;
            self.link(to)?.send(h, payload).map_err(|e| match e {
                LinkEvent::Closed => CommError::Closed { peer: to, step },
                LinkEvent::Io(message) => CommError::Io { peer: to, message },
                other => CommError::Io {
                    peer: to,
                    message: format!("{other:?}"),
                },
            })?;
            match phase {
                Phase::Online => self.stats.bytes_online += n,
                Phase::Offline => self.stats.bytes_offline += n,
            }
            self.stats.messages += 1;
            if let Some(b) = self.stats.bytes_to.get_mut(to) {
                *b += n;
            }
        }
        let mut out = Vec::with_capacity(from.len());
        for &p in from {
            let m = self.recv_one(p)?;
            if let Some(v) = &mut self.view {
                v.push(m.clone());
            }
            out.push(m);
        }
        match phase {
            Phase::Online => self.stats.rounds_online += 1,
            Phase::Offline => self.stats.rounds_offline += 1,
        }
        Ok(out)
    }

    fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
