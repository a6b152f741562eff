//! `xlb run`: load (or adopt) the data plane, reconcile it with the config,
//! attach it, then serve the API, metrics and health checks until SIGTERM or
//! SIGINT. Exiting leaves the program attached and its maps pinned, so traffic
//! keeps flowing; the next `xlb run` adopts them without dropping a packet.
//!
//! Startup order matters for that: the maps are adopted and reconciled first
//! (the old program keeps balancing with them meanwhile), then the new program
//! replaces the old one atomically in the pinned link.

pub mod api;
mod attachment;
mod bpf_log;
pub mod controller;
mod driver_watch;
pub mod kernel_settings;
mod metrics_server;
mod overrides;
pub mod owner;
pub mod service_manager;
mod veth_peers;

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context};
use tokio::{
    net::UnixListener,
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};
use tracing::{error, info, warn};

use self::{
    api::{ApiState, Event},
    controller::{BackendKey, ControlError, Controller},
    driver_watch::DriverWatch,
};
pub use self::{overrides::Overrides, veth_peers::VethPeerPolicy};
use crate::{
    announce::{self, Announcer},
    config::Config,
    dataplane::{
        attach::{ensure_bpffs, InstancePaths},
        Dataplane, FlowTableCapacity, LoadOptions, Sizes, VlanSync,
    },
    health::{HealthMonitor, Transition},
    netdev,
    reconcile::Reconciler,
    vlan_devices::{self, LinkWatch, VlanLink},
};

