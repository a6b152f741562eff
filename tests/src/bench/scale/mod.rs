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

mod flow_fill;
pub mod workload;

use std::{net::Ipv4Addr, time::Instant};

use anyhow::{ensure, Context, Result};
use lb_common::{program_names, VipKey, VIP_F_NO_FLOW_TABLE};
use lb_userspace::dataplane::Sizes;
use serde_json::json;

use self::workload::{
    backend, desired, flow_hit, flow_miss, new_flow, pair, vip_addr, vip_key, BACKEND_PREFIX, VIP,
    VIP_NO_FLOWS,
};
use super::{
    env::{BenchEnv, Program},
    per_packet::{self, warmup_calls, warmup_of},
    report::{round, Report, Table},
    scenarios::{NewFlows, Scenario},
    stats::Summary,
    testrun::XDP_PASS,
};

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
const TABLE_SIZE: u32 = 65_537;
/// Connection table of the curves that do not vary it.
const FLOW_TABLE_SIZE: u32 = 262_144;
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
                Curve::Vips => vips(&points, calls),
                Curve::FlowTable => flow_table(&points, calls, home_cpu),
                Curve::Backends => backends(&points, calls),
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

/// `floor_pass` on `frame`: the fixed cost of a test-run call.
fn floor_pass(frame: Vec<u8>) -> Scenario {
    Scenario {
        name: "floor_pass",
        program: Program::Aux(program_names::PASS),
        frames: vec![frame],
        unique_frames: false,
        action: XDP_PASS,
        verdict: None,
        vip: None,
        new_flows: NewFlows::NotApplicable,
        growth: 0,
        live: false,
    }
}

/// New connections counted by the VIPs `vips`, summed.
fn new_flows(env: &BenchEnv, vips: &[VipKey]) -> Result<u64> {
    let mut sum = 0;
    for key in vips {
        let id = env
            .reconciler
            .vip_id(key)
            .with_context(|| format!("VIP {key:?} is not installed"))?;
        sum += env
            .dp
            .vip_stats(id)
            .context("reading XLB_VIP_STATS")?
            .new_flows;
    }
    Ok(sum)
}

/// Measures `sc` (frames to the VIPs `vips`) interleaved with `floor_pass`,
/// and checks the VIPs' connection-table counters over it: none created for
/// `NewFlows::None` (its flows are established first, one call each), one
/// per call (first run, warm-up and timed) for `NewFlows::Every`.
fn measure(
    env: &mut BenchEnv,
    sc: &Scenario,
    expect: NewFlows,
    vips: &[VipKey],
    calls: u32,
) -> Result<Measured> {
    let calls = calls as usize;
    if expect == NewFlows::None {
        // Establish every flow of the scenario (an ACK of an unknown
        // connection creates its entry).
        let ifindex = env.ifindex;
        let prog = env.program(sc.program)?;
        for f in &sc.frames {
            super::testrun::run(prog, f, ifindex, 1)?;
        }
    }
    let floor = floor_pass(sc.frames[0].clone());
    let before = new_flows(env, vips)?;
    let s = per_packet::measure_interleaved(env, &[&floor, sc], calls)
        .with_context(|| sc.name.to_string())?;
    let created = new_flows(env, vips)? - before;
    let want = match expect {
        NewFlows::None => 0,
        NewFlows::Every => (1 + warmup_of(sc, calls) + calls) as u64,
        NewFlows::NotApplicable => created,
    };
    ensure!(
        created == want,
        "{}: {created} connections created over the measurement, expected {want}",
        sc.name
    );
    Ok(Measured {
        name: sc.name,
        floor_pass: s[0],
        summary: s[1],
    })
}

/// Time the kernel gets, after a curve's environment is set up, to finish
/// freeing the previous one's maps (deferred work on both CPUs: hundreds of
/// MiB after a `vips` or `flow_table` sweep) before anything is measured.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A curve's environment with map sizes `sizes`, settled.
fn setup(sizes: Sizes) -> Result<BenchEnv> {
    let env = BenchEnv::setup_sized(sizes)?;
    std::thread::sleep(SETTLE);
    Ok(env)
}

fn keys(addrs: &[Ipv4Addr]) -> Vec<VipKey> {
    addrs.iter().map(|a| vip_key(*a)).collect()
}

