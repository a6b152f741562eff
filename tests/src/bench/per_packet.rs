//! Per-packet cost: the kernel-reported duration of single BPF_PROG_TEST_RUN
//! calls (`repeat = 1`, so each call feeds the original frame even though the
//! balancer rewrites it), median and p99 per scenario, against the floors
//! `xlb_pass` (`floor_pass`) and `xlb_floor_tx` (`floor_tx`) measured the
//! same way in the same run, interleaved with the balancer's scenarios
//! ([`measure_interleaved`]). Each scenario is also filed as its cost above
//! `floor_pass` (`above_floor_pass_ns`: the fixed cost of a test-run call
//! taken out) and as ratios to both floors (this VM's speed varies by up to
//! 2x: ratios are what compares across runs). The balancer's flow-hit paths
//! are also filed as their cost above the essential-work floor `floor_lb`
//! (`above_floor_lb_ns`: what xlb does beyond the VIP lookup, the connection
//! lookup, the backend read and the IP-in-IP push any hash-map balancer
//! needs); the flow hits also above `floor_full` / `floor_full6`
//! (`above_floor_full_ns`: beyond xlb's own duties on that path, written
//! straight for it).
//!
//! Also: the verifier's instruction count of `xlb_balancer`, and the time per
//! packet of one `repeat = 1,000,000` run for paths that do not rewrite the
//! packet (there each repetition sees the same input).

use anyhow::{bail, ensure, Context, Result};
use lb_common::Verdict;
use serde_json::json;

use super::{
    env::{BenchEnv, Program},
    report::{self, Report},
    scenarios::{NewFlows, Scenario},
    stats::Summary,
    testrun,
};

pub const SECTION: &str = "per_packet";
/// Where the `repeat = 1,000,000` results go.
pub const REPEAT_SECTION: &str = "per_packet_repeat";
pub const VERIFIER_SECTION: &str = "verifier";
pub const REPEAT: u32 = 1_000_000;
/// Scenarios also timed with one long repeated run: paths that do not rewrite
/// the packet (`floor_tx` only swaps the MACs back and forth: same work each
/// repetition).
const REPEAT_SCENARIOS: &[&str] = &["floor_pass", "floor_tx", "non_vip"];

/// Keys every run of this part files (CI checks them after `--quick`): the
/// floors and every balancer path.
pub const REQUIRED_KEYS: &[&str] = &[
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
    "per_packet.floor_lb.median_ns",
    "per_packet.floor_lb16.median_ns",
    "per_packet.floor_entry.median_ns",
    "per_packet.floor_min.median_ns",
    "per_packet.floor_min6.median_ns",
    "per_packet.v4_tcp_flow_hit.above_floor_lb_ns",
    "per_packet.v6_tcp_flow_hit.above_floor_lb_ns",
    "per_packet.floor_full.median_ns",
    "per_packet.v4_tcp_flow_hit.above_floor_full_ns",
    "per_packet.floor_full6.median_ns",
    "per_packet.v6_tcp_flow_hit.above_floor_full_ns",
];

/// Scenarios also filed as their cost above `floor_lb`: the balancer's paths
/// that do the floor's work (a connection-table hit, IP-in-IP out) and more.
const ABOVE_FLOOR_LB: &[&str] = &["v4_tcp_flow_hit", "v6_tcp_flow_hit"];

/// One scenario's timings.
#[derive(Clone, Debug)]
pub struct ScenarioTiming {
    pub name: &'static str,
    pub summary: Summary,
    pub frame_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct Verifier {
    pub instructions: Option<u32>,
    pub xlated_bytes: Option<u32>,
    pub jited_bytes: u32,
    pub program_id: u32,
}

#[derive(Clone, Debug)]
pub struct Results {
    pub timings: Vec<ScenarioTiming>,
    /// (scenario, ns per packet) of the `repeat = 1,000,000` runs.
    pub repeated: Vec<(&'static str, f64)>,
    pub verifier: Verifier,
}

impl Results {
    pub fn floor_tx_median(&self) -> Option<u64> {
        self.timing("floor_tx").map(|s| s.summary.median_ns)
    }

