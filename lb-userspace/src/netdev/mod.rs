//! What the kernel says about the interfaces xlb runs on, asked the way the
//! kernel answers (rtnetlink, the ethtool ioctl), never by running `ip`:
//! which XDP program is attached in which mode, whether an interface is a
//! veth whose peer would drop XDP_TX frames, and the driver's own XDP error
//! counters, which see drops that happen after the program said "tx".

pub mod driver_stats;
pub mod l2_path;
pub mod link;
pub mod netns;
pub mod veth;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetdevError {
    #[error("opening a netlink socket")]
    Connect(#[source] std::io::Error),
    #[error("asking the kernel about interface {what} (rtnetlink)")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("interface {what} does not exist")]
    NoSuchLink { what: String },
    #[error("opening the network namespace {}", path.display())]
    OpenNetns {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("entering the network namespace {}", path.display())]
    EnterNetns {
        path: std::path::PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("the network namespace of {peer} (nsid {nsid}) is not under /proc or /var/run/netns")]
    NetnsNotFound { peer: String, nsid: i32 },
    #[error("reading the driver statistics of {ifname} ({call})")]
    Ethtool {
        ifname: String,
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A connection to rtnetlink in the calling thread's network namespace; the
/// connection task runs on the current tokio runtime.
pub fn connect() -> Result<rtnetlink::Handle, NetdevError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetdevError::Connect)?;
    tokio::spawn(conn);
    Ok(handle)
}
