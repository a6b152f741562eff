//! The network namespace an instance's pins belong to. Link pins are named
//! after their interface, and interface names repeat across network
//! namespaces (every container has an `eth0`): attaching an instance to `eth0`
//! in a second namespace would find the first namespace's link pin and swap
//! the program behind it, and add the second host's addresses to the first
//! one's maps. So an instance records the namespace it is first attached in
//! and is refused in any other.
//!
//! The record is a directory `<instance>/netns/<cookie>-<inode>` (bpffs holds
//! only pins and directories). The namespace is identified by its cookie
//! (`SO_NETNS_COOKIE`), which the kernel never reuses while it runs; the
//! inode (what `ls -l /proc/PID/ns/net` and `lsns` show) is for messages, as
//! inodes are reused once a namespace is gone.

use std::{
    fs,
    io::{self, ErrorKind},
    mem::size_of,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::PathBuf,
};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use thiserror::Error;

use super::attach::InstancePaths;

/// One network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetnsId {
    pub cookie: u64,
    pub inode: u64,
}

impl NetnsId {
    /// The calling thread's network namespace (threads may have entered
    /// another one than the process's).
    pub fn current() -> Result<Self, NetnsClaimError> {
        let inode = fs::metadata("/proc/thread-self/ns/net")
            .map_err(NetnsClaimError::Identify)?
            .ino();
        // Any socket belongs to the namespace it was created in.
        let sock = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| NetnsClaimError::Identify(e.into()))?;
        let mut cookie = 0u64;
        let mut len = size_of::<u64>() as libc::socklen_t;
        // SAFETY: `cookie` and `len` are valid for writes and `len` is the
        // size of `cookie`; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NETNS_COOKIE,
                (&raw mut cookie).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(NetnsClaimError::Identify(io::Error::last_os_error()));
        }
        Ok(Self { cookie, inode })
    }

    fn dir_name(self) -> String {
        format!("{}-{}", self.cookie, self.inode)
    }

    fn parse(name: &str) -> Option<Self> {
        let (cookie, inode) = name.split_once('-')?;
        Some(Self {
            cookie: cookie.parse().ok()?,
            inode: inode.parse().ok()?,
        })
    }
}

#[derive(Debug, Error)]
pub enum NetnsClaimError {
    #[error("cannot identify this network namespace (SO_NETNS_COOKIE needs Linux 5.14)")]
    Identify(#[source] io::Error),
    #[error(
        "instance {instance} is attached in another network namespace (net:[{}] when it was \
         attached; this is net:[{}]), where it may use the same interface names: give this \
         namespace its own instance (`--instance NAME`), or remove the other one first \
         (`xlb decap detach --instance {instance}`, from any namespace)",
        owner.inode, here.inode
    )]
    OtherNamespace {
        instance: String,
        owner: NetnsId,
        here: NetnsId,
    },
    #[error(
        "instance {instance} has pinned links but no recorded network namespace (attached by an \
         older xlb): remove it with `xlb decap detach --instance {instance}` and attach again"
    )]
    Unrecorded { instance: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Makes sure the instance under `paths` belongs to the calling thread's
/// network namespace, recording it when the instance has no links yet.
pub fn claim(paths: &InstancePaths) -> Result<NetnsId, NetnsClaimError> {
    let here = NetnsId::current()?;
    let dir = paths.root.join("netns");
    let instance = paths
        .root
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    match fs::read_dir(&dir) {
        Ok(entries) => {
            let owners: Vec<NetnsId> = entries
                .flatten()
                .filter_map(|e| NetnsId::parse(&e.file_name().to_string_lossy()))
                .collect();
            if owners.iter().any(|o| o.cookie == here.cookie) {
                return Ok(here);
            }
            if let Some(owner) = owners.first() {
                return Err(NetnsClaimError::OtherNamespace {
                    instance,
                    owner: *owner,
                    here,
                });
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if has_links(paths) {
                return Err(NetnsClaimError::Unrecorded { instance });
            }
        }
        Err(source) => return Err(NetnsClaimError::Io { path: dir, source }),
    }
    let record = dir.join(here.dir_name());
    fs::create_dir_all(&record).map_err(|source| NetnsClaimError::Io {
        path: record,
        source,
    })?;
    Ok(here)
}

fn has_links(paths: &InstancePaths) -> bool {
    fs::read_dir(paths.links()).is_ok_and(|mut entries| entries.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_round_trip() {
        let id = NetnsId {
            cookie: 4097,
            inode: 4_026_531_840,
        };
        assert_eq!(NetnsId::parse(&id.dir_name()), Some(id));
        assert_eq!(NetnsId::parse("4097"), None);
        assert_eq!(NetnsId::parse("x-1"), None);
    }

    #[test]
    fn the_current_namespace_has_a_stable_identity() {
        let a = NetnsId::current().expect("SO_NETNS_COOKIE");
        let b = NetnsId::current().expect("SO_NETNS_COOKIE");
        assert_eq!(a, b);
        assert_ne!(a.cookie, 0);
    }

    /// Claims work on any directory tree (here a temporary one, not bpffs).
    #[test]
    fn a_claim_is_kept_and_refused_elsewhere() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let paths = InstancePaths {
            root: tmp.path().join("inst"),
        };
        let here = claim(&paths).expect("a first claim");
        assert_eq!(claim(&paths).expect("the same namespace again"), here);

        // Pretend another namespace claimed it.
        fs::remove_dir_all(paths.root.join("netns")).expect("remove the record");
        let other = NetnsId {
            cookie: here.cookie + 1,
            inode: 1,
        };
        fs::create_dir_all(paths.root.join("netns").join(other.dir_name())).expect("record");
        match claim(&paths) {
            Err(NetnsClaimError::OtherNamespace {
                instance, owner, ..
            }) => {
                assert_eq!(instance, "inst");
                assert_eq!(owner, other);
            }
            r => panic!("expected OtherNamespace, got {r:?}"),
        }
    }

    #[test]
    fn links_without_a_record_are_refused() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let paths = InstancePaths {
            root: tmp.path().join("old"),
        };
        fs::create_dir_all(paths.links()).expect("links dir");
        fs::write(paths.link("eth0"), b"").expect("a fake link pin");
        let err = claim(&paths).expect_err("links without a record");
        assert!(matches!(err, NetnsClaimError::Unrecorded { .. }), "{err:?}");
        assert!(
            err.to_string().contains("xlb decap detach --instance old"),
            "{err}"
        );
    }
}
