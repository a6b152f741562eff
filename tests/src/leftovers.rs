//! What crashed runs leave behind, and the one place that removes it, for
//! tests and benchmarks alike.
//!
//! Every network namespace a test or benchmark creates is named
//! `xlb-<tag>-<pid>[-<role>]` (`netns::unique_name`), `pid` being the
//! process that created it; the bpffs pin directories of the daemons and
//! decapsulators they run are named after those namespaces (`decap-`
//! prefixed for the latter). Veth pairs and bridges live inside the
//! namespaces and go with them. A leftover is a namespace or pin directory
//! whose process is gone: [`remove_stale`] deletes exactly those, never
//! anything of a process that is still running (another test binary, a
//! benchmark, or anyone else's run on the same machine). Every process runs
//! it before its first namespace, so a leftover lasts until the next run
//! (one whose pid a running process reuses waits until that process ends;
//! a namespace of this process's own name is replaced on creation).

use std::{path::Path, sync::Once};

use lb_userspace::dataplane::attach::{remove_instance, InstancePaths};

use crate::{command::try_run, netns::NETNS_DIR};

/// Where xlb pins each instance's maps and links.
const PIN_ROOT: &str = "/sys/fs/bpf/xlb";
/// Prefix of a backend decapsulator's pin directory (then its namespace).
const DECAP_PIN_PREFIX: &str = "decap-";

/// The pid in `xlb-<tag>-<pid>[-<role>]`, or `None` when `name` is not of
/// that form (such names are never removed).
pub fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.split('-');
    let (Some("xlb"), Some(tag), Some(pid)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if tag.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `name` belongs to a process that no longer runs.
fn is_stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Deletes every `xlb-<tag>-<pid>...` namespace and pin directory whose
/// process is gone, saying so on stderr.
pub fn remove_stale() {
    for name in entries(NETNS_DIR) {
        if is_stale(&name) {
            eprintln!("removing network namespace {name}, left by a run that is gone");
            if !try_run("ip", &["netns", "del", &name]) {
                eprintln!("warning: could not delete network namespace {name}");
            }
        }
    }
    for name in entries(PIN_ROOT) {
        if is_stale(name.strip_prefix(DECAP_PIN_PREFIX).unwrap_or(&name)) {
            eprintln!("removing pins {PIN_ROOT}/{name}, left by a run that is gone");
            let paths = InstancePaths {
                root: Path::new(PIN_ROOT).join(&name),
            };
            if let Err(e) = remove_instance(&paths) {
                eprintln!("warning: removing pins {PIN_ROOT}/{name}: {e}");
            }
        }
    }
}

/// [`remove_stale`], once per process (before its first namespace).
pub fn remove_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(remove_stale);
}

/// The names in `dir` (none when it does not exist).
fn entries(dir: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_the_pid_after_the_tag() {
        assert_eq!(owner_pid("xlb-bench-4242"), Some(4242));
        assert_eq!(owner_pid("xlb-e2eb-17-gen"), Some(17));
        assert_eq!(owner_pid("xlb-metric-99-b0"), Some(99));
        assert_eq!(
            owner_pid(&crate::netns::unique_name("t")),
            Some(std::process::id())
        );
        for foreign in [
            "xlb-demo-lb",
            "xlb-metric12345-lb",
            "xlb-start12345",
            "xlb--12",
            "xlb-tag-",
            "xlb-tag-+12",
            "xlbx-tag-12",
            "other-tag-12",
            "xlb",
        ] {
            assert_eq!(owner_pid(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn only_names_of_gone_processes_are_stale() {
        let me = std::process::id();
        assert!(!is_stale(&format!("xlb-t-{me}")));
        assert!(!is_stale(&format!("xlb-t-{me}-lb")));
        // Above the kernel's pid_max limit (2^22): never a running process.
        assert!(is_stale("xlb-t-4194305"));
        assert!(is_stale("xlb-t-4194305-sink"));
        assert!(!is_stale("xlb-demo-lb"));
    }
}
