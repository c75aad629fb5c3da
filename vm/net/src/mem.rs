//! In-memory links between threads (std channels). A dropped end reads as a
//! closed link on the other side.

use crate::channel::{Link, LinkEvent};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

pub struct MemLink {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

/// Two connected ends.
pub fn pair() -> (MemLink, MemLink) {
    let (t1, r1) = channel();
    let (t2, r2) = channel();
    (MemLink { tx: t1, rx: r2 }, MemLink { tx: t2, rx: r1 })
}

impl Link for MemLink {
    fn send(&mut self, frame: Vec<u8>) -> Result<(), LinkEvent> {
        // A send to a peer that is gone is not an error here: the failure
        // surfaces when a reply is awaited, naming the peer.
        let _ = self.tx.send(frame);
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Option<LinkEvent> {
        match self.rx.recv_timeout(timeout) {
            Ok(f) => Some(LinkEvent::Frame(f)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(LinkEvent::Closed),
        }
    }
}

/// Links for three parties: `[links of P0, links of P1, links of P2]`.
pub fn mesh() -> [[Option<Box<dyn Link>>; 3]; 3] {
    let (a01, a10) = pair();
    let (a02, a20) = pair();
    let (a12, a21) = pair();
    let b = |l: MemLink| Some(Box::new(l) as Box<dyn Link>);
    [
        [None, b(a01), b(a02)],
        [b(a10), None, b(a12)],
        [b(a20), b(a21), None],
    ]
}
