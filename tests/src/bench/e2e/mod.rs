//! End-to-end throughput through a balancer namespace: the same generator,
//! topology and sink for xlb, for the in-kernel alternative (nftables DNAT
//! with jhash over the 5-tuple), and for plain kernel forwarding (the
//! ceiling of what the kernel path can do without any balancer).
//!
//! A fourth case, `xdp_floor`, is the floor of XDP forwarding in the same
//! topology: `xlb_fwd_floor` on the ingress veth writes the sink's MACs and
//! redirects to the egress veth, nothing else. xlb does the same redirect
//! plus its balancing and encapsulation, so xlb / xdp_floor is the share of
//! the XDP forwarding rate xlb keeps. Its frames go to the VIP, which the
//! balancer namespace has no route for: kernel forwarding could not deliver
//! them, only the program can.
//!
//! A fifth, `lb_floor`, is the floor of any balancer with a connection
//! table there: `xlb_floor_e2e` looks each packet's flow up in an LRU hash
//! of 16-byte keys as large as xlb's connection table (filled by the
//! packets, as xlb's is), reads the backend and its VIP from arrays,
//! pushes the IP-in-IP header and redirects like `xdp_floor`. No stats,
//! clock, policy, health or next-hop lookup.
//!
//! Method (see [`topology`] for the wiring, [`workload`] for what is sent
//! and how the balancers are configured):
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
//!
//! Modules: [`measure`] takes one window, [`results`] holds the windows and
//! their statistics, [`report`] files them into the JSON report and prints
//! the table.

pub mod cpu;
pub mod measure;
pub mod report;
pub mod results;
pub mod topology;
pub mod workload;

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

pub use self::{
    report::REQUIRED_KEYS,
    results::{Results, Series, Window},
};
use self::{
    topology::{LbProgram, Napi, Topology},
    workload::{Proto, BACKENDS, VIP},
};

pub const SECTION: &str = "e2e";
/// Distinct source ports (flows) per protocol.
pub const FLOWS: u32 = 16_384;

/// The cases, in the order they run and print. `Xlb` is xlb's default
/// mode (`ipip`); the other forwarding modes follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Ceiling,
    Nftables,
    /// `xlb_fwd_floor`: MACs rewritten, redirect; the XDP forwarding floor.
    XdpFloor,
    /// `xlb_floor_e2e`: a 16-byte key's connection entry, its backend and
    /// VIP, IP-in-IP, redirect; the floor of a balancer with a connection
    /// table as large as xlb's.
    LbFloor,
    Xlb,
    XlbGue,
    XlbL2Dsr,
    XlbNat,
}

impl Case {
    pub const ALL: [Case; 8] = [
        Case::Ceiling,
        Case::Nftables,
        Case::XdpFloor,
        Case::LbFloor,
        Case::Xlb,
        Case::XlbGue,
        Case::XlbL2Dsr,
        Case::XlbNat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Ceiling => "ceiling",
            Case::Nftables => "nftables",
            Case::XdpFloor => "xdp_floor",
            Case::LbFloor => "lb_floor",
            Case::Xlb => "xlb",
            Case::XlbGue => "xlb_gue",
            Case::XlbL2Dsr => "xlb_l2_dsr",
            Case::XlbNat => "xlb_nat",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Case::Ceiling => "kernel forwarding, no balancer",
            Case::Nftables => "nftables DNAT, jhash mod 3",
            Case::XdpFloor => "XDP, MACs rewritten, redirect",
            Case::LbFloor => "XDP floor: 16-byte conn lookup, IPIP, redirect",
            Case::Xlb => "XDP, IPIP encap, redirect",
            Case::XlbGue => "XDP, GUE encap, redirect",
            Case::XlbL2Dsr => "XDP, l2-dsr MAC rewrite, redirect",
            Case::XlbNat => "XDP, full NAT, redirect",
        }
    }

    /// The VIPs' forwarding mode in an xlb case (`None`: not xlb).
    pub fn forwarding(self) -> Option<lb_common::Forwarding> {
        match self {
            Case::Xlb => Some(lb_common::Forwarding::Ipip),
            Case::XlbGue => Some(lb_common::Forwarding::Gue),
            Case::XlbL2Dsr => Some(lb_common::Forwarding::L2Dsr),
            Case::XlbNat => Some(lb_common::Forwarding::Nat),
            Case::Ceiling | Case::Nftables | Case::XdpFloor | Case::LbFloor => None,
        }
    }

    /// Whether the balancer runs in this case.
    pub fn is_xlb(self) -> bool {
        self.forwarding().is_some()
    }

    /// Where the generator sends.
    fn destination(self) -> Ipv4Addr {
        match self {
            Case::Ceiling => BACKENDS[0],
            _ => VIP,
        }
    }

    /// The program on the balancer's ingress veth.
    fn program(self) -> LbProgram {
        match self {
            Case::Ceiling | Case::Nftables => LbProgram::Pass,
            Case::XdpFloor => LbProgram::FwdFloor,
            Case::LbFloor => LbProgram::LbFloor,
            Case::Xlb | Case::XlbGue | Case::XlbL2Dsr | Case::XlbNat => LbProgram::Balancer,
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
    measure::check_generator(&mut topo).context("checking the generator's frames")?;
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
                windows: Vec::new(),
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
            let r = measure::measure(&mut topo, &config, cpus, s.case, s.proto);
            // Leave the kernel cases' state behind whatever happened.
            let cleanup = topo
                .set_nftables(false)
                .and_then(|()| topo.set_lb_program(LbProgram::Pass));
            match r.and_then(|x| cleanup.map(|()| x)) {
                Ok(window) => s.windows.push(window),
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
