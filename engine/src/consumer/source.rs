//! [`MsgSource`] over a `natsd_storage::Store`, so a stream hands its store
//! to its consumers as it is.
use bytes::Bytes;
use natsd_storage::{Store, StoredMsg};

use super::{MsgSource, SourceMsg, SourceState};

/// A store read as a consumer's stream, up to the last sequence that is
/// written: `StoreSource::new(&store)` reads all of it,
/// [`StoreSource::written`] stops where the store's last successful write
/// did, so a consumer never delivers a message that a failed write could
/// still take back.
pub struct StoreSource<'a, S: ?Sized> {
    store: &'a S,
    upto: u64,
}

impl<'a, S: Store + ?Sized> StoreSource<'a, S> {
    /// All of `store`.
    pub fn new(store: &'a S) -> Self {
        StoreSource {
            store,
            upto: u64::MAX,
        }
    }

    /// `store` up to sequence `upto`.
    pub fn written(store: &'a S, upto: u64) -> Self {
        StoreSource { store, upto }
    }

    fn within(&self, m: StoredMsg) -> Option<SourceMsg> {
        (m.seq <= self.upto).then(|| msg(m))
    }
}

fn msg(m: StoredMsg) -> SourceMsg {
    SourceMsg {
        seq: m.seq,
        subject: m.subject,
        hdr: Bytes::from(m.hdr),
        payload: Bytes::from(m.msg),
        ts: m.ts,
    }
}

impl<S: Store + ?Sized> MsgSource for StoreSource<'_, S> {
    fn state(&self) -> SourceState {
        let st = self.store.state();
        SourceState {
            msgs: st.msgs,
            first_seq: st.first_seq,
            last_seq: st.last_seq.min(self.upto),
        }
    }

    fn load_msg(&self, seq: u64) -> Option<SourceMsg> {
        if seq > self.upto {
            return None;
        }
        self.store.load_msg(seq).ok().map(msg)
    }

    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Option<SourceMsg> {
        self.within(self.store.load_next_msg(filter, start_seq).ok()?)
    }

    fn load_last_msg(&self, filter: &str) -> Option<SourceMsg> {
        self.within(self.store.load_last_msg(filter).ok()?)
    }

    fn num_pending(&self, start_seq: u64, filter: &str, last_per_subject: bool) -> u64 {
        self.store.num_pending(start_seq, filter, last_per_subject)
    }

    fn last_seqs(&self, filter: &str) -> Vec<u64> {
        self.store
            .subjects_state(filter)
            .into_values()
            .map(|s| s.last)
            .filter(|&seq| seq <= self.upto)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use natsd_storage::{MemStore, StoreLimits};

    use super::*;
    use crate::consumer::{
        AckPolicy, Consumer, ConsumerConfig, DeliverPolicy, Input, Output, ServerLimits,
        StreamFacts,
    };

    const WALL0: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn memstore_drives_a_consumer() {
        let mut store = MemStore::new(StoreLimits::default());
        for (i, s) in ["kv.a", "kv.b", "kv.a", "kv.c", "kv.b"].iter().enumerate() {
            store
                .store_msg(s, b"", format!("v{i}").as_bytes(), WALL0 + i as i64)
                .expect("stored");
        }
        let cfg = ConsumerConfig {
            durable_name: "W".into(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: "kv.>".into(),
            ..ConsumerConfig::default()
        };
        let facts = StreamFacts {
            subjects: vec!["kv.>".into()],
            replicas: 1,
            ..StreamFacts::default()
        };
        let now = crate::consumer::tests::origin();
        let src = StoreSource::new(&store);
        let mut c = Consumer::new(
            "KV",
            "W",
            cfg,
            &facts,
            &ServerLimits::default(),
            now,
            WALL0,
            None,
            &src,
        )
        .expect("valid");
        assert_eq!(c.info(now, &src).num_pending, 3);
        c.handle_input(
            now,
            Input::Next {
                reply: "r".into(),
                body: bytes::Bytes::from_static(b"10"),
            },
            &src,
        );
        let got: Vec<(u64, String, Bytes)> = std::iter::from_fn(|| c.poll_output())
            .filter_map(|o| match o {
                Output::Deliver(d) => Some((d.stream_seq, d.subject, d.payload)),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "kv.a".to_string(), Bytes::from_static(b"v2")),
                (4, "kv.c".to_string(), Bytes::from_static(b"v3")),
                (5, "kv.b".to_string(), Bytes::from_static(b"v4")),
            ]
        );
        let later = now + Duration::from_secs(1);
        let info = c.info(later, &src);
        assert_eq!(info.num_pending, 0);
        assert_eq!(info.num_ack_pending, 3);
        assert_eq!(info.num_waiting, 1);
    }
}
