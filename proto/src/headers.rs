//! The NATS/1.0 header block (ADR-4), carried by `HPUB` and `HMSG`.
//!
//! ## Format
//!
//! ```text
//! NATS/1.0[ <3-digit status>[ <description>]]\r\n
//! Key: Value\r\n          (zero or more; a key may repeat)
//! \r\n
//! ```
//!
//! The `#hdr` count of `HPUB`/`HMSG` covers the whole block, final blank line
//! included. Keys keep their case and their order; lookups are exact-case,
//! as nats-server's own header lookup is. Values are trimmed of surrounding
//! blanks when parsed.
use bytes::{BufMut, Bytes, BytesMut};

/// The first line of every block.
pub const VERSION_LINE: &[u8] = b"NATS/1.0";

/// Status code of a no-responders reply.
pub const STATUS_NO_RESPONDERS: u16 = 503;

/// Header that newer servers add to a no-responders reply.
pub const NATS_SUBJECT: &str = "Nats-Subject";

/// A parsed header block: optional status line data and ordered,
/// multi-valued, case-preserving entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    status: Option<u16>,
    description: Option<Bytes>,
    entries: Vec<(Bytes, Bytes)>,
}

/// Why a header block could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The block does not start with `NATS/1.0`.
    MissingVersion,
    /// The status after `NATS/1.0 ` is not three digits.
    BadStatus,
    /// A header line has no `:` or an empty key.
    BadLine,
    /// The block does not end with an empty line (`\r\n\r\n`).
    Unterminated,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeaderError::MissingVersion => "header block does not start with NATS/1.0",
            HeaderError::BadStatus => "header status is not three digits",
            HeaderError::BadLine => "malformed header line",
            HeaderError::Unterminated => "header block not terminated by an empty line",
        })
    }
}

impl std::error::Error for HeaderError {}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a header block.
pub fn parse(block: &[u8]) -> Result<HeaderMap, HeaderError> {
    let mut lines = Lines { rest: block };
    let first = lines.next().ok_or(HeaderError::MissingVersion)?;
    let Some(tail) = first.strip_prefix(VERSION_LINE) else {
        return Err(HeaderError::MissingVersion);
    };
    let mut map = HeaderMap::default();
    let tail = trim(tail);
    if !tail.is_empty() {
        let code = tail.get(..3).ok_or(HeaderError::BadStatus)?;
        if !code.iter().all(u8::is_ascii_digit)
            || tail.get(3).is_some_and(|&b| b != b' ' && b != b'\t')
        {
            return Err(HeaderError::BadStatus);
        }
        map.status = Some(code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')));
        let desc = trim(&tail[3..]);
        if !desc.is_empty() {
            map.description = Some(Bytes::copy_from_slice(desc));
        }
    }
    loop {
        let Some(line) = lines.next() else {
            return Err(HeaderError::Unterminated);
        };
        if line.is_empty() {
            break;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeaderError::BadLine)?;
        let key = &line[..colon];
        if key.is_empty() || key.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(HeaderError::BadLine);
        }
        map.entries.push((
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(trim(&line[colon + 1..])),
        ));
    }
    Ok(map)
}

struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let nl = self.rest.iter().position(|&b| b == b'\n')?;
        let mut line = &self.rest[..nl];
        self.rest = &self.rest[nl + 1..];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        Some(line)
    }
}

impl HeaderMap {
    /// An empty block (`NATS/1.0\r\n\r\n`).
    pub fn new() -> Self {
        HeaderMap::default()
    }

    /// A block with a status line, e.g. `503`, `408 Request Timeout`.
    pub fn with_status(code: u16, description: Option<&[u8]>) -> Self {
        let mut map = HeaderMap::default();
        map.set_status(code, description);
        map
    }

    /// The status code, if the first line carries one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The status description, if any.
    pub fn description(&self) -> Option<&[u8]> {
        self.description.as_deref()
    }

    /// Sets the status line.
    ///
    /// # Panics
    ///
    /// If `code` is not three digits (100..=999): a caller bug, not input.
    pub fn set_status(&mut self, code: u16, description: Option<&[u8]>) {
        assert!((100..=999).contains(&code), "status must have 3 digits");
        self.status = Some(code);
        self.description = description
            .filter(|d| !d.is_empty())
            .map(Bytes::copy_from_slice);
    }

