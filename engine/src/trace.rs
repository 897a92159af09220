//! Protocol tracing (`-V`/`trace: true`): the `[TRC]` lines nats-server
//! writes for every op a client sends (`<<- [SUB foo 1]`), every op sent to
//! it (`->> [MSG foo 1 5]`), payloads (`<<- MSG_PAYLOAD: ["hello"]`) and
//! subscriptions removed (`<-> [DELSUB 1]`), with secrets in CONNECT
//! replaced by `[REDACTED]`.
//!
//! Tracing is decided by the logger's level: when trace lines are off, the
//! only cost is [`enabled`], one atomic load.

/// Whether trace lines are written.
#[inline]
pub fn enabled() -> bool {
    log::log_enabled!(log::Level::Trace)
}

/// The part of a client's trace prefix after `ip:port - cid:N - `: its
/// `"v<version>:<lang>:<name>"` tag (the parts it gave) and, when it sent a
/// user, `"<account>/user:<user>"`, each followed by ` - `, as nats-server
/// writes them.
pub fn client_tag(version: &str, lang: &str, name: &str, account: &str, user: &str) -> String {
    let version = (!version.is_empty()).then(|| format!("v{version}"));
    let parts: Vec<&str> = [version.as_deref(), Some(lang), Some(name)]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect();
    let mut tag = String::new();
    if !parts.is_empty() {
        tag.push_str(&format!("\"{}\" - ", parts.join(":")));
    }
    if !user.is_empty() {
        tag.push_str(&format!("\"{account}/user:{user}\" - "));
    }
    tag
}

/// A payload as nats-server traces it: Go's `%q` of the bytes.
pub fn quote(bytes: &[u8]) -> String {
    crate::conf::go_quote_bytes(bytes)
}

/// CONNECT's JSON with the values of `pass*`, `auth_token*`, `sig`,
/// `proxy_sig` and `nkey` replaced by `[REDACTED]`, as nats-server traces
/// it.
pub fn redact(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            if let Some((from, to)) = secret_value(bytes, i) {
                out.push_str(&json[i..from]);
                out.push_str("[REDACTED]");
                i = to;
                continue;
            }
        }
        let next = json[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&json[i..i + next]);
        i += next;
    }
    out
}

/// At a `"` that opens a key: when the key is a secret, the byte range of
/// its value (inside its quotes, if any).
fn secret_value(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    let key_end = start + 1 + bytes[start + 1..].iter().position(|&b| b == b'"')?;
    let key = &bytes[start + 1..key_end];
    let secret = key.starts_with(b"pass")
        || key.starts_with(b"auth_token")
        || matches!(key, b"sig" | b"proxy_sig" | b"nkey");
    if !secret {
        return None;
    }
    let mut j = key_end + 1;
    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
        j += 1;
    }
    if bytes.get(j) != Some(&b':') {
        return None;
    }
    j += 1;
    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
        j += 1;
    }
    if bytes.get(j) == Some(&b'"') {
        j += 1;
    }
    let end = j + bytes[j..]
        .iter()
        .position(|&b| matches!(b, b'"' | b',' | b'\r' | b'\n' | b'}'))
        .unwrap_or(bytes.len() - j);
    Some((j, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_as_nats_server_redacts_them() {
        assert_eq!(
            redact(
                r#"{"verbose":false,"user":"u","pass":"secret","auth_token":"t","sig":"s","nkey":"UA","headers":true}"#
            ),
            r#"{"verbose":false,"user":"u","pass":"[REDACTED]","auth_token":"[REDACTED]","sig":"[REDACTED]","nkey":"[REDACTED]","headers":true}"#
        );
        assert_eq!(
            redact(r#"{"passphrase": 7}"#),
            r#"{"passphrase": [REDACTED]}"#
        );
        assert_eq!(redact(r#"{"name":"pass"}"#), r#"{"name":"pass"}"#);
    }

    #[test]
    fn tags_and_payloads_read_as_nats_servers() {
        assert_eq!(
            client_tag("1.2.3", "python", "me", "$G", "u"),
            "\"v1.2.3:python:me\" - \"$G/user:u\" - "
        );
        assert_eq!(client_tag("", "go", "", "$G", ""), "\"go\" - ");
        assert_eq!(client_tag("1", "", "x", "$G", ""), "\"v1:x\" - ");
        assert_eq!(client_tag("", "", "", "$G", ""), "");
        assert_eq!(quote(b"NATS/1.0\r\n\r\nhi"), "\"NATS/1.0\\r\\n\\r\\nhi\"");
        assert_eq!(quote(b"a\"\xffb"), "\"a\\\"\\xffb\"");
    }
}
