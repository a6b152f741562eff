//! `xlb decap ...`: the backend-side decapsulator.

use std::net::IpAddr;

use anyhow::Context;

use super::{DecapCommand, XdpModeArg};
use crate::{
    dataplane::{
        attach::{remove_instance, Attached, InstancePaths, Mode},
        decap::{attach_host, Decap, DecapLists},
    },
    outln,
};

/// `instance` is the global `--instance` (default "decap").
pub fn run(cmd: DecapCommand, instance: &str) -> anyhow::Result<()> {
    match cmd {
        DecapCommand::Attach {
            interface,
            addresses,
            allow_sources,
            vips,
            gue_ports,
            xdp_mode,
        } => {
            let mode = match xdp_mode {
                XdpModeArg::Native => Mode::Native,
                XdpModeArg::Skb => Mode::Skb,
            };
            let pins = InstancePaths::new(instance);
            let lists = DecapLists {
                addresses,
                allowed_sources: allow_sources,
                vips,
                gue_ports,
            };
            let outcome = attach_host(&interface, &lists, mode, &pins)
                .with_context(|| format!("attaching xlb_decap to {interface}"))?;
            match outcome {
                Attached::Replaced => outln!("updated xlb_decap on {interface}")?,
                Attached::New { mode } => {
                    outln!("attached xlb_decap to {interface} ({mode} mode)")?
                }
                Attached::Fallback { reason } => {
                    outln!("attached xlb_decap to {interface} in generic mode: native mode failed: {reason}")?
                }
            }
            let gue = if lists.gue_ports.is_empty() {
                String::new()
            } else {
                let ports: Vec<String> = lists.gue_ports.iter().map(u16::to_string).collect();
                format!(" and GUE on UDP port {}", ports.join(", "))
            };
            outln!(
                "accepting IP-in-IP{gue} to {} from {} for VIPs {}; pinned under {}",
                joined(&lists.addresses),
                joined(&lists.allowed_sources),
                joined(&lists.vips),
                pins.root.display()
            )?;
            Ok(())
        }
        DecapCommand::Detach => {
            let pins = InstancePaths::new(instance);
            let detached = remove_instance(&pins)
                .with_context(|| format!("removing {}", pins.root.display()))?;
            if detached.is_empty() {
                outln!("xlb_decap instance {instance} was not attached")?;
            }
            for i in detached {
                outln!("detached xlb_decap from {i}")?;
            }
            Ok(())
        }
        DecapCommand::Stats => {
            let pins = InstancePaths::new(instance);
            anyhow::ensure!(
                pins.maps().exists(),
                "xlb_decap instance {instance} is not attached ({} missing)",
                pins.maps().display()
            );
            let d = Decap::load_pinned(Some(&pins)).with_context(|| {
                format!(
                    "opening the pinned decap maps (pins of another xlb version: \
                     `xlb decap detach --instance {instance}` and attach again)"
                )
            })?;
            let s = d.stats()?;
            let ports = d.gue_ports()?;
            if !ports.is_empty() {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                outln!("gue ports         {}", ports.join(", "))?;
            }
            outln!(
                "decapsulated      {}\npassed            {}\nmalformed         {}\n\
                 refused_source    {}\nrefused_inner_dst {}\necn_dropped       {}",
                s.decapsulated,
                s.passed,
                s.malformed,
                s.refused_source,
                s.refused_inner_dst,
                s.ecn_dropped
            )?;
            Ok(())
        }
    }
}

fn joined(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
