//! A point-in-time view of the balancer's counters and state, read from the
//! maps on demand: served as JSON by the API (`xlb stats`) and encoded as
//! Prometheus metrics.

use serde::{Deserialize, Serialize};

use crate::dataplane::FlowTableCapacity;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Seconds since the Unix epoch when the snapshot was taken.
    pub taken_at: f64,
    pub vips: Vec<VipSample>,
    /// (reason, packets) for every verdict slot, in slot order.
    pub verdicts: Vec<(String, u64)>,
    pub control: ControlSample,
    #[serde(default)]
    pub flow_table: FlowTableSample,
    /// The drivers' XDP error counters (`ethtool -S`): frames the program
    /// sent (tx, redirect) that the driver dropped.
    #[serde(default)]
    pub driver: Vec<DriverSample>,
    /// Flood mode of the connection table.
    #[serde(default)]
    pub flood: FloodSample,
    /// Full NAT (`forwarding = "nat"`); port exhaustion and unknown
    /// replies are verdicts (`nat_exhausted`, `nat_reply_unknown`).
    #[serde(default)]
    pub nat: NatSample,
}

/// Full NAT's counters since load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatSample {
    /// Sessions created (a NAT port allocated).
    pub sessions_created: u64,
    /// Backend replies translated back toward their client.
    pub replies: u64,
    /// Ports taken over from expired sessions.
    pub ports_reclaimed: u64,
}

impl From<lb_common::NatStats> for NatSample {
    fn from(s: lb_common::NatStats) -> Self {
        Self {
            sessions_created: s.sessions,
            replies: s.replies,
            ports_reclaimed: s.reclaimed,
        }
    }
}

/// Flood mode (`global.flood_threshold`): CPUs that see more
/// connection-table misses than the threshold stop inserting entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloodSample {
    /// Misses per second on one CPU that start flood mode (0: never).
    pub threshold_per_cpu: u32,
    /// CPUs in flood mode now.
    pub flooding_cpus: u32,
    /// Entries not inserted because a CPU was flooding, since load.
    pub skipped_inserts: u64,
    /// Windows (100 ms) in which a CPU went into flood mode, since load.
    pub flood_windows: u64,
}

/// Packets a VIP's policy dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySample {
    pub source_denied: u64,
    pub source_not_allowed: u64,
    pub vip_rate_limited: u64,
    pub source_rate_limited: u64,
}

/// The connection table's real capacity: the kernel gives each possible CPU
/// its own LRU list of `per_cpu` entries, and a flow only uses the list of
/// the CPU its packets arrive on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTableSample {
    /// `flow_table_size` as configured.
    pub requested: u32,
    /// Entries of the map as the kernel created it.
    pub entries: u32,
    pub possible_cpus: u32,
    pub per_cpu: u32,
}

impl From<FlowTableCapacity> for FlowTableSample {
    fn from(c: FlowTableCapacity) -> Self {
        Self {
            requested: c.requested,
            entries: c.entries,
            possible_cpus: c.possible_cpus,
            per_cpu: c.per_cpu(),
        }
    }
}

/// One driver XDP error counter of an interface, summed over its queues.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriverSample {
    pub interface: String,
    /// The driver's name for it without the queue prefix, e.g. `xdp_tx_errors`.
    pub counter: String,
    /// The driver's count (since the interface was created).
    pub value: u64,
    /// How much of it accrued while this daemon ran: a setup that drops now.
    #[serde(default)]
    pub since_start: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VipSample {
    /// The VIP's name (config `name`, or `address:port/proto`).
    pub vip: String,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    /// Every weighted backend failed its checks: all kept in the table.
    pub fail_open: bool,
    /// Whether this node announces the VIP's address; `None` when it does
    /// not manage the VIP's announcement (`announce.enabled = false`, or the
    /// VIP's `announce = "never"`), so "withdrawn" is never reported, nor
    /// alerted on, for a VIP that nobody asked xlb to announce.
    #[serde(default)]
    pub announced: Option<bool>,
    /// Drops by the VIP's source ranges and rate limits.
    #[serde(default)]
    pub policy: PolicySample,
    /// The VIP's forwarding mode (`ipip`, `gue`, `l2-dsr`).
    #[serde(default)]
    pub forwarding: String,
    pub backends: Vec<BackendSample>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendSample {
    pub backend: String,
    pub packets: u64,
    pub bytes: u64,
    pub weight: u16,
    pub healthy: bool,
}

/// Control-plane counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlSample {
    pub table_rebuilds: u64,
    pub table_slots_changed: u64,
    pub reconciles_ok: u64,
    pub reconciles_failed: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub health_transitions: u64,
    /// Unix time of the last successful reconcile (0 if none).
    pub last_reconcile_unix: f64,
    pub last_reconcile_seconds: f64,
}
