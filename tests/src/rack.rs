//! A topology with the real daemon running on the balancer: what the
//! end-to-end scenarios and the demo drive. The config is generated from the
//! topology's addresses; `vips` lists the services.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Mutex, MutexGuard},
};

use crate::{
    servers::ServerPorts,
    topology::{Topology, TopologyOptions, BALANCER_V4, BALANCER_V6, IFACE},
    xlb_process::{Daemon, Launch},
};

/// One service of the rack's config.
#[derive(Clone, Debug)]
pub struct VipSpec {
    pub name: &'static str,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: &'static str,
    pub hashing: &'static str,
    pub flow_table: bool,
    /// Backends by index into the topology's backends, with weights.
    pub backends: Vec<(usize, u16)>,
    /// Whether backends are addressed by IPv6 (else IPv4).
    pub v6_backends: bool,
    /// `Some((interval_ms, fall))`: a TCP health check on the service port
    /// (for a UDP service, on the backends' first TCP port: their UDP
    /// servers answer no TCP).
    pub tcp_check: Option<(u64, u32)>,
}

impl VipSpec {
    pub fn target(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

pub const VIP4: &str = "10.200.0.1";
pub const VIP4_B: &str = "10.200.0.2";
pub const VIP4_AFFINITY: &str = "10.200.0.3";
pub const VIP6: &str = "fd20::1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The services every scenario rack runs (each scenario uses some of them).
pub fn standard_vips() -> Vec<VipSpec> {
    let three = vec![(0, 100), (1, 200), (2, 300)];
    let equal = vec![(0, 100), (1, 100), (2, 100)];
    vec![
        VipSpec {
            name: "web",
            address: ip(VIP4),
            port: 80,
            protocol: "tcp",
            hashing: "five-tuple",
            flow_table: true,
            backends: three,
            v6_backends: false,
            tcp_check: Some((300, 2)),
        },
        VipSpec {
            name: "dns",
            address: ip(VIP4),
            port: 53,
            protocol: "udp",
            hashing: "five-tuple",
            flow_table: true,
            backends: equal.clone(),
            v6_backends: false,
            tcp_check: None,
        },
        VipSpec {
            name: "web6",
            address: ip(VIP6),
            port: 80,
            protocol: "tcp",
            hashing: "five-tuple",
            flow_table: true,
            backends: equal.clone(),
            v6_backends: true,
            tcp_check: None,
        },
        VipSpec {
            name: "web4to6",
            address: ip(VIP4_B),
            port: 80,
            protocol: "tcp",
            hashing: "five-tuple",
            flow_table: true,
            backends: equal.clone(),
            v6_backends: true,
            tcp_check: None,
        },
        VipSpec {
            name: "sticky",
            address: ip(VIP4_AFFINITY),
            port: 80,
            protocol: "tcp",
            hashing: "source-ip",
            flow_table: true,
            backends: equal,
            v6_backends: false,
            tcp_check: None,
        },
    ]
}

pub struct Rack {
    pub vips: Vec<VipSpec>,
    pub config_path: PathBuf,
    pub daemon: Daemon,
    pub topo: Topology,
}

/// The rack of a scenario test: `None` when the test is skipped for lack of
/// privileges; otherwise the standard VIPs, named after the test, held under
/// [`rack_lock`] (the guard comes first: it must outlive the rack).
pub fn scenario_rack(test: &str, clients: usize) -> Option<(MutexGuard<'static, ()>, Rack)> {
    if !crate::privileged::require_root(test) {
        return None;
    }
    let lock = rack_lock();
    let tag: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect();
    Some((
        lock,
        Rack::start(&crate::netns::unique_name(&tag), clients, standard_vips()),
    ))
}

/// Serializes racks within one test process (two CPUs, real traffic).
pub fn rack_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a rack departs from the standard one.
#[derive(Clone, Debug)]
pub struct RackOptions {
    /// `global.bpf_log`.
    pub bpf_log: &'static str,
    /// `global.flow_table_size`.
    pub flow_table_size: u32,
    /// Whether the balancer learns the backends' MACs (a ping each) before
    /// the daemon starts; without it the first packets toward each backend
    /// take the neighbour-miss path.
    pub warm_neighbours: bool,
    /// How the daemon is started (wrapper, options, environment).
    pub launch: Launch,
    /// `(vip name, forwarding)`: VIPs forwarded otherwise than by the
    /// default `ipip`.
    pub forwarding: Vec<(&'static str, &'static str)>,
    /// Backend hosts in the topology.
    pub backends: usize,
    /// Applied to the config text before it is written (settings the
    /// generator does not write: policy, flood threshold).
    pub edit_config: fn(String) -> String,
    /// Backends with no VIP on loopback and no decapsulator
    /// (`TopologyOptions::plain_backends`).
    pub plain_backends: bool,
}

impl Default for RackOptions {
    fn default() -> Self {
        Self {
            bpf_log: "off",
            flow_table_size: 65536,
            warm_neighbours: true,
            launch: Launch::default(),
            forwarding: Vec::new(),
            backends: 3,
            edit_config: |c| c,
            plain_backends: false,
        }
    }
}

impl Rack {
    pub fn start(name: &str, clients: usize, vips: Vec<VipSpec>) -> Self {
        Self::start_with(name, clients, vips, "off")
    }

    /// Like [`start`](Self::start) with the eBPF log level set.
    pub fn start_with(
        name: &str,
        clients: usize,
        vips: Vec<VipSpec>,
        bpf_log: &'static str,
    ) -> Self {
        Self::start_options(
            name,
            clients,
            vips,
            RackOptions {
                bpf_log,
                ..RackOptions::default()
            },
        )
    }

    /// Like [`start`](Self::start), departing from the standard rack as
    /// `opts` says.
    pub fn start_options(
        name: &str,
        clients: usize,
        vips: Vec<VipSpec>,
        opts: RackOptions,
    ) -> Self {
        let mut addrs: Vec<IpAddr> = vips.iter().map(|v| v.address).collect();
        addrs.sort();
        addrs.dedup();
        let topo = Topology::build(TopologyOptions {
            name: name.to_string(),
            clients,
            backends: opts.backends,
            vips: addrs,
            ports: ServerPorts::default(),
            warm_neighbours: opts.warm_neighbours,
            plain_backends: opts.plain_backends,
        });
        let config_path = topo.file("xlb.toml");
        let standard = RackOptions::default();
        let mut text = config_text(&topo, &vips);
        for (vip, mode) in &opts.forwarding {
            let line = format!("name = \"{vip}\"\n");
            assert!(text.contains(&line), "no VIP {vip} in this rack");
            text = text.replace(&line, &format!("{line}forwarding = \"{mode}\"\n"));
        }
        std::fs::write(
            &config_path,
            (opts.edit_config)(text)
                .replace(
                    &format!("bpf_log = \"{}\"", standard.bpf_log),
                    &format!("bpf_log = \"{}\"", opts.bpf_log),
                )
                .replace(
                    &format!("flow_table_size = {}", standard.flow_table_size),
                    &format!("flow_table_size = {}", opts.flow_table_size),
                ),
        )
        .unwrap_or_else(|e| panic!("writing the config: {e}"));
        let socket = socket_path(&topo);
        let daemon = Daemon::start_with(
            &topo.balancer.name,
            &config_path,
            &topo.instance(),
            &socket,
            &topo.file("xlb.log"),
            opts.launch,
        );
        Self {
            vips,
            config_path,
            daemon,
            topo,
        }
    }

    pub fn vip(&self, name: &str) -> &VipSpec {
        self.vips
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no VIP {name} in this rack"))
    }

    /// The address of backend `i` as the VIP `name` knows it.
    pub fn backend_addr(&self, vip: &str, i: usize) -> IpAddr {
        let b = &self.topo.backends[i].host;
        if self.vip(vip).v6_backends {
            IpAddr::V6(b.v6)
        } else {
            IpAddr::V4(b.v4)
        }
    }
}

pub fn socket_path(topo: &Topology) -> PathBuf {
    PathBuf::from(format!("/run/xlb/{}.sock", topo.name))
}

/// The daemon's config for `vips` on `topo`.
pub fn config_text(topo: &Topology, vips: &[VipSpec]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[global]\ninstance = \"{}\"\ninterfaces = [\"{IFACE}\"]\nxdp_mode = \"native\"\n\
         outer_source_v4 = \"{BALANCER_V4}\"\nouter_source_v6 = \"{BALANCER_V6}\"\n\
         table_size = 65537\nflow_table_size = 65536\nmax_vips = 16\nmax_backends = 256\n\
         api_socket = \"{}\"\nmetrics_address = \"127.0.0.1:9431\"\nbpf_log = \"off\"\n",
        topo.instance(),
        socket_path(topo).display()
    );
    for v in vips {
        let _ = writeln!(
            s,
            "[[vip]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nprotocol = \"{}\"\nhashing = \"{}\"\nflow_table = {}",
            v.name, v.address, v.port, v.protocol, v.hashing, v.flow_table
        );
        if let Some((interval, fall)) = v.tcp_check {
            let _ = writeln!(
                s,
                "  [vip.health_check]\n  kind = \"tcp\"\n  interval = \"{interval}ms\"\n  timeout = \"{}ms\"\n  rise = 2\n  fall = {fall}",
                interval * 2 / 3
            );
            if v.protocol == "udp" {
                let port = ServerPorts::default().tcp[0];
                let _ = writeln!(s, "  port = {port}");
            }
        }
        for (i, w) in &v.backends {
            let h = &topo.backends[*i].host;
            let a = if v.v6_backends {
                IpAddr::V6(h.v6)
            } else {
                IpAddr::V4(h.v4)
            };
            let _ = writeln!(s, "  [[vip.backend]]\n  address = \"{a}\"\n  weight = {w}");
        }
        s.push('\n');
    }
    s
}
