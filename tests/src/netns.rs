//! Named network namespaces (always `xlb`-prefixed) that are deleted by name on
//! drop, also when the test panics, and a guard that moves the current thread
//! into one and back.

use std::{fs::File, os::fd::AsFd};

use nix::sched::{setns, CloneFlags};

use crate::command::{run, try_run};

/// A network namespace created by a test, deleted when dropped.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `name` (which must start with `xlb`), replacing a leftover of the
    /// same name from a crashed earlier run, and brings its loopback up.
    pub fn create(name: &str) -> Self {
        assert!(
            name.starts_with("xlb"),
            "namespace {name} must be xlb-prefixed"
        );
        assert!(name.len() <= 40, "namespace name {name} too long");
        if std::path::Path::new("/var/run/netns").join(name).exists() {
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

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &str) -> String {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend(args.split_whitespace());
        run("ip", &v)
    }

    /// Runs a command line inside the namespace.
    pub fn exec(&self, line: &str) -> String {
        let mut v = vec!["netns", "exec", self.name.as_str()];
        v.extend(line.split_whitespace());
        run("ip", &v)
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
    }
}

/// Moves the calling thread into the named namespace until the guard drops.
pub fn enter_by_name(name: &str) -> Entered {
    let original =
        File::open("/proc/thread-self/ns/net").unwrap_or_else(|e| panic!("open own netns: {e}"));
    let target = File::open(format!("/var/run/netns/{name}"))
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

/// A namespace name unique to this process and `tag`, within IFNAMSIZ-free limits.
pub fn unique_name(tag: &str) -> String {
    format!("xlb-{tag}-{}", std::process::id())
}
