//! Incremental parsers for both directions of the client protocol.
//!
//! ## Format
//!
//! Every op starts with a control line: an op name (any letter case), then
//! arguments separated by runs of spaces or tabs, then `\n` (normally `\r\n`;
//! nats-server 2.9.10 also accepts a bare `\n`, checked black-box).
//!
//! | op | arguments | then |
//! |---|---|---|
//! | `PUB` | `<subject> [reply] <#bytes>` | `#bytes` of payload, `\r\n` |
//! | `HPUB` | `<subject> [reply] <#hdr> <#total>` | `#total` bytes (headers first), `\r\n` |
//! | `MSG` | `<subject> <sid> [reply] <#bytes>` | as `PUB` |
//! | `HMSG` | `<subject> <sid> [reply] <#hdr> <#total>` | as `HPUB` |
//! | `SUB` | `<subject> [queue] <sid>` | |
//! | `UNSUB` | `<sid> [max_msgs]` | |
//! | `CONNECT`, `INFO` | JSON text | |
//! | `-ERR` | `'<text>'` | |
//! | `PING`, `PONG`, `+OK` | anything up to `\n` is ignored | |
//!
//! Sizes are 1 to 9 decimal digits, as nats-server's `parseSize` (no sign,
//! leading zeros allowed). `PUB`, `HPUB`, `SUB`, `UNSUB`, `MSG`, `HMSG` and
//! `-ERR` need a space or tab after the name (`PUB\r\n` is an unknown op);
//! `CONNECT` and `INFO` do not (`CONNECT{}` is a CONNECT).
//!
//! When a control line holds a `\r` but does not end with one, its last byte
//! is dropped, as nats-server does when the line arrives in one read.
use bytes::{Buf, BytesMut};

use crate::{ClientOp, ClientOpRef, ServerOp, ServerOpRef};

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
///
/// [`ParseError::client_error`] gives what nats-server 2.9.10 sends before it
/// closes (all verified black-box against the Debian build).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes at the start of an op are no op this side accepts
    /// (`XYZ`, `PUB\r\n`, an empty line, a leading space, `MSG` from a client).
    UnknownOp,
    /// A control line's arguments are longer than `max_control_line`.
    MaxControlLine,
    /// `PUB`/`HPUB`/`MSG`/`HMSG` declared more than `max_payload` bytes.
    MaxPayload,
    /// A payload is not followed by `\r\n` (longer than its declared size).
    PayloadNotTerminated,
    /// `PUB`/`HPUB`/`MSG`/`HMSG` with the wrong number of arguments.
    MsgArgs,
    /// The (total) size is missing, not decimal, signed or over 9 digits.
    BadSize,
    /// The header size of `HPUB`/`HMSG` is not a valid size.
    BadHeaderSize,
    /// The header size of `HPUB`/`HMSG` is larger than the total size.
    HeaderSizeTooLarge,
    /// `SUB` without exactly 2 or 3 arguments (e.g. no sid).
    SubArgs,
    /// `UNSUB` without exactly 1 or 2 arguments.
    UnsubArgs,
    /// A client sent `INFO` whose body is not a JSON object.
    BadInfo,
    /// A client sent `-ERR`: nats-server logs it and closes.
    PeerErr,
}

impl ParseError {
    /// The text nats-server sends as `-ERR '<text>'` before closing, or
    /// `None` when nats-server closes without an `-ERR`.
    pub fn client_error(&self) -> Option<&'static str> {
        match self {
            ParseError::UnknownOp | ParseError::PayloadNotTerminated => {
                Some(crate::errors::UNKNOWN_PROTOCOL_OPERATION)
            }
            ParseError::MaxControlLine => Some(crate::errors::MAX_CONTROL_LINE_EXCEEDED),
            ParseError::MaxPayload => Some(crate::errors::MAX_PAYLOAD_VIOLATION),
            ParseError::MsgArgs
            | ParseError::BadSize
            | ParseError::BadHeaderSize
            | ParseError::HeaderSizeTooLarge
            | ParseError::SubArgs
            | ParseError::UnsubArgs
            | ParseError::BadInfo
            | ParseError::PeerErr => None,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParseError::UnknownOp => "unknown protocol operation",
            ParseError::MaxControlLine => "maximum control line exceeded",
            ParseError::MaxPayload => "maximum payload exceeded",
            ParseError::PayloadNotTerminated => "payload not followed by CRLF",
            ParseError::MsgArgs => "wrong number of message arguments",
            ParseError::BadSize => "bad or missing size",
            ParseError::BadHeaderSize => "bad or missing header size",
            ParseError::HeaderSizeTooLarge => "header size larger than total size",
            ParseError::SubArgs => "wrong number of SUB arguments",
            ParseError::UnsubArgs => "wrong number of UNSUB arguments",
            ParseError::BadInfo => "INFO body is not a JSON object",
            ParseError::PeerErr => "peer sent -ERR",
        })
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Pub,
    HPub,
    Msg,
    HMsg,
    Sub,
    Unsub,
    Connect,
    Info,
    Err,
    Ping,
    Pong,
    Ok,
}

/// What may follow an op name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// A space or tab, then arguments.
    Space,
    /// Optional blanks, then the argument text.
    Any,
    /// Anything up to `\n`, ignored.
    Ignore,
}

impl Verb {
    fn after(self) -> After {
        match self {
            Verb::Pub
            | Verb::HPub
            | Verb::Msg
            | Verb::HMsg
            | Verb::Sub
            | Verb::Unsub
            | Verb::Err => After::Space,
            Verb::Connect | Verb::Info => After::Any,
            Verb::Ping | Verb::Pong | Verb::Ok => After::Ignore,
        }
    }
}

/// Op names one direction accepts. No name is a prefix of another.
const CLIENT_OPS: &[(&[u8], Verb)] = &[
    (b"PUB", Verb::Pub),
    (b"HPUB", Verb::HPub),
    (b"SUB", Verb::Sub),
    (b"UNSUB", Verb::Unsub),
    (b"PING", Verb::Ping),
    (b"PONG", Verb::Pong),
    (b"CONNECT", Verb::Connect),
    (b"INFO", Verb::Info),
    (b"+OK", Verb::Ok),
    (b"-ERR", Verb::Err),
];

const SERVER_OPS: &[(&[u8], Verb)] = &[
    (b"MSG", Verb::Msg),
    (b"HMSG", Verb::HMsg),
    (b"PING", Verb::Ping),
    (b"PONG", Verb::Pong),
    (b"INFO", Verb::Info),
    (b"+OK", Verb::Ok),
    (b"-ERR", Verb::Err),
];

/// A byte range of the caller's buffer, relative to its front.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of(self, buf: &[u8]) -> &[u8] {
        &buf[self.start..self.end]
    }
}

/// Progress through one control line; indices are into the caller's buffer,
/// which only grows at the end between calls.
#[derive(Debug, Default, Clone, Copy)]
struct LineProgress {
    /// The op and the length of its name, once recognised.
    verb: Option<(Verb, usize)>,
    /// Where the arguments start, once a non-blank byte arrived.
    arg_start: Option<usize>,
    /// Bytes before this index hold no `\n` (and, before `arg_start` is
    /// known, are all blanks).
    scan: usize,
}

/// A message op whose control line is parsed. Its line stays in the
/// caller's buffer until the payload is complete, so every field is a span
/// of that buffer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    subject: Span,
    /// Empty for `PUB`/`HPUB`.
    sid: Span,
    reply: Option<Span>,
    hdr: Option<usize>,
    /// Where the payload starts: just after the control line's `\n`.
    at: usize,
    total: usize,
}

impl Pending {
    /// Bytes of the whole op: control line, payload and its CRLF.
    fn len(&self) -> usize {
        self.at + self.total + 2
    }

