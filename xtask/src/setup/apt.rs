//! The Debian packages the tests, the demo and the benchmarks use.

use std::process::Command;

use anyhow::{bail, Result};

use super::{is_root, Outcome};
use crate::{command, paths};

/// Installed when missing by `cargo xtask setup`.
pub const PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "tcpdump",
    "ethtool",
    "bpftool",
    "nftables",
    "iperf3",
    "xdp-tools",
    "netsniff-ng",
    "python3-scapy",
    // The routing daemon of the fleet tests and `demo --fleet` (BGP, BFD).
    "bird2",
    "curl",
    "ca-certificates",
    "build-essential",
    "pkg-config",
    // The Grafana dashboard and alert rules are tested against a real
    // Prometheus (tests/tests/observability.rs); promtool checks the rules.
    "prometheus",
    // `systemd-analyze verify` checks the packaged unit, `man` finds its
    // man pages (tests/tests/package.rs).
    "systemd",
    "man-db",
    // The L7 tier behind xlb in the L4 -> L7 test and `demo --l7`: the
    // tests start their own instances with generated configs.
    "nginx",
];

pub fn ensure() -> Result<Outcome> {
    if paths::find_in_path("dpkg-query").is_none() {
        bail!("dpkg-query not found: setup installs packages with apt and supports Debian/Ubuntu only");
    }
    let missing = missing_packages()?;
    let all = format!("apt packages ({})", PACKAGES.len());
    if missing.is_empty() {
        return Ok(Outcome::AlreadyPresent(all));
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!(
            "missing apt packages: {list}\n\
             installing them needs root; run:\n  \
             sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {list}"
        );
    }
    command::run(Command::new("apt-get").arg("update"))?;
    command::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )?;
    let still_missing = missing_packages()?;
    if !still_missing.is_empty() {
        bail!(
            "apt-get install succeeded but these are still not installed: {}",
            still_missing.join(" ")
        );
    }
    Ok(Outcome::Installed(format!("apt packages: {list}")))
}

fn missing_packages() -> Result<Vec<String>> {
    // Exits 1 when some package is unknown to dpkg; the output still lists the
    // others, and an unlisted package counts as missing.
    let out = command::probe(
        Command::new("dpkg-query")
            .args(["-W", "-f=${Package}\\t${Status}\\n"])
            .args(PACKAGES),
    )?;
    Ok(missing(&String::from_utf8_lossy(&out.stdout), PACKAGES))
}

/// The `wanted` packages that `dpkg-query -W -f='${Package}\t${Status}\n'`
/// output does not show as "install ok installed", in `wanted`'s order.
pub fn missing(dpkg_output: &str, wanted: &[&str]) -> Vec<String> {
    let installed: Vec<&str> = dpkg_output
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, status)| status.trim() == "install ok installed")
        // Multi-arch packages may show as "name:arch".
        .map(|(name, _)| name.split(':').next().unwrap_or(name).trim())
        .collect();
    wanted
        .iter()
        .filter(|p| !installed.contains(p))
        .map(|p| p.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_when_all_installed() {
        let out = "curl\tinstall ok installed\ntcpdump\tinstall ok installed\n";
        assert!(missing(out, &["tcpdump", "curl"]).is_empty());
    }

    #[test]
    fn unlisted_removed_and_half_installed_are_missing() {
        let out = "curl\tinstall ok installed\n\
                   tcpdump\tdeinstall ok config-files\n\
                   ethtool\tinstall ok half-configured\n\
                   libc6:amd64\tinstall ok installed\n";
        assert_eq!(
            missing(out, &["curl", "tcpdump", "ethtool", "bpftool", "libc6"]),
            ["tcpdump", "ethtool", "bpftool"]
        );
    }

    #[test]
    fn empty_output_means_all_missing() {
        assert_eq!(missing("", &["a", "b"]), ["a", "b"]);
    }
}
