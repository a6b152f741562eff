//! Reading the daemon's stats through the CLI (`xlb stats --json`).

use lb_common::Verdict;
use lb_userspace::stats::StatsSnapshot;

use crate::xlb_process::Daemon;

pub fn stats(d: &Daemon) -> StatsSnapshot {
    let text = d.cli(&["stats", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("xlb stats --json: {e}: {text}"))
}

pub fn verdict(s: &StatsSnapshot, v: Verdict) -> u64 {
    s.verdicts
        .iter()
        .find(|(r, _)| r == v.as_str())
        .map(|(_, n)| *n)
        .unwrap_or(0)
}
