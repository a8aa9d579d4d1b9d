//! A cache of finished answers over a time range (the HTTP API keeps its
//! OHLCV documents here), kept exact by invalidation.
//!
//! Dashboards ask the same question again and again: yesterday's bars of a
//! symbol, every few seconds. Recomputing costs milliseconds (the trades
//! come from every tier, are sorted, and are folded into bars); a cached
//! answer costs a hash lookup. The cache never serves an answer that a
//! fresh computation would not give:
//!
//! - Every ingest, once its records are visible to queries, drops the
//!   entries whose range overlaps the batch's time range, and records that
//!   range under a new epoch. Retention drops everything.
//! - A computation takes a [`Ticket`] (the epoch) *before* it reads. Its
//!   answer is stored only if no invalidation since that epoch overlaps its
//!   range, so an answer computed from a snapshot that missed a concurrent
//!   write is never kept. The last [`RECENT`] invalidations are remembered;
//!   a ticket older than that is refused.
//! - A writer skips the work (finding its batch's time range) only when
//!   nothing is cached *and* no ticket is out: then no answer that misses
//!   its batch can be stored later.
//! - Migration moves records between tiers without changing them, and the
//!   answers do not depend on the tier a record sits in, so it keeps
//!   everything.
//!
//! Entries are bounded in bytes; the least recently used go first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Invalidations remembered for tickets still computing.
pub const RECENT: usize = 4096;

/// What identifies an answer: its kind, the symbol, `[start, end)`, and a
/// parameter (the bar width).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: &'static str,
    pub symbol: String,
    pub start: i64,
    pub end: i64,
    pub param: i64,
}

/// Taken before a computation reads the store; consumed by
/// [`RangeCache::put`], or dropped when the computation fails.
#[derive(Debug)]
pub struct Ticket<'a> {
    cache: &'a RangeCache,
    epoch: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.cache.lock().tickets -= 1;
    }
}

#[derive(Debug)]
struct Entry {
    value: Arc<str>,
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    /// Bumped by every invalidation.
    epoch: u64,
    /// `(epoch, lo, hi)` of the last [`RECENT`] invalidations, oldest first.
    recent: VecDeque<(u64, i64, i64)>,
    /// Invalidations up to this epoch are forgotten.
    forgotten: u64,
    clock: u64,
    /// Tickets taken and not yet dropped.
    tickets: usize,
}

/// Counters for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
    pub invalidated: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct RangeCache {
    budget: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidated: AtomicU64,
}

fn overlaps(key: &Key, lo: i64, hi: i64) -> bool {
    lo < key.end && hi >= key.start
}

