//! bpf-linker, the linker rustc uses for the bpfel target.
//!
//! bpf-linker 0.13.0 links against LLVM 22 and no system package provides
//! that on Debian 12, so it is built against the nightly toolchain's own
//! shared libLLVM: a stub prefix `$CARGO_HOME/xlb-llvm` holds a `llvm-config`
//! that prints the LLVM version and `lib/` symlinks to the nightly's
//! `libLLVM.so.*` (as `libLLVM.so` to link, and under its soname to load; the
//! binary gets an rpath to that `lib/`, so the prefix must stay).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use super::{rust_toolchain, Outcome};
use crate::{command, paths};

pub const VERSION: &str = "0.13.0";
const NAME: &str = "bpf-linker";
/// The stub LLVM prefix, under `$CARGO_HOME`.
const PREFIX_DIR: &str = "xlb-llvm";

/// What a look for bpf-linker found.
pub enum Found {
    /// A working bpf-linker of [`VERSION`].
    Ok(PathBuf),
    /// Not installed, or unusable for the reason given.
    Unusable(String),
}

/// Looks on PATH, then in `$CARGO_HOME/bin`, for a bpf-linker that runs and
/// reports [`VERSION`].
pub fn find() -> Result<Found> {
    let mut candidates: Vec<PathBuf> = paths::find_in_path(NAME).into_iter().collect();
    let in_cargo_home = paths::cargo_home()?.join("bin").join(NAME);
    if !candidates.contains(&in_cargo_home) && in_cargo_home.exists() {
        candidates.push(in_cargo_home);
    }
    let mut problems = Vec::new();
    for path in candidates {
        match version_of(&path) {
            Ok(v) if v == VERSION => return Ok(Found::Ok(path)),
            Ok(v) => problems.push(format!("{} is version {v}", path.display())),
            Err(e) => problems.push(format!("{}: {e:#}", path.display())),
        }
    }
    Ok(Found::Unusable(if problems.is_empty() {
        format!("{NAME} not found on PATH or in $CARGO_HOME/bin")
    } else {
        problems.join("; ")
    }))
}

/// Runs `bin --version` and returns the version it reports.
fn version_of(bin: &Path) -> Result<String> {
    let out = command::probe(Command::new(bin).arg("--version"))?;
    if !out.status.success() {
        bail!(
            "`{} --version` failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("`{} --version` printed no version", bin.display()))
}

/// "bpf-linker 0.13.0" -> "0.13.0".
fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(NAME)?.split_whitespace().next())
        .map(str::to_string)
}

pub fn ensure() -> Result<Outcome> {
    match find()? {
        Found::Ok(path) => Ok(Outcome::AlreadyPresent(format!(
            "{NAME} {VERSION} ({})",
            path.display()
        ))),
        Found::Unusable(why) => {
            println!("{NAME}: {why}; building {NAME} {VERSION} (takes about a minute)");
            let path = install(&paths::cargo_home()?)?;
            Ok(Outcome::Installed(format!(
                "{NAME} {VERSION} ({})",
                path.display()
            )))
        }
    }
}

/// Builds bpf-linker into `root/bin` against the nightly's libLLVM, with the
/// stub prefix in `root/xlb-llvm`, checks that it runs, and returns its path.
pub fn install(root: &Path) -> Result<PathBuf> {
    let nightly = rust_toolchain::rustc_version(Some("nightly"))?;
    let (Some(llvm_version), Some(llvm_major)) =
        (nightly.llvm_version.clone(), nightly.llvm_major())
    else {
        bail!("`rustc +nightly -vV` reports no LLVM version");
    };
    let libllvm = nightly_libllvm()?;
    let prefix = root.join(PREFIX_DIR);
    write_stub_prefix(&prefix, &llvm_version, &libllvm)?;

    let features = format!("llvm-{llvm_major}");
    let install_cmd = |locked: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "install", NAME, "--version", VERSION])
            .args(["--no-default-features", "--features", &features])
            .arg("--root")
            .arg(root)
            // Replaces a broken or other-version copy in the same root.
            .arg("--force")
            .env("LLVM_PREFIX", &prefix)
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER");
        if locked {
            cmd.arg("--locked");
        }
        cmd
    };
    if let Err(locked_err) = command::run(&mut install_cmd(true)) {
        println!("{NAME}: the --locked build failed ({locked_err:#}); retrying without --locked");
        command::run(&mut install_cmd(false))?;
    }

    let bin = root.join("bin").join(NAME);
    let version = version_of(&bin).context("the freshly built bpf-linker does not run")?;
    if version != VERSION {
        bail!(
            "{} reports version {version}, expected {VERSION}",
            bin.display()
        );
    }
    Ok(bin)
}

