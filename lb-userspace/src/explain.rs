//! What the data plane does with a flow *now*: the decisions of
//! `lb_common::decision` (the functions the XDP program runs) evaluated
//! against the live maps, read through the dataplane layer. Nothing here
//! looks at the config: `xlb explain` reports what the kernel would do, even
//! while a reconcile is half-way or the config and the maps disagree.

use std::net::IpAddr;

use lb_common::{
    decision::{
        self, flow_entry_use, is_live_backend, maglev_slot, uses_flow_table, FlowEntryUse,
        PacketFacts, TCP_FLAG_ACK, TCP_FLAG_SYN,
    },
    forwarding::gue,
    policy::{gcra, SourceAccess},
    Backend, FlowKey, Forwarding, SourceBucketKey, Verdict, VipInfo, VipKey, NO_BACKEND, PROTO_TCP,
    VIP_F_SOURCE_HASH,
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
    /// The flow's connection-table entry is followed
    /// (`decision::flow_entry_use`).
    FlowTable,
    /// The VIP's Maglev table picks the backend (and, unless the VIP bypasses
    /// the connection table, a new entry remembers it).
    Maglev,
    /// The VIP has no table, or its slot names no live backend: XDP_DROP
    /// (`no_backend`).
    NoBackend,
    /// The VIP's policy drops the packet (`source_denied`,
    /// `source_not_allowed`, `vip_rate_limited`, `source_rate_limited`).
    Refused(Verdict),
}

/// The data plane's decision for one flow, with what it was based on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    pub path: Path,
    /// The `XLB_VIPS` entry that matched (exact port or port 0).
    pub vip: Option<(VipKey, VipInfo)>,
    /// The packet the decision is for (its TCP flags and time matter).
    pub packet: PacketFacts,
    /// The backend id of the flow's connection-table entry, and whether it
    /// is followed (or why not).
    pub flow_entry: Option<(u32, FlowEntryUse)>,
    /// The VIP's flow hash (absent on a flow-table hit: not computed).
    pub hash: Option<u32>,
    /// The slot within the VIP's table.
    pub slot: Option<u32>,
    /// The chosen backend slot and its content.
    pub backend: Option<(u32, Backend)>,
    /// The VIP's flow hash, computed whatever the path: encapsulations draw
    /// their entropy from it (GUE source port, IPv6 flow label).
    pub vip_hash: u32,
    /// What the VIP's source ranges say, and the value of the longest
    /// matching prefix (`PREFIX_ALLOW`/`PREFIX_DENY`).
    pub source: Option<(SourceAccess, Option<u32>)>,
    /// The packet is a new connection that the VIP's rate limits count
    /// (and, if it is refused, `path` says by which).
    pub new_connection: bool,
    /// CPUs in flood mode now: a packet they handle inserts no entry.
    pub flooding_cpus: usize,
}

impl Trace {
    fn not_vip(packet: PacketFacts) -> Self {
        Self {
            path: Path::NotVip,
            vip: None,
            packet,
            flow_entry: None,
            hash: None,
            slot: None,
            backend: None,
            vip_hash: 0,
            source: None,
            new_connection: false,
            flooding_cpus: 0,
        }
    }

    /// Whether the packet would create (or replace) a connection-table entry.
    pub fn creates_flow_entry(&self) -> bool {
        self.path == Path::Maglev
            && self
                .vip
                .is_some_and(|(_, v)| decision::creates_flow_entry(v.flags, &self.packet))
    }

    /// Whether the packet (a bare SYN) would re-point the flow's existing
    /// entry to its backend (`decision::repins_flow_entry`).
    pub fn repins_flow_entry(&self) -> bool {
        self.path == Path::Maglev
            && self.flow_entry.is_some()
            && self
                .vip
                .is_some_and(|(_, v)| decision::repins_flow_entry(v.flags, &self.packet))
    }
}

/// The coarse monotonic clock the data plane reads (`bpf_ktime_get_coarse_ns`
/// is `CLOCK_MONOTONIC_COARSE`), in nanoseconds: the time base of flow
/// entries' `last_seen_ns`.
pub fn coarse_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// A packet of `flow` now: for TCP a SYN (a new connection) or an ACK (a
/// packet of an established one).
pub fn packet_now(flow: &FlowKey, syn: bool) -> PacketFacts {
    let tcp_flags = match (flow.proto() == PROTO_TCP, syn) {
        (false, _) => 0,
        (true, true) => TCP_FLAG_SYN,
        (true, false) => TCP_FLAG_ACK,
    };
    PacketFacts {
        proto: flow.proto(),
        tcp_flags,
        now_ns: coarse_now_ns(),
    }
}

