//! Part 3 of `xlb-bench`: the control plane's costs.
//!
//! - Maglev table build time (pure computation, release build), for
//!   M = 65537 with 10, 100, 1000 backends and M = 131071 with 1000.
//! - Weight change to live table: a real `xlb run` serves a VIP with 100
//!   backends and a 65537-slot table; the clock starts when the API request is
//!   sent and stops when the whole new table is visible in the pinned map,
//!   watched through a shared mapping of it (no syscall per slot, so watching
//!   does not slow the writer).
//! - Scale: a daemon with 1,000 VIPs x 100 backends (quick: 100 x 20): its
//!   initial reconcile time (maps filled from the config), a no-op reload, its
//!   resident memory and the kernel memory of its maps.
//! - The same as a curve over [`CURVE_VIPS`] VIPs x 100 backends (quick: the
//!   two smallest points; 4,000 VIPs take a daemon of over 1 GiB and half a
//!   minute of reconcile, too much for CI's smoke run). `max_vips` is the VIP count rounded up to a
//!   power of two (at least 64) while the tables fit the config's 1 GiB cap
//!   (`MAX_TABLE_MEMORY`), else the VIP count itself: 4,000 VIPs x 65,537
//!   slots x 4 bytes is 1,000 MiB, 4,096 would be over the cap.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use lb_userspace::{
    config::limits::{MAX_TABLE_MEMORY, TABLE_SLOT_BYTES},
    daemon::controller::VipStatus,
    dataplane::{attach::InstancePaths, MaglevTable},
    maglev::{self, MaglevBackend},
    stats::StatsSnapshot,
};

use super::{stats::median, Report, Table};
use crate::{
    http,
    netns::{unique_name, NetNs},
    xlb_process::Daemon,
};

const TABLE_SIZE: u32 = 65537;
/// (M, N) of the Maglev builds timed.
const MAGLEV_SIZES: [(u32, usize); 4] = [
    (TABLE_SIZE, 10),
    (TABLE_SIZE, 100),
    (TABLE_SIZE, 1000),
    (131_071, 1000),
];

/// VIP counts of the control-plane curve (100 backends each).
pub const CURVE_VIPS: [usize; 4] = [1, 100, 1_000, 4_000];
/// Backends per VIP on the curve.
pub const CURVE_BACKENDS: usize = 100;

/// Keys every run of this part files (CI checks them after `--quick`): a
/// build time per entry of `MAGLEV_SIZES`, the headline figures, and both
/// ends of the curve.
pub const REQUIRED_KEYS: &[&str] = &[
    "control.curve.1.reconcile_ms",
    "control.curve.1.daemon_rss_mib",
    "control.curve.100.reconcile_ms",
    "control.curve.100.daemon_rss_mib",
    "control.maglev_build_ms.65537_10",
    "control.maglev_build_ms.65537_100",
    "control.maglev_build_ms.65537_1000",
    "control.maglev_build_ms.131071_1000",
    "control.weight_change_live_ms",
    "control.daemon_rss_mib",
];

#[derive(Debug, Clone)]
pub struct ControlResults {
    /// (M, N, milliseconds): median of the build times.
    pub maglev_build_ms: Vec<(u32, usize, f64)>,
    /// Median and max over the weight changes, milliseconds.
    pub weight_change_live_ms: f64,
    pub weight_change_live_max_ms: f64,
    pub weight_changes: usize,
    pub scale_vips: usize,
    pub scale_backends_per_vip: usize,
    pub reconcile_ms: f64,
    pub noop_reload_ms: f64,
    /// Resident memory, including the shared mapping of the table map.
    pub daemon_rss_mib: f64,
    /// Anonymous resident memory: the daemon's own heap.
    pub daemon_heap_mib: f64,
    pub map_memory_mib: f64,
    /// (VIPs, the daemon's figures) over [`CURVE_VIPS`], or why a point failed.
    pub curve: Vec<(usize, Result<CurvePoint, String>)>,
}

