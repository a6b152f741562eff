//! The monitoring files against the real thing: Debian's Prometheus scrapes a
//! real xlb in the rack while clients send traffic through it, and every
//! PromQL expression of the Grafana dashboard (contrib/grafana/xlb.json) is
//! evaluated through Prometheus' HTTP API and must return data; the alert
//! rules (contrib/prometheus/xlb-alerts.yml) pass `promtool check rules` and
//! their unit tests, load into that Prometheus, evaluate against the real
//! series, and two of them fire when their condition is made true.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use serde_json::Value;
use xlb_tests::{
    clients::{many_connections, udp_backend},
    privileged::SKIP_MARKER,
    rack::{scenario_rack, Rack},
};

/// Metrics the dashboard or the rules use that only exist with a feature the
/// test rack leaves off. An expression over one of them may return no data
/// only while the daemon does not expose the metric at all; the test lists
/// every such expression.
const FEATURE_METRICS: &[(&str, &str)] = &[(
    "xlb_vip_announced",
    "route announcements (announce.enabled, off in the rack: no VIP is managed)",
)];

/// What Grafana substitutes, as the test does: every balancer and VIP, and a
/// rate window of several scrapes (the test scrapes every second).
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("$__rate_interval", "10s"),
    ("$instance", ".*"),
    ("$vip", ".*"),
];

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips loudly, or fails under CI, when Prometheus is not installed.
fn have(program: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !is_ci(),
            "{test}: {program} is missing and CI=true (cargo xtask setup installs the prometheus package)"
        );
        eprintln!("{SKIP_MARKER}: {test}: {program} is missing (apt-get install prometheus, or cargo xtask setup)");
    }
    found
}

fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in SUBSTITUTIONS {
        e = e.replace(var, value);
    }
    assert!(!e.contains('$'), "unsubstituted variable in {e}");
    e
}

