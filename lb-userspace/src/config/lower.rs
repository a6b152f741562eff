//! Raw (what the file says) to model (typed, defaults resolved, health check
//! inheritance applied), and back for dumps.
//!
//! Only what the model cannot represent is rejected here (an IPv6 outer
//! source for IPv4, http fields on a tcp check, unparsable durations, sizes
//! beyond u32); everything else is checked on the model by `validate`, so the
//! runtime API gets the same checks.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

use super::{
    error::{ConfigError, ConfigErrorKind},
    limits::*,
    model::{
        AnnounceConfig, BackendConfig, Config, GlobalConfig, HealthCheck, HealthCheckKind,
        HealthCheckMode, IpFamily, Protocol, VipConfig, VipEndpoint,
    },
    policy,
    raw::{
        CheckType, RawAnnounce, RawBackend, RawBackendHealthCheck, RawConfig, RawGlobal,
        RawHealthCheck, RawVip,
    },
    spans::join,
};

pub(crate) fn config_from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
    let global = global_from_raw(raw.global)?;
    let announce = announce_from_raw(raw.announce.unwrap_or_default())?;
    let nat = super::nat::nat_from_raw(raw.nat.unwrap_or_default())?;
    let vips = raw
        .vips
        .into_iter()
        .enumerate()
        .map(|(i, v)| vip_from_raw(v, &format!("vip[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Config {
        global,
        announce,
        nat,
        vips,
    })
}

fn announce_from_raw(raw: RawAnnounce) -> Result<AnnounceConfig, ConfigError> {
    let table = match raw.table {
        None => DEFAULT_ANNOUNCE_TABLE,
        Some(table) => u32::try_from(table).map_err(|_| {
            ConfigError::new(
                "announce.table",
                ConfigErrorKind::OutOfRange {
                    value: table,
                    min: 1,
                    max: u64::from(u32::MAX),
                },
            )
        })?,
    };
    Ok(AnnounceConfig {
        enabled: raw.enabled.unwrap_or(false),
        table,
        drain_on_stop: duration(raw.drain_on_stop, Duration::ZERO, "announce.drain_on_stop")?,
    })
}

fn global_from_raw(raw: RawGlobal) -> Result<GlobalConfig, ConfigError> {
    let table_size = match raw.table_size {
        None => DEFAULT_TABLE_SIZE,
        Some(size) => u32::try_from(size).map_err(|_| {
            ConfigError::new(
                "global.table_size",
                ConfigErrorKind::TableSizeOutOfRange {
                    size,
                    min: MIN_TABLE_SIZE,
                    max: MAX_TABLE_SIZE,
                },
            )
        })?,
    };
    Ok(GlobalConfig {
        instance: raw.instance.unwrap_or_else(|| DEFAULT_INSTANCE.to_string()),
        interfaces: raw.interfaces,
        xdp_mode: raw.xdp_mode.unwrap_or_default(),
        egress_interfaces: raw.egress_interfaces.unwrap_or_default(),
        outer_source_v4: raw.outer_source_v4.map(v4_source).transpose()?,
        outer_source_v6: raw.outer_source_v6.map(v6_source).transpose()?,
        outer_ttl: outer_ttl(raw.outer_ttl)?,
        gue_port: raw.gue_port.unwrap_or(DEFAULT_GUE_PORT),
        icmp_rate_limit: size(
            raw.icmp_rate_limit,
            lb_common::DEFAULT_ICMP_RATE,
            (0, MAX_ICMP_RATE_LIMIT),
            "global.icmp_rate_limit",
        )?,
        table_size,
        flow_table_size: size(
            raw.flow_table_size,
            DEFAULT_FLOW_TABLE_SIZE,
            (MIN_FLOW_TABLE_SIZE, MAX_FLOW_TABLE_SIZE),
            "global.flow_table_size",
        )?,
        max_vips: size(
            raw.max_vips,
            DEFAULT_MAX_VIPS,
            (MIN_MAX_VIPS, MAX_MAX_VIPS),
            "global.max_vips",
        )?,
        max_backends: size(
            raw.max_backends,
            DEFAULT_MAX_BACKENDS,
            (MIN_MAX_BACKENDS, MAX_MAX_BACKENDS),
            "global.max_backends",
        )?,
        api_socket: PathBuf::from(raw.api_socket.as_deref().unwrap_or(DEFAULT_API_SOCKET)),
        metrics_address: raw.metrics_address.unwrap_or(DEFAULT_METRICS_ADDRESS),
        bpf_log: raw.bpf_log.unwrap_or_default(),
        hash_seed: raw
            .hash_seed
            .map(|s| {
                u32::try_from(s).map_err(|_| {
                    ConfigError::new(
                        "global.hash_seed",
                        ConfigErrorKind::OutOfRange {
                            value: s,
                            min: 0,
                            max: u64::from(u32::MAX),
                        },
                    )
                })
            })
            .transpose()?,
        flood_threshold: size(
            raw.flood_threshold,
            lb_common::DEFAULT_FLOOD_THRESHOLD,
            (0, u32::MAX),
            "global.flood_threshold",
        )?,
    })
}

