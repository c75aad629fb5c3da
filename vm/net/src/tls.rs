//! Mutually authenticated TLS 1.3 links between the parties (and to the
//! client), with certificates pinned by the cluster file: a peer is accepted
//! only if it presents exactly one of the pinned certificates, so no
//! certificate authority is involved and host names do not matter.
//!
//! A [`TlsLink`] moves [`crate::channel`] frames like [`crate::tcp::TcpLink`]:
//! a reader thread drains the socket, decrypts and queues whole frames, so
//! two parties sending large messages to each other never deadlock. The TLS
//! state is shared under a lock that is never held across a blocking socket
//! call.

use crate::channel::{header_len, Link, LinkEvent, HEADER_LEN, MAX_FRAME};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, ClientConnection, Connection, DigitallySignedStruct, DistinguishedName,
    ServerConfig, ServerConnection, SignatureScheme, StreamOwned,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A certificate chain of one certificate and its private key.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The ring provider with AES-128-GCM first: the parties move gigabytes,
/// and AES-128 encrypts about a third faster than AES-256 at the same
/// security margin for this use (128-bit keys, fresh per connection).
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::*;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(p)
}

/// Accepts exactly the pinned certificates (and checks the handshake
/// signature with the pinned certificate's key).
#[derive(Debug)]
struct Pinned {
    allowed: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    fn check(&self, cert: &CertificateDer) -> Result<(), rustls::Error> {
        if self.allowed.iter().any(|c| c.as_ref() == cert.as_ref()) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer,
        _intermediates: &[CertificateDer],
        _server_name: &ServerName,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer,
        _intermediates: &[CertificateDer],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// The server side: presents `me`, requires a client certificate among
/// `allowed`. TLS 1.3 only, no session tickets.
pub fn server_config(
    me: &Identity,
    allowed: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let p = provider();
    let verifier = Arc::new(Pinned {
        allowed,
        provider: p.clone(),
    });
    let mut c = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![me.cert.clone()], me.key.clone_key())?;
    c.send_tls13_tickets = 0;
    Ok(Arc::new(c))
}

/// The dialling side: presents `me`, accepts only the server certificate
/// `expected`.
pub fn client_config(
    me: &Identity,
    expected: CertificateDer<'static>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let p = provider();
    let verifier = Arc::new(Pinned {
        allowed: vec![expected],
        provider: p.clone(),
    });
    let c = ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![me.cert.clone()], me.key.clone_key())?;
    Ok(Arc::new(c))
}

/// The name the dialler asks for (pinning makes it irrelevant).
fn server_name() -> ServerName<'static> {
    ServerName::try_from("party.ditto").expect("a valid DNS name")
}

/// Explains a handshake failure in the user's terms.
pub fn explain(e: &std::io::Error) -> String {
    let s = e.to_string();
    if s.contains("ApplicationVerificationFailure") {
        "its certificate is not the one pinned in the cluster file".into()
    } else if s.contains("CertificateUnknown")
        || s.contains("BadCertificate")
        || s.contains("UnknownCA")
        || s.contains("AccessDenied")
    {
        "it refused this side's certificate (not pinned in its cluster file)".into()
    } else if s.contains("CertificateRequired") {
        "it requires a client certificate".into()
    } else {
        s
    }
}

/// A TLS stream used for request/response messages (the client side and
/// the handshakes).
pub type ClientStream = StreamOwned<ClientConnection, TcpStream>;
pub type ServerStream = StreamOwned<ServerConnection, TcpStream>;

/// Dials `addr` and completes a TLS handshake that pins `expected`.
/// `timeout` bounds the connection, the handshake and every later read and
/// write on the stream (change it with `sock.set_read_timeout`).
pub fn dial(
    addr: &std::net::SocketAddr,
    me: &Identity,
    expected: CertificateDer<'static>,
    timeout: Duration,
) -> std::io::Result<ClientStream> {
    let sock = TcpStream::connect_timeout(addr, timeout)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    let cfg = client_config(me, expected).map_err(std::io::Error::other)?;
    let conn = ClientConnection::new(cfg, server_name()).map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Completes the server side of a handshake on an accepted socket.
pub fn accept(
    sock: TcpStream,
    cfg: Arc<ServerConfig>,
    timeout: Duration,
) -> std::io::Result<ServerStream> {
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    let conn = ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            // Let the alert reach the client: in TLS 1.3 it has finished its
            // side and may already be sending. Closing with its bytes unread
            // would reset the connection and lose the alert.
            while s.conn.wants_write() && s.conn.write_tls(&mut s.sock).is_ok() {}
            let _ = s.sock.shutdown(std::net::Shutdown::Write);
            let _ = s.sock.set_read_timeout(Some(Duration::from_secs(1)));
            let mut sink = [0u8; 4096];
            while matches!(s.sock.read(&mut sink), Ok(n) if n > 0) {}
            return Err(e);
        }
    }
    Ok(s)
}

