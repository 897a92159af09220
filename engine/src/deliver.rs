//! Delivering one message to what matched it, for every connection kind.
//!
//! A match holds local subscriptions (clients and internal clients: the
//! frame is `MSG`/`HMSG` with the subscriber's sid) and route
//! subscriptions (interest a peer announced with `RS+`: the frame is
//! `RMSG`/`HMSG` with the account and, for queue groups the peer should
//! serve, their names). A message is sent over a route at most once
//! whatever number of the peer's subscriptions matched, and a message that
//! came over a route goes to local subscribers only: routes form a full
//! mesh, so nothing is forwarded and nothing comes back. A queue group's
//! member is picked at random across the cluster (a route's interest
//! weighted by the members behind it); a message from a route goes to a
//! local member of each group it names, as in nats-server.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use natsd_proto::encode;
use natsd_proto::route::{encode as route_encode, RoutedMsg};

use crate::client::{Context, SubRef, Subscription};
use crate::outbound::{Outbound, Pushed};
use crate::server::{Account, Server};
use crate::sublist::{MatchResult, QueueGroup};

/// A message being delivered.
#[derive(Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub headers: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// Who delivers: the publishing connection.
pub(crate) struct Sender<'a> {
    pub server: &'a Server,
    /// The publisher's connection id (for `echo`).
    pub cid: u64,
    /// Whether the publisher's own subscriptions get its messages.
    pub echo: bool,
    /// A message that came over a route: the queue groups the peer asked
    /// this server to serve (names separated by blanks). Such a message
    /// reaches local subscribers only.
    pub from_route: Option<&'a [u8]>,
}

/// One route a message goes to, and the queue groups it should serve.
struct RouteTarget {
    out: Arc<Outbound>,
    queues: Vec<Bytes>,
}

/// Deliver to every plain subscription and one member of each queue group
/// of `result` (matched in `acc`); true if anyone took it.
#[inline]
pub(crate) fn deliver_all(
    s: &Sender<'_>,
    now: Instant,
    ctx: &mut Context,
    acc: &Account,
    result: &MatchResult<SubRef>,
    msg: &Msg<'_>,
) -> bool {
    let mut delivered = false;
    let mut routes: Vec<RouteTarget> = Vec::new();
    for sub in &result.plain {
        if sub.is_route() {
            if s.from_route.is_none() {
                add_target(&mut routes, sub, None);
            }
            continue;
        }
        delivered |= deliver(s, now, ctx, acc, sub, msg);
    }
    for group in &result.queues {
        if let Some(asked) = s.from_route {
            if !names_contain(asked, &group.name) {
                continue;
            }
        }
        let took = match s.from_route {
            Some(_) => deliver_local_member(s, now, ctx, acc, &group.members, msg),
            None => deliver_one_member(s, now, ctx, acc, group, msg, &mut routes),
        };
        delivered |= took;
    }
    for target in &routes {
        delivered |= send_routed(s, ctx, acc, target, msg);
    }
    delivered
}

/// A message from a route: one local member of the group, picked at
/// random (the peer chose this server for the group).
fn deliver_local_member(
    s: &Sender<'_>,
    now: Instant,
    ctx: &mut Context,
    acc: &Account,
    members: &[SubRef],
    msg: &Msg<'_>,
) -> bool {
    let n = members.len();
    if n == 0 {
        return false;
    }
    let start = (ctx.next_random() % n as u64) as usize;
    (0..n)
        .map(|i| &members[(start + i) % n])
        .filter(|m| !m.is_route())
        .any(|m| deliver(s, now, ctx, acc, m, msg))
}

/// A message from a client: one member of the group across the cluster,
/// picked at random with each route's interest weighted by the members
/// behind it, as nats-server picks. A picked route gets the message with
/// the group named in it; a local member that cannot take it passes it on
/// to the next.
fn deliver_one_member(
    s: &Sender<'_>,
    now: Instant,
    ctx: &mut Context,
    acc: &Account,
    group: &QueueGroup<SubRef>,
    msg: &Msg<'_>,
    routes: &mut Vec<RouteTarget>,
) -> bool {
    let members = &group.members;
    let n = members.len();
    if n == 0 {
        return false;
    }
    let weight = |m: &SubRef| u64::from(if m.is_route() { m.weight().max(1) } else { 1 });
    let total: u64 = members.iter().map(weight).sum();
    let mut pick = ctx.next_random() % total;
    let mut first = 0;
    for (i, m) in members.iter().enumerate() {
        let w = weight(m);
        if pick < w {
            first = i;
            break;
        }
        pick -= w;
    }
    for i in 0..n {
        let member = &members[(first + i) % n];
        if member.is_route() {
            add_target(routes, member, Some(&group.name));
            return true;
        }
        if deliver(s, now, ctx, acc, member, msg) {
            return true;
        }
    }
    false
}

fn add_target(routes: &mut Vec<RouteTarget>, sub: &Subscription, queue: Option<&Bytes>) {
    let i = match routes.iter().position(|t| Arc::ptr_eq(&t.out, &sub.client)) {
        Some(i) => i,
        None => {
            routes.push(RouteTarget {
                out: sub.client.clone(),
                queues: Vec::new(),
            });
            routes.len() - 1
        }
    };
    if let Some(q) = queue {
        routes[i].queues.push(q.clone());
    }
}

/// Whether the blank-separated `names` contain `name`.
fn names_contain(names: &[u8], name: &[u8]) -> bool {
    names.split(|&b| b == b' ' || b == b'\t').any(|n| n == name)
}

