//! The reconciler against a simulated set of maps that checks, after every
//! single write, what the data plane would see: a visible VIP with a table has
//! every slot naming a live backend of its own; a VIP never appears before its
//! table is complete. Then the end state must equal the desired state exactly.
//! The simulated maps have the real maps' capacities: a write past one fails
//! as the kernel's does (E2BIG), so an order that needs more room than the
//! maps have fails here too.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use lb_common::{
    map_names, Backend, GlobalConfig, VipInfo, DEFAULT_UDP_IDLE_TIMEOUT_MS, MAX_TX_PORTS,
    PROTO_TCP, PROTO_UDP, VIP_F_FAIL_OPEN, VIP_F_NO_FLOW_TABLE, VIP_F_SOURCE_HASH,
};
use proptest::prelude::*;

use super::*;
use crate::maglev::{self, MaglevBackend};

const SIZES: Sizes = Sizes {
    max_vips: 6,
    max_backends: 40,
    table_size: 251,
    flow_table_size: 1024,
    nat_table_size: 1024,
};

/// The maps, as far as the reconciler writes them.
#[derive(Default)]
struct SimMaps {
    vips: HashMap<VipKey, VipInfo>,
    backends: HashMap<u32, Backend>,
    tables: Vec<u32>,
    global: Option<GlobalConfig>,
    tx_ports: BTreeSet<u32>,
    /// Backend ids whose counters and next hop were reset since they were
    /// last in use: only those may be filled.
    reset_backends: HashSet<u32>,
    /// VIP ids whose stats were reset since they were last in use: only those
    /// may appear.
    reset_vips: HashSet<u32>,
    /// Source prefixes and policy records, as the tries and `XLB_POLICY`.
    prefixes: BTreeMap<(u32, IpAddr, u8), u32>,
    policies: HashMap<u32, lb_common::VipPolicy>,
    /// `XLB_VIP_FILTER`'s words.
    vip_filter: HashMap<u32, u64>,
    /// Called after every write with the maps as they are then.
    after_write: Option<WriteCheck>,
    writes: usize,
}

/// A check run after every write of the simulated maps.
type WriteCheck = Box<dyn Fn(&SimMaps)>;

impl SimMaps {
    fn new() -> Self {
        Self {
            tables: vec![0; (SIZES.max_vips * SIZES.table_size) as usize],
            ..Default::default()
        }
    }

    /// What the data plane relies on, checked after every write.
    fn check_invariants(&self, after: &dyn std::fmt::Debug) {
        // The data plane passes traffic to an address whose filter bit is
        // clear before looking for its VIPs.
        let nat_sources: Vec<IpAddr> = self.global.map_or_else(Vec::new, |g| {
            let nat = g.nat();
            nat.sources_v4()
                .map(IpAddr::V4)
                .chain(nat.sources_v6().map(IpAddr::V6))
                .collect()
        });
        for addr in self.vips.keys().map(VipKey::addr).chain(nat_sources) {
            let (index, mask) = lb_common::vip_filter_slot_of(addr);
            assert_ne!(
                self.vip_filter.get(&index).copied().unwrap_or(0) & mask,
                0,
                "after {after:?}: {addr} is a VIP or NAT address without a filter bit",
            );
        }
        for (key, info) in &self.vips {
            if key.is_marker() || info.table_size == 0 {
                continue;
            }
            let start = info.table_offset as usize;
            for slot in start..start + info.table_size as usize {
                self.check_slot(info, slot, after);
            }
        }
    }

    /// [`Self::check_invariants`] after a write that changed only `slot`
    /// (every other slot was checked before).
    fn check_changed_slot(&self, slot: usize, after: &dyn std::fmt::Debug) {
        for (key, info) in &self.vips {
            let start = info.table_offset as usize;
            if !key.is_marker() && (start..start + info.table_size as usize).contains(&slot) {
                self.check_slot(info, slot, after);
            }
        }
    }

    /// Slot `slot` of visible VIP `info`'s table names a live backend of it.
    fn check_slot(&self, info: &VipInfo, slot: usize, after: &dyn std::fmt::Debug) {
        let id = self.tables[slot];
        let b = self.backends.get(&id).unwrap_or_else(|| {
            panic!(
                "after {after:?}: visible vip {} slot {slot} names free backend id {id}",
                info.vip_id
            )
        });
        assert!(
            b.is_active(),
            "after {after:?}: slot {slot} names inactive backend {id}"
        );
        assert_eq!(
            b.vip_id, info.vip_id,
            "after {after:?}: slot {slot} names another vip's backend"
        );
    }
}

/// The kernel's answer to a write past a map's capacity: a new key in a
/// full hash map, an index past an array's end.
fn e2big(name: &'static str) -> DataplaneError {
    DataplaneError::Map {
        name,
        source: Box::new(aya::maps::MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_update_elem",
            io_error: std::io::Error::from_raw_os_error(libc::E2BIG),
        })),
    }
}

impl SimMaps {
    /// Fails `op` as the kernel would if it does not fit the maps.
    fn check_capacity(&self, op: &MapWrite) -> Result<(), DataplaneError> {
        let fits = match op {
            Op::AddTxPort(i) => {
                self.tx_ports.contains(i) || self.tx_ports.len() < MAX_TX_PORTS as usize
            }
            Op::SetBackend { id, .. } => *id < SIZES.max_backends,
            Op::SetVip { key, .. } => {
                self.vips.contains_key(key) || self.vips.len() < SIZES.vip_map_entries() as usize
            }
            Op::WriteTable { offset, table, .. } => {
                *offset as usize + table.len() <= self.tables.len()
            }
            Op::ClearTable { offset, len, .. } => (*offset + *len) as usize <= self.tables.len(),
            _ => true,
        };
        if fits {
            return Ok(());
        }
        Err(e2big(match op {
            Op::AddTxPort(_) => map_names::TX_PORTS,
            Op::SetBackend { .. } => map_names::BACKENDS,
            Op::SetVip { .. } => map_names::VIPS,
            _ => map_names::MAGLEV,
        }))
    }
}