/// The certificate the peer presented.
pub fn peer_cert(conn: &rustls::CommonState) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
}

/// Writes one message: its length (u64, little-endian), then the bytes.
pub fn write_msg(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u64).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one message written by [`write_msg`], refusing lengths above `max`.
pub fn read_msg(r: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message of {len} bytes (limit {max})"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Sends `msg` and reads the answer. In TLS 1.3 the server checks the
/// client's certificate after the client has finished its handshake, so a
/// refusal shows up here, as a broken connection with an alert waiting: the
/// error then carries the alert.
pub fn request(s: &mut ClientStream, msg: &[u8], max: u64) -> std::io::Result<Vec<u8>> {
    let r = write_msg(s, msg).and_then(|_| read_msg(s, max));
    r.map_err(|e| {
        use std::io::ErrorKind::*;
        if !matches!(e.kind(), BrokenPipe | ConnectionReset | UnexpectedEof) {
            return e;
        }
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(alert) if alert.kind() == InvalidData => alert,
            _ => e,
        }
    })
}

/// A party-to-party link over an established TLS connection.
pub struct TlsLink {
    sock: TcpStream,
    conn: Arc<Mutex<Connection>>,
    rx: Receiver<LinkEvent>,
    alive: Arc<AtomicBool>,
    wire_out: u64,
}

/// Plaintext bytes taken from the TLS connection per lock.
const CHUNK: usize = 1 << 20;

impl TlsLink {
    /// Takes over a handshaken stream (of either side). Reads and writes no
    /// longer time out: [`Link::recv`] has its own timeout.
    pub fn new(conn: Connection, sock: TcpStream) -> std::io::Result<TlsLink> {
        sock.set_read_timeout(None)?;
        sock.set_write_timeout(None)?;
        let mut reader = sock.try_clone()?;
        let conn = Arc::new(Mutex::new(conn));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, rx) = channel();
        let (c2, a2) = (conn.clone(), alive.clone());
        std::thread::spawn(move || {
            let mut fr = Framer::default();
            let mut raw = vec![0u8; 64 * 1024];
            let end = loop {
                let n = match reader.read(&mut raw) {
                    Ok(0) => break fr.eof(),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => break LinkEvent::Io(e.to_string()),
                };
                let mut frames: Vec<LinkEvent> = Vec::new();
                let r = {
                    let mut c = c2.lock().unwrap_or_else(|p| p.into_inner());
                    fr.feed(&mut c, &raw[..n], &mut frames)
                };
                let mut gone = false;
                for f in frames {
                    gone |= tx.send(f).is_err();
                }
                if gone {
                    break LinkEvent::Closed;
                }
                match r {
                    Ok(false) => {}
                    Ok(true) => break fr.eof(),
                    Err(ev) => break ev,
                }
            };
            a2.store(false, Ordering::Relaxed);
            let _ = tx.send(end);
        });
        Ok(TlsLink {
            sock,
            conn,
            rx,
            alive,
            wire_out: 0,
        })
    }

    pub fn from_client(s: ClientStream) -> std::io::Result<TlsLink> {
        let (conn, sock) = s.into_parts();
        TlsLink::new(conn.into(), sock)
    }

    pub fn from_server(s: ServerStream) -> std::io::Result<TlsLink> {
        let (conn, sock) = s.into_parts();
        TlsLink::new(conn.into(), sock)
    }
}

/// Reassembles frames from decrypted bytes.
#[derive(Default)]
struct Framer {
    header: [u8; HEADER_LEN],
    have: usize,
    body: Option<Vec<u8>>,
}

