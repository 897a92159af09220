//! Subject transforms: a source filter and a destination template, as
//! nats-server applies them to stream input (`subject_transform`),
//! republishing (`republish`) and subject mappings.
//!
//! The destination is a subject whose tokens are literals, `>` (when the
//! source ends in `>`: the rest of the subject), `$N` (the subject's token
//! matched by the source's N-th `*`) or a mapping function in mustaches:
//!
//! | function | gives |
//! |---|---|
//! | `{{wildcard(N)}}` | the token of the N-th `*`, as `$N` |
//! | `{{partition(P, N...)}}` | FNV-1a of the named tokens (all of the subject when none) mod P |
//! | `{{split(N, D)}}` | the token split on `D` into several tokens |
//! | `{{splitFromLeft(N, K)}}`, `{{splitFromRight(N, K)}}` | the token split in two, K bytes from that end |
//! | `{{sliceFromLeft(N, K)}}`, `{{sliceFromRight(N, K)}}` | the token cut into K-byte tokens from that end |
//! | `{{left(N, K)}}`, `{{right(N, K)}}` | the first / last K bytes of the token |
//! | `{{random(P)}}` | a random number below P |
//!
//! Errors carry nats-server's texts (`invalid mapping destination: ...`),
//! which the JetStream API puts into its error descriptions.
use std::fmt;

use crate::subject::is_valid_literal_subject;

/// Why a transform cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformError {
    /// The source or destination is not a valid subject, the destination
    /// has a `*`, or only one of them ends in `>` (nats-server's
    /// `ErrBadSubject`).
    BadSubject,
    /// A destination token is wrong: `.0` says how, `.1` is the token.
    Destination(&'static str, String),
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformError::BadSubject => f.write_str("invalid subject"),
            TransformError::Destination(what, token) if token.is_empty() => {
                write!(f, "invalid mapping destination: {what}")
            }
            TransformError::Destination(what, token) => {
                write!(f, "invalid mapping destination: {what} in {token}")
            }
        }
    }
}

impl std::error::Error for TransformError {}

const INVALID: &str = "invalid transform";
const UNKNOWN_FUNCTION: &str = "unknown function";
const OUT_OF_RANGE: &str = "wildcard index out of range";
const NOT_ENOUGH_ARGS: &str = "not enough arguments passed to the function";
const INVALID_ARG: &str = "function argument is invalid or in the wrong format";
const TOO_MANY_ARGS: &str = "too many arguments passed to the function";

/// One destination token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The trailing `>`: the source's remaining tokens.
    Rest,
    /// A source token, by position in the subject.
    Token(usize),
    /// Hash of the listed source tokens (the whole subject when empty).
    Partition(u32, Vec<usize>),
    Split(usize, String),
    SplitFromLeft(usize, i32),
    SplitFromRight(usize, i32),
    SliceFromLeft(usize, i32),
    SliceFromRight(usize, i32),
    Left(usize, i32),
    Right(usize, i32),
    Random(u32),
}

/// A mapping function as written, before its wildcard arguments are
/// resolved to subject positions.
enum Function {
    Wildcard(usize),
    Partition(u32, Vec<usize>),
    Split(usize, String),
    IndexInt(fn(usize, i32) -> Part, usize, i32),
    Random(u32),
}

/// A subject transform (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTransform {
    src: String,
    /// The source's tokens.
    src_tokens: Vec<String>,
    parts: Vec<Part>,
    /// Source and destination are both `>` (or empty): subjects pass as
    /// they are.
    identity: bool,
}

