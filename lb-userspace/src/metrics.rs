//! Prometheus exposition of a [`StatsSnapshot`] with the `prometheus-client`
//! crate. The counters live in BPF maps, so they are read at scrape time and
//! encoded as constant metrics by a collector, not kept in process memory.
//!
//! Names: `xlb_vip_packets_total{vip}`, `xlb_vip_bytes_total{vip}`,
//! `xlb_vip_new_flows_total{vip}`, `xlb_vip_fail_open{vip}`, `xlb_vip_announced{vip}`,
//! `xlb_backend_packets_total{vip,backend}`, `xlb_backend_bytes_total{vip,backend}`,
//! `xlb_backend_healthy{vip,backend}`, `xlb_backend_weight{vip,backend}`,
//! `xlb_verdict_packets_total{reason}`,
//! `xlb_interface_xdp_errors_total{interface,counter}`, `xlb_table_rebuilds_total`,
//! `xlb_table_slots_changed_total`, `xlb_reconciles_total{result}`,
//! `xlb_config_reloads_total{result}`, `xlb_health_transitions_total`,
//! `xlb_last_reconcile_timestamp_seconds`, `xlb_last_reconcile_duration_seconds`,
//! `xlb_flow_table_entries`, `xlb_flow_table_cpu_entries`,
//! `xlb_vip_policy_drops_total{vip,reason}`, `xlb_flood_mode_cpus`,
//! `xlb_flood_skipped_inserts_total`, `xlb_flood_windows_total`.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};

use crate::stats::StatsSnapshot;

#[derive(Debug)]
struct SnapshotCollector(StatsSnapshot);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(Labels, M)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        value.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// An unlabeled metric.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: M,
) -> Result<(), std::fmt::Error> {
    value.encode(enc.encode_descriptor(name, help, None, kind)?)
}

