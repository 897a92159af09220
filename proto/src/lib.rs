//! Sans-IO NATS client protocol (text protocol, `PROTO=1`), both directions.
//!
//! This crate owns the wire format only: an incremental parser for the ops a
//! client sends ([`ClientOp`] / borrowed [`ClientOpRef`], parsed by
//! [`ClientOpParser`], used by servers) and for the ops a server sends
//! ([`ServerOp`] / [`ServerOpRef`], parsed by [`ServerOpParser`], usable by
//! clients), an encoder for every op ([`encode`]), the NATS/1.0
//! header block ([`headers`]) and the `INFO`/`CONNECT` JSON bodies ([`info`]).
//! [`errors`] holds the exact `-ERR` texts; [`ParseError::client_error`] maps
//! a protocol violation to the one nats-server sends (or to a silent close).
//!
//! It never touches a socket, a clock, a thread or a file, and never logs.
//!
//! # Call contract
//!
//! Each parser has two APIs over one state machine; use one per connection.
//!
//! **Borrowing** ([`ClientOpParser::parse_ref`], [`ServerOpParser::parse_ref`]):
//! the fast one, no reference counting. The caller keeps one buffer per
//! connection, appends whatever it reads and calls `parse_ref(&buf)`. Each
//! [`Step`] says how many bytes at the front are done (`consumed`) and gives
//! the op they held, if any, as slices of `buf` ([`ClientOpRef`]). The
//! caller uses the op, then removes exactly `consumed` bytes from the front
//! before the next call. `consumed == 0` means: need more bytes. Ignored
//! input (a client's `INFO` or `+OK`, the tail of a `PING` line) comes back
//! as a step with no op, so nothing unbounded stays buffered.
//!
//! ```
//! use bytes::{Buf, BytesMut};
//! use natsd_proto::{ClientOpParser, ClientOpRef, Limits, Step};
//!
//! let mut parser = ClientOpParser::new(Limits::default());
//! let mut buf = BytesMut::from(&b"PUB foo 5\r\nhel"[..]);
//! assert_eq!(parser.parse_ref(&buf)?, Step { op: None, consumed: 0 });
//! buf.extend_from_slice(b"lo\r\nPING\r\n");
//! let step = parser.parse_ref(&buf)?;
//! let Some(ClientOpRef::Pub { subject, payload, .. }) = step.op else {
//!     unreachable!()
//! };
//! assert_eq!((subject, payload), (&b"foo"[..], &b"hello"[..]));
//! buf.advance(step.consumed);
//! assert_eq!(parser.parse_ref(&buf)?.op, Some(ClientOpRef::Ping));
//! # Ok::<(), natsd_proto::ParseError>(())
//! ```
//!
//! **Owned** ([`ClientOpParser::parse`], [`ServerOpParser::parse`]): the
//! caller owns one `BytesMut` per connection and appends whatever it reads.
//! It then calls `parse(&mut buf)` until it returns `Ok(None)` (need more
//! bytes). Every op consumes its bytes from the front of `buf`; payloads and
//! arguments are `Bytes` slices split off that buffer, never copied.
//!
//! ```
//! use bytes::BytesMut;
//! use natsd_proto::{ClientOp, ClientOpParser, Limits};
//!
//! let mut parser = ClientOpParser::new(Limits::default());
//! let mut buf = BytesMut::from(&b"PUB foo 5\r\nhel"[..]);
//! assert_eq!(parser.parse(&mut buf), Ok(None)); // payload incomplete
//! buf.extend_from_slice(b"lo\r\nPING\r\n");
//! let Some(ClientOp::Pub { subject, payload, .. }) = parser.parse(&mut buf)? else {
//!     unreachable!()
//! };
//! assert_eq!((&subject[..], &payload[..]), (&b"foo"[..], &b"hello"[..]));
//! assert_eq!(parser.parse(&mut buf), Ok(Some(ClientOp::Ping)));
//! assert_eq!(parser.parse(&mut buf), Ok(None));
//! # Ok::<(), natsd_proto::ParseError>(())
//! ```
//!
//! Either way, input may be cut at any byte: the same ops and the same error
//! come out whatever the chunking, and no byte is scanned twice while a line
//! trickles in. Limits (`max_control_line`, `max_payload`) are checked while
//! bytes arrive. A message's control line stays in the buffer until its
//! payload is complete.
//!
//! A [`ParseError`] ends the connection: send `-ERR '<text>'` if
//! [`ParseError::client_error`] gives a text, then close.
//!
//! # Features
//!
//! `_fuzz` exposes `fuzz_props`, the properties the `fuzz/` targets check
//! (not a stable API).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod encode;
pub mod errors;
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz_props;
pub mod headers;
pub mod info;
mod ops;
mod parser;
pub mod route;

pub use ops::{ClientOp, ClientOpRef, ServerOp, ServerOpRef};
pub use parser::{ClientOpParser, Limits, ParseError, ServerOpParser, ServerStep, Step};

/// Default `max_control_line` (bytes), as nats-server.
pub const MAX_CONTROL_LINE_BYTES: usize = 4096;
/// Default `max_payload` (bytes), as nats-server: 1 MiB.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
