//! Running setup commands (`ip`, `sysctl`, `ethtool`) with errors that show the
//! command and its output.

use std::process::{Command, ExitStatus};

/// A setup command that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

/// Runs `program args...` and returns its standard output, or an error with
/// the command line and its stderr.
pub fn output(program: &str, args: &[&str]) -> Result<String, CommandError> {
    let command = || {
        let mut line = vec![program];
        line.extend_from_slice(args);
        line.join(" ")
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| CommandError::Spawn {
            command: command(),
            source,
        })?;
    if !out.status.success() {
        return Err(CommandError::Failed {
            command: command(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`output`], but panics with the error (setup failures are test
/// failures, and the message says why).
pub fn run(program: &str, args: &[&str]) -> String {
    output(program, args).unwrap_or_else(|e| panic!("{}", error_chain(&e)))
}

/// `e` and its causes, `: `-separated (for panic messages).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text += &format!(": {c}");
        cause = c.source();
    }
    text
}

/// Like [`run`] but returns whether it succeeded, for best-effort cleanup.
pub fn try_run(program: &str, args: &[&str]) -> bool {
    output(program, args).is_ok()
}

/// Splits a command line on whitespace (setup commands never quote).
pub fn run_line(line: &str) -> String {
    let mut parts = line.split_whitespace();
    let program = parts.next().unwrap_or_else(|| panic!("empty command line"));
    let args: Vec<&str> = parts.collect();
    run(program, &args)
}
