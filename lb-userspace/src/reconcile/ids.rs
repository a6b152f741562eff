//! Id allocation for VIP and backend slots. Freed ids go to the back of the
//! queue, so an id is reused as late as possible: a flow entry that still names
//! a removed backend rarely meets a new owner of the same id (and the data plane
//! checks the owner VIP in any case).

use std::collections::{BTreeSet, VecDeque};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdPool {
    free: VecDeque<u32>,
    used: BTreeSet<u32>,
}

impl IdPool {
    /// Ids `first..end`, all free, handed out in increasing order.
    pub fn new(first: u32, end: u32) -> Self {
        Self {
            free: (first..end).collect(),
            used: BTreeSet::new(),
        }
    }

    pub fn alloc(&mut self) -> Option<u32> {
        let id = self.free.pop_front()?;
        self.used.insert(id);
        Some(id)
    }

    /// Marks `id` used (adoption). False if it was not free.
    pub fn take(&mut self, id: u32) -> bool {
        match self.free.iter().position(|f| *f == id) {
            Some(i) => {
                self.free.remove(i);
                self.used.insert(id);
                true
            }
            None => false,
        }
    }

    /// How many ids `alloc` can still hand out.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    pub fn free(&mut self, id: u32) {
        if self.used.remove(&id) {
            self.free.push_back(id);
        }
    }

    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_ids_are_reused_last() {
        let mut p = IdPool::new(1, 4);
        assert_eq!((p.alloc(), p.alloc()), (Some(1), Some(2)));
        p.free(1);
        assert_eq!(p.alloc(), Some(3));
        assert_eq!(p.alloc(), Some(1));
        assert_eq!(p.alloc(), None);
    }

    #[test]
    fn take_reserves_adopted_ids_once() {
        let mut p = IdPool::new(0, 3);
        assert!(p.take(2));
        assert!(!p.take(2));
        assert_eq!(p.alloc(), Some(0));
        assert_eq!(p.alloc(), Some(1));
        assert_eq!(p.alloc(), None);
        p.free(7); // never used: ignored
        assert_eq!(p.in_use(), 3);
    }
}
