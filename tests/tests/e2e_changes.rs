//! End to end: changes while traffic flows. Scenarios 4 (weight change), 5
//! (drain), 6 (backend failure and health checks, for TCP and for a UDP
//! client that keeps its source port), 7 (daemon killed and restarted under a
//! streaming connection) and 10 (`xlb down`).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lb_userspace::daemon::controller::VipStatus;
use xlb_tests::{
    clients::{many_connections, tally, udp_exchange, udp_socket, Session},
    netns::unique_name,
    privileged::require_root,
    rack::{rack_lock, scenario_rack, Rack, VipSpec, VIP4},
    weight_shares::assert_weight_shares,
    xlb_process::xlb_ok,
};

fn sessions(rack: &Rack, target: SocketAddr, n: usize) -> Vec<Session> {
    (0..n)
        .map(|i| {
            Session::open(&rack.topo.clients[0], target, None)
                .unwrap_or_else(|e| panic!("session {i}: {e}"))
        })
        .collect()
}

fn all_alive(sessions: &mut [Session], what: &str) {
    for (i, s) in sessions.iter_mut().enumerate() {
        s.ping(&format!("{what}-{i}"))
            .unwrap_or_else(|e| panic!("{what}: session {i} on {} broke: {e}", s.backend));
    }
}

fn vip_status(rack: &Rack, name: &str) -> VipStatus {
    let text = rack.daemon.cli(&["vip", "list", "--json"]);
    let vips: Vec<VipStatus> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("vip list --json: {e}"));
    vips.into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no VIP {name}"))
}

/// Scenario 4: new connections follow new weights; connections opened before
/// the change stay up on their backend.
#[test]
fn weight_change_moves_new_connections_only() {
    let Some((_l, rack)) = scenario_rack("weight_change", 1) else {
        return;
    };
    let web = rack.vip("web").target();
    let mut before = sessions(&rack, web, 30);
    let backends_before: Vec<String> = before.iter().map(|s| s.backend.clone()).collect();

    // 100/200/300 -> 300/200/100, through the CLI.
    for (i, w) in [(0, "300"), (2, "100")] {
        let addr = rack.backend_addr("web", i).to_string();
        rack.daemon.cli(&["backend", "weight", "web", &addr, w]);
    }
    let counts = tally(&many_connections(&rack.topo.clients[0], web, 600, 6));
    println!("after the weight change (300/200/100): {counts:?}");
    assert_weight_shares(&counts, &[300, 200, 100], "after the weight change");
    all_alive(&mut before, "after-weight-change");
    assert_eq!(
        before.iter().map(|s| s.backend.clone()).collect::<Vec<_>>(),
        backends_before
    );
}

/// Scenario 5: a drained backend gets no new connection; its established
/// connections keep working until closed.
#[test]
fn drained_backend_keeps_established_connections_only() {
    let Some((_l, rack)) = scenario_rack("drain", 1) else {
        return;
    };
    let web = rack.vip("web").target();
    let mut open = sessions(&rack, web, 40);
    let on_drained: usize = open.iter().filter(|s| s.backend == "backend-2").count();
    assert!(
        on_drained > 0,
        "no session landed on backend-2 to begin with"
    );

    let addr = rack.backend_addr("web", 2).to_string();
    rack.daemon.cli(&["backend", "drain", "web", &addr]);
    assert_eq!(vip_status(&rack, "web").backends[2].state, "draining");

    let results = many_connections(&rack.topo.clients[0], web, 400, 6);
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let counts = tally(&results);
    assert_eq!(
        counts.get("backend-2"),
        None,
        "the drained backend got new connections: {counts:?}"
    );
    all_alive(&mut open, "while-draining");
    drop(open);
}

