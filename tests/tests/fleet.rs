//! A fleet of xlb nodes behind ECMP, announced by BGP through BIRD 2: three
//! namespaces each running the real `xlb run` and its own BIRD, a router
//! namespace whose BIRD merges their announcements into one multipath route
//! per VIP (L4 hashing, BFD), clients behind the router, backends behind the
//! nodes (`xlb_tests::fleet`). Scenarios 1-6 of the fleet issue.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::MutexGuard,
    time::{Duration, Instant},
};

use lb_common::VipKey;
use lb_userspace::maglev::{build_table, MaglevBackend};
use xlb_tests::{
    clients::{self, many_connections, tally},
    fleet::{
        backend_address, backend_api_address, json_routes,
        maps::{pinned_table, PinnedTable},
        node_address, standard_backends,
        streams::{disruption, Streams},
        Fleet, FleetOptions, Node, BACKENDS, BGP_CONVERGENCE, VIP_API, VIP_WEB, WEB_WEIGHTS,
    },
    privileged::require_root,
    rack::rack_lock,
    weight_shares::assert_weight_shares,
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
    assert_weight_shares(&counts, &WEB_WEIGHTS, "web across the fleet");
}

/// Streams of the node-loss scenarios, and how often each exchanges a line.
const STREAMS: usize = 150;
const PERIOD: Duration = Duration::from_millis(50);

/// `per_client` connections from every client, each timed from `connect`
/// to the backend's greeting: (backend, time) or the error.
fn timed_connections(
    f: &Fleet,
    target: SocketAddr,
    per_client: usize,
) -> Vec<Result<(String, Duration), String>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = f
            .clients
            .iter()
            .flat_map(|c| {
                let sources: Vec<IpAddr> = std::iter::once(c.v4)
                    .chain(c.extra_v4.iter().copied())
                    .map(IpAddr::V4)
                    .collect();
                (0..per_client).map(move |i| (c, sources[i % sources.len()], i))
            })
            .map(|(c, src, i)| {
                s.spawn(move || {
                    let t = Instant::now();
                    clients::connect(c, target, Some(src))
                        .and_then(|conn| clients::greeting(&conn))
                        .map(|b| (b, t.elapsed()))
                        .map_err(|e| format!("connection {i} from {src}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("client thread panicked".into()))
            })
            .collect()
    })
}

fn survivors(f: &Fleet, lost: usize) -> BTreeSet<Ipv4Addr> {
    let mut s = f.all_nodes();
    s.remove(&node_address(lost));
    s
}

/// Scenario 2: 150 long-lived streams run while a node dies without
/// warning (link down, BIRD and daemon SIGKILLed). BFD takes its nexthop
/// out; the streams it carried, and those the ECMP rehash moves between the
/// survivors, reach the same backends through nodes that never saw them
/// (identical Maglev tables): none breaks. New connections opened a second
/// after the kill all succeed at the first SYN.
#[test]
fn losing_a_node_breaks_no_connection() {
    let Some((_l, mut f)) = fleet("loss", |o| o) else {
        return;
    };
    let streams = Streams::open(&f.clients, f.web(), STREAMS, PERIOD);
    std::thread::sleep(Duration::from_secs(1));
    let carried = f.new_flows("web");
    println!("streams per node before the kill: {carried:?}");
    // The first node: removing the first nexthop of a hash-threshold ECMP
    // route moves flows between the survivors too, not only its own.
    let victim = 0;
    let killed_at = Instant::now();
    f.kill_node(victim);
    let detected = f.wait_for_nexthops(VIP_WEB, &survivors(&f, victim), Duration::from_secs(10));
    std::thread::sleep(
        (killed_at + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    );
    let taken_over = delta(&carried, &f.new_flows("web"));
    let fresh = timed_connections(&f, f.web(), 45);
    // Past the streams' retransmissions (200 ms, 400 ms, 800 ms...).
    std::thread::sleep(Duration::from_secs(3));
    let logs = streams.finish();
    let d = disruption(&logs, killed_at, PERIOD);

    let failed: Vec<&String> = fresh.iter().filter_map(|r| r.as_ref().err()).collect();
    let slowest = fresh
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, t)| *t))
        .max()
        .unwrap_or_default();
    println!(
        "node n{victim} killed: the router dropped it after {detected:.0?}; {} of {} streams \
         stalled, every stream moving again {:.0?} after the kill; streams the survivors took \
         over without state: {taken_over:?}; broken connections: {}; {} new connections from \
         kill + 1 s: {} failed, slowest {slowest:.0?}",
        d.stalled,
        d.streams,
        d.last_recovered.unwrap_or_default(),
        d.broken.len(),
        fresh.len(),
        failed.len()
    );
    assert!(
        d.broken.is_empty(),
        "{} of {STREAMS} streams broke: {:?}",
        d.broken.len(),
        d.broken
    );
    assert!(
        d.stalled > 0,
        "no stream was disturbed by the kill: the victim carried none ({carried:?})"
    );
    assert!(
        logs.iter()
            .all(|l| l.echoes.last().is_some_and(|t| *t > killed_at)),
        "a stream never echoed after the kill"
    );
    assert!(failed.is_empty(), "new connections failed: {failed:?}");
    // The SYN is retransmitted after 1 s: a connection that took longer
    // lost its first SYN to the dead node.
    assert!(
        slowest < Duration::from_secs(1),
        "a connection opened 1 s after the kill needed {slowest:?}: its first SYN went to the dead node"
    );
}

