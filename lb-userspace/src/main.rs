//! `xlb`: the daemon (`xlb run`) and the operator's CLI.

use clap::Parser;
use lb_userspace::{
    cli::{self, output::is_closed_stdout, Cli, Command, VethPeerArg, XdpModeArg},
    config::{check_instance_name, limits::DEFAULT_INSTANCE, XdpMode},
    daemon::{self, Overrides, RunOptions, VethPeerPolicy},
    logging,
};

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    logging::init(&args.log, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`xlb ... | head -1`): what it
        // did not read, it did not want. Quietly, like a SIGPIPE'd command.
        Err(e) if is_closed_stdout(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: Cli) -> anyhow::Result<()> {
    let socket = args.socket_or_default().to_path_buf();
    // `--instance` names a directory under /sys/fs/bpf/xlb: never `..`.
    let instance = |default: &str| -> anyhow::Result<String> {
        let name = args.instance.as_deref().unwrap_or(default);
        check_instance_name(name).map_err(|e| anyhow::anyhow!("--instance: {e}"))?;
        Ok(name.to_string())
    };
    match args.command {
        Command::Run {
            config,
            xdp_mode,
            veth_peer,
        } => {
            require_root()?;
            if args.instance.is_some() {
                instance(DEFAULT_INSTANCE)?;
            }
            let xdp_mode = xdp_mode.map(|m| match m {
                XdpModeArg::Native => XdpMode::Native,
                XdpModeArg::Skb => XdpMode::Skb,
            });
            let veth_peer = match veth_peer {
                VethPeerArg::Warn => VethPeerPolicy::Warn,
                VethPeerArg::Attach => VethPeerPolicy::Attach,
                VethPeerArg::Refuse => VethPeerPolicy::Refuse,
            };
            daemon::run(RunOptions {
                config,
                overrides: Overrides {
                    xdp_mode,
                    api_socket: args.socket,
                    instance: args.instance.clone(),
                },
                veth_peer,
            })
            .await
        }
        Command::Vip { command } => cli::api_cmds::vip(&socket, command).await,
        Command::Backend { command } => cli::api_cmds::backend(&socket, command).await,
        Command::Stats { args: stats } => cli::api_cmds::stats(&socket, stats).await,
        Command::Reload => cli::api_cmds::reload(&socket).await,
        Command::Config { command } => cli::api_cmds::config(&socket, command).await,
        Command::Explain { args: explain } => cli::api_cmds::explain(&socket, explain).await,
        Command::Decap { command } => {
            require_root()?;
            cli::decap_cmd::run(command, &instance("decap")?)
        }
        Command::Pass { command } => {
            require_root()?;
            cli::pass_cmd::run(command, &instance(DEFAULT_INSTANCE)?).await
        }
        Command::Down(down) => {
            require_root()?;
            cli::down_cmd::run(down, &instance(DEFAULT_INSTANCE)?, args.socket.as_deref()).await
        }
        Command::Check { args: check } => cli::check_cmd::run(&socket, &check).await,
        Command::GenerateCompletions { shell } => {
            cli::generate_cmd::completions(shell, &mut std::io::stdout());
            Ok(())
        }
        Command::GenerateMan { out_dir } => cli::generate_cmd::man_pages(&out_dir),
    }
}

fn require_root() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "this command loads or removes BPF programs and needs root (run it with sudo)"
    );
    Ok(())
}
