//! Shared by `demo`, `bench` and `fuzz`: install what is missing, build `xlb` and a
//! driver binary of the tests crate in release mode, and run the driver as
//! root with `XLB_BINARY` pointing at the release `xlb`.

use std::{ffi::OsString, process::Command};

use anyhow::{ensure, Context, Result};

use crate::{command, paths, setup};

/// Runs `target/release/<bin> <args>`; `what` names the task in messages.
pub fn build_and_run(bin: &str, what: &str, args: &[OsString]) -> Result<()> {
    ensure!(
        setup::is_root(),
        "{what} creates network namespaces and loads XDP programs: run it as root"
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
        bin,
    ]))
    .with_context(|| format!("building xlb and {bin}"))?;
    let target = root.join("target").join("release");
    let mut cmd = Command::new(target.join(bin));
    cmd.current_dir(&root)
        .env("XLB_BINARY", target.join("xlb"))
        .args(args);
    // The driver removes its namespaces on Ctrl-C: wait for it.
    command::run_forwarding_signals(&mut cmd).with_context(|| format!("running {what}"))
}
