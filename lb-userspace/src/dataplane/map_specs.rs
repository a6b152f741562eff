//! The one description of every BPF map userspace creates or adopts: its name,
//! kind and flags, key and value sizes (from the real Rust types), and where
//! its entry count comes from. Loading reads these tables for the max-entries
//! overrides and the pin paths, and the compatibility check of adopted pins
//! compares the kernel's view of each map with the same entry; the tests hold
//! the tables against the map definitions in the compiled eBPF objects.
//!
//! Map flags cannot be set from userspace (aya creates maps with the flags the
//! object declares), so here they are what the object must declare; an adopted
//! pin must have them plus whatever the kernel adds on creation.
//!
//! Every map of a table is pinned when its object is loaded with a pin
//! directory, so pinning is decided per load, not per map.

use std::{fmt, mem::size_of, path::Path};

use aya::{
    maps::{lpm_trie::Key, Map, MapError, MapInfo, MapType},
    Ebpf, EbpfLoader,
};
use aya_obj::generated::{
    bpf_devmap_val, BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE, BPF_F_PRESERVE_ELEMS, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY,
    BPF_F_WRONLY_PROG, BPF_F_ZERO_SEED,
};
use lb_common::{
    decap_stat, map_names, Backend, BackendStats, CachedHop, ClockCache, DecapKey, FloodState,
    FlowKey, FlowValue, GlobalConfig, IcmpBucket, NatEntry, NatSession, NatStats, PolicyStats,
    SourceBucketKey, SourceV4, SourceV6, Verdict, VipInfo, VipKey, VipPolicy, VipSlot, VipStats,
    VlanDevice, ICMP_BUCKETS, MAX_DECAP_ADDRS, MAX_DECAP_GUE_PORTS, MAX_DECAP_SOURCES,
    MAX_DECAP_VIPS, MAX_POLICY_PREFIXES, MAX_RATE_SOURCES, MAX_TX_PORTS, MAX_VLAN_DEVICES,
    VIP_FILTER_WORDS,
};

use super::{map_err, DataplaneError, Sizes};

