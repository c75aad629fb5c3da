//! TLS links with pinned certificates: large frames both ways at once,
//! refusal of an unpinned certificate, and a peer that vanishes.

use ditto_net::channel::{frame, header, Link, LinkEvent};
use ditto_net::tls::{accept, dial, server_config, Identity, TlsLink};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::TcpListener;
use std::time::Duration;

fn identity(name: &str) -> Identity {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    Identity {
        cert: CertificateDer::from(c.cert.der().to_vec()),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.signing_key.serialize_der())),
    }
}

/// A connected pair (server side, client side).
fn pair(
    server: &Identity,
    client: &Identity,
    pinned_client: CertificateDer<'static>,
) -> Result<(TlsLink, TlsLink), String> {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = server_config(server, vec![pinned_client]).unwrap();
    let t = Duration::from_secs(5);
    let srv = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        accept(s, cfg, t).map_err(|e| e.to_string())
    });
    let c = dial(&addr, client, server.cert.clone(), t).map_err(|e| e.to_string());
    let s = srv.join().unwrap();
    let (s, c) = (s?, c?);
    Ok((
        TlsLink::from_server(s).unwrap(),
        TlsLink::from_client(c).unwrap(),
    ))
}

#[test]
fn large_frames_cross_without_deadlock() {
    let (a, b) = (identity("a"), identity("b"));
    let (mut x, mut y) = pair(&a, &b, b.cert.clone()).expect("handshake");
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i * 7) as u8).collect();
    let f = frame(3, 0, &big);
    let hd = header(big.len() as u64, 3, 0);
    let big2 = big.clone();
    let h = std::thread::spawn(move || {
        y.send(hd, big2).unwrap();
        let got = y.recv(Duration::from_secs(20));
        (y, got)
    });
    x.send(hd, big.clone()).unwrap();
    let got = x.recv(Duration::from_secs(20));
    let (y, got_y) = h.join().unwrap();
    for g in [got, got_y] {
        match g {
            Some(LinkEvent::Frame { header, payload }) => {
                assert!(header == hd && payload == big, "frame corrupted")
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    // TLS adds a little per record
    let over = x.wire_out() as f64 / f.len() as f64;
    assert!((1.0..1.01).contains(&over), "overhead {over}");
    // a vanished peer is noticed
    drop(y);
    match x.recv(Duration::from_secs(5)) {
        Some(LinkEvent::Closed) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(!x.alive());
}

#[test]
fn unpinned_certificates_are_refused() {
    let (a, b, stranger) = (identity("a"), identity("b"), identity("x"));
    // the server does not know the client's certificate
    let Err(e) = pair(&a, &stranger, b.cert.clone()) else {
        panic!("an unpinned client was let in")
    };
    assert!(
        e.contains("Certificate") || e.contains("certificate"),
        "{e}"
    );
    // the client expects another server certificate
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = server_config(&stranger, vec![b.cert.clone()]).unwrap();
    let t = Duration::from_secs(5);
    let srv = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        accept(s, cfg, t).map(|_| ())
    });
    let Err(e) = dial(&addr, &b, a.cert.clone(), t) else {
        panic!("an unpinned server was accepted")
    };
    assert_eq!(
        ditto_net::tls::explain(&e),
        "its certificate is not the one pinned in the cluster file"
    );
    assert!(srv.join().unwrap().is_err());
}
