//! Shell completions and man pages generated from the clap definitions, for
//! packaging (`cargo xtask package` runs the hidden `xlb
//! generate-completions` and `xlb generate-man`), so they always match the
//! binary they ship with.

use std::{io::Write, path::Path};

use anyhow::Context;
use clap::CommandFactory;

use super::Cli;

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "xlb", out);
}

/// Writes `xlb.1` and one page per (visible) subcommand, `xlb-vip-add.1`
/// etc., into `dir` (created if missing).
pub fn man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_name_every_subcommand() {
        let mut out = Vec::new();
        completions(clap_complete::Shell::Bash, &mut out);
        let script = String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
        for word in [
            "run",
            "check",
            "vip",
            "backend",
            "decap",
            "--log-format",
            "--diff",
        ] {
            assert!(script.contains(word), "bash completion lacks {word}");
        }
    }

    #[test]
    fn man_pages_for_the_command_and_its_subcommands() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        man_pages(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let page = |name: &str| {
            std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert!(page("xlb.1").starts_with(".ie \\n(.g .ds Aq"), "roff");
        assert!(page("xlb.1").contains(".TH xlb 1"));
        assert!(page("xlb-check.1").contains("\\-\\-diff"));
        assert!(page("xlb-vip-add.1").contains("\\-\\-backend"));
        assert!(!dir.path().join("xlb-generate-man.1").exists());
    }
}
