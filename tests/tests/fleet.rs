//! A fleet of xlb nodes behind ECMP, announced by BGP through BIRD 2: three
//! namespaces each running the real `xlb run` and its own BIRD, a router
//! namespace whose BIRD merges their announcements into one multipath route
//! per VIP (L4 hashing, BFD), clients behind the router, backends behind the
//! nodes (`xlb_tests::fleet`). Scenarios 1-6 of the fleet issue.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::MutexGuard,
    time::{Duration, Instant},
};

use xlb_tests::{
    clients::{many_connections, tally},
    fleet::{
        node_address, streams::Streams, Fleet, FleetOptions, NODES, VIP_API, VIP_WEB, WEB_WEIGHTS,
    },
    privileged::require_root,
    rack::rack_lock,
};

/// A fleet for `test` (its name tagged with the test), or `None` when the
/// test is skipped for lack of privileges. The guard serializes fleets
/// (two CPUs, real traffic) and must outlive the fleet.
fn fleet(
    test: &str,
    options: impl FnOnce(FleetOptions) -> FleetOptions,
) -> Option<(MutexGuard<'static, ()>, Fleet)> {
    if !require_root(test) {
        return None;
    }
    let lock = rack_lock();
    let tag: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect();
    let name = xlb_tests::netns::unique_name(&format!("f{tag}"));
    let started = Instant::now();
    let f = Fleet::start(options(FleetOptions::new(&name)));
    println!(
        "{test}: fleet up, BGP converged, in {:.1?}",
        started.elapsed()
    );
    Some((lock, f))
}

/// Asserts each backend's share of `counts` is within `points` percentage
/// points of its weight share.
fn assert_shares(counts: &BTreeMap<String, usize>, weights: &[u16], points: f64) {
    let total: usize = counts.values().sum();
    let wsum: f64 = weights.iter().map(|w| f64::from(*w)).sum();
    for (i, w) in weights.iter().enumerate() {
        let got = *counts.get(&format!("backend-{i}")).unwrap_or(&0) as f64 * 100.0 / total as f64;
        let want = f64::from(*w) * 100.0 / wsum;
        assert!(
            (got - want).abs() <= points,
            "backend-{i}: {got:.1}% of {total} connections, weight share {want:.1}% (+-{points})"
        );
    }
}

/// `n` connections from every client to `target`; panics on a failure.
fn connections(
    f: &Fleet,
    target: std::net::SocketAddr,
    per_client: usize,
) -> BTreeMap<String, usize> {
    let mut results = Vec::new();
    for c in &f.clients {
        results.extend(many_connections(c, target, per_client, 6));
    }
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} connections failed; first: {:?}",
        failures.len(),
        results.len(),
        failures.first()
    );
    tally(&results)
}

/// New flows per node index between two readings.
fn delta(before: &BTreeMap<usize, u64>, after: &BTreeMap<usize, u64>) -> BTreeMap<usize, u64> {
    after
        .iter()
        .map(|(i, n)| (*i, n - before.get(i).copied().unwrap_or(0)))
        .collect()
}

/// Scenario 1: every node announces both VIPs, the router spreads 300
/// connections over all three nodes (counted by each node's `xlb stats`),
/// and they reach the backends by weight.
#[test]
fn all_nodes_announce_and_flows_spread_over_nodes_and_backends() {
    let Some((_l, f)) = fleet("spread", |o| o) else {
        return;
    };
    let both: BTreeSet<_> = [VIP_WEB, VIP_API].into_iter().collect();
    for n in &f.nodes {
        assert_eq!(n.announced(), both, "n{}'s announce table", n.index);
        let list = n.daemon().cli(&["vip", "list"]);
        assert_eq!(
            list.matches("announced: yes (3 of 3 backends with a weight above 0 healthy)")
                .count(),
            2,
            "n{}: {list}",
            n.index
        );
    }
    assert_eq!(f.nexthops(VIP_WEB), f.all_nodes());

    let before = f.new_flows("web");
    let counts = connections(&f, f.web(), 150);
    let per_node = delta(&before, &f.new_flows("web"));
    println!("web: connections per node {per_node:?}, per backend {counts:?}");
    assert_eq!(
        per_node.values().sum::<u64>(),
        300,
        "each connection is one new flow on exactly one node"
    );
    for (i, n) in &per_node {
        // A third each on average; a sixth leaves room for the hash.
        assert!(
            *n >= 50,
            "node n{i} got only {n} of 300 connections: {per_node:?}"
        );
    }
    assert_shares(&counts, &WEB_WEIGHTS, 10.0);
    let _ = (
        node_address(0),
        NODES,
        VIP_API,
        Duration::ZERO,
        Streams::open,
    );
}
