//! Live-frames throughput: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES
//! injects frames on `xlbl0`; the program's XDP_TX really transmits them
//! through the veth to `xlbl1`, whose native `xlb_count_drop` counts them.
//! Packets per second = frames the sink counted / wall time, from one core
//! (the sink's NAPI runs on the same core, inside the run).
//!
//! Fresh frames: live mode builds each frame on a page from a page pool and
//! recycles the pages; on reuse the kernel resets a page's pointers but NOT
//! its bytes (they are copied from `data_in` only when the pool first creates
//! the page). The balancer rewrites the front of the frame (outer header over
//! the original Ethernet header), so a recycled page holds garbage for it: one
//! long run measures one batch of real work and then `NotIp` passes (observed:
//! 64 of 200,000 frames transmitted). So every call runs exactly one batch of
//! [`BATCH`] frames on a new pool, and the frames of a scenario are spread
//! over as many calls as needed; each frame is a fresh copy of `data_in`. The
//! page allocation this costs is in every number, floor included;
//! `floor_tx_recycled` (one long call, recycled pages: valid because the floor
//! only swaps MACs) shows the regime's overhead.
//!
//! Interleaved: a scenario's frames are split over [`ROUNDS`] rounds, and
//! each round runs every scenario in turn, so a change of the VM's speed
//! (up to 2x over minutes) reaches every scenario alike instead of the one
//! that happened to run then. Each round also gives each scenario's share
//! of `floor_tx` by kernel time per frame in that round; the median of the
//! rounds is `share_of_floor_tx` (the ceiling comparisons use it).
//!
//! Every balancer scenario must show its verdict (`Tx`) for at least 99.9% of
//! the frames (the JSON keeps every verdict count): otherwise it is reported
//! as an error instead of a rate.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use lb_common::Verdict;

use super::{
    env::{BenchEnv, Program},
    report::Report,
    scenarios::Scenario,
    testrun,
};

pub const SECTION: &str = "live";
/// Frames per call and per batch (the kernel's maximum batch).
pub const BATCH: u32 = testrun::MAX_LIVE_BATCH;
/// Batch of the recycled-pages reference run (the kernel's default).
pub const RECYCLED_BATCH: u32 = 64;
/// The scenario every share is of.
const FLOOR_TX: &str = "floor_tx";
/// Name of the recycled-pages reference run of `floor_tx`.
pub const FLOOR_RECYCLED: &str = "floor_tx_recycled";
/// Share of a balancer scenario's frames that must take its expected path.
const MIN_ON_PATH: f64 = 0.999;
/// Rounds a scenario's frames are split over (see the module's docs).
pub const ROUNDS: u32 = 5;
/// Time for the last frames to be counted after the run returns.
const SETTLE: Duration = Duration::from_millis(50);

/// Keys every run of this part files (CI checks them after `--quick`).
pub const REQUIRED_KEYS: &[&str] = &["live.v4_tcp_flow_hit.pps"];

/// One scenario's live-frames run.
#[derive(Clone, Debug)]
pub struct LiveRun {
    /// Frames injected.
    pub frames: u64,
    /// BPF_PROG_TEST_RUN calls made.
    pub calls: u64,
    /// Frames the sink counted.
    pub delivered: u64,
    pub wall: Duration,
    /// Kernel-reported time per frame, averaged over the calls.
    pub kernel_ns_per_frame: f64,
    /// The balancer's verdict counters that moved during the run.
    pub verdicts: Vec<(Verdict, u64)>,
    /// Kernel time per frame of each round.
    pub round_ns_per_frame: Vec<f64>,
    /// Median over the rounds of `floor_tx`'s kernel time per frame / this
    /// scenario's in the same round (None without a `floor_tx` run).
    pub share_of_floor_tx: Option<f64>,
    /// The largest of those per-round shares: the best this scenario did.
    pub best_share_of_floor_tx: Option<f64>,
}

impl LiveRun {
    pub fn pps(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64()
    }

    /// Adds one round's run.
    fn absorb(&mut self, r: LiveRun) {
        let calls = self.calls + r.calls;
        self.kernel_ns_per_frame = (self.kernel_ns_per_frame * self.calls as f64
            + r.kernel_ns_per_frame * r.calls as f64)
            / calls.max(1) as f64;
        self.frames += r.frames;
        self.calls = calls;
        self.delivered += r.delivered;
        self.wall += r.wall;
        for (v, n) in r.verdicts {
            match self.verdicts.iter_mut().find(|(w, _)| *w == v) {
                Some((_, m)) => *m += n,
                None => self.verdicts.push((v, n)),
            }
        }
        self.round_ns_per_frame.extend(r.round_ns_per_frame);
    }
}