/// `(valid, tokens, number of '*', ends in '>')` of a subject.
fn subject_info(subject: &str) -> Option<(Vec<&str>, usize, bool)> {
    if subject.is_empty() {
        return None;
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let (mut pwcs, mut fwc) = (0, false);
    for t in &tokens {
        if t.is_empty() || fwc {
            return None;
        }
        match *t {
            ">" => fwc = true,
            "*" => pwcs += 1,
            _ => {}
        }
    }
    Some((tokens, pwcs, fwc))
}

fn parse_int<T: std::str::FromStr>(arg: &str, token: &str) -> Result<T, TransformError> {
    arg.trim_matches(' ')
        .parse()
        .map_err(|_| TransformError::Destination(INVALID_ARG, token.to_string()))
}

/// The mapping function of a `{{...}}` token, or `None` for a literal.
fn parse_function(token: &str) -> Result<Option<Function>, TransformError> {
    let err = |what| Err(TransformError::Destination(what, token.to_string()));
    if let Some(n) = token.strip_prefix('$') {
        // `$N`; any other `$word` is a literal.
        return Ok(n.parse().ok().map(Function::Wildcard));
    }
    let Some(inner) = token
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .filter(|_| token.len() > 4)
    else {
        return Ok(None);
    };
    let inner = inner.trim();
    let (Some(open), Some(close)) = (inner.find('('), inner.rfind(')')) else {
        return err(UNKNOWN_FUNCTION);
    };
    if close + 1 != inner.len() || close < open {
        return err(UNKNOWN_FUNCTION);
    }
    let name = inner[..open].trim_end().to_ascii_lowercase();
    let raw = &inner[open + 1..close];
    let args: Vec<&str> = raw.split(',').map(str::trim_start).collect();
    let index_int = |make: fn(usize, i32) -> Part| -> Result<Option<Function>, TransformError> {
        match args.len() {
            0 | 1 => err(NOT_ENOUGH_ARGS),
            2 => Ok(Some(Function::IndexInt(
                make,
                parse_int(args[0], token)?,
                parse_int(args[1], token)?,
            ))),
            _ => err(TOO_MANY_ARGS),
        }
    };
    match name.as_str() {
        "wildcard" => match args.as_slice() {
            [""] => err(NOT_ENOUGH_ARGS),
            [one] => Ok(Some(Function::Wildcard(parse_int(one, token)?))),
            _ => err(TOO_MANY_ARGS),
        },
        "partition" => {
            let n: u32 = parse_int(args[0], token)?;
            if n > i32::MAX as u32 {
                return err(INVALID_ARG);
            }
            let keys = args[1..]
                .iter()
                .map(|a| parse_int(a, token))
                .collect::<Result<_, _>>()?;
            Ok(Some(Function::Partition(n, keys)))
        }
        "splitfromleft" => index_int(Part::SplitFromLeft),
        "splitfromright" => index_int(Part::SplitFromRight),
        "slicefromleft" => index_int(Part::SliceFromLeft),
        "slicefromright" => index_int(Part::SliceFromRight),
        "left" => index_int(Part::Left),
        "right" => index_int(Part::Right),
        "split" => match args.as_slice() {
            [] | [_] => err(NOT_ENOUGH_ARGS),
            [i, delim] => {
                if delim.contains(' ') || delim.contains('.') {
                    return err(INVALID_ARG);
                }
                Ok(Some(Function::Split(
                    parse_int(i, token)?,
                    delim.to_string(),
                )))
            }
            _ => err(TOO_MANY_ARGS),
        },
        "random" => match args.as_slice() {
            [n] => {
                let n: u32 = parse_int(n, token)?;
                if n > i32::MAX as u32 {
                    return err(INVALID_ARG);
                }
                Ok(Some(Function::Random(n)))
            }
            _ => err(NOT_ENOUGH_ARGS),
        },
        _ => err(UNKNOWN_FUNCTION),
    }
}

impl SubjectTransform {
    /// A transform from `src` (empty: `>`) to `dest`, checked as
    /// nats-server checks a stream's `subject_transform` (its
    /// `ValidateMapping`): every destination token non-empty and free of
    /// whitespace, every function known with valid arguments, every
    /// wildcard index within the source's `*` count.
    pub fn new(src: &str, dest: &str) -> Result<Self, TransformError> {
        let mut fwc = false;
        for t in dest.split('.') {
            if t.is_empty() || fwc {
                return Err(TransformError::Destination(INVALID, t.to_string()));
            }
            if t == ">" {
                fwc = true;
            } else if !(t.starts_with("{{") && t.ends_with("}}"))
                && t.contains(['\t', '\n', '\x0c', '\r', ' '])
            {
                return Err(TransformError::Destination(INVALID, String::new()));
            }
        }
        let src = if src.is_empty() { ">" } else { src };
        let (src_tokens, pwcs, src_fwc) = subject_info(src).ok_or(TransformError::BadSubject)?;
        let (dest_tokens, dest_pwcs, dest_fwc) =
            subject_info(dest).ok_or(TransformError::BadSubject)?;
        if dest_pwcs > 0 || src_fwc != dest_fwc {
            return Err(TransformError::BadSubject);
        }
        // Subject positions of the source's `*`s, 1-based as written; an
        // index of 0 reads the first token, as nats-server's lookup does.
        let wildcard_at: Vec<usize> = src_tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == "*")
            .map(|(i, _)| i)
            .collect();
        let position = |index: usize, token: &str| -> Result<usize, TransformError> {
            if index > pwcs || (pwcs == 0 && !src_fwc) {
                return Err(TransformError::Destination(OUT_OF_RANGE, token.to_string()));
            }
            Ok(index.checked_sub(1).map_or(0, |i| wildcard_at[i]))
        };
        let mut parts = Vec::with_capacity(dest_tokens.len());
        for token in &dest_tokens {
            let part = match parse_function(token)? {
                None if *token == ">" => Part::Rest,
                None => Part::Literal((*token).to_string()),
                Some(Function::Random(n)) => Part::Random(n),
                // Without wildcards in the source, nats-server hashes the
                // whole subject whatever tokens are named.
                Some(Function::Partition(n, _)) if pwcs == 0 && !src_fwc => {
                    Part::Partition(n, Vec::new())
                }
                Some(Function::Partition(n, keys)) => Part::Partition(
                    n,
                    keys.into_iter()
                        .map(|k| position(k, token))
                        .collect::<Result<_, _>>()?,
                ),
                Some(Function::Wildcard(i)) => Part::Token(position(i, token)?),
                Some(Function::Split(i, delim)) => Part::Split(position(i, token)?, delim),
                Some(Function::IndexInt(make, i, n)) => make(position(i, token)?, n),
            };
            parts.push(part);
        }
        Ok(SubjectTransform {
            identity: src == ">" && dest == ">",
            src: src.to_string(),
            src_tokens: src_tokens.into_iter().map(str::to_string).collect(),
            parts,
        })
    }

    /// The source filter.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// The transformed subject when `subject` (literal) matches the source,
    /// else `None`.
    pub fn apply(&self, subject: &str) -> Option<String> {
        if self.identity {
            return Some(subject.to_string());
        }
        if !is_valid_literal_subject(subject.as_bytes()) {
            return None;
        }
        let tokens: Vec<&str> = subject.split('.').collect();
        if !self.source_matches(&tokens) {
            return None;
        }
        Some(self.render(&tokens))
    }

    /// Whether a literal subject's `tokens` match the source.
    pub fn source_matches(&self, tokens: &[&str]) -> bool {
        let mut it = tokens.iter();
        for s in &self.src_tokens {
            if s == ">" {
                return it.next().is_some();
            }
            match it.next() {
                Some(t) if s == "*" || s == t => {}
                _ => return false,
            }
        }
        it.next().is_none()
    }

    fn render(&self, tokens: &[&str]) -> String {
        let mut out = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum::<usize>() + 8);
        let token = |i: usize| tokens.get(i).copied().unwrap_or_default();
        for (n, part) in self.parts.iter().enumerate() {
            if n > 0 {
                out.push('.');
            }
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Rest => {
                    let from = self.src_tokens.len().saturating_sub(1);
                    out.push_str(&tokens[from.min(tokens.len())..].join("."));
                }
                Part::Token(i) => out.push_str(token(*i)),
                Part::Partition(n, keys) => {
                    let key = if keys.is_empty() {
                        tokens.join(".")
                    } else {
                        keys.iter().map(|&k| token(k)).collect()
                    };
                    push_num(&mut out, bucket(fnv1a(key.as_bytes()), *n));
                }
                Part::Random(n) => push_num(&mut out, random_below(*n)),
                Part::Split(i, delim) => {
                    let pieces: Vec<&str> = token(*i)
                        .split(delim.as_str())
                        .filter(|p| !p.is_empty())
                        .collect();
                    out.push_str(&pieces.join("."));
                }
                Part::SplitFromLeft(i, k) => {
                    let t = token(*i);
                    match cut(t, *k) {
                        Some(at) => push_two(&mut out, t, at),
                        None => out.push_str(t),
                    }
                }
                Part::SplitFromRight(i, k) => {
                    let t = token(*i);
                    match cut(t, *k) {
                        Some(at) => push_two(&mut out, t, t.len() - at),
                        None => out.push_str(t),
                    }
                }
                Part::SliceFromLeft(i, k) | Part::SliceFromRight(i, k) => {
                    let t = token(*i);
                    let from_right = matches!(part, Part::SliceFromRight(..));
                    match cut(t, *k).and_then(|size| slices(t, size, from_right)) {
                        Some(pieces) => out.push_str(&pieces.join(".")),
                        None => out.push_str(t),
                    }
                }
                Part::Left(i, k) => {
                    let t = token(*i);
                    out.push_str(cut(t, *k).map_or(t, |at| &t[..at]));
                }
                Part::Right(i, k) => {
                    let t = token(*i);
                    out.push_str(cut(t, *k).map_or(t, |at| &t[t.len() - at..]));
                }
            }
        }
        out
    }
}

