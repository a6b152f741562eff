//! `xlb check --config FILE [--diff]` as a deployment pipeline runs it: the
//! real binary, exit codes, the daemon's own FILE:LINE:COLUMN errors, and a
//! diff against a running daemon that a reload then makes true.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use lb_userspace::config::Config;
use xlb_tests::{
    privileged::require_root,
    rack::{scenario_rack, Rack},
    xlb_process::{xlb, xlb_binary},
};

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn run(args: &[&str]) -> Output {
    Command::new(xlb_binary())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running xlb {}: {e}", args.join(" ")))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_example_config() {
    let example = repo_file("config/xlb.example.toml");
    let path = example.to_string_lossy();
    let out = run(&["check", "--config", &path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The counts as the library reads the same file (the example grows).
    let c = lb_userspace::config::Config::from_file(&example).unwrap_or_else(|e| panic!("{e}"));
    let backends: usize = c.vips.iter().map(|v| v.backends.len()).sum();
    assert!(c.vips.len() >= 2 && backends >= 2, "a thin example config");
    assert_eq!(
        text(&out.stdout),
        format!(
            "{path}: valid ({} VIP(s), {backends} backend(s))\n",
            c.vips.len()
        )
    );
}

#[test]
fn check_refuses_a_bad_config_with_the_daemons_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.toml");
    // Line 11, column 11: the second backend repeats the first's address.
    std::fs::write(
        &bad,
        "[global]\ninstance = \"xlbcheckbad\"\ninterfaces = [\"xlbnonexistent0\"]\n\
         outer_source_v4 = \"10.0.0.2\"\n[[vip]]\naddress = \"10.100.0.1\"\nport = 80\n\
         [[vip.backend]]\naddress = \"10.0.0.11\"\n[[vip.backend]]\naddress = \"10.0.0.11\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = bad.to_string_lossy();
    let out = run(&["check", "--config", &path]);
    assert!(
        !out.status.success(),
        "a duplicate backend passed the check"
    );
    let expected = Config::from_file(&bad)
        .map(|_| panic!("the library accepts {path}"))
        .unwrap_err();
    let stderr = text(&out.stderr);
    assert_eq!(stderr, format!("error: {expected}\n"));
    assert!(
        stderr.starts_with(&format!("error: {path}:11:11: vip[0].backend[1].address: ")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    // The daemon refuses it with the very same text, before it touches
    // anything (it needs root to get that far).
    if require_root("check_refuses_a_bad_config_with_the_daemons_error (xlb run part)") {
        let daemon = run(&["run", "--config", &path]);
        assert!(!daemon.status.success());
        assert_eq!(text(&daemon.stderr), stderr);
    }
}

#[test]
fn check_fails_on_a_missing_file() {
    let out = run(&["check", "--config", "/nonexistent/xlb.toml"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: /nonexistent/xlb.toml: cannot read the config file"),
        "{stderr}"
    );
}

/// `xlb check --config FILE --diff` against the rack's daemon.
fn check_diff(rack: &Rack, file: &Path) -> Output {
    let socket = rack.daemon.socket.to_string_lossy().into_owned();
    xlb(
        &rack.topo.balancer.name,
        &[
            "check",
            "--config",
            &file.to_string_lossy(),
            "--diff",
            "--socket",
            &socket,
        ],
    )
}

#[test]
fn check_diff_shows_what_a_reload_changes() {
    let Some((_l, rack)) = scenario_rack("check_diff", 1) else {
        return;
    };
    let original = std::fs::read_to_string(&rack.config_path).unwrap_or_else(|e| panic!("{e}"));
    let new_file = rack.topo.file("xlb-new.toml");

    // The running config equals the file it was started with.
    let out = check_diff(&rack, &rack.config_path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no changes\n");

    // Drop the "sticky" VIP, reweight one of web's backends, add a VIP.
    let (b0, b1) = (rack.backend_addr("web", 0), rack.backend_addr("web", 1));
    let mut blocks: Vec<String> = original
        .split("\n\n")
        .filter(|b| !b.contains("name = \"sticky\""))
        .map(|b| {
            if b.contains("name = \"web\"") {
                b.replace("weight = 200", "weight = 50")
            } else {
                b.to_string()
            }
        })
        .collect();
    blocks.push(format!(
        "[[vip]]\nname = \"extra\"\naddress = \"10.200.0.9\"\nport = 443\n  \
         [[vip.backend]]\n  address = \"{b0}\"\n"
    ));
    let changed = blocks.join("\n\n");
    std::fs::write(&new_file, &changed).unwrap_or_else(|e| panic!("{e}"));
    let out = check_diff(&rack, &new_file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sticky = rack.vip("sticky");
    assert_eq!(
        text(&out.stdout),
        format!(
            "- vip sticky ({}:80/tcp) with its 3 backend(s)\n\
             ~ vip web (10.200.0.1:80/tcp)\n    ~ backend {b1} weight 200 -> 50\n\
             + vip extra (10.200.0.9:443/tcp)\n    + backend {b0} weight 100\n",
            sticky.address
        )
    );

    // A reload with that file makes the diff true: nothing is left to change.
    std::fs::write(&rack.config_path, &changed).unwrap_or_else(|e| panic!("{e}"));
    rack.daemon.cli(&["reload"]);
    let out = check_diff(&rack, &new_file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no changes\n");
    let listed = rack.daemon.cli(&["vip", "list", "--json"]);
    assert!(
        listed.contains("\"extra\"") && !listed.contains("\"sticky\""),
        "{listed}"
    );

    // A setting that needs a restart: check fails, and so would the reload.
    let resized = changed.replace("table_size = 65537", "table_size = 65521");
    std::fs::write(&new_file, &resized).unwrap_or_else(|e| panic!("{e}"));
    let out = check_diff(&rack, &new_file);
    assert!(!out.status.success(), "a table_size change passed --diff");
    assert_eq!(
        text(&out.stdout),
        "! global.table_size: 65537 -> 65521 (needs a restart)\n"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("a reload would be refused: global.table_size cannot change"),
        "{stderr}"
    );
    std::fs::write(&rack.config_path, &resized).unwrap_or_else(|e| panic!("{e}"));
    let socket = rack.daemon.socket.to_string_lossy().into_owned();
    let reload = xlb(&rack.topo.balancer.name, &["reload", "--socket", &socket]);
    assert!(
        !reload.status.success(),
        "the daemon accepted a table_size change"
    );
    assert!(
        text(&reload.stderr).contains("global.table_size cannot change while running"),
        "{}",
        text(&reload.stderr)
    );
    let _ = std::fs::remove_file(&new_file);
}
