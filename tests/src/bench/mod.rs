//! `xlb-bench`: what the data plane costs, measured on the real programs.
//!
//! Each benchmark *part* is a module with a `run` function that returns its
//! results, and a `record` method that files them into the shared [`Report`]
//! under its own top-level key. The binary (`src/bin/xlb-bench.rs`) parses the
//! [`Options`], sets up what the parts need, runs the selected parts, prints
//! their tables and writes the JSON report. A new part (end-to-end, control
//! plane) adds a [`Part`] variant, a module, and its key in the report.
//!
//! - [`per_packet`]: kernel-reported time of one `BPF_PROG_TEST_RUN` call per
//!   packet (`repeat = 1`, so every call sees the original frame), against the
//!   floors `xlb_pass` and `xlb_floor_tx`.
//! - [`live`]: live-frames test runs that really transmit through a veth pair
//!   into a counting sink: packets per second from one core.
//! - [`e2e`]: end-to-end throughput through a balancer namespace (generator
//!   namespace -> balancer namespace -> sink namespace) for xlb, nftables DNAT
//!   and plain kernel forwarding, with the balancer namespace's CPU time.
//! - [`control`]: control-plane costs (Maglev builds, weight changes, scale).
//! - [`scale`]: per-packet cost curves as VIPs, connection-table entries and
//!   backends grow.
//!
//! Each part also lists the JSON keys every run of it files
//! (`REQUIRED_KEYS`, beside the code that files them); [`required_keys`]
//! collects them, and `xlb-bench --check-keys` (CI's smoke run) fails when
//! its report lacks one.
//!
//! `per_packet` and `live` share one [`env::BenchEnv`]: a namespace with the
//! veth pair, the balancer loaded with its maps filled by the reconciler (as
//! the daemon does), static neighbours for every backend, and the sink on the
//! peer. `e2e` builds its own three namespaces.

pub mod control;
pub mod e2e;
pub mod env;
pub mod live;
pub mod machine;
pub mod options;
pub mod per_packet;
pub mod plot;
pub mod report;
pub mod scale;
pub mod scenarios;
pub mod stats;
pub mod testrun;

pub use options::{Options, Part};
pub use report::{Report, Table};

/// Keys a report must hold after running the parts `runs` selects: the
/// machine's, and every selected part's `REQUIRED_KEYS`.
pub fn required_keys(runs: impl Fn(Part) -> bool) -> Vec<&'static str> {
    let mut keys = machine::REQUIRED_KEYS.to_vec();
    for part in Part::ALL.into_iter().filter(|&p| runs(p)) {
        keys.extend_from_slice(match part {
            Part::PerPacket => per_packet::REQUIRED_KEYS,
            Part::Live => live::REQUIRED_KEYS,
            Part::E2e => e2e::REQUIRED_KEYS,
            Part::Control => control::REQUIRED_KEYS,
            Part::Scale => scale::REQUIRED_KEYS,
        });
    }
    keys
}

/// The combined table of the data-plane parts: one row per scenario found in
/// `per_packet` or `live` of `report`, known scenarios in [`scenarios::ORDER`].
pub fn dataplane_table(report: &Report) -> Table {
    // Every key of these sections is a scenario (settings live in `config`).
    let mut found: Vec<String> = Vec::new();
    for section in [per_packet::SECTION, live::SECTION] {
        if let Some(obj) = report.get(section).and_then(|v| v.as_object()) {
            found.extend(obj.keys().cloned());
        }
    }
    let mut names: Vec<String> = scenarios::ORDER
        .iter()
        .filter(|n| found.iter().any(|f| f == *n))
        .map(|n| n.to_string())
        .collect();
    for f in found {
        if !names.contains(&f) {
            names.push(f);
        }
    }
    let mut t = Table::new(&[
        "scenario",
        "median ns",
        "p99 ns",
        "above floor_pass ns",
        "x floor_pass",
        "x floor_tx",
        "above floor_lb ns",
        "live Mpps",
        "live share of floor_tx",
    ]);
    let num = |path: String, digits: usize| {
        report
            .get(&path)
            .and_then(|v| v.as_f64())
            .map(|x| format!("{x:.digits$}"))
            .unwrap_or_else(|| "-".to_string())
    };
    for name in names {
        let pp = per_packet::SECTION;
        let live_cell = match report.get(&format!("{}.{name}.pps", live::SECTION)) {
            Some(v) => v
                .as_f64()
                .map(|pps| format!("{:.2}", pps / 1e6))
                .unwrap_or_else(|| "-".to_string()),
            None if report
                .get(&format!("{}.{name}.error", live::SECTION))
                .is_some() =>
            {
                "error".to_string()
            }
            None => "-".to_string(),
        };
        t.row(vec![
            name.clone(),
            num(format!("{pp}.{name}.median_ns"), 0),
            num(format!("{pp}.{name}.p99_ns"), 0),
            num(format!("{pp}.{name}.above_floor_pass_ns"), 0),
            num(format!("{pp}.{name}.ratio_to_floor_pass"), 2),
            num(format!("{pp}.{name}.ratio_to_floor"), 2),
            num(format!("{pp}.{name}.above_floor_lb_ns"), 0),
            live_cell,
            num(format!("{}.{name}.share_of_floor_tx", live::SECTION), 3),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_contributes_its_keys() {
        // What CI has always required of a full `--quick` run: keys are
        // added, never renamed or dropped.
        let all = required_keys(|_| true);
        for key in [
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
            "per_packet.v4_tcp_flow_hit.above_floor_pass_ns",
            "per_packet.v4_tcp_flow_hit.ratio_to_floor_pass",
            "per_packet.non_vip.above_floor_pass_ns",
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
        ] {
            assert!(all.contains(&key), "{key} is no longer required");
        }
        let e2e_only = required_keys(|p| p == Part::E2e);
        assert_eq!(
            e2e_only,
            [machine::REQUIRED_KEYS, e2e::REQUIRED_KEYS].concat()
        );
    }
}
