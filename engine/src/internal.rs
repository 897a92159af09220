//! Internal clients and the services that drive them (sans-IO).
//!
//! A [`Service`] (the `$SYS` request handlers, JetStream) runs on a stage
//! thread of its own. It reaches the message fabric only through
//! [`Internal`]: one internal [`ClientConn`] per account it works in, so its
//! subscriptions, publishes, permissions and imports behave exactly as a
//! client's. Deliveries to an internal client are queued on its outbound
//! queue like any client's (as `MSG`/`HMSG` frames); the stage is woken the
//! same way a reactor is, and [`Internal::take_deliveries`] parses the
//! frames back into [`Delivery`] values for the service.
//!
//! An internal client's queue never drops a delivery: past its stall mark
//! the publishing connections are paused instead (the fast-producer stall),
//! which is the back-pressure from a stage to the reactors.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use natsd_proto::{Limits, ServerOpParser, ServerOpRef};

use crate::client::{ClientConn, ConnSnapshot, Context};
use crate::outbound::{Outbound, Owner, Taken};
use crate::server::{Account, Server};

/// Something that happened to the server, for the system service.
#[derive(Debug, Clone)]
pub enum Event {
    /// A client passed CONNECT.
    Connected(ConnSnapshot),
    /// A client that had passed CONNECT closed (the snapshot has why).
    Disconnected(ConnSnapshot),
    /// Lame-duck mode began.
    LameDuck,
    /// The server is shutting down.
    Shutdown,
}

/// A message delivered to one of a service's subscriptions. Its fields share
/// a 32 KiB chunk with other deliveries: copy what is kept past the batch.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subscription it matched (as [`Internal::subscribe`] returned).
    pub sid: u64,
    /// The account the subscription lives in.
    pub account: Arc<Account>,
    /// Subject it was published to.
    pub subject: Bytes,
    /// Reply subject.
    pub reply: Option<Bytes>,
    /// Header block (`NATS/1.0 ...`), if any.
    pub headers: Option<Bytes>,
    /// Payload.
    pub payload: Bytes,
}

/// A server-side service driven by a stage thread. Like every machine in
/// natsd it never reads a clock or blocks: time is passed in, and all it
/// sends goes through `net`.
pub trait Service: Send {
    /// Called once before anything else: subscribe here.
    fn start(&mut self, now: Instant, net: &mut Internal);
    /// A message reached one of the service's subscriptions.
    fn handle_msg(&mut self, now: Instant, msg: Delivery, net: &mut Internal);
    /// The stage handed over every delivery it had queued: finish the batch
    /// (write what was stored, then send the replies held for it). The
    /// reactors of what it published are woken after this.
    fn end_batch(&mut self, _now: Instant, _net: &mut Internal) {}
    /// A server event (only the stage that receives events gets these).
    fn handle_event(&mut self, _now: Instant, _event: Event, _net: &mut Internal) {}
    /// The configuration was reloaded (`Server::options` holds the new one).
    fn reloaded(&mut self, _now: Instant, _net: &mut Internal) {}
    /// The server is shutting down: the last chance to publish, before the
    /// stage stops and the reactors flush and close their connections.
    fn shutdown(&mut self, _now: Instant, _net: &mut Internal) {}
    /// The instant [`poll_timeout`](Self::poll_timeout) named has passed.
    fn handle_timeout(&mut self, _now: Instant, _net: &mut Internal) {}
    /// When [`handle_timeout`](Self::handle_timeout) wants to run next.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// A stage's read buffer larger than this is released once drained.
const BUF_KEEP: usize = 1024 * 1024;

/// Deliveries' frames are copied into shared chunks of this size: one
/// allocation per chunk rather than two per delivery, and small enough that
/// freeing one does not make glibc consolidate its heap.
const ARENA_CHUNK: usize = 32 * 1024;

/// Client ids of internal clients: far above any real client's.
const INTERNAL_CID_BASE: u64 = 1 << 62;

/// Whether `cid` is one of a stage's internal clients.
pub fn is_internal_cid(cid: u64) -> bool {
    cid >= INTERNAL_CID_BASE
}

struct Client {
    conn: ClientConn,
    parser: ServerOpParser,
    buf: BytesMut,
    /// Publishes only (see [`Internal::publish_relayed`]); never subscribes.
    relay: bool,
}

/// A stage's internal clients, one per account, and the context their
/// publishes run in.
pub struct Internal {
    server: Arc<Server>,
    stage: usize,
    clients: Vec<Client>,
    ctx: Context,
    next_sid: u64,
    /// sid -> index into `clients`.
    sids: HashMap<u64, usize>,
    /// The chunk deliveries' frames are copied into.
    arena: BytesMut,
}

impl Internal {
    /// The internal side of stage `stage`: `stage` is the index the io
    /// layer routes wake-ups by (after the reactors'); `seed` drives
    /// queue-member choice.
    pub fn new(server: Arc<Server>, stage: usize, seed: u64) -> Self {
        Internal {
            server,
            stage,
            clients: Vec::new(),
            ctx: Context::new(seed),
            next_sid: 1,
            sids: HashMap::new(),
            arena: BytesMut::new(),
        }
    }

