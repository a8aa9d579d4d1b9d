//! Request coalescing ("single flight", as Go's `singleflight` package and
//! Thanos' or Cortex's query frontends do it), bounded by a number of
//! computations at once, and kept correct for read-your-writes.
//!
//! A request waits for one of `concurrency` computation slots. While it
//! waits, requests for the same key join it, and when it gets a slot all of
//! them get its one answer. A request never joins a computation that has
//! already *started*: the entry is withdrawn from the table before the
//! computation begins, so every joined request arrived before the
//! computation read the store, and every write acknowledged before any of
//! them arrived is in the answer. This is not a cache: nothing is kept
//! once the computation has answered its waiters.
//!
//! If the leading request goes away before its computation answers (its
//! client disconnected, or its deadline passed), the waiters find the
//! answer channel closed and start again, one of them leading.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{watch, Semaphore};

/// Counts of what the coalescer did, for `/stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceStats {
    /// Computations run.
    pub computed: u64,
    /// Requests answered by another request's computation.
    pub joined: u64,
    /// Requests waiting now, for a slot or for another's answer.
    pub waiting: u64,
}

/// See the module's documentation. `K` names a computation (equal keys
/// give equal answers when computed at the same moment); `V` is its answer.
pub struct Coalescer<K, V> {
    waiting: Mutex<HashMap<K, Waiting<V>>>,
    running: Semaphore,
    next_id: AtomicU64,
    computed: AtomicU64,
    joined: AtomicU64,
    waiting_now: AtomicU64,
}

/// Counts a request in `waiting_now` while it lives.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(n: &'a AtomicU64) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Counted(n)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Waiting<V> {
    id: u64,
    answer: watch::Receiver<Option<V>>,
}

/// Withdraws a waiting entry from the table when dropped, if it is still
/// the one this request put there.
struct Withdraw<'a, K: Hash + Eq, V> {
    table: &'a Mutex<HashMap<K, Waiting<V>>>,
    key: &'a K,
    id: u64,
}

