//! The `[nat]` table: full NAT's addresses, ports, timeouts and session
//! capacity (`forwarding = "nat"` VIPs; `lb_common::nat` has the rules).
//!
//! ```toml
//! [nat]
//! sources = ["10.0.0.2", "fd00::2"]   # the balancer's own addresses
//! ports = "1024-65535"
//! tcp_syn = "30s"
//! tcp_established = "15m"
//! tcp_closing = "60s"
//! udp = "60s"
//! table_size = 262144
//! ```

use std::{net::IpAddr, time::Duration};

use lb_common::{NatTimeouts, MAX_NAT_SOURCES};
use serde::{Deserialize, Serialize};

use super::{
    error::{ConfigError, ConfigErrorKind},
    model::{humantime_text, IpFamily},
};

/// `nat.table_size` when not set.
pub const DEFAULT_NAT_TABLE_SIZE: u32 = lb_common::DEFAULT_NAT_TABLE_SIZE;
pub const MIN_NAT_TABLE_SIZE: u32 = 1024;
pub const MAX_NAT_TABLE_SIZE: u32 = 1 << 26;
/// Shortest and longest NAT timeout (the data plane holds seconds in u32;
/// a day is plenty for an idle session).
pub const MIN_NAT_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_NAT_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The validated `[nat]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatConfig {
    /// The balancer's own addresses that `nat` VIPs' packets leave from
    /// (at most `MAX_NAT_SOURCES` per family); the backends' replies come
    /// back to them.
    pub sources: Vec<IpAddr>,
    /// NAT ports handed out, both ends included.
    pub port_min: u16,
    pub port_max: u16,
    #[serde(with = "humantime_text")]
    pub tcp_syn: Duration,
    #[serde(with = "humantime_text")]
    pub tcp_established: Duration,
    #[serde(with = "humantime_text")]
    pub tcp_closing: Duration,
    #[serde(with = "humantime_text")]
    pub udp: Duration,
    /// Entries of each session map (one per session and direction).
    pub table_size: u32,
}

impl Default for NatConfig {
    fn default() -> Self {
        let t = NatTimeouts::DEFAULT;
        Self {
            sources: Vec::new(),
            port_min: lb_common::DEFAULT_NAT_PORT_MIN,
            port_max: lb_common::DEFAULT_NAT_PORT_MAX,
            tcp_syn: Duration::from_secs(t.tcp_syn_s.into()),
            tcp_established: Duration::from_secs(t.tcp_established_s.into()),
            tcp_closing: Duration::from_secs(t.tcp_closing_s.into()),
            udp: Duration::from_secs(t.udp_s.into()),
            table_size: DEFAULT_NAT_TABLE_SIZE,
        }
    }
}

/// The `[nat]` table as the file says it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNat {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<IpAddr>,
    /// "MIN-MAX" (or one port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    /// Humantime text, like the other durations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_syn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_established: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_closing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<String>,
    /// u64 so that out-of-range sizes get the range error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

impl NatConfig {
    /// The NAT addresses of `family`.
    pub fn sources_of(&self, family: IpFamily) -> impl Iterator<Item = IpAddr> + '_ {
        self.sources
            .iter()
            .copied()
            .filter(move |a| IpFamily::of(*a) == family)
    }

    /// What the data plane reads (`GlobalConfig::nat`). The config is
    /// validated: at most `MAX_NAT_SOURCES` per family, a valid range.
    pub fn data_plane(&self) -> lb_common::NatConfig {
        let v4: Vec<_> = self
            .sources
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .take(MAX_NAT_SOURCES)
            .collect();
        let v6: Vec<_> = self
            .sources
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            })
            .take(MAX_NAT_SOURCES)
            .collect();
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        lb_common::NatConfig::new(&v4, &v6, (self.port_min.max(1), self.port_max))
            .unwrap_or_default()
            .with_timeouts(NatTimeouts {
                tcp_syn_s: secs(self.tcp_syn),
                tcp_established_s: secs(self.tcp_established),
                tcp_closing_s: secs(self.tcp_closing),
                udp_s: secs(self.udp),
            })
    }
}

pub(crate) fn nat_from_raw(raw: RawNat) -> Result<NatConfig, ConfigError> {
    let d = NatConfig::default();
    let (port_min, port_max) = match &raw.ports {
        None => (d.port_min, d.port_max),
        Some(text) => parse_ports(text).map_err(|reason| {
            ConfigError::new(
                "nat.ports",
                ConfigErrorKind::InvalidNatPorts {
                    value: text.clone(),
                    reason,
                },
            )
        })?,
    };
    let table_size = match raw.table_size {
        None => d.table_size,
        Some(size) => u32::try_from(size)
            .ok()
            .filter(|s| (MIN_NAT_TABLE_SIZE..=MAX_NAT_TABLE_SIZE).contains(s))
            .ok_or_else(|| {
                ConfigError::new(
                    "nat.table_size",
                    ConfigErrorKind::OutOfRange {
                        value: size,
                        min: MIN_NAT_TABLE_SIZE.into(),
                        max: MAX_NAT_TABLE_SIZE.into(),
                    },
                )
            })?,
    };
    Ok(NatConfig {
        sources: raw.sources,
        port_min,
        port_max,
        tcp_syn: super::lower::duration(raw.tcp_syn, d.tcp_syn, "nat.tcp_syn")?,
        tcp_established: super::lower::duration(
            raw.tcp_established,
            d.tcp_established,
            "nat.tcp_established",
        )?,
        tcp_closing: super::lower::duration(raw.tcp_closing, d.tcp_closing, "nat.tcp_closing")?,
        udp: super::lower::duration(raw.udp, d.udp, "nat.udp")?,
        table_size,
    })
}

/// "MIN-MAX" or "PORT": ports 1 to 65535, MIN <= MAX.
fn parse_ports(text: &str) -> Result<(u16, u16), &'static str> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| "each end must be a port number from 1 to 65535")
    };
    let (min, max) = (port(a)?, port(b)?);
    if min == 0 {
        return Err("port 0 is never used");
    }
    if min > max {
        return Err("the first port must not be above the second");
    }
    Ok((min, max))
}

/// The file form of `n`, for dumps.
pub(crate) fn raw_nat(n: &NatConfig) -> RawNat {
    let text = |d: Duration| Some(humantime::format_duration(d).to_string());
    RawNat {
        sources: n.sources.clone(),
        ports: Some(format!("{}-{}", n.port_min, n.port_max)),
        tcp_syn: text(n.tcp_syn),
        tcp_established: text(n.tcp_established),
        tcp_closing: text(n.tcp_closing),
        udp: text(n.udp),
        table_size: Some(n.table_size.into()),
    }
}

/// The `[nat]` table on its own: the range, the timeouts, at most
/// `MAX_NAT_SOURCES` addresses per family, each once and usable as a
/// source.
pub(crate) fn check_nat(n: &NatConfig) -> Result<(), ConfigError> {
    if n.port_min == 0 || n.port_min > n.port_max {
        let kind = ConfigErrorKind::InvalidNatPorts {
            value: format!("{}-{}", n.port_min, n.port_max),
            reason: "ports run from 1 to 65535, the first not above the second",
        };
        return Err(ConfigError::new("nat.ports", kind));
    }
    for (d, field) in [
        (n.tcp_syn, "nat.tcp_syn"),
        (n.tcp_established, "nat.tcp_established"),
        (n.tcp_closing, "nat.tcp_closing"),
        (n.udp, "nat.udp"),
    ] {
        if !(MIN_NAT_TIMEOUT..=MAX_NAT_TIMEOUT).contains(&d) {
            let kind = ConfigErrorKind::DurationOutOfRange {
                value: d,
                min: MIN_NAT_TIMEOUT,
                max: MAX_NAT_TIMEOUT,
            };
            return Err(ConfigError::new(field, kind));
        }
    }
    if !(MIN_NAT_TABLE_SIZE..=MAX_NAT_TABLE_SIZE).contains(&n.table_size) {
        let kind = ConfigErrorKind::OutOfRange {
            value: n.table_size.into(),
            min: MIN_NAT_TABLE_SIZE.into(),
            max: MAX_NAT_TABLE_SIZE.into(),
        };
        return Err(ConfigError::new("nat.table_size", kind));
    }
    for family in [IpFamily::V4, IpFamily::V6] {
        let count = n.sources_of(family).count();
        if count > MAX_NAT_SOURCES {
            let kind = ConfigErrorKind::TooManyNatSources {
                family,
                count,
                max: MAX_NAT_SOURCES,
            };
            return Err(ConfigError::new("nat.sources", kind));
        }
    }
    for (i, a) in n.sources.iter().enumerate() {
        let field = format!("nat.sources[{i}]");
        super::validate::check_usable(*a, &field)?;
        if n.sources[..i].contains(a) {
            let kind = ConfigErrorKind::DuplicateNatSource { address: *a };
            return Err(ConfigError::new(field, kind));
        }
    }
    Ok(())
}

/// A `nat` VIP needs a NAT address of its own family (its backends are of
/// that family: NAT does not translate between families).
pub(crate) fn check_nat_vip(
    address: IpAddr,
    n: &NatConfig,
    field: &str,
) -> Result<(), ConfigError> {
    let family = IpFamily::of(address);
    if n.sources_of(family).next().is_none() {
        let kind = ConfigErrorKind::MissingNatSource { family };
        return Err(ConfigError::new(
            super::spans::join(field, "forwarding"),
            kind,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[global]
interfaces = [\"eth0\"]

[[vip]]
address = \"10.100.0.1\"
port = 80
forwarding = \"nat\"
[[vip.backend]]
address = \"10.0.0.11\"

[[vip]]
address = \"fd00:100::1\"
port = 80
forwarding = \"nat\"
[[vip.backend]]
address = \"fd00::11\"
";

    fn config(nat: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!("{BASE}\n[nat]\n{nat}"), None)
    }

    fn refused(nat: &str) -> (String, String) {
        match config(nat) {
            Ok(_) => panic!("accepted: {nat}"),
            Err(e) => (e.field.clone(), e.to_string()),
        }
    }

    #[test]
    fn a_full_nat_table_is_read_and_dumped_back() {
        let c = config(
            "sources = [\"10.0.0.2\", \"fd00::2\"]\nports = \"2000-3000\"\ntcp_syn = \"5s\"\n\
             tcp_established = \"1h\"\ntcp_closing = \"20s\"\nudp = \"45s\"\ntable_size = 8192\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let n = &c.nat;
        assert_eq!((n.port_min, n.port_max, n.table_size), (2000, 3000, 8192));
        assert_eq!(n.tcp_syn, Duration::from_secs(5));
        assert_eq!(n.tcp_established, Duration::from_secs(3600));
        assert_eq!(n.tcp_closing, Duration::from_secs(20));
        assert_eq!(n.udp, Duration::from_secs(45));
        assert_eq!(c.vips[0].forwarding.as_str(), "nat");
        let dumped = c.to_toml_string();
        let again = Config::from_toml_str(&dumped, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.nat, c.nat);
    }

    #[test]
    fn a_nat_vip_needs_a_source_of_its_family() {
        let (field, msg) = refused("sources = [\"10.0.0.2\"]\n");
        assert_eq!(field, "vip[1].forwarding");
        assert!(msg.contains("no IPv6 address"), "{msg}");
        let (field, msg) = refused("sources = [\"fd00::2\"]\n");
        assert_eq!(field, "vip[0].forwarding");
        assert!(msg.contains("no IPv4 address"), "{msg}");
        let (field, _) = match Config::from_toml_str(BASE, None) {
            Ok(_) => panic!("nat vips without [nat] accepted"),
            Err(e) => (e.field.clone(), e.to_string()),
        };
        assert_eq!(field, "vip[0].forwarding");
    }

    #[test]
    fn bad_nat_values_are_refused_naming_the_field() {
        let ok = "sources = [\"10.0.0.2\", \"fd00::2\"]\n";
        for (extra, field, words) in [
            ("ports = \"2000-1000\"\n", "nat.ports", "above the second"),
            ("ports = \"0-1000\"\n", "nat.ports", "port 0"),
            ("ports = \"http\"\n", "nat.ports", "port number"),
            ("tcp_syn = \"soon\"\n", "nat.tcp_syn", "not a duration"),
            ("udp = \"0s\"\n", "nat.udp", "outside"),
            (
                "tcp_established = \"2days\"\n",
                "nat.tcp_established",
                "outside",
            ),
            ("table_size = 10\n", "nat.table_size", "outside"),
        ] {
            let (f, msg) = refused(&format!("{ok}{extra}"));
            assert_eq!(f, field, "{extra}");
            assert!(msg.contains(words), "{extra}: {msg}");
        }
        let (f, msg) = refused("sources = [\"10.0.0.2\", \"fd00::2\", \"10.0.0.2\"]\n");
        assert_eq!(f, "nat.sources[2]");
        assert!(msg.contains("twice"), "{msg}");
        let (f, _) = refused("sources = [\"10.0.0.2\", \"fd00::2\", \"224.0.0.1\"]\n");
        assert_eq!(f, "nat.sources[2]");
        let nine: Vec<String> = (1..=9).map(|i| format!("\"10.0.1.{i}\"")).collect();
        let (f, msg) = refused(&format!("sources = [\"fd00::2\", {}]\n", nine.join(", ")));
        assert_eq!(f, "nat.sources");
        assert!(msg.contains("9 IPv4 nat sources exceed the 8"), "{msg}");
    }

    #[test]
    fn ports_parse_with_clear_errors() {
        assert_eq!(parse_ports("1024-65535"), Ok((1024, 65535)));
        assert_eq!(parse_ports(" 2000 - 2001 "), Ok((2000, 2001)));
        assert_eq!(parse_ports("5000"), Ok((5000, 5000)));
        assert!(parse_ports("0-10").is_err());
        assert!(parse_ports("10-9").is_err());
        assert!(parse_ports("1024-70000").is_err());
        assert!(parse_ports("a-b").is_err());
    }

    #[test]
    fn the_data_plane_gets_each_familys_sources_and_the_timeouts() {
        let n = NatConfig {
            sources: vec![
                "10.0.0.1".parse().expect("v4"),
                "fd00::1".parse().expect("v6"),
            ],
            port_min: 2000,
            port_max: 3000,
            tcp_syn: Duration::from_secs(5),
            ..NatConfig::default()
        };
        let d = n.data_plane();
        assert!(d.sources_v4().eq([std::net::Ipv4Addr::new(10, 0, 0, 1)]));
        assert!(d
            .sources_v6()
            .eq(["fd00::1".parse::<std::net::Ipv6Addr>().expect("v6")]));
        assert_eq!(d.port_range(), (2000, 3000));
        assert_eq!(d.timeouts().tcp_syn_s, 5);
        assert_eq!(d.timeouts().tcp_established_s, 900);
        assert!(!NatConfig::default().data_plane().enabled());
    }
}
