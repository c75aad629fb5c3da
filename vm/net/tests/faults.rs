//! Transports under load and under faults: a large matmul over TCP, and peers
//! that vanish, stall, or send short, oversized, out-of-order or wrong-step
//! frames. Every failure must be a typed error naming the peer, in time.

use ditto_net::channel::frame;
use ditto_net::{run3_tcp, Channel};
use ditto_protocol::share::{deal, open};
use ditto_protocol::{Comm, CommError, Party, Phase, ProtocolError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

fn seed(id: usize) -> [u8; 32] {
    [id as u8 + 1; 32]
}

#[test]
fn tcp_matmul_128x768x768_equals_the_ring_product() {
    let (m, k, n) = (128, 768, 768);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<u64> = (0..m * k).map(|_| rng.random()).collect();
    let y: Vec<u64> = (0..k * n).map(|_| rng.random()).collect();
    let sx = deal(&x, || rng.random());
    let sy = deal(&y, || rng.random());
    let r = run3_tcp(|c: &mut Channel| {
        let id = c.id();
        let mut p = Party::setup(c, seed(id)).unwrap();
        p.matmul(&sx[id], &sy[id], 1, m, k, n, false).unwrap()
    })
    .expect("loopback TCP");
    let z = open(&r).expect("consistent shares");
    assert_eq!(z, ditto_protocol::kernels::matmul(&x, &y, m, k, n));
    // spot-check against a naive dot product
    let dot = (0..k).fold(0u64, |acc, l| {
        acc.wrapping_add(x[5 * k + l].wrapping_mul(y[l * n + 7]))
    });
    assert_eq!(z[5 * n + 7], dot);
}

/// Runs parties 0 and 1 honestly (a multiplication after setup) over TCP
/// while party 2 runs `evil`; returns the errors of 0 and 1 and how long
/// they took.
fn with_evil_p2(
    evil: impl Fn(&mut Channel) + Sync,
    timeout: Duration,
) -> Vec<(ProtocolError, Duration)> {
    with_evil_p2_over(false, evil, timeout)
}

fn identity(name: &str) -> ditto_net::tls::Identity {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    ditto_net::tls::Identity {
        cert: CertificateDer::from(c.cert.der().to_vec()),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.signing_key.serialize_der())),
    }
}

/// [`with_evil_p2`] over TCP or over TLS links.
fn with_evil_p2_over(
    tls: bool,
    evil: impl Fn(&mut Channel) + Sync,
    timeout: Duration,
) -> Vec<(ProtocolError, Duration)> {
    let party = |c: &mut Channel| {
        c.set_timeout(timeout);
        if c.id() == 2 {
            evil(c);
            return None;
        }
        let start = Instant::now();
        let id = c.id();
        let res = Party::setup(c, seed(id)).and_then(|mut p| {
            let s = ditto_protocol::AShare {
                a: vec![1u64; 1000],
                b: vec![2u64; 1000],
            };
            p.mul(&s, &s)?;
            p.mul(&s, &s)
        });
        Some((res.expect_err("the protocol must fail"), start.elapsed()))
    };
    let r = if tls {
        let ids = [identity("p0"), identity("p1"), identity("p2")];
        ditto_net::harness::run3_tls(&ids, party)
    } else {
        run3_tcp(party)
    };
    r.expect("loopback links").into_iter().flatten().collect()
}

fn names_p2(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::Comm(c) => c.peer() == 2 && e.to_string().contains("P2"),
        ProtocolError::Malformed { peer, .. } => *peer == 2,
        ProtocolError::Preprocessing(_) => false,
    }
}

#[test]
fn a_killed_party_is_named_within_the_timeout() {
    // P2 completes setup, then dies (its links close).
    let errs = with_evil_p2(
        |c| {
            let _ = Party::setup(c, seed(2));
        },
        Duration::from_secs(10),
    );
    assert_eq!(errs.len(), 2);
    for (e, t) in &errs {
        // P1 waits for P2's share; P0 may first fail waiting on P1 — either
        // way the first error names the vanished party or the chain from it.
        assert!(t.as_secs_f64() < 10.0, "took {t:?}");
        assert!(
            matches!(
                e,
                ProtocolError::Comm(CommError::Closed { .. } | CommError::Timeout { .. })
            ),
            "{e}"
        );
    }
    assert!(errs.iter().any(|(e, _)| names_p2(e)), "{:?}", errs);
}

#[test]
fn a_stalled_party_times_out_with_its_name() {
    let errs = with_evil_p2(
        |c| {
            let _ = Party::setup(c, seed(2));
            std::thread::sleep(Duration::from_millis(1500));
        },
        Duration::from_millis(300),
    );
    let timeouts: Vec<_> = errs
        .iter()
        .filter(|(e, _)| matches!(e, ProtocolError::Comm(CommError::Timeout { peer: 2, .. })))
        .collect();
    assert!(!timeouts.is_empty(), "{errs:?}");
    for (e, t) in timeouts {
        assert!(t.as_millis() < 1500, "{e} after {t:?}");
        assert!(e.to_string().contains("no message from P2"), "{e}");
    }
}