impl<K: Hash + Eq, V> Drop for Withdraw<'_, K, V> {
    fn drop(&mut self) {
        // A poisoned lock only means another request panicked while
        // holding it; the table itself is still consistent.
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.get(self.key).is_some_and(|w| w.id == self.id) {
            table.remove(self.key);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Coalescer<K, V> {
    /// At most `concurrency` computations at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        Coalescer {
            waiting: Mutex::new(HashMap::new()),
            running: Semaphore::new(concurrency.max(1)),
            next_id: AtomicU64::new(0),
            computed: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            waiting_now: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CoalesceStats {
        CoalesceStats {
            computed: self.computed.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            waiting: self.waiting_now.load(Ordering::Relaxed),
        }
    }

    /// The answer for `key`: `compute`'s, or that of a computation for the
    /// same key that had not yet started when this request arrived.
    pub async fn run<F, Fut>(&self, key: K, compute: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            let (mut answer, lead) = {
                let mut table = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
                match table.get(&key) {
                    Some(w) => (w.answer.clone(), None),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        table.insert(
                            key.clone(),
                            Waiting {
                                id,
                                answer: rx.clone(),
                            },
                        );
                        (rx, Some((tx, id)))
                    }
                }
            };
            let counted = Counted::new(&self.waiting_now);
            let Some((tx, id)) = lead else {
                // An error: the leader went away without an answer; again.
                let answered = answer.wait_for(Option::is_some).await.ok();
                if let Some(v) = answered.and_then(|v| v.clone()) {
                    self.joined.fetch_add(1, Ordering::Relaxed);
                    return v;
                }
                continue;
            };
            let withdraw = Withdraw {
                table: &self.waiting,
                key: &key,
                id,
            };
            // The semaphore is never closed, so this only waits.
            let _slot = self.running.acquire().await.ok();
            drop(counted);
            // Withdrawn before the computation starts: later requests
            // start their own and see every write before them.
            drop(withdraw);
            let v = compute().await;
            self.computed.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Some(v.clone()));
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;
    use std::time::Duration;

    /// Yields until `done` holds: the tasks under test reach the state
    /// named, whatever the timing.
    async fn until(done: impl Fn() -> bool) {
        while !done() {
            tokio::task::yield_now().await;
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn requests_that_wait_together_share_one_computation_and_others_do_not() {
        rt().block_on(async {
            let c = Arc::new(Coalescer::<&str, u32>::new(1));
            let runs = Arc::new(AtomicU32::new(0));
            // Hold the only slot, so that the requests below wait.
            let (release, held) = tokio::sync::oneshot::channel::<()>();
            let blocker = {
                let c = c.clone();
                tokio::spawn(async move {
                    c.run("other", || async {
                        held.await.unwrap_or(());
                        0
                    })
                    .await
                })
            };
            until(|| c.running.available_permits() == 0).await;
            let mut asks = Vec::new();
            for _ in 0..10 {
                let (c, runs) = (c.clone(), runs.clone());
                asks.push(tokio::spawn(async move {
                    c.run(
                        "k",
                        || async move { runs.fetch_add(1, Ordering::SeqCst) + 7 },
                    )
                    .await
                }));
            }
            until(|| c.stats().waiting == 10).await;
            release.send(()).unwrap();
            for a in asks {
                assert_eq!(a.await.unwrap(), 7);
            }
            assert_eq!(blocker.await.unwrap(), 0);
            assert_eq!(runs.load(Ordering::SeqCst), 1);
            assert_eq!(
                c.stats(),
                CoalesceStats {
                    computed: 2,
                    joined: 9,
                    waiting: 0
                }
            );
            // Nothing is kept: the next request computes again.
            let runs2 = runs.clone();
            assert_eq!(
                c.run(
                    "k",
                    || async move { runs2.fetch_add(1, Ordering::SeqCst) + 7 }
                )
                .await,
                8
            );
        });
    }

    #[test]
    fn a_request_never_joins_a_computation_that_has_started() {
        rt().block_on(async {
            let c = Arc::new(Coalescer::<u8, u32>::new(4));
            let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
            let (finish_tx, finish) = tokio::sync::oneshot::channel::<()>();
            let first = {
                let c = c.clone();
                tokio::spawn(async move {
                    c.run(1, || async move {
                        let _ = started_tx.send(());
                        finish.await.unwrap_or(());
                        1
                    })
                    .await
                })
            };
            started.await.unwrap();
            // The first computation is under way: this one must run its own
            // (it may have to see a write acknowledged after the first began).
            // (Joining it would wait for ever: it finishes only after this.)
            let second = tokio::time::timeout(Duration::from_secs(10), c.run(1, || async { 2 }))
                .await
                .expect("the request joined a computation that had started");
            assert_eq!(second, 2);
            finish_tx.send(()).unwrap();
            assert_eq!(first.await.unwrap(), 1);
            assert_eq!(c.stats().joined, 0);
        });
    }

    #[test]
    fn waiters_start_again_when_the_leader_goes_away() {
        rt().block_on(async {
            let c = Arc::new(Coalescer::<u8, u32>::new(1));
            let (release, held) = tokio::sync::oneshot::channel::<()>();
            let blocker = {
                let c = c.clone();
                tokio::spawn(async move {
                    c.run(0, || async {
                        held.await.unwrap_or(());
                        0
                    })
                    .await
                })
            };
            until(|| c.running.available_permits() == 0).await;
            // The leader waits for the slot, and is then dropped (its
            // client went away).
            let leader = {
                let c = c.clone();
                tokio::spawn(async move { c.run(1, || async { 100 }).await })
            };
            until(|| c.stats().waiting == 1).await;
            let waiter = {
                let c = c.clone();
                tokio::spawn(async move { c.run(1, || async { 5 }).await })
            };
            until(|| c.stats().waiting == 2).await;
            leader.abort();
            assert!(leader.await.unwrap_err().is_cancelled());
            release.send(()).unwrap();
            assert_eq!(blocker.await.unwrap(), 0);
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(5), waiter)
                    .await
                    .unwrap()
                    .unwrap(),
                5
            );
        });
    }
}
