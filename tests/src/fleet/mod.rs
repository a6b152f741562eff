//! A fleet of xlb nodes behind a router, as production runs them: the
//! harness of the fleet tests (`tests/tests/fleet.rs`) and of
//! `cargo xtask demo --fleet`.
//!
//! ```text
//!  client c0 ─┐                                    ┌── node n0: xlb run + BIRD ─┐
//!             ├── router: BIRD (BGP, BFD) ── fabric ┼── node n1: xlb run + BIRD ─┼── (XDP_TX back
//!  client c1 ─┘   ECMP, L4 hash        (bridge in   └── node n2: xlb run + BIRD ─┘    to the fabric)
//!                                       the switch  ┌── backend b0 (xlb decap, VIPs on lo)
//!                                       namespace)  ├── backend b1
//!                                                   └── backend b2 ── replies via the router
//! ```
//!
//! Every node runs the real `xlb run` with the same VIPs and `[announce]`
//! on; its BIRD learns xlb's table 4242 and announces it over eBGP; the
//! router's BIRD merges the paths into one ECMP route per VIP, and
//! `fib_multipath_hash_policy = 1` spreads flows by their ports. Backends
//! decapsulate in XDP and answer the clients directly through the router.
//!
//! Addresses: fabric 10.20.0.0/24 (router .1, nodes .11-.13, backends
//! .101-.103 and, for the second VIP, .151-.153); client links 10.30.<i>.0/24;
//! VIPs 10.200.0.1 (`web`, weights 100/200/300) and 10.200.0.2 (`api`,
//! equal weights, on the backends' second addresses).
//!
//! Names are `<name>-...` with `name` = `xlb-<tag>-<pid>`; everything is
//! removed when the [`Fleet`] drops (BIRDs and daemons killed by PID first),
//! also on panic.

mod config;
pub mod demo;
mod hosts;
pub mod maps;
pub mod streams;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use lb_userspace::dataplane::aux::AuxPrograms;

pub use self::config::{node_config, standard_backends, vips_config, VipBackends};
use self::hosts::{backend, client_behind};
use crate::{
    bird::{self, Bird, Peer},
    netns::NetNs,
    servers::BackendServers,
    topology::{attach_host, Host, PinGuard, BRIDGE, FABRIC_MTU, IFACE},
    xlb_process::{xlb, Daemon},
};

pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
pub const ROUTER_AS: u32 = 65000;
/// Every node announces from the same AS, as one fleet would.
pub const NODE_AS: u32 = 65001;
pub const ANNOUNCE_TABLE: u32 = 4242;
pub const VIP_WEB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub const VIP_API: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
pub const WEB_WEIGHTS: [u16; 3] = [100, 200, 300];
pub const NODES: usize = 3;
pub const BACKENDS: usize = 3;

pub fn node_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, 11 + i as u8)
}

/// Backend `i`'s address for `web`.
pub fn backend_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, 101 + i as u8)
}

/// Backend `i`'s second address, the one `api` uses.
pub fn backend_api_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, 151 + i as u8)
}

#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// `xlb-<tag>-<pid>` (`netns::unique_name`).
    pub name: String,
    pub clients: usize,
    /// `announce.drain_on_stop` of every node.
    pub drain_on_stop: Duration,
    /// Health check of both VIPs: (interval, fall).
    pub check: (Duration, u32),
}

impl FleetOptions {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            clients: 2,
            drain_on_stop: Duration::ZERO,
            check: (Duration::from_millis(300), 2),
        }
    }
}

/// One balancer node.
pub struct Node {
    pub index: usize,
    /// BIRD goes first when the node drops, then the daemon, then the namespace.
    pub bird: Bird,
    /// `None` once killed.
    pub daemon: Option<Daemon>,
    pub config_path: PathBuf,
    pub host: Host,
}

impl Node {
    pub fn ns(&self) -> &str {
        &self.host.name
    }

    pub fn address(&self) -> Ipv4Addr {
        node_address(self.index)
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon
            .as_ref()
            .unwrap_or_else(|| panic!("node n{} has no running daemon", self.index))
    }

    pub fn socket(&self) -> PathBuf {
        socket_path(&self.host.name)
    }

