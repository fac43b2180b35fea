//! How one thread wakes another without a lock or a syscall in the steady state.
//!
//! Data moves through rtrb rings; these types only say "look at your ring". A consumer that
//! finds nothing to do raises a `sleeping` flag, checks its rings once more, and only then
//! sleeps. A producer, after pushing, looks at the flag and makes the wake-up call only when it
//! is raised. Both sides put a `SeqCst` fence between their write and their read (the classic
//! store-fence-load handshake), so at least one of them sees the other: either the producer
//! sees the flag and wakes the consumer, or the consumer sees the new item and does not sleep.
//! While a consumer is busy its flag stays down and producers pay one fence and one load.
//!
//! # Replies held for a commit
//!
//! A `durable` reply (and, in `durable` connection mode, an execution report) sits in the
//! connection's reply ring until the journal's commit covers it. Three parties can release it,
//! and the task must be waiting on each of them whenever it parks:
//!
//! - **The journal** stores `durable_cseq` and `durable_seq` (Release) after each commit, then
//!   calls `notify_waiters` on the daemon's `committed` [`tokio::sync::Notify`].
//! - **The engine** pushes the reply (or report), then rings the connection's [`TaskBell`].
//! - **The connection task**, each round:
//!   1. creates its `committed.notified()` future *first*: a `Notified` receives every
//!      `notify_waiters` from its creation on, so a commit that lands after step 2 wakes it;
//!   2. looks at the ring's next message and `durable_cseq`: writes it if it may go, or, if it
//!      must wait, notes it as *held* and asks the journal to commit it now (`hurry`);
//!   3. before parking, raises the bell's flag ([`TaskBell::prepare`]) and looks once more:
//!      it goes round again if the next message may now be written, **or if a message that
//!      must wait has arrived that it has not noted as held** (it arrived after step 2, so
//!      the journal was not asked for it and step 4 would not wait on the commit);
//!   4. parks on the bell (a new message) and, while a message is held, on the commit.
//!
//! Without the second half of step 3, a reply that arrived between steps 2 and 3 was seen by
//! nobody: the engine had rung before the flag was raised, and the task waited on the bell
//! only, not on the commit. A spin before parking (`daemon.reply_spin_us`) used to hide that.
//! A task never spins for a reply it knows is durable: the commit it needs takes longer than
//! any spin, and the spin would take the core the journal commits on.
//!
//! When the engine lets go of the ring (the client went away, the daemon drains), an empty
//! abandoned ring ends the wait, but one that still holds messages waiting for a commit does
//! not: the task waits on the commit for them like any other. (Counting "abandoned" alone as
//! a reason to go round made a task whose client had left with durable replies owed spin at
//! full speed for as long as the journal could not commit; `orderpipe_connection_rounds_total`
//! counts the rounds, and a test holds it still between failed commits.)

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_utils::CachePadded;

/// Wakes an OS thread (the engine, the journal) that parks when idle.
#[derive(Debug, Default)]
pub struct Doorbell {
    /// Raised by the consumer just before it parks; lowered by whoever wakes it.
    sleeping: CachePadded<AtomicBool>,
    /// The consumer thread, known once it calls [`Doorbell::bind_current_thread`].
    thread: OnceLock<Thread>,
}

impl Doorbell {
    /// A doorbell with no thread bound yet.
    pub fn new() -> Doorbell {
        Doorbell::default()
    }

    /// Makes the calling thread the one this doorbell wakes. Call once, from the consumer.
    pub fn bind_current_thread(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Producer side: call after pushing. Wakes the consumer only if it is parked (or about to).
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed)
            && self.sleeping.swap(false, Ordering::Relaxed)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    /// Wakes the consumer whether or not it raised its flag (it may be in a short timed park).
    /// For callers off the hot path that want the consumer to act now.
    pub fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Consumer side: parks for at most `timeout` unless `has_work` (checked after the flag is
    /// raised) finds something. Returns early when rung. Spurious returns are possible; callers
    /// loop.
    pub fn sleep(&self, timeout: Duration, has_work: impl FnOnce() -> bool) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !has_work() {
            std::thread::park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

/// Wakes an async task (a connection) that waits for replies from the engine.
#[derive(Debug, Default)]
pub struct TaskBell {
    /// Raised by the task just before it awaits `notify`.
    waiting: CachePadded<AtomicBool>,
    /// Carries the wake-up into the async runtime; keeps a permit if rung before the await.
    notify: tokio::sync::Notify,
}

impl TaskBell {
    /// A bell with nobody waiting.
    pub fn new() -> TaskBell {
        TaskBell::default()
    }

    /// Producer side (engine thread): call after pushing replies. Touches the runtime only if
    /// the task is waiting.
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::Relaxed) {
            self.notify.notify_one();
        }
    }

    /// Unconditional wake, for rare events (the engine dropping the connection).
    pub fn ring_always(&self) {
        self.waiting.store(false, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Task side: raises the flag; returns true if `has_work` already finds something (then the
    /// task must not wait), false if it should await [`TaskBell::wait`].
    pub fn prepare(&self, has_work: impl FnOnce() -> bool) -> bool {
        self.waiting.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if has_work() {
            self.waiting.store(false, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Task side: resolves when rung after [`TaskBell::prepare`] (or immediately if a ring
    /// arrived since).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn doorbell_never_loses_a_wake_up() {
        // The consumer parks with a timeout far longer than the test: if a ring were lost, the
        // test would hang until the timeout and the total count below would fall short.
        let bell = Arc::new(Doorbell::new());
        let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(8);
        let received = Arc::new(AtomicU64::new(0));
        let consumer = {
            let bell = bell.clone();
            let received = received.clone();
            std::thread::spawn(move || {
                bell.bind_current_thread();
                let mut sum = 0;
                loop {
                    match rx.pop() {
                        Ok(u64::MAX) => break,
                        Ok(v) => {
                            sum += v;
                            received.store(sum, Ordering::Relaxed);
                        }
                        Err(_) => bell.sleep(Duration::from_secs(3600), || !rx.is_empty()),
                    }
                }
                sum
            })
        };
        let mut expected = 0;
        for i in 1..=20_000u64 {
            let mut v = i;
            loop {
                match tx.push(v) {
                    Ok(()) => break,
                    Err(rtrb::PushError::Full(back)) => {
                        v = back;
                        bell.ring();
                        std::thread::yield_now();
                    }
                }
            }
            expected += i;
            bell.ring();
        }
        while tx.push(u64::MAX).is_err() {
            bell.ring();
            std::thread::yield_now();
        }
        bell.ring();
        assert_eq!(consumer.join().unwrap(), expected);
    }

    #[test]
    fn task_bell_wakes_a_waiting_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bell = Arc::new(TaskBell::new());
        let (mut tx, mut rx) = rtrb::RingBuffer::<u32>::new(4);
        let producer = {
            let bell = bell.clone();
            std::thread::spawn(move || {
                for i in 0..1000u32 {
                    while tx.push(i).is_err() {
                        bell.ring();
                        std::thread::yield_now();
                    }
                    bell.ring();
                }
            })
        };
        let got = rt.block_on(async {
            let mut next = 0u32;
            while next < 1000 {
                while let Ok(v) = rx.pop() {
                    assert_eq!(v, next);
                    next += 1;
                }
                if next < 1000 && !bell.prepare(|| !rx.is_empty()) {
                    bell.wait().await;
                }
            }
            next
        });
        producer.join().unwrap();
        assert_eq!(got, 1000);
    }
}
