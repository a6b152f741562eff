//! The planner: diffs a desired state against the installed one and orders the
//! map writes that get there (the order is explained in the module above).
//! A plan starts from a clone of the installed state and edits it as it adds
//! ops, so it ends holding the state its ops install.

use std::{
    collections::{btree_map::Entry, BTreeMap, BTreeSet},
    net::IpAddr,
};

use lb_common::{Backend, GlobalConfig, VipInfo, VipKey, VipPolicy, MAX_TX_PORTS, NO_BACKEND};

use super::{
    installed::{Installed, InstalledBackend, InstalledVip},
    markers, DesiredBackend, DesiredState, DesiredVip, ReconcileError, TableSpec,
};
use crate::{
    dataplane::{Sizes, SourcePrefix},
    maglev::{self, MaglevError},
};

mod policy;
mod vip_filter;

pub(crate) use vip_filter::filter_words;

/// One map write. `T` is what a table write carries: in a [`Plan`] the
/// table's Maglev inputs ([`TableSpec`]), so a plan for many VIPs does not
/// hold their tables; in what a [`super::MapWriter`] receives
/// ([`super::MapWrite`]) the built table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<T = TableSpec> {
    SetGlobal(GlobalConfig),
    AddTxPort(u32),
    RemoveTxPort(u32),
    /// Fill (or update) a backend slot.
    SetBackend {
        id: u32,
        backend: Backend,
    },
    /// Free a backend slot (the data plane then ignores flows pinned to it).
    ClearBackend {
        id: u32,
    },
    /// Zero a backend slot's counters and cached next hop: the id is (re)used.
    ResetBackendState {
        id: u32,
    },
    ResetVipStats {
        vip_id: u32,
    },
    /// Rewrite a VIP's table in place (only differing slots are stored).
    WriteTable {
        vip_id: u32,
        offset: u32,
        table: T,
    },
    /// Zero a freed VIP's table.
    ClearTable {
        vip_id: u32,
        offset: u32,
        len: u32,
    },
    SetVip {
        key: VipKey,
        info: VipInfo,
    },
    RemoveVip {
        key: VipKey,
    },
    /// Add or replace one source prefix of a VIP (`PREFIX_ALLOW`/`_DENY`).
    SetPrefix {
        prefix: SourcePrefix,
        value: u32,
    },
    RemovePrefix {
        prefix: SourcePrefix,
    },
    /// Replace a VIP id's policy record.
    SetPolicy {
        vip_id: u32,
        policy: VipPolicy,
    },
    /// Zero a VIP id's policy counters and its rate bucket: the id is (re)used.
    ResetPolicyState {
        vip_id: u32,
    },
    /// Replace word `index` of the VIP-address bitmap `XLB_VIP_FILTER`.
    SetFilterWord {
        index: u32,
        word: u64,
    },
}

/// A computed change set: the ops and the installed state they lead to.
#[derive(Clone, Debug)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// The installed state once `ops` are performed.
    pub(super) next: Installed,
    pub(super) vips_added: usize,
    pub(super) vips_removed: usize,
    pub(super) tables_rebuilt: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Computes the writes that turn `have` into `desired`.
