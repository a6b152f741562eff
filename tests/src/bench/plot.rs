//! SVG plots of a report: `per_packet.svg` (each scenario's median per
//! packet, split into the fixed cost of a test-run call, `floor_pass`, and
//! the rest; and the end-to-end rates when the report has them) and
//! `scale.svg` (the scale curves and the control plane's curve). Drawn from
//! the JSON report only, so a saved report can be drawn again
//! (`xlb-bench --plot-from FILE`). plotters' SVG backend writes text as SVG
//! text elements: no font files or system libraries are needed.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::{coord::Shift, prelude::*};
use serde_json::Value;

use super::{
    control, e2e, per_packet,
    report::Report,
    scale::{self, Curve},
    scenarios,
};

const FONT: &str = "sans-serif";
const FLOOR_GREY: RGBColor = RGBColor(190, 190, 190);
/// One colour per series of a curve panel, in order.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
    RGBColor(120, 120, 120),
];

/// Writes the plots of `report` into `dir` (created if missing) and returns
/// their paths. A plot with nothing to show is not written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    let pp = dir.join("per_packet.svg");
    if per_packet_svg(report, &pp)? {
        out.push(pp);
    }
    let sc = dir.join("scale.svg");
    if scale_svg(report, &sc)? {
        out.push(sc);
    }
    Ok(out)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

fn num(report: &Report, path: &str) -> Option<f64> {
    report.get(path).and_then(Value::as_f64)
}