/// The balancer object's maps (`xlb_balancer`), sized from [`Sizes`].
pub(super) static BALANCER: &[MapSpec<Sizes>] = &[
    MapSpec::of::<VipKey, VipInfo>(
        map_names::VIPS,
        MapType::Hash,
        configured("2 x max_vips", |s| Some(s.vip_map_entries())),
    ),
    MapSpec::of::<u32, Backend>(
        map_names::BACKENDS,
        MapType::Array,
        configured("max_backends", |s| Some(s.max_backends)),
    ),
    // Two u32 slots per element; `MaglevTable` maps the elements as a dense
    // slot array, which BPF_F_MMAPABLE allows.
    MapSpec::of::<u32, [u32; 2]>(
        map_names::MAGLEV,
        MapType::Array,
        configured("max_vips x table_size / 2", Sizes::maglev_elements),
    )
    .with_flags(BPF_F_MMAPABLE),
    // Per-CPU LRU lists (see the map's declaration in lb-ebpf).
    MapSpec::of::<FlowKey, FlowValue>(
        map_names::FLOWS,
        MapType::LruHash,
        configured("flow_table_size", |s| Some(s.flow_table_size)),
    )
    .with_flags(BPF_F_NO_COMMON_LRU),
    MapSpec::of::<u32, GlobalConfig>(map_names::CONFIG, MapType::Array, Entries::Declared(1)),
    // The kernel's devmap value: ifindex and an optional program.
    MapSpec::of::<u32, bpf_devmap_val>(
        map_names::TX_PORTS,
        MapType::DevMapHash,
        Entries::Declared(MAX_TX_PORTS),
    ),
    MapSpec::of::<u32, VipStats>(
        map_names::VIP_STATS,
        MapType::PerCpuArray,
        configured("max_vips", |s| Some(s.max_vips)),
    ),
    MapSpec::of::<u32, BackendStats>(
        map_names::BACKEND_STATS,
        MapType::PerCpuArray,
        configured("max_backends", |s| Some(s.max_backends)),
    ),
    MapSpec::of::<u32, CachedHop>(
        map_names::NEXTHOPS,
        MapType::PerCpuArray,
        configured("max_backends", |s| Some(s.max_backends)),
    ),
    MapSpec::of::<u32, u64>(
        map_names::VERDICTS,
        MapType::PerCpuArray,
        Entries::Declared(Verdict::COUNT),
    ),
    // ifindex -> VLAN device; filled from netlink (`crate::vlan_devices`).
    MapSpec::of::<u32, VlanDevice>(
        map_names::VLANS,
        MapType::Hash,
        Entries::Declared(MAX_VLAN_DEVICES),
    ),
    // The VIP-address bitmap (`lb_common::vip_filter_slot`): fixed size.
    MapSpec::of::<u32, u64>(
        map_names::VIP_FILTER,
        MapType::Array,
        Entries::Declared(VIP_FILTER_WORDS),
    ),
    // Each VIP's policy record, by vip id.
    MapSpec::of::<u32, VipPolicy>(
        map_names::POLICY,
        MapType::Array,
        configured("max_vips", |s| Some(s.max_vips)),
    ),
    // (vip id, source prefix) -> allow/deny; the kernel requires LPM tries
    // to be created without preallocation.
    MapSpec::of::<Key<SourceV4>, u32>(
        map_names::SRC_V4,
        MapType::LpmTrie,
        Entries::Declared(MAX_POLICY_PREFIXES),
    )
    .with_flags(BPF_F_NO_PREALLOC),
    MapSpec::of::<Key<SourceV6>, u32>(
        map_names::SRC_V6,
        MapType::LpmTrie,
        Entries::Declared(MAX_POLICY_PREFIXES),
    )
    .with_flags(BPF_F_NO_PREALLOC),
    // Each VIP's token bucket (GCRA time), shared by all CPUs.
    MapSpec::of::<u32, u64>(
        map_names::RATE_VIPS,
        MapType::Array,
        configured("max_vips", |s| Some(s.max_vips)),
    ),
    // Each (VIP, source prefix)'s bucket; per-CPU LRU lists like the
    // connection table's.
    MapSpec::of::<SourceBucketKey, u64>(
        map_names::RATE_SOURCES,
        MapType::LruHash,
        Entries::Declared(MAX_RATE_SOURCES),
    )
    .with_flags(BPF_F_NO_COMMON_LRU),
    MapSpec::of::<u32, PolicyStats>(
        map_names::POLICY_STATS,
        MapType::PerCpuArray,
        configured("max_vips", |s| Some(s.max_vips)),
    ),
    MapSpec::of::<u32, FloodState>(map_names::FLOOD, MapType::PerCpuArray, Entries::Declared(1)),
    // Per-CPU rate limit of the ICMP the balancer sends; only the data
    // plane writes it.
    MapSpec::of::<u32, IcmpBucket>(
        map_names::ICMP_LIMIT,
        MapType::PerCpuArray,
        Entries::Declared(ICMP_BUCKETS),
    ),
    // Full NAT's sessions by the client's flow and by the backend's reply
    // flow; shared by all CPUs with per-CPU LRU lists, like the
    // connection table.
    MapSpec::of::<FlowKey, NatSession>(
        map_names::NAT_FWD,
        MapType::LruHash,
        configured("nat.table_size", |s| Some(s.nat_table_size)),
    )
    .with_flags(BPF_F_NO_COMMON_LRU),
    MapSpec::of::<FlowKey, NatEntry>(
        map_names::NAT_REV,
        MapType::LruHash,
        configured("nat.table_size", |s| Some(s.nat_table_size)),
    )
    .with_flags(BPF_F_NO_COMMON_LRU),
    MapSpec::of::<u32, NatStats>(
        map_names::NAT_STATS,
        MapType::PerCpuArray,
        Entries::Declared(1),
    ),
    // `xlb_nat`, which `xlb_balancer` tail-calls; the daemon installs it
    // on every load.
    MapSpec::of::<u32, u32>(
        map_names::NAT_PROG,
        MapType::ProgramArray,
        Entries::Declared(1),
    ),
    // The backend id `xlb_balancer` hands `xlb_nat` (per CPU).
    MapSpec::of::<u32, u32>(
        map_names::NAT_HANDOFF,
        MapType::PerCpuArray,
        Entries::Declared(1),
    ),
    // Every VIP with its key (`XLB_VIPS`'s entries, reached from an
    // established flow's backend), by config index: a slot is written only
    // at an index no packet can reach (`vip_configs`), so an array.
    MapSpec::of::<u32, VipSlot>(
        map_names::VIP_CFG,
        MapType::Array,
        configured("max_vips x 2 + 1", |s| {
            lb_common::vip_config_entries(s.max_vips)
        }),
    ),
    // Each VIP id's index in XLB_VIP_CFG: re-pointed with one aligned store
    // through the daemon's shared mapping.
    MapSpec::of::<u32, u64>(
        map_names::VIP_CFG_IX,
        MapType::Array,
        configured("max_vips", |s| Some(s.max_vips)),
    )
    .with_flags(BPF_F_MMAPABLE),
    // This CPU's last coarse-clock reading; only the data plane writes it.
    MapSpec::of::<u32, ClockCache>(map_names::CLOCK, MapType::PerCpuArray, Entries::Declared(1)),
];

