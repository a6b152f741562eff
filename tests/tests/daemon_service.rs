//! The daemon as the packaged systemd unit runs it: with exactly the unit's
//! capabilities (and not without any one of them), telling the service
//! manager when it is ready, reloading and stopping, and logging in JSON
//! with the same fields as in text.

use std::{
    collections::BTreeMap,
    os::unix::net::UnixDatagram,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use xlb_tests::{
    clients::many_connections,
    privileged::require_root,
    rack::{rack_lock, standard_vips, Rack, RackOptions},
    xlb_process::{xlb_binary, Launch},
};

const UNIT: &str = include_str!("../../contrib/systemd/xlb.service");

/// The unit's `CapabilityBoundingSet=` names (`CAP_BPF`, ...).
fn unit_capabilities() -> Vec<&'static str> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap_or_else(|| panic!("the unit sets no CapabilityBoundingSet"));
    line.split_whitespace().collect()
}

/// Capability numbers (linux/capability.h) of the names the unit may use.
fn cap_number(name: &str) -> u32 {
    match name {
        "CAP_NET_ADMIN" => 12,
        "CAP_SYS_ADMIN" => 21,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("unexpected capability {other} in the unit"),
    }
}

/// `setpriv` keeping only `caps` in the bounding set: what systemd's
/// CapabilityBoundingSet= does to a service running as root.
fn setpriv(caps: &[&str]) -> Vec<String> {
    let mut set = String::from("-all");
    for c in caps {
        set += &format!(",+{}", c.trim_start_matches("CAP_").to_lowercase());
    }
    vec![
        "setpriv".into(),
        format!("--bounding-set={set}"),
        "--".into(),
    ]
}

/// A capability mask line of /proc/PID/status (`CapEff:`, `CapBnd:`).
fn cap_mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("{hex}: {e}"))
}

fn start_rack(test: &str, launch: Launch) -> Rack {
    let tag: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    Rack::start_options(
        &xlb_tests::netns::unique_name(&tag),
        1,
        standard_vips(),
        RackOptions {
            launch,
            ..RackOptions::default()
        },
    )
}

fn assert_web_serves(rack: &Rack, n: usize) {
    let results = many_connections(&rack.topo.clients[0], rack.vip("web").target(), n, 4);
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} connections failed: {:?}",
        failed.len(),
        failed.first()
    );
}

