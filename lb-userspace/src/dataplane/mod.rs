//! Typed access to the balancer's BPF maps: loading the object with the
//! configured sizes (optionally pinned, adopting pins left by a previous run),
//! writing VIPs, backends, Maglev tables, global settings and VLAN devices,
//! and reading stats.
//!
//! This is the only module that knows map names and value layouts on the
//! userspace side; the reconciler and the tests go through it.

pub mod attach;
pub mod aux;
pub mod bpffs_reach;
pub mod decap;
mod maglev_table;
mod map_specs;
mod nat;
pub mod netns_claim;
mod policy;
mod program_load;
mod rcu_wait;
mod vip_configs;

use std::{collections::BTreeMap, os::fd::AsFd, path::PathBuf};

use aya::{
    maps::{Array, DevMapHash, HashMap, Map, MapData, MapError, PerCpuArray},
    programs::{ProgramError, Xdp},
    Ebpf, EbpfLoader, VerifierLogLevel,
};
use lb_common::{
    map_names, program_names, Backend, BackendStats, CachedHop, FlowKey, FlowValue, GlobalConfig,
    Verdict, VipInfo, VipKey, VipSlot, VipStats, VlanDevice,
};
pub use maglev_table::MaglevTable;
pub use map_specs::MapLayout;
use map_specs::MapPlan;
pub use policy::SourcePrefix;
pub(crate) use program_load::load_program;
use thiserror::Error;

use crate::ebpf_objects;

/// Capacities of the balancer's maps, fixed when they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub max_vips: u32,
    pub max_backends: u32,
    /// Slots per VIP table (a prime); VIP `i`'s table starts at `i * table_size`.
    pub table_size: u32,
    pub flow_table_size: u32,
    /// Entries of each of full NAT's session maps (`XLB_NAT_FWD`,
    /// `XLB_NAT_REV`).
    pub nat_table_size: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            max_vips: lb_common::DEFAULT_MAX_VIPS,
            max_backends: lb_common::DEFAULT_MAX_BACKENDS,
            table_size: lb_common::DEFAULT_TABLE_SIZE,
            flow_table_size: lb_common::DEFAULT_FLOW_TABLE_SIZE,
            nat_table_size: lb_common::DEFAULT_NAT_TABLE_SIZE,
        }
    }
}

impl Sizes {
    /// Slots of all tables together: every VIP id owns a whole table.
    pub fn maglev_slots(&self) -> Option<u32> {
        self.max_vips.checked_mul(self.table_size)
    }

    /// Elements of `XLB_MAGLEV`, which packs two slots per 8-byte element.
    pub fn maglev_elements(&self) -> Option<u32> {
        self.maglev_slots().map(|s| s.div_ceil(2))
    }

    /// Entries of `XLB_VIPS`: each VIP plus one address marker per VIP address.
    pub fn vip_map_entries(&self) -> u32 {
        self.max_vips.saturating_mul(2)
    }

    /// Offset of VIP `vip_id`'s table in `XLB_MAGLEV`.
    pub fn table_offset(&self, vip_id: u32) -> u32 {
        vip_id * self.table_size
    }
}

/// What the connection table really holds: the kernel sizes it for equal
/// per-CPU LRU lists (see `map_specs::per_cpu_lru_max_entries`), and a flow
/// only ever uses the list of the CPU that receives its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTableCapacity {
    /// `flow_table_size` as configured.
    pub requested: u32,
    /// Entries of the map as the kernel created it.
    pub entries: u32,
    /// CPUs in `/sys/devices/system/cpu/possible`: one LRU list each.
    pub possible_cpus: u32,
}

impl FlowTableCapacity {
    /// Entries of each CPU's LRU list.
    pub fn per_cpu(&self) -> u32 {
        self.entries / self.possible_cpus.max(1)
    }
}

/// How to load the balancer.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub sizes: Sizes,
    /// Pin every map under this directory (created if missing), or adopt the
    /// maps already pinned there.
    pub pin_dir: Option<PathBuf>,
    /// aya-log level for the eBPF side: 0 off, 1 error .. 5 trace. With 0 the
    /// verifier prunes every log statement, so the fast path pays nothing.
    pub bpf_log_level: u8,
}