fn vip(v: &crate::stats::VipSample) -> Labels<'_> {
    vec![("vip", v.vip.as_str())]
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;

        let per_vip = |f: fn(&crate::stats::VipSample) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            s.vips.iter().map(|v| (vip(v), counter(f(v)))).collect()
        };
        family(
            &mut enc,
            "xlb_vip_packets",
            "Packets received for the VIP.",
            MetricType::Counter,
            &per_vip(|v| v.packets),
        )?;
        family(
            &mut enc,
            "xlb_vip_bytes",
            "IP bytes received for the VIP.",
            MetricType::Counter,
            &per_vip(|v| v.bytes),
        )?;
        family(
            &mut enc,
            "xlb_vip_new_flows",
            "Connections that got a backend from the Maglev table.",
            MetricType::Counter,
            &per_vip(|v| v.new_flows),
        )?;
        let mut drops = Vec::new();
        for v in &s.vips {
            let p = &v.policy;
            for (reason, n) in [
                ("source_denied", p.source_denied),
                ("source_not_allowed", p.source_not_allowed),
                ("vip_rate_limited", p.vip_rate_limited),
                ("source_rate_limited", p.source_rate_limited),
            ] {
                let l: Labels = vec![("vip", v.vip.as_str()), ("reason", reason)];
                drops.push((l, counter(n)));
            }
        }
        family(
            &mut enc,
            "xlb_vip_policy_drops",
            "Packets the VIP's source ranges or rate limits dropped, by reason.",
            MetricType::Counter,
            &drops,
        )?;
        let fail_open: Vec<(Labels, ConstGauge<f64>)> = s
            .vips
            .iter()
            .map(|v| (vip(v), gauge(if v.fail_open { 1.0 } else { 0.0 })))
            .collect();
        family(
            &mut enc,
            "xlb_vip_fail_open",
            "1 when every backend failed its health check and all are kept.",
            MetricType::Gauge,
            &fail_open,
        )?;
        let announced: Vec<(Labels, ConstGauge<f64>)> = s
            .vips
            .iter()
            .filter_map(|v| Some((vip(v), gauge(if v.announced? { 1.0 } else { 0.0 }))))
            .collect();
        family(
            &mut enc,
            "xlb_vip_announced",
            "1 when this node announces the VIP's address (a route in announce.table); \
             absent for VIPs whose announcement xlb does not manage.",
            MetricType::Gauge,
            &announced,
        )?;
        let forwarding: Vec<(Labels, ConstGauge<f64>)> = s
            .vips
            .iter()
            .map(|v| {
                let l: Labels = vec![("vip", v.vip.as_str()), ("mode", v.forwarding.as_str())];
                (l, gauge(1.0))
            })
            .collect();
        family(
            &mut enc,
            "xlb_vip_forwarding",
            "1 for the VIP's forwarding mode (ipip, gue, l2-dsr).",
            MetricType::Gauge,
            &forwarding,
        )?;

        let mut be_packets = Vec::new();
        let mut be_bytes = Vec::new();
        let mut be_healthy = Vec::new();
        let mut be_weight = Vec::new();
        for v in &s.vips {
            for b in &v.backends {
                let l: Labels = vec![("vip", v.vip.as_str()), ("backend", b.backend.as_str())];
                be_packets.push((l.clone(), counter(b.packets)));
                be_bytes.push((l.clone(), counter(b.bytes)));
                be_healthy.push((l.clone(), gauge(if b.healthy { 1.0 } else { 0.0 })));
                be_weight.push((l, gauge(f64::from(b.weight))));
            }
        }
        family(
            &mut enc,
            "xlb_backend_packets",
            "Packets sent to the backend.",
            MetricType::Counter,
            &be_packets,
        )?;
        family(
            &mut enc,
            "xlb_backend_bytes",
            "IP bytes sent to the backend (inner packet).",
            MetricType::Counter,
            &be_bytes,
        )?;
        family(
            &mut enc,
            "xlb_backend_healthy",
            "1 when the backend passes its health check (or has none).",
            MetricType::Gauge,
            &be_healthy,
        )?;
        family(
            &mut enc,
            "xlb_backend_weight",
            "Configured weight; 0 means draining.",
            MetricType::Gauge,
            &be_weight,
        )?;

        let verdicts: Vec<(Labels, ConstCounter<u64>)> = s
            .verdicts
            .iter()
            .map(|(r, n)| (vec![("reason", r.as_str())], counter(*n)))
            .collect();
        family(
            &mut enc,
            "xlb_verdict_packets",
            "Packets by the data plane's verdict reason.",
            MetricType::Counter,
            &verdicts,
        )?;

        let f = &s.flow_table;
        single(
            &mut enc,
            "xlb_flow_table_entries",
            "Connection table capacity as the kernel created it.",
            MetricType::Gauge,
            gauge(f64::from(f.entries)),
        )?;
        single(
            &mut enc,
            "xlb_flow_table_cpu_entries",
            "Capacity of each CPU's LRU list of the connection table: a flow uses the list of the CPU that receives it.",
            MetricType::Gauge,
            gauge(f64::from(f.per_cpu)),
        )?;
        single(
            &mut enc,
            "xlb_flood_mode_cpus",
            "CPUs in flood mode now: over global.flood_threshold connection-table misses per second, they insert no entries.",
            MetricType::Gauge,
            gauge(f64::from(s.flood.flooding_cpus)),
        )?;
        single(
            &mut enc,
            "xlb_flood_skipped_inserts",
            "Connection-table entries not inserted because a CPU was in flood mode.",
            MetricType::Counter,
            counter(s.flood.skipped_inserts),
        )?;
        single(
            &mut enc,
            "xlb_flood_windows",
            "100 ms windows in which a CPU went into flood mode.",
            MetricType::Counter,
            counter(s.flood.flood_windows),
        )?;

        for (name, help, value) in [
            (
                "xlb_nat_sessions_created",
                "Full NAT sessions created (a NAT port allocated).",
                s.nat.sessions_created,
            ),
            (
                "xlb_nat_replies",
                "Backend replies full NAT translated back toward their client.",
                s.nat.replies,
            ),
            (
                "xlb_nat_ports_reclaimed",
                "NAT ports taken over from expired sessions.",
                s.nat.ports_reclaimed,
            ),
        ] {
            single(&mut enc, name, help, MetricType::Counter, counter(value))?;
        }

        let driver: Vec<(Labels, ConstCounter<u64>)> = s
            .driver
            .iter()
            .map(|d| {
                (
                    vec![
                        ("interface", d.interface.as_str()),
                        ("counter", d.counter.as_str()),
                    ],
                    counter(d.value),
                )
            })
            .collect();
        family(
            &mut enc,
            "xlb_interface_xdp_errors",
            "The driver's XDP error counters (ethtool -S, summed over queues): frames the \
             program sent (tx, redirect) that the driver dropped.",
            MetricType::Counter,
            &driver,
        )?;

        let c = &s.control;
        single(
            &mut enc,
            "xlb_table_rebuilds",
            "Maglev tables rebuilt.",
            MetricType::Counter,
            counter(c.table_rebuilds),
        )?;
        single(
            &mut enc,
            "xlb_table_slots_changed",
            "Maglev slots rewritten.",
            MetricType::Counter,
            counter(c.table_slots_changed),
        )?;
        family(
            &mut enc,
            "xlb_reconciles",
            "Reconciles of the maps with the desired state.",
            MetricType::Counter,
            &[
                (vec![("result", "ok")], counter(c.reconciles_ok)),
                (vec![("result", "error")], counter(c.reconciles_failed)),
            ],
        )?;
        family(
            &mut enc,
            "xlb_config_reloads",
            "Config reloads (SIGHUP, xlb reload).",
            MetricType::Counter,
            &[
                (vec![("result", "ok")], counter(c.reloads_ok)),
                (vec![("result", "error")], counter(c.reloads_failed)),
            ],
        )?;
        single(
            &mut enc,
            "xlb_health_transitions",
            "Backend health state changes.",
            MetricType::Counter,
            counter(c.health_transitions),
        )?;
        single(
            &mut enc,
            "xlb_last_reconcile_timestamp_seconds",
            "Unix time of the last successful reconcile.",
            MetricType::Gauge,
            gauge(c.last_reconcile_unix),
        )?;
        single(
            &mut enc,
            "xlb_last_reconcile_duration_seconds",
            "Duration of the last successful reconcile.",
            MetricType::Gauge,
            gauge(c.last_reconcile_seconds),
        )?;
        Ok(())
    }
}

