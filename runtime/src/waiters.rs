//! The tasks waiting on one I/O source, per direction, and how a wait that is given up
//! leaves no trace.
//!
//! Two kinds of waiter, as in tokio's `ScheduledIo`:
//!
//! ```text
//!  slots[dir]   one waker per direction, for the poll methods (`AsyncRead::poll_read`,
//!               `Async::poll_ready`): the last task to poll is the one woken. A poll method
//!               has no future of its own to remember a place in a list, so a slot is all it
//!               can have; it is overwritten, never grows.
//!  entries      one entry per waiting *future* (`readable()`, `writable()`, `peer_closed()`,
//!               `read_with`, `write_with`). The future keeps its entry's index and removes the
//!               entry when it is dropped, so a wait given up (a `select!` branch that lost, a
//!               `timeout` that fired, an aborted task) leaves the list at once.
//! ```
//!
//! Any number of futures can wait in one direction (two tasks both awaiting `peer_closed` on
//! the two halves of a stream); all are woken. Entries are few: a vector with a free list,
//! indexed directly, so registering, re-registering and removing are O(1), and a wake scans
//! only the live entries.
//!
//! Only the owning future removes its entry, so an index can never be reused under it: no
//! generation is needed. A woken entry stays in place with its waker taken; the future puts
//! a new waker in it if it has to wait again.

use std::task::Waker;

use crate::reactor::Direction;

/// One future's place in the list: its direction and, while it waits, its waker.
#[derive(Debug)]
struct Entry {
    dir: Direction,
    waker: Option<Waker>,
}

/// The waiters of one source. Lives in a `RefCell` inside `ScheduledIo`.
///
/// Small on purpose (40 bytes): the source's readiness and its waiters share one cache line,
/// which a wake and the next poll both touch. What most sockets never use lives behind
/// `rest`.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// The poll slots of `Read` and `Write`.
    slots: [Option<Waker>; 2],
    rest: Option<Box<Rest>>,
}

/// The `Closed` poll slot and the futures' entries, allocated on first use.
#[derive(Debug, Default)]
struct Rest {
    closed: Option<Waker>,
    /// `None` marks a free place, whose index is in `free`.
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

impl Waiters {
    fn rest(&mut self) -> &mut Rest {
        self.rest.get_or_insert_with(Box::default)
    }

    /// Stores `waker` in the poll slot of `dir`, unless it is already there.
    #[inline]
    pub(crate) fn set_slot(&mut self, dir: Direction, waker: &Waker) {
        let slot = match dir {
            Direction::Read => &mut self.slots[0],
            Direction::Write => &mut self.slots[1],
            Direction::Closed => return self.set_closed_slot(waker),
        };
        match slot {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    #[cold]
    fn set_closed_slot(&mut self, waker: &Waker) {
        match &mut self.rest().closed {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Stores `waker` in the entry `key` (creating the entry if `key` is `None`) and returns
    /// the entry's index, which the future keeps.
    pub(crate) fn set_entry(&mut self, key: Option<usize>, dir: Direction, waker: &Waker) -> usize {
        let rest = self.rest();
        if let Some(key) = key {
            if let Some(Some(entry)) = rest.entries.get_mut(key) {
                match &mut entry.waker {
                    Some(w) if w.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
                return key;
            }
        }
        let entry = Some(Entry { dir, waker: Some(waker.clone()) });
        match rest.free.pop() {
            Some(index) => {
                rest.entries[index] = entry;
                index
            }
            None => {
                rest.entries.push(entry);
                rest.entries.len() - 1
            }
        }
    }

    /// Removes the entry `key`; returns its waker so the caller drops it outside the borrow.
    pub(crate) fn remove(&mut self, key: usize) -> Option<Waker> {
        let rest = self.rest.as_mut()?;
        let entry = rest.entries.get_mut(key)?.take()?;
        rest.free.push(key);
        entry.waker
    }

    /// Takes the waker of the poll slot of `dir`.
    #[inline]
    pub(crate) fn take_slot(&mut self, dir: Direction) -> Option<Waker> {
        match dir {
            Direction::Read => self.slots[0].take(),
            Direction::Write => self.slots[1].take(),
            Direction::Closed => self.rest.as_mut()?.closed.take(),
        }
    }

    /// Whether anything beyond the `Read` and `Write` slots may hold a waker: the `Closed`
    /// slot or an entry (a fast check before looking at them).
    #[inline]
    pub(crate) fn has_rest(&self) -> bool {
        self.rest.is_some()
    }

    /// Takes the waker of the first entry at or after `from` that waits in `dir`, with the
    /// index to continue from. The caller wakes it outside the borrow, then asks again.
    pub(crate) fn take_entry(&mut self, dir: Direction, from: usize) -> Option<(Waker, usize)> {
        let rest = self.rest.as_mut()?;
        rest.entries.iter_mut().enumerate().skip(from).find_map(|(index, entry)| match entry {
            Some(Entry { dir: d, waker }) if *d == dir => waker.take().map(|w| (w, index + 1)),
            _ => None,
        })
    }

    /// How many wakers are stored, in slots and entries (for tests and the trace).
    pub(crate) fn waiting(&self, dir: Direction) -> usize {
        let slot = match dir {
            Direction::Read => self.slots[0].is_some(),
            Direction::Write => self.slots[1].is_some(),
            Direction::Closed => self.rest.as_ref().is_some_and(|r| r.closed.is_some()),
        };
        let entries = self.rest.as_ref().map_or(0, |rest| {
            rest.entries.iter().flatten().filter(|e| e.dir == dir && e.waker.is_some()).count()
        });
        usize::from(slot) + entries
    }

    /// How many places are taken: filled slots plus live entries, woken or not (for tests:
    /// a given-up wait must leave this unchanged).
    pub(crate) fn len(&self) -> usize {
        let rest = self
            .rest
            .as_ref()
            .map_or(0, |r| usize::from(r.closed.is_some()) + r.entries.len() - r.free.len());
        self.slots.iter().flatten().count() + rest
    }
}

#[cfg(test)]
mod tests {
    use super::Waiters;
    use crate::reactor::Direction;
    use crate::test_util::counting_waker;

    /// A poll slot is overwritten by each poll, in every direction (the `Closed` slot lives
    /// apart, behind `rest`): the task that polled last is the one waiting.
    #[test]
    fn every_poll_slot_keeps_the_last_pollers_waker() {
        for dir in [Direction::Read, Direction::Write, Direction::Closed] {
            let mut waiters = Waiters::default();
            let (first, first_wakes) = counting_waker();
            let (second, second_wakes) = counting_waker();
            waiters.set_slot(dir, &first);
            waiters.set_slot(dir, &second);
            waiters.take_slot(dir).expect("a waker is stored").wake();
            assert_eq!((first_wakes.count(), second_wakes.count()), (0, 1), "{dir:?}");
            assert!(waiters.take_slot(dir).is_none(), "{dir:?}: taken once");
        }
    }
}
