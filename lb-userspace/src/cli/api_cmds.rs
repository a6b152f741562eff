//! Commands that drive a running daemon through its API socket.

use std::{collections::HashMap, net::IpAddr, path::Path, time::Duration};

use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};

use super::{
    output::OutputError, BackendCommand, ConfigCommand, ExplainArgs, PrefixArgs, StatsArgs,
    VipAddArgs, VipCommand,
};
use crate::{
    api_client::ApiClient,
    daemon::{
        api::{ChangeReport, WeightBody},
        controller::VipStatus,
    },
    explain::Explanation,
    out, outln,
    stats::StatsSnapshot,
};

/// Path segments are percent-encoded: VIP labels contain ':' '/' '[' ']'.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn report(r: &ChangeReport, what: &str) -> Result<(), OutputError> {
    outln!(
        "{what} ({} map writes, {} tables rebuilt, {} slots changed)",
        r.map_writes,
        r.tables_rebuilt,
        r.slots_changed
    )
}

pub async fn vip(socket: &Path, cmd: VipCommand) -> anyhow::Result<()> {
    let c = ApiClient::new(socket);
    match cmd {
        VipCommand::List { json } => {
            let vips: Vec<VipStatus> = c.get("/v1/vips").await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&vips)?)?;
                return Ok(());
            }
            if vips.is_empty() {
                outln!("no VIPs configured")?;
            }
            for v in vips {
                let proto = serde_json::to_value(v.protocol)?
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
                let hashing = serde_json::to_value(v.hashing)?
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
                let udp_timeout = if proto == "udp" && v.flow_table {
                    format!(
                        "  udp-idle-timeout={}",
                        humantime::format_duration(v.udp_idle_timeout)
                    )
                } else {
                    String::new()
                };
                let forwarding = match v.gue_port {
                    Some(port) => format!("{} (port {port})", v.forwarding),
                    None => v.forwarding.to_string(),
                };
                outln!(
                    "{}  {}:{}/{}  forwarding={forwarding}  hashing={}  flow-table={}{udp_timeout}{}",
                    v.name,
                    v.address,
                    v.port,
                    proto,
                    hashing,
                    if v.flow_table { "on" } else { "bypass" },
                    if v.fail_open {
                        "  FAIL-OPEN (every backend unhealthy)"
                    } else {
                        ""
                    }
                )?;
                outln!(
                    "    announced: {} ({})",
                    if v.announced { "yes" } else { "no" },
                    v.announce_reason
                )?;
                for line in policy_lines(&v) {
                    outln!("    {line}")?;
                }
                for b in v.backends {
                    outln!(
                        "    {:<40} weight {:>5}  {:<20} {}",
                        b.address.to_string(),
                        b.weight,
                        b.state,
                        b.health_check.unwrap_or_else(|| "no health check".into())
                    )?;
                }
            }
        }
        VipCommand::Add(a) => {
            let r: ChangeReport = c.send(Method::POST, "/v1/vips", &vip_body(&a)?).await?;
            report(
                &r,
                &format!(
                    "added VIP {}",
                    a.name.as_deref().unwrap_or(&a.address.to_string())
                ),
            )?;
        }
        VipCommand::Allow(a) => prefixes(&c, "allow", &a).await?,
        VipCommand::Deny(a) => prefixes(&c, "deny", &a).await?,
        VipCommand::Del { vip } => {
            let body = c
                .request(Method::DELETE, &format!("/v1/vips/{}", seg(&vip)), None)
                .await?;
            let r: ChangeReport = serde_json::from_slice(&body)?;
            report(&r, &format!("removed VIP {vip}"))?;
        }
    }
    Ok(())
}

