//! Subject and queue-name validation, and the reference subject matcher.
//!
//! A subject is a list of tokens separated by `.`. In a subscription, a token
//! that is exactly `*` matches any one token, and a token that is exactly `>`
//! (only allowed last) matches one or more trailing tokens. A `*` or `>` that
//! is part of a longer token (`fo*o`, `t.b>r`) is an ordinary character.
//!
//! The rules follow nats-server (`server/sublist.go`), checked against
//! nats-server 2.9.10 on the wire:
//!
//! | check | used for | rule |
//! |---|---|---|
//! | [`is_valid_subject`] | `SUB`, config, API filters | no empty token, `>` only last, no whitespace |
//! | [`is_valid_literal_subject`] | literal-only places | no empty token, no wildcard token |
//! | [`is_valid_publish_subject`] | pedantic `PUB` | same as literal (whitespace not checked) |
//! | [`is_valid_queue`] | `SUB` queue group | non-empty, no whitespace |
//!
//! Non-pedantic `PUB` does not validate at all: a published `foo.*` is
//! routed as a literal subject whose second token is the character `*`
//! (wildcard subscriptions match it, a literal `foo.bar` does not).

/// Token separator.
pub const TSEP: u8 = b'.';
/// Single-token wildcard.
pub const PWC: u8 = b'*';
/// Trailing multi-token wildcard.
pub const FWC: u8 = b'>';

/// The whitespace nats-server's `IsValidSubject` refuses inside a subject.
/// Space, tab, CR and LF can never reach us from the wire (the protocol
/// parser splits arguments on them); form feed can.
fn is_subject_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Iterate over the `.`-separated tokens of a subject. An empty subject
/// yields one empty token, as splitting does in Go.
pub fn tokens(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| b == TSEP)
}

/// True if `token` is exactly `*`.
pub fn is_pwc(token: &[u8]) -> bool {
    token == [PWC]
}

/// True if `token` is exactly `>`.
pub fn is_fwc(token: &[u8]) -> bool {
    token == [FWC]
}

/// A subject that may be subscribed to: tokens are non-empty, `>` may only
/// be the last token, and no token contains whitespace.
///
/// Matches nats-server `IsValidSubject`. Note: 2.9.10 itself accepts a form
/// feed inside a `SUB` subject (its `SUB` path checks only the token shape);
/// natsd refuses it, as nats-server does for configured subjects.
pub fn is_valid_subject(s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut after_fwc = false;
    for t in tokens(s) {
        if t.is_empty() || after_fwc {
            return false;
        }
        if t.iter().copied().any(is_subject_space) {
            return false;
        }
        after_fwc = is_fwc(t);
    }
    true
}

/// A subject with no empty token and no wildcard token. `fo*o` and `t.b>r`
/// are literal: the wildcard characters are part of longer tokens.
///
/// Matches nats-server `IsValidLiteralSubject`; whitespace is not checked.
pub fn is_valid_literal_subject(s: &[u8]) -> bool {
    tokens(s).all(|t| !t.is_empty() && !is_pwc(t) && !is_fwc(t))
}

/// The check nats-server applies to a `PUB`/`HPUB` subject when the client
/// asked for `pedantic`: a failure sends `-ERR 'Invalid Publish Subject'`
/// (and 2.9.10 still delivers the message). Same rule as
/// [`is_valid_literal_subject`]: `PUB a..b`, `PUB a.*` and `PUB a.>` fail,
/// `PUB fo*o` passes.
pub fn is_valid_publish_subject(s: &[u8]) -> bool {
    is_valid_literal_subject(s)
}

/// A queue group name: non-empty and free of whitespace. nats-server has no
/// further rule: `q.x`, `q*` and `>` are all accepted as queue names.
pub fn is_valid_queue(q: &[u8]) -> bool {
    !q.is_empty() && !q.iter().copied().any(is_subject_space)
}

/// True if the subject contains a `*` or `>` token.
pub fn has_wildcard(s: &[u8]) -> bool {
    tokens(s).any(|t| is_pwc(t) || is_fwc(t))
}

