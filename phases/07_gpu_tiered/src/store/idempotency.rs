//! Idempotency keys: a batch sent again is stored once.
//!
//! A client whose connection broke, or whose server restarted, before it
//! read the answer cannot know whether its batch was stored. Sending it
//! again without a key may store it twice; not sending it may lose it.
//! With a key (`Idempotency-Key` on `POST /ingest`, `ingest
//! --idempotency-key` on the command line) it sends again: a key the store
//! has seen with the same batch is answered with the first answer (its LSN
//! and record count) and nothing is stored; with another batch it is an
//! error ([`Error::KeyConflict`]); a key the store has not seen is stored
//! as usual.
//!
//! # Where a key lives
//!
//! 1. In the WAL record of its batch (the key block, see [`crate::store::wal`]),
//!    written and fsynced with it: no crash can keep the batch and lose the
//!    key, or the other way round.
//! 2. In the catalog's `idempotency_keys`, written in the transaction that
//!    commits the batch's migration to the cold tier (after which its WAL
//!    segment may be deleted).
//! 3. In memory, in a [`KeyTable`], rebuilt from both when the store opens.
//!
//! "The same batch" is the same records, columns and types: the
//! fingerprint is XXH64 of the batch as the WAL encodes it
//! ([`crate::store::wal::Encoded::fingerprint`]), so the same JSON sent again
//! matches, and so does the same records sent as Arrow instead.
//!
//! # Retention
//!
//! A key is kept `idempotency.retention_hours` (24) after its batch was
//! stored, and only the newest `idempotency.max_keys` (100,000) are kept;
//! a retry later than either is stored again. Keys are forgotten oldest
//! first, in memory at each insert and in the catalog at each migration.
//!
//! # Two requests with one key at once
//!
//! The second waits until the first has an answer: if the first stored its
//! batch, the second gets its answer; if it failed before its batch was
//! durable, the second tries in its place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::config::IdempotencyConfig;
use crate::error::{Error, Result};
use crate::store::catalog::{KeyRetention, StoredKey};
use crate::store::wal::{KeyStamp, MAX_KEY_BYTES};

/// Checks a key as a client gave it: 1 to 255 bytes of visible ASCII (no
/// spaces, no control characters), as HTTP header values carry them.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "an idempotency key has 1 to {MAX_KEY_BYTES} characters, this one {}",
            key.len()
        )));
    }
    if let Some(at) = key.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(Error::InvalidArgument(format!(
            "an idempotency key is visible ASCII (no spaces or control characters); character {at} is not"
        )));
    }
    Ok(())
}

/// Unix seconds now.
pub fn now_s() -> i64 {
    crate::store::catalog::now_secs()
}

/// What `config` keeps as of now: the newest `max_keys`, none older than
/// `retention_hours`.
pub fn retention(config: &IdempotencyConfig) -> KeyRetention {
    KeyRetention {
        max_keys: config.max_keys,
        min_created_s: now_s().saturating_sub((config.retention_hours * 3600.0) as i64),
    }
}

/// What [`KeyTable::begin`] found.
pub enum Begin<'a> {
    /// The key was stored with this batch before: the first answer.
    Stored(StoredKey),
    /// The key is free: store the batch, then [`Reservation::complete`].
    Reserved(Reservation<'a>),
}

/// A key being stored. Dropped without [`Reservation::complete`] (the
/// batch was not stored), it frees the key for the next try.
pub struct Reservation<'a> {
    table: &'a KeyTable,
    key: String,
    fingerprint: u64,
    created_s: i64,
    done: bool,
}

impl Reservation<'_> {
    /// The stamp its WAL record carries.
    pub fn stamp(&self) -> KeyStamp {
        KeyStamp {
            key: self.key.clone(),
            fingerprint: self.fingerprint,
            created_s: self.created_s,
        }
    }

    /// The batch is durable at `lsn`: the key answers with it from now on.
    pub fn complete(mut self, lsn: u64, records: u64) -> StoredKey {
        let stored = StoredKey {
            key: std::mem::take(&mut self.key),
            fingerprint: self.fingerprint,
            lsn,
            records,
            created_s: self.created_s,
        };
        let mut t = self.table.lock();
        t.in_flight.remove(&stored.key);
        t.insert(stored.clone(), self.table.retention());
        self.done = true;
        drop(t);
        self.table.changed.notify_all();
        stored
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.table.lock().in_flight.remove(&self.key);
            self.table.changed.notify_all();
        }
    }
}

