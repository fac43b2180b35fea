//! The journal: one thread that owns the only SQLite write connection and records everything
//! the engine sends it, in batches, one transaction per batch.
//!
//! After each commit it publishes `durable_seq` (the highest committed sequence number). A
//! failed commit is retried with the same batch until it succeeds; meanwhile the ring fills and
//! the engine answers `busy`, so nothing is dropped.

pub mod payload;
pub mod recovery;
mod schema;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use schema::{SCHEMA_VERSION, migrate};

use crate::config::{Config, Synchronous};
use crate::engine::Record;
use crate::engine::snapshot::{Snapshot, checksum};
use crate::telemetry::{Counters, LatencyHistogram, bump, mono_ns};
use crate::wake::Doorbell;

/// How long an idle journal sleeps before looking at its control channel anyway.
const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// How long the journal polls its ring after the last record before it parks on its doorbell.
const DEEP_SLEEP_AFTER: Duration = Duration::from_millis(50);

/// Longest pause between retries of a failed commit.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How often the checkpointer copies committed pages from the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// What can go wrong opening or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused something.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer orderpipe.
    #[error(
        "the database has schema version {found}, but this orderpipe supports at most {supported}: \
         run a newer orderpipe or restore a database from this version"
    )]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The journal's contents contradict each other (recovery cannot rebuild the state).
    #[error("the journal is inconsistent: {0}")]
    Corrupt(String),
}

/// Control messages to the journal thread.
#[derive(Debug)]
pub enum JournalControl {
    /// Send a copy of the engine → commit latency histogram.
    Stats(tokio::sync::oneshot::Sender<LatencyHistogram>),
}

/// Opens (creating if needed) the database for writing: WAL, the configured `synchronous`,
/// schema migrated.
pub fn open(path: &Path, synchronous: Synchronous) -> Result<Connection, JournalError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // A reader or an administrator holding the write lock delays a commit; the writer retries.
    conn.busy_timeout(Duration::from_millis(200))?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Where a previous run of the daemon left the database: the numbering to continue from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// Highest event sequence number recorded.
    pub last_seq: u64,
    /// Highest order id recorded.
    pub last_order_id: u64,
    /// Highest trade id recorded.
    pub last_trade_id: u64,
    /// Orders the previous run left open, now marked `expired`.
    pub expired_orders: u64,
}

/// Reads where a previous run stopped, and marks the orders it left open as `expired`.
///
/// Only for a journal written before commands were journaled (schema version 2 and older),
/// whose state cannot be replayed: numbering continues after the previous run, so that nothing
/// recorded is overwritten and sequence numbers stay unique, books and balances start again
/// from the config, and the orders that were resting are marked `expired` rather than left
/// looking open. Any newer journal is recovered by [`recovery::recover`].
pub fn resume(conn: &Connection) -> Result<Resume, JournalError> {
    let max = |sql: &str| -> Result<u64, JournalError> {
        Ok(conn
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(0) as u64)
    };
    let last_seq = max("SELECT MAX(seq) FROM Events")?;
    let last_order_id = max("SELECT MAX(id) FROM Orders")?;
    let last_trade_id = max("SELECT MAX(id) FROM Trades")?;
    let expired_orders = conn.execute(
        "UPDATE Orders SET status = 'expired' WHERE status IN ('open', 'partially_filled')",
        [],
    )? as u64;
    Ok(Resume {
        last_seq,
        last_order_id,
        last_trade_id,
        expired_orders,
    })
}

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

/// The running journal thread.
#[derive(Debug)]
pub struct JournalHandle {
    /// Wakes the journal when it parks; rung by the engine after pushing records.
    bell: Arc<Doorbell>,
    /// Control messages.
    control: Sender<JournalControl>,
    /// Snapshots from the engine (one at a time).
    snapshots: Sender<Box<Snapshot>>,
    /// Commits waited for.
    wanted: Arc<Wanted>,
    /// The thread, until joined.
    thread: Option<JoinHandle<()>>,
}

