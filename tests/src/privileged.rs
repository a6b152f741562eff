//! Tests that need root (BPF, namespaces) call [`require_root`] first. A
//! developer running as a normal user sees a loud skip; under CI (`CI=true`)
//! a missing privilege is a failure, never a silent skip.

/// The marker `cargo xtask test` looks for under CI to fail the run.
pub const SKIP_MARKER: &str = "XLB-SKIPPED";

/// True when the test may run. Panics under CI when not root.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let ci = std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false);
    if ci {
        panic!("{test} needs root (BPF and network namespaces) and CI=true: refusing to skip");
    }
    eprintln!("{SKIP_MARKER}: {test} needs root (BPF, network namespaces); run the tests as root");
    false
}
