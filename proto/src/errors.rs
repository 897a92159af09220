//! The exact `-ERR '<text>'` strings of the client protocol, as nats-server
//! sends them (texts from FEATURES.md and nats-server's sources; the ones
//! the parser produces were checked black-box against nats-server 2.9.10).
//!
//! Send them with [`crate::encode::err`].

/// Unknown op, or a payload not followed by CRLF. Closes.
pub const UNKNOWN_PROTOCOL_OPERATION: &str = "Unknown Protocol Operation";
/// A control line longer than `max_control_line`. Closes.
pub const MAX_CONTROL_LINE_EXCEEDED: &str = "maximum control line exceeded";
/// A `PUB`/`HPUB` size above `max_payload`. Closes.
pub const MAX_PAYLOAD_VIOLATION: &str = "Maximum Payload Violation";
/// Auth failed, or an op other than CONNECT came first on an auth server. Closes.
pub const AUTHORIZATION_VIOLATION: &str = "Authorization Violation";
/// No CONNECT within the auth timeout. Closes.
pub const AUTHENTICATION_TIMEOUT: &str = "Authentication Timeout";
/// The user's credentials expired. Closes.
pub const USER_AUTHENTICATION_EXPIRED: &str = "User Authentication Expired";
/// The account's credentials expired. Closes.
pub const ACCOUNT_AUTHENTICATION_EXPIRED: &str = "Account Authentication Expired";
/// The user's credentials were revoked. Closes.
pub const USER_AUTHENTICATION_REVOKED: &str = "User Authentication Revoked";
/// Too many client connections. Closes.
pub const MAX_CONNECTIONS_EXCEEDED: &str = "maximum connections exceeded";
/// Too many connections for the account. Closes.
pub const MAX_ACCOUNT_CONNECTIONS_EXCEEDED: &str = "maximum account active connections exceeded";
/// Too many PINGs unanswered. Closes.
pub const STALE_CONNECTION: &str = "Stale Connection";
/// Account registration failed. Closes.
pub const FAILED_ACCOUNT_REGISTRATION: &str = "Failed Account Registration";
/// A client connected to the route port. Closes.
pub const ROUTE_PORT: &str = "attempted to connect to route port";
/// A client connected to the leaf node port. Closes.
pub const LEAF_NODE_PORT: &str = "attempted to connect to leaf node port";
/// A client connected to the gateway port. Closes.
pub const GATEWAY_PORT: &str = "attempted to connect to gateway port";
/// CONNECT `protocol` outside 0..=1. Closes.
pub const INVALID_CLIENT_PROTOCOL: &str = "invalid client protocol";
/// CONNECT with `no_responders` but not `headers`. Closes.
pub const NO_RESPONDERS_REQUIRES_HEADERS: &str = "no responders requires headers support";
/// Too many subscriptions. Keeps the connection.
pub const MAX_SUBSCRIPTIONS_EXCEEDED: &str = "maximum subscriptions exceeded";
/// A SUB with an invalid subject. Keeps the connection.
pub const INVALID_SUBJECT: &str = "Invalid Subject";
/// A pedantic publish to a non-literal subject. Keeps the connection (the
/// message is still delivered on 2.9.10).
pub const INVALID_PUBLISH_SUBJECT: &str = "Invalid Publish Subject";