/// A u32 setting, or its default; values beyond u32 get the range error
/// validation would give for the setting's documented `(min, max)`.
fn size(
    value: Option<u64>,
    default: u32,
    (min, max): (u32, u32),
    field: &str,
) -> Result<u32, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    u32::try_from(value).map_err(|_| {
        ConfigError::new(
            field,
            ConfigErrorKind::OutOfRange {
                value,
                min: u64::from(min),
                max: u64::from(max),
            },
        )
    })
}

/// The outer TTL, or its default; values beyond a byte get the range error
/// validation gives for 0.
fn outer_ttl(value: Option<u64>) -> Result<u8, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_OUTER_TTL);
    };
    u8::try_from(value).map_err(|_| {
        ConfigError::new(
            "global.outer_ttl",
            ConfigErrorKind::OutOfRange {
                value,
                min: u64::from(MIN_OUTER_TTL),
                max: u64::from(MAX_OUTER_TTL),
            },
        )
    })
}

fn v4_source(address: IpAddr) -> Result<Ipv4Addr, ConfigError> {
    match address {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(ConfigError::new(
            "global.outer_source_v4",
            ConfigErrorKind::OuterSourceFamily {
                address,
                expected: IpFamily::V4,
            },
        )),
    }
}

fn v6_source(address: IpAddr) -> Result<Ipv6Addr, ConfigError> {
    match address {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(_) => Err(ConfigError::new(
            "global.outer_source_v6",
            ConfigErrorKind::OuterSourceFamily {
                address,
                expected: IpFamily::V6,
            },
        )),
    }
}

/// A VIP at `field` (`vip[2]`, or `` for an API body).
pub(crate) fn vip_from_raw(raw: RawVip, field: &str) -> Result<VipConfig, ConfigError> {
    let protocol = raw.protocol.unwrap_or(Protocol::Tcp);
    let endpoint = VipEndpoint {
        address: raw.address,
        port: raw.port,
        protocol,
    };
    let health_check = raw
        .health_check
        .map(|hc| check_from_raw(hc, raw.port, &join(field, "health_check")))
        .transpose()?;
    let timeout_field = join(field, "udp_idle_timeout");
    if protocol == Protocol::Tcp && raw.udp_idle_timeout.is_some() {
        return Err(ConfigError::new(
            timeout_field,
            ConfigErrorKind::UdpIdleTimeoutOnTcpVip,
        ));
    }
    let udp_idle_timeout = duration(
        raw.udp_idle_timeout,
        DEFAULT_UDP_IDLE_TIMEOUT,
        &timeout_field,
    )?;
    let backends = raw
        .backends
        .into_iter()
        .enumerate()
        .map(|(j, b)| {
            let at = join(field, &format!("backend[{j}]"));
            backend_from_raw(b, health_check.as_ref(), raw.port, &at)
        })
        .collect::<Result<_, _>>()?;
    let allow = policy::prefixes_from_raw(&raw.allow, &join(field, "allow"))?;
    let deny = policy::prefixes_from_raw(&raw.deny, &join(field, "deny"))?;
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .map(|r| policy::rate_limit_from_raw(r, &join(field, "rate_limit")))
        .transpose()?;
    let source_rate_limit = raw
        .source_rate_limit
        .as_ref()
        .map(|r| policy::source_rate_limit_from_raw(r, &join(field, "source_rate_limit")))
        .transpose()?;
    Ok(VipConfig {
        name: raw.name.unwrap_or_else(|| endpoint.to_string()),
        address: raw.address,
        port: raw.port,
        protocol,
        hashing: raw.hashing.unwrap_or_default(),
        flow_table: raw.flow_table.unwrap_or(true),
        forwarding: raw.forwarding.unwrap_or_default(),
        gue_port: raw.gue_port,
        ping: raw.ping.unwrap_or(true),
        announce: raw.announce.unwrap_or_default(),
        udp_idle_timeout,
        health_check,
        allow,
        deny,
        rate_limit,
        source_rate_limit,
        backends,
    })
}