/// Scenario 3: a node that died comes back as from a reboot (fresh daemon,
/// fresh BIRD), announces, and takes its share of new connections; the
/// streams the rehash moves onto it (it has no state for them) keep their
/// backends.
#[test]
fn a_returning_node_takes_new_flows_and_breaks_no_stream() {
    let Some((_l, mut f)) = fleet("return", |o| o) else {
        return;
    };
    let streams = Streams::open(&f.clients, f.web(), STREAMS, PERIOD);
    let node = 0;
    f.kill_node(node);
    f.wait_for_nexthops(VIP_WEB, &survivors(&f, node), Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));

    let back_at = Instant::now();
    f.revive_node(node);
    let all = f.all_nodes();
    let rejoined = f.wait_for_nexthops(VIP_WEB, &all, BGP_CONVERGENCE);
    f.wait_for_nexthops(VIP_API, &all, BGP_CONVERGENCE);
    let both: BTreeSet<_> = [VIP_WEB, VIP_API].into_iter().collect();
    assert_eq!(f.nodes[node].announced(), both);
    std::thread::sleep(Duration::from_secs(2));
    let logs = streams.finish();
    let d = disruption(&logs, back_at, PERIOD);

    let before = f.new_flows("web");
    connections(&f, f.web(), 150);
    let per_node = delta(&before, &f.new_flows("web"));
    println!(
        "node n{node} back: in the ECMP route {rejoined:.1?} after its restart; \
         new connections per node {per_node:?}; broken streams: {}",
        d.broken.len()
    );
    assert!(
        d.broken.is_empty(),
        "{} streams broke: {:?}",
        d.broken.len(),
        d.broken
    );
    assert_eq!(per_node.values().sum::<u64>(), 300);
    assert!(
        per_node[&node] >= 30,
        "the returning node took only {} of 300 new connections: {per_node:?}",
        per_node[&node]
    );
}

/// Scenario 4: on one node every backend of `web` becomes unreachable
/// (blackhole routes there only). Its health checks fail, the data plane
/// fails open, yet the node withdraws `web` (and only `web`); the others
/// keep it, and connections keep working. Reachable again, it announces
/// again.
#[test]
fn a_node_that_cannot_reach_a_vips_backends_withdraws_only_that_vip() {
    let Some((_l, f)) = fleet("unhealthy", |o| o) else {
        return;
    };
    let streams = Streams::open(&f.clients, f.web(), 60, PERIOD);
    let sick = &f.nodes[0];
    let cut_at = Instant::now();
    for b in 0..BACKENDS {
        sick.host
            .ns
            .ip(&format!("route add blackhole {}/32", backend_address(b)));
    }
    let withdrawn = f.wait_for_nexthops(VIP_WEB, &survivors(&f, 0), Duration::from_secs(10));
    assert_eq!(
        f.nexthops(VIP_API),
        f.all_nodes(),
        "api must stay on every node"
    );
    assert_eq!(sick.announced(), [VIP_API].into_iter().collect());
    for n in &f.nodes[1..] {
        assert_eq!(n.announced(), [VIP_WEB, VIP_API].into_iter().collect());
    }
    let list = sick.daemon().cli(&["vip", "list"]);
    assert!(
        list.contains("announced: no (none of its 3 backends with a weight above 0 is healthy)"),
        "{list}"
    );
    assert!(
        list.contains("FAIL-OPEN"),
        "the data plane fails open: {list}"
    );
    let web_announced = |n: &Node| -> f64 {
        let text = metrics(n);
        text.lines()
            .find_map(|l| l.strip_prefix("xlb_vip_announced{vip=\"web\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no xlb_vip_announced for web in:\n{text}"))
    };
    assert_eq!(
        web_announced(sick),
        0.0,
        "n0's xlb_vip_announced{{vip=\"web\"}}"
    );
    assert_eq!(
        web_announced(&f.nodes[1]),
        1.0,
        "n1's xlb_vip_announced{{vip=\"web\"}}"
    );
    assert!(
        sick.daemon()
            .log_text()
            .contains("withdrawing 10.200.0.1: vip web: none of its 3 backends"),
        "no log line for the withdrawal:\n{}",
        sick.daemon().log_text()
    );

    let counts = connections(&f, f.web(), 90);
    connections(&f, f.api(), 30);
    std::thread::sleep(Duration::from_secs(1));
    let d = disruption(&streams.finish(), cut_at, PERIOD);
    println!(
        "n0 withdrew web {withdrawn:.1?} after losing its backends; web connections {counts:?}; \
         broken streams: {}",
        d.broken.len()
    );
    assert!(d.broken.is_empty(), "streams broke: {:?}", d.broken);

    for b in 0..BACKENDS {
        sick.host
            .ns
            .ip(&format!("route del blackhole {}/32", backend_address(b)));
    }
    f.wait_for_nexthops(VIP_WEB, &f.all_nodes(), Duration::from_secs(15));
}