#[derive(Debug, Error)]
pub enum DataplaneError {
    #[error(transparent)]
    MissingObject(#[from] ebpf_objects::MissingObject),
    #[error("cannot count the possible CPUs from {path}")]
    PossibleCpus {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("map {name} needs {what} entries, which overflows u32")]
    SizeOverflow {
        name: &'static str,
        what: &'static str,
    },
    #[error("cannot create the pin directory {}", path.display())]
    PinDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the pin {} an earlier xlb left", path.display())]
    LegacyPin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the eBPF object failed")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("the object has no map {name}")]
    MissingMap { name: &'static str },
    #[error("the object has no program {name}")]
    MissingProgram { name: &'static str },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error(
        "pinned map {name} is {found}, but this xlb expects {expected}; the pinned state comes \
         from an incompatible config or version: run `xlb down` to remove it"
    )]
    PinnedLayout {
        name: &'static str,
        found: MapLayout,
        expected: MapLayout,
    },
    #[error("the verifier rejected {program}: {reason}\nverifier log (tail):\n{log_tail}")]
    Verifier {
        program: &'static str,
        reason: String,
        log_tail: String,
    },
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("the kernel refused interface {ifindex} as a redirect target")]
    TxPortUnsupported { ifindex: u32 },
    #[error("mapping {name} into memory failed")]
    Mmap {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no free index in XLB_VIP_CFG for vip id {id}: every one is in use")]
    VipConfigsFull { id: u32 },
    #[error("backend id {id} is outside XLB_BACKENDS (max_backends {max})")]
    BackendOutOfRange { id: u32, max: u32 },
    #[error("vip id {id} is outside the VIP maps (max_vips {max})")]
    VipOutOfRange { id: u32, max: u32 },
}

/// The loaded balancer object and typed handles on its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    sizes: Sizes,
    flow_capacity: FlowTableCapacity,
    vips: HashMap<MapData, VipKey, VipInfo>,
    /// `XLB_VIP_CFG` and `XLB_VIP_CFG_IX`: kept in step with `vips` by
    /// `set_vip`/`remove_vip`.
    vip_configs: vip_configs::VipConfigs,
    vip_filter: Array<MapData, u64>,
    backends: Array<MapData, Backend>,
    maglev: MaglevTable,
    flows: HashMap<MapData, FlowKey, FlowValue>,
    config: Array<MapData, GlobalConfig>,
    tx_ports: DevMapHash<MapData>,
    vip_stats: PerCpuArray<MapData, VipStats>,
    backend_stats: PerCpuArray<MapData, BackendStats>,
    next_hops: PerCpuArray<MapData, CachedHop>,
    verdicts: PerCpuArray<MapData, u64>,
    vlans: HashMap<MapData, u32, VlanDevice>,
    policy: policy::PolicyMaps,
    nat: nat::NatMaps,
}

/// What [`Dataplane::sync_vlans`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanSync {
    pub added_or_changed: usize,
    pub removed: usize,
}

