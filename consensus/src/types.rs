//! The values a RAFT node stores and exchanges: identities, entries, hard state, snapshots.

use bytes::Bytes;

/// A RAFT term. Plain numbers: terms and indexes are counted and compared, never confused
/// with identities.
pub type Term = u64;

/// A position in the replicated log; the first entry has index 1, 0 means "none".
pub type LogIndex = u64;

/// A node's identity. nats-server names a peer with 8 bytes (a hash of the server name);
/// [`NodeId::from_name`] and [`NodeId::name`] map those bytes one to one onto this number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The node whose 8-byte nats-server peer name is `name`.
    pub fn from_name(name: [u8; 8]) -> NodeId {
        NodeId(u64::from_be_bytes(name))
    }

    /// The 8-byte nats-server peer name of this node.
    pub fn name(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// What an entry means. The numbers are nats-server's `EntryType` values, which travel on
/// the wire; only the kinds this machine produces or understands are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// Application data (a proposal).
    Normal = 0,
    /// The membership as a new leader sees it; a leader's first entry in its term.
    PeerState = 2,
    /// Adds the voter named by the entry's 8 bytes (takes effect when appended).
    AddPeer = 3,
    /// Removes the voter named by the entry's 8 bytes (takes effect when appended).
    RemovePeer = 4,
    /// Asks the voter named by the entry's 8 bytes to start an election at once.
    LeaderTransfer = 5,
}

impl EntryType {
    /// The entry type for a wire byte, if this machine knows it.
    pub fn from_byte(b: u8) -> Option<EntryType> {
        match b {
            0 => Some(EntryType::Normal),
            2 => Some(EntryType::PeerState),
            3 => Some(EntryType::AddPeer),
            4 => Some(EntryType::RemovePeer),
            5 => Some(EntryType::LeaderTransfer),
            _ => None,
        }
    }
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created it.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// What it means.
    pub kind: EntryType,
    /// Application bytes (Normal) or the encoded argument of an internal entry.
    pub data: Bytes,
}

/// The state that must survive a restart before a node says anything that depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The current term.
    pub term: Term,
    /// Whom this node voted for in `term`.
    pub vote: Option<NodeId>,
    /// A commit index this node knew; written without sync, so it may lag after a crash.
    pub commit: LogIndex,
}

/// A snapshot of the application state machine at `index`, replacing the log up to there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The voters as of `index`.
    pub voters: Vec<NodeId>,
    /// The application's bytes.
    pub data: Bytes,
}

/// What a node finds in its storage when it starts.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The last snapshot written, if any.
    pub snapshot: Option<Snapshot>,
    /// The log entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}
