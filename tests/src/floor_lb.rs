//! The per-packet benchmark's essential-work floors `xlb_floor_lb`,
//! `xlb_floor_lb16`, `xlb_floor_entry`, `xlb_floor_min` and `xlb_floor_full` (lb-ebpf's
//! `aux_programs.rs`, names in `lb_common::floor_lb`) filled for one established IPv4 TCP flow: its VIP,
//! its entry in both connection tables, its backend and the next hop. Shared
//! by the benchmark and the packet test, so both measure and check the same
//! setup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues},
    util::nr_cpus,
    Ebpf,
};
use lb_common::{
    floor_lb::{self, FloorLbHop, FlowKey16},
    vip_filter_slot_of, Backend, CachedHop, FlowKey, FlowValue, GlobalConfig, MacPair, VipInfo,
    VipKey, VipPolicy, VipSlot, DEFAULT_OUTER_TTL, PROTO_TCP,
};
use lb_userspace::dataplane::aux::AuxPrograms;

/// The flow's backend id in the floors' backend array.
pub const BACKEND_ID: u32 = 1;
/// The flow's VIP's index in `xlb_floor_entry`'s configs.
pub const CFG_INDEX: u32 = 3;
/// The flow's VIP id (its backend's `vip_id`).
pub const VIP_ID: u32 = 1;

/// The one flow the floors balance, and where its packets go.
#[derive(Clone, Copy, Debug)]
pub struct OneFlow {
    pub client: Ipv4Addr,
    pub sport: u16,
    pub vip: Ipv4Addr,
    pub dport: u16,
    pub backend: Ipv4Addr,
    pub hop: FloorLbHop,
    /// The interface its packets arrive on and leave by (XDP_TX): the next
    /// hop `xlb_floor_full` finds cached (a test run without a context
    /// arrives on the loopback, 1).
    pub ifindex: u32,
}

/// The one IPv6 flow `xlb_floor_min6` and `xlb_floor_full` balance.
#[derive(Clone, Copy, Debug)]
pub struct OneFlow6 {
    pub client: Ipv6Addr,
    pub sport: u16,
    pub vip: Ipv6Addr,
    pub dport: u16,
    pub backend: Ipv6Addr,
    /// Its outer source is IPv6 (`FloorLbHop::new_v6`).
    pub hop: FloorLbHop,
    /// As [`OneFlow::ifindex`].
    pub ifindex: u32,
}

/// The IPv6 flow's backend id in the floors' backend array.
pub const BACKEND_ID6: u32 = 2;
/// The IPv6 flow's VIP id (its backend's `vip_id`).
pub const VIP_ID6: u32 = 2;
/// The IPv6 flow's VIP's index in the floors' configs.
pub const CFG_INDEX6: u32 = 4;

/// Writes `flow`'s entry in `XLB_FLB_FLOWS` (backend [`BACKEND_ID6`]), the
/// backend (of [`VIP_ID6`], IP-in-IP in `XLB_FLB_VIPARR`, its config at
/// [`CFG_INDEX6`]) and the hop in slot `HOP_SLOT_V6`: what
/// `xlb_floor_min6` and `xlb_floor_full` read.
pub fn install6(maps: &mut impl AuxMaps, flow: &OneFlow6) -> Result<()> {
    let key = FlowKey::new(
        IpAddr::V6(flow.client),
        flow.sport,
        IpAddr::V6(flow.vip),
        flow.dport,
        PROTO_TCP,
    )?;
    let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
        HashMap::try_from(map(maps, floor_lb::FLOWS_MAP)?)?;
    flows
        .insert(key, FlowValue::new(BACKEND_ID6, 0), 0)
        .with_context(|| format!("writing {}", floor_lb::FLOWS_MAP))?;
    install_way_out(
        maps,
        BACKEND_ID6,
        VIP_ID6,
        IpAddr::V6(flow.backend),
        floor_lb::HOP_SLOT_V6,
        flow.hop,
    )?;
    install_vip_slot(maps, VIP_ID6, CFG_INDEX6, IpAddr::V6(flow.vip), flow.dport)?;
    let outer_src = IpAddr::V6(Ipv6Addr::from(*flow.hop.outer_src16()));
    let full = FullFlow {
        vip: IpAddr::V6(flow.vip),
        vip_id: VIP_ID6,
        backend_id: BACKEND_ID6,
        outer_src,
        ifindex: flow.ifindex,
    };
    install_full(maps, &full, &flow.hop)
}