#[test]
fn daemon_runs_with_only_the_units_capabilities() {
    if !require_root("daemon_runs_with_only_the_units_capabilities") {
        return;
    }
    let caps = unit_capabilities();
    assert!(
        !caps.is_empty() && !caps.contains(&"CAP_SYS_ADMIN"),
        "the unit grants {caps:?}"
    );
    let _l = rack_lock();
    let mut rack = start_rack(
        "caps",
        Launch {
            wrapper: setpriv(&caps),
            ..Launch::default()
        },
    );
    let pid = rack.daemon.pid().unwrap_or_else(|| panic!("no daemon"));
    // nsenter and setpriv exec: the child is xlb itself.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "xlb");
    let expected: u64 = caps.iter().map(|c| 1u64 << cap_number(c)).sum();
    assert_eq!(cap_mask(pid, "CapBnd:"), expected, "bounding set");
    assert_eq!(cap_mask(pid, "CapEff:"), expected, "effective set");
    assert_web_serves(&rack, 60);
    rack.daemon.cli(&["reload"]);

    // Without any one of them the daemon cannot start; the data plane the
    // stopped daemon left keeps balancing meanwhile.
    rack.daemon.stop();
    for missing in &caps {
        let fewer: Vec<&str> = caps.iter().copied().filter(|c| c != missing).collect();
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", rack.topo.balancer.name))
            .arg("--")
            .args(setpriv(&fewer))
            .arg(xlb_binary())
            .args(["run", "--config"])
            .arg(&rack.config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting xlb: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("xlb run without {missing} kept running: {missing} is not needed");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(!status.success(), "xlb run without {missing} succeeded");
        assert!(
            stderr.contains("Operation not permitted") || stderr.contains("Permission denied"),
            "without {missing}: {stderr}"
        );
        println!("without {missing}: {}", stderr.trim());
    }
    assert_web_serves(&rack, 30);
}

/// Receives one notification datagram (waiting up to 30 s).
fn notification(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification within 30 s: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn hangup(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap_or_else(|e| panic!("SIGHUP: {e}"));
}

/// The lines of `log` (from `from` on) whose message is `message`.
fn log_lines(log: &Path, from: usize, message: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .filter(|l| l.contains(message))
        .map(str::to_string)
        .collect()
}

/// `key=value` fields of a text log line (values here hold no spaces).
fn text_fields(line: &str, message: &str) -> BTreeMap<String, String> {
    let (_, after) = line
        .split_once(message)
        .unwrap_or_else(|| panic!("{message:?} not in {line:?}"));
    after
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[test]
fn daemon_tells_the_service_manager_and_logs_json() {
    if !require_root("daemon_tells_the_service_manager_and_logs_json") {
        return;
    }
    let _l = rack_lock();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap_or_else(|e| panic!("{e}"));
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rack = start_rack(
        "notify",
        Launch {
            args: vec!["--log-format".into(), "json".into()],
            env: vec![(
                "NOTIFY_SOCKET".into(),
                notify_path.to_string_lossy().into_owned(),
            )],
            ..Launch::default()
        },
    );
    let pid = rack.daemon.pid().unwrap_or_else(|| panic!("no daemon"));
    let socket = rack.daemon.socket.display().to_string();
    let status = format!("balancing on xlb0; api {socket}, metrics 127.0.0.1:9431");
    assert_eq!(notification(&notify), format!("READY=1\nSTATUS={status}\n"));

    // SIGHUP: reloading, then ready again; a refused reload says so.
    hangup(pid);
    let reloading = notification(&notify);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(notification(&notify), format!("READY=1\nSTATUS={status}\n"));
    let good = std::fs::read_to_string(&rack.config_path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&rack.config_path, good.replace("port = 80", "port = 80000"))
        .unwrap_or_else(|e| panic!("{e}"));
    hangup(pid);
    assert!(notification(&notify).starts_with("RELOADING=1\n"));
    let refused = notification(&notify);
    assert!(
        refused.starts_with(&format!("READY=1\nSTATUS={status}; last reload refused: ")),
        "{refused}"
    );
    std::fs::write(&rack.config_path, &good).unwrap_or_else(|e| panic!("{e}"));
    assert_web_serves(&rack, 20);

    // JSON logs: one object per line, the event's fields beside "message".
    let log = rack.daemon.log.clone();
    let json_running = log_lines(&log, 0, "xlb is running");
    assert_eq!(json_running.len(), 1, "{json_running:?}");
    let obj: serde_json::Value =
        serde_json::from_str(&json_running[0]).unwrap_or_else(|e| panic!("{e}: {json_running:?}"));
    assert_eq!(obj["level"], "INFO");
    assert!(obj["timestamp"].is_string(), "{obj}");
    let json_fields: BTreeMap<String, String> = obj
        .as_object()
        .unwrap_or_else(|| panic!("{obj}"))
        .iter()
        .filter(|(k, _)| !["timestamp", "level", "message"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        json_fields,
        BTreeMap::from([
            ("api".to_string(), socket.clone()),
            ("metrics".to_string(), "127.0.0.1:9431".to_string()),
        ])
    );
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
    let refused_line = log_lines(&log, 0, "config reload failed");
    assert!(
        refused_line
            .iter()
            .any(|l| l.contains("\"error\":") && l.contains("\"level\":\"ERROR\"")),
        "{refused_line:?}"
    );

    // SIGTERM: stopping. Then the same event in text has the same fields.
    rack.daemon.stop();
    assert_eq!(notification(&notify), "STOPPING=1\n");
    let from = lines.lines().count();
    rack.daemon.launch.args.clear();
    let config = rack.config_path.clone();
    rack.daemon.restart(&config);
    let text_running = log_lines(&log, from, "xlb is running");
    assert_eq!(text_running.len(), 1, "{text_running:?}");
    assert!(text_running[0].contains(" INFO "), "{}", text_running[0]);
    assert_eq!(text_fields(&text_running[0], "xlb is running"), json_fields);
}