pub(super) fn plan(
    sizes: Sizes,
    have: &Installed,
    desired: &DesiredState,
) -> Result<Plan, ReconcileError> {
    let mut p = Planner {
        sizes,
        plan: Plan {
            ops: Vec::new(),
            next: have.clone(),
            vips_added: 0,
            vips_removed: 0,
            tables_rebuilt: 0,
        },
    };

    // Global settings first: new VIPs may need the new outer source.
    if have.global != Some(desired.global) {
        p.push(Op::SetGlobal(desired.global));
        p.plan.next.global = Some(desired.global);
    }
    // New transmit ports before the backends they lead to; when the map
    // cannot hold old and new ports at once, the old ones go first.
    let stale_ports: Vec<u32> = have
        .tx_ports
        .difference(&desired.tx_ports)
        .copied()
        .collect();
    let all_ports = have.tx_ports.union(&desired.tx_ports).count();
    let ports_first = all_ports > MAX_TX_PORTS as usize;
    if ports_first {
        stale_ports
            .iter()
            .for_each(|port| p.push(Op::RemoveTxPort(*port)));
    }
    for port in desired.tx_ports.difference(&have.tx_ports) {
        p.push(Op::AddTxPort(*port));
    }

    let wanted: BTreeMap<VipKey, &DesiredVip> = desired.vips.iter().map(|v| (v.key, v)).collect();
    // The new addresses' filter bits before any of their VIPs appears.
    let filter = filter_words(wanted.keys().map(VipKey::addr));
    p.widen_vip_filter(&filter);

    // Removed VIPs go first: they free ids and slots for added ones.
    for (key, vip) in &have.vips {
        if !wanted.contains_key(key) {
            p.remove_vip(key, vip);
        }
    }
    // Address markers no VIP uses any more go next: XLB_VIPS holds a VIP and
    // a marker per VIP id, so a VIP moving to a new address at max_vips needs
    // its old marker's room. A marker only matters for traffic without ports
    // to an address with a VIP, and every VIP of these addresses is gone by
    // now.
    let want_markers = markers::marker_values(&wanted.values().copied().collect::<Vec<_>>());
    for m in have
        .markers
        .keys()
        .filter(|m| !want_markers.contains_key(m))
    {
        p.push(Op::RemoveVip { key: *m });
    }
    // Backends leaving a kept VIP go before others arrive when the free
    // backend slots cannot hold the arrivals otherwise.
    p.make_room_for_backends(&wanted)?;
    for (key, want) in &wanted {
        match p.plan.next.vips.get(key).cloned() {
            None => p.add_vip(want)?,
            Some(installed) => p.update_vip(want, &installed)?,
        }
    }
    // New and changed markers last: a marker naming the VIP that takes an
    // address's fragments is written once that VIP's entry is. (A marker
    // naming a VIP removed above drops its fragments until then.)
    for (key, info) in &want_markers {
        if have.markers.get(key) != Some(info) {
            p.push(Op::SetVip {
                key: *key,
                info: *info,
            });
        }
    }
    p.plan.next.markers = want_markers;

    if !ports_first {
        stale_ports
            .iter()
            .for_each(|port| p.push(Op::RemoveTxPort(*port)));
    }
    p.plan.next.tx_ports = desired.tx_ports.clone();
    // Old addresses' bits once their VIPs and markers are gone.
    p.narrow_vip_filter(&filter);
    Ok(p.plan)
}

/// A plan being built, with the map sizes it is built for.
struct Planner {
    sizes: Sizes,
    plan: Plan,
}

impl Planner {
    fn push(&mut self, op: Op) {
        self.plan.ops.push(op);
    }

    fn add_vip(&mut self, want: &DesiredVip) -> Result<(), ReconcileError> {
        let vip_id = self
            .plan
            .next
            .vip_ids
            .alloc()
            .ok_or(ReconcileError::VipsExhausted {
                max: self.sizes.max_vips,
            })?;
        let mut backends = BTreeMap::new();
        for b in &want.backends {
            backends.insert(b.addr, self.new_backend(b, vip_id)?);
        }
        let inputs = want.table_inputs();
        if !inputs.is_empty() {
            self.write_table(want, vip_id, &inputs, &backends)?;
        }
        self.push(Op::ResetVipStats { vip_id });
        self.push(Op::ResetPolicyState { vip_id });
        self.sync_policy(vip_id, Some(&want.policy));
        let info = self.vip_info(vip_id, want, !inputs.is_empty());
        self.push(Op::SetVip {
            key: want.key,
            info,
        });
        self.plan.next.vips.insert(
            want.key,
            InstalledVip {
                vip_id,
                flags: info.flags,
                udp_idle_timeout_ms: info.udp_idle_timeout_ms,
                forwarding: (info.forwarding_byte(), info.gue_port()),
                backends,
                table_inputs: inputs,
            },
        );
        self.plan.vips_added += 1;
        Ok(())
    }

    /// Gives `b` a fresh slot of VIP `vip_id`: counters and cached next hop
    /// reset first (the id may have served another backend), then filled.
    fn new_backend(
        &mut self,
        b: &DesiredBackend,
        vip_id: u32,
    ) -> Result<InstalledBackend, ReconcileError> {
        let id = self
            .plan
            .next
            .backend_ids
            .alloc()
            .ok_or(ReconcileError::BackendsExhausted {
                max: self.sizes.max_backends,
            })?;
        self.push(Op::ResetBackendState { id });
        self.push(Op::SetBackend {
            id,
            backend: backend_value(b, vip_id),
        });
        Ok(InstalledBackend {
            id,
            weight: b.weight,
            healthy: b.healthy,
        })
    }

