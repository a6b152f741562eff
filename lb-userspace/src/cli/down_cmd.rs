//! `xlb down`: a planned stop. The instance's daemon withdraws its announced
//! VIP routes, keeps serving for `announce.drain_on_stop` while routers move
//! flows away, and exits; then the balancer is detached from every interface
//! and the instance's pins are removed. When the daemon cannot be stopped,
//! `down` says so and changes nothing.
//!
//! The daemon is found from the pins (the `xlb run` processes holding the
//! instance's pinned maps: `daemon::owner`), whatever socket it serves, and
//! told with SIGUSR1 (SIGTERM would keep the routes: that is a restart);
//! `--socket`/`XLB_SOCKET`, when given, is asked too, after checking that
//! the daemon there runs this instance. Without a daemon, the routes a
//! previous run recorded are withdrawn here, still before the program goes.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use nix::{sys::signal::Signal, unistd::Pid};

use super::DownArgs;
use crate::{
    announce::{self, record, RECORD_DIR},
    api_client::{ApiClient, ClientError},
    config::Config,
    daemon::owner::daemons_of,
    dataplane::attach::{remove_instance, InstancePaths},
    outln,
};

pub async fn run(args: DownArgs, instance: &str, socket: Option<&Path>) -> anyhow::Result<()> {
    let paths = InstancePaths::new(instance);
    let record_dir = Path::new(RECORD_DIR);
    let recorded = record::read(&record::path_in(record_dir, instance)).unwrap_or_else(|e| {
        eprintln!("warning: {}", crate::dataplane::attach::error_chain(&e));
        None
    });
    let drain = recorded.map(|r| r.drain_on_stop).unwrap_or_default();
    let daemons = daemons_of(&paths);
    let asked = match socket {
        Some(s) => ask_to_exit(s, instance).await?,
        None => false,
    };
    for d in &daemons {
        // The planned stop (withdraw, drain, exit); harmless after the API's.
        request_planned_stop(d.pid)
            .with_context(|| format!("stopping the xlb daemon (pid {})", d.pid))?;
    }
    if (asked || !daemons.is_empty()) && !drain.is_zero() {
        outln!(
            "the daemon withdraws its routes and serves for {} more (announce.drain_on_stop)",
            humantime::format_duration(drain)
        )?;
    }
    let wait = Duration::from_secs_f64(args.wait.max(0.0)) + drain;
    if !daemons.is_empty() {
        wait_until_gone(&paths, instance, wait).await?;
        for d in &daemons {
            outln!(
                "stopped the xlb daemon of instance {instance} (pid {})",
                d.pid
            )?;
        }
    }
    if let (true, Some(s)) = (asked, socket) {
        wait_for_socket_gone(s, wait).await;
        if daemons.is_empty() {
            outln!("stopped the xlb daemon listening on {}", s.display())?;
        }
    }

    // Without a daemon (or if it failed to), the routes are withdrawn here,
    // still before the program goes.
    let (withdrawn, _) = announce::withdraw_recorded(record_dir, instance)
        .context("withdrawing the announced routes")?;
    for address in &withdrawn {
        outln!("withdrew the route announcing {address}")?;
    }
    if !withdrawn.is_empty() && daemons.is_empty() && !asked && !drain.is_zero() {
        outln!(
            "waiting {} for routers to move flows away (announce.drain_on_stop)",
            humantime::format_duration(drain)
        )?;
        tokio::time::sleep(drain).await;
    }

    let existed = paths.root.exists();
    let detached =
        remove_instance(&paths).with_context(|| format!("removing instance {instance}"))?;
    for ifname in &detached {
        outln!("detached xlb from {ifname}")?;
    }
    if existed {
        outln!("removed {}", paths.root.display())?;
    } else {
        outln!("nothing pinned at {}: already down", paths.root.display())?;
    }
    Ok(())
}

/// Sends the daemon `pid` the planned-stop signal. A daemon that is already
/// gone is stopped: it may have exited between being found by its maps and
/// this signal, e.g. at once after the API's request when it has no drain
/// time.
fn request_planned_stop(pid: i32) -> nix::Result<()> {
    match nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGUSR1) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Asks the daemon at `socket` to exit, once its config shows it runs
/// `instance`; returns whether one was there. A daemon of another instance
/// is an error: stopping it would be the wrong thing, and nothing changes.
async fn ask_to_exit(socket: &Path, instance: &str) -> anyhow::Result<bool> {
    let client = ApiClient::new(socket);
    let text = match client.get_text("/v1/config").await {
        Ok(t) => t,
        // Nobody there: the daemon, if any, is found by its maps.
        Err(ClientError::Connect { .. }) => return Ok(false),
        Err(e) => {
            return Err(e).with_context(|| format!("asking the daemon at {}", socket.display()))
        }
    };
    let running = Config::from_toml_str(&text, None)
        .map(|c| c.global.instance)
        .with_context(|| format!("reading the config of the daemon at {}", socket.display()))?;
    if running != instance {
        bail!(
            "the daemon at {} runs instance {running:?}, not {instance:?}: nothing was stopped, \
             detached or removed (use --instance {running} to take that one down)",
            socket.display()
        );
    }
    client
        .request(
            hyper::Method::POST,
            "/v1/shutdown",
            Some(br#"{"withdraw": true}"#.to_vec()),
        )
        .await
        .with_context(|| format!("asking the daemon at {} to exit", socket.display()))?;
    Ok(true)
}

/// Waits until no `xlb run` holds the instance's maps; fails, before
/// anything is detached or removed, when one still does after `wait`.
async fn wait_until_gone(
    paths: &InstancePaths,
    instance: &str,
    wait: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        let left = daemons_of(paths);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let pids: Vec<String> = left.iter().map(|d| d.pid.to_string()).collect();
            bail!(
                "the xlb daemon of instance {instance} (pid {}) did not exit within {:.1} s of \
                 SIGUSR1 and its drain time (stopped? hung?); nothing was detached or removed. Run `xlb down` again \
                 once it has exited",
                pids.join(", "),
                wait.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_socket_gone(path: &Path, wait: Duration) {
    let deadline = Instant::now() + wait;
    while path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race `xlb down --socket` ran into in CI: the daemon exited after
    /// the API's request, before the signal.
    #[test]
    fn a_daemon_already_gone_counts_as_stopped() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        let pid = i32::try_from(child.id()).unwrap_or_else(|e| panic!("{e}"));
        child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        assert_eq!(request_planned_stop(pid), Ok(()));
    }
}