/// A kept key's answer (the key itself is the map's).
#[derive(Clone, Copy)]
struct Entry {
    fingerprint: u64,
    lsn: u64,
    records: u64,
    created_s: i64,
}

impl Entry {
    fn stored(&self, key: &str) -> StoredKey {
        StoredKey {
            key: key.to_string(),
            fingerprint: self.fingerprint,
            lsn: self.lsn,
            records: self.records,
            created_s: self.created_s,
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Each key's text is allocated once, shared by both maps.
    by_key: HashMap<Arc<str>, Entry>,
    /// The same keys by LSN (for retention and migration).
    by_lsn: BTreeMap<u64, Arc<str>>,
    in_flight: HashSet<String>,
    replays: u64,
    conflicts: u64,
}

impl Inner {
    fn insert(&mut self, k: StoredKey, retention: KeyRetention) {
        if let Some(old) = self.by_key.remove(k.key.as_str()) {
            self.by_lsn.remove(&old.lsn);
        }
        let key: Arc<str> = k.key.into();
        self.by_lsn.insert(k.lsn, key.clone());
        self.by_key.insert(
            key,
            Entry {
                fingerprint: k.fingerprint,
                lsn: k.lsn,
                records: k.records,
                created_s: k.created_s,
            },
        );
        self.prune(retention);
    }

    fn prune(&mut self, retention: KeyRetention) {
        while let Some((&lsn, key)) = self.by_lsn.first_key_value() {
            let expired = self
                .by_key
                .get(key)
                .is_none_or(|k| k.created_s < retention.min_created_s);
            if self.by_lsn.len() <= retention.max_keys && !expired {
                break;
            }
            if let Some(key) = self.by_lsn.remove(&lsn) {
                self.by_key.remove(&key);
            }
        }
    }
}

/// Counters of the key table, for `/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyStats {
    /// Keys kept now.
    pub keys: u64,
    /// Ingests answered with an earlier answer since the store opened.
    pub replays: u64,
    /// Keys sent again with another batch (refused) since the store opened.
    pub conflicts: u64,
}

/// The keys the store remembers, and the ones being stored right now.
pub struct KeyTable {
    inner: Mutex<Inner>,
    changed: Condvar,
    config: IdempotencyConfig,
}

impl KeyTable {
    /// A table of `keys` (from the catalog and the WAL, in any order; a key
    /// twice keeps its higher LSN), kept as `config` says.
    pub fn new(config: &IdempotencyConfig, keys: impl IntoIterator<Item = StoredKey>) -> KeyTable {
        let table = KeyTable {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            config: config.clone(),
        };
        let mut sorted: Vec<StoredKey> = keys.into_iter().collect();
        sorted.sort_by_key(|k| k.lsn);
        let retention = table.retention();
        {
            let mut t = table.lock();
            for k in sorted {
                t.insert(k, retention);
            }
        }
        table
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is kept as of now.
    pub fn retention(&self) -> KeyRetention {
        retention(&self.config)
    }

    /// Looks `key` up for a batch of `fingerprint`: its first answer, a
    /// conflict, or a reservation to store it. Waits while another ingest
    /// holds the same key.
    pub fn begin(&self, key: &str, fingerprint: u64) -> Result<Begin<'_>> {
        check_key(key)?;
        let mut t = self.lock();
        loop {
            t.prune(self.retention());
            if let Some(k) = t.by_key.get(key) {
                if k.fingerprint == fingerprint {
                    let k = k.stored(key);
                    t.replays += 1;
                    return Ok(Begin::Stored(k));
                }
                let lsn = k.lsn;
                t.conflicts += 1;
                return Err(Error::KeyConflict(format!(
                    "idempotency key {key:?} was used for another batch (stored at LSN {lsn}); \
                     a key names one batch: use a new key for new records"
                )));
            }
            if !t.in_flight.contains(key) {
                t.in_flight.insert(key.to_string());
                return Ok(Begin::Reserved(Reservation {
                    table: self,
                    key: key.to_string(),
                    fingerprint,
                    created_s: now_s(),
                    done: false,
                }));
            }
            t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The kept keys of batches with LSNs `lo..=hi` (a migration's).
    pub fn in_range(&self, lo: u64, hi: u64) -> Vec<StoredKey> {
        let t = self.lock();
        t.by_lsn
            .range(lo..=hi)
            .filter_map(|(_, key)| t.by_key.get(key).map(|e| e.stored(key)))
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> KeyStats {
        let t = self.lock();
        KeyStats {
            keys: t.by_key.len() as u64,
            replays: t.replays,
            conflicts: t.conflicts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_keys: usize) -> IdempotencyConfig {
        IdempotencyConfig {
            max_keys,
            retention_hours: 1.0,
        }
    }

    fn stored(key: &str, lsn: u64, created_s: i64) -> StoredKey {
        StoredKey {
            key: key.into(),
            fingerprint: 7,
            lsn,
            records: 3,
            created_s,
        }
    }

    #[test]
    fn a_key_answers_its_first_answer_and_refuses_another_batch() {
        let t = KeyTable::new(&config(10), []);
        let Begin::Reserved(r) = t.begin("k1", 7).unwrap() else {
            panic!("a new key is free")
        };
        assert_eq!(r.stamp().key, "k1");
        r.complete(5, 3);
        match t.begin("k1", 7).unwrap() {
            Begin::Stored(k) => assert_eq!((k.lsn, k.records), (5, 3)),
            Begin::Reserved(_) => panic!("the key was stored"),
        }
        let e = t.begin("k1", 8).err().unwrap();
        assert!(matches!(e, Error::KeyConflict(_)), "{e}");
        assert_eq!(
            t.stats(),
            KeyStats {
                keys: 1,
                replays: 1,
                conflicts: 1
            }
        );
    }

    #[test]
    fn a_reservation_dropped_frees_the_key() {
        let t = KeyTable::new(&config(10), []);
        let Begin::Reserved(r) = t.begin("k", 1).unwrap() else {
            panic!()
        };
        drop(r);
        assert!(matches!(t.begin("k", 2).unwrap(), Begin::Reserved(_)));
    }

    #[test]
    fn a_second_caller_waits_for_the_first() {
        let t = std::sync::Arc::new(KeyTable::new(&config(10), []));
        let Begin::Reserved(r) = t.begin("k", 1).unwrap() else {
            panic!()
        };
        let t2 = t.clone();
        let waiter = std::thread::spawn(move || match t2.begin("k", 1).unwrap() {
            Begin::Stored(k) => k.lsn,
            Begin::Reserved(_) => 0,
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        r.complete(9, 1);
        assert_eq!(waiter.join().unwrap(), 9);
    }

    #[test]
    fn retention_keeps_the_newest_keys_within_the_hours() {
        let now = now_s();
        let t = KeyTable::new(
            &config(3),
            [
                stored("old", 1, now - 7200),
                stored("a", 2, now),
                stored("b", 3, now),
                stored("c", 4, now),
                stored("d", 5, now),
            ],
        );
        assert_eq!(t.stats().keys, 3);
        assert!(matches!(t.begin("old", 7).unwrap(), Begin::Reserved(_)));
        assert!(matches!(t.begin("a", 7).unwrap(), Begin::Reserved(_)));
        assert!(matches!(t.begin("b", 7).unwrap(), Begin::Stored(_)));
        assert_eq!(
            t.in_range(1, 4)
                .iter()
                .map(|k| k.key.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(check_key("batch-0001:a/b").is_ok());
        for bad in ["", "with space", "tab\t", "é", &"k".repeat(256)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(255)).is_ok());
    }
}
