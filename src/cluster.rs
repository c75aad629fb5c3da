//! The cluster file (TOML) and `ditto keygen`.
//!
//! ```toml
//! protocol = 2
//! [[party]]            # P0, P1, P2 in order
//! address = "10.0.0.1:7100"
//! cert = "p0.crt"      # pinned: a peer must present exactly this certificate
//! key = "p0.key"       # needed only on P0's host
//! [[client]]
//! name = "client"
//! cert = "client.crt"
//! key = "client.key"   # needed only on the client's host
//! ```
//!
//! Paths are relative to the cluster file.

use anyhow::{anyhow, bail, Context, Result};
use ditto_net::tls::Identity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct File {
    protocol: u16,
    party: Vec<Member>,
    #[serde(default)]
    client: Vec<Member>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Member {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    cert: String,
    key: String,
}

/// A loaded cluster: addresses and pinned certificates.
pub struct Cluster {
    pub path: PathBuf,
    dir: PathBuf,
    parties: Vec<Member>,
    clients: Vec<Member>,
    pub party_certs: [CertificateDer<'static>; 3],
    pub client_certs: Vec<(String, CertificateDer<'static>)>,
}

fn load_cert(path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path)
        .map_err(|e| anyhow!("cannot read certificate {}: {e}", path.display()))
}

impl Cluster {
    pub fn load(path: &Path) -> Result<Cluster> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read cluster file {}", path.display()))?;
        let f: File = toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if f.protocol != ditto_vm::wire::PROTOCOL {
            bail!(
                "{}: protocol {} (this build speaks {})",
                path.display(),
                f.protocol,
                ditto_vm::wire::PROTOCOL
            );
        }
        if f.party.len() != 3 {
            bail!(
                "{}: {} [[party]] entries, a cluster has exactly 3",
                path.display(),
                f.party.len()
            );
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut certs = Vec::new();
        for (i, p) in f.party.iter().enumerate() {
            if p.address.is_none() {
                bail!("{}: P{i} has no address", path.display());
            }
            certs.push(load_cert(&dir.join(&p.cert))?);
        }
        let client_certs = f
            .client
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = c.name.clone().unwrap_or_else(|| format!("client{i}"));
                Ok((name, load_cert(&dir.join(&c.cert))?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Cluster {
            path: path.to_path_buf(),
            dir,
            party_certs: certs.try_into().map_err(|_| anyhow!("three parties"))?,
            parties: f.party,
            clients: f.client,
            client_certs,
        })
    }

    /// Party `i`'s address, resolved.
    pub fn address(&self, i: usize) -> Result<SocketAddr> {
        let a = self.parties[i].address.as_deref().unwrap_or_default();
        a.to_socket_addrs()
            .with_context(|| format!("P{i}'s address `{a}` does not resolve"))?
            .next()
            .ok_or_else(|| anyhow!("P{i}'s address `{a}` does not resolve"))
    }

    fn identity(&self, m: &Member, who: &str) -> Result<Identity> {
        let cert = load_cert(&self.dir.join(&m.cert))?;
        let kp = self.dir.join(&m.key);
        let key = PrivateKeyDer::from_pem_file(&kp).map_err(|e| {
            anyhow!(
                "cannot read {who}'s private key {}: {e} (each host needs its own key)",
                kp.display()
            )
        })?;
        Ok(Identity { cert, key })
    }

    pub fn party_identity(&self, i: usize) -> Result<Identity> {
        self.identity(&self.parties[i], &format!("P{i}"))
    }

    /// The identity of client `name` (default: the first client).
    pub fn client_identity(&self, name: Option<&str>) -> Result<Identity> {
        let pick = match name {
            None => self.clients.first(),
            Some(n) => self
                .clients
                .iter()
                .enumerate()
                .find(|(i, c)| c.name.clone().unwrap_or_else(|| format!("client{i}")) == n)
                .map(|(_, c)| c),
        };
        let m = pick.ok_or_else(|| {
            anyhow!(
                "{} has no client{}",
                self.path.display(),
                name.map(|n| format!(" named `{n}`")).unwrap_or_default()
            )
        })?;
        self.identity(m, "the client")
    }
}

/// Writes `bytes` to `path`, readable by its owner only when `private`
/// (also when the file existed before with wider permissions).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>, private: bool) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    f.write_all(bytes.as_ref())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `host:port` with a port in 1..=65535 and a host that is an IP address
/// (IPv6 in brackets) or a DNS name.
fn check_address(a: &str) -> Result<()> {
    let (host, port) = a.rsplit_once(':').context("expected host:port")?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => bail!("`{port}` is not a port (1 to 65535)"),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| anyhow!("`{v6}` is not an IPv6 address"))?;
        return Ok(());
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        bail!("`{host}` is neither an IP address nor a host name");
    }
    Ok(())
}

/// A free port on the loopback interface.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `ditto keygen`: keys and self-signed certificates for the three parties
/// and `clients` clients, and the cluster file pinning them.
pub fn keygen(
    path: &Path,
    hosts: Option<&[String]>,
    port: u16,
    clients: usize,
    force: bool,
) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} exists; pass --force to replace it and its keys",
            path.display()
        );
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let addresses: Vec<String> = match hosts {
        Some(h) if h.len() != 3 => bail!("--hosts takes three hosts (P0,P1,P2), got {}", h.len()),
        Some(h) => h
            .iter()
            .map(|h| {
                if h.contains(':') && !h.starts_with('[') && h.matches(':').count() == 1 {
                    h.clone()
                } else {
                    format!("{h}:{port}")
                }
            })
            .collect(),
        None => (0..3)
            .map(|_| Ok(format!("127.0.0.1:{}", free_port()?)))
            .collect::<Result<_>>()?,
    };
    for (i, a) in addresses.iter().enumerate() {
        check_address(a).with_context(|| format!("--hosts: P{i}'s address `{a}`"))?;
        if let Some(j) = addresses[..i].iter().position(|b| b == a) {
            bail!("--hosts: P{j} and P{i} have the same address `{a}`; each party needs its own");
        }
    }
    if clients == 0 {
        bail!("--clients must be at least 1: a cluster without clients answers no query");
    }
    let gen = |name: &str, sans: Vec<String>| -> Result<Member> {
        let c = rcgen::generate_simple_self_signed(sans)
            .map_err(|e| anyhow!("cannot generate a key for {name}: {e}"))?;
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        write(&dir.join(&cert), c.cert.pem(), false)?;
        write(&dir.join(&key), c.signing_key.serialize_pem(), true)?;
        Ok(Member {
            name: None,
            address: None,
            cert,
            key,
        })
    };
    let mut party = Vec::new();
    for (i, a) in addresses.iter().enumerate() {
        let host = a.rsplit_once(':').map(|(h, _)| h).unwrap_or(a);
        let mut m = gen(
            &format!("p{i}"),
            vec![
                format!("p{i}.ditto"),
                host.trim_matches(['[', ']']).to_string(),
            ],
        )?;
        m.address = Some(a.clone());
        party.push(m);
    }
    let mut client = Vec::new();
    for i in 0..clients {
        let name = if clients == 1 {
            "client".to_string()
        } else {
            format!("client{i}")
        };
        let mut m = gen(&name, vec![format!("{name}.ditto")])?;
        m.name = Some(name);
        client.push(m);
    }
    let f = File {
        protocol: ditto_vm::wire::PROTOCOL,
        party,
        client,
    };
    let body = toml::to_string(&f).map_err(|e| anyhow!("cannot write the cluster file: {e}"))?;
    write(
        path,
        format!(
            "# ditto cluster file (written by `ditto keygen`). Paths are relative to this file.\n\
             # Every host needs this file and the .crt files; each host needs only its own .key.\n\n{body}"
        ),
        false,
    )?;
    eprintln!(
        "wrote {} with P0 {}, P1 {}, P2 {} and {clients} client(s); keys and certificates beside it",
        path.display(),
        addresses[0],
        addresses[1],
        addresses[2]
    );
    Ok(())
}
