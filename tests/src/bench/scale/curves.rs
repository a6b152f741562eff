//! The curves' measurements: each sets up a namespace with the map sizes
//! its points need, installs each point's state, and measures the point's
//! scenarios (see the parent module for what and why).

use std::{net::Ipv4Addr, time::Instant};

use anyhow::{ensure, Context, Result};
use lb_common::{program_names, VipKey, VIP_F_NO_FLOW_TABLE};
use lb_userspace::dataplane::Sizes;
use serde_json::json;

use super::{
    flow_fill,
    workload::{
        backend, desired, flow_hit, flow_miss, new_flow, pair, vip_addr, vip_key, BACKEND_PREFIX,
        VIP, VIP_NO_FLOWS,
    },
    Measured, Point, BACKENDS_PER_VIP, BACKENDS_TABLE_SIZE, FLOW_TABLE_ENTRIES, FLOW_TABLE_SIZE,
    HIT_SPREAD, MAGLEV_SPREAD, TABLE_SIZE, VIPS_TABLE_SIZE,
};
use crate::bench::{
    env::{BenchEnv, Program},
    per_packet::{self, warmup_calls, warmup_of},
    report::round,
    scenarios::{NewFlows, Scenario},
    testrun::{self, XDP_PASS},
};

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
            testrun::run(prog, f, ifindex, 1)?;
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

pub(super) fn vips(points: &[u32], calls: u32) -> Result<Vec<Point>> {
    let max = points.iter().copied().max().unwrap_or(1);
    let max_backends = (max as usize * BACKENDS_PER_VIP + 1).next_power_of_two();
    let mut env = setup(Sizes {
        max_vips: max,
        max_backends: max_backends as u32,
        table_size: VIPS_TABLE_SIZE,
        flow_table_size: FLOW_TABLE_SIZE,
        ..Sizes::default()
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

pub(super) fn flow_table(points: &[u32], calls: u32, home_cpu: usize) -> Result<Vec<Point>> {
    let mut env = setup(Sizes {
        max_vips: 4,
        max_backends: 256,
        table_size: TABLE_SIZE,
        flow_table_size: FLOW_TABLE_ENTRIES,
        ..Sizes::default()
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

pub(super) fn backends(points: &[u32], calls: u32) -> Result<Vec<Point>> {
    let max = points.iter().copied().max().unwrap_or(1) as usize;
    let mut env = setup(Sizes {
        max_vips: 4,
        max_backends: (2 * max + 1).next_power_of_two() as u32,
        table_size: BACKENDS_TABLE_SIZE,
        flow_table_size: FLOW_TABLE_SIZE,
        ..Sizes::default()
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
