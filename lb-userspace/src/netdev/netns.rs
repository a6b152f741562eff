//! Network namespaces by the id our namespace gives them (the nsid that
//! IFLA_LINK_NETNSID reports for a veth peer elsewhere). The kernel offers
//! no call from an nsid to a namespace, so, like `ip link` printing
//! `link-netns NAME`, candidates are opened and asked for their nsid
//! (RTM_GETNSID with NETNSA_FD): the named namespaces of `ip netns`, then
//! every process's.

use std::{
    fs::File,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
};

use futures_util::StreamExt;
use nix::sched::{setns, CloneFlags};
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST},
    packet_route::{
        nsid::{NsidAttribute, NsidMessage},
        RouteNetlinkMessage,
    },
    Handle,
};

use super::NetdevError;

/// Where `ip netns` keeps the namespaces it names.
pub const NAMED_NETNS_DIR: &str = "/var/run/netns";

/// A network namespace found by its nsid.
#[derive(Debug)]
pub struct Netns {
    /// The path it was found at: `/var/run/netns/NAME` or `/proc/PID/ns/net`.
    pub path: PathBuf,
    pub file: File,
}

impl Netns {
    /// How to run a command in it, for messages: `nsenter --net=PATH`.
    pub fn nsenter(&self) -> String {
        format!("nsenter --net={}", self.path.display())
    }
}

/// The namespace our namespace calls `nsid`, or `None` when none of the
/// candidates is it.
pub async fn find(handle: &Handle, nsid: i32) -> Option<Netns> {
    for path in candidates() {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if nsid_of(handle, &file).await == Some(nsid) {
            return Some(Netns { path, file });
        }
    }
    None
}

/// The named namespaces first (their paths make readable commands), then
/// pid 1's (the host's, usually), then every process's.
fn candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(NAMED_NETNS_DIR)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out.push(PathBuf::from("/proc/1/ns/net"));
    if let Ok(rd) = std::fs::read_dir("/proc") {
        let mut pids: Vec<u32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        out.extend(
            pids.into_iter()
                .filter(|p| *p != 1)
                .map(|p| PathBuf::from(format!("/proc/{p}/ns/net"))),
        );
    }
    out
}

/// RTM_GETNSID: the id our namespace gives the namespace `file` refers to.
async fn nsid_of(handle: &Handle, file: &File) -> Option<i32> {
    let mut msg = NsidMessage::default();
    msg.attributes = vec![NsidAttribute::Fd(u32::try_from(file.as_raw_fd()).ok()?)];
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = NLM_F_REQUEST;
    let mut answers = handle.clone().request(req).ok()?;
    while let Some(answer) = answers.next().await {
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) = answer.payload {
            return m.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                _ => None,
            });
        }
    }
    None
}

/// Runs `f` on a new thread inside the network namespace at `path` (a
/// thread's namespace is its own: the caller's stays as it was), e.g. to
/// attach a program to an interface that only exists there.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetdevError> {
    let file = File::open(path).map_err(|source| NetdevError::OpenNetns {
        path: path.to_path_buf(),
        source,
    })?;
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
            NetdevError::EnterNetns {
                path: owned,
                source,
            }
        })?;
        Ok(f())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
