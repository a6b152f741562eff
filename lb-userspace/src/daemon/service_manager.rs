//! Readiness for systemd (`Type=notify` units, see
//! `contrib/systemd/xlb.service`): the daemon says READY=1 only once the maps
//! are reconciled with the config, the program is attached to every
//! interface and the API and metrics listen, so units ordered after xlb
//! start when it balances. RELOADING=1 / READY=1 bracket a SIGHUP reload and
//! STOPPING=1 marks the exit; STATUS= is the line `systemctl status` shows.
//!
//! Every call is a no-op when the daemon was not started by a service
//! manager (no `NOTIFY_SOCKET` in the environment).

use sd_notify::NotifyState;
use tracing::warn;

/// The daemon serves: maps reconciled, program attached, API and metrics up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) starts; [`ready`] follows when it is done, whether it
/// applied or was refused.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    // systemd >= 253 (Type=notify-reload) wants the time of the request.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// The daemon exits (the data plane keeps running).
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}
