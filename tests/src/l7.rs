//! The L4 -> L7 architecture on the rack: xlb (L4) in front of two real
//! nginx instances (the Debian package, each started with a generated
//! config) on backends 0 and 1, which route by path to application servers
//! on backend 2: `/api/` to the API pool, `/static/` to the static pool
//! (each pool an nginx `server` answering with its own name). What the
//! end-to-end test (tests/e2e_l7.rs) and `cargo xtask demo --l7` ([`demo`])
//! run.
//!
//! ```text
//!  client ──> VIP 10.200.0.1:8000 (xlb, l2-dsr) ──> nginx l7-0 (b0) ─┬─> api pool    (b2:9001)
//!                                                  nginx l7-1 (b1) ─┴─> static pool (b2:9002)
//! ```
//!
//! The L7 nodes answer the client directly (DSR: the VIP is on their `lo`),
//! so their access logs show the clients' own addresses.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{rack::VipSpec, topology::Host};

/// The L7 VIP's port (the rack's own servers use 80, 443, 53 and 8080).
pub const L7_PORT: u16 = 8000;
pub const API_PORT: u16 = 9001;
pub const STATIC_PORT: u16 = 9002;

/// The rack VIP of the L7 tier: backends 0 and 1 (the nginx nodes), a TCP
/// health check on the service port every 300 ms, down after 2 failures.
pub fn l7_vip(address: IpAddr) -> VipSpec {
    VipSpec {
        name: "l7",
        address,
        port: L7_PORT,
        protocol: "tcp",
        hashing: "five-tuple",
        flow_table: true,
        backends: vec![(0, 100), (1, 100)],
        v6_backends: false,
        tcp_check: Some((300, 2)),
    }
}

