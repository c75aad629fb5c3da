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

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["cluster", "party", "client"])))]
pub struct KeygenArgs {
    /// One machine, for tests and demos: every party's and client's key
    /// and the cluster file, all here (whoever holds them all could sit in
    /// the middle of any link; a deployment uses --party on each host).
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// This host's key and certificate as party I (0, 1 or 2), in --out;
    /// its certificate then goes to `ditto combine`, its key nowhere.
    #[arg(long, value_name = "I")]
    party: Option<usize>,
    /// A client's key and certificate, in --out.
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// The folder for --party or --client.
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// With --party: this party's address (host or host:port), named in
    /// its certificate.
    #[arg(long)]
    address: Option<String>,
    /// With --cluster: the parties' hosts, P0,P1,P2 (host or host:port);
    /// default: the loopback interface on free ports.
    #[arg(long, value_delimiter = ',', requires = "cluster")]
    hosts: Option<Vec<String>>,
    /// Port for hosts given without one.
    #[arg(long, default_value_t = 7100)]
    port: u16,
    /// With --cluster: how many client identities to make.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

/// `ditto keygen`.
pub fn keygen_cmd(a: KeygenArgs) -> Result<()> {
    if let Some(path) = &a.cluster {
        for (flag, given) in [
            ("--out", a.out.is_some()),
            ("--address", a.address.is_some()),
        ] {
            if given {
                bail!("{flag} goes with --party or --client, not --cluster");
            }
        }
        keygen(path, a.hosts.as_deref(), a.port, a.clients, a.force)?;
        eprintln!(
            "note: one machine holds every private key (tests and demos); for a deployment run \
             `ditto keygen --party I --out DIR` on each host and `ditto combine`"
        );
        return Ok(());
    }
    let dir = a
        .out
        .as_ref()
        .context("--party and --client write into a folder: give --out DIR")?;
    let (name, sans) = match (&a.party, &a.client) {
        (Some(i), _) => {
            if *i > 2 {
                bail!("--party is 0, 1 or 2");
            }
            let mut sans = vec![format!("p{i}.ditto")];
            if let Some(addr) = &a.address {
                let full = with_port(addr, a.port);
                check_address(&full).with_context(|| format!("--address `{addr}`"))?;
                sans.push(host_of(&full));
            }
            (format!("p{i}"), sans)
        }
        (None, Some(c)) => {
            if a.address.is_some() {
                bail!("--address names a party's host; a client has none");
            }
            check_name(c)?;
            (c.clone(), vec![format!("{c}.ditto")])
        }
        (None, None) => unreachable!("clap requires a mode"),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = dir.join(format!("{name}.key"));
    if key.exists() && !a.force {
        bail!(
            "{} exists; pass --force to replace it (and tell whoever combines the cluster: the \
             old certificate stops working)",
            key.display()
        );
    }
    new_identity(dir, &name, sans)?;
    eprintln!(
        "wrote {} (private: it stays on this host) and {}: give the certificate{} to whoever runs \
         `ditto combine`",
        key.display(),
        dir.join(format!("{name}.crt")).display(),
        if a.party.is_some() {
            " and this party's address"
        } else {
            ""
        }
    );
    Ok(())
}

/// A client name: letters, digits, `-` and `_`.
fn check_name(n: &str) -> Result<()> {
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("`{n}` is not a client name (letters, digits, - and _)");
    }
    Ok(())
}

/// `host:port`, the port added when `h` has none.
fn with_port(h: &str, port: u16) -> String {
    let plain = h.contains(':') && !h.starts_with('[') && h.matches(':').count() == 1;
    if plain || (h.starts_with('[') && h.contains("]:")) {
        h.to_string()
    } else {
        format!("{h}:{port}")
    }
}

fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_matches(['[', ']']).to_string()
}

/// A key and self-signed certificate `name`.key / `name`.crt in `dir`.
fn new_identity(dir: &Path, name: &str, sans: Vec<String>) -> Result<Member> {
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
}

#[derive(clap::Args)]
pub struct CombineArgs {
    /// The cluster file to write; the certificates are copied beside it.
    #[arg(long)]
    cluster: PathBuf,
    /// Each party as ADDRESS=CERT (host:port and the certificate its
    /// `keygen --party` made), three times: P0, P1, P2 in order.
    #[arg(long = "party", value_name = "HOST:PORT=CERT", required = true)]
    parties: Vec<String>,
    /// Each client as NAME=CERT.
    #[arg(long = "client", value_name = "NAME=CERT", required = true)]
    clients: Vec<String>,
    /// Port for party hosts given without one.
    #[arg(long, default_value_t = 7100)]
    port: u16,
    #[arg(long)]
    force: bool,
}