impl RangeCache {
    /// A cache holding at most `budget` bytes of answers (0: caches nothing).
    pub fn new(budget: usize) -> RangeCache {
        RangeCache {
            budget,
            inner: Mutex::new(Inner::default()),
            hits: Default::default(),
            misses: Default::default(),
            invalidated: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by a writer once its batch is visible to queries: drops the
    /// answers that overlap the batch's time range, which `range` finds
    /// (`None`: an empty batch). When nothing is cached and no computation
    /// is under way, `range` is not called at all.
    pub fn written(&self, range: impl FnOnce() -> Option<(i64, i64)>) {
        {
            let inner = self.lock();
            if inner.entries.is_empty() && inner.tickets == 0 {
                return;
            }
        }
        if let Some((lo, hi)) = range() {
            self.invalidate(lo, hi);
        }
    }

    /// The cached answer for `key`, if any.
    pub fn get(&self, key: &Key) -> Option<Arc<str>> {
        if self.budget == 0 {
            return None;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let found = inner.entries.get_mut(key).map(|e| {
            e.used = now;
            e.value.clone()
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Taken before computing an answer to be stored with [`RangeCache::put`].
    pub fn ticket(&self) -> Ticket<'_> {
        let mut inner = self.lock();
        inner.tickets += 1;
        Ticket {
            cache: self,
            epoch: inner.epoch,
        }
    }

    /// Stores `value` under `key` unless an invalidation since `ticket`
    /// overlaps its range (then the answer may be stale and is dropped).
    /// Returns whether it was stored.
    pub fn put(&self, ticket: Ticket<'_>, key: Key, value: Arc<str>) -> bool {
        let epoch = ticket.epoch;
        // The ticket is given back under the same lock as the check below,
        // so that no writer sees "no ticket out" before the answer is in.
        std::mem::forget(ticket);
        let mut inner = self.lock();
        inner.tickets -= 1;
        let size = value.len() + key.symbol.len() + 64;
        if size > self.budget || epoch < inner.forgotten {
            return false;
        }
        let stale = inner
            .recent
            .iter()
            .rev()
            .take_while(|(e, _, _)| *e > epoch)
            .any(|&(_, lo, hi)| overlaps(&key, lo, hi));
        if stale {
            return false;
        }
        while inner.bytes + size > self.budget {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            remove(&mut inner, &oldest);
        }
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.entries.insert(key.clone(), Entry { value, used }) {
            inner.bytes -= old.value.len() + key.symbol.len() + 64;
        }
        inner.bytes += size;
        true
    }

    /// Drops every answer whose range overlaps the timestamps `[lo, hi]`.
    pub fn invalidate(&self, lo: i64, hi: i64) {
        let mut inner = self.lock();
        inner.epoch += 1;
        let epoch = inner.epoch;
        inner.recent.push_back((epoch, lo, hi));
        if inner.recent.len() > RECENT {
            if let Some((e, _, _)) = inner.recent.pop_front() {
                inner.forgotten = e;
            }
        }
        let doomed: Vec<Key> = inner
            .entries
            .keys()
            .filter(|k| overlaps(k, lo, hi))
            .cloned()
            .collect();
        self.invalidated
            .fetch_add(doomed.len() as u64, Ordering::Relaxed);
        for k in &doomed {
            remove(&mut inner, k);
        }
    }

    /// Drops everything (retention removed data).
    pub fn clear(&self) {
        self.invalidate(i64::MIN, i64::MAX);
    }

    /// Entries, bytes and counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.entries.len(),
            bytes: inner.bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
        }
    }
}

fn remove(inner: &mut Inner, key: &Key) {
    if let Some(e) = inner.entries.remove(key) {
        inner.bytes -= e.value.len() + key.symbol.len() + 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(start: i64, end: i64) -> Key {
        Key {
            kind: "ohlcv",
            symbol: "BTC/USD".into(),
            start,
            end,
            param: 60,
        }
    }

    #[test]
    fn overlapping_writes_drop_answers_and_others_keep_them() {
        let c = RangeCache::new(1 << 20);
        assert!(c.put(c.ticket(), key(0, 100), "a".into()));
        assert!(c.put(c.ticket(), key(100, 200), "b".into()));
        c.invalidate(100, 100);
        assert_eq!(c.get(&key(0, 100)).as_deref(), Some("a"));
        assert_eq!(c.get(&key(100, 200)), None);
        c.invalidate(-5, -1);
        c.invalidate(200, 300);
        assert_eq!(c.get(&key(0, 100)).as_deref(), Some("a"));
        c.clear();
        assert_eq!(c.get(&key(0, 100)), None);
        assert_eq!(c.stats().entries, 0);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.invalidated), (2, 2, 2));
    }

    #[test]
    fn an_answer_computed_across_an_overlapping_write_is_not_kept() {
        let c = RangeCache::new(1 << 20);
        let (t1, t2) = (c.ticket(), c.ticket());
        c.invalidate(150, 160);
        assert!(!c.put(t1, key(100, 200), "stale".into()));
        assert!(c.put(t2, key(0, 100), "fine".into()));
        // A ticket taken after the write may store.
        assert!(c.put(c.ticket(), key(100, 200), "fresh".into()));
        assert_eq!(c.get(&key(100, 200)).as_deref(), Some("fresh"));
    }

    #[test]
    fn writers_skip_the_range_only_when_nothing_could_go_stale() {
        let c = RangeCache::new(1 << 20);
        let mut asked = 0;
        c.written(|| {
            asked += 1;
            Some((0, 1))
        });
        assert_eq!(asked, 0, "nothing cached, nothing computing");
        let t = c.ticket();
        c.written(|| {
            asked += 1;
            Some((0, 1))
        });
        assert_eq!(asked, 1, "a computation is under way");
        assert!(!c.put(t, key(0, 100), "stale".into()));
        assert!(c.put(c.ticket(), key(0, 100), "a".into()));
        c.written(|| {
            asked += 1;
            Some((50, 60))
        });
        assert_eq!(asked, 2, "an answer is cached");
        assert_eq!(c.get(&key(0, 100)), None);
        // A dropped ticket is given back.
        drop(c.ticket());
        c.written(|| {
            asked += 1;
            None
        });
        assert_eq!(asked, 2);
    }

    #[test]
    fn a_ticket_older_than_what_is_remembered_is_refused() {
        let c = RangeCache::new(1 << 20);
        let t = c.ticket();
        for i in 0..=RECENT as i64 {
            c.invalidate(1000 + i, 1000 + i);
        }
        assert!(!c.put(t, key(0, 100), "x".into()));
        assert!(c.put(c.ticket(), key(0, 100), "x".into()));
    }

    #[test]
    fn the_byte_budget_evicts_the_least_recently_used() {
        let value: Arc<str> = "v".repeat(100).into();
        let per = 100 + "BTC/USD".len() + 64;
        let c = RangeCache::new(per * 2);
        assert!(c.put(c.ticket(), key(0, 1), value.clone()));
        assert!(c.put(c.ticket(), key(1, 2), value.clone()));
        assert!(c.get(&key(0, 1)).is_some());
        assert!(c.put(c.ticket(), key(2, 3), value.clone()));
        assert!(c.get(&key(0, 1)).is_some(), "recently used stays");
        assert!(c.get(&key(1, 2)).is_none(), "least recently used goes");
        assert_eq!(c.stats().bytes, per * 2);
        // Replacing an entry does not count it twice.
        assert!(c.put(c.ticket(), key(2, 3), value.clone()));
        assert_eq!(c.stats().bytes, per * 2);
        // Nothing fits a zero budget.
        let none = RangeCache::new(0);
        assert!(!none.put(none.ticket(), key(0, 1), value));
        assert!(none.get(&key(0, 1)).is_none());
    }
}
