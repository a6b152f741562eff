//! A VIP's L4 policy in the config: source ranges (`allow`, `deny`) and
//! new-connection rate limits (`[vip.rate_limit]`, `[vip.source_rate_limit]`),
//! from the file's text to the model and back, with their checks.
//!
//! ```toml
//! [[vip]]
//! allow = ["203.0.113.0/24", "2001:db8::/32"]
//! deny = ["203.0.113.128/25"]
//! [vip.rate_limit]          # the whole VIP
//! per_second = 10000
//! burst = 20000             # default: per_second
//! [vip.source_rate_limit]   # each source prefix
//! per_second = 20
//! prefix_v4 = 32            # default 32: each address
//! prefix_v6 = 64            # default 64: each /64
//! ```

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    error::{ConfigError, ConfigErrorKind},
    spans::join,
};

/// Most new connections per second a limit may say.
pub const MAX_RATE: u32 = 100_000_000;
/// Source prefix length of per-source limits when the config does not say.
pub const DEFAULT_SOURCE_PREFIX_V4: u8 = 32;
pub const DEFAULT_SOURCE_PREFIX_V6: u8 = 64;
/// Prefixes (allow and deny) of one family over all VIPs: the trie's size.
pub const MAX_PREFIXES: usize = lb_common::MAX_POLICY_PREFIXES as usize;

/// An address prefix, `203.0.113.0/24` or `2001:db8::/32`; host bits are
/// zero (checked when parsed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    /// The family's full length (32 or 128).
    pub fn max_len(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// Whether `other` lies inside this prefix (or is it).
    pub fn contains(&self, other: &IpPrefix) -> bool {
        other.len >= self.len
            && other.addr.is_ipv4() == self.addr.is_ipv4()
            && masked(other.addr, self.len) == self.addr
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        self.contains(&IpPrefix {
            addr,
            len: Self::max_len(addr),
        })
    }
}

/// `addr` with the bits past `len` cleared.
pub fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;

    /// `addr/len`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|e| format!("{s:?} is not an address prefix such as 203.0.113.0/24: {e}"))?;
        let max = Self::max_len(addr);
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        };
        let net = masked(addr, len);
        if net != addr {
            return Err(format!(
                "{s:?} has bits set past its prefix length (did you mean {net}/{len}?)"
            ));
        }
        Ok(IpPrefix { addr, len })
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A new-connection rate: a token bucket of `burst` that refills
/// `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// A per-source new-connection rate: each source prefix of `prefix_v4` /
/// `prefix_v6` bits has its own bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRateLimit {
    pub per_second: u32,
    pub burst: u32,
    pub prefix_v4: u8,
    pub prefix_v6: u8,
}

impl SourceRateLimit {
    /// The prefix length that applies to sources of `vip`'s family.
    pub fn prefix_for(&self, vip: IpAddr) -> u8 {
        if vip.is_ipv4() {
            self.prefix_v4
        } else {
            self.prefix_v6
        }
    }
}

/// The `rate_limit` / `source_rate_limit` tables as the file says them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// u64 so that out-of-range values get the range error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Only in `source_rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_v4: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_v6: Option<u64>,
}

fn ranged(
    value: Option<u64>,
    default: u64,
    max: u64,
    min: u64,
    field: &str,
) -> Result<u64, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::new(
            field,
            ConfigErrorKind::OutOfRange { value: v, min, max },
        ));
    }
    Ok(v)
}

fn per_second(raw: &RawRateLimit, field: &str) -> Result<u32, ConfigError> {
    let Some(v) = raw.per_second else {
        return Err(ConfigError::new(
            join(field, "per_second"),
            ConfigErrorKind::MissingRate,
        ));
    };
    let v = ranged(
        Some(v),
        0,
        u64::from(MAX_RATE),
        1,
        &join(field, "per_second"),
    )?;
    Ok(v as u32)
}

/// `[vip.rate_limit]` at `field`.
pub(crate) fn rate_limit_from_raw(
    raw: &RawRateLimit,
    field: &str,
) -> Result<RateLimit, ConfigError> {
    for (key, set) in [("prefix_v4", raw.prefix_v4), ("prefix_v6", raw.prefix_v6)] {
        if set.is_some() {
            return Err(ConfigError::new(
                join(field, key),
                ConfigErrorKind::PrefixOnVipRateLimit { field: key },
            ));
        }
    }
    let per_second = per_second(raw, field)?;
    let burst = ranged(
        raw.burst,
        u64::from(per_second),
        u64::from(MAX_RATE),
        1,
        &join(field, "burst"),
    )?;
    Ok(RateLimit {
        per_second,
        burst: burst as u32,
    })
}