impl MapWriter for SimMaps {
    fn write(&mut self, op: &MapWrite) -> Result<usize, DataplaneError> {
        self.writes += 1;
        self.check_capacity(op)?;
        let mut changed = 0;
        match op {
            Op::SetGlobal(g) => self.global = Some(**g),
            Op::AddTxPort(i) => {
                self.tx_ports.insert(*i);
            }
            Op::RemoveTxPort(i) => {
                self.tx_ports.remove(i);
            }
            Op::SetBackend { id, backend } => {
                assert!(*id != 0, "backend id 0 means no backend");
                if !self.backends.contains_key(id) {
                    assert!(
                        self.reset_backends.remove(id),
                        "backend slot {id} filled before its counters and next hop were reset"
                    );
                }
                self.backends.insert(*id, *backend);
            }
            Op::ClearBackend { id } => {
                self.backends.remove(id);
            }
            Op::ResetBackendState { id } => {
                assert!(
                    !self.backends.contains_key(id),
                    "backend slot {id} reset while in use"
                );
                self.reset_backends.insert(*id);
            }
            Op::ResetVipStats { vip_id } => {
                self.reset_vips.insert(*vip_id);
            }
            Op::WriteTable { offset, table, .. } => {
                assert_eq!(table.len(), SIZES.table_size as usize);
                // In place, slot by slot: check after every changed slot.
                let what = format!("a table write at offset {offset}");
                for (i, id) in table.iter().enumerate() {
                    let slot = *offset as usize + i;
                    if self.tables[slot] != *id {
                        self.tables[slot] = *id;
                        changed += 1;
                        self.check_changed_slot(slot, &what);
                    }
                }
            }
            Op::ClearTable { offset, len, .. } => {
                for slot in *offset as usize..(offset + len) as usize {
                    self.tables[slot] = 0;
                    self.check_changed_slot(slot, op);
                }
            }
            Op::SetVip { key, info } => {
                if !key.is_marker() && !self.vips.contains_key(key) {
                    assert!(
                        self.reset_vips.remove(&info.vip_id),
                        "vip {} appears before its stats were reset",
                        info.vip_id
                    );
                }
                self.vips.insert(*key, *info);
            }
            Op::RemoveVip { key } => {
                self.vips.remove(key);
            }
            Op::SetPrefix { prefix, value } => {
                self.prefixes
                    .insert((prefix.vip_id, prefix.addr, prefix.len), *value);
            }
            Op::RemovePrefix { prefix } => {
                self.prefixes
                    .remove(&(prefix.vip_id, prefix.addr, prefix.len));
            }
            Op::SetPolicy { vip_id, policy } => {
                self.policies.insert(*vip_id, *policy);
            }
            Op::ResetPolicyState { .. } => {}
            Op::SetFilterWord { index, word } => {
                self.vip_filter.insert(*index, *word);
            }
        }
        self.check_invariants(op);
        if let Some(check) = &self.after_write {
            check(self);
        }
        Ok(changed)
    }
}

fn vip_key(n: u8, port: u16, proto: u8) -> VipKey {
    VipKey::new(IpAddr::from([10, 100, 0, n]), port, proto)
}

fn backend(n: u8, weight: u16, healthy: bool) -> DesiredBackend {
    DesiredBackend {
        addr: IpAddr::from([10, 0, 0, n]),
        weight,
        healthy,
    }
}

fn vip(n: u8, port: u16, flags: u32, backends: Vec<DesiredBackend>) -> DesiredVip {
    DesiredVip {
        key: vip_key(n, port, PROTO_TCP),
        name: format!("vip{n}:{port}"),
        flags,
        udp_idle_timeout_ms: DEFAULT_UDP_IDLE_TIMEOUT_MS,
        forwarding: lb_common::Forwarding::Ipip,
        gue_port: 0,
        policy: DesiredPolicy::default(),
        backends,
    }
}

fn state(vips: Vec<DesiredVip>) -> DesiredState {
    DesiredState {
        global: GlobalConfig::new(Some(std::net::Ipv4Addr::new(10, 0, 0, 1)), None),
        tx_ports: [1u32].into_iter().collect(),
        vips,
    }
}

/// Plans and applies `desired`, then checks the maps hold exactly it.
fn converge(r: &mut Reconciler, maps: &mut SimMaps, desired: &DesiredState) -> ApplyReport {
    let plan = r.plan(desired).unwrap_or_else(|e| panic!("plan: {e}"));
    let report = r.apply(plan, maps).unwrap_or_else(|e| panic!("apply: {e}"));
    assert_matches_desired(r, maps, desired);
    report
}

