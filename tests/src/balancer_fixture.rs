//! The real balancer object, loaded in a private network namespace and driven
//! through BPF_PROG_TEST_RUN, with its maps filled through the same
//! `Dataplane` layer the daemon uses.
//!
//! The namespace holds one veth pair, `xlbp0` (the balancer's interface: the
//! packets' ingress, 10.0.0.1/24 and fd00::1/64) and `xlbp1`, plus static
//! neighbour entries for every backend, so `bpf_fib_lookup` resolves next hops
//! to known MACs and expected output frames are exact.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::programs::{TestRun, TestRunOptions};
use lb_common::{Backend, GlobalConfig, VipInfo, VipKey, VlanDevice};
use lb_userspace::{
    dataplane::{Dataplane, LoadOptions, Sizes},
    reconcile::markers::{fragment_owner, FragmentOwner},
};

use crate::{
    netns::{Entered, NetNs},
    privileged::require_root,
};

pub const BALANCER_V4: [u8; 4] = [10, 0, 0, 1];
pub const BALANCER_V6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const IFACE: &str = "xlbp0";
pub const PEER: &str = "xlbp1";

pub const TEST_SIZES: Sizes = Sizes {
    max_vips: 8,
    max_backends: 256,
    table_size: 65537,
    flow_table_size: 262_144,
    nat_table_size: 4096,
};

/// The result of one BPF_PROG_TEST_RUN.
#[derive(Debug)]
pub struct RunResult {
    pub action: u32,
    /// The packet after the program ran (what would be transmitted).
    pub out: Vec<u8>,
}

/// A VIP installed in the fixture.
#[derive(Clone, Debug)]
pub struct TestVip {
    pub key: VipKey,
    pub info: VipInfo,
    /// Backend ids, in the order the backends were given.
    pub backend_ids: Vec<u32>,
    pub backends: Vec<IpAddr>,
}

pub struct BalancerFixture {
    pub dp: Dataplane,
    pub ifindex: u32,
    pub if_mac: [u8; 6],
    next_backend_id: u32,
    next_vip_id: u32,
    /// Every VIP installed, with its flags: the address markers are
    /// computed from them as the reconciler does.
    installed: Vec<(VipKey, u32)>,
    // Field order matters: leave the namespace before deleting it.
    _entered: Entered,
    pub ns: NetNs,
}

impl BalancerFixture {
    /// None when the test is skipped for lack of privileges.
    pub fn new(test: &str) -> Option<Self> {
        Self::with_sizes(test, TEST_SIZES)
    }

