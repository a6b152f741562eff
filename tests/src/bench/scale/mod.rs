//! Scale curves: what one packet costs as the work grows. Per-packet medians
//! (one `BPF_PROG_TEST_RUN` call per packet, as in [`super::per_packet`]) of
//! the IPv4 flow-hit path (`v4_tcp_flow_hit`) and the Maglev path
//! (`v4_tcp_new_flow`, VIPs that bypass the connection table) at each point
//! of three curves:
//!
//! - `vips`: 1, 100, 10,000 VIPs (100 backends each, tables of
//!   [`VIPS_TABLE_SIZE`] slots: 10,000 production-size tables would take
//!   2.6 GB, and the config caps `max_vips` at 4,096 and the tables at 1 GiB;
//!   the data plane is loaded here with the sizes the point needs);
//! - `flow_table`: a table of [`FLOW_TABLE_ENTRIES`] entries empty, half and
//!   completely full of other flows' entries (also `v4_tcp_flow_miss`: a new
//!   connection per packet, whose insert evicts once the table is full);
//! - `backends`: 10, 1,000, 10,000 backends per VIP (tables of
//!   [`BACKENDS_TABLE_SIZE`] slots, over 13 per backend).
//!
//! Every point sends the same [`workload::FLOWS`] flows (one frame each, in
//! turn), spread over all of the point's VIPs, so only the curve's variable
//! changes. Each scenario of a point is measured interleaved with
//! `floor_pass` (the fixed cost of a test-run call) in the same namespace
//! ([`per_packet::measure_interleaved`], with its action and verdict
//! checks); the connection-table counters of all the point's VIPs are
//! checked around each measurement. A full run sweeps each curve
//! [`ROUNDS`] times and reports each point's median round; `--quick` sweeps
//! once, over only each curve's smallest and largest point.
//!
//! Flatness: per curve and scenario, the largest median over the smallest
//! (`max_over_min`, flagged when over [`FLAT`]), and the same of the medians
//! divided by their own `floor_pass` median (`max_over_min_vs_floor`: the
//! VM's speed drifts between points, the ratio to the floor cancels it).
//!
//! Keys: `scale.<curve>.<point>.<scenario>.{median_ns,p99_ns,mean_ns,
//! above_floor_pass_ns,floor_pass_median_ns}`,
//! `scale.<curve>.{max_over_min,max_over_min_vs_floor,flat,growth}.<scenario>`
//! (growth: largest point's median / smallest point's); a curve that failed
//! files `scale.<curve>.error` instead.

mod curves;
mod flow_fill;
mod report;
pub mod workload;

use std::time::Instant;

use super::stats::Summary;

pub const SECTION: &str = "scale";
/// Slots of each VIP's table on the `vips` curve.
pub const VIPS_TABLE_SIZE: u32 = 4093;
/// Backends of each VIP on the `vips` and `flow_table` curves.
pub const BACKENDS_PER_VIP: usize = 100;
/// Entries of the connection table on the `flow_table` curve.
pub const FLOW_TABLE_ENTRIES: u32 = 1_000_000;
/// Slots of each VIP's table on the `backends` curve: 13 per backend at
/// 10,000 backends (Maglev wants many more slots than backends).
pub const BACKENDS_TABLE_SIZE: u32 = 131_071;
/// Production table size (the `flow_table` curve's).
pub const TABLE_SIZE: u32 = 65_537;
/// Connection table of the curves that do not vary it.
pub const FLOW_TABLE_SIZE: u32 = 262_144;
/// Sweeps over each curve's points in a full run (`--quick`: one); each
/// point reports its median round. Points of one curve cannot be measured
/// interleaved (each is a different map state), so a few sweeps keep one
/// slow spell of the VM from bending a curve.
pub const ROUNDS: usize = 3;
/// Largest growth (largest point / smallest) the issue calls flat.
pub const FLAT: f64 = 1.15;

/// Keys every run of this part files (CI checks them after `--quick`): both
/// ends of every curve for both paths, and the growth between them.
pub const REQUIRED_KEYS: &[&str] = &[
    "scale.vips.1.v4_tcp_flow_hit.median_ns",
    "scale.vips.10000.v4_tcp_flow_hit.median_ns",
    "scale.vips.1.v4_tcp_new_flow.median_ns",
    "scale.vips.10000.v4_tcp_new_flow.median_ns",
    "scale.vips.growth.v4_tcp_flow_hit",
    "scale.vips.max_over_min.v4_tcp_flow_hit",
    "scale.vips.max_over_min.v4_tcp_new_flow",
    "scale.flow_table.fill_0.v4_tcp_flow_hit.median_ns",
    "scale.flow_table.fill_100.v4_tcp_flow_hit.median_ns",
    "scale.flow_table.fill_0.v4_tcp_new_flow.median_ns",
    "scale.flow_table.fill_100.v4_tcp_new_flow.median_ns",
    "scale.flow_table.growth.v4_tcp_flow_hit",
    "scale.flow_table.max_over_min.v4_tcp_flow_hit",
    "scale.flow_table.max_over_min.v4_tcp_new_flow",
    "scale.backends.10.v4_tcp_flow_hit.median_ns",
    "scale.backends.10000.v4_tcp_flow_hit.median_ns",
    "scale.backends.10.v4_tcp_new_flow.median_ns",
    "scale.backends.10000.v4_tcp_new_flow.median_ns",
    "scale.backends.growth.v4_tcp_flow_hit",
    "scale.backends.max_over_min.v4_tcp_flow_hit",
    "scale.backends.max_over_min.v4_tcp_new_flow",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    Vips,
    FlowTable,
    Backends,
}