fn vips(points: &[u32], calls: u32) -> Result<Vec<Point>> {
    let max = points.iter().copied().max().unwrap_or(1);
    let max_backends = (max as usize * BACKENDS_PER_VIP + 1).next_power_of_two();
    let mut env = setup(Sizes {
        max_vips: max,
        max_backends: max_backends as u32,
        table_size: VIPS_TABLE_SIZE,
        flow_table_size: FLOW_TABLE_SIZE,
    })?;
    env.route_via_gateway(BACKEND_PREFIX);
    let mac = env.if_mac;
    let mut out = Vec::new();
    for &n in points {
        let addrs: Vec<Ipv4Addr> = (0..n as usize).map(vip_addr).collect();
        let with =
            |flags: u32| -> Vec<(Ipv4Addr, u32)> { addrs.iter().map(|a| (*a, flags)).collect() };
        let t = Instant::now();
        env.apply(&desired(&with(0), BACKENDS_PER_VIP))?;
        let install_s = t.elapsed().as_secs_f64();
        let vip_keys = keys(&addrs);
        let first = &addrs[..1];
        // All flows to the first VIP (the others installed, idle: the cost of
        // the lookups as the maps grow), then spread over every VIP (the
        // working set grows with the curve too).
        let hit = flow_hit(first, mac);
        let hit_spread = Scenario {
            name: HIT_SPREAD,
            ..flow_hit(&addrs, mac)
        };
        let mut scenarios = vec![
            measure(&mut env, &hit, NewFlows::None, &vip_keys[..1], calls)?,
            measure(&mut env, &hit_spread, NewFlows::None, &vip_keys, calls)?,
        ];
        // The same VIPs, bypassing the connection table: the Maglev path.
        env.apply(&desired(&with(VIP_F_NO_FLOW_TABLE), BACKENDS_PER_VIP))?;
        let maglev = new_flow(first, mac);
        let maglev_spread = Scenario {
            name: MAGLEV_SPREAD,
            ..new_flow(&addrs, mac)
        };
        scenarios.push(measure(
            &mut env,
            &maglev,
            NewFlows::Every,
            &vip_keys[..1],
            calls,
        )?);
        scenarios.push(measure(
            &mut env,
            &maglev_spread,
            NewFlows::Every,
            &vip_keys,
            calls,
        )?);
        out.push(Point {
            value: n,
            scenarios,
            detail: json!({ "install_s": round(install_s, 2) }),
        });
    }
    Ok(out)
}

fn flow_table(points: &[u32], calls: u32, home_cpu: usize) -> Result<Vec<Point>> {
    let mut env = setup(Sizes {
        max_vips: 4,
        max_backends: 256,
        table_size: TABLE_SIZE,
        flow_table_size: FLOW_TABLE_ENTRIES,
    })?;
    env.route_via_gateway(BACKEND_PREFIX);
    env.apply(&pair(BACKENDS_PER_VIP))?;
    let mac = env.if_mac;
    let capacity = env.dp.flow_capacity();
    let filler_backend = env
        .reconciler
        .backend_id(&vip_key(VIP), backend(0))
        .context("the VIP's first backend has no id")?;
    let miss_frames = calls as usize + warmup_calls(calls) + 1;
    let mut next_filler = 0;
    let mut out = Vec::new();
    for (i, &pct) in points.iter().enumerate() {
        let target = (u64::from(capacity.entries) * u64::from(pct) / 100) as u32;
        if target > 0 {
            flow_fill::fill_to(
                &mut env,
                VIP,
                filler_backend,
                target,
                &mut next_filler,
                home_cpu,
            )?;
        }
        let hit = flow_hit(&[VIP], mac);
        let mut scenarios = vec![measure(
            &mut env,
            &hit,
            NewFlows::None,
            &keys(&[VIP]),
            calls,
        )?];
        let entries = env.dp.flow_count()?;
        let maglev = new_flow(&[VIP_NO_FLOWS], mac);
        scenarios.push(measure(
            &mut env,
            &maglev,
            NewFlows::Every,
            &keys(&[VIP_NO_FLOWS]),
            calls,
        )?);
        // Last: its inserts grow the table (or, when full, evict).
        let miss = flow_miss(VIP, i * miss_frames, miss_frames, mac);
        scenarios.push(measure(
            &mut env,
            &miss,
            NewFlows::Every,
            &keys(&[VIP]),
            calls,
        )?);
        out.push(Point {
            value: pct,
            scenarios,
            detail: json!({
                "entries_when_measured": entries,
                "capacity": capacity.entries,
                "per_cpu_lru_entries": capacity.per_cpu(),
            }),
        });
    }
    Ok(out)
}

