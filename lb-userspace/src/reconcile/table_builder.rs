//! Maglev tables of a plan, built just before they are written: a window of
//! them at a time on all cores, so a 1,000-VIP plan neither holds 1,000 tables
//! in memory nor builds them one by one.

use std::{
    any::Any,
    collections::HashMap,
    net::IpAddr,
    panic::{self, AssertUnwindSafe},
};

use lb_common::NO_BACKEND;

use super::{Op, ReconcileError};
use crate::maglev::{self, MaglevBackend};

/// What a VIP's Maglev table is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// For errors and logs.
    pub vip: String,
    pub size: u32,
    /// (address, weight), sorted: the Maglev input.
    pub inputs: Vec<(IpAddr, u16)>,
    /// Kernel backend id of each input.
    pub ids: Vec<u32>,
}

impl TableSpec {
    /// The table as backend ids.
    pub fn build(&self) -> Result<Vec<u32>, ReconcileError> {
        let mb: Vec<MaglevBackend> = self
            .inputs
            .iter()
            .map(|(a, w)| MaglevBackend::new(*a, *w))
            .collect();
        let table =
            maglev::build_table(&mb, self.size).map_err(|source| ReconcileError::Maglev {
                vip: self.vip.clone(),
                source,
            })?;
        Ok(table
            .into_iter()
            .map(|i| self.ids.get(i as usize).copied().unwrap_or(NO_BACKEND))
            .collect())
    }
}

type Built = Result<Vec<u32>, ReconcileError>;

/// Builds the tables of a plan's `WriteTable` ops with `build` (in production
/// [`TableSpec::build`]), in plan order, a window ahead of the writes.
pub(super) struct TableBuilder<'a, B> {
    build: B,
    /// Step and spec of the plan's WriteTable ops, in order.
    specs: Vec<(usize, &'a TableSpec)>,
    /// Index into `specs` of the first table not built yet.
    next: usize,
    built: HashMap<usize, Built>,
    cores: usize,
}

impl<'a, B> TableBuilder<'a, B>
where
    B: Fn(&TableSpec) -> Built + Sync,
{
    pub fn new(ops: &'a [Op], build: B) -> Self {
        Self {
            build,
            specs: ops
                .iter()
                .enumerate()
                .filter_map(|(step, op)| match op {
                    Op::WriteTable { table, .. } => Some((step, table)),
                    _ => None,
                })
                .collect(),
            next: 0,
            built: HashMap::new(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The table of the WriteTable op at `step`; steps are taken in order.
    pub fn take(&mut self, step: usize) -> Built {
        if !self.built.contains_key(&step) {
            self.build_window();
        }
        self.built.remove(&step).unwrap_or_else(|| {
            Err(ReconcileError::Inconsistent {
                what: format!("step {step} is not a table write of the plan, or was taken twice"),
            })
        })
    }

    fn build_window(&mut self) {
        let end = (self.next + self.cores * 4).min(self.specs.len());
        let batch = &self.specs[self.next..end];
        self.next = end;
        let build = &self.build;
        // A single table (a weight change, a health transition) is built right
        // here: a thread would only add its start-up to the latency.
        if let [(i, spec)] = batch {
            self.built.insert(*i, build_one(build, spec));
            return;
        }
        let per_thread = batch.len().div_ceil(self.cores).max(1);
        let results: Vec<(usize, Built)> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks(per_thread)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(i, spec)| (*i, build_one(build, spec)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                // `build_one` turns a build's panic into its error, so a
                // thread can only fail outside any build: raise that here.
                .flat_map(|h| h.join().unwrap_or_else(|p| panic::resume_unwind(p)))
                .collect()
        });
        self.built.extend(results);
    }
}

/// `build(spec)`, with a panic turned into an error naming the VIP.
fn build_one<B: Fn(&TableSpec) -> Built>(build: &B, spec: &TableSpec) -> Built {
    // A panicking build leaves nothing behind: it only reads `spec` and its
    // half-built table is dropped with it.
    panic::catch_unwind(AssertUnwindSafe(|| build(spec))).unwrap_or_else(|payload| {
        Err(ReconcileError::TableBuildPanicked {
            vip: spec.vip.clone(),
            message: panic_message(payload.as_ref()),
        })
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
