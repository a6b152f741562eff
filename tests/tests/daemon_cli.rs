//! The daemon as an operator drives it: CLI changes reach the maps (and real
//! traffic), the API refuses bad requests with the field at fault, config
//! dump/reload behave, startup errors say what is wrong, metrics and eBPF
//! logs come out.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use lb_userspace::{config::Config, daemon::controller::VipStatus};
use xlb_tests::{
    clients::{connect, greeting, many_connections, tally},
    http::request,
    privileged::require_root,
    rack::{rack_lock, scenario_rack, standard_vips, Rack},
    xlb_process::xlb,
};

fn vips(rack: &Rack) -> Vec<VipStatus> {
    serde_json::from_str(&rack.daemon.cli(&["vip", "list", "--json"]))
        .unwrap_or_else(|e| panic!("vip list --json: {e}"))
}

#[test]
fn cli_changes_reach_the_maps_and_real_traffic() {
    let Some((_l, rack)) = scenario_rack("cli_changes", 1) else {
        return;
    };
    let vip: IpAddr = "10.200.0.9".parse().unwrap_or_else(|e| panic!("{e}"));
    for b in &rack.topo.backends {
        b.add_vip(vip);
    }
    let target = SocketAddr::new(vip, 443);
    let (b0, b1, b2) = (
        rack.backend_addr("web", 0),
        rack.backend_addr("web", 1),
        rack.backend_addr("web", 2),
    );
    let out = rack.daemon.cli(&[
        "vip",
        "add",
        "--name",
        "extra",
        "--address",
        "10.200.0.9",
        "--port",
        "443",
        "--backend",
        &format!("{b0}=100"),
        "--backend",
        &format!("{b1}=300"),
    ]);
    assert!(out.contains("added VIP extra"), "{out}");
    let extra = vips(&rack)
        .into_iter()
        .find(|v| v.name == "extra")
        .unwrap_or_else(|| panic!("extra not listed"));
    assert!(
        extra.backends.iter().all(|b| b.id.is_some()),
        "backends got kernel ids: {extra:?}"
    );
    let counts = tally(&many_connections(&rack.topo.clients[0], target, 200, 4));
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["backend-0", "backend-1"],
        "{counts:?}"
    );

    rack.daemon.cli(&[
        "backend",
        "add",
        "extra",
        &b2.to_string(),
        "--weight",
        "100",
    ]);
    rack.daemon
        .cli(&["backend", "del", "extra", &b0.to_string()]);
    let counts = tally(&many_connections(&rack.topo.clients[0], target, 200, 4));
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["backend-1", "backend-2"],
        "{counts:?}"
    );

    // explain agrees with where a real connection went, from the live maps.
    let conn = connect(&rack.topo.clients[0], target, None).unwrap_or_else(|e| panic!("{e}"));
    let answered = greeting(&conn).unwrap_or_else(|e| panic!("{e}"));
    let local = conn.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let text = rack.daemon.cli(&[
        "explain",
        &local.ip().to_string(),
        &local.port().to_string(),
        "10.200.0.9",
        "443",
        "tcp",
    ]);
    let want = if answered == "backend-1" { b1 } else { b2 };
    assert!(
        text.contains(&format!("backend {want}")) && text.contains("flow table hit"),
        "explain said: {text}"
    );
    let fresh = rack.daemon.cli(&[
        "explain",
        "198.51.100.1",
        "1234",
        "10.200.0.9",
        "443",
        "tcp",
    ]);
    assert!(fresh.contains("maglev slot"), "{fresh}");
    // A SYN of the established connection would take the table, not its entry.
    let syn = rack.daemon.cli(&[
        "explain",
        &local.ip().to_string(),
        &local.port().to_string(),
        "10.200.0.9",
        "443",
        "tcp",
        "--syn",
    ]);
    assert!(
        syn.contains("maglev slot") && syn.contains("a SYN opens a new connection"),
        "{syn}"
    );
    let not_vip = rack.daemon.cli(&[
        "explain",
        "198.51.100.1",
        "1234",
        "10.200.0.99",
        "443",
        "tcp",
    ]);
    assert!(not_vip.contains("not a VIP"), "{not_vip}");

    // A UDP VIP with its own idle timeout, shown by `vip list`; a timeout out
    // of range is refused with the field named.
    rack.daemon.cli(&[
        "vip",
        "add",
        "--name",
        "extra-udp",
        "--address",
        "10.200.0.9",
        "--port",
        "5000",
        "--protocol",
        "udp",
        "--udp-idle-timeout",
        "45s",
        "--backend",
        &b1.to_string(),
    ]);
    let listed = rack.daemon.cli(&["vip", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("extra-udp") && l.contains("udp-idle-timeout=45s")),
        "{listed}"
    );
    let udp = vips(&rack)
        .into_iter()
        .find(|v| v.name == "extra-udp")
        .unwrap_or_else(|| panic!("extra-udp not listed"));
    assert_eq!(udp.udp_idle_timeout, Duration::from_secs(45));
    let refused = xlb(
        &rack.topo.balancer.name,
        &[
            "vip",
            "add",
            "--address",
            "10.200.0.9",
            "--port",
            "5001",
            "--protocol",
            "udp",
            "--udp-idle-timeout",
            "10ms",
            "--socket",
            &rack.daemon.socket.to_string_lossy(),
        ],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("udp_idle_timeout") && err.contains("10ms"),
        "{err}"
    );
    rack.daemon.cli(&["vip", "del", "extra-udp"]);

    rack.daemon.cli(&["vip", "del", "extra"]);
    assert!(vips(&rack).iter().all(|v| v.name != "extra"));
    let gone = many_connections(&rack.topo.clients[0], target, 2, 1);
    assert!(
        gone.iter().all(|r| r.is_err()),
        "a removed VIP must not be served"
    );
}

