//! End to end, ICMP through xlb: path MTU discovery when the balancer-to-
//! backend segment has no headroom for the outer header (the client learns
//! the MTU from xlb's "fragmentation needed" / "packet too big"), `ping` and
//! `ping -6` to VIPs, fragmented UDP to source-ip VIPs arriving whole.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use lb_common::Verdict;
use xlb_tests::{
    clients::{connect, greeting, udp_socket},
    rack::{scenario_rack, standard_vips, Rack, VipSpec, VIP4, VIP4_AFFINITY, VIP6},
    stats_json::{stats, verdict},
    topology::{Host, CLIENT_MTU, IFACE},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Sends `size` bytes to the echo server behind `target` and reads them all
/// back (writer and reader run at once: neither side's buffers fill up).
fn echo_transfer(host: &Host, target: SocketAddr, size: usize) -> Result<String, String> {
    let s = connect(host, target, None).map_err(|e| format!("connect {target}: {e}"))?;
    let backend = greeting(&s).map_err(|e| format!("greeting: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut writer = s.try_clone().map_err(|e| e.to_string())?;
    let sent = data.clone();
    let w = std::thread::spawn(move || writer.write_all(&sent));
    let mut back = vec![0u8; size];
    let mut reader = s;
    let read = reader.read_exact(&mut back);
    let wrote = w.join().map_err(|_| "writer panicked".to_string())?;
    wrote.map_err(|e| format!("upload to {backend}: {e}"))?;
    read.map_err(|e| format!("download from {backend}: {e}"))?;
    if back != data {
        return Err(format!("{backend} echoed different bytes"));
    }
    Ok(backend)
}

/// The MTU the client's route cache holds toward `dst`, if any.
fn cached_mtu(host: &Host, dst: &str) -> Option<u32> {
    let family = if dst.contains(':') { "-6" } else { "-4" };
    let out = host.ns.exec(&format!("ip {family} route get {dst}"));
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mtu" {
            return words.next().and_then(|m| m.parse().ok());
        }
    }
    None
}

/// The balancer-to-backend segment has the clients' MTU (no room for the
/// outer header): 10 MB uploads over IPv4 and IPv6 complete because xlb
/// tells the client the MTU to use, which its route cache then shows.
#[test]
fn uploads_complete_without_mtu_headroom_because_the_client_learns_the_mtu() {
    let Some((_l, rack)) = scenario_rack("icmp_pmtu_upload", 1) else {
        return;
    };
    rack.topo
        .balancer
        .ns
        .ip(&format!("link set {IFACE} mtu {CLIENT_MTU}"));
    let client = &rack.topo.clients[0];
    for (vip, addr, learnt) in [("web", VIP4, 1480), ("web6", VIP6, 1460)] {
        let target = rack.vip(vip).target();
        let backend = echo_transfer(client, target, 10 << 20)
            .unwrap_or_else(|e| panic!("10 MB through {vip}: {e}"));
        println!("{vip}: 10 MB up and back via {backend}");
        assert_eq!(
            cached_mtu(client, addr),
            Some(learnt),
            "the client's route cache toward {addr}"
        );
    }
    let s = stats(&rack.daemon);
    assert!(
        verdict(&s, Verdict::IcmpTooBigSent) >= 2,
        "{:?}",
        s.verdicts
    );
}

fn icmp_vips() -> Vec<VipSpec> {
    let mut vips = standard_vips();
    let equal = vec![(0, 100), (1, 100), (2, 100)];
    vips.push(VipSpec {
        name: "frag4",
        address: ip(VIP4_AFFINITY),
        port: 53,
        protocol: "udp",
        hashing: "source-ip",
        flow_table: true,
        backends: equal.clone(),
        v6_backends: false,
        tcp_check: None,
    });
    vips.push(VipSpec {
        name: "frag6",
        address: ip(VIP6),
        port: 53,
        protocol: "udp",
        hashing: "source-ip",
        flow_table: true,
        backends: equal,
        v6_backends: true,
        tcp_check: None,
    });
    vips
}

/// `ping` and `ping -6` to VIPs are answered (by xlb: the backends have
/// the VIPs on lo but never see the requests), and 8,000-byte UDP datagrams
/// to source-ip VIPs, fragmented by the client, reach one backend whole
/// (its echo carries every byte back).
#[test]
fn ping_and_fragmented_udp_to_vips() {
    if !xlb_tests::privileged::require_root("ping_and_fragmented_udp_to_vips") {
        return;
    }
    let _l = xlb_tests::rack::rack_lock();
    let rack = Rack::start(&xlb_tests::netns::unique_name("icmpfr"), 1, icmp_vips());
    let client = &rack.topo.clients[0];
    client.ns.exec(&format!("ping -c 3 -i 0.2 -W 2 {VIP4}"));
    client.ns.exec(&format!("ping -6 -c 3 -i 0.2 -W 2 {VIP6}"));
    let s = stats(&rack.daemon);
    assert!(
        verdict(&s, Verdict::IcmpEchoReply) >= 6,
        "echo replies: {:?}",
        s.verdicts
    );

    // The backends' replies (the echoed datagram) go straight to the
    // client, whose link has a smaller MTU than the fabric's: as in any
    // direct-return deployment, the route toward clients carries it.
    for b in &rack.topo.backends {
        b.host.ns.ip(&format!(
            "route add {}/32 dev {IFACE} mtu {CLIENT_MTU}",
            client.v4
        ));
        b.host.ns.ip(&format!(
            "-6 route add {}/128 dev {IFACE} mtu {CLIENT_MTU}",
            client.v6
        ));
    }
    for vip in ["frag4", "frag6"] {
        let target = rack.vip(vip).target();
        let mut backends = std::collections::BTreeSet::new();
        for round in 0..3u8 {
            let payload: Vec<u8> = (0..8000u32).map(|i| (i as u8) ^ round).collect();
            let sock = udp_socket(client, target, 0).unwrap_or_else(|e| panic!("{e}"));
            sock.set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap_or_else(|e| panic!("{e}"));
            sock.send_to(&payload, target)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut buf = vec![0u8; 65536];
            let (n, from) = sock
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("{vip} round {round}: no answer: {e}"));
            assert_eq!(from, target);
            let (name, echoed) = buf[..n]
                .iter()
                .position(|b| *b == b'\n')
                .map(|i| (&buf[..i], &buf[i + 1..n]))
                .unwrap_or_else(|| panic!("no backend name"));
            assert_eq!(echoed, &payload[..], "{vip}: the datagram arrived whole");
            backends.insert(String::from_utf8_lossy(name).into_owned());
        }
        assert_eq!(
            backends.len(),
            1,
            "{vip}: one backend per source: {backends:?}"
        );
    }
    let s = stats(&rack.daemon);
    assert!(
        verdict(&s, Verdict::FragmentToBackend) >= 2 * 3 * 6,
        "fragments: {:?}",
        s.verdicts
    );
}
