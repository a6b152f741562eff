//! What the maps hold, as the reconciler knows it: the one value that
//! [`super::Reconciler`] keeps, that a plan clones and edits as its next state,
//! and that adoption reads back from maps a previous daemon filled.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use lb_common::{Backend, GlobalConfig, VipInfo, VipKey};

use super::{ids::IdPool, policy::InstalledPolicy, table_inputs, ReconcileError};
use crate::dataplane::{Dataplane, Sizes};

/// The installed state: VIPs with their backends, address markers, global
/// settings, transmit ports and the id pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Installed {
    pub vips: BTreeMap<VipKey, InstalledVip>,
    /// Address markers (`proto` 0 keys) and their values: one per VIP
    /// address in use.
    pub markers: BTreeMap<VipKey, VipInfo>,
    /// `None` until written (or read back) once.
    pub global: Option<GlobalConfig>,
    pub tx_ports: BTreeSet<u32>,
    pub vip_ids: IdPool,
    pub backend_ids: IdPool,
    /// Policies by vip id (ids without one are left out): kept apart from
    /// the VIPs so that entries left by an interrupted apply under a free
    /// id are found and cleared when the id is given out again.
    pub policies: BTreeMap<u32, InstalledPolicy>,
    /// The last access generation given out (`VipPolicy::access_generation`).
    /// Starts at the clock's seconds (or at the highest one an adopted
    /// record holds, if higher) so that a restarted daemon does not hand out
    /// again a generation an old connection-table entry may still hold.
    pub access_generation: u32,
    /// The non-zero words of `XLB_VIP_FILTER`, by index.
    pub vip_filter: BTreeMap<u32, u64>,
}

/// One VIP as it is in the maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InstalledVip {
    pub vip_id: u32,
    /// The entry's flags, `VIP_F_FAIL_OPEN` included.
    pub flags: u32,
    pub udp_idle_timeout_ms: u32,
    /// The entry's `FORWARDING_*` byte and GUE port.
    pub forwarding: (u8, u16),
    pub backends: BTreeMap<IpAddr, InstalledBackend>,
    /// (address, weight) of the backends in the table, sorted: the Maglev input.
    pub table_inputs: Vec<(IpAddr, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct InstalledBackend {
    pub id: u32,
    pub weight: u16,
    pub healthy: bool,
}

impl Installed {
    /// Empty maps of `sizes`.
    pub fn empty(sizes: Sizes) -> Self {
        Self {
            vips: BTreeMap::new(),
            markers: BTreeMap::new(),
            global: None,
            tx_ports: BTreeSet::new(),
            vip_ids: IdPool::new(0, sizes.max_vips),
            // Id 0 means "no backend" in tables and flow entries.
            backend_ids: IdPool::new(1, sizes.max_backends),
            policies: BTreeMap::new(),
            access_generation: clock_generation(),
            vip_filter: BTreeMap::new(),
        }
    }

    /// Reads the state of maps a previous daemon filled (adoption after a
    /// restart). The tables are trusted as written: they are a deterministic
    /// function of the backends, whose weights and health flags the backend
    /// slots record.
    pub fn read(dp: &Dataplane) -> Result<Self, ReconcileError> {
        let sizes = dp.sizes();
        let mut installed = Self::empty(sizes);
        let read_err = |e| ReconcileError::Read(Box::new(e));
        let vips = dp.vips().map_err(read_err)?;
        let backends = dp.backends().map_err(read_err)?;
        let mut by_vip: BTreeMap<u32, Vec<(u32, Backend)>> = BTreeMap::new();
        for (id, b) in backends {
            by_vip.entry(b.vip_id).or_default().push((id, b));
        }
        for (key, info) in vips {
            if key.is_marker() {
                installed.markers.insert(key, info);
                continue;
            }
            if info.vip_id >= sizes.max_vips || !installed.vip_ids.take(info.vip_id) {
                return Err(ReconcileError::Inconsistent {
                    what: format!("VIP id {} is out of range or used twice", info.vip_id),
                });
            }
            let mut vip_backends = BTreeMap::new();
            for (id, b) in by_vip.remove(&info.vip_id).unwrap_or_default() {
                if !installed.backend_ids.take(id) {
                    return Err(ReconcileError::Inconsistent {
                        what: format!("backend id {id} used twice"),
                    });
                }
                vip_backends.insert(
                    b.addr(),
                    InstalledBackend {
                        id,
                        weight: b.weight,
                        healthy: b.is_healthy(),
                    },
                );
            }
            let table_inputs =
                table_inputs(vip_backends.iter().map(|(a, b)| (*a, b.weight, b.healthy)));
            installed.vips.insert(
                key,
                InstalledVip {
                    vip_id: info.vip_id,
                    flags: info.flags,
                    udp_idle_timeout_ms: info.udp_idle_timeout_ms,
                    forwarding: (info.forwarding_byte(), info.gue_port()),
                    backends: vip_backends,
                    table_inputs,
                },
            );
        }
        // Backend slots owned by no VIP entry are leftovers of an interrupted
        // apply: keep their ids reserved until a plan clears them.
        for (_, orphans) in by_vip {
            for (id, _) in orphans {
                installed.backend_ids.take(id);
            }
        }
        for (prefix, value) in dp.source_prefixes().map_err(read_err)? {
            installed
                .policies
                .entry(prefix.vip_id)
                .or_default()
                .prefixes
                .insert((prefix.addr, prefix.len), value);
        }
        for vip_id in 0..sizes.max_vips {
            let record = dp.vip_policy(vip_id).map_err(read_err)?;
            if record != lb_common::VipPolicy::NONE {
                installed.access_generation =
                    installed.access_generation.max(record.access_generation);
                installed.policies.entry(vip_id).or_default().record = record;
            }
        }
        // As the map holds it (a map created empty by an upgrade included:
        // the first plan sets every VIP address's bit).
        installed.vip_filter = dp.vip_filter_words().map_err(read_err)?;
        installed.global = Some(dp.global_config().map_err(read_err)?);
        installed.tx_ports = dp.tx_ports().map_err(read_err)?.into_iter().collect();
        Ok(installed)
    }
}

/// The seconds since the Unix epoch as a generation: it grows between two
/// runs of the daemon as long as it gives out less than one generation a
/// second on average (one per change of a VIP's source prefixes).
fn clock_generation() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}
