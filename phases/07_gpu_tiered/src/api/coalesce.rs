//! Request coalescing ("single flight", as Go's `singleflight` package and
//! Thanos' or Cortex's query frontends do it), bounded by a number of
//! computations at once, and kept correct for read-your-writes.
//!
//! The first request for a key queues a computation for one of
//! `concurrency` slots. While the computation waits for its slot, requests
//! for the same key join it, and when it has run they all get its one
//! answer. A request never joins a computation that has already *started*:
//! the entry is withdrawn from the table before the computation begins, so
//! every joined request arrived before the computation read the store, and
//! every write acknowledged before any of them arrived is in the answer.
//! This is not a cache: nothing is kept once the waiters have the answer.
//!
//! The queued computation belongs to no request: it keeps its place in the
//! queue when the request that queued it goes away (its client
//! disconnected, its deadline passed), and the slot goes to the
//! computation itself (`compute` is handed the permit, to hold for as long
//! as its work runs, on whatever thread that is), so abandoned requests
//! never let more than `concurrency` computations run. A computation whose
//! requests have all gone away by the time it gets a slot is not run.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Counts of what the coalescer did, for `/stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceStats {
    /// Computations started.
    pub computed: u64,
    /// Requests answered by a computation another request queued.
    pub joined: u64,
    /// Requests waiting now, for a slot or for an answer.
    pub waiting: u64,
    /// Computations not run: every request for them had gone away.
    pub abandoned: u64,
}

/// See the module's documentation. `K` names a computation (equal keys
/// give equal answers when computed at the same moment); `V` is its answer.
pub struct Coalescer<K, V> {
    /// The answer channel of each computation still waiting for a slot
    /// (at most one per key: only its own task withdraws it).
    waiting: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
    running: Arc<Semaphore>,
    computed: AtomicU64,
    joined: AtomicU64,
    waiting_now: AtomicU64,
    abandoned: AtomicU64,
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

impl<K, V> Coalescer<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `concurrency` computations at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        Coalescer {
            waiting: Mutex::new(HashMap::new()),
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            computed: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            waiting_now: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CoalesceStats {
        CoalesceStats {
            computed: self.computed.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            waiting: self.waiting_now.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
        }
    }