/// The Prometheus text exposition of `snapshot`.
pub fn encode(snapshot: StatsSnapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{
        BackendSample, ControlSample, DriverSample, FloodSample, FlowTableSample, PolicySample,
        VipSample,
    };

    fn sample() -> StatsSnapshot {
        StatsSnapshot {
            taken_at: 0.0,
            vips: vec![VipSample {
                vip: "web".into(),
                packets: 10,
                bytes: 1000,
                new_flows: 3,
                fail_open: false,
                announced: Some(true),
                forwarding: "gue".into(),
                policy: PolicySample {
                    source_denied: 4,
                    source_rate_limited: 9,
                    ..Default::default()
                },
                backends: vec![
                    BackendSample {
                        backend: "10.0.0.11".into(),
                        packets: 7,
                        bytes: 700,
                        weight: 100,
                        healthy: true,
                    },
                    BackendSample {
                        backend: "10.0.0.12".into(),
                        packets: 3,
                        bytes: 300,
                        weight: 0,
                        healthy: false,
                    },
                ],
            }],
            verdicts: vec![("tx".into(), 10), ("not_vip".into(), 5)],
            control: ControlSample {
                table_rebuilds: 2,
                reconciles_ok: 4,
                last_reconcile_unix: 1.5e9,
                ..Default::default()
            },
            flow_table: FlowTableSample {
                requested: 1025,
                entries: 1026,
                possible_cpus: 2,
                per_cpu: 513,
            },
            driver: vec![DriverSample {
                interface: "eth0".into(),
                counter: "xdp_tx_errors".into(),
                value: 42,
                since_start: 2,
            }],
            flood: FloodSample {
                threshold_per_cpu: 100,
                flooding_cpus: 1,
                skipped_inserts: 77,
                flood_windows: 3,
            },
            nat: crate::stats::NatSample {
                sessions_created: 5,
                replies: 9,
                ports_reclaimed: 1,
            },
        }
    }

    #[test]
    fn encodes_prometheus_names_and_labels() {
        let text = encode(sample()).unwrap_or_else(|e| panic!("{e}"));
        for line in [
            "xlb_vip_packets_total{vip=\"web\"} 10",
            "xlb_vip_bytes_total{vip=\"web\"} 1000",
            "xlb_vip_new_flows_total{vip=\"web\"} 3",
            "xlb_vip_policy_drops_total{vip=\"web\",reason=\"source_denied\"} 4",
            "xlb_vip_policy_drops_total{vip=\"web\",reason=\"source_rate_limited\"} 9",
            "xlb_vip_policy_drops_total{vip=\"web\",reason=\"vip_rate_limited\"} 0",
            "xlb_flood_mode_cpus 1",
            "xlb_flood_skipped_inserts_total 77",
            "xlb_flood_windows_total 3",
            "xlb_vip_announced{vip=\"web\"} 1",
            "xlb_vip_forwarding{vip=\"web\",mode=\"gue\"} 1",
            "xlb_backend_packets_total{vip=\"web\",backend=\"10.0.0.11\"} 7",
            "xlb_backend_healthy{vip=\"web\",backend=\"10.0.0.12\"} 0",
            "xlb_backend_weight{vip=\"web\",backend=\"10.0.0.11\"} 100",
            "xlb_verdict_packets_total{reason=\"tx\"} 10",
            "xlb_table_rebuilds_total 2",
            "xlb_reconciles_total{result=\"ok\"} 4",
            "xlb_flow_table_entries 1026",
            "xlb_nat_sessions_created_total 5",
            "xlb_nat_replies_total 9",
            "xlb_nat_ports_reclaimed_total 1",
            "xlb_flow_table_cpu_entries 513",
            "xlb_interface_xdp_errors_total{interface=\"eth0\",counter=\"xdp_tx_errors\"} 42",
            "# TYPE xlb_vip_packets counter",
            "# TYPE xlb_backend_healthy gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(
            text.contains("xlb_last_reconcile_timestamp_seconds 1500000000"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    /// A VIP whose announcement xlb does not manage has no
    /// `xlb_vip_announced` series, so the withdrawn-VIP alert cannot fire for
    /// a node that announces nothing.
    #[test]
    fn unmanaged_announcements_have_no_series() {
        let mut s = sample();
        s.vips[0].announced = None;
        let text = encode(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !text.contains("xlb_vip_announced{"),
            "an unmanaged VIP has an announced series:\n{text}"
        );
        let mut s = sample();
        s.vips[0].announced = Some(false);
        let text = encode(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("xlb_vip_announced{vip=\"web\"} 0"), "{text}");
    }
}