fn assert_matches_desired(r: &Reconciler, maps: &SimMaps, desired: &DesiredState) {
    assert_eq!(maps.global, Some(desired.global));
    assert_eq!(maps.tx_ports, desired.tx_ports);
    // No bit of an address without VIPs is left set.
    let filter: BTreeMap<u32, u64> = maps
        .vip_filter
        .iter()
        .filter(|(_, w)| **w != 0)
        .map(|(i, w)| (*i, *w))
        .collect();
    assert_eq!(
        filter,
        super::plan::filter_words(
            desired
                .vips
                .iter()
                .map(|v| v.key.addr())
                .chain(desired.global.nat().sources_v4().map(IpAddr::V4))
                .chain(desired.global.nat().sources_v6().map(IpAddr::V6))
        ),
        "the VIP-address filter"
    );
    let real_vips: Vec<&VipKey> = maps.vips.keys().filter(|k| !k.is_marker()).collect();
    assert_eq!(real_vips.len(), desired.vips.len(), "number of VIP entries");
    let mut live_backends = 0;
    for want in &desired.vips {
        let info = maps
            .vips
            .get(&want.key)
            .unwrap_or_else(|| panic!("{} missing", want.name));
        assert_eq!(
            info.flags & !VIP_F_FAIL_OPEN,
            want.flags,
            "{} flags",
            want.name
        );
        assert_eq!(
            info.flags & VIP_F_FAIL_OPEN != 0,
            want.fail_open(),
            "{}: the fail-open flag says whether every weighted backend is unhealthy",
            want.name
        );
        assert_eq!(
            info.udp_idle_timeout_ms, want.udp_idle_timeout_ms,
            "{} udp idle timeout",
            want.name
        );
        assert_eq!(
            (info.forwarding(), info.gue_port()),
            (
                Some(want.forwarding),
                if want.forwarding == lb_common::Forwarding::Gue {
                    want.gue_port
                } else {
                    0
                }
            ),
            "{} forwarding",
            want.name
        );
        assert!(
            maps.vips.contains_key(&want.key.to_marker()),
            "{} address marker",
            want.name
        );
        for b in &want.backends {
            let id = r
                .backend_id(&want.key, b.addr)
                .unwrap_or_else(|| panic!("{} has no id", b.addr));
            let v = maps
                .backends
                .get(&id)
                .unwrap_or_else(|| panic!("backend {} slot empty", b.addr));
            assert_eq!((v.vip_id, v.weight), (info.vip_id, b.weight));
            assert_eq!(v.is_healthy(), b.healthy);
            assert_eq!(v.addr(), b.addr);
            live_backends += 1;
        }
        // The table is exactly Maglev of the table inputs.
        let inputs = want.table_inputs();
        if inputs.is_empty() {
            assert_eq!(
                info.table_size, 0,
                "{}: no usable backend, no table",
                want.name
            );
            continue;
        }
        assert_eq!(info.table_size, SIZES.table_size);
        let mb: Vec<MaglevBackend> = inputs
            .iter()
            .map(|(a, w)| MaglevBackend::new(*a, *w))
            .collect();
        let expected = maglev::build_table(&mb, SIZES.table_size).unwrap_or_else(|e| panic!("{e}"));
        let start = info.table_offset as usize;
        for (i, idx) in expected.iter().enumerate() {
            let want_addr = inputs[*idx as usize].0;
            let id = maps.tables[start + i];
            let b = maps
                .backends
                .get(&id)
                .unwrap_or_else(|| panic!("slot {i} names a free id"));
            assert_eq!(b.addr(), want_addr, "{} slot {i}", want.name);
        }
    }
    // Markers only for addresses in use; no leaked backend slots.
    let markers = maps.vips.keys().filter(|k| k.is_marker()).count();
    let addrs: BTreeSet<IpAddr> = desired.vips.iter().map(|v| v.key.addr()).collect();
    assert_eq!(markers, addrs.len(), "address markers");
    assert_eq!(maps.backends.len(), live_backends, "leaked backend slots");
}

#[test]
fn new_vip_writes_backends_then_table_then_entry() {
    let mut r = Reconciler::new(SIZES);
    let desired = state(vec![vip(
        1,
        80,
        0,
        vec![backend(11, 1, true), backend(12, 1, true)],
    )]);
    let plan = r.plan(&desired).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = plan
        .ops
        .iter()
        .map(|op| match op {
            Op::SetGlobal(_) => "global",
            Op::AddTxPort(_) => "txport",
            Op::ResetBackendState { .. } => "bstats",
            Op::SetBackend { .. } => "backend",
            Op::WriteTable { .. } => "table",
            Op::ResetVipStats { .. } => "vstats",
            Op::ResetPolicyState { .. } => "pstate",
            Op::SetFilterWord { .. } => "filter",
            Op::SetVip { key, .. } if key.is_marker() => "marker",
            Op::SetVip { .. } => "vip",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "filter", "global", "txport", "bstats", "backend", "bstats", "backend", "table",
            "vstats", "pstate", "vip", "marker"
        ]
    );
    let mut maps = SimMaps::new();
    converge(&mut r, &mut maps, &desired);
    // Nothing to do the second time.
    assert!(r
        .plan(&desired)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
}

#[test]
fn removing_a_vip_removes_its_entry_before_its_table_and_backends() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(1, 80, 0, vec![backend(11, 1, true)])]),
    );
    let plan = r.plan(&state(vec![])).unwrap_or_else(|e| panic!("{e}"));
    let first_remove = plan
        .ops
        .iter()
        .position(|o| matches!(o, Op::RemoveVip { key } if !key.is_marker()));
    let clear_table = plan
        .ops
        .iter()
        .position(|o| matches!(o, Op::ClearTable { .. }));
    let clear_backend = plan
        .ops
        .iter()
        .position(|o| matches!(o, Op::ClearBackend { .. }));
    assert!(
        first_remove < clear_table && clear_table < clear_backend,
        "{:?}",
        plan.ops
    );
    r.apply(plan, &mut maps).unwrap_or_else(|e| panic!("{e}"));
    assert_matches_desired(&r, &maps, &state(vec![]));
}

#[test]
fn weight_change_rewrites_only_changed_slots_and_keeps_ids() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let bs = |w: u16| {
        vec![
            backend(11, 100, true),
            backend(12, 100, true),
            backend(13, w, true),
        ]
    };
    converge(&mut r, &mut maps, &state(vec![vip(1, 80, 0, bs(100))]));
    let ids: Vec<Option<u32>> = (11..=13)
        .map(|n| r.backend_id(&vip_key(1, 80, PROTO_TCP), IpAddr::from([10, 0, 0, n])))
        .collect();
    let report = converge(&mut r, &mut maps, &state(vec![vip(1, 80, 0, bs(50))]));
    assert_eq!(report.tables_rebuilt, 1);
    assert!(
        report.slots_changed > 0 && report.slots_changed < SIZES.table_size as usize / 2,
        "{report:?}"
    );
    let after: Vec<Option<u32>> = (11..=13)
        .map(|n| r.backend_id(&vip_key(1, 80, PROTO_TCP), IpAddr::from([10, 0, 0, n])))
        .collect();
    assert_eq!(ids, after, "backend ids must survive a weight change");
}

#[test]
fn draining_and_unhealthy_backends_keep_their_slot_but_leave_the_table() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(
            1,
            80,
            0,
            vec![
                backend(11, 1, true),
                backend(12, 1, true),
                backend(13, 1, true),
            ],
        )]),
    );
    let key = vip_key(1, 80, PROTO_TCP);
    let drained = r
        .backend_id(&key, IpAddr::from([10, 0, 0, 12]))
        .unwrap_or(0);
    let sick = r
        .backend_id(&key, IpAddr::from([10, 0, 0, 13]))
        .unwrap_or(0);
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(
            1,
            80,
            0,
            vec![
                backend(11, 1, true),
                backend(12, 0, true),
                backend(13, 1, false),
            ],
        )]),
    );
    let t = &maps.tables[0..SIZES.table_size as usize];
    assert!(
        !t.contains(&drained) && !t.contains(&sick),
        "neither may take new flows"
    );
    assert!(
        maps.backends.get(&drained).is_some_and(|b| b.is_active()),
        "drained slot stays for its flows"
    );
    assert!(maps
        .backends
        .get(&sick)
        .is_some_and(|b| b.is_active() && !b.is_healthy()));
}

