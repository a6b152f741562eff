//! One measurement of the end-to-end benchmark: a window of one case and
//! protocol (generator thread, counters and task clocks read at both ends,
//! the checks that make a broken setup fail instead of reporting a number),
//! and the check of the generator's frames before any measurement.

use std::{
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use lb_common::{gen_frame, Verdict};
use serde_json::{json, Value};

use super::{
    cpu, panic_text,
    results::Window,
    topology::{Napi, Topology},
    workload::{vip_key, Proto, BACKENDS, FRAME_LEN, NFT_TABLE, VIP},
    Case, Config, Cpus, FLOWS,
};
use crate::{
    bench::{report, testrun},
    netns::enter_by_name,
};

/// Frames per generator call (about 0.1 s): the generator stops within one.
const CALL_FRAMES: u32 = 1 << 20;
/// Frames per live-frames batch (the kernel's default).
const GEN_BATCH: u32 = 64;
/// Share of xlb's packets that must take the redirect path.
const MIN_ON_PATH: f64 = 0.999;
/// Largest share of the transmitted packets the sink may lose.
const MAX_SINK_LOSS: f64 = 0.01;
/// Largest share of the window's packets that may open a new connection.
const MAX_NEW_SHARE: f64 = 0.01;
/// Time for the last packets to reach the sink after the generator stops.
const SETTLE: Duration = Duration::from_millis(50);

/// Runs the generator once without transmitting and checks what it made:
/// a frame of the template with the next source port and valid checksums.
pub(super) fn check_generator(topo: &mut Topology) -> Result<()> {
    for proto in Proto::ALL {
        let template = topo.set_frame(proto, VIP, FLOWS)?;
        let before = topo.generated_per_cpu()?;
        // Any input frame: the generator overwrites all of it.
        let junk = vec![0xa5u8; FRAME_LEN];
        let _in = enter_by_name(topo.gen.name());
        let (run, out) = testrun::run_with_output(topo.generator()?, &junk, topo.gen_ifindex)?;
        ensure!(
            run.action == testrun::XDP_TX,
            "xlb_gen returned {} instead of XDP_TX",
            run.action
        );
        let after = topo.generated_per_cpu()?;
        let moved: Vec<(u32, u32)> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(b, a)| (*b, *a))
            .collect();
        let [(seq, next)] = moved[..] else {
            bail!("the generator's counters moved on {} CPUs", moved.len());
        };
        ensure!(
            next == seq.wrapping_add(1),
            "the generator's counter moved from {seq} to {next}"
        );
        let sliced = etherparse::SlicedPacket::from_ethernet(&out)
            .map_err(|e| anyhow::anyhow!("the generated frame does not parse: {e}"))?;
        let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
            bail!("the generated frame is not IPv4");
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        ensure!(dst == VIP, "generated frame to {dst}");
        let sport = match &sliced.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4_raw(src.octets(), dst.octets(), u.payload())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(
                    u.checksum() == want,
                    "UDP checksum {:#06x}, expected {want:#06x}",
                    u.checksum()
                );
                u.source_port()
            }
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let want = t
                    .to_header()
                    .calc_checksum_ipv4_raw(src.octets(), dst.octets(), t.payload())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(
                    t.checksum() == want,
                    "TCP checksum {:#06x}, expected {want:#06x}",
                    t.checksum()
                );
                t.source_port()
            }
            _ => bail!("the generated frame is neither UDP nor TCP"),
        };
        let want = template.sport_of_frame(seq);
        ensure!(
            sport == want,
            "frame {seq} has source port {sport}, expected {want}"
        );
        ensure!(
            out[..gen_frame::SPORT_OFF] == template.frame()[..gen_frame::SPORT_OFF],
            "the generated headers differ from the template"
        );
    }
    Ok(())
}

/// Slices of the warm-up's extension, and its limit.
const WARMUP_SLICE: Duration = Duration::from_millis(200);
const MAX_WARMUP: Duration = Duration::from_secs(10);

/// Waits, after the fixed warm-up, until a slice of traffic opens (almost)
/// no new connection: the steady state of established flows that the window
/// measures. A loaded machine pushes fewer frames per second, so every flow
/// getting its entry takes longer than the fixed warm-up; the window's own
/// check still refuses a measurement that never got there.
fn warm_up(
    topo: &Topology,
    case: Case,
    proto: Proto,
    gen_clock: Option<&cpu::TaskClock>,
) -> Result<Snapshot> {
    let deadline = Instant::now() + MAX_WARMUP;
    let mut last = snapshot(topo, case, proto, gen_clock)?;
    loop {
        std::thread::sleep(WARMUP_SLICE);
        let next = snapshot(topo, case, proto, gen_clock)?;
        let delivered = next.sink - last.sink;
        let steady = delivered > 0
            && (new_connections(case, &last, &next) as f64) <= MAX_NEW_SHARE * delivered as f64;
        last = next;
        if steady || Instant::now() >= deadline {
            return Ok(last);
        }
    }
}