/// Evaluates the data plane's decision for `packet` of `flow` against `dp`'s
/// maps.
pub fn trace(
    dp: &Dataplane,
    flow: &FlowKey,
    packet: &PacketFacts,
) -> Result<Trace, DataplaneError> {
    // The data plane's first question: is the destination's bit in the
    // VIP-address filter set at all?
    if !dp.vip_filter_admits(flow.dst())? {
        return Ok(Trace::not_vip(*packet));
    }
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
        return Ok(Trace::not_vip(*packet));
    };
    let mut t = Trace {
        vip: Some((key, info)),
        ..Trace::not_vip(*packet)
    };

    // Source ranges: the kernel's own longest-prefix lookup on the live trie.
    let policy = dp.vip_policy(info.vip_id)?;
    let matched = if policy.has_prefixes() {
        dp.source_match(info.vip_id, flow.src())?
    } else {
        None
    };
    let access = lb_common::policy::source_access(&policy, matched);
    t.source = Some((access, matched));
    match access {
        SourceAccess::Allowed => {}
        SourceAccess::Denied => {
            t.path = Path::Refused(Verdict::SourceDenied);
            return Ok(t);
        }
        SourceAccess::NotAllowed => {
            t.path = Path::Refused(Verdict::SourceNotAllowed);
            return Ok(t);
        }
    }
    let global = dp.global_config()?;
    t.vip_hash = decision::vip_hash(global.hash_seed(), info.flags, flow);
    t.flooding_cpus = dp
        .flood_states()?
        .iter()
        .filter(|s| lb_common::policy::is_flooding(s, packet.now_ns, global.flood_threshold()))
        .count();

    // The data plane skips the lookup for a SYN (`consults_flow_table`);
    // looking anyway only lets the explanation name the entry it ignores.
    if uses_flow_table(info.flags) {
        if let Some(entry) = dp.flow(flow)? {
            let id = entry.backend_id;
            let slot = backend(dp, id)?;
            let verdict = match &slot {
                Some(b) => flow_entry_use(id, b, &info, &entry, packet),
                None => FlowEntryUse::BackendGone,
            };
            t.flow_entry = Some((id, verdict));
            if let (FlowEntryUse::Follow, Some(b)) = (verdict, slot) {
                t.path = Path::FlowTable;
                t.backend = Some((id, b));
                return Ok(t);
            }
        }
    }

    // Rate limits: whether the buckets, as they are now, would admit it.
    t.new_connection = decision::is_new_connection(info.flags, packet);
    if t.new_connection {
        if let Some(reason) = rate_refusal(dp, &policy, info.vip_id, flow, packet.now_ns)? {
            t.path = Path::Refused(reason);
            return Ok(t);
        }
    }

    let hash = t.vip_hash;
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

