//! The scale curves in the JSON report and as a table.

use super::{
    workload, Results, BACKENDS_PER_VIP, BACKENDS_TABLE_SIZE, FLAT, FLOW_TABLE_ENTRIES, HIT_SPREAD,
    MAGLEV_SPREAD, SCENARIOS, SECTION, TABLE_SIZE, VIPS_TABLE_SIZE,
};
use crate::bench::report::{round, Report, Table};

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