/// One nginx process in a backend's namespace, stopped when dropped.
pub struct Nginx {
    pub name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx in `host`'s namespace with `http_body` as the inside of
    /// its `http {}` block; files under `dir` (created).
    fn start(host: &Host, name: &str, dir: PathBuf, http_body: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  \
             log_format l7 '$remote_addr $request_uri $status $upstream_addr';\n  \
             access_log {d}/access.log l7;\n{http_body}}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let child = {
            // The child inherits this thread's network namespace.
            let _in = host.ns.enter();
            Command::new("nginx")
                .args(["-c"])
                .arg(&path)
                .args(["-g", "daemon off;"])
                // A process group of its own: `kill` ends the master and
                // every worker it ever forked with one signal.
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting nginx {name}: {e} (is nginx installed? cargo xtask setup)")
                })
        };
        Self {
            name: name.to_string(),
            dir,
            child: Some(child),
        }
    }

    /// The access log so far: `client-address uri status upstream` lines.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Kills the node (SIGKILL: a crash, no graceful close): its whole
    /// process group, the master this process started and its workers, in
    /// one signal. Killing the workers first and the master after raced:
    /// a master that saw its worker die forked a new one before its own
    /// SIGKILL, and that orphan kept the port open and the node healthy
    /// (a CI run whose health check never saw the node down).
    pub fn kill(&mut self) {
        let Some(mut master) = self.child.take() else {
            return;
        };
        // The group's id is the master's pid (`process_group(0)`); it
        // exists while any member lives, the master being our child.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(master.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = master.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The L7 tier and its application servers.
pub struct L7Tier {
    /// nginx on backends 0 and 1.
    pub nodes: Vec<Nginx>,
    /// The API and static pools on backend 2.
    pub apps: Nginx,
}

impl L7Tier {
    /// Starts the application servers on `backends[2]` and the two L7
    /// nodes on `backends[0..2]`; files under `dir_prefix-*`.
    pub fn start(backends: [&Host; 3], dir_prefix: &str) -> Self {
        let app_host = backends[2];
        let app = app_host.v4;
        let apps = Nginx::start(
            app_host,
            "apps",
            PathBuf::from(format!("{dir_prefix}-apps")),
            &format!(
                "  server {{ listen {API_PORT}; location / {{ return 200 \"api-pool $request_uri\\n\"; }} }}\n  \
                 server {{ listen {STATIC_PORT}; location / {{ return 200 \"static-pool $request_uri\\n\"; }} }}\n"
            ),
        );
        let nodes = (0..2)
            .map(|i| {
                let name = format!("l7-{i}");
                Nginx::start(
                    backends[i],
                    &name,
                    PathBuf::from(format!("{dir_prefix}-{name}")),
                    &format!(
                        "  upstream api {{ server {app}:{API_PORT}; }}\n  \
                         upstream static {{ server {app}:{STATIC_PORT}; }}\n  \
                         server {{\n    listen {L7_PORT};\n    add_header X-L7-Node {name} always;\n    \
                         location /api/ {{ proxy_pass http://api; }}\n    \
                         location /static/ {{ proxy_pass http://static; }}\n    \
                         location / {{ return 404; }}\n  }}\n"
                    ),
                )
            })
            .collect();
        let t = Self { nodes, apps };
        t.wait_ready(backends);
        t
    }

    /// Waits until every node and pool accepts connections (nginx binds
    /// asynchronously after the spawn).
    fn wait_ready(&self, backends: [&Host; 3]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let targets = [
            (backends[0], L7_PORT),
            (backends[1], L7_PORT),
            (backends[2], API_PORT),
            (backends[2], STATIC_PORT),
        ];
        for (h, port) in targets {
            let addr = SocketAddr::new(IpAddr::V4(h.v4), port);
            loop {
                let _in = h.ns.enter();
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "nginx on {addr} did not come up"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One answer through the L7 tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The L7 node that served it (`X-L7-Node`).
    pub node: String,
    pub body: String,
}

/// `GET path` from `client` to `target` on a new connection.
pub fn get(client: &Host, target: SocketAddr, path: &str) -> std::io::Result<Answer> {
    let mut s = {
        let _in = client.ns.enter();
        TcpStream::connect_timeout(&target, Duration::from_secs(2))?
    };
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let bad = |what: &str| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {text:?}"))
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let node = head
        .lines()
        .find_map(|l| l.strip_prefix("X-L7-Node: "))
        .ok_or_else(|| bad("no X-L7-Node header"))?
        .to_string();
    Ok(Answer {
        status,
        node,
        body: body.to_string(),
    })
}

/// `println!` that never panics (the demo's output may go to a dead pipe).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `cargo xtask demo --l7`: the rack with xlb (`l2-dsr`) in front of two
/// nginx nodes and their pools; requests by path, the spread over the
/// nodes, the clients' addresses in nginx's logs, then one node killed and
/// the traffic moving to the other. Everything is removed at the end.
pub fn demo(interrupted: &std::sync::atomic::AtomicBool) -> anyhow::Result<()> {
    use std::{collections::BTreeMap, sync::atomic::Ordering, time::Instant};

    use anyhow::{bail, Context};

    use crate::rack::{Rack, RackOptions, VIP4};

    say!("xlb L4 -> L7 demo: clients -> xlb (l2-dsr) -> 2 nginx nodes -> api / static pools");
    let vip: IpAddr = VIP4.parse()?;
    let rack = Rack::start_options(
        &crate::netns::unique_name("demol7"),
        1,
        vec![l7_vip(vip)],
        RackOptions {
            forwarding: vec![("l7", "l2-dsr")],
            ..RackOptions::default()
        },
    );
    let b = &rack.topo.backends;
    let mut tier = L7Tier::start(
        [&b[0].host, &b[1].host, &b[2].host],
        &rack.topo.file("nginx").display().to_string(),
    );
    say!("{}", rack.daemon.cli(&["vip", "list"]).trim_end());
    std::thread::sleep(Duration::from_secs(1));
    let client = &rack.topo.clients[0];
    let target = rack.vip("l7").target();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_pool: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..200 {
        if interrupted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let path = if i % 2 == 0 {
            format!("/api/items/{i}")
        } else {
            format!("/static/img-{i}.png")
        };
        let a = get(client, target, &path).with_context(|| format!("GET {path}"))?;
        if a.status != 200 {
            bail!("GET {path}: status {}", a.status);
        }
        *per_node.entry(a.node).or_default() += 1;
        let pool = a.body.split_whitespace().next().unwrap_or("?").to_string();
        *per_pool.entry(pool).or_default() += 1;
    }
    say!("\n200 requests to http://{target}/api/... and /static/...:");
    say!("  by nginx node (xlb's spread): {per_node:?}");
    say!("  by pool (nginx's routing):    {per_pool:?}");
    for node in &tier.nodes {
        let log = node.access_log();
        say!(
            "  {} access log, first line: {}",
            node.name,
            log.lines().next().unwrap_or("(empty)")
        );
    }
    say!("  (the first field is the client's own address: DSR keeps it)");

    say!("\nkilling nginx l7-0...");
    tier.nodes[0].kill();
    let killed = Instant::now();
    let (mut ok, mut failed, mut last_failure) = (0, 0, None);
    while killed.elapsed() < Duration::from_secs(3) {
        match get(client, target, "/api/after-kill") {
            Ok(a) if a.status == 200 && a.node == "l7-1" => ok += 1,
            _ => {
                failed += 1;
                last_failure = Some(killed.elapsed());
            }
        }
    }
    say!("  3 s of requests after the kill: {ok} answered by l7-1, {failed} refused");
    if let Some(t) = last_failure {
        say!(
            "  the last refusal came {t:.1?} after the kill (new connections to the dead node \
             until the health check saw it); none since"
        );
    }
    say!("{}", rack.daemon.cli(&["vip", "list"]).trim_end());
    drop(tier);
    drop(rack);
    say!("\ndone: the demo rack and its nginx processes are removed.");
    Ok(())
}