/// One point of the control-plane curve.
#[derive(Debug, Clone)]
pub struct CurvePoint {
    pub max_vips: usize,
    pub reconcile_ms: f64,
    pub noop_reload_ms: f64,
    pub rss_mib: f64,
    pub heap_mib: f64,
    pub map_mib: f64,
}

pub fn run(quick: bool) -> Result<ControlResults> {
    let maglev_build_ms = maglev_builds(if quick { 1 } else { 5 })?;
    let weight = weight_change(if quick { 5 } else { 30 })?;
    let (vips, per_vip) = if quick { (100, 20) } else { (1000, 100) };
    let points: Vec<usize> = if quick {
        CURVE_VIPS[..2].to_vec()
    } else {
        CURVE_VIPS.to_vec()
    };
    let mut curve = Vec::new();
    for n in points {
        eprintln!("control: curve, {n} VIPs x {CURVE_BACKENDS} backends");
        let r = scale(n, CURVE_BACKENDS).map_err(|e| format!("{e:#}"));
        curve.push((n, r));
    }
    // The headline scale point is a point of the curve in full runs.
    let scale = match curve
        .iter()
        .find(|(n, _)| *n == vips && per_vip == CURVE_BACKENDS)
    {
        Some((_, Ok(p))) => p.clone(),
        _ => scale(vips, per_vip)?,
    };
    Ok(ControlResults {
        curve,
        maglev_build_ms,
        weight_change_live_ms: weight.0,
        weight_change_live_max_ms: weight.1,
        weight_changes: weight.2,
        scale_vips: vips,
        scale_backends_per_vip: per_vip,
        reconcile_ms: scale.reconcile_ms,
        noop_reload_ms: scale.noop_reload_ms,
        daemon_rss_mib: scale.rss_mib,
        daemon_heap_mib: scale.heap_mib,
        map_memory_mib: scale.map_mib,
    })
}

/// `max_vips` for `vips` VIPs: a power of two (at least 64) when the tables
/// then fit the config's cap, else exactly `vips`.
pub fn max_vips_for(vips: usize) -> usize {
    let pow2 = vips.next_power_of_two().max(64);
    let bytes = |n: usize| n as u64 * u64::from(TABLE_SIZE) * TABLE_SLOT_BYTES;
    if bytes(pow2) <= MAX_TABLE_MEMORY {
        pow2
    } else {
        vips
    }
}

