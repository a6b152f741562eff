//! Which VIP addresses this node should announce, and why: pure functions of
//! the config, the backends' health and the daemon's phase, so that the
//! daemon, `xlb vip list` and the tests agree on one answer.
//!
//! A route is per *address*, while a VIP is (address, port, protocol): an
//! address is announced while at least one of its VIPs asks for it. A VIP
//! asks according to its `announce` mode; with `when-healthy` (the default)
//! it asks while at least one of its backends with a weight above 0 is
//! healthy. That is stricter than the data plane, which fails open (keeps
//! every backend) when all of them fail: a node that cannot reach a VIP's
//! backends should send its clients to the nodes that can.
//!
//! Why an address stays announced for a VIP that no longer asks, when another
//! VIP of the same address still does: withdrawing it would take the healthy
//! service down with the failed one, on every node whose backends of the
//! failed one are down too. Separate addresses keep such services apart.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use crate::config::AnnounceMode;

/// What decides one VIP's wish: its mode and its backends' weights and
/// health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipFacts {
    pub name: String,
    pub address: IpAddr,
    pub mode: AnnounceMode,
    /// (weight, healthy) of every backend.
    pub backends: Vec<(u16, bool)>,
}

/// Whether a VIP asks for its address to be announced (or is announced),
/// and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wish {
    pub announce: bool,
    pub reason: String,
}

/// Where the daemon is in its life, as far as announcing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Started, program not attached yet: nothing is added (routes a
    /// previous run left while its program kept running stay).
    Starting,
    /// Program attached: routes follow the wishes.
    Serving,
    /// A planned stop (`xlb down`): everything is withdrawn.
    Stopping,
}

/// One VIP's wish, from its own mode and backends only.
pub fn vip_wish(mode: AnnounceMode, backends: &[(u16, bool)]) -> Wish {
    let wish = |announce, reason: String| Wish { announce, reason };
    match mode {
        AnnounceMode::Always => wish(true, "announce = \"always\"".into()),
        AnnounceMode::Never => wish(false, "announce = \"never\"".into()),
        AnnounceMode::WhenHealthy => {
            let weighted: Vec<bool> = backends
                .iter()
                .filter(|(w, _)| *w > 0)
                .map(|(_, h)| *h)
                .collect();
            let healthy = weighted.iter().filter(|h| **h).count();
            if backends.is_empty() {
                wish(false, "the vip has no backends".into())
            } else if weighted.is_empty() {
                wish(false, "every backend has weight 0".into())
            } else if healthy == 0 {
                wish(
                    false,
                    format!(
                        "none of its {} backends with a weight above 0 is healthy",
                        weighted.len()
                    ),
                )
            } else {
                wish(
                    true,
                    format!(
                        "{healthy} of {} backends with a weight above 0 healthy",
                        weighted.len()
                    ),
                )
            }
        }
    }
}

/// The addresses to announce in `phase`: those at least one VIP asks for
/// while serving, none otherwise (while starting, the caller adds nothing
/// and removes nothing).
pub fn wanted_addresses(vips: &[VipFacts], phase: Phase) -> BTreeSet<IpAddr> {
    if phase != Phase::Serving {
        return BTreeSet::new();
    }
    vips.iter()
        .filter(|v| vip_wish(v.mode, &v.backends).announce)
        .map(|v| v.address)
        .collect()
}

/// Which VIPs ask for each address (names, in config order), for log lines.
pub fn askers(vips: &[VipFacts]) -> BTreeMap<IpAddr, Vec<&str>> {
    let mut out: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for v in vips {
        let entry = out.entry(v.address).or_default();
        if vip_wish(v.mode, &v.backends).announce {
            entry.push(&v.name);
        }
    }
    out
}