    /// The server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Whether `out` belongs to one of this stage's internal clients.
    pub fn owns(&self, out: &Outbound) -> bool {
        out.owner().reactor == self.stage
    }

    fn client(&mut self, now: Instant, account: &Arc<Account>) -> usize {
        self.client_of(now, account, false)
    }

    /// The stage's internal client in `account` (`relay`: the one that only
    /// publishes), created on first use.
    fn client_of(&mut self, now: Instant, account: &Arc<Account>, relay: bool) -> usize {
        if let Some(i) = self
            .clients
            .iter()
            .position(|c| c.relay == relay && Arc::ptr_eq(c.conn.account(), account))
        {
            return i;
        }
        let slot = self.clients.len();
        let owner = Owner {
            reactor: self.stage,
            slot,
        };
        let cid = INTERNAL_CID_BASE + ((self.stage as u64) << 20) + slot as u64;
        let conn = ClientConn::internal(self.server.clone(), now, account.clone(), owner, cid);
        self.clients.push(Client {
            conn,
            parser: ServerOpParser::new(Limits {
                max_control_line: usize::MAX,
                max_payload: usize::MAX,
            }),
            buf: BytesMut::new(),
            relay,
        });
        slot
    }

    /// Subscribe to `subject` (optionally in a queue group) in `account`;
    /// returns the subscription id deliveries carry.
    pub fn subscribe(
        &mut self,
        now: Instant,
        account: &Arc<Account>,
        subject: &str,
        queue: Option<&str>,
    ) -> Result<u64, String> {
        let i = self.client(now, account);
        let sid = self.next_sid;
        self.next_sid += 1;
        self.clients[i].conn.subscribe(
            subject.as_bytes(),
            queue.map(str::as_bytes),
            sid.to_string().as_bytes(),
        )?;
        self.sids.insert(sid, i);
        Ok(sid)
    }

    /// Remove a subscription made by [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&mut self, sid: u64) {
        if let Some(i) = self.sids.remove(&sid) {
            self.clients[i].conn.unsubscribe(sid.to_string().as_bytes());
        }
    }

    /// Publish in `account`.
    pub fn publish(
        &mut self,
        now: Instant,
        account: &Arc<Account>,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        let i = self.client(now, account);
        self.clients[i]
            .conn
            .publish(now, &mut self.ctx, subject, reply, headers, payload);
        // Stages never pause themselves; the stall is for client readers.
        self.ctx.stall = false;
    }

    /// [`publish`](Self::publish) through a second internal client of the
    /// account, so that this stage's own subscriptions receive it too (a
    /// client never sees its own publishes): a stream's republish reaches
    /// a stream whose subjects capture it, as nats-server's streams, each
    /// publishing through a client of its own, store each other's
    /// republishes.
    pub fn publish_relayed(
        &mut self,
        now: Instant,
        account: &Arc<Account>,
        subject: &[u8],
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        let i = self.client_of(now, account, true);
        self.clients[i]
            .conn
            .publish(now, &mut self.ctx, subject, None, headers, payload);
        self.ctx.stall = false;
    }

