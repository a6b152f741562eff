//! Config errors: what is wrong ([`ConfigErrorKind`]), at which field
//! (`vip[2].backend[1].address`) and, for a file, where (line:column), so an
//! operator can go straight to the offending line.

use std::{fmt, io, net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use thiserror::Error;

use super::model::{ForwardingMode, IpFamily, VipEndpoint};

/// A rejected config, file or API request. Nothing of it was applied.
#[derive(Clone, Debug)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub path: Option<PathBuf>,
    /// Where in the TOML text; `None` for models built by the API.
    pub location: Option<Location>,
    /// Dotted path of the offending field (`vip[2].backend[1].address`),
    /// relative to the request for API bodies; empty when it is the whole
    /// document.
    pub field: String,
    /// Boxed to keep `Result<_, ConfigError>` (and errors wrapping it) small.
    pub kind: Box<ConfigErrorKind>,
}

/// A position in the TOML text, both 1-based; the column counts characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Another item an error refers to, e.g. the first of two duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub field: String,
    pub location: Option<Location>,
}

/// Why an address cannot be a VIP, a backend or an outer source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressProblem {
    Unspecified,
    Multicast,
    Broadcast,
    Loopback,
    /// `::ffff:a.b.c.d`: IPv4 packets carry `a.b.c.d`, IPv6 packets never
    /// carry a mapped address, so a VIP or backend written so never matches.
    Ipv4Mapped,
}

/// Every reason a config is rejected. The field path and location are in
/// [`ConfigError`]; the messages say what is wrong and, where useful, how to
/// fix it.
#[derive(Clone, Debug, Error)]
pub enum ConfigErrorKind {
    #[error("cannot read the config file: {error}")]
    Io { error: Arc<io::Error> },
    /// Not TOML at all.
    #[error("invalid toml: {message}")]
    Syntax { message: String },
    /// TOML, but not the schema: unknown or missing field, wrong type, value
    /// out of the type's range, unknown enum value (`xdp_mode`, `protocol`,
    /// `hashing`, `kind`, `bpf_log`), malformed address.
    #[error("{message}")]
    Schema { message: String },

