//! `xlb down`: stop the daemon if it runs, detach the balancer from every
//! interface it was attached to, and remove the instance's pins.

use anyhow::Context;

use super::DownArgs;
use crate::{
    api_client::ApiClient,
    dataplane::attach::{remove_instance, InstancePaths},
};

pub async fn run(args: DownArgs) -> anyhow::Result<()> {
    // A running daemon would otherwise keep its maps open; ask it to exit.
    let client = ApiClient::new(&args.socket);
    if client
        .request(hyper::Method::POST, "/v1/shutdown", None)
        .await
        .is_ok()
    {
        wait_for_socket_gone(&args.socket).await;
        println!("stopped the daemon listening on {}", args.socket.display());
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

async fn wait_for_socket_gone(path: &std::path::Path) {
    for _ in 0..50 {
        if !path.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