/// `[vip.source_rate_limit]` at `field`.
pub(crate) fn source_rate_limit_from_raw(
    raw: &RawRateLimit,
    field: &str,
) -> Result<SourceRateLimit, ConfigError> {
    let per_second = per_second(raw, field)?;
    let burst = ranged(
        raw.burst,
        u64::from(per_second),
        u64::from(MAX_RATE),
        1,
        &join(field, "burst"),
    )?;
    let v4 = ranged(
        raw.prefix_v4,
        u64::from(DEFAULT_SOURCE_PREFIX_V4),
        32,
        1,
        &join(field, "prefix_v4"),
    )?;
    let v6 = ranged(
        raw.prefix_v6,
        u64::from(DEFAULT_SOURCE_PREFIX_V6),
        128,
        1,
        &join(field, "prefix_v6"),
    )?;
    Ok(SourceRateLimit {
        per_second,
        burst: burst as u32,
        prefix_v4: v4 as u8,
        prefix_v6: v6 as u8,
    })
}

pub(crate) fn raw_rate_limit(r: &RateLimit) -> RawRateLimit {
    RawRateLimit {
        per_second: Some(u64::from(r.per_second)),
        burst: Some(u64::from(r.burst)),
        ..RawRateLimit::default()
    }
}

pub(crate) fn raw_source_rate_limit(r: &SourceRateLimit) -> RawRateLimit {
    RawRateLimit {
        per_second: Some(u64::from(r.per_second)),
        burst: Some(u64::from(r.burst)),
        prefix_v4: Some(u64::from(r.prefix_v4)),
        prefix_v6: Some(u64::from(r.prefix_v6)),
    }
}

/// Prefixes as the file writes them, parsed; an invalid one is reported at
/// `field[i]`.
pub(crate) fn prefixes_from_raw(raw: &[String], field: &str) -> Result<Vec<IpPrefix>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse().map_err(|reason| {
                ConfigError::new(
                    format!("{field}[{i}]"),
                    ConfigErrorKind::InvalidPrefix { reason },
                )
            })
        })
        .collect()
}

/// The same prefix twice in one list is a mistake worth naming.
pub(crate) fn check_prefix_list(list: &[IpPrefix], field: &str) -> Result<(), ConfigError> {
    for (i, p) in list.iter().enumerate() {
        if let Some(first) = list[..i].iter().position(|q| q == p) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                ConfigErrorKind::DuplicatePrefix {
                    prefix: p.to_string(),
                    first: super::error::Place::at(format!("{field}[{first}]")),
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_refuse_host_bits() {
        let p: IpPrefix = "203.0.113.0/24".parse().expect("valid");
        assert_eq!((p.addr, p.len), (IpAddr::from([203, 0, 113, 0]), 24));
        assert_eq!(p.to_string(), "203.0.113.0/24");
        let host: IpPrefix = "192.0.2.7".parse().expect("a host");
        assert_eq!(host.len, 32);
        let v6: IpPrefix = "2001:db8::/32".parse().expect("valid");
        assert_eq!(v6.len, 32);
        let e = "203.0.113.1/24".parse::<IpPrefix>().expect_err("host bits");
        assert!(e.contains("did you mean 203.0.113.0/24"), "{e}");
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("nonsense/8".parse::<IpPrefix>().is_err());
        assert!("::/0".parse::<IpPrefix>().is_ok());
    }

    #[test]
    fn containment() {
        let p = |s: &str| s.parse::<IpPrefix>().expect("valid");
        assert!(p("10.0.0.0/8").contains(&p("10.1.0.0/16")));
        assert!(p("10.0.0.0/8").contains(&p("10.0.0.0/8")));
        assert!(!p("10.1.0.0/16").contains(&p("10.0.0.0/8")));
        assert!(!p("10.0.0.0/8").contains(&p("11.0.0.0/16")));
        assert!(!p("::/0").contains(&p("10.0.0.0/8")), "families differ");
        assert!(p("2001:db8::/32").contains_addr("2001:db8::1".parse().expect("addr")));
    }
}
