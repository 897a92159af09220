//! Properties the fuzz targets check, shared with the stable corpus replay
//! test (`tests/corpus.rs`). Built with the `_fuzz` feature (and in tests).
//!
//! Each function panics when its property fails; that is the signal the
//! fuzzer and the replay test look for.
use bytes::{Buf, Bytes, BytesMut};

use crate::{encode, ClientOp, ClientOpParser, Limits, ParseError};

/// Ops and the final error of one parse.
pub type Outcome = (Vec<ClientOp>, Option<ParseError>);

/// Ops and the final error of parsing `data` as one buffer.
pub fn parse_whole(data: &[u8]) -> Outcome {
    parse_chunked(data, data.len().max(1))
}

/// Ops and the final error of parsing `data` delivered `chunk` bytes at a
/// time, calling `parse` until it needs more after each delivery.
pub fn parse_chunked(data: &[u8], chunk: usize) -> Outcome {
    owned_chunked(ClientOpParser::new(fuzz_limits()), data, chunk)
}

fn owned_chunked(mut parser: ClientOpParser, data: &[u8], chunk: usize) -> Outcome {
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

/// As [`parse_chunked`], with `parse_ref`: after each delivery, step until
/// a step consumes nothing, dropping each step's `consumed` bytes from the
/// front of the buffer. Checks the step contract on the way: a step never
/// consumes more than the buffer, and one that consumes nothing has no op.
pub fn parse_ref_chunked(data: &[u8], chunk: usize) -> Outcome {
    let mut parser = ClientOpParser::new(fuzz_limits());
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
                        ops.push(op.to_op(Bytes::copy_from_slice));
                    }
                    buf.advance(step.consumed);
                }
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

/// Small limits, so fuzz inputs reach them.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_control_line: 256,
        max_payload: 4096,
    }
}

/// `client_proto`: parsing never panics; `parse_ref`, and the general
/// machine without the `PUB` fast path, give what `parse` gives; and every
/// op parsed re-encodes to bytes that parse back to the same ops, with no
/// error.
pub fn client_proto(data: &[u8]) {
    let whole = parse_whole(data);
    let len = data.len().max(1);
    assert_eq!(parse_ref_chunked(data, len), whole, "parse_ref differs");
    let general = ClientOpParser::without_fast_path(fuzz_limits());
    assert_eq!(
        owned_chunked(general, data, len),
        whole,
        "fast path differs"
    );
    let (ops, _) = whole;
    let mut wire = BytesMut::new();
    for op in &ops {
        encode::client_op(&mut wire, op);
    }
    let (again, err) = parse_whole(&wire);
    assert_eq!(err, None, "re-encoded ops failed to parse: {wire:?}");
    assert_eq!(again, ops, "re-encoded ops differ");
}

/// `client_proto_chunked`: the first byte picks a chunk size; parsing the
/// rest in chunks, with `parse` or `parse_ref`, gives the same ops and the
/// same error as one buffer.
pub fn client_proto_chunked(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let whole = parse_whole(rest);
    assert_eq!(parse_chunked(rest, chunk), whole, "chunk size {chunk}");
    assert_eq!(
        parse_ref_chunked(rest, chunk),
        whole,
        "parse_ref, chunk size {chunk}"
    );
}