    /// Frees backend slots for the backends `wanted` adds, when there are not
    /// enough free ones for them while the backends leaving stay (the usual
    /// order: a VIP's new backends join its table before the leaving ones
    /// go). Kept VIPs then first drop their leaving backends (table rewritten
    /// without them, slots cleared), as few VIPs as needed, preferring those
    /// whose table keeps a backend: a VIP whose every table backend is
    /// replaced has no table between the two steps (its packets are dropped
    /// as `no_backend`), which only a full backend map forces.
    fn make_room_for_backends(
        &mut self,
        wanted: &BTreeMap<VipKey, &DesiredVip>,
    ) -> Result<(), ReconcileError> {
        let arriving: usize = wanted
            .iter()
            .map(|(key, want)| {
                let kept = self.plan.next.vips.get(key);
                want.backends
                    .iter()
                    .filter(|b| !kept.is_some_and(|v| v.backends.contains_key(&b.addr)))
                    .count()
            })
            .sum();
        let mut free = self.plan.next.backend_ids.free_count();
        if arriving <= free {
            return Ok(());
        }
        // (goes dark, key, the VIP with only its staying backends)
        let mut shrinks: Vec<(bool, VipKey, DesiredVip)> = Vec::new();
        for (key, want) in wanted {
            let Some(have) = self.plan.next.vips.get(key) else {
                continue;
            };
            let staying = DesiredVip {
                backends: want
                    .backends
                    .iter()
                    .filter(|b| have.backends.contains_key(&b.addr))
                    .copied()
                    .collect(),
                ..(*want).clone()
            };
            if staying.backends.len() == have.backends.len() {
                continue;
            }
            let dark = !have.table_inputs.is_empty() && staying.table_inputs().is_empty();
            shrinks.push((dark, *key, staying));
        }
        shrinks.sort_by_key(|(dark, key, _)| (*dark, *key));
        for (_, key, staying) in shrinks {
            if arriving <= free {
                break;
            }
            let Some(have) = self.plan.next.vips.get(&key).cloned() else {
                continue;
            };
            free += have.backends.len() - staying.backends.len();
            self.update_vip(&staying, &have)?;
        }
        // Not enough even so: the desired state does not fit, and adding
        // its backends fails with `BackendsExhausted` before anything is
        // written.
        Ok(())
    }