/// Writes the VIP `vip:dport` (TCP) as VIP `id`'s config at `index`
/// (`XLB_FLB_CFG_IX`, `XLB_FLB_CFG`): what `xlb_floor_entry` and
/// `xlb_floor_full` check an entry's VIP against.
fn install_vip_slot(
    maps: &mut impl AuxMaps,
    id: u32,
    index: u32,
    vip: IpAddr,
    dport: u16,
) -> Result<()> {
    let mut configs: Array<&mut MapData, VipSlot> = Array::try_from(map(maps, floor_lb::CFG_MAP)?)?;
    configs
        .set(
            index,
            VipSlot::new(
                VipKey::new(vip, dport, PROTO_TCP),
                VipInfo::new(id, 0, 0, 0),
            ),
            0,
        )
        .with_context(|| format!("writing {}", floor_lb::CFG_MAP))?;
    let mut ix: Array<&mut MapData, u64> = Array::try_from(map(maps, floor_lb::CFG_IX_MAP)?)?;
    ix.set(id, u64::from(index), 0)
        .with_context(|| format!("writing {}", floor_lb::CFG_IX_MAP))?;
    Ok(())
}

/// Writes backend `id` (at `addr`, of VIP `vip_id`), the VIP in
/// `XLB_FLB_VIPARR` (IP-in-IP) and `hop` in slot `hop_slot`: where a
/// floor's packet goes once its entry named the backend.
fn install_way_out(
    maps: &mut impl AuxMaps,
    id: u32,
    vip_id: u32,
    addr: IpAddr,
    hop_slot: u32,
    hop: FloorLbHop,
) -> Result<()> {
    let mut backends: Array<&mut MapData, Backend> =
        Array::try_from(map(maps, floor_lb::BACKENDS_MAP)?)?;
    backends
        .set(id, Backend::new(addr, vip_id, 100, true), 0)
        .with_context(|| format!("writing {}", floor_lb::BACKENDS_MAP))?;
    let mut viparr: Array<&mut MapData, VipInfo> =
        Array::try_from(map(maps, floor_lb::VIPARR_MAP)?)?;
    viparr
        .set(vip_id, VipInfo::new(vip_id, 0, 0, 0), 0)
        .with_context(|| format!("writing {}", floor_lb::VIPARR_MAP))?;
    let mut hops: Array<&mut MapData, FloorLbHop> = Array::try_from(map(maps, floor_lb::HOP_MAP)?)?;
    hops.set(hop_slot, hop, 0)
        .with_context(|| format!("writing {}", floor_lb::HOP_MAP))?;
    Ok(())
}

/// Where the auxiliary object's maps are: a plain loaded object (tests) or
/// the daemon library's `AuxPrograms` (the benchmark's environment).
pub trait AuxMaps {
    fn aux_map(&mut self, name: &str) -> Option<&mut Map>;
}

impl AuxMaps for Ebpf {
    fn aux_map(&mut self, name: &str) -> Option<&mut Map> {
        self.map_mut(name)
    }
}

impl AuxMaps for AuxPrograms {
    fn aux_map(&mut self, name: &str) -> Option<&mut Map> {
        self.map_mut(name)
    }
}

fn map<'a>(maps: &'a mut impl AuxMaps, name: &str) -> Result<&'a mut Map> {
    maps.aux_map(name)
        .with_context(|| format!("the auxiliary object has no map {name}"))
}

