//! `cargo xtask build-ebpf`: builds lb-ebpf's XDP programs (one object per bin)
//! for bpfel-unknown-none with the nightly toolchain and bpf-linker, the way
//! aya-build does (lb-userspace's build script embeds its own such build).

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{
    command, elf, paths,
    setup::{bpf_linker, rust_toolchain},
};

const PACKAGE: &str = "lb-ebpf";
const TARGET: &str = "bpfel-unknown-none";

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Build with the release profile: the recommended way, and what the
    /// daemon loads; debug objects may not pass the kernel verifier.
    #[arg(long)]
    pub release: bool,
}

/// Builds the objects and returns their paths.
pub fn run(args: &Args) -> Result<Vec<PathBuf>> {
    check_prerequisites()?;
    let root = paths::workspace_root()?;
    let metadata = cargo_metadata(&root)?;
    let (target_dir, bins) = parse_metadata(&metadata, PACKAGE)?;
    let profile = if args.release { "release" } else { "debug" };

    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root)
        .args(["+nightly", "build", "--package", PACKAGE, "--bins"])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            encoded_rustflags(bpf_target_arch()),
        )
        // Else a RUSTC set by an outer cargo would pick the stable compiler.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    if args.release {
        cmd.arg("--release");
    }
    command::run(&mut cmd).with_context(|| {
        format!("building the XDP programs ({PACKAGE}, {profile} profile) failed")
    })?;

    let out_dir = target_dir.join(TARGET).join(profile);
    println!("built {} XDP object(s), {profile} profile:", bins.len());
    let mut objects = Vec::new();
    for bin in &bins {
        let path = out_dir.join(bin);
        let description = check_object(&path)?;
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        let shown = path.strip_prefix(&root).unwrap_or(&path);
        println!("  {}: {description}, {size} bytes", shown.display());
        objects.push(path);
    }
    Ok(objects)
}

fn check_prerequisites() -> Result<()> {
    let mut missing = Vec::new();
    if !rust_toolchain::nightly_installed()? {
        missing.push("the nightly toolchain".to_string());
    } else if !rust_toolchain::rust_src_installed()? {
        missing.push("rust-src for nightly".to_string());
    }
    if let bpf_linker::Found::Unusable(why) = bpf_linker::find()? {
        missing.push(format!("bpf-linker {} ({why})", bpf_linker::VERSION));
    }
    if !missing.is_empty() {
        bail!(
            "cannot build the XDP programs, missing: {}\nrun `cargo xtask setup` first",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The flags aya-build 0.2.0 passes (`\x1f`-separated, as cargo wants them in
/// CARGO_ENCODED_RUSTFLAGS): the arch aya-ebpf's helpers are built for, and
/// BTF debug info that bpf-linker turns into the object's .BTF section.
pub fn encoded_rustflags(bpf_target_arch: &str) -> String {
    [
        format!("--cfg=bpf_target_arch=\"{bpf_target_arch}\""),
        "-Cdebuginfo=2".to_string(),
        "-Clink-arg=--btf".to_string(),
    ]
    .join("\x1f")
}

/// The host's architecture, as aya-build derives it from the build's target.
fn bpf_target_arch() -> &'static str {
    std::env::consts::ARCH
}

fn cargo_metadata(root: &Path) -> Result<serde_json::Value> {
    let text = command::stdout_of(Command::new("cargo").current_dir(root).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
    ]))?;
    serde_json::from_str(&text).context("cannot parse `cargo metadata` output")
}

/// From `cargo metadata` JSON: the target directory, and the bin targets of
/// `package`.
pub fn parse_metadata(
    metadata: &serde_json::Value,
    package: &str,
) -> Result<(PathBuf, Vec<String>)> {
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` has no target_directory")?;
    let packages = metadata["packages"]
        .as_array()
        .context("`cargo metadata` has no packages")?;
    let Some(pkg) = packages.iter().find(|p| p["name"] == package) else {
        bail!("package {package} is not in the workspace");
    };
    let bins: Vec<String> = pkg["targets"]
        .as_array()
        .context("package without targets in `cargo metadata`")?
        .iter()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    if bins.is_empty() {
        bail!("package {package} has no bin targets: nothing would be built");
    }
    Ok((PathBuf::from(target_dir), bins))
}

/// Checks that `path` is an eBPF ELF object and describes it.
fn check_object(path: &Path) -> Result<String> {
    let mut header = Vec::with_capacity(64);
    File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut header))
        .with_context(|| format!("cannot read the built object {}", path.display()))?;
    elf::describe_bpf_object(&header)
        .with_context(|| format!("{} is not an eBPF object", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustflags_match_aya_build() {
        assert_eq!(
            encoded_rustflags("x86_64"),
            "--cfg=bpf_target_arch=\"x86_64\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"
        );
    }

    #[test]
    fn finds_bins_of_the_package() {
        let metadata = serde_json::json!({
            "target_directory": "/w/target",
            "packages": [
                {"name": "other", "targets": [{"name": "x", "kind": ["bin"]}]},
                {"name": "lb-ebpf", "targets": [
                    {"name": "lb_ebpf", "kind": ["lib"]},
                    {"name": "xlb", "kind": ["bin"]},
                    {"name": "xlb-decap", "kind": ["bin"]}
                ]}
            ]
        });
        let (dir, bins) = parse_metadata(&metadata, "lb-ebpf").unwrap();
        assert_eq!(dir, PathBuf::from("/w/target"));
        assert_eq!(bins, ["xlb", "xlb-decap"]);
        assert!(parse_metadata(&metadata, "missing").is_err());
    }

    #[test]
    fn package_without_bins_is_an_error() {
        let metadata = serde_json::json!({
            "target_directory": "/t",
            "packages": [{"name": "lb-ebpf", "targets": [{"name": "l", "kind": ["lib"]}]}]
        });
        assert!(parse_metadata(&metadata, "lb-ebpf").is_err());
    }

    #[test]
    fn this_workspace_has_ebpf_bins() {
        let root = paths::workspace_root().unwrap();
        let (_, bins) = parse_metadata(&cargo_metadata(&root).unwrap(), PACKAGE).unwrap();
        assert!(!bins.is_empty());
    }
}
