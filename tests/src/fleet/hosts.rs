//! The fleet's clients (each on its own link to the router) and backends
//! (decapsulating in XDP, answering through the router).

use std::net::{IpAddr, Ipv4Addr};

use lb_userspace::dataplane::{
    attach::{InstancePaths, Mode},
    decap,
};

use super::{backend_address, backend_api_address, v6, FleetBackend, ROUTER};
use crate::{
    netns::NetNs,
    servers::{BackendServers, ServerPorts},
    topology::{attach_host, Host, PinGuard, CLIENT_MTU, FABRIC_MTU, IFACE},
};

/// A client namespace on its own link to the router: `10.30.<i>.2` (and
/// `.3`, a second source address), the router `10.30.<i>.1`.
pub(super) fn client_behind(router: &Host, name: &str, i: usize) -> Host {
    let ns_name = format!("{name}-c{i}");
    let ns = NetNs::create(&ns_name);
    let link = format!("xlbc{i}");
    router.ns.ip(&format!(
        "link add {link} mtu {CLIENT_MTU} type veth peer name {IFACE} mtu {CLIENT_MTU} netns {ns_name}"
    ));
    let net = |host: u8| Ipv4Addr::new(10, 30, i as u8, host);
    router.ns.ip(&format!("addr add {}/24 dev {link}", net(1)));
    router.ns.ip(&format!("link set {link} up"));
    router.ns.exec(&format!("ethtool -K {link} tx off"));
    ns.ip(&format!("addr add {}/24 dev {IFACE}", net(2)));
    ns.ip(&format!("addr add {}/24 dev {IFACE}", net(3)));
    ns.ip(&format!("link set {IFACE} up"));
    ns.ip(&format!("route add default via {}", net(1)));
    // Full checksums: the packets are rewritten by XDP further on.
    ns.exec(&format!("ethtool -K {IFACE} tx off"));
    Host {
        ns,
        name: ns_name,
        v4: net(2),
        v6: v6(0x200 + i as u16),
        extra_v4: vec![net(3)],
    }
}

/// Backend `i`: both VIPs on loopback, a second address for `api`,
/// `xlb_decap` accepting tunnels from every node, replies via the router.
pub(super) fn backend(
    switch: &NetNs,
    name: &str,
    i: usize,
    vips: &[IpAddr],
    sources: &[IpAddr],
) -> FleetBackend {
    let host = attach_host(
        switch,
        &format!("{name}-b{i}"),
        &format!("xlbp-b{i}"),
        FABRIC_MTU,
        backend_address(i),
        v6(0x101 + i as u16),
        &[],
    );
    host.ns.ip(&format!(
        "addr add {}/24 dev {IFACE}",
        backend_api_address(i)
    ));
    for vip in vips {
        host.ns.ip(&format!("addr add {vip}/32 dev lo"));
    }
    host.ns.ip(&format!("route add default via {ROUTER}"));
    for kv in [
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.xlb0.rp_filter=0",
    ] {
        host.ns.sysctl(kv);
    }
    let pins = PinGuard(InstancePaths::new(&format!("decap-{}", host.name)));
    {
        let _in = host.ns.enter();
        decap::attach_host(
            IFACE,
            &decap::DecapLists {
                addresses: vec![
                    IpAddr::V4(backend_address(i)),
                    IpAddr::V4(backend_api_address(i)),
                ],
                // Every node's outer source (its fabric address).
                allowed_sources: sources.to_vec(),
                vips: vips.to_vec(),
                gue_ports: Vec::new(),
            },
            Mode::Native,
            &pins.0,
        )
        .unwrap_or_else(|e| panic!("attaching xlb_decap in {}: {e:#}", host.name));
    }
    let ports = ServerPorts {
        udp_addrs: vips.to_vec(),
        ..ServerPorts::default()
    };
    let servers = BackendServers::start_in(&host.ns, &format!("backend-{i}"), ports);
    FleetBackend {
        servers,
        _decap: pins,
        host,
    }
}