/// The VIP's source ranges and rate limits, one line each (none: nothing).
fn policy_lines(v: &VipStatus) -> Vec<String> {
    let list = |p: &[crate::config::IpPrefix]| {
        p.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = Vec::new();
    if !v.allow.is_empty() {
        out.push(format!("allow: {}", list(&v.allow)));
    }
    if !v.deny.is_empty() {
        out.push(format!("deny: {}", list(&v.deny)));
    }
    if let Some(r) = v.rate_limit {
        out.push(format!(
            "rate limit: {} new connections/s (burst {})",
            r.per_second, r.burst
        ));
    }
    if let Some(r) = v.source_rate_limit {
        out.push(format!(
            "source rate limit: {} new connections/s per /{} (IPv4) or /{} (IPv6) source prefix (burst {})",
            r.per_second, r.prefix_v4, r.prefix_v6, r.burst
        ));
    }
    out
}

/// `xlb vip allow|deny VIP PREFIX... [--remove]`.
async fn prefixes(c: &ApiClient, list: &str, a: &PrefixArgs) -> anyhow::Result<()> {
    let mut parsed = Vec::new();
    for p in &a.prefixes {
        let prefix: crate::config::IpPrefix =
            p.parse().map_err(|e: String| anyhow::anyhow!("{e}"))?;
        parsed.push(prefix.to_string());
    }
    let body = if a.remove {
        json!({ "remove": parsed })
    } else {
        json!({ "add": parsed })
    };
    let r: ChangeReport = c
        .send(
            Method::POST,
            &format!("/v1/vips/{}/{list}", seg(&a.vip)),
            &body,
        )
        .await?;
    let verb = if a.remove { "removed from" } else { "added to" };
    report(
        &r,
        &format!("{} {verb} the {list} list of {}", parsed.join(" "), a.vip),
    )?;
    Ok(())
}

fn vip_body(a: &VipAddArgs) -> anyhow::Result<Value> {
    let mut backends = Vec::new();
    for spec in &a.backends {
        let (addr, weight) = parse_backend_spec(spec)?;
        backends.push(json!({ "address": addr.to_string(), "weight": weight }));
    }
    let mut v = json!({
        "address": a.address.to_string(),
        "port": a.port,
        "protocol": a.protocol,
        "hashing": if a.source_ip { "source-ip" } else { "five-tuple" },
        "flow_table": !a.no_flow_table,
        "backend": backends,
    });
    if let Some(n) = &a.name {
        v["name"] = json!(n);
    }
    if let Some(t) = &a.udp_idle_timeout {
        v["udp_idle_timeout"] = json!(t);
    }
    if let Some(f) = &a.forwarding {
        v["forwarding"] = json!(f);
    }
    if let Some(p) = a.gue_port {
        v["gue_port"] = json!(p);
    }
    Ok(v)
}

/// `ADDR` or `ADDR=WEIGHT` (IPv6 addresses contain ':', hence '=').
fn parse_backend_spec(s: &str) -> anyhow::Result<(IpAddr, u16)> {
    let (addr, weight) = match s.split_once('=') {
        Some((a, w)) => (
            a,
            w.parse::<u16>()
                .with_context(|| format!("weight in {s:?} must be 0..=65535"))?,
        ),
        None => (s, 100),
    };
    Ok((
        addr.parse()
            .with_context(|| format!("{addr:?} is not an IP address"))?,
        weight,
    ))
}

pub async fn backend(socket: &Path, cmd: BackendCommand) -> anyhow::Result<()> {
    let c = ApiClient::new(socket);
    match cmd {
        BackendCommand::Add {
            vip,
            address,
            weight,
        } => {
            let body = json!({ "address": address.to_string(), "weight": weight });
            let r: ChangeReport = c
                .send(
                    Method::POST,
                    &format!("/v1/vips/{}/backends", seg(&vip)),
                    &body,
                )
                .await?;
            report(&r, &format!("added backend {address} to {vip}"))?;
        }
        BackendCommand::Del { vip, address } => {
            let b = c
                .request(
                    Method::DELETE,
                    &format!(
                        "/v1/vips/{}/backends/{}",
                        seg(&vip),
                        seg(&address.to_string())
                    ),
                    None,
                )
                .await?;
            report(
                &serde_json::from_slice(&b)?,
                &format!("removed backend {address} from {vip}"),
            )?;
        }
        BackendCommand::Weight {
            vip,
            address,
            weight,
        } => {
            let path = format!(
                "/v1/vips/{}/backends/{}/weight",
                seg(&vip),
                seg(&address.to_string())
            );
            let r: ChangeReport = c.send(Method::PUT, &path, &WeightBody { weight }).await?;
            report(
                &r,
                &format!("set the weight of {address} in {vip} to {weight}"),
            )?;
        }
        BackendCommand::Drain { vip, address } => {
            let path = format!(
                "/v1/vips/{}/backends/{}/drain",
                seg(&vip),
                seg(&address.to_string())
            );
            let b = c.request(Method::POST, &path, None).await?;
            report(
                &serde_json::from_slice(&b)?,
                &format!(
                    "draining {address} in {vip}: no new connections, established ones continue"
                ),
            )?;
        }
    }
    Ok(())
}

pub async fn reload(socket: &Path) -> anyhow::Result<()> {
    let b = ApiClient::new(socket)
        .request(Method::POST, "/v1/reload", None)
        .await?;
    report(&serde_json::from_slice(&b)?, "reloaded the config file")?;
    Ok(())
}

pub async fn config(socket: &Path, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Dump => out!("{}", ApiClient::new(socket).get_text("/v1/config").await?)?,
    }
    Ok(())
}

