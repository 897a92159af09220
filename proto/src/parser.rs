//! Incremental parsers. STUB: the proto helper replaces this file.
use bytes::BytesMut;

use crate::{ClientOp, ServerOp};

/// Limits the parser enforces while bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest control line accepted (bytes, without CRLF).
    pub max_control_line: usize,
    /// Largest payload accepted (`#bytes` of PUB, `#total` of HPUB).
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_line: crate::MAX_CONTROL_LINE_BYTES,
            max_payload: crate::MAX_PAYLOAD_BYTES,
        }
    }
}

/// A protocol violation. Every one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a known op.
    UnknownOp,
}

impl ParseError {
    /// The text nats-server sends as `-ERR '<text>'` before closing, or
    /// `None` when nats-server closes without an `-ERR`.
    pub fn client_error(&self) -> Option<&'static str> {
        Some("Unknown Protocol Operation")
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unknown protocol operation")
    }
}

impl std::error::Error for ParseError {}

/// Parses the ops a client sends (server side).
#[derive(Debug, Default)]
pub struct ClientOpParser {
    limits: Limits,
}

impl ClientOpParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        ClientOpParser { limits }
    }
    /// Change the limits (e.g. after a config reload).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
    /// Parse the next op from the front of `buf`; `Ok(None)` = need more bytes.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ParseError> {
        let _ = (buf, self.limits);
        Ok(None)
    }
}

/// Parses the ops a server sends (client side).
#[derive(Debug, Default)]
pub struct ServerOpParser {
    limits: Limits,
}

impl ServerOpParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        ServerOpParser { limits }
    }
    /// Parse the next op from the front of `buf`; `Ok(None)` = need more bytes.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ParseError> {
        let _ = (buf, self.limits);
        Ok(None)
    }
}
