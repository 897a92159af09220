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
