//! `cargo xtask demo`: xlb balancing real connections in a rack of network
//! namespaces, with a built-in config (one IPv4 VIP, three weighted backends),
//! and a report a person can read at a glance. `--fleet`: three xlb nodes
//! behind a BGP router instead, one of them killed under live streams
//! (`xlb_tests::fleet::demo`). `--l7`: xlb in front of two nginx nodes
//! routing by path (`xlb_tests::l7::demo`). Everything it creates is named
//! `xlb-demo-*` and removed at the end, on Ctrl-C, and before the next run.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use xlb_tests::{
    clients::{many_connections, tally},
    rack::{Rack, VipSpec, VIP4},
};

const CONNECTIONS_PER_CLIENT: usize = 1500;

/// `println!` that never panics. Under `cargo xtask demo | tee log`, Ctrl-C
/// ends `tee` too, and printing to the dead pipe must not stop the demo
/// before it has removed its rack: the report is best effort, the cleanup
/// is not.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see `say!`).
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
const WEIGHTS: [u16; 3] = [100, 200, 300];

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let keep = std::env::args().any(|a| a == "--keep");
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo creates network namespaces and loads XDP programs: run it as root");
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("installing the Ctrl-C handler")?;
    }
    if std::env::args().any(|a| a == "--fleet") {
        return xlb_tests::fleet::demo::run(&interrupted);
    }
    if std::env::args().any(|a| a == "--l7") {
        return xlb_tests::l7::demo(&interrupted);
    }

    say!("xlb demo: building a rack of network namespaces (xlb-demo-*): 2 clients, a balancer, 3 backends...");
    let vip = VipSpec {
        name: "web",
        address: VIP4.parse()?,
        port: 80,
        protocol: "tcp",
        hashing: "five-tuple",
        flow_table: true,
        backends: WEIGHTS.iter().copied().enumerate().collect(),
        v6_backends: false,
        tcp_check: Some((500, 2)),
    };
    let started = Instant::now();
    let rack = Rack::start(&xlb_tests::netns::unique_name("demo"), 2, vec![vip]);
    say!(
        "rack up and xlb running in {:.1?} (config: {})\n",
        started.elapsed(),
        rack.config_path.display()
    );
    say_raw!("{}", rack.daemon.cli(&["vip", "list"]));

    let target = rack.vip("web").target();
    say!(
        "\nsending {} TCP connections from 2 clients (3 source addresses) to {target}...",
        2 * CONNECTIONS_PER_CLIENT
    );
    let t = Instant::now();
    let mut results = Vec::new();
    for (i, c) in rack.topo.clients.iter().enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            say!("interrupted: cleaning up");
            return Ok(());
        }
        results.extend(many_connections(c, target, CONNECTIONS_PER_CLIENT, 8));
        say!("  client {i} done");
    }
    let secs = t.elapsed().as_secs_f64();
    report(&rack, &results, secs, target);

    if keep {
        print_poking_instructions(&rack);
        while !interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        say!("\nCtrl-C: removing the demo rack...");
    } else {
        say!("\nRemoving the demo rack (run `cargo xtask demo --keep` to keep it up and poke at it)...");
    }
    drop(rack);
    say!("done: no namespace, program or pin of the demo is left.");
    Ok(())
}

fn report(rack: &Rack, results: &[Result<String, String>], secs: f64, target: SocketAddr) {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let counts = tally(results);
    let wsum: f64 = WEIGHTS.iter().map(|w| f64::from(*w)).sum();
    say!("\n== {ok} of {} connections to {target} succeeded in {secs:.1} s ({:.0} connections/s) ==\n", results.len(), ok as f64 / secs);
    say!(
        "{:<11} {:<14} {:>7} {:>13} {:>12} {:>8}",
        "backend",
        "address",
        "weight",
        "weight share",
        "connections",
        "share"
    );
    for (i, w) in WEIGHTS.iter().enumerate() {
        let n = counts.get(&format!("backend-{i}")).copied().unwrap_or(0);
        say!(
            "{:<11} {:<14} {:>7} {:>12.1}% {:>12} {:>7.1}%",
            format!("backend-{i}"),
            rack.backend_addr("web", i).to_string(),
            w,
            f64::from(*w) * 100.0 / wsum,
            n,
            n as f64 * 100.0 / ok.max(1) as f64
        );
    }
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        say!("\nfirst failure: {e}");
    }
    say!("\nEvery reply came straight from a backend (direct server return): the balancer");
    say!("only saw client-to-VIP packets, encapsulated them (IP-in-IP) in XDP and sent them");
    say!("back out of the interface they came in on (XDP_TX).\n");
    say!("$ xlb stats");
    say_raw!("{}", rack.daemon.cli(&["stats"]));
}

fn print_poking_instructions(rack: &Rack) {
    let lb = &rack.topo.balancer.name;
    let xlb = xlb_tests::xlb_process::xlb_binary().display().to_string();
    let sock = rack.daemon.socket.display().to_string();
    let c0 = &rack.topo.clients[0].name;
    say!("\nThe rack stays up until you press Ctrl-C. Try, in another terminal:\n");
    say!("  # a request through the VIP (the backend answers with its name):");
    say!("  ip netns exec {c0} curl -s --max-time 2 telnet://{VIP4}:80 </dev/null; echo");
    say!("  # live rates per VIP and backend, the VIP table, which backend a flow gets:");
    say!("  {xlb} stats --watch --socket {sock}");
    say!("  {xlb} vip list --socket {sock}");
    say!("  {xlb} explain 10.10.0.10 40000 {VIP4} 80 tcp --socket {sock}");
    say!("  # change a weight or drain a backend, then send traffic again:");
    say!("  {xlb} backend weight web 10.10.0.100 600 --socket {sock}");
    say!("  {xlb} backend drain web 10.10.0.102 --socket {sock}");
    say!("  # Prometheus metrics (served inside the balancer's namespace):");
    say!("  ip netns exec {lb} curl -s 127.0.0.1:9431/metrics | grep ^xlb_");
    say!("  # the program on the balancer's interface, and the daemon's log:");
    say!("  ip -n {lb} link show xlb0");
    say!("  cat {}", rack.daemon.log.display());
}
