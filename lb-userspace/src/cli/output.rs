//! The CLI's standard output. When the reader goes away
//! (`xlb explain ... | head -1`), writing fails with EPIPE: Rust ignores
//! SIGPIPE, and `println!` turns the failed write into a panic. Commands
//! write through [`outln!`](crate::outln) / [`out!`](crate::out) instead,
//! which return [`OutputError::Closed`]; `main` ends quietly on it, as the
//! command would have under the default SIGPIPE disposition, but without
//! making every socket write of the process deadly.

use std::{fmt, io, io::Write};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    /// The reading end of stdout is gone: nobody wants the rest.
    #[error("standard output was closed by its reader")]
    Closed,
    #[error("writing to standard output")]
    Write(#[source] io::Error),
}

/// Writes `args` to stdout and flushes (a closed pipe shows at once).
pub fn write(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => OutputError::Closed,
            _ => OutputError::Write(e),
        })
}

/// Whether `e` is, or was caused by, stdout being closed by its reader.
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref::<OutputError>(), Some(OutputError::Closed)))
}

/// `print!` that returns `Result<(), OutputError>` instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

/// `println!` that returns `Result<(), OutputError>` instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_stdout_counts_as_closed() {
        let closed = anyhow::Error::from(OutputError::Closed).context("printing the VIPs");
        assert!(is_closed_stdout(&closed));
        let other = anyhow::Error::from(OutputError::Write(io::Error::other("disk full")));
        assert!(!is_closed_stdout(&other));
        // An EPIPE from anything but stdout (a socket) is a real error.
        let socket = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_closed_stdout(&socket));
    }
}