/// The decap object's maps (`xlb_decap`); nothing in them is configured.
pub(super) static DECAP: &[MapSpec<()>] = &[
    MapSpec::of::<DecapKey, u32>(
        map_names::DECAP_ADDRS,
        MapType::Hash,
        Entries::Declared(MAX_DECAP_ADDRS),
    ),
    MapSpec::of::<DecapKey, u32>(
        map_names::DECAP_SOURCES,
        MapType::Hash,
        Entries::Declared(MAX_DECAP_SOURCES),
    ),
    MapSpec::of::<DecapKey, u32>(
        map_names::DECAP_VIPS,
        MapType::Hash,
        Entries::Declared(MAX_DECAP_VIPS),
    ),
    MapSpec::of::<u32, u64>(
        map_names::DECAP_STATS,
        MapType::PerCpuArray,
        Entries::Declared(decap_stat::COUNT),
    ),
    // GUE port (host order) -> 1.
    MapSpec::of::<u16, u32>(
        map_names::DECAP_GUE_PORTS,
        MapType::Hash,
        Entries::Declared(MAX_DECAP_GUE_PORTS),
    ),
];

/// One map of an object. `S` is the configuration its entry counts come from
/// (`()` for an object that has none).
pub(super) struct MapSpec<S: 'static> {
    name: &'static str,
    map_type: MapType,
    /// `BPF_F_*` creation flags, as the object declares them.
    flags: u32,
    key_size: u32,
    value_size: u32,
    entries: Entries<S>,
}

/// Where a map's entry count comes from.
pub(super) enum Entries<S: 'static> {
    /// Declared in the eBPF object (from a constant shared through
    /// `lb_common`) and left as it is.
    Declared(u32),
    /// Computed from the configuration and set when the map is created.
    Configured {
        /// How, for messages (`max_vips x table_size / 2`).
        rule: &'static str,
        /// `None` when the count overflows u32.
        count: fn(&S) -> Option<u32>,
    },
}

/// A balancer map sized from the configured [`Sizes`].
const fn configured(rule: &'static str, count: fn(&Sizes) -> Option<u32>) -> Entries<Sizes> {
    Entries::Configured { rule, count }
}

impl<S> MapSpec<S> {
    /// A map with keys of type `K`, values of type `V` and no flags.
    const fn of<K, V>(name: &'static str, map_type: MapType, entries: Entries<S>) -> Self {
        Self {
            name,
            map_type,
            flags: 0,
            key_size: size_of::<K>() as u32,
            value_size: size_of::<V>() as u32,
            entries,
        }
    }

    const fn with_flags(self, flags: u32) -> Self {
        Self { flags, ..self }
    }

    /// The entry count to create the map with under `config`.
    fn requested_entries(&self, config: &S) -> Result<u32, DataplaneError> {
        match &self.entries {
            Entries::Declared(n) => Ok(*n),
            Entries::Configured { rule, count } => {
                count(config).ok_or(DataplaneError::SizeOverflow {
                    name: self.name,
                    what: rule,
                })
            }
        }
    }

    /// The flags the kernel reports for this map: the creation flags plus
    /// those the kernel adds itself (device maps are read-only to programs,
    /// `dev_map_init_map` in kernel/bpf/devmap.c).
    fn kernel_flags(&self) -> u32 {
        match self.map_type {
            MapType::DevMap | MapType::DevMapHash => self.flags | BPF_F_RDONLY_PROG,
            _ => self.flags,
        }
    }

    /// The max entries the kernel reports for this map once it was created
    /// with `requested` on a host with `possible_cpus` possible CPUs: the one
    /// place that knows how the kernel adjusts a requested size.
    fn kernel_max_entries(&self, requested: u32, possible_cpus: u32) -> u32 {
        if self.map_type == MapType::LruHash && self.flags & BPF_F_NO_COMMON_LRU != 0 {
            per_cpu_lru_max_entries(requested, possible_cpus)
        } else {
            requested
        }
    }

