//! The Rust toolchains: `nightly` with `rust-src` for the eBPF crate
//! (`-Z build-std=core`), and rustfmt/clippy for the active toolchain.

use std::process::Command;

use anyhow::{bail, Context, Result};

use super::Outcome;
use crate::{command, paths};

/// The nightly this project was verified with (docs: TOOLCHAIN.md).
pub const VERIFIED_NIGHTLY_RELEASE: &str = "1.97.0-nightly";
pub const VERIFIED_NIGHTLY_DATE: &str = "2026-05-19";

/// The fields of `rustc -vV` we use.
#[derive(Debug, PartialEq, Eq)]
pub struct RustcVersion {
    pub release: String,
    pub commit_date: Option<String>,
    pub host: String,
    /// "22.1.4"
    pub llvm_version: Option<String>,
}

impl RustcVersion {
    /// The LLVM major version ("22").
    pub fn llvm_major(&self) -> Option<&str> {
        self.llvm_version.as_deref()?.split('.').next()
    }

    fn describe(&self) -> String {
        let mut s = format!("rustc {}", self.release);
        if let Some(date) = &self.commit_date {
            s += &format!(" {date}");
        }
        if let Some(llvm) = &self.llvm_version {
            s += &format!(", LLVM {llvm}");
        }
        s
    }

    fn is_verified_nightly(&self) -> bool {
        self.release == VERIFIED_NIGHTLY_RELEASE
            && self.commit_date.as_deref() == Some(VERIFIED_NIGHTLY_DATE)
    }
}

/// Parses `rustc -vV` output.
pub fn parse_rustc_vv(text: &str) -> Result<RustcVersion> {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && v != "unknown")
    };
    Ok(RustcVersion {
        release: field("release").context("no `release:` line in `rustc -vV` output")?,
        commit_date: field("commit-date"),
        host: field("host").context("no `host:` line in `rustc -vV` output")?,
        llvm_version: field("LLVM version"),
    })
}

/// `rustc [+toolchain] -vV`, parsed.
pub fn rustc_version(toolchain: Option<&str>) -> Result<RustcVersion> {
    let mut cmd = Command::new("rustc");
    if let Some(toolchain) = toolchain {
        cmd.arg(format!("+{toolchain}"));
    }
    parse_rustc_vv(&command::stdout_of(cmd.arg("-vV"))?)
}

/// Whether `rustup toolchain list` output has the toolchain that `+name`
/// selects: `name-<host>` (or `name` itself, for custom toolchains).
pub fn has_toolchain(list: &str, name: &str, host: &str) -> bool {
    let full = format!("{name}-{host}");
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|t| t == full || t == name)
}

/// Whether `rustup component list --installed` output has `component`
/// (listed as `rust-src`, or with the host suffix as `clippy-<host>`).
pub fn has_component(list: &str, component: &str, host: &str) -> bool {
    let full = format!("{component}-{host}");
    list.lines()
        .map(str::trim)
        .any(|c| c == component || c == full)
}

fn host() -> Result<String> {
    Ok(rustc_version(None)?.host)
}

pub fn nightly_installed() -> Result<bool> {
    let list = command::stdout_of(Command::new("rustup").args(["toolchain", "list"]))?;
    Ok(has_toolchain(&list, "nightly", &host()?))
}

fn installed_components(toolchain: &str) -> Result<String> {
    command::stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        toolchain,
        "--installed",
    ]))
}

pub fn rust_src_installed() -> Result<bool> {
    Ok(nightly_installed()?
        && has_component(&installed_components("nightly")?, "rust-src", &host()?))
}

pub fn ensure_nightly() -> Result<Outcome> {
    if paths::find_in_path("rustup").is_none() {
        bail!("rustup not found on PATH; install it from https://rustup.rs");
    }
    if nightly_installed()? {
        let version = rustc_version(Some("nightly"))?;
        warn_if_unverified(&version);
        return Ok(Outcome::AlreadyPresent(format!(
            "nightly toolchain ({})",
            version.describe()
        )));
    }
    println!(
        "warning: installing the current `nightly`; xlb was verified with \
         rustc {VERIFIED_NIGHTLY_RELEASE} ({VERIFIED_NIGHTLY_DATE}), a newer nightly may not fit \
         the pinned aya crates"
    );
    command::run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ]))?;
    let version = rustc_version(Some("nightly"))?;
    warn_if_unverified(&version);
    Ok(Outcome::Installed(format!(
        "nightly toolchain ({})",
        version.describe()
    )))
}

