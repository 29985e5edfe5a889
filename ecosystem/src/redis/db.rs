//! The keyspace: byte-string keys to byte-string values, each with an optional deadline.
//!
//! Every method takes `now` from its caller instead of reading the clock, so the server
//! reads it once per batch of commands and the unit tests below move time by hand.
//!
//! Expiry is lazy and active, as in Redis. Lazy: a key found past its deadline is deleted by
//! whichever command touches it, and answers as missing. Active: [`Db::expire_cycle`], run
//! ten times a second by the server, walks the keys that have a deadline and deletes the
//! dead ones, so keys nobody reads again do not pile up. To walk them without scanning the
//! whole map, the keys with a deadline are also kept in a vector (`volatile`); each entry
//! knows its index there, so removal is a `swap_remove` plus one index fix-up.
//!
//! The map uses std's SipHash with a random key, as Redis uses SipHash for its dicts: clients
//! choose the keys, and a fast unkeyed hash would let one of them make every insert collide.

use std::collections::HashMap;
use std::time::Instant;

/// One value and, if it has one, its deadline and its index in `Db::volatile`.
#[derive(Debug)]
struct Entry {
    value: Box<[u8]>,
    expiry: Option<(Instant, usize)>,
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        matches!(self.expiry, Some((at, _)) if at <= now)
    }
}

/// When `SET` may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetCondition {
    /// Always.
    Always,
    /// Only if the key does not exist (`NX`).
    IfMissing,
    /// Only if the key exists (`XX`).
    IfExists,
}

/// What `SET` does with the key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetExpiry {
    /// Clears it (a plain `SET`).
    Clear,
    /// Keeps it (`KEEPTTL`).
    Keep,
    /// Sets this one (`EX`/`PX`).
    At(Instant),
}

/// The remaining life of a key, as `TTL`/`PTTL` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// No such key (`-2`).
    Missing,
    /// The key has no deadline (`-1`).
    Persistent,
    /// The key dies at this instant.
    Until(Instant),
}

/// Why `INCRBY` and friends failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncrError {
    /// The value is not a decimal `i64`.
    NotAnInteger,
    /// The result does not fit `i64`.
    Overflow,
}

/// The keyspace. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Db {
    map: HashMap<Box<[u8]>, Entry>,
    /// The keys that have a deadline, in no order; `Entry::expiry.1` is the index.
    volatile: Vec<Box<[u8]>>,
    /// Where the next [`expire_cycle`](Db::expire_cycle) resumes its walk of `volatile`.
    cursor: usize,
}

/// How many keys with a deadline an expire cycle looks at in one round (Redis:
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
pub(crate) const KEYS_PER_ROUND: usize = 20;

impl Db {
    pub(crate) fn new() -> Db {
        Db::default()
    }

    /// How many keys the map holds, expired ones not yet deleted included.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// How many keys have a deadline.
    #[cfg(test)]
    fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Calls `f` with the key's value (`None` if missing or expired) and returns its result.
    /// A closure rather than a returned reference: deleting an expired key after looking it
    /// up is a borrow of the map that today's borrow checker does not allow to be returned.
    pub(crate) fn read<R>(&mut self, key: &[u8], now: Instant, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        match self.map.get(key) {
            None => return f(None),
            Some(entry) if !entry.is_expired(now) => return f(Some(&entry.value)),
            Some(_) => {}
        }
        self.remove(key);
        f(None)
    }

    /// Whether the key exists (deleting it first if it has expired).
    pub(crate) fn exists(&mut self, key: &[u8], now: Instant) -> bool {
        self.read(key, now, |value| value.is_some())
    }