    /// The header block (if any) and the payload after it.
    fn body<'a>(&self, buf: &'a [u8]) -> (Option<&'a [u8]>, &'a [u8]) {
        let body = &buf[self.at..self.at + self.total];
        match self.hdr {
            Some(h) => {
                let (headers, payload) = body.split_at(h);
                (Some(headers), payload)
            }
            None => (None, body),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Line(LineProgress),
    /// Dropping the rest of a `PING`/`PONG`/`+OK` line, as nats-server does
    /// (it puts no limit on it, so neither do we, and we keep nothing).
    Skip(Verb),
    Payload(Pending),
}

impl Default for State {
    fn default() -> Self {
        State::Line(LineProgress::default())
    }
}

/// What the shared core hands to a direction's parser: spans of the bytes
/// the step consumed.
#[derive(Debug, Clone, Copy)]
enum Frame {
    Bare(Verb),
    /// CONNECT, INFO (trailing blanks trimmed), -ERR, SUB, UNSUB: the argument text.
    Line(Verb, Span),
    Msg(Pending),
}

#[derive(Debug)]
struct Core {
    limits: Limits,
    ops: &'static [(&'static [u8], Verb)],
    /// Try [`fast_pub`] on a fresh line (client direction only).
    fast_pub: bool,
    state: State,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Index of the first `\n`, eight bytes at a time (SWAR "has zero byte" on
/// `word ^ 0x0a0a..`), then byte by byte for the tail.
pub(crate) fn find_nl(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ NL;
        let found = word.wrapping_sub(LO) & !word & HI;
        if found != 0 {
            // The lowest flagged byte is exact: borrows only run upward,
            // from a byte that really is zero.
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

/// Matches the op name at the front of `buf`, case-insensitively.
fn match_op(
    ops: &'static [(&'static [u8], Verb)],
    buf: &[u8],
) -> Result<Option<(Verb, usize)>, ParseError> {
    let mut partial = false;
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    for &(name, verb) in ops {
        if !name[0].eq_ignore_ascii_case(&first) {
            continue;
        }
        let n = name.len().min(buf.len());
        if buf[..n].eq_ignore_ascii_case(&name[..n]) {
            if n == name.len() {
                return Ok(Some((verb, n)));
            }
            partial = true;
        }
    }
    if partial {
        Ok(None)
    } else {
        Err(ParseError::UnknownOp)
    }
}

/// A size as nats-server's `parseSize` reads it: 1 to 9 ASCII digits.
pub(crate) fn parse_size(d: &[u8]) -> Option<usize> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut n = 0usize;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(c - b'0');
    }
    Some(n)
}

/// Up to `MAX_ARGS` argument spans; `n` counts all of them.
struct Args {
    spans: [(usize, usize); MAX_ARGS],
    n: usize,
}

const MAX_ARGS: usize = 6;

impl Args {
    #[inline]
    fn split(arg: &[u8], sep: impl Fn(u8) -> bool) -> Args {
        let mut args = Args {
            spans: [(0, 0); MAX_ARGS],
            n: 0,
        };
        let mut start = None;
        for (i, &b) in arg.iter().enumerate() {
            match (sep(b), start) {
                (true, Some(s)) => {
                    args.push(s, i);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            args.push(s, arg.len());
        }
        args
    }

    #[inline]
    fn push(&mut self, start: usize, end: usize) {
        if self.n < MAX_ARGS {
            self.spans[self.n] = (start, end);
        }
        self.n += 1;
    }

    fn raw<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.spans[i];
        &line[s..e]
    }

    /// Argument `i` as a span of the buffer whose `offset` the line starts at.
    fn span(&self, offset: usize, i: usize) -> Span {
        let (s, e) = self.spans[i];
        Span {
            start: offset + s,
            end: offset + e,
        }
    }
}

/// Parses the arguments `buf[start..end]` of a message op whose control line
/// ends with the `\n` at `nl`.
fn msg_args(
    verb: Verb,
    buf: &[u8],
    (start, end, nl): (usize, usize, usize),
    max_payload: usize,
) -> Result<Pending, ParseError> {
    let arg = &buf[start..end];
    let args = Args::split(arg, is_blank);
    // Leading fixed arguments (subject, and sid for MSG/HMSG) and trailing sizes.
    let (lead, sizes) = match verb {
        Verb::Pub => (1, 1),
        Verb::HPub => (1, 2),
        Verb::Msg => (2, 1),
        _ => (2, 2),
    };
    let with_reply = if args.n == lead + sizes {
        false
    } else if args.n == lead + sizes + 1 {
        true
    } else {
        return Err(ParseError::MsgArgs);
    };
    let first_size = lead + usize::from(with_reply);
    let hdr = if sizes == 2 {
        let h = parse_size(args.raw(arg, first_size)).ok_or(ParseError::BadHeaderSize)?;
        Some(h)
    } else {
        None
    };
    let total = parse_size(args.raw(arg, args.n - 1)).ok_or(ParseError::BadSize)?;
    if hdr.is_some_and(|h| h > total) {
        return Err(ParseError::HeaderSizeTooLarge);
    }
    if total > max_payload {
        return Err(ParseError::MaxPayload);
    }
    Ok(Pending {
        subject: args.span(start, 0),
        sid: if lead == 2 {
            args.span(start, 1)
        } else {
            Span::default()
        },
        reply: with_reply.then(|| args.span(start, lead)),
        hdr,
        at: nl + 1,
        total,
    })
}

/// The common case in one pass: `buf` starts with a complete
/// `PUB <subject> [reply] <#bytes>\r\n<payload>\r\n` (one space after the
/// name, CRLF line end, within the limits). Anything else gives `None`,
/// and the general machine (which yields every error) takes over; when
/// this gives `Some`, the general machine gives the same op.
#[inline]
fn fast_pub(buf: &[u8], limits: Limits) -> Option<Pending> {
    const HEAD: u32 = u32::from_le_bytes(*b"pub ");
    let head = buf.get(..5)?;
    // OR-ing 0x20 into the name lowercases its letters and maps no other
    // byte onto `p`, `u` or `b`; the space must be exact.
    let word = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) | 0x0020_2020;
    if word != HEAD || is_blank(head[4]) {
        return None;
    }
    let nl = 4 + find_nl(&buf[4..])?;
    // `buf[3]` is a space, so a `\r` just before `nl` puts `end` at 4 or
    // later.
    if buf[nl - 1] != b'\r' {
        return None;
    }
    let end = nl - 1;
    if end - 4 > limits.max_control_line {
        return None;
    }
    // Subject, then an optional reply, then the size, each one blank apart
    // (more blanks: the general machine).
    let arg = &buf[4..end];
    let subject_end = arg.iter().position(|&b| is_blank(b))?;
    let size_start = arg.iter().rposition(|&b| is_blank(b))? + 1;
    let total = parse_size(&arg[size_start..])?;
    if total > limits.max_payload {
        return None;
    }
    let reply = if size_start == subject_end + 1 {
        None
    } else {
        let reply = subject_end + 1..size_start - 1;
        if reply.is_empty() || arg[reply.clone()].iter().any(|&b| is_blank(b)) {
            return None;
        }
        Some(Span {
            start: 4 + reply.start,
            end: 4 + reply.end,
        })
    };
    let at = nl + 1;
    if buf.get(at + total..at + total + 2)? != b"\r\n" {
        return None;
    }
    Some(Pending {
        subject: Span {
            start: 4,
            end: 4 + subject_end,
        },
        sid: Span::default(),
        reply,
        hdr: None,
        at,
        total,
    })
}

fn trim_end_blanks(buf: &[u8], mut s: Span) -> Span {
    s.end = s
        .of(buf)
        .iter()
        .rposition(|&c| !is_blank(c))
        .map_or(s.start, |i| s.start + i + 1);
    s
}

/// What [`Core::line`] did.
enum LineStep {
    /// The line is incomplete; store the progress back.
    NeedMore,
    /// A frame, and the bytes it consumed.
    Frame(Frame, usize),
    /// Now skipping an ignored line's tail: the whole buffer is consumed.
    Skipping,
    /// A message's control line is parsed: go on with its payload.
    Continue,
}

