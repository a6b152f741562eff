//! `cargo xtask demo [--keep]`: installs what is missing, builds xlb in release
//! mode, and runs the demo driver (`xlb-demo`, in the tests crate) as root.

use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::{command, paths, setup};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Leave the rack up after the report (with instructions) until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: &Args) -> Result<()> {
    ensure!(
        setup::is_root(),
        "the demo creates network namespaces and attaches XDP programs: run it as root"
    );
    setup::run().context("installing prerequisites")?;
    let root = paths::workspace_root()?;
    command::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "lb-userspace",
        "--bin",
        "xlb",
        "-p",
        "xlb-tests",
        "--bin",
        "xlb-demo",
    ]))
    .context("building xlb and the demo")?;
    let target = root.join("target").join("release");
    let mut demo = Command::new(target.join("xlb-demo"));
    demo.current_dir(&root)
        .env("XLB_BINARY", target.join("xlb"));
    if args.keep {
        demo.arg("--keep");
    }
    command::run(&mut demo).context("running the demo")
}