    /// Writes `value` under `key` if `condition` allows, handling the deadline as `expiry`
    /// says. Returns whether it wrote.
    ///
    /// This is the path of every `SET`: a live key is looked up once, a new one twice (once
    /// to find it missing, once to insert), and the key is copied only when it is new.
    pub(crate) fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        condition: SetCondition,
        expiry: SetExpiry,
        now: Instant,
    ) -> bool {
        let mut dead_entry = false;
        if let Some(entry) = self.map.get_mut(key) {
            if !entry.is_expired(now) {
                if condition == SetCondition::IfMissing {
                    return false;
                }
                // Reuse the allocation when the new value has the same length: common for
                // counters and fixed-size values, and free to check.
                if entry.value.len() == value.len() {
                    entry.value.copy_from_slice(value);
                } else {
                    entry.value = value.into();
                }
                match expiry {
                    SetExpiry::Keep => {}
                    SetExpiry::Clear => {
                        if let Some((_, index)) = entry.expiry.take() {
                            forget_volatile(&mut self.map, &mut self.volatile, index);
                        }
                    }
                    SetExpiry::At(at) => match &mut entry.expiry {
                        Some((deadline, _)) => *deadline = at,
                        None => {
                            entry.expiry = Some((at, self.volatile.len()));
                            self.volatile.push(key.into());
                        }
                    },
                }
                return true;
            }
            dead_entry = true;
        }
        if dead_entry {
            self.remove(key);
        }
        if condition == SetCondition::IfExists {
            return false;
        }
        let expiry = match expiry {
            SetExpiry::At(at) => {
                self.volatile.push(key.into());
                Some((at, self.volatile.len() - 1))
            }
            // A missing key has no deadline to keep.
            SetExpiry::Keep | SetExpiry::Clear => None,
        };
        self.map.insert(key.into(), Entry { value: value.into(), expiry });
        true
    }

    /// Deletes the key; returns whether it existed (an expired key did not).
    pub(crate) fn del(&mut self, key: &[u8], now: Instant) -> bool {
        match self.remove(key) {
            Some(entry) => !entry.is_expired(now),
            None => false,
        }
    }

    /// Adds `delta` to the key's integer value (a missing key counts as 0), keeping its
    /// deadline, and returns the result.
    pub(crate) fn incr_by(&mut self, key: &[u8], delta: i64, now: Instant) -> Result<i64, IncrError> {
        let current = self.read(key, now, |value| match value {
            None => Ok(0),
            Some(text) => super::resp::parse_i64(text).ok_or(IncrError::NotAnInteger),
        })?;
        let next = current.checked_add(delta).ok_or(IncrError::Overflow)?;
        let mut digits = [0; 20];
        self.set(key, super::resp::format_i64(next, &mut digits), SetCondition::Always, SetExpiry::Keep, now);
        Ok(next)
    }

    /// Gives the key the deadline `at`; a deadline not after `now` deletes it at once, as
    /// `EXPIRE key 0` does. Returns whether the key existed.
    pub(crate) fn expire_at(&mut self, key: &[u8], at: Instant, now: Instant) -> bool {
        if !self.exists(key, now) {
            return false;
        }
        if at <= now {
            self.remove(key);
        } else {
            self.set_deadline(key, at);
        }
        true
    }

    /// The key's remaining life.
    pub(crate) fn ttl(&mut self, key: &[u8], now: Instant) -> Ttl {
        if !self.exists(key, now) {
            return Ttl::Missing;
        }
        match self.map.get(key).and_then(|e| e.expiry) {
            Some((at, _)) => Ttl::Until(at),
            None => Ttl::Persistent,
        }
    }

    /// Deletes every key, and gives back the memory.
    pub(crate) fn flush(&mut self) {
        *self = Db::new();
    }

    /// One active expiry pass: looks at up to [`KEYS_PER_ROUND`] keys with a deadline,
    /// resuming where the last pass stopped, and deletes the dead ones. While more than a
    /// tenth of a round was dead (so many more are likely) and `more_time()` agrees, it
    /// does another round. Returns how many keys it deleted.
    ///
    /// Like Redis's `activeExpireCycle`, the work is bounded per call (the server's
    /// `more_time` stops it after a few milliseconds), and adapts: a keyspace full of dead
    /// keys gets many rounds, a healthy one a single round of 20 checks.
    pub(crate) fn expire_cycle(&mut self, now: Instant, mut more_time: impl FnMut() -> bool) -> usize {
        let mut deleted = 0;
        loop {
            let mut checked = 0;
            let mut dead = 0;
            while checked < KEYS_PER_ROUND && checked < self.volatile.len() {
                if self.cursor >= self.volatile.len() {
                    self.cursor = 0;
                }
                let key = &self.volatile[self.cursor];
                checked += 1;
                if self.map.get(key).is_some_and(|e| e.is_expired(now)) {
                    // The key leaves `volatile` by value (no copy); the swap brings the
                    // last key to the cursor, to be looked at next.
                    let key = forget_volatile(&mut self.map, &mut self.volatile, self.cursor);
                    self.map.remove(&key);
                    dead += 1;
                } else {
                    self.cursor += 1;
                }
            }
            deleted += dead;
            if checked == 0 || dead * 10 <= checked || !more_time() {
                return deleted;
            }
        }
    }

    /// Gives memory back after many deletions: std's map never shrinks by itself. Called
    /// by the expiry task, ten times a second; shrinking rehashes the live keys, which are
    /// then at most an eighth of the capacity, so the pause stays proportional to them.
    pub(crate) fn shrink_if_sparse(&mut self) {
        const MIN: usize = 1024;
        if self.map.capacity() > MIN && self.map.len() * 8 < self.map.capacity() {
            self.map.shrink_to(self.map.len() * 2);
        }
        if self.volatile.capacity() > MIN && self.volatile.len() * 8 < self.volatile.capacity() {
            self.volatile.shrink_to(self.volatile.len() * 2);
        }
    }

    /// Removes the key and its place in `volatile`.
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        if let Some((_, index)) = entry.expiry {
            forget_volatile(&mut self.map, &mut self.volatile, index);
        }
        Some(entry)
    }

    /// Sets the deadline of a key that exists, keeping `volatile` in step.
    fn set_deadline(&mut self, key: &[u8], at: Instant) {
        let Some(entry) = self.map.get_mut(key) else { return };
        match &mut entry.expiry {
            Some((deadline, _)) => *deadline = at,
            None => {
                entry.expiry = Some((at, self.volatile.len()));
                self.volatile.push(key.into());
            }
        }
    }
}

