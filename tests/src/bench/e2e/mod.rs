//! End-to-end throughput through a balancer namespace: the same generator,
//! topology and sink for xlb, for the in-kernel alternative (nftables DNAT
//! with jhash over the 5-tuple), and for plain kernel forwarding (the
//! ceiling of what the kernel path can do without any balancer).
//!
//! Method (see [`topology`] for the wiring):
//! - The generator (`xlb_gen`, live-frames test runs on `xlbe-gen0`, alone on
//!   its CPU) writes a 60-byte frame (64 on the wire) with the next of
//!   [`FLOWS`] source ports and transmits it into the balancer namespace as
//!   fast as it can (several times what any case forwards): frames the
//!   balancer namespace cannot take are dropped at its ring, as at a NIC.
//! - The balancer namespace's receive work runs in the NAPI thread of
//!   `xlbe-lbin`; the sink's in the NAPI thread of `xlbe-sink0`. Both are
//!   pinned to the other CPU, the sink's with real-time priority. That CPU
//!   is the bottleneck of every case: forwarded packets per second is what
//!   one core does running the balancer namespace and the sink.
//! - CPU time is attributed per thread with perf task-clock counters: the
//!   balancer namespace's CPU nanoseconds per packet (`lb_cpu_ns_per_packet`)
//!   exclude the sink and the generator, and `lb_core_pps` = 10^9 / that is
//!   the rate one core would forward doing only the balancer namespace's
//!   work.
//! - Why the sink shares the balancer's CPU rather than the generator's:
//!   a veth hands a packet to its peer's NAPI thread, which must be woken
//!   when idle; across CPUs that is an inter-processor interrupt, which in
//!   this virtual machine costs the balancer namespace 400-900 ns per packet
//!   on the kernel paths (one wake-up per few packets: `veth_xmit` transmits
//!   one skb at a time) and far less for xlb (one per redirect batch). A
//!   real NIC's transmit wakes nobody. On the same CPU the wake-up is a
//!   local context switch. Measured both ways in one session (perf task
//!   clock, UDP, per packet): ceiling 1,020 vs 580 ns, nftables 1,890 vs
//!   1,110 ns, xlb 275-420 vs 310 ns.
//! - After a warm-up (every flow has its connection-table / conntrack entry:
//!   the steady state of established flows), the sink's counter, the
//!   generator's counter and the task clocks are read at both ends of a
//!   fixed window: forwarded packets per second = sink delta / window.
//! - Checks that make a broken setup fail instead of reporting a number: the
//!   sink counts only what the balancer namespace routed to the backends
//!   (it has no route for the VIP, so untranslated packets never reach it),
//!   xlb's verdict counters must show `Redirect` for at least 99.9% of its
//!   packets and every backend must get traffic, nftables' conntrack must
//!   hold an entry per flow, at most 1% of the window's packets may open a
//!   connection, and the sink may lose at most 1% at its ring.
//!
//! UDP and TCP SYN frames are measured separately; `e2e.<case>.pps` is the
//! UDP figure. With one CPU everything shares it (the rates are then of the
//! whole pipeline, the CPU attribution still holds); without threaded NAPI
//! the receive work runs in softirq on the generator's CPU and cannot be
//! attributed (both said in `e2e.config`).

pub mod cpu;
pub mod topology;

use std::{
    net::Ipv4Addr,
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use lb_common::{gen_frame, Verdict};
use serde_json::{json, Value};

use self::topology::{LbProgram, Napi, Proto, Topology, BACKENDS, VIP};
use super::{
    report::{Report, Table},
    testrun,
};

pub const SECTION: &str = "e2e";
/// Distinct source ports (flows) per protocol.
pub const FLOWS: u32 = 16_384;
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
/// Below this share of the window busy, the CPU of the balancer namespace
/// and the sink was not the bottleneck: the generator was (said in the notes).
const SATURATED: f64 = 0.9;
/// Time for the last packets to reach the sink after the generator stops.
const SETTLE: Duration = Duration::from_millis(50);

/// The three cases, in the order they run and print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Ceiling,
    Nftables,
    Xlb,
}

