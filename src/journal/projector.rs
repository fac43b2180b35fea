//! The `projection` thread: the output stage. It follows the command journal with a replica of
//! the engine and writes what the commands did into the tables.
//!
//! It reads committed blocks after its cursor from the command journal (its own read-only
//! connection), runs every command through its own [`Engine`] (the engine is deterministic, so
//! the replica makes exactly the events the live engine made), and writes the events and the
//! rows they change (`Events`, `Orders`, `Trades`, `Balances`) in large transactions, each
//! ending at a block boundary and carrying the cursor (`Projection`), so that after a crash the
//! tables hold exactly the commands up to the cursor. After each commit it publishes
//! `projected_cseq` and `projected_seq`, hands the events to the bus, and, when one is due,
//! writes a snapshot of the replica (no pause on the order path: the live engine never copies
//! its state).
//!
//! Start-up runs the same code to completion before the daemon reports ready
//! ([`super::recovery`]); the thread then follows the journal's commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, TransactionBehavior};

use super::Wanted;
use super::block::StoredBlock;
use super::read::read_blocks;
use super::store::Store;
use super::{JournalError, ProjectionControl, background_priority};
use crate::bus::Batch;
use crate::config::Config;
use crate::engine::snapshot::checksum;
use crate::engine::{Command, CommandRecord, Engine, Event, NO_OWNER, Output, Owner, Report};
use crate::telemetry::{Counters, LatencyHistogram, bump, mono_ns, wall_ns};
use crate::wake::Doorbell;

/// How long the projection sleeps with nothing to do before it looks anyway.
const PARK_TIMEOUT: Duration = Duration::from_millis(50);

/// Longest pause between retries of a failed read or commit.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where the projection's work goes besides the tables.
#[derive(Debug)]
pub struct Outputs {
    /// Told after every projection commit (connections holding `projected` replies, the
    /// RabbitMQ bridge, connections paused by the projection's lag).
    pub projected: Arc<tokio::sync::Notify>,
    /// The bus's hand-over channel (never waited on: a full channel drops the batch, and the
    /// bus reads it back from `Events`).
    pub bus: Option<Sender<Arc<Batch>>>,
}

/// The replica's output: events into the batch being built, the rest dropped.
struct Sink<'a> {
    store: &'a mut Store,
    config: &'a Config,
}

impl Output for Sink<'_> {
    fn has_room(&mut self, _events: usize) -> bool {
        true
    }
    fn event(&mut self, event: Event) {
        self.store.event(&event, self.config);
    }
    fn command(&mut self, record: CommandRecord) {
        self.store.command(&record);
    }
    fn report(&mut self, _: Owner, _: Report) {}
}

/// When the replica's state is written as a snapshot: every `every_commands` commands, and
/// every `every_ns` while commands come, always at a projection commit.
#[derive(Debug)]
struct Schedule {
    every_commands: u64,
    every_ns: u64,
    keep: usize,
    /// The command of the last snapshot.
    last_cseq: u64,
    /// When it was taken (monotonic ns).
    last_at: u64,
}

impl Schedule {
    fn on(&self) -> bool {
        self.every_commands > 0 || self.every_ns > 0
    }
}

/// The projection: the replica, the tables' write connection, the journal's read connection.
pub struct Projector {
    replica: Engine,
    config: Arc<Config>,
    tables: Connection,
    journal: Connection,
    store: Store,
    blocks: Vec<StoredBlock>,
    outputs: Outputs,
    counters: Arc<Counters>,
    latency: LatencyHistogram,
    schedule: Schedule,
    batch_commands: usize,
    /// Control messages (the thread's; `None` during start-up). Answered between batches and
    /// while a failing commit is retried, so that `stats` answers whatever the disk does.
    control: Option<Receiver<ProjectionControl>>,
    /// What connections holding `projected` answers wait for: the projection does not wait
    /// out its commit interval while it is beyond what is projected.
    wanted: Arc<Wanted>,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("cseq", &self.replica.last_cseq())
            .finish_non_exhaustive()
    }
}

