//! Encoders for every op. STUB: the proto helper completes this file.
use bytes::{BufMut, BytesMut};

/// `MSG <subject> <sid> [reply] <#bytes>\r\n<payload>\r\n`.
pub fn msg(buf: &mut BytesMut, subject: &[u8], sid: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    buf.put_slice(b"MSG ");
    buf.put_slice(subject);
    buf.put_u8(b' ');
    buf.put_slice(sid);
    if let Some(r) = reply {
        buf.put_u8(b' ');
        buf.put_slice(r);
    }
    buf.put_slice(format!(" {}\r\n", payload.len()).as_bytes());
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}
