//! A VIP's policy as the reconciler installs it: the source-trie entries
//! (normalized so that one longest-prefix lookup answers "deny wins") and
//! the policy record, desired and installed.

use std::{collections::BTreeMap, net::IpAddr};

use lb_common::{Gcra, VipPolicy, PREFIX_ALLOW, PREFIX_DENY};

use crate::config::{IpPrefix, RateLimit, SourceRateLimit};

/// The trie entries of one VIP: (address, prefix length) -> `PREFIX_ALLOW`
/// or `PREFIX_DENY`.
pub type Prefixes = BTreeMap<(IpAddr, u8), u32>;

/// What one VIP's policy should be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredPolicy {
    pub prefixes: Prefixes,
    /// The VIP has an allow list (unlisted sources are refused), even if
    /// every allow prefix lies inside a deny prefix.
    pub allow_list: bool,
    pub vip_rate: Option<Gcra>,
    /// The per-source rate and the source prefix length (of the VIP's family).
    pub source_rate: Option<(Gcra, u8)>,
}

impl DesiredPolicy {
    /// The policy of a VIP at `vip` with these settings. Deny prefixes are
    /// installed as they are; an allow prefix inside a deny prefix (or equal
    /// to one) is left out: the longest match of any address it holds would
    /// otherwise be the allow prefix, and deny must win. An allow prefix
    /// around a deny prefix stays: the longer deny prefix wins inside it.
    pub fn new(
        vip: IpAddr,
        allow: &[IpPrefix],
        deny: &[IpPrefix],
        rate_limit: Option<&RateLimit>,
        source_rate_limit: Option<&SourceRateLimit>,
    ) -> Self {
        let mut prefixes = Prefixes::new();
        for d in deny {
            prefixes.insert((d.addr, d.len), PREFIX_DENY);
        }
        for a in allow {
            if !deny.iter().any(|d| d.contains(a)) {
                prefixes.insert((a.addr, a.len), PREFIX_ALLOW);
            }
        }
        Self {
            prefixes,
            allow_list: !allow.is_empty(),
            vip_rate: rate_limit.map(|r| Gcra::new(r.per_second, r.burst)),
            source_rate: source_rate_limit
                .map(|r| (Gcra::new(r.per_second, r.burst), r.prefix_for(vip))),
        }
    }

    /// The `XLB_POLICY` record.
    pub fn record(&self) -> VipPolicy {
        let mut p = VipPolicy::NONE.with_prefixes(!self.prefixes.is_empty(), self.allow_list);
        if let Some(r) = self.vip_rate {
            p = p.with_vip_rate(r);
        }
        if let Some((r, len)) = self.source_rate {
            p = p.with_source_rate(r, len);
        }
        p
    }
}

/// One vip id's policy as the maps hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InstalledPolicy {
    pub prefixes: Prefixes,
    pub record: VipPolicy,
}

impl Default for InstalledPolicy {
    fn default() -> Self {
        Self {
            prefixes: Prefixes::new(),
            record: VipPolicy::NONE,
        }
    }
}

impl InstalledPolicy {
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.record == VipPolicy::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().expect("valid prefix")
    }

    #[test]
    fn allow_prefixes_inside_deny_prefixes_are_left_out() {
        let vip = IpAddr::from([10, 0, 0, 1]);
        let d = DesiredPolicy::new(
            vip,
            &[p("10.0.0.0/8"), p("192.0.2.0/25"), p("198.51.100.0/24")],
            &[p("10.1.0.0/16"), p("192.0.2.0/24"), p("198.51.100.0/24")],
            None,
            None,
        );
        let want: Prefixes = [
            ((p("10.0.0.0/8").addr, 8), PREFIX_ALLOW),
            ((p("10.1.0.0/16").addr, 16), PREFIX_DENY),
            ((p("192.0.2.0/24").addr, 24), PREFIX_DENY),
            ((p("198.51.100.0/24").addr, 24), PREFIX_DENY),
        ]
        .into_iter()
        .collect();
        assert_eq!(d.prefixes, want);
        assert!(d.allow_list);
        let r = d.record();
        assert!(r.has_prefixes() && r.has_allow_list());
        assert!(!r.limits_vip() && !r.limits_sources());
    }

    #[test]
    fn rates_become_buckets() {
        let vip = IpAddr::from([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let d = DesiredPolicy::new(
            vip,
            &[],
            &[],
            Some(&RateLimit {
                per_second: 100,
                burst: 10,
            }),
            Some(&SourceRateLimit {
                per_second: 5,
                burst: 5,
                prefix_v4: 24,
                prefix_v6: 64,
            }),
        );
        let r = d.record();
        assert!(!r.has_prefixes());
        assert_eq!(r.vip_rate, Gcra::new(100, 10));
        assert_eq!(r.source_rate, Gcra::new(5, 5));
        assert_eq!(r.source_prefix, 64, "the VIP's family's length");
        assert_eq!(
            DesiredPolicy::default().record(),
            VipPolicy::NONE,
            "no policy is the all-zero record"
        );
    }
}
