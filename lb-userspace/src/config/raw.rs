//! The config as the file (or an API body) says it: optional fields stay
//! `None`, nothing is checked beyond types. Deserialized from TOML or JSON,
//! serialized for `xlb config dump`. Field names are the file's keys.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use serde::{
    de::{value::MapAccessDeserializer, MapAccess, Unexpected, Visitor},
    Deserialize, Deserializer, Serialize, Serializer,
};

use super::{
    model::{AnnounceMode, BpfLogLevel, ForwardingMode, Hashing, Protocol, XdpMode},
    policy::RawRateLimit,
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub global: RawGlobal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<RawAnnounce>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<super::nat::RawNat>,
    #[serde(default, rename = "vip", skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<RawVip>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub interfaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<XdpMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_interfaces: Option<Vec<String>>,
    /// An `IpAddr`, so that an IPv6 address here gets a clear family error
    /// rather than a parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outer_source_v4: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outer_source_v6: Option<IpAddr>,
    /// u64 so that out-of-range values get the range error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outer_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    /// u64 so that out-of-range values get the range error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_rate_limit: Option<u64>,
    /// u64 so that out-of-range sizes get the range error, not a type error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_table_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vips: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backends: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_socket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_log: Option<BpfLogLevel>,
    /// u64 so that out-of-range seeds get the range error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood_threshold: Option<u64>,
}

/// The `[announce]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnounce {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// u64 so that out-of-range tables get the range error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u64>,
    /// Humantime text, like the health check durations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_on_stop: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: IpAddr,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashing: Option<Hashing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_table: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<ForwardingMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<bool>,
    /// Humantime text, parsed during conversion (UDP VIPs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_idle_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
    /// Source prefixes, parsed during conversion (`config::policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_rate_limit: Option<RawRateLimit>,
    #[serde(default, rename = "backend", skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<RawBackend>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawBackendHealthCheck>,
}

/// A backend's `health_check`: `false`, or a check table of its own.
/// (`true` is refused: it would read as "enable" without saying what.)
#[derive(Clone, Debug, PartialEq)]
pub enum RawBackendHealthCheck {
    Disabled,
    Custom(RawHealthCheck),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CheckType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Humantime text; parsed during conversion so a bad value gets its own
    /// error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
}

/// The `kind` key of a health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    Tcp,
    Http,
}

impl Serialize for RawBackendHealthCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RawBackendHealthCheck::Disabled => serializer.serialize_bool(false),
            RawBackendHealthCheck::Custom(check) => check.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RawBackendHealthCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BackendCheckVisitor)
    }
}

struct BackendCheckVisitor;

impl<'de> Visitor<'de> for BackendCheckVisitor {
    type Value = RawBackendHealthCheck;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`false` or a health check table")
    }

    fn visit_bool<E: serde::de::Error>(self, enabled: bool) -> Result<Self::Value, E> {
        if enabled {
            Err(E::invalid_value(Unexpected::Bool(true), &self))
        } else {
            Ok(RawBackendHealthCheck::Disabled)
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        RawHealthCheck::deserialize(MapAccessDeserializer::new(map))
            .map(RawBackendHealthCheck::Custom)
    }
}
