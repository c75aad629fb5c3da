//! In-memory links between threads (std channels). A dropped end reads as a
//! closed link on the other side.
//!
//! A link may be shaped like a network ([`Shape`]): each direction sends one
//! frame at a time at the given bandwidth, and a frame arrives a one-way
//! delay after its last byte left. The receiver waits until then.

use crate::channel::{header_len, Link, LinkEvent, HEADER_LEN, MAX_FRAME};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// A network profile for in-memory links.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Bytes per second in each direction of a link.
    pub bytes_per_sec: f64,
    /// Half the round-trip time.
    pub one_way: Duration,
}

impl Shape {
    /// 5 Gbps, 0.4 ms round trip.
    pub const LAN: Shape = Shape {
        bytes_per_sec: 5e9 / 8.0,
        one_way: Duration::from_micros(200),
    };
    /// 400 Mbps, 40 ms round trip.
    pub const WAN: Shape = Shape {
        bytes_per_sec: 400e6 / 8.0,
        one_way: Duration::from_millis(20),
    };
}

/// Times a receiver yields before it blocks.
const SPINS: usize = 64;

pub struct MemLink {
    tx: Sender<(Instant, LinkEvent)>,
    rx: Receiver<(Instant, LinkEvent)>,
    shape: Option<Shape>,
    /// When this direction finishes sending what it has queued.
    busy_until: Instant,
}

/// Two connected ends.
pub fn pair() -> (MemLink, MemLink) {
    shaped_pair(None)
}

/// Two connected ends with a network profile.
pub fn shaped_pair(shape: Option<Shape>) -> (MemLink, MemLink) {
    let (t1, r1) = channel();
    let (t2, r2) = channel();
    let now = Instant::now();
    (
        MemLink {
            tx: t1,
            rx: r2,
            shape,
            busy_until: now,
        },
        MemLink {
            tx: t2,
            rx: r1,
            shape,
            busy_until: now,
        },
    )
}

impl MemLink {
    /// When a frame of `len` bytes sent now arrives (now, unshaped).
    fn arrival(&mut self, len: usize) -> Instant {
        let now = Instant::now();
        match self.shape {
            None => now,
            Some(s) => {
                let start = self.busy_until.max(now);
                self.busy_until = start + Duration::from_secs_f64(len as f64 / s.bytes_per_sec);
                self.busy_until + s.one_way
            }
        }
    }
}

impl Link for MemLink {
    fn send(&mut self, header: [u8; HEADER_LEN], payload: Vec<u8>) -> Result<(), LinkEvent> {
        let at = self.arrival(HEADER_LEN + payload.len());
        // A send to a peer that is gone is not an error here: the failure
        // surfaces when a reply is awaited, naming the peer.
        let _ = self.tx.send((at, LinkEvent::Frame { header, payload }));
        Ok(())
    }

    fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), LinkEvent> {
        // what a stream reader would make of these bytes as one frame
        let at = self.arrival(bytes.len());
        let ev = if bytes.len() < HEADER_LEN {
            LinkEvent::Short(bytes.len())
        } else {
            let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
            if header_len(&header) > MAX_FRAME {
                LinkEvent::Oversized(header_len(&header))
            } else {
                LinkEvent::Frame {
                    header,
                    payload: bytes[HEADER_LEN..].to_vec(),
                }
            }
        };
        let _ = self.tx.send((at, ev));
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Option<LinkEvent> {
        // A peer's reply usually comes within microseconds: yield the core a
        // few times before sleeping on the channel (a futex wake-up costs
        // more than the round it ends)
        let mut got = None;
        for _ in 0..SPINS {
            match self.rx.try_recv() {
                Ok(v) => {
                    got = Some(Ok(v));
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    got = Some(Err(RecvTimeoutError::Disconnected));
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
        let got = got.unwrap_or_else(|| self.rx.recv_timeout(timeout));
        match got {
            Ok((at, ev)) => {
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                Some(ev)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(LinkEvent::Closed),
        }
    }
}

/// Links for three parties: `[links of P0, links of P1, links of P2]`.
pub fn mesh() -> [[Option<Box<dyn Link>>; 3]; 3] {
    shaped_mesh(None)
}

/// Like [`mesh`], every link shaped by `shape`.
pub fn shaped_mesh(shape: Option<Shape>) -> [[Option<Box<dyn Link>>; 3]; 3] {
    let (a01, a10) = shaped_pair(shape);
    let (a02, a20) = shaped_pair(shape);
    let (a12, a21) = shaped_pair(shape);
    let b = |l: MemLink| Some(Box::new(l) as Box<dyn Link>);
    [
        [None, b(a01), b(a02)],
        [b(a10), None, b(a12)],
        [b(a20), b(a21), None],
    ]
}