/// Writes `flow`'s VIP (exact port; in `XLB_FLB_VIPS`, as the config of its
/// id in `XLB_FLB_CFG_IX`/`XLB_FLB_CFG` (at [`CFG_INDEX`]) and in
/// `XLB_FLB_VIPARR`), its entry in `XLB_FLB_FLOWS` and `XLB_FLB_FLOWS16`
/// (backend [`BACKEND_ID`]), the backend and the hop.
pub fn install(maps: &mut impl AuxMaps, flow: &OneFlow) -> Result<()> {
    let (client, vip) = (IpAddr::V4(flow.client), IpAddr::V4(flow.vip));
    let mut vips: HashMap<&mut MapData, VipKey, VipInfo> =
        HashMap::try_from(map(maps, floor_lb::VIPS_MAP)?)?;
    vips.insert(
        VipKey::new(vip, flow.dport, PROTO_TCP),
        VipInfo::new(VIP_ID, 0, 0, 0),
        0,
    )
    .with_context(|| format!("writing {}", floor_lb::VIPS_MAP))?;
    let entry = FlowValue::new(BACKEND_ID, 0);
    let key = FlowKey::new(client, flow.sport, vip, flow.dport, PROTO_TCP)?;
    let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
        HashMap::try_from(map(maps, floor_lb::FLOWS_MAP)?)?;
    flows
        .insert(key, entry, 0)
        .with_context(|| format!("writing {}", floor_lb::FLOWS_MAP))?;
    let key16 = FlowKey16::new(flow.client, flow.sport, flow.vip, flow.dport, PROTO_TCP);
    let mut flows16: HashMap<&mut MapData, FlowKey16, FlowValue> =
        HashMap::try_from(map(maps, floor_lb::FLOWS16_MAP)?)?;
    flows16
        .insert(key16, entry, 0)
        .with_context(|| format!("writing {}", floor_lb::FLOWS16_MAP))?;
    install_vip_slot(maps, VIP_ID, CFG_INDEX, vip, flow.dport)?;
    install_way_out(
        maps,
        BACKEND_ID,
        VIP_ID,
        IpAddr::V4(flow.backend),
        0,
        flow.hop,
    )?;
    let outer_src = Ipv4Addr::from(<[u8; 4]>::try_from(&flow.hop.outer_src16()[..4])?);
    let full = FullFlow {
        vip,
        vip_id: VIP_ID,
        backend_id: BACKEND_ID,
        outer_src: IpAddr::V4(outer_src),
        ifindex: flow.ifindex,
    };
    install_full(maps, &full, &flow.hop)
}

/// What `xlb_floor_full` needs to know of a flow beyond the other floors'
/// maps.
struct FullFlow {
    vip: IpAddr,
    vip_id: u32,
    backend_id: u32,
    /// The outer source toward the backend (its family's).
    outer_src: IpAddr,
    ifindex: u32,
}

/// What `xlb_floor_full` reads besides `xlb_floor_entry`'s maps: the VIP's
/// filter bit, its policy (none), `flow.outer_src` as the config's outer
/// source of its family (the other family's is kept: both floors' flows
/// share the one config), and on every CPU a fresh next hop toward the
/// backend out of `flow.ifindex`, untagged, with `hop`'s MACs.
fn install_full(maps: &mut impl AuxMaps, flow: &FullFlow, hop: &FloorLbHop) -> Result<()> {
    let (word, mask) = vip_filter_slot_of(flow.vip);
    let mut filter: Array<&mut MapData, u64> =
        Array::try_from(map(maps, floor_lb::FULL_FILTER_MAP)?)?;
    let bits = filter.get(&word, 0).unwrap_or(0);
    filter
        .set(word, bits | mask, 0)
        .with_context(|| format!("writing {}", floor_lb::FULL_FILTER_MAP))?;
    let mut policy: Array<&mut MapData, VipPolicy> =
        Array::try_from(map(maps, floor_lb::FULL_POLICY_MAP)?)?;
    policy
        .set(flow.vip_id, VipPolicy::default(), 0)
        .with_context(|| format!("writing {}", floor_lb::FULL_POLICY_MAP))?;
    let mut config: Array<&mut MapData, GlobalConfig> =
        Array::try_from(map(maps, floor_lb::FULL_CONFIG_MAP)?)?;
    let old = config.get(&0, 0).ok();
    let mut v4 = old.and_then(|c| c.src_v4_octets().copied().map(Ipv4Addr::from));
    let mut v6 = old.and_then(|c| c.src_v6_octets().copied().map(Ipv6Addr::from));
    match flow.outer_src {
        IpAddr::V4(a) => v4 = Some(a),
        IpAddr::V6(a) => v6 = Some(a),
    }
    config
        .set(
            0,
            GlobalConfig::new(v4, v6).with_outer_ttl(DEFAULT_OUTER_TTL),
            0,
        )
        .with_context(|| format!("writing {}", floor_lb::FULL_CONFIG_MAP))?;
    let mut cached = CachedHop::default();
    cached.expires_ns = u64::MAX;
    cached.ifindex = flow.ifindex;
    cached.checked_len = u16::MAX;
    cached.set_macs(&MacPair::new(hop.smac(), hop.dmac()));
    let cpus = nr_cpus().map_err(|(_, e)| e)?;
    let mut hops: PerCpuArray<&mut MapData, CachedHop> =
        PerCpuArray::try_from(map(maps, floor_lb::FULL_NEXTHOPS_MAP)?)?;
    hops.set(
        flow.backend_id,
        PerCpuValues::try_from(vec![cached; cpus])?,
        0,
    )
    .with_context(|| format!("writing {}", floor_lb::FULL_NEXTHOPS_MAP))?;
    Ok(())
}
