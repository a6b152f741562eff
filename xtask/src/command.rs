//! Running external commands: print what runs, stream or capture its output,
//! and turn a failure into an error that names the command and its status.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read, Write},
    process::{Command, ExitStatus, Output, Stdio},
    thread,
};

use anyhow::{bail, Context, Result};

/// The command line as a shell would take it, with the environment variables
/// the command sets (or removes) in front.
pub fn display(cmd: &Command) -> String {
    let mut removed = Vec::new();
    let mut set = Vec::new();
    for (key, value) in cmd.get_envs() {
        let key = key.to_string_lossy();
        match value {
            Some(value) => set.push(format!("{key}={}", quote(value))),
            None => removed.push(format!("-u {key}")),
        }
    }
    let mut parts = Vec::new();
    if !removed.is_empty() {
        parts.push("env".to_string());
        parts.append(&mut removed);
    }
    parts.append(&mut set);
    parts.push(quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(quote));
    let line = parts.join(" ");
    match cmd.get_current_dir() {
        Some(dir) => format!("(cd {} && {line})", quote(dir.as_os_str())),
        None => line,
    }
}

/// Quotes a word for the shell when it needs it; control characters (the
/// `\x1f` separator of CARGO_ENCODED_RUSTFLAGS) are shown as `$'\x1f'`.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.into_owned();
    }
    if word.chars().any(|c| c.is_control()) {
        let mut escaped = String::new();
        for c in word.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '\'' => escaped.push_str("\\'"),
                c if c.is_control() => escaped.push_str(&format!("\\x{:02x}", u32::from(c))),
                c => escaped.push(c),
            }
        }
        return format!("$'{escaped}'");
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// "exit status 1", or the signal that killed it.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Prints the command, runs it with the terminal's stdin/stdout/stderr, and
/// fails when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("command `{line}` failed: {}", describe(status));
    }
    Ok(())
}

/// Like [`run`], for a child that cleans up on Ctrl-C (the demo removes its
/// rack): the terminal sends SIGINT to the whole foreground process group,
/// and dying at once would hand the prompt back while the child still
/// cleans up behind it. So SIGINT and SIGTERM are caught while the child
/// runs, passed on to it (a SIGTERM sent to this process alone reaches it
/// too), and this returns once the child has finished.
pub fn run_forwarding_signals(cmd: &mut Command) -> Result<()> {
    use signal_hook::{
        consts::{SIGINT, SIGTERM},
        iterator::Signals,
    };
    let line = display(cmd);
    println!("$ {line}");
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("catching SIGINT and SIGTERM")?;
    let handle = signals.handle();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    let forwarder = thread::spawn(move || {
        for signal in signals.forever() {
            // SAFETY: kill() has no memory arguments. `pid` is our child until
            // the wait below reaps it; the forwarding stops right after.
            unsafe { libc::kill(pid, signal) };
        }
    });
    let status = child.wait();
    handle.close();
    let _ = forwarder.join();
    let status = status.with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("command `{line}` failed: {}", describe(status));
    }
    Ok(())
}

/// Runs a probe quietly (nothing printed) and returns its output whatever its
/// status; fails only when the program cannot be started.
pub fn probe(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))
}

/// Runs a query quietly and returns its stdout; fails, with its stderr, when
/// it does not succeed.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = probe(cmd)?;
    if !out.status.success() {
        bail!(
            "command `{}` failed: {}: {}",
            display(cmd),
            describe(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", display(cmd)))
}

/// Like [`run`], but copies the command's stdout and stderr through line by
/// line as they come and hands every line (lossily decoded) to `on_line`.
pub fn run_tee(cmd: &mut Command, mut on_line: impl FnMut(&str)) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("`{line}`: no pipes to read its output from");
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx_err = tx.clone();
    let out_thread = thread::spawn(move || copy_lines(stdout, std::io::stdout(), tx));
    let err_thread = thread::spawn(move || copy_lines(stderr, std::io::stderr(), tx_err));
    // Ends when both copiers have hung up.
    for text in rx {
        on_line(&text);
    }
    for copier in [out_thread, err_thread] {
        match copier.join() {
            Ok(result) => result.with_context(|| format!("copying the output of `{line}`"))?,
            Err(_) => bail!("the thread copying the output of `{line}` panicked"),
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("command `{line}` failed: {}", describe(status));
    }
    Ok(())
}

fn copy_lines(
    from: impl Read,
    mut to: impl Write,
    lines: std::sync::mpsc::Sender<String>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        to.write_all(&buf)?;
        to.flush()?;
        // The receiver only goes away when the run is over.
        let _ = lines.send(String::from_utf8_lossy(&buf).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_shows_env() {
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "build", "a b", "it's"])
            .env("CARGO_ENCODED_RUSTFLAGS", "-Ca\x1f-Cb")
            .env("LLVM_PREFIX", "/x/y");
        let shown = display(&cmd);
        assert!(
            shown.contains("CARGO_ENCODED_RUSTFLAGS=$'-Ca\\x1f-Cb'"),
            "{shown}"
        );
        assert!(shown.contains("LLVM_PREFIX=/x/y"), "{shown}");
        assert!(
            shown.ends_with("cargo +nightly build 'a b' 'it'\\''s'"),
            "{shown}"
        );
    }

    #[test]
    fn display_shows_removed_env() {
        let mut cmd = Command::new("cargo");
        cmd.env_remove("RUSTC").arg("build");
        assert_eq!(display(&cmd), "env -u RUSTC cargo build");
    }

    #[test]
    fn run_reports_command_and_status() {
        let err = run(Command::new("sh").args(["-c", "exit 3"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command `sh -c 'exit 3'` failed: exit status 3"
        );
    }

    #[test]
    fn a_ctrl_c_waits_for_the_child_to_clean_up() {
        let marker = std::env::temp_dir().join(format!("xtask-ctrl-c-{}.done", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        // The child signals this process as a terminal's Ctrl-C would, then
        // takes its time to clean up. Without the forwarding, SIGINT would
        // end this test process at once.
        let script = format!(
            "trap 'sleep 0.3; echo cleaned > {}; exit 0' INT; kill -INT $PPID; \
             while :; do sleep 0.05; done",
            marker.display()
        );
        run_forwarding_signals(Command::new("sh").args(["-c", &script])).unwrap();
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap_or_default(),
            "cleaned\n",
            "returned before the child had cleaned up"
        );
        let _ = std::fs::remove_file(&marker);
    }

    #[test]
    fn run_tee_sees_both_streams() {
        let mut seen = Vec::new();
        run_tee(
            Command::new("sh").args(["-c", "echo one; echo two >&2"]),
            |l| seen.push(l.trim_end().to_string()),
        )
        .unwrap();
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
    }
}
