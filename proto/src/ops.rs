//! The protocol operations, as values.
use bytes::Bytes;

/// An op a client sends to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: the raw JSON text.
    Connect(Bytes),
    /// `PUB <subject> [reply] <#bytes>`.
    Pub {
        /// Subject as sent (not validated here).
        subject: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// The payload, without the trailing CRLF.
        payload: Bytes,
    },
    /// `HPUB <subject> [reply] <#hdr> <#total>`.
    HPub {
        /// Subject as sent.
        subject: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// The header block (`NATS/1.0...\r\n\r\n`), `#hdr` bytes.
        headers: Bytes,
        /// The payload after the header block, `#total - #hdr` bytes.
        payload: Bytes,
    },
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        /// Subject (may contain wildcards).
        subject: Bytes,
        /// Optional queue group name.
        queue: Option<Bytes>,
        /// Subscription id, as the client's bytes.
        sid: Bytes,
    },
    /// `UNSUB <sid> [max_msgs]`.
    Unsub {
        /// Subscription id.
        sid: Bytes,
        /// Auto-unsubscribe after this many messages.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// An op a server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO {json}`: the raw JSON text.
    Info(Bytes),
    /// `MSG <subject> <sid> [reply] <#bytes>`.
    Msg {
        /// Subject the message was published to.
        subject: Bytes,
        /// Subscription id it is delivered for.
        sid: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// The payload.
        payload: Bytes,
    },
    /// `HMSG <subject> <sid> [reply] <#hdr> <#total>`.
    HMsg {
        /// Subject the message was published to.
        subject: Bytes,
        /// Subscription id.
        sid: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// Header block.
        headers: Bytes,
        /// Payload after the header block.
        payload: Bytes,
    },
    /// `+OK`.
    Ok,
    /// `-ERR '<text>'`: the text between the quotes.
    Err(Bytes),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// A client op borrowing the caller's buffer (see
/// [`ClientOpParser::parse_ref`](crate::ClientOpParser::parse_ref)); the
/// fields are as in [`ClientOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOpRef<'a> {
    /// `CONNECT {json}`: the raw JSON text.
    Connect(&'a [u8]),
    /// `PUB <subject> [reply] <#bytes>`.
    Pub {
        /// Subject as sent (not validated here).
        subject: &'a [u8],
        /// Optional reply subject.
        reply: Option<&'a [u8]>,
        /// The payload, without the trailing CRLF.
        payload: &'a [u8],
    },
    /// `HPUB <subject> [reply] <#hdr> <#total>`.
    HPub {
        /// Subject as sent.
        subject: &'a [u8],
        /// Optional reply subject.
        reply: Option<&'a [u8]>,
        /// The header block (`NATS/1.0...\r\n\r\n`), `#hdr` bytes.
        headers: &'a [u8],
        /// The payload after the header block, `#total - #hdr` bytes.
        payload: &'a [u8],
    },
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        /// Subject (may contain wildcards).
        subject: &'a [u8],
        /// Optional queue group name.
        queue: Option<&'a [u8]>,
        /// Subscription id, as the client's bytes.
        sid: &'a [u8],
    },
    /// `UNSUB <sid> [max_msgs]`.
    Unsub {
        /// Subscription id.
        sid: &'a [u8],
        /// Auto-unsubscribe after this many messages.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

impl<'a> ClientOpRef<'a> {
    /// The owned op, each field made `Bytes` by `f` (a copy, or a
    /// `slice_ref` of the frozen buffer the op borrows).
    pub(crate) fn to_op(self, mut f: impl FnMut(&'a [u8]) -> Bytes) -> ClientOp {
        match self {
            ClientOpRef::Connect(json) => ClientOp::Connect(f(json)),
            ClientOpRef::Pub {
                subject,
                reply,
                payload,
            } => ClientOp::Pub {
                subject: f(subject),
                reply: reply.map(&mut f),
                payload: f(payload),
            },
            ClientOpRef::HPub {
                subject,
                reply,
                headers,
                payload,
            } => ClientOp::HPub {
                subject: f(subject),
                reply: reply.map(&mut f),
                headers: f(headers),
                payload: f(payload),
            },
            ClientOpRef::Sub {
                subject,
                queue,
                sid,
            } => ClientOp::Sub {
                subject: f(subject),
                queue: queue.map(&mut f),
                sid: f(sid),
            },
            ClientOpRef::Unsub { sid, max } => ClientOp::Unsub { sid: f(sid), max },
            ClientOpRef::Ping => ClientOp::Ping,
            ClientOpRef::Pong => ClientOp::Pong,
        }
    }
}

/// A server op borrowing the caller's buffer (see
/// [`ServerOpParser::parse_ref`](crate::ServerOpParser::parse_ref)); the
/// fields are as in [`ServerOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOpRef<'a> {
    /// `INFO {json}`: the raw JSON text.
    Info(&'a [u8]),
    /// `MSG <subject> <sid> [reply] <#bytes>`.
    Msg {
        /// Subject the message was published to.
        subject: &'a [u8],
        /// Subscription id it is delivered for.
        sid: &'a [u8],
        /// Optional reply subject.
        reply: Option<&'a [u8]>,
        /// The payload.
        payload: &'a [u8],
    },
    /// `HMSG <subject> <sid> [reply] <#hdr> <#total>`.
    HMsg {
        /// Subject the message was published to.
        subject: &'a [u8],
        /// Subscription id.
        sid: &'a [u8],
        /// Optional reply subject.
        reply: Option<&'a [u8]>,
        /// Header block.
        headers: &'a [u8],
        /// Payload after the header block.
        payload: &'a [u8],
    },
    /// `+OK`.
    Ok,
    /// `-ERR '<text>'`: the text between the quotes.
    Err(&'a [u8]),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

impl<'a> ServerOpRef<'a> {
    /// The owned op, each field made `Bytes` by `f`.
    pub(crate) fn to_op(self, mut f: impl FnMut(&'a [u8]) -> Bytes) -> ServerOp {
        match self {
            ServerOpRef::Info(json) => ServerOp::Info(f(json)),
            ServerOpRef::Msg {
                subject,
                sid,
                reply,
                payload,
            } => ServerOp::Msg {
                subject: f(subject),
                sid: f(sid),
                reply: reply.map(&mut f),
                payload: f(payload),
            },
            ServerOpRef::HMsg {
                subject,
                sid,
                reply,
                headers,
                payload,
            } => ServerOp::HMsg {
                subject: f(subject),
                sid: f(sid),
                reply: reply.map(&mut f),
                headers: f(headers),
                payload: f(payload),
            },
            ServerOpRef::Ok => ServerOp::Ok,
            ServerOpRef::Err(text) => ServerOp::Err(f(text)),
            ServerOpRef::Ping => ServerOp::Ping,
            ServerOpRef::Pong => ServerOp::Pong,
        }
    }
}
