//! Runs the same party code on three threads, over in-memory links or TCP on
//! loopback. Every test of the protocols goes through here.

use crate::channel::Channel;
use std::net::{SocketAddr, TcpListener};
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

/// A party's links to the others (`None` at its own index).
type Links = [Option<Box<dyn crate::Link>>; 3];

/// Runs `f` on three parties whose links `connect` builds over sockets on
/// 127.0.0.1 (free ports).
fn run3_sockets<T: Send>(
    connect: impl Fn(usize, &TcpListener, &[SocketAddr; 3]) -> std::io::Result<Links> + Sync,
    f: impl Fn(&mut Channel) -> T + Sync,
) -> std::io::Result<[T; 3]> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs = [
        listeners[0].local_addr()?,
        listeners[1].local_addr()?,
        listeners[2].local_addr()?,
    ];
    let (f, connect, addrs) = (&f, &connect, &addrs);
    std::thread::scope(|s| {
        let hs: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                s.spawn(move || -> std::io::Result<T> {
                    let mut c = Channel::new(i, connect(i, l, addrs)?, TIMEOUT);
                    Ok(f(&mut c))
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in hs {
            out.push(h.join().expect("party thread panicked")?);
        }
        out.try_into()
            .map_err(|_| std::io::Error::other("three parties"))
    })
}

/// Like [`run3`] over TCP connections on 127.0.0.1 (free ports).
pub fn run3_tcp<T: Send>(f: impl Fn(&mut Channel) -> T + Sync) -> std::io::Result<[T; 3]> {
    run3_sockets(|i, l, addrs| crate::tcp::connect(i, l, addrs, TIMEOUT), f)
}

/// Like [`run3_tcp`] over mutually authenticated TLS with pinned
/// certificates (`ids[i]` is party i's identity).
pub fn run3_tls<T: Send>(
    ids: &[crate::tls::Identity; 3],
    f: impl Fn(&mut Channel) -> T + Sync,
) -> std::io::Result<[T; 3]> {
    use crate::tls::{accept, dial, server_config, TlsLink};
    use std::io::{Read, Write};
    let certs: Vec<_> = ids.iter().map(|i| i.cert.clone()).collect();
    run3_sockets(
        |i, l, addrs| {
            let mut links: Links = [None, None, None];
            for (j, slot) in links.iter_mut().enumerate().take(i) {
                let mut c = dial(&addrs[j], &ids[i], certs[j].clone(), TIMEOUT)?;
                c.write_all(&[i as u8])?;
                c.flush()?;
                *slot = Some(Box::new(TlsLink::from_client(c)?));
            }
            let cfg = server_config(&ids[i], certs.clone()).map_err(std::io::Error::other)?;
            for _ in i + 1..3 {
                let (sock, _) = l.accept()?;
                let mut c = accept(sock, cfg.clone(), TIMEOUT)?;
                let mut who = [0u8; 1];
                c.read_exact(&mut who)?;
                let j = who[0] as usize;
                if j <= i || j >= 3 {
                    return Err(std::io::Error::other(format!("unexpected peer {j}")));
                }
                links[j] = Some(Box::new(TlsLink::from_server(c)?));
            }
            Ok(links)
        },
        f,
    )
}