/// How often the drivers' XDP error counters are read.
const DRIVER_WATCH_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// `--xdp-mode`, `--socket`, `--instance` override the config's.
    pub overrides: Overrides,
    pub veth_peer: VethPeerPolicy,
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let mut config = Config::from_file(&opts.config)?;
    opts.overrides.apply(&mut config);
    config
        .validate()
        .context("the config with the command line's --xdp-mode/--socket/--instance")?;
    let g = config.global.clone();
    let nl = netdev::connect()?;
    if ensure_bpffs().context("preparing bpffs")? {
        warn!(
            "mounted bpffs on /sys/fs/bpf: if xlb runs in a private mount namespace (under \
             `ip netns exec`, or a container without the host's /sys/fs/bpf), its pins vanish \
             when it exits and the balancer detaches; run it in the host mount namespace \
             (e.g. `nsenter --net=/var/run/netns/NAME xlb run ...`)"
        );
    }
    let paths = InstancePaths::new(&g.instance);
    // Everything that can refuse the start comes before the first change.
    if let Some(other) = owner::daemons_of(&paths).first() {
        bail!(
            "instance {} is already run by the xlb daemon with pid {} ({}): two daemons would \
             fight over its maps. Stop it first (`xlb down` stops it and detaches the balancer; \
             SIGTERM stops only the daemon)",
            g.instance,
            other.pid,
            other.cmdline
        );
    }
    let mut tx_ports = BTreeSet::new();
    for ifname in g.interfaces.iter().chain(&g.egress_interfaces) {
        let idx = nix::net::if_::if_nametoindex(ifname.as_str()).with_context(|| {
            format!("interface {ifname} (global.interfaces / egress_interfaces) does not exist")
        })?;
        tx_ports.insert(idx);
    }
    let pinned_links = attachment::pinned(&nl, &paths).await?;
    attachment::check_modes(&pinned_links, &g, &paths)?;
    let unready_peers = veth_peers::check(&nl, &g, opts.veth_peer).await?;
    let sizes = Sizes {
        max_vips: g.max_vips,
        max_backends: g.max_backends,
        table_size: g.table_size,
        flow_table_size: g.flow_table_size,
        nat_table_size: config.nat.table_size,
    };
    let adopting = paths.maps().exists();
    let dp = Dataplane::load(&LoadOptions {
        sizes,
        pin_dir: Some(paths.maps()),
        bpf_log_level: g.bpf_log.level(),
    })
    .context("loading the XDP program and its maps")?;
    log_flow_capacity(dp.flow_capacity());
    let reconciler = Reconciler::adopt(&dp).context("reading the pinned maps")?;
    let health: HashMap<BackendKey, bool> = reconciler
        .installed_health()
        .into_iter()
        .map(|(k, a, h)| ((k, a), h))
        .collect();
    if adopting {
        info!(instance = %g.instance, backends = health.len(), "adopting pinned state from a previous run");
    }

    let settings = kernel_settings::prepare(
        &kernel_settings::Sysctls::host(),
        &kernel_settings::Requirements {
            interfaces: &g.interfaces,
            outer_source_v4: g.outer_source_v4,
            v6: g.outer_source_v6.is_some(),
        },
        kernel_settings::ipv4_addresses,
    );
    for finding in settings {
        if finding.is_problem() {
            warn!("{finding}");
        } else {
            info!("{finding}");
        }
    }

    if g.hash_seed.is_none() {
        warn!(
            "global.hash_seed is not set: the flow hash uses the built-in seed, which is public; \
             set one per deployment (the same on every node) so floods cannot be aimed at a backend"
        );
    }

    let announcer = start_announcer(&config, adopting)?;
    let mut ctl = Controller::new(
        config,
        Some(opts.config.clone()),
        dp,
        reconciler,
        health,
        tx_ports,
    );
    ctl.set_overrides(opts.overrides.clone());
    ctl.set_announcer(announcer);
    let report = ctl
        .reconcile()
        .context("installing the config into the maps")?;
    // Before attaching: from its first packet on, the data plane must know
    // which egress devices are VLAN devices.
    let links = vlan_devices::read()
        .await
        .context("reading the VLAN devices over netlink")?;
    install_vlan_devices(&mut ctl, &links).context("writing the VLAN devices to XLB_VLANS")?;
    controller::release_freed_memory();
    info!(
        writes = report.ops,
        tables = report.tables_rebuilt,
        "maps reconciled with the config"
    );

    attachment::attach_all(ctl.dataplane_mut(), &nl, &paths, &g, &pinned_links).await?;
    veth_peers::handle(&nl, unready_peers, &g, &paths, opts.veth_peer).await?;
    let mut driver_watch = DriverWatch::new(
        g.interfaces
            .iter()
            .chain(&g.egress_interfaces)
            .cloned()
            .collect(),
    );
    let mut driver_tick = tokio::time::interval(DRIVER_WATCH_PERIOD);

    // Attached everywhere: the VIPs' addresses may be announced now.
    ctl.announce_attached();

    let bpf_logs = if g.bpf_log.level() > 0 {
        Some(bpf_log::forward(ctl.dataplane_mut())?)
    } else {
        None
    };
    let ctl = Arc::new(Mutex::new(ctl));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let api = serve_api(
        &g.api_socket,
        ApiState {
            ctl: ctl.clone(),
            events: events_tx.clone(),
        },
    )
    .await?;
    let metrics = metrics_server::serve(g.metrics_address, ctl.clone()).await?;
    info!(api = %g.api_socket.display(), metrics = %g.metrics_address, "xlb is running");
    if g.hash_seed.is_none() {
        warn!(
            "global.hash_seed is not set: the flow hash uses xlb's public default seed, so anyone \
             can compute which backend a crafted flow lands on and aim a flood at one backend. \
             Set the same random hash_seed on every balancer of the fleet (for example the \
             output of `od -An -N4 -tu4 /dev/urandom`)"
        );
    }
    let status = format!(
        "balancing on {}; api {}, metrics {}",
        g.interfaces.join(", "),
        g.api_socket.display(),
        g.metrics_address
    );
    service_manager::ready(&status);

    // Link changes (a VLAN device added or removed) reach the data plane at
    // once; without the watch, at the next reload.
    let mut links = match LinkWatch::start() {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %crate::dataplane::attach::error_chain(&e), "cannot watch link changes: VLAN devices are re-read only on reloads");
            None
        }
    };

    let (health_tx, mut transitions) = mpsc::unbounded_channel::<Transition<BackendKey>>();
    let mut monitor = HealthMonitor::new(health_tx);
    monitor.sync(lock(&ctl).health_checks());

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // `xlb down`'s planned stop: withdraw the announced routes, serve for
    // announce.drain_on_stop while routers move flows away, then exit.
    let mut usr1 = signal(SignalKind::user_defined1())?;
    // Repairs the announce table if something else changed it, and retries
    // route changes that failed; keeps l2-dsr backends' MACs resolved.
    let mut announce_check = tokio::time::interval(ANNOUNCE_CHECK_INTERVAL);
    announce_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                service_manager::reloading();
                let c = ctl.clone();
                match tokio::task::spawn_blocking(move || lock(&c).reload()).await? {
                    Ok(r) => {
                        info!(writes = r.ops, tables = r.tables_rebuilt, "config reloaded (SIGHUP)");
                        service_manager::ready(&status);
                    }
                    Err(e) => {
                        let error = crate::dataplane::attach::error_chain(&e);
                        error!(error = %error, "config reload failed; keeping the running config");
                        service_manager::ready(&format!("{status}; last reload refused: {error}"));
                    }
                }
                monitor.sync(lock(&ctl).health_checks());
                refresh_vlan_devices(&ctl).await;
            }
            Some(ev) = events.recv() => match ev {
                Event::ConfigChanged => {
                    monitor.sync(lock(&ctl).health_checks());
                    refresh_vlan_devices(&ctl).await;
                }
                Event::Shutdown { withdraw: false } => { info!("shutdown requested through the API"); break; }
                Event::Shutdown { withdraw: true } => {
                    planned_stop(&ctl).await?;
                    info!("planned stop requested through the API (xlb down)");
                    break;
                }
            },
            _ = announce_check.tick() => {
                let c = ctl.clone();
                tokio::task::spawn_blocking(move || {
                    let mut c = lock(&c);
                    c.announce_sync();
                    c.refresh_l2_neighbours();
                }).await?;
            }
            changed = link_changed(&mut links) => match changed {
                Some(()) => refresh_vlan_devices(&ctl).await,
                None => {
                    warn!("the link watch ended: VLAN devices are re-read only on reloads");
                    links = None;
                }
            },
            Some(t) = transitions.recv() => {
                let c = ctl.clone();
                let key = t.key;
                let result = tokio::task::spawn_blocking(move || {
                    let mut c = lock(&c);
                    let name = c.vip_name(&key.0);
                    (name, c.set_health(key, t.healthy))
                }).await?;
                match result {
                    (vip, Ok(_)) if t.healthy => info!(%vip, backend = %key.1, "backend is healthy again: back in the table"),
                    (vip, Ok(_)) => warn!(%vip, backend = %key.1, reason = %t.reason, "backend failed its health check: out of the table; its flows move to the other backends"),
                    (vip, Err(e)) => error!(%vip, backend = %key.1, error = %e, "applying a health change failed"),
                }
                let c = lock(&ctl);
                for v in c.vip_statuses().iter().filter(|v| v.fail_open) {
                    warn!(vip = %v.name, "every backend is unhealthy: keeping all of them (fail open)");
                }
            }
            _ = driver_tick.tick() => driver_watch.poll(),
            _ = term.recv() => { info!("SIGTERM: exiting; the data plane keeps running, announced routes stay (until `xlb down`)"); break; }
            _ = int.recv() => { info!("SIGINT: exiting; the data plane keeps running, announced routes stay (until `xlb down`)"); break; }
            _ = usr1.recv() => {
                planned_stop(&ctl).await?;
                info!("planned stop (SIGUSR1, sent by `xlb down`)");
                break;
            }
        }
    }
    service_manager::stopping();
    api.abort();
    metrics.abort();
    if let Some(l) = bpf_logs {
        l.abort();
    }
    let _ = std::fs::remove_file(&g.api_socket);
    Ok(())
}