impl Core {
    fn new(limits: Limits, ops: &'static [(&'static [u8], Verb)], fast_pub: bool) -> Self {
        Core {
            limits,
            ops,
            fast_pub,
            state: State::default(),
        }
    }

    /// One step over `buf` (the caller's buffer, from its front): a frame
    /// (if any) and how many bytes at the front are done. `(None, 0)` means
    /// need more bytes.
    #[inline]
    fn step(&mut self, buf: &[u8]) -> Result<(Option<Frame>, usize), ParseError> {
        if self.fast_pub {
            if let State::Line(LineProgress { verb: None, .. }) = self.state {
                if let Some(p) = fast_pub(buf, self.limits) {
                    return Ok((Some(Frame::Msg(p)), p.len()));
                }
            }
        }
        self.step_slow(buf)
    }

    fn step_slow(&mut self, buf: &[u8]) -> Result<(Option<Frame>, usize), ParseError> {
        loop {
            match self.state {
                State::Skip(verb) => {
                    return Ok(match find_nl(buf) {
                        Some(i) => {
                            self.state = State::default();
                            (Some(Frame::Bare(verb)), i + 1)
                        }
                        None => (None, buf.len()),
                    });
                }
                State::Payload(p) => {
                    let end = p.at + p.total;
                    // The byte after the payload is checked as soon as it
                    // arrives, as nats-server's MSG_END_R/MSG_END_N states do.
                    if buf.len() > end && buf[end] != b'\r' {
                        return Err(ParseError::PayloadNotTerminated);
                    }
                    if buf.len() > end + 1 && buf[end + 1] != b'\n' {
                        return Err(ParseError::PayloadNotTerminated);
                    }
                    if buf.len() < end + 2 {
                        return Ok((None, 0));
                    }
                    self.state = State::default();
                    return Ok((Some(Frame::Msg(p)), p.len()));
                }
                State::Line(mut lp) => match self.line(&mut lp, buf)? {
                    LineStep::NeedMore => {
                        // Keep the progress so no byte is scanned twice.
                        self.state = State::Line(lp);
                        return Ok((None, 0));
                    }
                    LineStep::Frame(f, consumed) => return Ok((Some(f), consumed)),
                    LineStep::Skipping => return Ok((None, buf.len())),
                    LineStep::Continue => continue,
                },
            }
        }
    }

    /// Advances through a control line. On a complete line (and on
    /// `Skipping`) `self.state` is replaced; on `NeedMore` the caller stores
    /// `lp` back.
    fn line(&mut self, lp: &mut LineProgress, buf: &[u8]) -> Result<LineStep, ParseError> {
        let (verb, name_len) = match lp.verb {
            Some(v) => v,
            None => match match_op(self.ops, buf)? {
                Some(v) => {
                    lp.verb = Some(v);
                    lp.scan = v.1;
                    v
                }
                None => return Ok(LineStep::NeedMore),
            },
        };
        let after = verb.after();
        if after == After::Ignore {
            return Ok(match find_nl(&buf[name_len..]) {
                Some(i) => {
                    self.state = State::default();
                    LineStep::Frame(Frame::Bare(verb), name_len + i + 1)
                }
                None => {
                    self.state = State::Skip(verb);
                    LineStep::Skipping
                }
            });
        }
        let mcl = self.limits.max_control_line;
        let start = match lp.arg_start {
            Some(s) => s,
            None => {
                if after == After::Space && lp.scan == name_len {
                    match buf.get(name_len) {
                        None => return Ok(LineStep::NeedMore),
                        Some(&b) if is_blank(b) => {}
                        Some(_) => return Err(ParseError::UnknownOp),
                    }
                }
                let rest = &buf[lp.scan..];
                let blanks = rest
                    .iter()
                    .position(|&b| !is_blank(b))
                    .unwrap_or(rest.len());
                let end = lp.scan + blanks;
                // nats-server skips any number of blanks here; we bound them
                // by the control line limit so a peer can't make us buffer
                // without end.
                if end - name_len > mcl {
                    return Err(ParseError::MaxControlLine);
                }
                lp.scan = end;
                if end == buf.len() {
                    return Ok(LineStep::NeedMore);
                }
                lp.arg_start = Some(end);
                end
            }
        };
        let Some(i) = find_nl(&buf[lp.scan..]) else {
            lp.scan = buf.len();
            // The finished line may drop one byte (a `\r`), so only more than
            // `mcl + 1` buffered bytes prove the limit is broken; the same
            // verdict then follows whatever the chunking.
            if buf.len() - start > mcl + 1 {
                return Err(ParseError::MaxControlLine);
            }
            return Ok(LineStep::NeedMore);
        };
        let nl = lp.scan + i;
        let mut end = nl;
        if end > start && (buf[end - 1] == b'\r' || buf[start..end].contains(&b'\r')) {
            end -= 1;
        }
        if end - start > mcl {
            return Err(ParseError::MaxControlLine);
        }
        self.state = State::default();
        if matches!(verb, Verb::Pub | Verb::HPub | Verb::Msg | Verb::HMsg) {
            let pending = msg_args(verb, buf, (start, end, nl), self.limits.max_payload)?;
            self.state = State::Payload(pending);
            return Ok(LineStep::Continue);
        }
        let arg = Span { start, end };
        let arg = match verb {
            Verb::Connect | Verb::Info => trim_end_blanks(buf, arg),
            _ => arg,
        };
        Ok(LineStep::Frame(Frame::Line(verb, arg), nl + 1))
    }
}

/// One step of [`ClientOpParser::parse_ref`]: `consumed` bytes at the front
/// of the buffer are done (the caller must drop them, e.g.
/// `buf.advance(consumed)`, before the next call); `op` is the op they held,
/// if any. `consumed == 0` (and no op) means: need more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// The op the consumed bytes held; `None` for ignored input.
    pub op: Option<ClientOpRef<'a>>,
    /// Bytes at the front of the buffer that are done.
    pub consumed: usize,
}

/// One step of [`ServerOpParser::parse_ref`]; as [`Step`], for server ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStep<'a> {
    /// The op the consumed bytes held; `None` for ignored input.
    pub op: Option<ServerOpRef<'a>>,
    /// Bytes at the front of the buffer that are done.
    pub consumed: usize,
}

/// Parses the ops a client sends (server side).
///
/// `INFO` (with a JSON object) and `+OK` from a client are consumed and
/// ignored, as nats-server does; `MSG` and `HMSG` are unknown ops here.
/// `HPUB` is parsed whatever the client announced: the caller checks
/// `headers` support.
///
/// Two APIs share one state machine: [`parse_ref`](Self::parse_ref) borrows
/// the caller's buffer (no reference counting), [`parse`](Self::parse)
/// gives owned [`ClientOp`]s of `Bytes` split off a `BytesMut`. Use one of
/// them per connection.
#[derive(Debug)]
pub struct ClientOpParser {
    core: Core,
}

impl Default for ClientOpParser {
    fn default() -> Self {
        ClientOpParser::new(Limits::default())
    }
}

