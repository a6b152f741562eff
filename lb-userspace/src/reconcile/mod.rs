//! Turns the desired balancer state into BPF map writes.
//!
//! [`Reconciler::plan`] diffs the desired state against what is installed and
//! produces an ordered list of [`Op`]s; [`Reconciler::apply`] performs them on a
//! [`MapWriter`] (the real `Dataplane`, or a recorder in tests) and records the
//! new installed state. The order is what keeps the data plane consistent at
//! every instant:
//!
//! - a VIP's backends and its complete table are written before its VIP entry
//!   appears, and its VIP entry is removed before its table and backends go;
//! - a VIP with no usable backend has `table_size` 0 in its entry (the data plane
//!   drops without reading a table): a table is filled while invisible and
//!   switched on with one atomic entry update, and switched off before clearing;
//! - a visible table is rewritten in place, slot by slot, from one complete
//!   table to another: every slot always names a live backend of the VIP;
//! - a removed backend's slot is cleared only after no table names it; flows
//!   still pinned to it then fall back to the table (the data plane checks);
//! - ids of removed VIPs and backends are reused last (FIFO), so a stale flow
//!   entry is unlikely to meet a recycled id, and the data plane checks the
//!   owner VIP anyway.

mod desired;
mod ids;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

pub use desired::{DesiredBackend, DesiredState, DesiredVip};
use ids::IdPool;
use lb_common::{Backend, GlobalConfig, VipInfo, VipKey, NO_BACKEND};
use thiserror::Error;

use crate::{
    dataplane::{Dataplane, DataplaneError, Sizes},
    maglev::{self, MaglevBackend, MaglevError},
};

/// One map write. `apply` performs them in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
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
    /// Rewrite a VIP's table in place (only differing slots are stored). The
    /// table is built from `spec` when the op is applied, so a plan for many
    /// VIPs holds their Maglev inputs, not their tables.
    WriteTable {
        vip_id: u32,
        offset: u32,
        spec: TableSpec,
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
}

/// What a VIP's Maglev table is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// For errors and logs.
    pub vip: String,
    pub size: u32,
    /// (address, weight), sorted: the Maglev input.
    pub inputs: Vec<(IpAddr, u16)>,
    /// Kernel backend id of each input.
    pub ids: Vec<u32>,
}

impl TableSpec {
    /// The table as backend ids.
    pub fn build(&self) -> Result<Vec<u32>, ReconcileError> {
        let mb: Vec<MaglevBackend> = self
            .inputs
            .iter()
            .map(|(a, w)| MaglevBackend::new(*a, *w))
            .collect();
        let table =
            maglev::build_table(&mb, self.size).map_err(|source| ReconcileError::Maglev {
                vip: self.vip.clone(),
                source,
            })?;
        Ok(table
            .into_iter()
            .map(|i| self.ids.get(i as usize).copied().unwrap_or(NO_BACKEND))
            .collect())
    }
}

/// The map writes a plan needs; `Dataplane` implements it, tests record it.
pub trait MapWriter {
    /// Performs one op other than `WriteTable`.
    fn apply_op(&mut self, op: &Op) -> Result<usize, DataplaneError>;
    /// Writes a built table at `offset`; returns how many slots changed.
    fn write_table(&mut self, offset: u32, table: &[u32]) -> Result<usize, DataplaneError>;
}

impl MapWriter for Dataplane {
    fn write_table(&mut self, offset: u32, table: &[u32]) -> Result<usize, DataplaneError> {
        Ok(self.maglev().write(offset, table))
    }

