//! End to end, per forwarding mode: the real `xlb` daemon on the one-arm
//! rack with VIPs forwarded by `gue` (the backends' `xlb_decap` takes GUE on
//! port 6080) and by `l2-dsr` (the backends share the balancer's segment and
//! hold the VIPs on `lo` with `arp_ignore`/`arp_announce`), real TCP and UDP
//! in both families; the mode shows in `xlb vip list` and `xlb stats`; an
//! `l2-dsr` backend that is not on-link is refused with the reason.

use std::collections::BTreeMap;

use lb_common::Verdict;
use lb_userspace::daemon::controller::VipStatus;
use xlb_tests::{
    clients::{many_connections, tally, udp_backend},
    netns::unique_name,
    privileged::require_root,
    rack::{rack_lock, standard_vips, Rack, RackOptions},
    stats_json::{stats, verdict},
    xlb_process::xlb,
};

/// Every connection succeeded and reached more than one backend.
fn all_served_and_spread(vip: &str, results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{vip}: {} of {} connections failed; first: {:?}",
        failures.len(),
        results.len(),
        failures.first()
    );
    let counts = tally(results);
    println!("{vip}: {counts:?}");
    assert_eq!(counts.len(), 3, "{vip}: every backend serves: {counts:?}");
    counts
}

/// UDP flows from 90 source ports are all answered (by the VIP's address)
/// and spread.
fn udp_served_and_spread(rack: &Rack, vip: &str) {
    let target = rack.vip(vip).target();
    let mut counts = BTreeMap::new();
    for sport in 43000..43090u16 {
        let b = udp_backend(&rack.topo.clients[0], target, sport, b"mode")
            .unwrap_or_else(|e| panic!("{vip}: udp from {sport}: {e}"));
        *counts.entry(b).or_insert(0usize) += 1;
    }
    println!("{vip}: {counts:?}");
    assert_eq!(counts.len(), 3, "{vip}: every backend serves: {counts:?}");
}

fn rack_with(
    test: &str,
    forwarding: Vec<(&'static str, &'static str)>,
) -> Option<(std::sync::MutexGuard<'static, ()>, Rack)> {
    if !require_root(test) {
        return None;
    }
    let lock = rack_lock();
    let tag: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect();
    let rack = Rack::start_options(
        &unique_name(&tag),
        1,
        standard_vips(),
        RackOptions {
            forwarding,
            ..RackOptions::default()
        },
    );
    Some((lock, rack))
}

fn vip_status(rack: &Rack, name: &str) -> VipStatus {
    let text = rack.daemon.cli(&["vip", "list", "--json"]);
    let vips: Vec<VipStatus> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("vip list --json: {e}"));
    vips.into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no VIP {name}"))
}

#[test]
fn gue_vips_carry_tcp_and_udp_in_both_families() {
    // web: IPv4 over IPv4 backends; web6: IPv6 over IPv6; web4to6: IPv4
    // over IPv6; dns: UDP over IPv4.
    let Some((_l, rack)) = rack_with(
        "gue_modes",
        vec![
            ("web", "gue"),
            ("web6", "gue"),
            ("web4to6", "gue"),
            ("dns", "gue"),
        ],
    ) else {
        return;
    };
    for vip in ["web", "web6", "web4to6"] {
        let r = many_connections(&rack.topo.clients[0], rack.vip(vip).target(), 150, 4);
        all_served_and_spread(vip, &r);
    }
    udp_served_and_spread(&rack, "dns");

    // Every backend took the packets apart as GUE (its IP-in-IP path is the
    // same code: the counters say the packets arrived and were stripped).
    for (i, b) in rack.topo.backends.iter().enumerate() {
        let s = b.decap_stats();
        assert!(
            s.decapsulated > 0,
            "backend {i} decapsulated nothing: {s:?}"
        );
        assert_eq!(
            s.malformed + s.refused_source + s.refused_inner_dst,
            0,
            "backend {i}: {s:?}"
        );
    }
    let web = vip_status(&rack, "web");
    assert_eq!((web.forwarding.as_str(), web.gue_port), ("gue", Some(6080)));
    let list = rack.daemon.cli(&["vip", "list"]);
    assert!(list.contains("forwarding=gue (port 6080)"), "{list}");
    let totals = rack.daemon.cli(&["stats"]);
    assert!(
        totals
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("gue")),
        "{totals}"
    );
    let s = stats(&rack.daemon);
    assert!(verdict(&s, Verdict::Tx) > 0);
    assert_eq!(
        s.vips
            .iter()
            .find(|v| v.vip == "web")
            .map(|v| v.forwarding.as_str()),
        Some("gue")
    );
}

