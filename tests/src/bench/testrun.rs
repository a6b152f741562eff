//! Thin wrappers over BPF_PROG_TEST_RUN for the benchmarks: one call with the
//! kernel's timing, a repeated run, and a live-frames run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// Largest live-frames batch the kernel accepts (TEST_XDP_MAX_BATCH).
pub const MAX_LIVE_BATCH: u32 = 256;

/// A `struct xdp_md` for a frame of `len` bytes arriving on `ifindex`: with a
/// context the kernel takes the packet bounds from it (data 0, data_end =
/// length) and resolves the ingress device for FIB lookups and XDP_TX.
pub fn xdp_md(ifindex: u32, len: usize) -> [u8; 24] {
    // data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// One run's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub action: u32,
    /// Kernel-reported time per repetition.
    pub duration: Duration,
    /// Bytes of the output frame (0 when no output buffer was given).
    pub out_len: u32,
}

/// Runs `prog` `repeat` times on `frame` as received on `ifindex`. With
/// `repeat > 1` a rewriting program sees its own output again (only live mode
/// re-initialises the frame), so only non-rewriting paths measure validly.
pub fn run(prog: &Xdp, frame: &[u8], ifindex: u32, repeat: u32) -> Result<Run> {
    let ctx = xdp_md(ifindex, frame.len());
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat,
            ..Default::default()
        })
        .with_context(|| {
            format!(
                "BPF_PROG_TEST_RUN (repeat {repeat}) on a {}-byte frame",
                frame.len()
            )
        })?;
    Ok(Run {
        action: r.return_value,
        duration: r.duration,
        out_len: 0,
    })
}

/// Like [`run`] with `repeat = 1`, also returning the output frame.
pub fn run_with_output(prog: &Xdp, frame: &[u8], ifindex: u32) -> Result<(Run, Vec<u8>)> {
    let ctx = xdp_md(ifindex, frame.len());
    let mut out = vec![0u8; frame.len() + 256];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat: 1,
            ..Default::default()
        })
        .with_context(|| format!("BPF_PROG_TEST_RUN on a {}-byte frame", frame.len()))?;
    out.truncate(r.data_size_out as usize);
    Ok((
        Run {
            action: r.return_value,
            duration: r.duration,
            out_len: r.data_size_out,
        },
        out,
    ))
}

/// A live-frames run's outcome.
#[derive(Clone, Copy, Debug)]
pub struct LiveRun {
    /// Wall-clock time of the syscall.
    pub wall: Duration,
    /// Kernel-reported time per frame (excludes time the thread was scheduled
    /// out).
    pub kernel_per_frame: Duration,
}

/// Runs `prog` in live-frames mode: `repeat` copies of `frame` injected on
/// `ifindex` in batches of `batch`, XDP_TX/REDIRECT really transmitted.
pub fn run_live(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    batch: u32,
) -> Result<LiveRun> {
    let ctx = xdp_md(ifindex, frame.len());
    let start = Instant::now();
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            // Live mode refuses data_out and ctx_out.
            data_out: None,
            ctx_in: Some(&ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(batch),
            ..Default::default()
        })
        .with_context(|| {
            format!("BPF_PROG_TEST_RUN in live-frames mode (repeat {repeat}, batch {batch})")
        })?;
    Ok(LiveRun {
        wall: start.elapsed(),
        kernel_per_frame: r.duration,
    })
}
