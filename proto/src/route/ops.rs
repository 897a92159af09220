//! Route ops as values, generic over how they hold bytes: `&[u8]` slices of
//! the read buffer ([`RouteOpRef`]) or `Bytes` split off it
//! (`RouteOp<Bytes>`). One definition serves both, so they cannot drift.

/// An op a server sends to another over a route.
///
/// `B` is `&[u8]` (borrowed from the caller's buffer) or `Bytes` (owned).
/// Fields are the wire's bytes, unvalidated: checking subjects and accounts
/// is the caller's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp<B> {
    /// `INFO {json}`: the raw JSON text (see [`RouteInfo`](super::RouteInfo)).
    Info(B),
    /// `CONNECT {json}`: the raw JSON text (see [`RouteConnect`](super::RouteConnect)).
    Connect(B),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (only sent to a peer that asked for `verbose`).
    Ok,
    /// `-ERR '<text>'`: the text between the quotes. nats-server logs it
    /// and closes the route.
    Err(B),
    /// `RS+ [account] <subject> [<queue> <weight>]`: the peer has interest.
    RSub(RemoteSub<B>),
    /// `RS- [account] <subject> [queue]`: the peer lost its interest.
    RUnsub(RemoteUnsub<B>),
    /// `LS+ <origin> [account] <subject> [<queue> <weight>]`: interest a
    /// leafnode of cluster `origin` brought to the peer.
    LSub {
        /// The leafnode's cluster name.
        origin: B,
        /// The interest.
        sub: RemoteSub<B>,
    },
    /// `LS- [origin] [account] <subject> [queue]`: the origin is present
    /// when the peer announced `lnocu` (see
    /// [`RouteDialect::ls_unsub_origin`](super::RouteDialect::ls_unsub_origin)).
    LUnsub {
        /// The leafnode's cluster name, when the dialect carries it.
        origin: Option<B>,
        /// The interest removed.
        unsub: RemoteUnsub<B>,
    },
    /// `RMSG` (no headers) or `HMSG` (`headers` is `Some`): a message for
    /// the peer's subscribers.
    RMsg(RoutedMsg<B>),
    /// `LMSG <origin> ...`: a message a leafnode of cluster `origin`
    /// published. Always carries a header size on the wire; size 0 reads as
    /// no headers.
    LMsg {
        /// The leafnode's cluster name.
        origin: B,
        /// The message.
        msg: RoutedMsg<B>,
    },
}

/// A borrowed route op (see
/// [`RouteOpParser::parse_ref`](super::RouteOpParser::parse_ref)).
pub type RouteOpRef<'a> = RouteOp<&'a [u8]>;

/// A queue group and its weight: how many members the peer has, so a
/// sender can spread queue messages fairly (nats-server's `qw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueWeight<B> {
    /// Queue group name.
    pub name: B,
    /// Number of local members behind this interest (at least 1 when sent
    /// by nats-server).
    pub weight: u32,
}

/// Interest added by `RS+`/`LS+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSub<B> {
    /// The account; `None` on a route pinned to one account.
    pub account: Option<B>,
    /// Subject (may contain wildcards).
    pub subject: B,
    /// Queue group and weight, for a queue subscription.
    pub queue: Option<QueueWeight<B>>,
}

/// Interest removed by `RS-`/`LS-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteUnsub<B> {
    /// The account; `None` on a route pinned to one account.
    pub account: Option<B>,
    /// Subject.
    pub subject: B,
    /// Queue group, for a queue subscription.
    pub queue: Option<B>,
}

/// A routed message (`RMSG`, `HMSG`, or the body of an `LMSG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedMsg<B> {
    /// The account; `None` on a route pinned to one account.
    pub account: Option<B>,
    /// Subject the message was published to.
    pub subject: B,
    /// Reply subject.
    pub reply: Option<B>,
    /// Queue groups of the receiving server that should get one copy each,
    /// as the wire has them: names separated by blanks, empty for none.
    /// Iterate with [`RoutedMsg::queue_names`].
    pub queues: B,
    /// The header block (`NATS/1.0...\r\n\r\n`), for `HMSG` and an `LMSG`
    /// with a non-zero header size.
    pub headers: Option<B>,
    /// The payload after the header block.
    pub payload: B,
}

/// Separators between arguments of route ops, as nats-server's `splitArg`.
pub(crate) fn is_arg_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<B: AsRef<[u8]>> RoutedMsg<B> {
    /// The queue group names, in wire order.
    pub fn queue_names(&self) -> impl Iterator<Item = &[u8]> {
        self.queues
            .as_ref()
            .split(|&b| is_arg_sep(b))
            .filter(|name| !name.is_empty())
    }

    /// `#total` on the wire: header block and payload.
    pub fn total_len(&self) -> usize {
        self.headers.as_ref().map_or(0, |h| h.as_ref().len()) + self.payload.as_ref().len()
    }
}

impl<A> RemoteSub<A> {
    /// The same interest with each field converted by `f`.
    pub fn map<B>(self, mut f: impl FnMut(A) -> B) -> RemoteSub<B> {
        RemoteSub {
            account: self.account.map(&mut f),
            subject: f(self.subject),
            queue: self.queue.map(|q| QueueWeight {
                name: f(q.name),
                weight: q.weight,
            }),
        }
    }
}

impl<A> RemoteUnsub<A> {
    /// The same interest with each field converted by `f`.
    pub fn map<B>(self, mut f: impl FnMut(A) -> B) -> RemoteUnsub<B> {
        RemoteUnsub {
            account: self.account.map(&mut f),
            subject: f(self.subject),
            queue: self.queue.map(f),
        }
    }
}

impl<A> RoutedMsg<A> {
    /// The same message with each field converted by `f`.
    pub fn map<B>(self, mut f: impl FnMut(A) -> B) -> RoutedMsg<B> {
        RoutedMsg {
            account: self.account.map(&mut f),
            subject: f(self.subject),
            reply: self.reply.map(&mut f),
            queues: f(self.queues),
            headers: self.headers.map(&mut f),
            payload: f(self.payload),
        }
    }
}

impl<A> RouteOp<A> {
    /// The same op with each field converted by `f`: e.g.
    /// `op.map(Bytes::copy_from_slice)` to keep a borrowed op, or
    /// `op.map(|s| frozen.slice_ref(s))` to share a frozen buffer.
    pub fn map<B>(self, mut f: impl FnMut(A) -> B) -> RouteOp<B> {
        match self {
            RouteOp::Info(json) => RouteOp::Info(f(json)),
            RouteOp::Connect(json) => RouteOp::Connect(f(json)),
            RouteOp::Ping => RouteOp::Ping,
            RouteOp::Pong => RouteOp::Pong,
            RouteOp::Ok => RouteOp::Ok,
            RouteOp::Err(text) => RouteOp::Err(f(text)),
            RouteOp::RSub(sub) => RouteOp::RSub(sub.map(f)),
            RouteOp::RUnsub(unsub) => RouteOp::RUnsub(unsub.map(f)),
            RouteOp::LSub { origin, sub } => RouteOp::LSub {
                origin: f(origin),
                sub: sub.map(f),
            },
            RouteOp::LUnsub { origin, unsub } => RouteOp::LUnsub {
                origin: origin.map(&mut f),
                unsub: unsub.map(f),
            },
            RouteOp::RMsg(msg) => RouteOp::RMsg(msg.map(f)),
            RouteOp::LMsg { origin, msg } => RouteOp::LMsg {
                origin: f(origin),
                msg: msg.map(f),
            },
        }
    }
}
