//! The NATS server without sockets.
//!
//! `engine` owns everything a server decides: options, subject validation,
//! the sublist (subscription routing), and the client connection machine.
//! It never opens a socket, spawns a thread or reads a clock: time is passed
//! in, and the `io` crate drives it.
#![forbid(unsafe_code)]

pub mod options;
pub mod subject;
pub mod sublist;
