//! A linearizability checker for key/value histories (Wing & Gong's search with Lowe's
//! memoization of visited states), run per key since a register per key composes.

use std::collections::{BTreeMap, HashSet};

use super::kv::KvOp;

/// One operation as the client saw it. Times are the simulator's step numbers, so two
/// events never share one.
#[derive(Clone, Debug)]
pub struct Call {
    /// The client.
    pub client: u32,
    /// What it asked.
    pub op: KvOp,
    /// When it was first issued.
    pub invoke: u64,
    /// When it returned and what (a get's value), or `None` if it never returned.
    pub response: Option<(u64, Option<u64>)>,
}

/// `Ok` if every key's calls can be ordered so that each takes effect at one instant
/// between its invocation and response and each get returns the latest put; unanswered
/// puts may take effect or not.
pub fn check(history: &[Call]) -> Result<(), String> {
    let mut by_key: BTreeMap<u8, Vec<&Call>> = BTreeMap::new();
    for c in history {
        let unanswered_get = matches!(c.op, KvOp::Get { .. }) && c.response.is_none();
        if !unanswered_get {
            by_key.entry(c.op.key()).or_default().push(c);
        }
    }
    for (key, calls) in by_key {
        if !register(&calls) {
            return Err(format!(
                "key {key}: {} calls have no linearization",
                calls.len()
            ));
        }
    }
    Ok(())
}

/// One register: depth-first search over which call takes effect next.
fn register(calls: &[&Call]) -> bool {
    let n = calls.len();
    let words = n.div_ceil(64);
    let done_needed = calls.iter().filter(|c| c.response.is_some()).count();
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // (linearized set, value, answered calls linearized)
    let mut stack: Vec<(Vec<u64>, Option<u64>, usize)> = vec![(vec![0; words], None, 0)];
    while let Some((set, value, done)) = stack.pop() {
        if done == done_needed {
            return true;
        }
        if !seen.insert((set.clone(), value)) {
            continue;
        }
        let is_set = |i: usize| set[i / 64] & (1 << (i % 64)) != 0;
        // A call may go next only if it was invoked before every pending call returned.
        let horizon = (0..n)
            .filter(|i| !is_set(*i))
            .filter_map(|i| calls[i].response.map(|r| r.0))
            .min()
            .unwrap_or(u64::MAX);
        for i in (0..n).filter(|i| !is_set(*i) && calls[*i].invoke < horizon) {
            let next_value = match (calls[i].op, calls[i].response) {
                (KvOp::Put { value: v, .. }, _) => Some(v),
                (KvOp::Get { .. }, Some((_, got))) if got == value => value,
                _ => continue,
            };
            let mut next = set.clone();
            next[i / 64] |= 1 << (i % 64);
            stack.push((
                next,
                next_value,
                done + usize::from(calls[i].response.is_some()),
            ));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(client: u32, value: u64, invoke: u64, resp: Option<u64>) -> Call {
        Call {
            client,
            op: KvOp::Put { key: 0, value },
            invoke,
            response: resp.map(|r| (r, None)),
        }
    }

    fn get(client: u32, got: Option<u64>, invoke: u64, resp: u64) -> Call {
        Call {
            client,
            op: KvOp::Get { key: 0 },
            invoke,
            response: Some((resp, got)),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        assert!(check(&[put(1, 5, 1, Some(2)), get(2, Some(5), 3, 4)]).is_ok());
    }

    #[test]
    fn stale_read_after_a_completed_put_is_not() {
        let h = [
            put(1, 5, 1, Some(2)),
            put(1, 6, 3, Some(4)),
            get(2, Some(5), 5, 6),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn concurrent_calls_may_take_either_order() {
        let h = [
            put(1, 5, 1, Some(10)),
            get(2, None, 2, 3),
            get(3, Some(5), 4, 5),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn an_unanswered_put_may_or_may_not_happen() {
        assert!(check(&[put(1, 5, 1, None), get(2, Some(5), 3, 4)]).is_ok());
        assert!(check(&[put(1, 5, 1, None), get(2, None, 3, 4)]).is_ok());
        assert!(check(&[
            put(1, 5, 1, None),
            get(2, Some(5), 3, 4),
            get(2, None, 5, 6)
        ])
        .is_err());
    }
}
