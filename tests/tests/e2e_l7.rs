//! The L4 -> L7 architecture, working: clients -> xlb (L4, `l2-dsr`) -> two
//! real nginx nodes (the Debian package, generated configs) routing by path
//! to an API pool and a static pool (`xlb_tests::l7`). Requests spread over
//! both nginx nodes, each path reaches its pool, the nginx access logs show
//! the clients' own addresses (direct server return keeps them), and when
//! one nginx node dies, new connections go to the other once the health
//! check saw it, with no failed request after that.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_userspace::daemon::controller::VipStatus;
use xlb_tests::{
    l7::{get, l7_vip, L7Tier},
    netns::unique_name,
    privileged::require_root,
    rack::{rack_lock, Rack, RackOptions, VIP4},
};

fn l7_status(rack: &Rack) -> VipStatus {
    let text = rack.daemon.cli(&["vip", "list", "--json"]);
    let vips: Vec<VipStatus> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("vip list --json: {e}"));
    vips.into_iter()
        .find(|v| v.name == "l7")
        .unwrap_or_else(|| panic!("no l7 VIP"))
}

/// Waits until the health of backend `addr` is `healthy` (at most 10 s).
fn wait_health(rack: &Rack, addr: IpAddr, healthy: bool) -> Duration {
    let start = Instant::now();
    loop {
        let s = l7_status(rack);
        if s.backends
            .iter()
            .any(|b| b.address == addr && b.healthy == healthy)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "backend {addr} never became healthy={healthy}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nginx_behind_xlb_routes_by_path_sees_clients_and_survives_a_node() {
    if !require_root("nginx_behind_xlb") {
        return;
    }
    let _l = rack_lock();
    let vip: IpAddr = VIP4.parse().unwrap_or_else(|e| panic!("{e}"));
    let rack = Rack::start_options(
        &unique_name("l7dsr"),
        1,
        vec![l7_vip(vip)],
        RackOptions {
            forwarding: vec![("l7", "l2-dsr")],
            ..RackOptions::default()
        },
    );
    let b = &rack.topo.backends;
    let mut tier = L7Tier::start(
        [&b[0].host, &b[1].host, &b[2].host],
        &rack.topo.file("nginx").display().to_string(),
    );
    let node_addr = |i: usize| IpAddr::V4(b[i].host.v4);
    wait_health(&rack, node_addr(0), true);
    wait_health(&rack, node_addr(1), true);

    let client = &rack.topo.clients[0];
    let target = rack.vip("l7").target();
    let mut per_node = BTreeMap::new();
    for i in 0..120 {
        let (path, pool) = if i % 2 == 0 {
            (format!("/api/users/{i}"), "api-pool")
        } else {
            (format!("/static/app-{i}.js"), "static-pool")
        };
        let a = get(client, target, &path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(a.status, 200, "{path}: {a:?}");
        assert_eq!(
            a.body,
            format!("{pool} {path}\n"),
            "{path} reached the wrong pool"
        );
        *per_node.entry(a.node).or_insert(0usize) += 1;
    }
    println!("requests per nginx node: {per_node:?}");
    assert_eq!(
        per_node.len(),
        2,
        "xlb spread requests over both nginx nodes: {per_node:?}"
    );
    assert!(per_node.values().all(|n| *n >= 20), "{per_node:?}");
    let outside = get(client, target, "/admin").unwrap_or_else(|e| panic!("GET /admin: {e}"));
    assert_eq!(outside.status, 404, "no route for other paths");

    // DSR: nginx saw the client's own address, not the balancer's.
    let client_addr = client.v4.to_string();
    for node in &tier.nodes {
        let log = node.access_log();
        let lines: Vec<&str> = log.lines().collect();
        assert!(!lines.is_empty(), "{}: empty access log", node.name);
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with(&format!("{client_addr} "))),
            "{}: access log lines not from the client {client_addr}:\n{log}",
            node.name
        );
    }

    // One L7 node dies: once the health check saw it, every new connection
    // goes to the other, and none fails.
    tier.nodes[0].kill();
    let took = wait_health(&rack, node_addr(0), false);
    println!("l7-0 seen down after {took:?}");
    for i in 0..60 {
        let path = format!("/api/after/{i}");
        let a =
            get(client, target, &path).unwrap_or_else(|e| panic!("GET {path} after the kill: {e}"));
        assert_eq!((a.status, a.node.as_str()), (200, "l7-1"), "{path}: {a:?}");
        assert_eq!(a.body, format!("api-pool {path}\n"));
    }
}

/// The same tier with `forwarding = "nat"` and the nginx nodes completely
/// unconfigured for xlb: no VIP on their loopback, no decapsulator. The
/// requests still spread over both nodes and reach their pools; nginx sees
/// the balancer's NAT address, not the client's.
#[test]
fn nginx_behind_xlb_nat_needs_no_setup_and_sees_the_nat_address() {
    if !require_root("nginx_behind_xlb_nat") {
        return;
    }
    let _l = rack_lock();
    let vip: IpAddr = VIP4.parse().unwrap_or_else(|e| panic!("{e}"));
    let nat_v4 = xlb_tests::topology::BALANCER_V4;
    let rack = Rack::start_options(
        &unique_name("l7nat"),
        1,
        vec![l7_vip(vip)],
        RackOptions {
            forwarding: vec![("l7", "nat")],
            plain_backends: true,
            edit_config: |c| {
                format!(
                    "{c}\n[nat]\nsources = [\"{}\"]\nports = \"20000-30000\"\n",
                    xlb_tests::topology::BALANCER_V4
                )
            },
            ..RackOptions::default()
        },
    );
    let b = &rack.topo.backends;
    for node in &b[..2] {
        let lo = node.host.ns.ip("-o addr show dev lo");
        assert!(!lo.contains(VIP4), "{}: {lo}", node.host.name);
    }
    let tier = L7Tier::start(
        [&b[0].host, &b[1].host, &b[2].host],
        &rack.topo.file("nginx").display().to_string(),
    );
    wait_health(&rack, IpAddr::V4(b[0].host.v4), true);
    wait_health(&rack, IpAddr::V4(b[1].host.v4), true);

    let client = &rack.topo.clients[0];
    let target = rack.vip("l7").target();
    let mut per_node = BTreeMap::new();
    for i in 0..120 {
        let (path, pool) = if i % 2 == 0 {
            (format!("/api/users/{i}"), "api-pool")
        } else {
            (format!("/static/app-{i}.js"), "static-pool")
        };
        let a = get(client, target, &path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(a.status, 200, "{path}: {a:?}");
        assert_eq!(a.body, format!("{pool} {path}\n"), "{path}: wrong pool");
        *per_node.entry(a.node).or_insert(0usize) += 1;
    }
    println!("requests per nginx node: {per_node:?}");
    assert_eq!(per_node.len(), 2, "both nginx nodes serve: {per_node:?}");
    assert!(per_node.values().all(|n| *n >= 20), "{per_node:?}");

    // NAT: every request nginx logged came from the balancer's NAT address.
    for node in &tier.nodes[..2] {
        let log = node.access_log();
        let lines: Vec<&str> = log.lines().collect();
        assert!(!lines.is_empty(), "{}: empty access log", node.name);
        assert!(
            lines.iter().all(|l| l.starts_with(&format!("{nat_v4} "))),
            "{}: access log lines not from the NAT address {nat_v4}:\n{log}",
            node.name
        );
    }
}