impl Projector {
    /// A projection whose replica is at the tables' cursor. `snapshot_cseq` is the newest
    /// stored snapshot (the schedule counts from it).
    pub fn new(
        replica: Engine,
        config: Arc<Config>,
        tables: Connection,
        journal: Connection,
        outputs: Outputs,
        counters: Arc<Counters>,
        snapshot_cseq: u64,
    ) -> Projector {
        let p = &counters.projection;
        p.projected_cseq
            .store(replica.last_cseq(), Ordering::Release);
        p.projected_seq.store(replica.last_seq(), Ordering::Release);
        p.snapshot_cseq.store(snapshot_cseq, Ordering::Relaxed);
        let j = &config.journal;
        Projector {
            schedule: Schedule {
                every_commands: j.snapshot_every_commands,
                every_ns: j.snapshot_every.as_nanos() as u64,
                keep: j.snapshot_keep,
                last_cseq: snapshot_cseq,
                last_at: mono_ns(),
            },
            batch_commands: config.projection.batch_commands,
            replica,
            config,
            tables,
            journal,
            store: Store::new(),
            blocks: Vec::new(),
            outputs,
            counters,
            latency: LatencyHistogram::new(),
            control: None,
            wanted: Arc::new(Wanted::default()),
        }
    }

    /// Answers every waiting control message.
    fn answer_control(&self) {
        let Some(control) = &self.control else {
            return;
        };
        while let Ok(message) = control.try_recv() {
            match message {
                ProjectionControl::Stats(reply) => {
                    let _ = reply.send(self.latency.clone());
                }
            }
        }
    }

    /// The replica (its state is that of the tables' cursor).
    pub fn replica(&self) -> &Engine {
        &self.replica
    }

    /// Projects one batch of committed blocks (at least one block, about `batch_commands`
    /// commands) and commits it; returns the commands projected (0: caught up).
    pub fn step(&mut self) -> Result<usize, JournalError> {
        self.blocks.clear();
        let cursor = self.replica.last_cseq();
        read_blocks(&self.journal, cursor, self.batch_commands, &mut self.blocks)?;
        if self.blocks.is_empty() {
            return Ok(0);
        }
        self.store.clear();
        let now = wall_ns();
        let blocks = std::mem::take(&mut self.blocks);
        for b in &blocks {
            self.project_block(b)?;
            let waited = now.saturating_sub(b.written_ns);
            for _ in b.first_cseq..=b.last_cseq {
                self.latency.record(waited);
            }
        }
        self.blocks = blocks;
        let n = self.store.commands();
        self.commit()?;
        Ok(n)
    }

    /// Runs one block's commands through the replica into the batch, checking that the block
    /// is whole, follows the cursor, and that the replica makes the events it recorded.
    fn project_block(&mut self, b: &StoredBlock) -> Result<(), JournalError> {
        let at = self.replica.last_cseq();
        if b.first_cseq != at + 1 {
            return Err(JournalError::Corrupt(format!(
                "command block {}..{} follows command {at}: the command journal has a gap",
                b.first_cseq, b.last_cseq
            )));
        }
        let (replica, store, config) = (&mut self.replica, &mut self.store, &*self.config);
        b.commands(|_, recv_ns, body| {
            let mut sink = Sink { store, config };
            replica.process(
                &Command {
                    recv_ns,
                    recv_mono: 0,
                    body,
                },
                NO_OWNER,
                0,
                &mut sink,
            );
        })
        .map_err(|e| {
            JournalError::Corrupt(format!(
                "command block {}..{} is damaged: {e}",
                b.first_cseq, b.last_cseq
            ))
        })?;
        if self.replica.last_seq() != b.last_seq || self.replica.last_cseq() != b.last_cseq {
            return Err(JournalError::Corrupt(format!(
                "commands {}..{} replayed to event {} but the journal recorded event {} after \
                 them: the config no longer matches the journal (a market or account changed?)",
                b.first_cseq,
                b.last_cseq,
                self.replica.last_seq(),
                b.last_seq
            )));
        }
        Ok(())
    }

