//! Properties the fuzz targets check, shared with the stable corpus replay
//! test (`tests/corpus.rs`). Built with the `_fuzz` feature (and in tests).
//!
//! Each function panics when its property fails; that is the signal the
//! fuzzer and the replay test look for.
use bytes::BytesMut;

use crate::{encode, ClientOp, ClientOpParser, Limits, ParseError};

/// Ops and the final error of parsing `data` as one buffer.
pub fn parse_whole(data: &[u8]) -> (Vec<ClientOp>, Option<ParseError>) {
    parse_chunked(data, data.len().max(1))
}

/// Ops and the final error of parsing `data` delivered `chunk` bytes at a
/// time, calling `parse` until it needs more after each delivery.
pub fn parse_chunked(data: &[u8], chunk: usize) -> (Vec<ClientOp>, Option<ParseError>) {
    let mut parser = ClientOpParser::new(fuzz_limits());
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

/// Small limits, so fuzz inputs reach them.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_control_line: 256,
        max_payload: 4096,
    }
}

/// `client_proto`: parsing never panics, and every op parsed re-encodes to
/// bytes that parse back to the same ops, with no error.
pub fn client_proto(data: &[u8]) {
    let (ops, _) = parse_whole(data);
    let mut wire = BytesMut::new();
    for op in &ops {
        encode::client_op(&mut wire, op);
    }
    let (again, err) = parse_whole(&wire);
    assert_eq!(err, None, "re-encoded ops failed to parse: {wire:?}");
    assert_eq!(again, ops, "re-encoded ops differ");
}

/// `client_proto_chunked`: the first byte picks a chunk size; parsing the
/// rest in chunks gives the same ops and the same error as one buffer.
pub fn client_proto_chunked(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    assert_eq!(
        parse_chunked(rest, chunk),
        parse_whole(rest),
        "chunk size {chunk}"
    );
}
