//! The Debian package as an operator installs it: `cargo xtask package`
//! builds it, `dpkg -x` installs it into a scratch root (never into this
//! machine's /), and the files, the conffile, the maintainer scripts, the
//! man pages, the completions and the systemd unit are checked there; the
//! scratch root is removed at the end.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use xlb_tests::{privileged::SKIP_MARKER, xlb_process::xlb_binary};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips loudly, or fails under CI, when a tool the check needs is missing.
fn tool_present(program: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !is_ci(),
            "{test}: {program} is missing and CI=true (cargo xtask setup installs it)"
        );
        eprintln!("{SKIP_MARKER}: {test}: {program} is missing (cargo xtask setup installs it)");
    }
    found
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemd-analyze verify` of `unit` with its `/usr/bin/xlb` pointed at
/// `binary` (verify checks that the command exists on this machine); the
/// man pages are checked separately. Any message is an error: verify warns
/// about unknown settings and still exits 0.
fn verify_unit(unit: &str, binary: &Path, dir: &Path) -> Result<(), String> {
    let copy = dir.join("xlb.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/xlb", &binary.to_string_lossy()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = run(
        "systemd-analyze",
        &["verify", "--man=no", &copy.to_string_lossy()],
    );
    let messages = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && messages.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("systemd-analyze verify: {messages}"))
    }
}

#[test]
fn the_unit_verifies() {
    if !tool_present("systemd-analyze", "the_unit_verifies") {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let unit = std::fs::read_to_string(repo().join("contrib/systemd/xlb.service"))
        .unwrap_or_else(|e| panic!("{e}"));
    verify_unit(&unit, xlb_binary(), dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // The check sees mistakes: a misspelt setting fails it.
    let broken = unit.replace("Type=notify", "Type=notfy");
    let refused = verify_unit(&broken, xlb_binary(), dir.path());
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("notfy")),
        "{refused:?}"
    );
}

/// lb-userspace's version (the package's upstream version).
fn package_version() -> String {
    let manifest = std::fs::read_to_string(repo().join("lb-userspace/Cargo.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no version in lb-userspace/Cargo.toml"))
        .to_string()
}

/// Builds the package with `cargo xtask package` into `out`.
fn build_package(out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(repo())
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "package",
            "--out-dir",
        ])
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("running cargo xtask package: {e}"));
    assert!(status.success(), "cargo xtask package failed");
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

#[test]
fn package_installs_into_a_scratch_root() {
    const TEST: &str = "package_installs_into_a_scratch_root";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_cargo_deb = run(&cargo, &["deb", "--version"]).status.success();
    if !has_cargo_deb {
        assert!(!is_ci(), "{TEST}: cargo-deb is missing and CI=true");
        eprintln!("{SKIP_MARKER}: {TEST}: cargo-deb is missing (cargo xtask setup installs it)");
        return;
    }
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let deb = build_package(&work.path().join("out"));
    let deb_s = deb.to_string_lossy().into_owned();

    // Control fields.
    let field = |f: &str| ok("dpkg-deb", &["-f", &deb_s, f]).trim().to_string();
    assert_eq!(field("Package"), "xlb");
    let version = package_version();
    assert_eq!(field("Version"), format!("{version}-1"));
    assert_eq!(field("Architecture"), "amd64");
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));

    // Install into the scratch root.
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    ok("dpkg", &["-x", &deb_s, &root.to_string_lossy()]);
    let path = |rel: &str| root.join(rel);
    for rel in [
        "usr/bin/xlb",
        "etc/xlb/xlb.toml",
        "usr/lib/systemd/system/xlb.service",
        "usr/share/bash-completion/completions/xlb",
        "usr/share/zsh/vendor-completions/_xlb",
        "usr/share/fish/vendor_completions.d/xlb.fish",
        "usr/share/man/man1/xlb.1.gz",
        "usr/share/man/man1/xlb-run.1.gz",
        "usr/share/man/man1/xlb-check.1.gz",
        "usr/share/man/man1/xlb-vip-add.1.gz",
        "usr/share/doc/xlb/copyright",
        "usr/share/doc/xlb/README.md",
        "usr/share/doc/xlb/grafana/xlb.json",
        "usr/share/doc/xlb/prometheus/xlb-alerts.yml",
    ] {
        assert!(path(rel).is_file(), "{rel} is not in the package");
    }
    let mode = std::fs::metadata(path("usr/bin/xlb"))
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // The packaged binary runs, and the shipped config (the example) passes
    // its own check.
    let xlb = path("usr/bin/xlb");
    let xlb_s = xlb.to_string_lossy().into_owned();
    assert_eq!(ok(&xlb_s, &["--version"]), format!("xlb {version}\n"));
    let conf = path("etc/xlb/xlb.toml");
    assert_eq!(
        std::fs::read(&conf).unwrap_or_default(),
        std::fs::read(repo().join("config/xlb.example.toml")).unwrap_or_default()
    );
    ok(&xlb_s, &["check", "--config", &conf.to_string_lossy()]);

    // Control archive: the conffile and the maintainer scripts cargo-deb
    // generated for the unit (daemon-reload; stop only on removal, so an
    // upgrade restarts a running daemon, which adopts its data plane).
    let control = work.path().join("control");
    ok("dpkg-deb", &["-e", &deb_s, &control.to_string_lossy()]);
    let read = |name: &str| {
        std::fs::read_to_string(control.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(read("conffiles"), "/etc/xlb/xlb.toml\n");
    for script in ["postinst", "prerm", "postrm"] {
        ok("sh", &["-n", &control.join(script).to_string_lossy()]);
    }
    assert!(read("postinst").contains("systemctl --system daemon-reload"));
    assert!(read("postinst").contains("try-restart xlb.service"));
    // Not started on install (the example config names interfaces this host
    // may not have); enabled again only if it was enabled before.
    assert!(!read("postinst").contains("deb-systemd-invoke start"));
    assert!(read("postinst").contains("was-enabled xlb.service"));
    assert!(
        read("prerm").contains("[ \"$1\" = remove ]"),
        "{}",
        read("prerm")
    );

    // The unit is the repository's, and verifies against the packaged binary.
    let unit = std::fs::read_to_string(path("usr/lib/systemd/system/xlb.service"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unit,
        std::fs::read_to_string(repo().join("contrib/systemd/xlb.service")).unwrap_or_default()
    );
    if tool_present("systemd-analyze", TEST) {
        verify_unit(&unit, &xlb, work.path()).unwrap_or_else(|e| panic!("{e}"));
    }

    // Man pages: gzipped roff that man finds (the unit's Documentation=).
    let page = ok(
        "zcat",
        &[&path("usr/share/man/man1/xlb-check.1.gz").to_string_lossy()],
    );
    assert!(page.contains(".TH xlb-check 1"), "{page}");
    if tool_present("man", TEST) {
        let found = Command::new("man")
            .args(["-w", "xlb", "xlb-run", "xlb-check"])
            .env("MANPATH", path("usr/share/man"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.status.success(),
            "{}",
            String::from_utf8_lossy(&found.stderr)
        );
    }

    // Bash completion: sourcing it registers a completion for xlb.
    let completion = path("usr/share/bash-completion/completions/xlb");
    let registered = ok(
        "bash",
        &[
            "-c",
            &format!("source '{}' && complete -p xlb", completion.display()),
        ],
    );
    assert!(registered.trim_end().ends_with(" xlb"), "{registered}");
    // The scratch root goes with `work`.
}