#[test]
fn api_refuses_bad_requests_naming_the_field_and_changes_nothing() {
    let Some((_l, rack)) = scenario_rack("api_errors", 1) else {
        return;
    };
    let sock = rack.daemon.socket.clone();
    let before = rack.daemon.cli(&["config", "dump"]);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/v1/vips",
            b"{not json".to_vec(),
            400,
            "\"field\":\"body\"",
        ),
        (
            "POST",
            "/v1/vips",
            br#"{"address":"nope","port":80}"#.to_vec(),
            422,
            "address",
        ),
        (
            "POST",
            "/v1/vips",
            br#"{"address":"10.200.0.1","port":80,"protocol":"tcp"}"#.to_vec(),
            422,
            "vip",
        ),
        (
            "POST",
            "/v1/vips",
            br#"{"address":"10.200.0.7","port":80,"colour":"red"}"#.to_vec(),
            422,
            "colour",
        ),
        (
            "POST",
            "/v1/vips/web/backends",
            br#"{"address":"10.10.0.100"}"#.to_vec(),
            422,
            "address",
        ),
        (
            "PUT",
            "/v1/vips/web/backends/10.10.0.100/weight",
            br#"{"weight":70000}"#.to_vec(),
            400,
            "weight",
        ),
        (
            "PUT",
            "/v1/vips/nosuch/backends/10.10.0.100/weight",
            br#"{"weight":1}"#.to_vec(),
            404,
            "nosuch",
        ),
        (
            "DELETE",
            "/v1/vips/web/backends/10.9.9.9",
            Vec::new(),
            404,
            "10.9.9.9",
        ),
        (
            "DELETE",
            "/v1/vips/web/backends/not-an-ip",
            Vec::new(),
            400,
            "address",
        ),
        ("GET", "/v1/explain?src=1.2.3.4", Vec::new(), 400, "query"),
        ("POST", "/v1/vips", vec![b' '; 70 * 1024], 413, ""),
    ];
    for (method, path, body, status, needle) in cases {
        let (got, text) = request(&sock, method, path, &body);
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(
            text.contains(needle),
            "{method} {path}: error should mention {needle:?}: {text}"
        );
        if status != 413 {
            assert!(
                text.contains("\"error\""),
                "{method} {path}: JSON error body expected: {text}"
            );
        }
    }
    // Draining the last weighted backends of a VIP is refused (it would black-hole it).
    rack.daemon.cli(&[
        "backend",
        "drain",
        "dns",
        &rack.backend_addr("dns", 0).to_string(),
    ]);
    rack.daemon.cli(&[
        "backend",
        "drain",
        "dns",
        &rack.backend_addr("dns", 1).to_string(),
    ]);
    let out = xlb(
        &rack.topo.balancer.name,
        &[
            "backend",
            "drain",
            "dns",
            &rack.backend_addr("dns", 2).to_string(),
            "--socket",
            &sock.to_string_lossy(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("weight"), "{err}");
    // Nothing but the two accepted drains changed.
    let after = rack.daemon.cli(&["config", "dump"]);
    let (b, a) = (
        Config::from_toml_str(&before, None),
        Config::from_toml_str(&after, None),
    );
    let (b, a) = (
        b.unwrap_or_else(|e| panic!("{e}")),
        a.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(b.vips.len(), a.vips.len());
    assert_eq!(b.vips[0], a.vips[0], "web unchanged");
}

#[test]
fn config_dump_round_trips_and_reload_applies_the_file_or_keeps_the_old_config() {
    let Some((_l, rack)) = scenario_rack("config_reload", 1) else {
        return;
    };
    let file = Config::from_file(&rack.config_path).unwrap_or_else(|e| panic!("{e}"));
    let dumped = Config::from_toml_str(&rack.daemon.cli(&["config", "dump"]), None)
        .unwrap_or_else(|e| panic!("dump does not parse: {e}"));
    assert_eq!(dumped, file, "dump of an unchanged daemon equals the file");

    // A runtime change shows in the dump.
    let b0 = rack.backend_addr("web", 0).to_string();
    rack.daemon.cli(&["backend", "weight", "web", &b0, "7"]);
    let dumped = Config::from_toml_str(&rack.daemon.cli(&["config", "dump"]), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dumped.vips[0].backends[0].weight, 7);

    // Reload from the file: the file's weight (100) comes back, and a new one applies.
    let text = std::fs::read_to_string(&rack.config_path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &rack.config_path,
        text.replacen("weight = 200", "weight = 250", 1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = rack.daemon.cli(&["reload"]);
    assert!(out.contains("reloaded"), "{out}");
    let web = vips(&rack)
        .into_iter()
        .find(|v| v.name == "web")
        .unwrap_or_else(|| panic!("web"));
    assert_eq!((web.backends[0].weight, web.backends[1].weight), (100, 250));

    // A broken file: reload fails with the location, the daemon keeps its config.
    std::fs::write(
        &rack.config_path,
        text.replacen("weight = 300", "weight = 300\n  colour = \"red\"", 1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = xlb(
        &rack.topo.balancer.name,
        &["reload", "--socket", &rack.daemon.socket.to_string_lossy()],
    );
    assert!(!out.status.success(), "reload of a broken file must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("colour") && err.contains(".toml:"),
        "the error names the field and its location: {err}"
    );
    let web = vips(&rack)
        .into_iter()
        .find(|v| v.name == "web")
        .unwrap_or_else(|| panic!("web"));
    assert_eq!(web.backends[1].weight, 250, "the running config stays");
    assert!(
        many_connections(&rack.topo.clients[0], rack.vip("web").target(), 20, 2)
            .iter()
            .all(|r| r.is_ok())
    );

    // SIGHUP reloads too.
    std::fs::write(
        &rack.config_path,
        text.replacen("weight = 200", "weight = 123", 1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pid = rack.daemon.pid().unwrap_or_else(|| panic!("no pid"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let web = vips(&rack)
            .into_iter()
            .find(|v| v.name == "web")
            .unwrap_or_else(|| panic!("web"));
        if web.backends[1].weight == 123 {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&rack.config_path, text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn startup_errors_name_the_cause() {
    if !require_root("startup_errors") {
        return;
    }
    let _l = rack_lock();
    let ns = xlb_tests::netns::NetNs::create(&xlb_tests::netns::unique_name("start"));
    let dir = std::env::temp_dir();
    let run = |name: &str, text: &str| -> String {
        let path = dir.join(format!("xlb-start-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let out = xlb(ns.name(), &["run", "--config", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        assert!(!out.status.success(), "{name}: xlb run must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let base = format!(
        "[global]\ninstance = \"{}\"\ninterfaces = [\"xlbnope0\"]\nouter_source_v4 = \"10.0.0.1\"\napi_socket = \"/run/xlb/xlb-start.sock\"\n",
        ns.name()
    );
    let err = run("missing-interface", &base);
    assert!(
        err.contains("xlbnope0") && err.contains("does not exist"),
        "{err}"
    );
    let err = run("bad-config", &format!("{base}table_size = 65536\n"));
    assert!(
        err.contains("table_size") && err.contains("prime") && err.contains(".toml:6:"),
        "{err}"
    );
    let err = run("bad-toml", "[global\n");
    assert!(
        err.contains(".toml:1:") && err.contains("invalid toml"),
        "{err}"
    );
    // Not root.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(xlb_tests::xlb_process::xlb_binary())
        .args(["run", "--config", "/nonexistent.toml"])
        .output()
        .unwrap_or_else(|e| panic!("setpriv: {e}"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/xlb/{}", ns.name()));
}

#[test]
fn metrics_are_served_in_prometheus_format_and_fail_open_is_reported() {
    let Some((_l, mut rack)) = scenario_rack("metrics", 1) else {
        return;
    };
    assert!(
        many_connections(&rack.topo.clients[0], rack.vip("web").target(), 30, 3)
            .iter()
            .all(|r| r.is_ok())
    );
    let scrape = || {
        rack.topo
            .balancer
            .ns
            .exec("curl -sf http://127.0.0.1:9431/metrics")
    };
    let text = scrape();
    for needle in [
        "# TYPE xlb_vip_packets counter",
        "xlb_vip_new_flows_total{vip=\"web\"} 30",
        "xlb_backend_healthy{vip=\"web\",backend=\"10.10.0.100\"} 1",
        "xlb_verdict_packets_total{reason=\"tx\"}",
        "xlb_reconciles_total{result=\"ok\"}",
        "xlb_last_reconcile_timestamp_seconds",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    // Every backend of "web" fails: fail open, in the API, metrics and log.
    for b in &mut rack.topo.backends {
        b.servers.stop();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let web = vips(&rack)
            .into_iter()
            .find(|v| v.name == "web")
            .unwrap_or_else(|| panic!("web"));
        if web.fail_open {
            assert!(
                web.backends.iter().all(|b| b.state == "active (fail-open)"),
                "{web:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fail-open after every backend failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(scrape().contains("xlb_vip_fail_open{vip=\"web\"} 1"));
    assert!(
        rack.daemon.log_text().contains("fail open"),
        "{}",
        rack.daemon.log_text()
    );
    for b in &mut rack.topo.backends {
        b.servers.start();
    }
}

#[test]
fn ebpf_logs_reach_the_daemon_log_when_enabled() {
    if !require_root("ebpf_logs") {
        return;
    }
    let _l = rack_lock();
    let mut specs = standard_vips();
    specs.truncate(1);
    let rack = Rack::start_with(&xlb_tests::netns::unique_name("ebpflog"), 1, specs, "debug");
    // A backend with no route: the FIB lookup fails, a rare event the
    // program logs. (Added through the API; 203.0.113.0/24 is unrouted.)
    rack.topo
        .balancer
        .ns
        .ip("route add blackhole 203.0.113.0/24");
    rack.daemon
        .cli(&["backend", "add", "web", "203.0.113.5", "--weight", "60000"]);
    let _ = many_connections(&rack.topo.clients[0], rack.vip("web").target(), 20, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rack
        .daemon
        .log_text()
        .contains("fib lookup toward backend failed")
    {
        assert!(
            Instant::now() < deadline,
            "no eBPF log line in the daemon log:\n{}",
            rack.daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
