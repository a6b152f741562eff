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

/// A router on the client side whose route toward the client has a smaller
/// MTU (1,400) than the client's link (1,500, so the client asks for
/// 1,460-byte segments): it answers the backend's large replies, which
/// carry the VIP as source, with "fragmentation needed" / "packet too big"
/// to the VIP. xlb hands each error to the backend of the flow it quotes;
/// the backend's route cache learns 1,400 and a 10 MB download completes.
#[test]
fn a_backend_learns_the_mtu_of_a_router_on_the_client_side() {
    let Some((_l, rack)) = scenario_rack("icmp_router", 1) else {
        return;
    };
    let name = &rack.topo.name;
    let lb = &rack.topo.balancer;
    let router = xlb_tests::topology::attach_host(
        &rack.topo.switch,
        &format!("{name}-rt"),
        "xlbp-rt",
        CLIENT_MTU,
        "10.10.0.60".parse().unwrap_or_else(|e| panic!("{e}")),
        "fd10::60".parse().unwrap_or_else(|e| panic!("{e}")),
        &[],
    );
    let far = xlb_tests::netns::NetNs::create(&format!("{name}-fc"));
    router.ns.ip(&format!(
        "link add xlbr0 mtu {CLIENT_MTU} type veth peer name {IFACE} mtu {CLIENT_MTU} netns {}",
        far.name()
    ));
    router.ns.ip("addr add 10.30.0.1/24 dev xlbr0");
    router.ns.ip("addr add fd30::1/64 dev xlbr0 nodad");
    router.ns.ip("link set xlbr0 up");
    router.ns.exec("ethtool -K xlbr0 tx off");
    // The path beyond the router is narrower than both ends' links: the
    // client still asks for 1,460-byte segments.
    router
        .ns
        .ip("route replace 10.30.0.0/24 dev xlbr0 mtu 1400");
    router
        .ns
        .ip("-6 route replace fd30::/64 dev xlbr0 mtu 1400 metric 256");
    for kv in [
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        // Every error counts here, not only the first of each second.
        "net.ipv4.icmp_ratelimit=0",
        "net.ipv6.icmp.ratelimit=0",
    ] {
        router.ns.sysctl(kv);
    }
    router
        .ns
        .ip(&format!("route add 10.200.0.0/24 via {}", lb.v4));
    router
        .ns
        .ip(&format!("-6 route add fd20::/64 via {}", lb.v6));
    far.ip("addr add 10.30.0.2/24 dev xlb0");
    far.ip("addr add fd30::2/64 dev xlb0 nodad");
    far.ip("link set xlb0 up");
    far.ip("link set lo up");
    far.exec("ethtool -K xlb0 tx off");
    far.ip("route add default via 10.30.0.1");
    far.ip("-6 route add default via fd30::1");
    for b in &rack.topo.backends {
        b.host.ns.ip("route add 10.30.0.0/24 via 10.10.0.60");
        b.host.ns.ip("-6 route add fd30::/64 via fd10::60");
    }
    let client = Host {
        ns: far,
        name: format!("{name}-fc"),
        v4: "10.30.0.2".parse().unwrap_or_else(|e| panic!("{e}")),
        v6: "fd30::2".parse().unwrap_or_else(|e| panic!("{e}")),
        extra_v4: Vec::new(),
    };

    for (vip, client_addr, vip_addr) in [("web", "10.30.0.2", VIP4), ("web6", "fd30::2", VIP6)] {
        let target = rack.vip(vip).target();
        let backend = echo_transfer(&client, target, 10 << 20).unwrap_or_else(|e| {
            println!("router: {}", router.ns.exec("nstat -az IcmpOutDestUnreachs IpForwDatagrams IpOutDiscards IpFragFails Icmp6OutPktTooBigs"));
            for b in &rack.topo.backends {
                println!("{}: {}", b.host.name, b.host.ns.exec("nstat -az IcmpInDestUnreachs IcmpInErrors TcpRetransSegs Icmp6InPktTooBigs"));
            }
            println!("{:?}", stats(&rack.daemon).verdicts);
            panic!("10 MB through {vip}: {e}")
        });
        let i: usize = backend
            .trim_start_matches("backend-")
            .parse()
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        let b = &rack.topo.backends[i].host;
        let family = if vip_addr.contains(':') { "-6" } else { "-4" };
        let route = b.ns.exec(&format!(
            "ip {family} route get {client_addr} from {vip_addr}"
        ));
        println!("{vip} via {backend}: {route}");
        assert!(
            route.contains("mtu 1400"),
            "{backend} must have learnt the router's MTU toward {client_addr}: {route}"
        );
    }
    let s = stats(&rack.daemon);
    assert!(verdict(&s, Verdict::IcmpToBackend) >= 2, "{:?}", s.verdicts);
    drop(client);
    drop(router);
}
