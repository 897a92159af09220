//! Which subject filters overlap, without comparing every pair.
//!
//! A stream's subjects must not overlap each other nor another stream's, and
//! a consumer's filters must not contain one another. Checked pair by pair
//! that is quadratic: a `STREAM.CREATE` with 60,000 subjects is 1.8 billion
//! comparisons (nats-server 2.15.1 takes over 100 s on it, and natsd took
//! 76 s, the JetStream stage blocked meanwhile). A [`FilterSet`] keeps the
//! filters in a trie of tokens (a literal child per token, one `*` child, the
//! members ending in `>`), so a question about one filter follows that
//! filter's tokens and fans out only where a `*` or `>` (on either side) can
//! stand for many tokens.
//!
//! The fan-out is what an adversary can inflate (many `*` filters against a
//! level with many literal tokens and no overlap), so each set has a work
//! limit: past [`WORK_LIMIT`] visited branches a question answers
//! [`TooComplex`] instead of taking seconds.
//!
//! Semantics are those of the subjects, with tokens split on `.`: a `*` on
//! either side stands for any one token, a final `>` for one or more. So
//! `foo.*` and `foo.>` overlap, `foo.*.bar` and `foo.baz.*` overlap, and
//! `hello` and `hello.>` do not (`>` needs a token). A `*` or `>` inside a
//! longer token is an ordinary character. (nats-server's `SubjectsCollide`
//! also treats a token that merely starts with `*` as a wildcard when both
//! filters have wildcards; natsd does not follow that.)
use std::collections::HashMap;

use crate::subject::{is_fwc, is_pwc, tokens};

/// Branches a set may visit beyond the tokens of the filters it is asked
/// about, over its whole life. A query that only follows its own tokens
/// costs nothing; each extra child visited under a `*`, or each second
/// branch a literal token takes, costs one. Reaching the limit takes well
/// under 0.2 s in a release build (`fan_out_is_bounded`, set included).
pub const WORK_LIMIT: u64 = 1 << 22;

/// The set's work limit was reached before the answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooComplex;

/// One trie level: the members whose tokens continue here.
#[derive(Default)]
struct Node<'a> {
    literal: HashMap<&'a [u8], Node<'a>>,
    pwc: Option<Box<Node<'a>>>,
    /// Members whose next (last) token is `>`.
    fwc: Vec<usize>,
    /// Members that end at this node.
    ends: Vec<usize>,
    /// A member that passes through this node (any one).
    some: usize,
}

/// A set of subject filters (each with a caller's id) that finds, for a
/// filter, a member overlapping it or a member containing it.
pub struct FilterSet<'a> {
    root: Node<'a>,
    work: u64,
}

impl Default for FilterSet<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The first id in `ids` that is not `except`.
fn first_but(ids: &[usize], except: Option<usize>) -> Option<usize> {
    ids.iter().copied().find(|&id| Some(id) != except)
}

impl<'a> FilterSet<'a> {
    /// An empty set with the full [`WORK_LIMIT`].
    pub fn new() -> Self {
        FilterSet {
            root: Node::default(),
            work: 0,
        }
    }

    /// Add `filter` as member `id`. Ids need not be unique, nor filters.
    /// The filter should be a valid subject (see
    /// [`crate::subject::is_valid_subject`]); a `>` ends it wherever it
    /// stands (what follows is not looked at), as in nats-server's subset
    /// check.
    pub fn insert(&mut self, filter: &'a str, id: usize) {
        let mut node = &mut self.root;
        for tok in tokens(filter.as_bytes()) {
            if is_fwc(tok) {
                node.fwc.push(id);
                return;
            }
            let child = if is_pwc(tok) {
                &mut **node.pwc.get_or_insert_with(|| {
                    Box::new(Node {
                        some: id,
                        ..Node::default()
                    })
                })
            } else {
                node.literal.entry(tok).or_insert_with(|| Node {
                    some: id,
                    ..Node::default()
                })
            };
            node = child;
        }
        node.ends.push(id);
    }