    /// The VIP routes in xlb's table on this node, as `ip` lists them.
    pub fn announced(&self) -> BTreeSet<Ipv4Addr> {
        let out = self
            .host
            .ns
            .ip(&format!("-4 -j route show table {ANNOUNCE_TABLE}"));
        json_routes(&out)
            .keys()
            .copied()
            .collect::<BTreeSet<Ipv4Addr>>()
    }
}

pub struct FleetBackend {
    pub servers: BackendServers,
    _decap: PinGuard,
    pub host: Host,
}

pub struct Fleet {
    pub name: String,
    pub options: FleetOptions,
    pub router_bird: Bird,
    pub nodes: Vec<Node>,
    pub backends: Vec<FleetBackend>,
    pub clients: Vec<Host>,
    pub router: Host,
    /// `xlb_pass` on the nodes' switch ports (XDP_TX needs a native
    /// program on the veth peer).
    _pass: AuxPrograms,
    pub switch: NetNs,
}

/// `/run/xlb/<ns>.sock`.
pub(crate) fn socket_path(ns: &str) -> PathBuf {
    PathBuf::from(format!("/run/xlb/{ns}.sock"))
}

pub(crate) fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd21, 0, 0, 0, 0, 0, 0, last)
}

impl Fleet {
    /// Builds the fleet, starts every daemon and BIRD, and waits until the
    /// router routes both VIPs over all three nodes.
    pub fn start(options: FleetOptions) -> Self {
        let name = options.name.clone();
        let switch = NetNs::create(&format!("{name}-sw"));
        switch.ip(&format!("link add {BRIDGE} mtu {FABRIC_MTU} type bridge"));
        switch.ip(&format!("link set {BRIDGE} up"));

        let router = attach_host(
            &switch,
            &format!("{name}-r"),
            "xlbp-r",
            FABRIC_MTU,
            ROUTER,
            v6(1),
            &[],
        );
        for kv in [
            "net.ipv4.ip_forward=1",
            // Per-flow (L4) spreading over the ECMP nexthops; with 0 every
            // flow of one client address takes the same node.
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            router.ns.sysctl(kv);
        }

        let clients: Vec<Host> = (0..options.clients)
            .map(|i| client_behind(&router, &name, i))
            .collect();

        let vips = [IpAddr::V4(VIP_WEB), IpAddr::V4(VIP_API)];
        let sources: Vec<IpAddr> = (0..NODES).map(|i| IpAddr::V4(node_address(i))).collect();
        let backends: Vec<FleetBackend> = (0..BACKENDS)
            .map(|i| backend(&switch, &name, i, &vips, &sources))
            .collect();

        let mut hosts = Vec::new();
        for i in 0..NODES {
            let h = attach_host(
                &switch,
                &format!("{name}-n{i}"),
                &format!("xlbp-n{i}"),
                FABRIC_MTU,
                node_address(i),
                v6(0x11 + i as u16),
                &[],
            );
            for kv in [
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.xlb0.send_redirects=0",
            ] {
                h.ns.sysctl(kv);
            }
            for b in 0..BACKENDS {
                h.ns.exec(&format!("ping -c 1 -W 2 {}", backend_address(b)));
                h.ns.exec(&format!("ping -c 1 -W 2 {}", backend_api_address(b)));
            }
            hosts.push(h);
        }
        // A NIC drops unicast frames for other MACs before XDP sees them; a
        // veth does not. Without this, the frames the router still sends to a
        // dead node's MAC (unknown to the bridge once the port is down) would
        // be flooded to the other nodes, which would balance them: a node
        // loss the tests could not see.
        for port in (0..NODES)
            .map(|i| format!("xlbp-n{i}"))
            .chain((0..BACKENDS).map(|i| format!("xlbp-b{i}")))
        {
            switch.exec(&format!("bridge link set dev {port} flood off"));
        }
        let mut pass = AuxPrograms::load().unwrap_or_else(|e| panic!("loading xlb_pass: {e:#}"));
        {
            let _in = switch.enter();
            let prog = pass
                .program(lb_common::program_names::PASS)
                .unwrap_or_else(|e| panic!("{e}"));
            for i in 0..NODES {
                prog.attach(&format!("xlbp-n{i}"), aya::programs::XdpMode::Driver)
                    .unwrap_or_else(|e| panic!("attaching xlb_pass to xlbp-n{i}: {e}"));
            }
        }

        let router_peer = Peer {
            name: "uplink".into(),
            address: ROUTER,
            asn: ROUTER_AS,
        };
        let mut nodes = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let config_path = file(&name, &format!("n{i}.toml"));
            std::fs::write(&config_path, node_config(&host.name, i, &options))
                .unwrap_or_else(|e| panic!("writing {}: {e}", config_path.display()));
            let daemon = Daemon::start(
                &host.name,
                &config_path,
                &host.name,
                &socket_path(&host.name),
                &file(&name, &format!("n{i}-xlb.log")),
            );
            let bird = Bird::start(
                &host.name,
                &file(&name, &format!("n{i}-bird")),
                &bird::node_config(
                    node_address(i),
                    NODE_AS,
                    IFACE,
                    ANNOUNCE_TABLE,
                    &router_peer,
                ),
            );
            nodes.push(Node {
                index: i,
                bird,
                daemon: Some(daemon),
                config_path,
                host,
            });
        }
        let peers: Vec<Peer> = (0..NODES)
            .map(|i| Peer {
                name: format!("n{i}"),
                address: node_address(i),
                asn: NODE_AS,
            })
            .collect();
        let router_bird = Bird::start(
            &router.name,
            &file(&name, "router-bird"),
            &bird::router_config(ROUTER, ROUTER_AS, IFACE, &peers),
        );

