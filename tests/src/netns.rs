//! Named network namespaces that are deleted by name on drop, also when the
//! test panics, and a guard that moves the current thread into one and back.
//!
//! Every name is `xlb-<tag>-<pid>[-<role>]` ([`unique_name`]), `pid` being
//! the creating process: that is how [`crate::leftovers`] tells what a
//! crashed run left behind from what a running one uses.

use std::{fs::File, os::fd::AsFd};

use nix::sched::{setns, CloneFlags};

use crate::{
    command::{error_chain, output, run, try_run, CommandError},
    leftovers,
};

/// A network namespace created by a test, deleted when dropped.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `name` (`xlb-<tag>-<pid>[-<role>]` with this process's pid)
    /// and brings its loopback up. The first namespace a process creates
    /// removes the leftovers of crashed runs first ([`leftovers::remove_stale`]).
    /// A namespace of the very same name carries this process's pid: it was
    /// left by an earlier process that had the same pid, or leaked by this
    /// one, and is replaced.
    pub fn create(name: &str) -> Self {
        assert_eq!(
            leftovers::owner_pid(name),
            Some(std::process::id()),
            "namespace {name} must be named xlb-<tag>-<pid>[-<role>] with this process's pid \
             (netns::unique_name)"
        );
        assert!(name.len() <= 40, "namespace name {name} too long");
        claim(name);
        leftovers::remove_stale_once();
        if std::path::Path::new(NETNS_DIR).join(name).exists() {
            try_run("ip", &["netns", "del", name]);
        }
        run("ip", &["netns", "add", name]);
        let ns = Self {
            name: name.to_string(),
        };
        ns.ip("link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`; panics when it fails.
    pub fn ip(&self, args: &str) -> String {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend(args.split_whitespace());
        run("ip", &v)
    }

    /// Runs `program args...` inside the namespace (`ip netns exec`, which
    /// also gives it the namespace's own /sys) and returns its standard
    /// output, or an error with the command line and its stderr.
    pub fn try_exec(&self, program: &str, args: &[&str]) -> Result<String, CommandError> {
        let mut v = vec!["netns", "exec", self.name.as_str(), program];
        v.extend_from_slice(args);
        output("ip", &v)
    }

    /// Runs a command line (split on whitespace) inside the namespace, like
    /// [`try_exec`](Self::try_exec); panics when it fails.
    pub fn exec(&self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let program = words.next().unwrap_or_else(|| panic!("empty command line"));
        let args: Vec<&str> = words.collect();
        self.try_exec(program, &args)
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)))
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key_value: &str) {
        self.exec(&format!("sysctl -qw {key_value}"));
    }

    /// Interface index of `dev` inside the namespace.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let out = self.exec(&format!("cat /sys/class/net/{dev}/ifindex"));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("ifindex of {dev}: {e}: {out:?}"))
    }

    /// MAC address of `dev` inside the namespace.
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let out = self.exec(&format!("cat /sys/class/net/{dev}/address"));
        parse_mac(out.trim())
    }

    /// Moves the calling thread into the namespace until the guard drops.
    /// Sockets created meanwhile belong to the namespace for their lifetime.
    pub fn enter(&self) -> Entered {
        enter_by_name(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if !try_run("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: could not delete network namespace {}", self.name);
        }
        release(&self.name);
    }
}

/// Names of this process's namespaces that exist now.
static IN_USE: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Marks `name` in use by this process, or panics if a live [`NetNs`] of
/// this process already has it: the tests of one binary run in parallel,
/// and the second would replace the first's namespace (and its drop would
/// delete the other's) under a running test — a failure that shows only
/// when the two overlap. Two tests with the same tag fail here at once.
fn claim(name: &str) {
    let mut live = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        live.insert(name.to_string()),
        "network namespace {name} is already used by another test of this process: \
         give each test its own tag"
    );
}

fn release(name: &str) {
    IN_USE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
}

/// Moves the calling thread into the named namespace until the guard drops.
pub fn enter_by_name(name: &str) -> Entered {
    let original =
        File::open("/proc/thread-self/ns/net").unwrap_or_else(|e| panic!("open own netns: {e}"));
    let target = File::open(format!("{NETNS_DIR}/{name}"))
        .unwrap_or_else(|e| panic!("open netns {name}: {e}"));
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns into {name}: {e}"));
    Entered { original }
}

/// The calling thread is inside a namespace; dropping returns it.
pub struct Entered {
    original: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!("warning: could not return to the original network namespace: {e}");
        }
    }
}

pub fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    assert_eq!(parts.len(), 6, "bad MAC {s:?}");
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16).unwrap_or_else(|e| panic!("bad MAC {s:?}: {e}"));
    }
    mac
}

/// Where `ip netns` keeps the named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// `xlb-<tag>-<pid>`: a namespace name unique to this process and `tag`
/// (which must not contain `-`); `-<role>` may follow.
pub fn unique_name(tag: &str) -> String {
    assert!(
        !tag.is_empty() && !tag.contains('-'),
        "namespace tag {tag:?} must be non-empty and without '-'"
    );
    format!("xlb-{tag}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    /// A name is refused while it is in use and free again once released.
    #[test]
    fn a_name_in_use_cannot_be_claimed_twice() {
        let name = super::unique_name("claimtwice");
        super::claim(&name);
        let again = std::panic::catch_unwind(|| super::claim(&name));
        assert!(again.is_err(), "a second claim of {name} must panic");
        super::release(&name);
        super::claim(&name);
        super::release(&name);
    }
}
