//! `cargo xtask test`: the one command that checks everything (README, CI).
//! Phases: setup, fmt, clippy, the release eBPF build, `cargo test`, the
//! fuzzer (200,000 frames) and the benchmark smoke run.

use std::{
    io::IsTerminal,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use crate::{build_ebpf, command, paths, setup};

/// What privileged tests print when they skip (tests/src/privileged.rs).
pub const SKIP_MARKER: &str = "XLB-SKIPPED";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip `cargo fmt --check` and `cargo clippy` (quick local runs).
    #[arg(long)]
    pub no_lint: bool,
    /// Skip the `cargo xtask bench --quick` smoke run at the end.
    #[arg(long)]
    pub no_bench: bool,
    /// Skip the `cargo xtask fuzz --frames 200000` run after the tests.
    #[arg(long)]
    pub no_fuzz: bool,
    /// Extra arguments for `cargo test --workspace`, after `--`; a second `--`
    /// passes arguments to the test binaries, e.g.
    /// `cargo xtask test -- -p xlb-tests -- --nocapture` (`-p` replaces
    /// `--workspace`).
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    pub cargo_test_args: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let mut timer = Timer::default();
    let result = run_phases(args, &mut timer);
    timer.report();
    result
}

fn run_phases(args: &Args, timer: &mut Timer) -> Result<()> {
    let root = paths::workspace_root()?;
    timer.phase("setup", setup::run)?;
    if args.no_lint {
        println!("--no-lint: skipping cargo fmt and cargo clippy");
    } else {
        // Nightly rustfmt: rustfmt.toml's import-layout options are
        // nightly-only (stable would ignore them, with a warning per file).
        timer.phase("fmt", || {
            command::run(
                Command::new("cargo")
                    .current_dir(&root)
                    .env_remove("RUSTUP_TOOLCHAIN")
                    .args(["+nightly", "fmt", "--all", "--check"]),
            )
        })?;
        timer.phase("clippy", || {
            command::run(Command::new("cargo").current_dir(&root).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
    }
    timer.phase("build-ebpf --release", || {
        build_ebpf::run(&build_ebpf::Args { release: true }).map(drop)
    })?;
    timer.phase("cargo test", || {
        cargo_test(&root, &args.cargo_test_args, is_ci())
    })?;
    if !args.cargo_test_args.is_empty() {
        println!("a filtered test run: skipping the fuzzing and benchmark smoke runs");
        return Ok(());
    }
    // The fuzzer: 200,000 frames through the real balancer, every result
    // checked by its oracle; any violation fails the run. Needs root.
    if args.no_fuzz {
        println!("--no-fuzz: skipping the fuzzing run");
    } else if privileged("the fuzzing run")? {
        timer.phase("fuzz (200,000 frames)", || {
            crate::fuzz::run(&crate::fuzz::Args {
                frames: crate::fuzz::CI_FRAMES,
                seed: 1,
                show: None,
            })
        })?;
    }
    // The benchmark smoke run: `cargo xtask bench --quick` must produce the
    // JSON with every key (the figures themselves are not checked: benchmarks
    // are not tests). Needs root, like the tests.
    if args.no_bench {
        println!("--no-bench: skipping the benchmark smoke run");
        return Ok(());
    }
    if !privileged("the benchmark smoke run")? {
        return Ok(());
    }
    timer.phase("bench --quick (smoke)", || {
        crate::bench::smoke(&root.join("target").join("bench-smoke.json"))
    })
}

/// Whether a phase that needs root may run: yes as root; a loud skip for a
/// developer who is not; an error under CI, which never skips.
fn privileged(what: &str) -> Result<bool> {
    if setup::is_root() {
        return Ok(true);
    }
    if is_ci() {
        bail!("{what} needs root and CI=true: refusing to skip it");
    }
    println!("{SKIP_MARKER}: {what} needs root");
    Ok(false)
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `cargo test`, streamed; under CI, fails when a test printed [`SKIP_MARKER`].
fn cargo_test(root: &std::path::Path, extra: &[String], ci: bool) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args(test_args(extra, ci));
    // Output goes through a pipe: keep cargo's colours for a person watching.
    if std::io::stdout().is_terminal() && std::env::var_os("CARGO_TERM_COLOR").is_none() {
        cmd.env("CARGO_TERM_COLOR", "always");
    }
    let mut skipped = Vec::new();
    let result = command::run_tee(&mut cmd, |line| {
        if line.contains(SKIP_MARKER) {
            skipped.push(line.trim_end().to_string());
        }
    });
    if !skipped.is_empty() {
        println!("{} privileged test(s) skipped:", skipped.len());
        for line in &skipped {
            println!("  {line}");
        }
    }
    result?;
    if ci && !skipped.is_empty() {
        bail!(
            "CI=true but {} test(s) printed {SKIP_MARKER} (skipped instead of running); \
             CI must run every test, as root:\n  {}",
            skipped.len(),
            skipped.join("\n  ")
        );
    }
    Ok(())
}

/// `cargo test --workspace` + `extra` (without `--workspace` when `extra`
/// picks packages with `-p`: cargo would ignore them). Under CI the test
/// binaries also get `--show-output`: libtest hides what passing tests print,
/// and a skip marker printed by a test that then returns early must reach the
/// scan.
pub fn test_args(extra: &[String], ci: bool) -> Vec<String> {
    let cargo_part = extra.iter().take_while(|a| *a != "--");
    let picks_packages = cargo_part.into_iter().any(|a| {
        a == "-p" || a == "--package" || a.starts_with("--package=") || a.starts_with("-p")
    });
    let mut args = vec!["test".to_string()];
    if !picks_packages {
        args.push("--workspace".to_string());
    }
    args.extend(extra.iter().cloned());
    if ci {
        if !extra.iter().any(|a| a == "--") {
            args.push("--".to_string());
        }
        args.push("--show-output".to_string());
    }
    args
}

/// Wall time per phase, reported at the end whether the run passed or not.
#[derive(Default)]
struct Timer {
    phases: Vec<(&'static str, Duration, bool)>,
}

impl Timer {
    fn phase(&mut self, name: &'static str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        self.phases.push((name, start.elapsed(), result.is_ok()));
        result
    }

    fn report(&self) {
        println!("\nphase times:");
        let mut total = Duration::ZERO;
        for (name, elapsed, ok) in &self.phases {
            total += *elapsed;
            let status = if *ok { "ok" } else { "FAILED" };
            println!("  {name:<22} {:>8.1}s  {status}", elapsed.as_secs_f64());
        }
        println!("  {:<22} {:>8.1}s", "total", total.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_run() {
        assert_eq!(test_args(&[], false), ["test", "--workspace"]);
    }

    #[test]
    fn ci_adds_show_output_for_the_test_binaries() {
        assert_eq!(
            test_args(&[], true),
            ["test", "--workspace", "--", "--show-output"]
        );
        assert_eq!(
            test_args(&strings(&["--release", "--", "--nocapture"]), true),
            [
                "test",
                "--workspace",
                "--release",
                "--",
                "--nocapture",
                "--show-output"
            ]
        );
    }

    #[test]
    fn packages_replace_workspace() {
        for pick in [
            &["-p", "xlb-tests"][..],
            &["--package", "x"],
            &["--package=x"],
            &["-px"],
        ] {
            assert_eq!(test_args(&strings(pick), false)[1..], strings(pick)[..]);
        }
        // A `-p` for the test binaries is not a package selection.
        assert_eq!(
            test_args(&strings(&["--", "-p"]), false),
            ["test", "--workspace", "--", "-p"]
        );
    }

    #[test]
    fn extra_args_pass_through() {
        assert_eq!(
            test_args(&strings(&["--release", "--", "maglev"]), false),
            ["test", "--workspace", "--release", "--", "maglev"]
        );
    }
}