impl Case {
    pub const ALL: [Case; 3] = [Case::Ceiling, Case::Nftables, Case::Xlb];

    pub fn name(self) -> &'static str {
        match self {
            Case::Ceiling => "ceiling",
            Case::Nftables => "nftables",
            Case::Xlb => "xlb",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Case::Ceiling => "kernel forwarding, no balancer",
            Case::Nftables => "nftables DNAT, jhash mod 3",
            Case::Xlb => "XDP, IPIP encap, redirect",
        }
    }

    /// Where the generator sends.
    fn destination(self) -> Ipv4Addr {
        match self {
            Case::Ceiling => BACKENDS[0],
            Case::Nftables | Case::Xlb => VIP,
        }
    }
}

/// How long and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub rounds: u32,
    pub warmup: Duration,
    pub window: Duration,
}

impl Config {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 1,
                warmup: Duration::from_millis(300),
                window: Duration::from_millis(1000),
            }
        } else {
            // Many short rounds: this machine's speed jumps by tens of
            // percent every few seconds (a virtual machine); medians over
            // interleaved rounds, and ratios paired within a round, resist
            // that best.
            Self {
                rounds: 7,
                warmup: Duration::from_millis(300),
                window: Duration::from_millis(700),
            }
        }
    }
}

/// The generator's CPU and the balancer namespace's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpus {
    pub gen: usize,
    pub lb: usize,
}

impl Cpus {
    /// `gen`, and for the balancer the lowest other CPU of `allowed` (the
    /// same one when there is no other).
    pub fn pick(allowed: &[usize], gen: usize) -> Self {
        let lb = allowed.iter().copied().find(|&c| c != gen).unwrap_or(gen);
        Self { gen, lb }
    }
}

/// One window of one case and protocol.
#[derive(Clone, Debug)]
pub struct Sample {
    pub window: Duration,
    /// Packets the sink counted in the window.
    pub delivered: u64,
    /// Frames the generator built in the window (offered load).
    pub generated: u64,
    /// CPU time of the balancer namespace's NAPI thread(s).
    pub lb_cpu: Option<Duration>,
    /// CPU time of the sink's NAPI thread(s).
    pub sink_cpu: Option<Duration>,
    /// CPU time of the generator thread.
    pub gen_cpu: Option<Duration>,
    /// What the case-specific checks saw (JSON, kept in the report).
    pub checks: Value,
}

impl Sample {
    pub fn pps(&self) -> f64 {
        self.delivered as f64 / self.window.as_secs_f64()
    }

    pub fn offered_pps(&self) -> f64 {
        self.generated as f64 / self.window.as_secs_f64()
    }

    /// Balancer-namespace CPU nanoseconds per forwarded packet.
    pub fn lb_ns_per_packet(&self) -> Option<f64> {
        per_packet(self.lb_cpu, self.delivered)
    }

    pub fn sink_ns_per_packet(&self) -> Option<f64> {
        per_packet(self.sink_cpu, self.delivered)
    }

    /// Share of the window the balancer namespace's thread(s) ran.
    pub fn lb_util(&self) -> Option<f64> {
        self.lb_cpu
            .map(|c| c.as_secs_f64() / self.window.as_secs_f64())
    }

    /// Share of the window the balancer namespace's and the sink's threads
    /// ran together (they share a CPU: near 1 when it was the bottleneck).
    pub fn shared_util(&self) -> Option<f64> {
        match (self.lb_cpu, self.sink_cpu) {
            (Some(l), Some(s)) => Some((l + s).as_secs_f64() / self.window.as_secs_f64()),
            _ => None,
        }
    }
}

fn per_packet(cpu: Option<Duration>, packets: u64) -> Option<f64> {
    match (cpu, packets) {
        (Some(c), n) if n > 0 => Some(c.as_nanos() as f64 / n as f64),
        _ => None,
    }
}

/// Every round's sample of one case and protocol, or why it failed.
#[derive(Clone, Debug)]
pub struct Series {
    pub case: Case,
    pub proto: Proto,
    pub samples: Vec<Sample>,
    pub error: Option<String>,
}