fn warn_if_unverified(version: &RustcVersion) {
    if !version.is_verified_nightly() {
        println!(
            "warning: nightly is {}, not the verified rustc {VERIFIED_NIGHTLY_RELEASE} \
             ({VERIFIED_NIGHTLY_DATE}); if the eBPF build fails, install that one",
            version.describe()
        );
    }
}

/// rust-src for the eBPF build (`-Z build-std=core`) and rustfmt for
/// `cargo +nightly fmt` (the import-layout options of rustfmt.toml are
/// nightly-only).
pub fn ensure_nightly_components() -> Result<Outcome> {
    ensure_components("nightly", &["rust-src", "rustfmt"])
}

/// rustfmt and clippy for the toolchain that runs `cargo clippy` here (the
/// one that started the xtask; rustup passes it on in RUSTUP_TOOLCHAIN).
/// Minimal rustup profiles leave them out.
pub fn ensure_lint_components() -> Result<Outcome> {
    let active = command::stdout_of(Command::new("rustup").args(["show", "active-toolchain"]))?;
    let Some(toolchain) = active.split_whitespace().next().map(str::to_string) else {
        bail!("`rustup show active-toolchain` printed nothing");
    };
    ensure_components(&toolchain, &["rustfmt", "clippy"])
}

/// Adds whichever of `components` `toolchain` lacks.
fn ensure_components(toolchain: &str, components: &[&'static str]) -> Result<Outcome> {
    let host = host()?;
    let missing = |installed: &str| -> Vec<&'static str> {
        components
            .iter()
            .copied()
            .filter(|c| !has_component(installed, c, &host))
            .collect()
    };
    let todo = missing(&installed_components(toolchain)?);
    let what = format!("{} for {toolchain}", components.join(" and "));
    if todo.is_empty() {
        return Ok(Outcome::AlreadyPresent(what));
    }
    command::run(
        Command::new("rustup")
            .args(["component", "add", "--toolchain", toolchain])
            .args(&todo),
    )?;
    let left = missing(&installed_components(toolchain)?);
    if !left.is_empty() {
        bail!(
            "still missing after `rustup component add`: {}",
            left.join(", ")
        );
    }
    Ok(Outcome::Installed(format!(
        "{} for {toolchain}",
        todo.join(" and ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIGHTLY_VV: &str = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\n\
        binary: rustc\n\
        commit-hash: e50aa6fba4e63ab34c72bf9acfd2c307c1155d1a\n\
        commit-date: 2026-05-19\n\
        host: x86_64-unknown-linux-gnu\n\
        release: 1.97.0-nightly\n\
        LLVM version: 22.1.4\n";

    #[test]
    fn parses_nightly_vv() {
        let v = parse_rustc_vv(NIGHTLY_VV).unwrap();
        assert_eq!(
            v,
            RustcVersion {
                release: "1.97.0-nightly".into(),
                commit_date: Some("2026-05-19".into()),
                host: "x86_64-unknown-linux-gnu".into(),
                llvm_version: Some("22.1.4".into()),
            }
        );
        assert_eq!(v.llvm_major(), Some("22"));
        assert!(v.is_verified_nightly());
        assert_eq!(v.describe(), "rustc 1.97.0-nightly 2026-05-19, LLVM 22.1.4");
    }

    #[test]
    fn unknown_commit_date_and_missing_llvm() {
        let v = parse_rustc_vv("release: 1.95.0\nhost: h\ncommit-date: unknown\n").unwrap();
        assert_eq!(v.commit_date, None);
        assert_eq!(v.llvm_version, None);
        assert_eq!(v.llvm_major(), None);
        assert!(!v.is_verified_nightly());
    }

    #[test]
    fn vv_without_release_is_an_error() {
        assert!(parse_rustc_vv("host: x\n").is_err());
    }

    #[test]
    fn finds_nightly_for_the_host_only() {
        let host = "x86_64-unknown-linux-gnu";
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n\
                    1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_toolchain(list, "nightly", host));
        let dated = "stable-x86_64-unknown-linux-gnu (default)\n\
                     nightly-2026-05-19-x86_64-unknown-linux-gnu\n";
        assert!(!has_toolchain(dated, "nightly", host));
        assert!(!has_toolchain("", "nightly", host));
    }

    #[test]
    fn finds_components_with_or_without_host_suffix() {
        let host = "x86_64-unknown-linux-gnu";
        let list = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\n";
        assert!(has_component(list, "rust-src", host));
        assert!(has_component(list, "clippy", host));
        assert!(!has_component(list, "rustfmt", host));
    }
}