    /// Removes the status line data.
    pub fn clear_status(&mut self) {
        self.status = None;
        self.description = None;
    }

    /// The first value of `key` (exact case).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = key.as_ref();
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The first value of `key`, ASCII case ignored.
    pub fn get_ignore_case(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = key.as_ref();
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_ref())
    }

    /// Every value of `key` (exact case), in order.
    pub fn get_all<'a>(
        &'a self,
        key: impl AsRef<[u8]> + 'a,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key.as_ref())
            .map(|(_, v)| v.as_ref())
    }

    /// Replaces every value of `key` with `value` (kept at the first
    /// occurrence's place, or appended).
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = key.as_ref();
        let value = Bytes::copy_from_slice(value.as_ref());
        let mut seen = false;
        self.entries.retain_mut(|(k, v)| {
            if k != key {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            *v = value.clone();
            true
        });
        if !seen {
            self.entries.push((Bytes::copy_from_slice(key), value));
        }
    }

    /// Adds a value for `key` after any existing ones.
    pub fn append(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.entries.push((
            Bytes::copy_from_slice(key.as_ref()),
            Bytes::copy_from_slice(value.as_ref()),
        ));
    }

    /// Removes every value of `key`; true if there was one.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> bool {
        let key = key.as_ref();
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != key);
        before != self.entries.len()
    }

    /// All entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Number of entries (a repeated key counts each time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no entries (a status may still be set).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Length of the encoded block.
    pub fn encoded_len(&self) -> usize {
        let status = match (self.status, &self.description) {
            (None, _) => 0,
            (Some(_), None) => 4,
            (Some(_), Some(d)) => 5 + d.len(),
        };
        VERSION_LINE.len()
            + status
            + 2
            + self
                .entries
                .iter()
                .map(|(k, v)| k.len() + 2 + v.len() + 2)
                .sum::<usize>()
            + 2
    }

    /// Appends the encoded block, final blank line included.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_slice(VERSION_LINE);
        if let Some(code) = self.status {
            buf.put_u8(b' ');
            let code = code.min(999);
            buf.put_slice(&[
                b'0' + (code / 100) as u8,
                b'0' + (code / 10 % 10) as u8,
                b'0' + (code % 10) as u8,
            ]);
            if let Some(d) = &self.description {
                buf.put_u8(b' ');
                buf.put_slice(d);
            }
        }
        buf.put_slice(b"\r\n");
        for (k, v) in &self.entries {
            buf.put_slice(k);
            buf.put_slice(b": ");
            buf.put_slice(v);
            buf.put_slice(b"\r\n");
        }
        buf.put_slice(b"\r\n");
    }

    /// The encoded block as `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// The header block of a no-responders reply (status 503).
