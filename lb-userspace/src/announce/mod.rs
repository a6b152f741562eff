//! Announcing VIPs to the routers, through a routing daemon xlb does not
//! replace: xlb speaks no BGP. It keeps, in a kernel routing table of its own
//! (`announce.table`), one route per VIP address this node should announce;
//! BIRD's `kernel` protocol (or FRR's `ip import-table`) learns the table and
//! announces it over BGP. Routers spread flows over the nodes that announce
//! an address (ECMP); every node builds the same Maglev tables, so a flow a
//! router moves to another node still reaches the same backend.
//!
//! When an address is announced ([`policy`]): the daemon runs with its
//! program attached, and one of the address's VIPs asks for it (by default:
//! while it has a healthy backend with a weight above 0). Restarting the
//! daemon keeps the routes (the data plane keeps running meanwhile); a
//! planned stop (`xlb down`) withdraws them first and waits
//! `announce.drain_on_stop` before the program goes.
//!
//! - [`policy`]: the decisions, pure.
//! - [`routes`]: the routes in the kernel, through rtnetlink.
//! - [`record`]: the table and drain time `xlb down` reads when no daemon
//!   answers.

pub mod policy;
pub mod record;
pub mod routes;

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;
use tracing::{info, warn};

pub use self::{
    policy::{Phase, VipFacts, Wish},
    record::{Record, RecordError, RECORD_DIR},
    routes::{RouteError, RouteTable},
};
use crate::config::AnnounceConfig;

#[derive(Debug, Error)]
pub enum AnnounceError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// The announce routes of a running daemon.
pub struct Announcer {
    routes: RouteTable,
    phase: Phase,
    /// The routes in the table as last listed or changed.
    installed: BTreeSet<IpAddr>,
    /// The last route change that failed (retried at every sync).
    last_error: Option<String>,
    record: PathBuf,
    drain_on_stop: Duration,
}

