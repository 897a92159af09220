//! natsd's reactors: the only crate with sockets and threads.