impl ClientOpParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        ClientOpParser {
            core: Core::new(limits, CLIENT_OPS, true),
        }
    }

    /// A parser without the `PUB` fast path: the general machine alone,
    /// to check that the fast path changes nothing.
    #[cfg(any(test, feature = "_fuzz"))]
    pub(crate) fn without_fast_path(limits: Limits) -> Self {
        ClientOpParser {
            core: Core::new(limits, CLIENT_OPS, false),
        }
    }

    /// Change the limits (e.g. after a config reload).
    pub fn set_limits(&mut self, limits: Limits) {
        self.core.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.core.limits
    }

    /// Forget a partly parsed op. Call it if `buf` was replaced or cleared.
    pub fn reset(&mut self) {
        self.core.state = State::default();
    }

    /// Parse the next op from the front of `buf`; `Ok(None)` = need more bytes.
    ///
    /// Between calls `buf` may only grow at its end. After an `Err` the
    /// connection is over: the parser's state is unspecified.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ParseError> {
        loop {
            let (frame, consumed) = self.core.step(buf)?;
            let Some(frame) = frame else {
                if consumed == 0 {
                    return Ok(None);
                }
                buf.advance(consumed);
                continue;
            };
            let frame_bytes = buf.split_to(consumed).freeze();
            if let Some(op) = client_op(frame, &frame_bytes)? {
                return Ok(Some(op.to_op(|s| frame_bytes.slice_ref(s))));
            }
        }
    }

    /// One step over the front of `buf`, borrowing it: see [`Step`].
    ///
    /// Between calls `buf` may only grow at its end, except that the caller
    /// removes exactly `consumed` bytes from its front after each step with
    /// `consumed > 0`. Ignored input (a client's `INFO` or `+OK`, the tail
    /// of a `PING`/`PONG` line, even one that never ends) comes back as a
    /// step with no op, so nothing unbounded stays buffered. After an `Err`
    /// the connection is over: the parser's state is unspecified.
    #[inline]
    pub fn parse_ref<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, ParseError> {
        let (frame, consumed) = self.core.step(buf)?;
        let op = match frame {
            Some(frame) => client_op(frame, buf)?,
            None => None,
        };
        Ok(Step { op, consumed })
    }
}

/// The client op a frame of `buf` holds; `None` for an ignored one.
#[inline]
fn client_op(frame: Frame, buf: &[u8]) -> Result<Option<ClientOpRef<'_>>, ParseError> {
    Ok(Some(match frame {
        Frame::Msg(p) => {
            let subject = p.subject.of(buf);
            let reply = p.reply.map(|r| r.of(buf));
            match p.body(buf) {
                (None, payload) => ClientOpRef::Pub {
                    subject,
                    reply,
                    payload,
                },
                (Some(headers), payload) => ClientOpRef::HPub {
                    subject,
                    reply,
                    headers,
                    payload,
                },
            }
        }
        Frame::Bare(Verb::Ping) => ClientOpRef::Ping,
        Frame::Bare(Verb::Pong) => ClientOpRef::Pong,
        Frame::Bare(_) => return Ok(None),
        Frame::Line(Verb::Connect, json) => ClientOpRef::Connect(json.of(buf)),
        Frame::Line(Verb::Info, json) => {
            check_client_info(json.of(buf))?;
            return Ok(None);
        }
        Frame::Line(Verb::Sub, arg) => sub_op(arg.of(buf))?,
        Frame::Line(Verb::Unsub, arg) => unsub_op(arg.of(buf))?,
        Frame::Line(_, _) => return Err(ParseError::PeerErr),
    }))
}

/// nats-server unmarshals a client's INFO and then ignores it.
#[cold]
fn check_client_info(json: &[u8]) -> Result<(), ParseError> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(_) => Ok(()),
        Err(_) => Err(ParseError::BadInfo),
    }
}

/// `SUB`/`UNSUB` split on CR and LF too, as nats-server's `splitArg`.
fn is_sub_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn sub_op(arg: &[u8]) -> Result<ClientOpRef<'_>, ParseError> {
    let args = Args::split(arg, is_sub_sep);
    match args.n {
        2 => Ok(ClientOpRef::Sub {
            subject: args.raw(arg, 0),
            queue: None,
            sid: args.raw(arg, 1),
        }),
        3 => Ok(ClientOpRef::Sub {
            subject: args.raw(arg, 0),
            queue: Some(args.raw(arg, 1)),
            sid: args.raw(arg, 2),
        }),
        _ => Err(ParseError::SubArgs),
    }
}

fn unsub_op(arg: &[u8]) -> Result<ClientOpRef<'_>, ParseError> {
    let args = Args::split(arg, is_sub_sep);
    match args.n {
        1 => Ok(ClientOpRef::Unsub {
            sid: args.raw(arg, 0),
            max: None,
        }),
        // A max that is not a size is ignored, as nats-server does
        // (`UNSUB 1 x` removes the subscription at once).
        2 => Ok(ClientOpRef::Unsub {
            sid: args.raw(arg, 0),
            max: parse_size(args.raw(arg, 1)).map(|n| n as u64),
        }),
        _ => Err(ParseError::UnsubArgs),
    }
}

/// Parses the ops a server sends (client side).
///
/// `max_payload` applies to `MSG`/`HMSG` too: set it from the server's INFO.
/// As [`ClientOpParser`], it has a borrowing [`parse_ref`](Self::parse_ref)
/// and an owned [`parse`](Self::parse) over one state machine.
#[derive(Debug)]
pub struct ServerOpParser {
    core: Core,
}

impl Default for ServerOpParser {
    fn default() -> Self {
        ServerOpParser::new(Limits::default())
    }
}

impl ServerOpParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        ServerOpParser {
            core: Core::new(limits, SERVER_OPS, false),
        }
    }

    /// Change the limits (e.g. after a new INFO).
    pub fn set_limits(&mut self, limits: Limits) {
        self.core.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.core.limits
    }

    /// Forget a partly parsed op. Call it if `buf` was replaced or cleared.
    pub fn reset(&mut self) {
        self.core.state = State::default();
    }

    /// Parse the next op from the front of `buf`; `Ok(None)` = need more bytes.
    ///
    /// Between calls `buf` may only grow at its end.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ParseError> {
        loop {
            let (frame, consumed) = self.core.step(buf)?;
            let Some(frame) = frame else {
                if consumed == 0 {
                    return Ok(None);
                }
                buf.advance(consumed);
                continue;
            };
            let frame_bytes = buf.split_to(consumed).freeze();
            return Ok(Some(
                server_op(frame, &frame_bytes).to_op(|s| frame_bytes.slice_ref(s)),
            ));
        }
    }

    /// One step over the front of `buf`, borrowing it: see [`ServerStep`]
    /// and the contract of [`ClientOpParser::parse_ref`].
    #[inline]
    pub fn parse_ref<'a>(&mut self, buf: &'a [u8]) -> Result<ServerStep<'a>, ParseError> {
        let (frame, consumed) = self.core.step(buf)?;
        Ok(ServerStep {
            op: frame.map(|f| server_op(f, buf)),
            consumed,
        })
    }
}

/// The server op a frame of `buf` holds.
fn server_op(frame: Frame, buf: &[u8]) -> ServerOpRef<'_> {
    match frame {
        Frame::Bare(Verb::Ping) => ServerOpRef::Ping,
        Frame::Bare(Verb::Pong) => ServerOpRef::Pong,
        Frame::Bare(_) => ServerOpRef::Ok,
        Frame::Line(Verb::Info, json) => ServerOpRef::Info(json.of(buf)),
        Frame::Line(_, text) => ServerOpRef::Err(unquote(text.of(buf))),
        Frame::Msg(p) => {
            let subject = p.subject.of(buf);
            let sid = p.sid.of(buf);
            let reply = p.reply.map(|r| r.of(buf));
            match p.body(buf) {
                (None, payload) => ServerOpRef::Msg {
                    subject,
                    sid,
                    reply,
                    payload,
                },
                (Some(headers), payload) => ServerOpRef::HMsg {
                    subject,
                    sid,
                    reply,
                    headers,
                    payload,
                },
            }
        }
    }
}