impl ControlResults {
    pub fn record(&self, r: &mut Report) {
        for (m, n, ms) in &self.maglev_build_ms {
            r.insert(&format!("control.maglev_build_ms.{m}_{n}"), *ms);
        }
        r.insert("control.weight_change_live_ms", self.weight_change_live_ms);
        r.insert(
            "control.weight_change_live_max_ms",
            self.weight_change_live_max_ms,
        );
        r.insert("control.weight_changes", self.weight_changes);
        r.insert("control.scale.vips", self.scale_vips);
        r.insert(
            "control.scale.backends_per_vip",
            self.scale_backends_per_vip,
        );
        r.insert("control.reconcile_ms", self.reconcile_ms);
        r.insert("control.noop_reload_ms", self.noop_reload_ms);
        r.insert("control.daemon_rss_mib", self.daemon_rss_mib);
        r.insert("control.daemon_heap_mib", self.daemon_heap_mib);
        r.insert("control.map_memory_mib", self.map_memory_mib);
        r.insert("control.curve.backends_per_vip", CURVE_BACKENDS);
        r.insert("control.curve.table_size", TABLE_SIZE);
        for (n, p) in &self.curve {
            let k = |f: &str| format!("control.curve.{n}.{f}");
            match p {
                Ok(p) => {
                    r.insert(&k("max_vips"), p.max_vips);
                    r.insert(&k("reconcile_ms"), p.reconcile_ms);
                    r.insert(&k("noop_reload_ms"), p.noop_reload_ms);
                    r.insert(&k("daemon_rss_mib"), p.rss_mib);
                    r.insert(&k("daemon_heap_mib"), p.heap_mib);
                    r.insert(&k("map_memory_mib"), p.map_mib);
                }
                Err(e) => r.insert(&k("error"), e.as_str()),
            }
        }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(&["control plane", "value"]);
        for (m, n, ms) in &self.maglev_build_ms {
            t.row(vec![
                format!("Maglev build, M={m}, {n} backends"),
                format!("{ms:.1} ms"),
            ]);
        }
        t.row(vec![
            format!(
                "weight change -> table live (API, M={TABLE_SIZE}, 100 backends, {} changes)",
                self.weight_changes
            ),
            format!(
                "{:.1} ms median, {:.1} ms max",
                self.weight_change_live_ms, self.weight_change_live_max_ms
            ),
        ]);
        let scale = format!(
            "{} VIPs x {} backends",
            self.scale_vips, self.scale_backends_per_vip
        );
        t.row(vec![
            format!("initial reconcile, {scale}"),
            format!("{:.0} ms", self.reconcile_ms),
        ]);
        t.row(vec![
            format!("reload, nothing changed, {scale}"),
            format!("{:.0} ms", self.noop_reload_ms),
        ]);
        t.row(vec![
            format!("daemon resident memory, {scale}"),
            format!(
                "{:.1} MiB ({:.1} MiB heap, the rest the mapped table map)",
                self.daemon_rss_mib, self.daemon_heap_mib
            ),
        ]);
        t.row(vec![
            format!("BPF map memory, {scale}"),
            format!("{:.1} MiB", self.map_memory_mib),
        ]);
        for (n, p) in &self.curve {
            let what = format!("curve: {n} VIPs x {CURVE_BACKENDS} backends");
            t.row(vec![
                what,
                match p {
                    Ok(p) => format!(
                        "reconcile {:.0} ms, resident {:.1} MiB ({:.1} MiB heap), maps {:.1} MiB \
                         (max_vips {})",
                        p.reconcile_ms, p.rss_mib, p.heap_mib, p.map_mib, p.max_vips
                    ),
                    Err(e) => format!("error: {e}"),
                },
            ]);
        }
        t
    }
}

fn backends(n: usize, seed: u8) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::new(
                10,
                60 + seed,
                (i / 250) as u8,
                (i % 250 + 1) as u8,
            ))
        })
        .collect()
}

fn maglev_builds(rounds: usize) -> Result<Vec<(u32, usize, f64)>> {
    let mut out = Vec::new();
    for (m, n) in MAGLEV_SIZES {
        let input: Vec<MaglevBackend> = backends(n, 0)
            .into_iter()
            .map(|a| MaglevBackend::new(a, 100))
            .collect();
        let mut times = Vec::new();
        for _ in 0..rounds.max(1) {
            let t = Instant::now();
            let table = maglev::build_table(&input, m).context("building a Maglev table")?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            ensure!(table.len() == m as usize);
        }
        out.push((m, n, median(times).context("no Maglev build timed")?));
    }
    Ok(out)
}

/// A namespace with one veth (the daemon's interface) and its instance name.
struct DaemonHost {
    ns: NetNs,
    instance: String,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

impl DaemonHost {
    fn new(tag: &str) -> Result<Self> {
        let name = unique_name(&format!("ctl{tag}"));
        let ns = NetNs::create(&name);
        ns.ip("link add xlbc0 type veth peer name xlbc1");
        ns.ip("addr add 10.40.0.1/16 dev xlbc0");
        ns.ip("link set xlbc0 up");
        ns.ip("link set xlbc1 up");
        ns.sysctl("net.ipv4.conf.all.forwarding=1");
        let dir = std::env::temp_dir();
        Ok(Self {
            instance: name.clone(),
            socket: PathBuf::from(format!("/run/xlb/{name}.sock")),
            config: dir.join(format!("{name}.toml")),
            log: dir.join(format!("{name}.log")),
            ns,
        })
    }