/// `ditto combine`: the cluster file from the parties' and clients'
/// certificates — no private key is read or written.
pub fn combine(a: CombineArgs) -> Result<()> {
    if a.parties.len() != 3 {
        bail!(
            "--party is given three times (P0, P1, P2 in order), got {}",
            a.parties.len()
        );
    }
    if a.cluster.exists() && !a.force {
        bail!("{} exists; pass --force to replace it", a.cluster.display());
    }
    let dir = a
        .cluster
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let split = |s: &str, what: &str| -> Result<(String, PathBuf)> {
        let (l, r) = s.split_once('=').with_context(|| {
            format!(
                "{what} `{s}`: expected {what_form}",
                what_form = if what == "--party" {
                    "HOST:PORT=CERT"
                } else {
                    "NAME=CERT"
                }
            )
        })?;
        Ok((l.to_string(), PathBuf::from(r)))
    };
    // a certificate, checked, and copied beside the cluster file
    let mut seen: Vec<CertificateDer<'static>> = vec![];
    let mut take = |src: &Path, name: &str| -> Result<String> {
        let cert = load_cert(src).with_context(|| {
            format!(
                "{name}: {} is not a PEM certificate (give the .crt, never the .key)",
                src.display()
            )
        })?;
        if seen.contains(&cert) {
            bail!(
                "{name}: {} is a certificate already given for another member",
                src.display()
            );
        }
        seen.push(cert);
        let file = format!("{name}.crt");
        let dst = dir.join(&file);
        let same = std::fs::canonicalize(src).ok() == std::fs::canonicalize(&dst).ok();
        if !same {
            std::fs::copy(src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
        Ok(file)
    };
    let mut party = vec![];
    for (i, p) in a.parties.iter().enumerate() {
        let (addr, cert) = split(p, "--party")?;
        let addr = with_port(&addr, a.port);
        check_address(&addr).with_context(|| format!("P{i}'s address `{addr}`"))?;
        if let Some(j) = party
            .iter()
            .position(|m: &Member| m.address.as_deref() == Some(&addr))
        {
            bail!("P{j} and P{i} have the same address `{addr}`; each party needs its own");
        }
        party.push(Member {
            name: None,
            address: Some(addr),
            cert: take(&cert, &format!("p{i}"))?,
            key: format!("p{i}.key"),
        });
    }
    let mut client = vec![];
    for c in &a.clients {
        let (name, cert) = split(c, "--client")?;
        check_name(&name)?;
        if client
            .iter()
            .any(|m: &Member| m.name.as_deref() == Some(&name))
        {
            bail!("two clients are named `{name}`");
        }
        if name.starts_with('p') && name[1..].parse::<usize>().is_ok_and(|i| i < 3) {
            bail!("`{name}` is a party's name; choose another for the client");
        }
        client.push(Member {
            cert: take(&cert, &name)?,
            key: format!("{name}.key"),
            name: Some(name),
            address: None,
        });
    }
    write_file(&a.cluster, party, client)?;
    eprintln!(
        "wrote {} and the certificates beside it: give every host a copy of the folder; each \
         host puts only its own key (from `keygen --party I` or `--client NAME`) beside its copy",
        a.cluster.display()
    );
    Ok(())
}

/// Writes the cluster file.
fn write_file(path: &Path, party: Vec<Member>, client: Vec<Member>) -> Result<()> {
    let f = File {
        protocol: ditto_vm::wire::PROTOCOL,
        party,
        client,
    };
    let body = toml::to_string(&f).map_err(|e| anyhow!("cannot write the cluster file: {e}"))?;
    write(
        path,
        format!(
            "# ditto cluster file. Paths are relative to this file.\n\
             # Every host needs this file and the .crt files; each host needs only its own .key.\n\n{body}"
        ),
        false,
    )
}

/// `ditto keygen --cluster`: keys and self-signed certificates for the
/// three parties and `clients` clients, and the cluster file pinning them,
/// on one machine.
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
        Some(h) => h.iter().map(|h| with_port(h, port)).collect(),
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
    let mut party = Vec::new();
    for (i, a) in addresses.iter().enumerate() {
        let mut m = new_identity(
            &dir,
            &format!("p{i}"),
            vec![format!("p{i}.ditto"), host_of(a)],
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
        let mut m = new_identity(&dir, &name, vec![format!("{name}.ditto")])?;
        m.name = Some(name);
        client.push(m);
    }
    write_file(path, party, client)?;
    eprintln!(
        "wrote {} with P0 {}, P1 {}, P2 {} and {clients} client(s); keys and certificates beside it",
        path.display(),
        addresses[0],
        addresses[1],
        addresses[2]
    );
    Ok(())
}