impl JournalHandle {
    /// Starts the journal thread on an opened connection.
    pub fn spawn(
        conn: Connection,
        records: rtrb::Consumer<Record>,
        config: &Config,
        counters: Arc<Counters>,
        committed: Arc<tokio::sync::Notify>,
        bus: Option<Sender<Arc<crate::bus::Batch>>>,
    ) -> std::io::Result<JournalHandle> {
        let bell = Arc::new(Doorbell::new());
        let (control, control_rx) = crossbeam_channel::bounded(16);
        // One snapshot in the channel and one being written: the engine skips a snapshot
        // that comes due while both are taken.
        let (snapshots, snapshots_rx) = crossbeam_channel::bounded(1);
        let wanted = Arc::new(Wanted::default());
        let mut writer = Writer {
            wanted: wanted.clone(),
            snapshots: snapshots_rx,
            pending_snapshot: None,
            snapshot_keep: config.journal.snapshot_keep,
            conn,
            records,
            control: control_rx,
            bell: bell.clone(),
            config: config.clone(),
            store: store::Store::new(),
            committed,
            bus,
            nice: config.journal.nice,
            batch: Vec::with_capacity(config.journal.batch_size),
            batch_size: config.journal.batch_size,
            max_delay: config.journal.max_delay,
            counters,
            latency: LatencyHistogram::new(),
        };
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                writer.bell.bind_current_thread();
                lower_priority(writer.nice);
                writer.run();
            })?;
        Ok(JournalHandle {
            bell,
            control,
            snapshots,
            wanted,
            thread: Some(thread),
        })
    }

    /// The doorbell the engine rings after pushing records.
    pub fn bell(&self) -> Arc<Doorbell> {
        self.bell.clone()
    }

    /// Where the engine sends snapshots of its state.
    pub fn snapshot_sender(&self) -> Sender<Box<Snapshot>> {
        self.snapshots.clone()
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

/// Copies committed pages from the WAL into the database file every [`CHECKPOINT_EVERY`]
/// while the journal commits, until `stop` closes. PASSIVE: it never blocks the journal's
/// commits or any reader; pages a reader still needs are left for the next round.
fn checkpoints(path: &Path, counters: &Counters, stop: &Receiver<()>) {
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the database for checkpoints");
            return;
        }
    };
    let mut last = counters.journal.batches.load(Ordering::Relaxed);
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
        stop.recv_timeout(CHECKPOINT_EVERY)
    {
        let batches = counters.journal.batches.load(Ordering::Relaxed);
        if batches == last {
            continue;
        }
        last = batches;
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpoint failed; the next one retries");
        }
    }
}

/// Gives the calling thread (only; Linux nice values are per thread) the nice value `nice`.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    match rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        Ok(()) => tracing::info!(nice, "journal thread runs at a lower priority"),
        Err(e) => tracing::warn!(nice, error = %e, "cannot lower the journal thread's priority"),
    }
}

struct Writer {
    conn: Connection,
    records: rtrb::Consumer<Record>,
    control: Receiver<JournalControl>,
    snapshots: Receiver<Box<Snapshot>>,
    /// Commits someone waits for.
    wanted: Arc<Wanted>,
    /// A snapshot taken from the channel, written once its command is committed.
    pending_snapshot: Option<Box<Snapshot>>,
    snapshot_keep: usize,
    bell: Arc<Doorbell>,
    /// Market and asset names and grids, for the rows and payloads.
    config: Config,
    /// Batch writer (buffers reused across batches).
    store: store::Store,
    /// Told after every commit (connections paused by a backlog wait for it).
    committed: Arc<tokio::sync::Notify>,
    /// Where committed events go (the bus), if anywhere. Never waited on: a batch that does
    /// not fit is dropped, and the bus reads it back from SQLite.
    bus: Option<Sender<Arc<crate::bus::Batch>>>,
    /// Nice value to run at.
    nice: i32,
    /// Records taken from the ring and not yet committed (at most `batch_size`).
    batch: Vec<Record>,
    batch_size: usize,
    max_delay: Duration,
    counters: Arc<Counters>,
    latency: LatencyHistogram,
}