/// How often the daemon re-reads its announce table.
const ANNOUNCE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The announce routes of this run, when `[announce]` is on. When it is
/// off, routes a previous run of the instance announced are withdrawn.
fn start_announcer(config: &Config, adopting: bool) -> anyhow::Result<Option<Announcer>> {
    let instance = &config.global.instance;
    let dir = std::path::Path::new(announce::RECORD_DIR);
    if !config.announce.enabled {
        let (withdrawn, _) = announce::withdraw_recorded(dir, instance)
            .context("withdrawing the routes a previous run announced")?;
        for address in withdrawn {
            info!(%address, "withdrew {address}, announced by a previous run: announce.enabled is false now");
        }
        return Ok(None);
    }
    let a = Announcer::start(&config.announce, instance, dir, adopting).with_context(|| {
        format!(
            "taking over routing table {} (announce.table)",
            config.announce.table
        )
    })?;
    info!(
        table = a.table(),
        "announcing VIP addresses through routing table {} (for BIRD's kernel protocol or FRR's import-table)",
        a.table()
    );
    Ok(Some(a))
}

/// Writes `links` (the host's VLAN devices) to `XLB_VLANS`, saying so when
/// the set changed.
fn install_vlan_devices(ctl: &mut Controller, links: &[VlanLink]) -> Result<(), ControlError> {
    let (devices, left_out) = vlan_devices::by_ifindex(links);
    if left_out > 0 {
        warn!(
            left_out,
            max = lb_common::MAX_VLAN_DEVICES,
            "more VLAN devices than XLB_VLANS holds: packets routed to the others are \
             redirected like untagged ones (and dropped by the kernel)"
        );
    }
    let sync = ctl.set_vlan_devices(&devices)?;
    if sync != VlanSync::default() {
        let names: Vec<String> = links
            .iter()
            .map(|l| {
                format!(
                    "{} (id {}, on ifindex {})",
                    l.name,
                    l.device.vlan_id(),
                    l.device.parent_ifindex
                )
            })
            .collect();
        info!(
            added_or_changed = sync.added_or_changed,
            removed = sync.removed,
            "VLAN devices known to the data plane: [{}]",
            names.join(", ")
        );
    }
    Ok(())
}

