//! A slab with generations: stable `u64` keys for the executor's task list and the waiters
//! of a `Shutdown`.
//!
//! A key packs the slot index (low 32 bits) with the slot's generation (high 32 bits). When a
//! value is removed its slot's generation is bumped, so an old key, say a `Shutdown` waiter's
//! that `trigger` already drained, finds nothing instead of the slot's new occupant. (Epoll
//! tokens and wakers no longer use keys: they are pointers, see `reactor.rs` and `task/`.)
//!
//! ```text
//!   key: | generation (32) | index (32) |
//! ```

#[derive(Debug)]
enum Entry<T> {
    Occupied {
        generation: u32,
        value: T,
    },
    /// `next` is the index of the next vacant slot in the free list (`u32::MAX` ends it).
    Vacant {
        generation: u32,
        next: u32,
    },
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
}

const NONE: u32 = u32::MAX;

fn split(key: u64) -> (usize, u32) {
    ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
}

fn join(index: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | index as u64
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Slab<T> {
        Slab { entries: Vec::new(), free_head: NONE, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key that the next `insert` will return.
    pub(crate) fn vacant_key(&self) -> u64 {
        match self.entries.get(self.free_head as usize) {
            Some(Entry::Vacant { generation, .. }) => join(self.free_head as usize, *generation),
            _ => join(self.entries.len(), 0),
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> u64 {
        self.len += 1;
        let index = self.free_head as usize;
        if let Some(entry) = self.entries.get_mut(index) {
            let Entry::Vacant { generation, next } = *entry else {
                unreachable!("free list points at a vacant slot")
            };
            self.free_head = next;
            *entry = Entry::Occupied { generation, value };
            join(index, generation)
        } else {
            assert!(self.entries.len() < NONE as usize, "slab is full");
            self.entries.push(Entry::Occupied { generation: 0, value });
            join(self.entries.len() - 1, 0)
        }
    }

    pub(crate) fn get(&self, key: u64) -> Option<&T> {
        let (index, gen) = split(key);
        match self.entries.get(index) {
            Some(Entry::Occupied { generation, value }) if *generation == gen => Some(value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: u64) -> Option<T> {
        let (index, gen) = split(key);
        let entry = self.entries.get_mut(index)?;
        match entry {
            Entry::Occupied { generation, .. } if *generation == gen => {
                let vacant = Entry::Vacant { generation: gen.wrapping_add(1), next: self.free_head };
                let Entry::Occupied { value, .. } = std::mem::replace(entry, vacant) else { unreachable!() };
                self.free_head = index as u32;
                self.len -= 1;
                Some(value)
            }
            _ => None,
        }
    }

    /// Removes every value, leaving the generations bumped, and returns them.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for index in 0..self.entries.len() {
            if let Entry::Occupied { generation, .. } = self.entries[index] {
                out.extend(self.remove(join(index, generation)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn stale_key_finds_nothing_after_reuse() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "the slot is reused");
        assert_ne!(a, b, "with a new generation");
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
    }

    #[test]
    fn vacant_key_predicts_insert_and_drain_empties() {
        let mut slab = Slab::new();
        for i in 0..10 {
            let k = slab.vacant_key();
            assert_eq!(slab.insert(i), k);
        }
        let k3 = slab.vacant_key();
        slab.remove(3);
        assert_ne!(slab.vacant_key(), k3);
        assert_eq!(slab.insert(99), 3 | (1 << 32));
        let mut all = slab.drain();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 99]);
        assert_eq!(slab.len(), 0);
    }
}