pub async fn explain(socket: &Path, a: ExplainArgs) -> anyhow::Result<()> {
    let q = format!(
        "/v1/explain?src={}&sport={}&dst={}&dport={}&proto={}&syn={}",
        seg(&a.src.to_string()),
        a.sport,
        seg(&a.dst.to_string()),
        a.dport,
        a.proto,
        a.syn
    );
    let e: Explanation = ApiClient::new(socket).get(&q).await?;
    match (&e.vip, e.backend) {
        (None, _) => outln!("{}: {}", e.decision, e.detail)?,
        (Some(v), Some(b)) => outln!(
            "{} -> VIP {v} -> backend {b} (id {})\n{}: {}",
            a.src,
            e.backend_id.unwrap_or(0),
            e.decision,
            e.detail
        )?,
        (Some(v), None) => outln!("VIP {v}: {}: {}", e.decision, e.detail)?,
    }
    if let Some(f) = &e.forwarding {
        outln!("forwarding {f}")?;
    }
    Ok(())
}

pub async fn stats(socket: &Path, a: StatsArgs) -> anyhow::Result<()> {
    let c = ApiClient::new(socket);
    if !a.watch {
        let s: StatsSnapshot = c.get("/v1/stats").await?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&s)?)?;
        } else {
            out!("{}", render_totals(&s))?;
        }
        return Ok(());
    }
    let mut prev: StatsSnapshot = c.get("/v1/stats").await?;
    loop {
        tokio::time::sleep(Duration::from_secs_f64(a.interval)).await;
        let now: StatsSnapshot = c.get("/v1/stats").await?;
        let text = render_rates(&prev, &now);
        // Clear the screen and home the cursor, then draw the table.
        out!("\x1b[2J\x1b[H{text}")?;
        prev = now;
    }
}

fn render_totals(s: &StatsSnapshot) -> String {
    let mut out = format!(
        "{:<28} {:>14} {:>16} {:>12}  {}\n",
        "VIP / backend", "packets", "bytes", "new flows", "forwarding"
    );
    for v in &s.vips {
        out += &format!(
            "{:<28} {:>14} {:>16} {:>12}  {}{}\n",
            v.vip,
            v.packets,
            v.bytes,
            v.new_flows,
            v.forwarding,
            if v.fail_open { "  FAIL-OPEN" } else { "" }
        );
        let p = &v.policy;
        let drops = [
            ("source_denied", p.source_denied),
            ("source_not_allowed", p.source_not_allowed),
            ("vip_rate_limited", p.vip_rate_limited),
            ("source_rate_limited", p.source_rate_limited),
        ];
        if drops.iter().any(|(_, n)| *n > 0) {
            out += "  policy drops:";
            for (r, n) in drops.iter().filter(|(_, n)| *n > 0) {
                out += &format!(" {r}={n}");
            }
            out += "\n";
        }
        for b in &v.backends {
            let state = if b.weight == 0 {
                "draining"
            } else if b.healthy {
                ""
            } else {
                "unhealthy"
            };
            out += &format!(
                "  {:<26} {:>14} {:>16} {:>12} {state}\n",
                b.backend, b.packets, b.bytes, ""
            );
        }
    }
    out += "\nverdicts:";
    for (r, n) in s.verdicts.iter().filter(|(_, n)| *n > 0) {
        out += &format!(" {r}={n}");
    }
    out += "\n";
    let f = &s.flow_table;
    out += &format!(
        "flow table: {} entries ({} per CPU x {} possible CPUs; flow_table_size {})\n",
        f.entries, f.per_cpu, f.possible_cpus, f.requested
    );
    let n = &s.nat;
    if n.sessions_created != 0 {
        out += &format!(
            "nat: {} sessions created, {} replies translated, {} ports reclaimed\n",
            n.sessions_created, n.replies, n.ports_reclaimed
        );
    }
    let fl = &s.flood;
    out += &format!(
        "flood mode: {} CPUs now (threshold {} misses/s per CPU); {} inserts skipped in {} windows\n",
        fl.flooding_cpus, fl.threshold_per_cpu, fl.skipped_inserts, fl.flood_windows
    );
    let dropped: Vec<_> = s.driver.iter().filter(|d| d.value > 0).collect();
    if !dropped.is_empty() {
        out += "driver XDP errors (since the daemon started / in all):";
        for d in &dropped {
            out += &format!(
                " {}:{}={}/{}",
                d.interface, d.counter, d.since_start, d.value
            );
        }
        out += "\n";
    }
    if s.driver.iter().any(|d| d.since_start > 0) {
        out += "WARNING: the driver dropped frames that the program sent (the tx/redirect \
                verdicts above count them as sent). On a veth, the peer needs a native XDP \
                program: `xlb pass attach --interface PEER` in the peer's namespace.\n";
    }
    out
}