impl Curve {
    pub const ALL: [Curve; 3] = [Curve::Vips, Curve::FlowTable, Curve::Backends];

    pub fn name(self) -> &'static str {
        match self {
            Curve::Vips => "vips",
            Curve::FlowTable => "flow_table",
            Curve::Backends => "backends",
        }
    }

    /// The points: VIPs, percent of the connection table filled, backends
    /// per VIP.
    pub fn points(self, quick: bool) -> Vec<u32> {
        let all = match self {
            Curve::Vips => vec![1, 100, 10_000],
            Curve::FlowTable => vec![0, 50, 100],
            Curve::Backends => vec![10, 1_000, 10_000],
        };
        if quick {
            vec![all[0], all[all.len() - 1]]
        } else {
            all
        }
    }

    /// A point's key in the report.
    pub fn point_key(self, p: u32) -> String {
        match self {
            Curve::FlowTable => format!("fill_{p}"),
            _ => p.to_string(),
        }
    }

    /// A point as the table prints it.
    pub fn label(self, p: u32) -> String {
        match self {
            Curve::Vips => format!("{p} VIPs"),
            Curve::FlowTable => format!("flow table {p}% of {FLOW_TABLE_ENTRIES}"),
            Curve::Backends => format!("{p} backends/VIP"),
        }
    }
}

/// One scenario at one point, and the `floor_pass` measured interleaved
/// with it.
#[derive(Clone, Debug)]
pub struct Measured {
    pub name: &'static str,
    pub summary: Summary,
    pub floor_pass: Summary,
}

impl Measured {
    pub fn above_floor_pass_ns(&self) -> i64 {
        self.summary.median_ns as i64 - self.floor_pass.median_ns as i64
    }

    /// median / its floor_pass median.
    pub fn vs_floor(&self) -> Option<f64> {
        (self.floor_pass.median_ns > 0)
            .then(|| self.summary.median_ns as f64 / self.floor_pass.median_ns as f64)
    }
}

/// One point: each scenario, measured in the same namespace.
#[derive(Clone, Debug)]
pub struct Point {
    pub value: u32,
    pub scenarios: Vec<Measured>,
    /// What the point held when measured (entries, ids, ...).
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct CurveResult {
    pub curve: Curve,
    pub points: Vec<Point>,
    pub error: Option<String>,
    pub seconds: f64,
}

impl Point {
    pub fn get(&self, scenario: &str) -> Option<&Measured> {
        self.scenarios.iter().find(|m| m.name == scenario)
    }
}

impl CurveResult {
    /// Largest point's median / smallest point's, for `scenario`.
    pub fn growth(&self, scenario: &str) -> Option<f64> {
        let median = |p: &Point| p.get(scenario).map(|m| m.summary.median_ns as f64);
        let (first, last) = (self.points.first()?, self.points.last()?);
        let (a, b) = (median(first)?, median(last)?);
        (self.points.len() > 1 && a > 0.0).then(|| b / a)
    }

    /// Largest / smallest of `f` over the points that measured `scenario`.
    fn max_over_min(&self, scenario: &str, f: impl Fn(&Measured) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self
            .points
            .iter()
            .filter_map(|p| p.get(scenario).and_then(&f))
            .collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        (v.len() > 1 && min > 0.0).then(|| max / min)
    }

    /// Largest median / smallest median of `scenario` over the points.
    pub fn max_over_min_median(&self, scenario: &str) -> Option<f64> {
        self.max_over_min(scenario, |m| Some(m.summary.median_ns as f64))
    }