/// P2 completes setup, then sends `bad(seq)` to both peers as its next
/// message, where `seq` is the sequence number each peer expects (setup sent
/// one frame to P0, none to P1).
fn evil_frame(bad: impl Fn(u64) -> Vec<u8> + Sync) -> impl Fn(&mut Channel) + Sync {
    move |c: &mut Channel| {
        let _ = Party::setup(c, seed(2));
        // Raw bytes on the links, bypassing the framing.
        c.send_raw(0, bad(1));
        c.send_raw(1, bad(0));
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn malformed_frames_are_rejected_with_the_reason() {
    malformed_frames_over(false);
}

#[test]
fn malformed_frames_over_tls_are_rejected_with_the_reason() {
    malformed_frames_over(true);
}

fn malformed_frames_over(tls: bool) {
    // A frame for another step (the VM labels frames by instruction).
    let errs = with_evil_p2_over(
        tls,
        evil_frame(|seq| frame(77, seq, &[0u8; 8000])),
        Duration::from_secs(5),
    );
    assert!(
        errs.iter().any(|(e, _)| matches!(
            e,
            ProtocolError::Comm(CommError::WrongStep {
                peer: 2,
                got: 77,
                ..
            })
        )),
        "{errs:?}"
    );
    // Out of order (a sequence number 5 ahead of the one due).
    let errs = with_evil_p2_over(
        tls,
        evil_frame(|seq| frame(0, seq + 5, &[0u8; 8000])),
        Duration::from_secs(5),
    );
    assert!(
        errs.iter().any(|(e, _)| matches!(
            e,
            ProtocolError::Comm(CommError::OutOfOrder { peer: 2, .. })
        )),
        "{errs:?}"
    );
    // A frame whose payload has the wrong length for 1000 elements.
    let errs = with_evil_p2_over(
        tls,
        evil_frame(|seq| frame(0, seq, &[0u8; 13])),
        Duration::from_secs(5),
    );
    assert!(
        errs.iter()
            .any(|(e, _)| matches!(e, ProtocolError::Malformed { peer: 2, .. })),
        "{errs:?}"
    );
    // A header announcing 2^40 bytes.
    let huge = |seq| {
        let mut f = frame(0, seq, &[]);
        f[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        f
    };
    let errs = with_evil_p2_over(tls, evil_frame(huge), Duration::from_secs(5));
    assert!(
        errs.iter()
            .any(|(e, _)| matches!(e, ProtocolError::Comm(CommError::Oversized { peer: 2, .. }))),
        "{errs:?}"
    );
    // A truncated frame followed by a hang-up.
    let short = |seq| {
        let mut f = frame(0, seq, &[0u8; 8000]);
        f.truncate(100);
        f
    };
    let errs = with_evil_p2_over(tls, evil_frame(short), Duration::from_secs(5));
    assert!(
        errs.iter().any(|(e, _)| matches!(
            e,
            ProtocolError::Comm(CommError::ShortFrame { peer: 2, .. })
        )),
        "{errs:?}"
    );
}

#[test]
fn large_simultaneous_sends_do_not_deadlock() {
    // Each party pushes 64 MiB to both others in the same round.
    let r = run3_tcp(|c: &mut Channel| {
        let id = c.id();
        let big = vec![id as u8; 64 << 20];
        let others: Vec<usize> = (0..3).filter(|&j| j != id).collect();
        let got = c
            .exchange(
                Phase::Online,
                others.iter().map(|&j| (j, big.clone())).collect(),
                &others,
            )
            .unwrap();
        got.iter().map(|m| (m.len(), m[0])).collect::<Vec<_>>()
    })
    .expect("loopback TCP");
    for (id, got) in r.iter().enumerate() {
        let others: Vec<u8> = (0..3u8).filter(|&j| j as usize != id).collect();
        assert_eq!(
            got,
            &others.iter().map(|&j| (64 << 20, j)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn counting_matches_payloads_and_headers() {
    let r = ditto_net::run3(|c: &mut Channel| {
        let to = (c.id() + 1) % 3;
        let from = (c.id() + 2) % 3;
        c.exchange(Phase::Online, vec![(to, vec![0u8; 100])], &[from])
            .unwrap();
        c.exchange(Phase::Offline, vec![(to, vec![0u8; 10])], &[from])
            .unwrap();
        (c.stats(), c.wire_bytes())
    });
    for (s, wire) in r {
        assert_eq!(
            (
                s.bytes_online,
                s.bytes_offline,
                s.rounds_online,
                s.rounds_offline
            ),
            (100, 10, 1, 1)
        );
        assert_eq!(wire, 110 + 2 * ditto_net::HEADER_LEN as u64);
    }
}