impl Dataplane {
    /// Loads the balancer object with `opts.sizes` and loads (verifies) the XDP
    /// program; attaching it is separate.
    pub fn load(opts: &LoadOptions) -> Result<Self, DataplaneError> {
        let bytes = ebpf_objects::require("balancer", ebpf_objects::BALANCER)?;
        let sizes = opts.sizes;
        let maps = MapPlan::resolve(map_specs::BALANCER, &sizes)?;
        let mut loader = EbpfLoader::new();
        maps.configure(&mut loader, opts.pin_dir.as_deref())?;
        loader
            .override_global("AYA_LOG_LEVEL", &opts.bpf_log_level, false)
            .verifier_log_level(VerifierLogLevel::DEBUG | VerifierLogLevel::STATS);
        let mut ebpf = loader
            .load(bytes)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        if let Some(dir) = opts.pin_dir.as_deref() {
            maps.check_adopted(&ebpf)?;
            retire_legacy_vip_slots(dir)?;
        }

        let program = xdp_program(&mut ebpf, program_names::BALANCER)?;
        load_program(program, program_names::BALANCER)?;

        let maglev_entries = maps.entries(map_names::MAGLEV)?;
        let maglev_map = take(&mut ebpf, map_names::MAGLEV)?;
        let maglev = match &maglev_map {
            Map::Array(data) => {
                MaglevTable::map(data.fd().as_fd(), maglev_entries * 2, sizes.table_size).map_err(
                    |source| DataplaneError::Mmap {
                        name: map_names::MAGLEV,
                        source,
                    },
                )?
            }
            _ => {
                return Err(map_err(
                    map_names::MAGLEV,
                    MapError::InvalidMapType { map_type: 0 },
                ))
            }
        };
        drop(maglev_map);
        let flows_map = ebpf
            .map(map_names::FLOWS)
            .ok_or(DataplaneError::MissingMap {
                name: map_names::FLOWS,
            })?;
        let flow_capacity = FlowTableCapacity {
            requested: sizes.flow_table_size,
            entries: MapLayout::of(flows_map)
                .map_err(|e| map_err(map_names::FLOWS, e))?
                .max_entries,
            possible_cpus: maps.possible_cpus(),
        };

        let mut dataplane = Self {
            vips: typed(&mut ebpf, map_names::VIPS)?,
            vip_configs: vip_configs::VipConfigs::take(
                take(&mut ebpf, map_names::VIP_CFG)?,
                take(&mut ebpf, map_names::VIP_CFG_IX)?,
                sizes.max_vips,
                opts.pin_dir.is_some(),
            )?,
            vip_filter: typed(&mut ebpf, map_names::VIP_FILTER)?,
            backends: typed(&mut ebpf, map_names::BACKENDS)?,
            maglev,
            flows: typed(&mut ebpf, map_names::FLOWS)?,
            config: typed(&mut ebpf, map_names::CONFIG)?,
            tx_ports: typed(&mut ebpf, map_names::TX_PORTS)?,
            vip_stats: typed(&mut ebpf, map_names::VIP_STATS)?,
            backend_stats: typed(&mut ebpf, map_names::BACKEND_STATS)?,
            next_hops: typed(&mut ebpf, map_names::NEXTHOPS)?,
            verdicts: typed(&mut ebpf, map_names::VERDICTS)?,
            vlans: typed(&mut ebpf, map_names::VLANS)?,
            policy: policy::PolicyMaps::take(&mut ebpf)?,
            nat: nat::NatMaps::load(&mut ebpf)?,
            sizes,
            flow_capacity,
            ebpf,
        };
        // Adopted maps may come from a daemon that kept no slots.
        dataplane.sync_vip_slots()?;
        Ok(dataplane)
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// What the connection table holds, as the kernel created it.
    pub fn flow_capacity(&self) -> FlowTableCapacity {
        self.flow_capacity
    }

    /// The loaded `xlb_balancer` program (for attaching and test runs).
    pub fn program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        xdp_program(&mut self.ebpf, program_names::BALANCER)
    }

    /// The whole aya object, for what this wrapper does not cover (aya-log).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    // ---- VIPs -------------------------------------------------------------

    pub fn set_vip(&mut self, key: &VipKey, info: &VipInfo) -> Result<(), DataplaneError> {
        if info.vip_id >= self.sizes.max_vips && info.table_size != 0 {
            return Err(DataplaneError::VipOutOfRange {
                id: info.vip_id,
                max: self.sizes.max_vips,
            });
        }
        // The slot first: the data plane reaches a VIP through its slot
        // only from flows whose backends already belong to it, and then
        // takes exactly what the map will hold. A VIP that moves to another
        // id leaves its old slot empty.
        if !key.is_marker() {
            if let Some(old) = self.vip(key)?.filter(|old| old.vip_id != info.vip_id) {
                self.clear_vip_slot(old.vip_id, key)?;
            }
            self.set_vip_slot(info.vip_id, &VipSlot::new(*key, *info))?;
        }
        if let Err(e) = self.vips.insert(key, info, 0) {
            // The map does not hold the VIP: neither may its slot (nothing
            // would remove it: the reconciler reads its state from the map).
            if !key.is_marker() {
                self.clear_vip_slot(info.vip_id, key)?;
            }
            return Err(map_err(map_names::VIPS, e));
        }
        Ok(())
    }