    /// [`new`](Self::new) with other map capacities.
    pub fn with_sizes(test: &str, sizes: Sizes) -> Option<Self> {
        if !require_root(test) {
            return None;
        }
        let ns = NetNs::create(&crate::netns::unique_name(&short(test)));
        let (ifindex, if_mac) = balancer_link(&ns, IFACE, PEER);
        let entered = ns.enter();
        let opts = LoadOptions {
            sizes,
            ..Default::default()
        };
        let mut dp =
            Dataplane::load(&opts).unwrap_or_else(|e| panic!("loading the balancer: {e:#}"));
        dp.set_global_config(&GlobalConfig::new(
            Some(Ipv4Addr::from(BALANCER_V4)),
            Some(Ipv6Addr::from(BALANCER_V6)),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        Some(Self {
            dp,
            ifindex,
            if_mac,
            next_backend_id: 1,
            next_vip_id: 0,
            installed: Vec::new(),
            _entered: entered,
            ns,
        })
    }

    /// Installs a VIP whose table gives backend `i` the slots where
    /// `assign(slot) == i` (default: `slot % n`), in the order the control plane
    /// does it: backends, then the table, then the VIP entry and its marker.
    pub fn add_vip(
        &mut self,
        addr: IpAddr,
        port: u16,
        proto: u8,
        flags: u32,
        backends: &[IpAddr],
    ) -> TestVip {
        let n = backends.len().max(1);
        self.add_vip_with_table(addr, port, proto, flags, backends, |slot| slot % n)
    }

    pub fn add_vip_with_table(
        &mut self,
        addr: IpAddr,
        port: u16,
        proto: u8,
        flags: u32,
        backends: &[IpAddr],
        assign: impl Fn(usize) -> usize,
    ) -> TestVip {
        let vip_id = self.next_vip_id;
        self.next_vip_id += 1;
        let mut ids = Vec::new();
        for b in backends {
            let id = self.next_backend_id;
            self.next_backend_id += 1;
            self.add_neighbour(*b);
            self.dp
                .set_backend(id, &Backend::new(*b, vip_id, 100, true))
                .unwrap_or_else(|e| panic!("{e}"));
            ids.push(id);
        }
        let size = TEST_SIZES.table_size;
        let offset = TEST_SIZES.table_offset(vip_id);
        let table: Vec<u32> = if ids.is_empty() {
            vec![0; size as usize]
        } else {
            (0..size as usize).map(|s| ids[assign(s)]).collect()
        };
        self.dp.maglev().write(offset, &table);
        self.set_filter_bit(addr);
        let key = VipKey::new(addr, port, proto);
        let info = VipInfo::new(vip_id, flags, offset, size);
        self.dp
            .set_vip(&key, &info)
            .unwrap_or_else(|e| panic!("{e}"));
        self.installed.push((key, flags));
        self.write_marker(addr, true);
        TestVip {
            key,
            info,
            backend_ids: ids,
            backends: backends.to_vec(),
        }
    }

    /// Switches a VIP's forwarding mode (and GUE port) with one update of
    /// its entry, as the control plane does.
    pub fn set_forwarding(
        &mut self,
        vip: &mut TestVip,
        mode: lb_common::Forwarding,
        gue_port: u16,
    ) {
        vip.info = vip.info.with_forwarding(mode, gue_port);
        self.dp
            .set_vip(&vip.key, &vip.info)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Writes the marker of `addr`: echo requests answered when `ping`;
    /// each protocol's fragments to the address's only VIP of it, when that
    /// VIP hashes the source address (`reconcile::markers`' rule).
    pub fn write_marker(&mut self, addr: IpAddr, ping: bool) {
        let owner = |proto: u8| {
            let of_proto = self
                .installed
                .iter()
                .filter(|(k, _)| k.addr() == addr && k.proto() == proto);
            match fragment_owner(
                of_proto.map(|(k, f)| (k.port(), f & lb_common::VIP_F_SOURCE_HASH != 0)),
            ) {
                FragmentOwner::Vip { port } => Some(port),
                _ => None,
            }
        };
        let info = VipInfo::marker(
            ping,
            owner(lb_common::PROTO_TCP),
            owner(lb_common::PROTO_UDP),
        );
        self.dp
            .set_vip(&VipKey::marker(addr), &info)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sets `addr`'s bit in the VIP-address filter (before its VIP entry,
    /// as the control plane does).
    pub fn set_filter_bit(&mut self, addr: IpAddr) {
        let (index, mask) = lb_common::vip_filter_slot_of(addr);
        let word = self
            .dp
            .vip_filter_word(index)
            .unwrap_or_else(|e| panic!("{e}"))
            | mask;
        self.dp
            .set_vip_filter_word(index, word)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Rewrites a VIP's table so slot `s` holds `vip.backend_ids[assign(s)]`.
    pub fn set_table(&mut self, vip: &TestVip, assign: impl Fn(usize) -> usize) {
        let table: Vec<u32> = (0..vip.info.table_size as usize)
            .map(|s| vip.backend_ids[assign(s)])
            .collect();
        self.dp.maglev().write(vip.info.table_offset, &table);
    }

    /// A static, permanent neighbour entry for `addr` with [`backend_mac`].
    pub fn add_neighbour(&self, addr: IpAddr) {
        self.add_neighbour_on(addr, IFACE);
    }

    /// [`add_neighbour`](Self::add_neighbour) on device `dev`.
    pub fn add_neighbour_on(&self, addr: IpAddr, dev: &str) {
        let mac = backend_mac(addr);
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        self.ns.ip(&format!(
            "neigh replace {addr} lladdr {mac} dev {dev} nud permanent"
        ));
    }

    /// A stand-in for a VLAN sub-interface of `parent`, for a kernel without
    /// 802.1Q support (`CONFIG_VLAN_8021Q` unset, as on the test machines):
    /// a veth `name` (peer `<name>p`) with `addrs` (CIDR), up, recorded in
    /// `XLB_VLANS` as VLAN `id` with protocol `tpid` of `parent`, which is
    /// what the daemon records for a real VLAN device. The FIB routes to it
    /// like to a VLAN device; the data plane knows VLANs only from the map.
    /// Returns its ifindex.
    pub fn add_vlan_standin(
        &mut self,
        name: &str,
        parent: &str,
        id: u16,
        tpid: u16,
        addrs: &[&str],
    ) -> u32 {
        self.ns
            .ip(&format!("link add {name} type veth peer name {name}p"));
        for a in addrs {
            let nodad = if a.contains(':') { " nodad" } else { "" };
            self.ns.ip(&format!("addr add {a} dev {name}{nodad}"));
        }
        self.ns.ip(&format!("link set {name} up"));
        self.ns.ip(&format!("link set {name}p up"));
        let ifindex = self.ns.ifindex(name);
        let mut vlans = self
            .dp
            .vlan_devices()
            .unwrap_or_else(|e| panic!("reading XLB_VLANS: {e}"));
        vlans.insert(ifindex, VlanDevice::new(self.ns.ifindex(parent), id, tpid));
        self.dp
            .sync_vlans(&vlans)
            .unwrap_or_else(|e| panic!("writing XLB_VLANS: {e}"));
        ifindex
    }

    /// Records the namespace's VLAN devices in `XLB_VLANS` as the daemon
    /// does (read over netlink), and returns how many there are.
    pub fn sync_vlans(&mut self) -> usize {
        let links = lb_userspace::vlan_devices::read_blocking()
            .unwrap_or_else(|e| panic!("reading VLAN devices: {e:#}"));
        let (devices, _) = lb_userspace::vlan_devices::by_ifindex(&links);
        self.dp
            .sync_vlans(&devices)
            .unwrap_or_else(|e| panic!("writing XLB_VLANS: {e}"));
        devices.len()
    }

    /// Runs the balancer once on `frame`, as if it arrived on `xlbp0`.
    pub fn run(&mut self, frame: &[u8]) -> RunResult {
        self.try_run(frame)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {} bytes: {e}", frame.len()))
    }

    /// Like [`run`](Self::run), returning the kernel's refusal instead of
    /// panicking (it refuses frames shorter than an Ethernet header).
    pub fn try_run(&mut self, frame: &[u8]) -> Result<RunResult, aya::programs::ProgramError> {
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = self.try_run_into(frame, &mut out)?;
        out.truncate(len);
        Ok(RunResult { action, out })
    }

    /// Like [`try_run`](Self::try_run) without allocating: the output frame
    /// goes into `out` (which must hold it: the kernel refuses a short
    /// buffer); returns the XDP action and the output length.
    pub fn try_run_into(
        &mut self,
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<(u32, usize), aya::programs::ProgramError> {
        let ifindex = self.ifindex;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex. With a context the kernel takes the
        // packet bounds from it: data 0 (no metadata), data_end = length.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let prog = self.dp.program().unwrap_or_else(|e| panic!("{e}"));
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(out),
            ctx_in: Some(&ctx),
            repeat: 1,
            ..Default::default()
        })?;
        Ok((r.return_value, r.data_size_out as usize))
    }
}

/// Makes `iface`/`peer` a veth pair in `ns` with the balancer's addresses
/// (10.0.0.1/24, fd00::1/64) on `iface` and forwarding on; returns `iface`'s
/// index and MAC. `bpf_fib_lookup` refuses to forward (FWD_DISABLED) unless
/// the ingress interface forwards, as a balancer host must.
pub fn balancer_link(ns: &NetNs, iface: &str, peer: &str) -> (u32, [u8; 6]) {
    ns.ip(&format!("link add {iface} type veth peer name {peer}"));
    ns.ip(&format!("addr add 10.0.0.1/24 dev {iface}"));
    ns.ip(&format!("addr add fd00::1/64 dev {iface} nodad"));
    ns.ip(&format!("link set {iface} up"));
    ns.ip(&format!("link set {peer} up"));
    ns.sysctl("net.ipv4.conf.all.forwarding=1");
    ns.sysctl("net.ipv6.conf.all.forwarding=1");
    (ns.ifindex(iface), ns.mac(iface))
}

/// The MAC the fixture's neighbour table gives a backend: 02:be + last 4 bytes.
pub fn backend_mac(addr: IpAddr) -> [u8; 6] {
    let b = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets()[12..].to_vec(),
    };
    [0x02, 0xbe, b[0], b[1], b[2], b[3]]
}

/// A short namespace tag from a test name (namespace names are limited).
fn short(test: &str) -> String {
    let t: String = test.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let n = t.len();
    format!("p{}", &t[n.saturating_sub(16)..])
}

/// Runs any loaded XDP program once on `frame` (no interface context).
pub fn run_program(prog: &aya::programs::Xdp, frame: &[u8]) -> RunResult {
    let mut out = vec![0u8; frame.len() + 256];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: 1,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {} bytes: {e}", frame.len()));
    out.truncate(r.data_size_out as usize);
    RunResult {
        action: r.return_value,
        out,
    }
}
