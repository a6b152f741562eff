//! Turns the desired balancer state into BPF map writes.
//!
//! [`Reconciler`] keeps what the maps hold as one `Installed` value (VIPs with
//! their backends and table inputs, address markers with their values
//! (`markers.rs`: ping answered, which VIP takes fragments), global settings,
//! transmit ports, the id pools). [`Reconciler::plan`] (the planner, `plan.rs`) clones
//! it, diffs the desired state against it and produces an ordered list of
//! [`Op`]s while editing the clone into the state those ops install. [`Reconciler::apply`] (the applier, `apply.rs`) performs the ops on
//! a [`MapWriter`] (the real `Dataplane`, or a simulation in tests), building
//! each Maglev table just before it is written (`table_builder.rs`), and then
//! swaps the plan's state in. Adoption reads the same value back from pinned
//! maps (`installed.rs`).
//!
//! The order of the ops is what keeps the data plane consistent at every
//! instant:
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
//!
//! Every write also fits the maps as they are at that instant (a write past a
//! map's capacity fails with E2BIG, and a plan that failed there would fail
//! there again on every retry): removed VIPs and unused address markers go
//! before anything is added (XLB_VIPS holds exactly a VIP and a marker per
//! VIP id); when the free backend slots cannot hold a plan's new backends
//! while the leaving ones stay, kept VIPs first drop their leaving backends
//! (as few VIPs as needed); stale transmit ports go first when the port map
//! cannot hold old and new together.

mod apply;
mod desired;
mod ids;
mod installed;
pub mod markers;
mod plan;
mod policy;
mod table_builder;

use std::net::IpAddr;

pub use apply::{MapWrite, MapWriter};
pub use desired::{DesiredBackend, DesiredState, DesiredVip};
use installed::Installed;
use lb_common::VipKey;
pub use plan::{Op, Plan};
pub use policy::{DesiredPolicy, Prefixes};
pub use table_builder::TableSpec;
use thiserror::Error;

use crate::{
    dataplane::{Dataplane, DataplaneError, Sizes},
    maglev::MaglevError,
};

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
    #[error("building the Maglev table of VIP {vip} panicked: {message}")]
    TableBuildPanicked { vip: String, message: String },
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

/// The summary of one apply, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub ops: usize,
    pub vips_added: usize,
    pub vips_removed: usize,
    pub tables_rebuilt: usize,
    pub slots_changed: usize,
}

/// Keeps the installed state and turns desired states into map writes.
#[derive(Clone, Debug)]
pub struct Reconciler {
    sizes: Sizes,
    installed: Installed,
}

impl Reconciler {
    /// A reconciler for empty maps.
    pub fn new(sizes: Sizes) -> Self {
        Self {
            sizes,
            installed: Installed::empty(sizes),
        }
    }

    /// Rebuilds the installed state from maps a previous daemon filled
    /// (adoption after a restart).
    pub fn adopt(dp: &Dataplane) -> Result<Self, ReconcileError> {
        Ok(Self {
            sizes: dp.sizes(),
            installed: Installed::read(dp)?,
        })
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// Backend id of `addr` in the installed VIP `key`.
    pub fn backend_id(&self, key: &VipKey, addr: IpAddr) -> Option<u32> {
        self.installed
            .vips
            .get(key)?
            .backends
            .get(&addr)
            .map(|b| b.id)
    }

    /// Installed VIP id of `key`.
    pub fn vip_id(&self, key: &VipKey) -> Option<u32> {
        self.installed.vips.get(key).map(|v| v.vip_id)
    }

    /// Installed (address, backend id, weight, healthy) of a VIP.
    pub fn installed_backends(&self, key: &VipKey) -> Vec<(IpAddr, u32, u16, bool)> {
        self.installed
            .vips
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
        self.installed
            .vips
            .iter()
            .flat_map(|(k, v)| v.backends.iter().map(move |(a, b)| (*k, *a, b.healthy)))
            .collect()
    }

    /// Computes the writes that turn the installed state into `desired`.
    pub fn plan(&self, desired: &DesiredState) -> Result<Plan, ReconcileError> {
        plan::plan(self.sizes, &self.installed, desired)
    }

    /// Performs `plan` and adopts its result as the installed state. On a
    /// failed write the installed state is re-read by the caller (`adopt`):
    /// the steps before the failure are in the maps.
    pub fn apply<W: MapWriter>(
        &mut self,
        plan: Plan,
        w: &mut W,
    ) -> Result<ApplyReport, ReconcileError> {
        self.apply_building_with(plan, w, TableSpec::build)
    }

    /// [`Self::apply`] with the tables built by `build`.
    fn apply_building_with<W, B>(
        &mut self,
        plan: Plan,
        w: &mut W,
        build: B,
    ) -> Result<ApplyReport, ReconcileError>
    where
        W: MapWriter,
        B: Fn(&TableSpec) -> Result<Vec<u32>, ReconcileError> + Sync,
    {
        let slots_changed = apply::write_all(&plan.ops, w, build)?;
        let report = ApplyReport {
            ops: plan.ops.len(),
            vips_added: plan.vips_added,
            vips_removed: plan.vips_removed,
            tables_rebuilt: plan.tables_rebuilt,
            slots_changed,
        };
        self.installed = plan.next;
        Ok(report)
    }
}

/// Whether a VIP with these (weight, healthy) backends fails open: it has
/// weighted backends and every one of them is unhealthy. Then its table keeps
/// all weighted backends and the data plane follows flow entries to
/// unhealthy ones (`VIP_F_FAIL_OPEN`): a VIP whose health checks all fail
/// keeps serving rather than black-holing.
pub fn is_fail_open(backends: impl Iterator<Item = (u16, bool)>) -> bool {
    let mut weighted = backends.filter(|(w, _)| *w > 0).peekable();
    weighted.peek().is_some() && weighted.all(|(_, h)| !h)
}

/// The table's inputs from (address, weight, healthy): weighted, healthy
/// backends; if none is healthy, every weighted backend (fail open, see
/// [`is_fail_open`]).
pub fn table_inputs(backends: impl Iterator<Item = (IpAddr, u16, bool)>) -> Vec<(IpAddr, u16)> {
    let weighted: Vec<(IpAddr, u16, bool)> = backends.filter(|(_, w, _)| *w > 0).collect();
    let fail_open = is_fail_open(weighted.iter().map(|(_, w, h)| (*w, *h)));
    let mut v: Vec<(IpAddr, u16)> = weighted
        .into_iter()
        .filter(|(_, _, h)| *h || fail_open)
        .map(|(a, w, _)| (a, w))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests;