/// The node's Prometheus metrics, fetched inside its namespace.
fn metrics(n: &Node) -> String {
    let _in = xlb_tests::netns::enter_by_name(n.ns());
    let mut s = std::net::TcpStream::connect("127.0.0.1:9431")
        .unwrap_or_else(|e| panic!("metrics of n{}: {e}", n.index));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: xlb\r\nConnection: close\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    s.read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{e}"));
    text
}

/// Scenario 5: `xlb down` on a node with `drain_on_stop`: the router drops
/// the node from the route before the program is detached, and no stream
/// breaks.
#[test]
fn a_planned_stop_withdraws_first_and_breaks_no_stream() {
    let drain = Duration::from_secs(2);
    let Some((_l, f)) = fleet("drain", |o| FleetOptions {
        drain_on_stop: drain,
        ..o
    }) else {
        return;
    };
    let streams = Streams::open(&f.clients, f.web(), STREAMS, PERIOD);
    std::thread::sleep(Duration::from_secs(1));
    let node = &f.nodes[0];
    let stopping_at = Instant::now();
    // Watches the router's route and the node's XDP attachment meanwhile.
    let (route_gone, detached) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut route_gone = None;
            loop {
                let t = Instant::now();
                if route_gone.is_none() && !f.nexthops(VIP_WEB).contains(&node.address()) {
                    route_gone = Some(t);
                }
                let attached = node
                    .host
                    .ns
                    .ip(&format!("link show {}", xlb_tests::topology::IFACE));
                if !attached.contains("xdp") {
                    return (route_gone, t);
                }
                assert!(
                    t.duration_since(stopping_at) < Duration::from_secs(30),
                    "n0 still attached after 30 s"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let out = xlb_tests::xlb_process::xlb_ok(
            node.ns(),
            &[
                "down",
                "--instance",
                node.ns(),
                "--socket",
                &node.socket().to_string_lossy(),
            ],
        );
        println!("$ xlb down\n{out}");
        watcher
            .join()
            .unwrap_or_else(|_| panic!("watcher panicked"))
    });
    let route_gone = route_gone.unwrap_or_else(|| panic!("the router kept n0 until it detached"));
    std::thread::sleep(Duration::from_secs(1));
    let d = disruption(&streams.finish(), stopping_at, PERIOD);
    println!(
        "xlb down on n0: out of the router's route {:.0?} after, detached {:.1?} after \
         ({:.1?} of drain); broken streams: {}",
        route_gone.duration_since(stopping_at),
        detached.duration_since(stopping_at),
        detached.duration_since(route_gone),
        d.broken.len()
    );
    assert!(
        route_gone < detached,
        "detached before the routes were withdrawn"
    );
    assert!(d.broken.is_empty(), "streams broke: {:?}", d.broken);
    assert!(node.announced().is_empty(), "routes left in n0's table");
    let log = node.daemon().log_text();
    let withdrew = log.find("withdrawing 10.200.0.1: planned stop");
    // `xlb down` both asks the API and signals the daemon; whichever the
    // daemon sees first is the one it logs.
    let exited = log
        .find("planned stop requested through the API")
        .or_else(|| log.find("planned stop (SIGUSR1, sent by `xlb down`)"));
    assert!(
        withdrew.is_some() && exited.is_some() && withdrew < exited,
        "the daemon's log must show the withdrawal, then the exit:\n{log}"
    );
}