    pub fn timing(&self, name: &str) -> Option<&ScenarioTiming> {
        self.timings.iter().find(|s| s.name == name)
    }

    /// median / floor_tx median.
    pub fn ratio_to_floor(&self, s: &ScenarioTiming) -> Option<f64> {
        let floor = self.floor_tx_median()?;
        (floor > 0).then(|| s.summary.median_ns as f64 / floor as f64)
    }

    /// mean / floor_tx mean: steadier than the medians where the kernel clock
    /// moves in ~10 ns steps.
    pub fn mean_ratio_to_floor(&self, s: &ScenarioTiming) -> Option<f64> {
        let floor = self.timing("floor_tx")?.summary.mean_ns;
        (floor > 0.0).then(|| s.summary.mean_ns / floor)
    }

    /// (median, mean) minus `floor_pass`'s (median, mean): what the
    /// scenario costs above an empty program in the same interleaved run.
    pub fn above_floor_pass(&self, s: &ScenarioTiming) -> Option<(i64, f64)> {
        let f = self.timing("floor_pass")?.summary;
        Some((
            s.summary.median_ns as i64 - f.median_ns as i64,
            s.summary.mean_ns - f.mean_ns,
        ))
    }

    /// (median, mean) minus `floor_lb`'s: what the balancer does beyond the
    /// essential work, for the scenarios in [`ABOVE_FLOOR_LB`].
    pub fn above_floor_lb(&self, s: &ScenarioTiming) -> Option<(i64, f64)> {
        if !ABOVE_FLOOR_LB.contains(&s.name) {
            return None;
        }
        let f = self.timing("floor_lb")?.summary;
        Some((
            s.summary.median_ns as i64 - f.median_ns as i64,
            s.summary.mean_ns - f.mean_ns,
        ))
    }

    /// (median, mean) minus `floor_full`'s (`floor_full6`'s for IPv6), for
    /// the flow hits: what the balancer costs beyond its own duties written
    /// straight for that path (`xlb_floor_full`), i.e. the price of its
    /// generality.
    pub fn above_floor_full(&self, s: &ScenarioTiming) -> Option<(i64, f64)> {
        let floor = match s.name {
            "v4_tcp_flow_hit" => "floor_full",
            "v6_tcp_flow_hit" => "floor_full6",
            _ => return None,
        };
        let f = self.timing(floor)?.summary;
        Some((
            s.summary.median_ns as i64 - f.median_ns as i64,
            s.summary.mean_ns - f.mean_ns,
        ))
    }

    /// median / floor_pass median: the cost in units of an empty program's
    /// call, which scales with the VM's speed as the scenario does.
    pub fn ratio_to_floor_pass(&self, s: &ScenarioTiming) -> Option<f64> {
        let floor = self.timing("floor_pass")?.summary.median_ns;
        (floor > 0).then(|| s.summary.median_ns as f64 / floor as f64)
    }