/// Per-second rates between two snapshots.
pub fn render_rates(prev: &StatsSnapshot, now: &StatsSnapshot) -> String {
    let dt = (now.taken_at - prev.taken_at).max(1e-3);
    let old: HashMap<(&str, &str), (u64, u64)> = prev
        .vips
        .iter()
        .flat_map(|v| {
            std::iter::once(((v.vip.as_str(), ""), (v.packets, v.bytes))).chain(
                v.backends
                    .iter()
                    .map(move |b| ((v.vip.as_str(), b.backend.as_str()), (b.packets, b.bytes))),
            )
        })
        .collect();
    let rate = |key: (&str, &str), p: u64, b: u64| {
        let (p0, b0) = old.get(&key).copied().unwrap_or((p, b));
        (
            p.saturating_sub(p0) as f64 / dt,
            b.saturating_sub(b0) as f64 * 8.0 / dt,
        )
    };
    let mut out = format!(
        "xlb stats (every {dt:.1}s)\n\n{:<30} {:>12} {:>12}\n",
        "VIP / backend", "packets/s", "bits/s"
    );
    for v in &now.vips {
        let (pps, bps) = rate((v.vip.as_str(), ""), v.packets, v.bytes);
        out += &format!(
            "{:<30} {:>12} {:>12}{}\n",
            v.vip,
            human(pps),
            human(bps),
            if v.fail_open { "  FAIL-OPEN" } else { "" }
        );
        for b in &v.backends {
            let (pps, bps) = rate((v.vip.as_str(), b.backend.as_str()), b.packets, b.bytes);
            let state = if b.weight == 0 {
                " draining"
            } else if b.healthy {
                ""
            } else {
                " unhealthy"
            };
            out += &format!(
                "  {:<28} {:>12} {:>12}{state}\n",
                b.backend,
                human(pps),
                human(bps)
            );
        }
    }
    out
}

fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{BackendSample, VipSample};

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("10.0.0.1:80/tcp"), "10.0.0.1%3A80%2Ftcp");
        assert_eq!(seg("web-1"), "web-1");
    }

    #[test]
    fn backend_specs_parse_with_optional_weight() {
        assert_eq!(
            parse_backend_spec("10.0.0.1").ok(),
            Some(("10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])), 100))
        );
        assert_eq!(parse_backend_spec("fd00::1=7").map(|x| x.1).ok(), Some(7));
        assert!(parse_backend_spec("10.0.0.1=70000").is_err());
        assert!(parse_backend_spec("nope").is_err());
    }

    #[test]
    fn stats_warn_about_driver_drops_while_this_daemon_runs() {
        let with = |since_start| StatsSnapshot {
            driver: vec![crate::stats::DriverSample {
                interface: "eth0".into(),
                counter: "xdp_tx_errors".into(),
                value: 500,
                since_start,
            }],
            ..Default::default()
        };
        let old = render_totals(&with(0));
        assert!(old.contains("eth0:xdp_tx_errors=0/500"), "{old}");
        assert!(!old.contains("WARNING"), "drops before this daemon: {old}");
        let now = render_totals(&with(7));
        assert!(
            now.contains("eth0:xdp_tx_errors=7/500") && now.contains("WARNING"),
            "{now}"
        );
        assert!(!render_totals(&StatsSnapshot::default()).contains("driver"));
    }

    #[test]
    fn rates_are_deltas_per_second() {
        let snap = |t: f64, p: u64, b: u64| StatsSnapshot {
            taken_at: t,
            vips: vec![VipSample {
                vip: "web".into(),
                packets: p,
                bytes: b,
                backends: vec![BackendSample {
                    backend: "10.0.0.1".into(),
                    packets: p,
                    bytes: b,
                    weight: 1,
                    healthy: true,
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render_rates(&snap(10.0, 1000, 100_000), &snap(12.0, 5000, 350_000));
        assert!(text.contains("2.0k"), "2000 packets/s: {text}");
        assert!(text.contains("1.00M"), "1 Mbit/s: {text}");
    }
}
