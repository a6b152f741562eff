//! `xlb decap ...`: the backend-side decapsulator.

use anyhow::Context;

use super::{DecapCommand, XdpModeArg};
use crate::dataplane::{
    attach::{remove_instance, Attached, InstancePaths, Mode},
    decap::{attach_host, Decap},
};

/// `instance` is the global `--instance` (default "decap").
pub fn run(cmd: DecapCommand, instance: &str) -> anyhow::Result<()> {
    match cmd {
        DecapCommand::Attach {
            interface,
            addresses,
            xdp_mode,
        } => {
            let mode = match xdp_mode {
                XdpModeArg::Native => Mode::Native,
                XdpModeArg::Skb => Mode::Skb,
            };
            let pins = InstancePaths::new(instance);
            let outcome = attach_host(&interface, &addresses, mode, &pins)
                .with_context(|| format!("attaching xlb_decap to {interface}"))?;
            let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            match outcome {
                Attached::Replaced => println!("updated xlb_decap on {interface}"),
                Attached::New { mode } => {
                    println!("attached xlb_decap to {interface} ({mode} mode)")
                }
                Attached::Fallback { reason } => {
                    println!("attached xlb_decap to {interface} in generic mode: native mode failed: {reason}")
                }
            }
            println!(
                "accepting IP-in-IP to {}; pinned under {}",
                list.join(", "),
                pins.root.display()
            );
            Ok(())
        }
        DecapCommand::Detach => {
            let pins = InstancePaths::new(instance);
            let detached = remove_instance(&pins)
                .with_context(|| format!("removing {}", pins.root.display()))?;
            if detached.is_empty() {
                println!("xlb_decap instance {instance} was not attached");
            }
            for i in detached {
                println!("detached xlb_decap from {i}");
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
            let d = Decap::load_pinned(Some(&pins)).context("opening the pinned decap maps")?;
            let s = d.stats()?;
            println!(
                "decapsulated {}\npassed       {}\nmalformed    {}",
                s.decapsulated, s.passed, s.malformed
            );
            Ok(())
        }
    }
}
