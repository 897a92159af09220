//! The NATS server without sockets.
//!
//! `engine` owns everything a server decides: options, subject validation,
//! the sublist (subscription routing), accounts and the client connection
//! machine. It never opens a socket, spawns a thread or reads a clock: time
//! is passed in, and the `io` crate drives it.
//!
//! ```text
//!   io reactor ──bytes──► ClientConn (parse, auth, limits)
//!                             │ PUB: match in Account.sublist snapshot (lock-free)
//!                             ▼
//!                       Outbound of each receiver (short per-queue lock)
//!                             │ first frame since last flush → Context.wakes
//!                             ▼
//!   io wakes the receiver's reactor once per batch; it writes the queue out
//! ```
#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod conf;
mod conn;
pub mod consumer;
mod deliver;
pub mod filters;
#[cfg(feature = "_fuzz")]
pub mod fuzzing;
pub mod internal;
pub mod jetstream;
pub mod mapping;
pub mod monitor;
pub mod nkey;
pub mod options;
pub mod outbound;
pub mod route;
pub mod server;
pub mod subject;
pub mod sublist;
pub mod sys;
pub mod trace;
pub mod transform;
