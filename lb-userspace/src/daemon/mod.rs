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
pub mod kernel_settings;
mod metrics_server;
pub mod service_manager;

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
    controller::{BackendKey, Controller},
};
use crate::{
    config::{Config, XdpMode},
    dataplane::{
        attach::{attach_pinned, ensure_bpffs, Attached, InstancePaths, Mode},
        Dataplane, FlowTableCapacity, LoadOptions, Sizes,
    },
    health::{HealthMonitor, Transition},
    reconcile::Reconciler,
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

    let mut tx_ports = BTreeSet::new();
    for ifname in g.interfaces.iter().chain(&g.egress_interfaces) {
        let idx = nix::net::if_::if_nametoindex(ifname.as_str()).with_context(|| {
            format!("interface {ifname} (global.interfaces / egress_interfaces) does not exist")
        })?;
        tx_ports.insert(idx);
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
    let status = format!(
        "balancing on {}; api {}, metrics {}",
        g.interfaces.join(", "),
        g.api_socket.display(),
        g.metrics_address
    );
    service_manager::ready(&status);

    let (health_tx, mut transitions) = mpsc::unbounded_channel::<Transition<BackendKey>>();
    let mut monitor = HealthMonitor::new(health_tx);
    monitor.sync(lock(&ctl).health_checks());

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
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
            }
            Some(ev) = events.recv() => match ev {
                Event::ConfigChanged => monitor.sync(lock(&ctl).health_checks()),
                Event::Shutdown => { info!("shutdown requested through the API"); break; }
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
                    (vip, Ok(_)) => warn!(%vip, backend = %key.1, reason = %t.reason, "backend failed its health check: out of the table (established flows stay)"),
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
    service_manager::stopping();
    api.abort();
    metrics.abort();
    if let Some(l) = bpf_logs {
        l.abort();
    }
    let _ = std::fs::remove_file(&g.api_socket);
    Ok(())
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

/// Says what the connection table really holds: the kernel rounds its size to
/// a multiple of the possible CPUs and gives each CPU its own LRU list, and a
/// flow only uses the list of the CPU that receives it.
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
