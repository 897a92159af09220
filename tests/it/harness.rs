//! The harness itself: start-up, log contract, restart on the same port.

use std::io::Read;
use std::net::TcpStream;

use natsd_tests::{listening_port, Server};

#[test]
fn logs_listening_address_and_ready() {
    let server = Server::natsd(&[]);
    let log = server.log_contents();
    assert_eq!(listening_port(&log), Some(server.port()), "log:\n{log}");
    assert!(log.contains("Server is ready"), "log:\n{log}");
    let mut conn = TcpStream::connect(server.addr()).expect("connect");
    let mut first = [0u8; 5];
    conn.read_exact(&mut first).expect("read INFO");
    assert_eq!(&first, b"INFO ");
}

#[test]
fn restart_keeps_the_port() {
    let mut server = Server::natsd(&[]);
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    let mut conn = server.raw();
    assert!(conn.ping_pong().is_empty());
}
