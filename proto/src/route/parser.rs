//! Incremental parser for the ops a peer server sends over a route.
//!
//! ## Format
//!
//! As the client protocol (see `crate::parser`): an op name in any letter
//! case, arguments separated by blanks, `\n` (normally `\r\n`) ends the
//! control line; a message's payload follows with its own `\r\n`.
//! `[account]` is absent on a route pinned to one account; `[origin]` of
//! `LS-` is present when the peer announced `lnocu` ([`RouteDialect`]).
//!
//! | op | arguments | then |
//! |---|---|---|
//! | `RS+` | `[account] <subject> [<queue> <weight>]` | |
//! | `RS-` | `[account] <subject> [queue]` | |
//! | `LS+` | `<origin> [account] <subject> [<queue> <weight>]` | |
//! | `LS-` | `[origin] [account] <subject> [queue]` | |
//! | `RMSG` | `[account] <subject> <tail> <#bytes>` | payload, `\r\n` |
//! | `HMSG` | `[account] <subject> <tail> <#hdr> <#total>` | headers and payload, `\r\n` |
//! | `LMSG` | `<origin> [account] <subject> <tail> <#hdr> <#total>` | as `HMSG` |
//! | `INFO`, `CONNECT` | JSON text | |
//! | `-ERR` | `'<text>'` | |
//! | `PING`, `PONG`, `+OK` | anything up to `\n` is ignored | |
//!
//! `<tail>`, as nats-server's `processRoutedMsgArgs` reads it: nothing; or
//! a reply subject alone; or `+ <reply> <queue>...`; or `| <queue>...` (no
//! reply). So `RMSG $G foo bar 5` has reply `bar`, and `RMSG $G foo | q1
//! q2 5` has no reply and two queue groups. The marker is only looked for
//! when there are two or more tail arguments.
//!
//! Arguments split on space, tab, CR and LF, as nats-server's `splitArg`.
//! Sizes are 1 to 9 digits (`parseSize`). nats-server accepts a control
//! line of 16 × `max_control_line` on routes ([`route_limits`]) and puts no
//! `max_payload` on them.
//!
//! ## Departures from nats-server
//!
//! nats-server's route parser also runs `PUB`, `HPUB`, `SUB`, `UNSUB`,
//! `MSG`, `A+` and `A-` through client or gateway code paths no server
//! sends on a route; they are unknown ops here. A queue weight that is not a
//! size (nats-server stores -1) is an error.
use bytes::{Buf, Bytes, BytesMut};

use super::ops::{is_arg_sep, QueueWeight, RemoteSub, RemoteUnsub, RouteOp, RouteOpRef, RoutedMsg};
use super::{ROUTE_CONTROL_LINE_FACTOR, ROUTE_MAX_PAYLOAD_BYTES};
use crate::parser::{find_nl, parse_size, unquote};
use crate::Limits;

/// The limits nats-server applies to a route: a control line of
/// [`ROUTE_CONTROL_LINE_FACTOR`] × the server's `max_control_line`, and no
/// payload limit beyond the 9-digit size field.
pub fn route_limits(max_control_line: usize) -> Limits {
    Limits {
        max_control_line: max_control_line.saturating_mul(ROUTE_CONTROL_LINE_FACTOR),
        max_payload: ROUTE_MAX_PAYLOAD_BYTES,
    }
}

/// What the two servers of a route agreed on that changes the shape of ops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteDialect {
    /// The route is dedicated to one account (`route_account` in INFO):
    /// interest and message ops carry no account.
    pub pinned: bool,
    /// The peer puts its origin cluster in `LS-` (it announced `lnocu`).
    pub ls_unsub_origin: bool,
}

/// A route protocol violation. Every one ends the route.
///
/// [`RouteParseError::peer_error`] gives what nats-server sends before it
/// closes; for malformed arguments it closes without a word.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteParseError {
    /// The bytes at the start of an op are no route op (`XYZ`, `RS+\r\n`,
    /// `PUB`, an empty line).
    UnknownOp,
    /// A control line's arguments are longer than `max_control_line`.
    MaxControlLine,
    /// A message declared more than `max_payload` bytes.
    MaxPayload,
    /// A payload is not followed by `\r\n` (longer than its declared size).
    PayloadNotTerminated,
    /// `RMSG`/`HMSG`/`LMSG` with too few arguments.
    MsgArgs,
    /// The reply/queue marker of a message is neither `+` nor `|`.
    ReplyIndicator,
    /// The (total) size is missing, not decimal, signed or over 9 digits.
    BadSize,
    /// The header size of `HMSG`/`LMSG` is not a valid size.
    BadHeaderSize,
    /// The header size is larger than the total size.
    HeaderSizeTooLarge,
    /// `RS+`/`LS+` with the wrong number of arguments.
    SubArgs,
    /// `RS-`/`LS-` with the wrong number of arguments.
    UnsubArgs,
    /// The queue weight of `RS+`/`LS+` is not a size.
    QueueWeight,
}

impl RouteParseError {
    /// The text nats-server sends as `-ERR '<text>'` before closing the
    /// route, or `None` when it closes without one.
    pub fn peer_error(&self) -> Option<&'static str> {
        match self {
            RouteParseError::UnknownOp | RouteParseError::PayloadNotTerminated => {
                Some(crate::errors::UNKNOWN_PROTOCOL_OPERATION)
            }
            RouteParseError::MaxControlLine => Some(crate::errors::MAX_CONTROL_LINE_EXCEEDED),
            RouteParseError::MaxPayload => Some(crate::errors::MAX_PAYLOAD_VIOLATION),
            RouteParseError::MsgArgs
            | RouteParseError::ReplyIndicator
            | RouteParseError::BadSize
            | RouteParseError::BadHeaderSize
            | RouteParseError::HeaderSizeTooLarge
            | RouteParseError::SubArgs
            | RouteParseError::UnsubArgs
            | RouteParseError::QueueWeight => None,
        }
    }
}