impl Writer {
    fn run(&mut self) {
        // Checkpoints run on their own thread and connection, so that no commit pays for one
        // (SQLite would otherwise run it inside the commit that crosses 1,000 WAL pages, with
        // an fsync: milliseconds in the tail of every durable acknowledgement).
        if let Err(e) = self.conn.pragma_update(None, "wal_autocheckpoint", 0) {
            tracing::warn!(error = %e, "cannot move checkpoints off the journal thread");
        }
        let (stop_checkpoints, stop) = crossbeam_channel::bounded::<()>(0);
        let path = self.config.daemon.database_path.clone();
        let counters = self.counters.clone();
        let checkpointer = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || checkpoints(&path, &counters, &stop))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the checkpoint thread"))
            .ok();
        self.write_all();
        drop(stop_checkpoints);
        if let Some(t) = checkpointer {
            let _ = t.join();
        }
    }

    fn write_all(&mut self) {
        let mut first_at = Instant::now();
        // When the ring was last found empty with nothing to commit.
        let mut idle_since: Option<Instant> = None;
        loop {
            while let Ok(message) = self.control.try_recv() {
                match message {
                    JournalControl::Stats(reply) => {
                        let _ = reply.send(self.latency.clone());
                    }
                }
            }
            self.store_snapshot();
            // Take records up to the batch size, and always up to the end of a command: a
            // transaction never holds part of one (its command record comes last).
            while self.batch.len() < self.batch_size || !self.at_boundary() {
                let Ok(record) = self.records.pop() else {
                    break;
                };
                if self.batch.is_empty() {
                    first_at = Instant::now();
                }
                self.batch.push(record);
            }
            let finished = self.records.is_abandoned() && self.records.is_empty();
            if self.batch.is_empty() {
                if finished {
                    // Everything is committed: the engine's last snapshot can be written.
                    while self.store_snapshot() {}
                    break;
                }
                self.idle(idle_since.get_or_insert_with(Instant::now).elapsed());
                continue;
            }
            idle_since = None;
            if !self.at_boundary() && !finished {
                // The engine is in the middle of pushing a command's records: they come
                // within microseconds.
                std::hint::spin_loop();
                std::thread::yield_now();
                continue;
            }
            let waited = first_at.elapsed();
            if self.batch.len() < self.batch_size
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
            durable_seq = self.counters.journal.durable_seq.load(Ordering::Relaxed),
            "journal stopped: everything committed"
        );
    }

    /// True when a connection waits for a commit beyond what is committed.
    fn hurried(&self) -> bool {
        let c = &self.counters.journal;
        self.wanted.cseq.load(Ordering::Acquire) > c.durable_cseq.load(Ordering::Relaxed)
            || self.wanted.seq.load(Ordering::Acquire) > c.durable_seq.load(Ordering::Relaxed)
    }

    /// True when the batch ends with a command's last record (or is empty).
    fn at_boundary(&self) -> bool {
        !matches!(self.batch.last(), Some(Record::Event(_)))
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
        let snapshots = &self.snapshots;
        self.bell.sleep(PARK_TIMEOUT, || {
            !records.is_empty()
                || records.is_abandoned()
                || !control.is_empty()
                || !snapshots.is_empty()
        });
    }

    /// Takes a snapshot from the engine if none is pending, and writes the pending one if its
    /// command is committed (a snapshot must never be ahead of the commands and events it
    /// includes). True if one was written.
    fn store_snapshot(&mut self) -> bool {
        if self.pending_snapshot.is_none() {
            self.pending_snapshot = self.snapshots.try_recv().ok();
        }
        let durable = self.counters.journal.durable_cseq.load(Ordering::Relaxed);
        let Some(snapshot) = self.pending_snapshot.take_if(|s| s.cseq <= durable) else {
            return false;
        };
        let started = Instant::now();
        let cseq = snapshot.cseq;
        let body = crate::wire::binary::encode_large(&*snapshot);
        drop(snapshot);
        match self.write_snapshot(cseq, &body) {
            Ok(()) => {
                let c = &self.counters.journal;
                bump(&c.snapshots_written);
                c.snapshot_cseq.store(cseq, Ordering::Relaxed);
                tracing::info!(
                    cseq,
                    bytes = body.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                true
            }
            Err(e) => {
                // The next one will be taken as scheduled; recovery replays more meanwhile.
                tracing::warn!(cseq, error = %e, "cannot write a snapshot; it is dropped");
                false
            }
        }
    }

    fn commit_with_retry(&mut self) {
        let mut pause = Duration::from_millis(10);
        let mut failures = 0u64;
        loop {
            match self.write_batch() {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    bump(&self.counters.journal.commit_errors);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "journal commit failed; retrying the same batch");
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
        if failures > 0 {
            tracing::info!(failures, "journal commit succeeded after retries");
        }
        let now = mono_ns();
        let mut last = 0;
        let mut last_command = 0;
        for r in &self.batch {
            self.latency.record(now.saturating_sub(r.engine_mono()));
            match r {
                Record::Event(e) => last = e.seq,
                Record::Command(c) => last_command = c.cseq,
            }
        }
        let c = &self.counters.journal;
        c.rows.store(
            c.rows.load(Ordering::Relaxed) + self.batch.len() as u64,
            Ordering::Relaxed,
        );
        bump(&c.batches);
        if last > 0 {
            c.durable_seq.store(last, Ordering::Release);
        }
        if last_command > 0 {
            c.durable_cseq.store(last_command, Ordering::Release);
        }
        self.batch.clear();
        self.committed.notify_waiters();
        if let Some(bus) = &self.bus
            && !self.store.bus.is_empty()
        {
            let capacity = self.store.bus.len();
            let events = std::mem::replace(
                &mut self.store.bus,
                crate::bus::Batch::with_capacity(capacity),
            );
            let _ = bus.try_send(Arc::new(events));
        }
    }

    /// Stores a snapshot and deletes all but the newest `snapshot_keep`, in one transaction.
    fn write_snapshot(&mut self, cseq: u64, body: &[u8]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO Snapshots (cseq, created_ns, checksum, body) \
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                cseq as i64,
                crate::telemetry::wall_ns() as i64,
                checksum(body) as i64,
                body
            ],
        )?;
        tx.execute(
            "DELETE FROM Snapshots WHERE cseq NOT IN \
             (SELECT cseq FROM Snapshots ORDER BY cseq DESC LIMIT ?1)",
            [self.snapshot_keep as i64],
        )?;
        tx.commit()
    }

    fn write_batch(&mut self) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.store.write(&tx, self.batch.iter(), &self.config)?;
        tx.commit()
    }
}

