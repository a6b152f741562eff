//! The kernel settings the data plane relies on, for the interfaces it is
//! attached to: checked at startup, and set where xlb itself is the reason
//! they are needed.
//!
//! A packet toward a backend whose MAC the FIB does not know yet (verdict
//! `fib_no_neigh`) is handed to the kernel already encapsulated, with the
//! configured outer source (one of this host's own addresses) as its source;
//! the kernel forwards it and resolves the neighbour on the way. IPv4 drops a
//! forwarded packet whose source is a local address ("martian source") unless
//! the ingress interface accepts local sources (`accept_local`); strict
//! reverse-path filtering (`rp_filter` 1) still drops it unless that address
//! is on the ingress interface itself. IPv6 forwards such a packet as it is.
//! Both families need forwarding on, or the FIB refuses to route at all.
//! (All of this was measured on veth in network namespaces, kernel 6.18.)

use std::{fmt, net::Ipv4Addr, path::PathBuf};

use thiserror::Error;

/// `/proc/sys/net` of the caller's network namespace, or a stand-in tree.
#[derive(Clone, Debug)]
pub struct Sysctls {
    root: PathBuf,
}

#[derive(Debug, Error)]
pub enum SysctlError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds {value:?}, not a number", path.display())]
    NotANumber { path: PathBuf, value: String },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Sysctls {
    /// The settings of the network namespace this process runs in.
    pub fn host() -> Self {
        Self::at("/proc/sys/net")
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `net.<family>.conf.<interface>.<key>` (`interface` may be `all`).
    fn path(&self, family: Family, interface: &str, key: &str) -> PathBuf {
        self.root
            .join(family.as_str())
            .join("conf")
            .join(interface)
            .join(key)
    }

    fn read(&self, family: Family, interface: &str, key: &str) -> Result<i64, SysctlError> {
        let path = self.path(family, interface, key);
        let text = std::fs::read_to_string(&path).map_err(|source| SysctlError::Read {
            path: path.clone(),
            source,
        })?;
        text.trim().parse().map_err(|_| SysctlError::NotANumber {
            value: text.trim().to_string(),
            path,
        })
    }

    fn write(
        &self,
        family: Family,
        interface: &str,
        key: &str,
        value: i64,
    ) -> Result<(), SysctlError> {
        let path = self.path(family, interface, key);
        std::fs::write(&path, format!("{value}\n"))
            .map_err(|source| SysctlError::Write { path, source })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// What the startup check found or did, one per interface and setting.
#[derive(Debug)]
pub enum Finding {
    /// `accept_local` was off and xlb turned it on.
    AcceptLocalSet { interface: String },
    /// `accept_local` is off and could not be turned on.
    AcceptLocalUnset {
        interface: String,
        error: SysctlError,
    },
    /// Strict reverse-path filtering drops the handed-over packets, whose
    /// source is not an address of this interface.
    StrictRpFilter { interface: String, source: Ipv4Addr },
    /// Forwarding is off where the FIB lookup or the kernel needs it.
    ForwardingOff { family: Family, interface: String },
    /// A setting could not be read.
    Unreadable { error: SysctlError },
}

impl Finding {
    /// Whether the data plane misbehaves until an operator acts.
    pub fn is_problem(&self) -> bool {
        !matches!(self, Finding::AcceptLocalSet { .. })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::AcceptLocalSet { interface } => write!(
                f,
                "set net.ipv4.conf.{interface}.accept_local=1: a packet toward a backend whose \
                 MAC is not yet known is handed to the kernel with outer_source_v4 as its \
                 source, and the kernel forwards it only from an interface that accepts local \
                 sources (it stays set after xlb exits)"
            ),
            Finding::AcceptLocalUnset { interface, error } => write!(
                f,
                "net.ipv4.conf.{interface}.accept_local is 0 and could not be set ({}): the \
                 kernel drops the first packets toward a backend whose MAC is not yet known as \
                 martian (counted as fib_no_neigh); set it with `sysctl -w \
                 net.ipv4.conf.{interface}.accept_local=1`",
                crate::dataplane::attach::error_chain(error)
            ),
            Finding::StrictRpFilter { interface, source } => write!(
                f,
                "strict rp_filter on {interface} (net.ipv4.conf.{{all,{interface}}}.rp_filter, the \
                 larger counts) and outer_source_v4 {source} is not an address of {interface}: \
                 the kernel drops the first packets toward a backend whose MAC is not yet known \
                 (counted as fib_no_neigh); use loose mode (2), or an outer source on {interface}"
            ),
            Finding::ForwardingOff { family, interface } => {
                let fam = family.as_str();
                write!(
                    f,
                    "net.{fam}.conf.{interface}.forwarding is 0: the FIB refuses to route VIP \
                     traffic to {fam} backends; enable it with `sysctl -w \
                     net.{fam}.conf.{interface}.forwarding=1`"
                )
            }
            Finding::Unreadable { error } => write!(
                f,
                "cannot check a kernel setting the data plane needs: {}",
                crate::dataplane::attach::error_chain(error)
            ),
        }
    }
}

/// What xlb checks and sets for the interfaces it attaches to.
pub struct Requirements<'a> {
    pub interfaces: &'a [String],
    /// `global.outer_source_v4`: IPv4 backends are served.
    pub outer_source_v4: Option<Ipv4Addr>,
    /// `global.outer_source_v6` is set: IPv6 backends are served.
    pub v6: bool,
}

/// Checks (and, for `accept_local`, sets) what the data plane needs on each
/// of `req.interfaces`; `addresses_of` lists an interface's IPv4 addresses.
pub fn prepare(
    sysctls: &Sysctls,
    req: &Requirements<'_>,
    addresses_of: impl Fn(&str) -> Vec<Ipv4Addr>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut note = |r: Result<Option<Finding>, SysctlError>| match r {
        Ok(Some(f)) => found.push(f),
        Ok(None) => {}
        Err(error) => found.push(Finding::Unreadable { error }),
    };
    for interface in req.interfaces {
        if let Some(source) = req.outer_source_v4 {
            note(forwarding(sysctls, Family::V4, interface));
            note(accept_local(sysctls, interface));
            note(rp_filter(
                sysctls,
                interface,
                source,
                &addresses_of(interface),
            ));
        }
        if req.v6 {
            note(forwarding(sysctls, Family::V6, interface));
        }
    }
    if req.v6 && !req.interfaces.is_empty() {
        // ip6_forward() reads the `all` switch, whatever the interface's.
        note(forwarding(sysctls, Family::V6, "all"));
    }
    found
}

fn forwarding(
    sysctls: &Sysctls,
    family: Family,
    interface: &str,
) -> Result<Option<Finding>, SysctlError> {
    Ok(
        (sysctls.read(family, interface, "forwarding")? == 0).then(|| Finding::ForwardingOff {
            family,
            interface: interface.to_string(),
        }),
    )
}

/// The kernel accepts local sources on an interface if its own or the `all`
/// setting says so; xlb sets the interface's own.
fn accept_local(sysctls: &Sysctls, interface: &str) -> Result<Option<Finding>, SysctlError> {
    let all = sysctls.read(Family::V4, "all", "accept_local")?;
    let own = sysctls.read(Family::V4, interface, "accept_local")?;
    if all != 0 || own != 0 {
        return Ok(None);
    }
    let interface = interface.to_string();
    Ok(Some(
        match sysctls.write(Family::V4, &interface, "accept_local", 1) {
            Ok(()) => Finding::AcceptLocalSet { interface },
            Err(error) => Finding::AcceptLocalUnset { interface, error },
        },
    ))
}

fn rp_filter(
    sysctls: &Sysctls,
    interface: &str,
    source: Ipv4Addr,
    addresses: &[Ipv4Addr],
) -> Result<Option<Finding>, SysctlError> {
    let all = sysctls.read(Family::V4, "all", "rp_filter")?;
    let own = sysctls.read(Family::V4, interface, "rp_filter")?;
    Ok(
        strict_rp_filter_drops(all, own, addresses.contains(&source)).then(|| {
            Finding::StrictRpFilter {
                interface: interface.to_string(),
                source,
            }
        }),
    )
}

/// Whether reverse-path filtering drops a packet arriving on an interface
/// with a local source: the larger of the `all` and the interface's
/// `rp_filter` counts; strict mode (1) accepts a local source only when the
/// address is on the ingress interface, loose mode (2) and 0 accept it.
pub fn strict_rp_filter_drops(all: i64, interface: i64, source_on_interface: bool) -> bool {
    all.max(interface) == 1 && !source_on_interface
}

/// The IPv4 addresses of `interface` on this host.
pub fn ipv4_addresses(interface: &str) -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.interface_name == interface)
        .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in `/proc/sys/net` with the given `(family, interface, key,
    /// value)` settings.
    fn tree(settings: &[(Family, &str, &str, i64)]) -> (tempfile::TempDir, Sysctls) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let sysctls = Sysctls::at(dir.path());
        for (family, interface, key, value) in settings {
            let path = sysctls.path(*family, interface, key);
            let parent = path.parent().unwrap_or(std::path::Path::new("/"));
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, format!("{value}\n")).unwrap_or_else(|e| panic!("{e}"));
        }
        (dir, sysctls)
    }

    fn host(
        accept_local: i64,
        rp_filter: (i64, i64),
        fwd: i64,
    ) -> Vec<(Family, &'static str, &'static str, i64)> {
        vec![
            (Family::V4, "all", "accept_local", 0),
            (Family::V4, "eth0", "accept_local", accept_local),
            (Family::V4, "all", "rp_filter", rp_filter.0),
            (Family::V4, "eth0", "rp_filter", rp_filter.1),
            (Family::V4, "eth0", "forwarding", fwd),
            (Family::V6, "eth0", "forwarding", fwd),
            (Family::V6, "all", "forwarding", fwd),
        ]
    }

    const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn run(sysctls: &Sysctls, v4: bool, v6: bool, on_interface: bool) -> Vec<Finding> {
        let interfaces = vec!["eth0".to_string()];
        prepare(
            sysctls,
            &Requirements {
                interfaces: &interfaces,
                outer_source_v4: v4.then_some(SOURCE),
                v6,
            },
            |_| if on_interface { vec![SOURCE] } else { vec![] },
        )
    }

    #[test]
    fn accept_local_is_set_on_the_attached_interface_and_said_so() {
        let (_dir, sysctls) = tree(&host(0, (0, 0), 1));
        let found = run(&sysctls, true, true, true);
        assert!(
            matches!(found.as_slice(), [Finding::AcceptLocalSet { interface }] if interface == "eth0"),
            "{found:?}"
        );
        assert!(!found[0].is_problem());
        assert!(found[0].to_string().contains("accept_local=1"));
        assert_eq!(
            sysctls.read(Family::V4, "eth0", "accept_local").ok(),
            Some(1)
        );
        assert_eq!(
            sysctls.read(Family::V4, "all", "accept_local").ok(),
            Some(0)
        );
        // Already set: nothing to do or say.
        assert!(run(&sysctls, true, true, true).is_empty());
    }

    #[test]
    fn ipv6_alone_needs_no_accept_local() {
        let (_dir, sysctls) = tree(&host(0, (1, 1), 1));
        assert!(run(&sysctls, false, true, false).is_empty());
        assert_eq!(
            sysctls.read(Family::V4, "eth0", "accept_local").ok(),
            Some(0)
        );
    }

    #[test]
    fn strict_rp_filter_is_reported_unless_the_source_is_on_the_interface() {
        assert!(strict_rp_filter_drops(1, 0, false));
        assert!(strict_rp_filter_drops(0, 1, false));
        assert!(!strict_rp_filter_drops(1, 0, true));
        assert!(
            !strict_rp_filter_drops(2, 1, false),
            "loose wins: the larger counts"
        );
        assert!(!strict_rp_filter_drops(0, 0, false));

        let (_dir, sysctls) = tree(&host(1, (1, 0), 1));
        let found = run(&sysctls, true, false, false);
        assert!(
            matches!(found.as_slice(), [Finding::StrictRpFilter { interface, source }]
                if interface == "eth0" && *source == SOURCE),
            "{found:?}"
        );
        assert!(found[0].is_problem());
        assert!(run(&sysctls, true, false, true).is_empty());
    }

    #[test]
    fn forwarding_off_is_reported_per_family() {
        let (_dir, sysctls) = tree(&host(1, (0, 0), 0));
        let found = run(&sysctls, true, true, true);
        let off: Vec<(Family, &str)> = found
            .iter()
            .filter_map(|f| match f {
                Finding::ForwardingOff { family, interface } => Some((*family, interface.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            off,
            [
                (Family::V4, "eth0"),
                (Family::V6, "eth0"),
                (Family::V6, "all")
            ]
        );
        assert!(found[0]
            .to_string()
            .contains("net.ipv4.conf.eth0.forwarding=1"));
    }

    #[test]
    fn an_unreadable_setting_is_a_problem_naming_its_path() {
        let (_dir, sysctls) = tree(&host(0, (0, 0), 1));
        let path = sysctls.path(Family::V4, "eth0", "rp_filter");
        std::fs::write(&path, "strict\n").unwrap_or_else(|e| panic!("{e}"));
        let found = run(&sysctls, true, false, true);
        assert!(
            matches!(
                found.as_slice(),
                [Finding::AcceptLocalSet { .. }, Finding::Unreadable { .. }]
            ),
            "{found:?}"
        );
        let text = found[1].to_string();
        assert!(
            text.contains("eth0/rp_filter") && text.contains("\"strict\""),
            "{text}"
        );
    }
}