/// `k` as a byte count strictly inside `t` (and on character boundaries
/// from both ends), else `None`: the token is left whole.
fn cut(t: &str, k: i32) -> Option<usize> {
    let k = usize::try_from(k).ok().filter(|&k| k > 0 && k < t.len())?;
    (t.is_char_boundary(k) && t.is_char_boundary(t.len() - k)).then_some(k)
}

/// `t` cut into pieces of `size` bytes, from the left or (the short piece
/// first) from the right; `None` when a cut would fall inside a character,
/// where the token is left whole, as the other cutting functions do.
fn slices(t: &str, size: usize, from_right: bool) -> Option<Vec<&str>> {
    let head = if from_right { t.len() % size } else { 0 };
    let mut cuts: Vec<usize> = (head..t.len()).step_by(size).collect();
    if head == 0 {
        cuts.retain(|&c| c != 0);
    }
    cuts.insert(0, 0);
    cuts.push(t.len());
    cuts.dedup();
    if !cuts.iter().all(|&c| t.is_char_boundary(c)) {
        return None;
    }
    Some(cuts.windows(2).map(|w| &t[w[0]..w[1]]).collect())
}

fn push_two(out: &mut String, t: &str, at: usize) {
    out.push_str(&t[..at]);
    out.push('.');
    out.push_str(&t[at..]);
}

