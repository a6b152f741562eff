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

/// Bounds how long a netlink request waits for the kernel's reply.
pub(crate) fn set_receive_timeout(
    socket: &netlink_sys::Socket,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: SO_RCVTIMEO reads a `timeval` of the given size from a valid
    // pointer; the descriptor is the open socket owned by `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
