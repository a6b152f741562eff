//! A veth hands an XDP_TX'd (or redirected) frame to its peer's XDP receive
//! ring, which exists only while the peer runs a native-mode XDP program:
//! without one, the frame is dropped in the driver (counted as
//! `xdp_tx_errors`) after xlb counted it as sent. This finds the interfaces
//! in that state and says where their peer is, so xlb can warn with the
//! exact fix, attach `xlb_pass` there itself, or refuse to start.

use rtnetlink::Handle;

use super::{
    link::{self, Query},
    netns::{self, Netns},
    NetdevError,
};

/// A veth of xlb's whose peer would drop its XDP frames.
#[derive(Debug)]
pub struct UnreadyPeer {
    /// xlb's interface.
    pub interface: String,
    /// The peer's name and index in its own namespace.
    pub peer: String,
    pub peer_ifindex: u32,
    /// The peer's namespace when it is not ours: `Err(nsid)` when none of
    /// the known namespace paths is it.
    pub netns: Option<Result<Netns, i32>>,
}

impl UnreadyPeer {
    /// The command that fixes it, to run as root.
    pub fn fix(&self, instance: &str) -> String {
        let instance = if instance == crate::config::limits::DEFAULT_INSTANCE {
            String::new()
        } else {
            format!(" --instance {instance}")
        };
        let cmd = format!("xlb{instance} pass attach --interface {}", self.peer);
        match &self.netns {
            None => cmd,
            Some(Ok(ns)) => format!("{} {cmd}", ns.nsenter()),
            Some(Err(nsid)) => {
                format!("{cmd} (in the peer's network namespace, nsid {nsid} from here)")
            }
        }
    }

    /// What is wrong and how to fix it, in one message.
    pub fn explain(&self, instance: &str) -> String {
        let place = match &self.netns {
            None => String::new(),
            Some(Ok(ns)) => format!(" in network namespace {}", ns.path.display()),
            Some(Err(nsid)) => format!(" in network namespace nsid {nsid}"),
        };
        format!(
            "{} is a veth whose peer {}{place} has no native XDP program: the veth drops every \
             frame xlb sends back out (XDP_TX) or redirects to it, while xlb counts them as sent \
             (the driver counts them as xdp_tx_errors). Attach an XDP_PASS program to the peer: \
             `{}`, or run `xlb run --veth-peer attach`",
            self.interface,
            self.peer,
            self.fix(instance)
        )
    }
}

/// The interfaces among `names` that are veths whose peer runs no
/// native-mode XDP program. Non-veth interfaces are fine: real NICs
/// transmit XDP_TX frames themselves.
pub async fn unready_peers(
    handle: &Handle,
    names: &[String],
) -> Result<Vec<UnreadyPeer>, NetdevError> {
    let mut out = Vec::new();
    for name in names {
        let l = link::get(handle, Query::Name(name)).await?;
        let (true, Some(peer_ifindex)) = (l.is_veth, l.link_ifindex) else {
            continue;
        };
        let peer = link::get(
            handle,
            Query::Index {
                ifindex: peer_ifindex,
                nsid: l.link_netnsid,
            },
        )
        .await?;
        if peer.xdp.native.is_some() {
            continue;
        }
        let netns = match l.link_netnsid {
            None => None,
            Some(nsid) => Some(netns::find(handle, nsid).await.ok_or(nsid)),
        };
        out.push(UnreadyPeer {
            interface: name.clone(),
            peer: peer.name,
            peer_ifindex,
            netns,
        });
    }
    Ok(out)
}
