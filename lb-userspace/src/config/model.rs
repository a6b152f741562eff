//! The validated config model: typed fields, defaults resolved, health check
//! inheritance applied. This is what the daemon, the reconciler and the
//! runtime API work with; the API returns these types as JSON (snake_case
//! fields, durations as humantime strings such as "2s").

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use super::policy::{IpPrefix, RateLimit, SourceRateLimit};

/// A validated config: what `xlb run --config FILE` applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub global: GlobalConfig,
    /// The `[announce]` table (absent: announcing is off).
    #[serde(default)]
    pub announce: AnnounceConfig,
    /// The `[nat]` table (`forwarding = "nat"` VIPs).
    #[serde(default)]
    pub nat: super::nat::NatConfig,
    pub vips: Vec<VipConfig>,
}

/// The `[global]` table. Everything except the outer sources and the outer
/// TTL sizes or places the data plane, so the daemon needs a restart to
/// change it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Pin directory name: `/sys/fs/bpf/xlb/<instance>`.
    pub instance: String,
    /// Interfaces the balancer's XDP program is attached to.
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    /// Extra interfaces encapsulated packets may leave by.
    pub egress_interfaces: Vec<String>,
    /// Source of IPv4 outer headers; without it IPv4 backends cannot be served.
    pub outer_source_v4: Option<Ipv4Addr>,
    /// Source of IPv6 outer headers; without it IPv6 backends cannot be served.
    pub outer_source_v6: Option<Ipv6Addr>,
    /// TTL / hop limit of every outer header (1..=255).
    pub outer_ttl: u8,
    /// UDP destination port of GUE VIPs that do not set their own.
    pub gue_port: u16,
    /// ICMP messages of each kind the data plane sends itself ("too big"
    /// errors, echo replies) per second per CPU; 0 sends none.
    #[serde(default = "default_icmp_rate_limit")]
    pub icmp_rate_limit: u32,
    /// Maglev slots per VIP (a prime).
    pub table_size: u32,
    /// Entries of the connection table.
    pub flow_table_size: u32,
    /// Capacity of the VIP maps.
    pub max_vips: u32,
    /// Capacity of the backend slot map (slot 0 is reserved).
    pub max_backends: u32,
    /// Unix socket of the runtime API.
    pub api_socket: PathBuf,
    /// Where Prometheus metrics are served.
    pub metrics_address: SocketAddr,
    pub bpf_log: BpfLogLevel,
    /// Seed of the flow hash; `None`: the public default
    /// (`lb_common::DEFAULT_HASH_SEED`), with a warning at start. Must be
    /// equal on every balancer of a fleet.
    #[serde(default)]
    pub hash_seed: Option<u32>,
    /// Connection-table misses per second on one CPU above which it stops
    /// inserting entries for unknown flows (flood mode); 0: never.
    #[serde(default = "default_flood_threshold")]
    pub flood_threshold: u32,
}

fn default_flood_threshold() -> u32 {
    lb_common::DEFAULT_FLOOD_THRESHOLD
}

impl GlobalConfig {
    /// The seed the data plane hashes with.
    pub fn effective_hash_seed(&self) -> u32 {
        self.hash_seed.unwrap_or(lb_common::DEFAULT_HASH_SEED)
    }
}

/// The `[announce]` table: the routes by which this node asks a routing
/// daemon (BIRD, FRR) to announce its VIP addresses (see `crate::announce`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// Keep one route per announced VIP address in `table`.
    pub enabled: bool,
    /// The kernel routing table xlb owns for its announce routes.
    pub table: u32,
    /// How long a planned stop (`xlb down`) waits after withdrawing the
    /// routes before the data plane goes, so routers move flows away first.
    #[serde(with = "humantime_text")]
    pub drain_on_stop: Duration,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            table: super::limits::DEFAULT_ANNOUNCE_TABLE,
            drain_on_stop: Duration::ZERO,
        }
    }
}

/// When a VIP's address is announced from this node (`[[vip]] announce`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnounceMode {
    /// While at least one backend with a weight above 0 is healthy.
    #[default]
    WhenHealthy,
    /// Whenever the daemon runs with its program attached.
    Always,
    /// Never from this VIP (another VIP of the same address may still).
    Never,
}