/// Removes and returns `volatile[index]`, moving the last key into its place and telling
/// that key's entry its new index.
fn forget_volatile(
    map: &mut HashMap<Box<[u8]>, Entry>,
    volatile: &mut Vec<Box<[u8]>>,
    index: usize,
) -> Box<[u8]> {
    let key = volatile.swap_remove(index);
    if let Some(moved) = volatile.get(index) {
        if let Some(Entry { expiry: Some((_, i)), .. }) = map.get_mut(moved) {
            *i = index;
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn get(db: &mut Db, key: &[u8], now: Instant) -> Option<Vec<u8>> {
        db.read(key, now, |v| v.map(<[u8]>::to_vec))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Every key in `volatile` is in the map with its own index, and every key of the map
    /// with a deadline is in `volatile`.
    fn check_invariants(db: &Db) {
        for (i, key) in db.volatile.iter().enumerate() {
            assert_eq!(db.map[key].expiry.map(|(_, index)| index), Some(i));
        }
        assert_eq!(db.map.values().filter(|e| e.expiry.is_some()).count(), db.volatile.len());
    }

    #[test]
    fn set_get_del_exists() {
        let now = Instant::now();
        let mut db = Db::new();
        assert!(db.set(b"k", b"v", SetCondition::Always, SetExpiry::Clear, now));
        assert_eq!(get(&mut db, b"k", now), Some(b"v".to_vec()));
        assert!(db.set(b"k", b"w", SetCondition::Always, SetExpiry::Clear, now));
        assert_eq!(get(&mut db, b"k", now), Some(b"w".to_vec()));
        assert!(db.set(b"k", b"longer", SetCondition::Always, SetExpiry::Clear, now));
        assert_eq!(get(&mut db, b"k", now), Some(b"longer".to_vec()));
        assert!(db.exists(b"k", now));
        assert!(db.del(b"k", now));
        assert!(!db.del(b"k", now));
        assert!(!db.exists(b"k", now));
    }

    #[test]
    fn nx_and_xx_write_only_when_allowed() {
        let now = Instant::now();
        let mut db = Db::new();
        assert!(!db.set(b"k", b"1", SetCondition::IfExists, SetExpiry::Clear, now));
        assert!(db.set(b"k", b"1", SetCondition::IfMissing, SetExpiry::Clear, now));
        assert!(!db.set(b"k", b"2", SetCondition::IfMissing, SetExpiry::Clear, now));
        assert!(db.set(b"k", b"3", SetCondition::IfExists, SetExpiry::Clear, now));
        assert_eq!(get(&mut db, b"k", now), Some(b"3".to_vec()));
    }

    #[test]
    fn a_key_dies_at_its_deadline_and_not_before() {
        let t0 = Instant::now();
        let mut db = Db::new();
        db.set(b"k", b"v", SetCondition::Always, SetExpiry::At(t0 + secs(10)), t0);
        assert_eq!(db.ttl(b"k", t0), Ttl::Until(t0 + secs(10)));
        assert_eq!(get(&mut db, b"k", t0 + secs(9)), Some(b"v".to_vec()));
        assert_eq!(get(&mut db, b"k", t0 + secs(10)), None);
        assert_eq!(db.len(), 0, "the lazy check deleted it");
        assert_eq!(db.ttl(b"k", t0 + secs(10)), Ttl::Missing);
        check_invariants(&db);
    }

    #[test]
    fn an_expired_key_is_missing_to_every_command() {
        let t0 = Instant::now();
        let late = t0 + secs(2);
        let mut db = Db::new();
        let expiring =
            |db: &mut Db| db.set(b"k", b"5", SetCondition::Always, SetExpiry::At(t0 + secs(1)), t0);
        expiring(&mut db);
        assert!(!db.del(b"k", late));
        expiring(&mut db);
        assert!(!db.exists(b"k", late));
        expiring(&mut db);
        assert_eq!(db.incr_by(b"k", 1, late), Ok(1), "counted from 0, not 5");
        assert_eq!(db.ttl(b"k", late), Ttl::Persistent, "the new key has no deadline");
        expiring(&mut db);
        assert!(db.set(b"k", b"x", SetCondition::IfMissing, SetExpiry::Clear, late));
        expiring(&mut db);
        assert!(!db.expire_at(b"k", late + secs(5), late));
        check_invariants(&db);
    }

    #[test]
    fn set_clears_the_deadline_unless_told_to_keep_it() {
        let t0 = Instant::now();
        let mut db = Db::new();
        db.set(b"k", b"v", SetCondition::Always, SetExpiry::At(t0 + secs(5)), t0);
        db.set(b"k", b"w", SetCondition::Always, SetExpiry::Keep, t0);
        assert_eq!(db.ttl(b"k", t0), Ttl::Until(t0 + secs(5)));
        db.set(b"k", b"w", SetCondition::Always, SetExpiry::Clear, t0);
        assert_eq!(db.ttl(b"k", t0), Ttl::Persistent);
        check_invariants(&db);
    }

    #[test]
    fn incr_keeps_the_deadline_and_checks_its_input() {
        let t0 = Instant::now();
        let mut db = Db::new();
        assert_eq!(db.incr_by(b"n", 5, t0), Ok(5));
        assert_eq!(db.incr_by(b"n", -7, t0), Ok(-2));
        assert_eq!(get(&mut db, b"n", t0), Some(b"-2".to_vec()));
        db.expire_at(b"n", t0 + secs(3), t0);
        assert_eq!(db.incr_by(b"n", 1, t0), Ok(-1));
        assert_eq!(db.ttl(b"n", t0), Ttl::Until(t0 + secs(3)));
        db.set(b"s", b"abc", SetCondition::Always, SetExpiry::Clear, t0);
        assert_eq!(db.incr_by(b"s", 1, t0), Err(IncrError::NotAnInteger));
        db.set(b"s", b" 1", SetCondition::Always, SetExpiry::Clear, t0);
        assert_eq!(db.incr_by(b"s", 1, t0), Err(IncrError::NotAnInteger));
        db.set(b"max", i64::MAX.to_string().as_bytes(), SetCondition::Always, SetExpiry::Clear, t0);
        assert_eq!(db.incr_by(b"max", 1, t0), Err(IncrError::Overflow));
        assert_eq!(get(&mut db, b"max", t0), Some(i64::MAX.to_string().into_bytes()), "unchanged");
    }

    #[test]
    fn expire_in_the_past_deletes_and_on_a_missing_key_does_nothing() {
        let t0 = Instant::now();
        let mut db = Db::new();
        assert!(!db.expire_at(b"k", t0 + secs(1), t0));
        db.set(b"k", b"v", SetCondition::Always, SetExpiry::Clear, t0);
        assert!(db.expire_at(b"k", t0, t0));
        assert_eq!(db.len(), 0);
        check_invariants(&db);
    }

    #[test]
    fn the_expire_cycle_deletes_dead_keys_nobody_reads() {
        let t0 = Instant::now();
        let mut db = Db::new();
        for i in 0..1000u32 {
            let deadline = t0 + secs(1 + u64::from(i % 2)); // half die at 1 s, half at 2 s
            db.set(&i.to_be_bytes(), b"v", SetCondition::Always, SetExpiry::At(deadline), t0);
        }
        db.set(b"forever", b"v", SetCondition::Always, SetExpiry::Clear, t0);
        assert_eq!(db.expire_cycle(t0, || true), 0, "nothing due yet");
        // With time to spare, a cycle goes on while rounds keep finding dead keys.
        let deleted = db.expire_cycle(t0 + secs(1), || true);
        assert!(deleted >= 400, "deleted only {deleted}");
        check_invariants(&db);
        // Repeated cycles clear them all, and never touch the live keys.
        let mut total = deleted;
        for _ in 0..100 {
            total += db.expire_cycle(t0 + secs(1), || true);
        }
        assert_eq!(total, 500);
        assert_eq!(db.len(), 501);
        assert_eq!(db.volatile_len(), 500);
        let later = t0 + secs(2);
        while db.expire_cycle(later, || true) > 0 {}
        assert_eq!(db.len(), 1);
        check_invariants(&db);
    }

    #[test]
    fn the_expire_cycle_stops_when_time_is_up() {
        let t0 = Instant::now();
        let mut db = Db::new();
        for i in 0..1000u32 {
            db.set(&i.to_be_bytes(), b"v", SetCondition::Always, SetExpiry::At(t0 + secs(1)), t0);
        }
        let mut rounds_allowed = 2;
        let deleted = db.expire_cycle(t0 + secs(1), || {
            rounds_allowed -= 1;
            rounds_allowed >= 0
        });
        assert_eq!(deleted, 3 * KEYS_PER_ROUND, "the first round, and the two more allowed");
        check_invariants(&db);
    }

    #[test]
    fn the_expire_cycle_with_few_dead_keys_does_one_round() {
        let t0 = Instant::now();
        let mut db = Db::new();
        for i in 0..100u32 {
            let deadline = if i == 0 { t0 } else { t0 + secs(100) };
            db.set(&i.to_be_bytes(), b"v", SetCondition::Always, SetExpiry::At(deadline), t0);
        }
        let mut asked = 0;
        db.expire_cycle(t0, || {
            asked += 1;
            true
        });
        assert_eq!(asked, 0, "1 dead in 20 is under a tenth: no second round");
    }

    #[test]
    fn a_sparse_keyspace_gives_memory_back() {
        let t0 = Instant::now();
        let mut db = Db::new();
        for i in 0..100_000u32 {
            db.set(&i.to_be_bytes(), b"v", SetCondition::Always, SetExpiry::At(t0 + secs(1)), t0);
        }
        db.set(b"forever", b"v", SetCondition::Always, SetExpiry::Clear, t0);
        let full = db.map.capacity();
        while db.expire_cycle(t0 + secs(1), || true) > 0 {}
        db.shrink_if_sparse();
        assert!(db.map.capacity() < full / 8, "{} of {full}", db.map.capacity());
        assert!(db.volatile.capacity() < 1024);
        assert_eq!(get(&mut db, b"forever", t0), Some(b"v".to_vec()));
        check_invariants(&db);
    }

    #[test]
    fn flush_empties_everything() {
        let t0 = Instant::now();
        let mut db = Db::new();
        db.set(b"a", b"v", SetCondition::Always, SetExpiry::At(t0 + secs(1)), t0);
        db.set(b"b", b"v", SetCondition::Always, SetExpiry::Clear, t0);
        db.flush();
        assert_eq!((db.len(), db.volatile_len()), (0, 0));
        assert_eq!(db.expire_cycle(t0 + secs(2), || true), 0);
    }
}
