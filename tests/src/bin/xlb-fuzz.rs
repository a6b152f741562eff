//! `xlb-fuzz`: runs generated and mutated frames through the real
//! `xlb_balancer` and checks every result against an independent oracle
//! (see `xlb_tests::fuzz`). Needs root. Exits non-zero on any violation.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xlb_tests::fuzz::{
    options::{Command, USAGE},
    runner,
    world::World,
};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xlb-fuzz: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether the oracle accepted everything.
fn run() -> Result<bool> {
    let command = Command::parse(std::env::args().skip(1))?;
    if command == Command::Help {
        print!("{USAGE}");
        return Ok(true);
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "xlb-fuzz must run as root: it loads BPF programs and creates a network namespace \
             (try `sudo -E cargo xtask fuzz`)"
        );
    }
    let mut world = World::setup().context("setting up the fuzzer's namespace and balancer")?;
    match command {
        Command::Help => unreachable!("handled above"),
        Command::Frame(frame) => {
            let (ok, text) = runner::explain_one(&mut world, &frame)?;
            print!("{text}");
            Ok(ok)
        }
        Command::Run(o) => {
            eprintln!(
                "xlb-fuzz: namespace {}, {} VIPs, {} frames from seed {}",
                world.namespace(),
                world.model.vips.len(),
                o.frames,
                o.seed
            );
            let report = runner::run(&mut world, o.frames, o.seed, o.show)?;
            print!("{}", report.render());
            Ok(report.passed())
        }
    }
}
