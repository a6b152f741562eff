//! `cargo xtask bench [--quick] [--json FILE] [--only PART] [--check-keys]`:
//! installs what is missing, builds xlb and the benchmark in release mode,
//! and runs `xlb-bench` (tests/src/bin/xlb-bench.rs) as root. Also the CI
//! smoke check: a `--quick --check-keys` run, whose report must hold every key
//! BENCHMARKS.md promises. The benchmark checks that itself: each of its
//! parts lists the keys it files beside the code that files them
//! (`xlb_tests::bench::required_keys`).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::{paths, release_tool};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Small counts, every part (under two minutes): the CI smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run only this part: per-packet, live, e2e, control, scale.
    #[arg(long)]
    pub only: Option<String>,
    /// Fail unless the report holds every key the parts run promise.
    #[arg(long)]
    pub check_keys: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let mut extra: Vec<OsString> = Vec::new();
    if args.quick {
        extra.push("--quick".into());
    }
    if let Some(j) = &args.json {
        extra.push("--json".into());
        extra.push(j.into());
    }
    if let Some(p) = &args.only {
        extra.push("--only".into());
        extra.push(p.into());
    }
    if args.check_keys {
        extra.push("--check-keys".into());
    }
    extra.push("--plot-dir".into());
    extra.push(plot_dir(args)?.into());
    release_tool::build_and_run("xlb-bench", "the benchmark", &extra)
}

/// Where the plots go: a full run of every part draws the ones BENCHMARKS.md
/// shows (docs/bench/{per_packet,scale}.svg); a quick or partial run draws
/// into target/bench/, leaving those alone.
fn plot_dir(args: &Args) -> Result<PathBuf> {
    let root = paths::workspace_root()?;
    Ok(if args.quick || args.only.is_some() {
        root.join("target").join("bench")
    } else {
        root.join("docs").join("bench")
    })
}

/// The CI smoke check: a quick run of every part into `json` that fails
/// unless the report holds every required key, and a JSON file that parses.
pub fn smoke(json: &Path) -> Result<()> {
    let _ = std::fs::remove_file(json);
    run(&Args {
        quick: true,
        json: Some(json.to_path_buf()),
        only: None,
        check_keys: true,
    })?;
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("the benchmark wrote no JSON at {}", json.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the benchmark JSON does not parse")?;
    if !value.is_object() {
        bail!("the benchmark JSON is not an object");
    }
    println!("bench smoke: {} has every required key", json.display());
    Ok(())
}
