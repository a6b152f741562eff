//! What the end-to-end benchmark measured: a [`Window`] per case, protocol
//! and round, the [`Series`] of one case and protocol over the rounds, and
//! the [`Results`] of the run, with the statistics over them (medians over
//! the rounds, their spread, ratios paired within a round).

use std::time::Duration;

use serde_json::Value;

use super::{workload::Proto, Case, Config, Cpus};
use crate::bench::stats::median;

/// One measurement window of one case and protocol.
#[derive(Clone, Debug)]
pub struct Window {
    pub length: Duration,
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

impl Window {
    pub fn pps(&self) -> f64 {
        self.delivered as f64 / self.length.as_secs_f64()
    }

    pub fn offered_pps(&self) -> f64 {
        self.generated as f64 / self.length.as_secs_f64()
    }

    /// Balancer-namespace CPU nanoseconds per forwarded packet.
    pub fn lb_ns_per_packet(&self) -> Option<f64> {
        per_packet(self.lb_cpu, self.delivered)
    }

    pub fn sink_ns_per_packet(&self) -> Option<f64> {
        per_packet(self.sink_cpu, self.delivered)
    }

    /// Generator CPU nanoseconds per frame built.
    pub fn gen_ns_per_frame(&self) -> Option<f64> {
        per_packet(self.gen_cpu, self.generated)
    }

    /// Share of the window the balancer namespace's thread(s) ran.
    pub fn lb_util(&self) -> Option<f64> {
        self.lb_cpu
            .map(|c| c.as_secs_f64() / self.length.as_secs_f64())
    }

    /// Share of the window the balancer namespace's and the sink's threads
    /// ran together (they share a CPU: near 1 when it was the bottleneck).
    pub fn shared_util(&self) -> Option<f64> {
        match (self.lb_cpu, self.sink_cpu) {
            (Some(l), Some(s)) => Some((l + s).as_secs_f64() / self.length.as_secs_f64()),
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

/// Every round's window of one case and protocol, or why it failed.
#[derive(Clone, Debug)]
pub struct Series {
    pub case: Case,
    pub proto: Proto,
    pub windows: Vec<Window>,
    pub error: Option<String>,
}

impl Series {
    /// The median over the rounds of `f` (none for a failed series).
    pub fn median(&self, f: impl Fn(&Window) -> Option<f64>) -> Option<f64> {
        if self.error.is_some() {
            return None;
        }
        median(self.windows.iter().filter_map(f))
    }

    pub fn pps(&self) -> Option<f64> {
        self.median(|w| Some(w.pps()))
    }

    /// (max - min) / median of the rounds' rates (with two rounds or more).
    pub fn spread(&self) -> Option<f64> {
        if self.windows.len() < 2 {
            return None;
        }
        let med = self.pps()?;
        let rates: Vec<f64> = self.windows.iter().map(Window::pps).collect();
        let max = rates.iter().copied().fold(f64::MIN, f64::max);
        let min = rates.iter().copied().fold(f64::MAX, f64::min);
        (med > 0.0).then(|| (max - min) / med)
    }

    pub fn lb_ns_per_packet(&self) -> Option<f64> {
        self.median(Window::lb_ns_per_packet)
    }

    pub fn lb_util(&self) -> Option<f64> {
        self.median(Window::lb_util)
    }

    /// Packets per second one core doing only the balancer namespace's work
    /// would forward: 10^9 / `lb_ns_per_packet`.
    pub fn lb_core_pps(&self) -> Option<f64> {
        self.lb_ns_per_packet()
            .filter(|&ns| ns > 0.0)
            .map(|ns| 1e9 / ns)
    }

    pub fn offered_pps(&self) -> Option<f64> {
        self.median(|w| Some(w.offered_pps()))
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
        self.paired(proto, over, |w| Some(w.pps()))
    }

    /// xlb's balancer-namespace CPU per packet / `over`'s, paired by round
    /// like [`ratio`](Self::ratio).
    pub fn cpu_ratio(&self, proto: Proto, over: Case) -> Option<f64> {
        self.paired(proto, over, Window::lb_ns_per_packet)
    }

    fn paired(&self, proto: Proto, over: Case, f: impl Fn(&Window) -> Option<f64>) -> Option<f64> {
        self.paired_cases(proto, Case::Xlb, over, f)
    }

    /// `case`'s `f` / `over`'s, the median of the ratios paired by round.
    pub fn paired_cases(
        &self,
        proto: Proto,
        case: Case,
        over: Case,
        f: impl Fn(&Window) -> Option<f64>,
    ) -> Option<f64> {
        let x = self.get(case, proto).filter(|s| s.error.is_none())?;
        let o = self.get(over, proto).filter(|s| s.error.is_none())?;
        median(
            x.windows
                .iter()
                .zip(&o.windows)
                .filter_map(|(a, b)| Some((f(a)?, f(b)?)))
                .filter(|(_, b)| *b > 0.0)
                .map(|(a, b)| a / b),
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    fn window(pps: f64, lb_ns: f64) -> Window {
        let delivered = pps as u64;
        Window {
            length: Duration::from_secs(1),
            delivered,
            generated: delivered * 4,
            lb_cpu: Some(Duration::from_nanos((lb_ns * pps) as u64)),
            sink_cpu: Some(Duration::from_millis(200)),
            gen_cpu: None,
            checks: json!({}),
        }
    }

    /// Three rounds of ceiling and xlb over UDP; nftables failed.
    pub fn results() -> Results {
        // Round 2 is "fast" for xlb only: the ratio of the medians (2.0 / 1.0)
        // and the median of the paired ratios (2.0, 1.5, 2.0) differ.
        let series = |case, proto, rates: &[(f64, f64)]| Series {
            case,
            proto,
            windows: rates.iter().map(|&(p, ns)| window(p, ns)).collect(),
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
                    Case::XdpFloor,
                    Proto::Udp,
                    &[(4e6, 150.0), (4e6, 150.0), (4e6, 150.0)],
                ),
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
        assert_eq!(r.ratio(Proto::Udp, Case::XdpFloor), Some(0.5));
    }
}
