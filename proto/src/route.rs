//! Sans-IO route protocol: what two servers of one cluster say to each other.
//!
//! A route is a TCP connection between two servers of a cluster (natsd or
//! nats-server). Each side sends `CONNECT` (who it is, which cluster) and
//! `INFO` (its features: pooling, pinned accounts, leafnode origins), then
//! interest (`RS+`/`RS-`, and `LS+`/`LS-` for interest a leafnode brought in)
//! and the messages that match the other side's interest (`RMSG`, `HMSG` with
//! headers, `LMSG` for messages a leafnode brought in).
//!
//! This module owns the wire format only: the incremental parser
//! ([`RouteOpParser`]), the ops as values ([`RouteOp`]), the encoders
//! ([`encode`]) and the `INFO`/`CONNECT` JSON ([`RouteInfo`],
//! [`RouteConnect`]). What an op means (interest bookkeeping, delivery,
//! pooling, gossip) is the engine's business.
//!
//! # Call contract
//!
//! As the client protocol parsers (see the crate docs): either borrow
//! ([`RouteOpParser::parse_ref`], ops of `&[u8]` slices of the caller's
//! buffer, the caller drops `consumed` bytes after each step) or own
//! ([`RouteOpParser::parse`], ops of `Bytes` split off the caller's
//! `BytesMut`). Input may be cut at any byte; limits are checked while bytes
//! arrive; a payload is never copied.
//!
//! ```
//! use bytes::{Buf, BytesMut};
//! use natsd_proto::route::{RouteDialect, RouteOp, RouteOpParser};
//!
//! let mut parser = RouteOpParser::new(natsd_proto::route::route_limits(4096), RouteDialect::default());
//! let mut buf = BytesMut::from(&b"RS+ $G foo q 2\r\nRMSG $G foo | q 5\r\nhel"[..]);
//! let step = parser.parse_ref(&buf)?;
//! let Some(RouteOp::RSub(sub)) = step.op else { unreachable!() };
//! assert_eq!((sub.account, sub.subject), (Some(&b"$G"[..]), &b"foo"[..]));
//! assert_eq!(sub.queue.map(|q| (q.name, q.weight)), Some((&b"q"[..], 2)));
//! buf.advance(step.consumed);
//! assert_eq!(parser.parse_ref(&buf)?.consumed, 0); // payload incomplete
//! buf.extend_from_slice(b"lo\r\n");
//! let Some(RouteOp::RMsg(msg)) = parser.parse_ref(&buf)?.op else { unreachable!() };
//! assert_eq!(msg.queue_names().collect::<Vec<_>>(), [&b"q"[..]]);
//! assert_eq!(msg.payload, b"hello");
//! # Ok::<(), natsd_proto::route::RouteParseError>(())
//! ```
//!
//! A [`RouteParseError`] ends the route: send `-ERR '<text>'` if
//! [`RouteParseError::peer_error`] gives a text, then close.
//!
//! # Dialects
//!
//! Two facts negotiated per route change the shape of ops, and both sides
//! must agree on them ([`RouteDialect`]): a route pinned to one account
//! (`route_account` in INFO) leaves the account out of every interest and
//! message op; a peer that announced `lnocu` puts its origin cluster in
//! `LS-`. Set them on the parser when the INFO that decides them is
//! processed, and leave the account out ([`None`]) when encoding for a
//! pinned route.
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz_props;
mod json;
mod ops;
mod parser;

pub mod encode;

pub use json::{RouteConnect, RouteInfo, SubjectPermission};
pub use ops::{QueueWeight, RemoteSub, RemoteUnsub, RouteOp, RouteOpRef, RoutedMsg};
pub use parser::{route_limits, RouteDialect, RouteOpParser, RouteParseError, RouteStep};

/// nats-server lets a route's control line be 16 times `max_control_line`
/// (64 KiB by default): route lines carry accounts, origins and queue lists.
pub const ROUTE_CONTROL_LINE_FACTOR: usize = 16;

/// Largest size a route op can declare: nats-server puts no `max_payload`
/// on routes, so the only bound is its 9-digit size field.
pub const ROUTE_MAX_PAYLOAD_BYTES: usize = 999_999_999;