    /// Deliver a message routed by `to` and shown as `subject` in
    /// `account` (JetStream consumer deliveries: see
    /// [`ClientConn::deliver_as`]).
    #[allow(clippy::too_many_arguments)]
    pub fn deliver_as(
        &mut self,
        now: Instant,
        account: &Arc<Account>,
        to: &str,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        let i = self.client(now, account);
        self.clients[i].conn.deliver_as(
            now,
            &mut self.ctx,
            to.as_bytes(),
            subject.as_bytes(),
            reply.map(str::as_bytes),
            headers,
            payload,
        );
        self.ctx.stall = false;
    }

    /// Every message queued for this stage's internal clients, in order.
    /// Each delivery owns one small copy of its frame: the read buffer is
    /// reused from batch to batch (handing it out whole would free and
    /// regrow a large buffer per batch).
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        self.take_deliveries_into(&mut out);
        out
    }

    /// [`take_deliveries`](Self::take_deliveries) appending to `out`, so a
    /// driver can reuse one vector from batch to batch.
    pub fn take_deliveries_into(&mut self, out: &mut Vec<Delivery>) {
        for c in &mut self.clients {
            let before = c.buf.len();
            if let Taken::Closed(reason) = c.conn.outbound().take(&mut c.buf) {
                log::warn!("internal client closed: {reason}");
            }
            let n = c.buf.len() - before;
            if n > 0 {
                c.conn.outbound().written(n);
            }
            let mut pos = 0;
            while pos < c.buf.len() {
                let frame = &c.buf[pos..];
                let step = match c.parser.parse_ref(frame) {
                    Ok(step) => step,
                    Err(e) => {
                        // Frames come from our own encoder; this cannot
                        // happen short of a bug. Start clean rather than loop.
                        log::error!("internal client frame error: {e}");
                        c.parser.reset();
                        pos = c.buf.len();
                        break;
                    }
                };
                if let Some(op) = step.op {
                    let frame = &frame[..step.consumed];
                    if let Some(d) = delivery(c.conn.account(), frame, op, &mut self.arena) {
                        out.push(d);
                    }
                }
                if step.consumed == 0 {
                    break;
                }
                pos += step.consumed;
            }
            let _ = c.buf.split_to(pos);
            if c.buf.is_empty() && c.buf.capacity() > BUF_KEEP {
                c.buf = BytesMut::new();
            }
        }
    }

    /// Outbound queues that need their owner woken after this stage's
    /// publishes. The driver wakes each owner (its own queues it drains
    /// with [`take_deliveries`](Self::take_deliveries)).
    pub fn take_wakes(&mut self) -> Vec<Arc<Outbound>> {
        std::mem::take(&mut self.ctx.wakes)
    }
}

/// The delivery a parsed frame holds; `frame` is the frame's bytes, which
/// the op's fields borrow from.
fn delivery(
    account: &Arc<Account>,
    frame: &[u8],
    op: ServerOpRef<'_>,
    arena: &mut BytesMut,
) -> Option<Delivery> {
    let (subject, sid, reply, headers, payload) = match op {
        ServerOpRef::Msg {
            subject,
            sid,
            reply,
            payload,
        } => (subject, sid, reply, None, payload),
        ServerOpRef::HMsg {
            subject,
            sid,
            reply,
            headers,
            payload,
        } => (subject, sid, reply, Some(headers), payload),
        ServerOpRef::Err(text) => {
            log::warn!(
                "internal client in {}: -ERR {}",
                account.name,
                String::from_utf8_lossy(text)
            );
            return None;
        }
        _ => return None,
    };
    let sid = std::str::from_utf8(sid).ok()?.parse().ok()?;
    if arena.capacity() - arena.len() < frame.len() {
        *arena = BytesMut::with_capacity(ARENA_CHUNK.max(frame.len()));
    }
    arena.extend_from_slice(frame);
    let owned = arena.split().freeze();
    let field = |f: &[u8]| {
        let start = f.as_ptr() as usize - frame.as_ptr() as usize;
        owned.slice(start..start + f.len())
    };
    Some(Delivery {
        sid,
        account: account.clone(),
        subject: field(subject),
        reply: reply.map(field),
        headers: headers.map(field),
        payload: field(payload),
    })
}

