//! `cargo xtask bench [--quick] [--json FILE] [--only PART]`: installs what is
//! missing, builds xlb and the benchmark in release mode, and runs `xlb-bench`
//! (tests/src/bin/xlb-bench.rs) as root. Also the CI smoke check: a `--quick`
//! run whose JSON must hold every key BENCHMARKS.md promises.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::release_tool;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Small counts, every part (under two minutes): the CI smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run only this part: per-packet, live, e2e, control.
    #[arg(long)]
    pub only: Option<String>,
}

/// Keys every full or quick report must contain (per-packet scenarios and the
/// control-plane sizes are listed in full).
pub const REQUIRED_KEYS: &[&str] = &[
    "machine.cpu_model",
    "machine.cores",
    "machine.kernel",
    "per_packet.floor_pass.median_ns",
    "per_packet.floor_tx.median_ns",
    "per_packet.non_vip.median_ns",
    "per_packet.v4_tcp_flow_hit.median_ns",
    "per_packet.v4_tcp_flow_hit.p99_ns",
    "per_packet.v4_tcp_flow_hit.ratio_to_floor",
    "per_packet.v4_tcp_new_flow.median_ns",
    "per_packet.v6_tcp_flow_hit.median_ns",
    "per_packet.v4_udp.median_ns",
    "per_packet.v4_tcp_vlan.median_ns",
    "live.v4_tcp_flow_hit.pps",
    "e2e.xlb.pps",
    "e2e.nftables.pps",
    "e2e.ceiling.pps",
    "control.maglev_build_ms.65537_10",
    "control.maglev_build_ms.65537_100",
    "control.maglev_build_ms.65537_1000",
    "control.maglev_build_ms.131071_1000",
    "control.weight_change_live_ms",
    "control.daemon_rss_mib",
];

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
    release_tool::build_and_run("xlb-bench", "the benchmark", &extra)
}

/// The CI smoke check: a quick run into `json`, then every required key.
pub fn smoke(json: &Path) -> Result<()> {
    let _ = std::fs::remove_file(json);
    run(&Args {
        quick: true,
        json: Some(json.to_path_buf()),
        only: None,
    })?;
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("the benchmark wrote no JSON at {}", json.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the benchmark JSON does not parse")?;
    let missing = missing_keys(&value);
    if !missing.is_empty() {
        bail!("the benchmark JSON lacks {}", missing.join(", "));
    }
    println!("bench smoke: {} has every required key", json.display());
    Ok(())
}

fn missing_keys(v: &serde_json::Value) -> Vec<&'static str> {
    REQUIRED_KEYS
        .iter()
        .filter(|k| {
            let mut cur = v;
            for part in k.split('.') {
                match cur.get(part) {
                    Some(next) => cur = next,
                    None => return true,
                }
            }
            cur.is_null()
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_and_null_keys() {
        let v = serde_json::json!({"machine": {"cpu_model": "x", "cores": 2, "kernel": null}, "e2e": {"xlb": {"pps": 1.0}}});
        let missing = missing_keys(&v);
        assert!(
            missing.contains(&"machine.kernel"),
            "null counts as missing"
        );
        assert!(!missing.contains(&"machine.cores"));
        assert!(!missing.contains(&"e2e.xlb.pps"));
        assert!(missing.contains(&"control.daemon_rss_mib"));
    }
}
