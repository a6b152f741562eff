//! Real TCP and UDP through the XDP data plane in a namespace rack, driven by
//! the library (Dataplane + Reconciler) rather than the daemon: proves the
//! topology, the one-arm XDP_TX path, decapsulation on backends and direct
//! server return, independent of the control plane.

use std::net::{IpAddr, SocketAddr};

use lb_common::{GlobalConfig, VipKey, PROTO_TCP, PROTO_UDP};
use lb_userspace::{
    dataplane::{
        attach::{attach_pinned, Mode},
        Dataplane, LoadOptions, Sizes,
    },
    reconcile::{DesiredBackend, DesiredState, DesiredVip, Reconciler},
};
use xlb_tests::{
    clients::{many_connections, tally, udp_backend},
    privileged::require_root,
    servers::ServerPorts,
    topology::{Topology, TopologyOptions, BALANCER_V4, BALANCER_V6, IFACE},
    weight_shares::assert_weight_shares,
};

fn vip(addr: IpAddr, port: u16, proto: u8, backends: &[(IpAddr, u16)]) -> DesiredVip {
    DesiredVip {
        key: VipKey::new(addr, port, proto),
        name: format!("{addr}:{port}"),
        flags: 0,
        udp_idle_timeout_ms: lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS,
        forwarding: lb_common::Forwarding::Ipip,
        gue_port: 0,
        policy: Default::default(),
        backends: backends
            .iter()
            .map(|(a, w)| DesiredBackend {
                addr: *a,
                weight: *w,
                healthy: true,
            })
            .collect(),
    }
}

#[test]
fn tcp_and_udp_flow_through_the_data_plane_with_direct_return() {
    if !require_root("e2e_dataplane") {
        return;
    }
    let vip4: IpAddr = "10.200.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
    let vip6: IpAddr = "fd20::1".parse().unwrap_or_else(|e| panic!("{e}"));
    let topo = Topology::build(TopologyOptions {
        name: format!("xlb-dp-{}", std::process::id()),
        clients: 1,
        backends: 3,
        vips: vec![vip4, vip6],
        ports: ServerPorts::default(),
        warm_neighbours: true,
        plain_backends: false,
    });
    let ifindex = topo.balancer.ns.ifindex(IFACE);
    let sizes = Sizes {
        max_vips: 8,
        max_backends: 64,
        table_size: 65537,
        flow_table_size: 65536,
        nat_table_size: 4096,
    };
    let _in = topo.balancer.ns.enter();
    let mut dp = Dataplane::load(&LoadOptions {
        sizes,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let weights: Vec<(IpAddr, u16)> = topo
        .backends
        .iter()
        .zip([1u16, 2, 3])
        .map(|(b, w)| (IpAddr::V4(b.host.v4), w))
        .collect();
    let weights6: Vec<(IpAddr, u16)> = topo
        .backends
        .iter()
        .map(|b| (IpAddr::V6(b.host.v6), 1))
        .collect();
    let desired = DesiredState {
        global: GlobalConfig::new(Some(BALANCER_V4), Some(BALANCER_V6)),
        tx_ports: [ifindex].into_iter().collect(),
        vips: vec![
            vip(vip4, 80, PROTO_TCP, &weights),
            vip(vip4, 53, PROTO_UDP, &weights),
            vip(vip6, 80, PROTO_TCP, &weights6),
        ],
    };
    let mut r = Reconciler::new(sizes);
    let plan = r.plan(&desired).unwrap_or_else(|e| panic!("{e}"));
    r.apply(plan, &mut dp).unwrap_or_else(|e| panic!("{e}"));
    let pin = topo.file("link-pin-unused");
    let _ = pin;
    let prog = dp.program().unwrap_or_else(|e| panic!("{e}"));
    prog.attach(IFACE, aya::programs::XdpMode::Driver)
        .unwrap_or_else(|e| panic!("attach: {e}"));
    drop(_in);
    let _ = (attach_pinned, Mode::Native);

    let results = many_connections(&topo.clients[0], SocketAddr::new(vip4, 80), 600, 6);
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of 600 connections failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let t = tally(&results);
    println!("v4 tcp spread: {t:?}");
    assert_weight_shares(&t, &[100, 200, 300], "v4 tcp");
    let results6 = many_connections(&topo.clients[0], SocketAddr::new(vip6, 80), 150, 3);
    assert!(
        results6.iter().all(|r| r.is_ok()),
        "{:?}",
        results6.iter().find(|r| r.is_err())
    );
    assert_eq!(
        tally(&results6).len(),
        3,
        "IPv6 connections reach all three backends"
    );

    for sport in 40000..40020u16 {
        let first = udp_backend(&topo.clients[0], SocketAddr::new(vip4, 53), sport, b"hello")
            .unwrap_or_else(|e| panic!("udp from port {sport}: {e}"));
        let again = udp_backend(&topo.clients[0], SocketAddr::new(vip4, 53), sport, b"again")
            .unwrap_or_else(|e| panic!("udp: {e}"));
        assert_eq!(first, again, "one UDP flow, one backend");
    }
    // The balancer only ever saw client-to-VIP packets (replies bypass it).
    let v = dp.verdicts().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "verdicts: {:?}",
        lb_common::Verdict::ALL
            .iter()
            .map(|x| (x.as_str(), v[*x as usize]))
            .filter(|x| x.1 > 0)
            .collect::<Vec<_>>()
    );
}