    pub fn remove_vip(&mut self, key: &VipKey) -> Result<(), DataplaneError> {
        // The slot first, so that no packet reaches the VIP through it once
        // the map has lost the VIP.
        if let Some(info) = self.vip(key)?.filter(|_| !key.is_marker()) {
            self.clear_vip_slot(info.vip_id, key)?;
        }
        match self.vips.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(map_names::VIPS, e)),
        }
    }

    /// The slot of VIP `vip_id` (its `XLB_VIP_CFG_IX` index's
    /// `XLB_VIP_CFG` element), if it has one.
    pub fn vip_slot(&self, vip_id: u32) -> Result<Option<VipSlot>, DataplaneError> {
        self.vip_configs.get(vip_id)
    }

    /// Gives VIP `vip_id` the slot `slot` (at a fresh index: packets read
    /// the old slot or this one, each whole). An id beyond `max_vips` gets
    /// none (such a VIP has no table either, see `set_vip`): its packets
    /// look it up.
    fn set_vip_slot(&mut self, vip_id: u32, slot: &VipSlot) -> Result<(), DataplaneError> {
        self.vip_configs.set(vip_id, slot)
    }

    /// Takes VIP `vip_id`'s slot away if it holds the VIP `key` (the id may
    /// already serve the VIP that replaces it).
    fn clear_vip_slot(&mut self, vip_id: u32, key: &VipKey) -> Result<(), DataplaneError> {
        if self.vip_slot(vip_id)?.is_some_and(|s| s.key == *key) {
            self.vip_configs.clear(vip_id);
        }
        Ok(())
    }

    /// Rewrites the slots from `XLB_VIPS`: after adopting maps pinned by a
    /// daemon that kept no slots (or other ones), the slots hold exactly
    /// the map's VIPs.
    fn sync_vip_slots(&mut self) -> Result<(), DataplaneError> {
        let max_vips = self.sizes.max_vips;
        let want: BTreeMap<u32, VipSlot> = self
            .vips()?
            .into_iter()
            .filter(|(key, info)| !key.is_marker() && info.vip_id < max_vips)
            .map(|(key, info)| (info.vip_id, VipSlot::new(key, info)))
            .collect();
        for id in self.vip_configs.ids() {
            if !want.contains_key(&id) {
                self.vip_configs.clear(id);
            }
        }
        for (id, slot) in &want {
            self.set_vip_slot(*id, slot)?;
        }
        Ok(())
    }

    /// The entry of `key` in `XLB_VIPS`.
    pub fn vip(&self, key: &VipKey) -> Result<Option<VipInfo>, DataplaneError> {
        match self.vips.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map_names::VIPS, e)),
        }
    }

    /// Every entry of `XLB_VIPS`, address markers included.
    pub fn vips(&self) -> Result<Vec<(VipKey, VipInfo)>, DataplaneError> {
        self.vips
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| map_err(map_names::VIPS, e))
    }

    /// Word `index` of the VIP-address bitmap `XLB_VIP_FILTER`.
    pub fn set_vip_filter_word(&mut self, index: u32, word: u64) -> Result<(), DataplaneError> {
        self.vip_filter
            .set(index, word, 0)
            .map_err(|e| map_err(map_names::VIP_FILTER, e))
    }

    /// Word `index` of the VIP-address bitmap.
    pub fn vip_filter_word(&self, index: u32) -> Result<u64, DataplaneError> {
        self.vip_filter
            .get(&index, 0)
            .map_err(|e| map_err(map_names::VIP_FILTER, e))
    }

    /// The non-zero words of the VIP-address bitmap, by index.
    pub fn vip_filter_words(&self) -> Result<BTreeMap<u32, u64>, DataplaneError> {
        let mut out = BTreeMap::new();
        for (index, word) in self.vip_filter.iter().enumerate() {
            let word = word.map_err(|e| map_err(map_names::VIP_FILTER, e))?;
            if word != 0 {
                out.insert(index as u32, word);
            }
        }
        Ok(out)
    }

    /// Whether the bitmap lets traffic to `addr` on to the VIP lookups
    /// (`false`: the data plane passes it as no VIP's).
    pub fn vip_filter_admits(&self, addr: std::net::IpAddr) -> Result<bool, DataplaneError> {
        let (index, mask) = lb_common::vip_filter_slot_of(addr);
        Ok(self.vip_filter_word(index)? & mask != 0)
    }

    // ---- backends ---------------------------------------------------------

    pub fn set_backend(&mut self, id: u32, backend: &Backend) -> Result<(), DataplaneError> {
        self.check_backend_id(id)?;
        self.backends
            .set(id, backend, 0)
            .map_err(|e| map_err(map_names::BACKENDS, e))
    }

    pub fn backend(&self, id: u32) -> Result<Backend, DataplaneError> {
        self.check_backend_id(id)?;
        self.backends
            .get(&id, 0)
            .map_err(|e| map_err(map_names::BACKENDS, e))
    }

    /// Every active backend slot, by id.
    pub fn backends(&self) -> Result<Vec<(u32, Backend)>, DataplaneError> {
        let mut out = Vec::new();
        for (id, b) in self.backends.iter().enumerate() {
            let b = b.map_err(|e| map_err(map_names::BACKENDS, e))?;
            if b.is_active() {
                out.push((id as u32, b));
            }
        }
        Ok(out)
    }

    fn check_backend_id(&self, id: u32) -> Result<(), DataplaneError> {
        if id >= self.sizes.max_backends {
            return Err(DataplaneError::BackendOutOfRange {
                id,
                max: self.sizes.max_backends,
            });
        }
        Ok(())
    }

    // ---- Maglev tables ----------------------------------------------------

    /// The shared mapping of all VIP tables.
    pub fn maglev(&mut self) -> &mut MaglevTable {
        &mut self.maglev
    }

    pub fn maglev_ref(&self) -> &MaglevTable {
        &self.maglev
    }

    // ---- global settings and transmit ports -------------------------------

    pub fn set_global_config(&mut self, cfg: &GlobalConfig) -> Result<(), DataplaneError> {
        self.config
            .set(0, cfg, 0)
            .map_err(|e| map_err(map_names::CONFIG, e))
    }

    pub fn global_config(&self) -> Result<GlobalConfig, DataplaneError> {
        self.config
            .get(&0, 0)
            .map_err(|e| map_err(map_names::CONFIG, e))
    }

    /// Allows redirecting encapsulated packets to `ifindex`.
    pub fn add_tx_port(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        self.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|e| match e {
                aya::maps::xdp::XdpMapError::MapError(e) => map_err(map_names::TX_PORTS, e),
                aya::maps::xdp::XdpMapError::ChainedProgramNotSupported => {
                    DataplaneError::TxPortUnsupported { ifindex }
                }
            })
    }

    pub fn remove_tx_port(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        match self.tx_ports.remove(ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(map_names::TX_PORTS, e)),
        }
    }

    pub fn tx_ports(&self) -> Result<Vec<u32>, DataplaneError> {
        self.tx_ports
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| map_err(map_names::TX_PORTS, e))
    }

    // ---- VLAN devices -----------------------------------------------------

    /// Makes `XLB_VLANS` hold exactly `devices` (ifindex -> VLAN device):
    /// stale entries are removed first (an ifindex may have been reused),
    /// then new and changed ones written. The data plane's next-hop cache
    /// picks a change up within `NEXTHOP_TTL_NS`.
    pub fn sync_vlans(
        &mut self,
        devices: &BTreeMap<u32, VlanDevice>,
    ) -> Result<VlanSync, DataplaneError> {
        let have = self.vlan_devices()?;
        let mut sync = VlanSync::default();
        for ifindex in have.keys().filter(|i| !devices.contains_key(i)) {
            match self.vlans.remove(ifindex) {
                Ok(()) | Err(MapError::KeyNotFound) => sync.removed += 1,
                Err(e) => return Err(map_err(map_names::VLANS, e)),
            }
        }
        for (ifindex, dev) in devices {
            if have.get(ifindex) != Some(dev) {
                self.vlans
                    .insert(ifindex, dev, 0)
                    .map_err(|e| map_err(map_names::VLANS, e))?;
                sync.added_or_changed += 1;
            }
        }
        Ok(sync)
    }

    /// Every entry of `XLB_VLANS`.
    pub fn vlan_devices(&self) -> Result<BTreeMap<u32, VlanDevice>, DataplaneError> {
        self.vlans
            .iter()
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map_err(|e| map_err(map_names::VLANS, e))
    }

    // ---- connection table -------------------------------------------------

    pub fn flow(&self, key: &FlowKey) -> Result<Option<FlowValue>, DataplaneError> {
        match self.flows.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(map_names::FLOWS, e)),
        }
    }

    pub fn insert_flow(&mut self, key: &FlowKey, value: &FlowValue) -> Result<(), DataplaneError> {
        self.flows
            .insert(key, value, 0)
            .map_err(|e| map_err(map_names::FLOWS, e))
    }

    /// Number of entries currently in the connection table (walks it).
    pub fn flow_count(&self) -> Result<usize, DataplaneError> {
        let mut n = 0;
        for k in self.flows.keys() {
            k.map_err(|e| map_err(map_names::FLOWS, e))?;
            n += 1;
        }
        Ok(n)
    }

    // ---- stats ------------------------------------------------------------

    /// Per-VIP counters summed over CPUs.
    pub fn vip_stats(&self, vip_id: u32) -> Result<VipStats, DataplaneError> {
        let per_cpu = self
            .vip_stats
            .get(&vip_id, 0)
            .map_err(|e| map_err(map_names::VIP_STATS, e))?;
        Ok(per_cpu.iter().fold(VipStats::default(), |a, s| VipStats {
            packets: a.packets + s.packets,
            bytes: a.bytes + s.bytes,
            new_flows: a.new_flows + s.new_flows,
        }))
    }

    /// Per-backend counters summed over CPUs.
    pub fn backend_stats(&self, id: u32) -> Result<BackendStats, DataplaneError> {
        let per_cpu = self
            .backend_stats
            .get(&id, 0)
            .map_err(|e| map_err(map_names::BACKEND_STATS, e))?;
        Ok(per_cpu
            .iter()
            .fold(BackendStats::default(), |a, s| BackendStats {
                packets: a.packets + s.packets,
                bytes: a.bytes + s.bytes,
            }))
    }

    /// Resets a VIP's counters (its id is being given to a new VIP).
    pub fn reset_vip_stats(&mut self, vip_id: u32) -> Result<(), DataplaneError> {
        let zero = per_cpu_zeroes::<VipStats>().map_err(|e| map_err(map_names::VIP_STATS, e))?;
        self.vip_stats
            .set(vip_id, zero, 0)
            .map_err(|e| map_err(map_names::VIP_STATS, e))
    }

    /// Resets a backend's counters (its id is being reused).
    pub fn reset_backend_stats(&mut self, id: u32) -> Result<(), DataplaneError> {
        let zero =
            per_cpu_zeroes::<BackendStats>().map_err(|e| map_err(map_names::BACKEND_STATS, e))?;
        self.backend_stats
            .set(id, zero, 0)
            .map_err(|e| map_err(map_names::BACKEND_STATS, e))
    }

    /// Forgets every CPU's cached next hop for backend `id` (the id is about
    /// to name another backend, whose next hop may differ).
    pub fn reset_next_hop(&mut self, id: u32) -> Result<(), DataplaneError> {
        let zero = per_cpu_zeroes::<CachedHop>().map_err(|e| map_err(map_names::NEXTHOPS, e))?;
        self.next_hops
            .set(id, zero, 0)
            .map_err(|e| map_err(map_names::NEXTHOPS, e))
    }

    /// Packet counts per verdict, summed over CPUs, indexed by `Verdict as usize`.
    pub fn verdicts(&self) -> Result<[u64; Verdict::COUNT as usize], DataplaneError> {
        let mut out = [0u64; Verdict::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
                .verdicts
                .get(&(i as u32), 0)
                .map_err(|e| map_err(map_names::VERDICTS, e))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`), which
/// the kernel sizes per-CPU maps and LRU lists by.
pub fn possible_cpus() -> Result<u32, DataplaneError> {
    let n = aya::util::nr_cpus()
        .map_err(|(path, source)| DataplaneError::PossibleCpus { path, source })?;
    // More CPUs than u32 holds cannot exist (the kernel counts them in u32).
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn per_cpu_zeroes<T: aya::Pod + Default>() -> Result<aya::maps::PerCpuValues<T>, MapError> {
    let n = aya::util::nr_cpus().map_err(|(_, io_error)| {
        MapError::SyscallError(aya::sys::SyscallError {
            call: "nr_cpus",
            io_error,
        })
    })?;
    aya::maps::PerCpuValues::try_from(vec![T::default(); n]).map_err(|io_error| {
        MapError::SyscallError(aya::sys::SyscallError {
            call: "nr_cpus",
            io_error,
        })
    })
}

fn map_err(name: &'static str, source: MapError) -> DataplaneError {
    DataplaneError::Map {
        name,
        source: Box::new(source),
    }
}

pub(super) fn program_error(name: &'static str, e: ProgramError) -> DataplaneError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            DataplaneError::Verifier {
                program: name,
                reason: io_error.to_string(),
                log_tail: tail,
            }
        }
        source => DataplaneError::Program {
            name,
            source: Box::new(source),
        },
    }
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataplaneError> {
    let p = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram { name })?;
    p.try_into().map_err(|source| DataplaneError::Program {
        name,
        source: Box::new(source),
    })
}

/// The hash map through which xlb before `XLB_VIP_CFG` reached an
/// established flow's VIP by its id.
pub const LEGACY_VIP_SLOTS: &str = "XLB_VIP_SLOTS";

/// Empties and unpins `LEGACY_VIP_SLOTS` if an earlier xlb left it in
/// `dir`: that xlb's program may still be attached (through its pinned
/// links) until this one replaces it, and reads its VIPs there, which this
/// daemon no longer keeps in step with `XLB_VIPS`. Empty, it sends every
/// packet of the old program to the `XLB_VIPS` lookup, which stays right.
fn retire_legacy_vip_slots(dir: &std::path::Path) -> Result<(), DataplaneError> {
    let pin = dir.join(LEGACY_VIP_SLOTS);
    if !pin.exists() {
        return Ok(());
    }
    let data = MapData::from_pin(&pin).map_err(|e| map_err(LEGACY_VIP_SLOTS, e))?;
    let mut slots: HashMap<MapData, u32, VipSlot> =
        HashMap::try_from(Map::HashMap(data)).map_err(|e| map_err(LEGACY_VIP_SLOTS, e))?;
    let ids = slots
        .keys()
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|e| map_err(LEGACY_VIP_SLOTS, e))?;
    for id in ids {
        match slots.remove(&id) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(LEGACY_VIP_SLOTS, e)),
        }
    }
    std::fs::remove_file(&pin).map_err(|source| DataplaneError::LegacyPin { path: pin, source })
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, DataplaneError> {
    ebpf.take_map(name)
        .ok_or(DataplaneError::MissingMap { name })
}

fn typed<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<Map, Error = MapError>,
{
    T::try_from(take(ebpf, name)?).map_err(|e| map_err(name, e))
}
