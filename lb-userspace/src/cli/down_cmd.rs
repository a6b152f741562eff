//! `xlb down`: stop the instance's daemon, detach the balancer from every
//! interface it was attached to, and remove the instance's pins, or, when
//! the daemon cannot be stopped, say so and change nothing.
//!
//! The daemon is found from the pins (the `xlb run` processes holding the
//! instance's pinned maps: `daemon::owner`), whatever socket it serves;
//! `--socket`/`XLB_SOCKET`, when given, is asked too, after checking that
//! the daemon there runs this instance.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use nix::{sys::signal::Signal, unistd::Pid};

use super::DownArgs;
use crate::{
    api_client::{ApiClient, ClientError},
    config::Config,
    daemon::owner::daemons_of,
    dataplane::attach::{remove_instance, InstancePaths},
    outln,
};

pub async fn run(args: DownArgs, instance: &str, socket: Option<&Path>) -> anyhow::Result<()> {
    let paths = InstancePaths::new(instance);
    let daemons = daemons_of(&paths);
    let asked = match socket {
        Some(s) => ask_to_exit(s, instance).await?,
        None => false,
    };
    for d in &daemons {
        // SIGTERM ends the daemon as an API shutdown does (harmless twice).
        nix::sys::signal::kill(Pid::from_raw(d.pid), Signal::SIGTERM)
            .with_context(|| format!("stopping the xlb daemon (pid {})", d.pid))?;
    }
    let wait = Duration::from_secs_f64(args.wait.max(0.0));
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
        .request(hyper::Method::POST, "/v1/shutdown", None)
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
                 SIGTERM (stopped? hung?); nothing was detached or removed. Run `xlb down` again \
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