impl std::fmt::Display for RouteParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouteParseError::UnknownOp => "unknown route protocol operation",
            RouteParseError::MaxControlLine => "maximum control line exceeded",
            RouteParseError::MaxPayload => "maximum payload exceeded",
            RouteParseError::PayloadNotTerminated => "payload not followed by CRLF",
            RouteParseError::MsgArgs => "wrong number of routed message arguments",
            RouteParseError::ReplyIndicator => "bad or missing reply indicator",
            RouteParseError::BadSize => "bad or missing size",
            RouteParseError::BadHeaderSize => "bad or missing header size",
            RouteParseError::HeaderSizeTooLarge => "header size larger than total size",
            RouteParseError::SubArgs => "wrong number of RS+/LS+ arguments",
            RouteParseError::UnsubArgs => "wrong number of RS-/LS- arguments",
            RouteParseError::QueueWeight => "bad queue weight",
        })
    }
}

impl std::error::Error for RouteParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    RSub,
    RUnsub,
    LSub,
    LUnsub,
    RMsg,
    HMsg,
    LMsg,
    Info,
    Connect,
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
            Verb::Info | Verb::Connect => After::Any,
            Verb::Ping | Verb::Pong | Verb::Ok => After::Ignore,
            _ => After::Space,
        }
    }

    fn is_msg(self) -> bool {
        matches!(self, Verb::RMsg | Verb::HMsg | Verb::LMsg)
    }
}

