//! Running setup commands (`ip`, `sysctl`, `ethtool`) with errors that show the
//! command and its output.

use std::process::Command;

/// Runs `program args...`; panics with the command line and its stderr when it
/// fails (setup failures are test failures, and the message says why).
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {}: {e}", args.join(" ")));
    if !out.status.success() {
        panic!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`run`] but returns whether it succeeded, for best-effort cleanup.
pub fn try_run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Splits a command line on whitespace (setup commands never quote).
pub fn run_line(line: &str) -> String {
    let mut parts = line.split_whitespace();
    let program = parts.next().unwrap_or_else(|| panic!("empty command line"));
    let args: Vec<&str> = parts.collect();
    run(program, &args)
}