impl Framer {
    /// Feeds TLS bytes; appends finished frames. `Ok(true)` when the peer
    /// closed the TLS session.
    fn feed(
        &mut self,
        c: &mut Connection,
        mut tls: &[u8],
        out: &mut Vec<LinkEvent>,
    ) -> Result<bool, LinkEvent> {
        while !tls.is_empty() {
            c.read_tls(&mut tls)
                .map_err(|e| LinkEvent::Io(e.to_string()))?;
            let st = c
                .process_new_packets()
                .map_err(|e| LinkEvent::Io(format!("TLS: {e}")))?;
            loop {
                let target: &mut [u8] = match &mut self.body {
                    None => &mut self.header[self.have..],
                    Some(b) => &mut b[self.have..],
                };
                if target.is_empty() {
                    self.advance(out)?;
                    continue;
                }
                match c.reader().read(target) {
                    Ok(0) => return Ok(true),
                    Ok(n) => self.have += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(LinkEvent::Io(e.to_string())),
                }
            }
            if st.peer_has_closed() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A full header or body is in: start the body or emit the frame.
    fn advance(&mut self, out: &mut Vec<LinkEvent>) -> Result<(), LinkEvent> {
        match self.body.take() {
            None => {
                let len = header_len(&self.header);
                if len > MAX_FRAME {
                    return Err(LinkEvent::Oversized(len));
                }
                self.have = 0;
                self.body = Some(vec![0u8; len as usize]);
            }
            Some(payload) => {
                out.push(LinkEvent::Frame {
                    header: self.header,
                    payload,
                });
                self.have = 0;
            }
        }
        Ok(())
    }

    fn eof(&self) -> LinkEvent {
        match (&self.body, self.have) {
            (None, 0) => LinkEvent::Closed,
            (None, n) => LinkEvent::Short(n),
            (Some(_), n) => LinkEvent::Short(HEADER_LEN + n),
        }
    }
}

impl TlsLink {
    /// Encrypts and writes `parts` in order, a megabyte of plaintext at a time.
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), LinkEvent> {
        use std::io::ErrorKind::*;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut tls = Vec::with_capacity(CHUNK.min(total) + 1024);
        for chunk in parts.iter().flat_map(|p| p.chunks(CHUNK)) {
            tls.clear();
            {
                let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
                let mut off = 0;
                while off < chunk.len() {
                    off += c
                        .writer()
                        .write(&chunk[off..])
                        .map_err(|e| LinkEvent::Io(e.to_string()))?;
                    while c.wants_write() {
                        c.write_tls(&mut tls)
                            .map_err(|e| LinkEvent::Io(e.to_string()))?;
                    }
                }
            }
            self.sock.write_all(&tls).map_err(|e| match e.kind() {
                BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected => {
                    LinkEvent::Closed
                }
                _ => LinkEvent::Io(e.to_string()),
            })?;
            self.wire_out += tls.len() as u64;
        }
        Ok(())
    }
}

impl Link for TlsLink {
    fn send(&mut self, header: [u8; HEADER_LEN], payload: Vec<u8>) -> Result<(), LinkEvent> {
        // the header rides in the first record (a record of its own would
        // cost TLS's per-record overhead on every message)
        let k = payload.len().min(CHUNK - HEADER_LEN);
        let mut first = Vec::with_capacity(HEADER_LEN + k);
        first.extend_from_slice(&header);
        first.extend_from_slice(&payload[..k]);
        self.write_parts(&[&first, &payload[k..]])
    }

    fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), LinkEvent> {
        self.write_parts(&[&bytes])
    }

    fn recv(&mut self, timeout: Duration) -> Option<LinkEvent> {
        match self.rx.recv_timeout(timeout) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(LinkEvent::Closed),
        }
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    fn wire_out(&self) -> u64 {
        self.wire_out
    }
}

impl Drop for TlsLink {
    fn drop(&mut self) {
        if let Ok(mut c) = self.conn.lock() {
            c.send_close_notify();
            let mut tls = Vec::new();
            while c.wants_write() && c.write_tls(&mut tls).is_ok() {}
            let _ = self.sock.write_all(&tls);
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}
