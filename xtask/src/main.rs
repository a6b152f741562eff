//! xlb's developer tasks, run as `cargo xtask <command>` (alias in
//! .cargo/config.toml). One module per command; to add one, add a variant to
//! [`Task`] and a module with `Args` and `run`.

mod bench;
mod build_ebpf;
mod command;
mod demo;
mod elf;
mod fuzz;
mod package;
mod paths;
mod release_tool;
mod setup;
mod test;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "xlb's developer tasks",
    version
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Install what building and testing xlb needs, skipping what is present:
    /// apt packages, the nightly toolchain with rust-src, rustfmt/clippy,
    /// bpf-linker 0.13.0 (built against the nightly's libLLVM).
    Setup,
    /// Build the XDP programs (lb-ebpf) for bpfel-unknown-none; use
    /// `--release` (recommended).
    BuildEbpf(build_ebpf::Args),
    /// Run everything CI runs: setup, fmt, clippy, the release eBPF build and
    /// `cargo test --workspace`.
    Test(test::Args),
    /// See xlb balance real connections in a rack of network namespaces, with
    /// a built-in config; prints a report. Needs root.
    Demo(demo::Args),
    /// Run generated and mutated frames through the real balancer and check
    /// every result against an independent oracle. Needs root.
    Fuzz(fuzz::Args),
    /// Build the Debian package (target/debian/xlb_*.deb): xlb, its systemd
    /// unit, the example config as /etc/xlb/xlb.toml, shell completions, man
    /// pages, the Grafana dashboard and alert rules. Needs cargo-deb (setup).
    Package(package::Args),
    /// Measure per-packet cost, throughput against nftables and plain
    /// forwarding, and control-plane speed (see BENCHMARKS.md). Needs root.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The chain of causes, without the backtrace anyhow adds under
            // RUST_BACKTRACE: the failing command is what matters here.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    // Before anything else (and before any thread): children find cargo,
    // rustup and bpf-linker in $CARGO_HOME/bin.
    paths::prepend_cargo_bin_to_path()?;
    match task {
        Task::Setup => setup::run(),
        Task::BuildEbpf(args) => build_ebpf::run(&args).map(drop),
        Task::Test(args) => test::run(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Package(args) => package::run(&args),
    }
}
