//! `xlb pass attach|detach --interface PEER`: `xlb_pass` (XDP_PASS in native
//! mode) on the far end of a veth that xlb runs on. A veth delivers the
//! frames xlb sends back out (XDP_TX) only to a peer that runs a native XDP
//! program; without one it drops them in the driver. Run in the peer's
//! network namespace (`nsenter --net=...`, not `ip netns exec`, whose
//! private /sys would take the pin, and the program, away on exit).

use anyhow::{bail, Context};

use super::PassCommand;
use crate::{
    dataplane::{
        attach::{detach_pinned, ensure_bpffs, InstancePaths},
        aux::attach_pass_pinned,
    },
    netdev::{self, link},
    outln,
};

pub async fn run(cmd: PassCommand, instance: &str) -> anyhow::Result<()> {
    let pins = InstancePaths::new(instance);
    match cmd {
        PassCommand::Attach { interface } => {
            refuse_private_bpffs()?;
            let pin = pins.pass_link(&interface);
            attach_pass_pinned(&interface, &pin)
                .with_context(|| format!("attaching xlb_pass to {interface}"))?;
            // Trust the kernel, not the return value: the program must show
            // on the interface in native mode.
            let nl = netdev::connect()?;
            let l = link::get(&nl, link::Query::Name(&interface)).await?;
            if l.xdp.native.is_none() {
                bail!(
                    "xlb_pass was attached to {interface}, but the kernel shows no native XDP \
                     program there"
                );
            }
            outln!(
                "attached xlb_pass to {interface} (native mode); pinned at {}",
                pin.display()
            )?;
        }
        PassCommand::Detach { interface } => {
            let pin = pins.pass_link(&interface);
            if detach_pinned(&pin).with_context(|| format!("removing {}", pin.display()))? {
                outln!("detached xlb_pass from {interface}")?;
            } else {
                outln!(
                    "xlb_pass was not attached to {interface} by instance {instance} (nothing \
                     pinned at {})",
                    pin.display()
                )?;
            }
        }
    }
    Ok(())
}

/// A pin in a bpffs that this process had to mount, in a mount namespace
/// that is not the host's (`ip netns exec`, a container), vanishes when the
/// process exits, and the program with it: refuse rather than print success.
fn refuse_private_bpffs() -> anyhow::Result<()> {
    let mounted = ensure_bpffs().context("preparing bpffs")?;
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
    let host = std::fs::read_link("/proc/1/ns/mnt").ok();
    if mounted && ours != host {
        bail!(
            "this command runs in a private mount namespace (under `ip netns exec`?), where \
             /sys/fs/bpf is not the host's: the pinned program would vanish when it exits. Run \
             it with `nsenter --net=/var/run/netns/NAME xlb pass attach ...` instead"
        );
    }
    Ok(())
}