fn push_num(out: &mut String, n: u32) {
    use fmt::Write;
    let _ = write!(out, "{n}");
}

fn bucket(hash: u32, n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        hash % n
    }
}

/// 32-bit FNV-1a, the hash nats-server partitions with.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A random number below `n` (0 when `n` is 0). No need for a good
/// generator: it spreads messages over partitions and destinations.
pub fn random_below(n: u32) -> u32 {
    bucket(random(), n)
}

fn random() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 33) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(src: &str, dest: &str, subject: &str) -> Option<String> {
        SubjectTransform::new(src, dest).unwrap().apply(subject)
    }

    #[test]
    fn wildcards_and_rest() {
        assert_eq!(apply("foo.*.*", "bar.$2.$1", "foo.a.b").unwrap(), "bar.b.a");
        assert_eq!(
            apply(
                "foo.*.*",
                "bar.{{wildcard(2)}}.{{ Wildcard( 1 ) }}",
                "foo.a.b"
            )
            .unwrap(),
            "bar.b.a"
        );
        assert_eq!(apply("foo.*.*", "bar.$2.$1", "foo.a"), None);
        assert_eq!(apply("foo.>", "bar.>", "foo.a.b.c").unwrap(), "bar.a.b.c");
        assert_eq!(apply("foo.*.>", "x.$1.>", "foo.a.b.c").unwrap(), "x.a.b.c");
        assert_eq!(apply("", ">", "any.thing").unwrap(), "any.thing");
        assert_eq!(apply(">", "pre.>", "a.b").unwrap(), "pre.a.b");
        assert_eq!(apply("foo", "bar", "foo").unwrap(), "bar");
        assert_eq!(apply("foo", "bar", "foo.x"), None);
        // `$word` is a literal.
        assert_eq!(apply("a.*", "$x.$1", "a.b").unwrap(), "$x.b");
    }

    #[test]
    fn slices_never_cut_a_character() {
        let t = |dest: &str, subject: &str| apply("a.*", dest, subject).unwrap();
        assert_eq!(t("{{SplitFromLeft(1,3)}}", "a.1234567"), "123.4567");
        assert_eq!(t("{{SliceFromLeft(1,3)}}", "a.1234567"), "123.456.7");
        assert_eq!(t("{{SliceFromRight(1,3)}}", "a.1234567"), "1.234.567");
        assert_eq!(t("{{SliceFromRight(1,3)}}", "a.123456"), "123.456");
        // A cut inside a multi-byte character leaves the token whole (it used to panic).
        assert_eq!(t("{{SliceFromRight(1,2)}}", "a.éxé"), "éxé");
        assert_eq!(t("{{SliceFromLeft(1,2)}}", "a.éxé"), "éxé");
        assert_eq!(t("{{SliceFromLeft(1,2)}}", "a.éé"), "é.é");
    }

    #[test]
    fn functions() {
        let t = |dest: &str, subject: &str| apply("a.*.*", dest, subject).unwrap();
        assert_eq!(t("{{split(1,-)}}", "a.-x--y-.z"), "x.y");
        assert_eq!(t("{{splitFromLeft(1,2)}}", "a.abcde.z"), "ab.cde");
        assert_eq!(t("{{splitFromRight(1,2)}}", "a.abcde.z"), "abc.de");
        assert_eq!(t("{{splitFromLeft(1,9)}}", "a.abcde.z"), "abcde");
        assert_eq!(t("{{sliceFromLeft(1,2)}}", "a.abcde.z"), "ab.cd.e");
        assert_eq!(t("{{sliceFromRight(1,2)}}", "a.abcde.z"), "a.bc.de");
        assert_eq!(t("{{sliceFromRight(1,2)}}", "a.abcd.z"), "ab.cd");
        assert_eq!(t("{{left(1,2)}}", "a.abcde.z"), "ab");
        assert_eq!(t("{{right(2,1)}}", "a.abcde.xyz"), "z");
        // FNV-1a("ab") = 0x4d2505ca; over the two tokens concatenated.
        assert_eq!(fnv1a(b"ab"), 0x4d25_05ca);
        assert_eq!(
            t("p.{{partition(10,1,2)}}", "a.a.b"),
            format!("p.{}", 0x4d25_05ca % 10)
        );
        let whole = apply("a.b", "{{partition(7)}}", "a.b").unwrap();
        assert_eq!(whole, (fnv1a(b"a.b") % 7).to_string());
        let r: u32 = apply("x", "{{random(5)}}", "x").unwrap().parse().unwrap();
        assert!(r < 5);
    }

    #[test]
    fn refusals_with_nats_server_texts() {
        let e = |src: &str, dest: &str| SubjectTransform::new(src, dest).unwrap_err().to_string();
        assert_eq!(
            e("a.*", "b.$2"),
            "invalid mapping destination: wildcard index out of range in $2"
        );
        assert_eq!(
            e("a.*", "b.{{nope(1)}}"),
            "invalid mapping destination: unknown function in {{nope(1)}}"
        );
        assert_eq!(
            e("a.*", "b.{{left(1)}}"),
            "invalid mapping destination: not enough arguments passed to the function in {{left(1)}}"
        );
        assert_eq!(
            e("a.*", "b.{{left(1,2,3)}}"),
            "invalid mapping destination: too many arguments passed to the function in {{left(1,2,3)}}"
        );
        assert_eq!(
            e("a.*", "b.{{left(x,2)}}"),
            "invalid mapping destination: function argument is invalid or in the wrong format in {{left(x,2)}}"
        );
        assert_eq!(
            e("a.*", "b..c"),
            "invalid mapping destination: invalid transform"
        );
        assert_eq!(e("a.>", "b.*"), "invalid subject");
        assert_eq!(e("a.>", "b"), "invalid subject");
        assert_eq!(
            e("a", "{{wildcard(1)}}"),
            "invalid mapping destination: wildcard index out of range in {{wildcard(1)}}"
        );
    }
}
