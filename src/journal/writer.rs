//! The `journal` thread: the command journal's only writer, and the daemon's durability point.
//!
//! It takes the engine's command records from the journal ring, writes each batch as one block
//! (one row of `CommandBlocks`) in one transaction, and publishes `durable_cseq` and
//! `durable_seq` after each commit: a `durable` reply waits for this commit and nothing else.
//! A failed commit is retried with the same batch until it succeeds; meanwhile the ring fills
//! and the engine answers `busy`, so nothing is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;

use super::block::BlockWriter;
use super::ring::RecordReceiver;
use super::{JournalControl, lower_priority};
use crate::config::Config;
use crate::telemetry::{Counters, LatencyHistogram, bump, mono_ns, wall_ns};
use crate::wake::Doorbell;

/// How long an idle journal sleeps before looking at its control channel anyway.
const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// How long the journal polls its ring after the last record before it parks on its doorbell.
const DEEP_SLEEP_AFTER: Duration = Duration::from_millis(50);

/// Longest pause between retries of a failed commit.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(100);

const INSERT_BLOCK: &str = "INSERT INTO CommandBlocks \
     (first_cseq, last_cseq, last_seq, checksum, body, written_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// What someone waits to see committed: the journal commits a partial batch at once, instead
/// of letting it fill for `max_delay`, while either is beyond what it has committed.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Highest command sequence number a `durable` reply waits for.
    pub cseq: AtomicU64,
    /// Highest event sequence number a held execution report waits for.
    pub seq: AtomicU64,
}

/// What other threads hold to talk to the journal.
#[derive(Debug, Clone)]
pub struct JournalLink {
    /// Wakes the journal when it parks.
    bell: Arc<Doorbell>,
    /// Control messages.
    control: Sender<JournalControl>,
    /// Commits waited for.
    wanted: Arc<Wanted>,
}

impl JournalLink {
    /// Asks the journal to commit up to command `cseq` and event `seq` (0: none) without
    /// waiting for its batch to fill, and wakes it. Group commit: everything that reached the
    /// journal by then goes into the same transaction.
    pub fn hurry(&self, cseq: u64, seq: u64) {
        let before_c = self.wanted.cseq.fetch_max(cseq, Ordering::AcqRel);
        let before_s = self.wanted.seq.fetch_max(seq, Ordering::AcqRel);
        if before_c < cseq || before_s < seq {
            self.bell.wake();
        }
    }

    /// Sends a control message and wakes the journal; `false` if the journal cannot take it.
    pub fn send(&self, message: JournalControl) -> bool {
        let sent = self.control.try_send(message).is_ok();
        self.bell.ring();
        sent
    }
}

/// Where the journal's commits go besides SQLite.
#[derive(Debug)]
pub struct Followers {
    /// Told after every commit (connections holding durable replies, paused connections).
    pub committed: Arc<tokio::sync::Notify>,
    /// The projection thread's doorbell, rung after every commit.
    pub projector: Option<Arc<Doorbell>>,
}

/// The running journal thread.
#[derive(Debug)]
pub struct JournalHandle {
    /// Wakes the journal when it parks; rung by the engine after pushing records.
    bell: Arc<Doorbell>,
    /// Control messages.
    control: Sender<JournalControl>,
    /// Commits waited for.
    wanted: Arc<Wanted>,
    /// The thread, until joined.
    thread: Option<JoinHandle<()>>,
}