    #[error("instance name {instance:?} must be 1 to 32 characters of a-z, A-Z, 0-9, '_' and '-'")]
    InvalidInstance { instance: String },
    #[error("at least one interface is required")]
    NoInterfaces,
    #[error("{name:?} is not a valid interface name: {reason}")]
    InvalidInterfaceName { name: String, reason: &'static str },
    #[error("interface {name:?} is already listed at {first}")]
    DuplicateInterface { name: String, first: Place },
    #[error("{count} interfaces (interfaces and egress_interfaces together) exceed the {max} the redirect map holds")]
    TooManyInterfaces { count: usize, max: usize },
    #[error("{address} is not an {expected} address")]
    OuterSourceFamily { address: IpAddr, expected: IpFamily },
    #[error("{address} is {problem}")]
    UnusableAddress {
        address: IpAddr,
        problem: AddressProblem,
    },
    #[error(
        "{address} is one of the balancer's outer source addresses (global.outer_source_v4/v6)"
    )]
    AddressIsOuterSource { address: IpAddr },

    #[error("table size {size} is outside {min}..={max}")]
    TableSizeOutOfRange { size: u64, min: u32, max: u32 },
    #[error("table size {size} is not a prime{}", next_prime.map(|p| format!(" (the next prime is {p})")).unwrap_or_default())]
    TableSizeNotPrime { size: u32, next_prime: Option<u32> },
    #[error("{value} is outside {min}..={max}")]
    OutOfRange { value: u64, min: u64, max: u64 },
    #[error("the maglev tables take max_vips {max_vips} x table_size {table_size} x 4 bytes = {bytes} bytes, over the limit of {limit} bytes (1 GiB): lower max_vips or table_size")]
    TableMemoryTooLarge {
        max_vips: u32,
        table_size: u32,
        bytes: u64,
        limit: u64,
    },
    #[error("api socket {path:?} must be an absolute path")]
    RelativeApiSocket { path: PathBuf },
    #[error("api socket path {path:?} is {len} bytes, longer than the {max} a unix socket address holds")]
    ApiSocketPathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("routing table {table} is one of the kernel's own (0 unspec, 252 compat, 253 default, 254 main, 255 local): give xlb a table of its own, e.g. 4242")]
    ReservedRouteTable { table: u32 },

    #[error("vip name {name:?} {reason}")]
    InvalidVipName { name: String, reason: &'static str },
    #[error("vip name {name:?} reads as the endpoint {named}, but this vip is {endpoint}")]
    MisleadingVipName {
        name: String,
        named: VipEndpoint,
        endpoint: VipEndpoint,
    },
    #[error("vip {endpoint} is already defined at {first}")]
    DuplicateVip { endpoint: VipEndpoint, first: Place },
    #[error("vip name {name:?} is already used at {first}")]
    DuplicateVipName { name: String, first: Place },
    #[error("{count} vips exceed max_vips {max_vips}")]
    TooManyVips { count: usize, max_vips: u32 },
    #[error("all {backends} backends have weight 0, so the vip would drop every new connection: give one a weight, or remove the backends (a vip without backends is allowed)")]
    AllBackendsDrained { backends: usize },
    #[error("the vip has {backends} backends, more than the {table_size} slots of its maglev table (global.table_size)")]
    BackendsExceedTableSize { backends: usize, table_size: u32 },

    #[error("backend {address} is already listed at {first}")]
    DuplicateBackend { address: IpAddr, first: Place },
    #[error("backend {address} is {family}, but global.{setting} is not set, so the balancer cannot build {family} outer headers")]
    MissingOuterSource {
        address: IpAddr,
        family: IpFamily,
        setting: &'static str,
    },
    #[error("backend {address} is {backend_family}, but the vip is {vip_family}: {forwarding} forwarding sends the client's own packet, so every backend must be of the vip's family (use ipip or gue to reach backends of the other family)")]
    BackendFamilyMismatch {
        address: IpAddr,
        backend_family: IpFamily,
        vip_family: IpFamily,
        forwarding: ForwardingMode,
    },
    #[error("{count} backends in all exceed max_backends {max_backends} (slot 0 is reserved, so {} fit)", max_backends.saturating_sub(1))]
    TooManyBackends { count: usize, max_backends: u32 },
    #[error("health_check_mode is {mode} but health_check does not match it (for inherit it must equal the vip's health check; use VipConfig::set_health_check)")]
    HealthCheckModeMismatch { mode: &'static str },

    #[error("`{field}` only applies to http checks (set kind = \"http\")")]
    HttpFieldOnTcpCheck { field: &'static str },
    #[error("{value:?} is not a duration such as \"2s\" or \"500ms\": {reason}")]
    InvalidDuration { value: String, reason: String },
    #[error("{} is outside {}..={}", fmt_duration(*value), fmt_duration(*min), fmt_duration(*max))]
    DurationOutOfRange {
        value: Duration,
        min: Duration,
        max: Duration,
    },
    #[error("timeout {} must be shorter than the interval {}", fmt_duration(*timeout), fmt_duration(*interval))]
    TimeoutNotBelowInterval {
        timeout: Duration,
        interval: Duration,
    },
    #[error("{reason}")]
    InvalidPrefix { reason: String },
    #[error("prefix {prefix} is already listed at {first}")]
    DuplicatePrefix { prefix: String, first: Place },
    #[error(
        "{count} {family} source prefixes in all vips exceed the {max} the data plane's trie holds"
    )]
    TooManyPrefixes {
        family: IpFamily,
        count: usize,
        max: usize,
    },
    #[error("`per_second` is required: the number of new connections a second")]
    MissingRate,
    #[error("`{field}` only applies to source_rate_limit (the prefix that groups sources)")]
    PrefixOnVipRateLimit { field: &'static str },
    #[error("a udp vip without a flow table cannot tell new flows from old ones, so it cannot limit them: set flow_table = true or remove the rate limits")]
    RateLimitWithoutFlowTable,
    #[error("udp_idle_timeout only applies to udp vips (this vip is tcp: its connections end with FIN/RST and live until evicted)")]
    UdpIdleTimeoutOnTcpVip,
    #[error("this vip forwards by nat but nat.sources has no {family} address: add one of the balancer's own {family} addresses to [nat] sources (the backends' replies come back to it)")]
    MissingNatSource { family: IpFamily },
    #[error("{count} {family} nat sources exceed the {max} the data plane holds")]
    TooManyNatSources {
        family: IpFamily,
        count: usize,
        max: usize,
    },
    #[error("nat source {address} is listed twice")]
    DuplicateNatSource { address: IpAddr },
    #[error("{value:?} is not a port range such as \"1024-65535\": {reason}")]
    InvalidNatPorts { value: String, reason: &'static str },
    #[error("gue port 0: packets are never sent to port 0 (1 to 65535)")]
    GuePortZero,
    #[error("gue_port only applies to gue vips (this vip forwards by {forwarding}; set forwarding = \"gue\")")]
    GuePortOnNonGueVip { forwarding: ForwardingMode },
    #[error("health check port is 0: set `port` (it is required when the vip port is 0, i.e. every port)")]
    HealthCheckPortZero,
    #[error(
        "http path {path:?} must start with '/' and contain no whitespace or control characters"
    )]
    InvalidHttpPath { path: String },
    #[error(
        "http host {host:?} must be non-empty and contain no whitespace or control characters"
    )]
    InvalidHttpHost { host: String },
}

