//! `xlb down`: a planned stop. Withdraws the announced VIP routes (asking a
//! running daemon to do it and to keep serving for `announce.drain_on_stop`
//! while routers move flows away), then detaches the balancer from every
//! interface it was attached to and removes the instance's pins.

use std::{path::Path, time::Duration};

use anyhow::Context;

use super::DownArgs;
use crate::{
    announce::{self, record, RECORD_DIR},
    api_client::ApiClient,
    dataplane::attach::{remove_instance, InstancePaths},
};

/// How long a daemon gets to exit, beyond its drain time.
const EXIT_GRACE: Duration = Duration::from_secs(5);

pub async fn run(args: DownArgs) -> anyhow::Result<()> {
    let record_dir = Path::new(RECORD_DIR);
    let recorded = record::read(&record::path_in(record_dir, &args.instance)).unwrap_or_else(|e| {
        eprintln!("warning: {}", crate::dataplane::attach::error_chain(&e));
        None
    });
    let drain = recorded.map(|r| r.drain_on_stop).unwrap_or_default();

    // A running daemon would otherwise keep its maps open (and could
    // announce again): it withdraws, drains, and exits.
    let client = ApiClient::new(&args.socket);
    let daemon_stopped = client
        .request(
            hyper::Method::POST,
            "/v1/shutdown",
            Some(br#"{"withdraw": true}"#.to_vec()),
        )
        .await
        .is_ok();
    if daemon_stopped {
        if !drain.is_zero() {
            println!(
                "the daemon withdrew its routes and serves for {} more (announce.drain_on_stop)",
                humantime::format_duration(drain)
            );
        }
        wait_for_socket_gone(&args.socket, drain + EXIT_GRACE).await;
        println!("stopped the daemon listening on {}", args.socket.display());
    }

    // Without a daemon (or if it failed to), the routes are withdrawn here,
    // still before the program goes.
    let (withdrawn, _) = announce::withdraw_recorded(record_dir, &args.instance)
        .context("withdrawing the announced routes")?;
    for address in &withdrawn {
        println!("withdrew the route announcing {address}");
    }
    if !withdrawn.is_empty() && !daemon_stopped && !drain.is_zero() {
        println!(
            "waiting {} for routers to move flows away (announce.drain_on_stop)",
            humantime::format_duration(drain)
        );
        tokio::time::sleep(drain).await;
    }

    let paths = InstancePaths::new(&args.instance);
    let existed = paths.root.exists();
    let detached =
        remove_instance(&paths).with_context(|| format!("removing instance {}", args.instance))?;
    for ifname in &detached {
        println!("detached xlb from {ifname}");
    }
    if existed {
        println!("removed {}", paths.root.display());
    } else {
        println!("nothing pinned at {}: already down", paths.root.display());
    }
    Ok(())
}

async fn wait_for_socket_gone(path: &Path, limit: Duration) {
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        if !path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