impl JournalHandle {
    /// Starts the journal thread on an opened command journal. `conn: None` is the
    /// benchmarks' null sink: commands are counted as committed and recorded nowhere.
    pub fn spawn(
        conn: Option<Connection>,
        records: RecordReceiver,
        config: &Config,
        counters: Arc<Counters>,
        followers: Followers,
    ) -> std::io::Result<JournalHandle> {
        let bell = Arc::new(Doorbell::new());
        let (control, control_rx) = crossbeam_channel::bounded(16);
        let wanted = Arc::new(Wanted::default());
        let mut writer = Writer {
            wanted: wanted.clone(),
            conn,
            records,
            control: control_rx,
            bell: bell.clone(),
            block: BlockWriter::new(),
            followers,
            stamps: Vec::with_capacity(config.journal.batch_size),
            batch_size: config.journal.batch_size,
            max_delay: config.journal.max_delay,
            counters,
            latency: LatencyHistogram::new(),
            faults: std::env::var_os(FAULTS_VAR).map(std::path::PathBuf::from),
        };
        let nice = config.journal.nice;
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                writer.bell.bind_current_thread();
                lower_priority("journal", nice);
                writer.write_all();
            })?;
        Ok(JournalHandle {
            bell,
            control,
            wanted,
            thread: Some(thread),
        })
    }

    /// The doorbell the engine rings after pushing records.
    pub fn bell(&self) -> Arc<Doorbell> {
        self.bell.clone()
    }

    /// A cloneable link to the journal.
    pub fn link(&self) -> JournalLink {
        JournalLink {
            bell: self.bell.clone(),
            control: self.control.clone(),
            wanted: self.wanted.clone(),
        }
    }

    /// True once the journal thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the journal to commit everything and end; `Err` if it panicked.
    pub fn join(mut self) -> Result<(), String> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|p| crate::engine::runner::panic_text(&p)),
            None => Ok(()),
        }
    }
}

struct Writer {
    /// The command journal; `None` in the null sink.
    conn: Option<Connection>,
    records: RecordReceiver,
    control: Receiver<JournalControl>,
    /// Commits someone waits for.
    wanted: Arc<Wanted>,
    bell: Arc<Doorbell>,
    /// The block being built (its buffer reused).
    block: BlockWriter,
    followers: Followers,
    /// The engine times of the commands in the block, taken from the ring and not yet
    /// committed (at most `batch_size`).
    stamps: Vec<u64>,
    batch_size: usize,
    max_delay: Duration,
    counters: Arc<Counters>,
    latency: LatencyHistogram,
    /// The test hook's file, from `ORDERPIPE_TEST_FAULTS` ([`injected_fault`]).
    faults: Option<std::path::PathBuf>,
}

/// The environment variable naming the fault-injection file of the tests.
pub const FAULTS_VAR: &str = "ORDERPIPE_TEST_FAULTS";

/// A test hook for the faults of a disk that cannot be provoked without privileges. When
/// [`FAULTS_VAR`] names a file, the journal reads it before each commit: `slow <ms>` makes the
/// commit take that much longer (a disk that takes seconds per write), `eio` makes it fail
/// with SQLite's I/O error (what a failing disk returns); anything else, or no file, is a
/// normal commit. Unset (always, outside tests) it costs nothing.
fn injected_fault(file: &std::path::Path) -> rusqlite::Result<()> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut words = text.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|w| w.parse::<u64>().ok()),
    ) {
        (Some("slow"), Some(ms)) => std::thread::sleep(Duration::from_millis(ms)),
        (Some("eio"), _) => {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some(format!("disk I/O error (injected by {FAULTS_VAR})")),
            ));
        }
        _ => {}
    }
    Ok(())
}

impl Writer {
    fn write_all(&mut self) {
        let mut first_at = Instant::now();
        // When the ring was last found empty with nothing to commit.
        let mut idle_since: Option<Instant> = None;
        loop {
            self.answer_control();
            let was_empty = self.stamps.is_empty();
            if self.take(self.batch_size - self.stamps.len()) > 0 && was_empty {
                first_at = Instant::now();
            }
            let finished = self.records.is_abandoned() && self.records.is_empty();
            if self.stamps.is_empty() {
                if finished {
                    break;
                }
                self.idle(idle_since.get_or_insert_with(Instant::now).elapsed());
                continue;
            }
            idle_since = None;
            let waited = first_at.elapsed();
            if self.stamps.len() < self.batch_size
                && !finished
                && waited < self.max_delay
                && !self.hurried()
            {
                // A partial batch: let it fill for the rest of its delay.
                std::thread::park_timeout(self.max_delay - waited);
                continue;
            }
            self.commit_with_retry();
        }
        tracing::info!(
            durable_cseq = self.counters.journal.durable_cseq.load(Ordering::Relaxed),
            "journal stopped: every command committed"
        );
    }

