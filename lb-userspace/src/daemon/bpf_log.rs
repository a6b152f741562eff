//! Forwards the XDP program's aya-log records (rare events: no backend, FIB
//! failures) into the daemon's tracing output. The program only emits them
//! when `global.bpf_log` enables a level: with "off" the verifier prunes every
//! log statement, so the fast path pays nothing.

use anyhow::Context;
use aya_log::EbpfLogger;
use tokio::io::unix::AsyncFd;
use tracing::warn;

use crate::dataplane::Dataplane;

/// Re-emits eBPF records as tracing events at INFO: `global.bpf_log` already
/// chose which levels the program emits, so the daemon's own filter (which
/// operators set for the daemon, e.g. `info`) must not hide them again.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        tracing::info!(target: "xlb::ebpf", ebpf_level = %record.level(), "{}", record.args());
    }

    fn flush(&self) {}
}

pub fn forward(dp: &mut Dataplane) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let logger = EbpfLogger::init_with_logger(dp.ebpf_mut(), ToTracing)
        .context("opening the eBPF log ring buffer")?;
    // SAFETY: the logger owns the ring buffer's fd and keeps it open, unchanged,
    // for as long as the AsyncFd owns the logger.
    let mut fd = unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
        .context("polling the eBPF log ring buffer")?;
    Ok(tokio::spawn(async move {
        loop {
            let mut guard = match fd.readable_mut().await {
                Ok(g) => g,
                Err(e) => {
                    warn!(error = %e, "eBPF log forwarding stopped");
                    return;
                }
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}
