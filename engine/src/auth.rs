//! Authentication and permissions. STUB API: the auth helper completes it.
//!
//! [`Authenticator`] is built once from [`Options`] (and rebuilt on reload);
//! a connection asks it to check CONNECT and gets an [`Identity`]: who the
//! client is and what it may publish and subscribe to.
use std::sync::Arc;

use natsd_proto::info::ConnectInfo;

use crate::options::Options;

/// Why a CONNECT was refused (the client gets `-ERR 'Authorization Violation'`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials matched.
    BadCredentials,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("authentication failed")
    }
}

impl std::error::Error for AuthError {}

/// What a user may do. `None` lists mean "everything".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {}

impl Permissions {
    /// May this client publish to `subject`?
    pub fn can_publish(&self, subject: &[u8]) -> bool {
        let _ = subject;
        true
    }

    /// May this client subscribe to `subject` (in `queue`)?
    pub fn can_subscribe(&self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let _ = (subject, queue);
        true
    }

    /// May a message on `subject` be delivered to this client's
    /// subscription? (A deny under an allowed wildcard filters deliveries,
    /// as nats-server does.)
    pub fn can_deliver(&self, subject: &[u8]) -> bool {
        let _ = subject;
        true
    }
}

/// Who a connection is, once authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user name or nkey it authenticated as.
    pub user: Option<String>,
    /// Its permissions; `None` = may do anything.
    pub permissions: Option<Arc<Permissions>>,
}

/// Checks credentials against the configured users, tokens and nkeys.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    user: Option<(String, String)>,
    token: Option<String>,
}

impl Authenticator {
    /// Build from options.
    pub fn new(opts: &Options) -> Self {
        Authenticator {
            user: opts
                .user
                .clone()
                .map(|u| (u, opts.pass.clone().unwrap_or_default())),
            token: opts.token.clone(),
        }
    }

    /// Whether clients must authenticate (INFO `auth_required`).
    pub fn required(&self) -> bool {
        self.user.is_some() || self.token.is_some()
    }

    /// Whether INFO must carry a `nonce` (nkey users exist).
    pub fn wants_nonce(&self) -> bool {
        false
    }

    /// Check a CONNECT. `nonce` is what this connection's INFO carried.
    pub fn check(&self, ci: &ConnectInfo, nonce: &[u8]) -> Result<Identity, AuthError> {
        let _ = nonce;
        if let Some(token) = &self.token {
            return if ct_eq(&ci.auth_token, token) {
                Ok(Identity::default())
            } else {
                Err(AuthError::BadCredentials)
            };
        }
        if let Some((user, pass)) = &self.user {
            return if ct_eq(&ci.user, user) && ct_eq(&ci.pass, pass) {
                Ok(Identity {
                    user: Some(user.clone()),
                    permissions: None,
                })
            } else {
                Err(AuthError::BadCredentials)
            };
        }
        Ok(Identity::default())
    }
}

/// Constant-time comparison of secrets.
fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