    /// Answers every waiting control message: between batches, and while a failing commit
    /// is retried, so that `stats` answers whatever the disk does.
    fn answer_control(&self) {
        while let Ok(message) = self.control.try_recv() {
            match message {
                JournalControl::Stats(reply) => {
                    let _ = reply.send(self.latency.clone());
                }
            }
        }
    }

    /// True when a connection waits for a commit beyond what is committed.
    fn hurried(&self) -> bool {
        let c = &self.counters.journal;
        self.wanted.cseq.load(Ordering::Acquire) > c.durable_cseq.load(Ordering::Relaxed)
            || self.wanted.seq.load(Ordering::Acquire) > c.durable_seq.load(Ordering::Relaxed)
    }

    /// Waits for records with nothing to commit. While recently busy the journal polls its ring
    /// every `max_delay` without raising its doorbell flag, so the engine never has to make a
    /// wake-up call in the steady state; after [`DEEP_SLEEP_AFTER`] of nothing (or with a zero
    /// delay) it parks on the doorbell and the engine's next push wakes it.
    fn idle(&self, idle_for: Duration) {
        if !self.max_delay.is_zero() && idle_for < DEEP_SLEEP_AFTER {
            std::thread::park_timeout(self.max_delay);
            return;
        }
        let records = &self.records;
        let control = &self.control;
        self.bell.sleep(PARK_TIMEOUT, || {
            !records.is_empty() || records.is_abandoned() || !control.is_empty()
        });
    }

    /// Takes up to `n` records off the ring into the block (they come encoded: a copy each);
    /// only their engine times are kept, for the latency figures. Returns how many it took.
    fn take(&mut self, n: usize) -> usize {
        let (block, stamps) = (&mut self.block, &mut self.stamps);
        self.records.take(n, |head, encoded| {
            block.push_encoded(head.cseq, head.seq_end, encoded);
            stamps.push(head.engine_mono);
        })
    }

    fn commit_with_retry(&mut self) {
        let mut pause = Duration::from_millis(10);
        let mut failures = 0u64;
        loop {
            match self.write_block() {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    bump(&self.counters.journal.commit_errors);
                    self.counters.journal.failing.store(1, Ordering::Release);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "journal commit failed; retrying the same batch");
                    }
                    self.answer_control();
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
        if failures > 0 {
            self.counters.journal.failing.store(0, Ordering::Release);
            tracing::info!(failures, "journal commit succeeded after retries");
        }
        let now = mono_ns();
        for &engine_mono in &self.stamps {
            self.latency.record(now.saturating_sub(engine_mono));
        }
        let (_, last_cseq, last_seq) = self.block.range();
        let c = &self.counters.journal;
        c.rows.store(
            c.rows.load(Ordering::Relaxed) + self.stamps.len() as u64,
            Ordering::Relaxed,
        );
        bump(&c.batches);
        c.last_batch
            .store(self.stamps.len() as u64, Ordering::Relaxed);
        c.durable_seq.store(last_seq, Ordering::Release);
        c.durable_cseq.store(last_cseq, Ordering::Release);
        self.stamps.clear();
        self.block.clear();
        self.followers.committed.notify_waiters();
        if let Some(p) = &self.followers.projector {
            p.ring();
        }
    }

    /// Writes the block in its own transaction (nothing at all in the null sink): one
    /// `INSERT` in autocommit mode, which SQLite runs as a transaction of its own, so no
    /// `BEGIN` and `COMMIT` are prepared and stepped per commit.
    fn write_block(&mut self) -> rusqlite::Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if let Some(file) = &self.faults {
            injected_fault(file)?;
        }
        if self.counters.journal.files_missing.load(Ordering::Acquire) != 0 {
            // The open file is no longer the one at the journal's path: a commit into it
            // would be acknowledged and lost with it.
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(
                    "the data files were moved, deleted or replaced under the daemon; commits \
                     wait until they are back at their paths"
                        .into(),
                ),
            ));
        }
        let (first, last, last_seq) = self.block.range();
        conn.prepare_cached(INSERT_BLOCK)?
            .execute(rusqlite::params![
                first as i64,
                last as i64,
                last_seq as i64,
                self.block.checksum() as i64,
                self.block.body(),
                wall_ns() as i64
            ])?;
        Ok(())
    }
}
