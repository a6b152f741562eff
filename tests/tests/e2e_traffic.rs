//! End to end, as users run it: the real `xlb` daemon on a one-arm balancer in
//! a namespace rack, real TCP and UDP from clients, direct server return.
//! Scenarios 1, 2, 3, 8 and 9 of the end-to-end issue.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr, TcpListener},
};

use lb_common::Verdict;
use xlb_tests::{
    clients::{many_connections, tally, udp_backend, which_backend},
    rack::scenario_rack,
    stats_json::{stats, verdict},
    weight_shares::assert_weight_shares,
};

/// Scenario 1: 1200 TCP connections from many source ports and three client
/// addresses all succeed, spread by weight, and replies bypass the balancer.
#[test]
fn many_tcp_connections_spread_by_weight_with_direct_return() {
    let Some((_l, rack)) = scenario_rack("many_tcp_connections", 2) else {
        return;
    };
    let web = rack.vip("web").target();
    let mut results = many_connections(&rack.topo.clients[0], web, 800, 8);
    results.extend(many_connections(&rack.topo.clients[1], web, 400, 4));
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} connections failed; first: {:?}",
        failures.len(),
        results.len(),
        failures.first()
    );
    let counts = tally(&results);
    println!("web (weights 100/200/300): {counts:?}");
    assert_weight_shares(&counts, &[100, 200, 300], "web");

    // Every packet the balancer saw was client-to-VIP: each connection's
    // client sends at least SYN, ACK and FIN through it, while the backends'
    // replies (as many again) never reach it.
    let s = stats(&rack.daemon);
    let tx = verdict(&s, Verdict::Tx);
    let other = verdict(&s, Verdict::NotVip) + verdict(&s, Verdict::NotIp);
    assert!(
        tx >= 3 * 1200,
        "only {tx} packets balanced for 1200 connections"
    );
    assert!(
        other < 200,
        "{other} non-VIP packets reached the balancer: replies are not bypassing it"
    );
    let web_stats = s
        .vips
        .iter()
        .find(|v| v.vip == "web")
        .unwrap_or_else(|| panic!("no web stats"));
    assert_eq!(web_stats.new_flows, 1200, "one new flow per connection");
    let per_backend: u64 = web_stats.backends.iter().map(|b| b.packets).sum();
    assert_eq!(
        per_backend, web_stats.packets,
        "backend counters add up to the VIP's"
    );
}

/// Scenario 2: every datagram of a UDP flow reaches one backend; flows spread.
#[test]
fn udp_flows_stick_to_a_backend_and_spread() {
    let Some((_l, rack)) = scenario_rack("udp_flows", 1) else {
        return;
    };
    let dns = rack.vip("dns").target();
    let c = &rack.topo.clients[0];
    for sport in [41000u16, 41001, 41002] {
        let first =
            udp_backend(c, dns, sport, b"q0").unwrap_or_else(|e| panic!("udp from {sport}: {e}"));
        for i in 1..20 {
            let b = udp_backend(c, dns, sport, format!("q{i}").as_bytes())
                .unwrap_or_else(|e| panic!("udp: {e}"));
            assert_eq!(
                b, first,
                "datagram {i} of flow from port {sport} changed backend"
            );
        }
    }
    let mut counts = BTreeMap::new();
    for sport in 42000..42300u16 {
        let b = udp_backend(c, dns, sport, b"spread")
            .unwrap_or_else(|e| panic!("udp from {sport}: {e}"));
        *counts.entry(b).or_insert(0usize) += 1;
    }
    println!("dns (equal weights): {counts:?}");
    assert_weight_shares(&counts, &[100, 100, 100], "dns over UDP");
}

/// Scenario 3: an IPv6 VIP with IPv6 backends, and an IPv4 VIP with IPv6 backends.
#[test]
fn ipv6_vip_and_ipv4_vip_with_ipv6_backends() {
    let Some((_l, rack)) = scenario_rack("ipv6_vips", 1) else {
        return;
    };
    for vip in ["web6", "web4to6"] {
        let r = many_connections(&rack.topo.clients[0], rack.vip(vip).target(), 300, 6);
        assert!(
            r.iter().all(|x| x.is_ok()),
            "{vip}: {:?}",
            r.iter().find(|x| x.is_err())
        );
        let counts = tally(&r);
        println!("{vip}: {counts:?}");
        assert_weight_shares(&counts, &[100, 100, 100], vip);
    }
    let s = stats(&rack.daemon);
    for vip in ["web6", "web4to6"] {
        let v = s
            .vips
            .iter()
            .find(|x| x.vip == vip)
            .unwrap_or_else(|| panic!("no {vip}"));
        assert_eq!(v.new_flows, 300, "{vip} new flows");
    }
}

/// Scenario 8: with source-IP affinity, every connection of a client address
/// lands on one backend.
#[test]
fn source_ip_affinity_keeps_each_client_on_one_backend() {
    let Some((_l, rack)) = scenario_rack("source_affinity", 2) else {
        return;
    };
    let sticky = rack.vip("sticky").target();
    let mut sources: Vec<(usize, IpAddr)> = Vec::new();
    for (i, c) in rack.topo.clients.iter().enumerate() {
        sources.push((i, IpAddr::V4(c.v4)));
        sources.extend(c.extra_v4.iter().map(|a| (i, IpAddr::V4(*a))));
    }
    for (i, src) in sources {
        let c = &rack.topo.clients[i];
        let first =
            which_backend(c, sticky, Some(src)).unwrap_or_else(|e| panic!("from {src}: {e}"));
        for n in 0..40 {
            let b =
                which_backend(c, sticky, Some(src)).unwrap_or_else(|e| panic!("from {src}: {e}"));
            assert_eq!(
                b, first,
                "connection {n} from {src} moved from {first} to {b}"
            );
        }
    }
}

/// Scenario 9: ordinary traffic to the balancer's own address still works.
#[test]
fn traffic_to_the_balancer_itself_is_untouched() {
    let Some((_l, rack)) = scenario_rack("non_vip_traffic", 1) else {
        return;
    };
    let lb = rack.topo.balancer.v4;
    rack.topo.clients[0]
        .ns
        .exec(&format!("ping -c 3 -i 0.2 -W 2 {lb}"));
    rack.topo.clients[0].ns.exec(&format!(
        "ping -6 -c 3 -i 0.2 -W 2 {}",
        rack.topo.balancer.v6
    ));
    // A TCP service on the balancer host itself.
    let listener = {
        let _in = rack.topo.balancer.ns.enter();
        TcpListener::bind((lb, 2222)).unwrap_or_else(|e| panic!("listen on the balancer: {e}"))
    };
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        std::io::Write::write_all(&mut s, b"balancer-host\n").unwrap_or_else(|e| panic!("{e}"));
    });
    let name = which_backend(
        &rack.topo.clients[0],
        SocketAddr::new(IpAddr::V4(lb), 2222),
        None,
    )
    .unwrap_or_else(|e| panic!("TCP to the balancer's own address: {e}"));
    assert_eq!(name, "balancer-host");
    t.join().unwrap_or_else(|_| panic!("server thread"));
    let s = stats(&rack.daemon);
    assert!(
        verdict(&s, Verdict::NotVip) >= 8,
        "the pings and the TCP connection passed as non-VIP traffic"
    );
    assert_eq!(verdict(&s, Verdict::Tx), 0, "nothing was balanced");
}
