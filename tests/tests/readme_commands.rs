//! The README's promise to a newcomer: its "Try it" block is exactly two
//! commands, one running the demo and one running every test, and CI runs
//! that same test command (`.ci/run`).

use std::path::Path;

fn repo_text(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The commands of the first `sh` block after `## Try it`, comments removed.
fn try_it_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split_once("\n## Try it\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("README.md has no '## Try it' section"));
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("the Try it section has no sh block"));
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn try_it_is_the_demo_and_the_test_command() {
    assert_eq!(
        try_it_commands(&repo_text("README.md")),
        ["cargo xtask demo", "cargo xtask test"]
    );
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let ci = repo_text(".ci/run");
    let last = ci
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or_default();
    assert_eq!(
        last.trim(),
        "exec cargo xtask test \"$@\"",
        ".ci/run:\n{ci}"
    );
}

#[test]
fn extra_commands_in_the_block_are_seen() {
    let readme = "x\n## Try it\n\n```sh\ncargo xtask demo   # a\ncargo xtask demo --fleet\ncargo xtask test\n```\n";
    assert_eq!(try_it_commands(readme).len(), 3);
}
