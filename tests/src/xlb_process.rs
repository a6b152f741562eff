//! The real `xlb` binary, as operators run it: built once per test process,
//! started inside the balancer's namespace, stopped by PID. Drop stops the
//! daemon (SIGTERM, then SIGKILL) and runs `xlb down` for its instance.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Path of the `xlb` binary: `$XLB_BINARY` if set (the demo passes its
/// release build), else built (debug) on first use with the cargo that runs
/// the tests.
pub fn xlb_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("XLB_BINARY") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Same profile as the caller: tests use a debug xlb, an optimised
        // benchmark binary an optimised one.
        let mut args = vec![
            "build",
            "--quiet",
            "-p",
            "lb-userspace",
            "--bin",
            "xlb",
            "--message-format=json",
        ];
        if !cfg!(debug_assertions) {
            args.push("--release");
        }
        let out = Command::new(&cargo)
            .args(&args)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {cargo} build for xlb: {e}"));
        assert!(out.status.success(), "building the xlb binary failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"executable\"") && l.contains("\"xlb\""))
            .filter_map(|l| {
                let i = l.find("\"executable\":\"")? + 14;
                let j = l[i..].find('"')?;
                Some(PathBuf::from(&l[i..i + j]))
            })
            .next_back()
            .unwrap_or_else(|| panic!("cargo did not report the xlb executable"))
    })
}

/// `xlb` inside network namespace `ns`, and only that: `ip netns exec` would
/// also give it a private mount namespace with a fresh /sys, where its bpffs
/// pins would vanish when it exits.
fn in_netns(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{ns}"))
        .arg("--")
        .arg(xlb_binary());
    c
}

/// Runs `xlb ARGS` in namespace `ns` to completion.
pub fn xlb(ns: &str, args: &[&str]) -> Output {
    in_netns(ns)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running xlb {}: {e}", args.join(" ")))
}

/// Like [`xlb`], panicking with its output unless it succeeds; returns stdout.
pub fn xlb_ok(ns: &str, args: &[&str]) -> String {
    let out = xlb(ns, args);
    assert!(
        out.status.success(),
        "xlb {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How `xlb run` is started beyond its config: what the standard rack
/// leaves empty.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// A command that runs xlb, e.g. `["setpriv", "--bounding-set=...",
    /// "--"]` (placed between `nsenter` and the xlb binary).
    pub wrapper: Vec<String>,
    /// Global options before `run`, e.g. `["--log-format", "json"]`.
    pub args: Vec<String>,
    /// `xlb run` options after the config (`--veth-peer attach`,
    /// `--xdp-mode skb`).
    pub run_args: Vec<String>,
    /// Extra environment, e.g. `NOTIFY_SOCKET`.
    pub env: Vec<(String, String)>,
}

/// A running `xlb run`.
pub struct Daemon {
    child: Option<Child>,
    ns: String,
    pub instance: String,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Used by every (re)start; a test may change it before `restart`.
    pub launch: Launch,
}

impl Daemon {
    /// Starts `xlb run --config CONFIG` in `ns` and waits until its API answers.
    pub fn start(ns: &str, config: &Path, instance: &str, socket: &Path, log: &Path) -> Self {
        Self::start_with(ns, config, instance, socket, log, Launch::default())
    }

    /// Like [`start`](Self::start), with more `xlb run` options.
    pub fn start_with_args(
        ns: &str,
        config: &Path,
        instance: &str,
        socket: &Path,
        log: &Path,
        run_args: &[&str],
    ) -> Self {
        let launch = Launch {
            run_args: run_args.iter().map(|a| a.to_string()).collect(),
            ..Launch::default()
        };
        Self::start_with(ns, config, instance, socket, log, launch)
    }

    /// Like [`start`](Self::start), started as `launch` says.
    pub fn start_with(
        ns: &str,
        config: &Path,
        instance: &str,
        socket: &Path,
        log: &Path,
        launch: Launch,
    ) -> Self {
        let mut d = Self {
            child: None,
            ns: ns.into(),
            instance: instance.into(),
            socket: socket.into(),
            log: log.into(),
            launch,
        };
        d.spawn(config);
        d
    }

    fn spawn(&mut self, config: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("log file {}: {e}", self.log.display()));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", self.ns))
            .arg("--")
            .args(&self.launch.wrapper)
            .arg(xlb_binary())
            .args(["--log", "info"])
            .args(&self.launch.args)
            .args(["run", "--config"])
            .arg(config)
            .args(&self.launch.run_args)
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(log)
            .stderr(err);
        // If the test process dies, so does its daemon.
        use std::os::unix::process::CommandExt;
        // The daemon must not inherit a caller's CPU pinning (the benchmark
        // pins itself): it uses every core, e.g. to build tables in parallel.
        // SAFETY: prctl and sched_setaffinity are async-signal-safe and only
        // affect the child; the CPU set is a plain bitmask on the stack.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                let mut all: libc::cpu_set_t = std::mem::zeroed();
                for cpu in 0..libc::CPU_SETSIZE as usize {
                    libc::CPU_SET(cpu, &mut all);
                }
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &all);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting xlb run: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        // Generous: a daemon with thousands of VIPs builds their tables first.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("xlb run exited early ({status}); log:\n{}", self.log_text());
                }
            }
            let out = xlb(
                &self.ns,
                &["vip", "list", "--socket", &self.socket.to_string_lossy()],
            );
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "xlb run did not answer on {} within 180 s; log:\n{}",
                self.socket.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `xlb <args> --socket <ours>` for API commands.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut v: Vec<&str> = args.to_vec();
        let s = self.socket.to_string_lossy().into_owned();
        v.extend(["--socket", &s]);
        xlb_ok(&self.ns, &v)
    }

    /// Kills the daemon with SIGKILL (a crash), leaving its pins.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM (clean exit, pins stay).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same config (after `kill`/`stop`).
    pub fn restart(&mut self, config: &Path) {
        self.stop();
        self.spawn(config);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let out = xlb(
            &self.ns,
            &[
                "down",
                "--instance",
                &self.instance,
                "--socket",
                &self.socket.to_string_lossy(),
            ],
        );
        if !out.status.success() {
            eprintln!(
                "warning: xlb down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A daemon killed with SIGKILL leaves its socket file behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}
