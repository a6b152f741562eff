//! What the data plane does with a flow *now*: the decisions of
//! `lb_common::decision` (the functions the XDP program runs) evaluated
//! against the live maps, read through the dataplane layer. Nothing here
//! looks at the config: `xlb explain` reports what the kernel would do, even
//! while a reconcile is half-way or the config and the maps disagree.

use std::net::IpAddr;

use lb_common::{
    decision::{self, follows_flow_entry, is_live_backend, maglev_slot, uses_flow_table},
    Backend, FlowKey, VipInfo, VipKey, NO_BACKEND, VIP_F_SOURCE_HASH,
};
use serde::Serialize;

use crate::{
    config::Protocol,
    dataplane::{Dataplane, DataplaneError},
};

/// How the data plane picks the backend of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// No VIP matches the destination, port and protocol: XDP_PASS.
    NotVip,
    /// A connection-table entry names a live backend of the VIP.
    FlowTable,
    /// The VIP's Maglev table picks the backend (and, unless the VIP bypasses
    /// the connection table, a new entry remembers it).
    Maglev,
    /// The VIP has no table, or its slot names no live backend: XDP_DROP
    /// (`no_backend`).
    NoBackend,
}

/// The data plane's decision for one flow, with what it was based on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    pub path: Path,
    /// The `XLB_VIPS` entry that matched (exact port or port 0).
    pub vip: Option<(VipKey, VipInfo)>,
    /// The backend id of the flow's connection-table entry, followed or not.
    pub flow_entry: Option<u32>,
    /// The VIP's flow hash (absent on a flow-table hit: not computed).
    pub hash: Option<u32>,
    /// The slot within the VIP's table.
    pub slot: Option<u32>,
    /// The chosen backend slot and its content.
    pub backend: Option<(u32, Backend)>,
}

impl Trace {
    fn not_vip() -> Self {
        Self {
            path: Path::NotVip,
            vip: None,
            flow_entry: None,
            hash: None,
            slot: None,
            backend: None,
        }
    }

    /// Whether the packet would create a connection-table entry.
    pub fn creates_flow_entry(&self) -> bool {
        self.path == Path::Maglev && self.vip.is_some_and(|(_, v)| uses_flow_table(v.flags))
    }
}

/// Evaluates the data plane's decision for `flow` against `dp`'s maps.
pub fn trace(dp: &Dataplane, flow: &FlowKey) -> Result<Trace, DataplaneError> {
    let mut failed = None;
    let mut key = VipKey::of_flow(flow);
    let found = decision::lookup_vip(&mut key, |k| match dp.vip(k) {
        Ok(v) => v,
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let Some(info) = found else {
        return Ok(Trace::not_vip());
    };
    let mut t = Trace {
        vip: Some((key, info)),
        ..Trace::not_vip()
    };

    if uses_flow_table(info.flags) {
        if let Some(entry) = dp.flow(flow)? {
            let id = entry.backend_id;
            t.flow_entry = Some(id);
            if let Some(b) = backend(dp, id)? {
                if follows_flow_entry(id, &b, info.vip_id) {
                    t.path = Path::FlowTable;
                    t.backend = Some((id, b));
                    return Ok(t);
                }
            }
        }
    }

    let hash = decision::vip_hash(info.flags, flow);
    t.hash = Some(hash);
    let Some(slot) = maglev_slot(&info, hash) else {
        t.path = Path::NoBackend;
        return Ok(t);
    };
    t.slot = Some(slot - info.table_offset);
    let id = dp
        .maglev_ref()
        .read(slot, 1)
        .first()
        .copied()
        .unwrap_or(NO_BACKEND);
    match backend(dp, id)? {
        Some(b) if is_live_backend(id, &b, info.vip_id) => {
            t.path = Path::Maglev;
            t.backend = Some((id, b));
        }
        _ => t.path = Path::NoBackend,
    }
    Ok(t)
}

/// Backend slot `id`, `None` where the kernel's lookup finds nothing (id out
/// of the map's range).
fn backend(dp: &Dataplane, id: u32) -> Result<Option<Backend>, DataplaneError> {
    if id == NO_BACKEND || id >= dp.sizes().max_backends {
        return Ok(None);
    }
    dp.backend(id).map(Some)
}

/// A flow to explain (the API's query).
#[derive(Clone, Copy, Debug, serde::Deserialize)]
pub struct FlowQuery {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: Protocol,
}

/// Which backend a flow goes to, and why, as the API and the CLI show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Explanation {
    pub vip: Option<String>,
    pub backend: Option<IpAddr>,
    pub backend_id: Option<u32>,
    /// "not a VIP", "flow table hit", "maglev slot", "no backend".
    pub decision: String,
    pub hash: Option<u32>,
    pub slot: Option<u32>,
    pub detail: String,
}

impl Explanation {
    /// Words for a trace; `vip_name` names the VIP entry that matched.
    pub fn new(t: &Trace, vip_name: Option<String>) -> Self {
        let flags = t.vip.map_or(0, |(_, v)| v.flags);
        let (decision, detail) = match t.path {
            Path::NotVip => (
                "not a VIP",
                "no VIP matches this destination, port and protocol: the packet passes to the \
                 kernel"
                    .to_string(),
            ),
            Path::FlowTable => (
                "flow table hit",
                "an existing connection: it keeps the backend it started on".to_string(),
            ),
            Path::NoBackend => (
                "no backend",
                "the VIP has no backend with a weight: packets are dropped".to_string(),
            ),
            Path::Maglev => {
                let hashing = if flags & VIP_F_SOURCE_HASH != 0 {
                    "source address"
                } else {
                    "5-tuple"
                };
                let table_size = t.vip.map_or(0, |(_, v)| v.table_size);
                (
                    "maglev slot",
                    format!(
                        "{hashing} hash {:#010x} mod {table_size} = slot {}{}",
                        t.hash.unwrap_or(0),
                        t.slot.unwrap_or(0),
                        if uses_flow_table(flags) {
                            "; not in the flow table yet (a new connection)"
                        } else {
                            "; the VIP bypasses the flow table"
                        }
                    ),
                )
            }
        };
        Self {
            vip: vip_name,
            backend: t.backend.map(|(_, b)| b.addr()),
            backend_id: t.backend.map(|(id, _)| id),
            decision: decision.into(),
            hash: t.hash,
            slot: t.slot,
            detail,
        }
    }
}