/// Does `subject` (as published) match subscription `filter`?
///
/// Both are compared token by token. In the filter, `*` matches any one
/// token and a final `>` matches one or more tokens. In the subject every
/// token is literal, so a published `*` token is matched only by a `*` or
/// `>` in the filter. A subject or filter with an empty token never matches,
/// like the sublist. This is the simple reference the sublist is tested
/// against.
pub fn subject_matches(filter: &[u8], subject: &[u8]) -> bool {
    if subject.is_empty() || filter.is_empty() {
        return false;
    }
    let mut subj = tokens(subject);
    let mut filt = tokens(filter).peekable();
    loop {
        match (filt.next(), subj.next()) {
            (None, None) => return true,
            (Some(f), Some(s)) => {
                if f.is_empty() || s.is_empty() {
                    return false;
                }
                if is_fwc(f) {
                    // `>` must be the filter's last token and needs at
                    // least this one subject token; the rest must be valid.
                    return filt.peek().is_none() && subj.all(|t| !t.is_empty());
                }
                if !is_pwc(f) && f != s {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from nats-server `TestSublistValidSubjects`-style tables and
    /// the 2.9.10 wire checks noted in FEATURES.md.
    #[test]
    fn valid_subjects_table() {
        let valid: &[&[u8]] = &[
            b"foo",
            b"foo.bar",
            b"foo.*",
            b"*",
            b">",
            b"foo.>",
            b"*.*.>",
            b"foo.*.baz",
            b"fo*o",
            b"t.b>r",
            b"foo.b*>",
            b"foo\x00bar",
            b"\xff\xfe",
            b"a.\x0b.c",
        ];
        for s in valid {
            assert!(is_valid_subject(s), "{:?} should be valid", s);
        }
        let invalid: &[&[u8]] = &[
            b"",
            b".",
            b"foo.",
            b".foo",
            b"foo..bar",
            b">.foo",
            b"foo.>.bar",
            b"foo.>.>",
            b"foo bar",
            b"foo\tbar",
            b"foo.\r",
            b"foo\nbar",
            b"foo\x0cbar",
            b" ",
            b"foo. ",
        ];
        for s in invalid {
            assert!(!is_valid_subject(s), "{:?} should be invalid", s);
        }
    }

    /// As nats-server `TestSublistValidLiteralSubjects`.
    #[test]
    fn literal_subjects_table() {
        let valid: &[&[u8]] = &[
            b"foo",
            b"foo.bar",
            b"fo*o",
            b"t.b>r",
            b"*x",
            b"foo.**",
            b"foo.>>",
            b"foo\x0cbar",
        ];
        for s in valid {
            assert!(is_valid_literal_subject(s), "{:?} should be literal", s);
            assert!(is_valid_publish_subject(s));
        }
        let invalid: &[&[u8]] = &[
            b"",
            b"foo.",
            b".foo",
            b"foo..bar",
            b"*",
            b">",
            b"foo.*",
            b"foo.>",
            b"foo.*.bar",
            b"*.foo",
        ];
        for s in invalid {
            assert!(
                !is_valid_literal_subject(s),
                "{:?} should not be literal",
                s
            );
            assert!(!is_valid_publish_subject(s));
        }
    }

    /// 2.9.10 accepts any whitespace-free queue name, wildcards and dots too.
    #[test]
    fn queue_names_table() {
        for q in [&b"q"[..], b"q.x", b"q*", b">", b"*", b"bar.baz.>"] {
            assert!(is_valid_queue(q), "{:?}", q);
        }
        for q in [&b""[..], b"q x", b"q\t", b"\rq", b"q\n", b"q\x0cx"] {
            assert!(!is_valid_queue(q), "{:?}", q);
        }
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcard(b"foo.*"));
        assert!(has_wildcard(b">"));
        assert!(!has_wildcard(b"fo*o.b>r"));
        assert!(!has_wildcard(b"foo.bar"));
    }

    /// As nats-server `TestSublistMatchLiterals` / `TestSubjectIsSubsetMatch`.
    #[test]
    fn subject_matches_table() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"foo", b"foo", true),
            (b"foo", b"bar", false),
            (b"foo.*", b"foo.bar", true),
            (b"foo.*", b"foo", false),
            (b"foo.*", b"foo.bar.baz", false),
            (b"foo.>", b"foo.bar", true),
            (b"foo.>", b"foo.bar.baz", true),
            (b"foo.>", b"foo", false),
            (b">", b"foo", true),
            (b">", b"foo.bar", true),
            (b"*", b"foo", true),
            (b"*", b"foo.bar", false),
            (b"*.bar.*", b"foo.bar.baz", true),
            (b"*.bar.*", b"foo.baz.baz", false),
            (b"foo.*.>", b"foo.bar", false),
            (b"foo.*.>", b"foo.bar.baz", true),
            // Published wildcards are literal tokens: only wildcards match them.
            (b"foo.*", b"foo.*", true),
            (b"foo.>", b"foo.>", true),
            (b"foo.bar", b"foo.*", false),
            (b"fo*o", b"fo*o", true),
            (b"fo*o", b"foxo", false),
            // Empty tokens never match.
            (b"foo.>", b"foo..bar", false),
            (b"*", b"", false),
            (b"", b"", false),
            (b"foo.>.bar", b"foo.x.bar", false),
        ];
        for (f, s, want) in cases {
            assert_eq!(
                subject_matches(f, s),
                *want,
                "filter {:?} subject {:?}",
                f,
                s
            );
        }
    }

    #[test]
    fn tokens_split_like_go() {
        let t: Vec<&[u8]> = tokens(b"a.b.c").collect();
        assert_eq!(t, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(tokens(b"").count(), 1);
        assert_eq!(tokens(b"a..b").count(), 3);
    }
}