    /// The same of median / floor_pass median.
    pub fn max_over_min_vs_floor(&self, scenario: &str) -> Option<f64> {
        self.max_over_min(scenario, Measured::vs_floor)
    }
}

#[derive(Clone, Debug)]
pub struct Results {
    pub curves: Vec<CurveResult>,
    /// Sweeps per curve.
    pub rounds: usize,
}

/// Measures every curve with `calls` timed calls per scenario and point. A
/// curve that fails is reported as such; the others still run.
pub fn run(calls: u32, quick: bool, home_cpu: usize) -> Results {
    let rounds = if quick { 1 } else { ROUNDS };
    let mut curves = Vec::new();
    for curve in Curve::ALL {
        let t = Instant::now();
        let points = curve.points(quick);
        let mut sweeps = Vec::new();
        let mut error = None;
        for round in 1..=rounds {
            eprintln!(
                "scale: {} {:?}, round {round}/{rounds}",
                curve.name(),
                points
            );
            let r = match curve {
                Curve::Vips => curves::vips(&points, calls),
                Curve::FlowTable => curves::flow_table(&points, calls, home_cpu),
                Curve::Backends => curves::backends(&points, calls),
            };
            match r {
                Ok(p) => sweeps.push(p),
                Err(e) => {
                    eprintln!("scale {}: {e:#}", curve.name());
                    error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        curves.push(CurveResult {
            curve,
            points: if error.is_some() {
                Vec::new()
            } else {
                median_sweep(sweeps)
            },
            error,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    Results { curves, rounds }
}

/// Per point and scenario, the round whose median is the median of the
/// rounds' (with the `floor_pass` measured beside it in that round).
fn median_sweep(mut sweeps: Vec<Vec<Point>>) -> Vec<Point> {
    let Some(mut out) = sweeps.pop() else {
        return Vec::new();
    };
    for (i, point) in out.iter_mut().enumerate() {
        for m in &mut point.scenarios {
            let mut all: Vec<Measured> = sweeps
                .iter()
                .filter_map(|s| s.get(i)?.get(m.name).cloned())
                .chain(std::iter::once(m.clone()))
                .collect();
            all.sort_by_key(|x| x.summary.median_ns);
            *m = all[(all.len() - 1) / 2].clone();
        }
    }
    out
}

/// The `vips` curve's flow-hit and Maglev scenarios with the flows spread
/// over every VIP of the point (the plain ones send all to one VIP).
pub const HIT_SPREAD: &str = "v4_tcp_flow_hit_spread";
pub const MAGLEV_SPREAD: &str = "v4_tcp_new_flow_spread";

/// The scenarios the curves measure, in table order.
pub const SCENARIOS: [&str; 5] = [
    "v4_tcp_flow_hit",
    "v4_tcp_new_flow",
    "v4_tcp_flow_miss",
    HIT_SPREAD,
    MAGLEV_SPREAD,
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bench::report::Report;

    fn measured(name: &'static str, median: u64) -> Measured {
        Measured {
            name,
            summary: Summary::of(&mut [median]).unwrap(),
            floor_pass: Summary::of(&mut [70]).unwrap(),
        }
    }

    #[test]
    fn each_point_reports_its_median_round() {
        let sweep = |hit: u64| {
            vec![Point {
                value: 1,
                scenarios: vec![measured("v4_tcp_flow_hit", hit)],
                detail: json!({}),
            }]
        };
        let merged = median_sweep(vec![sweep(300), sweep(200), sweep(250)]);
        assert_eq!(merged[0].scenarios[0].summary.median_ns, 250);
        assert!(median_sweep(Vec::new()).is_empty());
    }

    #[test]
    fn a_quick_run_files_every_required_key() {
        let curves = Curve::ALL
            .iter()
            .map(|&curve| CurveResult {
                curve,
                points: curve
                    .points(true)
                    .into_iter()
                    .map(|value| Point {
                        value,
                        scenarios: vec![
                            measured("v4_tcp_flow_hit", 200 + value as u64 / 100),
                            measured("v4_tcp_new_flow", 190),
                        ],
                        detail: json!({}),
                    })
                    .collect(),
                error: None,
                seconds: 1.0,
            })
            .collect();
        let mut report = Report::new();
        Results { curves, rounds: 1 }.record(&mut report);
        assert_eq!(report.missing(REQUIRED_KEYS), Vec::<&str>::new());
        assert_eq!(
            report.get("scale.vips.growth.v4_tcp_flow_hit"),
            Some(&json!(1.5))
        );
        assert_eq!(
            report.get("scale.vips.10000.v4_tcp_flow_hit.above_floor_pass_ns"),
            Some(&json!(230))
        );
        // 300 / 200 ns: over the flatness limit; 190 / 190: flat.
        assert_eq!(
            report.get("scale.vips.max_over_min.v4_tcp_flow_hit"),
            Some(&json!(1.5))
        );
        assert_eq!(
            report.get("scale.vips.flat.v4_tcp_flow_hit"),
            Some(&json!(false))
        );
        assert_eq!(
            report.get("scale.vips.flat.v4_tcp_new_flow"),
            Some(&json!(true))
        );
    }
}
