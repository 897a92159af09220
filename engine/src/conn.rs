//! What every connection machine (client, route) shares in the engine.

use bytes::{Buf, BytesMut};

/// What applying the op at the front of the read buffer asks for next.
pub(crate) enum Turn {
    /// Drop this many bytes and parse on; 0 means the buffer holds no
    /// complete op.
    Consumed(usize),
    /// The connection closed (or the bytes were refused): drop the rest.
    Stop,
}

/// Parse and apply the ops at the front of `buf`, one `turn` each, until
/// the buffer holds no complete op or a turn stops. Ops borrow the buffer
/// (no copies), so the caller has taken it out of its machine while this
/// runs.
pub(crate) fn read_ops(buf: &mut BytesMut, mut turn: impl FnMut(&[u8]) -> Turn) {
    loop {
        match turn(buf) {
            Turn::Consumed(0) => break,
            Turn::Consumed(n) => buf.advance(n),
            Turn::Stop => {
                buf.clear();
                break;
            }
        }
    }
}