/// How a VIP stands: is its address announced (`installed` holds the routes
/// really in the table), and why, in words for `xlb vip list`.
pub fn vip_state(
    vip: &VipFacts,
    all: &[VipFacts],
    installed: &BTreeSet<IpAddr>,
    phase: Phase,
    last_error: Option<&str>,
) -> Wish {
    let announced = installed.contains(&vip.address);
    let own = vip_wish(vip.mode, &vip.backends);
    let reason = match phase {
        Phase::Starting if announced => {
            "kept from the previous run until the program is attached".to_string()
        }
        Phase::Starting => "waiting for the program to be attached".to_string(),
        Phase::Stopping => "withdrawn for a planned stop (xlb down)".to_string(),
        Phase::Serving if announced == own.announce => own.reason,
        Phase::Serving if announced => {
            let sibling = all
                .iter()
                .filter(|v| v.address == vip.address && v.name != vip.name)
                .find(|v| vip_wish(v.mode, &v.backends).announce)
                .map(|v| v.name.as_str())
                .unwrap_or("another vip");
            format!(
                "the address is announced for vip {sibling} (this vip: {})",
                own.reason
            )
        }
        Phase::Serving if own.announce => match last_error {
            Some(e) => format!("the route could not be added: {e}"),
            None => "the route is not installed yet".to_string(),
        },
        // Not announced, not wanted by this VIP, yet not removed: the
        // removal failed (a sibling asking would have kept it announced).
        Phase::Serving => match last_error {
            Some(e) => format!("{} (withdrawing failed: {e})", own.reason),
            None => own.reason,
        },
    };
    Wish {
        announce: announced,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, address: &str, mode: AnnounceMode, backends: &[(u16, bool)]) -> VipFacts {
        VipFacts {
            name: name.into(),
            address: address.parse().unwrap_or_else(|e| panic!("{e}")),
            mode,
            backends: backends.to_vec(),
        }
    }

    #[test]
    fn when_healthy_needs_a_healthy_backend_with_weight() {
        let m = AnnounceMode::WhenHealthy;
        assert!(vip_wish(m, &[(100, true), (100, false)]).announce);
        assert!(!vip_wish(m, &[]).announce);
        // Fail open in the data plane, withdrawn here.
        let all_down = vip_wish(m, &[(100, false), (50, false)]);
        assert!(!all_down.announce);
        assert_eq!(
            all_down.reason,
            "none of its 2 backends with a weight above 0 is healthy"
        );
        // A healthy but drained backend serves no new connection.
        assert!(!vip_wish(m, &[(0, true), (100, false)]).announce);
        assert_eq!(
            vip_wish(m, &[(0, true), (0, true)]).reason,
            "every backend has weight 0"
        );
        assert_eq!(
            vip_wish(m, &[(0, true), (100, true), (100, false)]).reason,
            "1 of 2 backends with a weight above 0 healthy"
        );
    }

    #[test]
    fn always_and_never_ignore_health() {
        assert!(vip_wish(AnnounceMode::Always, &[]).announce);
        assert!(vip_wish(AnnounceMode::Always, &[(100, false)]).announce);
        assert!(!vip_wish(AnnounceMode::Never, &[(100, true)]).announce);
    }

    #[test]
    fn an_address_is_wanted_while_one_of_its_vips_asks() {
        let vips = [
            facts("web", "10.0.0.1", AnnounceMode::WhenHealthy, &[(1, false)]),
            facts("dns", "10.0.0.1", AnnounceMode::WhenHealthy, &[(1, true)]),
            facts("api", "10.0.0.2", AnnounceMode::WhenHealthy, &[(1, false)]),
            facts("v6", "fd00::1", AnnounceMode::Always, &[]),
            facts("off", "10.0.0.3", AnnounceMode::Never, &[(1, true)]),
        ];
        let wanted = wanted_addresses(&vips, Phase::Serving);
        let want: BTreeSet<IpAddr> = ["10.0.0.1", "fd00::1"]
            .iter()
            .map(|a| a.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(wanted, want);
        assert!(wanted_addresses(&vips, Phase::Starting).is_empty());
        assert!(wanted_addresses(&vips, Phase::Stopping).is_empty());
        let a = askers(&vips);
        assert_eq!(a[&vips[0].address], ["dns"]);
        assert!(a[&vips[2].address].is_empty());
    }

    #[test]
    fn states_say_why() {
        let vips = [
            facts("web", "10.0.0.1", AnnounceMode::WhenHealthy, &[(1, false)]),
            facts("dns", "10.0.0.1", AnnounceMode::WhenHealthy, &[(1, true)]),
        ];
        let installed: BTreeSet<IpAddr> = [vips[0].address].into_iter().collect();
        let web = vip_state(&vips[0], &vips, &installed, Phase::Serving, None);
        assert!(web.announce);
        assert_eq!(
            web.reason,
            "the address is announced for vip dns (this vip: none of its 1 backends with a weight above 0 is healthy)"
        );
        let dns = vip_state(&vips[1], &vips, &installed, Phase::Serving, None);
        assert_eq!(
            (dns.announce, dns.reason.as_str()),
            (true, "1 of 1 backends with a weight above 0 healthy")
        );
        let none = BTreeSet::new();
        let failed = vip_state(&vips[1], &vips, &none, Phase::Serving, Some("EPERM"));
        assert_eq!(
            (failed.announce, failed.reason.as_str()),
            (false, "the route could not be added: EPERM")
        );
        let kept = vip_state(&vips[1], &vips, &installed, Phase::Starting, None);
        assert!(kept.announce, "a hot restart keeps the routes");
        let stop = vip_state(&vips[1], &vips, &none, Phase::Stopping, None);
        assert_eq!(stop.reason, "withdrawn for a planned stop (xlb down)");
    }
}
