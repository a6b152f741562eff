//! `cargo xtask package`: the Debian package of xlb (cargo-deb, configured in
//! lb-userspace/Cargo.toml under `[package.metadata.deb]`).
//!
//! Steps: build `xlb` in release mode; let that binary write its shell
//! completions and man pages from its clap definitions (the hidden
//! `generate-completions` / `generate-man` commands) into
//! `target/release/xlb-package/`, where the package's asset list expects
//! them; then `cargo deb --no-build` packs the binary, the systemd unit
//! (contrib/systemd/xlb.service), the example config as the conffile
//! /etc/xlb/xlb.toml, completions, man pages and the monitoring files.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{command, paths, setup::cargo_deb};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for the .deb (default: target/debian).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Shells whose completions the package ships, with the file name each
/// shell looks for and the directory it looks in.
const COMPLETIONS: &[(&str, &str)] = &[("bash", "xlb.bash"), ("zsh", "_xlb"), ("fish", "xlb.fish")];

pub fn run(args: &Args) -> Result<()> {
    let deb = build(args.out_dir.as_deref())?;
    println!("package: {}", deb.display());
    Ok(())
}

/// Builds the package and returns the path of the .deb.
pub fn build(out_dir: Option<&Path>) -> Result<PathBuf> {
    let cargo_deb = cargo_deb::find().map_err(|why| {
        anyhow::anyhow!(
            "{why}: run `cargo xtask setup` (it installs cargo-deb {})",
            cargo_deb::VERSION
        )
    })?;
    let root = paths::workspace_root()?;
    command::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "lb-userspace",
        "--bin",
        "xlb",
    ]))
    .context("building xlb in release mode")?;
    let target = target_dir(&root)?;
    let xlb = target.join("release").join("xlb");
    let assets = target.join("release").join("xlb-package");
    generate_docs(&xlb, &assets)?;

    let out_dir = match out_dir {
        Some(d) => d.to_path_buf(),
        None => target.join("debian"),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // cargo-deb prints the path of the .deb it wrote as its last line.
    let out = command::stdout_of(
        Command::new(&cargo_deb)
            .current_dir(&root)
            .args(["-p", "lb-userspace", "--no-build", "--output"])
            .arg(&out_dir),
    )
    .context("cargo deb")?;
    let deb = out
        .lines()
        .map(str::trim)
        .rfind(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo deb did not name the package it wrote:\n{out}"))?;
    if !deb.is_file() {
        bail!("cargo deb named {}, which does not exist", deb.display());
    }
    Ok(deb)
}

/// Completions and man pages, written by the binary being packaged.
fn generate_docs(xlb: &Path, dir: &Path) -> Result<()> {
    // Stale pages of a renamed command must not be packaged.
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for (shell, file) in COMPLETIONS {
        let script = command::stdout_of(Command::new(xlb).args(["generate-completions", shell]))?;
        let path = completions.join(file);
        std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    }
    let man = dir.join("man");
    command::run(
        Command::new(xlb)
            .args(["generate-man", "--out-dir"])
            .arg(&man),
    )?;
    // Debian policy: man pages gzipped with maximum compression and no
    // timestamp (-n) in the header, so builds are reproducible.
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(&man).with_context(|| format!("listing {}", man.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", man.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "1") {
            pages.push(path);
        }
    }
    if pages.is_empty() {
        bail!("xlb generate-man wrote no page into {}", man.display());
    }
    command::run(Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages))
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`), as cargo-deb
/// resolves the `target/release/` asset paths.
fn target_dir(root: &Path) -> Result<PathBuf> {
    let json = command::stdout_of(Command::new("cargo").current_dir(root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let meta: serde_json::Value =
        serde_json::from_str(&json).context("parsing `cargo metadata` output")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` reports no target_directory")
}