#[test]
fn l2_dsr_vips_carry_tcp_and_udp_in_both_families() {
    let Some((_l, rack)) = rack_with(
        "l2dsr_modes",
        vec![("web", "l2-dsr"), ("web6", "l2-dsr"), ("dns", "l2-dsr")],
    ) else {
        return;
    };
    for vip in ["web", "web6"] {
        let r = many_connections(&rack.topo.clients[0], rack.vip(vip).target(), 150, 4);
        all_served_and_spread(vip, &r);
    }
    udp_served_and_spread(&rack, "dns");
    // No tunnel reached the backends for these VIPs: only the ipip VIPs of
    // the rack (unused here) would have been decapsulated.
    for (i, b) in rack.topo.backends.iter().enumerate() {
        let s = b.decap_stats();
        assert_eq!(s.decapsulated, 0, "backend {i} got tunnels: {s:?}");
    }
    let s = stats(&rack.daemon);
    assert_eq!(
        verdict(&s, Verdict::L2OffLink) + verdict(&s, Verdict::L2NoNeigh),
        0
    );
    assert_eq!(vip_status(&rack, "web").forwarding.as_str(), "l2-dsr");
    let list = rack.daemon.cli(&["vip", "list"]);
    assert!(list.contains("forwarding=l2-dsr"), "{list}");

    // A backend behind a router cannot be reached by rewriting MACs: the
    // change is refused with the reason, and nothing changes.
    rack.topo
        .balancer
        .ns
        .ip("route add 10.77.0.0/24 via 10.10.0.1");
    let socket = rack.daemon.socket.to_string_lossy().into_owned();
    let refused = xlb(
        &rack.topo.balancer.name,
        &[
            "vip",
            "add",
            "--name",
            "far",
            "--address",
            "10.200.0.9",
            "--port",
            "80",
            "--forwarding",
            "l2-dsr",
            "--backend",
            "10.77.0.5",
            "--socket",
            &socket,
        ],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains("not on-link")
            && err.contains("gateway 10.10.0.1"),
        "{err}"
    );
    // The same backend is fine for ipip (routed through the gateway).
    let ok = xlb(
        &rack.topo.balancer.name,
        &[
            "vip",
            "add",
            "--name",
            "far",
            "--address",
            "10.200.0.9",
            "--port",
            "80",
            "--backend",
            "10.77.0.5",
            "--socket",
            &socket,
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// The rack's `[nat]` table: the balancer's own addresses, ports outside
/// the kernel's ephemeral range (the balancer's own connections, its
/// health checks among them, use that address too).
fn with_nat_table(config: String) -> String {
    format!(
        "{config}\n[nat]\nsources = [\"{}\", \"{}\"]\nports = \"20000-30000\"\n",
        xlb_tests::topology::BALANCER_V4,
        xlb_tests::topology::BALANCER_V6
    )
}

#[test]
fn nat_vips_carry_tcp_and_udp_in_both_families_to_unprepared_backends() {
    if !require_root("nat_modes") {
        return;
    }
    let _lock = rack_lock();
    let rack = Rack::start_options(
        &unique_name("natmod"),
        1,
        standard_vips(),
        RackOptions {
            forwarding: vec![("web", "nat"), ("web6", "nat"), ("dns", "nat")],
            edit_config: with_nat_table,
            plain_backends: true,
            ..RackOptions::default()
        },
    );
    // The backends hold no VIP and decapsulate nothing: only NAT can reach
    // them (an ipip VIP of the same rack could not).
    for b in &rack.topo.backends {
        let lo = b.host.ns.ip("-o addr show dev lo");
        assert!(!lo.contains("10.200.0.") && !lo.contains("fd20::"), "{lo}");
    }
    for vip in ["web", "web6"] {
        let r = many_connections(&rack.topo.clients[0], rack.vip(vip).target(), 150, 4);
        all_served_and_spread(vip, &r);
    }
    udp_served_and_spread(&rack, "dns");

    let s = stats(&rack.daemon);
    // 300 TCP connections and 90 UDP flows, each a session.
    assert!(s.nat.sessions_created >= 390, "{:?}", s.nat);
    assert!(s.nat.replies > 0, "{:?}", s.nat);
    assert_eq!(verdict(&s, Verdict::NatExhausted), 0);
    assert_eq!(vip_status(&rack, "web").forwarding.as_str(), "nat");
    let list = rack.daemon.cli(&["vip", "list"]);
    assert!(list.contains("forwarding=nat"), "{list}");
    let text = rack.daemon.cli(&["stats"]);
    assert!(text.contains("nat: "), "{text}");
    let explained = rack
        .daemon
        .cli(&["explain", "10.10.0.10", "40000", "10.200.0.1", "80", "tcp"]);
    assert!(
        explained.contains("nat:") && explained.contains("NAT port"),
        "{explained}"
    );
}
