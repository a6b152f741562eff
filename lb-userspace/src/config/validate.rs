//! Checks on the typed model. They only name fields by path, so the same
//! checks serve the config file (the caller turns paths into line:column)
//! and the runtime API (paths relative to the request, or to the effective
//! config). Checks run in document order and the first failure is reported.

use std::{
    collections::{hash_map::Entry, HashMap},
    net::IpAddr,
    time::Duration,
};

use super::{
    error::{AddressProblem, ConfigError, ConfigErrorKind, Place},
    limits::*,
    model::{
        AnnounceConfig, BackendConfig, Config, ForwardingMode, GlobalConfig, HealthCheck,
        HealthCheckKind, HealthCheckMode, IpFamily, Protocol, VipConfig, VipEndpoint,
    },
    policy::{check_prefix_list, MAX_PREFIXES, MAX_RATE},
    spans::join,
};
use crate::maglev::is_prime;

type Check = Result<(), ConfigError>;

fn fail(field: impl Into<String>, kind: ConfigErrorKind) -> Check {
    Err(ConfigError::new(field, kind))
}

/// Everything, including what spans VIPs: duplicate endpoints and names,
/// and the VIP and backend capacities.
pub(crate) fn check_config(c: &Config) -> Check {
    let g = &c.global;
    check_global(g)?;
    check_announce(&c.announce)?;
    super::nat::check_nat(&c.nat)?;
    let mut endpoints: HashMap<VipEndpoint, usize> = HashMap::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let backend_capacity = g.max_backends.saturating_sub(1) as usize;
    let mut backends = 0usize;
    let mut prefixes = [0usize; 2];
    for (i, v) in c.vips.iter().enumerate() {
        let field = format!("vip[{i}]");
        if i >= g.max_vips as usize {
            let kind = ConfigErrorKind::TooManyVips {
                count: c.vips.len(),
                max_vips: g.max_vips,
            };
            return fail(field, kind);
        }
        match endpoints.entry(v.endpoint()) {
            Entry::Occupied(first) => {
                let kind = ConfigErrorKind::DuplicateVip {
                    endpoint: v.endpoint(),
                    first: Place::at(format!("vip[{}]", first.get())),
                };
                return fail(field, kind);
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        match names.entry(&v.name) {
            Entry::Occupied(first) => {
                let kind = ConfigErrorKind::DuplicateVipName {
                    name: v.name.clone(),
                    first: Place::at(format!("vip[{}].name", first.get())),
                };
                return fail(join(&field, "name"), kind);
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        check_vip(v, g, &field)?;
        if v.forwarding == ForwardingMode::Nat {
            super::nat::check_nat_vip(v.address, &c.nat, &field)?;
        }
        for (list, key) in [(&v.allow, "allow"), (&v.deny, "deny")] {
            for (j, p) in list.iter().enumerate() {
                let (family, n) = if p.addr.is_ipv4() {
                    (IpFamily::V4, &mut prefixes[0])
                } else {
                    (IpFamily::V6, &mut prefixes[1])
                };
                *n += 1;
                if *n > MAX_PREFIXES {
                    let kind = ConfigErrorKind::TooManyPrefixes {
                        family,
                        count: *n,
                        max: MAX_PREFIXES,
                    };
                    return fail(format!("{field}.{key}[{j}]"), kind);
                }
            }
        }
        for j in 0..v.backends.len() {
            backends += 1;
            if backends > backend_capacity {
                let kind = ConfigErrorKind::TooManyBackends {
                    count: c.vips.iter().map(|v| v.backends.len()).sum(),
                    max_backends: g.max_backends,
                };
                return fail(format!("{field}.backend[{j}]"), kind);
            }
        }
    }
    Ok(())
}

pub(crate) fn check_global(g: &GlobalConfig) -> Check {
    check_instance(&g.instance)?;
    check_interfaces(g)?;
    if let Some(a) = g.outer_source_v4 {
        check_usable(IpAddr::V4(a), "global.outer_source_v4")?;
    }
    if let Some(a) = g.outer_source_v6 {
        check_usable(IpAddr::V6(a), "global.outer_source_v6")?;
    }
    check_range(
        g.outer_ttl,
        MIN_OUTER_TTL,
        MAX_OUTER_TTL,
        "global.outer_ttl",
    )?;
    if g.gue_port == 0 {
        return fail("global.gue_port", ConfigErrorKind::GuePortZero);
    }
    check_range(
        g.icmp_rate_limit,
        0,
        MAX_ICMP_RATE_LIMIT,
        "global.icmp_rate_limit",
    )?;
    check_table_size(g.table_size)?;
    check_range(
        g.flow_table_size,
        MIN_FLOW_TABLE_SIZE,
        MAX_FLOW_TABLE_SIZE,
        "global.flow_table_size",
    )?;
    check_range(g.max_vips, MIN_MAX_VIPS, MAX_MAX_VIPS, "global.max_vips")?;
    check_range(
        g.max_backends,
        MIN_MAX_BACKENDS,
        MAX_MAX_BACKENDS,
        "global.max_backends",
    )?;
    check_table_memory(g)?;
    check_api_socket(g)
}

/// An instance name given on the command line (`--instance`): the same rule
/// as `global.instance`, since it names a directory under /sys/fs/bpf/xlb.
pub fn check_instance_name(instance: &str) -> Result<(), ConfigErrorKind> {
    check_instance(instance).map_err(|e| *e.kind)
}

/// The announce table must be one xlb can own: not one of the kernel's own.
fn check_announce(a: &AnnounceConfig) -> Check {
    if RESERVED_ROUTE_TABLES.contains(&a.table) {
        let kind = ConfigErrorKind::ReservedRouteTable { table: a.table };
        return fail("announce.table", kind);
    }
    check_duration(
        a.drain_on_stop,
        Duration::ZERO,
        MAX_DRAIN_ON_STOP,
        "announce.drain_on_stop",
    )
}

fn check_instance(instance: &str) -> Check {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if instance.is_empty() || instance.len() > MAX_INSTANCE_LEN || !instance.chars().all(valid_char)
    {
        let kind = ConfigErrorKind::InvalidInstance {
            instance: instance.to_string(),
        };
        return fail("global.instance", kind);
    }
    Ok(())
}

/// Attached and egress interfaces together: valid names, each once, and no
/// more than the redirect map holds.
fn check_interfaces(g: &GlobalConfig) -> Check {
    if g.interfaces.is_empty() {
        return fail("global.interfaces", ConfigErrorKind::NoInterfaces);
    }
    let lists = [
        ("interfaces", &g.interfaces),
        ("egress_interfaces", &g.egress_interfaces),
    ];
    let total = g.interfaces.len() + g.egress_interfaces.len();
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (key, list) in lists {
        for (i, name) in list.iter().enumerate() {
            let field = format!("global.{key}[{i}]");
            if let Some(reason) = interface_name_problem(name) {
                let kind = ConfigErrorKind::InvalidInterfaceName {
                    name: name.clone(),
                    reason,
                };
                return fail(field, kind);
            }
            if let Some(first) = seen.get(name.as_str()) {
                let kind = ConfigErrorKind::DuplicateInterface {
                    name: name.clone(),
                    first: Place::at(first.clone()),
                };
                return fail(field, kind);
            }
            if seen.len() == MAX_INTERFACES {
                let kind = ConfigErrorKind::TooManyInterfaces {
                    count: total,
                    max: MAX_INTERFACES,
                };
                return fail(field, kind);
            }
            seen.insert(name, field);
        }
    }
    Ok(())
}

/// Why the kernel would refuse `name` as an interface name (see
/// `dev_valid_name` in net/core/dev.c), plus ':' which marks alias labels,
/// not devices.
fn interface_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_IFNAME_LEN {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not interface names")
    } else if name.contains('/') {
        Some("it contains '/'")
    } else if name.contains(':') {
        Some("it contains ':' (an address label, not a device)")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or control characters")
    } else {
        None
    }
}

/// Maglev needs a prime size; the builder accepts at most MAX_TABLE_SIZE.
fn check_table_size(size: u32) -> Check {
    if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) {
        let kind = ConfigErrorKind::TableSizeOutOfRange {
            size: u64::from(size),
            min: MIN_TABLE_SIZE,
            max: MAX_TABLE_SIZE,
        };
        return fail("global.table_size", kind);
    }
    if !is_prime(size) {
        let next_prime = (size + 1..=MAX_TABLE_SIZE).find(|&n| is_prime(n));
        let kind = ConfigErrorKind::TableSizeNotPrime { size, next_prime };
        return fail("global.table_size", kind);
    }
    Ok(())
}

fn check_range<T: Into<u64> + Copy>(value: T, min: T, max: T, field: &str) -> Check {
    let (value, min, max) = (value.into(), min.into(), max.into());
    if !(min..=max).contains(&value) {
        return fail(field, ConfigErrorKind::OutOfRange { value, min, max });
    }
    Ok(())
}

/// Every VIP id owns a whole table, so the map is sized for `max_vips`
/// tables when it is created, whatever the VIPs in use.
fn check_table_memory(g: &GlobalConfig) -> Check {
    let bytes = u64::from(g.max_vips) * u64::from(g.table_size) * TABLE_SLOT_BYTES;
    if bytes > MAX_TABLE_MEMORY {
        let kind = ConfigErrorKind::TableMemoryTooLarge {
            max_vips: g.max_vips,
            table_size: g.table_size,
            bytes,
            limit: MAX_TABLE_MEMORY,
        };
        return fail("global.table_size", kind);
    }
    Ok(())
}

/// A relative socket would depend on the daemon's working directory, and a
/// long one fails only at bind time with an obscure error.
fn check_api_socket(g: &GlobalConfig) -> Check {
    let path = &g.api_socket;
    if !path.is_absolute() {
        let kind = ConfigErrorKind::RelativeApiSocket { path: path.clone() };
        return fail("global.api_socket", kind);
    }
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH_LEN {
        let kind = ConfigErrorKind::ApiSocketPathTooLong {
            path: path.clone(),
            len,
            max: MAX_SOCKET_PATH_LEN,
        };
        return fail("global.api_socket", kind);
    }
    Ok(())
}

/// One VIP and its backends, against the global settings; `field` is the
/// VIP's path (`vip[2]`, or `` for an API body).
pub(crate) fn check_vip(v: &VipConfig, g: &GlobalConfig, field: &str) -> Check {
    check_vip_name(v, &join(field, "name"))?;
    let address_field = join(field, "address");
    check_usable(v.address, &address_field)?;
    check_not_outer_source(v.address, g, &address_field)?;
    check_duration(
        v.udp_idle_timeout,
        MIN_UDP_IDLE_TIMEOUT,
        MAX_UDP_IDLE_TIMEOUT,
        &join(field, "udp_idle_timeout"),
    )?;
    check_forwarding(v, &join(field, "gue_port"))?;
    if let Some(hc) = &v.health_check {
        check_health_check(hc, &join(field, "health_check"))?;
    }
    check_policy(v, field)?;
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    for (j, b) in v.backends.iter().enumerate() {
        let backend_field = join(field, &format!("backend[{j}]"));
        if j >= g.table_size as usize {
            let kind = ConfigErrorKind::BackendsExceedTableSize {
                backends: v.backends.len(),
                table_size: g.table_size,
            };
            return fail(backend_field, kind);
        }
        check_backend(b, v.health_check.as_ref(), &backend_field)?;
        if let Some(first) = seen.insert(b.address, j) {
            let kind = ConfigErrorKind::DuplicateBackend {
                address: b.address,
                first: Place::at(join(field, &format!("backend[{first}].address"))),
            };
            return fail(join(&backend_field, "address"), kind);
        }
        check_backend_family(b, v, g, &backend_field)?;
    }
    if !v.backends.is_empty() && v.backends.iter().all(|b| b.weight == 0) {
        let kind = ConfigErrorKind::AllBackendsDrained {
            backends: v.backends.len(),
        };
        return fail(field, kind);
    }
    Ok(())
}

/// Source ranges and rate limits (their ranges are checked when read, for
/// the file and API bodies alike; the model is checked again here).
fn check_policy(v: &VipConfig, field: &str) -> Check {
    check_prefix_list(&v.allow, &join(field, "allow"))?;
    check_prefix_list(&v.deny, &join(field, "deny"))?;
    let limited = v.rate_limit.is_some() || v.source_rate_limit.is_some();
    if limited && v.protocol == Protocol::Udp && !v.flow_table {
        let at = if v.rate_limit.is_some() {
            "rate_limit"
        } else {
            "source_rate_limit"
        };
        return fail(join(field, at), ConfigErrorKind::RateLimitWithoutFlowTable);
    }
    let rates = [
        v.rate_limit.map(|r| (r.per_second, r.burst, "rate_limit")),
        v.source_rate_limit
            .map(|r| (r.per_second, r.burst, "source_rate_limit")),
    ];
    for (per_second, burst, key) in rates.into_iter().flatten() {
        check_range(
            per_second,
            1,
            MAX_RATE,
            &join(&join(field, key), "per_second"),
        )?;
        check_range(burst, 1, MAX_RATE, &join(&join(field, key), "burst"))?;
    }
    if let Some(r) = v.source_rate_limit {
        let at = join(field, "source_rate_limit");
        check_range(r.prefix_v4, 1, 32, &join(&at, "prefix_v4"))?;
        check_range(r.prefix_v6, 1, 128, &join(&at, "prefix_v6"))?;
    }
    Ok(())
}

/// Names are metric labels and CLI arguments. A name that reads as another
/// endpoint would make `xlb` commands and dashboards point at the wrong VIP.
fn check_vip_name(v: &VipConfig, field: &str) -> Check {
    let reason = if v.name.is_empty() {
        Some("is empty")
    } else if v.name.len() > MAX_VIP_NAME_LEN {
        Some("is longer than 64 bytes")
    } else if v.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else {
        None
    };
    if let Some(reason) = reason {
        let kind = ConfigErrorKind::InvalidVipName {
            name: v.name.clone(),
            reason,
        };
        return fail(field, kind);
    }
    if let Ok(named) = v.name.parse::<VipEndpoint>() {
        if named != v.endpoint() {
            let kind = ConfigErrorKind::MisleadingVipName {
                name: v.name.clone(),
                named,
                endpoint: v.endpoint(),
            };
            return fail(field, kind);
        }
    }
    Ok(())
}

/// A backend on its own, given its VIP's default check; `field` is the
/// backend's path.
pub(crate) fn check_backend(
    b: &BackendConfig,
    vip_check: Option<&HealthCheck>,
    field: &str,
) -> Check {
    check_usable(b.address, &join(field, "address"))?;
    let check_field = join(field, "health_check");
    match (b.health_check_mode, &b.health_check) {
        (HealthCheckMode::Inherit, hc) if hc.as_ref() == vip_check => Ok(()),
        (HealthCheckMode::Disabled, None) => Ok(()),
        (HealthCheckMode::Custom, Some(hc)) => check_health_check(hc, &check_field),
        (mode, _) => {
            let mode = match mode {
                HealthCheckMode::Inherit => "inherit",
                HealthCheckMode::Disabled => "disabled",
                HealthCheckMode::Custom => "custom",
            };
            fail(
                check_field,
                ConfigErrorKind::HealthCheckModeMismatch { mode },
            )
        }
    }
}

/// The mode's own settings: a GUE port only on a GUE VIP, and never 0.
fn check_forwarding(v: &VipConfig, gue_port_field: &str) -> Check {
    match (v.forwarding, v.gue_port) {
        (ForwardingMode::Gue, Some(0)) => fail(gue_port_field, ConfigErrorKind::GuePortZero),
        (ForwardingMode::Gue, _) | (_, None) => Ok(()),
        (forwarding, Some(_)) => fail(
            gue_port_field,
            ConfigErrorKind::GuePortOnNonGueVip { forwarding },
        ),
    }
}

/// An encapsulating VIP (`ipip`, `gue`) builds outer headers toward the
/// backend, so it needs an outer source of the backend's family (the VIP's
/// family does not matter). An `l2-dsr` VIP sends the client's own packet:
/// the backend must be of the VIP's family.
fn check_backend_family(b: &BackendConfig, v: &VipConfig, g: &GlobalConfig, field: &str) -> Check {
    let address_field = join(field, "address");
    let (backend_family, vip_family) = (IpFamily::of(b.address), IpFamily::of(v.address));
    if !v.forwarding.data_plane().encapsulates() {
        if backend_family != vip_family {
            let kind = ConfigErrorKind::BackendFamilyMismatch {
                address: b.address,
                backend_family,
                vip_family,
                forwarding: v.forwarding,
            };
            return fail(address_field, kind);
        }
        return check_not_outer_source(b.address, g, &address_field);
    }
    let missing = match b.address {
        IpAddr::V4(_) if g.outer_source_v4.is_none() => Some("outer_source_v4"),
        IpAddr::V6(_) if g.outer_source_v6.is_none() => Some("outer_source_v6"),
        _ => None,
    };
    if let Some(setting) = missing {
        let kind = ConfigErrorKind::MissingOuterSource {
            address: b.address,
            family: IpFamily::of(b.address),
            setting,
        };
        return fail(address_field, kind);
    }
    check_not_outer_source(b.address, g, &address_field)
}

fn check_not_outer_source(address: IpAddr, g: &GlobalConfig, field: &str) -> Check {
    let is_source = match address {
        IpAddr::V4(a) => g.outer_source_v4 == Some(a),
        IpAddr::V6(a) => g.outer_source_v6 == Some(a),
    };
    if is_source {
        return fail(field, ConfigErrorKind::AddressIsOuterSource { address });
    }
    Ok(())
}

/// Addresses no packet from the wire is sent to or can be sent to.
pub(crate) fn check_usable(address: IpAddr, field: &str) -> Check {
    let problem = if address.is_unspecified() {
        Some(AddressProblem::Unspecified)
    } else if address.is_multicast() {
        Some(AddressProblem::Multicast)
    } else if matches!(address, IpAddr::V4(a) if a.is_broadcast()) {
        Some(AddressProblem::Broadcast)
    } else if address.is_loopback() {
        Some(AddressProblem::Loopback)
    } else if matches!(address, IpAddr::V6(a) if a.to_ipv4_mapped().is_some()) {
        Some(AddressProblem::Ipv4Mapped)
    } else {
        None
    };
    match problem {
        Some(problem) => fail(field, ConfigErrorKind::UnusableAddress { address, problem }),
        None => Ok(()),
    }
}

/// A check at `field` (`vip[0].health_check`, `...backend[1].health_check`).
pub(crate) fn check_health_check(hc: &HealthCheck, field: &str) -> Check {
    if hc.port == 0 {
        return fail(join(field, "port"), ConfigErrorKind::HealthCheckPortZero);
    }
    if let HealthCheckKind::Http {
        path,
        expected_status,
        host,
    } = &hc.kind
    {
        check_http(path, *expected_status, host.as_deref(), field)?;
    }
    check_duration(
        hc.interval,
        MIN_INTERVAL,
        MAX_INTERVAL,
        &join(field, "interval"),
    )?;
    let timeout_field = join(field, "timeout");
    check_duration(hc.timeout, MIN_TIMEOUT, MAX_INTERVAL, &timeout_field)?;
    if hc.timeout >= hc.interval {
        let kind = ConfigErrorKind::TimeoutNotBelowInterval {
            timeout: hc.timeout,
            interval: hc.interval,
        };
        return fail(timeout_field, kind);
    }
    check_range(hc.rise, MIN_RISE_FALL, MAX_RISE_FALL, &join(field, "rise"))?;
    check_range(hc.fall, MIN_RISE_FALL, MAX_RISE_FALL, &join(field, "fall"))
}

/// The path and host go into the request line and header as they are.
fn check_http(path: &str, expected_status: u16, host: Option<&str>, field: &str) -> Check {
    let clean = |s: &str| !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if !path.starts_with('/') || !clean(path) {
        let kind = ConfigErrorKind::InvalidHttpPath {
            path: path.to_string(),
        };
        return fail(join(field, "path"), kind);
    }
    check_range(
        expected_status,
        MIN_STATUS,
        MAX_STATUS,
        &join(field, "expected_status"),
    )?;
    match host {
        Some(h) if h.is_empty() || !clean(h) => {
            let kind = ConfigErrorKind::InvalidHttpHost {
                host: h.to_string(),
            };
            fail(join(field, "host"), kind)
        }
        _ => Ok(()),
    }
}

fn check_duration(value: Duration, min: Duration, max: Duration, field: &str) -> Check {
    if !(min..=max).contains(&value) {
        return fail(
            field,
            ConfigErrorKind::DurationOutOfRange { value, min, max },
        );
    }
    Ok(())
}