        let fleet = Self {
            name,
            options,
            router_bird,
            nodes,
            backends,
            clients,
            router,
            _pass: pass,
            switch,
        };
        let all: BTreeSet<Ipv4Addr> = (0..NODES).map(node_address).collect();
        for vip in [VIP_WEB, VIP_API] {
            fleet.wait_for_nexthops(vip, &all, BGP_CONVERGENCE);
        }
        fleet
    }

    pub fn web(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(VIP_WEB), 80)
    }

    pub fn api(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(VIP_API), 80)
    }

    /// The nodes the router's route to `vip` leads to now.
    pub fn nexthops(&self, vip: Ipv4Addr) -> BTreeSet<Ipv4Addr> {
        let out = self.router.ns.ip(&format!("-4 -j route show {vip}/32"));
        json_routes(&out).remove(&vip).unwrap_or_default()
    }

    /// Waits until the route to `vip` leads to exactly `want`; returns how
    /// long that took. Panics with the BIRD logs after `limit`.
    pub fn wait_for_nexthops(
        &self,
        vip: Ipv4Addr,
        want: &BTreeSet<Ipv4Addr>,
        limit: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.nexthops(vip);
            if &now == want {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!(
                    "after {limit:?} the router routes {vip} via {now:?}, not {want:?}\n\
                     router protocols:\n{}\nrouter BIRD log:\n{}\n{}",
                    self.router_bird.birdc("show protocols").unwrap_or_default(),
                    tail(&self.router_bird.log_text(), 30),
                    self.nodes
                        .iter()
                        .map(|n| format!(
                            "node n{} table {ANNOUNCE_TABLE}: {:?}\nits BIRD log:\n{}",
                            n.index,
                            n.announced(),
                            tail(&n.bird.log_text(), 15)
                        ))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A crash: the node's link goes down, its BIRD and daemon die at once
    /// (SIGKILL), without a BGP notification or a withdrawal. Its program
    /// stays attached behind the dead link, as on a machine that froze.
    pub fn kill_node(&mut self, i: usize) {
        self.switch.ip(&format!("link set xlbp-n{i} down"));
        let n = &mut self.nodes[i];
        n.bird.kill();
        if let Some(d) = n.daemon.as_mut() {
            d.kill();
        }
    }

    /// The node comes back as from a reboot: its pins and routes are gone
    /// (`xlb down`), the link is up, a fresh daemon and BIRD start. Returns
    /// once the daemon answers (the router may take seconds to accept the
    /// node again: see [`wait_for_nexthops`](Self::wait_for_nexthops)).
    pub fn revive_node(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let ns = n.host.name.clone();
        let socket = n.socket();
        let out = xlb(
            &ns,
            &[
                "down",
                "--instance",
                &ns,
                "--socket",
                &socket.to_string_lossy(),
            ],
        );
        assert!(
            out.status.success(),
            "xlb down on n{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.switch.ip(&format!("link set xlbp-n{i} up"));
        let n = &mut self.nodes[i];
        match n.daemon.as_mut() {
            Some(d) => d.restart(&n.config_path),
            None => {
                n.daemon = Some(Daemon::start(
                    &ns,
                    &n.config_path,
                    &ns,
                    &socket,
                    &file(&self.name, &format!("n{i}-xlb.log")),
                ))
            }
        }
        n.bird.restart();
    }

    /// All nodes.
    pub fn all_nodes(&self) -> BTreeSet<Ipv4Addr> {
        self.nodes.iter().map(Node::address).collect()
    }

    /// New flows of `vip` on each node whose daemon runs, by node index.
    pub fn new_flows(&self, vip: &str) -> BTreeMap<usize, u64> {
        self.nodes
            .iter()
            .filter(|n| n.daemon.as_ref().is_some_and(|d| d.pid().is_some()))
            .map(|n| {
                let s = crate::stats_json::stats(n.daemon());
                let flows = s
                    .vips
                    .iter()
                    .find(|v| v.vip == vip)
                    .map(|v| v.new_flows)
                    .unwrap_or_else(|| panic!("n{} has no vip {vip}", n.index));
                (n.index, flows)
            })
            .collect()
    }
}

/// Time BGP takes to converge at the start: sessions come up after the 1 s
/// connect delay, BIRD 2.0.12 sometimes sends a session's first UPDATE 3 s
/// late, and a node accepted again after an error waits for its error timer.
pub const BGP_CONVERGENCE: Duration = Duration::from_secs(30);

/// A path for files of fleet `name` (configs, logs, BIRD sockets).
pub fn file(name: &str, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-{what}"))
}

/// `ip -j route` output: destination to its gateways (one, or the
/// nexthops of a multipath route); routes without a gateway map to none.
pub fn json_routes(text: &str) -> BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>> {
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("ip -j route: {e}: {text}"));
    let mut out = BTreeMap::new();
    for r in v.as_array().into_iter().flatten() {
        let Some(dst) = r["dst"].as_str().and_then(|d| d.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        let mut gateways: BTreeSet<Ipv4Addr> = BTreeSet::new();
        let hops = r["nexthops"].as_array().cloned().unwrap_or_default();
        for h in std::iter::once(r).chain(hops.iter()) {
            if let Some(g) = h["gateway"].as_str().and_then(|g| g.parse().ok()) {
                gateways.insert(g);
            }
        }
        out.insert(dst, gateways);
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipath_and_single_routes_parse() {
        let text = r#"[{"dst":"10.200.0.1","protocol":"bird","metric":32,"flags":[],
            "nexthops":[{"gateway":"10.20.0.11","dev":"xlb0","weight":1,"flags":[]},
                        {"gateway":"10.20.0.13","dev":"xlb0","weight":1,"flags":[]}]},
            {"dst":"10.200.0.2","gateway":"10.20.0.12","dev":"xlb0","protocol":"bird","flags":[]},
            {"type":"blackhole","dst":"10.200.0.3","protocol":"static","flags":[]},
            {"dst":"default","gateway":"10.20.0.1","dev":"xlb0","flags":[]}]"#;
        let r = json_routes(text);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r[&ip("10.200.0.1")],
            [ip("10.20.0.11"), ip("10.20.0.13")].into_iter().collect()
        );
        assert_eq!(
            r[&ip("10.200.0.2")],
            [ip("10.20.0.12")].into_iter().collect()
        );
        assert!(r[&ip("10.200.0.3")].is_empty());
        assert_eq!(r.len(), 3);
        assert!(json_routes("[]").is_empty());
    }

    #[test]
    fn node_configs_parse_and_announce() {
        let o = FleetOptions {
            drain_on_stop: Duration::from_secs(2),
            ..FleetOptions::new("xlb-t-1")
        };
        let text = node_config("xlb-t-1-n0", 0, &o);
        let c = lb_userspace::config::Config::from_toml_str(&text, None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(c.announce.enabled);
        assert_eq!(c.announce.table, ANNOUNCE_TABLE);
        assert_eq!(c.announce.drain_on_stop, Duration::from_secs(2));
        assert_eq!(c.vips.len(), 2);
        assert_eq!(c.vips[0].backends.len(), 3);
        assert_eq!(c.vips[0].backends[2].weight, 300);
    }
}