#[cfg(test)]
mod tests {
    // A test owns its clock: one real Instant as the starting point.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::options::Options;

    #[test]
    fn internal_clients_exchange_messages_across_stages() {
        let server = Arc::new(Server::new(Options::default(), [7u8; 32]));
        let now = Instant::now();
        let acc = server.global.clone();
        let mut a = Internal::new(server.clone(), 10, 1);
        let mut b = Internal::new(server.clone(), 11, 2);
        let sid = b.subscribe(now, &acc, "svc.>", None).unwrap();
        a.publish(now, &acc, b"svc.x", Some(b"_INBOX.1"), None, b"hello");
        let wakes = a.take_wakes();
        assert_eq!(wakes.len(), 1);
        assert!(b.owns(&wakes[0]));
        assert!(!a.owns(&wakes[0]));
        let got = b.take_deliveries();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sid, sid);
        assert_eq!(&got[0].subject[..], b"svc.x");
        assert_eq!(got[0].reply.as_deref(), Some(&b"_INBOX.1"[..]));
        assert_eq!(&got[0].payload[..], b"hello");
        // Headers survive the trip.
        a.publish(
            now,
            &acc,
            b"svc.y",
            None,
            Some(b"NATS/1.0\r\nA: b\r\n\r\n"),
            b"p",
        );
        let got = b.take_deliveries();
        assert_eq!(
            got[0].headers.as_deref(),
            Some(&b"NATS/1.0\r\nA: b\r\n\r\n"[..])
        );
        b.unsubscribe(sid);
        a.publish(now, &acc, b"svc.z", None, None, b"");
        assert!(b.take_deliveries().is_empty());
        // Internal clients are not connections.
        assert_eq!(
            server
                .stats
                .connections
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn relayed_publishes_reach_the_stage_itself() {
        let server = Arc::new(Server::new(Options::default(), [7u8; 32]));
        let now = Instant::now();
        let acc = server.global.clone();
        let mut a = Internal::new(server.clone(), 10, 1);
        let sid = a.subscribe(now, &acc, "rp.>", None).unwrap();
        // A client does not see its own publishes ...
        a.publish(now, &acc, b"rp.1", None, None, b"plain");
        assert!(a.take_deliveries().is_empty());
        // ... a relayed one comes from another client of the stage.
        a.publish_relayed(now, &acc, b"rp.2", Some(b"NATS/1.0\r\nA: b\r\n\r\n"), b"r");
        let wakes = a.take_wakes();
        assert!(wakes.iter().all(|w| a.owns(w)));
        let got = a.take_deliveries();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].sid, &got[0].subject[..]), (sid, &b"rp.2"[..]));
        assert_eq!(&got[0].payload[..], b"r");
        assert!(is_internal_cid(wakes[0].cid()));
    }

    #[test]
    fn accounts_are_isolated_for_internal_clients() {
        let server = Arc::new(Server::new(Options::default(), [7u8; 32]));
        let now = Instant::now();
        let sys = server.system_account();
        assert_eq!(sys.name, "$SYS");
        let mut a = Internal::new(server.clone(), 10, 1);
        a.subscribe(now, &sys, "x", None).unwrap();
        let mut b = Internal::new(server.clone(), 11, 1);
        b.publish(now, &server.global, b"x", None, None, b"");
        assert!(a.take_deliveries().is_empty());
        b.publish(now, &sys, b"x", None, None, b"");
        assert_eq!(a.take_deliveries().len(), 1);
        assert!(a.subscribe(now, &sys, "bad..subject", None).is_err());
    }
}
