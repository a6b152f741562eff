//! The real daemon where a host departs from the rack's comfortable
//! defaults: a flow table whose size the kernel rounds (any CPU count), and
//! backends whose MACs the balancer has not learnt yet (no pre-ping, no
//! health checks), so the first packets toward each take the
//! neighbour-miss path through the kernel.

use std::net::{IpAddr, SocketAddr};

use lb_common::Verdict;
use xlb_tests::{
    clients::{many_connections, tally, udp_backend},
    netns::unique_name,
    privileged::require_root,
    rack::{rack_lock, Rack, RackOptions, VipSpec, VIP4, VIP6},
    stats_json::{stats, verdict},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A VIP over the rack's three backends with equal weights and no health
/// check: nothing but client traffic makes the balancer talk to a backend.
fn unchecked(name: &'static str, address: &str, port: u16, protocol: &'static str) -> VipSpec {
    let address = ip(address);
    VipSpec {
        name,
        address,
        port,
        protocol,
        hashing: "five-tuple",
        flow_table: true,
        backends: vec![(0, 100), (1, 100), (2, 100)],
        v6_backends: address.is_ipv6(),
        tcp_check: None,
    }
}

#[test]
fn a_flow_table_size_that_is_no_multiple_of_the_cpus_starts_serves_and_is_adopted() {
    if !require_root("odd_flow_table") {
        return;
    }
    let _l = rack_lock();
    let cpus = lb_userspace::dataplane::possible_cpus().unwrap_or_else(|e| panic!("{e}"));
    // The kernel rounds a per-CPU LRU size up to a multiple of the possible
    // CPUs; a size that is none (1025 on 2 CPUs) gets rounded.
    let size = (1025u32..)
        .find(|n| cpus == 1 || !n.is_multiple_of(cpus))
        .unwrap_or(1025);
    let mut rack = Rack::start_options(
        &unique_name("oddflow"),
        1,
        vec![unchecked("web", VIP4, 80, "tcp")],
        RackOptions {
            flow_table_size: size,
            ..RackOptions::default()
        },
    );
    let target = rack.vip("web").target();
    let served = |rack: &Rack, when: &str| {
        let results = many_connections(&rack.topo.clients[0], target, 30, 2);
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{when}: {failed:?}");
        assert_eq!(tally(&results).len(), 3, "{when}: every backend serves");
    };
    served(&rack, "first start");

    let f = stats(&rack.daemon).flow_table;
    assert_eq!(f.requested, size);
    assert_eq!(f.possible_cpus, cpus);
    assert!(
        f.entries >= size && f.entries < size + cpus && f.entries.is_multiple_of(cpus),
        "{size} entries on {cpus} CPUs became {f:?}"
    );
    assert_eq!(f.per_cpu * cpus, f.entries, "{f:?}");
    let log = rack.daemon.log_text();
    assert!(
        log.contains(&format!(
            "flow table: {} entries, one LRU list of {} per possible CPU",
            f.entries, f.per_cpu
        )),
        "{log}"
    );

    let config = rack.config_path.clone();
    rack.daemon.restart(&config);
    assert!(
        rack.daemon.log_text().contains("adopting pinned state"),
        "the restarted daemon adopts the pins"
    );
    served(&rack, "after the restart");
    assert_eq!(stats(&rack.daemon).flow_table, f);
}

/// Whether the balancer has a usable MAC for `addr` (an entry in any state
/// but FAILED/INCOMPLETE).
fn balancer_knows(rack: &Rack, addr: IpAddr) -> bool {
    let out = rack.topo.balancer.ns.ip(&format!("neigh show to {addr}"));
    out.lines()
        .any(|l| l.contains("lladdr") && !l.contains("FAILED") && !l.contains("INCOMPLETE"))
}

/// UDP requests from distinct source ports until every backend answered
/// once; each must be answered at the first try (one datagram each, no
/// retry), so the packet that met the unresolved neighbour arrived.
fn first_datagrams_answered(rack: &Rack, target: SocketAddr) {
    let client = &rack.topo.clients[0];
    let mut answered = std::collections::BTreeSet::new();
    for sport in 40_000u16..40_040 {
        match udp_backend(client, target, sport, b"first") {
            Ok(backend) => {
                answered.insert(backend);
            }
            Err(e) => panic!(
                "{target}: the datagram from port {sport} got no answer ({e}); answered so far: \
                 {answered:?}; daemon log:\n{}",
                rack.daemon.log_text()
            ),
        }
        if answered.len() == 3 {
            return;
        }
    }
    panic!("{target}: only {answered:?} answered 40 flows");
}

#[test]
fn first_packets_toward_backends_with_unknown_macs_arrive_ipv4_and_ipv6() {
    if !require_root("neighbour_miss") {
        return;
    }
    let _l = rack_lock();
    let rack = Rack::start_options(
        &unique_name("nbmiss"),
        1,
        vec![
            unchecked("dns4", VIP4, 53, "udp"),
            unchecked("web4", VIP4, 80, "tcp"),
            unchecked("dns6", VIP6, 53, "udp"),
            unchecked("web6", VIP6, 80, "tcp"),
        ],
        RackOptions {
            warm_neighbours: false,
            ..RackOptions::default()
        },
    );
    for b in &rack.topo.backends {
        for addr in [IpAddr::V4(b.host.v4), IpAddr::V6(b.host.v6)] {
            assert!(
                !balancer_knows(&rack, addr),
                "the balancer must not know {addr} yet"
            );
        }
    }

    for (udp, tcp) in [("dns4", "web4"), ("dns6", "web6")] {
        let misses = verdict(&stats(&rack.daemon), Verdict::FibNoNeigh);
        first_datagrams_answered(&rack, rack.vip(udp).target());
        let now = verdict(&stats(&rack.daemon), Verdict::FibNoNeigh);
        assert!(
            now >= misses + 3,
            "{udp}: each backend's first packet met an unknown MAC: fib_no_neigh went from \
             {misses} to {now}"
        );
        for i in 0..3 {
            assert!(
                balancer_knows(&rack, rack.backend_addr(udp, i)),
                "{udp}: the kernel resolved backend {i} on the way"
            );
        }
        let results = many_connections(&rack.topo.clients[0], rack.vip(tcp).target(), 30, 2);
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{tcp}: {failed:?}");
    }
    let log = rack.daemon.log_text();
    assert!(
        log.contains("set net.ipv4.conf.xlb0.accept_local=1"),
        "the daemon says what it set: {log}"
    );
}