impl Series {
    fn median(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().filter_map(f).collect();
        if v.is_empty() || self.error.is_some() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    pub fn pps(&self) -> Option<f64> {
        self.median(|s| Some(s.pps()))
    }

    /// (max - min) / median of the rounds' rates (with two rounds or more).
    pub fn spread(&self) -> Option<f64> {
        if self.samples.len() < 2 {
            return None;
        }
        let med = self.pps()?;
        let rates: Vec<f64> = self.samples.iter().map(Sample::pps).collect();
        let max = rates.iter().copied().fold(f64::MIN, f64::max);
        let min = rates.iter().copied().fold(f64::MAX, f64::min);
        (med > 0.0).then(|| (max - min) / med)
    }

    pub fn lb_ns_per_packet(&self) -> Option<f64> {
        self.median(Sample::lb_ns_per_packet)
    }

    pub fn lb_util(&self) -> Option<f64> {
        self.median(Sample::lb_util)
    }

    /// Packets per second one core doing only the balancer namespace's work
    /// would forward: 10^9 / `lb_ns_per_packet`.
    pub fn lb_core_pps(&self) -> Option<f64> {
        self.lb_ns_per_packet()
            .filter(|&ns| ns > 0.0)
            .map(|ns| 1e9 / ns)
    }

    pub fn offered_pps(&self) -> Option<f64> {
        self.median(|s| Some(s.offered_pps()))
    }
}

#[derive(Clone, Debug)]
pub struct Results {
    pub config: Config,
    pub cpus: Cpus,
    /// `None`: threaded NAPI; else why it could not be used.
    pub softirq_reason: Option<String>,
    pub series: Vec<Series>,
    pub setup_s: f64,
    /// Whether GRO was on on the balancer's ingress veth (kernel cases).
    pub lbin_gro: Option<bool>,
    /// Why the NAPI threads' CPU time could not be counted (perf), if so.
    pub clock_error: Option<String>,
}

impl Results {
    pub fn get(&self, case: Case, proto: Proto) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.case == case && s.proto == proto)
    }

    /// xlb's rate / `over`'s rate: the median over the rounds of each
    /// round's ratio. The cases of a round run seconds apart, while this
    /// machine's speed jumps by up to 1.5x every few seconds to tens of
    /// seconds; pairing within a round keeps most ratios within one regime
    /// (the ratio of the medians could take xlb's from one regime and the
    /// other's from another).
    pub fn ratio(&self, proto: Proto, over: Case) -> Option<f64> {
        self.paired(proto, over, |s| Some(s.pps()))
    }

    /// xlb's balancer-namespace CPU per packet / `over`'s, paired by round
    /// like [`ratio`](Self::ratio).
    pub fn cpu_ratio(&self, proto: Proto, over: Case) -> Option<f64> {
        self.paired(proto, over, Sample::lb_ns_per_packet)
    }

    fn paired(&self, proto: Proto, over: Case, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let x = self.get(Case::Xlb, proto).filter(|s| s.error.is_none())?;
        let o = self.get(over, proto).filter(|s| s.error.is_none())?;
        let mut r: Vec<f64> = x
            .samples
            .iter()
            .zip(&o.samples)
            .filter_map(|(a, b)| Some((f(a)?, f(b)?)))
            .filter(|(_, b)| *b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        if r.is_empty() {
            return None;
        }
        r.sort_by(f64::total_cmp);
        let n = r.len();
        Some(if n % 2 == 1 {
            r[n / 2]
        } else {
            (r[n / 2 - 1] + r[n / 2]) / 2.0
        })
    }

    /// Files everything under `e2e`.
    pub fn record(&self, report: &mut Report) {
        let c = |k: &str| format!("{SECTION}.config.{k}");
        report.insert(&c("flows"), FLOWS);
        report.insert(&c("frame_bytes"), topology::FRAME_LEN as u64 + 4);
        report.insert(&c("rounds"), self.config.rounds);
        report.insert(&c("warmup_s"), self.config.warmup.as_secs_f64());
        report.insert(&c("window_s"), self.config.window.as_secs_f64());
        report.insert(&c("gen_cpu"), self.cpus.gen);
        report.insert(&c("lb_cpu"), self.cpus.lb);
        report.insert(&c("sink_cpu"), self.cpus.lb);
        report.insert(&c("cpu_time_source"), "perf task-clock per thread");
        report.insert(
            &c("generator_own_cpu"),
            self.softirq_reason.is_none() && self.cpus.gen != self.cpus.lb,
        );
        report.insert(
            &c("napi"),
            if self.softirq_reason.is_none() {
                "threaded"
            } else {
                "softirq"
            },
        );
        if let Some(why) = &self.softirq_reason {
            report.insert(&c("threaded_napi_error"), why.as_str());
        }
        if let Some(why) = &self.clock_error {
            report.insert(&c("cpu_time_error"), why.as_str());
        }
        report.insert(&c("pps_is"), "udp");
        report.insert(&c("nf_conntrack_checksum"), 0);
        if let Some(gro) = self.lbin_gro {
            report.insert(&c("lbin_gro"), gro);
        }
        report.insert(&c("setup_s"), round(self.setup_s, 2));

        for s in &self.series {
            let p = format!("{SECTION}.{}.{}", s.case.name(), s.proto.name());
            if let Some(e) = &s.error {
                report.insert(&format!("{p}.error"), e.as_str());
                continue;
            }
            let Some(pps) = s.pps() else { continue };
            report.insert(
                &format!("{SECTION}.{}.{}_pps", s.case.name(), s.proto.name()),
                pps.round(),
            );
            if s.proto == Proto::Udp {
                report.insert(&format!("{SECTION}.{}.pps", s.case.name()), pps.round());
            }
            report.insert(&format!("{p}.pps"), pps.round());
            report.insert(
                &format!("{p}.runs_pps"),
                s.samples
                    .iter()
                    .map(|x| x.pps().round())
                    .collect::<Vec<_>>(),
            );
            if let Some(sp) = s.spread() {
                report.insert(&format!("{p}.spread"), round(sp, 4));
            }
            if let Some(o) = s.offered_pps() {
                report.insert(&format!("{p}.offered_pps"), o.round());
            }
            if let Some(ns) = s.lb_ns_per_packet() {
                report.insert(&format!("{p}.lb_cpu_ns_per_packet"), round(ns, 1));
            }
            if let Some(x) = s.lb_core_pps() {
                report.insert(&format!("{p}.lb_core_pps"), x.round());
            }
            if let Some(u) = s.lb_util() {
                report.insert(&format!("{p}.lb_cpu_util"), round(u, 3));
            }
            if let Some(u) = s.median(Sample::shared_util) {
                report.insert(&format!("{p}.shared_cpu_util"), round(u, 3));
            }
            if let Some(ns) = s.median(Sample::sink_ns_per_packet) {
                report.insert(&format!("{p}.sink_cpu_ns_per_packet"), round(ns, 1));
            }
            if let Some(ns) = s.median(|x| per_packet(x.gen_cpu, x.generated)) {
                report.insert(&format!("{p}.gen_cpu_ns_per_frame"), round(ns, 1));
            }
            report.insert(
                &format!("{p}.delivered"),
                s.samples.iter().map(|x| x.delivered).sum::<u64>(),
            );
            if let Some(last) = s.samples.last() {
                if !last.checks.is_null() {
                    report.insert(&format!("{p}.checks"), last.checks.clone());
                }
            }
        }
        for (proto, suffix) in [(Proto::Udp, ""), (Proto::TcpSyn, "_tcp_syn")] {
            for over in [Case::Nftables, Case::Ceiling] {
                if let Some(r) = self.ratio(proto, over) {
                    report.insert(
                        &format!("{SECTION}.xlb_vs_{}{suffix}", over.name()),
                        round(r, 3),
                    );
                }
                if let Some(r) = self.cpu_ratio(proto, over) {
                    report.insert(
                        &format!("{SECTION}.xlb_cpu_vs_{}{suffix}", over.name()),
                        round(r, 3),
                    );
                }
            }
        }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(&[
            "e2e case",
            "traffic",
            "Mpps",
            "spread",
            "xlb is x",
            "lb CPU ns/pkt",
            "Mpps/lb core",
            "xlb CPU is x",
            "sink ns/pkt",
        ]);
        let dash = || "-".to_string();
        for s in &self.series {
            let name = format!("{} ({})", s.case.name(), s.case.describe());
            let Some(pps) = s.pps() else {
                let mut row = vec![name, s.proto.name().into(), "error".into()];
                row.extend(std::iter::repeat_with(dash).take(6));
                t.row(row);
                continue;
            };
            let vs = |r: Option<f64>| match s.case {
                Case::Xlb => dash(),
                _ => r.map(|r| format!("{r:.2}")).unwrap_or_else(dash),
            };
            t.row(vec![
                name,
                s.proto.name().into(),
                format!("{:.3}", pps / 1e6),
                s.spread()
                    .map(|x| format!("{:.1}%", x * 100.0))
                    .unwrap_or_else(dash),
                vs(self.ratio(s.proto, s.case)),
                s.lb_ns_per_packet()
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(dash),
                s.lb_core_pps()
                    .map(|x| format!("{:.2}", x / 1e6))
                    .unwrap_or_else(dash),
                vs(self.cpu_ratio(s.proto, s.case).map(|r| 1.0 / r)),
                s.median(Sample::sink_ns_per_packet)
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(dash),
            ]);
        }
        t
    }

    /// Lines explaining the table (method, caveats, errors).
    pub fn notes(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "e2e: Mpps = packets the sink counted per second of a {:.1} s window after {:.1} \
                 s of warm-up, median of {} round(s); 64-byte frames, {FLOWS} flows (source \
                 ports), established (every flow has its connection-table or conntrack entry). \
                 e2e.<case>.pps in the JSON is the UDP figure.",
                self.config.window.as_secs_f64(),
                self.config.warmup.as_secs_f64(),
                self.config.rounds
            ),
            "e2e: \"xlb is x\" = xlb's Mpps / the row's; \"lb CPU ns/pkt\" = CPU time of the \
             balancer namespace (its NAPI thread, perf task clock) per forwarded packet; \
             \"Mpps/lb core\" = 1000 / that; \"xlb CPU is x\" = the row's lb CPU / xlb's. \
             Ratios are medians of each round's ratio (this machine's speed jumps by up to \
             1.5x every few seconds: compare within a round, see spread)."
                .to_string(),
        ];
        match &self.softirq_reason {
            None if self.cpus.gen != self.cpus.lb => out.push(format!(
                "e2e: the generator runs alone on CPU {}; the balancer namespace and the sink \
                 share CPU {} (the bottleneck: Mpps is one core doing both). On separate CPUs the \
                 veth wake-ups between them cost the kernel paths an inter-processor interrupt \
                 every few packets (see bench::e2e).",
                self.cpus.gen, self.cpus.lb
            )),
            None => out.push(format!(
                "e2e: one CPU only: generator, balancer namespace and sink share CPU {}; the rates \
                 are of the whole pipeline, the lb CPU columns still are the balancer \
                 namespace's own.",
                self.cpus.gen
            )),
            Some(why) => out.push(format!(
                "e2e: threaded NAPI unavailable ({why}): the balancer namespace's work runs in \
                 softirq on the generator's CPU, the rates are of the whole pipeline and its CPU \
                 time cannot be told apart."
            )),
        }
        if let Some(why) = &self.clock_error {
            out.push(format!("e2e: no CPU attribution: {why}"));
        }
        out.push(
            "e2e: nftables runs with conntrack (DNAT needs it; nf_conntrack_checksum=0, as NIC \
             checksum offload would make it). The kernel cases run xlb_pass on the ingress veth \
             (a veth passes XDP_TX frames only to a peer with a native XDP program)."
                .into(),
        );
        for s in &self.series {
            if let Some(e) = &s.error {
                out.push(format!("e2e {} {}: {e}", s.case.name(), s.proto.name()));
                continue;
            }
            let busy = if self.cpus.gen != self.cpus.lb {
                s.median(Sample::shared_util)
            } else {
                None
            };
            if let Some(u) = busy.filter(|&u| u < SATURATED) {
                out.push(format!(
                    "e2e {} {}: the balancer namespace's CPU was busy only {:.0}% of the window: \
                     the generator did not saturate it, the rate understates it (CPU ns/packet \
                     still holds)",
                    s.case.name(),
                    s.proto.name(),
                    u * 100.0
                ));
            }
        }
        out
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// Builds the topology, measures every case for both protocols `rounds`
/// times, and tears everything down. Setup failures are errors; a case that
/// fails is reported as such while the others still run.
pub fn run(config: Config, cpus: Cpus) -> Result<Results> {
    let started = Instant::now();
    let mut topo =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Topology::setup(cpus.lb)))
            .map_err(|p| {
                anyhow::anyhow!("setting up the e2e namespaces panicked: {}", panic_text(&p))
            })?
            .context("setting up the e2e namespaces")?;
    let (softirq_reason, clock_error) = match &topo.napi {
        Napi::Threaded { clocks } => (None, clocks.as_ref().err().cloned()),
        Napi::Softirq(why) => (Some(why.clone()), None),
    };
    check_generator(&mut topo).context("checking the generator's frames")?;
    let lbin_gro = topo.lbin_gro();
    let setup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "e2e: namespaces {}, {}, {}; generator on CPU {}, balancer namespace on CPU {} ({})",
        topo.gen.name(),
        topo.lb.name(),
        topo.sink_ns.name(),
        cpus.gen,
        cpus.lb,
        if softirq_reason.is_none() {
            "threaded NAPI"
        } else {
            "softirq NAPI"
        }
    );

    let mut series: Vec<Series> = Vec::new();
    for proto in Proto::ALL {
        for case in Case::ALL {
            series.push(Series {
                case,
                proto,
                samples: Vec::new(),
                error: None,
            });
        }
    }
    for round in 0..config.rounds {
        for s in series.iter_mut() {
            if s.error.is_some() {
                continue;
            }
            eprintln!(
                "e2e: round {}/{}: {} {}",
                round + 1,
                config.rounds,
                s.case.name(),
                s.proto.name()
            );
            let r = measure(&mut topo, &config, cpus, s.case, s.proto);
            // Leave the kernel cases' state behind whatever happened.
            let cleanup = topo
                .set_nftables(false)
                .and_then(|()| topo.set_lb_program(LbProgram::Pass));
            match r.and_then(|x| cleanup.map(|()| x)) {
                Ok(sample) => s.samples.push(sample),
                Err(e) => {
                    eprintln!("e2e: {} {}: {e:#}", s.case.name(), s.proto.name());
                    s.error = Some(format!("{e:#}"));
                }
            }
        }
    }
    drop(topo);
    Ok(Results {
        config,
        cpus,
        softirq_reason,
        series,
        setup_s,
        lbin_gro,
        clock_error,
    })
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "?".into())
}