/// A backend at `field` of a VIP whose default check is `vip_check` and
/// whose port is `vip_port` (the default check port).
pub(crate) fn backend_from_raw(
    raw: RawBackend,
    vip_check: Option<&HealthCheck>,
    vip_port: u16,
    field: &str,
) -> Result<BackendConfig, ConfigError> {
    let (health_check, health_check_mode) = match raw.health_check {
        None => (vip_check.cloned(), HealthCheckMode::Inherit),
        Some(RawBackendHealthCheck::Disabled) => (None, HealthCheckMode::Disabled),
        Some(RawBackendHealthCheck::Custom(hc)) => {
            let hc = check_from_raw(hc, vip_port, &join(field, "health_check"))?;
            (Some(hc), HealthCheckMode::Custom)
        }
    };
    Ok(BackendConfig {
        address: raw.address,
        weight: raw.weight.unwrap_or(DEFAULT_WEIGHT),
        health_check,
        health_check_mode,
    })
}

fn check_from_raw(
    raw: RawHealthCheck,
    default_port: u16,
    field: &str,
) -> Result<HealthCheck, ConfigError> {
    let kind = match raw.kind.unwrap_or(CheckType::Tcp) {
        CheckType::Http => HealthCheckKind::Http {
            path: raw.path.unwrap_or_else(|| DEFAULT_HTTP_PATH.to_string()),
            expected_status: raw.expected_status.unwrap_or(DEFAULT_EXPECTED_STATUS),
            host: raw.host,
        },
        CheckType::Tcp => {
            let http_only = [
                ("path", raw.path.is_some()),
                ("expected_status", raw.expected_status.is_some()),
                ("host", raw.host.is_some()),
            ];
            if let Some((key, _)) = http_only.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    join(field, key),
                    ConfigErrorKind::HttpFieldOnTcpCheck { field: key },
                ));
            }
            HealthCheckKind::Tcp
        }
    };
    Ok(HealthCheck {
        kind,
        port: raw.port.unwrap_or(default_port),
        interval: duration(raw.interval, DEFAULT_INTERVAL, &join(field, "interval"))?,
        timeout: duration(raw.timeout, DEFAULT_TIMEOUT, &join(field, "timeout"))?,
        rise: raw.rise.unwrap_or(DEFAULT_RISE),
        fall: raw.fall.unwrap_or(DEFAULT_FALL),
    })
}

pub(crate) fn duration(
    text: Option<String>,
    default: Duration,
    field: &str,
) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    humantime::parse_duration(&text).map_err(|e| {
        ConfigError::new(
            field,
            ConfigErrorKind::InvalidDuration {
                value: text.clone(),
                reason: e.to_string(),
            },
        )
    })
}