/// Scenario 6: three nodes with different histories map every Maglev slot
/// to the same backend address: n0 as started from the config; n1 after
/// adding, removing, re-adding and re-weighting backends through the API
/// back to the same set; n2 after losing a backend through the API, then a
/// restart (pins adopted) that restored it from the file, then a weight
/// change and back. Their backend ids differ; the addresses may not.
#[test]
fn every_node_maps_every_slot_to_the_same_backend_address() {
    let Some((_l, mut f)) = fleet("determinism", |o| o) else {
        return;
    };
    let b = |i: usize| backend_address(i).to_string();
    let extra = "10.20.0.199";
    for args in [
        vec!["backend", "add", "web", extra, "--weight", "50"],
        vec!["backend", "del", "web", &b(0)],
        vec!["backend", "del", "web", &b(1)],
        vec!["backend", "add", "web", &b(1), "--weight", "20"],
        vec!["backend", "add", "web", &b(0), "--weight", "100"],
        vec!["backend", "weight", "web", &b(1), "200"],
        vec!["backend", "del", "web", extra],
        vec![
            "backend",
            "weight",
            "api",
            &backend_api_address(2).to_string(),
            "7",
        ],
        vec![
            "backend",
            "weight",
            "api",
            &backend_api_address(2).to_string(),
            "100",
        ],
    ] {
        f.nodes[1].daemon().cli(&args);
    }
    f.nodes[2].daemon().cli(&["backend", "del", "web", &b(2)]);
    // The restart keeps n2's routes: the router never loses it.
    let router = f.router.name.clone();
    let n2_address = node_address(2);
    let restarted = std::sync::atomic::AtomicBool::new(false);
    let lost_n2 = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut lost = 0;
            while !restarted.load(std::sync::atomic::Ordering::SeqCst) {
                let out = xlb_tests::command::run(
                    "ip",
                    &["-n", &router, "-4", "-j", "route", "show", "10.200.0.1/32"],
                );
                if !json_routes(&out)
                    .get(&VIP_WEB)
                    .is_some_and(|hops| hops.contains(&n2_address))
                {
                    lost += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            lost
        });
        let n2 = &mut f.nodes[2];
        let config = n2.config_path.clone();
        n2.daemon
            .as_mut()
            .unwrap_or_else(|| panic!("n2 has no daemon"))
            .restart(&config);
        std::thread::sleep(Duration::from_secs(1));
        restarted.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher
            .join()
            .unwrap_or_else(|_| panic!("watcher panicked"))
    });
    let log = f.nodes[2].daemon().log_text();
    assert!(
        log.contains("adopting pinned state"),
        "n2 restarted without adopting its pins"
    );
    assert!(
        log.contains("keeping the announce routes of the previous run"),
        "{log}"
    );
    assert_eq!(
        lost_n2, 0,
        "the router lost n2 during its daemon's restart ({lost_n2} samples)"
    );
    f.nodes[2]
        .daemon()
        .cli(&["backend", "weight", "web", &b(0), "1"]);
    f.nodes[2]
        .daemon()
        .cli(&["backend", "weight", "web", &b(0), "100"]);

    let expected = reference_tables();
    for (vip, (key, want)) in ["web", "api"].iter().zip(&expected) {
        let tables: Vec<PinnedTable> = f
            .nodes
            .iter()
            .map(|n| pinned_table(n.ns(), key, TABLE_SIZE))
            .collect();
        for (n, t) in f.nodes.iter().zip(&tables) {
            let differing = t
                .addresses
                .iter()
                .zip(want)
                .filter(|(a, w)| **a != Some(IpAddr::V4(**w)))
                .count();
            assert_eq!(
                differing, 0,
                "{vip}: {differing} of {TABLE_SIZE} slots of n{} name another backend address \
                 than the config's Maglev table",
                n.index
            );
        }
        let same_ids = tables.iter().filter(|t| t.ids == tables[0].ids).count();
        println!(
            "{vip}: all {TABLE_SIZE} slots name the same address on the 3 nodes; \
             {same_ids} of 3 nodes have n0's backend ids"
        );
        if *vip == "web" {
            assert!(
                same_ids < 3,
                "every node has the same ids: the histories did not make them differ"
            );
        }
    }
    // And the tables serve: every connection reaches a backend.
    connections(&f, f.web(), 60);
}

const TABLE_SIZE: u32 = 65537;

/// Each VIP's key and the backend address of every slot, built from the
/// config's backend set by xlb's Maglev builder.
fn reference_tables() -> Vec<(VipKey, Vec<Ipv4Addr>)> {
    [VIP_WEB, VIP_API]
        .iter()
        .zip(standard_backends())
        .map(|(vip, backends)| {
            let input: Vec<MaglevBackend> = backends
                .iter()
                .map(|(a, w)| MaglevBackend::new(IpAddr::V4(*a), *w))
                .collect();
            let slots = build_table(&input, TABLE_SIZE).unwrap_or_else(|e| panic!("{e}"));
            (
                VipKey::new(IpAddr::V4(*vip), 80, lb_common::PROTO_TCP),
                slots.iter().map(|i| backends[*i as usize].0).collect(),
            )
        })
        .collect()
}
