//! `cargo xtask demo --fleet`: the fleet of `xlb_tests::fleet`, with a node
//! killed under 150 live TCP streams, told as it happens.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::bail;

use super::{
    node_address,
    streams::{disruption, Streams},
    Fleet, FleetOptions, VIP_WEB, WEB_WEIGHTS,
};
use crate::clients::{many_connections, tally};

const STREAMS: usize = 150;
const PERIOD: Duration = Duration::from_millis(50);
const VICTIM: usize = 0;

pub fn run(interrupted: &AtomicBool) -> anyhow::Result<()> {
    println!(
        "xlb fleet demo: building a router (BIRD: BGP, BFD, ECMP with L4 hashing), three xlb \
         nodes (each `xlb run` + BIRD announcing xlb's route table 4242), three backends and \
         two clients in network namespaces (xlb-fdemo-*)..."
    );
    let started = Instant::now();
    let fleet = Fleet::start(FleetOptions::new(&crate::netns::unique_name("fdemo")));
    println!(
        "up in {:.1?}: every node announces the VIPs and the router has merged them\n",
        started.elapsed()
    );
    let mut f = fleet;
    print_route(&f, "router");
    println!("\n$ xlb vip list   # on node n0");
    print!("{}", f.nodes[0].daemon().cli(&["vip", "list"]));

    println!(
        "\nopening {STREAMS} long-lived TCP streams to {} from the clients (a line echoed every {PERIOD:?})...",
        f.web()
    );
    let streams = Streams::open(&f.clients, f.web(), STREAMS, PERIOD);
    std::thread::sleep(Duration::from_secs(1));
    let carried = f.new_flows("web");
    print_shares("streams per node (xlb stats: new flows)", &carried);
    if interrupted.load(Ordering::SeqCst) {
        let _ = streams.finish();
        bail!("interrupted");
    }

    println!(
        "\nkilling node n{VICTIM} ({}): its link goes down, its BIRD and xlb get SIGKILL, no goodbye...",
        node_address(VICTIM)
    );
    let killed_at = Instant::now();
    f.kill_node(VICTIM);
    let mut survivors = f.all_nodes();
    survivors.remove(&node_address(VICTIM));
    let detected = f.wait_for_nexthops(VIP_WEB, &survivors, Duration::from_secs(10));
    println!(
        "  +{:>4} ms  the router's BFD declared n{VICTIM} dead: {VIP_WEB} now via {}",
        detected.as_millis(),
        names(&survivors)
    );
    std::thread::sleep(
        (killed_at + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    );
    let before = f.new_flows("web");
    let mut results = Vec::new();
    for c in &f.clients {
        results.extend(many_connections(c, f.web(), 150, 6));
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!(
        "  +{:>4} ms  {ok} of {} new connections succeeded through the survivors",
        killed_at.elapsed().as_millis(),
        results.len()
    );
    std::thread::sleep(Duration::from_secs(2));
    let logs = streams.finish();
    let d = disruption(&logs, killed_at, PERIOD);
    let per_node: BTreeMap<usize, u64> = f
        .new_flows("web")
        .iter()
        .map(|(i, n)| (*i, n - before.get(i).copied().unwrap_or(0)))
        .collect();

    println!();
    print_route(&f, "router, after the kill");
    print_shares("new connections per surviving node", &per_node);
    let counts = tally(&results);
    let wsum: f64 = WEB_WEIGHTS.iter().map(|w| f64::from(*w)).sum();
    println!("  new connections per backend (weights 100/200/300):");
    for (i, w) in WEB_WEIGHTS.iter().enumerate() {
        let n = counts.get(&format!("backend-{i}")).copied().unwrap_or(0);
        println!(
            "    backend-{i}  weight share {:>5.1}%  got {:>5.1}%",
            f64::from(*w) * 100.0 / wsum,
            n as f64 * 100.0 / ok.max(1) as f64
        );
    }
    println!(
        "\nthe {STREAMS} streams: {} stalled when n{VICTIM} died (TCP retransmitted), every stream \
         was moving again {:.0?} after the kill, each on the backend it started with: the \
         survivors built the same Maglev tables, so flows they had never seen went to the \
         same backends.",
        d.stalled,
        d.last_recovered.unwrap_or_default()
    );
    println!("\nbroken connections: {}", d.broken.len());
    for b in d.broken.iter().take(5) {
        println!("  {b}");
    }
    println!("\nremoving the fleet...");
    drop(f);
    println!("done: no namespace, BIRD, daemon or pin of the demo is left.");
    if !d.broken.is_empty() || ok != results.len() {
        bail!("the fleet lost connections");
    }
    Ok(())
}

fn names(nodes: &std::collections::BTreeSet<Ipv4Addr>) -> String {
    nodes
        .iter()
        .map(|a| {
            let i = (0..3).find(|i| node_address(*i) == *a).unwrap_or(9);
            format!("n{i} ({a})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_route(f: &Fleet, who: &str) {
    println!("$ ip route show {VIP_WEB}   # on the {who}");
    print!("{}", f.router.ns.ip(&format!("route show {VIP_WEB}/32")));
}

fn print_shares(what: &str, per_node: &BTreeMap<usize, u64>) {
    let total: u64 = per_node.values().sum();
    println!("  {what}:");
    for (i, n) in per_node {
        println!(
            "    n{i}  {n:>4}  {:>5.1}%",
            *n as f64 * 100.0 / total.max(1) as f64
        );
    }
}
