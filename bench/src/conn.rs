//! One blocking client connection: handshake, reading ops, writing bytes.
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use natsd_proto::info::{ConnectInfo, ServerInfo};
use natsd_proto::{encode, Limits, ServerOp, ServerOpParser};

use crate::opts::ServerUrl;

/// Bytes asked of the kernel per `read` on a busy connection.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bound on the INFO / CONNECT / PONG handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials and identity sent in `CONNECT`.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
}

/// Why a connection ended or could not start.
#[derive(Debug)]
pub enum ConnError {
    /// Socket error (including EOF, as `UnexpectedEof`).
    Io(io::Error),
    /// The server sent `-ERR '<text>'`.
    Server(String),
    /// The server's bytes did not parse.
    Protocol(String),
    /// A wait ran past its bound.
    Timeout(&'static str),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(e) if e.kind() == ErrorKind::UnexpectedEof => {
                f.write_str("connection closed by server")
            }
            ConnError::Io(e) => write!(f, "i/o error: {e}"),
            ConnError::Server(t) => write!(f, "-ERR '{t}'"),
            ConnError::Protocol(t) => write!(f, "protocol error: {t}"),
            ConnError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

/// True for the error kinds a read timeout produces.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The reading half: socket, parser and read buffer.
pub struct Reader {
    stream: TcpStream,
    parser: ServerOpParser,
    buf: BytesMut,
    chunk: Vec<u8>,
}

impl Reader {
    fn new(stream: TcpStream, chunk_bytes: usize) -> Self {
        Reader {
            stream,
            parser: ServerOpParser::new(Limits {
                max_control_line: natsd_proto::MAX_CONTROL_LINE_BYTES,
                // Accept whatever the server allows; the server checks sizes.
                max_payload: 64 * 1024 * 1024,
            }),
            buf: BytesMut::new(),
            chunk: vec![0; chunk_bytes],
        }
    }

    /// The next complete op already in the buffer, without reading.
    pub fn next_buffered(&mut self) -> Result<Option<ServerOp>, ConnError> {
        self.parser
            .parse(&mut self.buf)
            .map_err(|e| ConnError::Protocol(e.to_string()))
    }

    /// One `read` into the buffer. `Ok(false)` on a read timeout;
    /// EOF is an `UnexpectedEof` error.
    pub fn fill(&mut self) -> Result<bool, ConnError> {
        match self.stream.read(&mut self.chunk) {
            Ok(0) => Err(ConnError::Io(ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                self.buf.extend_from_slice(&self.chunk[..n]);
                Ok(true)
            }
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the timeout of each `fill`.
    pub fn set_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }
}

/// A connected, handshaken client.
pub struct Conn {
    pub reader: Reader,
    pub writer: TcpStream,
    pub info: ServerInfo,
}

impl Conn {
    /// Connects, reads INFO, sends CONNECT and PING, and waits for PONG,
    /// answering `-ERR` (bad auth) with an error. Each `read` asks for up to
    /// `chunk_bytes` (small for idle connections, to keep the client lean).
    pub fn connect(
        url: &ServerUrl,
        auth: &Auth,
        name: &str,
        chunk_bytes: usize,
    ) -> Result<Conn, ConnError> {
        let stream = TcpStream::connect(url.addr())?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        let mut reader = Reader::new(stream, chunk_bytes);
        reader.set_timeout(Duration::from_millis(200))?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let info = match wait_op(&mut reader, deadline, "INFO")? {
            ServerOp::Info(json) => serde_json::from_slice::<ServerInfo>(&json)
                .map_err(|e| ConnError::Protocol(format!("bad INFO: {e}")))?,
            op => return Err(ConnError::Protocol(format!("expected INFO, got {op:?}"))),
        };
        if info.tls_required {
            return Err(ConnError::Protocol(
                "server requires TLS; TLS not supported yet".into(),
            ));
        }
        let connect = ConnectInfo {
            echo: true,
            verbose: false,
            pedantic: false,
            user: auth.user.clone().unwrap_or_default(),
            pass: auth.pass.clone().unwrap_or_default(),
            auth_token: auth.token.clone().unwrap_or_default(),
            name: name.to_string(),
            lang: "rust".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: 1,
            headers: true,
            no_responders: true,
            ..ConnectInfo::default()
        };
        let mut out = BytesMut::new();
        encode::connect(&mut out, &connect.to_json());
        encode::ping(&mut out);
        let mut conn = Conn {
            reader,
            writer,
            info,
        };
        conn.writer.write_all(&out)?;
        conn.wait_pong(deadline)?;
        Ok(conn)
    }

    /// Waits for the next PONG, answering PINGs; other ops are dropped.
    pub fn wait_pong(&mut self, deadline: Instant) -> Result<(), ConnError> {
        loop {
            match wait_op(&mut self.reader, deadline, "PONG")? {
                ServerOp::Pong => return Ok(()),
                ServerOp::Ping => self.writer.write_all(b"PONG\r\n")?,
                ServerOp::Err(t) => {
                    return Err(ConnError::Server(String::from_utf8_lossy(&t).into()))
                }
                _ => {}
            }
        }
    }

    /// Sends PING and waits for its PONG: the server has processed
    /// everything sent before.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), ConnError> {
        self.writer.write_all(b"PING\r\n")?;
        self.wait_pong(Instant::now() + timeout)
    }
}

/// The next op, reading as needed until `deadline`.
pub fn wait_op(
    reader: &mut Reader,
    deadline: Instant,
    what: &'static str,
) -> Result<ServerOp, ConnError> {
    loop {
        if let Some(op) = reader.next_buffered()? {
            return Ok(op);
        }
        if Instant::now() >= deadline {
            return Err(ConnError::Timeout(what));
        }
        reader.fill()?;
    }
}