/// The nightly sysroot's `lib/libLLVM.so.*` (e.g.
/// `libLLVM.so.22.1-rust-1.97.0-nightly`), whose file name is its soname.
fn nightly_libllvm() -> Result<PathBuf> {
    let sysroot =
        command::stdout_of(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let entries = fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", lib.display()))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("libLLVM.so.")
        {
            found.push(entry.path());
        }
    }
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no libLLVM.so.* in {}: this nightly ships no shared LLVM to build bpf-linker against",
            lib.display()
        ),
        many => bail!(
            "several libLLVM.so.* in {}: {}",
            lib.display(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `prefix/bin/llvm-config` printing `llvm_version`, and `prefix/lib/`
/// symlinks `libLLVM.so` and `<soname>` to `libllvm`. Replaces what is there.
fn write_stub_prefix(prefix: &Path, llvm_version: &str, libllvm: &Path) -> Result<()> {
    let bin = prefix.join("bin");
    let lib = prefix.join("lib");
    for dir in [&bin, &lib] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let config = bin.join("llvm-config");
    fs::write(&config, llvm_config_script(llvm_version))
        .with_context(|| format!("cannot write {}", config.display()))?;
    fs::set_permissions(&config, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", config.display()))?;
    let soname = libllvm
        .file_name()
        .with_context(|| format!("{} has no file name", libllvm.display()))?;
    for name in [Path::new("libLLVM.so"), Path::new(soname)] {
        let link = lib.join(name);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))?;
        }
        std::os::unix::fs::symlink(libllvm, &link)
            .with_context(|| format!("cannot link {} -> {}", link.display(), libllvm.display()))?;
    }
    println!(
        "{NAME}: stub LLVM prefix {} (LLVM {llvm_version}, {})",
        prefix.display(),
        libllvm.display()
    );
    Ok(())
}

/// bpf-linker's build script only needs `llvm-config` to exist; llvm-sys asks
/// it for the version.
fn llvm_config_script(llvm_version: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Written by `cargo xtask setup`: a stand-in llvm-config for building\n\
         # bpf-linker against the nightly toolchain's libLLVM (see ../lib).\n\
         echo {llvm_version}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_line() {
        assert_eq!(
            parse_version("bpf-linker 0.13.0\n").as_deref(),
            Some("0.13.0")
        );
        assert_eq!(parse_version("something else\n"), None);
    }

    #[test]
    fn stub_prefix_layout() {
        let tmp = std::env::temp_dir().join(format!("xlb-xtask-stub-{}", std::process::id()));
        let fake_lib = tmp.join("libLLVM.so.22.1-rust-1.97.0-nightly");
        fs::create_dir_all(&tmp).unwrap();
        fs::write(&fake_lib, b"").unwrap();
        let prefix = tmp.join("prefix");
        // Twice: the second run must replace, not fail on, the first's links.
        for _ in 0..2 {
            write_stub_prefix(&prefix, "22.1.4", &fake_lib).unwrap();
        }
        let out = Command::new(prefix.join("bin/llvm-config"))
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "22.1.4\n");
        for name in ["libLLVM.so", "libLLVM.so.22.1-rust-1.97.0-nightly"] {
            assert_eq!(
                fs::read_link(prefix.join("lib").join(name)).unwrap(),
                fake_lib
            );
        }
        fs::remove_dir_all(&tmp).unwrap();
    }

    /// Builds bpf-linker from crates.io into a throw-away root (about a
    /// minute, needs the network): `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore]
    fn install_into_a_fresh_root() {
        let root =
            std::env::temp_dir().join(format!("xlb-xtask-bpf-linker-{}", std::process::id()));
        let bin = install(&root).unwrap();
        assert_eq!(bin, root.join("bin/bpf-linker"));
        assert_eq!(version_of(&bin).unwrap(), VERSION);
        fs::remove_dir_all(&root).unwrap();
    }
}