impl Announcer {
    /// Takes over `config.table` for `instance` and records it for
    /// `xlb down`. With `attached_before` (pins adopted: the previous run's
    /// program is still attached) the routes in the table stay until the
    /// first sync after [`attached`](Self::attached); otherwise nothing
    /// serves this node's VIPs yet, so routes a previous run left are
    /// withdrawn now.
    pub fn start(
        config: &AnnounceConfig,
        instance: &str,
        record_dir: &Path,
        attached_before: bool,
    ) -> Result<Self, AnnounceError> {
        let mut routes = RouteTable::open(config.table)?;
        let installed = routes.list()?;
        let record = record::path_in(record_dir, instance);
        record::write(&record, &Record::of(config))?;
        let mut a = Self {
            routes,
            phase: Phase::Starting,
            installed,
            last_error: None,
            record,
            drain_on_stop: config.drain_on_stop,
        };
        if attached_before {
            if !a.installed.is_empty() {
                info!(
                    table = config.table,
                    routes = a.installed.len(),
                    "keeping the announce routes of the previous run (pins adopted)"
                );
            }
        } else {
            a.withdraw_all("no xlb program is attached yet");
        }
        Ok(a)
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn table(&self) -> u32 {
        self.routes.table()
    }

    pub fn installed(&self) -> &BTreeSet<IpAddr> {
        &self.installed
    }

    /// How long a planned stop waits after withdrawing.
    pub fn drain_on_stop(&self) -> Duration {
        self.drain_on_stop
    }

    /// Follows a runtime change of `announce.drain_on_stop`.
    pub fn set_drain_on_stop(&mut self, drain: Duration) {
        if drain == self.drain_on_stop {
            return;
        }
        self.drain_on_stop = drain;
        let r = Record {
            table: self.table(),
            drain_on_stop: drain,
        };
        if let Err(e) = record::write(&self.record, &r) {
            warn!(error = %crate::dataplane::attach::error_chain(&e), "updating the announce record");
        }
    }

    /// The program is attached: routes follow the VIPs from now on.
    pub fn attached(&mut self, vips: &[VipFacts]) {
        self.phase = Phase::Serving;
        self.sync(vips);
    }

    /// A planned stop: withdraws every route; later syncs add none.
    pub fn stop(&mut self) {
        self.phase = Phase::Stopping;
        self.withdraw_all("planned stop (xlb down)");
    }

    /// Makes the table match what `vips` ask for in the current phase:
    /// re-lists it first (so a route removed behind xlb's back comes back),
    /// then adds and removes, logging each change. While starting, nothing
    /// changes.
    pub fn sync(&mut self, vips: &[VipFacts]) {
        match self.routes.list() {
            Ok(listed) => self.installed = listed,
            Err(e) => {
                self.fail("listing", &e);
                return;
            }
        }
        if self.phase == Phase::Starting {
            return;
        }
        let wanted = policy::wanted_addresses(vips, self.phase);
        let askers = policy::askers(vips);
        let mut failed = false;
        for &address in wanted.difference(&self.installed.clone()) {
            match self.routes.add(address) {
                Ok(()) => {
                    self.installed.insert(address);
                    let by = askers.get(&address).map(|v| v.join(", "));
                    info!(
                        %address,
                        table = self.table(),
                        vips = by.as_deref().unwrap_or(""),
                        "announcing {address}: vips that ask for it: {}",
                        by.as_deref().unwrap_or("")
                    );
                }
                Err(e) => {
                    failed = true;
                    self.fail("announcing", &e);
                }
            }
        }
        for &address in self.installed.clone().difference(&wanted) {
            let why = withdraw_reason(address, vips, self.phase);
            match self.routes.remove(address) {
                Ok(()) => {
                    self.installed.remove(&address);
                    info!(%address, table = self.table(), "withdrawing {address}: {why}");
                }
                Err(e) => {
                    failed = true;
                    self.fail("withdrawing", &e);
                }
            }
        }
        if !failed {
            self.last_error = None;
        }
    }

    /// How `vip` stands, for `xlb vip list` and the metrics.
    pub fn state(&self, vip: &VipFacts, all: &[VipFacts]) -> Wish {
        policy::vip_state(
            vip,
            all,
            &self.installed,
            self.phase,
            self.last_error.as_deref(),
        )
    }

    fn withdraw_all(&mut self, why: &str) {
        let mut failed = false;
        for address in self.installed.clone() {
            match self.routes.remove(address) {
                Ok(()) => {
                    self.installed.remove(&address);
                    info!(%address, table = self.table(), "withdrawing {address}: {why}");
                }
                Err(e) => {
                    failed = true;
                    self.fail("withdrawing", &e);
                }
            }
        }
        if !failed {
            self.last_error = None;
        }
    }

    fn fail(&mut self, what: &str, e: &RouteError) {
        let text = crate::dataplane::attach::error_chain(e);
        warn!(table = self.table(), error = %text, "{what} announce routes failed; retrying at the next change or within seconds");
        self.last_error = Some(text);
    }
}

/// Why `address` is withdrawn, for the log line.
fn withdraw_reason(address: IpAddr, vips: &[VipFacts], phase: Phase) -> String {
    if phase == Phase::Stopping {
        return "planned stop (xlb down)".into();
    }
    let reasons: Vec<String> = vips
        .iter()
        .filter(|v| v.address == address)
        .map(|v| {
            format!(
                "vip {}: {}",
                v.name,
                policy::vip_wish(v.mode, &v.backends).reason
            )
        })
        .collect();
    if reasons.is_empty() {
        "no vip has this address any more".into()
    } else {
        reasons.join("; ")
    }
}

/// For `xlb run` with announcing off, and `xlb down`: withdraws the routes
/// the instance's record names and removes the record. Returns the
/// addresses withdrawn and the record (none: nothing was recorded).
pub fn withdraw_recorded(
    record_dir: &Path,
    instance: &str,
) -> Result<(Vec<IpAddr>, Option<Record>), AnnounceError> {
    let path = record::path_in(record_dir, instance);
    let Some(r) = record::read(&path)? else {
        return Ok((Vec::new(), None));
    };
    let mut routes = RouteTable::open(r.table)?;
    let mut withdrawn = Vec::new();
    for address in routes.list()? {
        routes.remove(address)?;
        withdrawn.push(address);
    }
    record::remove(&path).map_err(|source| RecordError::Write {
        path: path.clone(),
        source,
    })?;
    Ok((withdrawn, Some(r)))
}