    fn config_text(
        &self,
        vips: &[(Ipv4Addr, Vec<(IpAddr, u16)>)],
        max_vips: usize,
        max_backends: usize,
    ) -> String {
        let mut s = format!(
            "[global]\ninstance = \"{}\"\ninterfaces = [\"xlbc0\"]\nouter_source_v4 = \"10.40.0.1\"\n\
             table_size = {TABLE_SIZE}\nmax_vips = {max_vips}\nmax_backends = {max_backends}\n\
             flow_table_size = 65536\napi_socket = \"{}\"\nmetrics_address = \"127.0.0.1:9431\"\n\n",
            self.instance,
            self.socket.display()
        );
        for (addr, bs) in vips {
            s += &format!("[[vip]]\naddress = \"{addr}\"\nport = 80\n");
            for (b, w) in bs {
                s += &format!("  [[vip.backend]]\n  address = \"{b}\"\n  weight = {w}\n");
            }
        }
        s
    }

    fn start(&self, text: &str) -> Result<Daemon> {
        std::fs::write(&self.config, text)
            .with_context(|| format!("writing {}", self.config.display()))?;
        Ok(Daemon::start(
            self.ns.name(),
            &self.config,
            &self.instance,
            &self.socket,
            &self.log,
        ))
    }
}

/// (median ms, max ms, changes): API weight change until the whole new table
/// is in the map.
fn weight_change(changes: usize) -> Result<(f64, f64, usize)> {
    let host = DaemonHost::new("w")?;
    let addrs = backends(100, 1);
    let vip = Ipv4Addr::new(10, 41, 0, 1);
    let weighted = |w0: u16| -> Vec<(IpAddr, u16)> {
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, if i == 0 { w0 } else { 100 }))
            .collect()
    };
    let daemon = host.start(&host.config_text(&[(vip, weighted(100))], 4, 256))?;
    let vips: Vec<VipStatus> =
        serde_json::from_str(&daemon.cli(&["vip", "list", "--json"])).context("vip list")?;
    let v = vips.first().context("the VIP is missing")?;
    let id_of = |a: IpAddr| {
        v.backends
            .iter()
            .find(|b| b.address == a)
            .and_then(|b| b.id)
    };
    let pin = InstancePaths::new(&host.instance)
        .maps()
        .join(lb_common::map_names::MAGLEV);
    let table = MaglevTable::open_pinned(&pin, TABLE_SIZE).context("mapping the daemon's table")?;
    // The VIP is the instance's first, so its table starts at slot 0.
    let expected = |w0: u16| -> Result<Vec<u32>> {
        let input: Vec<MaglevBackend> = weighted(w0)
            .iter()
            .map(|(a, w)| MaglevBackend::new(*a, *w))
            .collect();
        let idx = maglev::build_table(&input, TABLE_SIZE)?;
        idx.iter()
            .map(|i| id_of(weighted(w0)[*i as usize].0).context("backend without an id"))
            .collect()
    };
    ensure!(
        table.read(0, TABLE_SIZE) == expected(100)?,
        "the installed table is not the expected one"
    );
    let mut times = Vec::new();
    let victim = addrs[0].to_string();
    for k in 0..changes {
        let w0: u16 = if k % 2 == 0 { 400 } else { 100 };
        let want = expected(w0)?;
        let path = format!("/v1/vips/10.41.0.1%3A80%2Ftcp/backends/{victim}/weight");
        let body = format!("{{\"weight\":{w0}}}");
        let socket = host.socket.clone();
        let t0 = Instant::now();
        let sender =
            std::thread::spawn(move || http::request(&socket, "PUT", &path, body.as_bytes()));
        while table.read(0, TABLE_SIZE) != want {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!(
                    "the new table did not appear within 10 s; daemon log:\n{}",
                    daemon.log_text()
                );
            }
            std::hint::spin_loop();
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        let (status, text) = sender
            .join()
            .map_err(|_| anyhow::anyhow!("request thread panicked"))?;
        ensure!(status == 200, "weight change refused ({status}): {text}");
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    let med = median(times).context("no weight change timed")?;
    Ok((med, max, changes))
}

