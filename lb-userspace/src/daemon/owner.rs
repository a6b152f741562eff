//! The daemon of an instance, found from its pins: the `xlb run` processes
//! that hold the instance's pinned maps open. The kernel lists every open
//! BPF map of a process in /proc/PID/fdinfo (`map_id:`), so this finds the
//! daemon whatever socket it serves, and sees it gone once it has exited
//! (a zombie holds no descriptors).

use std::{collections::BTreeSet, path::Path};

use aya::maps::MapInfo;

use crate::dataplane::attach::InstancePaths;

/// A running `xlb run` of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonProcess {
    pub pid: i32,
    /// Its command line, space-separated.
    pub cmdline: String,
}

/// The `xlb run` processes other than this one that hold any of the maps
/// pinned under `paths`. Other holders (a `bpftool map dump`, a test) do not
/// keep the balancer running and are not listed.
pub fn daemons_of(paths: &InstancePaths) -> Vec<DaemonProcess> {
    let ids = pinned_map_ids(&paths.maps());
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !holds_any(pid, &ids) {
            continue;
        }
        let Some(argv) = cmdline(pid) else { continue };
        if is_xlb_run(&argv) {
            out.push(DaemonProcess {
                pid: pid as i32,
                cmdline: argv.join(" "),
            });
        }
    }
    out.sort_by_key(|d| d.pid);
    out
}

fn pinned_map_ids(dir: &Path) -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| MapInfo::from_pin(e.path()).ok())
        .map(|m| m.id())
        .collect()
}

fn holds_any(pid: u32, ids: &BTreeSet<u32>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        let is_map = std::fs::read_link(fd.path())
            .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-map");
        is_map
            && std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()
            .and_then(|info| map_id(&info))
            .is_some_and(|id| ids.contains(&id))
    })
}

/// The `map_id:` line of a BPF map's fdinfo.
fn map_id(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("map_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// `.../xlb [global options] run ...`.
fn is_xlb_run(argv: &[String]) -> bool {
    let Some(program) = argv.first() else {
        return false;
    };
    Path::new(program).file_name().is_some_and(|n| n == "xlb")
        && argv[1..].iter().any(|a| a == "run")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_id_comes_from_fdinfo() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t2\n\
                    key_size:\t4\nvalue_size:\t8\nmax_entries:\t1\nmap_flags:\t0x0\n\
                    map_extra:\t0x0\nmemlock:\t320\nmap_id:\t1234\nfrozen:\t0\n";
        assert_eq!(map_id(info), Some(1234));
        assert_eq!(map_id("pos:\t0\n"), None);
    }

    #[test]
    fn only_xlb_run_is_a_daemon() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(is_xlb_run(&argv(
            "/usr/local/bin/xlb run --config /etc/xlb.toml"
        )));
        assert!(is_xlb_run(&argv("xlb --log info run --config x")));
        assert!(!is_xlb_run(&argv("xlb down")));
        assert!(!is_xlb_run(&argv(
            "bpftool map dump pinned /sys/fs/bpf/xlb/default/maps/run"
        )));
        assert!(!is_xlb_run(&argv("/usr/bin/xlb-tests run")));
        assert!(!is_xlb_run(&[]));
    }
}
