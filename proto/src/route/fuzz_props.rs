//! The property the `route_proto` fuzz target checks, shared with the
//! stable corpus replay (`tests/it/fuzz_corpus.rs`). Built with the `_fuzz`
//! feature (and in tests). It panics when the property fails.
use bytes::{Buf, Bytes, BytesMut};

use super::{encode, RouteDialect, RouteOp, RouteOpParser, RouteParseError};
use crate::Limits;

/// Ops and the final error of one parse.
pub type Outcome = (Vec<RouteOp<Bytes>>, Option<RouteParseError>);

/// Small limits, so fuzz inputs reach them.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_control_line: 256,
        max_payload: 4096,
    }
}

/// Ops and the final error of parsing `data` delivered `chunk` bytes at a
/// time with [`RouteOpParser::parse`].
pub fn parse_chunked(data: &[u8], chunk: usize, limits: Limits, dialect: RouteDialect) -> Outcome {
    let mut parser = RouteOpParser::new(limits, dialect);
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

/// As [`parse_chunked`], with [`RouteOpParser::parse_ref`], checking the
/// step contract on the way: a step never consumes more than the buffer,
/// and one that consumes nothing has no op.
pub fn parse_ref_chunked(data: &[u8], chunk: usize, dialect: RouteDialect) -> Outcome {
    let mut parser = RouteOpParser::new(fuzz_limits(), dialect);
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse_ref(&buf) {
                Ok(step) => {
                    assert!(step.consumed <= buf.len(), "step consumed past the buffer");
                    if step.consumed == 0 {
                        assert_eq!(step.op, None, "an op that consumed nothing");
                        break;
                    }
                    if let Some(op) = step.op {
                        ops.push(op.map(Bytes::copy_from_slice));
                    }
                    buf.advance(step.consumed);
                }
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

/// `route_proto`: the first byte picks a dialect (bits 0 and 1) and a chunk
/// size (the rest). Parsing the remaining bytes never panics; `parse` in
/// chunks, and `parse_ref` whole and in chunks, give the same ops and the
/// same error as `parse` whole; and the ops re-encode to bytes that parse
/// back to the same ops, with no error.
pub fn route_proto(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let dialect = RouteDialect {
        pinned: first & 1 != 0,
        ls_unsub_origin: first & 2 != 0,
    };
    let chunk = usize::from(first >> 2) + 1;
    let limits = fuzz_limits();
    let whole = parse_chunked(rest, rest.len(), limits, dialect);
    assert_eq!(
        parse_chunked(rest, chunk, limits, dialect),
        whole,
        "chunk size {chunk}"
    );
    assert_eq!(
        parse_ref_chunked(rest, rest.len(), dialect),
        whole,
        "parse_ref"
    );
    assert_eq!(
        parse_ref_chunked(rest, chunk, dialect),
        whole,
        "parse_ref, chunk size {chunk}"
    );
    let (ops, _) = whole;
    let mut wire = BytesMut::new();
    for op in &ops {
        encode::op(&mut wire, op);
    }
    // Encoding may add two bytes to a control line (the quotes of `-ERR`,
    // the space after an `INFO`'s JSON).
    let roomier = Limits {
        max_control_line: limits.max_control_line + 2,
        ..limits
    };
    let (again, err) = parse_chunked(&wire, wire.len(), roomier, dialect);
    assert_eq!(err, None, "re-encoded ops failed to parse: {wire:?}");
    assert_eq!(again, ops, "re-encoded ops differ");
}