    /// Files the results under `per_packet`, `per_packet_repeat`, `verifier`.
    pub fn record(&self, report: &mut Report) {
        for s in &self.timings {
            let p = format!("{SECTION}.{}", s.name);
            report.insert(&format!("{p}.median_ns"), s.summary.median_ns);
            report.insert(&format!("{p}.p99_ns"), s.summary.p99_ns);
            report.insert(&format!("{p}.min_ns"), s.summary.min_ns);
            report.insert(&format!("{p}.mean_ns"), round(s.summary.mean_ns));
            report.insert(&format!("{p}.calls"), s.summary.count);
            report.insert(&format!("{p}.frame_bytes"), s.frame_bytes);
            if let Some(r) = self.ratio_to_floor(s) {
                report.insert(&format!("{p}.ratio_to_floor"), round(r));
            }
            if let Some(r) = self.mean_ratio_to_floor(s) {
                report.insert(&format!("{p}.mean_ratio_to_floor"), round(r));
            }
            if let Some((median, mean)) = self.above_floor_pass(s) {
                report.insert(&format!("{p}.above_floor_pass_ns"), median);
                report.insert(&format!("{p}.above_floor_pass_mean_ns"), round(mean));
            }
            if let Some((median, mean)) = self.above_floor_lb(s) {
                report.insert(&format!("{p}.above_floor_lb_ns"), median);
                report.insert(&format!("{p}.above_floor_lb_mean_ns"), round(mean));
            }
            if let Some((median, mean)) = self.above_floor_full(s) {
                report.insert(&format!("{p}.above_floor_full_ns"), median);
                report.insert(&format!("{p}.above_floor_full_mean_ns"), round(mean));
            }
            if let Some(r) = self.ratio_to_floor_pass(s) {
                report.insert(&format!("{p}.ratio_to_floor_pass"), round(r));
            }
        }
        for (name, ns) in &self.repeated {
            report.insert(
                &format!("{REPEAT_SECTION}.{name}.ns_per_packet"),
                round(*ns),
            );
            report.insert(&format!("{REPEAT_SECTION}.{name}.repeat"), REPEAT);
        }
        let v = &self.verifier;
        report.insert(
            &format!("{VERIFIER_SECTION}.instructions"),
            json!(v.instructions),
        );
        report.insert(
            &format!("{VERIFIER_SECTION}.xlated_bytes"),
            json!(v.xlated_bytes),
        );
        report.insert(&format!("{VERIFIER_SECTION}.jited_bytes"), v.jited_bytes);
    }
}

/// Figures are filed with two decimals.
fn round(x: f64) -> f64 {
    report::round(x, 2)
}

/// Calls before the measured ones (caches, branch predictors, flow entries).
pub fn warmup_calls(calls: u32) -> usize {
    (calls as usize / 10).clamp(100, 10_000)
}

/// Measures every scenario with `calls` timed calls each, interleaved (see
/// [`measure_interleaved`]).
pub fn run(env: &mut BenchEnv, scenarios: &[Scenario], calls: u32) -> Result<Results> {
    let verifier = verifier_info(env)?;
    let all: Vec<&Scenario> = scenarios.iter().collect();
    let summaries = measure_interleaved(env, &all, calls as usize)?;
    let timings = scenarios
        .iter()
        .zip(summaries)
        .map(|(sc, summary)| ScenarioTiming {
            name: sc.name,
            summary,
            frame_bytes: sc.frames[0].len(),
        })
        .collect();
    let mut repeated = Vec::new();
    for sc in scenarios
        .iter()
        .filter(|s| REPEAT_SCENARIOS.contains(&s.name))
    {
        let frame = &sc.frames[0];
        let ifindex = env.ifindex;
        let prog = env.program(sc.program)?;
        let r = testrun::run(prog, frame, ifindex, REPEAT)
            .with_context(|| format!("repeated run of {}", sc.name))?;
        ensure!(
            r.action == sc.action,
            "{}: repeated run returned action {}, expected {}",
            sc.name,
            r.action,
            sc.action
        );
        repeated.push((sc.name, r.duration.as_secs_f64() * 1e9));
    }
    Ok(Results {
        timings,
        repeated,
        verifier,
    })
}

fn verifier_info(env: &mut BenchEnv) -> Result<Verifier> {
    let info = env
        .program(Program::Balancer)?
        .info()
        .context("reading xlb_balancer's program info")?;
    Ok(Verifier {
        instructions: info.verified_instruction_count(),
        xlated_bytes: info.size_translated(),
        jited_bytes: info.size_jitted(),
        program_id: info.id(),
    })
}

/// Counters that prove which path the packets took.
#[derive(Clone, Copy, Debug)]
struct Counters {
    verdict: u64,
    new_flows: u64,
}

fn counters(env: &BenchEnv, sc: &Scenario) -> Result<Counters> {
    let verdict = match sc.verdict {
        Some(v) => env.dp.verdicts().context("reading XLB_VERDICTS")?[v as usize],
        None => 0,
    };
    let new_flows = match sc.vip {
        Some(key) => {
            let id = env
                .reconciler
                .vip_id(&key)
                .with_context(|| format!("{}: its VIP is not installed", sc.name))?;
            env.dp
                .vip_stats(id)
                .context("reading XLB_VIP_STATS")?
                .new_flows
        }
        None => 0,
    };
    Ok(Counters { verdict, new_flows })
}

fn check_first_run(env: &mut BenchEnv, sc: &Scenario) -> Result<()> {
    let ifindex = env.ifindex;
    let frame = &sc.frames[0];
    let (r, out) = testrun::run_with_output(env.program(sc.program)?, frame, ifindex)?;
    if r.action != sc.action {
        let verdicts = env.dp.verdicts().ok();
        let hint = verdicts
            .map(|v| {
                Verdict::ALL
                    .iter()
                    .filter(|x| v[**x as usize] > 0)
                    .map(|x| format!("{x:?}={}", v[*x as usize]))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        bail!(
            "the first run returned XDP action {}, expected {}: the benchmark setup is broken \
             (verdict counters so far: {hint})",
            r.action,
            sc.action
        );
    }
    if sc.action == testrun::XDP_TX {
        ensure!(
            out.len() == frame.len() + sc.growth,
            "the first run's output has {} bytes, expected {} + {} (outer header)",
            out.len(),
            frame.len(),
            sc.growth
        );
    }
    Ok(())
}

/// Timed calls per scenario and turn of the interleaved run: long enough
/// that reading the counters between turns costs little, short enough that
/// a change of the VM's speed reaches every scenario alike.
pub const TURN_CALLS: usize = 500;

/// Warm-up calls of `sc` before its timed ones: [`warmup_calls`], and at
/// least one pass over its frames unless each frame may be sent only once (a
/// scenario of many established flows then starts measuring with all of them
/// in the connection table).
pub fn warmup_of(sc: &Scenario, calls: usize) -> usize {
    let warmup = warmup_calls(calls as u32);
    if sc.unique_frames {
        warmup
    } else {
        warmup.max(sc.frames.len())
    }
}

/// One scenario of an interleaved run: its next frame and its timings.
struct Running<'a> {
    sc: &'a Scenario,
    next: usize,
    ns: Vec<u64>,
}

impl Running<'_> {
    /// `n` calls on the scenario's next frames; `timed` ones keep the
    /// kernel-reported durations. Returns how many returned another action.
    fn calls(&mut self, env: &mut BenchEnv, n: usize, timed: bool) -> Result<usize> {
        let ifindex = env.ifindex;
        let prog = env.program(self.sc.program)?;
        let frames = &self.sc.frames;
        let mut wrong = 0;
        for _ in 0..n {
            let r = testrun::run(prog, &frames[self.next], ifindex, 1)?;
            wrong += usize::from(r.action != self.sc.action);
            if timed {
                self.ns.push(r.duration.as_nanos() as u64);
            }
            self.next = (self.next + 1) % frames.len();
        }
        Ok(wrong)
    }
}

/// Times `calls` calls of every scenario, interleaved: each scenario's first
/// frame once (checked), its warm-up ([`warmup_of`]), then turns of
/// [`TURN_CALLS`] calls of each scenario in order until every one has made
/// `calls`. So the floors and the balancer's paths share the VM's moods (its
/// speed varies by up to 2x over minutes), and their differences and ratios
/// compare like with like. After every turn the scenario's action, verdict
/// and connection-table counters are checked for exactly that turn's calls.
/// Returns one summary per scenario, in order.
pub fn measure_interleaved(
    env: &mut BenchEnv,
    scenarios: &[&Scenario],
    calls: usize,
) -> Result<Vec<Summary>> {
    let mut running = Vec::with_capacity(scenarios.len());
    for sc in scenarios {
        let warmup = warmup_of(sc, calls);
        if sc.unique_frames {
            ensure!(
                sc.frames.len() > warmup + calls,
                "{}: {} distinct frames needed, {} built",
                sc.name,
                warmup + calls + 1,
                sc.frames.len()
            );
        }
        check_first_run(env, sc).with_context(|| format!("per-packet scenario {}", sc.name))?;
        let mut r = Running {
            sc,
            next: 1 % sc.frames.len(),
            ns: Vec::with_capacity(calls),
        };
        let wrong = r.calls(env, warmup, false)?;
        ensure!(
            wrong == 0,
            "{}: {wrong} warm-up calls returned another action than {}",
            sc.name,
            sc.action
        );
        running.push(r);
    }
    let mut done = 0;
    while done < calls {
        let n = TURN_CALLS.min(calls - done);
        for r in &mut running {
            let sc = r.sc;
            let before = counters(env, sc)?;
            let wrong = r.calls(env, n, true)?;
            let after = counters(env, sc)?;
            check_turn(sc, n, wrong, before, after)
                .with_context(|| format!("per-packet scenario {}", sc.name))?;
        }
        done += n;
    }
    running
        .into_iter()
        .map(|mut r| Summary::of(&mut r.ns).context("no calls measured"))
        .collect()
}

/// What `calls` calls of `sc` must have done to the counters.
fn check_turn(
    sc: &Scenario,
    calls: usize,
    wrong: usize,
    before: Counters,
    after: Counters,
) -> Result<()> {
    ensure!(
        wrong == 0,
        "{wrong} of {calls} calls returned another action than {}",
        sc.action
    );
    if sc.verdict.is_some() {
        let got = after.verdict - before.verdict;
        ensure!(
            got == calls as u64,
            "verdict {:?} counted {got} times for {calls} calls",
            sc.verdict
        );
    }
    let new_flows = after.new_flows - before.new_flows;
    match sc.new_flows {
        NewFlows::NotApplicable => {}
        NewFlows::None => ensure!(
            new_flows == 0,
            "{new_flows} new flows in {calls} calls: the flow table did not hit"
        ),
        NewFlows::Every => ensure!(
            new_flows == calls as u64,
            "{new_flows} new flows in {calls} calls, expected one per call"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scenarios;

    #[test]
    fn a_turn_fails_unless_its_counters_match_its_calls() {
        let all = scenarios::all([2, 0, 0, 0, 0, 1], 1);
        let hit = all.iter().find(|s| s.name == "v4_tcp_flow_hit").unwrap();
        let c = |verdict, new_flows| Counters { verdict, new_flows };
        assert!(check_turn(hit, 500, 0, c(10, 3), c(510, 3)).is_ok());
        // A call counted under another verdict.
        assert!(check_turn(hit, 500, 0, c(10, 3), c(509, 3)).is_err());
        // A packet of the established flow missed the connection table.
        assert!(check_turn(hit, 500, 0, c(10, 3), c(510, 4)).is_err());
        // A call returned another action.
        assert!(check_turn(hit, 500, 1, c(10, 3), c(510, 3)).is_err());
        let miss = all.iter().find(|s| s.name == "v4_tcp_flow_miss").unwrap();
        assert!(check_turn(miss, 500, 0, c(0, 0), c(500, 500)).is_ok());
        assert!(check_turn(miss, 500, 0, c(0, 0), c(500, 499)).is_err());
    }

    #[test]
    fn the_scenarios_file_every_required_key() {
        let summary = Summary::of(&mut [100, 120, 140]).unwrap();
        let timings = scenarios::all([2, 0, 0, 0, 0, 1], 1)
            .iter()
            .map(|sc| ScenarioTiming {
                name: sc.name,
                summary,
                frame_bytes: sc.frames[0].len(),
            })
            .collect();
        let results = Results {
            timings,
            repeated: Vec::new(),
            verifier: Verifier {
                instructions: Some(1),
                xlated_bytes: Some(8),
                jited_bytes: 8,
                program_id: 1,
            },
        };
        let mut report = Report::new();
        results.record(&mut report);
        assert_eq!(report.missing(REQUIRED_KEYS), Vec::<&str>::new());
    }
}