/// One `[[vip]]`: a virtual service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipConfig {
    /// Label for metrics, logs and the CLI; defaults to the endpoint's text
    /// (`10.0.0.1:80/tcp`, `[2001:db8::1]:443/udp`).
    pub name: String,
    pub address: IpAddr,
    /// 0 = every port of this address and protocol.
    pub port: u16,
    pub protocol: Protocol,
    pub hashing: Hashing,
    /// false = every packet follows the Maglev table (no connection tracking).
    pub flow_table: bool,
    /// How packets reach the backends.
    #[serde(default)]
    pub forwarding: ForwardingMode,
    /// GUE VIPs: the outer UDP destination port; `None` = `global.gue_port`.
    #[serde(default)]
    pub gue_port: Option<u16>,
    /// Echo requests to the VIP's address are answered by the balancer
    /// (an address answers when any of its VIPs says so).
    #[serde(default = "default_ping")]
    pub ping: bool,
    /// When this node announces the VIP's address (with `[announce]` on).
    #[serde(default)]
    pub announce: AnnounceMode,
    /// A UDP flow silent for longer than this loses its connection-table
    /// entry: its next packet goes through the VIP's current table. Only
    /// meaningful for UDP VIPs (TCP VIPs keep the default).
    #[serde(with = "humantime_text")]
    pub udp_idle_timeout: Duration,
    /// The VIP's default check, which backends inherit (kept for dump and for
    /// re-resolving inheritance when it changes).
    pub health_check: Option<HealthCheck>,
    /// Sources that may reach the VIP (empty: every source not denied).
    #[serde(default)]
    pub allow: Vec<IpPrefix>,
    /// Sources that may not; deny wins over allow.
    #[serde(default)]
    pub deny: Vec<IpPrefix>,
    /// New connections per second to the whole VIP.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// New connections per second to the VIP from each source prefix.
    #[serde(default)]
    pub source_rate_limit: Option<SourceRateLimit>,
    pub backends: Vec<BackendConfig>,
}

/// One `[[vip.backend]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub address: IpAddr,
    /// 0 drains the backend: no new flows, pinned flows stay.
    pub weight: u16,
    /// The check the health monitor runs for this backend, after inheritance;
    /// `None` = not checked (always healthy).
    pub health_check: Option<HealthCheck>,
    /// Where `health_check` comes from, so that a dump writes what the file
    /// said and a change of the VIP default reaches inheriting backends.
    pub health_check_mode: HealthCheckMode,
}

/// How a backend's check relates to its VIP's default check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckMode {
    /// No `health_check` key: the VIP's default (if any) applies.
    #[default]
    Inherit,
    /// `health_check = false`: never checked, even if the VIP has a default.
    Disabled,
    /// `health_check = { ... }`: the backend's own check.
    Custom,
}

