//! CPU time of threads (kernel NAPI threads and our own), from perf
//! task-clock counters, and pinning.
//!
//! Why perf and not `/proc/<tid>/schedstat` (the scheduler's run time): on
//! this kernel (6.18) the scheduler's accounting misattributes time between a
//! real-time thread and a normal one that share a CPU and switch tens of
//! thousands of times a second, as the sink's and the balancer's NAPI
//! threads do here. Measured over the same 0.7 s with the balancer's thread
//! and the sink's on one CPU: schedstat 79 ms and 670 ms, perf's task clock
//! 482 ms and 206 ms (perf sampling agrees with the latter); on a CPU with
//! one normal thread the two agree. The task clock is kept by perf's own
//! context-switch hooks.

use std::{
    collections::BTreeSet,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{bail, Context, Result};

/// `struct perf_event_attr` as of PERF_ATTR_SIZE_VER0 (64 bytes): enough for
/// a counting software event.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit flags (disabled, inherit, exclude_*...): all clear, so the
    /// counter runs at once and counts kernel and user time.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// A perf task-clock counter on one task: nanoseconds it ran since opened.
#[derive(Debug)]
pub struct TaskClock {
    fd: OwnedFd,
    pub tid: i32,
}

impl TaskClock {
    pub fn open(tid: i32) -> Result<Self> {
        let attr = PerfEventAttr {
            type_: PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_SW_TASK_CLOCK,
            ..Default::default()
        };
        // SAFETY: a valid attr that outlives the call; the kernel reads
        // `size` bytes of it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                tid,
                -1 as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            bail!(
                "perf_event_open(task-clock) on task {tid}: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self { fd, tid })
    }

    /// Nanoseconds the task has run since the counter was opened.
    pub fn read_ns(&self) -> Result<u64> {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a local u64.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n != std::mem::size_of::<u64>() as isize {
            bail!(
                "reading the task clock of task {}: {}",
                self.tid,
                std::io::Error::last_os_error()
            );
        }
        Ok(v)
    }
}

/// Sum of the counters' nanoseconds.
pub fn sum_ns(clocks: &[TaskClock]) -> Result<u64> {
    clocks.iter().map(TaskClock::read_ns).sum()
}

/// Pids of the tasks (processes and kernel threads) whose name starts with
/// `prefix`. Kernel threads' names are cut at 15 characters.
pub fn tasks_named(prefix: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            if comm.trim_end().starts_with(prefix) {
                out.insert(pid);
            }
        }
    }
    out
}

/// Pins task `tid` to `cpu`.
pub fn pin_task(tid: i32, cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CPU {cpu} is out of range"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set)
        .with_context(|| format!("pinning task {tid} to CPU {cpu}"))
}

/// Gives task `tid` the real-time policy SCHED_FIFO at `priority`.
pub fn set_fifo(tid: i32, priority: i32) -> Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a plain syscall with a valid pointer to a local.
    let rc = unsafe { libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        bail!(
            "sched_setscheduler(SCHED_FIFO) on task {tid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// The CPUs this process may run on, ascending.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .context("reading the CPU affinity")?;
    Ok((0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU time of the calling thread by the kernel's own accounting
    /// (CLOCK_THREAD_CPUTIME_ID): an independent reference for the perf
    /// counter, unaffected by how busy the machine is.
    fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// The counter agrees with the thread's CPU time over 50 ms of spinning,
    /// measured in CPU time (not wall time, which a loaded machine
    /// stretches: other threads then take the CPU and neither clock runs).
    #[test]
    fn task_clock_counts_a_spinning_thread() {
        let clock = TaskClock::open(gettid()).unwrap();
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < 50_000_000 {
            std::hint::spin_loop();
        }
        let reference = thread_cpu_ns() - start;
        let ns = clock.read_ns().unwrap();
        let (lo, hi) = (reference * 9 / 10, reference * 11 / 10);
        assert!(
            (lo..=hi).contains(&ns),
            "task clock {ns} ns, thread CPU time {reference} ns"
        );
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