/// Connections opened between two snapshots.
fn new_connections(case: Case, first: &Snapshot, last: &Snapshot) -> u64 {
    match case {
        Case::Nftables => last.conntrack.saturating_sub(first.conntrack),
        Case::Ceiling | Case::XdpFloor | Case::LbFloor => 0,
        _ => last.new_flows - first.new_flows,
    }
}

/// What is read at both ends of the window.
struct Snapshot {
    at: Instant,
    sink: u64,
    generated: u64,
    lb_ns: Option<u64>,
    sink_ns: Option<u64>,
    gen_ns: Option<u64>,
    verdicts: Option<[u64; Verdict::COUNT as usize]>,
    backends: Vec<u64>,
    /// xlb: connection-table entries created for the VIP.
    new_flows: u64,
    /// nftables: conntrack's entries.
    conntrack: u64,
}

fn snapshot(
    topo: &Topology,
    case: Case,
    proto: Proto,
    gen_clock: Option<&cpu::TaskClock>,
) -> Result<Snapshot> {
    let (lb_ns, sink_ns) = match &topo.napi {
        Napi::Threaded { clocks: Ok(c) } => {
            (Some(cpu::sum_ns(&c.lb)?), Some(cpu::sum_ns(&c.sink)?))
        }
        Napi::Threaded { clocks: Err(_) } => (None, None),
        Napi::Softirq(_) => (None, None),
    };
    let (verdicts, backends, new_flows) = if case.is_xlb() {
        let b = topo
            .backend_ids(proto)
            .into_iter()
            .map(|id| topo.dp.backend_stats(id).map(|s| s.packets))
            .collect::<Result<Vec<_>, _>>()?;
        let vip = topo
            .reconciler
            .vip_id(&vip_key(proto))
            .context("the VIP has no id")?;
        let new_flows = topo.dp.vip_stats(vip)?.new_flows;
        (Some(topo.dp.verdicts()?), b, new_flows)
    } else {
        (None, Vec::new(), 0)
    };
    let conntrack = if case == Case::Nftables {
        topo.conntrack_entries()?
    } else {
        0
    };
    Ok(Snapshot {
        at: Instant::now(),
        sink: topo.sink_count()?,
        generated: topo.generated()?,
        lb_ns,
        sink_ns,
        gen_ns: gen_clock.map(cpu::TaskClock::read_ns).transpose()?,
        verdicts,
        backends,
        new_flows,
        conntrack,
    })
}

pub(super) fn measure(
    topo: &mut Topology,
    config: &Config,
    cpus: Cpus,
    case: Case,
    proto: Proto,
) -> Result<Window> {
    if let Some(mode) = case.forwarding() {
        topo.set_forwarding(mode)?;
    }
    topo.set_lb_program(case.program())?;
    topo.set_nftables(case == Case::Nftables)?;
    let frame = topo.set_frame(proto, case.destination(), FLOWS)?.frame();
    let lost_before = topo.lost_at_sink()?;
    let sink_before = topo.sink_count()?;

    let topo = &*topo;
    let prog = topo.generator()?;
    let (gen_ns, gen_ifindex) = (topo.gen.name(), topo.gen_ifindex);
    let stop = AtomicBool::new(false);
    let gen_tid = AtomicI32::new(0);
    let (first, last, gen_result) = std::thread::scope(|scope| -> Result<_> {
        let generator = scope.spawn(|| -> Result<u64> {
            let r = generate(prog, gen_ns, gen_ifindex, &frame, cpus.gen, &gen_tid, &stop);
            // Unblock the main thread if we failed before announcing ourselves.
            gen_tid
                .compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst)
                .ok();
            r
        });
        let measured = (|| -> Result<_> {
            let tid = wait_for_tid(&gen_tid)?;
            // Informational: the generator's own CPU time.
            let gen_clock = cpu::TaskClock::open(tid).ok();
            std::thread::sleep(config.warmup);
            let first = warm_up(topo, case, proto, gen_clock.as_ref())?;
            std::thread::sleep(config.window);
            let last = snapshot(topo, case, proto, gen_clock.as_ref())?;
            Ok((first, last))
        })();
        stop.store(true, Ordering::SeqCst);
        let gen_result = generator
            .join()
            .map_err(|p| anyhow::anyhow!("the generator thread panicked: {}", panic_text(&p)))?;
        let (first, last) = measured?;
        Ok((first, last, gen_result))
    })?;
    let calls = gen_result.context("the generator failed")?;
    std::thread::sleep(SETTLE);
    let lost = topo.lost_at_sink()? - lost_before;
    let sunk = topo.sink_count()? - sink_before;

    let window = last.at - first.at;
    let delivered = last.sink - first.sink;
    let generated = last.generated - first.generated;
    let diff = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a))),
        _ => None,
    };
    ensure!(
        delivered > 0,
        "the sink counted nothing in {:.1} s (generator: {generated} frames, {calls} calls)",
        window.as_secs_f64()
    );
    // The sink must not be the bottleneck: what the balancer namespace
    // transmitted and the sink's ring refused would be missing from the rate.
    let lost_share = lost as f64 / (sunk + lost).max(1) as f64;
    ensure!(
        lost_share <= MAX_SINK_LOSS,
        "the sink could not keep up: {lost} of {} packets the balancer namespace transmitted \
         were dropped at the sink's ring ({:.1}%)",
        sunk + lost,
        lost_share * 100.0
    );
    // Steady state: (almost) no connection is new in the window.
    let new_conns = new_connections(case, &first, &last);
    ensure!(
        (new_conns as f64) <= MAX_NEW_SHARE * delivered as f64,
        "{new_conns} connections were new in the window ({delivered} packets): not the steady \
         state of established flows (longer warm-up needed)"
    );
    let mut checks = match case {
        Case::Nftables => check_nftables(topo, &last)?,
        Case::Ceiling | Case::XdpFloor | Case::LbFloor => json!({}),
        _ => check_xlb(&first, &last)?,
    };
    checks["new_connections_in_window"] = json!(new_conns);
    checks["lost_at_sink"] = json!(lost);
    Ok(Window {
        length: window,
        delivered,
        generated,
        lb_cpu: diff(first.lb_ns, last.lb_ns),
        sink_cpu: diff(first.sink_ns, last.sink_ns),
        gen_cpu: diff(first.gen_ns, last.gen_ns),
        checks,
    })
}