/// The text between the single quotes of `-ERR '<text>'`, or the whole
/// argument when it is not quoted.
pub(crate) fn unquote(text: &[u8]) -> &[u8] {
    if text.len() >= 2 && text.starts_with(b"'") && text.ends_with(b"'") {
        &text[1..text.len() - 1]
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    //! Expected behaviour comes from nats-server 2.9.10 driven black-box
    //! (raw TCP, this machine) unless a test says otherwise.
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    type Outcome<T> = (Vec<T>, Option<ParseError>);

    fn client_chunked(data: &[u8], chunk: usize, limits: Limits) -> Outcome<ClientOp> {
        let mut p = ClientOpParser::new(limits);
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match p.parse(&mut buf) {
                    Ok(Some(op)) => ops.push(op),
                    Ok(None) => break,
                    Err(e) => return (ops, Some(e)),
                }
            }
        }
        (ops, None)
    }

    fn client(data: &[u8]) -> Outcome<ClientOp> {
        client_chunked(data, data.len(), Limits::default())
    }

    fn server_chunked(data: &[u8], chunk: usize, limits: Limits) -> Outcome<ServerOp> {
        let mut p = ServerOpParser::new(limits);
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match p.parse(&mut buf) {
                    Ok(Some(op)) => ops.push(op),
                    Ok(None) => break,
                    Err(e) => return (ops, Some(e)),
                }
            }
        }
        (ops, None)
    }

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    fn publ(
        subject: &'static [u8],
        reply: Option<&'static [u8]>,
        payload: &'static [u8],
    ) -> ClientOp {
        ClientOp::Pub {
            subject: b(subject),
            reply: reply.map(b),
            payload: b(payload),
        }
    }

    fn sub(subject: &'static [u8], queue: Option<&'static [u8]>, sid: &'static [u8]) -> ClientOp {
        ClientOp::Sub {
            subject: b(subject),
            queue: queue.map(b),
            sid: b(sid),
        }
    }

    /// Input that parses without error, and the ops it gives.
    fn client_ok_table() -> Vec<(&'static [u8], Vec<ClientOp>)> {
        vec![
            (b"PUB foo 2\r\nhi\r\n", vec![publ(b"foo", None, b"hi")]),
            (
                b"pub foo bar 2\r\nhi\r\n",
                vec![publ(b"foo", Some(b"bar"), b"hi")],
            ),
            (b"PuB\tfoo\t \t2\r\nhi\r\n", vec![publ(b"foo", None, b"hi")]),
            (b"PUB  foo 1\r\nx\r\n", vec![publ(b"foo", None, b"x")]),
            (b"PUB foo 2 \r\nhi\r\n", vec![publ(b"foo", None, b"hi")]),
            // A bare LF ends a control line (not a payload).
            (b"PUB foo 2\nhi\r\n", vec![publ(b"foo", None, b"hi")]),
            (b"PUB foo 02\r\nhi\r\n", vec![publ(b"foo", None, b"hi")]),
            (b"PUB foo 0\r\n\r\n", vec![publ(b"foo", None, b"")]),
            (
                b"PUB foo 4\r\n\r\n\r\n\r\n",
                vec![publ(b"foo", None, b"\r\n\r\n")],
            ),
            (
                b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
                vec![ClientOp::HPub {
                    subject: b(b"foo"),
                    reply: None,
                    headers: b(b"NATS/1.0\r\n\r\n"),
                    payload: b(b"hi"),
                }],
            ),
            (
                b"hpub foo rep 12 12\r\nNATS/1.0\r\n\r\n\r\n",
                vec![ClientOp::HPub {
                    subject: b(b"foo"),
                    reply: Some(b(b"rep")),
                    headers: b(b"NATS/1.0\r\n\r\n"),
                    payload: b(b""),
                }],
            ),
            (b"SUB foo 1\r\n", vec![sub(b"foo", None, b"1")]),
            (b"SUB foo q 1\r\n", vec![sub(b"foo", Some(b"q"), b"1")]),
            (b"sub foo  1\r\r\n", vec![sub(b"foo", None, b"1")]),
            (b"SUB foo.* 1\n", vec![sub(b"foo.*", None, b"1")]),
            (
                b"UNSUB 1\r\n",
                vec![ClientOp::Unsub {
                    sid: b(b"1"),
                    max: None,
                }],
            ),
            (
                b"UNSUB 1 5\r\n",
                vec![ClientOp::Unsub {
                    sid: b(b"1"),
                    max: Some(5),
                }],
            ),
            // A max that is not a size is ignored (+OK, connection kept).
            (
                b"UNSUB 1 x\r\n",
                vec![ClientOp::Unsub {
                    sid: b(b"1"),
                    max: None,
                }],
            ),
            (
                b"CONNECT {\"verbose\":false}\r\n",
                vec![ClientOp::Connect(b(b"{\"verbose\":false}"))],
            ),
            (b"CONNECT{}\r\n", vec![ClientOp::Connect(b(b"{}"))]),
            (b"connect   {} \t\r\n", vec![ClientOp::Connect(b(b"{}"))]),
            // Bad JSON is the engine's business (2.9.10 closes silently).
            (b"CONNECT\r\n", vec![ClientOp::Connect(b(b""))]),
            (b"PING\r\n", vec![ClientOp::Ping]),
            (b"ping\n", vec![ClientOp::Ping]),
            (b"PINGX\r\n", vec![ClientOp::Ping]),
            (b"PING \r\n", vec![ClientOp::Ping]),
            (b"PONGX\r\nPING\r\n", vec![ClientOp::Pong, ClientOp::Ping]),
            // A client's +OK and INFO are ignored.
            (b"+OK\r\n+OKX\r\nPING\r\n", vec![ClientOp::Ping]),
            (b"INFO {}\r\nPING\r\n", vec![ClientOp::Ping]),
            (
                b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nPING\r\n",
                vec![
                    sub(b"foo", None, b"1"),
                    publ(b"foo", None, b"hi"),
                    ClientOp::Unsub {
                        sid: b(b"1"),
                        max: None,
                    },
                    ClientOp::Ping,
                ],
            ),
        ]
    }

    /// Input that fails, the ops before the failure, and the error.
    fn client_err_table() -> Vec<(&'static [u8], usize, ParseError)> {
        use ParseError::*;
        vec![
            (b"XYZ\r\n", 0, UnknownOp),
            (b"\r\nPING\r\n", 0, UnknownOp),
            (b" PING\r\n", 0, UnknownOp),
            (b"PUB\r\n", 0, UnknownOp),
            (b"SUB\r\n", 0, UnknownOp),
            (b"UNSUB\r\n", 0, UnknownOp),
            (b"-ERR\r\n", 0, UnknownOp),
            (b"MSG foo 1 2\r\nhi\r\n", 0, UnknownOp),
            (b"HMSG foo 1 2 3\r\n", 0, UnknownOp),
            (b"PING\r\nPUX", 1, UnknownOp),
            (b"PUB foo 2\r\nhiX\r\n", 0, PayloadNotTerminated),
            (b"PUB foo 2\r\nhi\nPING\r\n", 0, PayloadNotTerminated),
            (b"PUB foo 2\r\nh\r\nPING\r\n", 0, PayloadNotTerminated),
            (b"PUB foo 1\r\nx\r\n\r\nPING\r\n", 1, UnknownOp),
            (b"PUB foo 1\r\nxy", 0, PayloadNotTerminated),
            (b"PUB foo -1\r\n\r\n", 0, BadSize),
            (b"PUB foo x\r\n\r\n", 0, BadSize),
            (b"PUB foo +2\r\nhi\r\n", 0, BadSize),
            (b"PUB foo 99999999999999999999\r\n", 0, BadSize),
            (b"PUB foo 2\r\r\nhi\r\n", 0, BadSize),
            (b"PUB foo\r\n\r\n", 0, MsgArgs),
            (b"PUB \r\n", 0, MsgArgs),
            (b"PUB foo\r 2\nhi\r\n", 0, MsgArgs),
            (b"PUB foo a b 1\r\nx\r\n", 0, MsgArgs),
            (b"HPUB foo 12\r\n", 0, MsgArgs),
            (b"HPUB foo 1 2 3 4\r\nab\r\n", 0, MsgArgs),
            (b"HPUB foo x 2\r\nab\r\n", 0, BadHeaderSize),
            (b"HPUB foo 2 x\r\nab\r\n", 0, BadSize),
            (
                b"HPUB foo 14 12\r\nNATS/1.0\r\n\r\nhi\r\n",
                0,
                HeaderSizeTooLarge,
            ),
            (b"PUB foo 2000000\r\n", 0, MaxPayload),
            (b"HPUB foo 2000000 2000000\r\n", 0, MaxPayload),
            (b"SUB foo\r\nPING\r\n", 0, SubArgs),
            (b"SUB foo q 1 x\r\nPING\r\n", 0, SubArgs),
            (b"UNSUB \r\nPING\r\n", 0, UnsubArgs),
            (b"UNSUB 1 2 3\r\nPING\r\n", 0, UnsubArgs),
            (b"-ERR foo\r\nPING\r\n", 0, PeerErr),
            (b"-ERR \r\nPING\r\n", 0, PeerErr),
            (b"INFO {bad\r\nPING\r\n", 0, BadInfo),
            (b"INFO\r\nPING\r\n", 0, BadInfo),
        ]
    }

    #[test]
    fn client_ops_table() {
        for (input, want) in client_ok_table() {
            assert_eq!(
                client(input),
                (want, None),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn client_errors_table() {
        for (input, n_ops, want) in client_err_table() {
            let (ops, err) = client(input);
            assert_eq!(ops.len(), n_ops, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(err, Some(want), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn client_error_texts_match_nats_server() {
        // Observed: -ERR before the close for these, a silent close otherwise.
        use ParseError::*;
        let unknown = Some("Unknown Protocol Operation");
        assert_eq!(UnknownOp.client_error(), unknown);
        assert_eq!(PayloadNotTerminated.client_error(), unknown);
        assert_eq!(
            MaxControlLine.client_error(),
            Some("maximum control line exceeded")
        );
        assert_eq!(MaxPayload.client_error(), Some("Maximum Payload Violation"));
        for silent in [
            MsgArgs,
            BadSize,
            BadHeaderSize,
            HeaderSizeTooLarge,
            SubArgs,
            UnsubArgs,
            BadInfo,
            PeerErr,
        ] {
            assert_eq!(silent.client_error(), None, "{silent:?}");
        }
    }

    /// Every table stream, cut at every position and fed a byte at a time,
    /// gives the same ops and error as one buffer (STYLE: split at any byte).
    #[test]
    fn split_at_every_position_gives_same_ops() {
        let mut streams: Vec<Vec<u8>> = client_ok_table().iter().map(|(i, _)| i.to_vec()).collect();
        streams.extend(client_err_table().iter().map(|(i, _, _)| i.to_vec()));
        streams.push(
            client_ok_table()
                .iter()
                .flat_map(|(i, _)| i.to_vec())
                .collect(),
        );
        for s in &streams {
            let whole = client(s);
            assert_eq!(
                client_chunked(s, 1, Limits::default()),
                whole,
                "bytewise {s:?}"
            );
            for cut in 0..=s.len() {
                let mut p = ClientOpParser::default();
                let mut buf = BytesMut::from(&s[..cut]);
                let mut ops = Vec::new();
                let mut err = None;
                'outer: for next in [&s[cut..], &[][..]] {
                    loop {
                        match p.parse(&mut buf) {
                            Ok(Some(op)) => ops.push(op),
                            Ok(None) => break,
                            Err(e) => {
                                err = Some(e);
                                break 'outer;
                            }
                        }
                    }
                    buf.extend_from_slice(next);
                }
                assert_eq!((ops, err), whole, "cut {cut} of {s:?}");
            }
        }
    }

    /// `parse_ref` over a growing buffer: each delivery appended, then steps
    /// until one consumes nothing, each step's `consumed` bytes removed.
    fn client_ref_pieces<'p>(
        p: &mut ClientOpParser,
        pieces: impl IntoIterator<Item = &'p [u8]>,
    ) -> Outcome<ClientOp> {
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match p.parse_ref(&buf) {
                    Ok(Step { consumed: 0, op }) => {
                        assert_eq!(op, None);
                        break;
                    }
                    Ok(Step { op, consumed }) => {
                        ops.extend(op.map(|op| op.to_op(Bytes::copy_from_slice)));
                        buf.advance(consumed);
                    }
                    Err(e) => return (ops, Some(e)),
                }
            }
        }
        (ops, None)
    }

    fn client_ref_chunked(data: &[u8], chunk: usize) -> Outcome<ClientOp> {
        client_ref_pieces(&mut ClientOpParser::default(), data.chunks(chunk.max(1)))
    }

    fn all_table_streams() -> Vec<Vec<u8>> {
        let mut streams: Vec<Vec<u8>> = client_ok_table().iter().map(|(i, _)| i.to_vec()).collect();
        streams.extend(client_err_table().iter().map(|(i, _, _)| i.to_vec()));
        streams.push(
            client_ok_table()
                .iter()
                .flat_map(|(i, _)| i.to_vec())
                .collect(),
        );
        streams
    }

    /// `parse_ref` gives what `parse` gives on every table stream: whole,
    /// cut in two at every position, and a byte at a time.
    #[test]
    fn parse_ref_matches_parse_at_every_split() {
        for s in &all_table_streams() {
            let whole = client(s);
            assert_eq!(client_ref_chunked(s, s.len()), whole, "whole {s:?}");
            assert_eq!(client_ref_chunked(s, 1), whole, "bytewise {s:?}");
            for cut in 0..=s.len() {
                let mut p = ClientOpParser::default();
                let got = client_ref_pieces(&mut p, [&s[..cut], &s[cut..]]);
                assert_eq!(got, whole, "cut {cut} of {s:?}");
            }
        }
    }

    /// The `PUB` fast path changes nothing: the general machine alone gives
    /// the same ops and errors, on table streams and on near-misses of the
    /// fast path's shape.
    #[test]
    fn fast_path_matches_general_machine() {
        let mut streams = all_table_streams();
        for s in [
            &b"PUB foo 2\r\nhi\r\nPUB foo bar 0\r\n\r\n"[..],
            b"PUB \rfoo 2\r\nhi\r\n",
            b"PUB \r\n",
            b"PUB \n",
            b"PUB foo 2\r\nhi\n\r",
            b"PUB foo 2\r\nhi\r",
            b"PUB foo\r 2\r\nhi\r\n",
            b"pUb foo 0\r\n\r\n",
            b"PUB\x00foo 1\r\nx\r\n",
            b"PUB foo 1 \r\nx\r\n",
            b"PUB foo  bar 1\r\nx\r\n",
            b"PUB foo 9\r\nx\r\n",
        ] {
            streams.push(s.to_vec());
        }
        let tight = Limits {
            max_control_line: 8,
            max_payload: 2,
        };
        for s in &streams {
            for limits in [Limits::default(), tight] {
                let mut fast = ClientOpParser::new(limits);
                let mut general = ClientOpParser::without_fast_path(limits);
                assert_eq!(
                    client_ref_pieces(&mut fast, [&s[..]]),
                    client_ref_pieces(&mut general, [&s[..]]),
                    "{s:?} {limits:?}"
                );
            }
        }
    }

    #[test]
    fn parse_ref_borrows_the_buffer() {
        let buf = b"PUB foo bar 5\r\nhello\r\nPING\r\n";
        let mut p = ClientOpParser::default();
        let step = p.parse_ref(buf).unwrap();
        assert_eq!(
            step,
            Step {
                op: Some(ClientOpRef::Pub {
                    subject: b"foo",
                    reply: Some(b"bar"),
                    payload: b"hello",
                }),
                consumed: 22,
            }
        );
        let Some(ClientOpRef::Pub { payload, .. }) = step.op else {
            panic!("expected PUB");
        };
        assert!(std::ptr::eq(payload, &buf[15..20]));
        let step = p.parse_ref(&buf[22..]).unwrap();
        assert_eq!(
            step,
            Step {
                op: Some(ClientOpRef::Ping),
                consumed: 6,
            }
        );
        assert_eq!(
            p.parse_ref(&[]).unwrap(),
            Step {
                op: None,
                consumed: 0
            }
        );
    }

    #[test]
    fn parse_ref_steps_over_ignored_input() {
        // A client's +OK and INFO: consumed, no op.
        let buf = b"+OK\r\nINFO {}\r\nPONG\r\n";
        let mut p = ClientOpParser::default();
        assert_eq!(
            p.parse_ref(buf),
            Ok(Step {
                op: None,
                consumed: 5
            })
        );
        assert_eq!(
            p.parse_ref(&buf[5..]),
            Ok(Step {
                op: None,
                consumed: 9
            })
        );
        assert_eq!(
            p.parse_ref(&buf[14..]),
            Ok(Step {
                op: Some(ClientOpRef::Pong),
                consumed: 6
            })
        );
    }

    #[test]
    fn parse_ref_never_ending_ping_tail_is_not_buffered() {
        let mut p = ClientOpParser::default();
        let mut buf = BytesMut::from(&b"PING"[..]);
        for _ in 0..100 {
            buf.extend_from_slice(&[b'x'; 1000]);
            let step = p.parse_ref(&buf).unwrap();
            assert_eq!(step.op, None);
            assert_eq!(step.consumed, buf.len());
            buf.advance(step.consumed);
            assert_eq!(
                p.parse_ref(&buf),
                Ok(Step {
                    op: None,
                    consumed: 0
                })
            );
        }
        buf.extend_from_slice(b"yy\r\nPONG\r\n");
        assert_eq!(
            p.parse_ref(&buf),
            Ok(Step {
                op: Some(ClientOpRef::Ping),
                consumed: 4
            })
        );
        buf.advance(4);
        assert_eq!(
            p.parse_ref(&buf),
            Ok(Step {
                op: Some(ClientOpRef::Pong),
                consumed: 6
            })
        );
    }

    #[test]
    fn parse_ref_keeps_a_split_pub_line_until_its_payload() {
        // The control line stays in the buffer (nothing consumed) while the
        // payload is awaited; no byte is consumed twice.
        let mut p = ClientOpParser::default();
        let mut buf = BytesMut::from(&b"PUB foo 5\r\nhel"[..]);
        assert_eq!(
            p.parse_ref(&buf),
            Ok(Step {
                op: None,
                consumed: 0
            })
        );
        buf.extend_from_slice(b"lo\r");
        assert_eq!(
            p.parse_ref(&buf),
            Ok(Step {
                op: None,
                consumed: 0
            })
        );
        buf.extend_from_slice(b"\n");
        assert_eq!(
            p.parse_ref(&buf),
            Ok(Step {
                op: Some(ClientOpRef::Pub {
                    subject: b"foo",
                    reply: None,
                    payload: b"hello"
                }),
                consumed: buf.len()
            })
        );
    }

    fn server_ref_chunked(data: &[u8], chunk: usize) -> Outcome<ServerOp> {
        let mut p = ServerOpParser::default();
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match p.parse_ref(&buf) {
                    Ok(ServerStep { consumed: 0, op }) => {
                        assert_eq!(op, None);
                        break;
                    }
                    Ok(ServerStep { op, consumed }) => {
                        ops.extend(op.map(|op| op.to_op(Bytes::copy_from_slice)));
                        buf.advance(consumed);
                    }
                    Err(e) => return (ops, Some(e)),
                }
            }
        }
        (ops, None)
    }

    #[test]
    fn server_parse_ref_matches_parse() {
        let input: &[u8] = b"INFO {\"a\":1} \r\n+OK junk\r\nMSG foo 1 2\r\nhi\r\n\
HMSG _INBOX.x 1 r 16 18\r\nNATS/1.0 503\r\n\r\nhi\r\n-ERR 'x'\r\nPING\r\nPONG\r\nMSG foo 2\r\n";
        let whole = server_chunked(input, input.len(), Limits::default());
        assert_eq!(whole.0.len(), 7);
        assert_eq!(whole.1, Some(ParseError::MsgArgs));
        for chunk in 1..=input.len() {
            assert_eq!(server_ref_chunked(input, chunk), whole, "chunk {chunk}");
        }
        let mut p = ServerOpParser::default();
        assert_eq!(
            p.parse_ref(b"HMSG s 9 3 5\r\nabcde\r\n"),
            Ok(ServerStep {
                op: Some(ServerOpRef::HMsg {
                    subject: b"s",
                    sid: b"9",
                    reply: None,
                    headers: b"abc",
                    payload: b"de"
                }),
                consumed: 21
            })
        );
    }

    #[test]
    fn payload_and_args_are_slices_of_the_read_buffer() {
        let mut buf = BytesMut::from(&b"PUB foo bar 5\r\nhello\r\n"[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Some(ClientOp::Pub {
            subject,
            reply,
            payload,
        }) = ClientOpParser::default().parse(&mut buf).unwrap()
        else {
            panic!("expected PUB");
        };
        let reply = reply.unwrap();
        for part in [&subject, &reply, &payload] {
            assert!(
                range.contains(&(part.as_ptr() as usize)),
                "{part:?} was copied"
            );
        }
        assert_eq!(&payload[..], b"hello");
        assert!(buf.is_empty());
    }

    #[test]
    fn control_line_limit_counts_arguments_only() {
        // nats-server: `SUB <4094 x a> 1` (4096 argument bytes) passes, one more fails;
        // the op name and the blanks after it do not count.
        let ok = [&b"SUB    "[..], &[b'a'; 4094], b" 1\r\n"].concat();
        assert_eq!(client(&ok).1, None);
        let bad = [&b"SUB "[..], &[b'a'; 4095], b" 1\r\n"].concat();
        assert_eq!(client(&bad).1, Some(ParseError::MaxControlLine));
        // CONNECT is limited too.
        let connect = [&b"CONNECT {\"name\":\""[..], &[b'a'; 5000], b"\"}\r\n"].concat();
        assert_eq!(client(&connect).1, Some(ParseError::MaxControlLine));
    }

    #[test]
    fn control_line_limit_enforced_while_bytes_arrive() {
        let limits = Limits {
            max_control_line: 10,
            max_payload: 100,
        };
        let mut p = ClientOpParser::new(limits);
        let mut buf = BytesMut::from(&b"PUB "[..]);
        // 11 argument bytes may still be 10 plus a CR; 12 cannot.
        for _ in 0..11 {
            buf.extend_from_slice(b"a");
            assert_eq!(p.parse(&mut buf), Ok(None));
        }
        buf.extend_from_slice(b"a");
        assert_eq!(p.parse(&mut buf), Err(ParseError::MaxControlLine));
        // A run of blanks cannot grow without end either.
        let mut p = ClientOpParser::new(limits);
        let mut buf = BytesMut::from(&b"SUB "[..]);
        buf.extend_from_slice(&[b' '; 10]);
        assert_eq!(p.parse(&mut buf), Err(ParseError::MaxControlLine));
    }

    #[test]
    fn max_payload_checked_when_line_arrives() {
        let limits = Limits {
            max_control_line: 4096,
            max_payload: 4096,
        };
        let mut p = ClientOpParser::new(limits);
        let mut buf = BytesMut::from(&b"PUB foo 4096\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        let mut p = ClientOpParser::new(limits);
        let mut buf = BytesMut::from(&b"PUB foo 4097\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Err(ParseError::MaxPayload));
        // HPUB: the total counts.
        let mut buf = BytesMut::from(&b"HPUB foo 10 4097\r\n"[..]);
        assert_eq!(
            ClientOpParser::new(limits).parse(&mut buf),
            Err(ParseError::MaxPayload)
        );
        // 1 MiB exactly is accepted by default, as nats-server.
        let mut buf = BytesMut::from(&b"PUB foo 1048576\r\n"[..]);
        assert_eq!(ClientOpParser::default().parse(&mut buf), Ok(None));
    }

    #[test]
    fn ping_tail_is_dropped_not_buffered() {
        // nats-server ignores anything between PING and LF, with no limit.
        let mut p = ClientOpParser::default();
        let mut buf = BytesMut::from(&b"PING"[..]);
        for _ in 0..10 {
            buf.extend_from_slice(&[b'x'; 1000]);
            assert_eq!(p.parse(&mut buf), Ok(None));
            assert!(buf.is_empty());
        }
        buf.extend_from_slice(b"\r\nPONG\r\n");
        assert_eq!(p.parse(&mut buf), Ok(Some(ClientOp::Ping)));
        assert_eq!(p.parse(&mut buf), Ok(Some(ClientOp::Pong)));
    }

    #[test]
    fn set_limits_applies_to_next_line() {
        let mut p = ClientOpParser::default();
        p.set_limits(Limits {
            max_control_line: 4096,
            max_payload: 1,
        });
        assert_eq!(p.limits().max_payload, 1);
        let mut buf = BytesMut::from(&b"PUB foo 2\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Err(ParseError::MaxPayload));
    }

    #[test]
    fn server_ops_table() {
        let input: &[u8] =
            b"INFO {\"a\":1} \r\n+OK\r\nMSG foo 1 2\r\nhi\r\nmsg foo 1 bar 0\r\n\r\n\
HMSG _INBOX.x 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n-ERR 'Unknown Protocol Operation'\r\n\
-ERR bare\r\nPING\r\nPONG\r\n";
        let want = vec![
            ServerOp::Info(b(b"{\"a\":1}")),
            ServerOp::Ok,
            ServerOp::Msg {
                subject: b(b"foo"),
                sid: b(b"1"),
                reply: None,
                payload: b(b"hi"),
            },
            ServerOp::Msg {
                subject: b(b"foo"),
                sid: b(b"1"),
                reply: Some(b(b"bar")),
                payload: b(b""),
            },
            ServerOp::HMsg {
                subject: b(b"_INBOX.x"),
                sid: b(b"1"),
                reply: None,
                headers: b(b"NATS/1.0 503\r\n\r\n"),
                payload: b(b""),
            },
            ServerOp::Err(b(b"Unknown Protocol Operation")),
            ServerOp::Err(b(b"bare")),
            ServerOp::Ping,
            ServerOp::Pong,
        ];
        let whole = server_chunked(input, input.len(), Limits::default());
        assert_eq!(whole, (want, None));
        for chunk in 1..input.len() {
            assert_eq!(
                server_chunked(input, chunk, Limits::default()),
                whole,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn server_parser_rejects_client_ops() {
        for input in [
            &b"PUB foo 1\r\nx\r\n"[..],
            b"SUB foo 1\r\n",
            b"CONNECT {}\r\n",
        ] {
            let got = server_chunked(input, input.len(), Limits::default());
            assert_eq!(got, (vec![], Some(ParseError::UnknownOp)));
        }
        let got = server_chunked(b"MSG foo 1\r\n", 64, Limits::default());
        assert_eq!(got.1, Some(ParseError::MsgArgs));
    }

    #[test]
    fn find_nl_matches_naive_search() {
        let mut data = vec![b'a'; 40];
        assert_eq!(find_nl(&data), None);
        for i in 0..data.len() {
            data[i] = b'\n';
            for start in 0..=i {
                assert_eq!(find_nl(&data[start..]), Some(i - start));
            }
            data[i] = 0x8a;
        }
        assert_eq!(find_nl(&[0x0b, 0x0a]), Some(1));
    }

    #[test]
    fn sizes_follow_parse_size() {
        // nats-server `parseSize`: 1..=9 digits, nothing else.
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"000000001"), Some(1));
        assert_eq!(parse_size(b"999999999"), Some(999_999_999));
        assert_eq!(parse_size(b"1000000000"), None);
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"1a"), None);
    }

    fn token() -> impl Strategy<Value = Bytes> {
        "[a-zA-Z0-9._*>$-]{1,16}".prop_map(Bytes::from)
    }

    fn payload() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn client_op() -> impl Strategy<Value = ClientOp> {
        prop_oneof![
            "\\{[a-z\":,0-9 ]{0,24}\\}".prop_map(|j| ClientOp::Connect(Bytes::from(j))),
            (token(), proptest::option::of(token()), payload()).prop_map(
                |(subject, reply, payload)| ClientOp::Pub {
                    subject,
                    reply,
                    payload
                }
            ),
            (token(), proptest::option::of(token()), payload(), payload()).prop_map(
                |(subject, reply, headers, payload)| ClientOp::HPub {
                    subject,
                    reply,
                    headers,
                    payload
                }
            ),
            (token(), proptest::option::of(token()), token()).prop_map(|(subject, queue, sid)| {
                ClientOp::Sub {
                    subject,
                    queue,
                    sid,
                }
            }),
            (token(), proptest::option::of(0u64..=999_999_999))
                .prop_map(|(sid, max)| ClientOp::Unsub { sid, max }),
            Just(ClientOp::Ping),
            Just(ClientOp::Pong),
        ]
    }

    fn server_op() -> impl Strategy<Value = ServerOp> {
        prop_oneof![
            "\\{[a-z\":,0-9 ]{0,24}\\}".prop_map(|j| ServerOp::Info(Bytes::from(j))),
            (token(), token(), proptest::option::of(token()), payload()).prop_map(
                |(subject, sid, reply, payload)| ServerOp::Msg {
                    subject,
                    sid,
                    reply,
                    payload
                }
            ),
            (
                token(),
                token(),
                proptest::option::of(token()),
                payload(),
                payload()
            )
                .prop_map(|(subject, sid, reply, headers, payload)| ServerOp::HMsg {
                    subject,
                    sid,
                    reply,
                    headers,
                    payload
                }),
            Just(ServerOp::Ok),
            "[ -&(-~]{0,32}".prop_map(|t| ServerOp::Err(Bytes::from(t))),
            Just(ServerOp::Ping),
            Just(ServerOp::Pong),
        ]
    }

    proptest! {
        #[test]
        fn client_ops_round_trip(ops in proptest::collection::vec(client_op(), 0..16), chunk in 1usize..40) {
            let mut wire = BytesMut::new();
            for op in &ops {
                crate::encode::client_op(&mut wire, op);
            }
            prop_assert_eq!(client(&wire), (ops.clone(), None));
            prop_assert_eq!(client_chunked(&wire, chunk, Limits::default()), (ops, None));
        }

        #[test]
        fn server_ops_round_trip(ops in proptest::collection::vec(server_op(), 0..16), chunk in 1usize..40) {
            let mut wire = BytesMut::new();
            for op in &ops {
                crate::encode::server_op(&mut wire, op);
            }
            let whole = server_chunked(&wire, wire.len(), Limits::default());
            prop_assert_eq!(&whole, &(ops, None));
            prop_assert_eq!(server_chunked(&wire, chunk, Limits::default()), whole);
        }

        #[test]
        fn parse_ref_matches_parse(ops in proptest::collection::vec(client_op(), 0..16), noise in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'P'), Just(b'U'), Just(b'B'), Just(b'1'), any::<u8>()],
            0..8,
        ), at in any::<prop::sample::Index>(), chunk in 1usize..40) {
            let mut wire = BytesMut::new();
            for op in &ops {
                crate::encode::client_op(&mut wire, op);
            }
            // Noise spliced in somewhere makes errors and odd shapes too.
            let mut wire = wire.to_vec();
            let at = at.index(wire.len() + 1);
            wire.splice(at..at, noise);
            let whole = client(&wire);
            prop_assert_eq!(client_ref_chunked(&wire, wire.len()), whole.clone());
            prop_assert_eq!(client_ref_chunked(&wire, chunk), whole.clone());
            prop_assert_eq!(client_ref_chunked(&wire, 1), whole.clone());
            let mut general = ClientOpParser::without_fast_path(Limits::default());
            prop_assert_eq!(client_ref_pieces(&mut general, [&wire[..]]), whole);
        }

        #[test]
        fn arbitrary_bytes_parse_the_same_in_chunks(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'P'), Just(b'U'), Just(b'B'), Just(b'1'), any::<u8>()],
            0..200,
        )) {
            crate::fuzz_props::client_proto(&data);
            crate::fuzz_props::client_proto_chunked(&data);
        }
    }

    #[test]
    fn fuzz_props_hold_on_table_inputs() {
        for (input, _) in client_ok_table() {
            crate::fuzz_props::client_proto(input);
            for first in 0..64u8 {
                crate::fuzz_props::client_proto_chunked(&[&[first][..], input].concat());
            }
        }
    }
}