/// The `xlb_*` metric names an expression mentions.
fn metrics_of(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("xlb_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out.sort();
    out.dedup();
    out
}

/// One query of the dashboard: where it is, and the PromQL.
struct DashboardQuery {
    place: String,
    expr: String,
}

/// Every target of every panel (rows' nested panels too) and every
/// `label_values(METRIC, LABEL)` variable, as `count by (LABEL) (METRIC)`.
fn dashboard_queries(dash: &Value) -> Vec<DashboardQuery> {
    fn panels(list: &Value, out: &mut Vec<DashboardQuery>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            if p["type"] != "row" {
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "panel {title:?} does not use the dashboard's data source variable"
                );
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
                out.push(DashboardQuery {
                    place: format!("panel {title:?} query {}", t["refId"]),
                    expr: expr.to_string(),
                });
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or_else(|| panic!("variable {} has no query", v["name"]));
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(...): {q}", v["name"]));
        let (metric, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {}: {q}", v["name"]));
        out.push(DashboardQuery {
            place: format!("variable ${}", v["name"].as_str().unwrap_or("?")),
            expr: format!("count by ({}) ({})", label.trim(), metric.trim()),
        });
    }
    out
}

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    const TEST: &str = "alert_rules_check_and_pass_their_unit_tests";
    if !have("promtool", TEST) {
        return;
    }
    let dir = repo_file("contrib/prometheus");
    for args in [
        ["check", "rules", "xlb-alerts.yml"],
        ["test", "rules", "xlb-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("promtool: {e}"));
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has unit tests.
    let rules = std::fs::read_to_string(dir.join("xlb-alerts.yml")).unwrap_or_default();
    let tests = std::fs::read_to_string(dir.join("xlb-alerts.test.yml")).unwrap_or_default();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 6, "{alerts:?}");
    for a in alerts {
        assert!(
            tests.contains(&format!(
                "alertname: {a}\n        exp_alerts:\n          - exp_labels"
            )),
            "no test where {a} fires"
        );
    }
}

/// Prometheus running in the balancer's namespace; killed on drop.
struct Prometheus {
    child: Child,
    ns: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(rack: &Rack, dir: &Path) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: xlb\n    static_configs:\n      - targets: [\"127.0.0.1:9431\"]\n",
                repo_file("contrib/prometheus/xlb-alerts.yml").display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let ns = rack.topo.balancer.name.clone();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{ns}"))
            .args(["--", "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .args([
                "--web.listen-address=127.0.0.1:9090",
                "--log.level=warn",
                "--storage.tsdb.retention.time=1h",
            ])
            .stdout(out)
            .stderr(err);
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and only affects the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus: {e}"));
        let p = Self { child, ns, log };
        p.wait_until("prometheus scrapes xlb", Duration::from_secs(60), || {
            p.try_query("up{job=\"xlb\"} == 1")
                .is_some_and(|r| !r.as_array().is_none_or(Vec::is_empty))
        });
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` with `query` parameters from the API, as JSON.
    fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<Value> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", self.ns)).args([
            "--",
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--get",
        ]);
        for (k, v) in params {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = cmd
            .arg(format!("http://127.0.0.1:9090{path}"))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The `data.result` of an instant query, or `None` when Prometheus is
    /// not answering or refuses the query.
    fn try_query(&self, expr: &str) -> Option<Value> {
        let v = self.get("/api/v1/query", &[("query", expr)])?;
        (v["status"] == "success").then(|| v["data"]["result"].clone())
    }

    /// Like [`try_query`](Self::try_query), failing with Prometheus' error.
    fn query(&self, expr: &str) -> Vec<Value> {
        let v = self
            .get("/api/v1/query", &[("query", expr)])
            .unwrap_or_else(|| panic!("no answer from prometheus for {expr}\n{}", self.log_text()));
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn wait_until(&self, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; prometheus log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends TCP connections and UDP datagrams through the VIPs for `secs`
/// seconds, so that several scrapes see the counters move.
fn traffic(rack: &Rack, secs: u64) {
    let client = &rack.topo.clients[0];
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut sport = 20000;
    while Instant::now() < deadline {
        for vip in ["web", "web6", "web4to6", "sticky"] {
            let results = many_connections(client, rack.vip(vip).target(), 8, 4);
            let failed = results.iter().filter(|r| r.is_err()).count();
            assert_eq!(failed, 0, "{vip}: {results:?}");
        }
        sport += 1;
        udp_backend(client, rack.vip("dns").target(), sport, b"ping")
            .unwrap_or_else(|e| panic!("udp through dns: {e}"));
    }
}

fn has_data(result: &[Value]) -> bool {
    !result.is_empty()
}

#[test]
fn dashboard_and_alerts_against_a_real_prometheus() {
    const TEST: &str = "dashboard_and_alerts_against_a_real_prometheus";
    if !have("prometheus", TEST) {
        return;
    }
    let Some((_l, mut rack)) = scenario_rack("observability", 1) else {
        return;
    };
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("contrib/grafana/xlb.json"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("contrib/grafana/xlb.json: {e}"));
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 20, "only {} queries", queries.len());

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let prom = Prometheus::start(&rack, dir.path());
    traffic(&rack, 6);

    // What this daemon exposes.
    let exposed: Vec<String> = prom
        .get("/api/v1/label/__name__/values", &[])
        .and_then(|v| v["data"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|n| n.starts_with("xlb_"))
        .collect();
    assert!(exposed.len() >= 15, "{exposed:?}");

    // Every expression returns data; only those over a metric of a feature
    // this daemon does not have may be empty, and are listed.
    let mut without_feature = Vec::new();
    let mut empty = Vec::new();
    for q in &queries {
        let expr = substitute(&q.expr);
        let result = prom.query(&expr);
        if has_data(&result) {
            continue;
        }
        let missing: Vec<(&str, &str)> = FEATURE_METRICS
            .iter()
            .copied()
            .filter(|(m, _)| metrics_of(&expr).iter().any(|x| x == m))
            .filter(|(m, _)| !exposed.iter().any(|x| x == m))
            .collect();
        if missing.is_empty() {
            empty.push(format!("{}: {expr}", q.place));
        } else {
            without_feature.push(format!(
                "{}: {expr} (no data: {})",
                q.place,
                missing
                    .iter()
                    .map(|(m, f)| format!("{m} comes with {f}, not in this build"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    println!(
        "{} dashboard queries returned data; {} returned none because their feature is absent:",
        queries.len() - without_feature.len() - empty.len(),
        without_feature.len()
    );
    for w in &without_feature {
        println!("  {w}");
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n  {}",
        empty.join("\n  ")
    );
    // Traffic really shows: web's packet and new flow rates are positive.
    for (metric, what) in [
        ("xlb_vip_packets_total", "packets"),
        ("xlb_vip_new_flows_total", "new flows"),
    ] {
        let r = prom.query(&format!("rate({metric}{{vip=\"web\"}}[10s])"));
        let v: f64 = r
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        assert!(v > 0.0, "web's {what} rate is {v}: {r:?}");
    }
    let unused: Vec<&String> = exposed
        .iter()
        .filter(|m| !queries.iter().any(|q| metrics_of(&q.expr).contains(m)))
        .collect();
    println!("metrics the dashboard does not show: {unused:?}");

    // The rules loaded and evaluate cleanly against the real series.
    prom.wait_until("every rule evaluated", Duration::from_secs(30), || {
        let rules = prom.get("/api/v1/rules", &[]).unwrap_or_default();
        let all: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        all.len() == 6
            && all.iter().all(|r| {
                assert_ne!(r["health"], "err", "rule {}: {}", r["name"], r["lastError"]);
                r["health"] == "ok"
            })
    });
    let rules = prom.get("/api/v1/rules", &[]).unwrap_or_default();
    for r in rules["data"]["groups"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expr = r["query"].as_str().unwrap_or_default();
        prom.query(expr);
    }
    assert!(
        prom.query("ALERTS").is_empty(),
        "alerts in a healthy rack: {:?}",
        prom.query("ALERTS")
    );

    // Make two of them true: a refused reload, and a backend whose health
    // check fails (pending for its `for: 1m`).
    let good = std::fs::read_to_string(&rack.config_path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&rack.config_path, good.replace("port = 80", "port = 80000"))
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = rack.daemon.socket.to_string_lossy().into_owned();
    let refused =
        xlb_tests::xlb_process::xlb(&rack.topo.balancer.name, &["reload", "--socket", &socket]);
    assert!(!refused.status.success());
    std::fs::write(&rack.config_path, &good).unwrap_or_else(|e| panic!("{e}"));
    let down = rack.backend_addr("web", 2).to_string();
    rack.topo.backends[2].servers.stop();
    prom.wait_until(
        "XlbConfigReloadFailed fires",
        Duration::from_secs(30),
        || {
            !prom
                .query("ALERTS{alertname=\"XlbConfigReloadFailed\", alertstate=\"firing\"}")
                .is_empty()
        },
    );
    prom.wait_until("XlbBackendDown is pending", Duration::from_secs(30), || {
        prom.query(&format!(
            "ALERTS{{alertname=\"XlbBackendDown\", alertstate=\"pending\", vip=\"web\", backend=\"{down}\"}}"
        ))
        .len()
            == 1
    });
    rack.topo.backends[2].servers.start();
}