fn wait_for_tid(tid: &AtomicI32) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tid.load(Ordering::SeqCst) {
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            0 => bail!("the generator thread did not start"),
            -1 => bail!("the generator thread failed to start"),
            t => return Ok(t),
        }
    }
}

/// The generator thread: pinned, inside the generator namespace, live-frames
/// calls of [`CALL_FRAMES`] until told to stop. Returns the calls made.
fn generate(
    prog: &aya::programs::Xdp,
    ns: &str,
    ifindex: u32,
    frame: &[u8],
    cpu: usize,
    tid: &AtomicI32,
    stop: &AtomicBool,
) -> Result<u64> {
    cpu::pin_task(0, cpu)?;
    let _in = enter_by_name(ns);
    tid.store(cpu::gettid(), Ordering::SeqCst);
    let mut calls = 0;
    while !stop.load(Ordering::SeqCst) {
        testrun::run_live(prog, frame, ifindex, CALL_FRAMES, GEN_BATCH)?;
        calls += 1;
    }
    Ok(calls)
}

/// xlb's verdicts in the window: (almost) all Redirect; every backend used.
fn check_xlb(first: &Snapshot, last: &Snapshot) -> Result<Value> {
    let (Some(a), Some(b)) = (first.verdicts, last.verdicts) else {
        bail!("no verdict counters");
    };
    let deltas: Vec<(Verdict, u64)> = Verdict::ALL
        .iter()
        .map(|v| (*v, b[*v as usize] - a[*v as usize]))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = deltas.iter().map(|(_, n)| n).sum();
    let redirected = deltas
        .iter()
        .find(|(v, _)| *v == Verdict::Redirect)
        .map_or(0, |(_, n)| *n);
    let verdicts: serde_json::Map<String, Value> = deltas
        .iter()
        .map(|(v, n)| (format!("{v:?}"), json!(n)))
        .collect();
    if (redirected as f64) < MIN_ON_PATH * total as f64 || total == 0 {
        bail!(
            "only {redirected} of {total} packets the balancer saw were redirected \
             (verdicts: {verdicts:?})"
        );
    }
    let per_backend: Vec<u64> = last
        .backends
        .iter()
        .zip(&first.backends)
        .map(|(b, a)| b - a)
        .collect();
    ensure!(
        per_backend.len() == BACKENDS.len() && per_backend.iter().all(|&n| n > 0),
        "not every backend got packets: {per_backend:?}"
    );
    Ok(json!({
        "verdicts": verdicts,
        "backend_packets": per_backend,
        "sink_vs_redirected": report::round((last.sink - first.sink) as f64 / redirected as f64, 4),
    }))
}

/// nftables: conntrack holds an entry per flow (the DNAT rule saw every flow's
/// first packet), and the rule counters.
fn check_nftables(topo: &Topology, last: &Snapshot) -> Result<Value> {
    let count = last.conntrack;
    let max: u64 = topo
        .lb_cmd("cat", &["/proc/sys/net/netfilter/nf_conntrack_max"])?
        .trim()
        .parse()
        .context("parsing nf_conntrack_max")?;
    ensure!(
        count >= u64::from(FLOWS) * 9 / 10,
        "conntrack holds {count} entries for {FLOWS} flows"
    );
    let rules = topo.lb_cmd("nft", &["list", "table", "ip", NFT_TABLE])?;
    let counters: Vec<u64> = rules
        .lines()
        .filter_map(|l| {
            let rest = l.split("counter packets ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    Ok(json!({
        "conntrack_entries": count,
        "conntrack_max": max,
        "dnat_rule_packets": counters,
    }))
}