#[derive(Clone, Debug)]
pub struct Results {
    /// Per scenario: the sample, or why live mode failed for it.
    pub runs: Vec<(&'static str, Result<LiveRun, String>)>,
}

impl Results {
    pub fn record(&self, report: &mut Report) {
        for (name, r) in &self.runs {
            let p = format!("{SECTION}.{name}");
            match r {
                Ok(s) => {
                    report.insert(&format!("{p}.pps"), s.pps().round());
                    report.insert(&format!("{p}.frames"), s.frames);
                    report.insert(&format!("{p}.calls"), s.calls);
                    report.insert(&format!("{p}.delivered"), s.delivered);
                    report.insert(
                        &format!("{p}.wall_ms"),
                        (s.wall.as_secs_f64() * 1e5).round() / 100.0,
                    );
                    report.insert(
                        &format!("{p}.kernel_ns_per_frame"),
                        (s.kernel_ns_per_frame * 10.0).round() / 10.0,
                    );
                    report.insert(&format!("{p}.rounds"), s.round_ns_per_frame.len());
                    for (key, share) in [
                        ("share_of_floor_tx", s.share_of_floor_tx),
                        ("best_share_of_floor_tx", s.best_share_of_floor_tx),
                    ] {
                        if let Some(share) = share {
                            report.insert(&format!("{p}.{key}"), (share * 1000.0).round() / 1000.0);
                        }
                    }
                    for (v, n) in &s.verdicts {
                        report.insert(&format!("{p}.verdicts.{v:?}"), *n);
                    }
                }
                Err(e) => report.insert(&format!("{p}.error"), e.as_str()),
            }
        }
    }
}

/// Runs every scenario marked `live` with `frames` frames in [`ROUNDS`]
/// interleaved rounds, then the recycled-pages reference run of the floor.
pub fn run(env: &mut BenchEnv, scenarios: &[Scenario], frames: u32) -> Results {
    let live: Vec<&Scenario> = scenarios.iter().filter(|s| s.live).collect();
    let per_round = frames.div_ceil(ROUNDS);
    let mut runs: Vec<(&'static str, Result<LiveRun, String>)> = live
        .iter()
        .map(|sc| (sc.name, Err("not run".to_string())))
        .collect();
    for round in 1..=ROUNDS {
        for (sc, (_, total)) in live.iter().zip(runs.iter_mut()) {
            if round > 1 && total.is_err() {
                continue;
            }
            eprintln!(
                "live: {} ({per_round} frames, round {round}/{ROUNDS})",
                sc.name
            );
            match (
                outcome(env, |env| run_fresh(env, sc, per_round)),
                &mut *total,
            ) {
                (Ok(r), Ok(t)) => t.absorb(r),
                (r, t) => *t = r,
            }
        }
    }
    set_shares(&mut runs);
    if let Some(floor) = live
        .iter()
        .find(|s| s.program == Program::Aux(lb_common::program_names::FLOOR_TX))
    {
        eprintln!("live: {FLOOR_RECYCLED} ({frames} frames)");
        runs.push((
            FLOOR_RECYCLED,
            outcome(env, |env| run_recycled(env, floor, frames)),
        ));
    }
    Results { runs }
}

fn outcome(
    env: &mut BenchEnv,
    f: impl FnOnce(&mut BenchEnv) -> Result<LiveRun>,
) -> Result<LiveRun, String> {
    let r = match env.live_error.clone() {
        Some(e) => Err(format!("live-frames setup failed: {e}")),
        None => f(env).map_err(|e| format!("{e:#}")),
    };
    if let Err(e) = &r {
        eprintln!("live: {e}");
    }
    r
}

/// `frames` fresh frames, [`BATCH`] per call.
fn run_fresh(env: &mut BenchEnv, sc: &Scenario, frames: u32) -> Result<LiveRun> {
    let calls = frames.div_ceil(BATCH);
    measure(env, sc, calls, BATCH, BATCH)
}

/// One call of `frames` frames on recycled pages (only for programs whose
/// rewrite leaves the frame on the same path).
fn run_recycled(env: &mut BenchEnv, sc: &Scenario, frames: u32) -> Result<LiveRun> {
    measure(env, sc, 1, frames, RECYCLED_BATCH)
}

fn measure(
    env: &mut BenchEnv,
    sc: &Scenario,
    calls: u32,
    per_call: u32,
    batch: u32,
) -> Result<LiveRun> {
    let frame = &sc.frames[0];
    let ifindex = env.ifindex;
    // The same check as per-packet: a broken setup must not look fast.
    let first = testrun::run(env.program(sc.program)?, frame, ifindex, 1)?;
    ensure!(
        first.action == sc.action,
        "a normal run returned XDP action {}, expected {}",
        first.action,
        sc.action
    );

    let sink_before = env.sink_count()?;
    let verdicts_before = env.dp.verdicts()?;
    let mut kernel = Duration::ZERO;
    let start = Instant::now();
    {
        let prog = env.program(sc.program)?;
        for _ in 0..calls {
            let r = testrun::run_live(prog, frame, ifindex, per_call, batch.min(per_call))?;
            kernel += r.kernel_per_frame;
        }
    }
    let wall = start.elapsed();
    std::thread::sleep(SETTLE);
    let delivered = env
        .sink_count()
        .context("reading the sink's counter")?
        .saturating_sub(sink_before);
    let verdicts_after = env.dp.verdicts()?;
    let verdicts: Vec<(Verdict, u64)> = Verdict::ALL
        .iter()
        .map(|v| {
            (
                *v,
                verdicts_after[*v as usize] - verdicts_before[*v as usize],
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();

    let frames = u64::from(calls) * u64::from(per_call);
    if let Some(expected) = sc.verdict {
        let on_path = verdicts
            .iter()
            .find(|(v, _)| *v == expected)
            .map_or(0, |(_, n)| *n);
        // A page the sink returns while its batch is still being built (the
        // peer's NAPI can run on another CPU, woken by stray stack traffic)
        // is handed out again with rewritten bytes: a handful per million.
        if (on_path as f64) < MIN_ON_PATH * frames as f64 {
            bail!(
                "only {on_path} of {frames} frames took the {expected:?} path (verdicts: {}): \
                 the measurement would not be of the balancer's work",
                verdicts
                    .iter()
                    .map(|(v, n)| format!("{v:?}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    ensure!(
        delivered > 0,
        "the runs returned but the sink on {} counted no frames",
        super::env::PEER
    );
    let kernel_ns_per_frame = kernel.as_nanos() as f64 / f64::from(calls);
    Ok(LiveRun {
        frames,
        calls: u64::from(calls),
        delivered,
        wall,
        kernel_ns_per_frame,
        verdicts,
        round_ns_per_frame: vec![kernel_ns_per_frame],
        share_of_floor_tx: None,
        best_share_of_floor_tx: None,
    })
}

/// Each run's median over the rounds of `floor_tx`'s kernel time per frame
/// divided by its own in the same round.
fn set_shares(runs: &mut [(&'static str, Result<LiveRun, String>)]) {
    let floor = runs
        .iter()
        .find(|(name, _)| *name == FLOOR_TX)
        .and_then(|(_, r)| r.as_ref().ok())
        .map(|r| r.round_ns_per_frame.clone());
    let Some(floor) = floor else {
        return;
    };
    for (_, r) in runs.iter_mut() {
        if let Ok(r) = r {
            r.share_of_floor_tx = share(&floor, &r.round_ns_per_frame);
            r.best_share_of_floor_tx = round_shares(&floor, &r.round_ns_per_frame).reduce(f64::max);
        }
    }
}

/// Median of `floor[i] / rounds[i]` over the rounds both have.
fn share(floor: &[f64], rounds: &[f64]) -> Option<f64> {
    super::stats::median(round_shares(floor, rounds))
}

/// `floor[i] / rounds[i]` for each round both have.
fn round_shares<'a>(floor: &'a [f64], rounds: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
    floor
        .iter()
        .zip(rounds)
        .filter(|(_, r)| **r > 0.0)
        .map(|(f, r)| f / r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scenarios;

    #[test]
    fn the_live_scenarios_file_every_required_key() {
        let run = LiveRun {
            frames: 256,
            calls: 1,
            delivered: 256,
            wall: Duration::from_millis(1),
            kernel_ns_per_frame: 30.0,
            verdicts: vec![(Verdict::Tx, 256)],
            round_ns_per_frame: vec![30.0],
            share_of_floor_tx: Some(0.5),
            best_share_of_floor_tx: Some(0.6),
        };
        let results = Results {
            runs: scenarios::all([2, 0, 0, 0, 0, 1], 1)
                .iter()
                .filter(|sc| sc.live)
                .map(|sc| (sc.name, Ok(run.clone())))
                .collect(),
        };
        let mut report = Report::new();
        results.record(&mut report);
        assert_eq!(report.missing(REQUIRED_KEYS), Vec::<&str>::new());
    }

    /// The share is taken round by round: a round where everything ran
    /// twice as slow moves neither the floor's nor the scenario's share.
    #[test]
    fn shares_compare_each_round_with_the_floors_same_round() {
        let floor = [100.0, 200.0, 100.0];
        let sc = [125.0, 250.0, 125.0];
        assert_eq!(share(&floor, &sc), Some(0.8));
        // Pooled times would say 400 / 500 = 0.8 here too, but not when a
        // slow round hits only one of them: the median ignores that round.
        let sc_slow_once = [125.0, 500.0, 125.0];
        assert_eq!(share(&floor, &sc_slow_once), Some(0.8));
        assert_eq!(share(&floor, &[]), None);
    }

    #[test]
    fn rounds_add_up() {
        let one = |ns: f64, calls: u64| LiveRun {
            frames: calls * 256,
            calls,
            delivered: calls * 256,
            wall: Duration::from_millis(calls),
            kernel_ns_per_frame: ns,
            verdicts: vec![(Verdict::Tx, calls * 256)],
            round_ns_per_frame: vec![ns],
            share_of_floor_tx: None,
            best_share_of_floor_tx: None,
        };
        let mut t = one(100.0, 1);
        t.absorb(one(200.0, 3));
        assert_eq!((t.frames, t.calls, t.delivered), (1024, 4, 1024));
        assert_eq!(t.wall, Duration::from_millis(4));
        assert_eq!(t.kernel_ns_per_frame, 175.0);
        assert_eq!(t.verdicts, vec![(Verdict::Tx, 1024)]);
        assert_eq!(t.round_ns_per_frame, vec![100.0, 200.0]);
    }
}
