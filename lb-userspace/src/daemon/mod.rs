//! `xlb run`: load (or adopt) the data plane, reconcile it with the config,
//! attach it, then serve the API, metrics and health checks until SIGTERM or
//! SIGINT. Exiting leaves the program attached and its maps pinned, so traffic
//! keeps flowing; the next `xlb run` adopts them without dropping a packet.
//!
//! Startup order matters for that: the maps are adopted and reconciled first
//! (the old program keeps balancing with them meanwhile), then the new program
//! replaces the old one atomically in the pinned link.

pub mod api;
mod bpf_log;
pub mod controller;
mod metrics_server;

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
};
use crate::{
    config::{Config, XdpMode},
    dataplane::{
        attach::{attach_pinned, ensure_bpffs, Attached, InstancePaths, Mode},
        Dataplane, LoadOptions, Sizes, VlanSync,
    },
    health::{HealthMonitor, Transition},
    reconcile::Reconciler,
    vlan_devices::{self, LinkWatch, VlanLink},
};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// `--xdp-mode` on the command line overrides the config's.
    pub xdp_mode: Option<XdpMode>,
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let mut config = Config::from_file(&opts.config)?;
    if let Some(m) = opts.xdp_mode {
        config.global.xdp_mode = m;
    }
    let g = config.global.clone();
    if ensure_bpffs().context("preparing bpffs")? {
        warn!(
            "mounted bpffs on /sys/fs/bpf: if xlb runs in a private mount namespace (under \
             `ip netns exec`, or a container without the host's /sys/fs/bpf), its pins vanish \
             when it exits and the balancer detaches; run it in the host mount namespace \
             (e.g. `nsenter --net=/var/run/netns/NAME xlb run ...`)"
        );
    }
    let paths = InstancePaths::new(&g.instance);
    let sizes = Sizes {
        max_vips: g.max_vips,
        max_backends: g.max_backends,
        table_size: g.table_size,
        flow_table_size: g.flow_table_size,
    };
    let adopting = paths.maps().exists();
    let dp = Dataplane::load(&LoadOptions {
        sizes,
        pin_dir: Some(paths.maps()),
        bpf_log_level: g.bpf_log.level(),
    })
    .context("loading the XDP program and its maps")?;
    let reconciler = Reconciler::adopt(&dp).context("reading the pinned maps")?;
    let health: HashMap<BackendKey, bool> = reconciler
        .installed_health()
        .into_iter()
        .map(|(k, a, h)| ((k, a), h))
        .collect();
    if adopting {
        info!(instance = %g.instance, backends = health.len(), "adopting pinned state from a previous run");
    }

    let mut tx_ports = BTreeSet::new();
    for ifname in g.interfaces.iter().chain(&g.egress_interfaces) {
        let idx = nix::net::if_::if_nametoindex(ifname.as_str()).with_context(|| {
            format!("interface {ifname} (global.interfaces / egress_interfaces) does not exist")
        })?;
        tx_ports.insert(idx);
    }

    warn_if_not_forwarding(
        &g.interfaces,
        g.outer_source_v4.is_some(),
        g.outer_source_v6.is_some(),
    );

    let mut ctl = Controller::new(
        config,
        Some(opts.config.clone()),
        dp,
        reconciler,
        health,
        tx_ports,
    );
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

    let mode = match g.xdp_mode {
        XdpMode::Native => Mode::Native,
        XdpMode::Skb => Mode::Skb,
    };
    for ifname in &g.interfaces {
        let program = ctl.dataplane_mut().program()?;
        match attach_pinned(program, ifname, mode, &paths.link(ifname))
            .with_context(|| format!("attaching to {ifname}"))?
        {
            Attached::Replaced => {
                info!(interface = %ifname, "replaced the program on the pinned link (no packet lost)")
            }
            Attached::New { mode } => info!(interface = %ifname, mode, "attached"),
            Attached::Fallback { reason } => {
                warn!(interface = %ifname, %reason, "native XDP was refused; attached in generic (skb) mode, which is slower")
            }
        }
    }

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
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let c = ctl.clone();
                match tokio::task::spawn_blocking(move || lock(&c).reload()).await? {
                    Ok(r) => info!(writes = r.ops, tables = r.tables_rebuilt, "config reloaded (SIGHUP)"),
                    Err(e) => error!(error = %crate::dataplane::attach::error_chain(&e), "config reload failed; keeping the running config"),
                }
                monitor.sync(lock(&ctl).health_checks());
                refresh_vlan_devices(&ctl).await;
            }
            Some(ev) = events.recv() => match ev {
                Event::ConfigChanged => {
                    monitor.sync(lock(&ctl).health_checks());
                    refresh_vlan_devices(&ctl).await;
                }
                Event::Shutdown => { info!("shutdown requested through the API"); break; }
            },
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
            _ = term.recv() => { info!("SIGTERM: exiting; the data plane keeps running"); break; }
            _ = int.recv() => { info!("SIGINT: exiting; the data plane keeps running"); break; }
        }
    }
    api.abort();
    metrics.abort();
    if let Some(l) = bpf_logs {
        l.abort();
    }
    let _ = std::fs::remove_file(&g.api_socket);
    Ok(())
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

/// The kernel's FIB lookup (how the program finds the next hop toward a
/// backend) refuses to route for an interface that does not forward, and the
/// first packet to a backend whose MAC is unknown is forwarded by the kernel:
/// without forwarding, every VIP packet would be dropped as `fib_unreachable`.
fn warn_if_not_forwarding(interfaces: &[String], v4: bool, v6: bool) {
    for ifname in interfaces {
        for (family, enabled) in [("ipv4", v4), ("ipv6", v6)] {
            if !enabled {
                continue;
            }
            let path = format!("/proc/sys/net/{family}/conf/{ifname}/forwarding");
            if std::fs::read_to_string(&path)
                .map(|v| v.trim() == "0")
                .unwrap_or(false)
            {
                warn!(
                    interface = %ifname,
                    "{family} forwarding is off: the FIB will refuse to route VIP traffic to backends; \
                     enable it with `sysctl -w net.{family}.conf.{ifname}.forwarding=1`"
                );
            }
        }
    }
}