    /// The layout an existing (pinned) map must have to serve as this map
    /// when the object asks for `requested` entries.
    fn expected_layout(&self, requested: u32, possible_cpus: u32) -> MapLayout {
        MapLayout {
            map_type: self.map_type,
            flags: self.kernel_flags(),
            key_size: self.key_size,
            value_size: self.value_size,
            max_entries: self.kernel_max_entries(requested, possible_cpus),
        }
    }
}

/// The size the kernel gives an LRU hash created with `BPF_F_NO_COMMON_LRU`
/// and `requested` entries (`htab_map_alloc` in kernel/bpf/hashtab.c): every
/// possible CPU gets an LRU list of equal length, so the size is rounded up
/// to a multiple of the possible CPUs, in u32 arithmetic; if that wraps
/// around, it is rounded down instead.
pub fn per_cpu_lru_max_entries(requested: u32, possible_cpus: u32) -> u32 {
    // The kernel counts at least the boot CPU; 0 would divide by zero.
    let cpus = possible_cpus.max(1);
    let rounded_up = requested.wrapping_add(cpus - 1) / cpus * cpus;
    if rounded_up < requested {
        requested - requested % cpus
    } else {
        rounded_up
    }
}

/// An object's maps with their entry counts resolved for one configuration.
pub(super) struct MapPlan<S: 'static> {
    maps: Vec<(&'static MapSpec<S>, u32)>,
    /// Possible CPUs of this host: the kernel sizes per-CPU LRU maps by them.
    possible_cpus: u32,
}

impl<S> MapPlan<S> {
    /// Resolves every entry count of `specs` under `config` on this host.
    pub fn resolve(specs: &'static [MapSpec<S>], config: &S) -> Result<Self, DataplaneError> {
        Self::resolve_for(specs, config, super::possible_cpus()?)
    }

    /// [`Self::resolve`] on a host with `possible_cpus` possible CPUs.
    pub fn resolve_for(
        specs: &'static [MapSpec<S>],
        config: &S,
        possible_cpus: u32,
    ) -> Result<Self, DataplaneError> {
        let maps = specs
            .iter()
            .map(|spec| Ok((spec, spec.requested_entries(config)?)))
            .collect::<Result<_, DataplaneError>>()?;
        Ok(Self {
            maps,
            possible_cpus,
        })
    }

    /// Possible CPUs of the host the plan is for.
    pub fn possible_cpus(&self) -> u32 {
        self.possible_cpus
    }

    /// The entry count map `name` is created with.
    pub fn entries(&self, name: &'static str) -> Result<u32, DataplaneError> {
        self.maps
            .iter()
            .find(|(spec, _)| spec.name == name)
            .map(|(_, entries)| *entries)
            .ok_or(DataplaneError::MissingMap { name })
    }

    /// Sets the configured entry counts on `loader` and, with `pin_dir`,
    /// pins every map there (created if missing), adopting the maps already
    /// pinned there.
    pub fn configure(
        &self,
        loader: &mut EbpfLoader<'_>,
        pin_dir: Option<&Path>,
    ) -> Result<(), DataplaneError> {
        for (spec, entries) in &self.maps {
            if let Entries::Configured { .. } = spec.entries {
                loader.map_max_entries(spec.name, *entries);
            }
        }
        if let Some(dir) = pin_dir {
            std::fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
                path: dir.to_path_buf(),
                source,
            })?;
            for (spec, _) in &self.maps {
                loader.map_pin_path(spec.name, dir.join(spec.name));
            }
        }
        Ok(())
    }

    /// Refuses the loaded maps unless each has exactly the layout its spec
    /// asks for. The loader adopts a pin left by another version or config as
    /// it is, so this runs after loading with a pin directory.
    pub fn check_adopted(&self, ebpf: &Ebpf) -> Result<(), DataplaneError> {
        for (spec, entries) in &self.maps {
            let map = ebpf
                .map(spec.name)
                .ok_or(DataplaneError::MissingMap { name: spec.name })?;
            let found = MapLayout::of(map).map_err(|e| map_err(spec.name, e))?;
            check_layout(
                spec.name,
                found,
                spec.expected_layout(*entries, self.possible_cpus),
            )?;
        }
        Ok(())
    }
}

