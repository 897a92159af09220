//! Subject filter matching (NATS tokens: `*` one token, `>` one or more trailing tokens).

/// True when `filter` selects every subject: empty or `>`.
pub(crate) fn is_all(filter: &str) -> bool {
    filter.is_empty() || filter == ">"
}

/// True when `filter` contains a wildcard token.
pub(crate) fn has_wildcard(filter: &str) -> bool {
    filter.split('.').any(|t| t == "*" || t == ">")
}

/// Does the literal `subject` match `filter`? An empty filter matches everything.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_tokens() {
        assert!(subject_matches("foo.*", "foo.bar"));
        assert!(!subject_matches("foo.*", "foo.bar.baz"));
        assert!(subject_matches("foo.>", "foo.bar.baz"));
        assert!(!subject_matches("foo.>", "foo"));
        assert!(subject_matches(">", "a"));
        assert!(subject_matches("*.b", "a.b"));
        assert!(!subject_matches("a.b", "a.bc"));
        assert!(subject_matches("", "x.y"));
    }
}
