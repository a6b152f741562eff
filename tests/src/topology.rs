//! A rack in network namespaces, the harness of the end-to-end tests and the
//! demo. Everything is named `<name>-...` (`name` is `xlb-<tag>-<pid>`), and
//! deleted by name when the [`Topology`] drops, also on panic; leftovers of
//! crashed runs are removed before the first namespace is created
//! (`leftovers::remove_stale`).
//!
//! ```text
//!   client c0 ──┐                         ┌── backend b0 (VIPs on lo, xlb_decap)
//!   client c1 ──┤── switch (bridge) ──────┼── backend b1
//!   balancer  ──┘   (xlb_pass on the      └── backend b2
//!   (xlb, XDP_TX)    balancer's port)
//! ```
//!
//! Addresses: 10.10.0.0/24 and fd10::/64 on the shared segment; VIPs in
//! 10.200.0.0/24 and fd20::/64, routed by the clients via the balancer.
//! Backends answer clients directly (direct server return).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use lb_userspace::dataplane::{
    attach::{remove_instance, InstancePaths, Mode},
    aux::AuxPrograms,
    decap,
};

use crate::{
    netns::NetNs,
    servers::{BackendServers, ServerPorts},
};

/// Link MTU between balancer, switch and backends: room for the outer header
/// (+40 bytes) on top of the clients' 1500.
pub const FABRIC_MTU: u32 = 1600;
pub const CLIENT_MTU: u32 = 1500;
pub const IFACE: &str = "xlb0";
pub const BRIDGE: &str = "xlbbr0";

pub const BALANCER_V4: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
pub const BALANCER_V6: Ipv6Addr = Ipv6Addr::new(0xfd10, 0, 0, 0, 0, 0, 0, 2);

#[derive(Clone, Debug)]
pub struct TopologyOptions {
    /// Prefix of every namespace, `xlb-<tag>-<pid>` (`netns::unique_name`);
    /// also the pin instance names.
    pub name: String,
    pub clients: usize,
    pub backends: usize,
    /// VIP addresses the backends accept (configured on their loopback).
    pub vips: Vec<IpAddr>,
    pub ports: ServerPorts,
    /// Ping every backend from the balancer once built (proving the segment
    /// works and filling the balancer's neighbour table); off, the first
    /// packets toward each backend meet an unresolved neighbour.
    pub warm_neighbours: bool,
    /// Backends as they are before anyone sets them up for xlb: no VIP on
    /// loopback, no decapsulator, UDP servers on their own addresses (what
    /// `forwarding = "nat"` serves).
    pub plain_backends: bool,
}

/// One namespace attached to the switch.
pub struct Host {
    pub ns: NetNs,
    pub name: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    /// Extra IPv4 addresses (clients have a second one).
    pub extra_v4: Vec<Ipv4Addr>,
}

pub struct Backend {
    pub host: Host,
    pub servers: BackendServers,
    decap_pins: PinGuard,
}

impl Backend {
    /// Serves one more VIP: the address on loopback and in the
    /// decapsulator's VIP set (without it, tunnels to it are refused).
    pub fn add_vip(&self, vip: IpAddr) {
        let plen = if vip.is_ipv4() { 32 } else { 128 };
        self.host.ns.ip(&format!("addr add {vip}/{plen} dev lo"));
        decap::Decap::load_pinned(Some(&self.decap_pins.0))
            .and_then(|mut d| d.add_vip(vip))
            .unwrap_or_else(|e| {
                panic!(
                    "adding VIP {vip} to {}'s decapsulator: {e:#}",
                    self.host.name
                )
            });
    }
}

impl Backend {
    /// The counters of this backend's decapsulator.
    pub fn decap_stats(&self) -> decap::DecapStats {
        decap::Decap::load_pinned(Some(&self.decap_pins.0))
            .and_then(|d| d.stats())
            .unwrap_or_else(|e| panic!("{}'s decapsulator stats: {e:#}", self.host.name))
    }
}

/// Removes an instance's bpffs pins when dropped (also during a panic in
/// `Topology::build`, before the topology exists to clean up).
pub struct PinGuard(pub InstancePaths);

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Err(e) = remove_instance(&self.0) {
            eprintln!("warning: removing pins {}: {e}", self.0.root.display());
        }
    }
}

pub struct Topology {
    pub name: String,
    pub clients: Vec<Host>,
    pub backends: Vec<Backend>,
    pub balancer: Host,
    /// Keeps `xlb_pass` attached to the balancer's switch port.
    _pass: AuxPrograms,
    pub switch: NetNs,
}

impl Topology {
    pub fn build(opts: TopologyOptions) -> Self {
        let switch = NetNs::create(&format!("{}-sw", opts.name));
        switch.ip(&format!("link add {BRIDGE} mtu {FABRIC_MTU} type bridge"));
        switch.ip(&format!("link set {BRIDGE} up"));

        let balancer = attach_host(
            &switch,
            &format!("{}-lb", opts.name),
            "xlbp-lb",
            FABRIC_MTU,
            BALANCER_V4,
            BALANCER_V6,
            &[],
        );
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv4.conf.all.send_redirects", "0"),
            ("net.ipv4.conf.xlb0.send_redirects", "0"),
        ] {
            balancer.ns.sysctl(&format!("{k}={v}"));
        }

