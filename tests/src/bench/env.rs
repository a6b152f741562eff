//! The benchmarks' world: a namespace with the veth pair `xlbl0`/`xlbl1`, the
//! balancer loaded and filled by the reconciler, static neighbours for every
//! backend, and the counting sink on the peer.
//!
//! `xlbl0` is the balancer's interface (10.0.0.1/24, fd00::1/64): test runs
//! pretend frames arrive on it, the FIB resolves every backend to it, so the
//! verdict is XDP_TX. In live-frames mode those frames really leave through
//! `xlbl0` and arrive at `xlbl1`, where `xlb_count_drop` runs in native mode
//! (a veth only delivers XDP_TX frames to a peer with a native XDP program) and
//! counts them. Two more veth pairs, down, only keep the measured programs in
//! the kernel's XDP dispatcher (see `attach_live`). The veth `xlbl0v100`
//! (10.1.100.1/24) stands in for VLAN 100 of `xlbl0` (the test kernel has no
//! 802.1Q devices; it is recorded in `XLB_VLANS` as such): the VLAN
//! scenario's backends are routed through it, so its tagged frames keep their
//! tag and leave by `xlbl0`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::{Context, Result};
use aya::programs::{Xdp, XdpMode};
use lb_common::{floor_lb, program_names, GlobalConfig, VlanDevice, TPID_8021Q};
use lb_userspace::{
    dataplane::{aux::AuxPrograms, Dataplane, LoadOptions, Sizes},
    reconcile::{DesiredState, Reconciler},
};

use crate::{
    balancer_fixture::{backend_mac, BALANCER_V4, BALANCER_V6},
    netns::{unique_name, Entered, NetNs},
};

pub const IFACE: &str = "xlbl0";
pub const PEER: &str = "xlbl1";
/// The stand-in for VLAN [`VLAN_ID`] of `xlbl0`, and its subnet's prefix.
pub const VLAN_DEV: &str = "xlbl0v100";
pub const VLAN_ID: u16 = 100;
const VLAN_NET: [u8; 3] = [10, 1, 100];
/// Veth pairs that only hold programs in the XDP dispatcher (see `attach_live`).
const HOLDER_PAIRS: [(&str, &str); 5] = [
    ("xlbh0", "xlbh1"),
    ("xlbh2", "xlbh3"),
    ("xlbh4", "xlbh5"),
    ("xlbh6", "xlbh7"),
    ("xlbh8", "xlbh9"),
];
/// The next hop of backends outside `xlbl0`'s subnet (see
/// [`BenchEnv::route_via_gateway`]).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
/// The namespace is `xlb-bench-<pid>`.
const NS_TAG: &str = "bench";

/// Map sizes of the benchmarked balancer: production table size, room for
/// several VIPs of 100 backends each.
pub const SIZES: Sizes = Sizes {
    max_vips: 10,
    max_backends: 1024,
    table_size: 65537,
    flow_table_size: 262_144,
    nat_table_size: 65536,
};

/// The NAT ports of the benchmark's `nat` VIP.
pub const NAT_PORTS: (u16, u16) = (20000, 30000);

/// Outer source addresses and NAT addresses: the balancer's own addresses
/// on `xlbl0`.
pub fn global_config() -> GlobalConfig {
    // Flood mode off: at benchmark rates every CPU would be "flooding", and
    // `v4_tcp_flow_miss` must measure the insert it names.
    GlobalConfig::new(
        Some(Ipv4Addr::from(BALANCER_V4)),
        Some(Ipv6Addr::from(BALANCER_V6)),
    )
    .with_flood_threshold(0)
    .with_nat(
        lb_common::NatConfig::new(
            &[Ipv4Addr::from(BALANCER_V4)],
            &[Ipv6Addr::from(BALANCER_V6)],
            NAT_PORTS,
        )
        .unwrap_or_default(),
    )
}

/// Which program a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Balancer,
    /// One of `lb_common::program_names::{PASS, FLOOR_TX}` or
    /// `lb_common::floor_lb::{PROGRAM, PROGRAM16, PROGRAM_ENTRY, PROGRAM_MIN,
    /// PROGRAM_MIN6, PROGRAM_FULL}`.
    Aux(&'static str),
}