///
/// nats-server 2.9.10 sends `NATS/1.0 503\r\n\r\n` (pass `None`); 2.10 and
/// later add `Nats-Subject: <subject>` (pass `Some(subject)`).
pub fn no_responders(subject: Option<&[u8]>) -> Bytes {
    match subject {
        None => Bytes::from_static(b"NATS/1.0 503\r\n\r\n"),
        Some(s) => {
            let mut map = HeaderMap::with_status(STATUS_NO_RESPONDERS, None);
            map.append(NATS_SUBJECT, s);
            map.to_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    //! Block format from ADR-4; status forms as nats-server sends them
    //! (`NATS/1.0 503`, `NATS/1.0 408 Request Timeout`).
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_plain_block() {
        let h = parse(b"NATS/1.0\r\n\r\n").unwrap();
        assert_eq!(h, HeaderMap::new());
        assert_eq!(h.status(), None);
    }

    #[test]
    fn parses_status_and_description() {
        let h = parse(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!((h.status(), h.description()), (Some(503), None));
        let h = parse(b"NATS/1.0 408 Request Timeout\r\n\r\n").unwrap();
        assert_eq!(h.status(), Some(408));
        assert_eq!(h.description(), Some(&b"Request Timeout"[..]));
        let h = parse(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n").unwrap();
        assert_eq!(h.get("Nats-Last-Consumer"), Some(&b"5"[..]));
    }

    #[test]
    fn keeps_order_case_and_repeated_keys() {
        let h = parse(b"NATS/1.0\r\nA: 1\r\nfoo-Bar:  x y \r\nA: 2\r\n\r\n").unwrap();
        assert_eq!(h.get("A"), Some(&b"1"[..]));
        assert_eq!(h.get_all("A").collect::<Vec<_>>(), vec![&b"1"[..], b"2"]);
        assert_eq!(h.get("foo-Bar"), Some(&b"x y"[..]));
        assert_eq!(h.get("Foo-Bar"), None);
        assert_eq!(h.get_ignore_case("FOO-BAR"), Some(&b"x y"[..]));
        let keys: Vec<_> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"A"[..], b"foo-Bar", b"A"]);
    }

    #[test]
    fn rejects_malformed_blocks() {
        assert_eq!(parse(b"HTTP/1.1\r\n\r\n"), Err(HeaderError::MissingVersion));
        assert_eq!(parse(b""), Err(HeaderError::MissingVersion));
        assert_eq!(parse(b"NATS/1.0 5x3\r\n\r\n"), Err(HeaderError::BadStatus));
        assert_eq!(parse(b"NATS/1.0 5034\r\n\r\n"), Err(HeaderError::BadStatus));
        assert_eq!(
            parse(b"NATS/1.0\r\nNoColon\r\n\r\n"),
            Err(HeaderError::BadLine)
        );
        assert_eq!(parse(b"NATS/1.0\r\n: v\r\n\r\n"), Err(HeaderError::BadLine));
        assert_eq!(
            parse(b"NATS/1.0\r\nA: 1\r\n"),
            Err(HeaderError::Unterminated)
        );
    }

    #[test]
    fn encodes_exact_bytes() {
        let mut h = HeaderMap::with_status(408, Some(b"Request Timeout"));
        h.append("A", "1");
        h.append("A", "2");
        let bytes = h.to_bytes();
        assert_eq!(
            &bytes[..],
            b"NATS/1.0 408 Request Timeout\r\nA: 1\r\nA: 2\r\n\r\n"
        );
        assert_eq!(bytes.len(), h.encoded_len());
        assert_eq!(&HeaderMap::new().to_bytes()[..], b"NATS/1.0\r\n\r\n");
    }

    #[test]
    fn insert_replaces_all_values_in_place() {
        let mut h = HeaderMap::new();
        h.append("A", "1");
        h.append("B", "x");
        h.append("A", "2");
        h.insert("A", "3");
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![(&b"A"[..], &b"3"[..]), (b"B", b"x")]
        );
        h.insert("C", "4");
        assert_eq!(h.len(), 3);
        assert!(h.remove("A"));
        assert!(!h.remove("A"));
    }

    #[test]
    fn no_responders_blocks() {
        // 2.9.10 sends the bare status; 2.10+ add Nats-Subject.
        assert_eq!(&no_responders(None)[..], b"NATS/1.0 503\r\n\r\n");
        assert_eq!(
            &no_responders(Some(b"foo.bar"))[..],
            b"NATS/1.0 503\r\nNats-Subject: foo.bar\r\n\r\n"
        );
        let h = parse(&no_responders(Some(b"foo"))).unwrap();
        assert_eq!(h.status(), Some(STATUS_NO_RESPONDERS));
        assert_eq!(h.get(NATS_SUBJECT), Some(&b"foo"[..]));
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(
            status in proptest::option::of((100u16..=999, proptest::option::of("[A-Za-z][A-Za-z ]{0,14}[a-z]"))),
            entries in proptest::collection::vec(("[A-Za-z0-9-]{1,12}", "([!-~]([ !-~]{0,14}[!-~])?)?"), 0..8),
        ) {
            let mut h = HeaderMap::new();
            if let Some((code, desc)) = &status {
                h.set_status(*code, desc.as_deref().map(str::as_bytes));
            }
            for (k, v) in &entries {
                h.append(k, v);
            }
            prop_assert_eq!(parse(&h.to_bytes()), Ok(h));
        }
    }
}