/// The config-file form of a model: every setting written out, except what
/// the file expresses by leaving it out (a default VIP name, an inherited
/// check), so a dump reads back to an equal model.
impl From<&Config> for RawConfig {
    fn from(c: &Config) -> Self {
        RawConfig {
            global: raw_global(&c.global),
            announce: Some(RawAnnounce {
                enabled: Some(c.announce.enabled),
                table: Some(u64::from(c.announce.table)),
                drain_on_stop: Some(
                    humantime::format_duration(c.announce.drain_on_stop).to_string(),
                ),
            }),
            nat: (c.nat != super::nat::NatConfig::default()).then(|| super::nat::raw_nat(&c.nat)),
            vips: c.vips.iter().map(raw_vip).collect(),
        }
    }
}

fn raw_global(g: &GlobalConfig) -> RawGlobal {
    RawGlobal {
        instance: Some(g.instance.clone()),
        interfaces: g.interfaces.clone(),
        xdp_mode: Some(g.xdp_mode),
        egress_interfaces: Some(g.egress_interfaces.clone()),
        outer_source_v4: g.outer_source_v4.map(IpAddr::V4),
        outer_source_v6: g.outer_source_v6.map(IpAddr::V6),
        outer_ttl: Some(u64::from(g.outer_ttl)),
        gue_port: Some(g.gue_port),
        icmp_rate_limit: Some(u64::from(g.icmp_rate_limit)),
        table_size: Some(u64::from(g.table_size)),
        flow_table_size: Some(u64::from(g.flow_table_size)),
        max_vips: Some(u64::from(g.max_vips)),
        max_backends: Some(u64::from(g.max_backends)),
        api_socket: Some(g.api_socket.to_string_lossy().into_owned()),
        metrics_address: Some(g.metrics_address),
        bpf_log: Some(g.bpf_log),
        hash_seed: g.hash_seed.map(u64::from),
        flood_threshold: Some(u64::from(g.flood_threshold)),
    }
}

fn raw_vip(v: &VipConfig) -> RawVip {
    let default_name = v.endpoint().to_string();
    RawVip {
        name: (v.name != default_name).then(|| v.name.clone()),
        address: v.address,
        port: v.port,
        protocol: Some(v.protocol),
        hashing: Some(v.hashing),
        flow_table: Some(v.flow_table),
        forwarding: Some(v.forwarding),
        gue_port: v.gue_port,
        ping: Some(v.ping),
        announce: Some(v.announce),
        udp_idle_timeout: (v.protocol == Protocol::Udp)
            .then(|| humantime::format_duration(v.udp_idle_timeout).to_string()),
        health_check: v.health_check.as_ref().map(raw_check),
        allow: v.allow.iter().map(ToString::to_string).collect(),
        deny: v.deny.iter().map(ToString::to_string).collect(),
        rate_limit: v.rate_limit.as_ref().map(policy::raw_rate_limit),
        source_rate_limit: v
            .source_rate_limit
            .as_ref()
            .map(policy::raw_source_rate_limit),
        backends: v.backends.iter().map(raw_backend).collect(),
    }
}

fn raw_backend(b: &BackendConfig) -> RawBackend {
    let health_check = match (b.health_check_mode, &b.health_check) {
        (HealthCheckMode::Inherit, _) => None,
        (HealthCheckMode::Disabled, _) | (HealthCheckMode::Custom, None) => {
            Some(RawBackendHealthCheck::Disabled)
        }
        (HealthCheckMode::Custom, Some(hc)) => Some(RawBackendHealthCheck::Custom(raw_check(hc))),
    };
    RawBackend {
        address: b.address,
        weight: Some(b.weight),
        health_check,
    }
}

fn raw_check(hc: &HealthCheck) -> RawHealthCheck {
    let mut raw = RawHealthCheck {
        kind: Some(CheckType::Tcp),
        port: Some(hc.port),
        interval: Some(humantime::format_duration(hc.interval).to_string()),
        timeout: Some(humantime::format_duration(hc.timeout).to_string()),
        rise: Some(hc.rise),
        fall: Some(hc.fall),
        ..RawHealthCheck::default()
    };
    if let HealthCheckKind::Http {
        path,
        expected_status,
        host,
    } = &hc.kind
    {
        raw.kind = Some(CheckType::Http);
        raw.path = Some(path.clone());
        raw.expected_status = Some(*expected_status);
        raw.host.clone_from(host);
    }
    raw
}