    /// The answer for `key`: that of a computation for `key` queued by this
    /// request (`compute`, given the slot's permit) or by one before it
    /// that had not started when this one arrived. `None` only if that
    /// computation ended without an answer (it panicked).
    ///
    /// Must be called within a Tokio runtime: the computation is a task of
    /// its own.
    pub async fn run<F, Fut>(self: &Arc<Self>, key: K, compute: F) -> Option<V>
    where
        F: FnOnce(OwnedSemaphorePermit) -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (mut answer, lead) = {
            let mut table = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            match table.get(&key) {
                Some(answer) => (answer.clone(), None),
                None => {
                    let (tx, rx) = watch::channel(None);
                    table.insert(key.clone(), rx.clone());
                    (rx, Some(tx))
                }
            }
        };
        let queued = lead.is_some();
        if let Some(tx) = lead {
            let mut acquire = Box::pin(self.running.clone().acquire_owned());
            // Polled once here, so that the computation takes its place in
            // the queue for a slot in this request's turn.
            let ready = futures_util::FutureExt::now_or_never(acquire.as_mut());
            let this = self.clone();
            tokio::spawn(async move {
                let slot = match ready {
                    Some(slot) => slot,
                    None => acquire.await,
                };
                // The semaphore is never closed.
                let Ok(slot) = slot else {
                    return;
                };
                // Withdrawn before the computation starts: later requests
                // queue their own, and see every write acknowledged before
                // them.
                this.waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                if tx.receiver_count() == 0 {
                    this.abandoned.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                this.computed.fetch_add(1, Ordering::Relaxed);
                let v = compute(slot).await;
                let _ = tx.send(Some(v));
            });
        }
        let _counted = Counted::new(&self.waiting_now);
        // An error: the computation ended without an answer.
        let v = answer.wait_for(Option::is_some).await.ok()?.clone()?;
        if !queued {
            self.joined.fetch_add(1, Ordering::Relaxed);
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
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

    /// A computation that holds the only slot until `release` is sent.
    fn hold_the_slot(c: &Arc<Coalescer<u8, u32>>) -> tokio::sync::oneshot::Sender<()> {
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let c = c.clone();
        tokio::spawn(async move {
            c.run(0, |slot| async move {
                let _slot = slot;
                held.await.unwrap_or(());
                0
            })
            .await
        });
        release
    }

    #[test]
    fn requests_that_wait_together_share_one_computation_and_others_do_not() {
        rt().block_on(async {
            let c = Arc::new(Coalescer::<u8, u32>::new(1));
            let runs = Arc::new(AtomicU32::new(0));
            let release = hold_the_slot(&c);
            until(|| c.running.available_permits() == 0).await;
            let mut asks = Vec::new();
            for _ in 0..10 {
                let (c, runs) = (c.clone(), runs.clone());
                asks.push(tokio::spawn(async move {
                    c.run(
                        1,
                        |_slot| async move { runs.fetch_add(1, Ordering::SeqCst) + 7 },
                    )
                    .await
                }));
            }
            // The holder of the slot, and the ten.
            until(|| c.stats().waiting == 11).await;
            release.send(()).unwrap();
            for a in asks {
                assert_eq!(a.await.unwrap(), Some(7));
            }
            assert_eq!(runs.load(Ordering::SeqCst), 1);
            let s = c.stats();
            assert_eq!((s.computed, s.joined, s.waiting), (2, 9, 0));
            // Nothing is kept: the next request computes again.
            let runs2 = runs.clone();
            let again = c
                .run(1, |_slot| async move {
                    runs2.fetch_add(1, Ordering::SeqCst) + 7
                })
                .await;
            assert_eq!(again, Some(8));
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
                    c.run(1, |_slot| async move {
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
            let second = tokio::time::timeout(Duration::from_secs(10), c.run(1, |_| async { 2 }))
                .await
                .expect("the request joined a computation that had started");
            assert_eq!(second, Some(2));
            finish_tx.send(()).unwrap();
            assert_eq!(first.await.unwrap(), Some(1));
            assert_eq!(c.stats().joined, 0);
        });
    }

    #[test]
    fn a_computation_outlives_the_request_that_queued_it_and_keeps_its_place() {
        rt().block_on(async {
            let c = Arc::new(Coalescer::<u8, u32>::new(1));
            let order = Arc::new(Mutex::new(Vec::new()));
            let release = hold_the_slot(&c);
            until(|| c.running.available_permits() == 0).await;
            let ask = |key: u8| {
                let (c, order) = (c.clone(), order.clone());
                tokio::spawn(async move {
                    c.run(key, move |_slot| async move {
                        order.lock().unwrap().push(key);
                        u32::from(key) * 100
                    })
                    .await
                })
            };
            // The request that queues key 1 goes away; one that joined it
            // stays, and key 2 queues behind it. (The holder of the slot
            // waits too.)
            let leader = ask(1);
            until(|| c.stats().waiting == 2).await;
            let joiner = ask(1);
            until(|| c.stats().waiting == 3).await;
            let behind = ask(2);
            until(|| c.stats().waiting == 4).await;
            leader.abort();
            assert!(leader.await.unwrap_err().is_cancelled());
            release.send(()).unwrap();
            assert_eq!(joiner.await.unwrap(), Some(100));
            assert_eq!(behind.await.unwrap(), Some(200));
            assert_eq!(*order.lock().unwrap(), [1, 2], "key 1 kept its place");
        });
    }

    #[test]
    fn a_computation_nobody_waits_for_is_not_run_and_holds_its_slot_while_it_runs() {
        rt().block_on(async {
            let c = Arc::new(Coalescer::<u8, u32>::new(1));
            let release = hold_the_slot(&c);
            until(|| c.running.available_permits() == 0).await;
            let runs = Arc::new(AtomicU32::new(0));
            let gone = {
                let (c, runs) = (c.clone(), runs.clone());
                tokio::spawn(async move {
                    c.run(
                        1,
                        |_slot| async move { runs.fetch_add(1, Ordering::SeqCst) },
                    )
                    .await
                })
            };
            until(|| c.stats().waiting == 2).await;
            gone.abort();
            let _ = gone.await;
            release.send(()).unwrap();
            // A computation whose requester went away while it ran keeps
            // the slot until its work ends (the permit moves into it).
            let (go_tx, go) = std::sync::mpsc::channel::<()>();
            let blocked = {
                let c = c.clone();
                tokio::spawn(async move {
                    c.run(2, |slot| async move {
                        tokio::task::spawn_blocking(move || {
                            let _slot = slot;
                            go.recv().unwrap_or(());
                            5
                        })
                        .await
                        .unwrap_or(0)
                    })
                    .await
                })
            };
            until(|| c.stats().computed == 2).await;
            blocked.abort();
            let _ = blocked.await;
            assert_eq!(c.running.available_permits(), 0, "the work still runs");
            go_tx.send(()).unwrap();
            until(|| c.running.available_permits() == 1).await;
            assert_eq!(runs.load(Ordering::SeqCst), 0);
            assert_eq!(c.stats().abandoned, 1);
        });
    }
}
