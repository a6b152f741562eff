//! The `xlb` command line: argument definitions (clap) and one module per
//! command family. Commands that talk to a running daemon go through its API
//! socket; `run`, `down` and `decap` act on the kernel directly.

pub mod api_cmds;
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
    /// Run the balancer daemon: load and attach the XDP program, keep the maps
    /// equal to the config, serve the API, metrics and health checks.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Override global.xdp_mode (native falls back to skb with a warning).
        #[arg(long, value_enum)]
        xdp_mode: Option<XdpModeArg>,
    },
    /// Show, add or remove VIPs.
    Vip {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: VipCommand,
    },
    /// Add or remove backends, change weights, drain.
    Backend {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Packet and byte counters per VIP and backend.
    Stats {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: StatsArgs,
    },
    /// Re-read the config file (like SIGHUP); runtime changes not in it are dropped.
    Reload {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The effective config.
    Config {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Which backend a flow goes to, and why (from the live maps).
    Explain {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: ExplainArgs,
    },
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

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The daemon's API socket (global.api_socket).
    #[arg(long, global = true, env = "XLB_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum VipCommand {
    /// List VIPs with their backends, weights and health.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a VIP.
    Add(VipAddArgs),
    /// Remove a VIP (by name or address:port/protocol).
    Del { vip: String },
}

#[derive(Debug, Args)]
pub struct VipAddArgs {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub address: IpAddr,
    /// 0 = every port of the address.
    #[arg(long)]
    pub port: u16,
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
    pub protocol: String,
    /// Hash the source address only (client affinity).
    #[arg(long)]
    pub source_ip: bool,
    /// Bypass the connection table.
    #[arg(long)]
    pub no_flow_table: bool,
    /// UDP VIPs: how long a silent flow keeps its backend ("30s", "2m";
    /// default 30s).
    #[arg(long, value_name = "DURATION")]
    pub udp_idle_timeout: Option<String>,
    /// A backend, `ADDR` or `ADDR=WEIGHT` (repeatable).
    #[arg(long = "backend")]
    pub backends: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Add a backend to a VIP.
    Add {
        vip: String,
        address: IpAddr,
        #[arg(long, default_value_t = 100)]
        weight: u16,
    },
    /// Remove a backend (its established flows move to the others).
    Del { vip: String, address: IpAddr },
    /// Set a backend's weight (0 drains).
    Weight {
        vip: String,
        address: IpAddr,
        weight: u16,
    },
    /// Stop sending new connections to a backend; established ones continue.
    Drain { vip: String, address: IpAddr },
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[arg(long)]
    pub json: bool,
    /// Refresh a table of rates (packets/s, bits/s) until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective config (file + runtime changes) as TOML, ready to save.
    Dump,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    #[arg(value_parser = ["tcp", "udp"])]
    pub proto: String,
    /// Explain a TCP SYN (a new connection) instead of a packet of an
    /// established connection.
    #[arg(long)]
    pub syn: bool,
}