/// (scenario, median ns) of every per-packet scenario, display order first.
fn per_packet_rows(report: &Report) -> Vec<(String, f64)> {
    let Some(obj) = report.get(per_packet::SECTION).and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut names: Vec<String> = scenarios::ORDER
        .iter()
        .filter(|n| obj.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    let rest: Vec<String> = obj.keys().filter(|k| !names.contains(k)).cloned().collect();
    names.extend(rest);
    names
        .into_iter()
        .filter_map(|n| {
            let v = num(report, &format!("{}.{n}.median_ns", per_packet::SECTION))?;
            Some((n, v))
        })
        .collect()
}

fn per_packet_svg(report: &Report, path: &Path) -> Result<bool> {
    let rows = per_packet_rows(report);
    let e2e_rows: Vec<(String, f64)> = e2e::Case::ALL
        .iter()
        .filter_map(|c| {
            let pps = num(report, &format!("{}.{}.pps", e2e::SECTION, c.name()))?;
            Some((c.name().to_string(), pps / 1e6))
        })
        .collect();
    if rows.is_empty() && e2e_rows.is_empty() {
        return Ok(false);
    }
    let height = 60 + 26 * (rows.len() + e2e_rows.len() + 4) as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let split = (height as f64 * (rows.len() as f64 + 2.0)
        / (rows.len() + e2e_rows.len() + 4) as f64) as u32;
    let (top, bottom) = if e2e_rows.is_empty() {
        (root.clone(), None)
    } else {
        let (a, b) = root.split_vertically(split);
        (a, Some(b))
    };
    if !rows.is_empty() {
        let floor = rows
            .iter()
            .find(|(n, _)| n == "floor_pass")
            .map(|(_, v)| *v);
        let bars: Vec<Bar> = rows
            .iter()
            .map(|(name, v)| Bar {
                base: floor.map(|f| f.min(*v)).unwrap_or(0.0),
                value: *v,
                label: match floor {
                    Some(f) if f > 0.0 => {
                        format!(
                            "{name}: {v:.0} ns ({:.2}x floor_pass, +{:.0})",
                            v / f,
                            v - f
                        )
                    }
                    _ => format!("{name}: {v:.0} ns"),
                },
            })
            .collect();
        bar_chart(
            &top,
            "Per-packet cost: median ns per BPF_PROG_TEST_RUN call (grey: floor_pass)",
            "ns per packet",
            &bars,
        )?;
    }
    if let Some(area) = bottom {
        let xlb = e2e_rows.iter().find(|(n, _)| n == "xlb").map(|(_, v)| *v);
        let bars: Vec<Bar> = e2e_rows
            .iter()
            .map(|(name, v)| {
                let cpu = num(
                    report,
                    &format!("{}.{name}.udp.lb_cpu_ns_per_packet", e2e::SECTION),
                )
                .map(|ns| format!(", balancer CPU {ns:.0} ns/packet"))
                .unwrap_or_default();
                Bar {
                    base: 0.0,
                    value: *v,
                    label: match xlb {
                        Some(x) if name != "xlb" && *v > 0.0 => {
                            format!("{name}: {v:.2} Mpps (xlb is {:.2}x){cpu}", x / v)
                        }
                        _ => format!("{name}: {v:.2} Mpps{cpu}"),
                    },
                }
            })
            .collect();
        bar_chart(
            &area,
            "End to end: UDP Mpps through the balancer namespace (one core)",
            "Mpps",
            &bars,
        )?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

struct Bar {
    /// The grey part (0 for none).
    base: f64,
    value: f64,
    label: String,
}

/// Horizontal bars, labelled inside the plot.
fn bar_chart(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    x: &str,
    bars: &[Bar],
) -> Result<()> {
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0) * 1.9;
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0f64..max, 0f64..n)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .y_labels(0)
        .x_desc(x)
        .draw()
        .map_err(err)?;
    let y = |i: usize| n - i as f64 - 1.0;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [(0.0, y(i) + 0.15), (b.base, y(i) + 0.85)],
                FLOOR_GREY.filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [(b.base, y(i) + 0.15), (b.value, y(i) + 0.85)],
                COLOURS[0].filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                b.label.clone(),
                (b.value + max * 0.01, y(i) + 0.7),
                (FONT, 13).into_font(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// A line of a curve panel: (x label, y) per point.
struct Line {
    name: String,
    points: Vec<f64>,
    /// The same series has the same colour in every panel.
    colour: RGBColor,
}

fn scale_svg(report: &Report, path: &Path) -> Result<bool> {
    let mut panels: Vec<(String, Vec<String>, Vec<Line>, &str)> = Vec::new();
    for curve in Curve::ALL {
        let base = format!("{}.{}", scale::SECTION, curve.name());
        let Some(points) = report
            .get(&format!("{base}.points"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        let points: Vec<u32> = points
            .iter()
            .filter_map(|p| p.as_u64())
            .map(|p| p as u32)
            .collect();
        let series = [
            "v4_tcp_flow_hit",
            "v4_tcp_new_flow",
            "v4_tcp_flow_miss",
            scale::HIT_SPREAD,
            scale::MAGLEV_SPREAD,
            "floor_pass",
        ];
        let lines: Vec<Line> = series
            .iter()
            .zip(COLOURS)
            .filter_map(|(s, colour)| {
                let ys: Option<Vec<f64>> = points
                    .iter()
                    .map(|p| {
                        num(
                            report,
                            &format!("{base}.{}.{s}.median_ns", curve.point_key(*p)),
                        )
                    })
                    .collect();
                Some(Line {
                    name: s.to_string(),
                    points: ys?,
                    colour,
                })
            })
            .collect();
        let labels = points.iter().map(|p| curve.label(*p)).collect();
        let title = match curve {
            Curve::Vips => "VIPs (100 backends each)",
            Curve::FlowTable => "connection table filled (of 1,000,000)",
            Curve::Backends => "backends per VIP",
        };
        panels.push((title.to_string(), labels, lines, "median ns per packet"));
    }
    let curve_points: Vec<usize> = control::CURVE_VIPS
        .iter()
        .copied()
        .filter(|n| num(report, &format!("control.curve.{n}.reconcile_ms")).is_some())
        .collect();
    if !curve_points.is_empty() {
        let labels: Vec<String> = curve_points.iter().map(|n| format!("{n} VIPs")).collect();
        let get = |f: &str, scale: f64, colour: usize| Line {
            name: f.to_string(),
            colour: COLOURS[colour],
            points: curve_points
                .iter()
                .map(|n| num(report, &format!("control.curve.{n}.{f}")).unwrap_or(0.0) * scale)
                .collect(),
        };
        panels.push((
            "control plane: initial reconcile (x 100 backends)".into(),
            labels.clone(),
            vec![get("reconcile_ms", 1e-3, 0)],
            "seconds",
        ));
        panels.push((
            "control plane: memory (x 100 backends)".into(),
            labels,
            vec![
                get("daemon_rss_mib", 1.0, 0),
                get("daemon_heap_mib", 1.0, 1),
                get("map_memory_mib", 1.0, 2),
            ],
            "MiB",
        ));
    }
    if panels.is_empty() {
        return Ok(false);
    }
    let rows = panels.len().div_ceil(3);
    let root = SVGBackend::new(path, (1350, 360 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((rows, 3));
    for ((title, labels, lines, y), area) in panels.iter().zip(areas.iter()) {
        curve_panel(area, title, labels, lines, y)?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

fn curve_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    labels: &[String],
    lines: &[Line],
    y_desc: &str,
) -> Result<()> {
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.25;
    let last = labels.len().saturating_sub(1).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 15))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.3f64..last + 0.3, 0f64..max)
        .map_err(err)?;
    let label_at = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(labels.len() * 2 + 1)
        .x_label_formatter(&label_at)
        .disable_x_mesh()
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for line in lines {
        let pts: Vec<(f64, f64)> = line
            .points
            .iter()
            .enumerate()
            .map(|(i, y)| (i as f64, *y))
            .collect();
        let colour = line.colour;
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_plots_from_a_report() {
        let mut r = Report::new();
        for (name, v) in [
            ("floor_pass", 70),
            ("floor_tx", 80),
            ("v4_tcp_flow_hit", 230),
        ] {
            r.insert(&format!("per_packet.{name}.median_ns"), v);
        }
        r.insert("e2e.xlb.pps", 2.1e6);
        r.insert("e2e.nftables.pps", 0.7e6);
        r.insert("scale.vips.points", vec![1, 10_000]);
        for (p, v) in [("1", 200), ("10000", 260)] {
            r.insert(&format!("scale.vips.{p}.v4_tcp_flow_hit.median_ns"), v);
            r.insert(&format!("scale.vips.{p}.floor_pass.median_ns"), 70);
        }
        r.insert("control.curve.1.reconcile_ms", 5.0);
        r.insert("control.curve.1.daemon_rss_mib", 20.0);
        let dir = std::env::temp_dir().join(format!("xlb-plot-{}", std::process::id()));
        let written = write(&r, &dir).unwrap();
        assert_eq!(written.len(), 2);
        let svg = std::fs::read_to_string(dir.join("per_packet.svg")).unwrap();
        assert!(
            svg.contains("v4_tcp_flow_hit: 230 ns (3.29x floor_pass, +160)"),
            "{svg}"
        );
        assert!(svg.contains("nftables: 0.70 Mpps (xlb is 3.00x)"));
        let svg = std::fs::read_to_string(dir.join("scale.svg")).unwrap();
        assert!(svg.contains("10000 VIPs"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_report_draws_nothing() {
        let dir = std::env::temp_dir().join(format!("xlb-plot-empty-{}", std::process::id()));
        assert!(write(&Report::new(), &dir).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