fn check_layout(
    name: &'static str,
    found: MapLayout,
    expected: MapLayout,
) -> Result<(), DataplaneError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataplaneError::PinnedLayout {
            name,
            found,
            expected,
        })
    }
}

/// What decides whether an existing map can serve as one of ours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapLayout {
    pub map_type: MapType,
    /// `BPF_F_*` flags, as the kernel reports them.
    pub flags: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl MapLayout {
    /// The kernel's view of a loaded map.
    pub(super) fn of(map: &Map) -> Result<Self, MapError> {
        let info = map_info(map)?;
        Ok(Self {
            map_type: info.map_type()?,
            flags: info.map_flags(),
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
        })
    }
}

impl fmt::Display for MapLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {:?} map with flags {:#x}", self.map_type, self.flags)?;
        let names: Vec<&str> = FLAG_NAMES
            .iter()
            .filter(|(flag, _)| self.flags & flag != 0)
            .map(|(_, name)| *name)
            .collect();
        if !names.is_empty() {
            write!(f, " ({})", names.join(" | "))?;
        }
        write!(
            f,
            ", key size {}, value size {}, {} entries",
            self.key_size, self.value_size, self.max_entries
        )
    }
}

/// Map flags by name, for messages.
const FLAG_NAMES: [(u32, &str); 11] = [
    (BPF_F_NO_PREALLOC, "BPF_F_NO_PREALLOC"),
    (BPF_F_NO_COMMON_LRU, "BPF_F_NO_COMMON_LRU"),
    (BPF_F_NUMA_NODE, "BPF_F_NUMA_NODE"),
    (BPF_F_RDONLY, "BPF_F_RDONLY"),
    (BPF_F_WRONLY, "BPF_F_WRONLY"),
    (BPF_F_ZERO_SEED, "BPF_F_ZERO_SEED"),
    (BPF_F_RDONLY_PROG, "BPF_F_RDONLY_PROG"),
    (BPF_F_WRONLY_PROG, "BPF_F_WRONLY_PROG"),
    (BPF_F_MMAPABLE, "BPF_F_MMAPABLE"),
    (BPF_F_PRESERVE_ELEMS, "BPF_F_PRESERVE_ELEMS"),
    (BPF_F_INNER_MAP, "BPF_F_INNER_MAP"),
];