#[test]
fn all_unhealthy_fails_open() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let desired = state(vec![vip(
        1,
        80,
        0,
        vec![
            backend(11, 1, false),
            backend(12, 3, false),
            backend(13, 0, false),
        ],
    )]);
    converge(&mut r, &mut maps, &desired);
    let info = maps
        .vips
        .get(&vip_key(1, 80, PROTO_TCP))
        .copied()
        .unwrap_or_default();
    assert_eq!(
        info.table_size, SIZES.table_size,
        "fail open: the table keeps every weighted backend"
    );
    assert_eq!(
        desired.vips[0].table_inputs().len(),
        2,
        "but never a drained one"
    );
    assert_ne!(
        info.flags & VIP_F_FAIL_OPEN,
        0,
        "the data plane is told, so it keeps following the flows"
    );

    // One backend recovers: the VIP stops failing open, in the same apply.
    let key = vip_key(1, 80, PROTO_TCP);
    let recovered = state(vec![vip(
        1,
        80,
        0,
        vec![
            backend(11, 1, true),
            backend(12, 3, false),
            backend(13, 0, false),
        ],
    )]);
    converge(&mut r, &mut maps, &recovered);
    let flags = maps.vips.get(&key).map(|i| i.flags).unwrap_or_default();
    assert_eq!(flags & VIP_F_FAIL_OPEN, 0);
    // A drained backend's health does not matter: one weighted healthy
    // backend is enough not to fail open; no weighted backend never does.
    let drained_only = state(vec![vip(1, 80, 0, vec![backend(13, 0, false)])]);
    converge(&mut r, &mut maps, &drained_only);
    let flags = maps.vips.get(&key).map(|i| i.flags).unwrap_or_default();
    assert_eq!(flags & VIP_F_FAIL_OPEN, 0);
}

#[test]
fn the_forwarding_mode_and_gue_port_are_written_and_changed_in_place() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let with_mode = |forwarding, gue_port| {
        let mut v = vip(1, 80, 0, vec![backend(11, 1, true)]);
        v.forwarding = forwarding;
        v.gue_port = gue_port;
        state(vec![v])
    };
    converge(
        &mut r,
        &mut maps,
        &with_mode(lb_common::Forwarding::Ipip, 0),
    );
    for (mode, port) in [
        (lb_common::Forwarding::Gue, 6080),
        (lb_common::Forwarding::Gue, 7000),
        (lb_common::Forwarding::L2Dsr, 0),
        (lb_common::Forwarding::Ipip, 0),
    ] {
        let plan = r
            .plan(&with_mode(mode, port))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&plan.ops[..], [Op::SetVip { info, .. }]
                if info.forwarding() == Some(mode) && info.gue_port() == port),
            "{mode:?} {port}: one entry update: {:?}",
            plan.ops
        );
        converge(&mut r, &mut maps, &with_mode(mode, port));
        assert!(r
            .plan(&with_mode(mode, port))
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
    }
}

#[test]
fn the_udp_idle_timeout_is_written_and_changed_in_place() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let with_timeout = |ms: u32| {
        let mut v = vip(1, 53, 0, vec![backend(11, 1, true)]);
        v.key = vip_key(1, 53, PROTO_UDP);
        v.udp_idle_timeout_ms = ms;
        state(vec![v])
    };
    converge(&mut r, &mut maps, &with_timeout(5_000));
    let plan = r
        .plan(&with_timeout(9_000))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&plan.ops[..], [Op::SetVip { info, .. }] if info.udp_idle_timeout_ms == 9_000),
        "one entry update: {:?}",
        plan.ops
    );
    converge(&mut r, &mut maps, &with_timeout(9_000));
}

#[test]
fn a_vip_without_usable_backends_has_no_table_and_gets_one_atomically() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    converge(&mut r, &mut maps, &state(vec![vip(1, 80, 0, vec![])]));
    assert_eq!(
        maps.vips
            .get(&vip_key(1, 80, PROTO_TCP))
            .map(|i| i.table_size),
        Some(0)
    );
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(1, 80, 0, vec![backend(11, 1, true)])]),
    );
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(1, 80, 0, vec![backend(11, 0, true)])]),
    );
    assert_eq!(
        maps.vips
            .get(&vip_key(1, 80, PROTO_TCP))
            .map(|i| i.table_size),
        Some(0)
    );
}

#[test]
fn exhausting_vip_slots_is_an_error_and_changes_nothing() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let too_many: Vec<DesiredVip> = (1..=SIZES.max_vips as u8 + 1)
        .map(|n| vip(n, 80, 0, vec![backend(11, 1, true)]))
        .collect();
    match r.plan(&state(too_many)) {
        Err(ReconcileError::VipsExhausted { max }) => assert_eq!(max, SIZES.max_vips),
        other => panic!("expected VipsExhausted, got {other:?}"),
    }
    assert_eq!(maps.writes, 0);
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(1, 80, 0, vec![backend(11, 1, true)])]),
    );
}

#[test]
fn freed_ids_are_not_reused_immediately() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(1, 80, 0, vec![backend(11, 1, true)])]),
    );
    let old = r.backend_id(&vip_key(1, 80, PROTO_TCP), IpAddr::from([10, 0, 0, 11]));
    converge(
        &mut r,
        &mut maps,
        &state(vec![vip(1, 80, 0, vec![backend(12, 1, true)])]),
    );
    let new = r.backend_id(&vip_key(1, 80, PROTO_TCP), IpAddr::from([10, 0, 0, 12]));
    assert_ne!(old, new);
}

/// Applies `desired` with a table build that panics for `vip{panics}:80`.
fn apply_with_panicking_build(
    r: &mut Reconciler,
    maps: &mut SimMaps,
    desired: &DesiredState,
    panics: u8,
) -> Result<ApplyReport, ReconcileError> {
    let plan = r.plan(desired).unwrap_or_else(|e| panic!("plan: {e}"));
    let doomed = format!("vip{panics}:80");
    r.apply_building_with(plan, maps, |spec: &TableSpec| {
        if spec.vip == doomed {
            panic!("injected failure");
        }
        spec.build()
    })
}

