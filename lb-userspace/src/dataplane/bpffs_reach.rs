//! Whether pins made by this process outlive it. They do only in a bpffs that
//! a longer-lived mount namespace sees as well. `ip netns exec` runs its
//! command in a private mount namespace with a fresh /sys and no bpffs there;
//! xlb then mounts its own, and everything pinned in it (and every program
//! attached through those pins) vanishes when the command exits.
//!
//! The test: the filesystem at /sys/fs/bpf must be the one that the outermost
//! ancestor process we may inspect sees at its own /sys/fs/bpf (through
//! `/proc/PID/root`): pid 1 on an ordinary host, the nearest inspectable
//! ancestor where pid 1 is out of reach (a sandbox, a container runtime).
//! Filesystems are compared rather than mount namespaces, so a private
//! namespace that kept the host's bpffs (`unshare --mount`, a systemd unit
//! with `ProtectSystem=`) is accepted: pins made there are the host's.

use std::{
    fs,
    io::{self, ErrorKind},
    os::unix::fs::MetadataExt,
    path::Path,
};

use super::attach::BPFFS;

/// Where the bpffs at /sys/fs/bpf is seen from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpffsReach {
    /// Ancestor `pid` sees the same bpffs: pins outlive this process.
    Shared { pid: u32 },
    /// Ancestor `pid` sees another filesystem there (or none): the pins live
    /// in this process's private mount namespace and go with it.
    Private { pid: u32 },
    /// No ancestor could be inspected (this process is pid 1 of its PID
    /// namespace, or every ancestor is out of reach).
    Unknown,
}

/// Compares /sys/fs/bpf here with the outermost inspectable ancestor's.
pub fn bpffs_reach() -> io::Result<BpffsReach> {
    let ours = fs::metadata(BPFFS)?.dev();
    Ok(match outermost_view() {
        None => BpffsReach::Unknown,
        Some((pid, Some(dev))) if dev == ours => BpffsReach::Shared { pid },
        Some((pid, _)) => BpffsReach::Private { pid },
    })
}

/// The outermost ancestor whose root we may look into, with the device of
/// what it sees at /sys/fs/bpf (`None`: nothing there).
fn outermost_view() -> Option<(u32, Option<u64>)> {
    let mut found = None;
    let mut pid = std::os::unix::process::parent_id();
    // A parent outside our PID namespace shows as 0.
    while pid != 0 {
        let root = Path::new("/proc").join(pid.to_string()).join("root");
        match fs::metadata(root.join(BPFFS.trim_start_matches('/'))) {
            Ok(m) => found = Some((pid, Some(m.dev()))),
            Err(e) if e.kind() == ErrorKind::NotFound && root.exists() => {
                found = Some((pid, None));
            }
            // Out of reach (another user namespace, more capabilities than
            // ours): look further up.
            Err(_) => {}
        }
        if pid == 1 {
            break;
        }
        match parent_of(pid) {
            Some(p) => pid = p,
            None => break,
        }
    }
    found
}

/// The parent of `pid`, from `/proc/PID/stat` (field 4, after the command
/// name, which may itself contain spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_after_the_command_name() {
        assert_eq!(parse_ppid("1687 (bash) S 1682 1687 1682 0 -1"), Some(1682));
        assert_eq!(parse_ppid("42 (a (b) c) R 7 42 7 0"), Some(7));
        assert_eq!(parse_ppid("42 (truncated"), None);
    }

    #[test]
    fn our_own_parent_is_found() {
        let me = std::process::id();
        let stat = fs::read_to_string(format!("/proc/{me}/stat")).expect("our stat");
        assert_eq!(parse_ppid(&stat), Some(std::os::unix::process::parent_id()));
    }
}