/// Re-reads the VLAN devices (after a reload or a link change); failures
/// are logged, the previous set stays.
async fn refresh_vlan_devices(ctl: &Arc<Mutex<Controller>>) {
    let result = match vlan_devices::read().await {
        Ok(links) => install_vlan_devices(&mut lock(ctl), &links).map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        warn!(
            error = format!("{e:#}"),
            "updating the VLAN devices failed; keeping the previous set"
        );
    }
}

/// The next link change, or never when links are not watched.
async fn link_changed(links: &mut Option<LinkWatch>) -> Option<()> {
    match links {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

fn lock(c: &Arc<Mutex<Controller>>) -> std::sync::MutexGuard<'_, Controller> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Binds the API socket (mode 0600, parent directory created, a stale socket
/// from a crashed run replaced) and serves it.
async fn serve_api(path: &Path, state: ApiState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another xlb daemon is serving {} (stop it, or set global.api_socket)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the API socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    let app = api::router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the API server stopped");
        }
    }))
}

/// A planned stop (`xlb down`): withdraws the announced routes, then keeps
/// serving for announce.drain_on_stop while routers move flows away; the
/// caller exits after it.
async fn planned_stop(ctl: &Arc<Mutex<Controller>>) -> anyhow::Result<()> {
    let c = ctl.clone();
    let drain = tokio::task::spawn_blocking(move || lock(&c).announce_stop()).await?;
    if !drain.is_zero() {
        info!(drain = %humantime::format_duration(drain), "planned stop: routes withdrawn; serving while routers move flows away (announce.drain_on_stop)");
        tokio::time::sleep(drain).await;
    }
    Ok(())
}

fn log_flow_capacity(c: FlowTableCapacity) {
    info!(
        entries = c.entries,
        per_cpu = c.per_cpu(),
        possible_cpus = c.possible_cpus,
        flow_table_size = c.requested,
        "flow table: {} entries, one LRU list of {} per possible CPU{}",
        c.entries,
        c.per_cpu(),
        if c.entries == c.requested {
            ""
        } else {
            " (flow_table_size rounded by the kernel to a multiple of the possible CPUs)"
        }
    );
}