        let mut clients = Vec::new();
        for i in 0..opts.clients {
            let v4 = Ipv4Addr::new(10, 10, 0, 10 + i as u8);
            let extra = [Ipv4Addr::new(10, 10, 0, 50 + i as u8)];
            let v6 = Ipv6Addr::new(0xfd10, 0, 0, 0, 0, 0, 0, 0x10 + i as u16);
            let c = attach_host(
                &switch,
                &format!("{}-c{i}", opts.name),
                &format!("xlbp-c{i}"),
                CLIENT_MTU,
                v4,
                v6,
                &extra,
            );
            c.ns.ip(&format!("route add 10.200.0.0/24 via {BALANCER_V4}"));
            c.ns.ip(&format!("-6 route add fd20::/64 via {BALANCER_V6}"));
            clients.push(c);
        }

        let mut backends = Vec::new();
        for i in 0..opts.backends {
            let v4 = Ipv4Addr::new(10, 10, 0, 100 + i as u8);
            let v6 = Ipv6Addr::new(0xfd10, 0, 0, 0, 0, 0, 0, 0x100 + i as u16);
            let h = attach_host(
                &switch,
                &format!("{}-b{i}", opts.name),
                &format!("xlbp-b{i}"),
                FABRIC_MTU,
                v4,
                v6,
                &[],
            );
            // The VIPs are local on every backend (so it accepts the inner
            // packets and answers from the VIP), but never announced.
            let vips: &[IpAddr] = if opts.plain_backends { &[] } else { &opts.vips };
            for vip in vips {
                let plen = if vip.is_ipv4() { 32 } else { 128 };
                h.ns.ip(&format!("addr add {vip}/{plen} dev lo"));
            }
            for (k, v) in [
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
                ("net.ipv4.conf.xlb0.rp_filter", "0"),
            ] {
                h.ns.sysctl(&format!("{k}={v}"));
            }
            let decap_pins = PinGuard(InstancePaths::new(&format!("decap-{}", h.name)));
            if !opts.plain_backends {
                let _in = h.ns.enter();
                decap::attach_host(
                    IFACE,
                    &decap::DecapLists {
                        addresses: vec![IpAddr::V4(v4), IpAddr::V6(v6)],
                        // The balancer's outer sources (`rack::config_text`).
                        allowed_sources: vec![IpAddr::V4(BALANCER_V4), IpAddr::V6(BALANCER_V6)],
                        vips: opts.vips.clone(),
                        gue_ports: vec![lb_common::forwarding::gue::DEFAULT_PORT],
                    },
                    Mode::Native,
                    &decap_pins.0,
                )
                .unwrap_or_else(|e| panic!("attaching xlb_decap in {}: {e:#}", h.name));
            }
            let mut ports = opts.ports.clone();
            ports.udp_addrs = if opts.plain_backends {
                vec![IpAddr::V4(v4), IpAddr::V6(v6)]
            } else {
                opts.vips.clone()
            };
            let servers = BackendServers::start_in(&h.ns, &format!("backend-{i}"), ports);
            backends.push(Backend {
                host: h,
                servers,
                decap_pins,
            });
        }

        // A veth delivers XDP_TX frames only to a peer running a native XDP
        // program: the balancer's switch port gets an XDP_PASS one.
        let mut pass = AuxPrograms::load().unwrap_or_else(|e| panic!("loading xlb_pass: {e:#}"));
        {
            let _in = switch.enter();
            let prog = pass
                .program(lb_common::program_names::PASS)
                .unwrap_or_else(|e| panic!("{e}"));
            prog.attach("xlbp-lb", aya::programs::XdpMode::Driver)
                .unwrap_or_else(|e| panic!("attaching xlb_pass to xlbp-lb: {e}"));
        }

        let t = Self {
            name: opts.name,
            clients,
            backends,
            balancer,
            _pass: pass,
            switch,
        };
        // Warm the balancer's neighbour table and prove the segment works.
        for b in t.backends.iter().filter(|_| opts.warm_neighbours) {
            t.balancer.ns.exec(&format!("ping -c 1 -W 2 {}", b.host.v4));
            t.balancer
                .ns
                .exec(&format!("ping -6 -c 1 -W 2 {}", b.host.v6));
        }
        t
    }

    /// The pin instance name for the balancer.
    pub fn instance(&self) -> String {
        format!("{}-lb", self.name)
    }

    /// A path for files of this topology (configs, logs).
    pub fn file(&self, name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{name}", self.name))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for b in &mut self.backends {
            b.servers.stop();
        }
        let _ = remove_instance(&InstancePaths::new(&self.instance()));
        // Namespaces go when their NetNs guards drop (fields drop after this).
    }
}

/// Creates namespace `ns_name`, links it to the switch with a veth pair
/// (`port` on the bridge, `xlb0` inside) and configures both families.
pub fn attach_host(
    switch: &NetNs,
    ns_name: &str,
    port: &str,
    mtu: u32,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    extra_v4: &[Ipv4Addr],
) -> Host {
    let ns = NetNs::create(ns_name);
    switch.ip(&format!(
        "link add {port} mtu {mtu} type veth peer name {IFACE} mtu {mtu} netns {ns_name}"
    ));
    switch.ip(&format!("link set {port} master {BRIDGE} up"));
    ns.ip(&format!("addr add {v4}/24 dev {IFACE}"));
    for a in extra_v4 {
        ns.ip(&format!("addr add {a}/24 dev {IFACE}"));
    }
    ns.ip(&format!("addr add {v6}/64 dev {IFACE} nodad"));
    ns.ip(&format!("link set {IFACE} up"));
    // Sockets hand veth partial checksums; after an XDP rewrite nobody would
    // complete them. Full checksums from the start.
    ns.exec(&format!("ethtool -K {IFACE} tx off"));
    Host {
        name: ns_name.to_string(),
        ns,
        v4,
        v6,
        extra_v4: extra_v4.to_vec(),
    }
}
