//! The operator's path, driven through the real `xlb` binary: the README's
//! veth walkthrough (run as the script it is, and compared with the README
//! word for word), veth peers that would drop XDP_TX frames, `xlb down` of a
//! daemon on a non-default socket, adoption with a changed XDP mode, a
//! closed stdout, and the CLI's messages.

use std::{
    io::{BufRead, BufReader},
    net::UdpSocket,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lb_userspace::{dataplane::attach::InstancePaths, netdev::driver_stats};
use xlb_tests::{
    clients::Session,
    netns::{unique_name, NetNs},
    privileged::require_root,
    rack::{rack_lock, scenario_rack},
    xlb_process::{xlb, xlb_binary, Daemon},
};

const SCRIPT: &str = "contrib/try-it-on-veth.sh";
const BEGIN: &str = "# >>> README \"Trying it on veth\"";
const END: &str = "# <<< README";
const README_MARKER: &str = "<!-- the commands of contrib/try-it-on-veth.sh -->";

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines between the markers of the script.
fn script_block() -> String {
    let text = repo_file(SCRIPT);
    let start = text
        .find(BEGIN)
        .unwrap_or_else(|| panic!("{SCRIPT} lacks {BEGIN}"));
    let body = &text[start + BEGIN.len()..];
    let end = body
        .find(END)
        .unwrap_or_else(|| panic!("{SCRIPT} lacks {END}"));
    body[..end].trim_matches('\n').to_string()
}

/// The ```sh block that follows the marker in the README.
fn readme_block() -> String {
    let text = repo_file("README.md");
    let at = text
        .find(README_MARKER)
        .unwrap_or_else(|| panic!("README.md lacks {README_MARKER}"));
    let rest = &text[at..];
    let open = rest
        .find("```sh\n")
        .unwrap_or_else(|| panic!("no ```sh block after the marker"));
    let body = &rest[open + 6..];
    let close = body
        .find("\n```")
        .unwrap_or_else(|| panic!("unclosed ```sh block"));
    body[..close].trim_matches('\n').to_string()
}

#[test]
fn the_readme_veth_walkthrough_is_the_script_word_for_word() {
    let (readme, script) = (readme_block(), script_block());
    assert!(
        script.lines().count() > 20,
        "the script's README block is suspiciously short:\n{script}"
    );
    if readme != script {
        let first = readme
            .lines()
            .zip(script.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(readme.lines().count().min(script.lines().count()));
        panic!(
            "README.md's veth walkthrough and {SCRIPT} differ from line {} on:\nREADME: {:?}\nscript: {:?}",
            first + 1,
            readme.lines().nth(first),
            script.lines().nth(first)
        );
    }
}

#[test]
fn the_readme_veth_walkthrough_runs_on_fresh_namespaces() {
    if !require_root("readme_walkthrough") {
        return;
    }
    let _l = rack_lock();
    // Removes leftovers of crashed runs before the script creates its own.
    xlb_tests::leftovers::remove_stale_once();
    let prefix = unique_name("try");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("timeout")
        .args(["180", "bash", SCRIPT, &prefix])
        .current_dir(&root)
        .env("XLB", xlb_binary())
        .env_remove("XLB_SOCKET")
        .env_remove("XLB_INSTANCE")
        .output()
        .unwrap_or_else(|e| panic!("running {SCRIPT}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{SCRIPT} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for needle in [
        "has no native XDP program",
        "attached xlb_pass to lb (native mode)",
        "backend b0",
        "backend b1",
        "stopped the xlb daemon of instance",
        "try-it-on-veth: OK",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("WARNING"),
        "xlb stats warned once the peer had its program:\n{stdout}"
    );
    for h in ["sw", "c0", "lb", "b0", "b1"] {
        assert!(
            !Path::new(&format!("/var/run/netns/{prefix}-{h}")).exists(),
            "the script left namespace {prefix}-{h}"
        );
    }
    assert!(!Path::new(&format!("/sys/fs/bpf/xlb/{prefix}")).exists());
}

#[test]
fn an_unreachable_daemon_error_names_socket_and_xlb_socket() {
    let out = Command::new(xlb_binary())
        .args(["vip", "list", "--socket", "/nonexistent/xlb.sock"])
        .env_remove("XLB_SOCKET")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/xlb.sock")
            && err.contains("--socket")
            && err.contains("XLB_SOCKET"),
        "{err}"
    );
}

/// A balancer namespace whose eth0 is a veth to `p` in a second namespace
/// (which also hosts the one backend), and a config for it.
struct VethPair {
    lb: NetNs,
    peer: NetNs,
    instance: String,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

const LB_ADDR: &str = "10.79.0.2";
const PEER_ADDR: &str = "10.79.0.1";
const VIP: &str = "10.79.100.1";
const VIP_PORT: u16 = 5353;

impl VethPair {
    fn new(tag: &str) -> Self {
        let name = unique_name(tag);
        let lb = NetNs::create(&format!("{name}-lb"));
        let peer = NetNs::create(&format!("{name}-p"));
        lb.ip(&format!(
            "link add eth0 type veth peer name p netns {}",
            peer.name()
        ));
        lb.ip(&format!("addr add {LB_ADDR}/24 dev eth0"));
        lb.ip("link set eth0 up");
        peer.ip(&format!("addr add {PEER_ADDR}/24 dev p"));
        peer.ip("link set p up");
        peer.ip(&format!("route add {VIP}/32 via {LB_ADDR}"));
        lb.sysctl("net.ipv4.conf.all.forwarding=1");
        lb.sysctl("net.ipv4.conf.eth0.forwarding=1");
        let dir = std::env::temp_dir();
        let p = Self {
            instance: format!("{name}-lb"),
            socket: PathBuf::from(format!("/run/xlb/{name}.sock")),
            config: dir.join(format!("{name}.toml")),
            log: dir.join(format!("{name}.log")),
            lb,
            peer,
        };
        p.write_config();
        // The balancer knows the backend's MAC: its packets leave by XDP_TX
        // from the first one on.
        p.lb.exec(&format!("ping -c 1 -W 2 {PEER_ADDR}"));
        p
    }

    fn write_config(&self) {
        let text = format!(
            "[global]\ninstance = \"{}\"\ninterfaces = [\"eth0\"]\nouter_source_v4 = \"{LB_ADDR}\"\n\
             api_socket = \"{}\"\nmax_vips = 4\nmax_backends = 16\ntable_size = 251\n\
             flow_table_size = 1024\n\n[[vip]]\nname = \"dns\"\naddress = \"{VIP}\"\nport = {VIP_PORT}\n\
             protocol = \"udp\"\n  [[vip.backend]]\n  address = \"{PEER_ADDR}\"\n",
            self.instance,
            self.socket.display()
        );
        std::fs::write(&self.config, text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn start(&self, run_args: &[&str]) -> Daemon {
        let _ = std::fs::remove_file(&self.log);
        Daemon::start_with_args(
            self.lb.name(),
            &self.config,
            &self.instance,
            &self.socket,
            &self.log,
            run_args,
        )
    }

    fn pins(&self) -> InstancePaths {
        InstancePaths::new(&self.instance)
    }

    /// `xlb ARGS` in the balancer's namespace.
    fn xlb(&self, args: &[&str]) -> std::process::Output {
        xlb(self.lb.name(), args)
    }

    /// UDP datagrams from the peer namespace to the VIP.
    fn send_to_vip(&self, n: usize) {
        let _in = self.peer.enter();
        let s = UdpSocket::bind(format!("{PEER_ADDR}:0")).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..n {
            let _ = s.send_to(format!("ping {i}").as_bytes(), (VIP, VIP_PORT));
        }
    }

    /// The balancer's eth0 driver counters.
    fn xdp_tx_errors(&self) -> u64 {
        let _in = self.lb.enter();
        driver_stats::xdp_errors("eth0")
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|(n, _)| n == "xdp_tx_errors")
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("veth has no xdp_tx_errors counter"))
    }

    fn peer_has_xdp(&self) -> bool {
        self.peer.ip("link show p").contains(" xdp")
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
        let _ = lb_userspace::dataplane::attach::remove_instance(&self.pins());
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_veth_peer_without_xdp_is_refused_reported_counted_and_fixed() {
    if !require_root("veth_peer") {
        return;
    }
    let _l = rack_lock();
    let pair = VethPair::new("vpeer");
    let fix = format!(
        "nsenter --net=/var/run/netns/{} xlb --instance {} pass attach --interface p",
        pair.peer.name(),
        pair.instance
    );

    // --veth-peer refuse: nothing happens, and the message has the fix.
    let cfg = pair.config.to_string_lossy().into_owned();
    let out = pair.xlb(&["run", "--config", &cfg, "--veth-peer", "refuse"]);
    assert!(!out.status.success(), "xlb run must refuse");
    let err = stderr_of(&out);
    assert!(
        err.contains("eth0 is a veth whose peer p") && err.contains(&fix),
        "{err}"
    );
    assert!(!pair.pins().root.exists(), "a refused start pinned nothing");

    // Default (warn): an error in the log with the fix; the frames the
    // driver drops show in the counters, `xlb stats`, metrics and log.
    {
        let d = pair.start(&[]);
        assert!(d.log_text().contains(&fix), "{}", d.log_text());
        let before = pair.xdp_tx_errors();
        pair.send_to_vip(200);
        wait_for("xdp_tx_errors to grow", Duration::from_secs(5), || {
            pair.xdp_tx_errors() >= before + 150
        });
        let stats = d.cli(&["stats"]);
        assert!(
            stats.contains("eth0:xdp_tx_errors=") && stats.contains("WARNING"),
            "{stats}"
        );
        let metrics = pair.lb.exec("curl -sf http://127.0.0.1:9431/metrics");
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    "xlb_interface_xdp_errors_total{interface=\"eth0\",counter=\"xdp_tx_errors\"}",
                )
            })
            .unwrap_or_else(|| panic!("no driver metric:\n{metrics}"));
        let value: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(value >= 150, "{line}");
        wait_for("the daemon's warning", Duration::from_secs(12), || {
            d.log_text().contains("the driver dropped")
        });
    } // the daemon is stopped and the instance taken down

    // --veth-peer attach: xlb_pass goes on the peer, in its namespace, and
    // the driver stops dropping; `xlb down` takes it away with the rest.
    {
        let d = pair.start(&["--veth-peer", "attach"]);
        assert!(pair.peer_has_xdp(), "{}", d.log_text());
        assert!(
            pair.pins().pass_link("peer-of-eth0").exists(),
            "the peer's link is pinned with the instance"
        );
        let before = pair.xdp_tx_errors();
        let sent = |d: &Daemon| -> u64 {
            let s = xlb_tests::stats_json::stats(d);
            xlb_tests::stats_json::verdict(&s, lb_common::Verdict::Tx)
        };
        let tx_before = sent(&d);
        pair.send_to_vip(200);
        wait_for("the tx verdicts", Duration::from_secs(5), || {
            sent(&d) >= tx_before + 150
        });
        assert_eq!(
            pair.xdp_tx_errors(),
            before,
            "frames dropped with xlb_pass on the peer"
        );
        assert!(!d.cli(&["stats"]).contains("WARNING"));
    }
    assert!(!pair.peer_has_xdp(), "xlb down left xlb_pass on the peer");

    // By hand: `xlb pass attach` in the peer's namespace, and detach.
    let pass = |args: &[&str]| xlb(pair.peer.name(), args);
    let out = pass(&[
        "--instance",
        &pair.instance,
        "pass",
        "attach",
        "--interface",
        "p",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(pair.peer_has_xdp());
    let out = pass(&[
        "pass",
        "detach",
        "--interface",
        "p",
        "--instance",
        &pair.instance,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!pair.peer_has_xdp());
    // Under `ip netns exec` the pin would vanish with the command: refused.
    let out = Command::new("ip")
        .args(["netns", "exec", pair.peer.name()])
        .arg(xlb_binary())
        .args([
            "--instance",
            &pair.instance,
            "pass",
            "attach",
            "--interface",
            "p",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !out.status.success(),
        "pass attach under ip netns exec must fail"
    );
    assert!(
        stderr_of(&out).contains("private mount namespace"),
        "{}",
        stderr_of(&out)
    );
    assert!(!pair.peer_has_xdp());
}

fn is_running(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by the test) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}

#[test]
fn xlb_down_stops_the_daemon_of_its_instance_whatever_its_socket() {
    if !require_root("down_socket") {
        return;
    }
    let _l = rack_lock();
    let pair = VethPair::new("down");
    let mut d = pair.start(&[]);
    let sock = d.socket.to_string_lossy().into_owned();
    let pid = d.pid().unwrap_or_else(|| panic!("no pid"));

    // The socket as a global flag before the subcommand, and from XLB_SOCKET.
    assert!(pair
        .xlb(&["--socket", &sock, "vip", "list"])
        .status
        .success());
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", pair.lb.name()))
        .arg("--")
        .arg(xlb_binary())
        .args(["vip", "list"])
        .env("XLB_SOCKET", &sock)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "XLB_SOCKET: {}", stderr_of(&out));

    // The daemon at --socket runs another instance: refused, nothing changes.
    let out = pair.xlb(&["down", "--instance", "someother", "--socket", &sock]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("runs instance"),
        "{}",
        stderr_of(&out)
    );
    assert!(is_running(pid) && pair.pins().root.exists());

    // A daemon that does not exit (stopped): `down` fails and changes nothing.
    let stop = |sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    stop(nix::sys::signal::Signal::SIGSTOP);
    let out = pair.xlb(&["--instance", &pair.instance, "down", "--wait", "1"]);
    assert!(
        !out.status.success(),
        "down must fail when the daemon does not exit"
    );
    assert!(
        stderr_of(&out).contains("did not exit")
            && stderr_of(&out).contains("nothing was detached"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        pair.pins().link("eth0").exists(),
        "pins removed by a failed down"
    );
    assert!(pair.lb.ip("link show eth0").contains(" xdp"));
    stop(nix::sys::signal::Signal::SIGCONT);
    wait_for("the pending SIGTERM", Duration::from_secs(10), || {
        !is_running(pid)
    });

    // Found by its pinned maps, with no socket given: stopped, then down.
    d.restart(&pair.config);
    let pid = d.pid().unwrap_or_else(|| panic!("no pid"));
    let out = pair.xlb(&["down", "--instance", &pair.instance]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    assert!(
        text.contains(&format!(
            "stopped the xlb daemon of instance {} (pid {pid})",
            pair.instance
        )),
        "{text}"
    );
    assert!(
        !is_running(pid),
        "xlb down reported success, the daemon runs on"
    );
    assert!(!pair.pins().root.exists());
    assert!(!pair.lb.ip("link show eth0").contains(" xdp"));
    assert!(!d.socket.exists(), "the daemon's socket outlived it");
}

#[test]
fn adopting_pins_attached_in_another_xdp_mode_is_refused() {
    if !require_root("adopt_mode") {
        return;
    }
    let _l = rack_lock();
    let pair = VethPair::new("mode");
    let cfg = pair.config.to_string_lossy().into_owned();
    for (first, second, pinned) in [("native", "skb", "native"), ("skb", "native", "generic")] {
        let mut d = pair.start(&["--xdp-mode", first]);
        d.stop(); // SIGTERM: the data plane stays, pinned
        assert!(pair.pins().link("eth0").exists());
        let shown = pair.lb.ip("link show eth0");
        // Bounded: a run that is not refused would serve until stopped.
        let out = Command::new("timeout")
            .args(["20", "nsenter"])
            .arg(format!("--net=/var/run/netns/{}", pair.lb.name()))
            .arg("--")
            .arg(xlb_binary())
            .args(["run", "--config", &cfg, "--xdp-mode", second])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !out.status.success(),
            "--xdp-mode {second} over {first} pins must be refused"
        );
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("attached in {pinned} mode"))
                && err.contains(&format!("--xdp-mode {first}")),
            "{err}"
        );
        assert_eq!(
            pair.lb.ip("link show eth0"),
            shown,
            "the refused run changed the attachment"
        );
        // The same mode adopts as before.
        d.restart(&pair.config);
        assert!(
            d.log_text().contains("adopting pinned state"),
            "{}",
            d.log_text()
        );
        drop(d); // down
    }
}

/// `xlb ARGS` in `ns` with a stdout whose reader is gone.
fn with_closed_stdout(ns: &str, args: &[&str]) -> std::process::Output {
    let (read, write) = nix::unistd::pipe().unwrap_or_else(|e| panic!("{e}"));
    drop(read);
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{ns}"))
        .arg("--")
        .arg(xlb_binary())
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_command_ends_quietly_on_a_closed_stdout() {
    if !require_root("closed_stdout") {
        return;
    }
    let _l = rack_lock();
    let pair = VethPair::new("epipe");
    let d = pair.start(&[]);
    let sock = d.socket.to_string_lossy().into_owned();
    let port = VIP_PORT.to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["vip", "list"],
        vec!["vip", "list", "--json"],
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["config", "dump"],
        vec!["explain", PEER_ADDR, "4000", VIP, &port, "udp"],
        vec!["backend", "weight", "dns", PEER_ADDR, "50"],
        vec!["--help"],
    ];
    for args in commands {
        let mut full = args.clone();
        full.extend(["--socket", &sock]);
        let out = with_closed_stdout(pair.lb.name(), &full);
        let err = stderr_of(&out);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "xlb {}: {} {err}",
            args.join(" "),
            out.status
        );
    }
}

#[test]
fn stats_show_draining_backends_and_mapped_addresses_are_refused() {
    let Some((_l, rack)) = scenario_rack("drain", 1) else {
        return;
    };
    let target = rack.vip("web").target();
    let mut session =
        Session::open(&rack.topo.clients[0], target, None).unwrap_or_else(|e| panic!("{e}"));
    let i: usize = session
        .backend
        .trim_start_matches("backend-")
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", session.backend));
    let addr = rack.backend_addr("web", i).to_string();
    rack.daemon.cli(&["backend", "drain", "web", &addr]);
    let packets = || -> u64 {
        let s = xlb_tests::stats_json::stats(&rack.daemon);
        s.vips
            .iter()
            .find(|v| v.vip == "web")
            .and_then(|v| v.backends.iter().find(|b| b.backend == addr))
            .map(|b| b.packets)
            .unwrap_or_else(|| panic!("{addr} is missing from xlb stats --json"))
    };
    let before = packets();
    for n in 0..20 {
        session
            .ping(&format!("still here {n}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let after = packets();
    assert!(
        after >= before + 20,
        "draining backend's counters: {before} -> {after}"
    );
    let text = rack.daemon.cli(&["stats"]);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&addr))
        .unwrap_or_else(|| panic!("no row for {addr}:\n{text}"));
    assert!(
        row.contains("draining")
            && row.split_whitespace().nth(1) == Some(after.to_string().as_str()),
        "{row}"
    );

    // IPv4-mapped IPv6 addresses never match a packet: refused, clearly.
    let sock = rack.daemon.socket.to_string_lossy().into_owned();
    for args in [
        vec![
            "vip",
            "add",
            "--address",
            "::ffff:10.200.0.9",
            "--port",
            "80",
        ],
        vec!["backend", "add", "web", "::ffff:10.10.0.100"],
    ] {
        let mut full = args.clone();
        full.extend(["--socket", &sock]);
        let out = xlb(&rack.topo.balancer.name, &full);
        assert!(!out.status.success(), "{args:?} accepted");
        let err = stderr_of(&out);
        assert!(err.contains("IPv4-mapped"), "{args:?}: {err}");
    }
}

#[test]
fn the_demo_removes_its_rack_when_ctrl_c_also_kills_its_output_pipe() {
    if !require_root("demo_ctrl_c") {
        return;
    }
    let _l = rack_lock();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlb-demo"))
        .arg("--keep")
        .env("XLB_BINARY", xlb_binary())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting xlb-demo: {e}"));
    let pid = child.id();
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the demo ended before keeping its rack up"))
            .unwrap_or_else(|e| panic!("{e}"));
        if line.contains("The rack stays up until you press Ctrl-C") {
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not come up");
    }
    let prefix = format!("xlb-demo-{pid}");
    assert!(
        std::fs::read_dir("/var/run/netns")
            .map(|rd| rd
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix)))
            .unwrap_or(false),
        "the demo's rack is not up"
    );
    // `| tee log` dies with the Ctrl-C: the pipe closes, and the terminal
    // sends SIGINT to the whole process group.
    drop(lines);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<String> = std::fs::read_dir("/var/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "the demo left {left:?}");
    let pins: Vec<String> = std::fs::read_dir("/sys/fs/bpf/xlb")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(pins.is_empty(), "the demo left pins {pins:?}");
}
