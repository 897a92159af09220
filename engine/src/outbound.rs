//! A connection's outbound queue: the bytes waiting to be written to its
//! socket, shared between every publisher that delivers to it and the
//! reactor that owns (and writes) it.
//!
//! Publishers append whole frames under a short per-connection lock and never
//! block on the socket. The owning reactor swaps the queued bytes out, writes
//! them without the lock, and reports how much it wrote. A connection whose
//! queued-plus-unwritten bytes would pass `max_pending` is a slow consumer: it
//! is marked closed and the frame is dropped, so the publisher never waits.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;

use crate::client::CloseReason;

/// Where a connection lives in the io layer: which reactor and which slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Reactor index.
    pub reactor: usize,
    /// Slot (mio token) inside that reactor.
    pub slot: usize,
}

#[derive(Debug)]
struct State {
    buf: BytesMut,
    /// Bytes queued in `buf` plus bytes taken by the writer and not yet written.
    pending: usize,
    closed: Option<CloseReason>,
    out_msgs: u64,
    out_bytes: u64,
}

/// The outbound side of one client connection.
#[derive(Debug)]
pub struct Outbound {
    cid: u64,
    owner: Owner,
    max_pending: usize,
    /// An internal client's queue: never dropped as a slow consumer; past
    /// half of `max_pending` publishers are only asked to stall.
    lossless: bool,
    headers: AtomicBool,
    flush_pending: AtomicBool,
    state: Mutex<State>,
}

/// What happened to a frame offered to [`Outbound::push_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; the owner already has a wake-up coming. `stall`: more than
    /// half of `max_pending` now waits, so the publisher should pause
    /// (nats-server's fast-producer stall) before this becomes a slow consumer.
    Queued {
        /// Past half of `max_pending`.
        stall: bool,
    },
    /// Queued; the caller must wake the owner (first frame since its last
    /// flush). `stall` as for `Queued`.
    Wake {
        /// Past half of `max_pending`.
        stall: bool,
    },
    /// Dropped: the connection just became a slow consumer. The caller must wake the owner.
    SlowConsumer,
    /// Dropped: the connection is closed or closing.
    Closed,
}

impl Pushed {
    /// Whether the publisher should pause: the frame was queued and the
    /// receiver is more than half way to `max_pending`.
    pub fn stall(self) -> bool {
        matches!(
            self,
            Pushed::Queued { stall: true } | Pushed::Wake { stall: true }
        )
    }
}

/// What the owner took from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Bytes were appended to the writer's buffer (possibly none).
    Bytes,
    /// The connection was closed by someone else (e.g. slow consumer).
    Closed(CloseReason),
}

impl Outbound {
    /// A new, empty queue.
    pub fn new(cid: u64, owner: Owner, max_pending: usize) -> Arc<Self> {
        Self::build(cid, owner, max_pending, false)
    }

    /// The queue of an internal client (a stage's): it is never closed as a
    /// slow consumer. Past half of `stall_at * 2` queued bytes every push
    /// reports a stall, so publishers pause until the stage catches up.
    pub fn new_internal(cid: u64, owner: Owner, stall_at: usize) -> Arc<Self> {
        Self::build(cid, owner, stall_at.saturating_mul(2), true)
    }

    fn build(cid: u64, owner: Owner, max_pending: usize, lossless: bool) -> Arc<Self> {
        Arc::new(Outbound {
            cid,
            owner,
            max_pending,
            lossless,
            headers: AtomicBool::new(false),
            flush_pending: AtomicBool::new(false),
            state: Mutex::new(State {
                buf: BytesMut::new(),
                pending: 0,
                closed: None,
                out_msgs: 0,
                out_bytes: 0,
            }),
        })
    }

    /// The connection's client id.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// Where the connection lives.
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Whether the client announced header support in CONNECT.
    pub fn headers(&self) -> bool {
        self.headers.load(Ordering::Relaxed)
    }

    pub(crate) fn set_headers(&self, on: bool) {
        self.headers.store(on, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only byte buffers and
        // counters behind, which stay consistent; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append one frame written by `encode`. `size_hint` is the frame's size
    /// (used for the `max_pending` check before encoding); `msgs` counts the
    /// messages the frame carries and `payload_bytes` their payload size.
    pub fn push_with(
        &self,
        size_hint: usize,
        msgs: u64,
        payload_bytes: u64,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Pushed {
        let mut st = self.lock();
        if st.closed.is_some() {
            return Pushed::Closed;
        }
        if !self.lossless && st.pending + size_hint > self.max_pending {
            st.closed = Some(CloseReason::SlowConsumerPendingBytes);
            st.buf = BytesMut::new();
            return Pushed::SlowConsumer;
        }
        let before = st.buf.len();
        encode(&mut st.buf);
        let added = st.buf.len() - before;
        st.pending += added;
        let stall = st.pending > self.max_pending / 2;
        st.out_msgs += msgs;
        st.out_bytes += payload_bytes;
        drop(st);
        if self.flush_pending.swap(true, Ordering::AcqRel) {
            Pushed::Queued { stall }
        } else {
            Pushed::Wake { stall }
        }
    }

    /// Mark closed (idempotent; the first reason wins). Queued bytes stay so
    /// a final `-ERR` can still be flushed.
    pub fn mark_closed(&self, reason: CloseReason) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(reason);
        }
    }

    /// Why the connection was closed, if it was.
    pub fn closed(&self) -> Option<CloseReason> {
        self.lock().closed
    }

    /// Owner only: move everything queued into `wbuf` (the writer's own
    /// buffer). Clears the wake-up flag first, so a frame pushed after this
    /// call asks for a new wake-up.
    pub fn take(&self, wbuf: &mut BytesMut) -> Taken {
        self.flush_pending.store(false, Ordering::Release);
        let mut st = self.lock();
        if st.buf.is_empty() {
            return st.closed.map_or(Taken::Bytes, Taken::Closed);
        }
        if wbuf.is_empty() {
            std::mem::swap(&mut st.buf, wbuf);
        } else {
            wbuf.extend_from_slice(&st.buf);
            st.buf.clear();
        }
        Taken::Bytes
    }

    /// Owner only: `n` bytes taken by [`take`](Self::take) reached the socket.
    pub fn written(&self, n: usize) {
        let mut st = self.lock();
        st.pending = st.pending.saturating_sub(n);
    }

    /// Bytes queued or taken and not yet written.
    pub fn pending(&self) -> usize {
        self.lock().pending
    }

    /// Messages and payload bytes delivered to this connection so far.
    pub fn out_counts(&self) -> (u64, u64) {
        let st = self.lock();
        (st.out_msgs, st.out_bytes)
    }
}
