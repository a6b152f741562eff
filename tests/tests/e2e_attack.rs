//! End to end, under attack (issue 12): 200 real TCP connections stream
//! while the live-frames generator floods the VIP with spoofed SYNs, then
//! spoofed ACKs, and meanwhile a backend is added and one removed; every
//! connection must come through intact. A VIP with an allow list refuses
//! other sources; a per-source limit lets about its rate through from one
//! source and leaves another source alone.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use xlb_tests::{
    clients::{connect, many_connections},
    flood::Flood,
    frames::{TCP_ACK, TCP_SYN},
    netns::unique_name,
    privileged::require_root,
    rack::{rack_lock, Rack, RackOptions, VipSpec, VIP4},
    stats_json::stats,
    topology::Host,
};

const CONNECTIONS: usize = 200;
/// Each streamer thread's share of the connections.
const STREAMERS: usize = 8;
const CHUNK: usize = 512;
/// Long: under the flood a stream may stall (its segments are lost in full
/// rings and retransmitted), which is not a broken connection.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const FLOOD_TIME: Duration = Duration::from_secs(4);
/// The prefix the flood frames' random sources come from (198.18.0.0/15 is
/// the benchmarking range; a /16 of it: 65,536 addresses).
const SPOOFED: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 16);
/// Misses per second on one CPU over which it stops inserting: far below
/// what the flood offers, and small against each CPU's share of the table
/// (the 4 s ACK flood inserts at most 2,000 entries per CPU; each CPU's LRU
/// list holds 8,192).
const FLOOD_THRESHOLD: u32 = 500;
const FLOW_TABLE_SIZE: u32 = 16_384;

fn web() -> VipSpec {
    VipSpec {
        name: "web",
        address: VIP4.parse().unwrap_or_else(|e| panic!("{e}")),
        port: 80,
        protocol: "tcp",
        hashing: "five-tuple",
        flow_table: true,
        // Backend 2 is drained (weight 0): it holds no connection, so
        // removing it breaks none by itself.
        backends: vec![(0, 100), (1, 100), (2, 0)],
        v6_backends: false,
        tcp_check: None,
    }
}

/// One streaming connection: writes a chunk, reads the echo, checks every
/// byte.
struct Stream {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    backend: String,
    sent: u64,
}

impl Stream {
    fn open(host: &Host, target: SocketAddr) -> std::io::Result<Self> {
        let s = connect(host, target, None)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        let writer = s.try_clone()?;
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        Ok(Self {
            reader,
            writer,
            backend: line.trim_end().to_string(),
            sent: 0,
        })
    }

    fn exchange(&mut self) -> std::io::Result<()> {
        let chunk: Vec<u8> = (0..CHUNK)
            .map(|i| (self.sent as usize + i * 7) as u8)
            .collect();
        self.writer.write_all(&chunk)?;
        let mut back = vec![0u8; CHUNK];
        self.reader.read_exact(&mut back)?;
        if back != chunk {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "echoed bytes differ",
            ));
        }
        self.sent += CHUNK as u64;
        Ok(())
    }
}

/// How the 200 connections came through one run.
#[derive(Debug, Default)]
struct Outcome {
    broken: usize,
    resets: usize,
    bytes: u64,
    syn_pps: f64,
    ack_pps: f64,
    skipped_inserts: u64,
    flood_windows: u64,
    first_error: Option<String>,
}

fn start_rack(tag: &str, threshold: u32) -> Option<(std::sync::MutexGuard<'static, ()>, Rack)> {
    if !require_root(tag) {
        return None;
    }
    let lock = rack_lock();
    fn with_threshold(c: String) -> String {
        c.replace(
            "bpf_log = \"off\"\n",
            &format!("bpf_log = \"off\"\nflood_threshold = {FLOOD_THRESHOLD}\n"),
        )
    }
    fn with_flood_mode_off(c: String) -> String {
        c.replace(
            "bpf_log = \"off\"\n",
            "bpf_log = \"off\"\nflood_threshold = 0\n",
        )
    }
    let rack = Rack::start_options(
        &unique_name(tag),
        1,
        vec![web()],
        RackOptions {
            backends: 4,
            flow_table_size: FLOW_TABLE_SIZE,
            edit_config: if threshold == 0 {
                with_flood_mode_off
            } else {
                with_threshold
            },
            ..RackOptions::default()
        },
    );
    Some((lock, rack))
}

