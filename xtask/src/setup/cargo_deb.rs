//! cargo-deb, which `cargo xtask package` builds the Debian package with.
//! Pinned like bpf-linker: a release that builds with the stable toolchain
//! of TOOLCHAIN.md (cargo-deb 3.8.0 needs rustc 1.85), installed from
//! crates.io with its own lock file.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use super::Outcome;
use crate::{command, paths};

pub const VERSION: &str = "3.8.0";
const NAME: &str = "cargo-deb";

/// A cargo-deb of [`VERSION`] on PATH (which starts with `$CARGO_HOME/bin`),
/// or why there is none.
pub fn find() -> std::result::Result<PathBuf, String> {
    let Some(path) = paths::find_in_path(NAME) else {
        return Err(format!("{NAME} not found on PATH or in $CARGO_HOME/bin"));
    };
    match version_of(&path) {
        Ok(v) if v == VERSION => Ok(path),
        Ok(v) => Err(format!(
            "{} is version {v}, expected {VERSION}",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e:#}", path.display())),
    }
}

fn version_of(bin: &Path) -> Result<String> {
    let out = command::probe(Command::new(bin).arg("--version"))?;
    if !out.status.success() {
        bail!("`{} --version` failed ({})", bin.display(), out.status);
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("`{} --version` printed no version", bin.display()))
}

/// "cargo-deb 3.8.0" -> "3.8.0".
fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix(NAME)?
                .strip_prefix(char::is_whitespace)?
                .split_whitespace()
                .next()
        })
        .map(str::to_string)
}

pub fn ensure() -> Result<Outcome> {
    match find() {
        Ok(path) => Ok(Outcome::AlreadyPresent(format!(
            "{NAME} {VERSION} ({})",
            path.display()
        ))),
        Err(why) => {
            println!("{NAME}: {why}; installing {NAME} {VERSION} (takes a few minutes)");
            command::run(
                Command::new("cargo")
                    .args(["install", NAME, "--version", VERSION, "--locked", "--force"])
                    .env_remove("RUSTC")
                    .env_remove("RUSTC_WORKSPACE_WRAPPER"),
            )?;
            let path = find().map_err(anyhow::Error::msg)?;
            Ok(Outcome::Installed(format!(
                "{NAME} {VERSION} ({})",
                path.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_line() {
        assert_eq!(parse_version("cargo-deb 3.8.0\n").as_deref(), Some("3.8.0"));
        assert_eq!(parse_version("cargo-debx\n"), None);
    }
}