/// An active health check, all defaults resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    /// Port probed on the backend address (never 0).
    pub port: u16,
    #[serde(with = "humantime_text")]
    pub interval: Duration,
    #[serde(with = "humantime_text")]
    pub timeout: Duration,
    /// Consecutive successes that make a backend healthy.
    pub rise: u32,
    /// Consecutive failures that make a backend unhealthy.
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum HealthCheckKind {
    /// A TCP connection must be accepted.
    Tcp,
    /// `GET path` must answer `expected_status`.
    Http {
        path: String,
        expected_status: u16,
        /// Host header; default: the backend's `address:port`.
        host: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A VIP's `forwarding`: how its packets reach the backends (the README's
/// "Choosing a forwarding mode"; the data plane's side is
/// `lb_common::forwarding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardingMode {
    /// IP-in-IP to the backend, which decapsulates (direct server return).
    #[default]
    Ipip,
    /// GUE (UDP) to the backend's GUE port, which decapsulates (direct
    /// server return).
    Gue,
    /// Only the MACs rewritten: the backend is on the balancer's segment
    /// and holds the VIP (direct server return).
    #[serde(rename = "l2-dsr")]
    L2Dsr,
    /// Full NAT: rewritten to the backend's address from one of the
    /// balancer's NAT addresses (`[nat]`); the backend needs nothing and
    /// replies through the balancer.
    Nat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hashing {
    /// Source and destination address and port, and protocol.
    #[default]
    FiveTuple,
    /// The client's address only (client affinity).
    SourceIp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Driver mode (the daemon falls back to skb mode with a warning).
    #[default]
    Native,
    /// Generic mode: works on every interface, slower.
    Skb,
}

/// aya-log level of the eBPF side. Anything but `Off` costs the fast path a
/// little, so it is meant for debugging.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BpfLogLevel {
    #[default]
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// An address family, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

/// What identifies a VIP in the data plane: two VIPs may not share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipEndpoint {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl VipConfig {
    pub fn endpoint(&self) -> VipEndpoint {
        VipEndpoint {
            address: self.address,
            port: self.port,
            protocol: self.protocol,
        }
    }

    /// Whether `selector` names this VIP: its name, or its endpoint text.
    pub fn matches(&self, selector: &str) -> bool {
        self.name == selector || self.endpoint().to_string() == selector
    }

    /// Replaces the VIP's default check and updates every backend that
    /// inherits it, keeping the model consistent for [`Config::validate`].
    pub fn set_health_check(&mut self, check: Option<HealthCheck>) {
        for b in &mut self.backends {
            if b.health_check_mode == HealthCheckMode::Inherit {
                b.health_check.clone_from(&check);
            }
        }
        self.health_check = check;
    }
}

impl Config {
    /// Index of the VIP `selector` names (its name or `address:port/protocol`).
    pub fn find_vip(&self, selector: &str) -> Option<usize> {
        self.vips.iter().position(|v| v.matches(selector))
    }
}

impl Protocol {
    /// The IP protocol number (`lb_common::PROTO_TCP` / `PROTO_UDP`).
    pub fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::PROTO_TCP,
            Protocol::Udp => lb_common::PROTO_UDP,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl ForwardingMode {
    /// The data plane's mode.
    pub fn data_plane(self) -> lb_common::Forwarding {
        match self {
            ForwardingMode::Ipip => lb_common::Forwarding::Ipip,
            ForwardingMode::Gue => lb_common::Forwarding::Gue,
            ForwardingMode::L2Dsr => lb_common::Forwarding::L2Dsr,
            ForwardingMode::Nat => lb_common::Forwarding::Nat,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.data_plane().as_str()
    }
}

impl fmt::Display for ForwardingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VipConfig {
    /// The GUE port this VIP's packets go to (its own, else the global one).
    pub fn effective_gue_port(&self, global: &GlobalConfig) -> u16 {
        self.gue_port.unwrap_or(global.gue_port)
    }
}

impl AnnounceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceMode::WhenHealthy => "when-healthy",
            AnnounceMode::Always => "always",
            AnnounceMode::Never => "never",
        }
    }
}

impl BpfLogLevel {
    /// The `AYA_LOG_LEVEL` value of the eBPF programs: 0 off, 1 error .. 5 trace.
    pub fn level(self) -> u8 {
        match self {
            BpfLogLevel::Off => 0,
            BpfLogLevel::Error => 1,
            BpfLogLevel::Warn => 2,
            BpfLogLevel::Info => 3,
            BpfLogLevel::Debug => 4,
            BpfLogLevel::Trace => 5,
        }
    }
}

impl IpFamily {
    pub fn of(address: IpAddr) -> IpFamily {
        match address {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!(
                "unknown protocol {s:?}, expected \"tcp\" or \"udp\""
            )),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// `10.0.0.1:80/tcp`, `[2001:db8::1]:443/udp`: the default VIP name.
impl fmt::Display for VipEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let socket = SocketAddr::new(self.address, self.port);
        write!(f, "{socket}/{}", self.protocol)
    }
}

/// Parses what `Display` writes.
impl FromStr for VipEndpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (socket, protocol) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("{s:?} is not address:port/protocol"))?;
        let socket: SocketAddr = socket
            .parse()
            .map_err(|e| format!("{s:?} is not address:port/protocol: {e}"))?;
        Ok(VipEndpoint {
            address: socket.ip(),
            port: socket.port(),
            protocol: protocol.parse()?,
        })
    }
}

/// Durations as humantime text ("2s", "1m 30s") in JSON, like in the file.
pub(crate) mod humantime_text {
    use std::time::Duration;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(D::Error::custom)
    }
}

fn default_icmp_rate_limit() -> u32 {
    lb_common::DEFAULT_ICMP_RATE
}

fn default_ping() -> bool {
    true
}