    /// A member other than `except` that some subject matches together
    /// with `filter` (a valid subject).
    pub fn overlapping(
        &mut self,
        filter: &str,
        except: Option<usize>,
    ) -> Result<Option<usize>, TooComplex> {
        let q: Vec<&[u8]> = tokens(filter.as_bytes()).collect();
        let mut work = 0;
        let mut stack: Vec<(&Node<'a>, usize)> = vec![(&self.root, 0)];
        let found = loop {
            let Some((node, k)) = stack.pop() else {
                break None;
            };
            let Some(&tok) = q.get(k) else {
                match first_but(&node.ends, except) {
                    Some(id) => break Some(id),
                    None => continue,
                }
            };
            // A member's `>` here takes the filter's remaining tokens.
            if let Some(id) = first_but(&node.fwc, except) {
                break Some(id);
            }
            if is_fwc(tok) {
                // The filter's `>` takes any member with a token more. Its
                // own entry, if it is a member, ends in an `fwc` list, so
                // it is none of these.
                let below = node.literal.values().next().or(node.pwc.as_deref());
                match below {
                    Some(child) => break Some(child.some),
                    None => continue,
                }
            }
            if is_pwc(tok) {
                for child in node.literal.values() {
                    work += 1;
                    stack.push((child, k + 1));
                }
            } else if let Some(child) = node.literal.get(tok) {
                stack.push((child, k + 1));
            }
            if let Some(child) = &node.pwc {
                work += 1;
                stack.push((child, k + 1));
            }
            if self.work + work > WORK_LIMIT {
                break None;
            }
        };
        self.settle(work, found)
    }

    /// A member other than `except` that contains `filter` (a valid
    /// subject): every subject `filter` matches, the member matches too.
    pub fn containing(
        &mut self,
        filter: &str,
        except: Option<usize>,
    ) -> Result<Option<usize>, TooComplex> {
        let q: Vec<&[u8]> = tokens(filter.as_bytes()).collect();
        let mut pending: Vec<(&Node<'a>, usize)> = vec![(&self.root, 0)];
        let mut work = 0;
        let found = loop {
            let Some((node, k)) = pending.pop() else {
                break None;
            };
            let Some(&tok) = q.get(k) else {
                match first_but(&node.ends, except) {
                    Some(id) => break Some(id),
                    None => continue,
                }
            };
            // A member's `>` here contains whatever the filter has left.
            if let Some(id) = first_but(&node.fwc, except) {
                break Some(id);
            }
            if is_fwc(tok) {
                continue;
            }
            if let Some(child) = &node.pwc {
                pending.push((child, k + 1));
            }
            if !is_pwc(tok) {
                if let Some(child) = node.literal.get(tok) {
                    if node.pwc.is_some() {
                        work += 1;
                    }
                    pending.push((child, k + 1));
                }
            }
            if self.work + work > WORK_LIMIT {
                break None;
            }
        };
        self.settle(work, found)
    }

    /// Charge a query's work; a query that stopped at the limit without an
    /// answer is [`TooComplex`].
    fn settle(&mut self, work: u64, found: Option<usize>) -> Result<Option<usize>, TooComplex> {
        self.work += work;
        if found.is_none() && self.work > WORK_LIMIT {
            return Err(TooComplex);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::subjects_collide;

    /// Pairs of filters: do they overlap, does the first contain the second?
    const PAIRS: &[(&str, &str, bool, bool)] = &[
        ("foo", "foo", true, true),
        ("foo", "bar", false, false),
        ("hello", "hello.>", false, false),
        ("hello.>", "hello", false, false),
        ("foo.*", "foo.>", true, false),
        ("foo.>", "foo.*", true, true),
        ("foo.*.bar", "foo.baz.*", true, false),
        ("foo.*", "*.bar", true, false),
        ("foo.*", "foo.bar", true, true),
        ("foo.bar", "foo.*", true, false),
        ("foo.*", "foo.bar.baz", false, false),
        ("foo.>", "foo.bar.baz", true, true),
        (">", "a", true, true),
        (">", "a.b.c", true, true),
        ("*", "a.b", false, false),
        ("*.>", "a", false, false),
        ("*.*", "a.>", true, false),
        ("a.>", "*.*", true, false),
        ("a.b.>", "a.*", false, false),
        ("a.*.>", "*.b.c.>", true, false),
        ("a.>", "b.c.>", false, false),
        ("*", "*", true, true),
        ("*", ">", true, false),
        ("foo.*bar", "foo.baz", false, false),
        ("foo.*", "foo.*bar", true, true),
        ("foo.b>r", "foo.>", true, false),
        ("$JS", "$JS.>", false, false),
    ];

    fn overlaps_in_set(a: &str, b: &str) -> bool {
        let mut set = FilterSet::new();
        set.insert(a, 0);
        set.overlapping(b, None).unwrap().is_some()
    }

    fn contains_in_set(outer: &str, inner: &str) -> bool {
        let mut set = FilterSet::new();
        set.insert(outer, 0);
        set.containing(inner, None).unwrap().is_some()
    }

    #[test]
    fn overlap_and_containment_of_pairs() {
        for &(a, b, overlap, contains) in PAIRS {
            assert_eq!(subjects_collide(a, b), overlap, "pairwise {a} / {b}");
            assert_eq!(overlaps_in_set(a, b), overlap, "set of {a}, asked {b}");
            assert_eq!(overlaps_in_set(b, a), overlap, "set of {b}, asked {a}");
            assert_eq!(contains_in_set(a, b), contains, "{a} contains {b}");
        }
    }

    #[test]
    fn a_member_is_not_its_own_answer() {
        let mut set = FilterSet::new();
        for (i, f) in ["a.>", "b.*", "c", "d.*.x"].into_iter().enumerate() {
            set.insert(f, i);
        }
        assert_eq!(set.overlapping("a.>", Some(0)), Ok(None));
        assert_eq!(set.overlapping("b.*", Some(1)), Ok(None));
        assert_eq!(set.overlapping("d.*.x", Some(3)), Ok(None));
        assert_eq!(set.containing("c", Some(2)), Ok(None));
        assert_eq!(set.overlapping("a.b", Some(9)), Ok(Some(0)));
        assert_eq!(set.containing("d.q.x", None), Ok(Some(3)));
        // The same filter twice: the other copy answers.
        set.insert("c", 4);
        assert_eq!(set.overlapping("c", Some(2)), Ok(Some(4)));
        assert_eq!(set.containing("c", Some(4)), Ok(Some(2)));
    }

    /// Random small filters: the set agrees with the pairwise checks.
    #[test]
    fn agrees_with_pairwise_checks() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..300 {
            let filters: Vec<String> = (0..8)
                .map(|_| {
                    let len = 1 + next(4);
                    let toks: Vec<&str> = (0..len)
                        .map(|i| match next(if i + 1 == len { 5 } else { 4 }) {
                            0 => "a",
                            1 => "b",
                            2 => "*",
                            3 => "c",
                            _ => ">",
                        })
                        .collect();
                    toks.join(".")
                })
                .collect();
            let mut set = FilterSet::new();
            for (i, f) in filters.iter().enumerate() {
                set.insert(f, i);
            }
            for (i, f) in filters.iter().enumerate() {
                let others = || filters.iter().enumerate().filter(move |(j, _)| *j != i);
                let overlap = others().any(|(_, g)| subjects_collide(f, g));
                let found = set.overlapping(f, Some(i)).unwrap();
                assert_eq!(found.is_some(), overlap, "{f} in {filters:?}");
                if let Some(j) = found {
                    assert!(j != i && subjects_collide(f, &filters[j]));
                }
                let within = others().any(|(_, g)| crate::accounts::is_subset_match(f, g));
                let found = set.containing(f, Some(i)).unwrap();
                assert_eq!(found.is_some(), within, "{f} within {filters:?}");
            }
        }
    }

    /// Many `*` filters against a level of many literals, none overlapping:
    /// the set stops at its work limit instead of visiting every pair.
    #[test]
    fn fan_out_is_bounded() {
        let literals: Vec<String> = (0..20_000).map(|i| format!("a.{i}.x")).collect();
        let wild: Vec<String> = (0..20_000).map(|i| format!("a.*.y{i}")).collect();
        let mut set = FilterSet::new();
        for (i, f) in literals.iter().enumerate() {
            set.insert(f, i);
        }
        let answers: Vec<_> = wild.iter().map(|w| set.overlapping(w, None)).collect();
        assert_eq!(answers.last(), Some(&Err(TooComplex)));
        assert_eq!(answers[0], Ok(None));
    }
}
