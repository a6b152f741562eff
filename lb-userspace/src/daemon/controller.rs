//! The one place where the balancer's state changes. The effective config
//! (the file plus runtime API changes) and the health of every checked backend
//! make the desired state; every change (reload, API request, health
//! transition) is validated, planned and applied here, one at a time, by the
//! same reconciler. A change that fails validation or planning changes nothing;
//! the daemon keeps its last good config.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use lb_common::{
    FlowKey, GlobalConfig as MapGlobal, Verdict, VipKey, VlanDevice, VIP_F_NO_FLOW_TABLE,
    VIP_F_NO_PING, VIP_F_SOURCE_HASH,
};
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use super::{driver_watch::DriverBaseline, overrides::Overrides};
use crate::{
    announce::Announcer,
    config::{
        humantime_text, AnnounceMode, BackendConfig, Config, ConfigError, ForwardingMode, Hashing,
        HealthCheckKind, IpPrefix, Protocol, RateLimit, SourceRateLimit, VipConfig,
    },
    dataplane::{Dataplane, DataplaneError, VlanSync},
    explain::{self, Explanation, FlowQuery},
    health::{CheckKind, CheckSpec},
    netdev::l2_path::{L2PathError, L2Paths, OffLink, Path},
    reconcile::{
        self, ApplyReport, DesiredBackend, DesiredPolicy, DesiredState, DesiredVip, ReconcileError,
        Reconciler,
    },
    stats::{BackendSample, ControlSample, StatsSnapshot, VipSample},
};

mod announcing;
mod policy;

pub use policy::{PrefixChange, PrefixList};

/// Identifies a checked backend: the VIP it serves and its address.
pub type BackendKey = (VipKey, IpAddr);

#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("no VIP named {0:?} (use its name or address:port/protocol)")]
    NoSuchVip(String),
    #[error("VIP {vip} has no backend {backend}")]
    NoSuchBackend { vip: String, backend: IpAddr },
    #[error("{what} cannot change while running (it sizes the pinned maps or the attachment); restart after `xlb down`")]
    NeedsRestart { what: String },
    #[error("{field}: backend {address} of l2-dsr vip {vip} is not on-link: {problem}; l2-dsr sends frames straight to the backend's MAC, so its backends must be on this host's segment (ipip or gue reach others)")]
    OffLinkBackend {
        field: String,
        vip: String,
        address: IpAddr,
        problem: OffLink,
    },
    #[error("checking the layer-2 path of the l2-dsr backends")]
    L2Path(#[from] L2PathError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
}

impl ControlError {
    /// Whether the request was at fault (4xx) rather than the daemon (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            ControlError::Config(_)
                | ControlError::Invalid { .. }
                | ControlError::NoSuchVip(_)
                | ControlError::NoSuchBackend { .. }
                | ControlError::NeedsRestart { .. }
                | ControlError::OffLinkBackend { .. }
                | ControlError::Reconcile(
                    ReconcileError::VipsExhausted { .. } | ReconcileError::BackendsExhausted { .. }
                )
        )
    }

    /// The config field the error is about, when known.
    pub fn field(&self) -> Option<String> {
        match self {
            ControlError::Invalid { field, .. } | ControlError::OffLinkBackend { field, .. } => {
                Some(field.clone())
            }
            ControlError::Config(e) => e.field_path(),
            _ => None,
        }
    }
}

/// A VIP as the API lists it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct VipStatus {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub hashing: Hashing,
    pub flow_table: bool,
    /// How packets reach the backends.
    #[serde(default)]
    pub forwarding: ForwardingMode,
    /// GUE VIPs: the outer UDP destination port in effect.
    #[serde(default)]
    pub gue_port: Option<u16>,
    /// How long a silent UDP flow keeps its backend (UDP VIPs).
    #[serde(with = "humantime_text")]
    pub udp_idle_timeout: std::time::Duration,
    /// Every weighted backend is unhealthy: all are kept (fail open).
    pub fail_open: bool,
    /// This node announces the VIP's address (`crate::announce`).
    #[serde(default)]
    pub announced: bool,
    /// Why it is announced or not.
    #[serde(default)]
    pub announce_reason: String,
    #[serde(default)]
    pub allow: Vec<IpPrefix>,
    #[serde(default)]
    pub deny: Vec<IpPrefix>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub source_rate_limit: Option<SourceRateLimit>,
    pub backends: Vec<BackendStatus>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BackendStatus {
    pub address: IpAddr,
    pub weight: u16,
    pub healthy: bool,
    /// "draining", "unhealthy", "active", or "active (fail-open)".
    pub state: String,
    pub health_check: Option<String>,
    /// Kernel backend id (for `xlb explain` and debugging).
    pub id: Option<u32>,
}

