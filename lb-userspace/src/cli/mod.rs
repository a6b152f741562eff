//! The `xlb` command line: argument definitions (clap) and one module per
//! command family. Commands that talk to a running daemon go through its API
//! socket; `run`, `down` and `decap` act on the kernel directly.

pub mod api_cmds;
pub mod check_cmd;
pub mod decap_cmd;
pub mod down_cmd;
pub mod generate_cmd;
pub mod output;
pub mod pass_cmd;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

pub const DEFAULT_SOCKET: &str = crate::config::limits::DEFAULT_API_SOCKET;

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
    /// The daemon's API socket (global.api_socket; default /run/xlb/xlb.sock).
    /// Accepted before or after the subcommand; `xlb run` serves it.
    #[arg(long, global = true, env = "XLB_SOCKET")]
    pub socket: Option<PathBuf>,
    /// The instance: the pin directory /sys/fs/bpf/xlb/<instance>
    /// (global.instance; default "default", "decap" for `xlb decap`). A
    /// decap instance belongs to the network namespace it was first attached
    /// in: give each namespace (container, test host) its own.
    #[arg(long, global = true, env = "XLB_INSTANCE")]
    pub instance: Option<String>,
    /// Log line format on standard error: `text` for people, `json` (one
    /// object per line, the same fields) for log collectors.
    #[arg(
        long,
        global = true,
        env = "XLB_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The API socket: `--socket`, else `$XLB_SOCKET`, else the default.
    pub fn socket_or_default(&self) -> &Path {
        self.socket
            .as_deref()
            .unwrap_or_else(|| Path::new(DEFAULT_SOCKET))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the balancer daemon: load and attach the XDP program, keep the maps
    /// equal to the config, serve the API, metrics and health checks.
    ///
    /// `--socket` and `--instance` override global.api_socket and
    /// global.instance.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Override global.xdp_mode (native falls back to skb with a warning).
        #[arg(long, value_enum)]
        xdp_mode: Option<XdpModeArg>,
        /// What to do about a veth interface whose peer has no native XDP
        /// program (the peer then drops every XDP_TX / redirected frame):
        /// warn (with the command that fixes it), attach xlb_pass to the peer
        /// (pinned with the instance, removed by `xlb down`), or refuse to start.
        #[arg(long, value_enum, default_value = "warn")]
        veth_peer: VethPeerArg,
    },
    /// Show, add or remove VIPs.
    Vip {
        #[command(subcommand)]
        command: VipCommand,
    },
    /// Add or remove backends, change weights, drain.
    Backend {
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Packet and byte counters per VIP and backend.
    Stats {
        #[command(flatten)]
        args: StatsArgs,
    },
    /// Re-read the config file (like SIGHUP); runtime changes not in it are dropped.
    Reload,
    /// The effective config.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Which backend a flow goes to, and why (from the live maps).
    Explain {
        #[command(flatten)]
        args: ExplainArgs,
    },
    /// Decapsulation on a backend host: strip xlb's IP-in-IP headers in XDP
    /// (for hosts without the ipip/ip6_tunnel/sit modules).
    Decap {
        #[command(subcommand)]
        command: DecapCommand,
    },
    /// Veth peers: attach `xlb_pass` (XDP_PASS, native mode) to the other end
    /// of a veth xlb runs on, without which the veth drops XDP_TX frames.
    /// Run it in the peer's network namespace.
    Pass {
        #[command(subcommand)]
        command: PassCommand,
    },
    /// Stop the instance's daemon (found by the pinned maps it holds, or at
    /// `--socket`), detach the balancer and remove its pinned state (traffic
    /// stops being balanced). Changes nothing when the daemon cannot be
    /// stopped.
    Down(DownArgs),
    /// Validate a config file as `xlb run` and a reload would, without
    /// touching the kernel or a daemon; `--diff` shows what a reload of the
    /// running daemon with it would change.
    Check {
        #[command(flatten)]
        args: CheckArgs,
    },
    /// Print the shell completion script (for packaging).
    #[command(hide = true)]
    GenerateCompletions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages into a directory (for packaging).
    #[command(hide = true)]
    GenerateMan {
        #[arg(long)]
        out_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file, as `xlb run --config` would read it.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Also print what a reload of the running daemon (at --socket) with this
    /// file would change: VIPs and backends added (+), removed (-), changed
    /// (~), and [global] settings that need a restart (!, then it fails).
    #[arg(long)]
    pub diff: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum VethPeerArg {
    /// Log an error with the exact fix and keep running.
    Warn,
    /// Attach xlb_pass to the peer (in its network namespace).
    Attach,
    /// Refuse to start.
    Refuse,
}

#[derive(Debug, Subcommand)]
pub enum PassCommand {
    /// Attach xlb_pass to INTERFACE in native mode (pinned under
    /// /sys/fs/bpf/xlb/<instance>/pass/, so it survives this command).
    Attach {
        #[arg(long)]
        interface: String,
    },
    /// Detach xlb_pass from INTERFACE and remove its pin.
    Detach {
        #[arg(long)]
        interface: String,
    },
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
    /// Attach xlb_decap to an interface (pinned: survives this command). It
    /// strips tunnel packets to one of the --address addresses only when the
    /// outer source is an --allow-source balancer and the inner destination
    /// a --vip; everything else goes to the kernel untouched (and is
    /// counted). Running it again in the same network namespace adds to the
    /// lists and swaps in this binary's program.
    Attach {
        #[arg(long)]
        interface: String,
        /// Outer destination address this host terminates (repeat for more).
        #[arg(long = "address", value_name = "ADDR", required = true)]
        addresses: Vec<IpAddr>,
        /// Outer source address of a balancer allowed to tunnel to this host:
        /// its outer_source_v4 / outer_source_v6 (repeat for more). Required:
        /// without it anyone could tunnel packets with forged sources past
        /// this host's firewall.
        #[arg(long = "allow-source", value_name = "ADDR", required = true)]
        allow_sources: Vec<IpAddr>,
        /// VIP address this host serves: the inner destinations accepted
        /// (repeat for more).
        #[arg(long = "vip", value_name = "ADDR", required = true)]
        vips: Vec<IpAddr>,
        /// Also strip GUE (xlb's `forwarding = "gue"`: UDP to this port,
        /// the inner IP packet right after the UDP header) sent to this
        /// port; the balancer's `gue_port` (repeat for more; none: IP-in-IP
        /// only).
        #[arg(long = "gue-port", value_name = "PORT")]
        gue_ports: Vec<u16>,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: XdpModeArg,
    },
    /// Detach xlb_decap from every interface of the instance and remove its
    /// pins (works from any network namespace).
    Detach,
    /// Packet counters of the attached decapsulator.
    Stats,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Seconds to wait for the daemon to exit before giving up (and
    /// changing nothing).
    #[arg(long, default_value_t = 10.0)]
    pub wait: f64,
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
    /// Let only these source prefixes reach a VIP (an allow list; deny
    /// still wins), or with --remove take prefixes off it.
    Allow(PrefixArgs),
    /// Refuse these source prefixes at a VIP, or with --remove take prefixes
    /// off its deny list.
    Deny(PrefixArgs),
}

#[derive(Debug, Args)]
pub struct PrefixArgs {
    pub vip: String,
    /// Prefixes such as 203.0.113.0/24 or 2001:db8::/32 (a bare address is
    /// a host).
    #[arg(required = true)]
    pub prefixes: Vec<String>,
    /// Remove the prefixes from the list instead of adding them.
    #[arg(long)]
    pub remove: bool,
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
    /// How packets reach the backends (see the README's "Choosing a
    /// forwarding mode"; default ipip).
    #[arg(long, value_parser = ["ipip", "gue", "l2-dsr"])]
    pub forwarding: Option<String>,
    /// GUE VIPs: the outer UDP destination port (default: global.gue_port).
    #[arg(long, value_name = "PORT")]
    pub gue_port: Option<u16>,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(argv: &str) -> Cli {
        Cli::try_parse_from(argv.split_whitespace()).unwrap_or_else(|e| panic!("{argv}: {e}"))
    }

    #[test]
    fn socket_and_instance_are_global_before_or_after_the_subcommand() {
        for argv in [
            "xlb --socket /s vip list",
            "xlb vip --socket /s list",
            "xlb vip list --socket /s",
            "xlb --socket /s stats --json",
            "xlb explain 1.2.3.4 1 10.0.0.1 80 tcp --socket /s",
            "xlb --socket /s reload",
            "xlb --socket /s down",
            "xlb down --socket /s",
            "xlb run --config c.toml --socket /s",
        ] {
            assert_eq!(
                parse(argv).socket.as_deref(),
                Some(Path::new("/s")),
                "{argv}"
            );
        }
        for argv in [
            "xlb --instance x down",
            "xlb down --instance x",
            "xlb --instance x decap stats",
            "xlb decap detach --instance x",
            "xlb pass attach --interface p --instance x",
            "xlb --instance x run --config c.toml",
        ] {
            assert_eq!(parse(argv).instance.as_deref(), Some("x"), "{argv}");
        }
    }

    #[test]
    fn the_socket_defaults_to_the_daemons_default() {
        let cli = parse("xlb vip list");
        assert_eq!(cli.instance, None);
        if std::env::var_os("XLB_SOCKET").is_none() {
            assert_eq!(cli.socket_or_default(), Path::new(DEFAULT_SOCKET));
        }
    }
}
