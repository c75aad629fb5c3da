//! Runs the same party code on three threads, over in-memory links or TCP on
//! loopback. Every test of the protocols goes through here.

use crate::channel::Channel;
use std::net::TcpListener;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Memory,
    Tcp,
}

/// Default receive timeout of harness channels.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `f(channel)` for parties 0, 1, 2 in parallel over in-memory links.
pub fn run3<T: Send>(f: impl Fn(&mut Channel) -> T + Sync) -> [T; 3] {
    run3_timeout(TIMEOUT, f)
}

/// Like [`run3`] with another receive timeout (long in-process runs).
pub fn run3_timeout<T: Send>(timeout: Duration, f: impl Fn(&mut Channel) -> T + Sync) -> [T; 3] {
    run3_shaped(timeout, None, f)
}

/// Like [`run3_timeout`] over links shaped like a network.
pub fn run3_shaped<T: Send>(
    timeout: Duration,
    shape: Option<crate::mem::Shape>,
    f: impl Fn(&mut Channel) -> T + Sync,
) -> [T; 3] {
    let links = crate::mem::shaped_mesh(shape);
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = links
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                s.spawn(move || {
                    let mut c = Channel::new(i, l, timeout);
                    f(&mut c)
                })
            })
            .collect();
        let mut out: Vec<T> = hs
            .into_iter()
            .map(|h| h.join().expect("party thread panicked"))
            .collect();
        let c = out.pop().expect("three results");
        let b = out.pop().expect("three results");
        let a = out.pop().expect("three results");
        [a, b, c]
    })
}

/// Like [`run3`] over TCP connections on 127.0.0.1 (free ports).
pub fn run3_tcp<T: Send>(f: impl Fn(&mut Channel) -> T + Sync) -> std::io::Result<[T; 3]> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs = [
        listeners[0].local_addr()?,
        listeners[1].local_addr()?,
        listeners[2].local_addr()?,
    ];
    let f = &f;
    let addrs = &addrs;
    std::thread::scope(|s| {
        let hs: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                s.spawn(move || -> std::io::Result<T> {
                    let links = crate::tcp::connect(i, l, addrs, TIMEOUT)?;
                    let mut c = Channel::new(i, links, TIMEOUT);
                    Ok(f(&mut c))
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in hs {
            out.push(h.join().expect("party thread panicked")?);
        }
        let c = out.pop().expect("three results");
        let b = out.pop().expect("three results");
        let a = out.pop().expect("three results");
        Ok([a, b, c])
    })
}