impl ConfigError {
    /// An error about `field`, located later by [`ConfigError::locate`] if
    /// the config came from a file.
    pub(crate) fn new(field: impl Into<String>, kind: ConfigErrorKind) -> Self {
        Self {
            path: None,
            location: None,
            field: field.into(),
            kind: Box::new(kind),
        }
    }

    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    pub fn column(&self) -> Option<usize> {
        self.location.map(|l| l.column)
    }

    /// The field path, or `None` when the error is about the whole document.
    pub fn field_path(&self) -> Option<String> {
        (!self.field.is_empty()).then(|| self.field.clone())
    }

    /// Fills in the file, this error's location and the location of the
    /// place it refers to, from `locate` (field path to location).
    pub(crate) fn locate(
        mut self,
        path: Option<PathBuf>,
        locate: impl Fn(&str) -> Option<Location>,
    ) -> Self {
        self.path = path;
        if self.location.is_none() {
            self.location = locate(&self.field);
        }
        if let Some(place) = self.kind.place_mut() {
            if place.location.is_none() {
                place.location = locate(&place.field);
            }
        }
        self
    }
}

impl ConfigErrorKind {
    fn place_mut(&mut self) -> Option<&mut Place> {
        match self {
            ConfigErrorKind::DuplicateInterface { first, .. }
            | ConfigErrorKind::DuplicateVip { first, .. }
            | ConfigErrorKind::DuplicateVipName { first, .. }
            | ConfigErrorKind::DuplicateBackend { first, .. } => Some(first),
            _ => None,
        }
    }
}

/// `FILE:LINE:COLUMN: FIELD: REASON`, the shape editors and CI logs link.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.location) {
            (Some(p), Some(l)) => write!(f, "{}:{}:{}: ", p.display(), l.line, l.column)?,
            (Some(p), None) => write!(f, "{}: ", p.display())?,
            (None, Some(l)) => write!(f, "line {}, column {}: ", l.line, l.column)?,
            (None, None) => {}
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// No `source()`: the kind is part of the message already, and error chains
/// would print it twice.
impl std::error::Error for ConfigError {}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) => write!(f, "{} (line {}, column {})", self.field, l.line, l.column),
            None => f.write_str(&self.field),
        }
    }
}

impl Place {
    pub(crate) fn at(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            location: None,
        }
    }
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressProblem::Unspecified => "the unspecified address",
            AddressProblem::Multicast => "a multicast address",
            AddressProblem::Broadcast => "the broadcast address",
            AddressProblem::Loopback => "a loopback address, which never crosses the wire",
            AddressProblem::Ipv4Mapped => {
                "an IPv4-mapped IPv6 address, which no packet carries: write the IPv4 address \
                 itself (a.b.c.d, not ::ffff:a.b.c.d)"
            }
        })
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
/// Offsets past the end or inside a character are clamped.
pub fn line_column(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}