pub struct BenchEnv {
    // Field order is drop order: programs (and the sink's link) go first, then
    // the thread leaves the namespace, then the namespace is deleted.
    pub dp: Dataplane,
    pub aux: AuxPrograms,
    pub reconciler: Reconciler,
    /// `xlbl0`'s index and MAC (frames are addressed to it).
    pub ifindex: u32,
    pub if_mac: [u8; 6],
    /// Why the live-frames setup (sink, dispatcher holders) failed, if it did:
    /// live mode then reports this instead of numbers.
    pub live_error: Option<String>,
    _entered: Entered,
    ns: NetNs,
}

impl BenchEnv {
    /// Creates the namespace and veth pair, moves this thread into it (for the
    /// rest of the program), loads the balancer and the auxiliary programs, and
    /// attaches what live mode needs (a failure there only disables live mode).
    pub fn setup() -> Result<Self> {
        Self::setup_sized(SIZES)
    }

    /// [`setup`](Self::setup) with other map sizes (the scale curves).
    pub fn setup_sized(sizes: Sizes) -> Result<Self> {
        let ns = NetNs::create(&unique_name(NS_TAG));
        let (ifindex, if_mac) = crate::balancer_fixture::balancer_link(&ns, IFACE, PEER);
        let entered = ns.enter();

        let mut dp = Dataplane::load(&LoadOptions {
            sizes,
            ..Default::default()
        })
        .context("loading the balancer (xlb_balancer)")?;
        let mut aux = AuxPrograms::load().context("loading the auxiliary programs")?;
        for name in [program_names::PASS, program_names::FLOOR_TX] {
            aux.program(name)
                .with_context(|| format!("loading {name}"))?;
        }
        add_vlan_standin(&ns, &mut dp)?;
        let live_error = attach_live(&ns, &mut dp, &mut aux)
            .err()
            .map(|e| format!("{e:#}"));

        Ok(Self {
            dp,
            aux,
            reconciler: Reconciler::new(sizes),
            ifindex,
            if_mac,
            live_error,
            _entered: entered,
            ns,
        })
    }

    /// Fills the maps with `desired` the way the daemon does (reconciler plan,
    /// then apply), and gives every backend a permanent neighbour entry on
    /// `xlbl0` so the FIB lookup succeeds.
    pub fn install(&mut self, desired: &DesiredState) -> Result<()> {
        self.apply(desired)?;
        let addrs: BTreeSet<IpAddr> = desired
            .vips
            .iter()
            .flat_map(|v| v.backends.iter().map(|b| b.addr))
            .collect();
        // The clients' network, through a router with a known MAC: where
        // the nat VIP's replies go back to.
        let gw = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254));
        let gw_mac = backend_mac(gw).map(|b| format!("{b:02x}")).join(":");
        self.ns.ip(&format!(
            "neigh replace {gw} lladdr {gw_mac} dev {IFACE} nud permanent"
        ));
        self.ns
            .ip(&format!("route replace 192.0.2.0/24 via {gw} dev {IFACE}"));
        for addr in addrs {
            let mac = backend_mac(addr).map(|b| format!("{b:02x}")).join(":");
            let on_vlan = matches!(addr, IpAddr::V4(a) if a.octets()[..3] == VLAN_NET);
            let dev = if on_vlan { VLAN_DEV } else { IFACE };
            self.ns.ip(&format!(
                "neigh replace {addr} lladdr {mac} dev {dev} nud permanent"
            ));
        }
        Ok(())
    }

    /// Fills the maps with `desired` the way the daemon does (reconciler
    /// plan, then apply), without neighbours.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<()> {
        let plan = self
            .reconciler
            .plan(desired)
            .context("planning the benchmark's VIPs")?;
        self.reconciler
            .apply(plan, &mut self.dp)
            .context("writing the benchmark's VIPs into the maps")?;
        Ok(())
    }

    /// Routes `prefix` (backends that are not on `xlbl0`'s subnet) through
    /// one gateway on `xlbl0` with a permanent neighbour entry: the FIB
    /// resolves every backend there to `xlbl0`, however many there are.
    pub fn route_via_gateway(&mut self, prefix: &str) {
        let mac = backend_mac(IpAddr::V4(GATEWAY))
            .map(|b| format!("{b:02x}"))
            .join(":");
        self.ns.ip(&format!(
            "neigh replace {GATEWAY} lladdr {mac} dev {IFACE} nud permanent"
        ));
        self.ns
            .ip(&format!("route replace {prefix} via {GATEWAY} dev {IFACE}"));
    }

    /// The loaded program a scenario runs.
    pub fn program(&mut self, p: Program) -> Result<&mut Xdp> {
        Ok(match p {
            Program::Balancer => self.dp.program()?,
            Program::Aux(name) => self.aux.program(name)?,
        })
    }

    /// Packets counted by the sink so far.
    pub fn sink_count(&self) -> Result<u64> {
        Ok(self.aux.sink_count()?)
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }
}