    /// Returns how many table slots changed (0 for other ops).
    fn apply_op(&mut self, op: &Op) -> Result<usize, DataplaneError> {
        match op {
            Op::SetGlobal(g) => self.set_global_config(g)?,
            Op::AddTxPort(i) => self.add_tx_port(*i)?,
            Op::RemoveTxPort(i) => self.remove_tx_port(*i)?,
            Op::SetBackend { id, backend } => self.set_backend(*id, backend)?,
            Op::ClearBackend { id } => self.set_backend(*id, &Backend::default())?,
            Op::ResetBackendState { id } => {
                self.reset_backend_stats(*id)?;
                self.reset_next_hop(*id)?;
            }
            Op::ResetVipStats { vip_id } => self.reset_vip_stats(*vip_id)?,
            // Built and written through `write_table` by `Reconciler::apply`.
            Op::WriteTable { .. } => {}
            Op::ClearTable { offset, len, .. } => return Ok(self.maglev().clear(*offset, *len)),
            Op::SetVip { key, info } => self.set_vip(key, info)?,
            Op::RemoveVip { key } => self.remove_vip(key)?,
        }
        Ok(0)
    }
}

#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error(
        "no free VIP slot: all {max} are in use (raise global.max_vips; needs `xlb down` first)"
    )]
    VipsExhausted { max: u32 },
    #[error("no free backend slot: all {max} are in use (raise global.max_backends; needs `xlb down` first)")]
    BackendsExhausted { max: u32 },
    #[error("building the Maglev table of VIP {vip}")]
    Maglev {
        vip: String,
        #[source]
        source: MaglevError,
    },
    #[error("the installed state is inconsistent: {what}")]
    Inconsistent { what: String },
    #[error(
        "writing the maps failed at step {step} ({op}); the data plane keeps the steps before it"
    )]
    Apply {
        step: usize,
        op: String,
        #[source]
        source: Box<DataplaneError>,
    },
    #[error("reading the installed state")]
    Read(#[source] Box<DataplaneError>),
}

/// What the reconciler believes is in the maps for one VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
struct InstalledVip {
    vip_id: u32,
    flags: u32,
    backends: BTreeMap<IpAddr, InstalledBackend>,
    /// (address, weight) of the backends in the table, sorted: the Maglev input.
    table_inputs: Vec<(IpAddr, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InstalledBackend {
    id: u32,
    weight: u16,
    healthy: bool,
}

/// The summary of one apply, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub ops: usize,
    pub vips_added: usize,
    pub vips_removed: usize,
    pub tables_rebuilt: usize,
    pub slots_changed: usize,
}

/// A computed change set.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub ops: Vec<Op>,
    installed: BTreeMap<VipKey, InstalledVip>,
    global: Option<GlobalConfig>,
    tx_ports: BTreeSet<u32>,
    vip_ids: IdPool,
    backend_ids: IdPool,
    markers: BTreeSet<VipKey>,
    vips_added: usize,
    vips_removed: usize,
    tables_rebuilt: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Keeps the installed state and turns desired states into map writes.
#[derive(Clone, Debug)]
pub struct Reconciler {
    sizes: Sizes,
    vips: BTreeMap<VipKey, InstalledVip>,
    markers: BTreeSet<VipKey>,
    global: Option<GlobalConfig>,
    tx_ports: BTreeSet<u32>,
    vip_ids: IdPool,
    backend_ids: IdPool,
}

impl Reconciler {
    /// A reconciler for empty maps.
    pub fn new(sizes: Sizes) -> Self {
        Self {
            sizes,
            vips: BTreeMap::new(),
            markers: BTreeSet::new(),
            global: None,
            tx_ports: BTreeSet::new(),
            vip_ids: IdPool::new(0, sizes.max_vips),
            // Id 0 means "no backend" in tables and flow entries.
            backend_ids: IdPool::new(1, sizes.max_backends),
        }
    }

