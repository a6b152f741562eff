//! Each VIP's config as an established flow's packet reaches it: a
//! [`VipSlot`] in `XLB_VIP_CFG` at the index `XLB_VIP_CFG_IX` holds for the
//! VIP's id (`lb_common::maps::vip_slot` has the data plane's side).
//!
//! A slot is written only at an index no packet can reach: a changed VIP
//! gets a fresh index ([`IndexPool`]), written whole, and then its id is
//! pointed at it with one aligned 8-byte store through the index map's
//! shared mapping. The index it leaves is retired and handed out again only
//! after an RCU grace period ([`super::rcu_wait`]): XDP programs run inside
//! RCU read-side sections, so once one has passed, no packet still holds
//! the old index. The data plane never reads half of an update, without a hash
//! lookup per packet.

use std::{
    collections::BTreeSet,
    os::fd::{AsFd, AsRawFd},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use aya::maps::{Array, Map, MapData, MapError};
use lb_common::{map_names, VipSlot, NO_VIP_CONFIG};
use memmap2::{MmapMut, MmapOptions};

use super::{map_err, rcu_wait, DataplaneError};

/// Free and retired indexes of `XLB_VIP_CFG` (pure bookkeeping).
#[derive(Debug)]
pub struct IndexPool {
    /// Handed out next (no packet can hold them).
    free: Vec<u32>,
    /// Left by a VIP since the last grace period: a packet may still hold
    /// one of them.
    retired: Vec<u32>,
}

impl IndexPool {
    /// A pool of indexes `1..entries`, less those `in_use`. Maps adopted
    /// from another daemon (`adopted`) may have been read through an index
    /// that daemon had just left: the others start retired, free after the
    /// first grace period.
    pub fn new(entries: u32, in_use: &BTreeSet<u32>, adopted: bool) -> Self {
        let unused: Vec<u32> = (1..entries).rev().filter(|i| !in_use.contains(i)).collect();
        if adopted {
            Self {
                free: Vec::new(),
                retired: unused,
            }
        } else {
            Self {
                free: unused,
                retired: Vec::new(),
            }
        }
    }

    /// A free index. When none is left, `grace` must wait for a grace
    /// period, after which the retired indexes are free again. `None` only
    /// when every index is in use.
    pub fn take(&mut self, grace: impl FnOnce()) -> Option<u32> {
        if self.free.is_empty() && !self.retired.is_empty() {
            grace();
            self.free.append(&mut self.retired);
        }
        self.free.pop()
    }

    /// `index` is no longer pointed at; packets may still read it until
    /// the next grace period.
    pub fn retire(&mut self, index: u32) {
        if index != NO_VIP_CONFIG {
            self.retired.push(index);
        }
    }

    /// `index`, taken but never pointed at (its slot could not be
    /// written): no packet can have read it, it is free at once.
    pub fn give_back(&mut self, index: u32) {
        if index != NO_VIP_CONFIG {
            self.free.push(index);
        }
    }

    #[cfg(test)]
    fn retired(&self) -> &[u32] {
        &self.retired
    }
}

/// Waits for an RCU grace period ([`rcu_wait::grace_period`]) before
/// retired indexes are handed out again. Should the kernel refuse the wait
/// (it never has where xlb can load its maps), a second instead: no XDP run
/// lasts that long.
fn grace_period() {
    if let Err(e) = rcu_wait::grace_period() {
        tracing::warn!("waiting for an RCU grace period failed ({e}): waiting 1 s instead");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `XLB_VIP_CFG_IX` mapped into the daemon's memory: one `u64` per VIP id.
struct IndexMap {
    mmap: MmapMut,
    entries: usize,
}

impl IndexMap {
    fn map(fd: impl AsFd, entries: u32) -> std::io::Result<Self> {
        // SAFETY: the fd is an mmapable BPF array of `entries` 8-byte
        // elements; the kernel keeps the memory alive while the mapping
        // exists, and it is only accessed as AtomicU64.
        let mmap = unsafe {
            MmapOptions::new()
                .len(entries as usize * 8)
                .map_mut(fd.as_fd().as_raw_fd())?
        };
        Ok(Self {
            mmap,
            entries: entries as usize,
        })
    }

    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: page-aligned mapping of `entries` u64s; AtomicU64 has the
        // layout of u64, and the kernel's concurrent reads are what atomics
        // are for.
        unsafe { std::slice::from_raw_parts(self.mmap.as_ptr().cast::<AtomicU64>(), self.entries) }
    }

    fn get(&self, id: u32) -> u32 {
        self.slots()
            .get(id as usize)
            .map_or(NO_VIP_CONFIG, |s| s.load(Ordering::Acquire) as u32)
    }

    /// Points `id` at `index`. Release: the slot written before is visible
    /// to whoever reads the new index.
    fn set(&self, id: u32, index: u32) {
        if let Some(s) = self.slots().get(id as usize) {
            s.store(u64::from(index), Ordering::Release);
        }
    }
}

/// The two maps and the pool of their indexes.
pub struct VipConfigs {
    configs: Array<MapData, VipSlot>,
    index: IndexMap,
    pool: IndexPool,
    max_vips: u32,
}

impl VipConfigs {
    /// Takes over the loaded maps: fresh, or `adopted` with what another
    /// daemon left in them.
    pub fn take(
        configs: Map,
        index: Map,
        max_vips: u32,
        adopted: bool,
    ) -> Result<Self, DataplaneError> {
        let configs: Array<MapData, VipSlot> =
            Array::try_from(configs).map_err(|e| map_err(map_names::VIP_CFG, e))?;
        let index = match index {
            Map::Array(data) => {
                IndexMap::map(data.fd(), max_vips).map_err(|source| DataplaneError::Mmap {
                    name: map_names::VIP_CFG_IX,
                    source,
                })?
            }
            _ => {
                return Err(map_err(
                    map_names::VIP_CFG_IX,
                    MapError::InvalidMapType { map_type: 0 },
                ))
            }
        };
        let entries = configs.len();
        // Each id's own index, or none: an index out of range or shared
        // with an earlier id (maps left by a broken writer) is taken away
        // (its packets look their VIP up), never retired or handed out
        // while another id points at it.
        let mut in_use = BTreeSet::new();
        for id in 0..max_vips {
            let i = index.get(id);
            if i == NO_VIP_CONFIG {
                continue;
            }
            if i >= entries || !in_use.insert(i) {
                index.set(id, NO_VIP_CONFIG);
            }
        }
        Ok(Self {
            pool: IndexPool::new(entries, &in_use, adopted),
            configs,
            index,
            max_vips,
        })
    }

    /// VIP `vip_id`'s slot, if it has one.
    pub fn get(&self, vip_id: u32) -> Result<Option<VipSlot>, DataplaneError> {
        let index = self.index.get(vip_id);
        if index == NO_VIP_CONFIG {
            return Ok(None);
        }
        self.configs
            .get(&index, 0)
            .map(Some)
            .map_err(|e| map_err(map_names::VIP_CFG, e))
    }

    /// Gives VIP `vip_id` the slot `slot` (nothing to do if it has it). An
    /// id beyond `max_vips` gets none: its packets look the VIP up.
    pub fn set(&mut self, vip_id: u32, slot: &VipSlot) -> Result<(), DataplaneError> {
        if vip_id >= self.max_vips || self.get(vip_id)?.as_ref() == Some(slot) {
            return Ok(());
        }
        let index = self
            .pool
            .take(grace_period)
            .ok_or(DataplaneError::VipConfigsFull { id: vip_id })?;
        if let Err(e) = self.configs.set(index, slot, 0) {
            self.pool.give_back(index);
            return Err(map_err(map_names::VIP_CFG, e));
        }
        let old = self.index.get(vip_id);
        self.index.set(vip_id, index);
        self.pool.retire(old);
        Ok(())
    }

    /// Leaves VIP `vip_id` without a slot.
    pub fn clear(&mut self, vip_id: u32) {
        let old = self.index.get(vip_id);
        if old != NO_VIP_CONFIG {
            self.index.set(vip_id, NO_VIP_CONFIG);
            self.pool.retire(old);
        }
    }

    /// Every VIP id with a slot.
    pub fn ids(&self) -> Vec<u32> {
        (0..self.max_vips)
            .filter(|id| self.index.get(*id) != NO_VIP_CONFIG)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn indexes_start_at_one_and_skip_those_in_use() {
        let mut pool = IndexPool::new(5, &BTreeSet::from([2]), false);
        let mut got = Vec::new();
        while let Some(i) = pool.take(|| panic!("no grace period while free indexes remain")) {
            got.push(i);
        }
        assert_eq!(got, [1, 3, 4]);
    }

    /// A retired index comes back only after a grace period, and only
    /// once every free one is gone.
    #[test]
    fn a_retired_index_waits_for_a_grace_period() {
        let mut pool = IndexPool::new(3, &BTreeSet::new(), false);
        let graces = Cell::new(0);
        let grace = || graces.set(graces.get() + 1);
        assert_eq!(pool.take(grace), Some(1));
        pool.retire(1);
        assert_eq!(pool.take(grace), Some(2), "the free index first");
        assert_eq!(graces.get(), 0);
        pool.retire(2);
        assert_eq!(pool.retired(), [1, 2]);
        let third = pool.take(grace);
        assert_eq!(graces.get(), 1, "a grace period before a retired index");
        assert!(matches!(third, Some(1 | 2)));
        assert!(pool.retired().is_empty());
    }

    #[test]
    fn the_empty_index_is_never_retired_or_handed_out() {
        let mut pool = IndexPool::new(2, &BTreeSet::new(), false);
        pool.retire(NO_VIP_CONFIG);
        assert!(pool.retired().is_empty());
        assert_eq!(pool.take(|| {}), Some(1));
        assert_eq!(pool.take(|| panic!("nothing retired")), None);
    }

    /// Many changes of a few ids, against a model of what packets may
    /// read: an id's index is never shared with another id, and an index an
    /// id left is not handed out again before a grace period has passed.
    #[test]
    fn indexes_cycle_without_sharing_or_early_reuse() {
        const IDS: usize = 4;
        let entries = 2 * IDS as u32 + 1;
        let mut pool = IndexPool::new(entries, &BTreeSet::new(), false);
        let mut pointed = [NO_VIP_CONFIG; IDS];
        // Indexes left since the last grace period (a packet may hold them).
        let left = std::cell::RefCell::new(BTreeSet::new());
        let graces = Cell::new(0);
        for step in 0..500usize {
            let id = (step * 7 + step / 3) % IDS;
            let index = pool
                .take(|| {
                    left.borrow_mut().clear();
                    graces.set(graces.get() + 1);
                })
                .expect("twice as many indexes as ids never run dry");
            assert_ne!(index, NO_VIP_CONFIG);
            assert!(
                !pointed.contains(&index),
                "step {step}: index {index} is in use"
            );
            assert!(
                !left.borrow().contains(&index),
                "step {step}: index {index} handed out before a grace period"
            );
            let old = std::mem::replace(&mut pointed[id], index);
            pool.retire(old);
            if old != NO_VIP_CONFIG {
                left.borrow_mut().insert(old);
            }
        }
        assert!(
            graces.get() >= 500 / (IDS + 1),
            "{} grace periods",
            graces.get()
        );
    }

    #[test]
    fn an_index_never_published_is_free_at_once() {
        let mut pool = IndexPool::new(2, &BTreeSet::new(), false);
        let i = pool.take(|| panic!("free")).expect("one index");
        pool.give_back(i);
        assert_eq!(pool.take(|| panic!("given back, not retired")), Some(i));
    }

    /// Adopted maps: an index the other daemon left may still be read
    /// until a grace period has passed.
    #[test]
    fn adopted_indexes_wait_for_a_grace_period() {
        let mut pool = IndexPool::new(4, &BTreeSet::from([1]), true);
        let graces = Cell::new(0);
        let got = pool.take(|| graces.set(graces.get() + 1));
        assert_eq!(graces.get(), 1);
        assert!(matches!(got, Some(2 | 3)), "{got:?}");
        assert!(pool.take(|| panic!("one grace period is enough")).is_some());
        assert_eq!(pool.take(|| {}), None, "index 1 is in use");
    }
}
