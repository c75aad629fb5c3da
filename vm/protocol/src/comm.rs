//! The transport interface the protocols talk through. The protocol crate
//! never opens a socket: `ditto-net` implements [`Comm`] over in-memory links,
//! TCP and TLS, and counts bytes and rounds.
//!
//! Protocols communicate in explicit rounds: one [`Comm::exchange`] call sends
//! this round's messages and then receives this round's messages. A round is
//! counted for a party whenever its exchange sends or receives anything, under
//! the exchange's [`Phase`].

use std::fmt;

/// Online messages depend on inputs; offline (helper) messages do not and
/// may be sent ahead of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Online,
    Offline,
}

/// Bytes and rounds one party has sent and taken part in, by phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes_online: u64,
    pub bytes_offline: u64,
    pub rounds_online: u64,
    pub rounds_offline: u64,
    pub messages: u64,
    /// Bytes sent to each party (both phases), for per-link estimates.
    pub bytes_to: [u64; 3],
}

impl Stats {
    pub fn bytes(&self) -> u64 {
        self.bytes_online + self.bytes_offline
    }
    /// Component-wise difference (for per-primitive accounting).
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            bytes_online: self.bytes_online - earlier.bytes_online,
            bytes_offline: self.bytes_offline - earlier.bytes_offline,
            rounds_online: self.rounds_online - earlier.rounds_online,
            rounds_offline: self.rounds_offline - earlier.rounds_offline,
            messages: self.messages - earlier.messages,
            bytes_to: [0, 1, 2].map(|i| self.bytes_to[i] - earlier.bytes_to[i]),
        }
    }
    pub fn add(&self, o: &Stats) -> Stats {
        Stats {
            bytes_online: self.bytes_online + o.bytes_online,
            bytes_offline: self.bytes_offline + o.bytes_offline,
            rounds_online: self.rounds_online + o.rounds_online,
            rounds_offline: self.rounds_offline + o.rounds_offline,
            messages: self.messages + o.messages,
            bytes_to: [0, 1, 2].map(|i| self.bytes_to[i] + o.bytes_to[i]),
        }
    }
}

/// The step of the control messages a deployed party exchanges between
/// queries (not a protocol step).
pub const STEP_CONTROL: u64 = u64::MAX;
/// The step of the offline phase a deployed party prepares between queries.
pub const STEP_PREPARE: u64 = u64::MAX - 1;

/// A step as the logs name it.
pub fn step_name(step: u64) -> String {
    match step {
        STEP_CONTROL => "the control exchange between queries".into(),
        STEP_PREPARE => "the offline preparation between queries".into(),
        s => format!("step {s}"),
    }
}

/// What went wrong on a link; every variant names the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommError {
    #[error("link to P{peer} closed during {}", step_name(*step))]
    Closed { peer: usize, step: u64 },
    #[error("P{peer} sent a short frame during {} ({got} bytes)", step_name(*step))]
    ShortFrame { peer: usize, step: u64, got: usize },
    #[error("P{peer} sent an oversized frame during {} ({len} bytes, limit {limit})", step_name(*step))]
    Oversized {
        peer: usize,
        step: u64,
        len: u64,
        limit: u64,
    },
    #[error("P{peer} sent a frame for {}, expected {}", step_name(*got), step_name(*expected))]
    WrongStep {
        peer: usize,
        expected: u64,
        got: u64,
    },
    #[error("P{peer} sent frame #{got} out of order (expected #{expected}) during {}", step_name(*step))]
    OutOfOrder {
        peer: usize,
        step: u64,
        expected: u64,
        got: u64,
    },
    #[error("no message from P{peer} within {millis} ms during {}", step_name(*step))]
    Timeout { peer: usize, step: u64, millis: u64 },
    #[error("I/O error on the link to P{peer}: {message}")]
    Io { peer: usize, message: String },
}

impl CommError {
    pub fn peer(&self) -> usize {
        match self {
            CommError::Closed { peer, .. }
            | CommError::ShortFrame { peer, .. }
            | CommError::Oversized { peer, .. }
            | CommError::WrongStep { peer, .. }
            | CommError::OutOfOrder { peer, .. }
            | CommError::Timeout { peer, .. }
            | CommError::Io { peer, .. } => *peer,
        }
    }
}

/// A party's connection to the other two.
pub trait Comm: Send {
    /// This party's index, 0..3.
    fn id(&self) -> usize;
    /// Sends each `(to, bytes)`, then receives one message from each party of
    /// `from`, in that order. One round.
    fn exchange(
        &mut self,
        phase: Phase,
        sends: Vec<(usize, Vec<u8>)>,
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, CommError>;
    /// Labels the following messages (e.g. with the VM's instruction index);
    /// a peer's frame with another label is rejected as [`CommError::WrongStep`].
    fn set_step(&mut self, step: u64);
    fn stats(&self) -> Stats;
    /// Whether the link records this party's view (privacy tests).
    fn observing(&self) -> bool {
        false
    }
    /// Adds a value this party opened — reconstructed in the clear from
    /// what it received, like a conversion's c or a B2A's b ⊕ r — to the
    /// recorded view, so that a privacy test sees what the party learns
    /// and not only the shares it was sent.
    fn observe(&mut self, _opened: Vec<u8>) {}
}

/// A protocol failure: a transport error, or a peer's message that does not
/// parse (wrong length for the expected elements).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Comm(#[from] CommError),
    #[error("P{peer} sent a malformed message for {what}: {detail}")]
    Malformed {
        peer: usize,
        what: &'static str,
        detail: String,
    },
    /// The online phase asked for a conversion the offline phase did not
    /// prepare (a different program or input shape than the trace's).
    #[error("preprocessing out of step: {0}")]
    Preprocessing(String),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Online => "online",
            Phase::Offline => "offline",
        })
    }
}