/// Op names a route accepts. No name is a prefix of another.
const ROUTE_OPS: &[(&[u8], Verb)] = &[
    (b"RMSG", Verb::RMsg),
    (b"HMSG", Verb::HMsg),
    (b"LMSG", Verb::LMsg),
    (b"RS+", Verb::RSub),
    (b"RS-", Verb::RUnsub),
    (b"LS+", Verb::LSub),
    (b"LS-", Verb::LUnsub),
    (b"PING", Verb::Ping),
    (b"PONG", Verb::Pong),
    (b"INFO", Verb::Info),
    (b"CONNECT", Verb::Connect),
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

/// A message whose control line is parsed. The line stays in the caller's
/// buffer until the payload is complete, so every field is a span of it.
#[derive(Debug, Clone, Copy)]
struct PendingMsg {
    /// `LMSG` only.
    origin: Option<Span>,
    account: Option<Span>,
    subject: Span,
    reply: Option<Span>,
    /// Empty when there are no queue groups.
    queues: Span,
    hdr: Option<usize>,
    /// Where the payload starts: just after the control line's `\n`.
    at: usize,
    total: usize,
}

impl PendingMsg {
    /// Bytes of the whole op: control line, payload and its CRLF.
    fn len(&self) -> usize {
        self.at + self.total + 2
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Line(LineProgress),
    /// Dropping the rest of a `PING`/`PONG`/`+OK` line, as nats-server does
    /// (it puts no limit on it, so neither do we, and we keep nothing).
    Skip(Verb),
    Payload(PendingMsg),
}

impl Default for State {
    fn default() -> Self {
        State::Line(LineProgress::default())
    }
}

/// A complete op, as spans of the bytes the step consumed.
#[derive(Debug, Clone, Copy)]
enum Frame {
    Bare(Verb),
    /// The argument text of a line op.
    Line(Verb, Span),
    Msg(PendingMsg),
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Matches the op name at the front of `buf`, case-insensitively.
fn match_op(buf: &[u8]) -> Result<Option<(Verb, usize)>, RouteParseError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut partial = false;
    for &(name, verb) in ROUTE_OPS {
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
        Err(RouteParseError::UnknownOp)
    }
}

/// Kept argument spans of a control line: the first [`FRONT`] and the last
/// [`BACK`] (a message's queue list in between can be any length), and how
/// many there are.
struct Tokens {
    front: [(usize, usize); FRONT],
    back: [(usize, usize); BACK],
    n: usize,
}

/// Enough for `<origin> <account> <subject> + <reply> <first queue>`.
const FRONT: usize = 6;
/// Enough for `<last queue> <#hdr> <#total>`.
const BACK: usize = 3;

impl Tokens {
    fn split(arg: &[u8]) -> Tokens {
        let mut t = Tokens {
            front: [(0, 0); FRONT],
            back: [(0, 0); BACK],
            n: 0,
        };
        let mut start = None;
        for (i, &b) in arg.iter().enumerate() {
            match (is_arg_sep(b), start) {
                (true, Some(s)) => {
                    t.push(s, i);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            t.push(s, arg.len());
        }
        t
    }

    fn push(&mut self, start: usize, end: usize) {
        if self.n < FRONT {
            self.front[self.n] = (start, end);
        }
        self.back[self.n % BACK] = (start, end);
        self.n += 1;
    }

    /// Argument `i` (`i < n`, and `i < FRONT` or `i >= n - BACK`) as a span
    /// of the buffer whose `offset` the argument text starts at.
    fn span(&self, offset: usize, i: usize) -> Span {
        debug_assert!(i < self.n);
        debug_assert!(i < FRONT || i + BACK >= self.n);
        let (s, e) = if i < FRONT {
            self.front[i]
        } else {
            self.back[i % BACK]
        };
        Span {
            start: offset + s,
            end: offset + e,
        }
    }
}

/// Parses the arguments `buf[start..end]` of a message op whose control line
/// ends with the `\n` at `nl`, as nats-server's `processRoutedMsgArgs`,
/// `processRoutedHeaderMsgArgs` and `processRoutedOriginClusterMsgArgs`.
fn msg_args(
    verb: Verb,
    dialect: RouteDialect,
    buf: &[u8],
    (start, end, nl): (usize, usize, usize),
    max_payload: usize,
) -> Result<PendingMsg, RouteParseError> {
    let t = Tokens::split(&buf[start..end]);
    let span = |i| t.span(start, i);
    let origin_args = usize::from(verb == Verb::LMsg);
    let account_args = usize::from(!dialect.pinned);
    // Origin, account, subject.
    let lead = origin_args + account_args + 1;
    let sizes = if verb == Verb::RMsg { 1 } else { 2 };
    let tail =
        t.n.checked_sub(lead + sizes)
            .ok_or(RouteParseError::MsgArgs)?;
    let no_queues = Span { start, end: start };
    // Queue names from argument `first` to the one before `end`.
    let queue_list = |first: usize, end: usize| {
        if first < end {
            Span {
                start: span(first).start,
                end: span(end - 1).end,
            }
        } else {
            no_queues
        }
    };
    let queues_end = t.n - sizes;
    let (reply, queues) = match tail {
        0 => (None, no_queues),
        1 => (Some(span(lead)), no_queues),
        _ => match span(lead).of(buf) {
            b"+" => (Some(span(lead + 1)), queue_list(lead + 2, queues_end)),
            b"|" => (None, queue_list(lead + 1, queues_end)),
            _ => return Err(RouteParseError::ReplyIndicator),
        },
    };
    let hdr = if sizes == 2 {
        let h = parse_size(span(t.n - 2).of(buf)).ok_or(RouteParseError::BadHeaderSize)?;
        Some(h)
    } else {
        None
    };
    let total = parse_size(span(t.n - 1).of(buf)).ok_or(RouteParseError::BadSize)?;
    if hdr.is_some_and(|h| h > total) {
        return Err(RouteParseError::HeaderSizeTooLarge);
    }
    if total > max_payload {
        return Err(RouteParseError::MaxPayload);
    }
    Ok(PendingMsg {
        origin: (origin_args == 1).then(|| span(0)),
        account: (!dialect.pinned).then(|| span(origin_args)),
        subject: span(origin_args + account_args),
        reply,
        queues,
        // An LMSG always has a header size; 0 means no headers, as
        // nats-server treats `hdr <= 0`.
        hdr: hdr.filter(|&h| h > 0 || verb == Verb::HMsg),
        at: nl + 1,
        total,
    })
}

/// Parses the arguments of `RS+`/`RS-`/`LS+`/`LS-`, as nats-server's
/// `processRemoteSub` and `parseUnsubProto`.
fn interest_op(
    verb: Verb,
    dialect: RouteDialect,
    arg: &[u8],
) -> Result<RouteOpRef<'_>, RouteParseError> {
    let t = Tokens::split(arg);
    let tok = |i| t.span(0, i).of(arg);
    let has_origin = match verb {
        Verb::LSub => true,
        Verb::LUnsub => dialect.ls_unsub_origin,
        _ => false,
    };
    let origin_args = usize::from(has_origin);
    let lead = origin_args + usize::from(!dialect.pinned);
    let is_sub = matches!(verb, Verb::RSub | Verb::LSub);
    // Arguments after the subject: none, or a queue (and its weight on a sub).
    let extra = if is_sub { 2 } else { 1 };
    let queue = match t.n.checked_sub(lead + 1) {
        Some(0) => false,
        Some(n) if n == extra => true,
        _ if is_sub => return Err(RouteParseError::SubArgs),
        _ => return Err(RouteParseError::UnsubArgs),
    };
    let origin = has_origin.then(|| tok(0));
    let account = (!dialect.pinned).then(|| tok(origin_args));
    let subject = tok(lead);
    if is_sub {
        let queue = if queue {
            let weight = parse_size(tok(lead + 2)).ok_or(RouteParseError::QueueWeight)?;
            Some(QueueWeight {
                name: tok(lead + 1),
                // At most 9 digits: fits.
                weight: weight as u32,
            })
        } else {
            None
        };
        let sub = RemoteSub {
            account,
            subject,
            queue,
        };
        return Ok(match origin {
            Some(origin) => RouteOp::LSub { origin, sub },
            None => RouteOp::RSub(sub),
        });
    }
    let unsub = RemoteUnsub {
        account,
        subject,
        queue: queue.then(|| tok(lead + 1)),
    };
    Ok(match verb {
        Verb::LUnsub => RouteOp::LUnsub { origin, unsub },
        _ => RouteOp::RUnsub(unsub),
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

/// What [`RouteOpParser::line`] did.
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

/// One step of [`RouteOpParser::parse_ref`]: `consumed` bytes at the front
/// of the buffer are done (the caller must drop them before the next call);
/// `op` is the op they held, if any. `consumed == 0` (and no op) means:
/// need more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStep<'a> {
    /// The op the consumed bytes held; `None` for the ignored tail of a
    /// `PING`/`PONG`/`+OK` line.
    pub op: Option<RouteOpRef<'a>>,
    /// Bytes at the front of the buffer that are done.
    pub consumed: usize,
}

/// Parses the ops a peer server sends over a route.
///
/// Two APIs share one state machine: [`parse_ref`](Self::parse_ref) borrows
/// the caller's buffer, [`parse`](Self::parse) gives owned ops of `Bytes`
/// split off a `BytesMut`. Use one of them per connection. The
/// [`RouteDialect`] in force when an op's control line completes decides
/// its shape.
#[derive(Debug)]
pub struct RouteOpParser {
    limits: Limits,
    dialect: RouteDialect,
    state: State,
}

impl Default for RouteOpParser {
    /// nats-server's defaults: [`route_limits`] of the default
    /// `max_control_line`, the account in every op, `LS-` without origin.
    fn default() -> Self {
        RouteOpParser::new(
            route_limits(crate::MAX_CONTROL_LINE_BYTES),
            RouteDialect::default(),
        )
    }
}

impl RouteOpParser {
    /// A parser with these limits (see [`route_limits`]) and dialect.
    pub fn new(limits: Limits, dialect: RouteDialect) -> Self {
        RouteOpParser {
            limits,
            dialect,
            state: State::default(),
        }
    }

    /// Change the limits (e.g. after a config reload).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Change the dialect, once the INFO that decides it is processed. It
    /// applies from the next control line that completes.
    pub fn set_dialect(&mut self, dialect: RouteDialect) {
        self.dialect = dialect;
    }

    /// The dialect in force.
    pub fn dialect(&self) -> RouteDialect {
        self.dialect
    }

    /// Forget a partly parsed op. Call it if the buffer was replaced or
    /// cleared.
    pub fn reset(&mut self) {
        self.state = State::default();
    }

    /// Parse the next op from the front of `buf`; `Ok(None)` = need more
    /// bytes. Every field of the op is a `Bytes` split off `buf`.
    ///
    /// Between calls `buf` may only grow at its end. After an `Err` the
    /// route is over: the parser's state is unspecified.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<RouteOp<Bytes>>, RouteParseError> {
        loop {
            let (frame, consumed) = self.step(buf)?;
            let Some(frame) = frame else {
                if consumed == 0 {
                    return Ok(None);
                }
                buf.advance(consumed);
                continue;
            };
            let frame_bytes = buf.split_to(consumed).freeze();
            let op = route_op(frame, self.dialect, &frame_bytes)?;
            return Ok(Some(op.map(|s| frame_bytes.slice_ref(s))));
        }
    }

    /// One step over the front of `buf`, borrowing it: see [`RouteStep`].
    ///
    /// Between calls `buf` may only grow at its end, except that the caller
    /// removes exactly `consumed` bytes from its front after each step with
    /// `consumed > 0`. After an `Err` the route is over: the parser's state
    /// is unspecified.
    pub fn parse_ref<'a>(&mut self, buf: &'a [u8]) -> Result<RouteStep<'a>, RouteParseError> {
        let (frame, consumed) = self.step(buf)?;
        let op = match frame {
            Some(frame) => Some(route_op(frame, self.dialect, buf)?),
            None => None,
        };
        Ok(RouteStep { op, consumed })
    }

    /// One step over `buf` (from its front): a frame (if any) and how many
    /// bytes at the front are done. `(None, 0)` means need more bytes.
    fn step(&mut self, buf: &[u8]) -> Result<(Option<Frame>, usize), RouteParseError> {
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
                    // The bytes after the payload are checked as soon as
                    // they arrive, as nats-server's MSG_END_R/MSG_END_N.
                    if buf.len() > end && buf[end] != b'\r' {
                        return Err(RouteParseError::PayloadNotTerminated);
                    }
                    if buf.len() > end + 1 && buf[end + 1] != b'\n' {
                        return Err(RouteParseError::PayloadNotTerminated);
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
    fn line(&mut self, lp: &mut LineProgress, buf: &[u8]) -> Result<LineStep, RouteParseError> {
        let (verb, name_len) = match lp.verb {
            Some(v) => v,
            None => match match_op(buf)? {
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
                        Some(_) => return Err(RouteParseError::UnknownOp),
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
                    return Err(RouteParseError::MaxControlLine);
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
                return Err(RouteParseError::MaxControlLine);
            }
            return Ok(LineStep::NeedMore);
        };
        let nl = lp.scan + i;
        let mut end = nl;
        // nats-server drops the byte before `\n` once it has seen a `\r`
        // anywhere in the arguments (when the line arrives in one read).
        if end > start && (buf[end - 1] == b'\r' || buf[start..end].contains(&b'\r')) {
            end -= 1;
        }
        if end - start > mcl {
            return Err(RouteParseError::MaxControlLine);
        }
        self.state = State::default();
        if verb.is_msg() {
            let pending = msg_args(
                verb,
                self.dialect,
                buf,
                (start, end, nl),
                self.limits.max_payload,
            )?;
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

/// The op a frame of `buf` holds.
fn route_op(
    frame: Frame,
    dialect: RouteDialect,
    buf: &[u8],
) -> Result<RouteOpRef<'_>, RouteParseError> {
    Ok(match frame {
        Frame::Bare(Verb::Ping) => RouteOp::Ping,
        Frame::Bare(Verb::Pong) => RouteOp::Pong,
        Frame::Bare(_) => RouteOp::Ok,
        Frame::Line(Verb::Info, json) => RouteOp::Info(json.of(buf)),
        Frame::Line(Verb::Connect, json) => RouteOp::Connect(json.of(buf)),
        Frame::Line(Verb::Err, text) => RouteOp::Err(unquote(text.of(buf))),
        Frame::Line(verb, arg) => interest_op(verb, dialect, arg.of(buf))?,
        Frame::Msg(p) => {
            let body = &buf[p.at..p.at + p.total];
            let (headers, payload) = match p.hdr {
                Some(h) => {
                    let (headers, payload) = body.split_at(h);
                    (Some(headers), payload)
                }
                None => (None, body),
            };
            let msg = RoutedMsg {
                account: p.account.map(|s| s.of(buf)),
                subject: p.subject.of(buf),
                reply: p.reply.map(|s| s.of(buf)),
                queues: p.queues.of(buf),
                headers,
                payload,
            };
            match p.origin {
                Some(origin) => RouteOp::LMsg {
                    origin: origin.of(buf),
                    msg,
                },
                None => RouteOp::RMsg(msg),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    //! Expected ops come from nats-server's sources (`parser.go`,
    //! `route.go`, `parser_test.go`) unless a test says otherwise; the wire
    //! test `tests/it/route_wire.rs` checks them against nats-server 2.15.1.
    use super::*;
    use crate::route::fuzz_props::{parse_chunked, parse_ref_chunked, Outcome};
    use proptest::prelude::*;

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    const PLAIN: RouteDialect = RouteDialect {
        pinned: false,
        ls_unsub_origin: false,
    };
    const PINNED: RouteDialect = RouteDialect {
        pinned: true,
        ls_unsub_origin: false,
    };
    const LNOCU: RouteDialect = RouteDialect {
        pinned: false,
        ls_unsub_origin: true,
    };

    fn limits() -> Limits {
        route_limits(crate::MAX_CONTROL_LINE_BYTES)
    }

    fn parse(data: &[u8], dialect: RouteDialect) -> Outcome {
        parse_chunked(data, data.len(), limits(), dialect)
    }

    /// Parses `data` whole, cut in two at every index and in chunks of
    /// every size, with both APIs, and checks they all agree.
    fn parse_everywhere(data: &[u8], dialect: RouteDialect) -> Outcome {
        let whole = parse(data, dialect);
        for at in 0..=data.len() {
            let mut p = RouteOpParser::new(limits(), dialect);
            let mut buf = BytesMut::new();
            let mut ops = Vec::new();
            let mut err = None;
            'pieces: for piece in [&data[..at], &data[at..]] {
                buf.extend_from_slice(piece);
                loop {
                    match p.parse(&mut buf) {
                        Ok(Some(op)) => ops.push(op),
                        Ok(None) => break,
                        Err(e) => {
                            err = Some(e);
                            break 'pieces;
                        }
                    }
                }
            }
            assert_eq!((ops, err), whole, "cut at {at}");
        }
        for chunk in 1..=data.len() {
            assert_eq!(
                parse_chunked(data, chunk, limits(), dialect),
                whole,
                "chunk {chunk}"
            );
            assert_eq!(
                ref_chunked(data, chunk, dialect),
                whole,
                "parse_ref chunk {chunk}"
            );
        }
        whole
    }

    fn ref_chunked(data: &[u8], chunk: usize, dialect: RouteDialect) -> Outcome {
        let mut p = RouteOpParser::new(limits(), dialect);
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match p.parse_ref(&buf) {
                    Ok(RouteStep { consumed: 0, .. }) => break,
                    Ok(step) => {
                        ops.extend(step.op.map(|op| op.map(Bytes::copy_from_slice)));
                        buf.advance(step.consumed);
                    }
                    Err(e) => return (ops, Some(e)),
                }
            }
        }
        (ops, None)
    }

    fn sub(
        account: Option<&'static [u8]>,
        subject: &'static [u8],
        queue: Option<(&'static [u8], u32)>,
    ) -> RemoteSub<Bytes> {
        RemoteSub {
            account: account.map(b),
            subject: b(subject),
            queue: queue.map(|(name, weight)| QueueWeight {
                name: b(name),
                weight,
            }),
        }
    }

    fn unsub(
        account: Option<&'static [u8]>,
        subject: &'static [u8],
        queue: Option<&'static [u8]>,
    ) -> RemoteUnsub<Bytes> {
        RemoteUnsub {
            account: account.map(b),
            subject: b(subject),
            queue: queue.map(b),
        }
    }

    fn msg(
        account: Option<&'static [u8]>,
        subject: &'static [u8],
        reply: Option<&'static [u8]>,
        queues: &'static [u8],
        headers: Option<&'static [u8]>,
        payload: &'static [u8],
    ) -> RoutedMsg<Bytes> {
        RoutedMsg {
            account: account.map(b),
            subject: b(subject),
            reply: reply.map(b),
            queues: b(queues),
            headers: headers.map(b),
            payload: b(payload),
        }
    }

    /// Input, the dialect it is parsed in, and the ops it gives.
    type OkCase = (&'static [u8], RouteDialect, Vec<RouteOp<Bytes>>);

    /// Input that parses without error.
    fn ok_table() -> Vec<OkCase> {
        let g = Some(&b"$G"[..]);
        vec![
            (b"RS+ $G foo\r\n", PLAIN, vec![RouteOp::RSub(sub(g, b"foo", None))]),
            (
                b"rs+\t$G  foo.* \t bar 3\r\n",
                PLAIN,
                vec![RouteOp::RSub(sub(g, b"foo.*", Some((b"bar", 3))))],
            ),
            (b"RS- $G foo\n", PLAIN, vec![RouteOp::RUnsub(unsub(g, b"foo", None))]),
            (
                b"RS- $G foo bar\r\n",
                PLAIN,
                vec![RouteOp::RUnsub(unsub(g, b"foo", Some(b"bar")))],
            ),
            // Pinned: no account anywhere.
            (
                b"RS+ foo bar 1\r\nRS- foo\r\n",
                PINNED,
                vec![
                    RouteOp::RSub(sub(None, b"foo", Some((b"bar", 1)))),
                    RouteOp::RUnsub(unsub(None, b"foo", None)),
                ],
            ),
            (
                b"LS+ hub $G foo q 2\r\n",
                PLAIN,
                vec![RouteOp::LSub {
                    origin: b(b"hub"),
                    sub: sub(g, b"foo", Some((b"q", 2))),
                }],
            ),
            (
                b"LS+ hub foo\r\n",
                PINNED,
                vec![RouteOp::LSub {
                    origin: b(b"hub"),
                    sub: sub(None, b"foo", None),
                }],
            ),
            // LS- carries the origin only from a peer with lnocu.
            (
                b"LS- $G foo q\r\n",
                PLAIN,
                vec![RouteOp::LUnsub {
                    origin: None,
                    unsub: unsub(g, b"foo", Some(b"q")),
                }],
            ),
            (
                b"LS- hub $G foo\r\n",
                LNOCU,
                vec![RouteOp::LUnsub {
                    origin: Some(b(b"hub")),
                    unsub: unsub(g, b"foo", None),
                }],
            ),
            // nats-server TestParseRouteMsg.
            (
                b"RMSG $foo foo 5\r\nhello\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(Some(b"$foo"), b"foo", None, b"", None, b"hello"))],
            ),
            (
                b"RMSG $G foo.bar INBOX.22 11\r\nhello world\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo.bar", Some(b"INBOX.22"), b"", None, b"hello world"))],
            ),
            (
                b"RMSG $G foo.bar + reply baz 11\r\nhello world\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo.bar", Some(b"reply"), b"baz", None, b"hello world"))],
            ),
            (
                b"RMSG $G foo.bar | baz 11\r\nhello world\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo.bar", None, b"baz", None, b"hello world"))],
            ),
            // Several queues, any blanks between them.
            (
                b"RMSG $G foo + r q1 \tq2  q3 2\r\nhi\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo", Some(b"r"), b"q1 \tq2  q3", None, b"hi"))],
            ),
            (
                b"RMSG $G foo | q1 q2 0\r\n\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo", None, b"q1 q2", None, b""))],
            ),
            // `+` with a reply and no queue.
            (
                b"RMSG $G foo + r 2\r\nhi\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo", Some(b"r"), b"", None, b"hi"))],
            ),
            // One tail argument is a reply, whatever it looks like.
            (
                b"RMSG $G foo | 2\r\nhi\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo", Some(b"|"), b"", None, b"hi"))],
            ),
            (
                b"RMSG foo r 2\r\nhi\r\nRMSG foo | q 2\r\nhi\r\n",
                PINNED,
                vec![
                    RouteOp::RMsg(msg(None, b"foo", Some(b"r"), b"", None, b"hi")),
                    RouteOp::RMsg(msg(None, b"foo", None, b"q", None, b"hi")),
                ],
            ),
            // nats-server TestParseRoutedHeaderMsg.
            (
                b"HMSG $foo foo 3 8\r\nXXXhello\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(Some(b"$foo"), b"foo", None, b"", Some(b"XXX"), b"hello"))],
            ),
            (
                b"HMSG $G foo.bar INBOX.22 3 14\r\nOK:hello world\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo.bar", Some(b"INBOX.22"), b"", Some(b"OK:"), b"hello world"))],
            ),
            (
                b"HMSG $G foo.bar + reply baz 3 14\r\nOK:hello world\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo.bar", Some(b"reply"), b"baz", Some(b"OK:"), b"hello world"))],
            ),
            (
                b"hmsg $G foo.bar | baz 3 14\r\nOK:hello world\r\n",
                PLAIN,
                vec![RouteOp::RMsg(msg(g, b"foo.bar", None, b"baz", Some(b"OK:"), b"hello world"))],
            ),
            (
                b"HMSG foo 0 2\r\nhi\r\n",
                PINNED,
                vec![RouteOp::RMsg(msg(None, b"foo", None, b"", Some(b""), b"hi"))],
            ),
            // LMSG: origin first, always a header size; 0 means none.
            (
                b"LMSG hub $G foo 0 2\r\nhi\r\n",
                PLAIN,
                vec![RouteOp::LMsg {
                    origin: b(b"hub"),
                    msg: msg(g, b"foo", None, b"", None, b"hi"),
                }],
            ),
            (
                b"LMSG hub $G foo + r q1 q2 3 5\r\nOK:hi\r\n",
                PLAIN,
                vec![RouteOp::LMsg {
                    origin: b(b"hub"),
                    msg: msg(g, b"foo", Some(b"r"), b"q1 q2", Some(b"OK:"), b"hi"),
                }],
            ),
            (
                b"LMSG hub foo r 0 2\r\nhi\r\n",
                PINNED,
                vec![RouteOp::LMsg {
                    origin: b(b"hub"),
                    msg: msg(None, b"foo", Some(b"r"), b"", None, b"hi"),
                }],
            ),
            (
                b"INFO {\"a\":1} \r\nCONNECT{}\r\nPING\r\nPONGx\r\n+OK\r\n-ERR 'Stale Connection'\r\n",
                PLAIN,
                vec![
                    RouteOp::Info(b(b"{\"a\":1}")),
                    RouteOp::Connect(b(b"{}")),
                    RouteOp::Ping,
                    RouteOp::Pong,
                    RouteOp::Ok,
                    RouteOp::Err(b(b"Stale Connection")),
                ],
            ),
        ]
    }

    #[test]
    fn every_op_parses_split_anywhere() {
        for (input, dialect, want) in ok_table() {
            assert_eq!(parse_everywhere(input, dialect), (want, None), "{input:?}");
        }
    }

    #[test]
    fn table_round_trips_through_the_encoders() {
        for (input, dialect, want) in ok_table() {
            let mut wire = BytesMut::new();
            for op in &want {
                crate::route::encode::op(&mut wire, op);
            }
            assert_eq!(parse(&wire, dialect), (want, None), "{input:?} as {wire:?}");
        }
    }

    /// Input that fails, the ops before the failure, and the error.
    fn err_table() -> Vec<(&'static [u8], RouteDialect, usize, RouteParseError)> {
        use RouteParseError::*;
        vec![
            (b"XYZ\r\n", PLAIN, 0, UnknownOp),
            (b"\r\n", PLAIN, 0, UnknownOp),
            (b"PING\r\n RS+ $G foo\r\n", PLAIN, 1, UnknownOp),
            // Client and gateway ops are not route ops here.
            (b"PUB foo 1\r\nx\r\n", PLAIN, 0, UnknownOp),
            (b"SUB foo 1\r\n", PLAIN, 0, UnknownOp),
            (b"MSG $foo foo 5\r\nhello\r\n", PLAIN, 0, UnknownOp),
            (b"A+ $G\r\n", PLAIN, 0, UnknownOp),
            // A blank must follow these names.
            (b"RS+\r\n", PLAIN, 0, UnknownOp),
            (b"RMSG\r\n", PLAIN, 0, UnknownOp),
            (b"-ERR\r\n", PLAIN, 0, UnknownOp),
            (b"RS* $G foo\r\n", PLAIN, 0, UnknownOp),
            (b"RS+ $G\r\n", PLAIN, 0, SubArgs),
            (b"RS+ $G foo q\r\n", PLAIN, 0, SubArgs),
            (b"RS+ $G foo q 1 x\r\n", PLAIN, 0, SubArgs),
            (b"RS+ $G foo q\r\n", PINNED, 0, QueueWeight),
            (b"RS+ $G foo q x\r\n", PLAIN, 0, QueueWeight),
            (b"LS+ $G foo\r\n", PLAIN, 0, SubArgs),
            (b"RS- $G foo q 1\r\n", PLAIN, 0, UnsubArgs),
            (b"RS-  \r\n", PLAIN, 0, UnsubArgs),
            (b"LS- hub $G foo q\r\n", PLAIN, 0, UnsubArgs),
            (b"RMSG $G foo\r\n", PLAIN, 0, MsgArgs),
            (b"HMSG $G foo 5\r\n", PLAIN, 0, MsgArgs),
            (b"LMSG hub $G foo 5\r\n", PLAIN, 0, MsgArgs),
            (b"RMSG $G foo x q 5\r\nhello\r\n", PLAIN, 0, ReplyIndicator),
            (
                b"RMSG $G foo ++ r q 5\r\nhello\r\n",
                PLAIN,
                0,
                ReplyIndicator,
            ),
            (b"RMSG $G foo x\r\n", PLAIN, 0, BadSize),
            (b"RMSG $G foo -1\r\n", PLAIN, 0, BadSize),
            (b"RMSG $G foo 1000000000\r\n", PLAIN, 0, BadSize),
            (b"HMSG $G foo x 5\r\n", PLAIN, 0, BadHeaderSize),
            // nats-server TestParseRoutedHeaderMsg: header size over the total.
            (
                b"HMSG $foo foo 10 8\r\nXXXhello\r\n",
                PLAIN,
                0,
                HeaderSizeTooLarge,
            ),
            (b"RMSG $G foo 2\r\nhiX\r\n", PLAIN, 0, PayloadNotTerminated),
            (b"RMSG $G foo 2\r\nhi\rX", PLAIN, 0, PayloadNotTerminated),
            (
                b"PING\r\nRMSG $G foo 2\r\nhi\r\nRS+ $G\r\n",
                PLAIN,
                2,
                SubArgs,
            ),
        ]
    }

    #[test]
    fn errors_are_the_same_split_anywhere() {
        for (input, dialect, ops, err) in err_table() {
            let (got, got_err) = parse_everywhere(input, dialect);
            assert_eq!((got.len(), got_err), (ops, Some(err)), "{input:?}");
        }
    }

    #[test]
    fn peer_error_texts_follow_nats_server() {
        use RouteParseError::*;
        // parser.go's parseErr and overMaxControlLineLimit send -ERR; the
        // processRouted*Args and processRemote(Un)Sub errors close silently
        // (readLoop: c.Error, closeConnection(ProtocolViolation)).
        assert_eq!(UnknownOp.peer_error(), Some("Unknown Protocol Operation"));
        assert_eq!(
            PayloadNotTerminated.peer_error(),
            Some("Unknown Protocol Operation")
        );
        assert_eq!(
            MaxControlLine.peer_error(),
            Some("maximum control line exceeded")
        );
        for silent in [
            MsgArgs,
            ReplyIndicator,
            BadSize,
            BadHeaderSize,
            HeaderSizeTooLarge,
            SubArgs,
            UnsubArgs,
            QueueWeight,
        ] {
            assert_eq!(silent.peer_error(), None, "{silent}");
        }
    }

    #[test]
    fn route_control_line_is_sixteen_times_the_client_one() {
        // overMaxControlLineLimit: non-client kinds get mcl * 16.
        assert_eq!(limits().max_control_line, 65_536);
        let subject = vec![b'a'; 65_536 - 3];
        let ok = [&b"RS+ $G "[..], &subject, b"\r\n"].concat();
        assert_eq!(parse(&ok, PLAIN).1, None);
        let bad = [&b"RS+ $G a"[..], &subject, b"\r\n"].concat();
        assert_eq!(parse(&bad, PLAIN).1, Some(RouteParseError::MaxControlLine));
        // Enforced while the line arrives: no end of line needed.
        let mut p = RouteOpParser::default();
        let mut buf = BytesMut::from(&b"RMSG "[..]);
        buf.extend_from_slice(&vec![b'a'; 65_537]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        buf.extend_from_slice(b"a");
        assert_eq!(p.parse(&mut buf), Err(RouteParseError::MaxControlLine));
    }

    #[test]
    fn payloads_need_no_max_payload_by_default() {
        // nats-server sets mpay -1 on routes: 9 digits is the only bound.
        let mut p = RouteOpParser::default();
        let mut buf = BytesMut::from(&b"RMSG $G foo 999999999\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        let mut p = RouteOpParser::new(
            Limits {
                max_control_line: 4096,
                max_payload: 4,
            },
            PLAIN,
        );
        let mut buf = BytesMut::from(&b"HMSG $G foo 1 5\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Err(RouteParseError::MaxPayload));
    }

    #[test]
    fn dialect_applies_from_the_next_line() {
        let mut p = RouteOpParser::default();
        let mut buf = BytesMut::from(&b"RS+ $G foo\r\nRS+ foo\r\n"[..]);
        let first = p.parse(&mut buf).unwrap();
        assert_eq!(first, Some(RouteOp::RSub(sub(Some(b"$G"), b"foo", None))));
        p.set_dialect(PINNED);
        assert_eq!(p.dialect(), PINNED);
        let second = p.parse(&mut buf).unwrap();
        assert_eq!(second, Some(RouteOp::RSub(sub(None, b"foo", None))));
    }

    #[test]
    fn ops_are_slices_of_the_read_buffer() {
        let mut buf =
            BytesMut::from(&b"LMSG hub $G foo + r q1 q2 3 5\r\nOK:hi\r\nRS+ $G bar q 1\r\n"[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let mut p = RouteOpParser::default();
        let Some(RouteOp::LMsg { origin, msg }) = p.parse(&mut buf).unwrap() else {
            panic!("expected LMSG");
        };
        let Some(RouteOp::RSub(sub)) = p.parse(&mut buf).unwrap() else {
            panic!("expected RS+");
        };
        let queue = sub.queue.unwrap().name;
        let parts = [
            &origin,
            msg.account.as_ref().unwrap(),
            &msg.subject,
            msg.reply.as_ref().unwrap(),
            &msg.queues,
            msg.headers.as_ref().unwrap(),
            &msg.payload,
            sub.account.as_ref().unwrap(),
            &sub.subject,
            &queue,
        ];
        for part in parts {
            assert!(
                range.contains(&(part.as_ptr() as usize)),
                "{part:?} was copied"
            );
        }
        assert_eq!(msg.queue_names().collect::<Vec<_>>(), [&b"q1"[..], b"q2"]);
    }

    #[test]
    fn ping_tail_is_dropped_not_buffered() {
        let mut p = RouteOpParser::default();
        let mut buf = BytesMut::from(&b"PING"[..]);
        for _ in 0..100 {
            buf.extend_from_slice(&[b'x'; 1000]);
            assert_eq!(p.parse(&mut buf), Ok(None));
            assert!(buf.is_empty());
        }
        buf.extend_from_slice(b"\r\n");
        assert_eq!(p.parse(&mut buf), Ok(Some(RouteOp::Ping)));
    }

    fn token() -> impl Strategy<Value = Bytes> {
        "[a-zA-Z0-9._*>$+|-]{1,12}".prop_map(Bytes::from)
    }

    fn body() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..48).prop_map(Bytes::from)
    }

    fn queues() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec("[a-z0-9]{1,6}", 0..4).prop_map(|q| Bytes::from(q.join(" ")))
    }

    fn account(pinned: bool) -> impl Strategy<Value = Option<Bytes>> {
        token().prop_map(move |a| (!pinned).then_some(a))
    }

    fn route_op(dialect: RouteDialect) -> impl Strategy<Value = RouteOp<Bytes>> {
        let pinned = dialect.pinned;
        let remote_sub = move || {
            (
                account(pinned),
                token(),
                proptest::option::of((token(), 1u32..1000)),
            )
                .prop_map(|(account, subject, queue)| RemoteSub {
                    account,
                    subject,
                    queue: queue.map(|(name, weight)| QueueWeight { name, weight }),
                })
        };
        let remote_unsub = move || {
            (account(pinned), token(), proptest::option::of(token())).prop_map(
                |(account, subject, queue)| RemoteUnsub {
                    account,
                    subject,
                    queue,
                },
            )
        };
        let routed = |hdr: bool| {
            (
                account(pinned),
                token(),
                proptest::option::of(token()),
                queues(),
                proptest::option::of(body()),
                body(),
            )
                .prop_map(
                    move |(account, subject, reply, queues, headers, payload)| RoutedMsg {
                        account,
                        subject,
                        reply,
                        queues,
                        // An LMSG's empty header block reads back as none.
                        headers: headers.filter(|h| hdr || !h.is_empty()),
                        payload,
                    },
                )
        };
        prop_oneof![
            "\\{[a-z\":,0-9 ]{0,24}\\}".prop_map(|j| RouteOp::Info(Bytes::from(j))),
            "\\{[a-z\":,0-9 ]{0,24}\\}".prop_map(|j| RouteOp::Connect(Bytes::from(j))),
            Just(RouteOp::Ping),
            Just(RouteOp::Pong),
            Just(RouteOp::Ok),
            "[ -&(-~]{0,32}".prop_map(|t| RouteOp::Err(Bytes::from(t))),
            remote_sub().prop_map(RouteOp::RSub),
            remote_unsub().prop_map(RouteOp::RUnsub),
            (token(), remote_sub()).prop_map(|(origin, sub)| RouteOp::LSub { origin, sub }),
            (token(), remote_unsub()).prop_map(move |(origin, unsub)| RouteOp::LUnsub {
                origin: dialect.ls_unsub_origin.then_some(origin),
                unsub,
            }),
            routed(true).prop_map(RouteOp::RMsg),
            (token(), routed(false)).prop_map(|(origin, msg)| RouteOp::LMsg { origin, msg }),
        ]
    }

    fn dialect() -> impl Strategy<Value = RouteDialect> {
        (any::<bool>(), any::<bool>()).prop_map(|(pinned, ls_unsub_origin)| RouteDialect {
            pinned,
            ls_unsub_origin,
        })
    }

    proptest! {
        #[test]
        fn encoded_ops_parse_back_in_any_chunks(
            (dialect, ops) in dialect().prop_flat_map(|d| (Just(d), proptest::collection::vec(route_op(d), 0..12))),
            chunk in 1usize..40,
        ) {
            let mut wire = BytesMut::new();
            for op in &ops {
                crate::route::encode::op(&mut wire, op);
            }
            let whole = parse(&wire, dialect);
            prop_assert_eq!(&whole, &(ops, None));
            prop_assert_eq!(parse_chunked(&wire, chunk, limits(), dialect), whole.clone());
            prop_assert_eq!(parse_ref_chunked(&wire, chunk, dialect), whole);
        }

        #[test]
        fn arbitrary_bytes_hold_the_fuzz_property(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'R'), Just(b'S'), Just(b'+'),
                Just(b'|'), Just(b'M'), Just(b'1'), any::<u8>()],
            0..200,
        )) {
            crate::route::fuzz_props::route_proto(&data);
        }
    }

    #[test]
    fn fuzz_property_holds_on_table_inputs() {
        for (input, dialect, _) in ok_table() {
            let first = u8::from(dialect.pinned) | (u8::from(dialect.ls_unsub_origin) << 1);
            for chunk in 0..64u8 {
                crate::route::fuzz_props::route_proto(
                    &[&[first | (chunk << 2)][..], input].concat(),
                );
            }
        }
    }
}
