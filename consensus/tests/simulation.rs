//! The deterministic simulator in the normal test suite: a few hundred seeds must run clean
//! (thousands run with the `simulate` binary, see README), and, with the `mutation`
//! feature, each deliberately broken rule must be caught.

use natsd_consensus::sim::{run, Options};

fn violations(seeds: std::ops::Range<u64>, opts: &Options) -> Vec<(u64, String)> {
    seeds
        .filter_map(|seed| run(seed, opts).violation.map(|v| (seed, v)))
        .collect()
}

#[test]
fn three_nodes_three_hundred_seeds_run_clean() {
    let found = violations(0..300, &Options::new(3));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn five_nodes_two_hundred_seeds_run_clean() {
    let found = violations(1000..1200, &Options::new(5));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_seed_replays_exactly() {
    let opts = Options {
        full_trace: true,
        ..Options::new(3)
    };
    let (a, b) = (run(42, &opts), run(42, &opts));
    assert_eq!(a.trace, b.trace);
    assert_eq!(
        (a.steps, a.messages, a.committed),
        (b.steps, b.messages, b.committed)
    );
    assert!(
        a.committed > 50,
        "the cluster made progress: {}",
        a.committed
    );
    assert!(a.crashes > 0 && a.partitions > 0, "faults were injected");
}

#[cfg(feature = "mutation")]
mod mutations {
    use super::*;
    use natsd_consensus::Mutation;

    fn caught(name: &str, seeds: std::ops::Range<u64>) -> usize {
        let opts = Options {
            mutation: Mutation::from_name(name),
            ..Options::new(3)
        };
        let found = violations(seeds, &opts);
        assert!(!found.is_empty(), "mutation {name} was not caught");
        found.len()
    }

    #[test]
    fn double_vote_is_caught() {
        caught("double-vote", 0..300);
    }

    #[test]
    fn ack_before_persist_is_caught() {
        caught("ack-before-persist", 0..600);
    }

    #[test]
    fn commit_old_term_is_caught() {
        caught("commit-old-term", 0..600);
    }

    /// The linearizability check: a store that executes retries twice is caught.
    #[test]
    fn a_store_without_sessions_is_caught() {
        caught("kv-no-sessions", 0..300);
    }
}
