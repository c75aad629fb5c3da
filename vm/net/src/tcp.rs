//! TCP links: one connection per pair of parties, TCP_NODELAY, and a reader
//! thread per link that drains the socket into a queue — so two parties
//! pushing large messages at each other never deadlock on full buffers.

use crate::channel::{header_len, Link, LinkEvent, HEADER_LEN, MAX_FRAME};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

/// Payloads up to this size are joined to their header and written at once.
const SMALL: usize = 16 * 1024;

pub struct TcpLink {
    stream: TcpStream,
    rx: Receiver<LinkEvent>,
}

fn read_full(s: &mut TcpStream, buf: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl TcpLink {
    pub fn new(stream: TcpStream) -> std::io::Result<TcpLink> {
        stream.set_nodelay(true)?;
        let mut reader = stream.try_clone()?;
        let (tx, rx) = channel();
        std::thread::spawn(move || loop {
            let mut header = [0u8; HEADER_LEN];
            let ev = match read_full(&mut reader, &mut header) {
                Ok(0) => LinkEvent::Closed,
                Ok(n) if n < HEADER_LEN => LinkEvent::Short(n),
                Ok(_) => {
                    let len = header_len(&header);
                    if len > MAX_FRAME {
                        LinkEvent::Oversized(len)
                    } else {
                        let mut payload = vec![0u8; len as usize];
                        match read_full(&mut reader, &mut payload) {
                            Ok(n) if n as u64 == len => LinkEvent::Frame { header, payload },
                            Ok(n) => LinkEvent::Short(HEADER_LEN + n),
                            Err(e) => LinkEvent::Io(e.to_string()),
                        }
                    }
                }
                Err(e) => LinkEvent::Io(e.to_string()),
            };
            let stop = !matches!(ev, LinkEvent::Frame { .. });
            if tx.send(ev).is_err() || stop {
                return;
            }
        });
        Ok(TcpLink { stream, rx })
    }
}

impl TcpLink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), LinkEvent> {
        use std::io::ErrorKind::*;
        self.stream.write_all(bytes).map_err(|e| match e.kind() {
            BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected => LinkEvent::Closed,
            _ => LinkEvent::Io(e.to_string()),
        })
    }
}

impl Link for TcpLink {
    fn send(&mut self, header: [u8; HEADER_LEN], payload: Vec<u8>) -> Result<(), LinkEvent> {
        if payload.len() <= SMALL {
            // one segment: joining costs less than a second write
            let mut f = header.to_vec();
            f.extend_from_slice(&payload);
            return self.write(&f);
        }
        self.write(&header)?;
        self.write(&payload)
    }

    fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), LinkEvent> {
        self.write(&bytes)
    }

    fn recv(&mut self, timeout: Duration) -> Option<LinkEvent> {
        match self.rx.recv_timeout(timeout) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(LinkEvent::Closed),
        }
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Connects party `id` to the others: it accepts connections from parties
/// with a larger index on `listener` and dials those with a smaller one at
/// `addrs`. Each dialled connection starts with the dialler's id (one byte).
pub fn connect(
    id: usize,
    listener: &TcpListener,
    addrs: &[SocketAddr; 3],
    timeout: Duration,
) -> std::io::Result<[Option<Box<dyn Link>>; 3]> {
    let mut links: [Option<Box<dyn Link>>; 3] = [None, None, None];
    for (j, addr) in addrs.iter().enumerate().take(id) {
        let start = std::time::Instant::now();
        let mut s = loop {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > timeout => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        s.write_all(&[id as u8])?;
        links[j] = Some(Box::new(TcpLink::new(s)?));
    }
    for _ in id + 1..3 {
        let (mut s, _) = listener.accept()?;
        let mut who = [0u8; 1];
        s.read_exact(&mut who)?;
        let j = who[0] as usize;
        if j <= id || j >= 3 || links[j].is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected peer id {j}"),
            ));
        }
        links[j] = Some(Box::new(TcpLink::new(s)?));
    }
    Ok(links)
}
