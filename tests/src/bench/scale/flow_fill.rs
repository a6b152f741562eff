//! Filling the connection table to a share of its capacity with entries of
//! flows that are never sent (so the measured flows find a table that full).
//!
//! `XLB_FLOWS` keeps one LRU list per CPU (`BPF_F_NO_COMMON_LRU`), each with
//! `entries / possible CPUs` entries, and an entry written from userspace
//! goes to the list of the CPU the writing thread runs on. So the filler
//! writes an equal share from each possible CPU, pinned to it in turn (the
//! benchmark itself runs pinned to one CPU, so its affinity mask cannot say
//! which CPUs exist); a CPU it may not run on fails the point.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{ensure, Context, Result};
use lb_common::{FlowKey, FlowValue, PROTO_TCP};

use crate::bench::env::{pin_to_cpu, BenchEnv};

/// Share of the target the table must hold after filling.
const MIN_FILLED: f64 = 0.99;
/// Passes over the CPUs before giving up.
const FILL_ROUNDS: usize = 3;

/// Filler flow `i`: from 100.64.0.0/10, to `vip`:80.
fn filler(vip: Ipv4Addr, i: u32) -> Result<FlowKey> {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i / 50_000);
    Ok(FlowKey::new(
        IpAddr::V4(src),
        10_000 + (i % 50_000) as u16,
        IpAddr::V4(vip),
        80,
        PROTO_TCP,
    )?)
}

/// Adds filler entries (pointing at `backend_id`) until the table holds
/// about `target` entries; `next` is the first filler index not yet used
/// (returned updated). Leaves the thread pinned to `home_cpu`.
pub fn fill_to(
    env: &mut BenchEnv,
    vip: Ipv4Addr,
    backend_id: u32,
    target: u32,
    next: &mut u32,
    home_cpu: usize,
) -> Result<usize> {
    let cpus: Vec<usize> = (0..lb_userspace::dataplane::possible_cpus()? as usize).collect();
    let value = FlowValue::new(backend_id, 0);
    let goal = (MIN_FILLED * f64::from(target)).ceil() as usize;
    let mut count = env.dp.flow_count().context("counting XLB_FLOWS")?;
    // Each CPU in turn gets all that is still missing: a list that is full
    // evicts its own oldest entries instead of growing, and the next CPU's
    // list takes the rest. The benchmark's own flows sit on its CPU's list,
    // so the lists do not fill evenly; a few rounds settle it.
    let result = (|| -> Result<()> {
        for _round in 0..FILL_ROUNDS {
            for &cpu in &cpus {
                if count >= goal {
                    return Ok(());
                }
                let missing = target as usize - count.min(target as usize);
                pin_to_cpu(cpu).with_context(|| format!("filling CPU {cpu}'s LRU list"))?;
                for _ in 0..missing {
                    env.dp
                        .insert_flow(&filler(vip, *next)?, &value)
                        .context("filling XLB_FLOWS")?;
                    *next += 1;
                }
                count = env.dp.flow_count().context("counting XLB_FLOWS")?;
            }
        }
        Ok(())
    })();
    pin_to_cpu(home_cpu)?;
    result?;
    ensure!(
        count >= goal,
        "the connection table holds {count} entries after filling to {target} (per-CPU LRU \
         lists of CPUs this process may not run on cannot be filled)"
    );
    Ok(count)
}