/// The kernel's info on one of the map kinds the specs use.
fn map_info(map: &Map) -> Result<MapInfo, MapError> {
    match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::LpmTrie(d)
        | Map::PerCpuArray(d)
        | Map::DevMapHash(d)
        | Map::ProgramArray(d) => d.info(),
        _ => Err(MapError::InvalidMapType { map_type: 0 }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use aya_obj::{generated::bpf_map_type, EbpfSectionKind};

    use super::*;
    use crate::ebpf_objects;

    /// The ring buffer aya-log adds to every object that logs; it belongs
    /// to `aya_log::EbpfLogger`, not to xlb.
    const AYA_LOG_MAP: &str = "AYA_LOGS";

    /// The maps the object `bytes` declares, leaving out its data sections
    /// and aya-log's map.
    fn declared_maps(name: &'static str, bytes: &'static [u8]) -> BTreeMap<String, aya_obj::Map> {
        let bytes = ebpf_objects::require(name, bytes).expect("the eBPF object is built");
        let object = aya_obj::Object::parse(bytes).expect("the eBPF object parses");
        object
            .maps
            .into_iter()
            .filter(|(map_name, map)| {
                !matches!(
                    map.section_kind(),
                    EbpfSectionKind::Bss | EbpfSectionKind::Data | EbpfSectionKind::Rodata
                ) && map_name != AYA_LOG_MAP
            })
            .collect()
    }

    /// Every map of the object has exactly one spec, and each spec has the
    /// kind, flags, key and value sizes (and declared entries) of the object.
    fn assert_specs_match_object<S>(
        specs: &[MapSpec<S>],
        name: &'static str,
        bytes: &'static [u8],
    ) {
        let declared = declared_maps(name, bytes);
        let spec_names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        let unique: BTreeSet<&str> = spec_names.iter().copied().collect();
        assert_eq!(unique.len(), spec_names.len(), "a map is described twice");
        let object_names: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
        assert_eq!(unique, object_names, "the {name} object's maps");

        for spec in specs {
            let map = &declared[spec.name];
            let map_type = bpf_map_type::try_from(map.map_type())
                .map_err(MapError::from)
                .and_then(MapType::try_from)
                .expect("a known map type");
            assert_eq!(map_type, spec.map_type, "{}: map type", spec.name);
            assert_eq!(map.map_flags(), spec.flags, "{}: flags", spec.name);
            assert_eq!(map.key_size(), spec.key_size, "{}: key size", spec.name);
            assert_eq!(
                map.value_size(),
                spec.value_size,
                "{}: value size",
                spec.name
            );
            if let Entries::Declared(n) = spec.entries {
                assert_eq!(map.max_entries(), n, "{}: declared entries", spec.name);
            }
        }
    }

    #[test]
    fn balancer_specs_match_the_object() {
        assert_specs_match_object(BALANCER, "balancer", ebpf_objects::BALANCER);
    }

    #[test]
    fn decap_specs_match_the_object() {
        assert_specs_match_object(DECAP, "decap", ebpf_objects::DECAP);
    }

    #[test]
    fn specs_name_the_shared_map_names() {
        assert_eq!(
            BALANCER.iter().map(|s| s.name).collect::<Vec<_>>(),
            [
                map_names::VIPS,
                map_names::BACKENDS,
                map_names::MAGLEV,
                map_names::FLOWS,
                map_names::CONFIG,
                map_names::TX_PORTS,
                map_names::VIP_STATS,
                map_names::BACKEND_STATS,
                map_names::NEXTHOPS,
                map_names::VERDICTS,
                map_names::VLANS,
                map_names::VIP_FILTER,
                map_names::POLICY,
                map_names::SRC_V4,
                map_names::SRC_V6,
                map_names::RATE_VIPS,
                map_names::RATE_SOURCES,
                map_names::POLICY_STATS,
                map_names::FLOOD,
                map_names::ICMP_LIMIT,
                map_names::NAT_FWD,
                map_names::NAT_REV,
                map_names::NAT_STATS,
                map_names::NAT_PROG,
                map_names::NAT_HANDOFF,
                map_names::VIP_CFG,
                map_names::VIP_CFG_IX,
                map_names::CLOCK,
            ]
        );
        assert_eq!(
            DECAP.iter().map(|s| s.name).collect::<Vec<_>>(),
            [
                map_names::DECAP_ADDRS,
                map_names::DECAP_SOURCES,
                map_names::DECAP_VIPS,
                map_names::DECAP_STATS,
                map_names::DECAP_GUE_PORTS
            ]
        );
    }

    fn spec(name: &str) -> &'static MapSpec<Sizes> {
        BALANCER
            .iter()
            .find(|s| s.name == name)
            .expect("a balancer map")
    }

    #[test]
    fn maglev_elements_are_two_mmapable_slots() {
        // `MaglevTable` maps the array as dense u32 slots, two per element.
        let maglev = spec(map_names::MAGLEV);
        assert_eq!(maglev.value_size as usize, 2 * size_of::<u32>());
        assert_eq!(maglev.flags & BPF_F_MMAPABLE, BPF_F_MMAPABLE);
    }

    #[test]
    fn entries_follow_the_configured_sizes() {
        let sizes = Sizes {
            max_vips: 8,
            max_backends: 256,
            table_size: 65537,
            flow_table_size: 1025,
            nat_table_size: 1024,
        };
        let plan = MapPlan::resolve_for(BALANCER, &sizes, 2).expect("sizes fit");
        let entries = |name| plan.entries(name).expect("a balancer map");
        assert_eq!(entries(map_names::VIPS), 16);
        assert_eq!(entries(map_names::BACKENDS), 256);
        assert_eq!(entries(map_names::MAGLEV), (8 * 65537u32).div_ceil(2));
        assert_eq!(entries(map_names::FLOWS), 1025);
        assert_eq!(entries(map_names::CONFIG), 1);
        assert_eq!(entries(map_names::TX_PORTS), MAX_TX_PORTS);
        assert_eq!(entries(map_names::VIP_STATS), 8);
        assert_eq!(entries(map_names::BACKEND_STATS), 256);
        assert_eq!(entries(map_names::NEXTHOPS), 256);
        assert_eq!(entries(map_names::VERDICTS), Verdict::COUNT);
        assert_eq!(entries(map_names::VLANS), MAX_VLAN_DEVICES);
    }

    #[test]
    fn an_overflowing_maglev_size_is_refused() {
        let sizes = Sizes {
            max_vips: 1 << 16,
            table_size: 65537,
            ..Sizes::default()
        };
        match MapPlan::resolve_for(BALANCER, &sizes, 2) {
            Err(DataplaneError::SizeOverflow { name, what }) => {
                assert_eq!(name, map_names::MAGLEV);
                assert_eq!(what, "max_vips x table_size / 2");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("an overflowing Maglev size was accepted"),
        }
    }

    #[test]
    fn pins_of_device_maps_carry_the_kernels_read_only_flag() {
        let tx_ports = spec(map_names::TX_PORTS);
        assert_eq!(tx_ports.flags, 0);
        assert_eq!(tx_ports.expected_layout(64, 2).flags, BPF_F_RDONLY_PROG);
        assert_eq!(spec(map_names::VIPS).expected_layout(16, 2).flags, 0);
    }

    #[test]
    fn per_cpu_lru_sizes_round_up_to_a_multiple_of_the_possible_cpus() {
        // (requested, possible CPUs, what the kernel creates)
        let cases = [
            (1025, 1, 1025),
            (1025, 2, 1026),
            (1024, 2, 1024),
            (262_144, 2, 262_144),
            (262_144, 6, 262_146),
            (1025, 6, 1026),
            (262_144, 96, 262_176),
            (1024, 96, 1056),
            (262_144, 112, 262_192),
            (1 << 26, 112, 67_108_944),
            (1, 112, 112),
        ];
        for (requested, cpus, created) in cases {
            let got = per_cpu_lru_max_entries(requested, cpus);
            assert_eq!(got, created, "{requested} entries on {cpus} CPUs");
            assert_eq!(got % cpus, 0, "equal lists on {cpus} CPUs");
        }
    }

    #[test]
    fn a_per_cpu_lru_size_whose_round_up_overflows_is_rounded_down() {
        // roundup(x, n) = (x + n - 1) / n * n wraps in u32 near u32::MAX.
        assert_eq!(per_cpu_lru_max_entries(u32::MAX, 2), u32::MAX - 1);
        assert_eq!(per_cpu_lru_max_entries(u32::MAX, 6), u32::MAX - 3);
        assert_eq!(per_cpu_lru_max_entries(u32::MAX - 100, 112), 4_294_967_152);
        // The largest size that still rounds up, and one past it.
        let top = u32::MAX - u32::MAX % 96;
        assert_eq!(per_cpu_lru_max_entries(top - 95, 96), top);
        assert_eq!(per_cpu_lru_max_entries(top + 1, 96), top);
        assert_eq!(per_cpu_lru_max_entries(u32::MAX, 1), u32::MAX);
    }

    #[test]
    fn only_the_per_cpu_lru_flow_table_is_rounded() {
        let sizes = Sizes {
            max_vips: 3,
            max_backends: 1025,
            table_size: 65537,
            flow_table_size: 1025,
            nat_table_size: 1024,
        };
        let plan = MapPlan::resolve_for(BALANCER, &sizes, 6).expect("sizes fit");
        let expected = |name| {
            let requested = plan.entries(name).expect("a balancer map");
            spec(name).expected_layout(requested, 6).max_entries
        };
        assert_eq!(expected(map_names::FLOWS), 1026);
        assert_eq!(expected(map_names::BACKENDS), 1025);
        assert_eq!(expected(map_names::VIPS), 6);
        assert_eq!(expected(map_names::VIP_STATS), 3);
    }

    #[test]
    fn a_mismatching_pin_is_refused_with_its_differences() {
        let expected = spec(map_names::FLOWS).expected_layout(1024, 2);
        assert!(check_layout(map_names::FLOWS, expected, expected).is_ok());

        let found = MapLayout {
            flags: 0,
            ..expected
        };
        let err = check_layout(map_names::FLOWS, found, expected).expect_err("flags differ");
        let msg = err.to_string();
        assert!(
            msg.contains("pinned map XLB_FLOWS is a LruHash map with flags 0x0,"),
            "{msg}"
        );
        assert!(
            msg.contains("expects a LruHash map with flags 0x2 (BPF_F_NO_COMMON_LRU)"),
            "{msg}"
        );
        assert!(msg.contains("run `xlb down`"), "{msg}");

        let found = MapLayout {
            map_type: MapType::Hash,
            ..expected
        };
        let msg = check_layout(map_names::FLOWS, found, expected)
            .expect_err("types differ")
            .to_string();
        assert!(msg.contains("is a Hash map"), "{msg}");
    }
}