/// Opens the connections, streams on all of them while the SYN flood runs
/// (backend 3 is added during it) and then the ACK flood (backend 2 is
/// removed during it), then checks every connection and new ones.
fn flood_run(rack: &Rack) -> Outcome {
    let target = rack.vip("web").target();
    let client = &rack.topo.clients[0];
    let mut streams: Vec<Stream> = (0..CONNECTIONS)
        .map(|i| Stream::open(client, target).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    for s in &mut streams {
        s.exchange()
            .unwrap_or_else(|e| panic!("first exchange: {e}"));
        assert!(
            s.backend == "backend-0" || s.backend == "backend-1",
            "a drained backend took a connection: {}",
            s.backend
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let mut groups: Vec<Vec<Stream>> = (0..STREAMERS).map(|_| Vec::new()).collect();
    for (i, s) in streams.into_iter().enumerate() {
        groups[i % STREAMERS].push(s);
    }
    let streamers: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            let (stop, moved) = (stop.clone(), moved.clone());
            std::thread::spawn(move || {
                let mut failed: Vec<std::io::Error> = Vec::new();
                while !stop.load(Ordering::SeqCst) && !group.is_empty() {
                    let mut i = 0;
                    while i < group.len() {
                        match group[i].exchange() {
                            Ok(()) => {
                                moved.fetch_add(CHUNK as u64, Ordering::Relaxed);
                                i += 1;
                            }
                            Err(e) => {
                                failed.push(e);
                                group.swap_remove(i);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                (group, failed)
            })
        })
        .collect();

    let flood = Flood::attach(&rack.topo).unwrap_or_else(|e| panic!("{e:#}"));
    let vip = match target.ip() {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => unreachable!("the web VIP is IPv4"),
    };
    let b2 = rack.backend_addr("web", 2).to_string();
    let b3 = rack.backend_addr("web", 3).to_string();
    std::thread::sleep(Duration::from_millis(500));

    let syn = flood
        .start(SPOOFED, vip, 80, TCP_SYN, FLOOD_TIME)
        .unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(FLOOD_TIME / 2);
    rack.daemon
        .cli(&["backend", "add", "web", &b3, "--weight", "100"]);
    let (flood, syn_run) = syn.join().unwrap_or_else(|e| panic!("SYN flood: {e:#}"));

    let ack = flood
        .start(SPOOFED, vip, 80, TCP_ACK, FLOOD_TIME)
        .unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(FLOOD_TIME / 2);
    rack.daemon.cli(&["backend", "del", "web", &b2]);
    let (_flood, ack_run) = ack.join().unwrap_or_else(|e| panic!("ACK flood: {e:#}"));
    let s = stats(&rack.daemon);

    // Streams go on after the floods; then every connection must still echo.
    std::thread::sleep(Duration::from_millis(1_000));
    stop.store(true, Ordering::SeqCst);
    let mut out = Outcome {
        syn_pps: syn_run.pps(),
        ack_pps: ack_run.pps(),
        skipped_inserts: s.flood.skipped_inserts,
        flood_windows: s.flood.flood_windows,
        ..Outcome::default()
    };
    for t in streamers {
        let (mut group, failed) = t.join().unwrap_or_else(|_| panic!("streamer panicked"));
        for s in &mut group {
            match s.exchange() {
                Ok(()) => out.bytes += s.sent,
                Err(e) => {
                    out.broken += 1;
                    out.resets += usize::from(e.kind() == std::io::ErrorKind::ConnectionReset);
                    out.first_error
                        .get_or_insert_with(|| format!("{} ({})", e, s.backend));
                }
            }
        }
        for e in failed {
            out.broken += 1;
            out.resets += usize::from(e.kind() == std::io::ErrorKind::ConnectionReset);
            out.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    let _ = moved;
    // New real connections succeed (and reach the new backend too).
    let fresh = many_connections(client, target, 60, 4);
    assert!(
        fresh.iter().all(|r| r.is_ok()),
        "a new connection failed after the floods: {:?}",
        fresh.iter().find(|r| r.is_err())
    );
    println!("{out:?}");
    out
}

#[test]
fn connections_survive_spoofed_floods_while_backends_change() {
    let Some((_l, rack)) = start_rack("flood", FLOOD_THRESHOLD) else {
        return;
    };
    let started = Instant::now();
    let out = flood_run(&rack);
    println!(
        "flood mode on: {} of {CONNECTIONS} connections broken ({} resets), {} bytes echoed, \
         SYN flood {:.0} frames/s, ACK flood {:.0} frames/s, {} inserts skipped in {} flood \
         windows ({:?})",
        out.broken,
        out.resets,
        out.bytes,
        out.syn_pps,
        out.ack_pps,
        out.skipped_inserts,
        out.flood_windows,
        started.elapsed()
    );
    assert!(
        out.flood_windows > 0,
        "the ACK flood never started flood mode"
    );
    assert_eq!(
        out.broken, 0,
        "connections broke under the flood: {:?}",
        out.first_error
    );
    assert!(out.bytes > (CONNECTIONS * CHUNK * 4) as u64);
}

/// The control: the same run with flood mode off. The ACK flood's entries
/// evict the real connections' entries, and the connections whose table
/// slot moved to the added backend break. Measured 20, 7, 0 and 44 of 200
/// in four runs (how many entries the flood evicts depends on the rate the
/// generator reaches on a busy machine; with bare SYNs inserting as well,
/// as before issue 12, 65), so it is not part of the suite:
/// `cargo test -p xlb-tests --test e2e_attack -- --ignored --nocapture`.
#[test]
#[ignore = "control run, its count depends on the machine's load: run with --ignored"]
fn without_flood_mode_the_ack_flood_breaks_connections() {
    let Some((_l, rack)) = start_rack("noflood", 0) else {
        return;
    };
    let out = flood_run(&rack);
    println!(
        "flood mode off: {} of {CONNECTIONS} connections broken ({} resets), SYN flood {:.0} \
         frames/s, ACK flood {:.0} frames/s",
        out.broken, out.resets, out.syn_pps, out.ack_pps
    );
    assert_eq!(out.skipped_inserts, 0);
    assert!(
        out.broken > 0,
        "without flood mode the flood should have evicted entries: the test would not see \
         the attack"
    );
}

/// A rack with only the web VIP (backends 0-2), its `[[vip]]` given `extra`
/// lines.
fn policy_rack(
    tag: &str,
    edit: fn(String) -> String,
) -> Option<(std::sync::MutexGuard<'static, ()>, Rack)> {
    if !require_root(tag) {
        return None;
    }
    let lock = rack_lock();
    let vip = VipSpec {
        backends: vec![(0, 100), (1, 100), (2, 100)],
        ..web()
    };
    let rack = Rack::start_options(
        &unique_name(tag),
        1,
        vec![vip],
        RackOptions {
            edit_config: edit,
            ..RackOptions::default()
        },
    );
    Some((lock, rack))
}

/// A connection attempt with its own timeout (shorter than the first SYN
/// retransmission, so a dropped SYN is a failed attempt).
fn try_connect(host: &Host, target: SocketAddr, src: std::net::IpAddr, timeout: Duration) -> bool {
    let _in = host.ns.enter();
    let Ok(s) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None) else {
        return false;
    };
    s.bind(&SocketAddr::new(src, 0).into()).is_ok()
        && s.connect_timeout(&target.into(), timeout).is_ok()
}

fn policy_of(rack: &Rack) -> lb_userspace::stats::PolicySample {
    stats(&rack.daemon)
        .vips
        .into_iter()
        .find(|v| v.vip.contains("web"))
        .unwrap_or_else(|| panic!("no web VIP in xlb stats"))
        .policy
}

#[test]
fn an_allow_list_refuses_other_sources_and_changes_at_run_time() {
    fn allow_primary(c: String) -> String {
        c.replace(
            "name = \"web\"\n",
            "name = \"web\"\nallow = [\"10.10.0.10/32\"]\n",
        )
    }
    let Some((_l, rack)) = policy_rack("allow", allow_primary) else {
        return;
    };
    let target = rack.vip("web").target();
    let client = &rack.topo.clients[0];
    let allowed = std::net::IpAddr::V4(client.v4);
    let other = std::net::IpAddr::V4(client.extra_v4[0]);
    for _ in 0..5 {
        assert!(
            try_connect(client, target, allowed, Duration::from_secs(3)),
            "allowed source"
        );
        assert!(
            !try_connect(client, target, other, Duration::from_millis(700)),
            "a source outside the allow list connected"
        );
    }
    assert!(policy_of(&rack).source_not_allowed >= 5);
    let list = rack.daemon.cli(&["vip", "list"]);
    assert!(
        list.contains("10.10.0.10/32"),
        "vip list shows the allow list:\n{list}"
    );
    let why = rack.daemon.cli(&[
        "explain",
        &other.to_string(),
        "40000",
        &target.ip().to_string(),
        "80",
        "tcp",
        "--syn",
    ]);
    assert!(why.contains("allow"), "explain says why: {why}");

    // At run time: allow the other address, deny the first.
    rack.daemon
        .cli(&["vip", "allow", "web", &format!("{other}/32")]);
    rack.daemon
        .cli(&["vip", "deny", "web", &allowed.to_string()]);
    assert!(
        try_connect(client, target, other, Duration::from_secs(3)),
        "now allowed"
    );
    assert!(
        !try_connect(client, target, allowed, Duration::from_millis(700)),
        "now denied"
    );
    assert!(policy_of(&rack).source_denied >= 1);
}

/// 10 new connections/s per source (bursts of 10): one source trying far
/// faster gets about 10 + 10/s through; another source, at a few per
/// second, is never refused.
#[test]
fn a_per_source_limit_holds_one_source_and_not_another() {
    fn limit_sources(c: String) -> String {
        c.replace(
            "name = \"web\"\n",
            "name = \"web\"\nsource_rate_limit = { per_second = 10 }\n",
        )
    }
    let Some((_l, rack)) = policy_rack("srclim", limit_sources) else {
        return;
    };
    let target = rack.vip("web").target();
    let client = &rack.topo.clients[0];
    let greedy = std::net::IpAddr::V4(client.v4);
    let modest = std::net::IpAddr::V4(client.extra_v4[0]);
    const RUN: Duration = Duration::from_secs(3);
    let admitted = AtomicU64::new(0);
    let attempts = AtomicU64::new(0);
    let mut modest_failed = 0;
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let start = Instant::now();
                while start.elapsed() < RUN {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if try_connect(client, target, greedy, Duration::from_millis(300)) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let start = Instant::now();
        while start.elapsed() < RUN {
            if !try_connect(client, target, modest, Duration::from_secs(2)) {
                modest_failed += 1;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let admitted = admitted.load(Ordering::Relaxed);
    let attempts = attempts.load(Ordering::Relaxed);
    let limited = policy_of(&rack).source_rate_limited;
    println!(
        "per-source limit 10/s (burst 10) over {RUN:?}: {admitted} of {attempts} attempts \
         admitted from one source, {limited} SYNs refused; the other source failed \
         {modest_failed} times"
    );
    // Expected 10 (burst) + 10/s x 3 s = 40, measured across thread start-up
    // and the coarse clock: generous bounds.
    assert!((25..=60).contains(&admitted), "{admitted} admitted");
    assert!(
        attempts > admitted * 2,
        "the source offered more than its rate"
    );
    assert!(limited > 0);
    assert_eq!(modest_failed, 0, "the other source was refused");
}