#[test]
fn a_panicking_table_build_is_an_error_naming_its_vip() {
    // One table (built inline) and three tables (built on threads).
    for vips in [1u8, 3] {
        let mut r = Reconciler::new(SIZES);
        let mut maps = SimMaps::new();
        let desired = state(
            (1..=vips)
                .map(|n| vip(n, 80, 0, vec![backend(10 + n, 1, true)]))
                .collect(),
        );
        match apply_with_panicking_build(&mut r, &mut maps, &desired, vips) {
            Err(ReconcileError::TableBuildPanicked { vip, message }) => {
                assert_eq!(vip, format!("vip{vips}:80"));
                assert_eq!(message, "injected failure");
            }
            other => panic!("{vips} vip(s): expected TableBuildPanicked, got {other:?}"),
        }
        // Nothing was adopted as installed: the same plan is made again.
        assert!(!r
            .plan(&desired)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
    }
}

fn arb_state() -> impl Strategy<Value = DesiredState> {
    let backend =
        (11u8..20, 0u16..4, proptest::bool::weighted(0.8)).prop_map(|(n, w, h)| backend(n, w, h));
    let one_vip = (
        1u8..4,
        prop_oneof![Just(80u16), Just(0u16)],
        0u32..8,
        prop_oneof![
            Just(DEFAULT_UDP_IDLE_TIMEOUT_MS),
            Just(1_000u32),
            Just(600_000u32)
        ],
        proptest::collection::vec(backend, 0..6),
    )
        .prop_map(|(n, port, flags, udp_idle_timeout_ms, mut bs)| {
            bs.sort_by_key(|b| b.addr);
            bs.dedup_by_key(|b| b.addr);
            let proto = if flags & 1 == 0 { PROTO_TCP } else { PROTO_UDP };
            let f = (if flags & 2 != 0 { VIP_F_SOURCE_HASH } else { 0 })
                | (if n == 3 { VIP_F_NO_FLOW_TABLE } else { 0 });
            // Bit 2: a GUE VIP (its mode and port switch in place).
            let (forwarding, gue_port) = if flags & 4 != 0 {
                (lb_common::Forwarding::Gue, 6080 + u16::from(n))
            } else {
                (lb_common::Forwarding::Ipip, 0)
            };
            DesiredVip {
                key: vip_key(n, port, proto),
                name: format!("v{n}"),
                flags: f,
                udp_idle_timeout_ms,
                forwarding,
                gue_port,
                policy: DesiredPolicy::default(),
                backends: bs,
            }
        });
    proptest::collection::vec(one_vip, 0..5).prop_map(|mut vips| {
        vips.sort_by_key(|v| v.key);
        vips.dedup_by_key(|v| v.key);
        state(vips)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any sequence of desired states converges, and no intermediate write ever
    /// shows the data plane an inconsistent VIP (checked inside SimMaps).
    #[test]
    fn any_sequence_of_states_converges_safely(states in proptest::collection::vec(arb_state(), 1..6)) {
        let mut r = Reconciler::new(SIZES);
        let mut maps = SimMaps::new();
        for s in &states {
            converge(&mut r, &mut maps, s);
            prop_assert!(r.plan(s).map(|p| p.is_empty()).unwrap_or(false), "second plan not empty");
        }
    }
}

// ---- at full capacity ----------------------------------------------------

/// Backend slots the reconciler can hand out (slot 0 means "no backend").
const BACKEND_SLOTS: usize = SIZES.max_backends as usize - 1;

/// A VIP at address 10.100.1.`n` (port 80, TCP) with backends 10.0.`n`.`b`
/// for each `b` of `backends`.
fn vip_at(n: u8, backends: impl IntoIterator<Item = u8>) -> DesiredVip {
    DesiredVip {
        key: VipKey::new(IpAddr::from([10, 100, 1, n]), 80, PROTO_TCP),
        name: format!("at{n}"),
        flags: 0,
        udp_idle_timeout_ms: DEFAULT_UDP_IDLE_TIMEOUT_MS,
        forwarding: lb_common::Forwarding::Ipip,
        gue_port: 0,
        policy: DesiredPolicy::default(),
        backends: backends
            .into_iter()
            .map(|b| DesiredBackend {
                addr: IpAddr::from([10, 0, n, b]),
                weight: 1,
                healthy: true,
            })
            .collect(),
    }
}

/// `max_vips` VIPs at distinct addresses, using every backend slot.
fn full_state() -> DesiredState {
    let per_vip = BACKEND_SLOTS / SIZES.max_vips as usize;
    let mut extra = BACKEND_SLOTS % SIZES.max_vips as usize;
    state(
        (1..=SIZES.max_vips as u8)
            .map(|n| {
                let count = per_vip + usize::from(extra > 0);
                extra = extra.saturating_sub(1);
                vip_at(n, 1..=count as u8)
            })
            .collect(),
    )
}

fn backends_in(desired: &DesiredState) -> usize {
    desired.vips.iter().map(|v| v.backends.len()).sum()
}

#[test]
fn moving_a_vip_to_a_new_address_at_max_vips_fits_the_vip_map() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let mut desired = full_state();
    converge(&mut r, &mut maps, &desired);
    assert_eq!(
        maps.vips.len(),
        SIZES.vip_map_entries() as usize,
        "XLB_VIPS is full"
    );

    let moved = &mut desired.vips[2];
    moved.key = VipKey::new(IpAddr::from([10, 100, 2, 3]), 80, PROTO_TCP);
    converge(&mut r, &mut maps, &desired);
    // And the next reconcile is not wedged either.
    desired.vips[0].backends[0].weight = 7;
    converge(&mut r, &mut maps, &desired);
}

#[test]
fn replacing_backends_at_max_backends_fits_the_backend_map() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let mut desired = full_state();
    assert_eq!(backends_in(&desired), BACKEND_SLOTS);
    converge(&mut r, &mut maps, &desired);

    // One backend of one VIP replaced: the VIP keeps a table throughout.
    desired.vips[0].backends[0].addr = IpAddr::from([10, 0, 1, 200]);
    let plan = r.plan(&desired).unwrap_or_else(|e| panic!("plan: {e}"));
    let dark = plan.ops.iter().any(|op| {
        matches!(op, Op::SetVip { key, info } if *key == desired.vips[0].key && info.table_size == 0)
    });
    assert!(
        !dark,
        "a VIP that keeps backends keeps its table: {:?}",
        plan.ops
    );
    r.apply(plan, &mut maps)
        .unwrap_or_else(|e| panic!("apply: {e}"));
    assert_matches_desired(&r, &maps, &desired);

    // Every backend of one VIP and one of another replaced at once.
    desired.vips[1].backends = vip_at(2, 100..107).backends;
    desired.vips[3].backends[1].addr = IpAddr::from([10, 0, 4, 200]);
    converge(&mut r, &mut maps, &desired);

    // Backends moving from one VIP to another.
    let moving = desired.vips[4].backends.split_off(2);
    desired.vips[5].backends.extend(moving);
    converge(&mut r, &mut maps, &desired);
}

#[test]
fn a_state_beyond_max_backends_is_refused_before_any_write() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let mut desired = full_state();
    converge(&mut r, &mut maps, &desired);
    let writes = maps.writes;
    desired.vips[0].backends.push(vip_at(1, [250]).backends[0]);
    match r.plan(&desired) {
        Err(ReconcileError::BackendsExhausted { max }) => assert_eq!(max, SIZES.max_backends),
        other => panic!("expected BackendsExhausted, got {other:?}"),
    }
    assert_eq!(maps.writes, writes);
}

