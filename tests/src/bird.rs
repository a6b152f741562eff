//! BIRD 2 (Debian's `bird2`) in a network namespace: a config written for
//! the role (the router that installs ECMP routes, or a balancer node that
//! announces xlb's table), one process in the foreground with its own
//! config, control socket and pid file, killed by PID on drop.
//!
//! The timers are the ones measured to make a fleet converge in seconds
//! (shared/TOOLCHAIN.md): BFD at 100 ms x 3 so a dead node leaves the ECMP
//! route in about 300 ms, and BGP error/connect timers short enough that a
//! node that comes back is accepted within seconds, not after a 60 s
//! "startup delay".

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The BGP timers every session uses (both sides).
const SESSION_TIMERS: &str = "connect delay time 1; connect retry time 5; \
     error wait time 1, 10; error forget time 10;";

/// BFD on `iface`: a dead peer is declared down after 3 x 100 ms.
fn bfd(iface: &str) -> String {
    format!(
        "protocol bfd {{\n  interface \"{iface}\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};\n}}\n"
    )
}

/// A BGP peer of a session.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Protocol name in the config (and in `birdc show protocols`).
    pub name: String,
    pub address: Ipv4Addr,
    pub asn: u32,
}

/// The router: learns the VIP routes of every node over eBGP and installs
/// them in its main table as one multipath route per VIP (`merge paths`).
pub fn router_config(router_id: Ipv4Addr, asn: u32, iface: &str, nodes: &[Peer]) -> String {
    let mut s = format!(
        "router id {router_id};\nlog stderr all;\nprotocol device {{ }}\n\
         protocol kernel {{ merge paths on; ipv4 {{ import none; export all; }}; }}\n{}",
        bfd(iface)
    );
    for n in nodes {
        let _ = writeln!(
            s,
            "protocol bgp {} {{\n  local {router_id} as {asn}; neighbor {} as {};\n  {SESSION_TIMERS}\n  bfd on;\n  ipv4 {{ import all; export none; }};\n}}",
            n.name, n.address, n.asn
        );
    }
    s
}

/// A balancer node: learns the routes xlb keeps in `table` (kernel protocol
/// `xlb`, `learn`) and announces exactly those to the router.
pub fn node_config(address: Ipv4Addr, asn: u32, iface: &str, table: u32, router: &Peer) -> String {
    format!(
        "router id {address};\nlog stderr all;\nprotocol device {{ }}\n\
         protocol kernel xlb {{ kernel table {table}; learn; ipv4 {{ import all; export none; }}; }}\n{}\
         protocol bgp {} {{\n  local {address} as {asn}; neighbor {} as {};\n  {SESSION_TIMERS}\n  bfd on;\n  ipv4 {{ import none; export where proto = \"xlb\"; }};\n}}\n",
        bfd(iface),
        router.name,
        router.address,
        router.asn
    )
}

/// One running `bird`.
pub struct Bird {
    child: Option<Child>,
    ns: String,
    config: PathBuf,
    pub socket: PathBuf,
    pid_file: PathBuf,
    pub log: PathBuf,
}

impl Bird {
    /// Writes `config` to `<files>.conf` and starts BIRD in namespace `ns`
    /// (`nsenter --net`), with `<files>.ctl` and `<files>.pid` of its own;
    /// waits until its control socket answers.
    pub fn start(ns: &str, files: &Path, config: &str) -> Self {
        let with = |ext: &str| {
            let mut p = files.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let mut b = Self {
            child: None,
            ns: ns.to_string(),
            config: with(".conf"),
            socket: with(".ctl"),
            pid_file: with(".pid"),
            log: with(".log"),
        };
        std::fs::write(&b.config, config)
            .unwrap_or_else(|e| panic!("writing {}: {e}", b.config.display()));
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", self.ns))
            .args(["--", "bird", "-f", "-c"])
            .arg(&self.config)
            .arg("-s")
            .arg(&self.socket)
            .arg("-P")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // If the test process dies, so does BIRD (nsenter execs it).
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and only affects the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting bird in {}: {e} (is bird2 installed?)", self.ns));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.birdc("show status").is_none() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "bird in {} exited ({status}); log:\n{}",
                    self.ns,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "bird in {} did not answer on {} within 10 s; log:\n{}",
                self.ns,
                self.socket.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `birdc -s <socket> <command>`: its output, `None` when BIRD does not
    /// answer.
    pub fn birdc(&self, command: &str) -> Option<String> {
        let mut args = vec!["-s".to_string(), self.socket.to_string_lossy().into_owned()];
        args.extend(command.split_whitespace().map(str::to_string));
        let out = Command::new("birdc").args(&args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether BGP protocol `name` is Established.
    pub fn established(&self, name: &str) -> bool {
        self.birdc(&format!("show protocols {name}"))
            .is_some_and(|t| {
                t.lines()
                    .any(|l| l.starts_with(name) && l.contains("Established"))
            })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crashing node: no BGP notification, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts BIRD again with the same config (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
        for p in [&self.socket, &self.pid_file] {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_every_session_with_bfd_and_the_table() {
        let node = |i: u8| Peer {
            name: format!("n{i}"),
            address: Ipv4Addr::new(10, 20, 0, 11 + i),
            asn: 65001,
        };
        let r = router_config(
            Ipv4Addr::new(10, 20, 0, 1),
            65000,
            "xlb0",
            &[node(0), node(1)],
        );
        assert!(r.contains("merge paths on"), "{r}");
        assert_eq!(r.matches("bfd on;").count(), 2, "{r}");
        assert!(r.contains("protocol bgp n1 {"), "{r}");
        assert!(r.contains("neighbor 10.20.0.12 as 65001"), "{r}");
        assert!(r.contains("interface \"xlb0\""), "{r}");
        let router = Peer {
            name: "uplink".into(),
            address: Ipv4Addr::new(10, 20, 0, 1),
            asn: 65000,
        };
        let n = node_config(Ipv4Addr::new(10, 20, 0, 11), 65001, "xlb0", 4242, &router);
        assert!(n.contains("kernel table 4242; learn;"), "{n}");
        assert!(n.contains("export where proto = \"xlb\""), "{n}");
        assert!(n.contains("bfd on;") && n.contains("protocol bfd"), "{n}");
    }
}