    /// Rebuilds the installed state from maps a previous daemon filled
    /// (adoption after a restart). The tables are trusted as written: they are a
    /// deterministic function of the backends, whose weights and health flags
    /// the backend slots record.
    pub fn adopt(dp: &Dataplane) -> Result<Self, ReconcileError> {
        let mut r = Self::new(dp.sizes());
        let vips = dp.vips().map_err(|e| ReconcileError::Read(Box::new(e)))?;
        let backends = dp
            .backends()
            .map_err(|e| ReconcileError::Read(Box::new(e)))?;
        let mut by_vip: BTreeMap<u32, Vec<(u32, Backend)>> = BTreeMap::new();
        for (id, b) in backends {
            by_vip.entry(b.vip_id).or_default().push((id, b));
        }
        for (key, info) in vips {
            if key.is_marker() {
                r.markers.insert(key);
                continue;
            }
            if info.vip_id >= r.sizes.max_vips || !r.vip_ids.take(info.vip_id) {
                return Err(ReconcileError::Inconsistent {
                    what: format!("VIP id {} is out of range or used twice", info.vip_id),
                });
            }
            let mut installed = BTreeMap::new();
            for (id, b) in by_vip.remove(&info.vip_id).unwrap_or_default() {
                if !r.backend_ids.take(id) {
                    return Err(ReconcileError::Inconsistent {
                        what: format!("backend id {id} used twice"),
                    });
                }
                installed.insert(
                    b.addr(),
                    InstalledBackend {
                        id,
                        weight: b.weight,
                        healthy: b.is_healthy(),
                    },
                );
            }
            let table_inputs =
                table_inputs(installed.iter().map(|(a, b)| (*a, b.weight, b.healthy)));
            r.vips.insert(
                key,
                InstalledVip {
                    vip_id: info.vip_id,
                    flags: info.flags,
                    backends: installed,
                    table_inputs,
                },
            );
        }
        // Backend slots owned by no VIP entry are leftovers of an interrupted
        // apply: keep their ids reserved until a plan clears them.
        for (_, orphans) in by_vip {
            for (id, _) in orphans {
                r.backend_ids.take(id);
            }
        }
        r.global = Some(
            dp.global_config()
                .map_err(|e| ReconcileError::Read(Box::new(e)))?,
        );
        r.tx_ports = dp
            .tx_ports()
            .map_err(|e| ReconcileError::Read(Box::new(e)))?
            .into_iter()
            .collect();
        Ok(r)
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// Backend id of `addr` in the installed VIP `key`.
    pub fn backend_id(&self, key: &VipKey, addr: IpAddr) -> Option<u32> {
        self.vips.get(key)?.backends.get(&addr).map(|b| b.id)
    }

    /// Installed VIP id and flags of `key`.
    pub fn vip_id(&self, key: &VipKey) -> Option<u32> {
        self.vips.get(key).map(|v| v.vip_id)
    }

    /// Installed (address, backend id, weight, healthy) of a VIP.
    pub fn installed_backends(&self, key: &VipKey) -> Vec<(IpAddr, u32, u16, bool)> {
        self.vips
            .get(key)
            .map(|v| {
                v.backends
                    .iter()
                    .map(|(a, b)| (*a, b.id, b.weight, b.healthy))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The installed backends' health as the maps recorded it (adoption).
    pub fn installed_health(&self) -> Vec<(VipKey, IpAddr, bool)> {
        self.vips
            .iter()
            .flat_map(|(k, v)| v.backends.iter().map(move |(a, b)| (*k, *a, b.healthy)))
            .collect()
    }

    /// Computes the writes that turn the installed state into `desired`.
    pub fn plan(&self, desired: &DesiredState) -> Result<Plan, ReconcileError> {
        let mut p = Plan {
            ops: Vec::new(),
            installed: self.vips.clone(),
            global: self.global,
            tx_ports: self.tx_ports.clone(),
            vip_ids: self.vip_ids.clone(),
            backend_ids: self.backend_ids.clone(),
            markers: self.markers.clone(),
            ..Default::default()
        };

        // Global settings first: new VIPs may need the new outer source.
        if p.global != Some(desired.global) {
            p.ops.push(Op::SetGlobal(desired.global));
            p.global = Some(desired.global);
        }
        for port in desired.tx_ports.difference(&self.tx_ports) {
            p.ops.push(Op::AddTxPort(*port));
        }

        let wanted: BTreeMap<VipKey, &DesiredVip> =
            desired.vips.iter().map(|v| (v.key, v)).collect();

        // Removed VIPs go first: they free ids and slots for added ones.
        for (key, vip) in &self.vips {
            if !wanted.contains_key(key) {
                self.remove_vip(&mut p, key, vip);
            }
        }
        for (key, want) in &wanted {
            match self.vips.get(key) {
                None => self.add_vip(&mut p, want)?,
                Some(have) => self.update_vip(&mut p, want, have)?,
            }
        }

        // Address markers: one per VIP address, present while any VIP uses it.
        let want_markers: BTreeSet<VipKey> = wanted.keys().map(VipKey::to_marker).collect();
        for m in want_markers.difference(&self.markers) {
            p.ops.push(Op::SetVip {
                key: *m,
                info: VipInfo::MARKER,
            });
        }
        for m in self.markers.difference(&want_markers) {
            p.ops.push(Op::RemoveVip { key: *m });
        }
        p.markers = want_markers;

        for port in self.tx_ports.difference(&desired.tx_ports) {
            p.ops.push(Op::RemoveTxPort(*port));
        }
        p.tx_ports = desired.tx_ports.clone();
        Ok(p)
    }

    /// Performs `plan` and adopts its result as the installed state. On a
    /// failed write the installed state is re-read by the caller (`adopt`):
    /// the steps before the failure are in the maps.
    pub fn apply<W: MapWriter>(
        &mut self,
        plan: Plan,
        w: &mut W,
    ) -> Result<ApplyReport, ReconcileError> {
        let mut report = ApplyReport {
            ops: plan.ops.len(),
            vips_added: plan.vips_added,
            vips_removed: plan.vips_removed,
            tables_rebuilt: plan.tables_rebuilt,
            slots_changed: 0,
        };
        let mut tables = TableBuilder::new(&plan.ops);
        for (step, op) in plan.ops.iter().enumerate() {
            let written = match op {
                Op::WriteTable { offset, .. } => {
                    let table = tables.take(step)?;
                    w.write_table(*offset, &table)
                }
                op => w.apply_op(op),
            };
            report.slots_changed += written.map_err(|source| ReconcileError::Apply {
                step,
                op: op_name(op),
                source: Box::new(source),
            })?;
        }
        self.vips = plan.installed;
        self.global = plan.global;
        self.tx_ports = plan.tx_ports;
        self.vip_ids = plan.vip_ids;
        self.backend_ids = plan.backend_ids;
        self.markers = plan.markers;
        Ok(report)
    }

    fn add_vip(&self, p: &mut Plan, want: &DesiredVip) -> Result<(), ReconcileError> {
        let vip_id = p.vip_ids.alloc().ok_or(ReconcileError::VipsExhausted {
            max: self.sizes.max_vips,
        })?;
        let mut backends = BTreeMap::new();
        for b in &want.backends {
            backends.insert(b.addr, self.new_backend(p, b, vip_id)?);
        }
        let inputs = want.table_inputs();
        if !inputs.is_empty() {
            self.write_table(p, want, vip_id, &inputs, &backends)?;
        }
        p.ops.push(Op::ResetVipStats { vip_id });
        let info = self.vip_info(vip_id, want.flags, !inputs.is_empty());
        p.ops.push(Op::SetVip {
            key: want.key,
            info,
        });
        p.installed.insert(
            want.key,
            InstalledVip {
                vip_id,
                flags: want.flags,
                backends,
                table_inputs: inputs,
            },
        );
        p.vips_added += 1;
        Ok(())
    }

    /// Gives `b` a fresh slot of VIP `vip_id`: counters and cached next hop
    /// reset first (the id may have served another backend), then filled.
    fn new_backend(
        &self,
        p: &mut Plan,
        b: &DesiredBackend,
        vip_id: u32,
    ) -> Result<InstalledBackend, ReconcileError> {
        let id = p
            .backend_ids
            .alloc()
            .ok_or(ReconcileError::BackendsExhausted {
                max: self.sizes.max_backends,
            })?;
        p.ops.push(Op::ResetBackendState { id });
        p.ops.push(Op::SetBackend {
            id,
            backend: backend_value(b, vip_id),
        });
        Ok(InstalledBackend {
            id,
            weight: b.weight,
            healthy: b.healthy,
        })
    }

    fn update_vip(
        &self,
        p: &mut Plan,
        want: &DesiredVip,
        have: &InstalledVip,
    ) -> Result<(), ReconcileError> {
        let vip_id = have.vip_id;
        let mut backends = have.backends.clone();
        // 1. New backends get slots before any table can name them.
        for b in &want.backends {
            if let std::collections::btree_map::Entry::Vacant(slot) = backends.entry(b.addr) {
                slot.insert(self.new_backend(p, b, vip_id)?);
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
                self.write_table(p, want, vip_id, &inputs, &backends)?;
                if !had_table {
                    p.ops.push(Op::SetVip {
                        key: want.key,
                        info: self.vip_info(vip_id, want.flags, true),
                    });
                    entry_written = true;
                }
            } else {
                p.ops.push(Op::SetVip {
                    key: want.key,
                    info: self.vip_info(vip_id, want.flags, false),
                });
                p.ops.push(Op::ClearTable {
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
                    p.ops.push(Op::SetBackend {
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
                p.ops.push(Op::ClearBackend { id: b.id });
                p.backend_ids.free(b.id);
            }
        }
        // 5. Flags (hashing, flow-table bypass) switch atomically.
        if want.flags != have.flags && !entry_written {
            p.ops.push(Op::SetVip {
                key: want.key,
                info: self.vip_info(vip_id, want.flags, has_table),
            });
        }
        p.installed.insert(
            want.key,
            InstalledVip {
                vip_id,
                flags: want.flags,
                backends,
                table_inputs: inputs,
            },
        );
        Ok(())
    }

    fn remove_vip(&self, p: &mut Plan, key: &VipKey, have: &InstalledVip) {
        p.ops.push(Op::RemoveVip { key: *key });
        p.ops.push(Op::ClearTable {
            vip_id: have.vip_id,
            offset: self.sizes.table_offset(have.vip_id),
            len: self.sizes.table_size,
        });
        for b in have.backends.values() {
            p.ops.push(Op::ClearBackend { id: b.id });
            p.backend_ids.free(b.id);
        }
        p.vip_ids.free(have.vip_id);
        p.installed.remove(key);
        p.vips_removed += 1;
    }

    /// The VIP entry; `table_size` 0 when the VIP has no usable backend.
    fn vip_info(&self, vip_id: u32, flags: u32, has_table: bool) -> VipInfo {
        VipInfo::new(
            vip_id,
            flags,
            self.sizes.table_offset(vip_id),
            if has_table { self.sizes.table_size } else { 0 },
        )
    }

    /// Schedules writing VIP `vip_id`'s table from `inputs` (not empty).
    fn write_table(
        &self,
        p: &mut Plan,
        want: &DesiredVip,
        vip_id: u32,
        inputs: &[(IpAddr, u16)],
        backends: &BTreeMap<IpAddr, InstalledBackend>,
    ) -> Result<(), ReconcileError> {
        let spec = self.table_spec(want, inputs, backends)?;
        let offset = self.sizes.table_offset(vip_id);
        p.ops.push(Op::WriteTable {
            vip_id,
            offset,
            spec,
        });
        p.tables_rebuilt += 1;
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

/// Builds the tables of a plan's `WriteTable` ops just before they are
/// written, a window of them at a time on all cores: a 1,000-VIP plan neither
/// holds 1,000 tables in memory nor builds them one by one.
struct TableBuilder<'a> {
    ops: &'a [Op],
    /// Steps of the plan's WriteTable ops, in order.
    steps: Vec<usize>,
    next: usize,
    built: std::collections::HashMap<usize, Result<Vec<u32>, ReconcileError>>,
    window: usize,
}

impl<'a> TableBuilder<'a> {
    fn new(ops: &'a [Op]) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            ops,
            steps: ops
                .iter()
                .enumerate()
                .filter(|(_, o)| matches!(o, Op::WriteTable { .. }))
                .map(|(i, _)| i)
                .collect(),
            next: 0,
            built: std::collections::HashMap::new(),
            window: cores * 4,
        }
    }

    /// The table of the WriteTable op at `step`.
    fn take(&mut self, step: usize) -> Result<Vec<u32>, ReconcileError> {
        if !self.built.contains_key(&step) {
            self.build_window();
        }
        self.built.remove(&step).unwrap_or_else(|| {
            Err(ReconcileError::Inconsistent {
                what: format!("no table was built for step {step}"),
            })
        })
    }

    fn build_window(&mut self) {
        let end = (self.next + self.window).min(self.steps.len());
        let batch: Vec<(usize, &TableSpec)> = self.steps[self.next..end]
            .iter()
            .filter_map(|&i| match &self.ops[i] {
                Op::WriteTable { spec, .. } => Some((i, spec)),
                _ => None,
            })
            .collect();
        self.next = end;
        // A single table (a weight change, a health transition) is built right
        // here: a thread would only add its start-up to the latency.
        if let [(i, spec)] = batch.as_slice() {
            self.built.insert(*i, spec.build());
            return;
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let per_thread = batch.len().div_ceil(cores).max(1);
        let results: Vec<(usize, Result<Vec<u32>, ReconcileError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks(per_thread)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(i, spec)| (*i, spec.build()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![(
                            usize::MAX,
                            Err(ReconcileError::Inconsistent {
                                what: "a table build panicked".into(),
                            }),
                        )]
                    })
                })
                .collect()
        });
        self.built.extend(results);
    }
}

/// The table's inputs from (address, weight, healthy): weighted, healthy
/// backends; if none is healthy, every weighted backend (fail open: a VIP whose
/// health checks all fail keeps serving rather than black-holing).
pub fn table_inputs(backends: impl Iterator<Item = (IpAddr, u16, bool)>) -> Vec<(IpAddr, u16)> {
    let weighted: Vec<(IpAddr, u16, bool)> = backends.filter(|(_, w, _)| *w > 0).collect();
    let any_healthy = weighted.iter().any(|(_, _, h)| *h);
    let mut v: Vec<(IpAddr, u16)> = weighted
        .into_iter()
        .filter(|(_, _, h)| *h || !any_healthy)
        .map(|(a, w, _)| (a, w))
        .collect();
    v.sort();
    v
}

fn backend_value(b: &DesiredBackend, vip_id: u32) -> Backend {
    Backend::new(b.addr, vip_id, b.weight, b.healthy)
}

fn op_name(op: &Op) -> String {
    match op {
        Op::SetGlobal(_) => "set global config".into(),
        Op::AddTxPort(i) => format!("add transmit port {i}"),
        Op::RemoveTxPort(i) => format!("remove transmit port {i}"),
        Op::SetBackend { id, .. } => format!("set backend {id}"),
        Op::ClearBackend { id } => format!("clear backend {id}"),
        Op::ResetBackendState { id } => format!("reset stats and next hop of backend {id}"),
        Op::ResetVipStats { vip_id } => format!("reset stats of vip {vip_id}"),
        Op::WriteTable { vip_id, .. } => format!("write table of vip {vip_id}"),
        Op::ClearTable { vip_id, .. } => format!("clear table of vip {vip_id}"),
        Op::SetVip { info, .. } => format!("set vip {}", info.vip_id),
        Op::RemoveVip { .. } => "remove vip".into(),
    }
}

#[cfg(test)]
mod tests;