/// Scenario 6: a backend's server dies; health checks take it out within
/// interval x fall + one interval; no new connection fails afterwards, the
/// others' connections are untouched; restarted, it returns.
#[test]
fn failed_backend_is_removed_by_health_checks_and_returns() {
    let Some((_l, mut rack)) = scenario_rack("health", 1) else {
        return;
    };
    let web = rack.vip("web").target();
    let (interval_ms, fall) = rack
        .vip("web")
        .tcp_check
        .unwrap_or_else(|| panic!("web has a check"));
    let mut others: Vec<Session> = sessions(&rack, web, 30)
        .into_iter()
        .filter(|s| s.backend != "backend-1")
        .collect();
    assert!(!others.is_empty());

    let stopped_at = Instant::now();
    rack.topo.backends[1].servers.stop();
    let limit = Duration::from_millis(interval_ms * (u64::from(fall) + 1));
    let deadline = stopped_at + limit + Duration::from_millis(700);
    loop {
        if !vip_status(&rack, "web").backends[1].healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend-1 still healthy {:?} after its server stopped (limit {limit:?}); log:\n{}",
            stopped_at.elapsed(),
            rack.daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let detected = stopped_at.elapsed();
    println!("unhealthy after {detected:?} (interval {interval_ms} ms x fall {fall} + one interval = {limit:?})");

    let results = many_connections(&rack.topo.clients[0], web, 400, 6);
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} new connections failed after detection: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(tally(&results).get("backend-1"), None);
    all_alive(&mut others, "other-backends");

    rack.topo.backends[1].servers.start();
    let deadline = Instant::now() + Duration::from_millis(interval_ms * 2 + 2000);
    while !vip_status(&rack, "web").backends[1].healthy {
        assert!(Instant::now() < deadline, "backend-1 did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let counts = tally(&many_connections(&rack.topo.clients[0], web, 300, 6));
    assert!(
        counts.get("backend-1").copied().unwrap_or(0) > 50,
        "backend-1 is back but gets little: {counts:?}"
    );
    assert!(
        rack.daemon.log_text().contains("failed its health check"),
        "the transition is logged"
    );
}

/// Scenario 6 for UDP (issue 9): a client that keeps its source port (DNS,
/// QUIC, NTP, games) and sends every 100 ms is answered by another backend
/// within a second of its backend's death: the health check takes the
/// backend out and the data plane stops following the flow's entry to it.
/// It then stays on its new backend.
#[test]
fn udp_client_with_a_fixed_port_moves_off_a_failed_backend_within_a_second() {
    if !require_root("udp_failover") {
        return;
    }
    let _l = rack_lock();
    let vip = VipSpec {
        name: "dns-checked",
        address: VIP4.parse().unwrap_or_else(|e| panic!("{e}")),
        port: 53,
        protocol: "udp",
        hashing: "five-tuple",
        flow_table: true,
        // Three backends: one failing leaves the VIP far from failing open.
        backends: vec![(0, 100), (1, 100), (2, 100)],
        v6_backends: false,
        tcp_check: Some((100, 2)),
    };
    let mut rack = Rack::start(&unique_name("udpfo"), 1, vec![vip]);
    let target = rack.vip("dns-checked").target();
    let sock = udp_socket(&rack.topo.clients[0], target, 47000)
        .unwrap_or_else(|e| panic!("client socket: {e}"));
    sock.set_read_timeout(Some(Duration::from_millis(90)))
        .unwrap_or_else(|e| panic!("{e}"));
    let period = Duration::from_millis(100);
    let mut seq = 0u32;
    let mut exchange = || {
        seq += 1;
        let sent = Instant::now();
        let answer = udp_exchange(&sock, target, format!("q{seq}").as_bytes()).ok();
        if let Some(rest) = period.checked_sub(sent.elapsed()) {
            std::thread::sleep(rest);
        }
        (sent, answer)
    };

    let before: Vec<Option<String>> = (0..10).map(|_| exchange().1).collect();
    let victim = before
        .iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("no answer before the failure: {before:?}"));
    assert!(
        before.iter().flatten().all(|b| *b == victim),
        "one source port, one backend: {before:?}"
    );
    let i: usize = victim
        .strip_prefix("backend-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("answered by {victim:?}"));

    rack.topo.backends[i].servers.stop();
    let killed = Instant::now();
    let mut after = Vec::new();
    while killed.elapsed() < Duration::from_secs(3) {
        let (sent, answer) = exchange();
        after.push((sent.saturating_duration_since(killed), answer));
    }
    let timeline = || {
        after
            .iter()
            .map(|(t, a)| format!("{:>5} ms {}", t.as_millis(), a.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (moved_at, new_backend) = after
        .iter()
        .find_map(|(t, a)| {
            a.as_ref()
                .filter(|b| **b != victim)
                .map(|b| (*t, b.clone()))
        })
        .unwrap_or_else(|| {
            panic!(
                "never answered by another backend after {victim} died:\n{}\nlog:\n{}",
                timeline(),
                rack.daemon.log_text()
            )
        });
    println!("answered by {new_backend} {moved_at:?} after {victim} died");
    assert!(
        moved_at <= Duration::from_secs(1),
        "first answer from another backend {moved_at:?} after the failure:\n{}",
        timeline()
    );
    // From then on: always the new backend, and (bar a lost datagram or two
    // on a loaded machine) always answered.
    let later: Vec<&Option<String>> = after
        .iter()
        .filter(|(t, _)| *t > moved_at)
        .map(|(_, a)| a)
        .collect();
    assert!(
        later
            .iter()
            .all(|a| a.as_ref().is_none_or(|b| *b == new_backend)),
        "the flow moved again:\n{}",
        timeline()
    );
    let missed = later.iter().filter(|a| a.is_none()).count();
    assert!(
        later.len() >= 15 && missed <= 2,
        "{missed} of {} unanswered after the move:\n{}",
        later.len(),
        timeline()
    );
}

/// Scenario 7: the daemon is SIGKILLed and started again while a connection
/// streams: no reset, no lost byte; new connections work throughout.
#[test]
fn daemon_restart_keeps_streams_and_flows() {
    let Some((_l, mut rack)) = scenario_rack("restart", 1) else {
        return;
    };
    let web = rack.vip("web").target();
    let mut stream =
        Session::open(&rack.topo.clients[0], web, None).unwrap_or_else(|e| panic!("{e}"));
    let ids_before = vip_status(&rack, "web")
        .backends
        .iter()
        .map(|b| b.id)
        .collect::<Vec<_>>();
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let streamer = {
        let (stop, moved) = (stop.clone(), moved.clone());
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 4096];
            let mut n: u64 = 0;
            while !stop.load(Ordering::SeqCst) {
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b = (n as usize + i) as u8;
                }
                stream
                    .stream(&chunk)
                    .map_err(|e| format!("after {n} chunks: {e}"))?;
                n += 1;
                moved.store(n * 4096, Ordering::SeqCst);
            }
            Ok::<Session, String>(stream)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    rack.daemon.kill();
    // No daemon: the data plane keeps balancing on its own.
    let during = many_connections(&rack.topo.clients[0], web, 100, 4);
    assert!(
        during.iter().all(|r| r.is_ok()),
        "while the daemon was down: {:?}",
        during.iter().find(|r| r.is_err())
    );
    let config = rack.config_path.clone();
    rack.daemon.restart(&config);
    assert!(
        rack.daemon.log_text().contains("adopting pinned state"),
        "the new daemon must adopt the pins"
    );
    assert!(rack
        .daemon
        .log_text()
        .contains("replaced the program on the pinned link"));
    let after = many_connections(&rack.topo.clients[0], web, 100, 4);
    assert!(after.iter().all(|r| r.is_ok()));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let mut stream = streamer
        .join()
        .unwrap_or_else(|_| panic!("streamer panicked"))
        .unwrap_or_else(|e| panic!("the stream broke: {e}"));
    stream.ping("still-here").unwrap_or_else(|e| panic!("{e}"));
    println!(
        "streamed {} bytes across the restart",
        moved.load(Ordering::SeqCst)
    );
    assert!(moved.load(Ordering::SeqCst) > 100_000);
    let ids_after = vip_status(&rack, "web")
        .backends
        .iter()
        .map(|b| b.id)
        .collect::<Vec<_>>();
    assert_eq!(
        ids_before, ids_after,
        "adopted state keeps backend ids (and so the flow table's meaning)"
    );
}

/// Scenario 10: `xlb down` leaves no program attached and no pins.
#[test]
fn xlb_down_removes_everything() {
    let Some((_l, mut rack)) = scenario_rack("down", 1) else {
        return;
    };
    let lb = rack.topo.balancer.name.clone();
    assert!(
        rack.topo.balancer.ns.ip("link show xlb0").contains("xdp"),
        "attached before"
    );
    let pins = std::path::Path::new("/sys/fs/bpf/xlb").join(&rack.daemon.instance);
    assert!(pins.exists());
    let out = xlb_ok(
        &lb,
        &[
            "down",
            "--instance",
            &rack.daemon.instance.clone(),
            "--socket",
            &rack.daemon.socket.to_string_lossy(),
        ],
    );
    println!("{out}");
    assert!(out.contains("detached xlb from xlb0"), "{out}");
    assert!(
        !rack.topo.balancer.ns.ip("link show xlb0").contains("xdp"),
        "program still attached after xlb down"
    );
    assert!(!pins.exists(), "pins left at {}", pins.display());
    // The daemon was asked to exit by `xlb down`.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rack.daemon.socket.exists() {
        assert!(Instant::now() < deadline, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    rack.daemon.stop();
    // VIP traffic is no longer balanced: connections fail.
    let r = many_connections(&rack.topo.clients[0], rack.vip("web").target(), 3, 1);
    assert!(
        r.iter().all(|x| x.is_err()),
        "VIP still served after xlb down"
    );
}