pub struct Controller {
    config: Config,
    config_path: Option<PathBuf>,
    dp: Dataplane,
    reconciler: Reconciler,
    health: HashMap<BackendKey, bool>,
    tx_ports: BTreeSet<u32>,
    counters: ControlSample,
    overrides: Overrides,
    /// The drivers' XDP error counters when the daemon started.
    driver_baseline: DriverBaseline,
    /// `None` while announcing is off.
    announcer: Option<Announcer>,
    /// `l2-dsr` backends the last periodic check found off-link.
    off_link: BTreeSet<IpAddr>,
}

impl Controller {
    /// Takes over maps already filled by `reconciler`'s view, with `health`
    /// (adopted from the maps after a restart) as the starting health.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        dp: Dataplane,
        reconciler: Reconciler,
        health: HashMap<BackendKey, bool>,
        tx_ports: BTreeSet<u32>,
    ) -> Self {
        let g = &config.global;
        let driver_baseline = DriverBaseline::take(g.interfaces.iter().chain(&g.egress_interfaces));
        Self {
            config,
            config_path,
            dp,
            reconciler,
            health,
            tx_ports,
            counters: ControlSample::default(),
            overrides: Overrides::default(),
            driver_baseline,
            announcer: None,
            off_link: BTreeSet::new(),
        }
    }

    /// The command line's settings, re-applied to the file on every reload.
    pub fn set_overrides(&mut self, overrides: Overrides) {
        self.overrides = overrides;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn dataplane_mut(&mut self) -> &mut Dataplane {
        &mut self.dp
    }

    /// Tells the data plane which devices are VLAN devices (ifindex ->
    /// parent and tag), for its egress check.
    pub fn set_vlan_devices(
        &mut self,
        devices: &BTreeMap<u32, VlanDevice>,
    ) -> Result<VlanSync, ControlError> {
        Ok(self.dp.sync_vlans(devices)?)
    }

    /// Installs the current desired state (startup, after adoption).
    pub fn reconcile(&mut self) -> Result<ApplyReport, ControlError> {
        check_l2_paths(&self.config)?;
        let desired = self.desired(&self.config);
        let report = self.apply_desired(&desired)?;
        self.announce_sync();
        Ok(report)
    }

    /// Replaces the effective config with `new` if it is valid, compatible
    /// with the running daemon, and installs cleanly; else nothing changes.
    pub fn replace_config(&mut self, new: Config) -> Result<ApplyReport, ControlError> {
        new.validate()?;
        self.check_compatible(&new)?;
        check_l2_paths(&new)?;
        let desired = self.desired(&new);
        let report = self.apply_desired(&desired)?;
        // Health of backends that are gone is forgotten.
        let keep: BTreeSet<BackendKey> = desired
            .vips
            .iter()
            .flat_map(|v| v.backends.iter().map(move |b| (v.key, b.addr)))
            .collect();
        self.health.retain(|k, _| keep.contains(k));
        self.config = new;
        self.announce_sync();
        Ok(report)
    }

    /// Re-reads the config file (SIGHUP, `xlb reload`). Runtime API changes
    /// not in the file are dropped: the file is the source of truth.
    pub fn reload(&mut self) -> Result<ApplyReport, ControlError> {
        let path = self
            .config_path
            .clone()
            .ok_or_else(|| ControlError::Invalid {
                field: "config".into(),
                message: "the daemon was started without a config file".into(),
            })?;
        let result = Config::from_file(&path)
            .map_err(ControlError::from)
            .and_then(|mut c| {
                self.overrides.apply(&mut c);
                self.replace_config(c)
            });
        release_freed_memory();
        match &result {
            Ok(_) => self.counters.reloads_ok += 1,
            Err(_) => self.counters.reloads_failed += 1,
        }
        result
    }

    pub fn add_vip(&mut self, vip: VipConfig) -> Result<ApplyReport, ControlError> {
        let mut c = self.config.clone();
        c.vips.push(vip);
        self.replace_config(c)
    }

    pub fn remove_vip(&mut self, vip: &str) -> Result<ApplyReport, ControlError> {
        let i = self.vip_index(vip)?;
        let mut c = self.config.clone();
        c.vips.remove(i);
        self.replace_config(c)
    }

    pub fn add_backend(
        &mut self,
        vip: &str,
        backend: BackendConfig,
    ) -> Result<ApplyReport, ControlError> {
        let i = self.vip_index(vip)?;
        let mut c = self.config.clone();
        c.vips[i].backends.push(backend);
        self.replace_config(c)
    }

    pub fn remove_backend(&mut self, vip: &str, addr: IpAddr) -> Result<ApplyReport, ControlError> {
        let (i, j) = self.backend_index(vip, addr)?;
        let mut c = self.config.clone();
        c.vips[i].backends.remove(j);
        self.replace_config(c)
    }

    /// Sets a backend's weight; 0 drains it (no new flows, existing stay).
    pub fn set_weight(
        &mut self,
        vip: &str,
        addr: IpAddr,
        weight: u16,
    ) -> Result<ApplyReport, ControlError> {
        let (i, j) = self.backend_index(vip, addr)?;
        let mut c = self.config.clone();
        c.vips[i].backends[j].weight = weight;
        self.replace_config(c)
    }

    /// Records a health transition and installs its effect.
    pub fn set_health(
        &mut self,
        key: BackendKey,
        healthy: bool,
    ) -> Result<ApplyReport, ControlError> {
        if self.health.get(&key).copied().unwrap_or(true) == healthy {
            return Ok(ApplyReport::default());
        }
        self.counters.health_transitions += 1;
        let before = self.health.insert(key, healthy);
        let desired = self.desired(&self.config);
        match self.apply_desired(&desired) {
            Ok(r) => {
                self.announce_sync();
                Ok(r)
            }
            Err(e) => {
                match before {
                    Some(b) => self.health.insert(key, b),
                    None => self.health.remove(&key),
                };
                Err(e)
            }
        }
    }

    /// The health checks the config asks for, with their current state.
    pub fn health_checks(&self) -> Vec<(BackendKey, CheckSpec, bool)> {
        let mut out = Vec::new();
        for v in &self.config.vips {
            let key = vip_key(v);
            for b in &v.backends {
                let Some(hc) = &b.health_check else { continue };
                let port = hc.port;
                let kind = match &hc.kind {
                    HealthCheckKind::Tcp => CheckKind::Tcp,
                    HealthCheckKind::Http {
                        path,
                        expected_status,
                        host,
                    } => CheckKind::Http {
                        path: path.clone(),
                        expected_status: *expected_status,
                        host: host.clone(),
                    },
                };
                let spec = CheckSpec {
                    kind,
                    target: SocketAddr::new(b.address, port),
                    interval: hc.interval,
                    timeout: hc.timeout,
                    rise: hc.rise,
                    fall: hc.fall,
                };
                out.push(((key, b.address), spec, self.healthy(&(key, b.address))));
            }
        }
        out
    }

    /// Name of the VIP `key` belongs to (for logs).
    pub fn vip_name(&self, key: &VipKey) -> String {
        self.config
            .vips
            .iter()
            .find(|v| vip_key(v) == *key)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| format!("{key:?}"))
    }

    fn healthy(&self, key: &BackendKey) -> bool {
        self.health.get(key).copied().unwrap_or(true)
    }

    fn check_compatible(&self, new: &Config) -> Result<(), ControlError> {
        match crate::config::diff::restart_needed(&self.config, new).first() {
            Some(key) => Err(ControlError::NeedsRestart {
                what: (*key).to_string(),
            }),
            None => Ok(()),
        }
    }

    fn apply_desired(&mut self, desired: &DesiredState) -> Result<ApplyReport, ControlError> {
        let started = Instant::now();
        let result = self
            .reconciler
            .plan(desired)
            .and_then(|plan| self.reconciler.apply(plan, &mut self.dp));
        match result {
            Ok(report) => {
                let c = &mut self.counters;
                c.reconciles_ok += 1;
                c.table_rebuilds += report.tables_rebuilt as u64;
                c.table_slots_changed += report.slots_changed as u64;
                c.last_reconcile_unix = unix_now();
                c.last_reconcile_seconds = started.elapsed().as_secs_f64();
                Ok(report)
            }
            Err(e) => {
                self.counters.reconciles_failed += 1;
                // A failed write leaves the maps between two states: re-read
                // them so the next plan starts from what is really installed.
                if matches!(e, ReconcileError::Apply { .. }) {
                    if let Ok(r) = Reconciler::adopt(&self.dp) {
                        self.reconciler = r;
                    }
                }
                Err(e.into())
            }
        }
    }

    /// The maps' desired content for `config` and the current health.
    pub fn desired(&self, config: &Config) -> DesiredState {
        let g = &config.global;
        let global = MapGlobal::new(g.outer_source_v4, g.outer_source_v6)
            .with_outer_ttl(g.outer_ttl)
            .with_hash_seed(g.effective_hash_seed())
            .with_flood_threshold(g.flood_threshold)
            .with_icmp_rate(g.icmp_rate_limit)
            .with_nat(config.nat.data_plane());
        let vips = config
            .vips
            .iter()
            .map(|v| {
                let key = vip_key(v);
                DesiredVip {
                    key,
                    name: v.name.clone(),
                    flags: vip_flags(v),
                    // Validated to at most a day.
                    udp_idle_timeout_ms: u32::try_from(v.udp_idle_timeout.as_millis())
                        .unwrap_or(u32::MAX),
                    forwarding: v.forwarding.data_plane(),
                    gue_port: v.effective_gue_port(g),
                    policy: DesiredPolicy::new(
                        v.address,
                        &v.allow,
                        &v.deny,
                        v.rate_limit.as_ref(),
                        v.source_rate_limit.as_ref(),
                    ),
                    backends: v
                        .backends
                        .iter()
                        .map(|b| DesiredBackend {
                            addr: b.address,
                            weight: b.weight,
                            healthy: self.healthy(&(key, b.address)),
                        })
                        .collect(),
                }
            })
            .collect();
        DesiredState {
            global,
            tx_ports: self.tx_ports.clone(),
            vips,
        }
    }

    fn vip_index(&self, vip: &str) -> Result<usize, ControlError> {
        self.config
            .find_vip(vip)
            .ok_or_else(|| ControlError::NoSuchVip(vip.to_string()))
    }

    fn backend_index(&self, vip: &str, addr: IpAddr) -> Result<(usize, usize), ControlError> {
        let i = self.vip_index(vip)?;
        let j = self.config.vips[i]
            .backends
            .iter()
            .position(|b| b.address == addr)
            .ok_or_else(|| ControlError::NoSuchBackend {
                vip: vip.to_string(),
                backend: addr,
            })?;
        Ok((i, j))
    }

    pub fn vip_statuses(&self) -> Vec<VipStatus> {
        let mut announce_states = self.announce_states().into_iter();
        self.config
            .vips
            .iter()
            .map(|v| {
                let key = vip_key(v);
                let fail_open = reconcile::is_fail_open(
                    v.backends
                        .iter()
                        .map(|b| (b.weight, self.healthy(&(key, b.address)))),
                );
                let announce = announce_states.next().unwrap_or_default();
                VipStatus {
                    name: v.name.clone(),
                    address: v.address,
                    port: v.port,
                    protocol: v.protocol,
                    hashing: v.hashing,
                    flow_table: v.flow_table,
                    forwarding: v.forwarding,
                    gue_port: (v.forwarding == ForwardingMode::Gue)
                        .then(|| v.effective_gue_port(&self.config.global)),
                    udp_idle_timeout: v.udp_idle_timeout,
                    fail_open,
                    announced: announce.announce,
                    announce_reason: announce.reason,
                    allow: v.allow.clone(),
                    deny: v.deny.clone(),
                    rate_limit: v.rate_limit,
                    source_rate_limit: v.source_rate_limit,
                    backends: v
                        .backends
                        .iter()
                        .map(|b| {
                            let h = self.healthy(&(key, b.address));
                            let state = match (b.weight, h, fail_open) {
                                (0, _, _) => "draining",
                                (_, false, true) => "active (fail-open)",
                                (_, false, false) => "unhealthy",
                                _ => "active",
                            };
                            BackendStatus {
                                address: b.address,
                                weight: b.weight,
                                healthy: h,
                                state: state.to_string(),
                                health_check: b.health_check.as_ref().map(|hc| match &hc.kind {
                                    HealthCheckKind::Tcp => format!("tcp every {:?}", hc.interval),
                                    HealthCheckKind::Http {
                                        path,
                                        expected_status,
                                        ..
                                    } => {
                                        format!(
                                            "http GET {path} = {expected_status} every {:?}",
                                            hc.interval
                                        )
                                    }
                                }),
                                id: self.reconciler.backend_id(&key, b.address),
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Counters and state read from the maps now.
    pub fn snapshot(&self) -> Result<StatsSnapshot, ControlError> {
        let mut vips = Vec::new();
        for status in self.vip_statuses() {
            let v = &self.config.vips[self.vip_index(&status.name)?];
            let key = vip_key(v);
            let (mut packets, mut bytes, mut new_flows) = (0, 0, 0);
            if let Some(id) = self.reconciler.vip_id(&key) {
                let s = self.dp.vip_stats(id)?;
                (packets, bytes, new_flows) = (s.packets, s.bytes, s.new_flows);
            }
            let mut backends = Vec::new();
            for b in &status.backends {
                let s = match b.id {
                    Some(id) => self.dp.backend_stats(id)?,
                    None => Default::default(),
                };
                backends.push(BackendSample {
                    backend: b.address.to_string(),
                    packets: s.packets,
                    bytes: s.bytes,
                    weight: b.weight,
                    healthy: b.healthy,
                });
            }
            let policy = self.policy_sample(&status.name)?;
            vips.push(VipSample {
                policy,
                vip: status.name,
                packets,
                bytes,
                new_flows,
                fail_open: status.fail_open,
                announced: (self.announcer.is_some() && v.announce != AnnounceMode::Never)
                    .then_some(status.announced),
                forwarding: status.forwarding.to_string(),
                backends,
            });
        }
        let v = self.dp.verdicts()?;
        let verdicts = Verdict::ALL
            .iter()
            .map(|x| (x.as_str().to_string(), v[*x as usize]))
            .collect();
        Ok(StatsSnapshot {
            taken_at: unix_now(),
            vips,
            verdicts,
            control: self.counters.clone(),
            flow_table: self.dp.flow_capacity().into(),
            flood: self.flood_sample()?,
            nat: self.dp.nat_stats()?.into(),
            driver: {
                let g = &self.config.global;
                self.driver_baseline
                    .samples(g.interfaces.iter().chain(&g.egress_interfaces))
            },
        })
    }

    /// Which backend `q` goes to: the data plane's own decision functions
    /// run against the live maps (`crate::explain`); the config only names
    /// the VIP the maps hold.
    pub fn explain(&self, q: &FlowQuery) -> Result<Explanation, ControlError> {
        let flow =
            FlowKey::new(q.src, q.sport, q.dst, q.dport, q.proto.ip_proto()).map_err(|e| {
                ControlError::Invalid {
                    field: "src".into(),
                    message: format!("source and destination families differ: {e}"),
                }
            })?;
        let t = explain::trace(&self.dp, &flow, &explain::packet_now(&flow, q.syn))?;
        let vip_name = t.vip.map(|(key, _)| self.vip_name(&key));
        Ok(Explanation::new(&t, vip_name))
    }
}

/// Refuses an `l2-dsr` backend the kernel does not route to directly (a
/// gateway, no route, a local address), and asks the kernel to resolve the
/// others' MACs: the data plane finds them in the neighbour table and drops
/// (`l2_no_neigh`) while they are unknown.
fn check_l2_paths(config: &Config) -> Result<(), ControlError> {
    let backends = l2_dsr_backends(config);
    if backends.is_empty() {
        return Ok(());
    }
    let mut paths = L2Paths::open()?;
    for (field, vip, address) in backends {
        match paths.path_to(address)? {
            Path::OnLink { oif } => {
                if let Err(e) = paths.resolve(address, oif) {
                    warn!(%vip, backend = %address, error = %crate::dataplane::attach::error_chain(&e), "cannot ask the kernel to resolve the backend's MAC");
                }
            }
            Path::OffLink(problem) => {
                return Err(ControlError::OffLinkBackend {
                    field,
                    vip,
                    address,
                    problem,
                })
            }
        }
    }
    Ok(())
}

/// (field path, VIP name, address) of every `l2-dsr` backend.
fn l2_dsr_backends(config: &Config) -> Vec<(String, String, IpAddr)> {
    let mut out = Vec::new();
    for (i, v) in config.vips.iter().enumerate() {
        if v.forwarding != ForwardingMode::L2Dsr {
            continue;
        }
        for (j, b) in v.backends.iter().enumerate() {
            out.push((
                format!("vip[{i}].backend[{j}].address"),
                v.name.clone(),
                b.address,
            ));
        }
    }
    out
}

impl Controller {
    /// Keeps the `l2-dsr` backends' neighbour entries resolved (the data
    /// plane's FIB lookups do not refresh them) and says when a route
    /// change made one off-link (its packets are then dropped as
    /// `l2_off_link` until the route comes back). Called periodically.
    pub fn refresh_l2_neighbours(&mut self) {
        let backends = l2_dsr_backends(&self.config);
        if backends.is_empty() {
            return;
        }
        let mut paths = match L2Paths::open() {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %crate::dataplane::attach::error_chain(&e), "cannot check the l2-dsr backends' paths");
                return;
            }
        };
        let mut off_link = BTreeSet::new();
        for (_, vip, address) in backends {
            match paths.path_to(address) {
                Ok(Path::OnLink { oif }) => {
                    if let Err(e) = paths.resolve(address, oif) {
                        warn!(%vip, backend = %address, error = %crate::dataplane::attach::error_chain(&e), "cannot ask the kernel to resolve the backend's MAC");
                    }
                }
                Ok(Path::OffLink(problem)) => {
                    if !self.off_link.contains(&address) {
                        warn!(%vip, backend = %address, "l2-dsr backend is no longer on-link: {problem}; its packets are dropped (l2_off_link)");
                    }
                    off_link.insert(address);
                }
                Err(e) => {
                    warn!(%vip, backend = %address, error = %crate::dataplane::attach::error_chain(&e), "cannot check the l2-dsr backend's path")
                }
            }
        }
        for address in self.off_link.difference(&off_link) {
            info!(backend = %address, "l2-dsr backend is on-link again");
        }
        self.off_link = off_link;
    }
}

pub fn vip_key(v: &VipConfig) -> VipKey {
    VipKey::new(v.address, v.port, v.protocol.ip_proto())
}

fn vip_flags(v: &VipConfig) -> u32 {
    let mut f = 0;
    if v.hashing == Hashing::SourceIp {
        f |= VIP_F_SOURCE_HASH;
    }
    if !v.flow_table {
        f |= VIP_F_NO_FLOW_TABLE;
    }
    if !v.ping {
        f |= VIP_F_NO_PING;
    }
    f
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Gives the allocator's freed memory back to the kernel. Parsing a large
/// config (a value tree plus a span index for error locations) peaks at many
/// times the file's size; glibc would otherwise keep that peak resident for
/// the daemon's lifetime.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