fn backends(points: &[u32], calls: u32) -> Result<Vec<Point>> {
    let max = points.iter().copied().max().unwrap_or(1) as usize;
    let mut env = setup(Sizes {
        max_vips: 4,
        max_backends: (2 * max + 1).next_power_of_two() as u32,
        table_size: BACKENDS_TABLE_SIZE,
        flow_table_size: FLOW_TABLE_SIZE,
    })?;
    env.route_via_gateway(BACKEND_PREFIX);
    let mac = env.if_mac;
    let mut out = Vec::new();
    for &n in points {
        let t = Instant::now();
        env.apply(&pair(n as usize))?;
        let install_s = t.elapsed().as_secs_f64();
        let hit = flow_hit(&[VIP], mac);
        let maglev = new_flow(&[VIP_NO_FLOWS], mac);
        let scenarios = vec![
            measure(&mut env, &hit, NewFlows::None, &keys(&[VIP]), calls)?,
            measure(
                &mut env,
                &maglev,
                NewFlows::Every,
                &keys(&[VIP_NO_FLOWS]),
                calls,
            )?,
        ];
        out.push(Point {
            value: n,
            scenarios,
            detail: json!({ "install_s": round(install_s, 2) }),
        });
    }
    Ok(out)
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

impl Results {
    pub fn record(&self, r: &mut Report) {
        let c = |k: &str| format!("{SECTION}.config.{k}");
        r.insert(&c("flows"), workload::FLOWS);
        r.insert(&c("vips_table_size"), VIPS_TABLE_SIZE);
        r.insert(&c("flow_table_table_size"), TABLE_SIZE);
        r.insert(&c("backends_table_size"), BACKENDS_TABLE_SIZE);
        r.insert(&c("backends_per_vip"), BACKENDS_PER_VIP);
        r.insert(&c("flow_table_entries"), FLOW_TABLE_ENTRIES);
        r.insert(&c("flat"), FLAT);
        r.insert(&c("rounds"), self.rounds);
        for cr in &self.curves {
            let base = format!("{SECTION}.{}", cr.curve.name());
            r.insert(&format!("{base}.seconds"), round(cr.seconds, 2));
            if let Some(e) = &cr.error {
                r.insert(&format!("{base}.error"), e.as_str());
                continue;
            }
            r.insert(
                &format!("{base}.points"),
                cr.points.iter().map(|p| p.value).collect::<Vec<_>>(),
            );
            for p in &cr.points {
                let pk = format!("{base}.{}", cr.curve.point_key(p.value));
                if let Some(first) = p.scenarios.first() {
                    // The point's floor: the one measured with its first
                    // scenario (each scenario files its own too).
                    r.insert(
                        &format!("{pk}.floor_pass.median_ns"),
                        first.floor_pass.median_ns,
                    );
                    r.insert(
                        &format!("{pk}.floor_pass.mean_ns"),
                        round(first.floor_pass.mean_ns, 2),
                    );
                }
                for m in &p.scenarios {
                    let k = format!("{pk}.{}", m.name);
                    r.insert(&format!("{k}.median_ns"), m.summary.median_ns);
                    r.insert(&format!("{k}.p99_ns"), m.summary.p99_ns);
                    r.insert(&format!("{k}.mean_ns"), round(m.summary.mean_ns, 2));
                    r.insert(&format!("{k}.above_floor_pass_ns"), m.above_floor_pass_ns());
                    r.insert(&format!("{k}.floor_pass_median_ns"), m.floor_pass.median_ns);
                }
                r.insert(&format!("{pk}.detail"), p.detail.clone());
            }
            for name in SCENARIOS {
                if let Some(g) = cr.growth(name) {
                    r.insert(&format!("{base}.growth.{name}"), round(g, 3));
                }
                if let Some(m) = cr.max_over_min_median(name) {
                    r.insert(&format!("{base}.max_over_min.{name}"), round(m, 3));
                    r.insert(&format!("{base}.flat.{name}"), m <= FLAT);
                }
                if let Some(m) = cr.max_over_min_vs_floor(name) {
                    r.insert(&format!("{base}.max_over_min_vs_floor.{name}"), round(m, 3));
                }
            }
        }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(&[
            "scale point",
            "floor_pass",
            "flow_hit",
            "above floor",
            "maglev (new_flow)",
            "above floor",
            "flow_miss",
            "flow_hit spread",
            "maglev spread",
        ]);
        for cr in &self.curves {
            if cr.error.is_some() {
                t.row(vec![format!("{}: error (below)", cr.curve.name())]);
                continue;
            }
            for p in &cr.points {
                let cell = |name: &str| {
                    p.get(name)
                        .map(|m| format!("{} ns", m.summary.median_ns))
                        .unwrap_or_else(|| "-".into())
                };
                let above = |name: &str| {
                    p.get(name)
                        .map(|m| format!("{} ns", m.above_floor_pass_ns()))
                        .unwrap_or_else(|| "-".into())
                };
                let floor = p
                    .scenarios
                    .first()
                    .map(|m| format!("{} ns", m.floor_pass.median_ns))
                    .unwrap_or_else(|| "-".into());
                t.row(vec![
                    cr.curve.label(p.value),
                    floor,
                    cell("v4_tcp_flow_hit"),
                    above("v4_tcp_flow_hit"),
                    cell("v4_tcp_new_flow"),
                    above("v4_tcp_new_flow"),
                    cell("v4_tcp_flow_miss"),
                    cell(HIT_SPREAD),
                    cell(MAGLEV_SPREAD),
                ]);
            }
            let flat =
                |name: &str| match (cr.max_over_min_median(name), cr.max_over_min_vs_floor(name)) {
                    (Some(m), Some(f)) => {
                        let flag = if m > FLAT { " NOT FLAT" } else { "" };
                        format!("x{m:.2} (x{f:.2} vs floor){flag}")
                    }
                    _ => "-".into(),
                };
            t.row(vec![
                format!("{}: max / min", cr.curve.name()),
                String::new(),
                flat("v4_tcp_flow_hit"),
                String::new(),
                flat("v4_tcp_new_flow"),
                String::new(),
                flat("v4_tcp_flow_miss"),
                flat(HIT_SPREAD),
                flat(MAGLEV_SPREAD),
            ]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
