//! The `xlb` command line: argument definitions (clap) and one module per
//! command family. Commands that talk to a running daemon go through its API
//! socket; `run`, `down` and `decap` act on the kernel directly.

pub mod decap_cmd;
pub mod down_cmd;

use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_SOCKET: &str = "/run/xlb/xlb.sock";

#[derive(Debug, Parser)]
#[command(
    name = "xlb",
    version,
    about = "xlb: an XDP layer-4 load balancer (direct server return, Maglev)"
)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `xlb=debug`.
    #[arg(long, global = true, env = "XLB_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decapsulation on a backend host: strip xlb's IP-in-IP headers in XDP
    /// (for hosts without the ipip/ip6_tunnel/sit modules).
    Decap {
        #[command(subcommand)]
        command: DecapCommand,
    },
    /// Detach the balancer and remove its pinned state (traffic stops being
    /// balanced). Stops a running daemon first.
    Down(DownArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum XdpModeArg {
    /// Driver mode (falls back to generic mode with a warning if refused).
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Skb,
}

#[derive(Debug, Subcommand)]
pub enum DecapCommand {
    /// Attach xlb_decap to an interface (pinned: survives this command) and
    /// accept tunnels to the given addresses. Repeatable: adds addresses.
    Attach {
        #[arg(long)]
        interface: String,
        /// Outer destination address this host terminates (repeat for more).
        #[arg(long = "address", required = true)]
        addresses: Vec<IpAddr>,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: XdpModeArg,
        /// Name of the pin directory (/sys/fs/bpf/xlb/<instance>).
        #[arg(long, default_value = "decap")]
        instance: String,
    },
    /// Detach xlb_decap from every interface of the instance and remove its pins.
    Detach {
        #[arg(long, default_value = "decap")]
        instance: String,
    },
    /// Packet counters of the attached decapsulator.
    Stats {
        #[arg(long, default_value = "decap")]
        instance: String,
    },
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Instance whose pins to remove (global.instance in the config).
    #[arg(long, default_value = "default")]
    pub instance: String,
    /// The daemon's API socket, asked to exit first if it is running.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}