fn scale(vips: usize, per_vip: usize) -> Result<CurvePoint> {
    let host = DaemonHost::new("s")?;
    let addrs = backends(per_vip, 2);
    let spec: Vec<(Ipv4Addr, Vec<(IpAddr, u16)>)> = (0..vips)
        .map(|i| {
            (
                Ipv4Addr::new(10, 50, (i / 250) as u8, (i % 250 + 1) as u8),
                addrs.iter().map(|a| (*a, 100)).collect(),
            )
        })
        .collect();
    let max_vips = max_vips_for(vips);
    let max_backends = (vips * per_vip + 1).next_power_of_two();
    let daemon = host.start(&host.config_text(&spec, max_vips, max_backends))?;
    let stats: StatsSnapshot =
        serde_json::from_str(&daemon.cli(&["stats", "--json"])).context("stats")?;
    ensure!(
        stats.vips.len() == vips,
        "the daemon serves {} VIPs, not {vips}",
        stats.vips.len()
    );
    let reconcile_ms = stats.control.last_reconcile_seconds * 1e3;
    let t = Instant::now();
    daemon.cli(&["reload"]);
    let noop_reload_ms = t.elapsed().as_secs_f64() * 1e3;
    let pid = daemon.pid().context("no daemon pid")?;
    let rss_mib = status_kib(pid, "VmRSS")? as f64 / 1024.0;
    let heap_mib = status_kib(pid, "RssAnon")? as f64 / 1024.0;
    let map_mib =
        map_memlock_bytes(&InstancePaths::new(&host.instance))? as f64 / (1024.0 * 1024.0);
    drop(daemon);
    Ok(CurvePoint {
        max_vips,
        reconcile_ms,
        noop_reload_ms,
        rss_mib,
        heap_mib,
        map_mib,
    })
}

/// A kB field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the daemon's status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/PID/status"))
}

/// Sum of `memlock` (the kernel's accounting of a map's memory) over every
/// map pinned by the instance, read from the fdinfo of a descriptor opened on
/// each pin (the daemon itself closes the Maglev map's after mapping it).
fn map_memlock_bytes(paths: &InstancePaths) -> Result<u64> {
    use std::os::fd::{AsFd, AsRawFd};
    let mut total = 0;
    for e in std::fs::read_dir(paths.maps())
        .context("listing the pinned maps")?
        .flatten()
    {
        let map = aya::maps::MapData::from_pin(e.path())
            .with_context(|| format!("opening {}", e.path().display()))?;
        let fd = map.fd().as_fd().as_raw_fd();
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).context("reading fdinfo")?;
        if let Some(v) = info.lines().find_map(|l| l.strip_prefix("memlock:")) {
            total += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    ensure!(
        total > 0,
        "found no pinned BPF map under {}",
        paths.maps().display()
    );
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_vips_stays_under_the_table_memory_cap() {
        assert_eq!(max_vips_for(1), 64);
        assert_eq!(max_vips_for(1000), 1024);
        // 4,096 x 65,537 x 4 bytes is over 1 GiB, 4,000 x 65,537 x 4 is not.
        assert_eq!(max_vips_for(4000), 4000);
    }

    #[test]
    fn record_files_every_required_key() {
        let r = ControlResults {
            maglev_build_ms: MAGLEV_SIZES.iter().map(|&(m, n)| (m, n, 1.0)).collect(),
            weight_change_live_ms: 1.0,
            weight_change_live_max_ms: 2.0,
            weight_changes: 5,
            scale_vips: 100,
            scale_backends_per_vip: 20,
            reconcile_ms: 1.0,
            noop_reload_ms: 1.0,
            daemon_rss_mib: 1.0,
            daemon_heap_mib: 1.0,
            map_memory_mib: 1.0,
            curve: [1, 100]
                .into_iter()
                .map(|n| {
                    let p = CurvePoint {
                        max_vips: n,
                        reconcile_ms: 1.0,
                        noop_reload_ms: 1.0,
                        rss_mib: 1.0,
                        heap_mib: 1.0,
                        map_mib: 1.0,
                    };
                    (n, Ok(p))
                })
                .collect(),
        };
        let mut report = Report::new();
        r.record(&mut report);
        assert_eq!(report.missing(REQUIRED_KEYS), Vec::<&str>::new());
    }
}
