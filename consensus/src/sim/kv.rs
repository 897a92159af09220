//! The key/value state machine the simulated clients use, with client sessions so that a
//! retried operation takes effect once (RAFT thesis §6.3).

use std::collections::BTreeMap;

use bytes::Bytes;

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: u8,
        /// The value (unique per put in the simulator).
        value: u64,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: u8,
    },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(self) -> u8 {
        match self {
            KvOp::Put { key, .. } | KvOp::Get { key } => key,
        }
    }
}

/// A client's operation as it travels in a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// The client.
    pub client: u32,
    /// The client's operation number (1, 2, ...); retries keep it.
    pub seq: u64,
    /// The operation.
    pub op: KvOp,
}

impl Command {
    /// Its bytes in a log entry.
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(22);
        b.extend_from_slice(&self.client.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        match self.op {
            KvOp::Put { key, value } => {
                b.extend_from_slice(&[0, key]);
                b.extend_from_slice(&value.to_le_bytes());
            }
            KvOp::Get { key } => b.extend_from_slice(&[1, key]),
        }
        Bytes::from(b)
    }

    /// The command in a log entry, if the entry holds one.
    pub fn decode(b: &[u8]) -> Option<Command> {
        let client = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?);
        let seq = u64::from_le_bytes(b.get(4..12)?.try_into().ok()?);
        let op = match (b.get(12)?, b.get(13)?) {
            (0, key) => KvOp::Put {
                key: *key,
                value: u64::from_le_bytes(b.get(14..22)?.try_into().ok()?),
            },
            (1, key) => KvOp::Get { key: *key },
            _ => return None,
        };
        Some(Command { client, seq, op })
    }
}

/// The state: values and, per client, its last operation and that operation's result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    values: BTreeMap<u8, u64>,
    sessions: BTreeMap<u32, (u64, Option<u64>)>,
}

impl Kv {
    /// Applies a command; returns its result (a put's is `None`, a get's the value), or
    /// `None` for a stale retry of an operation the client has already moved past.
    pub fn apply(&mut self, c: &Command) -> Option<Option<u64>> {
        self.apply_with(c, true)
    }

    /// [`Kv::apply`], or without `sessions` a store that executes every retry again.
    pub fn apply_with(&mut self, c: &Command, sessions: bool) -> Option<Option<u64>> {
        if let Some((seq, result)) = self.sessions.get(&c.client).filter(|_| sessions) {
            if c.seq == *seq {
                return Some(*result);
            }
            if c.seq < *seq {
                return None;
            }
        }
        let result = match c.op {
            KvOp::Put { key, value } => {
                self.values.insert(key, value);
                None
            }
            KvOp::Get { key } => self.values.get(&key).copied(),
        };
        self.sessions.insert(c.client, (c.seq, result));
        Some(result)
    }

    /// The state as snapshot bytes.
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::new();
        b.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for (k, v) in &self.values {
            b.push(*k);
            b.extend_from_slice(&v.to_le_bytes());
        }
        for (c, (seq, result)) in &self.sessions {
            b.extend_from_slice(&c.to_le_bytes());
            b.extend_from_slice(&seq.to_le_bytes());
            b.extend_from_slice(&result.map_or(u64::MAX, |v| v).to_le_bytes());
        }
        Bytes::from(b)
    }

    /// The state in snapshot bytes (from [`Kv::encode`]).
    pub fn decode(b: &[u8]) -> Option<Kv> {
        let n = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
        let mut kv = Kv::default();
        let mut at = 4;
        for _ in 0..n {
            let k = *b.get(at)?;
            kv.values.insert(
                k,
                u64::from_le_bytes(b.get(at + 1..at + 9)?.try_into().ok()?),
            );
            at += 9;
        }
        while at < b.len() {
            let c = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
            let seq = u64::from_le_bytes(b.get(at + 4..at + 12)?.try_into().ok()?);
            let r = u64::from_le_bytes(b.get(at + 12..at + 20)?.try_into().ok()?);
            kv.sessions.insert(c, (seq, (r != u64::MAX).then_some(r)));
            at += 20;
        }
        Some(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_take_effect_once_and_state_round_trips() {
        let mut kv = Kv::default();
        let put = Command {
            client: 1,
            seq: 1,
            op: KvOp::Put { key: 2, value: 9 },
        };
        assert_eq!(Command::decode(&put.encode()), Some(put));
        assert_eq!(kv.apply(&put), Some(None));
        let get = Command {
            client: 2,
            seq: 1,
            op: KvOp::Get { key: 2 },
        };
        assert_eq!(kv.apply(&get), Some(Some(9)));
        let put2 = Command {
            client: 1,
            seq: 2,
            op: KvOp::Put { key: 2, value: 10 },
        };
        kv.apply(&put2);
        assert_eq!(
            kv.apply(&get),
            Some(Some(9)),
            "a retry returns its first result"
        );
        assert_eq!(kv.apply(&put), None, "a stale retry does nothing");
        assert_eq!(Kv::decode(&kv.encode()), Some(kv));
    }
}
