//! xlb on a veth (the README's own test setup, containers, labs): the peer
//! must run a native XDP program or every frame xlb sends back out is
//! dropped in the driver. Checked through netlink before anything changes;
//! then, as `--veth-peer` says, refused, reported with the exact fix, or
//! fixed by attaching `xlb_pass` to the peer in its own namespace.

use anyhow::{bail, Context};
use tracing::{error, info};

use crate::{
    config::{GlobalConfig, XdpMode},
    dataplane::{attach::InstancePaths, aux::attach_pass_pinned},
    netdev::{
        netns,
        veth::{unready_peers, UnreadyPeer},
    },
};

/// What to do about a veth whose peer has no native XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VethPeerPolicy {
    /// Log an error with the exact fix, and run.
    #[default]
    Warn,
    /// Attach `xlb_pass` to the peer (pinned with the instance).
    Attach,
    /// Refuse to start.
    Refuse,
}

/// The veths among the interfaces xlb transmits on (XDP_TX on `interfaces`,
/// redirects to `egress_interfaces`) whose peer would drop the frames.
/// Refuses here, before anything changes, under [`VethPeerPolicy::Refuse`].
/// Generic mode transmits through the stack, which needs nothing of the peer.
pub async fn check(
    nl: &rtnetlink::Handle,
    g: &GlobalConfig,
    policy: VethPeerPolicy,
) -> anyhow::Result<Vec<UnreadyPeer>> {
    if g.xdp_mode == XdpMode::Skb {
        return Ok(Vec::new());
    }
    let names: Vec<String> = g
        .interfaces
        .iter()
        .chain(&g.egress_interfaces)
        .cloned()
        .collect();
    let peers = unready_peers(nl, &names)
        .await
        .context("checking the veth peers of the interfaces")?;
    if policy == VethPeerPolicy::Refuse && !peers.is_empty() {
        let all: Vec<String> = peers.iter().map(|p| p.explain(&g.instance)).collect();
        bail!("{}", all.join("\n"));
    }
    Ok(peers)
}

/// After attaching: warns about `peers`, or attaches `xlb_pass` to each and
/// checks with the kernel that it took.
pub async fn handle(
    nl: &rtnetlink::Handle,
    peers: Vec<UnreadyPeer>,
    g: &GlobalConfig,
    paths: &InstancePaths,
    policy: VethPeerPolicy,
) -> anyhow::Result<()> {
    for p in peers {
        if policy != VethPeerPolicy::Attach {
            error!("{}", p.explain(&g.instance));
            continue;
        }
        let pin = paths.pass_link(&format!("peer-of-{}", p.interface));
        let peer = p.peer.clone();
        let attach = move || attach_pass_pinned(&peer, &pin);
        let result = match &p.netns {
            None => tokio::task::spawn_blocking(attach).await?,
            Some(Ok(ns)) => {
                let path = ns.path.clone();
                tokio::task::spawn_blocking(move || netns::run_in(&path, attach)).await??
            }
            Some(Err(nsid)) => bail!(
                "cannot attach xlb_pass to {}, the peer of {}: its network namespace (nsid \
                 {nsid}) is not under /var/run/netns or /proc; run `{}` there",
                p.peer,
                p.interface,
                p.fix(&g.instance)
            ),
        };
        result.with_context(|| {
            format!(
                "attaching xlb_pass to {}, the peer of {}",
                p.peer, p.interface
            )
        })?;
        let still = unready_peers(nl, std::slice::from_ref(&p.interface)).await?;
        if !still.is_empty() {
            bail!(
                "attached xlb_pass to {}, but the kernel shows no native XDP program on it",
                p.peer
            );
        }
        info!(interface = %p.interface, peer = %p.peer, "attached xlb_pass to the veth peer (--veth-peer attach)");
    }
    Ok(())
}
