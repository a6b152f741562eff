//! Forwards the XDP program's aya-log records (rare events: no backend, FIB
//! failures) into the daemon's tracing output. The program only emits them
//! when `global.bpf_log` enables a level: with "off" the verifier prunes every
//! log statement, so the fast path pays nothing.

use anyhow::Context;
use aya_log::EbpfLogger;
use tokio::io::unix::AsyncFd;
use tracing::warn;

use crate::dataplane::Dataplane;

pub fn forward(dp: &mut Dataplane) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let logger = EbpfLogger::init(dp.ebpf_mut()).context("opening the eBPF log ring buffer")?;
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
