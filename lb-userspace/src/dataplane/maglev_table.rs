//! `XLB_MAGLEV` mapped into the daemon's memory (the map is BPF_F_MMAPABLE).
//! A whole 65537-slot table is rewritten with plain stores instead of 65537
//! update syscalls; each slot is a naturally aligned u32, so the data plane
//! always reads either the old or the new backend id, never a torn value.
//!
//! The map's elements are `[u32; 2]` (8 bytes, the kernel's array element
//! stride), so the mapping is exactly a dense array of u32 slots.

use std::{
    os::fd::{AsRawFd, BorrowedFd},
    sync::atomic::{AtomicU32, Ordering},
};

use memmap2::{MmapMut, MmapOptions};

pub struct MaglevTable {
    mmap: MmapMut,
    entries: usize,
    table_size: u32,
}

impl MaglevTable {
    /// Maps `entries` u32 slots (twice the map's element count) behind `fd`.
    pub(super) fn map(fd: BorrowedFd<'_>, entries: u32, table_size: u32) -> std::io::Result<Self> {
        let len = entries as usize * 4;
        // SAFETY: the fd is an mmapable BPF array of at least `entries` u32s;
        // the kernel keeps the memory alive while the mapping exists (it holds a
        // reference on the map), and we only ever access it as AtomicU32.
        let mmap = unsafe { MmapOptions::new().len(len).map_mut(fd.as_raw_fd())? };
        Ok(Self {
            mmap,
            entries: entries as usize,
            table_size,
        })
    }

    fn slots(&self) -> &[AtomicU32] {
        // SAFETY: page-aligned mapping of `entries` u32s; AtomicU32 has the
        // layout of u32, and concurrent access by the kernel is what atomics
        // are for.
        unsafe { std::slice::from_raw_parts(self.mmap.as_ptr().cast::<AtomicU32>(), self.entries) }
    }

    /// Slots per VIP table.
    pub fn table_size(&self) -> u32 {
        self.table_size
    }

    /// VIP table starting at `offset` (`table_size` slots), as backend ids.
    pub fn read(&self, offset: u32, len: u32) -> Vec<u32> {
        let start = offset as usize;
        let end = (start + len as usize).min(self.entries);
        self.slots()[start.min(end)..end]
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect()
    }

    /// Writes `table` at `offset`, storing only the slots that differ; returns how
    /// many changed. Slots out of range are ignored (callers check sizes).
    pub fn write(&mut self, offset: u32, table: &[u32]) -> usize {
        let start = offset as usize;
        let slots = self.slots();
        let mut changed = 0;
        for (i, &id) in table.iter().enumerate() {
            let Some(slot) = slots.get(start + i) else {
                break;
            };
            if slot.load(Ordering::Relaxed) != id {
                slot.store(id, Ordering::Relaxed);
                changed += 1;
            }
        }
        changed
    }

    /// Clears `len` slots at `offset` (the VIP using them is gone).
    pub fn clear(&mut self, offset: u32, len: u32) -> usize {
        self.write(offset, &vec![lb_common::NO_BACKEND; len as usize])
    }
}

impl MaglevTable {
    /// Maps the `XLB_MAGLEV` map pinned at `path` (a running daemon's), e.g. to
    /// watch a table change. `table_size` is the instance's slots per VIP.
    pub fn open_pinned(path: &std::path::Path, table_size: u32) -> std::io::Result<Self> {
        use std::os::fd::AsFd;
        let map = aya::maps::MapData::from_pin(path).map_err(std::io::Error::other)?;
        let elements = map.info().map_err(std::io::Error::other)?.max_entries();
        Self::map(map.fd().as_fd(), elements * 2, table_size)
    }
}
