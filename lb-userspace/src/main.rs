//! `xlb`: the daemon (`xlb run`) and the operator's CLI.

use clap::Parser;
use lb_userspace::{
    cli::{self, Cli, Command, XdpModeArg},
    config::XdpMode,
    daemon::{self, RunOptions},
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
    match runtime.block_on(dispatch(args.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run { config, xdp_mode } => {
            require_root()?;
            let xdp_mode = xdp_mode.map(|m| match m {
                XdpModeArg::Native => XdpMode::Native,
                XdpModeArg::Skb => XdpMode::Skb,
            });
            daemon::run(RunOptions { config, xdp_mode }).await
        }
        Command::Vip { api, command } => cli::api_cmds::vip(&api.socket, command).await,
        Command::Backend { api, command } => cli::api_cmds::backend(&api.socket, command).await,
        Command::Stats { api, args } => cli::api_cmds::stats(&api.socket, args).await,
        Command::Reload { api } => cli::api_cmds::reload(&api.socket).await,
        Command::Config { api, command } => cli::api_cmds::config(&api.socket, command).await,
        Command::Explain { api, args } => cli::api_cmds::explain(&api.socket, args).await,
        Command::Decap { command } => {
            require_root()?;
            cli::decap_cmd::run(command)
        }
        Command::Down(args) => {
            require_root()?;
            cli::down_cmd::run(args).await
        }
        Command::Check { api, args } => cli::check_cmd::run(&api.socket, &args).await,
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