/// `RMSG`/`HMSG` to one route.
fn send_routed(
    s: &Sender<'_>,
    ctx: &mut Context,
    acc: &Account,
    target: &RouteTarget,
    msg: &Msg<'_>,
) -> bool {
    let queues = target.queues.join(&b' ');
    let routed = RoutedMsg {
        account: Some(acc.name.as_bytes()),
        subject: msg.subject,
        reply: msg.reply,
        queues: &queues[..],
        headers: msg.headers,
        payload: msg.payload,
    };
    let size = 48
        + acc.name.len()
        + msg.subject.len()
        + msg.reply.map_or(0, <[u8]>::len)
        + queues.len()
        + routed.total_len();
    let pushed = target
        .out
        .push_with(size, 1, routed.total_len() as u64, |b| {
            route_encode::rmsg(b, &routed)
        });
    settle(s, ctx, pushed, &target.out);
    pushed != Pushed::Closed
}

/// After a frame was queued: the publisher's stall, the slow-consumer count
/// (logged by the receiver's driver, which knows its address) and the wake.
fn settle(s: &Sender<'_>, ctx: &mut Context, pushed: Pushed, out: &Arc<Outbound>) {
    ctx.stall |= pushed.stall();
    if pushed == Pushed::SlowConsumer {
        s.server
            .stats
            .slow_consumers
            .fetch_add(1, Ordering::Relaxed);
    }
    ctx.wake_if(pushed, out);
}

/// Deliver to one local subscription of account `acc`; false when it did
/// not take the message.
pub(crate) fn deliver(
    s: &Sender<'_>,
    now: Instant,
    ctx: &mut Context,
    acc: &Account,
    sub: &SubRef,
    msg: &Msg<'_>,
) -> bool {
    if !s.echo && sub.client.cid() == s.cid {
        return false;
    }
    if let Some(perms) = &sub.perms {
        if !perms.can_deliver(msg.subject) {
            return false;
        }
    }
    // Counted for every subscription: `UNSUB <sid> <max>` compares with
    // what was already delivered.
    let n = sub.delivered.fetch_add(1, Ordering::AcqRel) + 1;
    let max = sub.max.load(Ordering::Acquire);
    if max > 0 {
        if n > max {
            return false;
        }
        if n == max && !sub.removed.swap(true, Ordering::AcqRel) {
            remove_local(s.server, acc, sub);
        }
    }
    let with_headers = msg.headers.is_some() && sub.client.headers();
    let hdr_len = if with_headers {
        msg.headers.map_or(0, <[u8]>::len)
    } else {
        0
    };
    let size = 32
        + msg.subject.len()
        + sub.sid.len()
        + msg.reply.map_or(0, <[u8]>::len)
        + hdr_len
        + msg.payload.len();
    let pushed = sub
        .client
        .push_with(size, 1, (hdr_len + msg.payload.len()) as u64, |b| match msg
            .headers
            .filter(|_| with_headers)
        {
            Some(h) => encode::hmsg(b, msg.subject, &sub.sid, msg.reply, h, msg.payload),
            None => encode::msg(b, msg.subject, &sub.sid, msg.reply, msg.payload),
        });
    if let Some(prefix) = sub.trace.as_deref().filter(|_| pushed != Pushed::Closed) {
        trace_delivery(prefix, sub, msg, with_headers);
    }
    settle(s, ctx, pushed, &sub.client);
    if let (Some(tracker), Some(reply)) = (&sub.responses, msg.reply) {
        if pushed != Pushed::Closed {
            tracker.record(reply, now);
        }
    }
    pushed != Pushed::Closed
}

/// `->> [MSG subject sid [reply] size]` (or `HMSG` with both sizes) and
/// the payload line, on the subscriber's trace prefix.
#[cold]
fn trace_delivery(prefix: &str, sub: &Subscription, msg: &Msg<'_>, with_headers: bool) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let reply = msg
        .reply
        .map(|r| format!(" {}", text(r)))
        .unwrap_or_default();
    let head = format!("{} {}{reply}", text(msg.subject), text(&sub.sid));
    match msg.headers.filter(|_| with_headers) {
        Some(h) => {
            log::trace!(
                "{prefix}->> [HMSG {head} {} {}]",
                h.len(),
                h.len() + msg.payload.len()
            );
            let mut all = h.to_vec();
            all.extend_from_slice(msg.payload);
            crate::client::trace_payload(prefix, "->>", &all);
        }
        None => {
            log::trace!("{prefix}->> [MSG {head} {}]", msg.payload.len());
            crate::client::trace_payload(prefix, "->>", msg.payload);
        }
    }
}

/// Insert a local subscription into `acc`'s sublist and tell the routes.
pub(crate) fn insert_local(
    server: &Server,
    acc: &Account,
    sub: &SubRef,
) -> Result<(), crate::sublist::SublistError> {
    acc.sublist
        .insert(&sub.subject, sub.queue.as_deref(), sub.clone())?;
    if let Some(cluster) = server.cluster() {
        cluster.local_interest(&acc.name, &sub.subject, sub.queue.as_ref(), true);
    }
    Ok(())
}

/// Remove a local subscription from `acc`'s sublist and tell the routes.
pub(crate) fn remove_local(server: &Server, acc: &Account, sub: &Subscription) -> bool {
    let removed = acc
        .sublist
        .remove(&sub.subject, sub.queue.as_deref(), sub.key());
    if removed {
        if let Some(cluster) = server.cluster() {
            cluster.local_interest(&acc.name, &sub.subject, sub.queue.as_ref(), false);
        }
    }
    removed
}