    fn update_vip(&mut self, want: &DesiredVip, have: &InstalledVip) -> Result<(), ReconcileError> {
        let vip_id = have.vip_id;
        self.sync_policy(vip_id, Some(&want.policy));
        let mut backends = have.backends.clone();
        // 1. New backends get slots before any table can name them.
        for b in &want.backends {
            if let Entry::Vacant(slot) = backends.entry(b.addr) {
                slot.insert(self.new_backend(b, vip_id)?);
            }
        }
        // 2. The table, only if its inputs changed: rewritten in place while
        //    visible, or filled invisibly and switched on, or switched off and
        //    cleared.
        let inputs = want.table_inputs();
        let offset = self.sizes.table_offset(vip_id);
        let (had_table, has_table) = (!have.table_inputs.is_empty(), !inputs.is_empty());
        let mut entry_written = false;
        if inputs != have.table_inputs {
            if has_table {
                self.write_table(want, vip_id, &inputs, &backends)?;
                if !had_table {
                    self.push(Op::SetVip {
                        key: want.key,
                        info: self.vip_info(vip_id, want, true),
                    });
                    entry_written = true;
                }
            } else {
                self.push(Op::SetVip {
                    key: want.key,
                    info: self.vip_info(vip_id, want, false),
                });
                self.push(Op::ClearTable {
                    vip_id,
                    offset,
                    len: self.sizes.table_size,
                });
                entry_written = true;
            }
        }
        // 3. Weight/health bookkeeping of kept backends (informational fields).
        for b in &want.backends {
            if let Some(cur) = backends.get_mut(&b.addr) {
                if cur.weight != b.weight || cur.healthy != b.healthy {
                    cur.weight = b.weight;
                    cur.healthy = b.healthy;
                    self.push(Op::SetBackend {
                        id: cur.id,
                        backend: backend_value(b, vip_id),
                    });
                }
            }
        }
        // 4. Removed backends: no table names them any more.
        let keep: BTreeSet<IpAddr> = want.backends.iter().map(|b| b.addr).collect();
        let gone: Vec<IpAddr> = backends
            .keys()
            .filter(|a| !keep.contains(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(b) = backends.remove(&addr) {
                self.push(Op::ClearBackend { id: b.id });
                self.plan.next.backend_ids.free(b.id);
            }
        }
        // 5. Flags (hashing, flow-table bypass, fail open), the UDP idle
        //    timeout and the forwarding mode switch atomically. Fail open is
        //    switched after the table and health flags: in between, flows to
        //    unhealthy backends fall back to the table, which always names
        //    live backends.
        let info = self.vip_info(vip_id, want, has_table);
        let forwarding = (info.forwarding_byte(), info.gue_port());
        let entry_changed = (info.flags, info.udp_idle_timeout_ms, forwarding)
            != (have.flags, have.udp_idle_timeout_ms, have.forwarding);
        if entry_changed && !entry_written {
            self.push(Op::SetVip {
                key: want.key,
                info,
            });
        }
        self.plan.next.vips.insert(
            want.key,
            InstalledVip {
                vip_id,
                flags: info.flags,
                udp_idle_timeout_ms: info.udp_idle_timeout_ms,
                forwarding,
                backends,
                table_inputs: inputs,
            },
        );
        Ok(())
    }

    fn remove_vip(&mut self, key: &VipKey, have: &InstalledVip) {
        self.push(Op::RemoveVip { key: *key });
        self.push(Op::ClearTable {
            vip_id: have.vip_id,
            offset: self.sizes.table_offset(have.vip_id),
            len: self.sizes.table_size,
        });
        for b in have.backends.values() {
            self.push(Op::ClearBackend { id: b.id });
            self.plan.next.backend_ids.free(b.id);
        }
        self.sync_policy(have.vip_id, None);
        self.plan.next.vip_ids.free(have.vip_id);
        self.plan.next.vips.remove(key);
        self.plan.vips_removed += 1;
    }

    /// The VIP entry of `want` as VIP `vip_id`; `table_size` 0 when the VIP
    /// has no usable backend.
    fn vip_info(&self, vip_id: u32, want: &DesiredVip, has_table: bool) -> VipInfo {
        VipInfo::new(
            vip_id,
            want.entry_flags(),
            self.sizes.table_offset(vip_id),
            if has_table { self.sizes.table_size } else { 0 },
        )
        .with_udp_idle_timeout_ms(want.udp_idle_timeout_ms)
        .with_forwarding(want.forwarding, want.gue_port)
    }

    /// Schedules writing VIP `vip_id`'s table from `inputs` (not empty).
    fn write_table(
        &mut self,
        want: &DesiredVip,
        vip_id: u32,
        inputs: &[(IpAddr, u16)],
        backends: &BTreeMap<IpAddr, InstalledBackend>,
    ) -> Result<(), ReconcileError> {
        let table = self.table_spec(want, inputs, backends)?;
        let offset = self.sizes.table_offset(vip_id);
        self.push(Op::WriteTable {
            vip_id,
            offset,
            table,
        });
        self.plan.tables_rebuilt += 1;
        Ok(())
    }

    /// What the VIP's table is built from (`inputs` is not empty). Checked
    /// here, so a plan that would fail to build fails before writing anything.
    fn table_spec(
        &self,
        want: &DesiredVip,
        inputs: &[(IpAddr, u16)],
        backends: &BTreeMap<IpAddr, InstalledBackend>,
    ) -> Result<TableSpec, ReconcileError> {
        let size = self.sizes.table_size;
        let maglev_err = |source| ReconcileError::Maglev {
            vip: want.name.clone(),
            source,
        };
        maglev::check_table_size(size).map_err(maglev_err)?;
        if inputs.len() > size as usize {
            return Err(maglev_err(MaglevError::TooManyBackends {
                backends: inputs.len(),
                table_size: size,
            }));
        }
        Ok(TableSpec {
            vip: want.name.clone(),
            size,
            inputs: inputs.to_vec(),
            ids: inputs
                .iter()
                .map(|(a, _)| backends.get(a).map(|b| b.id).unwrap_or(NO_BACKEND))
                .collect(),
        })
    }
}

fn backend_value(b: &DesiredBackend, vip_id: u32) -> Backend {
    Backend::new(b.addr, vip_id, b.weight, b.healthy)
}
