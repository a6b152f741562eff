//! `xlb check --config FILE [--diff]`: validates a config file exactly as
//! `xlb run` and a reload read it (same checks, same `FILE:LINE:COLUMN`
//! errors), without touching the kernel or a running daemon, so a deployment
//! pipeline can check a change before it ships. What depends on the host
//! (whether the interfaces exist) is checked when the daemon starts.
//!
//! With `--diff` it also asks the running daemon for its effective config
//! (`GET /v1/config`: the file it read plus runtime API changes) and prints
//! what a reload with FILE would change; it fails when the reload would be
//! refused because a `[global]` setting that needs a restart changed.

use std::path::Path;

use anyhow::Context;

use super::CheckArgs;
use crate::{
    api_client::ApiClient,
    config::{diff::ConfigDiff, Config},
};

pub async fn run(socket: &Path, args: &CheckArgs) -> anyhow::Result<()> {
    // No context added: the error reads exactly as `xlb run` prints it.
    let file = Config::from_file(&args.config)?;
    if !args.diff {
        let backends: usize = file.vips.iter().map(|v| v.backends.len()).sum();
        println!(
            "{}: valid ({} VIP(s), {backends} backend(s))",
            args.config.display(),
            file.vips.len()
        );
        return Ok(());
    }
    let dump = ApiClient::new(socket)
        .get_text("/v1/config")
        .await
        .context("reading the running daemon's config for --diff")?;
    let running = Config::from_toml_str(&dump, None)
        .context("the running daemon's config (GET /v1/config) does not parse")?;
    let diff = ConfigDiff::between(&running, &file);
    print!("{diff}");
    let restart = diff.needs_restart();
    anyhow::ensure!(
        restart.is_empty(),
        "{} is valid, but a reload would be refused: {} cannot change while the daemon runs \
         (stop it with `xlb down` and start it again)",
        args.config.display(),
        restart.join(", ")
    );
    Ok(())
}
