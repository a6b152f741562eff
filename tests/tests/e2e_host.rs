//! The real daemon where a host departs from the rack's comfortable
//! defaults: a flow table whose size the kernel rounds (any CPU count), and
//! backends whose MACs the balancer has not learnt yet (no pre-ping, no
//! health checks), so the first packets toward each take the
//! neighbour-miss path through the kernel.

use std::net::IpAddr;

use xlb_tests::{
    clients::{many_connections, tally},
    netns::unique_name,
    privileged::require_root,
    rack::{rack_lock, Rack, RackOptions, VipSpec, VIP4},
    stats_json::stats,
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
        .find(|n| cpus == 1 || n % cpus != 0)
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
        f.entries >= size && f.entries < size + cpus && f.entries % cpus == 0,
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