    /// Commits the batch with its cursor (retrying a failed commit with the same batch), then
    /// publishes how far the tables reach and hands the events on.
    fn commit(&mut self) -> Result<(), JournalError> {
        let mut pause = Duration::from_millis(10);
        let mut failures = 0u64;
        loop {
            match self.write() {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    bump(&self.counters.projection.commit_errors);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "projection commit failed; retrying the same batch");
                    }
                    self.answer_control();
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
        if failures > 0 {
            tracing::info!(failures, "projection commit succeeded after retries");
        }
        let (cseq, seq) = self.store.reach();
        let p = &self.counters.projection;
        bump(&p.batches);
        p.rows.store(
            p.rows.load(Ordering::Relaxed) + self.store.event_count() as u64,
            Ordering::Relaxed,
        );
        p.projected_seq.store(seq, Ordering::Release);
        p.projected_cseq.store(cseq, Ordering::Release);
        self.outputs.projected.notify_waiters();
        if let Some(bus) = &self.outputs.bus
            && !self.store.events.is_empty()
        {
            let capacity = self.store.events.len();
            let events = std::mem::replace(&mut self.store.events, Batch::with_capacity(capacity));
            let _ = bus.try_send(Arc::new(events));
        }
        self.maybe_snapshot(false);
        Ok(())
    }

    fn write(&mut self) -> rusqlite::Result<()> {
        let tx = self
            .tables
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.store.write(&tx, &self.config)?;
        tx.commit()
    }

    /// Writes a snapshot of the replica if one is due (`last`: at a clean stop, if anything
    /// changed since the last one). The replica is at a projection commit, so the snapshot
    /// never describes commands the tables do not hold.
    fn maybe_snapshot(&mut self, last: bool) {
        let s = &self.schedule;
        let cseq = self.replica.last_cseq();
        if !s.on() || cseq == s.last_cseq {
            return;
        }
        let by_count = s.every_commands > 0 && cseq - s.last_cseq >= s.every_commands;
        let by_time = s.every_ns > 0 && mono_ns().saturating_sub(s.last_at) >= s.every_ns;
        if !(by_count || by_time || last) {
            return;
        }
        let started = mono_ns();
        let snapshot = self.replica.snapshot(&self.config);
        let p = &self.counters.projection;
        p.snapshot_copy_ns
            .store(mono_ns().saturating_sub(started), Ordering::Relaxed);
        let body = crate::wire::binary::encode_large(&snapshot);
        drop(snapshot);
        self.schedule.last_cseq = cseq;
        self.schedule.last_at = mono_ns();
        match write_snapshot(&mut self.tables, cseq, &body, self.schedule.keep) {
            Ok(()) => {
                bump(&p.snapshots_written);
                p.snapshot_cseq.store(cseq, Ordering::Relaxed);
                tracing::info!(
                    cseq,
                    bytes = body.len(),
                    took_ms = (mono_ns() - started) / 1_000_000,
                    "snapshot written"
                );
            }
            // The next one is taken as scheduled; recovery replays more meanwhile.
            Err(e) => tracing::warn!(cseq, error = %e, "cannot write a snapshot; it is dropped"),
        }
    }
}

/// Stores a snapshot and deletes all but the newest `keep`, in one transaction.
fn write_snapshot(
    conn: &mut Connection,
    cseq: u64,
    body: &[u8],
    keep: usize,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT OR REPLACE INTO Snapshots (cseq, created_ns, checksum, body) \
         VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![cseq as i64, wall_ns() as i64, checksum(body) as i64, body],
    )?;
    tx.execute(
        "DELETE FROM Snapshots WHERE cseq NOT IN \
         (SELECT cseq FROM Snapshots ORDER BY cseq DESC LIMIT ?1)",
        [keep as i64],
    )?;
    tx.commit()
}

/// The running projection thread.
#[derive(Debug)]
pub struct ProjectorHandle {
    /// Rung by the journal after each commit.
    bell: Arc<Doorbell>,
    /// Set once the journal has ended: project to its end, then stop.
    stop: Arc<AtomicBool>,
    control: Sender<ProjectionControl>,
    wanted: Arc<Wanted>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// What other threads hold to talk to the projection.
#[derive(Debug, Clone)]
pub struct ProjectionLink {
    bell: Arc<Doorbell>,
    control: Sender<ProjectionControl>,
    wanted: Arc<Wanted>,
}

impl ProjectionLink {
    /// Asks the projection to project up to command `cseq` and event `seq` (0: none) without
    /// waiting out its commit interval, and wakes it.
    pub fn hurry(&self, cseq: u64, seq: u64) {
        let before_c = self.wanted.cseq.fetch_max(cseq, Ordering::AcqRel);
        let before_s = self.wanted.seq.fetch_max(seq, Ordering::AcqRel);
        if before_c < cseq || before_s < seq {
            self.bell.wake();
        }
    }