#[test]
fn replacing_a_transmit_port_at_max_tx_ports_fits_the_port_map() {
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let mut desired = state(vec![vip(1, 80, 0, vec![backend(11, 1, true)])]);
    desired.tx_ports = (1..=MAX_TX_PORTS).collect();
    converge(&mut r, &mut maps, &desired);
    desired.tx_ports.remove(&5);
    desired.tx_ports.insert(1000);
    converge(&mut r, &mut maps, &desired);
}

/// Desired states that fill the maps: up to `max_vips` VIPs at distinct
/// addresses (sometimes sharing one), their backends drawn from small pools
/// so that states share some, and trimmed to the backend slots.
fn arb_full_state() -> impl Strategy<Value = DesiredState> {
    let backend = (0u8..14, 0u16..3, proptest::bool::weighted(0.85));
    let one_vip = (
        0u8..9,
        prop_oneof![Just(80u16), Just(0u16), Just(443u16)],
        0u32..4,
        proptest::collection::vec(backend, 4..10),
    );
    (
        proptest::collection::vec(
            one_vip,
            SIZES.max_vips as usize - 1..=SIZES.max_vips as usize,
        ),
        0usize..3,
    )
        .prop_map(|(vips, over)| {
            let mut left = BACKEND_SLOTS;
            let mut out: Vec<DesiredVip> = Vec::new();
            for (addr, port, flags, backends) in vips {
                let proto = if flags & 1 == 0 { PROTO_TCP } else { PROTO_UDP };
                let key = VipKey::new(IpAddr::from([10, 100, 3, addr]), port, proto);
                if out.iter().any(|v| v.key == key) {
                    continue;
                }
                let mut bs: Vec<DesiredBackend> = backends
                    .into_iter()
                    .map(|(b, w, h)| DesiredBackend {
                        addr: IpAddr::from([10, 0, 3, b]),
                        weight: w,
                        healthy: h,
                    })
                    .collect();
                bs.sort_by_key(|b| b.addr);
                bs.dedup_by_key(|b| b.addr);
                bs.truncate(left);
                left -= bs.len();
                out.push(DesiredVip {
                    key,
                    name: format!("full{addr}:{port}/{proto}"),
                    flags: if flags & 2 != 0 { VIP_F_SOURCE_HASH } else { 0 },
                    udp_idle_timeout_ms: DEFAULT_UDP_IDLE_TIMEOUT_MS,
                    forwarding: lb_common::Forwarding::Ipip,
                    gue_port: 0,
                    policy: DesiredPolicy::default(),
                    backends: bs,
                });
            }
            // Usually exactly full; sometimes with a slot or two to spare.
            if over > 0 && left == 0 {
                if let Some(v) = out.iter_mut().find(|v| v.backends.len() > over) {
                    v.backends.truncate(v.backends.len() - over);
                }
            }
            out.sort_by_key(|v| v.key);
            state(out)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// At max_vips VIPs and max_backends backends, any sequence of desired
    /// states converges: no write ever exceeds a map's capacity and no
    /// intermediate write shows the data plane an inconsistent VIP.
    #[test]
    fn any_sequence_of_full_states_converges_safely(
        states in proptest::collection::vec(arb_full_state(), 2..7),
    ) {
        let mut r = Reconciler::new(SIZES);
        let mut maps = SimMaps::new();
        for s in &states {
            prop_assert!(backends_in(s) <= BACKEND_SLOTS);
            let plan = r.plan(s).map_err(|e| TestCaseError::fail(format!("plan: {e}")))?;
            r.apply(plan, &mut maps)
                .map_err(|e| TestCaseError::fail(format!("apply: {}", crate::dataplane::attach::error_chain(&e))))?;
            assert_matches_desired(&r, &maps, s);
            prop_assert!(r.plan(s).map(|p| p.is_empty()).unwrap_or(false), "second plan not empty");
        }
    }
}

/// What the data plane decides for `source` at vip id `vip_id` with the
/// simulated tries: the longest matching prefix, through the same rule.
fn sim_access(m: &SimMaps, vip_id: u32, source: IpAddr) -> lb_common::policy::SourceAccess {
    let p = m
        .policies
        .get(&vip_id)
        .copied()
        .unwrap_or(lb_common::VipPolicy::NONE);
    let best = m
        .prefixes
        .iter()
        .filter(|((v, addr, len), _)| {
            *v == vip_id
                && crate::config::IpPrefix {
                    addr: *addr,
                    len: *len,
                }
                .contains_addr(source)
        })
        .max_by_key(|((_, _, len), _)| *len)
        .map(|(_, value)| *value);
    lb_common::policy::source_access(&p, if p.has_prefixes() { best } else { None })
}

/// The documented rule, straight from the lists: any deny prefix refuses;
/// with an allow list, a source in none of it is refused.
fn refused_by(
    allow: &[crate::config::IpPrefix],
    deny: &[crate::config::IpPrefix],
    a: IpAddr,
) -> bool {
    deny.iter().any(|d| d.contains_addr(a))
        || (!allow.is_empty() && !allow.iter().any(|p| p.contains_addr(a)))
}

type PolicyCase = (Vec<crate::config::IpPrefix>, Vec<crate::config::IpPrefix>);

/// (allow, deny) lists to move between: overlapping prefixes both ways, an
/// allow list that goes away, and the same prefix moving from allow to
/// deny.
fn policy_cases() -> Vec<PolicyCase> {
    let p = |list: &[&str]| -> Vec<crate::config::IpPrefix> {
        list.iter().map(|s| s.parse().expect("prefix")).collect()
    };
    vec![
        (
            p(&["10.0.0.0/8", "192.0.2.0/25"]),
            p(&["10.1.0.0/16", "192.0.2.0/24"]),
        ),
        (p(&[]), p(&["10.0.0.0/8", "10.1.2.0/24", "198.51.100.0/24"])),
        (p(&["10.1.0.0/16", "198.51.100.0/24"]), p(&["10.1.2.0/24"])),
        (p(&["0.0.0.0/0"]), p(&["10.0.0.0/8"])),
        (p(&[]), p(&[])),
    ]
}

/// Sources inside, between and outside the prefixes of `policy_cases`.
fn policy_probes() -> Vec<IpAddr> {
    [
        [10, 0, 0, 1],
        [10, 1, 0, 1],
        [10, 1, 2, 3],
        [10, 200, 0, 1],
        [192, 0, 2, 1],
        [192, 0, 2, 200],
        [198, 51, 100, 7],
        [203, 0, 113, 9],
    ]
    .into_iter()
    .map(IpAddr::from)
    .collect()
}

/// One VIP (10.100.0.1:80) with `case`'s allow and deny lists.
fn policy_state((allow, deny): &PolicyCase) -> DesiredState {
    let mut v = vip(1, 80, 0, vec![backend(1, 100, true)]);
    v.policy = DesiredPolicy::new(IpAddr::from([10, 100, 0, 1]), allow, deny, None, None);
    state(vec![v])
}

#[test]
fn policy_changes_never_admit_what_old_and_new_both_refuse() {
    let policies = policy_cases();
    let probes = policy_probes();
    let with_policy = |i: usize| policy_state(&policies[i]);
    for from in 0..policies.len() {
        for to in 0..policies.len() {
            let mut maps = SimMaps::new();
            let mut r = Reconciler::new(SIZES);
            let plan = r.plan(&with_policy(from)).expect("plan");
            r.apply(plan, &mut maps).expect("apply");
            let vip_id = r.vip_id(&vip_key(1, 80, PROTO_TCP)).expect("installed");
            for a in &probes {
                let refused = refused_by(&policies[from].0, &policies[from].1, *a);
                let sim = sim_access(&maps, vip_id, *a);
                assert_eq!(
                    sim != lb_common::policy::SourceAccess::Allowed,
                    refused,
                    "policy {from}, source {a}: {sim:?}"
                );
            }
            let both: Vec<IpAddr> = probes
                .iter()
                .copied()
                .filter(|a| {
                    refused_by(&policies[from].0, &policies[from].1, *a)
                        && refused_by(&policies[to].0, &policies[to].1, *a)
                })
                .collect();
            maps.after_write = Some(Box::new(move |m: &SimMaps| {
                for a in &both {
                    assert_ne!(
                        sim_access(m, vip_id, *a),
                        lb_common::policy::SourceAccess::Allowed,
                        "policy {from} -> {to}: {a} admitted in between"
                    );
                }
            }));
            let plan = r.plan(&with_policy(to)).expect("plan");
            r.apply(plan, &mut maps).expect("apply");
            for a in &probes {
                let refused = refused_by(&policies[to].0, &policies[to].1, *a);
                assert_eq!(
                    sim_access(&maps, vip_id, *a) != lb_common::policy::SourceAccess::Allowed,
                    refused,
                    "after {from} -> {to}, source {a}"
                );
            }
        }
    }
}

/// What the data plane decides for a packet of an established flow from
/// `source` whose connection-table entry holds access generation `stamp`:
/// the entry's word while it is current, else the tries (and a fresh stamp
/// when they allow it), as the data plane's `follow_entry` does.
fn sim_established(
    m: &SimMaps,
    vip_id: u32,
    source: IpAddr,
    stamp: &std::cell::Cell<u32>,
) -> lb_common::policy::SourceAccess {
    use lb_common::policy::{source_access_current, SourceAccess};
    let p = m
        .policies
        .get(&vip_id)
        .copied()
        .unwrap_or(lb_common::VipPolicy::NONE);
    let entry = lb_common::FlowValue::new(1, 0).with_access_generation(stamp.get());
    if source_access_current(&p, &entry) {
        return SourceAccess::Allowed;
    }
    let access = sim_access(m, vip_id, source);
    if access == SourceAccess::Allowed {
        stamp.set(p.access_generation);
    }
    access
}

/// Established flows skip the trie while their entry holds the VIP's
/// access generation: whatever the change of prefixes, and whenever a
/// packet of theirs checked and stamped its entry during the change, once
/// the change is applied every flow is judged by the new prefixes.
#[test]
fn established_flows_are_judged_by_the_new_prefixes_after_a_change() {
    use std::{cell::Cell, rc::Rc};

    use lb_common::policy::SourceAccess;
    let policies = policy_cases();
    let probes = policy_probes();
    let with_policy = |i: usize| policy_state(&policies[i]);
    for from in 0..policies.len() {
        for (to, (allow_to, deny_to)) in policies.iter().enumerate() {
            let mut maps = SimMaps::new();
            let mut r = Reconciler::new(SIZES);
            let plan = r.plan(&with_policy(from)).expect("plan");
            r.apply(plan, &mut maps).expect("apply");
            let vip_id = r.vip_id(&vip_key(1, 80, PROTO_TCP)).expect("installed");
            let stamps: Rc<Vec<Cell<u32>>> = Rc::new(probes.iter().map(|_| Cell::new(0)).collect());
            for (a, stamp) in probes.iter().zip(stamps.iter()) {
                sim_established(&maps, vip_id, *a, stamp);
            }
            // A packet of every flow between any two writes.
            let (seen, sources) = (Rc::clone(&stamps), probes.clone());
            maps.after_write = Some(Box::new(move |m: &SimMaps| {
                for (a, stamp) in sources.iter().zip(seen.iter()) {
                    sim_established(m, vip_id, *a, stamp);
                }
            }));
            let plan = r.plan(&with_policy(to)).expect("plan");
            r.apply(plan, &mut maps).expect("apply");
            for (a, stamp) in probes.iter().zip(stamps.iter()) {
                let refused = refused_by(allow_to, deny_to, *a);
                assert_eq!(
                    sim_established(&maps, vip_id, *a, stamp) != SourceAccess::Allowed,
                    refused,
                    "after {from} -> {to}, established flow from {a} (stamp {})",
                    stamp.get()
                );
            }
        }
    }
}

/// A change of rates only keeps the access generation (established flows
/// are not sent back to the trie for nothing); a change of prefixes gets a
/// generation never used before.
#[test]
fn access_generations_change_with_prefixes_only() {
    let vip_addr = IpAddr::from([10, 100, 0, 1]);
    let deny: Vec<crate::config::IpPrefix> = vec!["192.0.2.0/24".parse().expect("prefix")];
    let with = |deny: &[crate::config::IpPrefix], rate: Option<u32>| {
        let mut v = vip(1, 80, 0, vec![backend(1, 100, true)]);
        let limit = rate.map(|per_second| crate::config::RateLimit {
            per_second,
            burst: 1,
        });
        v.policy = DesiredPolicy::new(vip_addr, &[], deny, limit.as_ref(), None);
        state(vec![v])
    };
    let mut maps = SimMaps::new();
    let mut r = Reconciler::new(SIZES);
    let generation = |r: &mut Reconciler, maps: &mut SimMaps, s: &DesiredState| {
        let plan = r.plan(s).expect("plan");
        r.apply(plan, maps).expect("apply");
        let id = r.vip_id(&vip_key(1, 80, PROTO_TCP)).expect("installed");
        maps.policies.get(&id).map_or(0, |p| p.access_generation)
    };
    let g1 = generation(&mut r, &mut maps, &with(&deny, None));
    assert_ne!(g1, 0, "a VIP with prefixes has a generation");
    assert_eq!(generation(&mut r, &mut maps, &with(&deny, Some(100))), g1);
    let more: Vec<crate::config::IpPrefix> = vec![
        "192.0.2.0/24".parse().expect("prefix"),
        "198.51.100.0/24".parse().expect("prefix"),
    ];
    let g2 = generation(&mut r, &mut maps, &with(&more, Some(100)));
    assert!(g2 > g1, "{g2} after {g1}");
    assert_eq!(
        generation(&mut r, &mut maps, &with(&[], Some(100))),
        0,
        "no prefixes, nothing to look up"
    );
    let g3 = generation(&mut r, &mut maps, &with(&deny, Some(100)));
    assert!(g3 > g2, "{g3} after {g2}: never handed out twice");
}

/// The address marker says what the data plane does with portless traffic:
/// it follows the VIPs' `ping` flags and which VIP takes fragments, and is
/// rewritten when they change.
#[test]
fn markers_follow_ping_and_the_fragment_owner() {
    use lb_common::VIP_F_NO_PING;
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    let udp = |flags| DesiredVip {
        key: vip_key(1, 53, PROTO_UDP),
        ..vip(1, 53, flags, vec![backend(1, 100, true)])
    };
    let marker = |maps: &SimMaps| maps.vips[&vip_key(1, 53, PROTO_UDP).to_marker()];

    converge(&mut r, &mut maps, &state(vec![udp(VIP_F_SOURCE_HASH)]));
    assert_eq!(marker(&maps), VipInfo::marker(true, None, Some(53)));

    converge(&mut r, &mut maps, &state(vec![udp(VIP_F_NO_PING)]));
    assert_eq!(
        marker(&maps),
        VipInfo::marker(false, None, None),
        "no ping, five-tuple: fragments dropped"
    );

    // A TCP VIP on the same address that allows ping: answered again; the
    // UDP VIP, source-hashed again, takes UDP fragments.
    let both = state(vec![
        udp(VIP_F_SOURCE_HASH | VIP_F_NO_PING),
        vip(1, 80, 0, vec![backend(2, 100, true)]),
    ]);
    converge(&mut r, &mut maps, &both);
    assert_eq!(marker(&maps), VipInfo::marker(true, None, Some(53)));
    // Nothing changed: no write.
    let plan = r.plan(&both).unwrap_or_else(|e| panic!("plan: {e}"));
    assert!(
        !plan
            .ops
            .iter()
            .any(|o| matches!(o, Op::SetVip { key, .. } if key.is_marker())),
        "an unchanged marker is not rewritten"
    );
}

/// NAT addresses are in the VIP-address filter while the NAT config names
/// them (the data plane looks for NAT replies only among destinations the
/// filter lets on): set before the config names a new one, cleared after
/// it no longer does (checked after every write), and the filter ends as
/// the VIP and NAT addresses of the desired state.
#[test]
fn nat_addresses_hold_their_filter_bit_while_configured() {
    let nat = |v4: &[[u8; 4]], v6: &[u16]| {
        let v4: Vec<std::net::Ipv4Addr> = v4.iter().map(|a| (*a).into()).collect();
        let v6: Vec<std::net::Ipv6Addr> = v6
            .iter()
            .map(|x| std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, *x))
            .collect();
        lb_common::NatConfig::new(&v4, &v6, (1024, 65535)).expect("valid NAT config")
    };
    let with = |n: lb_common::NatConfig| {
        let mut s = state(vec![vip(1, 80, 0, vec![backend(1, 100, true)])]);
        s.global = s.global.with_nat(n);
        s
    };
    let mut r = Reconciler::new(SIZES);
    let mut maps = SimMaps::new();
    converge(&mut r, &mut maps, &with(nat(&[[10, 0, 9, 1]], &[1])));
    converge(
        &mut r,
        &mut maps,
        &with(nat(&[[10, 0, 9, 2], [10, 0, 9, 3]], &[2])),
    );
    converge(&mut r, &mut maps, &with(lb_common::NatConfig::DEFAULT));
}
