//! Active health checks: one tokio task per checked backend probes it every
//! `interval` (TCP connect, or HTTP GET expecting a status) and reports
//! transitions after `rise` consecutive successes / `fall` consecutive
//! failures. The monitor keeps the set of tasks equal to what the config asks
//! for; the controller turns transitions into table changes.

mod probe;
mod state;

use std::{collections::HashMap, fmt, hash::Hash, net::SocketAddr, time::Duration};

pub use probe::probe;
pub use state::{HealthState, Outcome};
use tokio::{sync::mpsc, task::JoinHandle};

/// What to check and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    pub target: SocketAddr,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection must be accepted.
    Tcp,
    /// `GET path` must answer `expected_status`.
    Http {
        path: String,
        expected_status: u16,
        host: Option<String>,
    },
}

/// A health transition of one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition<K> {
    pub key: K,
    pub healthy: bool,
    /// The last probe's result, e.g. "connection refused".
    pub reason: String,
}

struct Task {
    spec: CheckSpec,
    handle: JoinHandle<()>,
}

/// Runs the health check tasks; transitions arrive on the channel given to
/// [`HealthMonitor::new`].
pub struct HealthMonitor<K> {
    tasks: HashMap<K, Task>,
    tx: mpsc::UnboundedSender<Transition<K>>,
}

impl<K> HealthMonitor<K>
where
    K: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static,
{
    pub fn new(tx: mpsc::UnboundedSender<Transition<K>>) -> Self {
        Self {
            tasks: HashMap::new(),
            tx,
        }
    }

    /// Makes the running checks exactly `wanted`: new ones start (from
    /// `initially_healthy`), changed ones restart, missing ones stop.
    pub fn sync(&mut self, wanted: Vec<(K, CheckSpec, bool)>) {
        let mut keep: HashMap<K, ()> = HashMap::new();
        for (key, spec, initially_healthy) in wanted {
            keep.insert(key.clone(), ());
            if let Some(t) = self.tasks.get(&key) {
                if t.spec == spec {
                    continue;
                }
                t.handle.abort();
            }
            let handle = tokio::spawn(run_check(
                key.clone(),
                spec.clone(),
                initially_healthy,
                self.tx.clone(),
            ));
            self.tasks.insert(key, Task { spec, handle });
        }
        self.tasks.retain(|k, t| {
            let stay = keep.contains_key(k);
            if !stay {
                t.handle.abort();
            }
            stay
        });
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl<K> Drop for HealthMonitor<K> {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.handle.abort();
        }
    }
}

async fn run_check<K: Clone + fmt::Debug>(
    key: K,
    spec: CheckSpec,
    initially_healthy: bool,
    tx: mpsc::UnboundedSender<Transition<K>>,
) {
    let mut state = HealthState::new(initially_healthy, spec.rise, spec.fall);
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = probe(&spec).await;
        let reason = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        if let Outcome::Changed(healthy) = state.observe(result.is_ok()) {
            if tx
                .send(Transition {
                    key: key.clone(),
                    healthy,
                    reason,
                })
                .is_err()
            {
                return; // the controller is gone
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn monitor_reports_down_and_up_and_stops_removed_checks() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let target = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut m = HealthMonitor::new(tx);
        let spec = CheckSpec {
            kind: CheckKind::Tcp,
            target,
            interval: Duration::from_millis(30),
            timeout: Duration::from_millis(200),
            rise: 2,
            fall: 2,
        };
        m.sync(vec![("b1", spec.clone(), true)]);
        assert_eq!(m.len(), 1);
        drop(l);
        let down = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
        let down = down
            .unwrap_or_else(|_| panic!("no transition"))
            .unwrap_or_else(|| panic!("channel closed"));
        assert_eq!((down.key, down.healthy), ("b1", false));
        assert!(down.reason.contains("refused"), "{}", down.reason);

        let l = tokio::net::TcpListener::bind(target)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let up = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
        let up = up
            .unwrap_or_else(|_| panic!("no transition"))
            .unwrap_or_else(|| panic!("channel closed"));
        assert_eq!((up.key, up.healthy), ("b1", true));

        // Same spec: nothing restarts; empty set: the task stops.
        m.sync(vec![("b1", spec, true)]);
        assert_eq!(m.len(), 1);
        m.sync(vec![]);
        assert!(m.is_empty());
        drop(l);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(rx.try_recv().is_err(), "a stopped check must not report");
    }
}