/// Length of [`format_rfc3339`]'s output (years 0 to 9999).
pub const RFC3339_LEN: usize = 27;

/// Writes `ns` since the Unix epoch as RFC 3339 UTC with microseconds
/// (`2026-11-30T12:00:00.123456Z`) into `out` and returns it as text. No allocation.
pub fn format_rfc3339(ns: u64, out: &mut [u8; RFC3339_LEN]) -> &str {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u64;
    let fields = [
        (0, year, 4),
        (5, month as u64, 2),
        (8, day as u64, 2),
        (11, rem / 3600, 2),
        (14, (rem / 60) % 60, 2),
        (17, rem % 60, 2),
        (20, micros, 6),
    ];
    for (at, value, width) in fields {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    for (at, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        out[at] = sep;
    }
    // Only ASCII digits and separators were written.
    std::str::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_as_rfc3339_utc() {
        let mut b = [0u8; RFC3339_LEN];
        assert_eq!(format_rfc3339(0, &mut b), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_rfc3339(1_796_040_000_123_456_789, &mut b),
            "2026-11-30T12:00:00.123456Z"
        );
        // A leap day, and the last microsecond of a year.
        assert_eq!(
            format_rfc3339(1_709_251_199_000_000_000, &mut b),
            "2024-02-29T23:59:59.000000Z"
        );
        assert_eq!(
            format_rfc3339(1_767_225_599_999_999_999, &mut b),
            "2025-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn migrates_a_new_database_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let conn = open(&path, Synchronous::Normal).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        // Opening again is idempotent for the current version, and refuses a newer one.
        match open(&path, Synchronous::Normal) {
            Err(JournalError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }
}