/// Runs the generator once without transmitting and checks what it made:
/// a frame of the template with the next source port and valid checksums.
fn check_generator(topo: &mut Topology) -> Result<()> {
    for proto in Proto::ALL {
        let template = topo.set_frame(proto, VIP, FLOWS)?;
        let before = topo.generated_per_cpu()?;
        // Any input frame: the generator overwrites all of it.
        let junk = vec![0xa5u8; topology::FRAME_LEN];
        let _in = crate::netns::enter_by_name(topo.gen.name());
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
    let (verdicts, backends, new_flows) = if case == Case::Xlb {
        let b = topo
            .backend_ids(proto)
            .into_iter()
            .map(|id| topo.dp.backend_stats(id).map(|s| s.packets))
            .collect::<Result<Vec<_>, _>>()?;
        let vip = topo
            .reconciler
            .vip_id(&topology::vip_key(proto))
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

fn measure(
    topo: &mut Topology,
    config: &Config,
    cpus: Cpus,
    case: Case,
    proto: Proto,
) -> Result<Sample> {
    topo.set_lb_program(if case == Case::Xlb {
        LbProgram::Balancer
    } else {
        LbProgram::Pass
    })?;
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
            let first = snapshot(topo, case, proto, gen_clock.as_ref())?;
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
    let new_conns = match case {
        Case::Xlb => last.new_flows - first.new_flows,
        Case::Nftables => last.conntrack.saturating_sub(first.conntrack),
        Case::Ceiling => 0,
    };
    ensure!(
        (new_conns as f64) <= MAX_NEW_SHARE * delivered as f64,
        "{new_conns} connections were new in the window ({delivered} packets): not the steady \
         state of established flows (longer warm-up needed)"
    );
    let mut checks = match case {
        Case::Xlb => check_xlb(&first, &last)?,
        Case::Nftables => check_nftables(topo, &last)?,
        Case::Ceiling => json!({}),
    };
    checks["new_connections_in_window"] = json!(new_conns);
    checks["lost_at_sink"] = json!(lost);
    Ok(Sample {
        window,
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
    let _in = crate::netns::enter_by_name(ns);
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
        "sink_vs_redirected": round((last.sink - first.sink) as f64 / redirected as f64, 4),
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
    let rules = topo.lb_cmd("nft", &["list", "table", "ip", "xlb_e2e"])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pps: f64, lb_ns: f64) -> Sample {
        let delivered = pps as u64;
        Sample {
            window: Duration::from_secs(1),
            delivered,
            generated: delivered * 4,
            lb_cpu: Some(Duration::from_nanos((lb_ns * pps) as u64)),
            sink_cpu: Some(Duration::from_millis(200)),
            gen_cpu: None,
            checks: json!({}),
        }
    }

    fn results() -> Results {
        // Round 2 is "fast" for xlb only: the ratio of the medians (2.0 / 1.0)
        // and the median of the paired ratios (2.0, 1.5, 2.0) differ.
        let series = |case, proto, rates: &[(f64, f64)]| Series {
            case,
            proto,
            samples: rates.iter().map(|&(p, ns)| sample(p, ns)).collect(),
            error: None,
        };
        Results {
            config: Config::new(false),
            cpus: Cpus { gen: 1, lb: 0 },
            softirq_reason: None,
            series: vec![
                series(
                    Case::Ceiling,
                    Proto::Udp,
                    &[(1e6, 600.0), (2e6, 300.0), (1e6, 600.0)],
                ),
                Series {
                    error: Some("broken".into()),
                    ..series(Case::Nftables, Proto::Udp, &[])
                },
                series(
                    Case::Xlb,
                    Proto::Udp,
                    &[(2e6, 300.0), (3e6, 200.0), (2e6, 300.0)],
                ),
            ],
            setup_s: 0.1,
            lbin_gro: Some(false),
            clock_error: None,
        }
    }

    #[test]
    fn ratios_pair_rounds() {
        let r = results();
        assert_eq!(r.get(Case::Xlb, Proto::Udp).unwrap().pps(), Some(2e6));
        assert_eq!(r.ratio(Proto::Udp, Case::Ceiling), Some(2.0));
        assert_eq!(r.cpu_ratio(Proto::Udp, Case::Ceiling), Some(0.5));
        assert_eq!(r.ratio(Proto::Udp, Case::Nftables), None);
    }

    #[test]
    fn record_files_the_promised_keys() {
        let mut report = Report::new();
        results().record(&mut report);
        for key in [
            "e2e.xlb.pps",
            "e2e.xlb.udp_pps",
            "e2e.xlb.udp.pps",
            "e2e.xlb.udp.runs_pps",
            "e2e.xlb.udp.spread",
            "e2e.xlb.udp.lb_cpu_ns_per_packet",
            "e2e.xlb.udp.lb_core_pps",
            "e2e.xlb.udp.shared_cpu_util",
            "e2e.ceiling.pps",
            "e2e.nftables.udp.error",
            "e2e.xlb_vs_ceiling",
            "e2e.xlb_cpu_vs_ceiling",
            "e2e.config.napi",
        ] {
            assert!(report.get(key).is_some(), "{key} missing");
        }
        assert!(report.get("e2e.nftables.pps").is_none());
        assert!(report.get("e2e.xlb_vs_nftables").is_none());
        let table = results().table().render();
        assert!(table.contains("error"), "{table}");
    }
}
