//! `cargo xtask setup`: installs what building and testing xlb needs, each
//! piece checked first and skipped when already there, so it is cheap to run
//! again (and `cargo xtask test` runs it every time).

pub mod apt;
pub mod bpf_linker;
pub mod cargo_deb;
pub mod rust_toolchain;

use anyhow::{Context, Result};

/// What a step found or did, in a few words ("bpf-linker 0.13.0 at ...").
pub enum Outcome {
    AlreadyPresent(String),
    Installed(String),
}

struct Step {
    name: &'static str,
    /// What to try when the step fails.
    hint: &'static str,
    run: fn() -> Result<Outcome>,
}

const STEPS: &[Step] = &[
    Step {
        name: "apt packages",
        hint: "run `cargo xtask setup` as root, or install the listed packages with apt-get yourself",
        run: apt::ensure,
    },
    Step {
        name: "nightly toolchain",
        hint: "run `rustup toolchain install nightly --profile minimal` and check network access to static.rust-lang.org",
        run: rust_toolchain::ensure_nightly,
    },
    Step {
        name: "rust-src and rustfmt for nightly",
        hint: "run `rustup component add rust-src rustfmt --toolchain nightly`",
        run: rust_toolchain::ensure_nightly_components,
    },
    Step {
        name: "rustfmt and clippy",
        hint: "run `rustup component add rustfmt clippy`",
        run: rust_toolchain::ensure_lint_components,
    },
    Step {
        name: "bpf-linker",
        hint: "read the cargo install output above; the build needs network access to crates.io \
               and the nightly toolchain's own libLLVM (`ls $(rustc +nightly --print sysroot)/lib/libLLVM.so.*`)",
        run: bpf_linker::ensure,
    },
    Step {
        name: "cargo-deb",
        hint: "read the cargo install output above; it needs network access to crates.io",
        run: cargo_deb::ensure,
    },
];

/// Runs every step; prints one line per step and a summary.
pub fn run() -> Result<()> {
    let mut installed = Vec::new();
    for step in STEPS {
        let outcome = (step.run)()
            .with_context(|| format!("setup step `{}` failed; try: {}", step.name, step.hint))?;
        match outcome {
            Outcome::AlreadyPresent(what) => println!("ok: {what} already present"),
            Outcome::Installed(what) => {
                println!("installed: {what}");
                installed.push(what);
            }
        }
    }
    if installed.is_empty() {
        println!("setup: nothing to do, everything already installed");
    } else {
        println!("setup: installed {} item(s):", installed.len());
        for what in &installed {
            println!("  - {what}");
        }
    }
    Ok(())
}

/// Whether this process runs as root (apt-get needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