/// Which of the VIP's buckets would refuse one more new connection of
/// `flow` at `now_ns` (`lb_common::policy::gcra` on the buckets' live
/// state), in the data plane's order: the source's, then the VIP's.
fn rate_refusal(
    dp: &Dataplane,
    policy: &lb_common::VipPolicy,
    vip_id: u32,
    flow: &FlowKey,
    now_ns: u64,
) -> Result<Option<Verdict>, DataplaneError> {
    if policy.limits_sources() {
        let mut key = SourceBucketKey::default();
        key.set(vip_id, flow, policy);
        let tat = dp.source_bucket(&key)?.unwrap_or(0);
        if gcra(tat, now_ns, &policy.source_rate).is_none() {
            return Ok(Some(Verdict::SourceRateLimited));
        }
    }
    if policy.limits_vip() && gcra(dp.vip_bucket(vip_id)?, now_ns, &policy.vip_rate).is_none() {
        return Ok(Some(Verdict::VipRateLimited));
    }
    Ok(None)
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
    /// Explain a TCP SYN (a new connection) rather than a packet of an
    /// established connection.
    #[serde(default)]
    pub syn: bool,
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
    /// How the packet reaches the backend (the VIP's forwarding mode and
    /// what it puts on the wire).
    #[serde(default)]
    pub forwarding: Option<String>,
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
                if t.packet.proto == PROTO_TCP {
                    "an existing connection: it keeps the backend it started on".to_string()
                } else {
                    "an active flow: it keeps its backend until it is idle for the VIP's UDP \
                     idle timeout"
                        .to_string()
                },
            ),
            Path::NoBackend => (
                "no backend",
                "the VIP has no backend with a weight: packets are dropped".to_string(),
            ),
            Path::Refused(reason) => refusal(reason),
            Path::Maglev => {
                let hashing = if flags & VIP_F_SOURCE_HASH != 0 {
                    "source address"
                } else {
                    "5-tuple"
                };
                let table_size = t.vip.map_or(0, |(_, v)| v.table_size);
                let table = if !uses_flow_table(flags) {
                    "; the VIP bypasses the flow table".to_string()
                } else {
                    match t.flow_entry {
                        None => "; not in the flow table yet (a new connection)".to_string(),
                        Some((id, why)) => format!(
                            "; the flow's entry (backend id {id}) is not followed: {}",
                            ignored_entry(why)
                        ),
                    }
                };
                let replaced = if t.creates_flow_entry() {
                    if t.flooding_cpus > 0 {
                        format!(
                            "; flood mode is on ({} CPUs): a packet handled there creates no \
                             entry and the flow keeps following the table",
                            t.flooding_cpus
                        )
                    } else {
                        String::new()
                    }
                } else if !uses_flow_table(flags) {
                    String::new()
                } else if t.packet.opens_connection() {
                    if t.flow_entry.is_some() {
                        "; a SYN creates no entry, but re-points the flow's existing one to \
                         this backend"
                            .to_string()
                    } else {
                        "; a SYN leaves no entry: the handshake's ACK creates it".to_string()
                    }
                } else {
                    "; a TCP reset leaves no entry".to_string()
                };
                (
                    "maglev slot",
                    format!(
                        "{hashing} hash {:#010x} mod {table_size} = slot {}{table}{replaced}",
                        t.hash.unwrap_or(0),
                        t.slot.unwrap_or(0),
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
            forwarding: forwarding_words(t),
        }
    }
}

/// The forwarding mode of the trace's VIP toward its backend, in words.
fn forwarding_words(t: &Trace) -> Option<String> {
    let (_, info) = t.vip?;
    let (_, backend) = t.backend?;
    let words = match info.forwarding() {
        Some(Forwarding::Ipip) => format!("ipip: IP-in-IP to {}", backend.addr()),
        Some(Forwarding::Gue) => format!(
            "gue: UDP from source port {} (the flow hash) to {}:{}",
            gue::source_port(t.vip_hash),
            backend.addr(),
            info.gue_port()
        ),
        Some(Forwarding::L2Dsr) => format!(
            "l2-dsr: the client's packet itself, only its MACs rewritten toward {}",
            backend.addr()
        ),
        None => format!(
            "unknown mode {} (packets are dropped as internal)",
            info.forwarding_byte()
        ),
    };
    Some(words)
}

/// The decision and detail of a packet the VIP's policy drops.
fn refusal(reason: Verdict) -> (&'static str, String) {
    let detail = match reason {
        Verdict::SourceDenied => {
            "the source lies in one of the VIP's deny prefixes (deny wins over allow): dropped"
        }
        Verdict::SourceNotAllowed => {
            "the VIP has an allow list and the source lies in none of its prefixes: dropped"
        }
        Verdict::SourceRateLimited => {
            "a new connection, and its source prefix's bucket is empty (over the VIP's \
             per-source rate): dropped"
        }
        _ => {
            "a new connection, and the VIP's bucket is empty (over its new-connection \
              rate): dropped"
        }
    };
    (reason.as_str(), detail.to_string())
}

/// Why an entry that exists is not followed, in words.
fn ignored_entry(why: FlowEntryUse) -> &'static str {
    match why {
        FlowEntryUse::Follow => "it is followed",
        FlowEntryUse::BackendGone => "its backend was removed",
        FlowEntryUse::BackendUnhealthy => "its backend failed its health check",
        FlowEntryUse::NewConnection => {
            "a SYN opens a new connection, which takes the current table"
        }
        FlowEntryUse::Expired => "it was idle longer than the VIP's UDP idle timeout",
    }
}
