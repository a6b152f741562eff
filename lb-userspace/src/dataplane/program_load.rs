//! Loading (verifying) an XDP program, retrying a verification the kernel
//! interrupted.

use aya::programs::{ProgramError, Xdp};

use super::{program_error, DataplaneError};

/// Verification attempts before an interrupted load is an error (libbpf's
/// number).
const LOAD_ATTEMPTS: u32 = 5;

/// Loads (verifies) `program`. The verifier gives up with EAGAIN when a
/// signal arrives for the loading thread (a child process exiting, a timer),
/// and the longer the verification, the likelier that is; such a load is
/// tried again, as libbpf does.
pub(crate) fn load_program(program: &mut Xdp, name: &'static str) -> Result<(), DataplaneError> {
    retry_interrupted(
        || program.load(),
        |e| {
            matches!(e, ProgramError::LoadError { io_error, .. }
                if io_error.raw_os_error() == Some(nix::errno::Errno::EAGAIN as i32))
        },
    )
    .map_err(|e| program_error(name, e))
}

/// Runs `attempt` until it succeeds, fails for a reason other than
/// `interrupted`, or has run `LOAD_ATTEMPTS` times.
fn retry_interrupted<T, E>(
    mut attempt: impl FnMut() -> Result<T, E>,
    interrupted: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(e) if tries < LOAD_ATTEMPTS && interrupted(&e) => tries += 1,
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_load_is_tried_again() {
        let mut calls = 0;
        let r: Result<u32, &str> = retry_interrupted(
            || {
                calls += 1;
                if calls < 3 {
                    Err("EAGAIN")
                } else {
                    Ok(calls)
                }
            },
            |e| *e == "EAGAIN",
        );
        assert_eq!(r, Ok(3));
    }

    #[test]
    fn other_errors_and_endless_interruptions_are_returned() {
        let mut calls = 0;
        let r: Result<(), &str> = retry_interrupted(
            || {
                calls += 1;
                Err("EINVAL")
            },
            |e| *e == "EAGAIN",
        );
        assert_eq!((r, calls), (Err("EINVAL"), 1));
        let mut calls = 0;
        let r: Result<(), &str> = retry_interrupted(
            || {
                calls += 1;
                Err("EAGAIN")
            },
            |e| *e == "EAGAIN",
        );
        assert_eq!((r, calls), (Err("EAGAIN"), LOAD_ATTEMPTS));
    }
}
