//! How the end-to-end results are reported: the keys filed under `e2e` in
//! the JSON report (those CI requires in [`REQUIRED_KEYS`]), the table and
//! the notes that explain it.

use super::{
    results::{Results, Window},
    workload::{self, Proto},
    Case, FLOWS, SECTION,
};
use crate::bench::report::{round, Report, Table};

/// Keys every run of this part files (CI checks them after `--quick`).
pub const REQUIRED_KEYS: &[&str] = &[
    "e2e.xlb.pps",
    "e2e.nftables.pps",
    "e2e.ceiling.pps",
    "e2e.xdp_floor.pps",
    "e2e.xlb_vs_xdp_floor",
];

/// Below this share of the window busy, the CPU of the balancer namespace
/// and the sink was not the bottleneck: the generator was (said in the notes).
const SATURATED: f64 = 0.9;

impl Results {
    /// Files everything under `e2e`.
    pub fn record(&self, report: &mut Report) {
        let c = |k: &str| format!("{SECTION}.config.{k}");
        report.insert(&c("flows"), FLOWS);
        report.insert(&c("frame_bytes"), workload::FRAME_LEN as u64 + 4);
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
                s.windows
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
            if let Some(u) = s.median(Window::shared_util) {
                report.insert(&format!("{p}.shared_cpu_util"), round(u, 3));
            }
            if let Some(ns) = s.median(Window::sink_ns_per_packet) {
                report.insert(&format!("{p}.sink_cpu_ns_per_packet"), round(ns, 1));
            }
            if let Some(ns) = s.median(Window::gen_ns_per_frame) {
                report.insert(&format!("{p}.gen_cpu_ns_per_frame"), round(ns, 1));
            }
            report.insert(
                &format!("{p}.delivered"),
                s.windows.iter().map(|x| x.delivered).sum::<u64>(),
            );
            if let Some(last) = s.windows.last() {
                if !last.checks.is_null() {
                    report.insert(&format!("{p}.checks"), last.checks.clone());
                }
            }
        }
        for (proto, suffix) in [(Proto::Udp, ""), (Proto::TcpSyn, "_tcp_syn")] {
            // Each other forwarding mode against ipip, paired by round.
            for mode in [Case::XlbGue, Case::XlbL2Dsr, Case::XlbNat] {
                if let Some(r) = self.paired_cases(proto, mode, Case::Xlb, |w| Some(w.pps())) {
                    report.insert(
                        &format!("{SECTION}.{}_vs_xlb{suffix}", mode.name()),
                        round(r, 3),
                    );
                }
            }
            for over in [Case::Nftables, Case::Ceiling, Case::XdpFloor, Case::LbFloor] {
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
                c if c.is_xlb() => dash(),
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
                s.median(Window::sink_ns_per_packet)
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
                "e2e: Mpps = packets the sink counted per second of a {:.1} s window after at least \
                 {:.1} s of warm-up (longer, until a 0.2 s slice opens almost no new \
                 connection), median of {} round(s); 64-byte frames, {FLOWS} flows (source \
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
                s.median(Window::shared_util)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::e2e::results::tests::results;

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

    #[test]
    fn a_run_without_errors_files_every_required_key() {
        let mut r = results();
        let ceiling = r.get(Case::Ceiling, Proto::Udp).unwrap().clone();
        let nft = r
            .series
            .iter_mut()
            .find(|s| s.case == Case::Nftables)
            .unwrap();
        nft.error = None;
        nft.windows = ceiling.windows;
        let mut report = Report::new();
        r.record(&mut report);
        assert_eq!(report.missing(REQUIRED_KEYS), Vec::<&str>::new());
    }
}