/// Creates `xlbl0v100` and records it in `XLB_VLANS` as VLAN 100 of
/// `xlbl0`, what the daemon records for a real VLAN sub-interface.
fn add_vlan_standin(ns: &NetNs, dp: &mut Dataplane) -> Result<()> {
    let [a, b, c] = VLAN_NET;
    ns.ip(&format!(
        "link add {VLAN_DEV} type veth peer name {VLAN_DEV}p"
    ));
    ns.ip(&format!("addr add {a}.{b}.{c}.1/24 dev {VLAN_DEV}"));
    ns.ip(&format!("link set {VLAN_DEV} up"));
    ns.ip(&format!("link set {VLAN_DEV}p up"));
    let vlans = BTreeMap::from([(
        ns.ifindex(VLAN_DEV),
        VlanDevice::new(ns.ifindex(IFACE), VLAN_ID, TPID_8021Q),
    )]);
    dp.sync_vlans(&vlans)
        .context("recording the VLAN stand-in in XLB_VLANS")?;
    Ok(())
}

/// Native-mode attachments for live mode (the thread must be in `ns`):
/// - the sink on `xlbl1`, which makes `xlbl0` deliver XDP_TX frames at all;
/// - every program that live mode runs, natively attached to the otherwise
///   unused, down veth pairs `xlbh0`/`xlbh1` to `xlbh8`/`xlbh9`. A test run
///   with `repeat > 1` adds its program to the kernel's XDP dispatcher and
///   removes it afterwards, each time waiting for an RCU grace period (about
///   25 ms per call measured here) unless the program is already in the
///   dispatcher, i.e. attached somewhere. Live mode makes one call per 256
///   frames, so without these attachments it would measure grace periods.
fn attach_live(ns: &NetNs, dp: &mut Dataplane, aux: &mut AuxPrograms) -> Result<()> {
    aux.program(program_names::COUNT_DROP)?
        .attach(PEER, XdpMode::Driver)
        .with_context(|| {
            format!(
                "attaching {} to {PEER} in native mode",
                program_names::COUNT_DROP
            )
        })?;
    for (a, b) in HOLDER_PAIRS {
        ns.ip(&format!("link add {a} type veth peer name {b}"));
    }
    let [(h0, h1), (h2, h3), (h4, h5), (h6, h7), (h8, _)] = HOLDER_PAIRS;
    dp.program()?
        .attach(h0, XdpMode::Driver)
        .with_context(|| format!("attaching xlb_balancer to {h0} (dispatcher holder)"))?;
    for (name, dev) in [
        (program_names::FLOOR_TX, h1),
        (program_names::PASS, h2),
        (floor_lb::PROGRAM, h3),
        (floor_lb::PROGRAM16, h4),
        (floor_lb::PROGRAM_ENTRY, h5),
        (floor_lb::PROGRAM_MIN, h6),
        (floor_lb::PROGRAM_MIN6, h7),
        (floor_lb::PROGRAM_FULL, h8),
    ] {
        aux.program(name)?
            .attach(dev, XdpMode::Driver)
            .with_context(|| format!("attaching {name} to {dev} (dispatcher holder)"))?;
    }
    Ok(())
}

/// The highest-numbered CPU this thread may run on.
pub fn last_allowed_cpu() -> Result<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .context("reading the CPU affinity")?;
    (0..nix::sched::CpuSet::count())
        .rev()
        .find(|&c| set.is_set(c).unwrap_or(false))
        .context("the CPU affinity mask is empty")
}

/// Pins the calling thread to `cpu`, so every measurement runs on one core.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CPU {cpu} is out of range"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("pinning the benchmark thread to CPU {cpu}"))
}