    /// Sends a control message and wakes the projection; `false` if it cannot take it.
    pub fn send(&self, message: ProjectionControl) -> bool {
        let sent = self.control.try_send(message).is_ok();
        self.bell.wake();
        sent
    }
}

impl ProjectorHandle {
    /// The doorbell, for the journal to ring after each commit. Create it before the
    /// journal, start the thread with [`ProjectorHandle::start`].
    pub fn bell() -> Arc<Doorbell> {
        Arc::new(Doorbell::new())
    }

    /// Starts the thread on a projection that recovery brought up to date.
    pub fn start(
        mut projector: Projector,
        bell: Arc<Doorbell>,
    ) -> std::io::Result<ProjectorHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let (control, control_rx) = crossbeam_channel::bounded(16);
        let wanted = projector.wanted.clone();
        let (b, s) = (bell.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("projection".into())
            .spawn(move || {
                b.bind_current_thread();
                background_priority("projection", &projector.config.projection);
                projector.control = Some(control_rx);
                projector.follow(&b, &s)
            })?;
        Ok(ProjectorHandle {
            bell,
            stop,
            control,
            wanted,
            thread: Some(thread),
        })
    }

    /// A cloneable link.
    pub fn link(&self) -> ProjectionLink {
        ProjectionLink {
            bell: self.bell.clone(),
            control: self.control.clone(),
            wanted: self.wanted.clone(),
        }
    }

    /// True once the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// After the journal has ended: projects everything it committed, writes a last snapshot,
    /// and ends. `Err` if the projection failed.
    pub fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        self.bell.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|p| crate::engine::runner::panic_text(&p))?,
            None => Ok(()),
        }
    }
}

impl Projector {
    /// After a commit that caught up, waits out the rest of `projection.commit_interval` so
    /// that a steady stream of small journal commits is projected in transactions of many
    /// commands each. Ends at once when someone waits for a `projected` answer, a control
    /// message comes, or the journal has stopped.
    fn linger(&self, committed_at: std::time::Instant, stop: &AtomicBool) {
        let deadline = committed_at + self.config.projection.commit_interval;
        let p = &self.counters.projection;
        loop {
            let hurried = self.wanted.cseq.load(Ordering::Acquire)
                > p.projected_cseq.load(Ordering::Relaxed)
                || self.wanted.seq.load(Ordering::Acquire)
                    > p.projected_seq.load(Ordering::Relaxed);
            if hurried
                || stop.load(Ordering::Acquire)
                || self.control.as_ref().is_some_and(|c| !c.is_empty())
            {
                return;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// The thread's loop: project what is committed, sleep on the doorbell when caught up.
    fn follow(&mut self, bell: &Doorbell, stop: &AtomicBool) -> Result<(), String> {
        let mut pause = Duration::from_millis(10);
        loop {
            self.answer_control();
            // Read before the step: once the journal has stopped, one step that finds nothing
            // means every committed block is projected.
            let stopping = stop.load(Ordering::Acquire);
            match self.step() {
                Ok(0) if stopping => break,
                Ok(0) => {
                    let durable = &self.counters.journal.durable_cseq;
                    let cseq = self.replica.last_cseq();
                    let control = self.control.as_ref();
                    bell.sleep(PARK_TIMEOUT, || {
                        durable.load(Ordering::Acquire) > cseq
                            || stop.load(Ordering::Acquire)
                            || control.is_some_and(|c| !c.is_empty())
                    });
                }
                Ok(n) => {
                    pause = Duration::from_millis(10);
                    if n < self.batch_commands {
                        self.linger(std::time::Instant::now(), stop);
                    }
                }
                Err(JournalError::Sqlite(e)) => {
                    // Reading the journal failed (not the commit, which retries itself).
                    tracing::warn!(error = %e, "projection cannot read the command journal; retrying");
                    self.answer_control();
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Err(e) => {
                    tracing::error!(error = %e, "projection stopped");
                    return Err(e.to_string());
                }
            }
        }
        self.maybe_snapshot(true);
        tracing::info!(
            projected_cseq = self.replica.last_cseq(),
            "projection stopped: every committed command projected"
        );
        Ok(())
    }
}
